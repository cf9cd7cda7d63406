//! From a queue [`Event`] to what crm-sync must do: the identity operation and the canonical
//! records, each under an effect name. Pure: no store, no CRM.

use serde_json::{json, Value};

use crate::consent::META_STOPPED_MARKETING;
use crate::event::{Event, EventKind};
use crate::identity::{Bsuid, IdentityKey, Phone};
use crate::mapping::{ConsentKeywords, KeywordMatch};
use crate::records::{
    ActivityRecord, ConsentRecord, ConsentSource, ConsentStatus, ContactRecord, Direction,
    MediaRef, QualityRecord, Record, Referral, StatusError, TemplateStatusRecord, UnknownRecord,
};

/// How the event touches the identity store.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityOp {
    None,
    /// Find or create the contact of these keys (priority order).
    Resolve(Vec<IdentityKey>),
    /// A number / user id change: move `from` to `to`, then resolve `also` onto the same contact.
    Move {
        from: IdentityKey,
        to: IdentityKey,
        also: Vec<IdentityKey>,
    },
}

/// What one event asks for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub identity: IdentityOp,
    /// The contact as this event describes it (ids filled in after identity resolution).
    pub contact: Option<ContactRecord>,
    /// Whether the contact record is written as an effect of this event (messages: always;
    /// statuses and preferences: only when the contact is new).
    pub upsert_contact: bool,
    /// (effect name, record) in the order they are applied.
    pub records: Vec<(&'static str, Record)>,
    /// Outbound status: (message id, rank) to check against the forward-only rule.
    pub status: Option<(String, u8)>,
}

fn s(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    match cur {
        Value::String(x) if !x.is_empty() => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ts_ms(v: &Value) -> Option<i64> {
    s(v, &["timestamp"])
        .and_then(|t| t.parse::<i64>().ok())
        .map(|t| t * 1000)
}

/// Phone and BSUID of a user, from wherever this item carries them.
struct Who {
    phone: Option<Phone>,
    bsuid: Option<Bsuid>,
}

impl Who {
    fn new(wa_id: Option<String>, user_id: Option<String>) -> Result<Who, String> {
        let phone = wa_id
            .map(|w| Phone::from_wa_id(&w).map_err(|e| format!("identity: {e}")))
            .transpose()?;
        let bsuid = user_id
            .map(|u| Bsuid::parse(&u).map_err(|e| format!("identity: {e}")))
            .transpose()?;
        Ok(Who { phone, bsuid })
    }

    fn keys(&self) -> Vec<IdentityKey> {
        let mut keys = Vec::new();
        if let Some(p) = &self.phone {
            keys.push(p.identity_key());
        }
        if let Some(b) = &self.bsuid {
            keys.push(b.identity_key());
        }
        keys
    }

    fn contact(&self, name: Option<String>, username: Option<String>, at: i64) -> ContactRecord {
        ContactRecord {
            phone_e164: self.phone.as_ref().map(|p| p.e164.to_string()),
            wa_id: self.phone.as_ref().and_then(|p| p.wa_id.clone()),
            bsuid: self.bsuid.as_ref().map(|b| b.to_string()),
            username,
            name,
            updated_at: at,
            ..Default::default()
        }
    }
}

/// Builds the plan of an event. `Err` = the event can never be processed (dead letter).
pub fn plan(event: &Event, keywords: &ConsentKeywords) -> Result<Plan, String> {
    let item: Value =
        serde_json::from_str(event.item.get()).map_err(|e| format!("item is not JSON: {e}"))?;
    let contact: Value = match &event.contact {
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|e| format!("contact is not JSON: {e}"))?
        }
        None => Value::Null,
    };
    let now = event.received_at;
    let empty = Plan {
        identity: IdentityOp::None,
        contact: None,
        upsert_contact: false,
        records: vec![],
        status: None,
    };
    match event.kind {
        EventKind::Message => message_plan(event, &item, &contact, keywords),
        EventKind::Status => {
            let who = Who::new(
                s(&item, &["recipient_id"]),
                s(&item, &["recipient_user_id"]),
            )?;
            let keys = who.keys();
            if keys.is_empty() {
                return Err("status without recipient_id nor recipient_user_id".into());
            }
            let message_id = s(&item, &["id"]).ok_or("status without id")?;
            let status = s(&item, &["status"]).ok_or("status without status")?;
            let rank = crate::records::status_rank(&status);
            let errors: Vec<StatusError> = item["errors"]
                .as_array()
                .map(|errs| {
                    errs.iter()
                        .map(|e| StatusError {
                            // A number, or a numeric string (read like the sending side does).
                            code: e["code"]
                                .as_i64()
                                .or_else(|| e["code"].as_str()?.trim().parse().ok()),
                            title: s(e, &["title"]),
                            message: s(e, &["message"]),
                            details: s(e, &["error_data", "details"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Meta's 131050 (the user stopped marketing messages) on a message that is not one of
            // our sends by its callback data (sent by another tool on the same number, or ours
            // without it) is a marketing opt-out the CRM must see; for a send named by its
            // callback data the sender reports it (`Sends::apply_status`), so exactly one route
            // does.
            let stopped_marketing = status == "failed"
                && errors
                    .iter()
                    .any(|e| e.code == Some(META_STOPPED_MARKETING));
            let send_id = s(&item, &["biz_opaque_callback_data"]).filter(|d| d.starts_with("snd_"));
            let opt_out = (stopped_marketing && send_id.is_none()).then(|| {
                meta_opt_out(
                    event,
                    json!({"message_id": message_id, "code": META_STOPPED_MARKETING}),
                    ts_ms(&item).or(Some(now)),
                )
            });
            let activity = ActivityRecord {
                event_id: event.key.clone(),
                kind: "status".into(),
                direction: Some(Direction::Outbound),
                message_id: Some(message_id.clone()),
                at: ts_ms(&item),
                status: Some(status),
                errors,
                pricing_category: s(&item, &["pricing", "category"]),
                callback_data: s(&item, &["biz_opaque_callback_data"]),
                // Our sends carry their id as callback data (see `sends::request`).
                send_id,
                ..Default::default()
            };
            let mut records = vec![("status", Record::Activity(activity))];
            if let Some(consent) = opt_out {
                records.push(("consent", Record::Consent(consent)));
            }
            Ok(Plan {
                identity: IdentityOp::Resolve(keys),
                contact: Some(who.contact(None, None, now)),
                upsert_contact: false,
                records,
                status: Some((message_id, rank)),
            })
        }
        EventKind::UserPreference => {
            let wa = s(&item, &["wa_id"]).or_else(|| s(&contact, &["wa_id"]));
            let user = s(&item, &["user_id"]).or_else(|| s(&contact, &["user_id"]));
            let who = Who::new(wa, user)?;
            let keys = who.keys();
            if keys.is_empty() {
                return Err("user_preferences without wa_id nor user_id".into());
            }
            let value = s(&item, &["value"]).unwrap_or_default();
            let status = match value.as_str() {
                "stop" => ConsentStatus::OptOut,
                "resume" => ConsentStatus::OptIn,
                other => {
                    return Err(format!(
                        "user_preferences value `{other}` is not stop/resume"
                    ))
                }
            };
            let consent = ConsentRecord {
                v: Default::default(),
                event_id: event.key.clone(),
                contact_id: String::new(),
                status,
                category: s(&item, &["category"]).unwrap_or_else(|| "marketing_messages".into()),
                source: ConsentSource::UserPreferences,
                evidence: json!({"value": value, "detail": s(&item, &["detail"])}),
                at: ts_ms(&item).or(Some(now)),
            };
            Ok(Plan {
                identity: IdentityOp::Resolve(keys),
                contact: Some(who.contact(s(&contact, &["profile", "name"]), None, now)),
                upsert_contact: false,
                records: vec![("consent", Record::Consent(consent))],
                status: None,
            })
        }
        EventKind::TemplateStatus => Ok(Plan {
            records: vec![(
                "template_status",
                Record::TemplateStatus(TemplateStatusRecord {
                    event_id: event.key.clone(),
                    template_id: s(&item, &["message_template_id"]),
                    template_name: s(&item, &["message_template_name"]),
                    language: s(&item, &["message_template_language"]),
                    event: s(&item, &["event"]),
                    reason: s(&item, &["reason"]),
                    at: event.entry_time.map(|t| t * 1000),
                    ..Default::default()
                }),
            )],
            ..empty
        }),
        EventKind::QualityUpdate => Ok(Plan {
            records: vec![(
                "quality",
                Record::Quality(QualityRecord {
                    event_id: event.key.clone(),
                    display_phone_number: s(&item, &["display_phone_number"]),
                    event: s(&item, &["event"]),
                    current_limit: s(&item, &["current_limit"]),
                    at: event.entry_time.map(|t| t * 1000),
                    ..Default::default()
                }),
            )],
            ..empty
        }),
        EventKind::SendResult => send_result_plan(event, &item),
        EventKind::AccountUpdate | EventKind::Unknown => Ok(Plan {
            records: vec![(
                "unknown",
                Record::Unknown(UnknownRecord {
                    v: Default::default(),
                    event_id: event.key.clone(),
                    field: event.field.clone(),
                    raw: item,
                }),
            )],
            ..empty
        }),
    }
}

/// Meta's 131050 as the CRM's consent record: a marketing opt-out from `event`.
fn meta_opt_out(event: &Event, evidence: Value, at: Option<i64>) -> ConsentRecord {
    ConsentRecord {
        v: Default::default(),
        event_id: event.key.clone(),
        contact_id: String::new(),
        status: ConsentStatus::OptOut,
        category: "marketing_messages".into(),
        source: ConsentSource::MetaError,
        evidence,
        at,
    }
}

/// A `send_result` event (see `sends::events`): a send that ended without a status webhook
/// becomes one outbound activity with its final state and error; Meta's 131050 becomes a
/// marketing opt-out consent record whose evidence names the send.
fn send_result_plan(event: &Event, item: &Value) -> Result<Plan, String> {
    let send_id = s(item, &["send_id"]).ok_or("send_result without send_id")?;
    let phone = s(item, &["to"])
        .map(|t| Phone::parse(&t, None).or_else(|_| Phone::from_wa_id(&t)))
        .transpose()
        .map_err(|e| format!("identity: {e}"))?;
    let bsuid = s(item, &["recipient"])
        .map(|r| Bsuid::parse(&r))
        .transpose()
        .map_err(|e| format!("identity: {e}"))?;
    let mut who = Who { phone, bsuid };
    let mut keys = who.keys();
    if keys.is_empty() {
        // Only the stored contact key: resolve the person by it.
        let key = s(item, &["contact"])
            .and_then(|k| IdentityKey::from_stored(&k))
            .ok_or("send_result without to, recipient nor contact")?;
        if let IdentityKey::Bsuid(b) = &key {
            who.bsuid = Bsuid::parse(b).ok();
        }
        keys.push(key);
    }
    let at = item["at"].as_i64().or(Some(event.received_at));
    let error = item.get("error").filter(|e| e.is_object());
    let code = error.and_then(|e| s(e, &["code"]));
    let message = error.and_then(|e| s(e, &["message"]));
    let record = if item["opted_out"].as_bool() == Some(true) {
        (
            "consent",
            Record::Consent(meta_opt_out(
                event,
                json!({"send_id": send_id, "code": META_STOPPED_MARKETING, "message": message}),
                at,
            )),
        )
    } else {
        let state = s(item, &["state"]).ok_or("send_result without state")?;
        let errors = code
            .as_ref()
            .map(|c| {
                vec![StatusError {
                    code: c.strip_prefix("meta_").and_then(|n| n.parse().ok()),
                    title: Some(c.clone()),
                    message: message.clone(),
                    details: None,
                }]
            })
            .unwrap_or_default();
        (
            "activity",
            Record::Activity(ActivityRecord {
                event_id: event.key.clone(),
                kind: "send_result".into(),
                direction: Some(Direction::Outbound),
                message_id: s(item, &["wamid"]),
                at,
                text: s(item, &["template"]).map(|t| format!("template {t}")),
                status: Some(state),
                errors,
                send_id: Some(send_id),
                ..Default::default()
            }),
        )
    };
    Ok(Plan {
        identity: IdentityOp::Resolve(keys),
        contact: Some(who.contact(None, None, event.received_at)),
        upsert_contact: false,
        records: vec![record],
        status: None,
    })
}

fn media(m: &Value) -> Option<MediaRef> {
    Some(MediaRef {
        id: s(m, &["id"])?,
        mime_type: s(m, &["mime_type"]),
        sha256: s(m, &["sha256"]),
        filename: s(m, &["filename"]),
    })
}

fn message_plan(
    event: &Event,
    item: &Value,
    contact: &Value,
    keywords: &ConsentKeywords,
) -> Result<Plan, String> {
    let now = event.received_at;
    let kind = s(item, &["type"]).unwrap_or_else(|| "unknown".into());
    let wa = s(item, &["from"]).or_else(|| s(contact, &["wa_id"]));
    let user = s(item, &["from_user_id"]).or_else(|| s(contact, &["user_id"]));
    let who = Who::new(wa, user)?;
    let mut keys = who.keys();
    if keys.is_empty() {
        return Err("message without from nor from_user_id".into());
    }
    let message_id = s(item, &["id"]);
    let mut activity = ActivityRecord {
        event_id: event.key.clone(),
        kind: kind.clone(),
        direction: Some(Direction::Inbound),
        message_id: message_id.clone(),
        at: ts_ms(item),
        context: item.get("context").cloned(),
        ..Default::default()
    };
    let body = &item[kind.as_str()];
    match kind.as_str() {
        "text" => activity.text = s(body, &["body"]),
        "image" | "video" | "document" | "sticker" | "audio" | "voice" => {
            activity.media = media(body).into_iter().collect();
            activity.text = s(body, &["caption"]);
        }
        "location" => {
            activity.text = s(body, &["name"])
                .or_else(|| s(body, &["address"]))
                .or_else(|| Some(format!("{},{}", body["latitude"], body["longitude"])))
        }
        "contacts" => {
            let names: Vec<String> = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| s(c, &["name", "formatted_name"]))
                        .collect()
                })
                .unwrap_or_default();
            activity.text = (!names.is_empty()).then(|| names.join(", "));
        }
        "interactive" => {
            for sub in ["button_reply", "list_reply"] {
                if let Some(r) = body.get(sub) {
                    activity.text = s(r, &["title"]);
                    activity.payload = s(r, &["id"]);
                }
            }
            if let Some(r) = body.get("nfm_reply") {
                activity.text = s(r, &["body"]);
                activity.payload = s(r, &["response_json"]);
            }
        }
        "button" => {
            activity.text = s(body, &["text"]);
            activity.payload = s(body, &["payload"]);
        }
        "order" => {
            let n = body["product_items"].as_array().map(Vec::len).unwrap_or(0);
            activity.text = Some(format!("order of {n} item(s)"));
            activity.payload = s(body, &["catalog_id"]);
        }
        "reaction" => {
            activity.text = s(body, &["emoji"]);
            activity.context = Some(json!({"id": s(body, &["message_id"])}));
        }
        "system" => activity.text = s(body, &["body"]),
        _ => {}
    }
    let mut contact_record = who.contact(
        s(contact, &["profile", "name"]),
        s(contact, &["profile", "username"]),
        now,
    );
    if let Some(r) = item.get("referral") {
        contact_record.referral = Some(Referral {
            source_type: s(r, &["source_type"]),
            source_id: s(r, &["source_id"]),
            source_url: s(r, &["source_url"]),
            headline: s(r, &["headline"]),
            ctwa_clid: s(r, &["ctwa_clid"]),
        });
    }
    let mut identity = IdentityOp::Resolve(keys.clone());
    if kind == "system" {
        match s(body, &["type"]).as_deref() {
            // Meta's current name is `user_changed_number`; `customer_changed_number` is the
            // older one. A number change also regenerates the BSUID (`previous_user_id` →
            // `user_id`): the new one is linked to the same contact.
            Some("customer_changed_number" | "user_changed_number") => {
                if let Some(new_wa) = s(body, &["wa_id"]).or_else(|| s(body, &["new_wa_id"])) {
                    let new_phone =
                        Phone::from_wa_id(&new_wa).map_err(|e| format!("identity: {e}"))?;
                    let old = who
                        .phone
                        .as_ref()
                        .ok_or("user_changed_number without from")?
                        .identity_key();
                    keys.retain(|k| k != &old);
                    if let Some(new_user) = s(body, &["user_id"]) {
                        let new_bsuid =
                            Bsuid::parse(&new_user).map_err(|e| format!("identity: {e}"))?;
                        if !keys.contains(&new_bsuid.identity_key()) {
                            keys.push(new_bsuid.identity_key());
                        }
                        contact_record.bsuid = Some(new_bsuid.to_string());
                    }
                    identity = IdentityOp::Move {
                        from: old,
                        to: new_phone.identity_key(),
                        also: keys,
                    };
                    contact_record.phone_e164 = Some(new_phone.e164.to_string());
                    contact_record.wa_id = new_phone.wa_id.clone();
                }
            }
            // The old BSUID is `system.previous_user_id`; the message's `from_user_id` may
            // already carry the new one, so it is the old one only when it differs.
            Some("user_changed_user_id") => {
                if let Some(new_user) = s(body, &["user_id"]).or_else(|| s(body, &["new_user_id"]))
                {
                    let new_bsuid =
                        Bsuid::parse(&new_user).map_err(|e| format!("identity: {e}"))?;
                    let previous = match s(body, &["previous_user_id"]) {
                        Some(p) => Some(Bsuid::parse(&p).map_err(|e| format!("identity: {e}"))?),
                        None => who.bsuid.clone().filter(|b| b != &new_bsuid),
                    };
                    let new_key = new_bsuid.identity_key();
                    match previous {
                        Some(old) => {
                            let old = old.identity_key();
                            keys.retain(|k| k != &old && k != &new_key);
                            identity = IdentityOp::Move {
                                from: old,
                                to: new_key,
                                also: keys,
                            };
                        }
                        None => {
                            if !keys.contains(&new_key) {
                                keys.push(new_key);
                            }
                            identity = IdentityOp::Resolve(keys);
                        }
                    }
                    contact_record.bsuid = Some(new_bsuid.to_string());
                }
            }
            _ => {}
        }
    }
    let mut records = vec![("activity", Record::Activity(activity))];
    if kind == "text" {
        let text = s(body, &["body"]).unwrap_or_default();
        let change = keywords.classify(&text).map(|m| match m {
            KeywordMatch::OptOut(k) => (ConsentStatus::OptOut, k),
            KeywordMatch::OptIn(k) => (ConsentStatus::OptIn, k),
        });
        if let Some((status, keyword)) = change {
            records.push((
                "consent",
                Record::Consent(ConsentRecord {
                    v: Default::default(),
                    event_id: event.key.clone(),
                    contact_id: String::new(),
                    status,
                    category: "all".into(),
                    source: ConsentSource::Keyword,
                    evidence: json!({"keyword": keyword, "message_id": message_id, "text": text}),
                    at: ts_ms(item).or(Some(now)),
                }),
            ));
        }
    }
    Ok(Plan {
        identity,
        contact: Some(contact_record),
        upsert_contact: true,
        records,
        status: None,
    })
}

/// Fills the contact id into a record built before identity resolution.
pub fn set_contact(record: &mut Record, contact_id: &str) {
    match record {
        Record::Contact(c) => c.id = contact_id.to_string(),
        Record::Activity(a) => a.contact_id = contact_id.to_string(),
        Record::Consent(c) => c.contact_id = contact_id.to_string(),
        _ => {}
    }
}
