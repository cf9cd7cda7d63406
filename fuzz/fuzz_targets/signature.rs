//! The signature verifier: a header is parsed or refused, a body signed with a secret verifies
//! (again and again) with that secret only, a tampered tag never does, and whatever verifies was
//! signed over the body or over the escaped form Meta signs.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wabridge_core::signature::{
    meta_escaped, sign, verify, verify_token_matches, AppSecret, WebhookSignature,
};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secret: &'a [u8],
    header: &'a str,
    flip: u8,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let Input {
        secret,
        header,
        flip,
        body,
    } = input;

    // Header parsing: what parses is exactly `sha256=` and the tag in lowercase hex.
    if let Ok(sig) = WebhookSignature::parse(header) {
        let hex: String = sig.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("sha256={hex}"), header.trim());
    }

    let Some(app_secret) = AppSecret::new(secret) else {
        assert!(secret.is_empty(), "only an empty secret is refused");
        return;
    };
    assert_eq!(app_secret.expose(), secret);
    assert!(!format!("{app_secret:?}{app_secret}").contains("sha256"));

    // What we sign verifies, and verifying does not change anything.
    let header_value = sign(&app_secret, body);
    let sig = WebhookSignature::parse(&header_value).expect("our own signature parses");
    assert!(verify(&app_secret, body, &sig));
    assert!(verify(&app_secret, body, &sig), "verifies again");

    // One bit off in the tag: refused.
    let mut tag = *sig.as_bytes();
    tag[usize::from(flip) % 32] ^= 1 << (flip % 8);
    let tampered_hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let tampered = WebhookSignature::parse(&format!("sha256={tampered_hex}")).unwrap();
    assert!(!verify(&app_secret, body, &tampered));

    // Another key: refused. (Appending zero bytes to a short HMAC key gives the same key, so
    // the other key differs in a byte instead.)
    let mut other = secret.to_vec();
    let at = usize::from(flip) % other.len();
    other[at] ^= 1 << (flip % 8);
    let other = AppSecret::new(other).unwrap();
    assert!(!verify(&other, body, &sig));

    // Meta signs the escaped form; a raw UTF-8 body with that signature verifies too.
    if let Ok(text) = std::str::from_utf8(body) {
        let escaped = meta_escaped(text);
        assert!(escaped.is_ascii());
        if text.is_ascii() {
            assert_eq!(escaped, text);
        }
        let meta_sig = WebhookSignature::parse(&sign(&app_secret, escaped.as_bytes())).unwrap();
        assert!(verify(&app_secret, body, &meta_sig));
        assert!(verify(&app_secret, escaped.as_bytes(), &meta_sig));
        // Valid JSON stays the same JSON once escaped.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
            let escaped_value: serde_json::Value =
                serde_json::from_str(&escaped).expect("escaped JSON parses");
            assert_eq!(value, escaped_value);
        }
    }

    // A fuzzed header verifies only if it is the tag of the body or of its escaped form.
    if let Ok(given) = WebhookSignature::parse(header) {
        if verify(&app_secret, body, &given) {
            let escaped =
                std::str::from_utf8(body).map(|t| sign(&app_secret, meta_escaped(t).as_bytes()));
            assert!(
                header.trim() == header_value || escaped.as_deref() == Ok(header.trim()),
                "verified a header that is no signature of the body"
            );
        }
    }

    // The verify token compare is plain equality, in constant time.
    let token = String::from_utf8_lossy(secret);
    assert_eq!(verify_token_matches(&token, header), *token == *header);
    assert!(verify_token_matches(&token, &token));
});
