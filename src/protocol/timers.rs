//! An actor's timers as data: one ordered queue, one wake-up.
//!
//! actix keeps every `run_later` of an actor as an item of its context and
//! polls all of them each time the actor wakes, so an actor with many
//! pending timers pays for all of them on every message. In a partition of
//! 1,000 simulated nodes each failure detector runs 500 suspicion timers and
//! handles thousands of datagrams a second: a quarter of the simulator's CPU
//! went to polling timers that were not due. Here the timers are entries
//! of an ordered map keyed by `(deadline, sequence)`; the actor arms one
//! actix timer for the earliest deadline (`next`), pops what is due when it
//! fires (`pop_due`), and re-arms. Adding, cancelling and popping cost
//! O(log n), and waking costs nothing for timers not due.
//!
//! Like foca's `Runtime::submit_after`, a timer is a value the protocol
//! code can inspect and test without a runtime.

use std::collections::BTreeMap;
use tokio::time::Instant;

/// Names one scheduled timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    at: Instant,
    seq: u64,
}

#[derive(Debug)]
pub struct Timers<T> {
    queue: BTreeMap<TimerKey, T>,
    seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            queue: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Schedules `timer` at `at`. Timers due at the same instant pop in the
    /// order they were scheduled.
    pub fn schedule(&mut self, at: Instant, timer: T) -> TimerKey {
        self.seq += 1;
        let key = TimerKey { at, seq: self.seq };
        self.queue.insert(key, timer);
        key
    }

    /// Removes a timer that has not fired; `None` if it fired or was
    /// cancelled already.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.queue.remove(&key)
    }

    /// When the earliest timer is due.
    pub fn next(&self) -> Option<Instant> {
        self.queue.keys().next().map(|k| k.at)
    }

    /// The earliest timer, if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        let first = self.queue.first_entry()?;
        if first.key().at > now {
            return None;
        }
        Some(first.remove())
    }

    /// Keeps only the timers for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.queue.retain(|_, t| keep(t));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_then_in_scheduling_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.schedule(t0 + Duration::from_millis(30), "c");
        t.schedule(t0 + Duration::from_millis(10), "a");
        t.schedule(t0 + Duration::from_millis(10), "b");
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.pop_due(t0), None, "nothing is due yet");
        let now = t0 + Duration::from_millis(20);
        assert_eq!(t.pop_due(now), Some("a"));
        assert_eq!(t.pop_due(now), Some("b"));
        assert_eq!(t.pop_due(now), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_cancels_once() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let k = t.schedule(t0, 1);
        t.schedule(t0 + Duration::from_secs(1), 2);
        assert_eq!(t.cancel(k), Some(1));
        assert_eq!(t.cancel(k), None);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), Some(2));
        assert!(t.is_empty());
    }

    #[test]
    fn retain_drops_what_it_is_told() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..10 {
            t.schedule(t0 + Duration::from_millis(i), i);
        }
        t.retain(|i| i % 2 == 0);
        let mut left = vec![];
        while let Some(i) = t.pop_due(t0 + Duration::from_secs(1)) {
            left.push(i);
        }
        assert_eq!(left, vec![0, 2, 4, 6, 8]);
    }
}
