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
//! Memory is bounded: at most `capacity` unverified addresses, as many
//! verified ones and as many we pinged first, and [`MAX_HELD_BYTES`] held
//! in all. A full map forgets the least recently heard from eighth of its
//! entries (pinged, for those we pinged first), in one batch, not strictly
//! the least recent one: every simulated node has its own guard, and the
//! age index that strict LRU needs cost a B-tree update per datagram
//! received and a second copy of every address, which a 10,000-node
//! simulation felt in both memory and time. Each entry carries its tick
//! instead, and a batch costs one pass over the map per `capacity / 8`
//! insertions. (A spoofer can flush out the least recent entries either
//! way; with capacities under 16 a batch is exactly one entry.)
//!
//! What is held for an unverified address lives in its own map, which is
//! empty but for the few seconds a joiner waits for its verification, so
//! that the many unverified entries stay small.

use std::collections::HashMap;
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
/// Ping seqs a verification may be answered with (ours and the detector's).
const PENDING_PINGS: usize = 4;
/// Seqs of verification pings have this bit set; the failure detector's
/// count up from 0, so the two cannot meet for 2^31 probes.
pub const VERIFY_SEQ_BIT: u32 = 1 << 31;

#[derive(Default)]
struct Unverified {
    received: u64,
    sent: u64,
    /// The id it claims in its envelopes: a verification ping must name it.
    id: Option<NodeId>,
    verify_sent: Option<Instant>,
    tick: u64,
    /// A ring of the last pings sent to it; any seq is possible (the
    /// detector's start at 0), hence a mask of the slots written.
    pending: [u32; PENDING_PINGS],
    pending_set: u8,
    next_pending: u8,
}

impl Unverified {
    fn ping_sent(&mut self, seq: u32) {
        // A probe pings up to sixteen times with one seq: repeats must not
        // push a verification ping's seq out of the ring.
        if self.is_pending(seq) {
            return;
        }
        let i = usize::from(self.next_pending);
        self.pending[i] = seq;
        self.pending_set |= 1 << i;
        self.next_pending = ((i + 1) % PENDING_PINGS) as u8;
    }

    fn is_pending(&self, seq: u32) -> bool {
        (0..PENDING_PINGS).any(|i| self.pending_set & (1 << i) != 0 && self.pending[i] == seq)
    }
}

/// What waits for one unverified address's verification.
struct HeldFor {
    msgs: Vec<EncodedMsg>,
    bytes: usize,
    since: Instant,
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
    /// Only unverified addresses with something held have an entry.
    held: HashMap<SocketAddr, HeldFor>,
    /// Verified addresses, with the tick they were last heard from.
    verified: HashMap<SocketAddr, u64>,
    /// Pings we sent on our own account to addresses we had not heard from:
    /// seq and tick.
    initiated: HashMap<SocketAddr, (u32, u64)>,
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

/// Removes the eighth of `map` (at least one entry) with the oldest ticks,
/// calling `forget` with each address removed. Ticks within one map are
/// unique (each comes from one call to `next_tick`), so exactly that many go.
fn evict_oldest<V>(
    map: &mut HashMap<SocketAddr, V>,
    tick: impl Fn(&V) -> u64,
    mut forget: impl FnMut(&SocketAddr),
) {
    if map.is_empty() {
        return;
    }
    let n = (map.len() / 8).max(1);
    let mut ticks: Vec<u64> = map.values().map(&tick).collect();
    let (_, &mut newest_gone, _) = ticks.select_nth_unstable(n - 1);
    map.retain(|addr, v| {
        let keep = tick(v) > newest_gone;
        if !keep {
            forget(addr);
        }
        keep
    });
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

    /// Takes what is held for `addr` out of the hold.
    fn release(&mut self, addr: &SocketAddr) -> Vec<EncodedMsg> {
        match self.held.remove(addr) {
            Some(h) => {
                self.held_bytes -= h.bytes;
                h.msgs
            }
            None => Vec::new(),
        }
    }

    /// A datagram of `bytes` arrived from `from`, claiming to be `id`.
    pub fn on_receive(&mut self, from: SocketAddr, id: Option<&NodeId>, bytes: usize) {
        let tick = self.next_tick();
        if self.initiated.contains_key(&from) {
            // We wrote first; its answer may verify it (see `on_ack`).
            return;
        }
        if let Some(t) = self.verified.get_mut(&from) {
            *t = tick;
            return;
        }
        if self.unverified.len() >= self.capacity && !self.unverified.contains_key(&from) {
            let (held, held_bytes) = (&mut self.held, &mut self.held_bytes);
            evict_oldest(
                &mut self.unverified,
                |u| u.tick,
                |addr| {
                    if let Some(h) = held.remove(addr) {
                        *held_bytes -= h.bytes;
                    }
                },
            );
        }
        let u = self.unverified.entry(from).or_default();
        u.tick = tick;
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
            u.ping_sent(seq);
            return;
        }
        let tick = self.next_tick();
        if self.initiated.len() >= self.capacity && !self.initiated.contains_key(to) {
            evict_oldest(&mut self.initiated, |&(_, t)| t, |_| {});
        }
        self.initiated.insert(*to, (seq, tick));
    }

    /// An ack arrived. When it answers a ping we sent to that very address,
    /// the address is verified: returns what was held for it, to send now.
    pub fn on_ack(&mut self, from: SocketAddr, seq: u32) -> Option<Vec<EncodedMsg>> {
        let held = if let Some(&(s, _)) = self.initiated.get(&from) {
            if s != seq {
                return None;
            }
            self.initiated.remove(&from);
            Vec::new()
        } else {
            if !self.unverified.get(&from)?.is_pending(seq) {
                return None;
            }
            self.unverified.remove(&from);
            self.release(&from)
        };
        if self.verified.len() >= self.capacity {
            evict_oldest(&mut self.verified, |&t| t, |_| {});
        }
        let tick = self.next_tick();
        self.verified.insert(from, tick);
        Some(held)
    }

    /// A verification ping for `to` if one is due (none sent, or the last
    /// one is older than [`HOLD_TTL`]: at most one per address per hold, so
    /// that a stranger's datagrams cannot make us ping an address often):
    /// its seq and the id it must name.
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
        u.ping_sent(seq);
        Some((seq, id))
    }

    /// Keeps messages that exceed `to`'s credit until it verifies, within
    /// the per-address and total bounds; the rest are dropped.
    pub fn hold(&mut self, to: &SocketAddr, msgs: Vec<EncodedMsg>, now: Instant) -> Held {
        let mut out = Held::default();
        if !self.unverified.contains_key(to) {
            out.dropped = msgs.len();
            return out;
        }
        for m in msgs {
            let mine = self.held.get(to).map_or(0, |h| h.bytes);
            let fits = mine + m.len() <= MAX_HELD_PER_ADDRESS
                && self.held_bytes + m.len() <= MAX_HELD_BYTES;
            if !fits {
                out.dropped += 1;
                continue;
            }
            let h = self.held.entry(*to).or_insert_with(|| HeldFor {
                msgs: Vec::new(),
                bytes: 0,
                since: now,
            });
            h.bytes += m.len();
            self.held_bytes += m.len();
            h.msgs.push(m);
            out.held += 1;
        }
        out
    }

    /// Drops what was held longer than [`HOLD_TTL`]; returns how many
    /// messages that was.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        let held_bytes = &mut self.held_bytes;
        self.held.retain(|_, h| {
            let keep = now.duration_since(h.since) < HOLD_TTL;
            if !keep {
                dropped += h.msgs.len();
                *held_bytes -= h.bytes;
            }
            keep
        });
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

    fn unverified(g: &AmplificationGuard, port: u16) -> bool {
        matches!(g.admit(&a(port)), Admit::Credit(_))
    }

    /// `held_bytes` is the sum of what is held, and only unverified
    /// addresses with something held have a `held` entry.
    fn assert_held_consistent(g: &AmplificationGuard) {
        let mut sum = 0;
        for (addr, h) in &g.held {
            assert!(!h.msgs.is_empty(), "{addr}: an empty entry");
            assert!(
                g.unverified.contains_key(addr),
                "{addr}: held, not unverified"
            );
            assert_eq!(h.bytes, h.msgs.iter().map(|m| m.len()).sum::<usize>());
            sum += h.bytes;
        }
        assert_eq!(g.held_bytes(), sum);
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
    fn a_probe_s_repeated_pings_keep_the_verification_ping_answerable() {
        let mut g = AmplificationGuard::new(8);
        let now = Instant::now();
        g.on_receive(a(1), Some(&NodeId::new("x")), 10);
        let (verify, _) = g.verification_due(&a(1), now).expect("due");
        // The detector's probe of the same address, pinged sixteen times.
        for _ in 0..16 {
            g.on_ping_sent(&a(1), 7);
        }
        assert!(g.on_ack(a(1), verify).is_some());
        assert!(g.is_verified(&a(1)));
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

    #[test]
    fn a_full_map_forgets_its_least_recently_heard_from_eighth_and_keeps_the_rest() {
        let mut g = AmplificationGuard::new(16);
        for p in 0..16 {
            g.on_receive(a(p), None, 10);
        }
        g.on_receive(a(0), None, 10);
        g.on_receive(a(1), None, 10);
        g.on_receive(a(100), None, 10);
        // 16 / 8 went: 2 and 3, not 0 and 1, heard from again since.
        assert_eq!(g.unverified_len(), 15);
        assert!(!unverified(&g, 2) && !unverified(&g, 3));
        assert!((0..2).chain(4..16).chain([100]).all(|p| unverified(&g, p)));
        // Room again: the next one evicts nothing.
        g.on_receive(a(101), None, 10);
        assert_eq!(g.unverified_len(), 16);

        // The same for verified addresses (heard from refreshes them) ...
        let mut g = AmplificationGuard::new(16);
        for p in 0..16 {
            g.on_ping_sent(&a(p), 1);
            assert!(g.on_ack(a(p), 1).is_some());
        }
        g.on_receive(a(0), None, 10);
        g.on_receive(a(1), None, 10);
        g.on_ping_sent(&a(100), 1);
        assert!(g.on_ack(a(100), 1).is_some());
        assert!(!g.is_verified(&a(2)) && !g.is_verified(&a(3)));
        assert!((0..2)
            .chain(4..16)
            .chain([100])
            .all(|p| g.is_verified(&a(p))));

        // ... and for addresses we pinged first (pinged again refreshes).
        let mut g = AmplificationGuard::new(16);
        for p in 0..16 {
            g.on_ping_sent(&a(p), 1);
        }
        g.on_ping_sent(&a(0), 1);
        g.on_ping_sent(&a(100), 1);
        assert!(g.on_ack(a(1), 1).is_none() && g.on_ack(a(2), 1).is_none());
        for p in (0..1).chain(3..16).chain([100]) {
            assert!(g.on_ack(a(p), 1).is_some(), "{p}");
        }
    }

    #[test]
    fn held_bytes_stay_exact_across_eviction_expiry_and_verification() {
        let mut g = AmplificationGuard::new(16);
        let t0 = Instant::now();
        let mut expected = 0;
        for p in 0..16 {
            g.on_receive(a(p), Some(&NodeId::new("x")), 10);
            let n = 100 * (usize::from(p) + 1);
            assert_eq!(g.hold(&a(p), vec![msg(n), msg(1)], t0).held, 2);
            expected += n + 1;
        }
        assert_eq!(g.held_bytes(), expected);
        assert_held_consistent(&g);

        // Eviction forgets 0 and 1 with what was held for them.
        g.on_receive(a(100), Some(&NodeId::new("x")), 10);
        expected -= 101 + 201;
        assert_eq!(g.held_bytes(), expected);
        assert_held_consistent(&g);

        // Verification hands over exactly what was held for 5.
        let (seq, _) = g.verification_due(&a(5), t0).unwrap();
        let released = g.on_ack(a(5), seq).unwrap();
        assert_eq!(released.iter().map(|m| m.len()).sum::<usize>(), 601);
        expected -= 601;
        assert_eq!(g.held_bytes(), expected);
        assert_held_consistent(&g);

        // Expiry drops what has waited HOLD_TTL, and only that.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(g.hold(&a(100), vec![msg(50)], t1).held, 1);
        assert_eq!(g.expire(t0 + HOLD_TTL), 2 * 13);
        assert_eq!(g.held_bytes(), 50);
        assert_held_consistent(&g);
        assert_eq!(g.hold(&a(7), vec![msg(70)], t1).held, 1);
        assert_eq!(g.held_bytes(), 120);
        assert_eq!(g.expire(t1 + HOLD_TTL), 2);
        assert_eq!(g.held_bytes(), 0);
        assert_held_consistent(&g);
        assert!(g.held.is_empty());
    }
}
