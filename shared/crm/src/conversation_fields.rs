//! What the CRMs without a conversation object of their own write of a conversation record on
//! the record that stands for it (a Pipedrive deal, a Kommo lead): custom text fields named as
//! HubSpot's ticket properties, the line that names the conversation in a note, and the
//! mapping's `[conversations.owners]` as numeric user ids.

use std::collections::BTreeMap;

use wabridge_core::clock::rfc3339;
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::mapping::owners::ConversationSettings;

use crate::ConfigError;

/// The field holding the conversation id: the record is found again by it.
pub const CONVERSATION_FIELD: &str = "wabridge_conversation_id";
/// The revision written (people see which change the record shows).
pub const REVISION_FIELD: &str = "wabridge_revision";
/// The fields every conversation record needs (`crm check` names them when missing).
pub const REQUIRED_FIELDS: [&str; 2] = [CONVERSATION_FIELD, REVISION_FIELD];
/// The fields written when the CRM has them.
pub const DETAIL_FIELDS: [&str; 9] = [
    "wabridge_agent",
    "wabridge_origin",
    "wabridge_opened_by",
    "wabridge_first_response_ms",
    "wabridge_tags",
    "wabridge_outcome",
    "wabridge_close_reason",
    "wabridge_closed_at",
    "wabridge_sla_breached_at",
];

/// The record's fields by name, as text (times in RFC 3339). Tags are always written (empty
/// when the API removed them all); other values only when set.
pub fn conversation_fields(r: &ConversationRecord) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (CONVERSATION_FIELD, r.id.clone()),
        (REVISION_FIELD, r.revision.to_string()),
        ("wabridge_tags", r.tags.join(", ")),
    ];
    let mut put = |name: &'static str, value: Option<String>| {
        if let Some(v) = value {
            out.push((name, v));
        }
    };
    put("wabridge_agent", r.agent.clone());
    put("wabridge_origin", r.origin.map(|o| o.as_str().into()));
    put("wabridge_opened_by", r.opened_by.map(|p| p.as_str().into()));
    put(
        "wabridge_first_response_ms",
        r.first_response_ms.map(|ms| ms.to_string()),
    );
    put("wabridge_outcome", r.outcome.clone());
    put(
        "wabridge_close_reason",
        r.close_reason.map(|c| c.as_str().into()),
    );
    put("wabridge_closed_at", r.closed_at.map(rfc3339));
    put("wabridge_sla_breached_at", r.sla_breached_at.map(rfc3339));
    out
}

/// The record's title: who the conversation is with (the contact's name, else its identity).
pub fn title(r: &ConversationRecord, who: Option<&str>) -> String {
    match who.map(str::trim).filter(|w| !w.is_empty()) {
        Some(who) => format!("WhatsApp conversation with {who}"),
        None => format!("WhatsApp conversation {}", r.id),
    }
}

/// The line a message's note carries so a person sees its conversation.
pub fn note_line(conversation_id: &str) -> String {
    format!("WhatsApp conversation {conversation_id}")
}

/// `[conversations.owners]` as the CRM's numeric user ids; an entry that is not a number is
/// refused at start, naming it (`crm`: the CRM's name for the message).
pub fn numeric_owners(
    settings: &ConversationSettings,
    crm: &str,
) -> Result<BTreeMap<String, u64>, ConfigError> {
    settings
        .owners
        .iter()
        .map(|(agent, user)| match user.trim().parse::<u64>() {
            Ok(id) => Ok((agent.clone(), id)),
            Err(_) => Err(ConfigError::Invalid {
                name: "[conversations.owners]",
                reason: format!("`{agent}` = `{user}` is not a {crm} user id (a number)"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wabridge_core::conversations::{CloseReason, Origin, Party};

    #[test]
    fn fields_are_text_named_as_the_ticket_properties() {
        let r = ConversationRecord {
            id: "cnv_1".into(),
            revision: 4,
            agent: Some("ana".into()),
            origin: Some(Origin::CtwaAd),
            opened_by: Some(Party::Customer),
            first_response_ms: Some(90_000),
            tags: vec!["menu".into(), "ventas".into()],
            outcome: Some("converted".into()),
            close_reason: Some(CloseReason::Idle),
            closed_at: Some(1_763_800_000_000),
            sla_breached_at: Some(1_763_780_900_000),
            ..Default::default()
        };
        let f: BTreeMap<_, _> = conversation_fields(&r).into_iter().collect();
        assert_eq!(f[CONVERSATION_FIELD], "cnv_1");
        assert_eq!(f[REVISION_FIELD], "4");
        assert_eq!(f["wabridge_origin"], "ctwa_ad");
        assert_eq!(f["wabridge_opened_by"], "customer");
        assert_eq!(f["wabridge_first_response_ms"], "90000");
        assert_eq!(f["wabridge_tags"], "menu, ventas");
        assert_eq!(f["wabridge_close_reason"], "idle");
        assert_eq!(f["wabridge_closed_at"], "2025-11-22T08:26:40Z");
        assert_eq!(f["wabridge_sla_breached_at"], "2025-11-22T03:08:20Z");
        assert!(f
            .keys()
            .all(|k| REQUIRED_FIELDS.contains(k) || DETAIL_FIELDS.contains(k)));
        // An open conversation says nothing of a close.
        let open = ConversationRecord {
            id: "cnv_2".into(),
            ..Default::default()
        };
        let f: BTreeMap<_, _> = conversation_fields(&open).into_iter().collect();
        assert!(!f.contains_key("wabridge_close_reason") && !f.contains_key("wabridge_closed_at"));
        assert_eq!(f["wabridge_tags"], "");
    }

    #[test]
    fn owners_must_be_numbers_and_the_entry_is_named() {
        let mut s = ConversationSettings::default();
        s.owners.insert("ana".into(), " 7001 ".into());
        assert_eq!(numeric_owners(&s, "Pipedrive").unwrap()["ana"], 7001);
        s.owners.insert("bruno".into(), "bruno@acme.mx".into());
        let e = numeric_owners(&s, "Pipedrive").unwrap_err().to_string();
        assert!(
            e.contains("[conversations.owners]") && e.contains("`bruno` = `bruno@acme.mx`"),
            "{e}"
        );
    }
}
