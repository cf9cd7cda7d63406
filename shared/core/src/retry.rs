//! The retry horizon: how long a transient failure keeps a message on its queue, and how long
//! it waits between attempts.
//!
//! A transient failure (a CRM or the Graph API answering 5xx, 408, 429, timing out, refusing the
//! connection, or a CRM refusing our credentials with 401/403) is not the message's fault: the
//! message waits on its queue, with exponential backoff and jitter ([`backoff`]), until it is
//! older than its queue's horizon ([`RetryPolicy::horizon`]). Only then, or on a terminal error
//! (validation, any other 4xx), does it go to the dead letters, with a reason that says which.
//!
//! The arithmetic, for SQS's backstop: delays grow 1 s, 2 s, 4 s ... up to [`MAX_BACKOFF`]
//! (15 min), with full jitter while they grow (consumers that failed together spread out) and
//! between 3/4 and all of the cap once there, so a message waiting out a week-long outage is
//! received at most 11 + 7 d / 11.25 min = 907 times: under [`BACKSTOP_RECEIVES`] (1,000, SQS's
//! largest `maxReceiveCount`), which therefore only catches a consumer that crashes on a
//! message every time, never an outage within the horizon.

use std::time::Duration;

/// Longest wait between two attempts of one message (also SQS's longest `DelaySeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Longest delay a server's `Retry-After` may impose (SQS's longest visibility timeout).
pub const MAX_HINT: Duration = Duration::from_secs(12 * 3600);
/// Receives after which a queue dead-letters a message whatever happened (see the module
/// docs): the redrive policy's `maxReceiveCount` on SQS, the SQLite queue's `max_receives`.
pub const BACKSTOP_RECEIVES: u32 = 1000;
/// Default horizon of the events queue: Meta retries a webhook for 7 days, and an event waits
/// as long for its CRM (the queue keeps messages 10 days, so none expires first).
pub const DEFAULT_EVENTS_HORIZON: Duration = Duration::from_secs(7 * 86_400);
/// Default horizon of the sends queue: a template sent a day late can be worse than none, so a
/// send that Meta's API could not take for 24 hours ends `failed`, reported to the CRM.
pub const DEFAULT_SENDS_HORIZON: Duration = Duration::from_secs(24 * 3600);

/// Shortest drawn delay (a retry sooner than this only finds the same failure).
const MIN_DELAY_MS: u64 = 200;
/// Receives during which a server's `Retry-After` is the delay itself; after them it is only a
/// floor under the backoff, so that a server asking for tiny delays for days cannot spend the
/// receive backstop (10 + 907 < 1,000).
pub const HINTED_ATTEMPTS: u32 = 10;

/// The delay before attempt `attempt + 1` (`attempt` counts from 1, the receive count).
/// With a server's `hint` (`Retry-After`, rate-limit headers; capped at [`MAX_HINT`]): the hint
/// and up to a tenth more (so throttled consumers do not return together), for the first
/// [`HINTED_ATTEMPTS`]; never shorter than the hint after. Otherwise: 1 s doubling per attempt
/// up to [`MAX_BACKOFF`], drawn uniformly below that (at least 200 ms) so consumers that failed
/// together do not retry together, and in `[3/4, 1]` of the cap once it is reached (the
/// backstop's arithmetic above).
pub fn backoff(attempt: u32, hint: Option<Duration>) -> Duration {
    if let Some(hint) = hint.map(|h| h.min(MAX_HINT)) {
        if attempt <= HINTED_ATTEMPTS {
            let spread = rand::random_range(0..=hint.as_millis() as u64 / 10);
            return (hint + Duration::from_millis(spread)).min(MAX_HINT);
        }
        return grown(attempt).max(hint);
    }
    grown(attempt)
}

fn grown(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let cap_ms = MAX_BACKOFF.as_millis() as u64;
    let full_ms = (1000u64 << exp).min(cap_ms);
    let floor_ms = if full_ms == cap_ms {
        cap_ms - cap_ms / 4
    } else {
        MIN_DELAY_MS
    };
    Duration::from_millis(rand::random_range(floor_ms..=full_ms))
}

/// What one queue's consumers do with transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A message older than this is dead-lettered at its next transient failure.
    pub horizon: Duration,
}

impl RetryPolicy {
    pub const EVENTS: RetryPolicy = RetryPolicy {
        horizon: DEFAULT_EVENTS_HORIZON,
    };
    pub const SENDS: RetryPolicy = RetryPolicy {
        horizon: DEFAULT_SENDS_HORIZON,
    };

    /// The wait before the next attempt of a message of age `age` that wants to wait `delay`:
    /// `Some(delay)`, shortened so the last attempt falls on the horizon, or `None` when the
    /// horizon has passed (dead-letter it).
    pub fn next(&self, age: Duration, delay: Duration) -> Option<Duration> {
        let left = self.horizon.checked_sub(age).filter(|l| !l.is_zero())?;
        Some(delay.min(left))
    }
}

/// Human form of a duration for reasons and logs: `7d`, `36h`, `90s`.
pub fn describe(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}min", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_is_capped_and_honours_hints() {
        for attempt in 1..=12 {
            let full = Duration::from_secs(1 << (attempt - 1)).min(MAX_BACKOFF);
            let floor = if full == MAX_BACKOFF {
                MAX_BACKOFF * 3 / 4
            } else {
                Duration::from_millis(MIN_DELAY_MS)
            };
            for _ in 0..20 {
                let d = backoff(attempt, None);
                assert!(d <= full && d >= floor, "{attempt}: {d:?}");
            }
        }
        assert!(backoff(u32::MAX, None) <= MAX_BACKOFF);
        assert!(backoff(40, None) >= MAX_BACKOFF * 3 / 4);
        // A Retry-After is the delay (plus up to a tenth), capped at SQS's longest visibility
        // timeout; after HINTED_ATTEMPTS a floor under the growing backoff.
        let hint = Duration::from_millis(20);
        for _ in 0..20 {
            let d = backoff(3, Some(hint));
            assert!(d >= hint && d <= hint * 11 / 10, "{d:?}");
        }
        assert!(backoff(1, Some(Duration::from_secs(90))) >= Duration::from_secs(90));
        assert_eq!(backoff(1, Some(Duration::from_secs(86_400))), MAX_HINT);
        assert!(backoff(HINTED_ATTEMPTS + 8, Some(hint)) >= Duration::from_millis(MIN_DELAY_MS));
        assert!(backoff(30, Some(hint)) >= MAX_BACKOFF * 3 / 4);
        // Jitter: not all the same.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(8, None)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn a_week_of_backoff_stays_under_the_receive_backstop() {
        // The worst case draws the shortest delay every time.
        let (mut t, mut receives) = (Duration::ZERO, 0u32);
        while t < DEFAULT_EVENTS_HORIZON {
            receives += 1;
            let full = Duration::from_secs(1u64 << receives.saturating_sub(1).min(20));
            t += if full >= MAX_BACKOFF {
                MAX_BACKOFF - MAX_BACKOFF / 4
            } else {
                Duration::from_millis(MIN_DELAY_MS)
            };
        }
        assert!(receives < BACKSTOP_RECEIVES, "{receives}");
        assert!(
            receives > BACKSTOP_RECEIVES * 8 / 10,
            "{receives}: the bound is not loose"
        );
    }

    #[test]
    fn the_last_attempt_falls_on_the_horizon_and_none_after() {
        let p = RetryPolicy {
            horizon: Duration::from_secs(3600),
        };
        let min = Duration::from_secs(60);
        assert_eq!(p.next(Duration::ZERO, min), Some(min));
        assert_eq!(
            p.next(Duration::from_secs(3590), min),
            Some(Duration::from_secs(10))
        );
        assert_eq!(p.next(Duration::from_secs(3600), min), None);
        assert_eq!(p.next(Duration::from_secs(9000), min), None);
        assert_eq!(describe(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(describe(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(describe(Duration::from_secs(90)), "90s");
    }
}
