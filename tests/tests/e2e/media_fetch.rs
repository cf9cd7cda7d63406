//! Fetching inbound media into the local store, with the real Graph client against a local
//! server playing Meta's media endpoint and its CDN (real bytes and SHA-256, URLs that expire,
//! 404s, 5xx, tampered bytes, a size that lies), and Prism checking the metadata request against
//! Meta's spec. Nothing partial or tampered is ever stored; a file already stored is not
//! downloaded again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use wabridge_core::media::fetch::{FetchError, MediaFetcher, MediaSource, Wanted};
use wabridge_core::media::{MediaKind, Sha256Digest};
use wabridge_graph::{GraphMedia, MediaConfig};
use wabridge_sqlite::LocalMediaStore;

pub(crate) const TOKEN: &str = "EAAGmediaToken";

/// One file Meta holds, and how its CDN behaves.
#[derive(Clone, Default)]
pub(crate) struct File {
    pub(crate) bytes: Vec<u8>,
    pub(crate) mime: String,
    /// What Meta claims (defaults to the bytes' own).
    pub(crate) claimed_sha: Option<String>,
    pub(crate) claimed_size: Option<u64>,
    /// The first N download URLs handed out are already expired.
    pub(crate) expired_urls: usize,
    /// The CDN answers 503 this many times first.
    pub(crate) cdn_failures: usize,
}

#[derive(Clone, Default)]
pub(crate) struct Meta {
    pub(crate) files: Arc<Mutex<HashMap<String, File>>>,
    pub(crate) handed: Arc<Mutex<HashMap<String, usize>>>,
    pub(crate) downloads: Arc<Mutex<usize>>,
    pub(crate) graph_calls: Arc<Mutex<Vec<String>>>,
}

async fn graph(
    State(m): State<Meta>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    m.graph_calls.lock().unwrap().push(format!(
        "{id}?{}",
        q.get("phone_number_id").cloned().unwrap_or_default()
    ));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": "Invalid OAuth access token", "code": 190}})),
        )
            .into_response();
    }
    let Some(f) = m.files.lock().unwrap().get(&id).cloned() else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "(#100) Unsupported get request. Object with ID does not exist", "type": "GraphMethodException", "code": 100, "error_subcode": 33}}))).into_response();
    };
    let n = {
        let mut h = m.handed.lock().unwrap();
        let n = h.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    // Meta writes the digest in base64.
    let sha = f.claimed_sha.clone().unwrap_or_else(|| {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&f.bytes))
    });
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    axum::Json(json!({
        "messaging_product": "whatsapp", "id": id, "mime_type": f.mime, "sha256": sha,
        "file_size": f.claimed_size.unwrap_or(f.bytes.len() as u64).to_string(),
        "url": format!("http://{host}/cdn/{id}/{n}"),
    }))
    .into_response()
}

async fn cdn(
    State(m): State<Meta>,
    Path((id, n)): Path<(String, usize)>,
    headers: HeaderMap,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut files = m.files.lock().unwrap();
    let Some(f) = files.get_mut(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if n <= f.expired_urls {
        return StatusCode::NOT_FOUND.into_response();
    }
    if f.cdn_failures > 0 {
        f.cdn_failures -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    *m.downloads.lock().unwrap() += 1;
    ([("content-type", f.mime.clone())], f.bytes.clone()).into_response()
}

/// Meta's media endpoint and CDN on a free port: (its state, its base URL).
pub(crate) async fn start() -> (Meta, String) {
    let meta = Meta::default();
    let app = axum::Router::new()
        .route("/cdn/{id}/{n}", axum::routing::get(cdn))
        .route("/{v}/{id}", axum::routing::get(graph))
        .with_state(meta.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (meta, url)
}

fn client(url: &str) -> GraphMedia {
    GraphMedia::new(MediaConfig {
        base_url: url.into(),
        version: "v23.0".into(),
        access_token: TOKEN.into(),
        phone_number_id: Some("106540352242922".into()),
        timeout: Duration::from_secs(10),
    })
}

/// Every file under the store's folder, pending ones included.
pub(crate) fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push(e.strip_prefix(dir).unwrap().display().to_string());
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// An Ogg voice note's bytes (its header, then generated content).
pub(crate) fn voice_note() -> Vec<u8> {
    b"OggS"
        .iter()
        .copied()
        .chain((0..40_000u32).map(|i| (i % 199) as u8))
        .collect()
}

pub(crate) fn photo() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn a_photo_and_a_voice_note_are_stored_verified_and_once() {
    let (meta, url) = start().await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalMediaStore::open(data.path()).unwrap());
    let fetcher = MediaFetcher::new(Arc::new(client(&url)), store.clone());
    let voice = voice_note();
    meta.files.lock().unwrap().insert(
        "1001".into(),
        File {
            bytes: photo(),
            mime: "image/jpeg".into(),
            ..Default::default()
        },
    );
    meta.files.lock().unwrap().insert(
        "1002".into(),
        File {
            bytes: voice.clone(),
            mime: "audio/ogg; codecs=opus".into(),
            expired_urls: 1,
            ..Default::default()
        },
    );

    let image = fetcher
        .fetch(&wanted("1001", MediaKind::Image))
        .await
        .unwrap();
    assert_eq!(image.sha256, Sha256Digest::of(&photo()));
    assert_eq!((image.size, image.downloaded), (300_000, true));
    let stored = std::fs::read(store.path_of(&image.key).unwrap()).unwrap();
    assert_eq!(stored, photo());
    // The voice note's first URL had expired: asked again, then stored.
    let audio = fetcher
        .fetch(&wanted("1002", MediaKind::Audio))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(store.path_of(&audio.key).unwrap()).unwrap(),
        voice
    );
    assert_eq!(meta.handed.lock().unwrap()["1002"], 2);
    // A redelivery finds the file stored: no second download.
    let again = fetcher
        .fetch(&wanted("1001", MediaKind::Image))
        .await
        .unwrap();
    assert!(!again.downloaded);
    assert_eq!(*meta.downloads.lock().unwrap(), 2);
    // The metadata request names the number.
    assert!(meta
        .graph_calls
        .lock()
        .unwrap()
        .iter()
        .all(|c| c.ends_with("?106540352242922")));
    let mut expected = vec![
        format!("media/{}", image.sha256.hex()),
        format!("media/{}", audio.sha256.hex()),
    ];
    expected.sort();
    assert_eq!(files_in(data.path()), expected, "nothing pending is left");
}

#[tokio::test]
async fn failures_are_classified_and_nothing_partial_survives() {
    let (meta, url) = start().await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalMediaStore::open(data.path()).unwrap());
    let fetcher = MediaFetcher::new(Arc::new(client(&url)), store.clone());
    let add = |id: &str, f: File| {
        meta.files.lock().unwrap().insert(id.into(), f);
    };
    let jpeg = |f: File| File {
        bytes: photo(),
        mime: "image/jpeg".into(),
        ..f
    };

    // Gone at Meta: terminal.
    let e = fetcher
        .fetch(&wanted("4040", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::Gone { .. }) && !e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not exist"), "{e}");
    // The CDN fails: retry later.
    add(
        "5030",
        jpeg(File {
            cdn_failures: 5,
            ..Default::default()
        }),
    );
    let e = fetcher
        .fetch(&wanted("5030", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::Retry { .. }) && e.is_retryable(),
        "{e:?}"
    );
    // Tampered bytes: Meta's SHA-256 is another file's.
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    add(
        "6660",
        jpeg(File {
            claimed_sha: Some(other),
            ..Default::default()
        }),
    );
    let e = fetcher
        .fetch(&wanted("6660", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("SHA-256"), "{e}");
    // Truncated: fewer bytes than Meta said.
    add(
        "6661",
        jpeg(File {
            claimed_size: Some(400_000),
            ..Default::default()
        }),
    );
    let e = fetcher
        .fetch(&wanted("6661", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("300000 bytes where Meta said 400000"),
        "{e}"
    );
    // Over the limit by what Meta says: refused before any download.
    let before = *meta.downloads.lock().unwrap();
    add(
        "4130",
        File {
            bytes: vec![1; 10],
            mime: "image/png".into(),
            claimed_size: Some(6 * 1024 * 1024),
            ..Default::default()
        },
    );
    let e = fetcher
        .fetch(&wanted("4130", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::Refused(_)) && !e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(*meta.downloads.lock().unwrap(), before);
    // Over the limit while streaming (Meta's size lies): stopped at the limit.
    add(
        "4131",
        File {
            bytes: vec![7; 6 * 1024 * 1024],
            mime: "image/png".into(),
            claimed_size: Some(10),
            claimed_sha: Some(base64::engine::general_purpose::STANDARD.encode([1u8; 32])),
            ..Default::default()
        },
    );
    let e = fetcher
        .fetch(&wanted("4131", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("over Meta's limit"), "{e}");
    // A type outside the list.
    add(
        "4220",
        File {
            bytes: vec![1; 10],
            mime: "image/gif".into(),
            ..Default::default()
        },
    );
    let e = fetcher
        .fetch(&wanted("4220", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("image/gif is not a type"), "{e}");
    // The URL expires twice in a row: retry later, not a loop.
    add(
        "4100",
        jpeg(File {
            expired_urls: 5,
            ..Default::default()
        }),
    );
    let e = fetcher
        .fetch(&wanted("4100", MediaKind::Image))
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::UrlExpired) && e.is_retryable(),
        "{e:?}"
    );

    assert!(
        files_in(data.path()).is_empty(),
        "{:?}",
        files_in(data.path())
    );
    // A store opened after a crash clears what a download left pending.
    let pending = data.path().join("media/.pending/leftover");
    std::fs::write(&pending, b"half a file").unwrap();
    LocalMediaStore::open(data.path()).unwrap();
    assert!(!pending.exists());
}

/// Prism on Meta's spec (without the other one-segment paths, as Prism routes by path template
/// alone) accepts the metadata request, and its example answer parses.
#[tokio::test]
async fn the_media_request_matches_metas_spec() {
    let Some(spec) = wabridge_tests::prism::spec_path() else {
        assert!(
            !wabridge_tests::prism::services_required(),
            "Meta's OpenAPI spec is missing"
        );
        return;
    };
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let paths = doc
        .get_mut("paths")
        .and_then(|p| p.as_mapping_mut())
        .unwrap();
    paths.retain(|k, _| {
        let k = k.as_str().unwrap_or("");
        let one = k
            .strip_prefix("/{Version}/{")
            .is_some_and(|r| r.ends_with('}') && !r.contains('/'));
        !one || k == "/{Version}/{Media-ID}"
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec-media.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    let Some(prism) = wabridge_tests::prism::Prism::start_with_spec(&path) else {
        return;
    };
    // Meta's example answer has `url: <URL>`, not a URL: the client says so as a terminal
    // answer, which proves Prism accepted the request (a refused one is a 4xx naming it).
    let e = client(prism.url())
        .info("2621233374848975", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("names no download URL"), "{e:?}");
}

pub(crate) fn wanted(media_id: &str, kind: MediaKind) -> Wanted<'_> {
    Wanted {
        media_id,
        phone_number_id: None,
        kind,
        animated: false,
        declared: None,
        webhook_url: None,
        mime_type: None,
    }
}

#[tokio::test]
async fn a_url_in_the_webhook_skips_metas_metadata_and_never_carries_the_token_elsewhere() {
    let (meta, url) = start().await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalMediaStore::open(data.path()).unwrap());
    let fetcher = MediaFetcher::new(Arc::new(client(&url)), store.clone());
    let other: Vec<u8> = photo().into_iter().rev().collect();
    for (id, bytes) in [("8001", photo()), ("8002", other.clone())] {
        meta.files.lock().unwrap().insert(
            id.into(),
            File {
                bytes,
                mime: "image/jpeg".into(),
                ..Default::default()
            },
        );
    }
    let declared = Some(Sha256Digest::of(&photo()));
    let calls = |id: &str| {
        meta.graph_calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with(&format!("{id}?")))
            .count()
    };
    // The webhook's URL (on the same host as the Graph API here): downloaded straight away.
    let direct = format!("{url}/cdn/8001/1");
    let got = fetcher
        .fetch(&Wanted {
            webhook_url: Some(&direct),
            mime_type: Some("image/jpeg"),
            declared,
            ..wanted("8001", MediaKind::Image)
        })
        .await
        .unwrap();
    assert_eq!(got.sha256, Sha256Digest::of(&photo()));
    assert_eq!(calls("8001"), 0, "no metadata call");
    // A URL on a host that is not Meta's: the token is not sent; Meta is asked instead.
    let foreign = "https://media.example.net/8002.jpg";
    let got = fetcher
        .fetch(&Wanted {
            webhook_url: Some(foreign),
            mime_type: Some("image/jpeg"),
            declared: Some(Sha256Digest::of(&other)),
            ..wanted("8002", MediaKind::Image)
        })
        .await
        .unwrap();
    assert!(got.downloaded);
    assert_eq!(got.sha256, Sha256Digest::of(&other));
    assert_eq!(calls("8002"), 1);
}
