//! Holding a CRM's rate limit before the CRM has to say so: a 429 is a request spent (Pipedrive
//! charges it to the daily budget, Kommo blocks repeat offenders) and a delay for everyone.
//!
//! - [`Spaced`]: one send every `window / max`, for short windows (Pipedrive: 2 s, Kommo: 1 s). Even
//!   spacing matters there: a window's worth sent at once, then the next window's worth exactly
//!   one window later, meets the CRM's rolling count with whatever network and scheduling
//!   delay the first batch had, and overflows it.
//! - [`Window`]: at most `max` sends in any rolling `window`, bursts allowed, for long windows
//!   (HubSpot: 10 s), where a burst of batch calls is what the limit is for.
//! - [`Concurrent`]: at most `max` calls in flight, for CRMs that limit concurrency instead of
//!   a rate (Zoho: concurrent calls per org and app, and a lower cap for search; Salesforce:
//!   long-running calls per org).
//!
//! Both keep headroom under the limit for arrival jitter: a request delayed by `d` (network,
//! a stalled scheduler) lands in a window that already holds up to `(window + d) / window`
//! times the paced rate. [`SPACED_HEADROOM_PERCENT`] (10 %) absorbs 0.2 s of jitter in a
//! 2-second window; [`WINDOW_HEADROOM_PERCENT`] (5 %) half a second in a 10-second one.

use std::time::Duration;

use tokio::time::Instant;

/// Headroom of [`Spaced`] under the limit, in percent.
#[cfg(any(feature = "pipedrive", feature = "kommo"))]
pub const SPACED_HEADROOM_PERCENT: u32 = 10;
/// Headroom of [`Window`] under the limit, in percent.
#[cfg(feature = "hubspot")]
pub const WINDOW_HEADROOM_PERCENT: u32 = 5;

/// Fewer than `max` sends per `window`, evenly spaced.
#[cfg(any(feature = "pipedrive", feature = "kommo"))]
pub(crate) struct Spaced {
    interval: Duration,
    /// When the next send may go.
    next: std::sync::Mutex<Option<Instant>>,
}

#[cfg(any(feature = "pipedrive", feature = "kommo"))]
impl Spaced {
    pub fn new(max: usize, window: Duration) -> Spaced {
        Spaced {
            interval: window * 100 / (max.max(1) as u32 * (100 - SPACED_HEADROOM_PERCENT)),
            next: std::sync::Mutex::new(None),
        }
    }

    /// Waits for this caller's turn. Turns are handed out in call order, each `interval`
    /// after the previous one.
    pub async fn slot(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap();
            let now = Instant::now();
            let turn = next.map_or(now, |n| n.max(now));
            *next = Some(turn + self.interval);
            turn
        };
        tokio::time::sleep_until(turn).await;
    }

    /// Holds every later send until `until` (after a 429: the window had no room).
    pub fn pause_until(&self, until: Instant) {
        let mut next = self.next.lock().unwrap();
        *next = Some(next.map_or(until, |n| n.max(until)));
    }

    /// Waits until a send could go now, without taking the turn (a batch gathers meanwhile).
    #[cfg(feature = "kommo")]
    pub async fn ready(&self) {
        let next = *self.next.lock().unwrap();
        if let Some(turn) = next {
            tokio::time::sleep_until(turn).await;
        }
    }
}

/// At most `max` (less the headroom) sends in any rolling `window`.
#[cfg(feature = "hubspot")]
pub(crate) struct Window {
    max: usize,
    window: Duration,
    sent: tokio::sync::Mutex<std::collections::VecDeque<Instant>>,
}

#[cfg(feature = "hubspot")]
impl Window {
    pub fn new(max: usize, window: Duration) -> Window {
        let max = (max * (100 - WINDOW_HEADROOM_PERCENT as usize) / 100).max(1);
        Window {
            max,
            window,
            sent: tokio::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Waits until the window has room, then takes a place in it. Callers wait on the lock in
    /// arrival order.
    pub async fn slot(&self) {
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                sent.pop_front();
            }
            if sent.len() < self.max {
                sent.push_back(now);
                return;
            }
            // The oldest send leaves the window first.
            tokio::time::sleep_until(sent[0] + self.window).await;
        }
    }
}

/// At most `max` calls in flight at once. A call holds its permit until its answer arrived,
/// and the CRM counts a call as ended before it answers: the CRM never sees more than `max`.
#[cfg(any(feature = "zoho", feature = "salesforce"))]
pub(crate) struct Concurrent {
    permits: tokio::sync::Semaphore,
    /// No call starts before this (after a 429: the CRM counted more than we did).
    paused: std::sync::Mutex<Option<Instant>>,
}

#[cfg(any(feature = "zoho", feature = "salesforce"))]
impl Concurrent {
    pub fn new(max: usize) -> Concurrent {
        Concurrent {
            permits: tokio::sync::Semaphore::new(max.max(1)),
            paused: std::sync::Mutex::new(None),
        }
    }

    /// Waits for a free place (and any pause), held until the permit drops.
    pub async fn slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        let permit = self.permits.acquire().await.expect("never closed");
        let until = *self.paused.lock().unwrap();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        permit
    }

    /// Holds every later call until `until`.
    pub fn pause_until(&self, until: Instant) {
        let mut paused = self.paused.lock().unwrap();
        *paused = Some(paused.map_or(until, |p| p.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "pipedrive")]
    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window() {
        let pacer = std::sync::Arc::new(Spaced::new(5, Duration::from_secs(2)));
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..23 {
            let p = pacer.clone();
            handles.push(tokio::spawn(async move {
                p.slot().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap());
        }
        times.sort();
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(2))
                .count();
            assert!(in_window <= 5, "{in_window} sends in one window");
        }
        // One send every 444 ms (400 ms and 10 % headroom): the 23rd goes after 9.78 s.
        let last = times[22].duration_since(started);
        assert!(
            last >= Duration::from_millis(9770) && last < Duration::from_millis(9790),
            "{last:?}"
        );
    }

    #[cfg(feature = "hubspot")]
    #[tokio::test(start_paused = true)]
    async fn a_window_allows_a_burst_and_never_more_than_its_limit() {
        // 20 less 5 % headroom: 19 per 10 s.
        let window = std::sync::Arc::new(Window::new(20, Duration::from_secs(10)));
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..40 {
            let w = window.clone();
            handles.push(tokio::spawn(async move {
                w.slot().await;
                Instant::now().duration_since(started)
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap());
        }
        times.sort();
        assert!(
            times[..19].iter().all(|t| t.is_zero()),
            "a burst of 19 at once"
        );
        assert_eq!(times[19], Duration::from_secs(10));
        assert_eq!(times[38], Duration::from_secs(20));
        assert_eq!(times[39], Duration::from_secs(20));
    }

    #[cfg(any(feature = "zoho", feature = "salesforce"))]
    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_flight() {
        let pacer = std::sync::Arc::new(Concurrent::new(3));
        let now = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..10 {
            let (p, now, peak) = (pacer.clone(), now.clone(), peak.clone());
            handles.push(tokio::spawn(async move {
                let _permit = p.slot().await;
                let n = now.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Ten calls of 100 ms, three at a time: four rounds.
        assert_eq!(started.elapsed(), Duration::from_millis(400));
        pacer.pause_until(Instant::now() + Duration::from_secs(2));
        let before = Instant::now();
        drop(pacer.slot().await);
        assert_eq!(before.elapsed(), Duration::from_secs(2));
    }

    #[cfg(feature = "kommo")]
    #[tokio::test(start_paused = true)]
    async fn ready_waits_for_the_next_turn_without_taking_it() {
        // 7 per second less 10 %: one send every 158.7 ms.
        let pacer = Spaced::new(7, Duration::from_secs(1));
        let started = Instant::now();
        pacer.ready().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "idle: ready at once");
        pacer.slot().await;
        pacer.ready().await;
        let turn = started.elapsed();
        // (tokio's timer rounds up to whole milliseconds.)
        assert!(
            turn >= Duration::from_millis(158) && turn <= Duration::from_millis(160),
            "{turn:?}"
        );
        // The turn was not taken: the next send goes at that same time.
        pacer.slot().await;
        assert_eq!(started.elapsed(), turn);
    }

    #[cfg(feature = "pipedrive")]
    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_the_next_send() {
        let pacer = Spaced::new(5, Duration::from_secs(2));
        let started = Instant::now();
        pacer.pause_until(started + Duration::from_secs(3));
        pacer.slot().await;
        assert_eq!(
            Instant::now().duration_since(started),
            Duration::from_secs(3)
        );
    }
}
