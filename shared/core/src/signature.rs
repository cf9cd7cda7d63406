//! Webhook signatures (`X-Hub-Signature-256`) and the verify-token compare.
//!
//! Meta signs every webhook POST with `sha256=<lowercase hex HMAC-SHA256(app secret, body)>`
//! computed over the body bytes exactly as sent. We verify over the raw bytes before parsing
//! anything (re-serialised JSON would not match: Meta escapes non-ASCII as `\uXXXX`), and compare
//! in constant time (`hmac`'s `verify_slice`, `subtle` for the verify token). A body that arrives
//! with raw UTF-8 is also checked in the escaped form Meta signs (see [`verify`]).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Name of the header Meta puts the signature in (lower-case, as [`crate::http::Request`] keeps
/// header names).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";
const HEX_LEN: usize = 64;

/// The Meta app secret: the HMAC key. Never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone)]
pub struct AppSecret(Vec<u8>);

impl AppSecret {
    /// `None` for an empty secret: an empty key would make every signature forgeable, so it is
    /// treated as "not configured" (fail closed).
    pub fn new(secret: impl Into<Vec<u8>>) -> Option<AppSecret> {
        let bytes = secret.into();
        if bytes.is_empty() {
            None
        } else {
            Some(AppSecret(bytes))
        }
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret(<redacted>)")
    }
}

impl fmt::Display for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why an `X-Hub-Signature-256` value is not a well-formed signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 must start with \"sha256=\"")]
    MissingPrefix,
    #[error("X-Hub-Signature-256 must carry 64 hex digits after \"sha256=\", got {0}")]
    WrongLength(usize),
    #[error("X-Hub-Signature-256 must be lowercase hex after \"sha256=\"")]
    NotLowercaseHex,
}

/// A parsed `X-Hub-Signature-256` value: the 32-byte HMAC-SHA256 tag.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSignature([u8; 32]);

impl fmt::Debug for WebhookSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSignature(sha256={})", hex::encode(self.0))
    }
}

impl WebhookSignature {
    /// Parses a header value: exactly `sha256=` followed by 64 lowercase hex digits (what Meta
    /// sends). Surrounding whitespace is tolerated (some proxies add it); anything else is refused.
    pub fn parse(header_value: &str) -> Result<WebhookSignature, SignatureError> {
        let value = header_value.trim();
        if value.is_empty() {
            return Err(SignatureError::Missing);
        }
        let hex_part = value
            .strip_prefix(PREFIX)
            .ok_or(SignatureError::MissingPrefix)?;
        if hex_part.len() != HEX_LEN {
            return Err(SignatureError::WrongLength(hex_part.len()));
        }
        if !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(SignatureError::NotLowercaseHex);
        }
        let mut tag = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut tag).map_err(|_| SignatureError::NotLowercaseHex)?;
        Ok(WebhookSignature(tag))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn mac(secret: &AppSecret) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as KeyInit>::new_from_slice(secret.expose()).expect("HMAC accepts any key length")
}

/// Whether `signature` is HMAC-SHA256(`secret`, `body`), compared in constant time.
///
/// Meta documents that it signs "an escaped unicode version of the payload, with lowercase hex
/// digits". Its bodies normally arrive escaped already, so the bytes as received match; when a
/// body carries raw UTF-8 instead (as some receivers report for accented text), the tag of its
/// escaped form is accepted too. Both need the secret; a forged body fails both.
pub fn verify(secret: &AppSecret, body: &[u8], signature: &WebhookSignature) -> bool {
    let mut m = mac(secret);
    m.update(body);
    if m.verify_slice(signature.as_bytes()).is_ok() {
        return true;
    }
    if body.is_ascii() {
        return false;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let mut m = mac(secret);
    for_each_escaped(text, |piece| m.update(piece));
    m.verify_slice(signature.as_bytes()).is_ok()
}

/// Calls `out` with `text` in the form Meta signs: every non-ASCII character as `\uXXXX`
/// (lowercase hex; UTF-16 surrogate pairs above U+FFFF), in pieces, without building a copy.
fn for_each_escaped(text: &str, mut out: impl FnMut(&[u8])) {
    let mut ascii_from = 0;
    for (at, ch) in text.char_indices() {
        if ch.is_ascii() {
            continue;
        }
        out(&text.as_bytes()[ascii_from..at]);
        let mut units = [0u16; 2];
        for unit in ch.encode_utf16(&mut units) {
            let mut escape = *b"\\u0000";
            hex::encode_to_slice(unit.to_be_bytes(), &mut escape[2..]).expect("4 hex digits");
            out(&escape);
        }
        ascii_from = at + ch.len_utf8();
    }
    out(&text.as_bytes()[ascii_from..]);
}

/// `text` as Meta writes and signs its webhook bodies: non-ASCII escaped as `\uXXXX` (valid
/// JSON stays valid: outside strings JSON is ASCII). For tools that make Meta-shaped bodies.
pub fn meta_escaped(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + text.len() / 4);
    for_each_escaped(text, |piece| out.extend_from_slice(piece));
    String::from_utf8(out).expect("escaped text is ASCII")
}

/// The full header value Meta would send for `body`: `sha256=<lowercase hex>`.
pub fn sign(secret: &AppSecret, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    let tag = m.finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + HEX_LEN);
    out.push_str(PREFIX);
    out.push_str(&hex::encode(tag));
    out
}

/// Constant-time comparison of the verify token of the GET handshake with the configured one.
/// (Lengths leak, which is unavoidable and harmless: the token is random.)
pub fn verify_token_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known vector computed independently with Python's standard library:
    //   python3 -c "import hmac,hashlib; print(hmac.new(b'test-app-secret',
    //     b'{\"object\":\"whatsapp_business_account\",\"entry\":[]}', hashlib.sha256).hexdigest())"
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    const SECRET: &str = "test-app-secret";
    const EXPECTED: &str =
        "sha256=c84a394cc475525991e78ff16e430b02e47f953877d2af0ade26956ce6f384dc";

    fn secret() -> AppSecret {
        AppSecret::new(SECRET).unwrap()
    }

    #[test]
    fn sign_matches_known_vector() {
        assert_eq!(sign(&secret(), BODY), EXPECTED);
    }

    #[test]
    fn rfc_style_vector() {
        // python3: hmac.new(b'key', b'The quick brown fox jumps over the lazy dog', 'sha256')
        let s = AppSecret::new("key").unwrap();
        let sig = WebhookSignature::parse(
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
        )
        .unwrap();
        assert!(verify(
            &s,
            b"The quick brown fox jumps over the lazy dog",
            &sig
        ));
    }

    #[test]
    fn verifies_known_vector() {
        let sig = WebhookSignature::parse(EXPECTED).unwrap();
        assert!(verify(&secret(), BODY, &sig));
    }

    #[test]
    fn wrong_secret_fails() {
        let sig = WebhookSignature::parse(EXPECTED).unwrap();
        assert!(!verify(
            &AppSecret::new("other-secret").unwrap(),
            BODY,
            &sig
        ));
    }

    #[test]
    fn tampered_body_fails() {
        let sig = WebhookSignature::parse(EXPECTED).unwrap();
        let mut body = BODY.to_vec();
        body.push(b' ');
        assert!(!verify(&secret(), &body, &sig));
        let flipped = br#"{"object":"whatsapp_business_account","entry":[1]}"#;
        assert!(!verify(&secret(), flipped, &sig));
    }

    #[test]
    fn non_ascii_is_hashed_as_received() {
        // The same JSON text with and without \u escapes are different bytes, different tags.
        let a = "{\"t\":\"Olá\"}".as_bytes();
        let b = br#"{"t":"Ol\u00e1"}"#;
        let sig = WebhookSignature::parse(&sign(&secret(), a)).unwrap();
        assert!(verify(&secret(), a, &sig));
        assert!(!verify(&secret(), b, &sig));
    }

    #[test]
    fn raw_utf8_bodies_pass_with_the_tag_of_their_escaped_form() {
        // Meta signs the escaped form; a body that arrives with raw UTF-8 still verifies.
        let raw = "{\"t\":\"Olá, ¿qué tal? 😊\"}".as_bytes();
        let escaped = br#"{"t":"Ol\u00e1, \u00bfqu\u00e9 tal? \ud83d\ude0a"}"#;
        assert_eq!(
            meta_escaped(std::str::from_utf8(raw).unwrap()).as_bytes(),
            escaped
        );
        let sig = WebhookSignature::parse(&sign(&secret(), escaped)).unwrap();
        assert!(verify(&secret(), escaped, &sig));
        assert!(verify(&secret(), raw, &sig));
        // Not for other text, other escapes, or another secret.
        let other = "{\"t\":\"Olá, ¿qué tal? 😉\"}".as_bytes();
        assert!(!verify(&secret(), other, &sig));
        let upper = br#"{"t":"Ol\u00E1, \u00BFqu\u00E9 tal? \uD83D\uDE0A"}"#;
        let upper_sig = WebhookSignature::parse(&sign(&secret(), upper)).unwrap();
        assert!(!verify(&secret(), raw, &upper_sig));
        let wrong = AppSecret::new("another-secret").unwrap();
        assert!(!verify(&wrong, raw, &sig));
        // Bytes that are not UTF-8 are refused, not panicked on.
        assert!(!verify(&secret(), &[b'{', 0xff, b'}'], &sig));
    }

    #[test]
    fn parse_rejects_malformed_values() {
        let hex = &EXPECTED[7..];
        assert_eq!(WebhookSignature::parse(""), Err(SignatureError::Missing));
        assert_eq!(
            WebhookSignature::parse(hex),
            Err(SignatureError::MissingPrefix)
        );
        assert_eq!(
            WebhookSignature::parse(&format!("sha1={hex}")),
            Err(SignatureError::MissingPrefix)
        );
        assert_eq!(
            WebhookSignature::parse(&format!("SHA256={hex}")),
            Err(SignatureError::MissingPrefix)
        );
        assert_eq!(
            WebhookSignature::parse(&format!("sha256={}", hex.to_uppercase())),
            Err(SignatureError::NotLowercaseHex)
        );
        assert_eq!(
            WebhookSignature::parse(&format!("sha256={}", &hex[..63])),
            Err(SignatureError::WrongLength(63))
        );
        assert_eq!(
            WebhookSignature::parse(&format!("sha256={hex}00")),
            Err(SignatureError::WrongLength(66))
        );
        assert_eq!(
            WebhookSignature::parse(&format!("sha256={}zz", &hex[..62])),
            Err(SignatureError::NotLowercaseHex)
        );
        // Tolerated: surrounding whitespace.
        assert!(WebhookSignature::parse(&format!("  {EXPECTED} ")).is_ok());
    }

    #[test]
    fn secrets_are_redacted() {
        let s = secret();
        assert!(!format!("{s:?}").contains(SECRET));
        assert!(!format!("{s}").contains(SECRET));
        assert!(AppSecret::new("").is_none());
    }

    #[test]
    fn verify_token_compare() {
        assert!(verify_token_matches("tok-123", "tok-123"));
        assert!(!verify_token_matches("tok-123", "tok-124"));
        assert!(!verify_token_matches("tok-123", "tok-12"));
        assert!(!verify_token_matches("tok-123", ""));
    }
}
