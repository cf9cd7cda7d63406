//! Buttons: kinds, the fields each takes, Meta's counts and grouping.

use super::{Report, BUTTON_KINDS, MAX_BUTTONS, MAX_BUTTON_TEXT, MAX_PHONE, MAX_URL, OTP_TYPES};
use crate::template_files::{variables, Button};

pub(super) fn check_buttons(r: &mut Report<'_>, buttons: &[Button]) {
    if buttons.len() > MAX_BUTTONS {
        r.error(
            "buttons",
            format!(
                "{} buttons; Meta allows at most {MAX_BUTTONS}",
                buttons.len()
            ),
        );
    }
    let count = |kind: &str| buttons.iter().filter(|b| b.kind == kind).count();
    for (kind, max) in [
        ("URL", 2),
        ("PHONE_NUMBER", 1),
        ("COPY_CODE", 1),
        ("FLOW", 1),
    ] {
        let n = count(kind);
        if n > max {
            r.error(
                "buttons",
                format!("{n} {kind} buttons; Meta allows at most {max}"),
            );
        }
    }
    // Quick replies come as one group, before or after the call-to-action buttons.
    let kinds: Vec<bool> = buttons.iter().map(|b| b.kind == "QUICK_REPLY").collect();
    let switches = kinds.windows(2).filter(|w| w[0] != w[1]).count();
    if switches > 1 {
        r.error(
            "buttons",
            "QUICK_REPLY buttons must be grouped together, before or after the others",
        );
    }
    for (i, b) in buttons.iter().enumerate() {
        check_button(r, i, b, true, false);
    }
}

pub(super) fn check_button(r: &mut Report<'_>, i: usize, b: &Button, allow_text: bool, auth: bool) {
    let at = |f: &str| format!("buttons[{i}].{f}");
    if !r.one_of(&at("type"), &b.kind, BUTTON_KINDS) {
        return;
    }
    if b.kind == "OTP" && !auth {
        r.error(at("type"), "OTP buttons belong to AUTHENTICATION templates");
    }
    let needs_text = !matches!(b.kind.as_str(), "COPY_CODE" | "OTP");
    match &b.text {
        Some(text) => r.length(&at("text"), text, MAX_BUTTON_TEXT),
        None if needs_text && allow_text => r.error(at("text"), "missing"),
        None => {}
    }
    let mut allowed: Vec<&str> = vec!["text"];
    match b.kind.as_str() {
        "URL" => {
            allowed.extend(["url", "example"]);
            match &b.url {
                None => r.error(at("url"), "missing"),
                Some(url) => check_url(r, &at("url"), url, b.example.as_deref()),
            }
        }
        "PHONE_NUMBER" => {
            allowed.push("phone_number");
            match &b.phone_number {
                None => r.error(at("phone_number"), "missing"),
                Some(p) => {
                    let digits = p.trim_start_matches('+');
                    if p.len() > MAX_PHONE
                        || digits.is_empty()
                        || !digits.chars().all(|c| c.is_ascii_digit())
                    {
                        r.error(
                            at("phone_number"),
                            format!("digits with the country code, at most {MAX_PHONE} characters"),
                        );
                    }
                }
            }
        }
        "COPY_CODE" => {
            allowed.push("example");
            if b.example.as_deref().is_none_or(|e| e.trim().is_empty()) {
                r.error(at("example"), "missing: the example code for Meta's review");
            }
        }
        "OTP" => {
            allowed.extend([
                "otp_type",
                "package_name",
                "signature_hash",
                "autofill_text",
            ]);
            match b.otp_type.as_deref() {
                None => r.error(at("otp_type"), "missing"),
                Some(t) => {
                    if r.one_of(&at("otp_type"), t, OTP_TYPES)
                        && t != "COPY_CODE"
                        && (b.package_name.is_none() || b.signature_hash.is_none())
                    {
                        r.error(
                            at("package_name"),
                            format!("{t} needs package_name and signature_hash (the Android app)"),
                        );
                    }
                }
            }
        }
        "FLOW" => {
            allowed.extend(["flow_id", "navigate_screen", "flow_action"]);
            if b.flow_id.is_none() {
                r.error(at("flow_id"), "missing: the published Flow's id");
            }
        }
        _ => {}
    }
    for (field, set) in [
        ("url", b.url.is_some()),
        ("example", b.example.is_some()),
        ("phone_number", b.phone_number.is_some()),
        ("otp_type", b.otp_type.is_some()),
        ("package_name", b.package_name.is_some()),
        ("signature_hash", b.signature_hash.is_some()),
        ("autofill_text", b.autofill_text.is_some()),
        ("flow_id", b.flow_id.is_some()),
        ("navigate_screen", b.navigate_screen.is_some()),
        ("flow_action", b.flow_action.is_some()),
    ] {
        if set && !allowed.contains(&field) {
            r.error(at(field), format!("a {} button takes no {field}", b.kind));
        }
    }
}

fn check_url(r: &mut Report<'_>, field: &str, url: &str, example: Option<&str>) {
    if url.chars().count() > MAX_URL {
        r.error(field, format!("over {MAX_URL} characters"));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        r.error(field, "an http(s) address");
    }
    let vars = variables(url);
    match vars.as_slice() {
        [] => {
            if example.is_some() {
                r.error(
                    field.replace(".url", ".example"),
                    "a URL without a variable takes no example",
                );
            }
        }
        [one] if one == "1" && url.ends_with("}}") => {
            if example.is_none_or(|e| !e.starts_with("http")) {
                r.error(
                    field.replace(".url", ".example"),
                    "missing: the full example address, with the variable filled in",
                );
            }
        }
        _ => r.error(field, "a URL takes one variable, {{1}}, at its end"),
    }
}
