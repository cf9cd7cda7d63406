//! `wabridge report conversations` (issue 20, item 8): over the conversations opened in a
//! period, per agent, tag, outcome, number or origin (or all together): how many opened and
//! how many of them closed, first-response time at p50 and p90, the SLA breach rate, the
//! outcome shares and the conversion rate (outcome `converted`).
//!
//! Pure: both engines hand over the same records ([`super::ConversationStore::opened_since`])
//! and this module computes the figures, so SQLite and DynamoDB print the same report.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::{ConversationRecord, Origin};
use crate::attribution::report::{csv_field, Format};

/// The outcome that counts as a conversion.
pub const CONVERTED: &str = "converted";

/// How rows are grouped (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    All,
    Agent,
    Tag,
    Outcome,
    Number,
    Origin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--by {0:?}: use agent, tag, outcome, number or origin")]
pub struct ByError(pub String);

impl std::str::FromStr for By {
    type Err = ByError;
    fn from_str(s: &str) -> Result<By, ByError> {
        Ok(match s {
            "agent" => By::Agent,
            "tag" => By::Tag,
            "outcome" => By::Outcome,
            "number" => By::Number,
            "origin" => By::Origin,
            other => return Err(ByError(other.to_string())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The group's value (`(none)` for conversations without one; `all` without `--by`).
    pub group: String,
    pub opened: u64,
    /// Of those opened, how many are closed.
    pub closed: u64,
    /// First-response time percentiles (nearest rank) over the answered ones, ms.
    pub frt_p50_ms: Option<i64>,
    pub frt_p90_ms: Option<i64>,
    /// Breached over those with an inbound message (that have a first response due).
    pub sla_breach_rate: Option<f64>,
    /// Share of the opened conversations per outcome (`(none)`: no outcome yet).
    pub outcomes: BTreeMap<String, f64>,
    /// Share of the opened conversations whose outcome is `converted`.
    pub conversion_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationReport {
    pub since_ms: i64,
    pub by: &'static str,
    pub rows: Vec<Row>,
}

/// The nearest-rank percentile `p` (0 to 100) of sorted values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank - 1).copied()
}

fn origin_name(o: Option<Origin>) -> String {
    match o {
        Some(o) => o.as_str().into(),
        None => NONE.into(),
    }
}

const NONE: &str = "(none)";

fn groups(r: &ConversationRecord, by: By) -> Vec<String> {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE.into());
    match by {
        By::All => vec!["all".into()],
        By::Agent => vec![or_none(&r.agent)],
        By::Outcome => vec![or_none(&r.outcome)],
        By::Number => vec![r.number.clone()],
        By::Origin => vec![origin_name(r.origin)],
        // A conversation counts in each of its tags.
        By::Tag if r.tags.is_empty() => vec![NONE.into()],
        By::Tag => {
            let mut t = r.tags.clone();
            t.sort();
            t.dedup();
            t
        }
    }
}

impl ConversationReport {
    /// The report of `records` (conversations opened since `since_ms`), grouped `by`.
    pub fn build(since_ms: i64, by: By, records: &[ConversationRecord]) -> ConversationReport {
        let mut grouped: BTreeMap<String, Vec<&ConversationRecord>> = BTreeMap::new();
        for r in records.iter().filter(|r| r.opened_at >= since_ms) {
            for g in groups(r, by) {
                grouped.entry(g).or_default().push(r);
            }
        }
        let rows = grouped
            .into_iter()
            .map(|(group, rs)| row(group, &rs))
            .collect();
        ConversationReport {
            since_ms,
            by: match by {
                By::All => "all",
                By::Agent => "agent",
                By::Tag => "tag",
                By::Outcome => "outcome",
                By::Number => "number",
                By::Origin => "origin",
            },
            rows,
        }
    }
}

fn row(group: String, rs: &[&ConversationRecord]) -> Row {
    let opened = rs.len() as u64;
    let share = |n: usize| (opened > 0).then(|| n as f64 / opened as f64);
    let mut frt: Vec<i64> = rs.iter().filter_map(|r| r.first_response_ms).collect();
    frt.sort_unstable();
    let due = rs.iter().filter(|r| r.first_inbound_at.is_some()).count();
    let breached = rs.iter().filter(|r| r.sla_breached_at.is_some()).count();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for r in rs {
        *outcomes
            .entry(r.outcome.clone().unwrap_or_else(|| NONE.into()))
            .or_default() += 1;
    }
    let converted = outcomes.get(CONVERTED).copied().unwrap_or(0);
    Row {
        group,
        opened,
        closed: rs.iter().filter(|r| !r.is_open()).count() as u64,
        frt_p50_ms: percentile(&frt, 50),
        frt_p90_ms: percentile(&frt, 90),
        sla_breach_rate: (due > 0).then(|| breached as f64 / due as f64),
        outcomes: outcomes
            .into_iter()
            .map(|(k, n)| (k, share(n).unwrap_or(0.0)))
            .collect(),
        conversion_rate: share(converted),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_default()
}

fn ms(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Row {
    fn outcomes_text(&self) -> String {
        self.outcomes
            .iter()
            .map(|(k, v)| format!("{k} {:.1}%", v * 100.0))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cells(&self) -> [String; 8] {
        [
            self.group.clone(),
            self.opened.to_string(),
            self.closed.to_string(),
            ms(self.frt_p50_ms),
            ms(self.frt_p90_ms),
            pct(self.sla_breach_rate),
            pct(self.conversion_rate),
            self.outcomes_text(),
        ]
    }
}

impl ConversationReport {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("report serialises");
                s.push('\n');
                s
            }
            Format::Csv => {
                let mut s = String::from("group,opened,closed,frt_p50_ms,frt_p90_ms,sla_breach_rate,conversion_rate,outcome,outcome_share\n");
                for r in &self.rows {
                    let rate = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
                    let base = format!(
                        "{},{},{},{},{},{},{}",
                        csv_field(&r.group),
                        r.opened,
                        r.closed,
                        ms(r.frt_p50_ms),
                        ms(r.frt_p90_ms),
                        rate(r.sla_breach_rate),
                        rate(r.conversion_rate)
                    );
                    // One line per outcome, like the attribution report's currencies.
                    for (outcome, share) in &r.outcomes {
                        let _ = writeln!(s, "{base},{},{share:.4}", csv_field(outcome));
                    }
                }
                s
            }
            Format::Table => {
                let header = [
                    self.by.to_ascii_uppercase(),
                    "OPENED".into(),
                    "CLOSED".into(),
                    "FRT_P50_MS".into(),
                    "FRT_P90_MS".into(),
                    "SLA_BREACHED".into(),
                    "CONVERTED".into(),
                    "OUTCOMES".into(),
                ];
                let lines: Vec<[String; 8]> = self.rows.iter().map(Row::cells).collect();
                let mut widths = header.clone().map(|h| h.chars().count());
                for l in &lines {
                    for (w, c) in widths.iter_mut().zip(l) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let mut s = String::new();
                let line = |s: &mut String, cells: &[String]| {
                    let parts: Vec<String> = cells
                        .iter()
                        .zip(widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect();
                    let _ = writeln!(s, "{}", parts.join("  ").trim_end());
                };
                line(&mut s, &header);
                for l in &lines {
                    line(&mut s, l);
                }
                if lines.is_empty() {
                    s.push_str("(no conversation opened in this period)\n");
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(id: &str, agent: &str, frt: Option<i64>, outcome: Option<&str>) -> ConversationRecord {
        ConversationRecord {
            id: id.into(),
            number: "pn1".into(),
            opened_at: 1_000,
            first_inbound_at: Some(1_000),
            first_response_ms: frt,
            agent: Some(agent.into()),
            outcome: outcome.map(str::to_string),
            origin: Some(Origin::CtwaAd),
            ..ConversationRecord::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=10).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50), Some(5000));
        assert_eq!(percentile(&v, 90), Some(9000));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn figures_per_agent_and_tag() {
        let mut a = conv("a", "ana", Some(60_000), Some("converted"));
        a.tags = vec!["ventas".into(), "vip".into()];
        a.sla_breached_at = Some(5);
        a.closed_at = Some(9);
        let b = conv("b", "ana", Some(120_000), Some("lost"));
        let c = conv("c", "bruno", None, None);
        let mut old = conv("old", "ana", Some(1), None);
        old.opened_at = 10;
        let records = [a, b, c, old];
        let r = ConversationReport::build(1_000, By::Agent, &records);
        assert_eq!(r.rows.len(), 2);
        let ana = &r.rows[0];
        assert_eq!((ana.group.as_str(), ana.opened, ana.closed), ("ana", 2, 1));
        assert_eq!(
            (ana.frt_p50_ms, ana.frt_p90_ms),
            (Some(60_000), Some(120_000))
        );
        assert_eq!(ana.sla_breach_rate, Some(0.5));
        assert_eq!(ana.conversion_rate, Some(0.5));
        assert_eq!(ana.outcomes["lost"], 0.5);
        let t = ConversationReport::build(0, By::Tag, &records);
        let groups: Vec<&str> = t.rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(groups, ["(none)", "ventas", "vip"]);
        assert_eq!(t.rows[0].opened, 3);
        let o = ConversationReport::build(0, By::Origin, &records);
        assert_eq!(o.rows[0].group, "ctwa_ad");
        assert_eq!(o.rows[0].conversion_rate, Some(0.25));
        let table = r.render(Format::Table);
        assert!(table.starts_with("AGENT"), "{table}");
        assert!(table.contains("50.0%"), "{table}");
        let csv = r.render(Format::Csv);
        assert!(
            csv.contains("\nana,2,1,60000,120000,0.5000,0.5000,converted,0.5000\n"),
            "{csv}"
        );
        assert_eq!("tag".parse::<By>().unwrap(), By::Tag);
        assert!("team"
            .parse::<By>()
            .unwrap_err()
            .to_string()
            .contains("--by"));
    }
}
