//! `wabridge templates plan`: the template files against what Meta holds, per name and
//! language, in the style of a Terraform plan. Pure: the caller reads the files, Meta's list
//! and the apply history.
//!
//! - A file's language that Meta lacks is created; one Meta has and no file names is deleted
//!   (only `apply --allow-delete` deletes).
//! - One whose managed fields differ ([`super::meta::project`]) is edited, within Meta's edit
//!   rules: only APPROVED, REJECTED or PAUSED templates; an approved one at most once in 24 hours
//!   and 10 times in 30 days (counted from the apply history), with its category fixed. An edit
//!   the rules forbid is reported here and never attempted.
//! - What needs a person's attention is listed too: a template Meta rejected, paused, disabled,
//!   recategorised, or has not reviewed yet, with Meta's reason.
//!
//! A plan with a change or an attention item is not clean: `plan` exits non-zero, so CI can gate
//! a release on approved templates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use super::meta;
use super::TemplateFile;
use crate::clock::rfc3339;
use crate::sends::template_sync::RemoteTemplate;

pub const DAY_MS: i64 = 24 * 3600 * 1000;
/// Meta's limits on edits of an approved template.
pub const EDITS_PER_30_DAYS: usize = 10;

/// One thing `apply` did, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AppliedChange {
    pub name: String,
    pub language: String,
    /// create, edit or delete.
    pub action: String,
    pub template_id: Option<String>,
    /// [`meta::content_hash`] of what was sent (empty for a delete).
    pub content_hash: String,
    /// Who applied it: `cli`, or the `--by` given (a CI job, a person's handle).
    pub applied_by: String,
    pub applied_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    Create,
    /// The fields that differ, by their path in the file; `category` when it changes too.
    Edit {
        fields: Vec<String>,
    },
    Delete,
}

/// One change `apply` would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub name: String,
    pub language: String,
    #[serde(flatten)]
    pub action: Action,
    pub template_id: Option<String>,
    /// Meta's status now (none for a create).
    pub status: Option<String>,
    /// Meta's quality score now: GREEN, YELLOW, RED or UNKNOWN.
    pub quality: Option<String>,
    /// The file the template comes from (none for a delete).
    pub file: Option<String>,
}

/// Why a template needs a person rather than `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Concern {
    Rejected,
    Paused,
    Disabled,
    AwaitingReview,
    Recategorised,
    EditRefused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    pub name: String,
    pub language: String,
    pub concern: Concern,
    pub template_id: Option<String>,
    pub status: Option<String>,
    pub quality: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub attention: Vec<Attention>,
}

/// A template file with the name it goes by in messages (its path).
pub struct Local<'a> {
    pub file: &'a str,
    pub template: &'a TemplateFile,
    /// SHA-256 of each media header sample, by language (for the content hash).
    pub sample_sha256: BTreeMap<String, String>,
}

/// Compares `locals` with Meta's `remote` list at `now_ms`, given the apply `history`.
pub fn plan(
    locals: &[Local<'_>],
    remote: &[RemoteTemplate],
    history: &[AppliedChange],
    now_ms: i64,
) -> Plan {
    let mut out = Plan::default();
    let mut by_key: BTreeMap<(&str, &str), &RemoteTemplate> = BTreeMap::new();
    for r in remote {
        by_key.insert((r.name.as_str(), r.language.as_str()), r);
    }
    let mut wanted: BTreeSet<(&str, &str)> = BTreeSet::new();
    for local in locals {
        let t = local.template;
        for language in t.languages.keys() {
            wanted.insert((t.name.as_str(), language.as_str()));
            match by_key.get(&(t.name.as_str(), language.as_str())) {
                None => out.changes.push(Change {
                    name: t.name.clone(),
                    language: language.clone(),
                    action: Action::Create,
                    template_id: None,
                    status: None,
                    quality: None,
                    file: Some(local.file.to_string()),
                }),
                Some(r) => compare(&mut out, local, language, r, history, now_ms),
            }
        }
    }
    for r in remote {
        if wanted.contains(&(r.name.as_str(), r.language.as_str())) {
            continue;
        }
        let status = r.status.as_ref().map(|s| s.as_str().to_string());
        match status.as_deref() {
            Some("PENDING_DELETION" | "DELETED" | "ARCHIVED") => {}
            Some("DISABLED") => out.attention.push(Attention {
                name: r.name.clone(),
                language: r.language.clone(),
                concern: Concern::Disabled,
                template_id: r.id.clone(),
                status,
                quality: r.quality.clone(),
                message: "no file names it, and Meta cannot delete a DISABLED template".into(),
            }),
            _ => out.changes.push(Change {
                name: r.name.clone(),
                language: r.language.clone(),
                action: Action::Delete,
                template_id: r.id.clone(),
                status,
                quality: r.quality.clone(),
                file: None,
            }),
        }
    }
    let key = |n: &String, l: &String| (n.clone(), l.clone());
    out.changes.sort_by_key(|c| key(&c.name, &c.language));
    out.attention.sort_by_key(|a| key(&a.name, &a.language));
    out
}

fn compare(
    out: &mut Plan,
    local: &Local<'_>,
    language: &str,
    r: &RemoteTemplate,
    history: &[AppliedChange],
    now_ms: i64,
) {
    let t = local.template;
    let status = r.status.as_ref().map(|s| s.as_str().to_string());
    let attention = |concern: Concern, message: String| Attention {
        name: t.name.clone(),
        language: language.to_string(),
        concern,
        template_id: r.id.clone(),
        status: status.clone(),
        quality: r.quality.clone(),
        message,
    };
    let reason = r
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let content = t.languages.get(language).cloned().unwrap_or_default();
    let auth = t.is_authentication();
    let local_fields = meta::project(&meta::components(t, &content, None), auth);
    let mut fields = meta::differences(&local_fields, &meta::project(&r.components, auth));
    // A new sample file shows only through the hash of the last apply.
    let hash = meta::content_hash(
        t,
        language,
        local.sample_sha256.get(language).map(String::as_str),
    );
    let last = history
        .iter()
        .filter(|h| h.name == t.name && h.language == language && h.action != "delete")
        .max_by_key(|h| h.applied_at_ms);
    if fields.is_empty()
        && local.sample_sha256.contains_key(language)
        && last.is_some_and(|l| l.content_hash != hash)
    {
        fields.push("header.sample".into());
    }
    let remote_format = r.parameter_format.as_deref().unwrap_or("POSITIONAL");
    let local_format = if t.is_named() { "NAMED" } else { "POSITIONAL" };
    if remote_format != local_format {
        out.attention.push(attention(
            Concern::EditRefused,
            format!("parameter_format is {remote_format} at Meta and {local_format} in the file; an edit cannot change it: give the template a new name"),
        ));
        return;
    }
    let remote_category = r.category.as_deref().unwrap_or("");
    let approved = status.as_deref() == Some("APPROVED");
    let category_differs = !remote_category.eq_ignore_ascii_case(&t.category);
    if category_differs && approved {
        out.attention.push(attention(
            Concern::Recategorised,
            format!("the file says {}, Meta says {remote_category}; an approved template's category is fixed: set category = \"{remote_category}\" in the file, or appeal in Meta's console", t.category),
        ));
    } else if category_differs {
        fields.insert(0, "category".into());
    }
    match status.as_deref() {
        Some("REJECTED") => out.attention.push(attention(
            Concern::Rejected,
            format!("rejected by Meta{reason}{}", fix_hint(&fields)),
        )),
        Some("PAUSED") => out.attention.push(attention(
            Concern::Paused,
            format!(
                "paused by Meta for low quality{reason}{}",
                fix_hint(&fields)
            ),
        )),
        Some("DISABLED") => out.attention.push(attention(
            Concern::Disabled,
            format!("disabled by Meta{reason}"),
        )),
        Some("PENDING" | "IN_APPEAL") | None => out.attention.push(attention(
            Concern::AwaitingReview,
            "awaiting Meta's review".into(),
        )),
        _ => {}
    }
    if fields.is_empty() {
        return;
    }
    if let Some(why) = edit_refusal(status.as_deref(), r, &t.name, language, history, now_ms) {
        out.attention.push(attention(
            Concern::EditRefused,
            format!(
                "{} differ{}, but {why}",
                fields.join(", "),
                if fields.len() == 1 { "s" } else { "" }
            ),
        ));
        return;
    }
    out.changes.push(Change {
        name: t.name.clone(),
        language: language.to_string(),
        action: Action::Edit { fields },
        template_id: r.id.clone(),
        status,
        quality: r.quality.clone(),
        file: Some(local.file.to_string()),
    });
}

fn fix_hint(fields: &[String]) -> &'static str {
    if fields.is_empty() {
        "; edit the file to fix it"
    } else {
        "; apply submits the edited file"
    }
}

/// Why Meta would refuse an edit now, if it would.
fn edit_refusal(
    status: Option<&str>,
    r: &RemoteTemplate,
    name: &str,
    language: &str,
    history: &[AppliedChange],
    now_ms: i64,
) -> Option<String> {
    if r.id.is_none() {
        return Some("Meta's list gave no template id to edit".into());
    }
    match status {
        Some("REJECTED" | "PAUSED") => return None,
        Some("APPROVED") => {}
        other => {
            return Some(format!(
                "Meta edits only APPROVED, REJECTED or PAUSED templates, and this one is {}",
                other.unwrap_or("in review")
            ))
        }
    }
    let edits: Vec<i64> = history
        .iter()
        .filter(|h| {
            h.name == name
                && h.language == language
                && h.action == "edit"
                && h.template_id == r.id
                && h.applied_at_ms > now_ms - 30 * DAY_MS
        })
        .map(|h| h.applied_at_ms)
        .collect();
    if let Some(last) = edits.iter().copied().max().filter(|l| *l > now_ms - DAY_MS) {
        return Some(format!(
            "an approved template may be edited once in 24 hours: last edit {}, next from {}",
            rfc3339(last),
            rfc3339(last + DAY_MS)
        ));
    }
    if edits.len() >= EDITS_PER_30_DAYS {
        let oldest = edits.iter().copied().min().unwrap_or(now_ms);
        return Some(format!(
            "an approved template may be edited {EDITS_PER_30_DAYS} times in 30 days: next from {}",
            rfc3339(oldest + 30 * DAY_MS)
        ));
    }
    None
}

impl Plan {
    /// No change to make and nothing awaiting a person.
    pub fn is_clean(&self) -> bool {
        self.changes.is_empty() && self.attention.is_empty()
    }

    pub fn count(&self, what: fn(&Action) -> bool) -> usize {
        self.changes.iter().filter(|c| what(&c.action)).count()
    }

    /// The plan as people read it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Meta's status, and its quality score when Meta has rated the template.
        let status = |st: &Option<String>, quality: &Option<String>| {
            let mut out = st.as_deref().map(|s| format!("  {s}")).unwrap_or_default();
            if let Some(q) = quality.as_deref().filter(|q| *q != "UNKNOWN") {
                out.push_str(&format!("  quality {q}"));
            }
            out
        };
        let id = |id: &Option<String>| {
            id.as_deref()
                .map(|i| format!("  id {i}"))
                .unwrap_or_default()
        };
        for c in &self.changes {
            match &c.action {
                Action::Create => {
                    let _ = writeln!(s, "  + {} [{}]", c.name, c.language);
                }
                Action::Edit { fields } => {
                    let _ = writeln!(
                        s,
                        "  ~ {} [{}]{}{}",
                        c.name,
                        c.language,
                        id(&c.template_id),
                        status(&c.status, &c.quality)
                    );
                    for f in fields {
                        let _ = writeln!(s, "      ~ {f}");
                    }
                }
                Action::Delete => {
                    let _ = writeln!(
                        s,
                        "  - {} [{}]{}{}",
                        c.name,
                        c.language,
                        id(&c.template_id),
                        status(&c.status, &c.quality)
                    );
                }
            }
        }
        for a in &self.attention {
            let _ = writeln!(
                s,
                "  ! {} [{}]{}{}: {}",
                a.name,
                a.language,
                id(&a.template_id),
                status(&a.status, &a.quality),
                a.message
            );
        }
        let create = self.count(|a| matches!(a, Action::Create));
        let edit = self.count(|a| matches!(a, Action::Edit { .. }));
        let delete = self.count(|a| matches!(a, Action::Delete));
        if self.is_clean() {
            s.push_str(
                "No changes. The template files match Meta, and every template is approved.\n",
            );
        } else {
            let _ = writeln!(
                s,
                "\nPlan: {create} to create, {edit} to edit, {delete} to delete; {} need attention.",
                self.attention.len()
            );
        }
        s
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
