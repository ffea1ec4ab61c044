//! Replay protection for sealed datagrams and key operations.
//!
//! Every sealed datagram carries a *stamp* inside its ciphertext (so it is
//! authenticated): the sender's clock in microseconds since the Unix epoch,
//! raised by one whenever that would not be larger than the last stamp it
//! used, so a sender's stamps strictly increase, across restarts too. A
//! receiver accepts a stamp only
//! - within `window` of its own clock (a capture older than that is dead
//!   everywhere, even on a node that never heard from the sender), and
//! - not seen before from that sender: it keeps each sender's last
//!   [`RECENT`] stamps, and refuses one it holds or one older than all of
//!   them (datagrams may arrive out of order, but not by more than that).
//!
//! Key operations carry their own id and time: applied once per id, refused
//! outside the window (see [`KeyOpLog`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::member::NodeId;

/// Stamps remembered per sender.
pub const RECENT: usize = 64;

/// A sender's strictly increasing stamps.
#[derive(Debug, Default)]
pub struct Stamper {
    last: u64,
}

impl Stamper {
    pub fn next(&mut self, now_micros: u64) -> u64 {
        self.last = now_micros.max(self.last.saturating_add(1));
        self.last
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Outside the time window: captured long ago, or a clock far off.
    OutsideWindow,
    /// Seen before (or too old to tell).
    Replay,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::OutsideWindow => {
                write!(
                    f,
                    "stamped outside the replay window (old capture, or clocks apart)"
                )
            }
            Refused::Replay => write!(f, "replayed datagram"),
        }
    }
}

fn within(at_micros: u64, now_micros: u64, window_micros: u64) -> bool {
    at_micros.abs_diff(now_micros) <= window_micros
}

struct Sender {
    recent: BTreeSet<u64>,
    tick: u64,
}

/// The stamps each sender used lately; at most `capacity` senders (the
/// least recently heard from is forgotten first: the window still holds).
pub struct ReplayGuard {
    window_micros: u64,
    capacity: usize,
    senders: HashMap<NodeId, Sender>,
    age: BTreeMap<u64, NodeId>,
    tick: u64,
}

impl ReplayGuard {
    pub fn new(window_ms: u64, capacity: usize) -> Self {
        ReplayGuard {
            window_micros: window_ms.saturating_mul(1000),
            capacity: capacity.max(1),
            senders: HashMap::new(),
            age: BTreeMap::new(),
            tick: 0,
        }
    }

    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Accepts `stamp` from `sender` once, or says why not.
    pub fn check(&mut self, sender: &NodeId, stamp: u64, now_micros: u64) -> Result<(), Refused> {
        if !within(stamp, now_micros, self.window_micros) {
            return Err(Refused::OutsideWindow);
        }
        self.tick += 1;
        let tick = self.tick;
        if !self.senders.contains_key(sender) && self.senders.len() >= self.capacity {
            if let Some((_, oldest)) = self.age.pop_first() {
                self.senders.remove(&oldest);
            }
        }
        let s = self.senders.entry(sender.clone()).or_insert(Sender {
            recent: BTreeSet::new(),
            tick,
        });
        let full = s.recent.len() >= RECENT;
        if s.recent.contains(&stamp) || (full && s.recent.first().is_some_and(|&m| stamp < m)) {
            return Err(Refused::Replay);
        }
        s.recent.insert(stamp);
        if s.recent.len() > RECENT {
            s.recent.pop_first();
        }
        self.age.remove(&s.tick);
        s.tick = tick;
        self.age.insert(tick, sender.clone());
        Ok(())
    }
}

/// Key operations applied lately: `(id, at_ms)`, kept for the window (and
/// persisted with the keyring, so a restart does not forget them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyOpLog {
    applied: BTreeMap<u64, u64>,
}

/// Key operations remembered at most (one per `gossip keys` call).
pub const MAX_KEY_OPS: usize = 1024;

impl KeyOpLog {
    pub fn from_entries(entries: impl IntoIterator<Item = (u64, u64)>) -> Self {
        KeyOpLog {
            applied: entries.into_iter().collect(),
        }
    }

    pub fn entries(&self) -> Vec<(u64, u64)> {
        self.applied.iter().map(|(&id, &at)| (id, at)).collect()
    }

    /// Whether the operation `id` stamped `at_ms` may be applied now; if so,
    /// it is recorded as applied.
    pub fn admit(
        &mut self,
        id: u64,
        at_ms: u64,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<(), Refused> {
        if !within(at_ms, now_ms, window_ms) {
            return Err(Refused::OutsideWindow);
        }
        if self.applied.contains_key(&id) {
            return Err(Refused::Replay);
        }
        // Entries outside the window can no longer be replayed: forget them.
        self.applied
            .retain(|_, at| within(*at, now_ms, window_ms.saturating_mul(2)));
        if self.applied.len() >= MAX_KEY_OPS {
            let oldest = self
                .applied
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| *id);
            if let Some(o) = oldest {
                self.applied.remove(&o);
            }
        }
        self.applied.insert(id, at_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn stamps_strictly_increase_even_when_the_clock_does_not() {
        let mut s = Stamper::default();
        let a = s.next(100);
        let b = s.next(100);
        let c = s.next(50);
        assert!(a < b && b < c);
        assert_eq!(s.next(1000), 1000);
    }

    #[test]
    fn a_stamp_is_accepted_once_and_only_inside_the_window() {
        let mut g = ReplayGuard::new(30_000, 16);
        let n = NodeId::new("a");
        let now = 1000 * S;
        assert_eq!(g.check(&n, now, now), Ok(()));
        assert_eq!(g.check(&n, now, now), Err(Refused::Replay));
        assert_eq!(g.check(&NodeId::new("b"), now, now), Ok(()), "per sender");
        assert_eq!(g.check(&n, now - 31 * S, now), Err(Refused::OutsideWindow));
        assert_eq!(g.check(&n, now + 31 * S, now), Err(Refused::OutsideWindow));
        // Out of order within the window is fine.
        assert_eq!(g.check(&n, now - 5, now), Ok(()));
    }

    #[test]
    fn older_than_every_remembered_stamp_is_refused() {
        let mut g = ReplayGuard::new(30_000, 16);
        let n = NodeId::new("a");
        let now = 1000 * S;
        for i in 0..RECENT as u64 {
            g.check(&n, now + i, now).unwrap();
        }
        g.check(&n, now + 1000, now).unwrap();
        assert_eq!(g.check(&n, now, now), Err(Refused::Replay));
        assert_eq!(g.check(&n, now - 1, now), Err(Refused::Replay));
    }

    #[test]
    fn senders_are_bounded() {
        let mut g = ReplayGuard::new(30_000, 4);
        for i in 0..100 {
            g.check(&NodeId::new(&format!("n{i}")), 1000 * S, 1000 * S)
                .unwrap();
        }
        assert_eq!(g.senders(), 4);
    }

    #[test]
    fn key_ops_apply_once_inside_the_window() {
        let mut log = KeyOpLog::default();
        let now = 1_000_000;
        assert_eq!(log.admit(7, now, now, 30_000), Ok(()));
        assert_eq!(log.admit(7, now, now + 10, 30_000), Err(Refused::Replay));
        assert_eq!(
            log.admit(8, now - 31_000, now, 30_000),
            Err(Refused::OutsideWindow)
        );
        let restored = KeyOpLog::from_entries(log.entries());
        assert_eq!(restored, log);
        for i in 0..(MAX_KEY_OPS as u64 + 10) {
            log.admit(100 + i, now, now, 30_000).unwrap();
        }
        assert!(log.entries().len() <= MAX_KEY_OPS);
    }
}
