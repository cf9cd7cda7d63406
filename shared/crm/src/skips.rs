//! What the CRMs beyond HubSpot (Pipedrive, Zoho CRM, Kommo, Salesforce) leave out, and why:
//! one list, so that every one of them skips the same records for the same reasons and a new
//! record kind is decided in one place.

use wabridge_core::crm::Effect;
use wabridge_core::records::Record;

/// Why `effect` is not written to the CRM named `crm` (for the log line), or `None` when the
/// adapter writes it.
pub(crate) fn skip_reason(effect: &Effect, crm: &str) -> Option<String> {
    let why = match &effect.record {
        Record::Activity(a) if a.group_id.is_some() && effect.contact.is_none() => {
            "a status of a message sent to a group".to_string()
        }
        Record::Consent(_) if effect.fields.is_empty() => {
            "the mapping has no [[consent_fields]]".to_string()
        }
        Record::TemplateStatus(_)
        | Record::Quality(_)
        | Record::Account(_)
        | Record::Unknown(_) => "it belongs to the WhatsApp account, not a person".to_string(),
        Record::Call(_) => format!("calls are not logged in {crm} yet"),
        Record::SlaBreach(_) => {
            "the breach shows on the conversation's own record (wabridge_sla_breached_at)"
                .to_string()
        }
        Record::MessageChange(_) => format!("edits and deletions are not applied in {crm} yet"),
        Record::Media(_) => format!("files are not uploaded to {crm} yet"),
        Record::Contact(_)
        | Record::Conversation(_)
        | Record::Activity(_)
        | Record::Consent(_)
        | Record::Attribution(_)
        | Record::Lead(_)
        | Record::Erasure(_) => return None,
    };
    Some(why)
}

/// The log line of a record skipped by design (`kind`: the adapter's `CRM_KIND`).
pub(crate) fn log(kind: &str, crm: &str, effect: &Effect, why: &str) {
    tracing::info!(effect = %effect.id, record = effect.record.kind(), crm = kind, reason = why, "record not written to {crm} (by design)");
}

#[cfg(test)]
mod tests {
    use super::*;
    use wabridge_core::records::ContactRecord;

    fn effect(record: Record) -> Effect {
        Effect {
            id: "e".into(),
            record,
            fields: Default::default(),
            contact: None,
            in_doubt: false,
        }
    }

    #[test]
    fn people_are_written_and_the_account_is_not() {
        assert_eq!(
            skip_reason(&effect(Record::Contact(ContactRecord::default())), "Zoho"),
            None
        );
        let account = effect(Record::Unknown(wabridge_core::records::UnknownRecord {
            v: Default::default(),
            event_id: "e".into(),
            field: "account_update".into(),
            raw: serde_json::Value::Null,
            contact_id: None,
        }));
        assert_eq!(
            skip_reason(&account, "Zoho").as_deref(),
            Some("it belongs to the WhatsApp account, not a person")
        );
    }
}
