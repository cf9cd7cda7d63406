//! The events topic of an AWS stack with destinations (`docs/destinations.md`): ingest publishes
//! each new event once, and SNS hands it to the events queue and to every destination's queue
//! whose filter policy matches the two message attributes set here. The attributes are what
//! [`super::destinations::Destination::selects`] decides on for `wabridge serve`, so a
//! destination gets the same events on either engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::destinations::EventClass;
use super::route::Route;
use super::Numbers;
use crate::event::Event;

/// The label of the number routing finds for the event; absent for an event of a number the
/// registry does not know (or without a registry), which only reaches destinations without a
/// `numbers` filter.
pub const ATTR_NUMBER: &str = "number";
/// `messages`, `statuses`, `templates` or `account` ([`EventClass`]); absent for wabridge's own
/// events, which no destination receives.
pub const ATTR_EVENT_CLASS: &str = "event_class";

/// The message attributes of `event` on the topic.
pub fn attributes(event: &Event, registry: Option<&Numbers>) -> Vec<(&'static str, String)> {
    let mut attrs = Vec::with_capacity(2);
    if let Some(Route::Number(n)) = registry.map(|r| r.route(event)) {
        attrs.push((ATTR_NUMBER, n.label.clone()));
    }
    if let Some(class) = EventClass::of(event) {
        attrs.push((ATTR_EVENT_CLASS, class.as_str().to_string()));
    }
    attrs
}

/// Set when the topic publishes an event of a number the registry does not know, so ingest
/// reads the registry again (bounded, as for sends): a number added with `numbers add --table`
/// after ingest's last read is labelled from then on, and reaches the destinations that filter
/// on it. Its events published before that read reach only unfiltered destinations.
#[derive(Clone, Debug, Default)]
pub struct UnknownSeen(Arc<AtomicBool>);

impl UnknownSeen {
    /// Notes an event of `registry` routed to no number it knows.
    pub fn note_if_unknown(&self, event: &Event, registry: &Numbers) {
        if matches!(registry.route(event), Route::Unknown(_)) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Whether an unknown number was seen since the last call.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// The SNS filter policy (`MessageAttributes` scope) of a destination asking for `events` of
/// `numbers` (`None`: every number): what the template builds from a destination's settings.
pub fn filter_policy(events: &[EventClass], numbers: Option<&[String]>) -> serde_json::Value {
    let mut policy = serde_json::Map::new();
    policy.insert(
        ATTR_EVENT_CLASS.into(),
        events.iter().map(|c| c.as_str()).collect(),
    );
    if let Some(labels) = numbers {
        policy.insert(
            ATTR_NUMBER.into(),
            labels.iter().map(String::as_str).collect(),
        );
    }
    serde_json::Value::Object(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn event(kind: EventKind, field: &str, phone_number_id: Option<&str>) -> Event {
        Event {
            v: crate::event::EVENT_VERSION,
            key: "k".into(),
            kind,
            field: field.into(),
            waba_id: "102290129340398".into(),
            entry_time: None,
            phone_number_id: phone_number_id.map(str::to_string),
            display_phone_number: None,
            contact: None,
            item: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            received_at: 0,
        }
    }

    #[test]
    fn attributes_name_the_routed_number_and_the_event_class() {
        let registry = Numbers::parse(
            "numbers.toml",
            br#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "local" }
"#,
        )
        .unwrap();
        let message = event(EventKind::Message, "messages", Some("106540352242922"));
        assert_eq!(
            attributes(&message, Some(&registry)),
            vec![
                (ATTR_NUMBER, "ventas-mx".to_string()),
                (ATTR_EVENT_CLASS, "messages".to_string())
            ]
        );
        // A number the registry does not know, or no registry: no `number` attribute.
        let status = event(EventKind::Status, "messages", Some("999"));
        assert_eq!(
            attributes(&status, Some(&registry)),
            vec![(ATTR_EVENT_CLASS, "statuses".to_string())]
        );
        assert_eq!(
            attributes(&message, None),
            vec![(ATTR_EVENT_CLASS, "messages".to_string())]
        );
        let template = event(
            EventKind::TemplateStatus,
            "message_template_status_update",
            None,
        );
        assert_eq!(attributes(&template, None)[0].1, "templates");
        // wabridge's own events are no destination's.
        assert!(attributes(&event(EventKind::Consent, "consent", None), None).is_empty());

        // Only the unknown number's event asks for a re-read, once.
        let unknown = UnknownSeen::default();
        unknown.note_if_unknown(&message, &registry);
        assert!(!unknown.take(), "ventas-mx is known");
        unknown.note_if_unknown(&status, &registry);
        assert!(unknown.take());
        assert!(!unknown.take(), "taken");
    }

    #[test]
    fn filter_policies_carry_the_classes_and_only_a_given_numbers_filter() {
        let labels = vec!["ventas-mx".to_string()];
        assert_eq!(
            filter_policy(&[EventClass::Messages], Some(&labels)),
            serde_json::json!({"event_class": ["messages"], "number": ["ventas-mx"]})
        );
        assert_eq!(
            filter_policy(&EventClass::ALL, None),
            serde_json::json!({"event_class": ["messages", "statuses", "templates", "account"]})
        );
    }
}
