//! Which number an event belongs to (see `docs/numbers.md#routing`).
//!
//! Meta names the number differently per field: `metadata.phone_number_id` on the message path
//! (messages, statuses, echoes, calls, user preferences), only the WABA (`entry[].id`) on
//! template and account updates, and only the display digits on quality updates. Each change is
//! routed on its own, never the POST as a whole.

use serde::Deserialize;

use super::{digits, Number, Numbers};
use crate::event::{Event, EventKind};

/// Where an event goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route<'a> {
    /// To this number's CRM target.
    Number(&'a Number),
    /// To every CRM target: the business's own events about a person (an erasure), which
    /// every CRM that may hold them must hear.
    Every,
    /// Meta named a number (or WABA, or display number) the registry does not know; says which.
    Unknown(String),
}

impl Numbers {
    /// The route of `event`:
    /// - a `phone_number_id` (Meta's message path; media results copy it): that number;
    /// - an erasure: every target;
    /// - a quality update: the number whose display digits it names;
    /// - wabridge's own send results and consents, which do not carry a number yet: the first
    ///   number of the registry;
    /// - anything else (template, account, capability updates): the first number of its WABA.
    pub fn route(&self, event: &Event) -> Route<'_> {
        if let Some(id) = &event.phone_number_id {
            return match self.numbers.iter().find(|n| &n.phone_number_id == id) {
                Some(n) => Route::Number(n),
                None => Route::Unknown(format!("phone_number_id {id} is not in the registry")),
            };
        }
        match event.kind {
            EventKind::Erasure => Route::Every,
            EventKind::SendResult | EventKind::Consent => match self.numbers.first() {
                Some(n) => Route::Number(n),
                None => Route::Unknown("the registry is empty".into()),
            },
            EventKind::QualityUpdate => {
                let named = quality_display(event).unwrap_or_default();
                let wanted = digits(&named);
                match self.numbers.iter().find(|n| n.display_digits() == wanted) {
                    Some(n) if !wanted.is_empty() => Route::Number(n),
                    _ => Route::Unknown(format!(
                        "display number {} is not in the registry",
                        crate::redact::mask(&wanted)
                    )),
                }
            }
            _ => match self.numbers.iter().find(|n| n.waba_id == event.waba_id) {
                Some(n) => Route::Number(n),
                None => Route::Unknown(format!("WABA {} is not in the registry", event.waba_id)),
            },
        }
    }
}

/// The `display_phone_number` a quality update's value names (ingest keeps the value as the
/// item; the envelope's copy is a fallback).
fn quality_display(event: &Event) -> Option<String> {
    #[derive(Deserialize)]
    struct Value {
        display_phone_number: Option<String>,
    }
    serde_json::from_str::<Value>(event.item.get())
        .ok()
        .and_then(|v| v.display_phone_number)
        .or_else(|| event.display_phone_number.clone())
}
