//! `POST /sends`: the body as received, and the validated request it becomes.
//!
//! ```json
//! {"to": "+52 1 55 1234 5678" | "recipient": "MX.abc123", "template": "order_confirmation",
//!  "language": "es_MX", "category": "UTILITY", "parameters": ["Ana", "1042"],
//!  "components": [{"type": "header", "parameters": [...]}]}
//! ```
//! or a free-form message (only within the 24 h window): `{"to": "...", "text": "Hola"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::consent::ContactRef;
use crate::identity::{Bsuid, E164};
use crate::sends::error::RequestError;
use crate::sends::graph::{self, Address, Content, Language, OutboundMessage};

/// Largest `POST /sends` body, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_PARAMETERS: usize = 100;
const MAX_PARAMETER_CHARS: usize = 1024;
const MAX_COMPONENTS: usize = 20;
const MAX_TEXT_CHARS: usize = 4096;

/// A `POST /sends` body as received (unvalidated); [`SendRequest::try_from`] validates it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequestBody {
    to: Option<String>,
    recipient: Option<String>,
    template: Option<String>,
    language: Option<String>,
    category: Option<String>,
    parameters: Option<Vec<Value>>,
    components: Option<Vec<Value>>,
    text: Option<String>,
}

/// Meta's template categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

impl Category {
    pub fn parse(s: &str) -> Option<Category> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MARKETING" => Some(Category::Marketing),
            "UTILITY" => Some(Category::Utility),
            "AUTHENTICATION" => Some(Category::Authentication),
            _ => None,
        }
    }
}

/// What a send carries, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SendKind {
    Template {
        name: String,
        language: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<Category>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parameters: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        components: Vec<Value>,
    },
    Text {
        body: String,
    },
}

/// A validated send request (also its stored form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    /// E.164 phone, when addressed by phone (wins over `recipient`, Meta's rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<E164>,
    /// BSUID, when addressed by business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Bsuid>,
    /// The contact key consent and the window are kept under.
    pub contact: String,
    #[serde(flatten)]
    pub kind: SendKind,
}

fn bad(code: &'static str, message: impl Into<String>) -> RequestError {
    RequestError::invalid(code, message)
}

fn bsuid(recipient: &str) -> Result<Bsuid, RequestError> {
    Bsuid::parse(recipient).map_err(|_| {
        bad(
            "invalid_recipient",
            "`recipient` is not a BSUID (CC.<alphanumerics>)",
        )
    })
}

impl TryFrom<SendRequestBody> for SendRequest {
    type Error = RequestError;

    /// Every refusal names the field and the rule.
    fn try_from(body: SendRequestBody) -> Result<SendRequest, RequestError> {
        // Recipient: `to` (phone, any format) wins over `recipient` (BSUID).
        let (to, recipient, contact) = match (non_empty(&body.to), non_empty(&body.recipient)) {
            (None, None) => {
                return Err(bad(
                    "missing_recipient",
                    "give `to` (a phone number) or `recipient` (a BSUID)",
                ))
            }
            (Some(to), recipient) => {
                let phone = ContactRef::parse_phone(&to).ok_or_else(|| {
                    bad("invalid_recipient", "`to` is not a valid phone number (use the international format, e.g. +5215512345678)")
                })?;
                let recipient = recipient.map(|r| bsuid(&r)).transpose()?;
                let contact = ContactRef::phone(&phone).key;
                (Some(phone.e164), recipient, contact)
            }
            (None, Some(r)) => {
                let b = bsuid(&r)?;
                let contact = ContactRef::bsuid(&b).key;
                (None, Some(b), contact)
            }
        };

        let kind = match (non_empty(&body.template), non_empty(&body.text)) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "template_and_text",
                    "give either `template` or `text`, not both",
                ))
            }
            (None, Some(t)) => text(t, &body)?,
            (None, None) => {
                return Err(bad(
                    "missing_template",
                    "`template` (the template name) is required",
                ))
            }
            (Some(name), None) => template(name, body)?,
        };

        Ok(SendRequest {
            to,
            recipient,
            contact,
            kind,
        })
    }
}

/// A trimmed string that is not empty.
fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A free-form `text` send: no template fields, at most 4,096 characters.
fn text(text: String, body: &SendRequestBody) -> Result<SendKind, RequestError> {
    if body.language.is_some()
        || body.category.is_some()
        || body.parameters.is_some()
        || body.components.is_some()
    {
        return Err(bad(
            "text_with_template_fields",
            "a `text` message takes no language, category, parameters or components",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(bad(
            "text_too_long",
            format!("`text` is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(SendKind::Text { body: text })
}

/// The `template` of a send: name, language, category, parameters and components checked.
fn template(name: String, body: SendRequestBody) -> Result<SendKind, RequestError> {
    if name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad(
            "invalid_template",
            "`template` must be a template name: lower-case letters, digits and underscores",
        ));
    }
    // Without a language the sends service picks one by the recipient's country
    // (`sends::language`); empty until then.
    let language = non_empty(&body.language).unwrap_or_default();
    if !language.is_empty() && !valid_language(&language) {
        return Err(bad(
            "invalid_language",
            "`language` must be a language code such as es, es_MX or pt_BR",
        ));
    }
    let category = match non_empty(&body.category) {
        None => None,
        Some(c) => Some(Category::parse(&c).ok_or_else(|| {
            bad(
                "invalid_category",
                "`category` must be MARKETING, UTILITY or AUTHENTICATION",
            )
        })?),
    };
    let raw = body.parameters.unwrap_or_default();
    if raw.len() > MAX_PARAMETERS {
        return Err(bad(
            "too_many_parameters",
            format!("at most {MAX_PARAMETERS} parameters"),
        ));
    }
    let mut parameters = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let text = match p {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(bad(
                    "invalid_parameters",
                    format!("parameters[{i}] must be a string"),
                ))
            }
        };
        if text.trim().is_empty() || text.chars().count() > MAX_PARAMETER_CHARS {
            return Err(bad(
                "invalid_parameters",
                format!("parameters[{i}] must be 1 to {MAX_PARAMETER_CHARS} characters"),
            ));
        }
        parameters.push(text);
    }
    let components = body.components.unwrap_or_default();
    if components.len() > MAX_COMPONENTS {
        return Err(bad(
            "invalid_components",
            format!("at most {MAX_COMPONENTS} components"),
        ));
    }
    for (i, c) in components.iter().enumerate() {
        let kind = c.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("header" | "body" | "button")) {
            return Err(bad(
                "invalid_components",
                format!("components[{i}].type must be header, body or button"),
            ));
        }
        if kind == Some("body") && !parameters.is_empty() {
            return Err(bad(
                "invalid_components",
                "give body parameters either in `parameters` or in a body component, not both",
            ));
        }
        if kind == Some("button") && (c.get("sub_type").is_none() || c.get("index").is_none()) {
            return Err(bad(
                "invalid_components",
                format!("components[{i}] (a button) needs sub_type and index"),
            ));
        }
    }
    Ok(SendKind::Template {
        name,
        language,
        category,
        parameters,
        components,
    })
}

impl SendRequest {
    /// Validates a `POST /sends` body. Every refusal names the field and the rule.
    pub fn parse(body: &[u8]) -> Result<SendRequest, RequestError> {
        RequestError::check_size(body, MAX_BODY_BYTES)?;
        let body: SendRequestBody = serde_json::from_slice(body).map_err(|e| {
            bad(
                "invalid_json",
                format!("body is not a valid send request: {e}"),
            )
        })?;
        SendRequest::try_from(body)
    }

    /// SHA-256 of the canonical form: equal for equal requests however the JSON was spelled.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(
            serde_json::to_vec(self).expect("request serialises"),
        ))
    }

    pub fn contact_ref(&self) -> ContactRef {
        ContactRef {
            key: self.contact.clone(),
            display: match (&self.to, &self.recipient) {
                (Some(to), _) => to.to_string(),
                (None, Some(r)) => r.to_string(),
                (None, None) => String::new(),
            },
        }
    }

    /// Body parameters the request carries (in `parameters` or in a body component).
    pub fn body_parameter_count(&self) -> usize {
        match &self.kind {
            SendKind::Template {
                parameters,
                components,
                ..
            } => {
                if !parameters.is_empty() {
                    return parameters.len();
                }
                components
                    .iter()
                    .filter(|c| c.get("type").and_then(Value::as_str) == Some("body"))
                    .map(|c| {
                        c.get("parameters")
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len)
                    })
                    .sum()
            }
            SendKind::Text { .. } => 0,
        }
    }

    /// The Graph API message for send `id`.
    pub fn to_outbound(&self, id: &str) -> OutboundMessage {
        let address = match (&self.to, &self.recipient) {
            (Some(to), _) => Address::Phone(to.to_string()),
            (None, Some(r)) => Address::Bsuid(r.to_string()),
            (None, None) => Address::Phone(String::new()),
        };
        let content = match &self.kind {
            SendKind::Template {
                name,
                language,
                parameters,
                components,
                ..
            } => {
                let mut components = components.clone();
                if !parameters.is_empty() {
                    let params: Vec<Value> = parameters
                        .iter()
                        .map(|p| serde_json::json!({"type": "text", "text": p}))
                        .collect();
                    components.push(serde_json::json!({"type": "body", "parameters": params}));
                }
                Content::Template(graph::Template {
                    name: name.clone(),
                    language: Language::new(language.clone()),
                    components,
                })
            }
            SendKind::Text { body } => Content::Text(graph::Text {
                body: body.clone(),
                preview_url: None,
            }),
        };
        OutboundMessage {
            address,
            content,
            callback_data: id.to_string(),
        }
    }
}

pub(crate) fn valid_language(s: &str) -> bool {
    let (lang, region) = s.split_once('_').map_or((s, None), |(l, r)| (l, Some(r)));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        SendRequest::parse(body.as_bytes()).unwrap_err().code()
    }

    #[test]
    fn valid_template_request() {
        let r = SendRequest::parse(
            br#"{"to": "+52 1 55 1234 5678", "template": "order_confirmation", "language": "es_MX",
            "category": "utility", "parameters": ["Ana", 1042]}"#,
        )
        .unwrap();
        assert_eq!(r.to.as_ref().map(|t| t.as_str()), Some("+525512345678"));
        assert_eq!(r.body_parameter_count(), 2);
        let v = r.to_outbound("snd_1").to_json();
        assert_eq!(v["to"], "525512345678");
        assert_eq!(
            v["template"]["components"][0]["parameters"][1]["text"],
            "1042"
        );
        assert_eq!(v["biz_opaque_callback_data"], "snd_1");
        // Same request, other spelling: same hash.
        let r2 = SendRequest::parse(
            br#"{"parameters": ["Ana", "1042"], "category": "UTILITY", "language": "es_MX",
            "template": "order_confirmation", "to": "5215512345678"}"#,
        )
        .unwrap();
        assert_eq!(r.hash(), r2.hash());
    }

    #[test]
    fn bsuid_and_to_wins() {
        let r =
            SendRequest::parse(br#"{"recipient": "MX.abc123", "template": "t", "language": "es"}"#)
                .unwrap();
        assert_eq!(r.contact, "bsuid:MX.abc123");
        assert!(matches!(r.to_outbound("x").address, Address::Bsuid(_)));
        let r = SendRequest::parse(br#"{"to": "+5511987654321", "recipient": "BR.abc", "template": "t", "language": "pt_BR"}"#).unwrap();
        assert!(matches!(r.to_outbound("x").address, Address::Phone(_)));
    }

    #[test]
    fn refusals_name_the_problem() {
        assert_eq!(code("{"), "invalid_json");
        assert_eq!(
            code(r#"{"template": "t", "language": "es"}"#),
            "missing_recipient"
        );
        assert_eq!(
            code(r#"{"to": "hola", "template": "t", "language": "es"}"#),
            "invalid_recipient"
        );
        assert_eq!(
            code(r#"{"recipient": "abc", "template": "t", "language": "es"}"#),
            "invalid_recipient"
        );
        assert_eq!(
            code(r#"{"to": "+525512345678", "language": "es"}"#),
            "missing_template"
        );
        // No language: the sends service picks one by country (`sends::language`).
        let unset = SendRequest::parse(br#"{"to": "+525512345678", "template": "t"}"#).unwrap();
        assert!(
            matches!(&unset.kind, SendKind::Template { language, .. } if language.is_empty()),
            "{unset:?}"
        );
        assert_eq!(
            code(r#"{"to": "+525512345678", "template": "t", "language": "Spanish"}"#),
            "invalid_language"
        );
        assert_eq!(
            code(r#"{"to": "+525512345678", "template": "T!", "language": "es"}"#),
            "invalid_template"
        );
        assert_eq!(
            code(
                r#"{"to": "+525512345678", "template": "t", "language": "es", "category": "promo"}"#
            ),
            "invalid_category"
        );
        assert_eq!(
            code(
                r#"{"to": "+525512345678", "template": "t", "language": "es", "parameters": [{}]}"#
            ),
            "invalid_parameters"
        );
        assert_eq!(
            code(
                r#"{"to": "+525512345678", "template": "t", "language": "es", "components": [{"type": "footer"}]}"#
            ),
            "invalid_components"
        );
        assert_eq!(
            code(r#"{"to": "+525512345678", "template": "t", "text": "x"}"#),
            "template_and_text"
        );
        assert_eq!(
            code(r#"{"to": "+525512345678", "template": "t", "language": "es", "extra": 1}"#),
            "invalid_json"
        );
        let big = format!(
            r#"{{"to": "+525512345678", "text": "{}"}}"#,
            "a".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(code(&big), "payload_too_large");
    }
}
