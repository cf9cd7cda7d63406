//! crm-sync over a registry: each event goes to the [`CrmSync`] of its number (see
//! [`super::route`]); one of a number the registry does not know is dead-lettered with the
//! reason `unknown_number` (to redrive once the number is added), or goes to the target the
//! registry's `unknown_numbers` names.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::route::Route;
use super::{Numbers, UnknownNumbers};
use crate::consumer::{Handler, Outcome};
use crate::event::Event;
use crate::queue::Delivery;
use crate::sync::CrmSync;

pub use super::UNKNOWN_NUMBER;

pub struct NumberDispatch {
    numbers: Arc<Numbers>,
    /// Each number's crm-sync, by label (numbers of one target share its CRM client).
    by_label: HashMap<String, Arc<CrmSync>>,
    /// One crm-sync per distinct target, with the label of its first number.
    targets: Vec<(String, Arc<CrmSync>)>,
    /// The crm-sync of `unknown_numbers`' target, with no number on its records.
    fallback: Option<Arc<CrmSync>>,
}

impl NumberDispatch {
    /// `sync(label)` builds the crm-sync of the number with this label (`None`: for the events
    /// of unknown numbers, when the registry routes them to a target).
    pub fn new(
        numbers: Arc<Numbers>,
        mut sync: impl FnMut(Option<&str>) -> Arc<CrmSync>,
    ) -> NumberDispatch {
        let by_label: HashMap<String, Arc<CrmSync>> = numbers
            .all()
            .iter()
            .map(|n| (n.label.clone(), sync(Some(&n.label))))
            .collect();
        let targets = numbers
            .targets()
            .into_iter()
            .map(|(_, labels)| (labels[0].to_string(), by_label[labels[0]].clone()))
            .collect();
        let fallback = match &numbers.unknown {
            UnknownNumbers::DeadLetter => None,
            UnknownNumbers::RouteTo(_) => Some(sync(None)),
        };
        NumberDispatch {
            numbers,
            by_label,
            targets,
            fallback,
        }
    }

    async fn every(&self, event: &Event, receive_count: u32) -> Outcome {
        if let [(_, only)] = self.targets.as_slice() {
            return only.handle_event(event, receive_count).await;
        }
        // One copy per target, keyed apart so each target's effects are claimed on their own.
        let mut worst = Outcome::Done;
        for (label, sync) in &self.targets {
            let copy = Event {
                key: format!("{}@{label}", event.key),
                ..event.clone()
            };
            match sync.handle_event(&copy, receive_count).await {
                Outcome::Done => {}
                retry @ Outcome::Retry { .. } => worst = retry,
                dead @ Outcome::DeadLetter(_) if matches!(worst, Outcome::Done) => worst = dead,
                Outcome::DeadLetter(_) => {}
            }
        }
        worst
    }
}

#[async_trait]
impl Handler for NumberDispatch {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match Event::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(format!("not an event: {e}")),
        };
        match self.numbers.route(&event) {
            Route::Number(n) => {
                self.by_label[&n.label]
                    .handle_event(&event, delivery.receive_count)
                    .await
            }
            Route::Every => self.every(&event, delivery.receive_count).await,
            Route::Unknown(why) => match &self.fallback {
                Some(sync) => sync.handle_event(&event, delivery.receive_count).await,
                None => {
                    // The metric's dimension (infra/template.yaml): Meta's id of the unrouted
                    // number, or its WABA's when the event names no number; never a customer's.
                    let unrouted = event.phone_number_id.as_deref().unwrap_or(&event.waba_id);
                    tracing::warn!(metric = UNKNOWN_NUMBER, %unrouted, %why, "an event of a number the registry does not know: dead-lettered");
                    Outcome::DeadLetter(format!(
                        "{UNKNOWN_NUMBER}: {why}; add the number to the registry and redrive"
                    ))
                }
            },
        }
    }
}
