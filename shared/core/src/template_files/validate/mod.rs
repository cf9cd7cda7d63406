//! Meta's template rules, checked offline before anything is sent (`wabridge templates check`,
//! and before `plan` and `apply`). Each finding names the file, the template, the language and
//! the field, so a reviewer fixes it without opening Meta's console.
//!
//! The limits are Meta's "Template management" and component references (see
//! `../shared/notes/whatsapp-facts.md`); a warning is what Meta's review would likely act on
//! without it being a hard rule (a promotional word in a UTILITY template).

mod buttons;
mod promotional;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use buttons::check_buttons;
use promotional::check_promotional;

use super::{variables, Examples, LanguageContent, TemplateFile};

pub const CATEGORIES: &[&str] = &["MARKETING", "UTILITY", "AUTHENTICATION"];
pub const PARAMETER_FORMATS: &[&str] = &["POSITIONAL", "NAMED"];
pub const HEADER_FORMATS: &[&str] = &["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"];
pub const BUTTON_KINDS: &[&str] = &[
    "QUICK_REPLY",
    "URL",
    "PHONE_NUMBER",
    "COPY_CODE",
    "OTP",
    "FLOW",
    "MPM",
    "CATALOG",
    "VOICE_CALL",
];
pub const OTP_TYPES: &[&str] = &["COPY_CODE", "ONE_TAP", "ZERO_TAP"];

pub const MAX_NAME: usize = 512;
pub const MAX_HEADER_TEXT: usize = 60;
pub const MAX_BODY: usize = 1024;
pub const MAX_FOOTER: usize = 60;
pub const MAX_BUTTON_TEXT: usize = 25;
pub const MAX_URL: usize = 2000;
pub const MAX_PHONE: usize = 20;
pub const MAX_BUTTONS: usize = 10;
pub const MAX_EXAMPLE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with a template file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub file: String,
    pub template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The field, as a path in the file: `body.examples`, `buttons[1].url`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.file, self.template)?;
        if let Some(language) = &self.language {
            write!(f, " [{language}]")?;
        }
        write!(f, " {}: {}", self.field, self.message)
    }
}

/// Collects the findings of one file.
pub(super) struct Report<'a> {
    file: &'a str,
    template: &'a str,
    language: Option<&'a str>,
    findings: Vec<Finding>,
}

impl Report<'_> {
    pub(super) fn push(
        &mut self,
        severity: Severity,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            file: self.file.to_string(),
            template: self.template.to_string(),
            language: self.language.map(str::to_string),
            field: field.into(),
            message: message.into(),
        });
    }
    pub(super) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, field, message);
    }
    pub(super) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, field, message);
    }
    pub(super) fn length(&mut self, field: &str, text: &str, max: usize) {
        let n = text.chars().count();
        if n > max {
            self.error(field, format!("{n} characters; Meta allows at most {max}"));
        }
        if text.trim().is_empty() {
            self.error(field, "is empty");
        }
    }
    pub(super) fn one_of(&mut self, field: &str, value: &str, allowed: &[&str]) -> bool {
        if allowed.contains(&value) {
            return true;
        }
        self.error(
            field,
            format!(
                "unknown value `{value}`; expected one of {}",
                allowed.join(", ")
            ),
        );
        false
    }
}

/// Checks one parsed file. `file` names it in findings; `stem` is its file name without
/// `.toml`, which must equal the template's name (one file per template, found by name).
pub fn validate(file: &str, stem: Option<&str>, t: &TemplateFile) -> Vec<Finding> {
    let mut r = Report {
        file,
        template: &t.name,
        language: None,
        findings: Vec::new(),
    };
    check_name(&mut r, &t.name, stem);
    let category_ok = r.one_of("category", &t.category, CATEGORIES);
    let format = t.parameter_format.as_deref().unwrap_or("POSITIONAL");
    r.one_of("parameter_format", format, PARAMETER_FORMATS);
    if let Some(ttl) = t.message_send_ttl_seconds {
        check_ttl(&mut r, &t.category, ttl);
    }
    if t.languages.is_empty() {
        r.error(
            "languages",
            "no language: add at least one [languages.<code>] table",
        );
    }
    for (code, content) in &t.languages {
        r.language = Some(code);
        if !LANGUAGE.is_match(code) {
            r.error(
                "languages",
                format!("`{code}` is not a language code like es_MX, pt_BR or en"),
            );
        }
        if category_ok && t.is_authentication() {
            check_authentication(&mut r, content);
        } else {
            check_content(&mut r, t.is_named(), content);
            if t.category == "UTILITY" {
                check_promotional(&mut r, content);
            }
        }
    }
    r.findings
}

/// Findings across files: two files may not define the same template name.
pub fn validate_names<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Finding> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut findings = Vec::new();
    for (file, name) in files {
        if let Some(first) = seen.insert(name, file) {
            findings.push(Finding {
                severity: Severity::Error,
                file: file.to_string(),
                template: name.to_string(),
                language: None,
                field: "name".into(),
                message: format!("also defined in {first}"),
            });
        }
    }
    findings
}

static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9_]+$").expect("regex"));
static LANGUAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2,3}(_[A-Z]{2,3})?$").expect("regex"));
static NAMED_VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]*$").expect("regex"));

fn check_name(r: &mut Report<'_>, name: &str, stem: Option<&str>) {
    if name.is_empty() || name.len() > MAX_NAME || !NAME.is_match(name) {
        r.error(
            "name",
            format!(
                "`{name}`: lowercase letters, digits and underscores only, 1 to {MAX_NAME} characters"
            ),
        );
    }
    if let Some(stem) = stem.filter(|s| *s != name) {
        r.error(
            "name",
            format!("`{name}` differs from the file name `{stem}.toml`; name the file after the template"),
        );
    }
}

fn check_ttl(r: &mut Report<'_>, category: &str, ttl: u32) {
    // Meta's ranges per category (seconds).
    let range = match category {
        "AUTHENTICATION" => 30..=900,
        "UTILITY" => 30..=43_200,
        "MARKETING" => 43_200..=2_592_000,
        _ => return,
    };
    if !range.contains(&ttl) {
        r.error(
            "message_send_ttl_seconds",
            format!(
                "{ttl}: {category} templates take {} to {} seconds",
                range.start(),
                range.end()
            ),
        );
    }
}

fn check_authentication(r: &mut Report<'_>, c: &LanguageContent) {
    let fixed = "an AUTHENTICATION template's text is Meta's own; set security_recommendation and code_expiration_minutes instead";
    if c.header.is_some() {
        r.error("header", "an AUTHENTICATION template has no header");
    }
    if c.body.is_some() {
        r.error("body", fixed);
    }
    if c.footer.is_some() {
        r.error("footer", fixed);
    }
    if let Some(m) = c.code_expiration_minutes {
        if !(1..=90).contains(&m) {
            r.error("code_expiration_minutes", format!("{m}: 1 to 90 minutes"));
        }
    }
    let otp = c.buttons.iter().filter(|b| b.kind == "OTP").count();
    if otp != 1 || c.buttons.len() != 1 {
        r.error(
            "buttons",
            "an AUTHENTICATION template has exactly one button, of type OTP",
        );
    }
    for (i, b) in c.buttons.iter().enumerate() {
        buttons::check_button(r, i, b, false, true);
    }
}

fn check_content(r: &mut Report<'_>, named: bool, c: &LanguageContent) {
    if c.security_recommendation.is_some() {
        r.error(
            "security_recommendation",
            "only AUTHENTICATION templates take it",
        );
    }
    if c.code_expiration_minutes.is_some() {
        r.error(
            "code_expiration_minutes",
            "only AUTHENTICATION templates take it",
        );
    }
    if let Some(h) = &c.header {
        if r.one_of("header.format", &h.format, HEADER_FORMATS) {
            check_header(r, named, h);
        }
    }
    match &c.body {
        None => r.error(
            "body",
            "missing: every template but AUTHENTICATION has a body",
        ),
        Some(body) => {
            r.length("body.text", &body.text, MAX_BODY);
            let vars = check_variables(r, "body", named, &body.text, body.examples.as_ref());
            let trimmed = body.text.trim();
            if !vars.is_empty() && (trimmed.starts_with("{{") || trimmed.ends_with("}}")) {
                r.error(
                    "body.text",
                    "starts or ends with a variable; Meta rejects that (INVALID_FORMAT)",
                );
            }
        }
    }
    if let Some(footer) = &c.footer {
        r.length("footer", footer, MAX_FOOTER);
        if !variables(footer).is_empty() {
            r.error("footer", "a footer takes no variables");
        }
    }
    check_buttons(r, &c.buttons);
}

fn check_header(r: &mut Report<'_>, named: bool, h: &super::Header) {
    let media_ext: &[&str] = match h.format.as_str() {
        "TEXT" => {
            match &h.text {
                None => r.error("header.text", "missing for a TEXT header"),
                Some(text) => {
                    r.length("header.text", text, MAX_HEADER_TEXT);
                    let vars = check_variables(r, "header", named, text, h.examples.as_ref());
                    if vars.len() > 1 {
                        r.error("header.text", "a header takes at most one variable");
                    }
                }
            }
            if h.sample.is_some() {
                r.error("header.sample", "only media headers take a sample");
            }
            return;
        }
        "IMAGE" => &["jpg", "jpeg", "png"],
        "VIDEO" => &["mp4"],
        "DOCUMENT" => &["pdf"],
        _ => &[],
    };
    if h.text.is_some() || h.examples.is_some() {
        r.error("header.text", format!("a {} header has no text", h.format));
    }
    if h.format == "LOCATION" {
        if h.sample.is_some() {
            r.error("header.sample", "a LOCATION header has no sample");
        }
        return;
    }
    match &h.sample {
        None => r.error(
            "header.sample",
            format!(
                "missing: a {} header needs a sample file for Meta's review",
                h.format
            ),
        ),
        Some(path) => {
            let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            if !path.contains('.') || !media_ext.contains(&ext.as_str()) {
                r.error(
                    "header.sample",
                    format!(
                        "`{path}`: {} samples are {} files",
                        h.format,
                        media_ext.join(", ")
                    ),
                );
            }
        }
    }
}

/// Checks a text's variables against the template's kind and their examples; returns them.
fn check_variables(
    r: &mut Report<'_>,
    component: &str,
    named: bool,
    text: &str,
    examples: Option<&Examples>,
) -> Vec<String> {
    let vars = variables(text);
    let field = format!("{component}.text");
    let numeric = |v: &String| v.chars().all(|c| c.is_ascii_digit());
    for v in &vars {
        if named && numeric(v) {
            r.error(
                &field,
                format!("{{{{{v}}}}} is positional but the template's parameter_format is NAMED"),
            );
        } else if !named && !numeric(v) {
            r.error(
                &field,
                format!("{{{{{v}}}}} is named but the template's parameter_format is POSITIONAL (set parameter_format = \"NAMED\")"),
            );
        } else if named && !NAMED_VARIABLE.is_match(v) {
            r.error(
                &field,
                format!("{{{{{v}}}}}: a named variable is lowercase letters, digits and underscores, starting with a letter"),
            );
        }
    }
    if !named {
        let mut numbers: Vec<u32> = vars.iter().filter_map(|v| v.parse().ok()).collect();
        numbers.sort_unstable();
        if numbers.iter().enumerate().any(|(i, n)| *n != i as u32 + 1) {
            r.error(
                &field,
                "positional variables are numbered {{1}}, {{2}}, … without gaps",
            );
        }
    }
    let field = format!("{component}.examples");
    match (examples, vars.is_empty()) {
        (None, true) => {}
        (None, false) => {
            for v in &vars {
                r.error(&field, format!("{{{{{v}}}}} has no example"));
            }
        }
        (Some(Examples::Positional(list)), _) => {
            if named && !list.is_empty() {
                r.error(
                    &field,
                    "a NAMED template gives its examples as a table: { name = \"example\" }",
                );
            } else {
                for (i, v) in vars.iter().enumerate() {
                    match list.get(i) {
                        None => r.error(&field, format!("{{{{{v}}}}} has no example")),
                        Some(e) => check_example(r, &field, v, e),
                    }
                }
                if list.len() > vars.len() {
                    r.error(
                        &field,
                        format!("{} examples for {} variables", list.len(), vars.len()),
                    );
                }
            }
        }
        (Some(Examples::Named(table)), _) => {
            if !named && !table.is_empty() {
                r.error(
                    &field,
                    "a POSITIONAL template gives its examples as a list: [\"first\", \"second\"]",
                );
            } else {
                for v in &vars {
                    match table.get(v) {
                        None => r.error(&field, format!("{{{{{v}}}}} has no example")),
                        Some(e) => check_example(r, &field, v, e),
                    }
                }
                let used: BTreeSet<&String> = vars.iter().collect();
                for extra in table.keys().filter(|k| !used.contains(k)) {
                    r.error(&field, format!("`{extra}` is not a variable of the text"));
                }
            }
        }
    }
    vars
}

fn check_example(r: &mut Report<'_>, field: &str, var: &str, example: &str) {
    if example.trim().is_empty() {
        r.error(field, format!("the example of {{{{{var}}}}} is empty"));
    } else if example.chars().count() > MAX_EXAMPLE {
        r.error(
            field,
            format!("the example of {{{{{var}}}}} is over {MAX_EXAMPLE} characters"),
        );
    }
}

#[cfg(test)]
mod tests;
