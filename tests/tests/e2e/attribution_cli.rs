//! The real `wabridge` binary: `POST /links` and `POST /conversions` through `wabridge serve`
//! (Bearer key), `wabridge link create` with QR files, and `wabridge report attribution` over the
//! same SQLite store.

use std::path::Path;

use serde_json::{json, Value};
use wabridge_tests::gateway::{self, Gateway};

const KEY: &str = "attribution-cli-test-key";

fn serve(data: &Path) -> Gateway {
    Gateway::start_in(data, &[("WABRIDGE_API_KEY", KEY)])
}

fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = gateway::cli(data, args, &[]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn links_conversions_and_report_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data);
    let http = reqwest::Client::new();

    // POST /links needs the key.
    let body = json!({"utm_source": "poster", "utm_medium": "qr", "utm_campaign": "tienda_centro", "phone_number": "+52 1 55 1234 5678"});
    let r = http
        .post(format!("{}/links", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/links", server.url))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/links", server.url))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let link: Value = r.json().await.unwrap();
    let code = link["code"].as_str().unwrap().to_string();
    assert!(link["url"]
        .as_str()
        .unwrap()
        .starts_with("https://wa.me/5215512345678?text="));
    assert!(link["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let r = http
        .get(format!("{}/links", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = http
        .post(format!("{}/links", server.url))
        .bearer_auth(KEY)
        .json(&json!({"utm_source": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("utm_medium"),
        "{e}"
    );

    // A won deal for a contact without a click id: recorded, not sent, counted in the report.
    let conv =
        json!({"contact_id": "walk-in", "value": 250.0, "currency": "MXN", "event_id": "deal-1"});
    let r = http
        .post(format!("{}/conversions", server.url))
        .bearer_auth(KEY)
        .json(&conv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "not_attributable");
    let r = http
        .post(format!("{}/conversions", server.url))
        .bearer_auth(KEY)
        .json(&conv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["duplicate"], true);
    drop(server);

    // The CLI over the same store.
    let svg = dir.path().join("qr.svg");
    let png = dir.path().join("qr.png");
    let (ok, out, err) = cli(
        &data,
        &[
            "link",
            "create",
            "--utm-source",
            "newsletter",
            "--utm-medium",
            "email",
            "--utm-campaign",
            "buen_fin",
            "--phone",
            "+5215512345678",
            "--text",
            "Hola {code} quiero la promo",
            "--qr-svg",
            svg.to_str().unwrap(),
            "--qr-png",
            png.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    assert_ne!(created["code"].as_str().unwrap(), code);
    assert!(created["text"].as_str().unwrap().starts_with("Hola [ref:"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    let (ok, _, err) = cli(
        &data,
        &[
            "link",
            "create",
            "--utm-source",
            "newsletter",
            "--utm-medium",
            "email",
            "--utm-campaign",
            "x",
        ],
    );
    assert!(!ok);
    assert!(err.contains("phone_number"), "{err}");

    let (ok, out, err) = cli(
        &data,
        &[
            "report",
            "attribution",
            "--since",
            "30d",
            "--format",
            "json",
        ],
    );
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["conversions"], 1);
    assert_eq!(rows[0]["value"]["MXN"], 250.0);
    let (ok, out, _) = cli(&data, &["report", "attribution", "--format", "csv"]);
    assert!(ok);
    assert_eq!(out.lines().nth(1), Some(",,,0,0,1,MXN,250.00"));
    let (ok, out, _) = cli(&data, &["report", "attribution"]);
    assert!(ok);
    assert!(
        out.starts_with("SOURCE") && out.contains("(direct)") && out.contains("250.00 MXN"),
        "{out}"
    );
    let (ok, _, err) = cli(&data, &["report", "attribution", "--since", "soon"]);
    assert!(!ok && err.contains("--since"), "{err}");
}
