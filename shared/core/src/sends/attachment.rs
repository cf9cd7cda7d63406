//! Media in a send, as `POST /sends` takes it: a media template's header, or a free-form media
//! message (inside the 24-hour window, like `text`). Both name a stored object, uploaded with
//! `POST /media` (or a file a customer sent), by its SHA-256:
//!
//! ```json
//! {"to": "+52…", "template": "factura_emitida", "language": "es_MX", "parameters": ["1042"],
//!  "header": {"type": "document", "object": "<sha256 hex>", "filename": "factura-1042.pdf"}}
//! {"to": "+52…", "media": {"type": "image", "object": "<sha256 hex>", "caption": "Tu boleto"}}
//! ```
//!
//! `type` is image, video or document in a header (Meta's media header formats) and also audio
//! in a message; `caption` goes with an image, video or document message (Meta takes none in a
//! header or on audio); `filename` with a document. `mime_type` is only needed for an object
//! the gateway did not receive itself (a customer's file): an upload's own type wins.

use serde::{Deserialize, Serialize};

use crate::media::upload::clean_filename;
use crate::media::{MediaKind, Sha256Digest};
use crate::sends::error::RequestError;

/// Longest caption Meta takes (`MediaObject.caption`).
pub const MAX_CAPTION_CHARS: usize = 1024;

/// A media reference as received (`header` or `media`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    object: Option<String>,
    filename: Option<String>,
    caption: Option<String>,
    mime_type: Option<String>,
}

/// `header` of a template send, as received.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct HeaderBody(pub MediaBody);

/// `media` of a free-form send, as received.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct MessageMediaBody(pub MediaBody);

/// A validated media reference (also its stored form, inside the send's request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// The object's SHA-256, lower-case hex.
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The file's type: the request's, replaced at `POST /sends` by what the upload recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

impl Attachment {
    /// The object's digest (validated when the request was).
    pub fn digest(&self) -> Option<Sha256Digest> {
        (self.object.len() == 64)
            .then(|| Sha256Digest::parse(&self.object))
            .flatten()
    }
}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError::invalid("invalid_media", message)
}

fn trimmed(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The fields both places share; `field` names the place in messages (`header`, `media`).
fn common(body: MediaBody, field: &str, kinds: &[MediaKind]) -> Result<Attachment, RequestError> {
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let kind = trimmed(body.kind)
        .and_then(|k| MediaKind::from_message_type(&k.to_ascii_lowercase()))
        .filter(|k| kinds.contains(k))
        .ok_or_else(|| bad(format!("`{field}.type` must be {}", names.join(", "))))?;
    let object = trimmed(body.object)
        .map(|o| o.to_ascii_lowercase())
        .filter(|o| o.len() == 64 && o.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            bad(format!(
                "`{field}.object` must be a stored object: the 64 hex digits POST /media answered"
            ))
        })?;
    let filename = match trimmed(body.filename) {
        None => None,
        Some(_) if kind != MediaKind::Document => {
            return Err(bad(format!("`{field}.filename` goes with a document only")))
        }
        Some(f) => Some(clean_filename(&f).ok_or_else(|| {
            bad(format!(
                "`{field}.filename` must be a file name without control characters or a path, at most 240 characters"
            ))
        })?),
    };
    let mime_type = match trimmed(body.mime_type) {
        Some(m) if m.len() > 255 || !m.contains('/') => {
            return Err(bad(format!(
                "`{field}.mime_type` must be a MIME type such as application/pdf"
            )))
        }
        m => m,
    };
    Ok(Attachment {
        kind,
        object,
        filename,
        caption: body.caption,
        mime_type,
    })
}

impl TryFrom<HeaderBody> for Attachment {
    type Error = RequestError;

    /// A template's media header: an image, video or document, no caption (Meta shows none).
    fn try_from(HeaderBody(body): HeaderBody) -> Result<Attachment, RequestError> {
        let caption = trimmed(body.caption.clone());
        let mut a = common(
            body,
            "header",
            &[MediaKind::Document, MediaKind::Image, MediaKind::Video],
        )?;
        if caption.is_some() {
            return Err(bad(
                "a template header takes no `caption` (the template's body is the text)",
            ));
        }
        a.caption = None;
        Ok(a)
    }
}

impl TryFrom<MessageMediaBody> for Attachment {
    type Error = RequestError;

    /// A free-form media message: any of the four kinds; a caption except on audio.
    fn try_from(MessageMediaBody(body): MessageMediaBody) -> Result<Attachment, RequestError> {
        let mut a = common(
            body,
            "media",
            &[
                MediaKind::Image,
                MediaKind::Video,
                MediaKind::Audio,
                MediaKind::Document,
            ],
        )?;
        a.caption = trimmed(a.caption.take());
        if let Some(caption) = &a.caption {
            if a.kind == MediaKind::Audio {
                return Err(bad(
                    "`media.caption` does not go with audio (Meta shows none)",
                ));
            }
            if caption.chars().count() > MAX_CAPTION_CHARS {
                return Err(bad(format!(
                    "`media.caption` is longer than {MAX_CAPTION_CHARS} characters"
                )));
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn header(v: serde_json::Value) -> Result<Attachment, RequestError> {
        Attachment::try_from(serde_json::from_value::<HeaderBody>(v).unwrap())
    }

    fn media(v: serde_json::Value) -> Result<Attachment, RequestError> {
        Attachment::try_from(serde_json::from_value::<MessageMediaBody>(v).unwrap())
    }

    fn message(r: Result<Attachment, RequestError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code(), "invalid_media", "{e}");
        e.to_string()
    }

    #[test]
    fn a_document_header_and_an_image_message() {
        let upper = HEX.to_ascii_uppercase();
        let a = header(serde_json::json!({"type": "document", "object": upper,
            "filename": "factura-1042.pdf"}))
        .unwrap();
        assert_eq!(a.kind, MediaKind::Document);
        assert_eq!(a.object, HEX, "hex is kept lower case");
        assert_eq!(a.filename.as_deref(), Some("factura-1042.pdf"));
        assert_eq!(a.digest().unwrap().hex(), HEX);

        let a =
            media(serde_json::json!({"type": "image", "object": HEX, "caption": " Tu boleto "}))
                .unwrap();
        assert_eq!(a.kind, MediaKind::Image);
        assert_eq!(a.caption.as_deref(), Some("Tu boleto"));
        let a = media(serde_json::json!({"type": "audio", "object": HEX,
            "mime_type": "audio/ogg; codecs=opus"}))
        .unwrap();
        assert_eq!(a.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
    }

    #[test]
    fn refusals_name_the_field_and_the_rule() {
        let m = message(header(serde_json::json!({"type": "audio", "object": HEX})));
        assert!(
            m.contains("`header.type` must be document, image, video"),
            "{m}"
        );
        let m = message(media(serde_json::json!({"type": "sticker", "object": HEX})));
        assert!(m.contains("`media.type`"), "{m}");
        let m = message(media(serde_json::json!({"type": "image"})));
        assert!(m.contains("`media.object`"), "{m}");
        let m = message(media(
            serde_json::json!({"type": "image", "object": "media/abc"}),
        ));
        assert!(m.contains("64 hex digits"), "{m}");
        let m = message(header(serde_json::json!({"type": "image", "object": HEX,
            "caption": "x"})));
        assert!(m.contains("caption"), "{m}");
        let m = message(media(serde_json::json!({"type": "audio", "object": HEX,
            "caption": "x"})));
        assert!(m.contains("audio"), "{m}");
        let m = message(media(serde_json::json!({"type": "image", "object": HEX,
            "filename": "a.png"})));
        assert!(m.contains("document only"), "{m}");
        let m = message(media(serde_json::json!({"type": "document", "object": HEX,
            "filename": "../a.pdf"})));
        assert!(m.contains("filename"), "{m}");
        let m = message(media(serde_json::json!({"type": "image", "object": HEX,
            "caption": "a".repeat(MAX_CAPTION_CHARS + 1)})));
        assert!(m.contains("1024"), "{m}");
        let m = message(media(serde_json::json!({"type": "image", "object": HEX,
            "mime_type": "png"})));
        assert!(m.contains("mime_type"), "{m}");
        // Unknown fields are refused, as everywhere in a send.
        assert!(serde_json::from_value::<MessageMediaBody>(
            serde_json::json!({"type": "image", "object": HEX, "link": "https://x"})
        )
        .is_err());
    }
}
