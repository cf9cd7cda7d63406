//! Fan-out destinations (issue 21, `docs/destinations.md`): besides its CRM, a number (or every
//! number) hands its events to more consumers, a bot or an automation tool, each with its own
//! queue, retries and dead letters.
//!
//! They are `[[destination]]` tables of the registry file ([`crate::config::WABRIDGE_NUMBERS`]);
//! this module parses and checks them (no I/O) and says which destinations an event goes to
//! ([`Destinations::queues_for`]), which the inbox uses to enqueue the event on each selected
//! destination's queue in the same durable write as the CRM's. A file may hold destinations
//! and no `[[number]]`: today's one-number configuration plus a bot.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::route::Route;
use super::{Numbers, NumbersError};
use crate::event::{Event, EventKind};
use crate::inbox::Fanout;

/// The queue of destination `name` is `destination:<name>`: dead letters name it so.
pub const QUEUE_PREFIX: &str = "destination:";

/// What a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// Meta's payload, re-signed with the destination's secret (`X-Hub-Signature-256`): an
    /// existing bot (pywa, n8n's WhatsApp trigger, Typebot) works behind wabridge unchanged.
    Relay,
    /// The canonical records, as the webhook CRM posts them, signed with the destination's
    /// secret ([`super::records`]).
    Records,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Relay => "relay",
            DestinationKind::Records => "records",
        }
    }
}

/// The kinds of events a destination may ask for (`events = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Messages, echoes, calls, user preferences (what customers do).
    Messages,
    /// The statuses of messages the business sent.
    Statuses,
    /// Template status, quality and category updates.
    Templates,
    /// Account, quality and capability updates, and any other field.
    Account,
}

impl EventClass {
    pub const ALL: [EventClass; 4] = [
        EventClass::Messages,
        EventClass::Statuses,
        EventClass::Templates,
        EventClass::Account,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Messages => "messages",
            EventClass::Statuses => "statuses",
            EventClass::Templates => "templates",
            EventClass::Account => "account",
        }
    }

    fn parse(name: &str) -> Option<EventClass> {
        EventClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The class of one of Meta's events; `None` for wabridge's own events (send results,
    /// consents, erasures...), which no destination receives: they are not Meta's.
    pub fn of(event: &Event) -> Option<EventClass> {
        Some(match event.kind {
            EventKind::Message | EventKind::Echo | EventKind::Call | EventKind::UserPreference => {
                EventClass::Messages
            }
            EventKind::Status => EventClass::Statuses,
            EventKind::TemplateStatus => EventClass::Templates,
            EventKind::QualityUpdate | EventKind::AccountUpdate => EventClass::Account,
            EventKind::Unknown => match event.field.as_str() {
                "messages" | "smb_message_echoes" | "calls" | "user_preferences" => {
                    EventClass::Messages
                }
                f if f.contains("template") => EventClass::Templates,
                _ => EventClass::Account,
            },
            EventKind::SendResult
            | EventKind::Consent
            | EventKind::Erasure
            | EventKind::MediaResult
            | EventKind::Conversation
            | EventKind::Sweep => return None,
        })
    }
}

/// One destination of the registry file.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// 1-32 of a-z 0-9 - _ : names its queue and its dead letters.
    pub name: String,
    pub kind: DestinationKind,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// The NAME of its signing secret in the secret store, never the secret.
    pub secret_key: String,
    /// The event classes it receives (default all).
    pub events: Vec<EventClass>,
    /// The labels of the numbers whose events it receives; `None`: every number.
    pub numbers: Option<Vec<String>>,
    /// The file line of its `name`: errors name it.
    pub line: usize,
}

impl Destination {
    /// The name of its queue.
    pub fn queue(&self) -> String {
        format!("{QUEUE_PREFIX}{}", self.name)
    }

    /// Whether `event` is for this destination: its class is asked for, and (with a `numbers`
    /// filter) it belongs to one of those numbers. An event of a number the registry does not
    /// know only reaches destinations without a filter.
    pub fn selects(&self, event: &Event, registry: Option<&Numbers>) -> bool {
        let Some(class) = EventClass::of(event) else {
            return false;
        };
        if !self.events.contains(&class) {
            return false;
        }
        match (&self.numbers, registry) {
            (None, _) => true,
            (Some(labels), Some(registry)) => match registry.route(event) {
                Route::Number(n) => labels.contains(&n.label),
                Route::Every | Route::Unknown(_) => false,
            },
            // Parse refuses a filter without a registry.
            (Some(_), None) => false,
        }
    }
}

/// Every destination of the file, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Destinations {
    list: Vec<Destination>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    destination: Vec<RawDestination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    name: Spanned<String>,
    kind: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    secret_key: Option<Spanned<String>>,
    #[serde(default)]
    events: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    numbers: Option<Spanned<Vec<String>>>,
}

/// Whether a registry file holds `[[destination]]` tables and no `[[number]]`: the gateway
/// then keeps today's one-number configuration, plus the destinations. A file that does not
/// parse is not (so that [`Numbers::parse`] says why).
pub fn destinations_only(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    // Only the tables' presence: their fields are checked by the parsers, which say what is wrong.
    #[derive(Deserialize)]
    struct Shape {
        #[serde(default)]
        destination: Vec<toml::Value>,
        #[serde(default)]
        number: Vec<toml::Value>,
    }
    toml::from_str::<Shape>(text)
        .is_ok_and(|raw| raw.number.is_empty() && !raw.destination.is_empty())
}

impl Destinations {
    /// Parses and checks the `[[destination]]` tables of a registry file's bytes; `registry`
    /// is its numbers (`None` when it lists none), against which `numbers` filters are checked.
    pub fn parse(
        file: &str,
        bytes: &[u8],
        registry: Option<&Numbers>,
    ) -> Result<Destinations, NumbersError> {
        let fail = |line: Option<usize>, problem: String| NumbersError {
            file: file.to_string(),
            line,
            problem,
        };
        if bytes.len() > super::MAX_FILE_BYTES {
            return Err(fail(
                None,
                format!("larger than {} bytes", super::MAX_FILE_BYTES),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| fail(None, "not UTF-8".into()))?;
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| fail(None, crate::template_files::toml_problem(text, &e)))?;
        let line_of = |span: std::ops::Range<usize>| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        };
        let mut list: Vec<Destination> = Vec::with_capacity(raw.destination.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in raw.destination {
            let line = line_of(r.name.span());
            let name = r.name.get_ref().trim().to_string();
            let bad = |line: usize, field: &str, why: String| {
                fail(Some(line), format!("destination `{name}`: `{field}` {why}"))
            };
            if !is_name(&name) {
                return Err(fail(
                    Some(line),
                    format!("destination `name` {name:?} must be 1 to 32 of a-z, 0-9, - and _"),
                ));
            }
            if let Some(first) = seen.insert(name.clone(), line) {
                return Err(bad(
                    line,
                    "name",
                    format!("duplicates the destination on line {first}"),
                ));
            }
            let kind = match r.kind.get_ref().trim() {
                "relay" => DestinationKind::Relay,
                "records" => DestinationKind::Records,
                other => {
                    return Err(bad(
                        line_of(r.kind.span()),
                        "kind",
                        format!("must be relay or records, got {other:?}"),
                    ))
                }
            };
            let url = r.url.get_ref().trim().to_string();
            let scheme_ok = url::Url::parse(&url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !scheme_ok {
                // The URL may carry a token: its scheme only.
                let scheme = url.split_once(':').map_or("none", |(s, _)| s);
                return Err(bad(
                    line_of(r.url.span()),
                    "url",
                    format!("must be an http or https URL (scheme: {scheme})"),
                ));
            }
            let secret_key = match &r.secret_key {
                None => {
                    return Err(bad(
                        line,
                        "secret_key",
                        "is required: the NAME of its signing secret in the secret store".into(),
                    ))
                }
                Some(k) if !super::is_key_name(k.get_ref().trim()) => {
                    return Err(bad(
                        line_of(k.span()),
                        "secret_key",
                        "must name a secret key (A-Z, 0-9, _), never hold the secret".into(),
                    ))
                }
                Some(k) => k.get_ref().trim().to_string(),
            };
            let events = match &r.events {
                None => EventClass::ALL.to_vec(),
                Some(events) => {
                    let mut out = Vec::new();
                    for e in events.get_ref() {
                        let class = EventClass::parse(e).ok_or_else(|| {
                            bad(
                                line_of(events.span()),
                                "events",
                                format!(
                                    "names {e:?}: the kinds are messages, statuses, templates and account"
                                ),
                            )
                        })?;
                        out.push(class);
                    }
                    if out.is_empty() {
                        return Err(bad(
                            line_of(events.span()),
                            "events",
                            "is empty: leave it out to receive every kind".into(),
                        ));
                    }
                    out
                }
            };
            let numbers = match (&r.numbers, registry) {
                (None, _) => None,
                (Some(n), None) => {
                    return Err(bad(
                        line_of(n.span()),
                        "numbers",
                        "filters by label, but the file lists no [[number]]".into(),
                    ))
                }
                (Some(n), Some(registry)) => {
                    let known = |l: &String| registry.all().iter().any(|x| &x.label == l);
                    if let Some(unknown) = n.get_ref().iter().find(|l| !known(l)) {
                        let labels: Vec<&str> =
                            registry.all().iter().map(|x| x.label.as_str()).collect();
                        return Err(bad(
                            line_of(n.span()),
                            "numbers",
                            format!(
                                "names {unknown:?}, which is not the label of a number (labels: {})",
                                labels.join(", ")
                            ),
                        ));
                    }
                    Some(n.get_ref().clone())
                }
            };
            list.push(Destination {
                name,
                kind,
                url,
                secret_key,
                events,
                numbers,
                line,
            });
        }
        Ok(Destinations { list })
    }

    /// Every destination, in file order.
    pub fn all(&self) -> &[Destination] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The destination called `name`.
    pub fn find(&self, name: &str) -> Option<&Destination> {
        self.list.iter().find(|d| d.name == name)
    }

    /// Every destination's `secret_key` is in the store (`has`), or the first missing one,
    /// named with its line: an unsigned delivery could be forged, so none goes out.
    pub fn check_secrets(
        &self,
        file: &str,
        has: impl Fn(&str) -> bool,
    ) -> Result<(), NumbersError> {
        match self.list.iter().find(|d| !has(&d.secret_key)) {
            None => Ok(()),
            Some(d) => Err(NumbersError {
                file: file.to_string(),
                line: Some(d.line),
                problem: format!(
                    "destination `{}`: `secret_key` names {}, which is not in the secret store",
                    d.name, d.secret_key
                ),
            }),
        }
    }

    /// The queues of the destinations `event` goes to, in file order.
    pub fn queues_for(&self, event: &Event, registry: Option<&Numbers>) -> Vec<String> {
        self.list
            .iter()
            .filter(|d| d.selects(event, registry))
            .map(Destination::queue)
            .collect()
    }
}

/// A destination's name: 1 to 32 of a-z, 0-9, - and _ (as a number's label).
pub fn is_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The inbox's [`Fanout`]: each event to the queues of the destinations that select it.
#[derive(Debug)]
pub struct DestinationFanout {
    pub destinations: Arc<Destinations>,
    pub registry: Option<Arc<Numbers>>,
}

impl Fanout for DestinationFanout {
    fn queues(&self, event: &Event) -> Vec<String> {
        self.destinations
            .queues_for(event, self.registry.as_deref())
    }
}

#[cfg(test)]
mod tests;
