//! `messages[]`: an inbound message becomes an activity, updates the contact (profile name,
//! username, ad referral, call permission), may change the person's keys (`system` number and
//! user id changes) and, for a consent keyword, a consent record. An echo (`message_echoes[]`)
//! is the business's outbound message with agent `whatsapp_business_app`; an edit or revoke
//! (of either) becomes a `message_change` record instead of an activity (see `change`).

use serde_json::json;

use crate::calls::{CallPermission, BUSINESS_APP_AGENT};
use crate::event::{Event, EventKind};
use crate::identity::{Bsuid, IdentityKey, Phone};
use crate::mapping::{ConsentKeywords, KeywordMatch};
use crate::records::{
    ActivityRecord, ConsentRecord, ConsentSource, ConsentStatus, ContactRecord, Direction,
    MediaRef, Record, Referral, StatusError,
};
use crate::webhook::model::{
    Contact, Item, Media, Message, MessageContent, MessageType, System, SystemType, WebhookError,
};

use super::{ms, nonempty, IdentityOp, Plan, PlanError, Who};

pub(super) fn plan(
    event: &Event,
    message: Message,
    contact: &Contact,
    keywords: &ConsentKeywords,
) -> Result<Plan, PlanError> {
    let now = event.received_at;
    let echo = event.kind == EventKind::Echo;
    let who = if echo {
        let user = super::change::echo_user(event, &message);
        Who::of(user, message.to_user_id.as_deref(), contact)?
    } else {
        Who::of(
            message.from.as_deref(),
            message.from_user_id.as_deref(),
            contact,
        )?
    };
    let keys = who.keys();
    if keys.is_empty() {
        return Err(PlanError::Missing(if echo {
            "echo without a user: no to, to_user_id nor single contacts[] entry"
        } else {
            "message without a sender: no from, from_user_id nor single contacts[] entry"
        }));
    }
    let message_id = nonempty(message.id.as_deref()).map(str::to_string);
    let at = ms(message.timestamp);
    let mut activity = ActivityRecord {
        event_id: event.key.clone(),
        kind: kind_name(&message),
        direction: Some(if echo {
            Direction::Outbound
        } else {
            Direction::Inbound
        }),
        agent: echo.then(|| BUSINESS_APP_AGENT.to_string()),
        message_id: message_id.clone(),
        at,
        context: message
            .context
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
        group_id: nonempty(message.group_id.as_deref()).map(str::to_string),
        ..Default::default()
    };
    describe(&message.content(), &mut activity);
    if message.kind() == MessageType::Unsupported {
        activity.errors = message.errors.iter().map(status_error).collect();
        activity.unsupported_type = message
            .unsupported
            .as_ref()
            .and_then(|u| nonempty(u.unsupported_type.as_deref()))
            .map(str::to_string);
    }
    let profile = contact.profile.as_ref();
    let mut contact_record = who.contact(
        profile.and_then(|p| p.name.clone()),
        profile.and_then(|p| p.username.clone()),
        now,
    );
    contact_record.referral = message.referral.as_ref().map(|r| Referral {
        source_type: r.source_type.clone(),
        source_id: r.source_id.clone(),
        source_url: r.source_url.clone(),
        headline: r.headline.clone(),
        ctwa_clid: r.ctwa_clid.clone(),
    });
    let identity = match &message.system {
        Some(system) if message.kind() == MessageType::System => {
            key_change(&who, keys, system, &mut contact_record)?
        }
        _ => IdentityOp::Resolve(keys),
    };
    if let MessageContent::Interactive(i) = message.content() {
        contact_record.call_permission = i.call_permission_reply.as_ref().map(|r| CallPermission {
            response: r.response.clone().unwrap_or_default(),
            permanent: r.is_permanent,
            expires_at: ms(r.expiration_timestamp),
            at,
        });
    }
    let mut records = match super::change::change_record(event, &message, echo)? {
        Some(change) => vec![("message_change", Record::MessageChange(change))],
        None => vec![("activity", Record::Activity(activity))],
    };
    // Consent keywords are the user's word: not the business's own echoed text.
    if let (MessageContent::Text(text), false) = (message.content(), echo) {
        if let Some(consent) = keyword_consent(event, keywords, &text.body, &message_id, at) {
            records.push(("consent", Record::Consent(consent)));
        }
    }
    Ok(Plan {
        identity,
        contact: Some(contact_record),
        upsert_contact: true,
        records,
        status: None,
        item: if echo {
            Item::Echo(Box::new(message))
        } else {
            Item::Message(Box::new(message))
        },
    })
}

/// Meta's error as the activity's.
fn status_error(e: &WebhookError) -> StatusError {
    StatusError {
        code: e.code,
        title: e.title.clone(),
        message: e.message.clone(),
        details: e.error_data.as_ref().and_then(|d| d.details.clone()),
    }
}

/// The activity's `kind`: the message type's name.
pub(super) fn kind_name(message: &Message) -> String {
    serde_json::to_value(message.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The activity's text, payload, media and context from the message's content.
pub(super) fn describe(content: &MessageContent<'_>, activity: &mut ActivityRecord) {
    let media = |m: &Media, activity: &mut ActivityRecord| {
        activity.media =
            m.id.clone()
                .map(|id| MediaRef {
                    id,
                    mime_type: m.mime_type.clone(),
                    sha256: m.sha256.clone(),
                    filename: m.filename.clone(),
                    ..Default::default()
                })
                .into_iter()
                .collect();
        activity.text = m.caption.clone();
    };
    match content {
        MessageContent::Text(t) => activity.text = Some(t.body.clone()),
        MessageContent::Image(m)
        | MessageContent::Video(m)
        | MessageContent::Document(m)
        | MessageContent::Sticker(m)
        | MessageContent::Audio(m) => media(m, activity),
        MessageContent::Location(l) => {
            activity.text = l.name.clone().or_else(|| l.address.clone()).or_else(|| {
                Some(format!(
                    "{},{}",
                    l.latitude.map_or("null".into(), |v| v.to_string()),
                    l.longitude.map_or("null".into(), |v| v.to_string())
                ))
            })
        }
        MessageContent::Contacts(cards) => {
            let names: Vec<String> = cards
                .iter()
                .filter_map(|c| c.name.as_ref()?.formatted_name.clone())
                .filter(|n| !n.is_empty())
                .collect();
            activity.text = (!names.is_empty()).then(|| names.join(", "));
        }
        MessageContent::Interactive(i) => {
            if let Some(r) = &i.button_reply {
                activity.text = r.title.clone();
                activity.payload = r.id.clone();
            }
            if let Some(r) = &i.list_reply {
                activity.text = r.title.clone();
                activity.payload = r.id.clone();
            }
            if let Some(r) = &i.nfm_reply {
                activity.text = r.body.clone();
                activity.payload = r.response_json.clone();
            }
            if let Some(r) = &i.call_permission_reply {
                activity.text = r.response.as_ref().map(|v| format!("call permission: {v}"));
                activity.payload = r.response.clone();
            }
        }
        MessageContent::Button(b) => {
            activity.text = b.text.clone();
            activity.payload = b.payload.clone();
        }
        MessageContent::Order(o) => {
            activity.text = Some(format!("order of {} item(s)", o.product_items.len()));
            activity.payload = o.catalog_id.clone();
        }
        MessageContent::Reaction(r) => {
            activity.text = r.emoji.clone();
            activity.context = Some(json!({ "id": r.message_id }));
        }
        MessageContent::System(s) => activity.text = s.body.clone(),
        MessageContent::RequestWelcome
        | MessageContent::Unsupported
        | MessageContent::Edit(_)
        | MessageContent::Revoke(_)
        | MessageContent::Unknown => {}
    }
}

/// A `system` message that changes the person's keys: the identity operation, with the
/// contact record updated to the new number or BSUID.
fn key_change(
    who: &Who,
    mut keys: Vec<IdentityKey>,
    system: &System,
    contact: &mut ContactRecord,
) -> Result<IdentityOp, PlanError> {
    match system.system_type {
        // Meta's current name is `user_changed_number`; `customer_changed_number` is the older
        // one. A number change also regenerates the BSUID (`previous_user_id` → `user_id`):
        // the new one is linked to the same contact.
        Some(SystemType::CustomerChangedNumber | SystemType::UserChangedNumber) => {
            let Some(new_wa) =
                nonempty(system.wa_id.as_deref()).or(nonempty(system.new_wa_id.as_deref()))
            else {
                return Ok(IdentityOp::Resolve(keys));
            };
            let new_phone = Phone::from_wa_id(new_wa)?;
            let old = who
                .phone
                .as_ref()
                .ok_or(PlanError::Missing("user_changed_number without from"))?
                .identity_key();
            keys.retain(|k| k != &old);
            if let Some(new_user) = nonempty(system.user_id.as_deref()) {
                let new_bsuid = Bsuid::parse(new_user)?;
                if !keys.contains(&new_bsuid.identity_key()) {
                    keys.push(new_bsuid.identity_key());
                }
                contact.bsuid = Some(new_bsuid.to_string());
            }
            contact.phone_e164 = Some(new_phone.e164.to_string());
            contact.wa_id = new_phone.wa_id.clone();
            Ok(IdentityOp::Move {
                from: old,
                to: new_phone.identity_key(),
                also: keys,
            })
        }
        // The old BSUID is `system.previous_user_id`; the message's `from_user_id` may already
        // carry the new one, so it is the old one only when it differs.
        Some(SystemType::UserChangedUserId) => {
            let Some(new_user) = nonempty(system.user_id.as_deref()) else {
                return Ok(IdentityOp::Resolve(keys));
            };
            let new_bsuid = Bsuid::parse(new_user)?;
            let previous = match nonempty(system.previous_user_id.as_deref()) {
                Some(p) => Some(Bsuid::parse(p)?),
                None => who.bsuid.clone().filter(|b| b != &new_bsuid),
            };
            let new_key = new_bsuid.identity_key();
            contact.bsuid = Some(new_bsuid.to_string());
            Ok(match previous {
                Some(old) => {
                    let old = old.identity_key();
                    keys.retain(|k| k != &old && k != &new_key);
                    IdentityOp::Move {
                        from: old,
                        to: new_key,
                        also: keys,
                    }
                }
                None => {
                    if !keys.contains(&new_key) {
                        keys.push(new_key);
                    }
                    IdentityOp::Resolve(keys)
                }
            })
        }
        _ => Ok(IdentityOp::Resolve(keys)),
    }
}

/// A consent keyword (STOP, BAJA, START, …) in a text message as a consent record.
fn keyword_consent(
    event: &Event,
    keywords: &ConsentKeywords,
    text: &str,
    message_id: &Option<String>,
    at: Option<i64>,
) -> Option<ConsentRecord> {
    let (status, keyword) = match keywords.classify(text)? {
        KeywordMatch::OptOut(k) => (ConsentStatus::OptOut, k),
        KeywordMatch::OptIn(k) => (ConsentStatus::OptIn, k),
    };
    Some(ConsentRecord {
        v: Default::default(),
        event_id: event.key.clone(),
        contact_id: String::new(),
        status,
        category: "all".into(),
        source: ConsentSource::Keyword,
        evidence: json!({"keyword": keyword, "message_id": message_id, "text": text}),
        at: at.or(Some(event.received_at)),
    })
}
