//! Media that customers send and businesses send back (issue 24), the domain part: the kinds
//! WhatsApp carries and Meta's limits per kind (size and MIME types), the SHA-256 Meta gives
//! for each file (hex in some payloads, base64 in most), the content-addressed key a stored file
//! lives under, and the signed, expiring gateway links the CRM opens ([`links`]).
//!
//! What is built on this (the download pipeline, the stores, `GET /media/{id}`, outbound
//! uploads) is listed as left in docs/media.md until it lands.

pub mod direct;
pub mod fetch;
pub mod job;
pub mod links;
pub mod pipeline;
pub mod record;
pub mod serve;
pub mod settings;
pub mod store;
pub mod upload;

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A media kind, as WhatsApp names the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

const MB: u64 = 1024 * 1024;

/// Meta's MIME types per kind ("Supported media types", Jun 2026).
const IMAGE: &[&str] = &["image/jpeg", "image/png"];
const AUDIO: &[&str] = &[
    "audio/aac",
    "audio/amr",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
];
const VIDEO: &[&str] = &["video/mp4", "video/3gpp"];
const DOCUMENT: &[&str] = &[
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
];
const STICKER: &[&str] = &["image/webp"];

impl MediaKind {
    /// The kind of a message `type` (`image`, `audio`, …); `None` for a type without media.
    pub fn from_message_type(t: &str) -> Option<MediaKind> {
        Some(match t {
            "image" => MediaKind::Image,
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "document" => MediaKind::Document,
            "sticker" => MediaKind::Sticker,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    /// Meta's size limit in bytes (an animated sticker may be 500 KB, a static one 100 KB).
    pub fn max_bytes(self, animated: bool) -> u64 {
        match self {
            MediaKind::Image => 5 * MB,
            MediaKind::Audio | MediaKind::Video => 16 * MB,
            MediaKind::Document => 100 * MB,
            MediaKind::Sticker if animated => 500 * 1024,
            MediaKind::Sticker => 100 * 1024,
        }
    }

    /// The MIME types Meta accepts for the kind.
    pub fn allowed_mimes(self) -> &'static [&'static str] {
        match self {
            MediaKind::Image => IMAGE,
            MediaKind::Audio => AUDIO,
            MediaKind::Video => VIDEO,
            MediaKind::Document => DOCUMENT,
            MediaKind::Sticker => STICKER,
        }
    }

    /// Whether `mime` (parameters such as `; codecs=opus` ignored) may be stored or sent as
    /// this kind, at `size` bytes. An `audio/ogg` must be Opus, which only the file's content
    /// tells: a declared `codecs` other than opus is refused.
    pub fn check(self, mime: &str, size: u64, animated: bool) -> Result<(), MediaRefusal> {
        let (essence, params) = split_mime(mime);
        if !self.allowed_mimes().contains(&essence.as_str()) {
            return Err(MediaRefusal::TypeNotAllowed {
                kind: self,
                mime: essence,
            });
        }
        if essence == "audio/ogg" && params.iter().any(|(k, v)| k == "codecs" && v != "opus") {
            return Err(MediaRefusal::TypeNotAllowed {
                kind: self,
                mime: mime.trim().to_ascii_lowercase(),
            });
        }
        let limit = self.max_bytes(animated);
        if size > limit {
            return Err(MediaRefusal::TooLarge {
                kind: self,
                size,
                limit,
            });
        }
        Ok(())
    }
}

/// The file extension of an allowed MIME type, for gateway links (`/media/<hex>.pdf`): the
/// link says the type, so the gateway serves the file with it. One extension per type, and
/// back ([`mime_of_extension`]).
const EXTENSIONS: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("audio/aac", "aac"),
    ("audio/amr", "amr"),
    ("audio/mpeg", "mp3"),
    ("audio/mp4", "m4a"),
    ("audio/ogg", "ogg"),
    ("video/mp4", "mp4"),
    ("video/3gpp", "3gp"),
    ("text/plain", "txt"),
    ("application/pdf", "pdf"),
    ("application/msword", "doc"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    ("application/vnd.ms-excel", "xls"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    ("application/vnd.ms-powerpoint", "ppt"),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
    ),
    ("image/webp", "webp"),
];

/// The extension of `mime` (parameters ignored); `bin` for a type outside the list.
pub fn extension(mime: &str) -> &'static str {
    let (essence, _) = split_mime(mime);
    EXTENSIONS
        .iter()
        .find(|(m, _)| *m == essence)
        .map_or("bin", |(_, e)| e)
}

/// The MIME type of an extension [`extension`] gives.
pub fn mime_of_extension(ext: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(_, e)| *e == ext).map(|(m, _)| *m)
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The MIME type's essence, lower case, and its parameters (`codecs=opus`).
fn split_mime(mime: &str) -> (String, Vec<(String, String)>) {
    let mut parts = mime.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_ascii_lowercase(),
            ))
        })
        .collect();
    (essence, params)
}

/// Why a file is refused (never stored, never sent). At the HTTP edge: 413 and 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaRefusal {
    #[error("{kind} of {size} bytes is over Meta's limit of {limit} bytes")]
    TooLarge {
        kind: MediaKind,
        size: u64,
        limit: u64,
    },
    #[error("{mime} is not a type WhatsApp accepts for {kind} (allowed: {})", kind.allowed_mimes().join(", "))]
    TypeNotAllowed { kind: MediaKind, mime: String },
}

impl MediaRefusal {
    /// A stable code for the API and the activity's media status.
    pub fn code(&self) -> &'static str {
        match self {
            MediaRefusal::TooLarge { .. } => "media_too_large",
            MediaRefusal::TypeNotAllowed { .. } => "media_type_not_allowed",
        }
    }
}

/// A file's SHA-256. Meta writes it in hex in some payloads and in base64 in most (the webhook's
/// `sha256`, the media endpoint's answer); both parse to the same digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn parse(s: &str) -> Option<Sha256Digest> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).ok()?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                .ok()?
        };
        bytes.try_into().ok().map(Sha256Digest)
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        use sha2::Digest;
        Sha256Digest(sha2::Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Sha256Digest {
        Sha256Digest(bytes)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Standard base64, as S3's `x-amz-checksum-sha256` and Meta's payloads write it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Where a stored file lives, by its content: the same file is stored once, whoever sent
    /// it and however often Meta redelivers the webhook.
    pub fn object_key(&self) -> String {
        format!("media/{}", self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.hex())
    }
}

#[cfg(test)]
mod tests;
