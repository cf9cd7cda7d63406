//! Inbound media with a numbers registry through `wabridge serve` (issue 21): each number's
//! files are fetched with that number's token, and no `WHATSAPP_ACCESS_TOKEN` is needed. Meta's
//! media endpoint (a local stand-in) accepts only `ventas-mx`'s token: its photo is stored,
//! while `soporte-co`'s is asked for with CO's id and token, refused, and never stored.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_tests::gateway::Gateway;

use crate::media_fetch::{self, File, TOKEN};

const MX: &str = "106540352242922";
const CO: &str = "206540352242922";

fn photo_message(number: &str, wamid: &str, media_id: &str) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
         "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
         "contacts": [{"profile": {"name": "Lucía"}, "wa_id": "5215512345678"}],
         "messages": [{"from": "5215512345678", "id": wamid, "timestamp": "1749416383",
                       "type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}]}}]}]})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_numbers_media_is_fetched_with_its_own_token() {
    let (meta, meta_url) = media_fetch::start().await;
    for id in ["3001", "3002"] {
        meta.files.lock().unwrap().insert(
            id.into(),
            File {
                bytes: media_fetch::photo(),
                mime: "image/jpeg".into(),
                ..Default::default()
            },
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[number]]
label = "ventas-mx"
phone_number_id = "{MX}"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}

[[number]]
label = "soporte-co"
phone_number_id = "{CO}"
waba_id = "102290129340398"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
crm = {{ kind = "local" }}
"#
        ),
    )
    .unwrap();
    let gw = Gateway::start_in(
        &dir.path().join("data"),
        &[
            ("WHATSAPP_APP_SECRET", "numbers-media-secret"),
            ("WHATSAPP_API_URL", &meta_url),
            ("WABRIDGE_NUMBERS", file.to_str().unwrap()),
            ("WHATSAPP_ACCESS_TOKEN_MX", TOKEN),
            ("WHATSAPP_ACCESS_TOKEN_CO", "EAAG-co-not-the-media-token"),
        ],
    );
    assert_eq!(
        gw.post_signed(&photo_message(MX, "wamid.mx", "3001"))
            .await
            .0,
        200
    );
    assert_eq!(
        gw.post_signed(&photo_message(CO, "wamid.co", "3002"))
            .await
            .0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let media = loop {
        let media: Vec<Value> = gw
            .records()
            .into_iter()
            .filter(|r| r["kind"] == "media")
            .collect();
        let co_asked = meta
            .graph_calls
            .lock()
            .unwrap()
            .contains(&format!("3002?{CO}"));
        if !media.is_empty() && co_asked {
            break media;
        }
        assert!(Instant::now() < deadline, "media records: {media:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        media.len(),
        1,
        "only MX's token opens Meta's endpoint: {media:?}"
    );
    assert_eq!(media[0]["state"], "stored", "{media:?}");
    assert_eq!(media[0]["message_id"], "wamid.mx", "{media:?}");
    let calls = meta.graph_calls.lock().unwrap().clone();
    assert!(calls.contains(&format!("3001?{MX}")), "{calls:?}");
}
