//! The account-level fields: `user_preferences` (a consent record for the person, or for a value
//! we do not know yet an unknown record on their contact), template status and phone quality
//! updates and account updates (records with no person), and anything not modelled (kept raw as an unknown record).

use serde_json::json;

use crate::account::AccountRecord;
use crate::event::Event;
use crate::records::{
    ConsentRecord, ConsentSource, ConsentStatus, QualityRecord, Record, TemplateStatusRecord,
    UnknownRecord,
};
use crate::webhook::model::{
    Contact, Item, PreferenceValue, QualityUpdate, TemplateStatusUpdate, UserPreference,
};

use super::{ms, IdentityOp, Plan, PlanError, Who};

pub(super) fn preference(
    event: &Event,
    preference: UserPreference,
    contact: &Contact,
) -> Result<Plan, PlanError> {
    let who = Who::of(
        preference.wa_id.as_deref(),
        preference.user_id.as_deref(),
        contact,
    )?;
    let keys = who.keys();
    if keys.is_empty() {
        return Err(PlanError::Missing(
            "user_preferences without wa_id nor user_id",
        ));
    }
    let name = contact.profile.as_ref().and_then(|p| p.name.clone());
    let (status, value) = match preference.value_kind() {
        Some(PreferenceValue::Stop) => (ConsentStatus::OptOut, "stop"),
        Some(PreferenceValue::Resume) => (ConsentStatus::OptIn, "resume"),
        // A value Meta added (`signup`) or none: not a consent change we can read, but the
        // person's event all the same, kept raw on their contact.
        _ => {
            let mut plan = unknown(event, Item::UserPreference(preference));
            plan.identity = IdentityOp::Resolve(keys);
            plan.contact = Some(who.contact(name, None, event.received_at));
            return Ok(plan);
        }
    };
    let consent = ConsentRecord {
        v: Default::default(),
        event_id: event.key.clone(),
        contact_id: String::new(),
        status,
        category: preference
            .category
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "marketing_messages".into()),
        source: ConsentSource::UserPreferences,
        evidence: json!({"value": value, "detail": preference.detail}),
        at: ms(preference.timestamp).or(Some(event.received_at)),
    };
    Ok(Plan {
        identity: IdentityOp::Resolve(keys),
        contact: Some(who.contact(name, None, event.received_at)),
        upsert_contact: false,
        records: vec![("consent", Record::Consent(consent))],
        status: None,
        item: Item::UserPreference(preference),
    })
}

pub(super) fn template_status(event: &Event, update: Box<TemplateStatusUpdate>) -> Plan {
    let upper = |v: &Option<String>| v.as_deref().map(str::to_ascii_uppercase);
    let mut record = TemplateStatusRecord {
        event_id: event.key.clone(),
        template_id: update.message_template_id.clone(),
        template_name: update.message_template_name.clone(),
        language: update.message_template_language.clone(),
        event: update.event.clone(),
        reason: update.reason.clone(),
        at: ms(event.entry_time),
        ..Default::default()
    };
    match event.field.as_str() {
        "message_template_quality_update" => {
            record.update = Some("quality".into());
            record.quality = upper(&update.new_quality_score);
            record.previous_quality = upper(&update.previous_quality_score);
        }
        "template_category_update" => {
            record.update = Some("category".into());
            match &update.correct_category {
                // A notice: `correct_category` is the coming one, `new_category` the current.
                Some(coming) => {
                    record.category = Some(coming.to_ascii_uppercase());
                    record.previous_category = upper(&update.new_category);
                    record.category_from = update.category_update_timestamp.map(|t| t * 1000);
                }
                None => {
                    record.category = upper(&update.new_category);
                    record.previous_category =
                        upper(&update.previous_category).or(upper(&update.old_category));
                }
            }
        }
        "message_template_components_update" => {
            record.update = Some("components".into());
            let mut c = serde_json::Map::new();
            for (name, value) in [
                ("body", &update.message_template_element),
                ("header", &update.message_template_title),
                ("footer", &update.message_template_footer),
            ] {
                if let Some(v) = value {
                    c.insert(name.into(), v.clone().into());
                }
            }
            if let Some(b) = &update.message_template_buttons {
                c.insert("buttons".into(), b.clone());
            }
            record.components = Some(serde_json::Value::Object(c));
        }
        _ => {}
    }
    Plan::records(
        Item::TemplateStatus(update),
        vec![("template_status", Record::TemplateStatus(record))],
    )
}

pub(super) fn quality(event: &Event, update: QualityUpdate) -> Plan {
    let record = QualityRecord {
        event_id: event.key.clone(),
        display_phone_number: update.display_phone_number.clone(),
        event: update.event.clone(),
        current_limit: update.current_limit.clone(),
        at: ms(event.entry_time),
        ..Default::default()
    };
    Plan::records(
        Item::QualityUpdate(update),
        vec![("quality", Record::Quality(record))],
    )
}

/// `account_update`: an `account` record (no person), with the value as Meta sent it.
pub(super) fn account(event: &Event, item: Item) -> Plan {
    // The queue only carries valid JSON (ingest split it out of a parsed body).
    let raw = serde_json::from_str(event.item.get()).unwrap_or(serde_json::Value::Null);
    let record = AccountRecord::of_value(&event.key, &event.waba_id, ms(event.entry_time), raw);
    Plan::records(item, vec![("account", Record::Account(record))])
}

/// Not modelled (an unknown field or message type): the record carries the
/// item exactly as Meta sent it.
pub(super) fn unknown(event: &Event, item: Item) -> Plan {
    // The queue only carries valid JSON (ingest split it out of a parsed body).
    let raw = serde_json::from_str(event.item.get()).unwrap_or(serde_json::Value::Null);
    Plan::records(
        item,
        vec![(
            "unknown",
            Record::Unknown(UnknownRecord {
                v: Default::default(),
                event_id: event.key.clone(),
                field: event.field.clone(),
                raw,
                contact_id: None,
            }),
        )],
    )
}
