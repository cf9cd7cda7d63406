//! Templates as code: the `templates/` folder is the source of truth for the business's message
//! templates. One TOML file per template (its name, category, parameter format and, per
//! language, the components with an example for every variable), reviewed in pull requests.
//!
//! This module parses a file ([`TemplateFile::parse`]), checks it offline against Meta's rules
//! ([`validate`]), turns each language into the body Meta's `POST /{WABA-ID}/message_templates`
//! takes ([`meta`]), and compares the folder with what Meta holds ([`plan`]). Reading the folder
//! and talking to the Graph API happen at the edges (the CLI, `wabridge-graph`).
//!
//! The format is documented in `docs/templates.md`, with a JSON Schema for editors in
//! `docs/templates.schema.json`.

pub mod apply;
pub mod meta;
pub mod plan;
pub mod validate;

use std::collections::BTreeMap;

use serde::Deserialize;

/// Largest template file read (bytes): 250 languages of the largest template fit many times.
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// One template file, as written. Strings stay strings here: [`validate`] names every value
/// outside Meta's lists, which serde enums could only reject with a generic message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub name: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: String,
    /// POSITIONAL (`{{1}}`, the default) or NAMED (`{{first_name}}`).
    #[serde(default)]
    pub parameter_format: Option<String>,
    /// Seconds Meta keeps trying to deliver a message of this template (Meta's
    /// `message_send_ttl_seconds`).
    #[serde(default)]
    pub message_send_ttl_seconds: Option<u32>,
    /// Per language code (`es_MX`, `pt_BR`), the content.
    #[serde(default)]
    pub languages: BTreeMap<String, LanguageContent>,
}

/// The components of one language.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageContent {
    #[serde(default)]
    pub header: Option<Header>,
    #[serde(default)]
    pub body: Option<Body>,
    /// Footer text (no variables).
    #[serde(default)]
    pub footer: Option<String>,
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// AUTHENTICATION only: Meta's "For your security, do not share this code." line.
    #[serde(default)]
    pub security_recommendation: Option<bool>,
    /// AUTHENTICATION only: the footer's "This code expires in N minutes." (1–90).
    #[serde(default)]
    pub code_expiration_minutes: Option<u32>,
}

/// HEADER: text with at most one variable, a media sample (IMAGE, VIDEO, DOCUMENT), or LOCATION.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION.
    pub format: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub examples: Option<Examples>,
    /// A media header's sample, a path relative to the template file. `apply` uploads it
    /// through the Resumable Upload API (Meta wants an upload handle, not a media id).
    #[serde(default)]
    pub sample: Option<String>,
}

/// BODY: the message text with its variables' examples.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub text: String,
    #[serde(default)]
    pub examples: Option<Examples>,
}

/// Examples of a text's variables: a list for positional ones (`{{1}}` is the first), a table
/// for named ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Examples {
    Positional(Vec<String>),
    Named(BTreeMap<String, String>),
}

/// One button. `type` decides which of the other fields apply (see [`validate`]).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    /// URL: the address, optionally ending with one variable `{{1}}`.
    #[serde(default)]
    pub url: Option<String>,
    /// URL with a variable: the full example address; COPY_CODE: the example code.
    #[serde(default)]
    pub example: Option<String>,
    /// PHONE_NUMBER: the number to call, with its country code.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// OTP: COPY_CODE, ONE_TAP or ZERO_TAP.
    #[serde(default)]
    pub otp_type: Option<String>,
    /// OTP ONE_TAP / ZERO_TAP: the Android app that receives the code.
    #[serde(default)]
    pub package_name: Option<String>,
    #[serde(default)]
    pub signature_hash: Option<String>,
    #[serde(default)]
    pub autofill_text: Option<String>,
    /// FLOW: the published Flow's id, and its first screen.
    #[serde(default)]
    pub flow_id: Option<String>,
    #[serde(default)]
    pub navigate_screen: Option<String>,
    #[serde(default)]
    pub flow_action: Option<String>,
}

/// A file that is not a template file: not UTF-8, too large, or not TOML of this shape. The
/// message names the line and column (toml's own report).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ParseError {
    pub file: String,
    pub problem: String,
}

impl TemplateFile {
    /// Parses one file's bytes; `file` names it in the error.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<TemplateFile, ParseError> {
        let fail = |problem: String| ParseError {
            file: file.to_string(),
            problem,
        };
        if bytes.len() > MAX_FILE_BYTES {
            return Err(fail(format!(
                "larger than {MAX_FILE_BYTES} bytes; a template file is a few KB"
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            fail(format!("line {line}: not UTF-8"))
        })?;
        toml::from_str(text).map_err(|e| fail(toml_problem(text, &e)))
    }

    /// Whether the template uses named variables.
    pub fn is_named(&self) -> bool {
        self.parameter_format
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("NAMED"))
    }

    pub fn is_authentication(&self) -> bool {
        self.category.eq_ignore_ascii_case("AUTHENTICATION")
    }
}

/// "line L, column C: message", from toml's error and its byte span.
pub(crate) fn toml_problem(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// The distinct variables of a text, in first-seen order (`{{1}}`, `{{first_name}}`).
pub fn variables(text: &str) -> Vec<String> {
    crate::sends::template_sync::placeholders(text)
}

#[cfg(test)]
mod tests;
