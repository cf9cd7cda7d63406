//! The sender with files: uploaded once per file and number, then sent by id; failures of the
//! upload classified like a message's.

use serde_json::json;
use wabridge_core::consent::ContactRef;
use wabridge_core::sends::store::SendState;

use super::*;

fn factura(to: &str, object: &str) -> Vec<u8> {
    json!({"to": to, "template": "factura_emitida", "language": "es_MX", "category": "UTILITY",
           "parameters": ["1042"],
           "header": {"type": "document", "object": object}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_file_is_uploaded_once_then_every_send_goes_by_its_id() {
    let s = setup().await;
    let pdf = pdf();
    let info = upload(
        &s.library,
        "application/pdf",
        Some("factura-1042.pdf"),
        &pdf,
    )
    .await;
    let object = info.sha256.hex();

    let first = s
        .sends
        .submit(&factura("+525512340001", &object), None)
        .await
        .unwrap();
    // The stored request carries what the sender needs: the type and the upload's file name.
    assert_eq!(first.request["header"]["mime_type"], "application/pdf");
    assert_eq!(first.request["header"]["filename"], "factura-1042.pdf");
    assert!(matches!(drain(&s).await[..], [Outcome::Done]));

    let uploads = s.meta.uploads();
    assert_eq!(uploads.len(), 1, "one upload");
    let form = upload_form(&uploads[0]);
    assert_eq!(form[1].data, b"application/pdf");
    assert_eq!(form[2].content_type.as_deref(), Some("application/pdf"));
    assert_eq!(form[2].filename.as_deref(), Some("factura-1042.pdf"));
    assert!(form[2].data == pdf, "the file byte for byte");

    let sent = &s.meta.messages()[0];
    assert_eq!(sent["type"], "template");
    assert_eq!(
        sent["template"]["components"][0],
        json!({"type": "header", "parameters": [{"type": "document",
            "document": {"id": "M1", "filename": "factura-1042.pdf"}}]})
    );
    assert_eq!(
        sent["template"]["components"][1]["parameters"][0]["text"],
        "1042"
    );
    assert_eq!(s.sends.get(&first.id).await.unwrap().state, SendState::Sent);
    // The media index keeps the file for the upload and for the message to the recipient
    // (retention counts from both; erasing the recipient removes their use).
    assert_eq!(
        users_of(&s, &info.sha256.object_key()),
        [r#"Text("phone:525512340001")"#, r#"Text("upload")"#]
    );

    // The same file to someone else: no second upload, the same id.
    s.sends
        .submit(&factura("+525512340002", &object), None)
        .await
        .unwrap();
    drain(&s).await;
    assert_eq!(s.meta.uploads().len(), 1, "the upload is reused");
    let second = &s.meta.messages()[1];
    assert_eq!(
        second["template"]["components"][0]["parameters"][0]["document"]["id"],
        "M1"
    );

    // A free-form image inside the window: uploaded (another file), sent by id with its caption.
    let png = png();
    let image = upload(&s.library, "image/png", None, &png).await;
    let to = "+525512340003";
    let contact = ContactRef::parse(to).unwrap();
    let body = json!({"to": to, "media": {"type": "image", "object": image.sha256.hex(),
                      "caption": "Tu boleto"}})
    .to_string();
    let (status, code, _) = refusal(s.sends.submit(body.as_bytes(), None).await.unwrap_err());
    assert_eq!((status, code), (422, "outside_customer_service_window"));
    s.sends
        .policy
        .window
        .record_inbound(&contact, None, wabridge_core::clock::now_ms() - 60_000)
        .await
        .unwrap();
    s.sends.submit(body.as_bytes(), None).await.unwrap();
    drain(&s).await;
    let uploads = s.meta.uploads();
    assert_eq!(uploads.len(), 2);
    let form = upload_form(&uploads[1]);
    assert_eq!(form[1].data, b"image/png");
    assert!(form[2].data == png);
    let sent = &s.meta.messages()[2];
    assert_eq!(sent["type"], "image");
    assert_eq!(sent["image"], json!({"id": "M2", "caption": "Tu boleto"}));
    assert!(sent.get("biz_opaque_callback_data").is_none());
}

#[tokio::test]
async fn an_upload_meta_cannot_take_now_waits_on_the_queue_then_goes() {
    let s = setup().await;
    let info = upload(&s.library, "application/pdf", None, &pdf()).await;
    s.meta.script_upload(503, json!({}));
    let send = s
        .sends
        .submit(&factura("+525512340011", &info.sha256.hex()), None)
        .await
        .unwrap();
    let outcomes = drain(&s).await;
    assert!(
        matches!(&outcomes[..], [Outcome::Retry { reason, .. }] if reason.contains("uploading the file")),
        "{outcomes:?}"
    );
    assert!(
        s.meta.messages().is_empty(),
        "nothing sent without its file"
    );
    assert_eq!(
        s.sends.get(&send.id).await.unwrap().state,
        SendState::Queued
    );
    // The first retry waits at most a second; then the upload and the message go.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(drain(&s).await[..], [Outcome::Done]));
    assert_eq!(s.meta.uploads().len(), 2);
    assert_eq!(s.sends.get(&send.id).await.unwrap().state, SendState::Sent);
    let sent = &s.meta.messages()[0];
    assert_eq!(
        sent["template"]["components"][0]["parameters"][0]["document"]["id"],
        "M2"
    );
}

#[tokio::test]
async fn a_file_meta_refuses_fails_the_send_with_metas_reason() {
    let s = setup().await;
    let info = upload(&s.library, "application/pdf", None, &pdf()).await;
    s.meta.script_upload(
        400,
        json!({"error": {"message": "Media upload error", "type": "OAuthException",
               "code": 131053, "error_data": {"messaging_product": "whatsapp",
               "details": "Unsupported file"}, "fbtrace_id": "x"}}),
    );
    let send = s
        .sends
        .submit(&factura("+525512340012", &info.sha256.hex()), None)
        .await
        .unwrap();
    assert!(matches!(drain(&s).await[..], [Outcome::Done]));
    let failed = s.sends.get(&send.id).await.unwrap();
    assert_eq!(failed.state, SendState::Failed, "{failed:?}");
    let error = failed.error.unwrap();
    assert_eq!(error.code, "meta_131053");
    assert!(
        error.message.contains("uploading the file"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("Unsupported file"),
        "{}",
        error.message
    );
    assert!(s.meta.messages().is_empty());
}

#[tokio::test]
async fn a_file_gone_before_the_sender_fails_the_send() {
    let s = setup().await;
    let info = upload(&s.library, "application/pdf", None, &pdf()).await;
    let send = s
        .sends
        .submit(&factura("+525512340021", &info.sha256.hex()), None)
        .await
        .unwrap();
    // Erased (or purged) while the send waited.
    s.library
        .store()
        .unwrap()
        .delete(&info.sha256.object_key())
        .await
        .unwrap();
    drain(&s).await;
    let failed = s.sends.get(&send.id).await.unwrap();
    assert_eq!(failed.state, SendState::Failed);
    assert_eq!(failed.error.unwrap().code, "media_object_not_found");
    assert!(s.meta.uploads().is_empty() && s.meta.messages().is_empty());
}
