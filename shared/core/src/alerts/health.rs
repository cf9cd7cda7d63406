//! `wabridge report health`: the current state of the business signals, built from what the
//! local alert store kept ([`Signal`]s with their time, counters over a window) and the
//! template registry. Pure: the CLI reads, this shapes and prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::redact;
use crate::templates::WabaTemplates;

use super::{emf, Signal};

/// The health report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    /// The window of the counters (failed sends, SLA breaches), in hours.
    pub window_hours: i64,
    pub numbers: Vec<NumberHealth>,
    /// Templates whose latest status is not APPROVED.
    pub templates: Vec<TemplateHealth>,
    pub category_changes: Vec<CategoryChange>,
    pub account_restrictions: Vec<AccountHealth>,
    pub sends: SendRate,
    /// SLA breaches found in the window (none until the SLA sweeper reports).
    pub sla_breaches: u64,
    /// The latest backlog the SLA sweeper reported, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<BacklogHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberHealth {
    /// Masked, like every phone number wabridge prints.
    pub number: String,
    pub event: Option<String>,
    pub rating: Option<String>,
    pub limit: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateHealth {
    /// Its WABA, with a numbers registry (absent for the implicit number's templates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    /// The labels of that WABA's numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<String>,
    pub name: String,
    pub language: String,
    pub status: String,
    pub reason: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryChange {
    pub name: String,
    pub language: String,
    pub from: Option<String>,
    pub to: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountHealth {
    pub waba_id: String,
    pub event: Option<String>,
    pub restrictions: Vec<String>,
    pub violation: Option<String>,
    pub ban_state: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SendRate {
    pub attempted: u64,
    pub failed: u64,
    /// failed / attempted; none without attempts.
    pub failed_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacklogHealth {
    pub count: u64,
    pub oldest_wait_ms: i64,
    pub at: i64,
}

impl Health {
    /// The report from the stored latest signals (`states`, each with its time), the counters
    /// summed over the window (`counts`, by metric name) and the template registries (one per
    /// WABA with a numbers registry).
    pub fn build(
        states: &[(Signal, i64)],
        counts: &BTreeMap<String, u64>,
        templates: &[WabaTemplates],
        window_hours: i64,
    ) -> Health {
        let count = |m: &str| counts.get(m).copied().unwrap_or(0);
        let (attempted, failed) = (count(emf::SENDS_ATTEMPTED), count(emf::SENDS_FAILED));
        let mut h = Health {
            window_hours,
            sends: SendRate {
                attempted,
                failed,
                failed_rate: (attempted > 0).then(|| failed as f64 / attempted as f64),
            },
            sla_breaches: count(emf::SLA_BREACHES),
            ..Health::default()
        };
        for (signal, at) in states {
            let at = *at;
            match signal.clone() {
                Signal::NumberQuality {
                    number,
                    event,
                    rating,
                    limit,
                    ..
                } => h.numbers.push(NumberHealth {
                    number: redact::mask(&number),
                    event,
                    rating,
                    limit,
                    at,
                }),
                Signal::TemplateCategory {
                    name,
                    language,
                    from,
                    to,
                } => h.category_changes.push(CategoryChange {
                    name,
                    language,
                    from,
                    to,
                    at,
                }),
                Signal::AccountRestriction {
                    waba_id,
                    event,
                    restrictions,
                    violation,
                    ban_state,
                } => h.account_restrictions.push(AccountHealth {
                    waba_id,
                    event,
                    restrictions,
                    violation,
                    ban_state,
                    at,
                }),
                Signal::Backlog {
                    count,
                    oldest_wait_ms,
                } => {
                    h.backlog = Some(BacklogHealth {
                        count,
                        oldest_wait_ms,
                        at,
                    })
                }
                // Templates come from the registry (a later APPROVED clears them there).
                _ => {}
            }
        }
        h.templates = templates
            .iter()
            .flat_map(|w| w.templates.iter().map(move |t| (&w.waba, t)))
            .filter_map(|(waba, t)| {
                let status = t.status.as_ref()?;
                (status.as_str() != "APPROVED").then(|| TemplateHealth {
                    waba_id: waba.as_ref().map(|w| w.id.clone()),
                    numbers: waba.as_ref().map(|w| w.numbers.clone()).unwrap_or_default(),
                    name: t.name.clone(),
                    language: t.language.clone(),
                    status: status.as_str().to_string(),
                    reason: t.reason.clone(),
                    category: t.category.clone(),
                })
            })
            .collect();
        h
    }

    /// The report as text tables.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "NUMBER QUALITY");
        if self.numbers.is_empty() {
            let _ = writeln!(out, "  no quality update received");
        }
        for n in &self.numbers {
            let _ = writeln!(
                out,
                "  {:<16} rating {:<7} event {:<20} limit {}",
                n.number,
                opt(&n.rating),
                opt(&n.event),
                opt(&n.limit)
            );
        }
        let _ = writeln!(out, "TEMPLATES NOT APPROVED");
        if self.templates.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for t in &self.templates {
            // With a numbers registry, the WABA (and its numbers) leads the line.
            if let Some(waba) = &t.waba_id {
                let _ = write!(out, "  {waba:<16} {:<24}", t.numbers.join(","));
            }
            let _ = writeln!(
                out,
                "  {:<24} {:<8} {:<10} reason {}",
                t.name,
                t.language,
                t.status,
                opt(&t.reason)
            );
        }
        for c in &self.category_changes {
            let _ = writeln!(
                out,
                "  recategorised: {} {} {} -> {}",
                c.name,
                c.language,
                opt(&c.from),
                c.to
            );
        }
        let _ = writeln!(out, "ACCOUNT RESTRICTIONS");
        if self.account_restrictions.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for a in &self.account_restrictions {
            let _ = writeln!(
                out,
                "  {} event {} restrictions [{}] violation {} ban {}",
                a.waba_id,
                opt(&a.event),
                a.restrictions.join(", "),
                opt(&a.violation),
                opt(&a.ban_state)
            );
        }
        let rate = self
            .sends
            .failed_rate
            .map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0));
        let _ = writeln!(
            out,
            "SENDS (last {} h): {} attempted, {} failed, failed rate {rate}",
            self.window_hours, self.sends.attempted, self.sends.failed
        );
        let backlog = self.backlog.as_ref().map_or_else(
            || "not reported".to_string(),
            |b| {
                format!(
                    "{} awaiting a response, oldest {} s",
                    b.count,
                    b.oldest_wait_ms / 1000
                )
            },
        );
        let _ = writeln!(
            out,
            "SLA (last {} h): {} breaches; backlog: {backlog}",
            self.window_hours, self.sla_breaches
        );
        out
    }
}
