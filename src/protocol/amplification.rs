//! The anti-amplification budget: until an address has answered one of our
//! pings with the matching ack, we send it at most twice the bytes it sent
//! us, so a spoofed source address buys its victim at most 2x traffic.
//!
//! An address we have never heard from is one we contact on our own account
//! (a seed, a member we probe): no limit, since nothing we send it can be an
//! answer bought by a stranger. Once an address has sent us a datagram and
//! until a ping/ack round trip with it completes, it is *unverified*: what
//! exceeds its credit is held (bounded, for a few seconds) and a
//! verification ping goes out; the ack, which only the real owner of the
//! address can send, releases what was held. This is how a joiner gets the
//! whole table from its seed: one round trip later, not refused.
//!
//! Memory is bounded: at most `capacity` unverified addresses (the least
//! recently heard from is forgotten first), as many verified ones, and
//! [`MAX_HELD_BYTES`] held in all.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

use super::member::NodeId;
use super::wire::EncodedMsg;

/// An address may send us this many times what it sent before verifying.
pub const AMPLIFICATION_FACTOR: u64 = 2;
/// Held bytes for one unverified address: a 1,000-member table.
pub const MAX_HELD_PER_ADDRESS: usize = 128 * 1024;
/// Held bytes for all unverified addresses together.
pub const MAX_HELD_BYTES: usize = 2 * 1024 * 1024;
/// Held messages wait this long for the verifying ack, then are dropped.
pub const HOLD_TTL: Duration = Duration::from_secs(5);
/// A verification ping is sent again after this long without its ack (it
/// or the ack may be lost).
pub const VERIFY_RETRY: Duration = Duration::from_secs(1);
/// Ping seqs a verification may be answered with (ours and the detector's).
const PENDING_PINGS: usize = 4;
/// Seqs of verification pings have this bit set; the failure detector's
/// count up from 0, so the two cannot meet for 2^31 probes.
pub const VERIFY_SEQ_BIT: u32 = 1 << 31;

struct Unverified {
    received: u64,
    sent: u64,
    /// The id it claims in its envelopes: a verification ping must name it.
    id: Option<NodeId>,
    pending: [Option<u32>; PENDING_PINGS],
    next_pending: usize,
    verify_sent: Option<Instant>,
    held: Vec<EncodedMsg>,
    held_bytes: usize,
    held_since: Option<Instant>,
    tick: u64,
}

/// What to do with messages for one address.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Verified, or an address we contact on our own: no limit.
    Open,
    /// Unverified: at most this many bytes may go out now.
    Credit(u64),
}

#[derive(Default)]
pub struct AmplificationGuard {
    capacity: usize,
    unverified: HashMap<SocketAddr, Unverified>,
    unverified_age: BTreeMap<u64, SocketAddr>,
    verified: HashMap<SocketAddr, u64>,
    verified_age: BTreeMap<u64, SocketAddr>,
    /// Pings we sent on our own account to addresses we had not heard from.
    initiated: HashMap<SocketAddr, (u32, u64)>,
    initiated_age: BTreeMap<u64, SocketAddr>,
    held_bytes: usize,
    tick: u64,
    next_verify_seq: u32,
}

/// What [`AmplificationGuard::hold`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub held: usize,
    pub dropped: usize,
}

impl AmplificationGuard {
    pub fn new(capacity: usize) -> Self {
        AmplificationGuard {
            capacity: capacity.max(1),
            ..Default::default()
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    pub fn is_verified(&self, addr: &SocketAddr) -> bool {
        self.verified.contains_key(addr)
    }

    /// Unverified addresses tracked now.
    pub fn unverified_len(&self) -> usize {
        self.unverified.len()
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// A datagram of `bytes` arrived from `from`, claiming to be `id`.
    pub fn on_receive(&mut self, from: SocketAddr, id: Option<&NodeId>, bytes: usize) {
        let tick = self.next_tick();
        if self.initiated.contains_key(&from) {
            // We wrote first; its answer may verify it (see `on_ack`).
            return;
        }
        if let Some(old) = self.verified.get_mut(&from) {
            self.verified_age.remove(old);
            *old = tick;
            self.verified_age.insert(tick, from);
            return;
        }
        if !self.unverified.contains_key(&from) && self.unverified.len() >= self.capacity {
            if let Some((_, oldest)) = self.unverified_age.pop_first() {
                if let Some(gone) = self.unverified.remove(&oldest) {
                    self.held_bytes -= gone.held_bytes;
                }
            }
        }
        let u = self.unverified.entry(from).or_insert_with(|| Unverified {
            received: 0,
            sent: 0,
            id: None,
            pending: [None; PENDING_PINGS],
            next_pending: 0,
            verify_sent: None,
            held: Vec::new(),
            held_bytes: 0,
            held_since: None,
            tick,
        });
        self.unverified_age.remove(&u.tick);
        u.tick = tick;
        self.unverified_age.insert(tick, from);
        u.received = u.received.saturating_add(bytes as u64);
        if let Some(id) = id {
            u.id = Some(id.clone());
        }
    }

    /// How much may go to `to` now.
    pub fn admit(&self, to: &SocketAddr) -> Admit {
        match self.unverified.get(to) {
            None => Admit::Open,
            Some(u) => Admit::Credit(
                (u.received.saturating_mul(AMPLIFICATION_FACTOR)).saturating_sub(u.sent),
            ),
        }
    }

    /// Records a datagram of `bytes` sent to `to`.
    pub fn on_send(&mut self, to: &SocketAddr, bytes: usize) {
        if let Some(u) = self.unverified.get_mut(to) {
            u.sent = u.sent.saturating_add(bytes as u64);
        }
    }

    /// Records a ping we sent to `to` (ours or the failure detector's): its
    /// ack verifies the address.
    pub fn on_ping_sent(&mut self, to: &SocketAddr, seq: u32) {
        if self.verified.contains_key(to) {
            return;
        }
        if let Some(u) = self.unverified.get_mut(to) {
            u.pending[u.next_pending] = Some(seq);
            u.next_pending = (u.next_pending + 1) % PENDING_PINGS;
            return;
        }
        let tick = self.next_tick();
        if !self.initiated.contains_key(to) && self.initiated.len() >= self.capacity {
            if let Some((_, oldest)) = self.initiated_age.pop_first() {
                self.initiated.remove(&oldest);
            }
        }
        if let Some((_, old)) = self.initiated.insert(*to, (seq, tick)) {
            self.initiated_age.remove(&old);
        }
        self.initiated_age.insert(tick, *to);
    }

    /// An ack arrived. When it answers a ping we sent to that very address,
    /// the address is verified: returns what was held for it, to send now.
    pub fn on_ack(&mut self, from: SocketAddr, seq: u32) -> Option<Vec<EncodedMsg>> {
        let held = if let Some(&(s, tick)) = self.initiated.get(&from) {
            if s != seq {
                return None;
            }
            self.initiated.remove(&from);
            self.initiated_age.remove(&tick);
            Vec::new()
        } else {
            let u = self.unverified.get(&from)?;
            if !u.pending.contains(&Some(seq)) {
                return None;
            }
            let u = self.unverified.remove(&from)?;
            self.unverified_age.remove(&u.tick);
            self.held_bytes -= u.held_bytes;
            u.held
        };
        if self.verified.len() >= self.capacity {
            if let Some((_, oldest)) = self.verified_age.pop_first() {
                self.verified.remove(&oldest);
            }
        }
        let tick = self.next_tick();
        self.verified.insert(from, tick);
        self.verified_age.insert(tick, from);
        Some(held)
    }

    /// A verification ping for `to` if one is due (none sent, or the last
    /// one is older than [`VERIFY_RETRY`]): its seq and the id it must name.
    pub fn verification_due(&mut self, to: &SocketAddr, now: Instant) -> Option<(u32, NodeId)> {
        let u = self.unverified.get_mut(to)?;
        let id = u.id.clone()?;
        if u.verify_sent
            .is_some_and(|t| now.duration_since(t) < HOLD_TTL)
        {
            return None;
        }
        u.verify_sent = Some(now);
        self.next_verify_seq = self.next_verify_seq.wrapping_add(1);
        let seq = self.next_verify_seq | VERIFY_SEQ_BIT;
        u.pending[u.next_pending] = Some(seq);
        u.next_pending = (u.next_pending + 1) % PENDING_PINGS;
        Some((seq, id))
    }

    /// Keeps messages that exceed `to`'s credit until it verifies, within
    /// the per-address and total bounds; the rest are dropped.
    pub fn hold(&mut self, to: &SocketAddr, msgs: Vec<EncodedMsg>, now: Instant) -> Held {
        let mut out = Held::default();
        let Some(u) = self.unverified.get_mut(to) else {
            out.dropped = msgs.len();
            return out;
        };
        for m in msgs {
            let fits = u.held_bytes + m.len() <= MAX_HELD_PER_ADDRESS
                && self.held_bytes + m.len() <= MAX_HELD_BYTES;
            if fits {
                u.held_bytes += m.len();
                self.held_bytes += m.len();
                u.held.push(m);
                u.held_since.get_or_insert(now);
                out.held += 1;
            } else {
                out.dropped += 1;
            }
        }
        out
    }

    /// Drops what was held longer than [`HOLD_TTL`]; returns how many
    /// messages that was.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        for u in self.unverified.values_mut() {
            if u.held_since
                .is_some_and(|t| now.duration_since(t) >= HOLD_TTL)
            {
                dropped += u.held.len();
                self.held_bytes -= u.held_bytes;
                u.held = Vec::new();
                u.held_bytes = 0;
                u.held_since = None;
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn msg(n: usize) -> EncodedMsg {
        Arc::from(vec![0u8; n])
    }

    #[test]
    fn strangers_get_twice_what_they_sent_and_initiated_contact_is_open() {
        let mut g = AmplificationGuard::new(16);
        assert_eq!(g.admit(&a(1)), Admit::Open);
        g.on_receive(a(1), Some(&NodeId::new("x")), 40);
        assert_eq!(g.admit(&a(1)), Admit::Credit(80));
        g.on_send(&a(1), 50);
        assert_eq!(g.admit(&a(1)), Admit::Credit(30));
        g.on_send(&a(1), 50);
        assert_eq!(g.admit(&a(1)), Admit::Credit(0));
    }

    #[test]
    fn only_the_matching_ack_from_that_address_verifies_and_releases_what_was_held() {
        let mut g = AmplificationGuard::new(16);
        let now = Instant::now();
        g.on_receive(a(1), Some(&NodeId::new("x")), 40);
        assert_eq!(g.hold(&a(1), vec![msg(500), msg(500)], now).held, 2);
        let (seq, id) = g.verification_due(&a(1), now).unwrap();
        assert_eq!(id, NodeId::new("x"));
        assert!(g.verification_due(&a(1), now).is_none(), "one at a time");
        assert!(g.on_ack(a(2), seq).is_none(), "another address");
        assert!(g.on_ack(a(1), seq ^ 1).is_none(), "another seq");
        assert_eq!(g.on_ack(a(1), seq).unwrap().len(), 2);
        assert!(g.is_verified(&a(1)));
        assert_eq!(g.admit(&a(1)), Admit::Open);
        assert_eq!(g.held_bytes(), 0);
        // The failure detector's own pings verify too.
        g.on_receive(a(3), None, 10);
        g.on_ping_sent(&a(3), 7);
        assert!(g.on_ack(a(3), 7).is_some());
        // And so do pings to an address we wrote to first.
        g.on_ping_sent(&a(4), 9);
        g.on_receive(a(4), None, 10);
        assert_eq!(g.admit(&a(4)), Admit::Open);
        assert!(g.on_ack(a(4), 8).is_none());
        assert_eq!(g.on_ack(a(4), 9), Some(vec![]));
        assert!(g.is_verified(&a(4)));
    }

    #[test]
    fn memory_is_bounded_by_address_count_and_held_bytes() {
        let mut g = AmplificationGuard::new(8);
        let now = Instant::now();
        for p in 0..1000 {
            g.on_receive(a(p), Some(&NodeId::new("x")), 40);
            g.hold(&a(p), vec![msg(MAX_HELD_PER_ADDRESS / 2)], now);
        }
        assert_eq!(g.unverified_len(), 8);
        assert!(g.held_bytes() <= MAX_HELD_BYTES);
        let r = g.hold(&a(999), vec![msg(MAX_HELD_PER_ADDRESS)], now);
        assert_eq!(
            r,
            Held {
                held: 0,
                dropped: 1
            }
        );
        assert!(g.expire(now + HOLD_TTL) > 0);
        assert_eq!(g.held_bytes(), 0);
    }
}
