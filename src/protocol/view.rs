//! The member table: one node's view of the cluster, as a plain data type.
//!
//! The membership actor owns one `View`; everything it decides goes through
//! [`View::apply`], which is [`member::apply`](super::member::apply) plus the
//! bookkeeping a table needs: an order-independent hash of the whole view
//! (push-pull compares hashes before anything else), tombstones for dead and
//! left members, and the `max_members` bound.
//!
//! The records live in a persistent map (`imbl::OrdMap`): cloning a view is
//! O(1) and clones share every record they have not changed since. One node
//! never clones its view, but the simulator starts thousands of nodes from
//! one formed view (`sim --form warm`), and 10,000 nodes then hold one copy
//! of the table plus the few records each has changed, instead of 10,000.

use imbl::OrdMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::member::{apply, Change, Member, MemberState, NodeId};
use super::peers::PeerSet;
use super::wire::DigestEntry;

/// FNV-1a, fixed across builds and platforms (std's hasher is not).
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Hash of one record's digest entry; the view hash is their wrapping sum, so
/// it does not depend on order and updates in O(1).
///
/// FNV-1a ends linearly (its last steps only xor and multiply), so the raw
/// hashes of two records differing in one field differ by a structured
/// amount, and sums of such differences cancel out: two views that disagree
/// about as many members one way as the other would hash equal (the
/// simulator found it after partitions). MurmurHash3's finalizer breaks that
/// structure before summing.
pub fn entry_hash(e: &DigestEntry) -> u64 {
    let mut h = fnv(e.id.as_str().as_bytes(), 0xcbf29ce484222325);
    h = fnv(&e.incarnation.to_le_bytes(), h);
    h = fnv(&[e.state as u8], h);
    fmix64(fnv(&e.services_version.to_le_bytes(), h))
}

/// MurmurHash3's 64-bit finalizer: full avalanche.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ceb9fe1a85ec53);
    k ^ (k >> 33)
}

pub fn digest_entry(m: &Member) -> DigestEntry {
    DigestEntry {
        id: m.id.clone(),
        incarnation: m.incarnation,
        state: m.state,
        services_version: m.services.version,
    }
}

/// A failed member's last address, kept in the reconnect book after its
/// tombstone is reclaimed (see [`View::reconnect_book`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    pub addr: SocketAddr,
    /// When it was last declared dead.
    pub since: Instant,
}

/// The records by id. Each record sits behind its own `Arc`, so that a
/// change copies a leaf of 16 pointers, not 16 records: in the simulator,
/// 10,000 nodes share one formed table, and every suspicion, refutation and
/// death gives each node a private copy of the leaf that holds the record
/// (the records were 96 bytes; the 10,000-node failure scenario at 10% loss
/// peaked at 5.05 GB with them inline, see BENCHMARKS.md).
pub type Table = OrdMap<NodeId, Arc<Member>>;

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The table is full; a new member was not added.
    TableFull,
}

#[derive(Debug, Clone)]
pub struct View {
    members: Table,
    /// When each dead or left member became so (for reclaiming tombstones).
    tombstones: BTreeMap<NodeId, Instant>,
    hash: u64,
    counts: [usize; 4],
    max_members: usize,
    /// The reconnect book: every member declared dead (not left) within
    /// the reconnect timeout, whether or not its tombstone is still in the
    /// table, with the address to try it at. It outlives the tombstone so
    /// that a partition longer than `dead_reclaim_ms` still heals (serf's
    /// `failedMembers`, kept for `ReconnectTimeout`). Bounded by
    /// `max_members`.
    book: OrdMap<NodeId, Failed>,
    /// Raised on every change to the records or the book, so that a reader
    /// can tell cheaply whether anything changed since it last looked.
    generation: u64,
    /// The alive and suspect members (self included) and the dead ones (not
    /// left), indexed for random choice: kept here, next to the records
    /// they index, so that every actor that picks peers reads one copy of
    /// them from the published snapshot instead of keeping its own.
    live: PeerSet,
    dead: PeerSet,
}

impl View {
    pub fn new(max_members: usize) -> Self {
        View {
            members: OrdMap::new(),
            tombstones: BTreeMap::new(),
            hash: 0,
            counts: [0; 4],
            max_members: max_members.max(1),
            book: OrdMap::new(),
            generation: 0,
            live: PeerSet::default(),
            dead: PeerSet::default(),
        }
    }

    /// The reconnect book (shared with this view, O(1)).
    pub fn reconnect_book(&self) -> OrdMap<NodeId, Failed> {
        self.book.clone()
    }

    /// Whether `id` is in the reconnect book: a member that failed within
    /// the reconnect timeout, so a record of it alive is a return, not news
    /// of a stranger.
    pub fn is_booked(&self, id: &NodeId) -> bool {
        self.book.contains_key(id)
    }

    /// Drops book entries older than `keep` (the reconnect timeout);
    /// returns how many.
    pub fn expire_book(&mut self, now: Instant, keep: Duration) -> usize {
        let expired: Vec<NodeId> = self
            .book
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= keep)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.book.remove(id);
        }
        if !expired.is_empty() {
            self.generation += 1;
        }
        expired.len()
    }

    fn file_in_book(&mut self, m: &Member, now: Instant) {
        match m.state {
            MemberState::Dead => {
                if self.book.contains_key(&m.id) || self.book.len() < self.max_members {
                    let f = Failed {
                        addr: m.addr,
                        since: now,
                    };
                    self.book.insert(m.id.clone(), f);
                }
            }
            _ => {
                self.book.remove(&m.id);
            }
        }
    }

    pub fn get(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id).map(|m| &**m)
    }
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// The records, shared with this view (O(1)).
    pub fn table(&self) -> Table {
        self.members.clone()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values().map(|m| &**m)
    }
    pub fn hash(&self) -> u64 {
        self.hash
    }
    /// Changes on every change to the records (see `generation`).
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Alive plus suspect members, self included.
    pub fn live_count(&self) -> usize {
        self.members.len() - self.tombstones.len()
    }
    pub fn count(&self, state: MemberState) -> usize {
        self.counts[state as usize]
    }
    /// Alive and suspect members, self included (O(1) to clone).
    pub fn live(&self) -> PeerSet {
        self.live.clone()
    }
    /// Dead members (not left ones) until their tombstones are reclaimed.
    pub fn dead(&self) -> PeerSet {
        self.dead.clone()
    }

    /// Merges a rumor into the table.
    pub fn apply(&mut self, incoming: &Member, now: Instant) -> Result<Change, Rejected> {
        let current = self.members.get(&incoming.id).map(|m| &**m);
        if current.is_none() && self.members.len() >= self.max_members {
            return Err(Rejected::TableFull);
        }
        let (merged, change) = apply(current, incoming);
        if change.is_news() {
            if let Some(old) = current {
                self.hash = self.hash.wrapping_sub(entry_hash(&digest_entry(old)));
                self.counts[old.state as usize] -= 1;
            }
            self.counts[merged.state as usize] += 1;
            self.hash = self.hash.wrapping_add(entry_hash(&digest_entry(&merged)));
            if merged.state.is_live() {
                self.tombstones.remove(&merged.id);
            } else if change.old_state.is_none_or(|s| s.is_live()) {
                self.tombstones.insert(merged.id.clone(), now);
            }
            if change.liveness_changed {
                self.file_in_book(&merged, now);
            }
            match merged.state {
                MemberState::Alive | MemberState::Suspect => {
                    self.dead.remove(&merged.id);
                    self.live.insert(merged.id.clone(), merged.addr);
                }
                MemberState::Dead => {
                    self.live.remove(&merged.id);
                    self.dead.insert(merged.id.clone(), merged.addr);
                }
                MemberState::Left => {
                    self.live.remove(&merged.id);
                    self.dead.remove(&merged.id);
                }
            }
            self.members.insert(merged.id.clone(), Arc::new(merged));
            self.generation += 1;
        }
        Ok(change)
    }

    /// Forgets members dead or left for longer than `keep`; returns them.
    pub fn reclaim(&mut self, now: Instant, keep: Duration) -> Vec<NodeId> {
        let expired: Vec<NodeId> = self
            .tombstones
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= keep)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.tombstones.remove(id);
            self.dead.remove(id);
            if let Some(m) = self.members.remove(id) {
                self.hash = self.hash.wrapping_sub(entry_hash(&digest_entry(&m)));
                self.counts[m.state as usize] -= 1;
                self.generation += 1;
            }
        }
        expired
    }

    /// The records whose ids fall within the bounds, in id order.
    pub fn range<'a>(
        &'a self,
        lo: Bound<&'a NodeId>,
        hi: Bound<&'a NodeId>,
    ) -> impl Iterator<Item = &'a Member> + 'a {
        self.members.range::<_, NodeId>((lo, hi)).map(|(_, m)| &**m)
    }

    pub fn digest(&self) -> Vec<DigestEntry> {
        self.iter().map(digest_entry).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A record at a fixed address (shared with `sync_plan`'s tests).
    pub(crate) fn m(id: &str, inc: u64, state: MemberState) -> Member {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Member {
            state,
            ..Member::new_alive(NodeId::new(id), addr, inc)
        }
    }

    #[test]
    fn hash_is_order_independent_and_tracks_changes() {
        let now = Instant::now();
        let mut a = View::new(100);
        let mut b = View::new(100);
        let rumors = [
            m("x", 1, MemberState::Alive),
            m("y", 2, MemberState::Alive),
            m("x", 1, MemberState::Suspect),
        ];
        for r in &rumors {
            a.apply(r, now).unwrap();
        }
        for r in rumors.iter().rev() {
            b.apply(r, now).unwrap();
        }
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.count(MemberState::Suspect), 1);
        assert_eq!(a.count(MemberState::Alive), 1);
        let before = a.hash();
        a.apply(&m("x", 2, MemberState::Alive), now).unwrap();
        assert_ne!(a.hash(), before);
    }

    #[test]
    fn opposite_disagreements_do_not_cancel_out() {
        // Two sides of a partition: each sees itself alive and the other dead.
        let now = Instant::now();
        for n in [2usize, 4, 10, 50] {
            let mut left = View::new(1000);
            let mut right = View::new(1000);
            for i in 0..n {
                let id = format!("m{i}");
                let (l, r) = if i < n / 2 {
                    (MemberState::Alive, MemberState::Dead)
                } else {
                    (MemberState::Dead, MemberState::Alive)
                };
                left.apply(&m(&id, 0, l), now).unwrap();
                right.apply(&m(&id, 0, r), now).unwrap();
            }
            assert_ne!(left.hash(), right.hash(), "{n} members");
        }
    }

    #[test]
    fn tombstones_are_reclaimed_after_keep() {
        let t0 = Instant::now();
        let mut v = View::new(100);
        v.apply(&m("x", 1, MemberState::Alive), t0).unwrap();
        v.apply(&m("x", 1, MemberState::Dead), t0).unwrap();
        assert_eq!(v.live_count(), 0);
        assert!(v
            .reclaim(t0 + Duration::from_secs(5), Duration::from_secs(10))
            .is_empty());
        assert_eq!(
            v.reclaim(t0 + Duration::from_secs(10), Duration::from_secs(10)),
            vec![NodeId::new("x")]
        );
        assert!(v.is_empty());
        assert_eq!(v.hash(), 0);
    }

    #[test]
    fn live_and_dead_sets_follow_the_records() {
        let t0 = Instant::now();
        let mut v = View::new(100);
        v.apply(&m("x", 1, MemberState::Alive), t0).unwrap();
        v.apply(&m("y", 1, MemberState::Alive), t0).unwrap();
        v.apply(&m("z", 1, MemberState::Alive), t0).unwrap();
        v.apply(&m("x", 1, MemberState::Suspect), t0).unwrap();
        v.apply(&m("y", 1, MemberState::Dead), t0).unwrap();
        v.apply(&m("z", 2, MemberState::Left), t0).unwrap();
        let (live, dead) = (v.live(), v.dead());
        assert!(live.contains(&NodeId::new("x")) && live.len() == 1);
        assert!(dead.contains(&NodeId::new("y")) && dead.len() == 1);
        // Back from the dead; then reclaimed tombstones leave both sets.
        v.apply(&m("y", 2, MemberState::Alive), t0).unwrap();
        assert_eq!((v.live().len(), v.dead().len()), (2, 0));
        v.apply(&m("x", 1, MemberState::Dead), t0).unwrap();
        assert_eq!(v.dead().len(), 1);
        v.reclaim(t0 + Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!((v.live().len(), v.dead().len()), (1, 0));
    }

    #[test]
    fn table_is_bounded() {
        let now = Instant::now();
        let mut v = View::new(1);
        v.apply(&m("x", 1, MemberState::Alive), now).unwrap();
        assert_eq!(
            v.apply(&m("y", 1, MemberState::Alive), now),
            Err(Rejected::TableFull)
        );
        assert!(
            v.apply(&m("x", 2, MemberState::Alive), now).is_ok(),
            "known members still update"
        );
    }

    #[test]
    fn the_reconnect_book_keeps_failed_not_left_members_past_reclaim() {
        let t0 = Instant::now();
        let mut v = View::new(2);
        v.apply(&m("x", 1, MemberState::Alive), t0).unwrap();
        v.apply(&m("x", 1, MemberState::Dead), t0).unwrap();
        v.apply(&m("y", 1, MemberState::Alive), t0).unwrap();
        v.apply(&m("y", 1, MemberState::Left), t0).unwrap();
        let keep = Duration::from_secs(60);
        v.reclaim(t0 + keep, keep);
        assert!(v.is_empty());
        assert!(v.is_booked(&NodeId::new("x")) && !v.is_booked(&NodeId::new("y")));
        assert_eq!(v.expire_book(t0 + keep, Duration::from_secs(3600)), 0);
        // Back alive: off the book.
        v.apply(&m("x", 1, MemberState::Alive), t0).unwrap();
        assert!(!v.is_booked(&NodeId::new("x")));
        v.apply(&m("x", 1, MemberState::Dead), t0).unwrap();
        assert_eq!(
            v.expire_book(t0 + Duration::from_secs(3600), Duration::from_secs(3600)),
            1
        );
        assert!(v.reconnect_book().is_empty());
    }
}
