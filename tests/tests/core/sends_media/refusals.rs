//! `POST /sends` with a file checks it against what is stored, before anything is queued.

use serde_json::json;

use super::*;

fn template_with(header: Value) -> Vec<u8> {
    json!({"to": "+525512340031", "template": "factura_emitida", "language": "es_MX",
           "header": header})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn files_that_cannot_go_are_refused_naming_the_problem() {
    let s = setup().await;
    let pdf = upload(&s.library, "application/pdf", None, &pdf()).await;
    let text = upload(&s.library, "text/plain", Some("notas.txt"), b"Pedido 1042").await;
    let unknown = "0".repeat(64);

    let cases = [
        // Never uploaded.
        (
            json!({"type": "document", "object": unknown}),
            "media_object_not_found",
        ),
        // A PDF is not an image: Meta's types for images are named.
        (
            json!({"type": "image", "object": pdf.sha256.hex()}),
            "media_type_not_allowed",
        ),
        // Media templates take PDF documents only.
        (
            json!({"type": "document", "object": text.sha256.hex()}),
            "media_type_not_allowed",
        ),
    ];
    for (header, code) in cases {
        let e = s.sends.submit(&template_with(header.clone()), None).await;
        let (status, got, message) = refusal(e.unwrap_err());
        assert_eq!((status, got), (422, code), "{header}: {message}");
        match code {
            "media_object_not_found" => assert!(message.contains(&unknown), "{message}"),
            _ if header["type"] == "image" => {
                assert!(message.contains("image/jpeg, image/png"), "{message}")
            }
            _ => assert!(message.contains("PDF"), "{message}"),
        }
    }
    assert!(s
        .queue
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());

    // A file the gateway did not receive itself (a customer's, stored by the inbound fetch)
    // needs its type named; then it goes.
    let mut pending = s.library.store().unwrap().begin().await.unwrap();
    let jpeg = b"\xff\xd8\xff\xe0 a customer's photo".to_vec();
    pending.write(&jpeg).await.unwrap();
    let digest = wabridge_core::media::Sha256Digest::of(&jpeg);
    pending.commit(&digest.object_key()).await.unwrap();
    let free_form = |mime: Option<&str>| {
        let mut media = json!({"type": "image", "object": digest.hex()});
        if let Some(m) = mime {
            media["mime_type"] = json!(m);
        }
        json!({"to": "+525512340032", "media": media}).to_string()
    };
    let contact = wabridge_core::consent::ContactRef::parse("+525512340032").unwrap();
    s.sends
        .policy
        .window
        .record_inbound(&contact, None, wabridge_core::clock::now_ms())
        .await
        .unwrap();
    let (status, code, _) = refusal(
        s.sends
            .submit(free_form(None).as_bytes(), None)
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code), (422, "media_type_unknown"));
    let sent = s
        .sends
        .submit(free_form(Some("image/jpeg")).as_bytes(), None)
        .await
        .unwrap();
    assert_eq!(sent.request["media"]["mime_type"], "image/jpeg");
}

#[tokio::test]
async fn a_gateway_without_a_media_store_refuses_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.sqlite")).unwrap();
    let sends = SqliteEngine::new(db).sends(wabridge_tests::admin_keys("test-api-key"));
    let body = template_with(json!({"type": "document", "object": "a".repeat(64)}));
    let (status, code, message) = refusal(sends.submit(&body, None).await.unwrap_err());
    assert_eq!((status, code), (422, "media_unavailable"), "{message}");
}
