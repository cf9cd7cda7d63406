//! The attribution report: per source / medium / campaign, conversations, leads, conversions
//! and their value (per currency), as a table, CSV or JSON.
//!
//! Rows with no source are conversations nobody is credited for (`(direct)` in the table).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::store::Credit;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub conversations: u64,
    pub leads: u64,
    pub conversions: u64,
    /// Sum of conversion values per currency.
    pub value: BTreeMap<String, f64>,
}

impl ReportRow {
    pub fn new(credit: Credit) -> ReportRow {
        ReportRow {
            utm_source: credit.utm_source,
            utm_medium: credit.utm_medium,
            utm_campaign: credit.utm_campaign,
            conversations: 0,
            leads: 0,
            conversions: 0,
            value: BTreeMap::new(),
        }
    }

    fn value_text(&self) -> String {
        self.value
            .iter()
            .map(|(c, v)| format!("{v:.2} {c}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Start of the period (Unix ms).
    pub since_ms: i64,
    pub rows: Vec<ReportRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// A report option that does not parse, naming the option and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportOptionError {
    #[error("unknown format {0:?}: use table, csv or json")]
    Format(String),
    #[error("--since {0:?}: expected like 30d, 12h, 2w or 2026-11-01")]
    Since(String),
    #[error("--since {0:?}: unit must be m, h, d or w")]
    SinceUnit(String),
}

impl std::str::FromStr for Format {
    type Err = ReportOptionError;
    fn from_str(s: &str) -> Result<Format, ReportOptionError> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(ReportOptionError::Format(other.to_string())),
        }
    }
}

/// Parses a `--since` value: a duration back from `now_ms` (`30d`, `12h`, `90m`, `2w`) or a
/// date (`2026-11-01`, UTC midnight). Returns Unix ms.
pub fn parse_since(value: &str, now_ms: i64) -> Result<i64, ReportOptionError> {
    let v = value.trim();
    if let Ok(date) =
        time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]"))
    {
        return Ok(date.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: i64 = digits
        .parse()
        .map_err(|_| ReportOptionError::Since(value.to_string()))?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(ReportOptionError::SinceUnit(value.to_string())),
    };
    Ok(now_ms - n.saturating_mul(unit_ms))
}

pub fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("report serialises");
                s.push('\n');
                s
            }
            Format::Csv => {
                let mut s = String::from("utm_source,utm_medium,utm_campaign,conversations,leads,conversions,currency,value\n");
                for r in &self.rows {
                    let base = format!(
                        "{},{},{},{},{},{}",
                        csv_field(r.utm_source.as_deref().unwrap_or("")),
                        csv_field(r.utm_medium.as_deref().unwrap_or("")),
                        csv_field(r.utm_campaign.as_deref().unwrap_or("")),
                        r.conversations,
                        r.leads,
                        r.conversions
                    );
                    if r.value.is_empty() {
                        let _ = writeln!(s, "{base},,0.00");
                    }
                    // One line per currency: values in different currencies are never added.
                    for (currency, value) in &r.value {
                        let _ = writeln!(s, "{base},{},{value:.2}", csv_field(currency));
                    }
                }
                s
            }
            Format::Table => {
                let header = [
                    "SOURCE",
                    "MEDIUM",
                    "CAMPAIGN",
                    "CONVERSATIONS",
                    "LEADS",
                    "CONVERSIONS",
                    "VALUE",
                ];
                let lines: Vec<[String; 7]> = self
                    .rows
                    .iter()
                    .map(|r| {
                        [
                            r.utm_source.clone().unwrap_or_else(|| "(direct)".into()),
                            r.utm_medium.clone().unwrap_or_else(|| "(none)".into()),
                            r.utm_campaign.clone().unwrap_or_else(|| "(none)".into()),
                            r.conversations.to_string(),
                            r.leads.to_string(),
                            r.conversions.to_string(),
                            r.value_text(),
                        ]
                    })
                    .collect();
                let mut widths = header.map(|h| h.chars().count());
                for l in &lines {
                    for (w, c) in widths.iter_mut().zip(l) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let mut s = String::new();
                let row = |s: &mut String, cells: &[String]| {
                    let parts: Vec<String> = cells
                        .iter()
                        .zip(widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect();
                    let _ = writeln!(s, "{}", parts.join("  ").trim_end());
                };
                row(&mut s, &header.map(String::from));
                for l in &lines {
                    row(&mut s, l);
                }
                if lines.is_empty() {
                    s.push_str("(no attributed activity in this period)\n");
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut a = ReportRow::new(Credit {
            utm_source: Some("facebook".into()),
            utm_medium: Some("paid_social".into()),
            utm_campaign: Some("summer, \"hot\"".into()),
        });
        a.conversations = 3;
        a.leads = 2;
        a.conversions = 2;
        a.value.insert("MXN".into(), 1500.5);
        a.value.insert("USD".into(), 20.0);
        let mut d = ReportRow::new(Credit::default());
        d.conversations = 1;
        Report {
            since_ms: 0,
            rows: vec![d, a],
        }
    }

    #[test]
    fn since_accepts_durations_and_dates() {
        let now = 100 * 86_400_000;
        assert_eq!(parse_since("30d", now).unwrap(), 70 * 86_400_000);
        assert_eq!(parse_since("2w", now).unwrap(), 86 * 86_400_000);
        assert_eq!(parse_since("12h", now).unwrap(), now - 12 * 3_600_000);
        assert_eq!(parse_since("1970-01-02", now).unwrap(), 86_400_000);
        assert!(parse_since("30", now).is_err());
        assert!(parse_since("d", now).is_err());
        assert!(parse_since("3y", now).is_err());
    }

    #[test]
    fn csv_quotes_and_splits_currencies() {
        let csv = report().render(Format::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "utm_source,utm_medium,utm_campaign,conversations,leads,conversions,currency,value"
        );
        assert_eq!(lines[1], ",,,1,0,0,,0.00");
        assert_eq!(
            lines[2],
            "facebook,paid_social,\"summer, \"\"hot\"\"\",3,2,2,MXN,1500.50"
        );
        assert_eq!(
            lines[3],
            "facebook,paid_social,\"summer, \"\"hot\"\"\",3,2,2,USD,20.00"
        );
    }

    #[test]
    fn table_and_json() {
        let t = report().render(Format::Table);
        assert!(t.starts_with("SOURCE"));
        assert!(t.contains("(direct)"));
        assert!(t.contains("1500.50 MXN; 20.00 USD"));
        let j: serde_json::Value = serde_json::from_str(&report().render(Format::Json)).unwrap();
        assert_eq!(j["rows"][1]["value"]["MXN"], 1500.5);
        assert_eq!(j["rows"][1]["leads"], 2);
        assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
        assert!("xml".parse::<Format>().is_err());
    }
}
