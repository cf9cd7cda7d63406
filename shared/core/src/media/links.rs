//! Links the CRM opens: `{base}/media/{id}?t={expires}.{mac}`, where `mac` is HMAC-SHA256 over
//! the media id and the expiry under the gateway's link key. The gateway serves (or, on AWS,
//! redirects to a short-lived presigned URL for) a file only for a token it signed that has not
//! expired; anyone else gets 403. Verification is constant-time, and a token for one file opens
//! no other.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest link key accepted (bytes): the key is a secret, generated, never typed.
pub const MIN_KEY_BYTES: usize = 32;
/// The longest token read (an expiry and a 43-character MAC, with room to spare).
const MAX_TOKEN_LEN: usize = 128;

/// Why a link does not open its file. Every case answers 403 at the edge; the kind is for logs
/// and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link token is malformed")]
    Malformed,
    #[error("the link token was not signed by this gateway for this file")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

/// Signs and checks media links. Cheap to clone.
#[derive(Clone)]
pub struct LinkSigner {
    key: std::sync::Arc<Vec<u8>>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// A signer over `key`; `None` when the key is shorter than [`MIN_KEY_BYTES`] (fail closed:
    /// no links rather than guessable ones).
    pub fn new(key: &[u8]) -> Option<LinkSigner> {
        (key.len() >= MIN_KEY_BYTES).then(|| LinkSigner {
            key: std::sync::Arc::new(key.to_vec()),
        })
    }

    fn mac(&self, media_id: &str, expires_at: i64) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC accepts any key length");
        mac.update(b"wabridge-media-link:v1\n");
        mac.update(media_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at.to_string().as_bytes());
        mac
    }

    /// The token for `media_id` until `expires_at` (Unix seconds).
    pub fn token(&self, media_id: &str, expires_at: i64) -> String {
        let tag = self.mac(media_id, expires_at).finalize().into_bytes();
        format!(
            "{expires_at}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The gateway URL of `media_id`, valid until `expires_at`.
    pub fn url(&self, base: &str, media_id: &str, expires_at: i64) -> String {
        format!(
            "{}/media/{media_id}?t={}",
            base.trim_end_matches('/'),
            self.token(media_id, expires_at)
        )
    }

    /// Whether `token` opens `media_id` at `now` (Unix seconds). The signature is checked first
    /// (in constant time), so an expired token says so only when it was genuine.
    pub fn verify(&self, media_id: &str, token: &str, now: i64) -> Result<(), LinkError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(LinkError::Malformed);
        }
        let (expires, tag) = token.split_once('.').ok_or(LinkError::Malformed)?;
        let expires_at: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| LinkError::Malformed)?;
        self.mac(media_id, expires_at)
            .verify_slice(&tag)
            .map_err(|_| LinkError::BadSignature)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}
