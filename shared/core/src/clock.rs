//! The wall clock, read in one place: Unix time in milliseconds. Services that need a test
//! clock take a [`Clock`] defaulting to [`Clock::System`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix ms as RFC 3339 (`2026-12-04T10:00:00Z`); the number itself when out of range.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Unix ms in UTC as `format` lays it out; the number itself when out of range.
fn utc(ms: i64, format: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Unix ms as a UTC date, `2026-12-04` (CRM date fields).
pub fn utc_date(ms: i64) -> String {
    utc(
        ms,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
}

/// Unix ms as `2026-12-04T10:00:00+00:00`, whole seconds (Zoho's date-time fields).
pub fn utc_seconds_offset(ms: i64) -> String {
    utc(
        ms,
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"),
    )
}

/// Unix ms as `2026-12-04T10:00:00.123Z` (Salesforce's date/time fields).
pub fn utc_millis(ms: i64) -> String {
    utc(
        ms,
        time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ),
    )
}

/// Seconds since the Unix epoch (TTL attributes, signature timestamps).
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Time source of the queues, the retry horizon and the circuit breaker (Unix milliseconds).
/// Tests use a manual clock to move past visibility timeouts and TTLs without sleeping, and a
/// scaled one to live through hours of an outage in seconds, every part on the same time.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// Moves only when told to ([`Clock::advance`]).
    Manual(Arc<AtomicI64>),
    /// Runs `factor` times faster than real time from `start_ms` at `origin`.
    Scaled {
        origin: Instant,
        start_ms: i64,
        factor: u32,
    },
}

impl Clock {
    /// A clock that only moves when told to, starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// A clock starting now that runs `factor` times faster than real time.
    pub fn scaled(factor: u32) -> Clock {
        Clock::Scaled {
            origin: Instant::now(),
            start_ms: now_ms(),
            factor: factor.max(1),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
            Clock::Scaled {
                origin,
                start_ms,
                factor,
            } => start_ms.saturating_add(
                (origin.elapsed().as_millis() as i64).saturating_mul(i64::from(*factor)),
            ),
        }
    }

    /// Moves a manual clock forward; no effect on the others.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }

    /// How long `d` of this clock's time lasts in real time (a manual clock's time passes only
    /// when told: its waits are short real pauses, so loops that wait on it keep polling).
    pub fn real(&self, d: Duration) -> Duration {
        match self {
            Clock::System => d,
            Clock::Manual(_) => d.min(Duration::from_millis(20)),
            Clock::Scaled { factor, .. } => d / *factor,
        }
    }

    /// Sleeps `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.real(d)).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crm_date_formats_are_utc_calendar_days() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(1_763_780_000_123), "2025-11-22");
        assert_eq!(super::utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(super::utc_date(-1), "1969-12-31");
        assert_eq!(
            super::utc_millis(1_763_780_000_123),
            "2025-11-22T02:53:20.123Z"
        );
        assert_eq!(super::utc_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(super::utc_seconds_offset(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            super::utc_seconds_offset(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59+00:00"
        );
    }

    use super::*;

    #[test]
    fn a_scaled_clock_runs_faster_and_a_manual_one_only_when_told() {
        let scaled = Clock::scaled(1000);
        let t0 = scaled.now_ms();
        std::thread::sleep(Duration::from_millis(20));
        assert!(scaled.now_ms() - t0 >= 20_000, "{}", scaled.now_ms() - t0);
        assert_eq!(
            scaled.real(Duration::from_secs(60)),
            Duration::from_millis(60)
        );

        let manual = Clock::manual(5);
        assert_eq!(manual.now_ms(), 5);
        manual.advance(Duration::from_secs(1));
        assert_eq!(manual.now_ms(), 1005);
        Clock::System.advance(Duration::from_secs(1)); // no effect, no panic
    }
}
