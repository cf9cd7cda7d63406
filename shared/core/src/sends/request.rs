//! `POST /sends`: the body as received, and the validated request it becomes.
//!
//! ```json
//! {"to": "+52 1 55 1234 5678" | "recipient": "MX.abc123", "template": "order_confirmation",
//!  "language": "es_MX", "category": "UTILITY", "parameters": ["Ana", "1042"],
//!  "components": [{"type": "header", "parameters": [...]}]}
//! ```
//! or a free-form message (only within the 24 h window): `{"to": "...", "text": "Hola"}`, or
//! `{"to": "...", "media": {"type": "image", "object": "<sha256 hex>", "caption": "..."}}`. A
//! media template takes its file in `header` ([`super::attachment`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::consent::ContactRef;
use crate::identity::{Bsuid, E164};
use crate::sends::attachment::{Attachment, HeaderBody, MessageMediaBody};
use crate::sends::error::RequestError;
use crate::sends::graph::{self, Address, Content, Language, MediaMessage, OutboundMessage};

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
    header: Option<HeaderBody>,
    media: Option<MessageMediaBody>,
    /// Who sends it (checked against the agent catalogue by the sends service).
    agent: Option<String>,
    /// The business number to send from: a registry label or phone_number_id.
    from: Option<String>,
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
        /// A media template's header file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<Attachment>,
    },
    Text {
        body: String,
    },
    /// A free-form image, video, audio or document message.
    Media {
        media: Attachment,
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
    /// The agent the business names as the sender ([`crate::agents`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The number to send from: as given, then its phone_number_id ([`crate::numbers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
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

        let agent = non_empty(&body.agent);
        let from = non_empty(&body.from);
        if from
            .as_deref()
            .is_some_and(|f| !crate::numbers::valid_from(f))
        {
            return Err(bad("invalid_from", crate::numbers::FROM_SHAPE));
        }
        let template_name = non_empty(&body.template);
        let text_body = non_empty(&body.text);
        let kind = match (template_name, text_body, body.media.is_some()) {
            (Some(_), Some(_), _) => {
                return Err(bad(
                    "template_and_text",
                    "give either `template` or `text`, not both",
                ))
            }
            (Some(_), None, true) | (None, Some(_), true) => {
                return Err(bad(
                    "template_and_media",
                    "give one of `template`, `text` or `media` (a template's file goes in `header`)",
                ))
            }
            (None, Some(t), false) => text(t, &body)?,
            (None, None, true) => media(body)?,
            (None, None, false) => {
                return Err(bad(
                    "missing_template",
                    "`template` (the template name) is required, or `text` or `media` for a free-form message",
                ))
            }
            (Some(name), None, false) => template(name, body)?,
        };

        Ok(SendRequest {
            to,
            recipient,
            contact,
            kind,
            agent,
            from,
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

/// Whether a free-form body carries a template's fields.
fn has_template_fields(body: &SendRequestBody) -> bool {
    body.language.is_some()
        || body.category.is_some()
        || body.parameters.is_some()
        || body.components.is_some()
        || body.header.is_some()
}

/// A free-form `media` send: no template fields.
fn media(body: SendRequestBody) -> Result<SendKind, RequestError> {
    if has_template_fields(&body) {
        return Err(bad(
            "media_with_template_fields",
            "a `media` message takes no language, category, parameters, components or header",
        ));
    }
    let media = body
        .media
        .ok_or_else(|| bad("invalid_media", "`media` is required"))?;
    Ok(SendKind::Media {
        media: Attachment::try_from(media)?,
    })
}

/// A free-form `text` send: no template fields, at most 4,096 characters.
fn text(text: String, body: &SendRequestBody) -> Result<SendKind, RequestError> {
    if has_template_fields(body) {
        return Err(bad(
            "text_with_template_fields",
            "a `text` message takes no language, category, parameters, components or header",
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
    let header = body.header.map(Attachment::try_from).transpose()?;
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
        if kind == Some("header") && header.is_some() {
            return Err(bad(
                "invalid_components",
                "give the header either in `header` or in a header component, not both",
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
        header,
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
            SendKind::Text { .. } | SendKind::Media { .. } => 0,
        }
    }

    /// The stored file the send carries (a template's header, or a media message's), if any.
    pub fn attachment(&self) -> Option<&Attachment> {
        match &self.kind {
            SendKind::Template { header, .. } => header.as_ref(),
            SendKind::Media { media } => Some(media),
            SendKind::Text { .. } => None,
        }
    }

    /// [`SendRequest::attachment`], to fill in what `POST /sends` resolves.
    pub fn attachment_mut(&mut self) -> Option<&mut Attachment> {
        match &mut self.kind {
            SendKind::Template { header, .. } => header.as_mut(),
            SendKind::Media { media } => Some(media),
            SendKind::Text { .. } => None,
        }
    }

    /// The Graph API message for send `id`, for a send without a file (see
    /// [`SendRequest::to_outbound_with`]).
    pub fn to_outbound(&self, id: &str) -> OutboundMessage {
        self.to_outbound_with(id, None)
    }

    /// The Graph API message for send `id`, its file (if any) sent by `media_id`: the id Meta
    /// gave the file's upload (the sender uploads it first; Meta's link fetching is rate-limited).
    pub fn to_outbound_with(&self, id: &str, media_id: Option<&str>) -> OutboundMessage {
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
                header,
                ..
            } => {
                let mut components = components.clone();
                if let Some(header) = header {
                    components.insert(0, header_component(header, media_id.unwrap_or_default()));
                }
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
            SendKind::Media { media } => Content::Media(MediaMessage {
                kind: media.kind,
                id: media_id.unwrap_or_default().to_string(),
                caption: media.caption.clone(),
                filename: media.filename.clone(),
            }),
        };
        OutboundMessage {
            address,
            content,
            callback_data: id.to_string(),
        }
    }
}

/// A template's media header, Meta's way: `{"type": "header", "parameters": [{"type":
/// "document", "document": {"id", "filename"}}]}` (no caption: Meta takes none there).
fn header_component(header: &Attachment, media_id: &str) -> Value {
    let kind = header.kind.as_str();
    let mut file = serde_json::json!({"id": media_id});
    if let Some(name) = &header.filename {
        file["filename"] = Value::String(name.clone());
    }
    serde_json::json!({"type": "header", "parameters": [{"type": kind, kind: file}]})
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
mod tests;
