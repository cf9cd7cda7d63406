//! What the sender posts to the Graph API (`POST /{version}/{phone-number-id}/messages`): the
//! message types, the client's settings, and the port its HTTP client implements.
//!
//! The request types follow Meta's OpenAPI description (vendored in `tests/specs/`), which the contract
//! test checks every kind of request against through Prism: `template.language.policy` is
//! required (`deterministic`), and `User-Agent` must look like `name/1.2.3`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config;
use crate::media::MediaKind;
use crate::sends::classify::{classify_response, SendFailure};

/// `User-Agent` of every Graph call, in the `name/1.2.3` form the spec requires.
pub const USER_AGENT: &str = concat!("wabridge/", env!("CARGO_PKG_VERSION"));

/// Who a message goes to: a phone number (`to`, digits of the E.164 form) or a business-scoped
/// user id (`recipient`). When both are known, `to` is sent and wins (Meta's rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Address {
    Phone(String),
    Bsuid(String),
}

/// `template.language`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    pub code: String,
    /// Always `deterministic`: the only policy Meta accepts (and the spec requires it).
    pub policy: String,
}

impl Language {
    pub fn new(code: impl Into<String>) -> Language {
        Language {
            code: code.into(),
            policy: "deterministic".into(),
        }
    }
}

/// `template`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    pub language: Language,
    /// Meta's component objects (header, body, button) with their parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Value>,
}

/// `text` of a free-form message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

/// A free-form media message: the file by the id Meta gave its upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    pub id: String,
    /// Image, video and document only.
    pub caption: Option<String>,
    /// Documents only: the name the recipient sees.
    pub filename: Option<String>,
}

impl MediaMessage {
    /// The media object (`{"id", "caption"?, "filename"?}`).
    fn object(&self) -> Value {
        let mut v = serde_json::json!({"id": self.id});
        if let Some(c) = &self.caption {
            v["caption"] = Value::String(c.clone());
        }
        if let Some(f) = &self.filename {
            v["filename"] = Value::String(f.clone());
        }
        v
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Template(Template),
    Text(Text),
    Media(MediaMessage),
}

/// One message as the sender posts it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    pub address: Address,
    pub content: Content,
    /// Echoed by Meta in status webhooks: the send id, so statuses find their send. Sent with
    /// templates only: Meta's spec allows no extra property on a text or media message, so
    /// statuses of free-form sends find their send by the `wamid` recorded when Meta accepted it.
    pub callback_data: String,
}

/// The JSON body of `POST /{version}/{phone-number-id}/messages`.
#[derive(Debug, Serialize)]
struct Body<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
}

impl OutboundMessage {
    /// The request body, as sent.
    pub fn to_json(&self) -> Value {
        let (to, recipient) = match &self.address {
            Address::Phone(p) => (Some(p.trim_start_matches('+')), None),
            Address::Bsuid(b) => (None, Some(b.as_str())),
        };
        let (kind, template, text, callback) = match &self.content {
            Content::Template(t) => ("template", Some(t), None, Some(self.callback_data.as_str())),
            Content::Text(t) => ("text", None, Some(t), None),
            Content::Media(m) => (m.kind.as_str(), None, None, None),
        };
        let mut body = serde_json::to_value(Body {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to,
            recipient,
            kind,
            template,
            text,
            biz_opaque_callback_data: callback,
        })
        .expect("message body serialises");
        if let Content::Media(m) = &self.content {
            // `"type": "image", "image": {...}`: the object sits under its own kind's name.
            body[m.kind.as_str()] = m.object();
        }
        body
    }
}

/// Meta's answer to an accepted send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `messages[0].id` (the `wamid`), when present.
    pub message_id: Option<String>,
    /// `contacts[0].wa_id`, when present.
    pub wa_id: Option<String>,
}

/// Where and as whom the client posts.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub base_url: String,
    pub version: String,
    pub phone_number_id: String,
    pub access_token: String,
    pub timeout: Duration,
}

impl GraphConfig {
    /// Reads `WHATSAPP_API_URL`, `WHATSAPP_API_VERSION`, `WHATSAPP_PHONE_NUMBER_ID` and
    /// `WHATSAPP_ACCESS_TOKEN` through `get` (the environment, or the secrets on AWS). Fails
    /// closed: no token or no phone number id, no client.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<GraphConfig, config::ConfigError> {
        const DISABLED: &str = "sends are disabled";
        let settings = config::Settings::new(get);
        let (base_url, version) = settings.graph_api()?;
        Ok(GraphConfig {
            access_token: settings.required(config::WHATSAPP_ACCESS_TOKEN, DISABLED)?,
            phone_number_id: settings.required(config::WHATSAPP_PHONE_NUMBER_ID, DISABLED)?,
            base_url,
            version,
            timeout: Duration::from_secs(10),
        })
    }

    pub fn from_env() -> Result<GraphConfig, config::ConfigError> {
        GraphConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// `{base}/{version}/{phone-number-id}/messages`.
    pub fn messages_url(&self) -> String {
        format!(
            "{}/{}/{}/messages",
            self.base_url.trim_end_matches('/'),
            self.version.trim_matches('/'),
            self.phone_number_id
        )
    }
}

/// The port the sender posts messages through (the Graph API client of `wabridge-graph`; a
/// fake in tests). Errors come classified (retry, pair-rate, terminal, opted out).
#[async_trait::async_trait]
pub trait MessageApi: Send + Sync {
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendFailure>;
    /// The longest one [`MessageApi::send`] may take (see `Crm::call_budget`).
    fn call_budget(&self) -> Option<Duration> {
        None
    }
}

/// Meta's answer to `POST /messages` (status, the body's first bytes, `Retry-After`) as the
/// accepted message or a classified failure.
pub fn read_answer(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<Accepted, SendFailure> {
    // Bounded: Meta's answers are small; a huge body is an error page, not an answer.
    let body: Option<Value> = serde_json::from_slice(&body[..body.len().min(64 * 1024)]).ok();
    if (200..300).contains(&status) {
        let message_id = body
            .as_ref()
            .and_then(|b| b.pointer("/messages/0/id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let wa_id = body
            .as_ref()
            .and_then(|b| b.pointer("/contacts/0/wa_id"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string());
        return Ok(Accepted { message_id, wa_id });
    }
    Err(classify_response(status, body.as_ref(), retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template {
            name: "order_confirmation".into(),
            language: Language::new("es_MX"),
            components: vec![
                serde_json::json!({"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}),
            ],
        }
    }

    #[test]
    fn template_body_has_what_meta_requires() {
        let m = OutboundMessage {
            address: Address::Phone("+5215512345678".into()),
            content: Content::Template(template()),
            callback_data: "snd_1".into(),
        };
        let v = m.to_json();
        assert_eq!(v["messaging_product"], "whatsapp");
        assert_eq!(v["recipient_type"], "individual");
        assert_eq!(v["to"], "5215512345678");
        assert!(v.get("recipient").is_none());
        assert_eq!(v["type"], "template");
        assert_eq!(v["template"]["language"]["policy"], "deterministic");
        assert_eq!(v["template"]["language"]["code"], "es_MX");
        assert_eq!(v["biz_opaque_callback_data"], "snd_1");
        assert!(v.get("text").is_none());
    }

    #[test]
    fn bsuid_goes_in_recipient() {
        let m = OutboundMessage {
            address: Address::Bsuid("MX.abc123".into()),
            content: Content::Text(Text {
                body: "hola".into(),
                preview_url: None,
            }),
            callback_data: "snd_2".into(),
        };
        let v = m.to_json();
        assert_eq!(v["recipient"], "MX.abc123");
        assert!(v.get("to").is_none());
        assert_eq!(v["type"], "text");
        assert_eq!(v["text"]["body"], "hola");
        assert!(v.get("biz_opaque_callback_data").is_none());
    }

    #[test]
    fn media_goes_by_id_under_its_kind() {
        let m = OutboundMessage {
            address: Address::Phone("+5215512345678".into()),
            content: Content::Media(MediaMessage {
                kind: MediaKind::Document,
                id: "4490709327384033".into(),
                caption: Some("Tu factura".into()),
                filename: Some("factura-1042.pdf".into()),
            }),
            callback_data: "snd_3".into(),
        };
        let v = m.to_json();
        assert_eq!(v["type"], "document");
        assert_eq!(
            v["document"],
            serde_json::json!({"id": "4490709327384033", "caption": "Tu factura",
                "filename": "factura-1042.pdf"})
        );
        assert!(v.get("biz_opaque_callback_data").is_none());
        assert!(v.get("link").is_none() && v["document"].get("link").is_none());
    }

    #[test]
    fn user_agent_has_the_form_the_spec_requires() {
        let re = regex::Regex::new(r"^[a-zA-Z0-9\-_]+/[0-9]+\.[0-9]+\.[0-9]+$").unwrap();
        assert!(re.is_match(USER_AGENT), "{USER_AGENT}");
    }

    #[test]
    fn config_fails_closed_without_token() {
        let err = GraphConfig::from_lookup(|n| {
            (n == config::WHATSAPP_PHONE_NUMBER_ID).then(|| "1".into())
        })
        .unwrap_err();
        assert!(
            err.to_string().contains(config::WHATSAPP_ACCESS_TOKEN),
            "{err}"
        );
        let ok = GraphConfig::from_lookup(|n| match n {
            config::WHATSAPP_PHONE_NUMBER_ID => Some("106540352242922".into()),
            config::WHATSAPP_ACCESS_TOKEN => Some("EAAB".into()),
            config::WHATSAPP_API_URL => Some("http://127.0.0.1:9/".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            ok.messages_url(),
            "http://127.0.0.1:9/v23.0/106540352242922/messages"
        );
    }
}
