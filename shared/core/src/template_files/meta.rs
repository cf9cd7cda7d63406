//! From a template file to Meta's shapes and back: the body of `POST /{WABA-ID}/message_templates`
//! and `POST /{template-id}`, and a projection of components (from a file or from Meta's list)
//! onto the fields wabridge manages, so the plan compares like with like and names each field
//! that differs with its path in the file (`body.text`, `buttons[1].url`).
//!
//! Left out of the comparison: a media header's sample (Meta lists a CDN URL, not the upload
//! handle; a changed sample file shows through the content hash recorded at apply), and the
//! texts Meta writes itself in AUTHENTICATION templates (the body, the footer, the OTP button's
//! default label).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{Button, Examples, LanguageContent, TemplateFile};

/// The create body for one language. `header_handle` is the Resumable Upload handle of a media
/// header's sample (left out when `None`).
pub fn create_body(t: &TemplateFile, language: &str, header_handle: Option<&str>) -> Value {
    let content = t.languages.get(language).cloned().unwrap_or_default();
    let mut body = json!({
        "name": t.name,
        "language": language,
        "category": t.category,
        "components": components(t, &content, header_handle),
    });
    if t.is_named() {
        body["parameter_format"] = json!("NAMED");
    }
    if let Some(ttl) = t.message_send_ttl_seconds {
        body["message_send_ttl_seconds"] = json!(ttl);
    }
    body
}

/// The edit body (`POST /{template-id}`): the components replace Meta's in full; the category
/// only when it changes (Meta refuses a new category for an approved template, which the plan
/// reports before anything is sent).
pub fn edit_body(
    t: &TemplateFile,
    language: &str,
    header_handle: Option<&str>,
    category_changes: bool,
) -> Value {
    let content = t.languages.get(language).cloned().unwrap_or_default();
    let mut body = json!({ "components": components(t, &content, header_handle) });
    if category_changes {
        body["category"] = json!(t.category);
    }
    if let Some(ttl) = t.message_send_ttl_seconds {
        body["message_send_ttl_seconds"] = json!(ttl);
    }
    body
}

/// Meta's components for one language's content.
pub fn components(
    t: &TemplateFile,
    c: &LanguageContent,
    header_handle: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::new();
    if t.is_authentication() {
        let mut body = json!({"type": "BODY"});
        if let Some(s) = c.security_recommendation {
            body["add_security_recommendation"] = json!(s);
        }
        out.push(body);
        if let Some(m) = c.code_expiration_minutes {
            out.push(json!({"type": "FOOTER", "code_expiration_minutes": m}));
        }
    } else {
        if let Some(h) = &c.header {
            let mut header = json!({"type": "HEADER", "format": h.format});
            if let Some(text) = &h.text {
                header["text"] = json!(text);
                if let Some(example) = example_json("header", text, h.examples.as_ref()) {
                    header["example"] = example;
                }
            }
            if let Some(handle) = header_handle {
                header["example"] = json!({"header_handle": [handle]});
            }
            out.push(header);
        }
        if let Some(b) = &c.body {
            let mut body = json!({"type": "BODY", "text": b.text});
            if let Some(example) = example_json("body", &b.text, b.examples.as_ref()) {
                body["example"] = example;
            }
            out.push(body);
        }
        if let Some(f) = &c.footer {
            out.push(json!({"type": "FOOTER", "text": f}));
        }
    }
    if !c.buttons.is_empty() {
        let buttons: Vec<Value> = c.buttons.iter().map(button_json).collect();
        out.push(json!({"type": "BUTTONS", "buttons": buttons}));
    }
    out
}

/// `example` of a HEADER or BODY: `header_text` / `body_text` (positional, in the order of the
/// variables) or `header_text_named_params` / `body_text_named_params`.
fn example_json(component: &str, text: &str, examples: Option<&Examples>) -> Option<Value> {
    let vars = super::variables(text);
    if vars.is_empty() {
        return None;
    }
    match examples? {
        Examples::Positional(list) => {
            let values: Vec<&String> = list.iter().take(vars.len()).collect();
            Some(if component == "header" {
                json!({"header_text": values})
            } else {
                json!({"body_text": [values]})
            })
        }
        Examples::Named(table) => {
            let params: Vec<Value> = vars
                .iter()
                .filter_map(|v| table.get(v).map(|e| json!({"param_name": v, "example": e})))
                .collect();
            Some(json!({ format!("{component}_text_named_params"): params }))
        }
    }
}

fn button_json(b: &Button) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(b.kind));
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    };
    put("text", &b.text);
    put("url", &b.url);
    put("phone_number", &b.phone_number);
    put("otp_type", &b.otp_type);
    put("package_name", &b.package_name);
    put("signature_hash", &b.signature_hash);
    put("autofill_text", &b.autofill_text);
    put("flow_id", &b.flow_id);
    put("navigate_screen", &b.navigate_screen);
    put("flow_action", &b.flow_action);
    if let Some(e) = &b.example {
        // A URL button's example is a list (one per variable); COPY_CODE's is the code.
        let value = if b.kind == "URL" {
            json!([e])
        } else {
            json!(e)
        };
        out.insert("example".into(), value);
    }
    Value::Object(out)
}

/// The managed fields of a component list, by their path in a template file.
pub fn project(components: &[Value], authentication: bool) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let text = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    for c in components {
        let kind = c
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase();
        match (kind.as_str(), authentication) {
            ("HEADER", false) => {
                if let Some(f) = text(c, "format") {
                    out.insert("header.format".into(), json!(f.to_ascii_uppercase()));
                }
                if let Some(t) = text(c, "text") {
                    out.insert("header.text".into(), json!(t));
                }
                if let Some(e) = examples_of(c.get("example"), "header") {
                    out.insert("header.examples".into(), e);
                }
            }
            ("BODY", false) => {
                if let Some(t) = text(c, "text") {
                    out.insert("body.text".into(), json!(t));
                }
                if let Some(e) = examples_of(c.get("example"), "body") {
                    out.insert("body.examples".into(), e);
                }
            }
            ("FOOTER", false) => {
                if let Some(t) = text(c, "text") {
                    out.insert("footer".into(), json!(t));
                }
            }
            ("BODY", true) => {
                let on = c
                    .get("add_security_recommendation")
                    .and_then(Value::as_bool);
                out.insert("security_recommendation".into(), json!(on.unwrap_or(false)));
            }
            ("FOOTER", true) => {
                if let Some(m) = c.get("code_expiration_minutes").and_then(Value::as_u64) {
                    out.insert("code_expiration_minutes".into(), json!(m));
                }
            }
            ("BUTTONS", _) => {
                let buttons = c.get("buttons").and_then(Value::as_array);
                for (i, b) in buttons.into_iter().flatten().enumerate() {
                    project_button(&mut out, i, b);
                }
            }
            _ => {}
        }
    }
    if authentication && !out.contains_key("security_recommendation") {
        out.insert("security_recommendation".into(), json!(false));
    }
    out
}

fn project_button(out: &mut BTreeMap<String, Value>, i: usize, b: &Value) {
    let kind = b
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    out.insert(format!("buttons[{i}].type"), json!(kind));
    let mut fields = vec![
        "url",
        "phone_number",
        "otp_type",
        "package_name",
        "signature_hash",
        "flow_id",
        "navigate_screen",
    ];
    if kind != "OTP" {
        fields.push("text");
    }
    for f in fields {
        if let Some(v) = b.get(f).filter(|v| !v.is_null()) {
            out.insert(format!("buttons[{i}].{f}"), v.clone());
        }
    }
    let example = match b.get("example") {
        Some(Value::Array(list)) => list.first().cloned(),
        Some(Value::String(s)) => Some(json!(s)),
        _ => None,
    };
    if let Some(e) = example {
        out.insert(format!("buttons[{i}].example"), e);
    }
}

/// A component's examples as the file writes them: a list (positional) or a table (named).
fn examples_of(example: Option<&Value>, component: &str) -> Option<Value> {
    let example = example?;
    let positional = match component {
        "header" => example.get("header_text").cloned(),
        _ => example.pointer("/body_text/0").cloned(),
    };
    if let Some(list) = positional.filter(Value::is_array) {
        return Some(list);
    }
    let named = example
        .get(format!("{component}_text_named_params"))?
        .as_array()?;
    let table: Map<String, Value> = named
        .iter()
        .filter_map(|p| {
            Some((
                p.get("param_name")?.as_str()?.to_string(),
                p.get("example")?.clone(),
            ))
        })
        .collect();
    Some(Value::Object(table))
}

/// The paths whose values differ between two projections, in order.
pub fn differences(
    local: &BTreeMap<String, Value>,
    remote: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut paths: Vec<&String> = local.keys().chain(remote.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| local.get(*p) != remote.get(*p))
        .cloned()
        .collect()
}

/// The content hash recorded at apply: SHA-256 over the create body (without the upload
/// handle, which changes with every upload) and the media sample's own SHA-256.
pub fn content_hash(t: &TemplateFile, language: &str, sample_sha256: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(create_body(t, language, None).to_string().as_bytes());
    if let Some(s) = sample_sha256 {
        h.update(b"\nsample:");
        h.update(s.as_bytes());
    }
    hex::encode(h.finalize())
}
