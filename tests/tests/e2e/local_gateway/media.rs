//! Inbound media through the real `wabridge serve`: a customer's photo and voice note arrive by
//! webhook, their activities land first (`pending`), the media consumer fetches each file from a
//! local server playing Meta's media endpoint and CDN (real bytes and SHA-256, an expired URL),
//! and one `media` record per file follows with its link; the link serves the same bytes with
//! the right type, and a tampered or expired token answers 403. Failures (gone at Meta, a type
//! WhatsApp does not allow, bytes that never match) are recorded, never stored.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_core::media::links::LinkSigner;
use wabridge_core::media::Sha256Digest;
use wabridge_tests::gateway::Gateway;

use crate::media_fetch::{self, File, TOKEN};

const PUBLIC_URL: &str = "http://gateway.test";

fn media_message(id: &str, kind: &str, media_id: &str, extra: Value) -> Vec<u8> {
    let mut media = json!({"id": media_id});
    if let (Some(m), Some(e)) = (media.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Lucía"}, "wa_id": "5215512345678"}],
            "messages": [{"from": "5215512345678", "id": id, "timestamp": "1749416383",
                          "type": kind, kind: media}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

fn start(data: &Path, meta_url: &str) -> Gateway {
    let mut env = super::ENV.to_vec();
    env.extend([
        ("WHATSAPP_API_URL", meta_url),
        ("WHATSAPP_ACCESS_TOKEN", TOKEN),
        ("WABRIDGE_PUBLIC_URL", PUBLIC_URL),
    ]);
    Gateway::start_in(data, &env)
}

/// The `media` records once `n` of them are there (the consumer runs beside crm-sync).
fn wait_media(gw: &Gateway, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let media: Vec<Value> = gw
            .records()
            .into_iter()
            .filter(|r| r["kind"] == "media")
            .collect();
        if media.len() >= n {
            return media;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} media records: {media:?}",
            media.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn activity(gw: &Gateway, wamid: &str) -> Value {
    gw.records()
        .into_iter()
        .find(|r| r["kind"] == "activity" && r["message_id"] == wamid)
        .unwrap_or_else(|| panic!("no activity {wamid}"))
}

/// The files under `DATA/media/` (relative to `DATA`), pending ones included.
fn stored_files(data: &Path) -> Vec<String> {
    media_fetch::files_in(&data.join("media"))
        .into_iter()
        .map(|f| format!("media/{f}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customers_photo_and_voice_note_reach_the_crm_with_links_that_open_them() {
    let (meta, meta_url) = media_fetch::start().await;
    let voice = media_fetch::voice_note();
    meta.files.lock().unwrap().insert(
        "2001".into(),
        File {
            bytes: media_fetch::photo(),
            mime: "image/jpeg".into(),
            ..Default::default()
        },
    );
    meta.files.lock().unwrap().insert(
        "2002".into(),
        File {
            bytes: voice.clone(),
            mime: "audio/ogg; codecs=opus".into(),
            expired_urls: 1,
            ..Default::default()
        },
    );
    let data = tempfile::tempdir().unwrap();
    let gw = start(data.path(), &meta_url);
    let photo_hook = media_message(
        "wamid.photo",
        "image",
        "2001",
        json!({"mime_type": "image/jpeg", "caption": "Llegó roto"}),
    );
    let voice_hook = media_message(
        "wamid.voice",
        "audio",
        "2002",
        json!({"mime_type": "audio/ogg; codecs=opus", "voice": true}),
    );
    for hook in [&photo_hook, &voice_hook] {
        assert_eq!(gw.post_signed(hook).await.0, 200);
    }
    let media = wait_media(&gw, 2, Duration::from_secs(30));
    assert!(media.iter().all(|m| m["state"] == "stored"), "{media:?}");

    let photo_sha = Sha256Digest::of(&media_fetch::photo()).hex();
    let voice_sha = Sha256Digest::of(&voice).hex();
    let photo = activity(&gw, "wamid.photo");
    assert_eq!(photo["text"], "Llegó roto");
    let stored = &photo["media"][0]["stored"];
    assert_eq!(photo["media"][0]["state"], "stored", "{photo}");
    assert_eq!(stored["sha256"], photo_sha.as_str());
    assert_eq!(stored["size"], media_fetch::photo().len());
    assert_eq!(stored["mime_type"], "image/jpeg");
    let link = stored["link"].as_str().unwrap();
    let prefix = format!("{PUBLIC_URL}/media/{photo_sha}.jpg?t=");
    assert!(link.starts_with(&prefix), "{link}");
    assert_eq!(
        activity(&gw, "wamid.voice")["media"][0]["stored"]["sha256"],
        voice_sha.as_str()
    );
    // The voice note's first URL had expired: Meta was asked again.
    assert_eq!(meta.handed.lock().unwrap()["2002"], 2);
    assert_eq!(
        stored_files(data.path()),
        {
            let mut want = vec![format!("media/{photo_sha}"), format!("media/{voice_sha}")];
            want.sort();
            want
        },
        "both files, nothing pending"
    );

    // The link opens the file: same bytes, right type.
    let http = reqwest::Client::new();
    let url = link.replacen(PUBLIC_URL, &gw.url, 1);
    let got = http.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "image/jpeg");
    assert_eq!(got.bytes().await.unwrap().to_vec(), media_fetch::photo());

    // A tampered token, another file's token, an expired token: 403, nothing served.
    let tampered = format!("{}{}", &url[..url.len() - 2], "AA");
    let voice_link = activity(&gw, "wamid.voice")["media"][0]["stored"]["link"]
        .as_str()
        .unwrap()
        .to_string();
    let voice_token = voice_link.split_once("?t=").unwrap().1;
    let swapped = format!("{}/media/{photo_sha}.jpg?t={voice_token}", gw.url);
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(data.path().join("secrets.json")).unwrap()).unwrap();
    let signer = LinkSigner::new(secrets["media_link_key"].as_str().unwrap().as_bytes()).unwrap();
    let an_hour_ago = time_now() - 3600;
    let expired = signer.url(&gw.url, &format!("{photo_sha}.jpg"), an_hour_ago);
    for bad in [&tampered, &swapped, &expired] {
        let r = http.get(bad).send().await.unwrap();
        assert_eq!(r.status(), 403, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].is_object() || body["error"].is_string(),
            "{body}"
        );
    }
    // A genuine link of ours for a type we serve, to a file that is not stored: 404.
    let unknown = signer.url(&gw.url, &format!("{}.pdf", "0".repeat(64)), time_now() + 60);
    assert_eq!(http.get(&unknown).send().await.unwrap().status(), 404);

    // Meta redelivers the webhook: nothing is fetched or written again.
    let records_before = gw.records().len();
    assert_eq!(gw.post_signed(&photo_hook).await.0, 200);
    gw.wait_drained();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(*meta.downloads.lock().unwrap(), 2);
    assert_eq!(gw.records().len(), records_before);
    assert_eq!(wait_media(&gw, 2, Duration::from_secs(1)).len(), 2);

    // Erasing the customer deletes their files: the link now finds nothing.
    let erased = gw.cli(&["erase", "--contact", "+52 1 55 1234 5678"], &[]);
    assert!(erased.status.success(), "{erased:?}");
    assert!(
        stored_files(data.path()).is_empty(),
        "{:?}",
        stored_files(data.path())
    );
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_refused_and_tampered_media_are_recorded_and_never_stored() {
    let (meta, meta_url) = media_fetch::start().await;
    meta.files.lock().unwrap().insert(
        "3002".into(),
        File {
            bytes: b"MZ not a document".to_vec(),
            mime: "application/x-msdownload".into(),
            ..Default::default()
        },
    );
    meta.files.lock().unwrap().insert(
        "3003".into(),
        File {
            bytes: media_fetch::photo(),
            mime: "image/jpeg".into(),
            claimed_sha: Some(Sha256Digest::of(b"something else").hex()),
            ..Default::default()
        },
    );
    let data = tempfile::tempdir().unwrap();
    let gw = start(data.path(), &meta_url);
    // 3001 does not exist at Meta (error 100): one call, a terminal failure, no retry storm.
    for (id, kind, media_id) in [
        ("wamid.gone", "image", "3001"),
        ("wamid.exe", "document", "3002"),
        ("wamid.bad", "image", "3003"),
    ] {
        let hook = media_message(id, kind, media_id, json!({}));
        assert_eq!(gw.post_signed(&hook).await.0, 200);
    }
    // The tampered file is retried (backoff 1 s, 2 s) then quarantined.
    let media = wait_media(&gw, 3, Duration::from_secs(40));
    let by_media = |id: &str| {
        media
            .iter()
            .find(|m| m["media_id"] == id)
            .unwrap_or_else(|| panic!("no media record for {id}: {media:?}"))
            .clone()
    };
    let gone = by_media("3001");
    assert_eq!(gone["state"], "failed");
    assert_eq!(gone["error"]["code"], "media_gone");
    assert_eq!(
        meta.graph_calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("3001?"))
            .count(),
        1
    );
    let exe = by_media("3002");
    assert_eq!(exe["state"], "refused");
    assert_eq!(exe["error"]["code"], "media_type_not_allowed");
    let bad = by_media("3003");
    assert_eq!(bad["state"], "failed");
    assert_eq!(bad["error"]["code"], "media_quarantined");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SHA-256"),
        "{bad}"
    );
    assert_eq!(
        activity(&gw, "wamid.bad")["media"][0]["error"]["code"],
        "media_quarantined"
    );
    assert!(
        stored_files(data.path()).is_empty(),
        "nothing stored, nothing pending: {:?}",
        stored_files(data.path())
    );
}
