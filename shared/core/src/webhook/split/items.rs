//! One change of one entry into its events, by field: messages (messages, statuses, errors),
//! user preferences, template (status, quality, category, components), quality and account
//! updates, and anything else kept whole.

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::views::*;
use super::MAX_KEY_LEN;
use crate::event::{Event, EventKind, EVENT_VERSION};
use crate::webhook::model::{self, MessageType};

pub(super) struct Ctx<'e, 'a> {
    pub(super) waba_id: &'a str,
    pub(super) entry_time: Option<i64>,
    pub(super) field: &'a str,
    pub(super) received_at_ms: i64,
    pub(super) phone_number_id: Option<String>,
    pub(super) display_phone_number: Option<String>,
    pub(super) out: &'e mut Vec<Event>,
}

impl Ctx<'_, '_> {
    pub(super) fn split_change(&mut self, value: &RawValue) {
        match self.field {
            "messages" | "user_preferences" | "smb_message_echoes" | "calls" => {
                self.split_items(value)
            }
            "message_template_status_update" => {
                let key = head(value).and_then(|h| {
                    Some(format!(
                        "t:{}:{}:{}",
                        text(&h.message_template_id)?,
                        text(&h.event)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::TemplateStatus, key, None, value);
            }
            // The template's other updates share its event kind; `field` tells them apart.
            "message_template_quality_update"
            | "template_category_update"
            | "message_template_components_update" => {
                let key = head(value).and_then(|h| {
                    let what = match self.field {
                        "message_template_quality_update" => {
                            format!("q:{}", text(&h.new_quality_score)?)
                        }
                        "template_category_update" => format!(
                            "c:{}:{}",
                            text(&h.new_category).unwrap_or("-"),
                            text(&h.correct_category).unwrap_or("-")
                        ),
                        _ => "e".to_string(),
                    };
                    Some(format!(
                        "t:{}:{what}:{}",
                        text(&h.message_template_id)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::TemplateStatus, key, None, value);
            }
            "phone_number_quality_update" => {
                let key = head(value).and_then(|h| {
                    Some(format!(
                        "q:{}:{}:{}:{}",
                        self.waba_id,
                        text(&h.display_phone_number)?,
                        text(&h.event)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::QualityUpdate, key, None, value);
            }
            "account_update" => {
                let key = head(value).and_then(|h| {
                    Some(format!(
                        "a:{}:{}:{}:{}",
                        self.waba_id,
                        text(&h.phone_number).unwrap_or("-"),
                        text(&h.event)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::AccountUpdate, key, None, value);
            }
            _ => self.push(EventKind::Unknown, None, None, value),
        }
    }

    /// `messages` and `user_preferences` values: one event per item.
    fn split_items(&mut self, value: &RawValue) {
        let Ok(v) = serde_json::from_str::<ValueB<'_>>(value.get()) else {
            // Not the shape we know: keep it whole.
            self.push(EventKind::Unknown, None, None, value);
            return;
        };
        if let Some(m) = &v.metadata {
            self.phone_number_id = text(&m.phone_number_id).map(str::to_owned);
            self.display_phone_number = text(&m.display_phone_number).map(str::to_owned);
        }
        let contacts: Vec<(ContactHead<'_>, &RawValue)> = v
            .contacts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|raw| serde_json::from_str(raw.get()).ok().map(|h| (h, *raw)))
            .collect();
        let mut produced = 0usize;
        let mut foreign = v.extra;
        match self.field {
            "messages" => {
                for raw in v.messages.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push_message(raw, &contacts);
                }
                for raw in v.statuses.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push_status(raw, &contacts);
                }
                for raw in v.errors.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push(EventKind::Unknown, None, None, raw);
                }
                foreign |=
                    v.user_preferences.is_some() || v.message_echoes.is_some() || v.calls.is_some();
            }
            "smb_message_echoes" => {
                for raw in v.message_echoes.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push_echo(raw, &contacts);
                }
                for raw in v.errors.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push(EventKind::Unknown, None, None, raw);
                }
                foreign |= v.messages.is_some()
                    || v.statuses.is_some()
                    || v.user_preferences.is_some()
                    || v.calls.is_some();
            }
            "calls" => {
                // Connect / terminate items, then the statuses of business-initiated calls:
                // one event each, whatever order Meta sends them in.
                for raw in v.calls.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push_call(raw, &contacts);
                }
                for raw in v.statuses.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push_call(raw, &contacts);
                }
                // A failed call's errors travel with its terminate item (kept in the change's
                // raw errors, each an unknown event so nothing is dropped).
                for raw in v.errors.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push(EventKind::Unknown, None, None, raw);
                }
                foreign |= v.messages.is_some()
                    || v.user_preferences.is_some()
                    || v.message_echoes.is_some();
            }
            _ => {
                for raw in v.user_preferences.as_deref().unwrap_or_default() {
                    produced += 1;
                    self.push_preference(raw, &contacts);
                }
                foreign |= v.messages.is_some()
                    || v.statuses.is_some()
                    || v.errors.is_some()
                    || v.message_echoes.is_some()
                    || v.calls.is_some();
            }
        }
        if foreign || produced == 0 {
            self.push(EventKind::Unknown, None, None, value);
        }
    }

    fn push_message(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<MessageHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let message_type = match h.message_type.as_deref() {
            Some(t) => MessageType::from_name(t),
            // No `type` (the spec's location example): infer it from the content member.
            None => serde_json::from_str::<model::Message>(raw.get())
                .map(|m| m.kind())
                .unwrap_or(MessageType::Unknown),
        };
        let kind = if message_type == MessageType::Unknown {
            EventKind::Unknown
        } else {
            EventKind::Message
        };
        let key = text(&h.id).map(|id| format!("m:{id}"));
        let contact = find_contact(contacts, text(&h.from), text(&h.from_user_id));
        self.push(kind, key, contact, raw);
    }

    /// A `message_echoes[]` item: keyed like a message (`m:{wamid}`, the business's own
    /// message id), on the contact of the user written to.
    fn push_echo(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<MessageHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let kind = match h.message_type.as_deref().map(MessageType::from_name) {
            Some(MessageType::Unknown) => EventKind::Unknown,
            _ => EventKind::Echo,
        };
        let key = text(&h.id).map(|id| format!("m:{id}"));
        let user = self.echo_user(text(&h.from), text(&h.to));
        let contact = find_contact(contacts, user, text(&h.to_user_id));
        self.push(kind, key, contact, raw);
    }

    /// The user of an echo or a call without a direction ([`model::user_end`]).
    fn echo_user<'s>(&self, from: Option<&'s str>, to: Option<&'s str>) -> Option<&'s str> {
        model::user_end(self.display_phone_number.as_deref(), from, to)
    }

    /// A call's `calls[]` or `statuses[]` item: keyed per call and step (`c:{wacid}:connect`,
    /// `c:{wacid}:terminate`, `c:{wacid}:status:{STATUS}`), on the contact of the user.
    fn push_call(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<CallHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let key = match (text(&h.id), text(&h.event), text(&h.status)) {
            (Some(id), Some(event), _) => Some(format!("c:{id}:{event}")),
            (Some(id), None, Some(status)) => Some(format!("c:{id}:status:{status}")),
            _ => None,
        };
        let user = match text(&h.recipient_id) {
            Some(r) => Some(r),
            None => match text(&h.direction).map(str::to_ascii_uppercase).as_deref() {
                Some("USER_INITIATED") => text(&h.from),
                Some("BUSINESS_INITIATED") => text(&h.to),
                _ => self.echo_user(text(&h.from), text(&h.to)),
            },
        };
        let contact = find_contact(contacts, user, None);
        self.push(EventKind::Call, key, contact, raw);
    }

    fn push_status(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<StatusHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let key = match (text(&h.id), h.status.as_deref().filter(|s| !s.is_empty())) {
            (Some(id), Some(status)) => Some(format!("s:{id}:{status}")),
            _ => None,
        };
        let contact = find_contact(contacts, text(&h.recipient_id), text(&h.recipient_user_id));
        self.push(EventKind::Status, key, contact, raw);
    }

    fn push_preference(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<PreferenceHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let who = text(&h.wa_id).or(text(&h.user_id));
        let key = (|| {
            Some(format!(
                "p:{}:{}:{}:{}",
                who?,
                text(&h.category)?,
                text(&h.value)?,
                text(&h.timestamp)?
            ))
        })();
        let contact = find_contact(contacts, text(&h.wa_id), text(&h.user_id));
        self.push(EventKind::UserPreference, key, contact, raw);
    }

    fn push(
        &mut self,
        kind: EventKind,
        natural_key: Option<String>,
        contact: Option<&RawValue>,
        raw: &RawValue,
    ) {
        let key = match natural_key {
            Some(k) if k.len() <= MAX_KEY_LEN => k,
            Some(k) => format!("x:{}", hex::encode(Sha256::digest(k.as_bytes()))),
            None => self.hash_key(raw),
        };
        self.out.push(Event {
            v: EVENT_VERSION,
            key,
            kind,
            field: self.field.to_owned(),
            waba_id: self.waba_id.to_owned(),
            entry_time: self.entry_time,
            phone_number_id: self.phone_number_id.clone(),
            display_phone_number: self.display_phone_number.clone(),
            contact: contact.map(RawValue::to_owned),
            item: raw.to_owned(),
            received_at: self.received_at_ms,
        });
    }

    fn hash_key(&self, raw: &RawValue) -> String {
        let mut h = Sha256::new();
        h.update(self.waba_id.as_bytes());
        h.update([0]);
        h.update(self.entry_time.unwrap_or(0).to_be_bytes());
        h.update(raw.get().as_bytes());
        let digest = h.finalize();
        let field: String = self.field.chars().take(64).collect();
        format!("h:{field}:{}", hex::encode(&digest[..16]))
    }
}
