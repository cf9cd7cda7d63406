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
    let r = SendRequest::parse(br#"{"recipient": "MX.abc123", "template": "t", "language": "es"}"#)
        .unwrap();
    assert_eq!(r.contact, "bsuid:MX.abc123");
    assert!(matches!(r.to_outbound("x").address, Address::Bsuid(_)));
    let r = SendRequest::parse(
        br#"{"to": "+5511987654321", "recipient": "BR.abc", "template": "t", "language": "pt_BR"}"#,
    )
    .unwrap();
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
        code(r#"{"to": "+525512345678", "template": "t", "language": "es", "category": "promo"}"#),
        "invalid_category"
    );
    assert_eq!(
        code(r#"{"to": "+525512345678", "template": "t", "language": "es", "parameters": [{}]}"#),
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

const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn a_document_header_becomes_metas_header_component_by_id() {
    let body = format!(
        r#"{{"to": "+52 1 55 1234 5678", "template": "factura_emitida", "language": "es_MX",
        "parameters": ["1042"],
        "header": {{"type": "document", "object": "{HEX}", "filename": "factura-1042.pdf"}}}}"#
    );
    let r = SendRequest::parse(body.as_bytes()).unwrap();
    let a = r.attachment().expect("the header is the send's file");
    assert_eq!(a.kind, crate::media::MediaKind::Document);
    assert_eq!(r.body_parameter_count(), 1);
    let v = r
        .to_outbound_with("snd_1", Some("4490709327384033"))
        .to_json();
    assert_eq!(v["type"], "template");
    assert_eq!(
        v["template"]["components"][0],
        serde_json::json!({"type": "header", "parameters": [{"type": "document",
            "document": {"id": "4490709327384033", "filename": "factura-1042.pdf"}}]})
    );
    assert_eq!(v["template"]["components"][1]["type"], "body");
    assert_eq!(v["biz_opaque_callback_data"], "snd_1");
    // The stored form reads back the same (the sender reads it from the store).
    let stored = serde_json::to_value(&r).unwrap();
    assert_eq!(stored["header"]["object"], HEX);
    assert_eq!(serde_json::from_value::<SendRequest>(stored).unwrap(), r);
}

#[test]
fn a_media_message_is_free_form_and_goes_by_id() {
    let body = format!(
        r#"{{"to": "+525512345678", "media": {{"type": "image", "object": "{HEX}", "caption": "Tu boleto"}}}}"#
    );
    let r = SendRequest::parse(body.as_bytes()).unwrap();
    assert!(matches!(r.kind, SendKind::Media { .. }));
    assert_eq!(r.body_parameter_count(), 0);
    let v = r.to_outbound_with("snd_2", Some("1013")).to_json();
    assert_eq!(v["type"], "image");
    assert_eq!(
        v["image"],
        serde_json::json!({"id": "1013", "caption": "Tu boleto"})
    );
    assert!(v.get("biz_opaque_callback_data").is_none());
    assert!(v.get("template").is_none() && v.get("text").is_none());
    // Spelled otherwise, the same request: the same hash (idempotency).
    let other = format!(
        r#"{{"media": {{"caption": "Tu boleto", "object": "{}", "type": "image"}}, "to": "5215512345678"}}"#,
        HEX.to_ascii_uppercase()
    );
    assert_eq!(
        SendRequest::parse(other.as_bytes()).unwrap().hash(),
        r.hash()
    );
}

#[test]
fn media_refusals_name_the_problem() {
    let to = r#""to": "+525512345678""#;
    let media = format!(r#""media": {{"type": "image", "object": "{HEX}"}}"#);
    let header = format!(r#""header": {{"type": "document", "object": "{HEX}"}}"#);
    assert_eq!(
        code(&format!(r#"{{{to}, "template": "t", {media}}}"#)),
        "template_and_media"
    );
    assert_eq!(
        code(&format!(r#"{{{to}, "text": "hola", {media}}}"#)),
        "template_and_media"
    );
    assert_eq!(
        code(&format!(r#"{{{to}, "language": "es", {media}}}"#)),
        "media_with_template_fields"
    );
    assert_eq!(
        code(&format!(r#"{{{to}, {header}, {media}}}"#)),
        "media_with_template_fields"
    );
    assert_eq!(
        code(&format!(r#"{{{to}, "text": "hola", {header}}}"#)),
        "text_with_template_fields"
    );
    assert_eq!(
        code(&format!(
            r#"{{{to}, "template": "t", {header},
            "components": [{{"type": "header", "parameters": []}}]}}"#
        )),
        "invalid_components"
    );
    assert_eq!(
        code(&format!(
            r#"{{{to}, "template": "t", "header": {{"type": "audio", "object": "{HEX}"}}}}"#
        )),
        "invalid_media"
    );
    assert_eq!(
        code(&format!(
            r#"{{{to}, "media": {{"type": "image", "object": "{HEX}", "link": "https://x"}}}}"#
        )),
        "invalid_json"
    );
    assert_eq!(
        code(&format!(r#"{{{to}, "media": {{"type": "image"}}}}"#)),
        "invalid_media"
    );
}

#[test]
fn from_names_a_number_by_label_or_id_and_is_kept_in_the_hash() {
    let base = r#""to": "+5215512345678", "template": "t", "language": "es_MX""#;
    let parse = |extra: &str| SendRequest::parse(format!("{{{base}{extra}}}").as_bytes());
    assert_eq!(parse("").unwrap().from, None);
    assert_eq!(parse(r#", "from": "  ""#).unwrap().from, None);
    let label = parse(r#", "from": " ventas-mx ""#).unwrap();
    assert_eq!(label.from.as_deref(), Some("ventas-mx"));
    let id = parse(r#", "from": "106540352242922""#).unwrap();
    assert_eq!(id.from.as_deref(), Some("106540352242922"));
    // Two sends from two numbers are two requests, not a replay of one.
    assert_ne!(label.hash(), id.hash());
    assert_ne!(label.hash(), parse("").unwrap().hash());
    for bad in [
        r#""ventas mx""#,
        r#""../x""#,
        &format!("\"{}\"", "a".repeat(65)),
    ] {
        assert_eq!(
            code(&format!("{{{base}, \"from\": {bad}}}")),
            "invalid_from",
            "{bad}"
        );
    }
}
