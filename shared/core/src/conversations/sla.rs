//! The first-response SLA (issue 20, item 5): a customer who wrote must get the business's
//! first response within `WABRIDGE_FIRST_RESPONSE_SLA_MINUTES` (default 15). With business
//! hours for the number (the numbers registry's `business_hours`), the clock counts only the
//! minutes inside them: a message on Saturday evening is due on Monday morning.
//!
//! A conversation whose first inbound message has no response by its due time is *breached*:
//! the sweep ([`super::sweep`]) finds it and crm-sync sends one `sla_breach` record
//! ([`SlaBreachRecord`]) through the effects ledger. A response that comes later still sets
//! `first_response_*`.

use std::collections::HashMap;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ConversationRecord;
use crate::config::{ConfigError, Settings, WABRIDGE_FIRST_RESPONSE_SLA_MINUTES};
use crate::records::Version;

/// Most holidays one number's hours may list (a few years of a country's public holidays).
const MAX_HOLIDAYS: usize = 200;

/// Default of [`WABRIDGE_FIRST_RESPONSE_SLA_MINUTES`].
pub const DEFAULT_SLA_MINUTES: u32 = 15;

/// [`WABRIDGE_FIRST_RESPONSE_SLA_MINUTES`] through `lookup`: whole minutes from 1 to 10080 (a
/// week); anything else stops the process at start, naming the variable.
pub fn sla_minutes(lookup: impl Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    Settings::new(lookup).number(
        WABRIDGE_FIRST_RESPONSE_SLA_MINUTES,
        DEFAULT_SLA_MINUTES,
        "a whole number of minutes from 1 to 10080",
        |m| (1..=10_080).contains(m),
    )
}

/// When a number answers: on `days`, from `open` to `close`, in `timezone`.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    pub timezone: TimeZone,
    /// The IANA name, as written (`America/Mexico_City`).
    pub timezone_name: String,
    pub days: Vec<Weekday>,
    pub open: Time,
    pub close: Time,
    /// Dates in `timezone` when the number does not answer at all (public holidays).
    pub holidays: Vec<Date>,
}

/// `business_hours` of a number in the registry, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBusinessHours {
    pub timezone: String,
    pub days: Vec<String>,
    pub open: String,
    pub close: String,
    /// `YYYY-MM-DD` dates, closed all day (holidays are national, so each number lists its own).
    #[serde(default)]
    pub holidays: Vec<String>,
}

impl BusinessHours {
    /// Checks the registry's text; the error says which part is wrong.
    pub fn parse(raw: &RawBusinessHours) -> Result<BusinessHours, String> {
        let timezone = TimeZone::get(raw.timezone.trim()).map_err(|_| {
            format!(
                "`business_hours.timezone` {:?} is not an IANA time zone (America/Mexico_City)",
                raw.timezone
            )
        })?;
        let mut days = Vec::new();
        for d in &raw.days {
            let day = weekday(d).ok_or_else(|| {
                format!("`business_hours.days` has {d:?}: use mon, tue, wed, thu, fri, sat, sun")
            })?;
            if !days.contains(&day) {
                days.push(day);
            }
        }
        if days.is_empty() {
            return Err("`business_hours.days` names no day".into());
        }
        let time = |field: &str, v: &str| {
            Time::strptime("%H:%M", v.trim())
                .map_err(|_| format!("`business_hours.{field}` {v:?} must be a time like 09:00"))
        };
        let (open, close) = (time("open", &raw.open)?, time("close", &raw.close)?);
        if open >= close {
            return Err("`business_hours.open` must be before `close`".into());
        }
        if raw.holidays.len() > MAX_HOLIDAYS {
            return Err(format!(
                "`business_hours.holidays` lists {} dates: at most {MAX_HOLIDAYS}",
                raw.holidays.len()
            ));
        }
        let mut holidays = Vec::with_capacity(raw.holidays.len());
        for h in &raw.holidays {
            let date = Date::strptime("%Y-%m-%d", h.trim()).map_err(|_| {
                format!("`business_hours.holidays` has {h:?}: use dates like 2026-12-25")
            })?;
            holidays.push(date);
        }
        holidays.sort();
        holidays.dedup();
        Ok(BusinessHours {
            timezone,
            timezone_name: raw.timezone.trim().to_string(),
            days,
            open,
            close,
            holidays,
        })
    }

    /// `start` plus `minutes` of business time (Unix ms).
    pub fn add(&self, start: i64, minutes: u32) -> i64 {
        let mut remaining = i64::from(minutes) * 60_000;
        let Ok(ts) = Timestamp::from_millisecond(start) else {
            return start + remaining;
        };
        let mut date: Date = ts.to_zoned(self.timezone.clone()).date();
        // Bounded: a week of one-minute windows per SLA minute at most, plus the holidays.
        for _ in 0..(i64::from(minutes) * 7 + 8 + self.holidays.len() as i64) {
            if self.days.contains(&date.weekday()) && self.holidays.binary_search(&date).is_err() {
                let at = |t: Time| {
                    date.to_datetime(t)
                        .to_zoned(self.timezone.clone())
                        .map(|z| z.timestamp().as_millisecond())
                };
                if let (Ok(open), Ok(close)) = (at(self.open), at(self.close)) {
                    let from = start.max(open);
                    if from < close {
                        if close - from >= remaining {
                            return from + remaining;
                        }
                        remaining -= close - from;
                    }
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        start + remaining
    }
}

fn weekday(d: &str) -> Option<Weekday> {
    Some(match d.trim().to_ascii_lowercase().as_str() {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// The SLA of every number: the minutes, and the business hours of the numbers that have them
/// (by `phone_number_id`; the others count every minute).
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    pub minutes: u32,
    pub hours: HashMap<String, BusinessHours>,
}

impl SlaPolicy {
    pub fn new(minutes: u32) -> SlaPolicy {
        SlaPolicy {
            minutes,
            hours: HashMap::new(),
        }
    }

    /// With the business hours of the registry's numbers.
    pub fn with_numbers(mut self, numbers: Option<&crate::numbers::Numbers>) -> SlaPolicy {
        for n in numbers.map(|n| n.all()).unwrap_or_default() {
            if let Some(h) = &n.business_hours {
                self.hours.insert(n.phone_number_id.clone(), h.clone());
            }
        }
        self
    }

    /// When the first response of a conversation is due: its first inbound + the SLA.
    pub fn due_at(&self, r: &ConversationRecord) -> Option<i64> {
        let first = r.first_inbound_at?;
        Some(match self.hours.get(&r.number) {
            Some(h) => h.add(first, self.minutes),
            None => first + i64::from(self.minutes) * 60_000,
        })
    }

    /// Whether the conversation's first response is overdue at `now`: no response by its due
    /// time (none yet, or a later one). A conversation breached before counts no more.
    pub fn overdue(&self, r: &ConversationRecord, now: i64) -> Option<i64> {
        let due = self.due_at(r)?;
        let late = r.first_response_at.is_none_or(|at| at > due);
        (r.sla_breached_at.is_none() && late && now >= due).then_some(due)
    }
}

/// One overdue first response, sent once per conversation (keyed `sla_breach:<id>`) so a CRM
/// workflow can escalate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SlaBreachRecord {
    #[serde(default)]
    pub v: Version,
    pub conversation_id: String,
    pub contact_id: String,
    /// The business number's `phone_number_id`.
    pub number: String,
    pub first_inbound_at: i64,
    /// When the first response was due (business time counted).
    pub due_at: i64,
    /// When the sweep found it overdue.
    pub breached_at: i64,
    /// The conversation's agent at that time, if any.
    pub agent: Option<String>,
}

impl SlaBreachRecord {
    pub fn record_key(&self) -> String {
        format!("sla_breach:{}", self.conversation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours() -> BusinessHours {
        BusinessHours::parse(&RawBusinessHours {
            timezone: "America/Mexico_City".into(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            open: "09:00".into(),
            close: "18:00".into(),
            holidays: Vec::new(),
        })
        .unwrap()
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn saturday_evening_is_due_monday_morning() {
        // Saturday 2026-11-07 20:00 in Mexico City (UTC-6) is 2026-11-08T02:00Z.
        let due = hours().add(ms("2026-11-08T02:00:00Z"), 15);
        assert_eq!(due, ms("2026-11-09T15:15:00Z"), "Monday 09:15 local");
    }

    #[test]
    fn the_clock_stops_at_close_and_runs_inside_hours() {
        let h = hours();
        // Tuesday 10:00 local: plain 15 minutes.
        assert_eq!(
            h.add(ms("2026-11-10T16:00:00Z"), 15),
            ms("2026-11-10T16:15:00Z")
        );
        // Friday 17:50 local: 10 minutes on Friday, 5 on Monday.
        assert_eq!(
            h.add(ms("2026-11-13T23:50:00Z"), 15),
            ms("2026-11-16T15:05:00Z")
        );
    }

    #[test]
    fn holidays_count_no_minutes() {
        let mut raw = RawBusinessHours {
            timezone: "America/Mexico_City".into(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            open: "09:00".into(),
            close: "18:00".into(),
            holidays: vec!["2026-11-16".into(), "2026-11-17".into()],
        };
        let h = BusinessHours::parse(&raw).unwrap();
        // Friday 17:50 local: 10 minutes on Friday; Monday 16 (Revolution Day, observed) and
        // Tuesday 17 are closed, so the last 5 minutes are on Wednesday.
        assert_eq!(
            h.add(ms("2026-11-13T23:50:00Z"), 15),
            ms("2026-11-18T15:05:00Z")
        );
        // A holiday on a day the number never opens changes nothing.
        raw.holidays = vec!["2026-11-14".into()];
        assert_eq!(
            BusinessHours::parse(&raw)
                .unwrap()
                .add(ms("2026-11-13T23:50:00Z"), 15),
            ms("2026-11-16T15:05:00Z")
        );
    }

    #[test]
    fn bad_business_hours_name_the_field() {
        let mut raw = RawBusinessHours {
            timezone: "Mars/Olympus".into(),
            days: vec!["mon".into()],
            open: "09:00".into(),
            close: "18:00".into(),
            holidays: Vec::new(),
        };
        assert!(BusinessHours::parse(&raw).unwrap_err().contains("timezone"));
        raw.timezone = "UTC".into();
        raw.days = vec!["monday".into()];
        assert!(BusinessHours::parse(&raw).unwrap_err().contains("days"));
        raw.days = vec!["mon".into()];
        raw.open = "19:00".into();
        assert!(BusinessHours::parse(&raw).unwrap_err().contains("open"));
        raw.open = "09:00".into();
        raw.holidays = vec!["25/12/2026".into()];
        let err = BusinessHours::parse(&raw).unwrap_err();
        assert!(
            err.contains("holidays") && err.contains("25/12/2026"),
            "{err}"
        );
        raw.holidays = vec!["2026-12-25".into(); MAX_HOLIDAYS + 1];
        assert!(BusinessHours::parse(&raw).unwrap_err().contains("at most"));
    }

    #[test]
    fn sla_setting_is_validated() {
        assert_eq!(sla_minutes(|_| None).unwrap(), 15);
        assert_eq!(sla_minutes(|_| Some("30".into())).unwrap(), 30);
        for bad in ["0", "-5", "15m", "99999"] {
            let err = sla_minutes(|_| Some(bad.into())).unwrap_err();
            assert!(
                err.to_string()
                    .contains("WABRIDGE_FIRST_RESPONSE_SLA_MINUTES"),
                "{err}"
            );
        }
    }

    #[test]
    fn overdue_only_once_and_only_without_a_timely_response() {
        let policy = SlaPolicy::new(15);
        let mut r = ConversationRecord {
            first_inbound_at: Some(0),
            ..ConversationRecord::default()
        };
        assert_eq!(policy.overdue(&r, 899_999), None);
        assert_eq!(policy.overdue(&r, 900_000), Some(900_000));
        r.first_response_at = Some(900_000);
        assert_eq!(policy.overdue(&r, 2_000_000), None, "answered on time");
        r.first_response_at = Some(900_001);
        assert_eq!(
            policy.overdue(&r, 2_000_000),
            Some(900_000),
            "answered late"
        );
        r.sla_breached_at = Some(1_000_000);
        assert_eq!(policy.overdue(&r, 2_000_000), None, "breached before");
    }
}
