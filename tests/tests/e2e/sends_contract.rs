//! Contract with Meta's own schema: every kind of request the sender makes goes through Prism
//! mocking `POST /{version}/{phone-number-id}/messages` from Meta's OpenAPI spec. Prism answers
//! 422 with the violations when a request does not match; that fails the test.
//!
//! Kinds: a template to a phone number (with and without components; header, body and button
//! parameters), a template to a BSUID (`recipient`), a free-form text to a phone number and to
//! a BSUID. Also checked: the `Authorization: Bearer` and `User-Agent: name/1.2.3` headers the
//! spec requires (Prism validates both).

use serde_json::json;
use wabridge_core::sends::graph::MessageApi;
use wabridge_core::sends::graph::{
    Address, Content, GraphConfig, Language, OutboundMessage, Template, Text,
};
use wabridge_core::sends::request::SendRequest;
use wabridge_graph::GraphClient;
use wabridge_tests::prism::{spec_path, Prism};

fn client(prism: &Prism) -> GraphClient {
    GraphClient::new(GraphConfig {
        base_url: prism.url().to_string(),
        version: "v23.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: "EAAGtestToken123".into(),
        timeout: std::time::Duration::from_secs(10),
    })
}

fn template(components: Vec<serde_json::Value>) -> Content {
    Content::Template(Template {
        name: "order_confirmation".into(),
        language: Language::new("es_MX"),
        components,
    })
}

fn full_components() -> Vec<serde_json::Value> {
    vec![
        json!({"type": "header", "parameters": [{"type": "text", "text": "Pedido 1042"}]}),
        json!({"type": "body", "parameters": [
            {"type": "text", "text": "Ana"},
            {"type": "text", "text": "$1,250.00 MXN"},
        ]}),
        // Meta's spec restricts `index` to a pattern that happens to exclude "0"; "1" is the
        // second button.
        json!({"type": "button", "sub_type": "quick_reply", "index": "1",
               "parameters": [{"type": "payload", "payload": "TRACK_ORDER"}]}),
        json!({"type": "button", "sub_type": "url", "index": "2",
               "parameters": [{"type": "text", "text": "1042"}]}),
    ]
}

async fn send_all(client: &GraphClient, messages: &[OutboundMessage]) {
    for m in messages {
        let body = m.to_json();
        match client.send(m).await {
            Ok(accepted) => assert!(
                accepted
                    .message_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("wamid.")),
                "Prism's example answer carries a wamid: {accepted:?}"
            ),
            Err(failure) => panic!("Prism refused {body}: {failure:?}"),
        }
    }
}

#[tokio::test]
async fn every_phone_addressed_request_matches_metas_spec() {
    let Some(prism) = Prism::start() else { return };
    let client = client(&prism);
    let to = || Address::Phone("+5215512345678".into());
    let messages = vec![
        OutboundMessage {
            address: to(),
            content: template(full_components()),
            callback_data: "snd_01".into(),
        },
        OutboundMessage {
            address: to(),
            content: template(vec![]),
            callback_data: "snd_02".into(),
        },
        OutboundMessage {
            address: to(),
            content: Content::Text(Text {
                body: "Hola Ana, tu pedido va en camino.".into(),
                preview_url: None,
            }),
            callback_data: "snd_03".into(),
        },
        OutboundMessage {
            address: to(),
            content: Content::Text(Text {
                body: "Sigue tu pedido: https://example.com/p/1042".into(),
                preview_url: Some(true),
            }),
            callback_data: "snd_04".into(),
        },
    ];
    send_all(&client, &messages).await;
    // And what the sender builds from `POST /sends` bodies (parameters become a body component).
    let bodies = [
        r#"{"to": "+52 1 55 1234 5678", "template": "order_confirmation", "language": "es_MX", "parameters": ["Ana", "1042"]}"#,
        r#"{"to": "+5511987654321", "template": "boleto", "language": "pt_BR", "category": "UTILITY",
            "components": [{"type": "header", "parameters": [{"type": "document", "document": {"link": "https://example.com/b.pdf", "filename": "boleto.pdf"}}]},
                           {"type": "body", "parameters": [{"type": "text", "text": "R$ 120,00"}]}]}"#,
        r#"{"to": "+541151234567", "template": "promo", "language": "es_AR"}"#,
        r#"{"to": "+525512345678", "text": "Hola"}"#,
    ];
    let built: Vec<OutboundMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            SendRequest::parse(b.as_bytes())
                .unwrap()
                .to_outbound(&format!("snd_b{i}"))
        })
        .collect();
    send_all(&client, &built).await;
}

/// The checks are real: a request that breaks the spec is refused (so a Prism that accepted
/// anything would fail this test).
#[tokio::test]
async fn prism_refuses_a_request_that_breaks_the_spec() {
    let Some(prism) = Prism::start() else { return };
    let url = format!("{}/v23.0/106540352242922/messages", prism.url());
    let http = reqwest::Client::new();
    // No `language.policy`: the spec requires it.
    let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5215512345678",
        "type": "template", "template": {"name": "x", "language": {"code": "es_MX"}}});
    let r = http
        .post(&url)
        .bearer_auth("EAAGtestToken123")
        .header("user-agent", wabridge_core::sends::graph::USER_AGENT)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    // A User-Agent not in `name/1.2.3` form is refused too.
    let mut ok = body.clone();
    ok["template"]["language"]["policy"] = json!("deterministic");
    let r = http
        .post(&url)
        .bearer_auth("EAAGtestToken123")
        .header("user-agent", "wabridge")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    // And through the client, a 422 is a terminal failure naming Prism's complaint.
    let client = client(&prism);
    let bad = OutboundMessage {
        address: Address::Phone("5215512345678".into()),
        content: Content::Template(Template {
            name: "x".into(),
            language: Language::new("es_MX"),
            components: vec![
                json!({"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []}),
            ],
        }),
        callback_data: "snd_x".into(),
    };
    let failure = client.send(&bad).await.unwrap_err();
    assert!(!failure.is_retryable(), "{failure:?}");
}

/// Meta's v23.0 spec predates business-scoped user ids: it lists `to` as required and has no
/// `recipient` property. Meta's later docs let a send address `recipient` (a BSUID) instead.
/// This test patches exactly that rule in a copy of the spec (`to` no longer required,
/// `recipient` declared as a string) and checks everything else of BSUID-addressed requests.
#[tokio::test]
async fn bsuid_addressed_requests_match_metas_spec_with_recipient_allowed() {
    let Some(spec) = spec_path() else {
        if wabridge_tests::prism::services_required() {
            panic!("Meta's OpenAPI spec is missing");
        }
        return;
    };
    let text = std::fs::read_to_string(&spec).unwrap();
    let required = "      required:\n      - messaging_product\n      - recipient_type\n      - to\n      - type\n      properties:\n";
    assert_eq!(
        text.matches(required).count(),
        1,
        "BaseMessageProperties moved in the spec"
    );
    let patched = text.replacen(
        required,
        "      required:\n      - messaging_product\n      - recipient_type\n      - type\n      properties:\n        recipient:\n          type: string\n",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let patched_path = dir.path().join("spec-with-recipient.yaml");
    std::fs::write(&patched_path, patched).unwrap();
    let Some(prism) = Prism::start_with_spec(&patched_path) else {
        return;
    };
    let client = client(&prism);
    let bsuid = || Address::Bsuid("MX.8f3kQ2Lx9".into());
    let messages = vec![
        OutboundMessage {
            address: bsuid(),
            content: template(full_components()),
            callback_data: "snd_11".into(),
        },
        OutboundMessage {
            address: bsuid(),
            content: Content::Text(Text {
                body: "Hola".into(),
                preview_url: None,
            }),
            callback_data: "snd_12".into(),
        },
    ];
    for m in &messages {
        let body = m.to_json();
        assert!(
            body.get("to").is_none() && body["recipient"] == "MX.8f3kQ2Lx9",
            "{body}"
        );
    }
    send_all(&client, &messages).await;
}
