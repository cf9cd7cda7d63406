//! Pacing: Pipedrive counts requests per token in rolling 2-second windows (search has a
//! smaller budget of its own) and answers 429 past them; every 429 still costs daily tokens.
//! So the adapter never sends faster than the window allows, and sends evenly: one request
//! every `window / max`. Even spacing matters: a window's worth sent at once, then the next
//! window's worth exactly one window later, meets Pipedrive's rolling count with whatever
//! network and scheduling delay the first batch had, and overflows it.

use std::time::Duration;

use std::sync::Mutex;
use tokio::time::Instant;

/// Headroom under the limit, in percent: arrivals at Pipedrive jitter by the network's and the
/// scheduler's delays, and a request one jitter early over a full window costs a 429.
const HEADROOM_PERCENT: u32 = 5;

/// Fewer than `max` sends per `window`, evenly spaced.
pub(crate) struct Pacer {
    interval: Duration,
    /// When the next send may go.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(max: usize, window: Duration) -> Pacer {
        Pacer {
            interval: window * 100 / (max.max(1) as u32 * (100 - HEADROOM_PERCENT)),
            next: Mutex::new(None),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window() {
        let pacer = std::sync::Arc::new(Pacer::new(5, Duration::from_secs(2)));
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
        // One send every 421 ms (400 ms and 5 % headroom): the 23rd goes after 9.26 s.
        let last = times[22].duration_since(started);
        assert!(
            last >= Duration::from_millis(9260) && last < Duration::from_millis(9270),
            "{last:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_the_next_send() {
        let pacer = Pacer::new(5, Duration::from_secs(2));
        let started = Instant::now();
        pacer.pause_until(started + Duration::from_secs(3));
        pacer.slot().await;
        assert_eq!(
            Instant::now().duration_since(started),
            Duration::from_secs(3)
        );
    }
}
