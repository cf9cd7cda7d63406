//! The HubSpot fake's file manager and notes, as documented: `POST /files/v3/files` takes a
//! multipart form (`file` with a name, `options` JSON with a required `access` and an optional
//! `ttl` of 1 day to 1 year in ISO-8601, exactly one of `folderId` / `folderPath`, `fileName`),
//! honours `duplicateValidationStrategy: RETURN_EXISTING` within the folder, and answers 201 with
//! the file's `id`; `POST /crm/v3/objects/notes` takes string properties (`hs_timestamp`
//! required) and an association to a known contact with type 202, and its `hs_attachment_ids`
//! must name uploaded files.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::fake::{rate_headers, Fake};

/// One uploaded file.
#[derive(Clone, Debug)]
pub(crate) struct Uploaded {
    pub(super) id: String,
    pub(super) folder: String,
    pub(super) name: String,
    pub(super) mime: String,
    pub(super) options: Value,
    pub(super) bytes: Vec<u8>,
}

/// The form's parts: name → (filename, content type, bytes).
type Parts = HashMap<String, (Option<String>, Option<String>, Vec<u8>)>;

fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Parts, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = ct
        .strip_prefix("multipart/form-data")
        .and_then(|rest| rest.split("boundary=").nth(1))
        .ok_or_else(|| format!("content-type {ct:?} is not multipart/form-data"))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Parts::new();
    let mut rest = body;
    loop {
        let at = find(rest, &delimiter).ok_or("no closing boundary")?;
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("boundary without CRLF")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("part without headers")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let next = find(rest, &delimiter).ok_or("part without end")?;
        let content = rest[..next]
            .strip_suffix(b"\r\n")
            .ok_or("part not ended by CRLF")?
            .to_vec();
        rest = &rest[next..];
        let attr = |key: &str| {
            head.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        let name = attr("name").ok_or("part without a name")?;
        let content_type = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        });
        parts.insert(name, (attr("filename"), content_type, content));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `P<n>D|W|M|Y` between one day and one year.
fn ttl_ok(ttl: &str) -> bool {
    let Some(spec) = ttl.strip_prefix('P') else {
        return false;
    };
    let (n, unit) = spec.split_at(spec.len().saturating_sub(1));
    let Ok(n) = n.parse::<u64>() else {
        return false;
    };
    let days = match unit {
        "D" => n,
        "W" => n * 7,
        "M" => n * 30,
        "Y" => n * 365,
        _ => return false,
    };
    (1..=366).contains(&days)
}

pub(super) fn upload(fake: &Fake, headers: &HeaderMap, body: &Bytes) -> Response {
    let parts = match parse_form(headers, body) {
        Ok(p) => p,
        Err(e) => return fake.problem(format!("files: {e}")),
    };
    let text = |k: &str| {
        parts
            .get(k)
            .map(|(_, _, b)| String::from_utf8_lossy(b).to_string())
    };
    let Some((Some(filename), mime, bytes)) = parts.get("file").cloned() else {
        return fake.problem("files: no file part with a filename".into());
    };
    let Some(options) = text("options").and_then(|o| serde_json::from_str::<Value>(&o).ok()) else {
        return fake.problem("files: options is not JSON".into());
    };
    if !["PRIVATE", "PUBLIC_INDEXABLE", "PUBLIC_NOT_INDEXABLE"]
        .contains(&options["access"].as_str().unwrap_or_default())
    {
        return fake.problem(format!("files: access {}", options["access"]));
    }
    if let Some(ttl) = options.get("ttl") {
        if !ttl.as_str().is_some_and(ttl_ok) {
            return fake.problem(format!("files: ttl {ttl}"));
        }
    }
    let folder = match (text("folderPath"), text("folderId")) {
        (Some(p), None) => p,
        (None, Some(id)) => format!("#{id}"),
        _ => return fake.problem("files: exactly one of folderPath and folderId".into()),
    };
    let name = text("fileName").unwrap_or(filename);
    let mut files = fake.files.lock().unwrap();
    let existing = (options["duplicateValidationStrategy"] == "RETURN_EXISTING")
        .then(|| {
            files
                .iter()
                .find(|f| f.folder == folder && f.bytes == bytes)
                .cloned()
        })
        .flatten();
    let file = existing.unwrap_or_else(|| {
        let f = Uploaded {
            id: format!("{}", 170_000_000_000u64 + files.len() as u64),
            folder: folder.clone(),
            name,
            mime: mime.unwrap_or_default(),
            options: options.clone(),
            bytes,
        };
        files.push(f.clone());
        f
    });
    (
        StatusCode::CREATED,
        rate_headers(),
        Json(
            json!({"id": file.id, "name": file.name, "size": file.bytes.len(),
            "parentFolderId": "1", "access": file.options["access"],
            "url": format!("https://fake.hubspot/files/{}", file.id)}),
        ),
    )
        .into_response()
}

pub(super) fn note(fake: &Fake, v: &Value) -> Response {
    let props = &v["properties"];
    let Some(map) = props.as_object() else {
        return fake.problem("notes: properties missing".into());
    };
    if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_string()) {
        return fake.problem(format!("notes: property {k} is not a string"));
    }
    if let Some(problem) = super::fake_hubspot_reads::unknown_property(fake, "notes", props) {
        return fake.problem(problem);
    }
    if !props["hs_timestamp"].is_string() {
        return fake.problem("notes: hs_timestamp is required".into());
    }
    if let Some(ids) = props["hs_attachment_ids"].as_str() {
        let files = fake.files.lock().unwrap();
        if let Some(id) = ids.split(';').find(|id| !files.iter().any(|f| f.id == *id)) {
            return fake.problem(format!("notes: attachment {id} is no uploaded file"));
        }
    }
    let a = &v["associations"][0];
    let to = a["to"]["id"].as_str().unwrap_or_default();
    if !fake.contacts.lock().unwrap().values().any(|id| id == to) {
        return fake.problem(format!("notes: association to unknown contact {to}"));
    }
    if a["types"][0]["associationCategory"] != "HUBSPOT_DEFINED"
        || a["types"][0]["associationTypeId"] != 202
    {
        return fake.problem(format!("notes: association types {}", a["types"]));
    }
    let mut notes = fake.notes.lock().unwrap();
    let id = format!("{}", 180_000_000_000u64 + notes.len() as u64);
    let note = json!({"id": id, "properties": props, "associations": v["associations"]});
    notes.push(note.clone());
    fake.created.lock().unwrap().insert(id, Instant::now());
    (StatusCode::CREATED, rate_headers(), Json(note)).into_response()
}
