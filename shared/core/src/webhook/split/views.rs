//! Borrowed views of the envelope: structs of `Cow<str>` / `&RawValue` pointing into the body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::webhook::model;

/// A string or a number (Meta is inconsistent), borrowed when the JSON string has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

pub(super) fn text<'b>(t: &'b Option<Text<'_>>) -> Option<&'b str> {
    t.as_ref().map(Text::as_str).filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
pub(super) struct EnvelopeB<'a> {
    #[serde(borrow, default)]
    pub(super) object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) entry: Option<Vec<EntryB<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct EntryB<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Text<'a>>,
    #[serde(default, deserialize_with = "model::lenient::int")]
    pub(super) time: Option<i64>,
    #[serde(borrow, default)]
    pub(super) changes: Option<Vec<ChangeB<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct ChangeB<'a> {
    #[serde(borrow, default)]
    pub(super) field: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) value: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
pub(super) struct MetadataB<'a> {
    #[serde(borrow, default)]
    pub(super) display_phone_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) phone_number_id: Option<Text<'a>>,
}

/// The members of a `messages` / `user_preferences` / `smb_message_echoes` / `calls` value; `extra` records any member we do
/// not know, so the value can be kept whole.
#[derive(Default)]
pub(super) struct ValueB<'a> {
    pub(super) metadata: Option<MetadataB<'a>>,
    pub(super) contacts: Option<Vec<&'a RawValue>>,
    pub(super) messages: Option<Vec<&'a RawValue>>,
    pub(super) statuses: Option<Vec<&'a RawValue>>,
    pub(super) errors: Option<Vec<&'a RawValue>>,
    pub(super) user_preferences: Option<Vec<&'a RawValue>>,
    pub(super) message_echoes: Option<Vec<&'a RawValue>>,
    pub(super) calls: Option<Vec<&'a RawValue>>,
    pub(super) extra: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueB<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ValueB<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a change value object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = ValueB::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "metadata" => v.metadata = map.next_value()?,
                        "contacts" => v.contacts = map.next_value()?,
                        "messages" => v.messages = map.next_value()?,
                        "statuses" => v.statuses = map.next_value()?,
                        "errors" => v.errors = map.next_value()?,
                        "user_preferences" => v.user_preferences = map.next_value()?,
                        "message_echoes" => v.message_echoes = map.next_value()?,
                        "calls" => v.calls = map.next_value()?,
                        "messaging_product" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            v.extra = true;
                        }
                    }
                }
                Ok(v)
            }
        }
        d.deserialize_map(V)
    }
}

/// What the splitter needs of a message.
#[derive(Deserialize)]
pub(super) struct MessageHead<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    pub(super) message_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) from: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) from_user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) to: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) to_user_id: Option<Text<'a>>,
}

/// What the splitter needs of a `calls[]` item or a call's `statuses[]` item.
#[derive(Deserialize)]
pub(super) struct CallHead<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) event: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) status: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) direction: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) from: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) to: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) recipient_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct StatusHead<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) recipient_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) recipient_user_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ContactHead<'a> {
    #[serde(borrow, default)]
    pub(super) wa_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) user_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct PreferenceHead<'a> {
    #[serde(borrow, default)]
    pub(super) wa_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) category: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) value: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) timestamp: Option<Text<'a>>,
}

/// Template, quality and account updates.
#[derive(Deserialize)]
pub(super) struct FieldHead<'a> {
    #[serde(borrow, default)]
    pub(super) event: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) message_template_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) display_phone_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) phone_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) new_quality_score: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) new_category: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) correct_category: Option<Text<'a>>,
}

pub(super) fn head(value: &RawValue) -> Option<FieldHead<'_>> {
    serde_json::from_str(value.get()).ok()
}

/// The `contacts[]` item describing this wa_id / BSUID. An item that names no one (a username
/// user's message may carry no `from` nor `from_user_id`) gets the change's contact when there
/// is exactly one: the only person it can be.
pub(super) fn find_contact<'r>(
    contacts: &[(ContactHead<'_>, &'r RawValue)],
    wa_id: Option<&str>,
    user_id: Option<&str>,
) -> Option<&'r RawValue> {
    if wa_id.is_none() && user_id.is_none() {
        return match contacts {
            [(_, raw)] => Some(*raw),
            _ => None,
        };
    }
    contacts
        .iter()
        .find(|(c, _)| {
            (wa_id.is_some() && text(&c.wa_id) == wa_id)
                || (user_id.is_some() && text(&c.user_id) == user_id)
        })
        .map(|(_, raw)| *raw)
}
