//! Which member the failure detector probes at each tick: a schedule that
//! every member follows, so that each member is probed once per period.
//!
//! SWIM's shuffled round-robin bounds how long one prober takes to come
//! back to a member (at most 2N-1 periods), but not how long the cluster
//! takes to probe a member that has just died: each node walks its own
//! shuffle, so in a given period a member is probed by a Poisson(1) number
//! of nodes, none at all 37% of the time. At 1,000 nodes the first probe of
//! a crashed member came a median 1 s after the crash, and 6 s or more for
//! one crash in a hundred: that, not dissemination, was the long tail of
//! detection (ALGORITHM.md, "Why the tail was long").
//!
//! Here every node places the members (itself included) on the same ring,
//! ordered by a fixed hash of their ids, and at probe step `s` probes the
//! member `d = 1 + s mod (n - 1)` places after itself. The step is counted
//! on a clock the nodes share (wall-clock multiples of the probe interval
//! in agents, the virtual clock in the simulator), so at one step every
//! node uses the same distance: the probers form a permutation, and each
//! member is probed by exactly one node per period. Each node ticks at its
//! own phase, within the first tenth of the period (`phase`), so a member's
//! probes are 0.9 to 1.1 periods apart, and over
//! `n - 1` steps each node still probes every member once, as in SWIM's
//! round robin. Where views differ (during joins and failures) or clocks
//! disagree by more than a period, two nodes may pick the same target in
//! one step: that costs the guarantee for those members, never a probe.

use std::sync::Arc;

use super::member::NodeId;

/// A member's place on the ring: a hash every node computes the same way,
/// then the id (to break ties).
pub type RingKey = (u64, NodeId);

/// FNV-1a of the id, then splitmix64's finalizer: stable across versions
/// and machines (unlike std's randomly keyed hasher), and spread evenly.
pub fn ring_hash(id: &NodeId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_str().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn key(id: &NodeId) -> RingKey {
    (ring_hash(id), id.clone())
}

/// Changes kept beside the base before it is rebuilt: a few dozen, or an
/// eighth of the base, whichever is more.
const MIN_CHANGES_BEFORE_REBUILD: usize = 32;

/// The ring, as a sorted base that is never written plus the changes since
/// it was built: which base entries are gone, and which members were added.
///
/// Why not a sorted vector that takes inserts and removals: the simulator
/// starts 10,000 nodes from one formed cluster, and they should share one
/// ring. A persistent vector (`imbl::Vector`) shares it until the first
/// removal, but its removal splits and concatenates the tree, and after a
/// few deaths every node held a private copy: 240 KB per node at 10,000
/// nodes, the largest part of the 10,000-node failure scenario's 5 GB. Here
/// a death adds one index to a node's `gone` list, and the base stays
/// shared until the changes reach an eighth of it.
///
/// Positions are ranks among the present members, as if the ring had been
/// rebuilt: `nth` and `rank_of` answer in O(log^2 n) from the base and the
/// two sorted change lists.
#[derive(Debug, Clone)]
pub struct ProbeOrder {
    me: RingKey,
    /// Sorted by key; may hold `me` and members no longer present.
    base: Arc<Vec<RingKey>>,
    /// Indices into `base` of the entries not present (`me` among them if
    /// it is in the base), sorted.
    gone: Vec<usize>,
    /// Present members that are not in `base`, sorted by key.
    added: Vec<RingKey>,
}

impl ProbeOrder {
    pub fn new(me: &NodeId) -> Self {
        ProbeOrder {
            me: key(me),
            base: Arc::new(Vec::new()),
            gone: Vec::new(),
            added: Vec::new(),
        }
    }

    /// Every member of a formed cluster (the simulator's warm start: one
    /// ring, built by `ring_of` and shared by every node), without `me`.
    pub fn formed(ring: &Arc<Vec<RingKey>>, me: &NodeId) -> Self {
        let mut o = ProbeOrder {
            base: ring.clone(),
            ..ProbeOrder::new(me)
        };
        o.remove(me);
        o
    }

    /// The ring of `ids` (see `formed`).
    pub fn ring_of(ids: impl IntoIterator<Item = NodeId>) -> Arc<Vec<RingKey>> {
        let mut keys: Vec<RingKey> = ids.into_iter().map(|id| key(&id)).collect();
        keys.sort();
        keys.dedup();
        Arc::new(keys)
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.gone.len() + self.added.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, id: &NodeId) -> bool {
        let k = key(id);
        match self.base.binary_search(&k) {
            Ok(i) => self.gone.binary_search(&i).is_err(),
            Err(_) => self.added.binary_search(&k).is_ok(),
        }
    }
    /// The members, in id order.
    pub fn members(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.present().into_iter().map(|k| k.1.clone()).collect();
        ids.sort();
        ids
    }

    /// Adds a member (no-op if present or if it is `me`).
    pub fn insert(&mut self, id: NodeId) {
        if id == self.me.1 {
            return;
        }
        let k = key(&id);
        match self.base.binary_search(&k) {
            Ok(i) => {
                if let Ok(g) = self.gone.binary_search(&i) {
                    self.gone.remove(g);
                }
            }
            Err(_) => {
                if let Err(at) = self.added.binary_search(&k) {
                    self.added.insert(at, k);
                    self.rebuild_if_changed_much();
                }
            }
        }
    }

    pub fn remove(&mut self, id: &NodeId) {
        let k = key(id);
        match self.base.binary_search(&k) {
            Ok(i) => {
                if let Err(g) = self.gone.binary_search(&i) {
                    self.gone.insert(g, i);
                    self.rebuild_if_changed_much();
                }
            }
            Err(_) => {
                if let Ok(at) = self.added.binary_search(&k) {
                    self.added.remove(at);
                }
            }
        }
    }

    /// Folds the changes into a new base (this node's own) once they are
    /// many, so that lookups stay O(log^2 n) with small change lists.
    fn rebuild_if_changed_much(&mut self) {
        let changes = self.gone.len() + self.added.len();
        if changes <= MIN_CHANGES_BEFORE_REBUILD.max(self.base.len() / 8) {
            return;
        }
        let ring: Vec<RingKey> = self.present().into_iter().cloned().collect();
        self.base = Arc::new(ring);
        self.gone.clear();
        self.added.clear();
    }

    /// The present members in ring order: the base without what is gone,
    /// merged with what was added, in one pass.
    fn present(&self) -> Vec<&RingKey> {
        let mut out = Vec::with_capacity(self.len());
        let mut added = self.added.iter().peekable();
        let base = (self.base.iter().enumerate())
            .filter(|(i, _)| self.gone.binary_search(i).is_err())
            .map(|(_, k)| k);
        for k in base {
            while let Some(a) = added.next_if(|a| *a < k) {
                out.push(a);
            }
            out.push(k);
        }
        out.extend(added);
        out
    }

    /// Present base entries with an index below `x`.
    fn present_below(&self, x: usize) -> usize {
        x - self.gone.partition_point(|&g| g < x)
    }

    /// The `i`-th present entry of the base: the smallest index `x` with
    /// `i + 1` present entries at or below it.
    fn nth_in_base(&self, i: usize) -> &RingKey {
        let (mut lo, mut hi) = (i, (i + self.gone.len()).min(self.base.len() - 1));
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.present_below(mid + 1) > i {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        &self.base[lo]
    }

    /// Present base entries whose keys are below `k`.
    fn base_rank_of(&self, k: &RingKey) -> usize {
        self.present_below(self.base.partition_point(|e| e < k))
    }

    /// Present members whose keys are below `k`: `k`'s place on the ring.
    fn rank_of(&self, k: &RingKey) -> usize {
        self.base_rank_of(k) + self.added.partition_point(|e| e < k)
    }

    /// The present member at rank `r` (`r < len()`), in key order.
    fn nth(&self, r: usize) -> &RingKey {
        // An added entry `j` has rank base_rank_of(it) + j, increasing in
        // j; `before` of them rank below `r`.
        let (mut before, mut hi) = (0, self.added.len());
        while before < hi {
            let j = (before + hi) / 2;
            if self.base_rank_of(&self.added[j]) + j < r {
                before = j + 1;
            } else {
                hi = j;
            }
        }
        match self.added.get(before) {
            Some(e) if self.base_rank_of(e) + before == r => e,
            _ => self.nth_in_base(r - before),
        }
    }

    /// The member to probe at step `step`, and the ones after it on the
    /// ring (for when the first turns out not to be probeable).
    pub fn at_step(&self, step: u64) -> impl Iterator<Item = &NodeId> {
        let others = self.len();
        let n = others + 1; // the ring with me on it
                            // My place on the full ring: the members before me.
        let mine = self.rank_of(&self.me);
        let distance = if others == 0 {
            0
        } else {
            1 + (step % others as u64) as usize
        };
        // Position `mine + distance` on the full ring, as an index into the
        // ring without me (entries after me shift down by one).
        let first = (mine + distance) % n;
        let first = if first > mine { first - 1 } else { first };
        (0..others).map(move |i| &self.nth((first + i) % others).1)
    }
}

/// The probe step at `elapsed` past the shared origin, for a probe period
/// of `interval`.
pub fn step(elapsed: std::time::Duration, interval: std::time::Duration) -> u64 {
    let interval = interval.as_nanos().max(1);
    (elapsed.as_nanos() / interval) as u64
}

/// How much of a probe period the nodes' ticks are spread over.
///
/// A member's successive probers walk the ring backwards one place per
/// step, so the gap between two of its probes is one period plus the
/// difference of their probers' phases. With phases spread over the whole
/// period (ranks, or random), those differences reach a period either way:
/// with 3 nodes one member's probes came 1/3 and 5/3 periods apart, and
/// the first probe of a dead member a median 1.0 s after it died instead
/// of 0.5 s. Spread over a tenth of the period, every gap is within
/// 0.9 to 1.1 periods at any cluster size, and the ticks of a whole
/// cluster still do not fall on one instant.
pub const PHASE_SPREAD: f64 = 0.1;

/// Where in a probe period `me` ticks, as a fraction of the period in
/// `[0, PHASE_SPREAD)`: from the ring hash of its id, so it never changes
/// with the view and every node can work out every other node's.
pub fn phase(me: &NodeId) -> f64 {
    // The top 53 bits, as an f64 in [0, 1).
    let unit = (ring_hash(me) >> 11) as f64 / (1u64 << 53) as f64;
    unit * PHASE_SPREAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ids(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::new(&format!("node-{i}"))).collect()
    }

    fn order_of(me: &NodeId, all: &[NodeId]) -> ProbeOrder {
        let mut o = ProbeOrder::new(me);
        for id in all {
            o.insert(id.clone());
        }
        o
    }

    #[test]
    fn each_node_probes_every_member_once_in_n_minus_1_steps() {
        let all = ids(13);
        for me in &all {
            let o = order_of(me, &all);
            assert_eq!(o.len(), 12);
            let round: BTreeSet<_> = (0..12).map(|s| o.at_step(s).next().unwrap()).collect();
            assert_eq!(round.len(), 12);
            assert!(!round.contains(me));
        }
    }

    /// The point of the schedule: with the same view, at every step the
    /// probers form a permutation, each member probed by exactly one node.
    #[test]
    fn at_every_step_each_member_is_probed_exactly_once() {
        for n in [2usize, 3, 7, 20, 101] {
            let all = ids(n);
            let orders: Vec<ProbeOrder> = all.iter().map(|me| order_of(me, &all)).collect();
            for s in 0..(2 * n as u64) {
                let targets: BTreeSet<&NodeId> = orders
                    .iter()
                    .map(|o| o.at_step(s).next().unwrap())
                    .collect();
                assert_eq!(targets.len(), n, "n {n} step {s}");
            }
        }
    }

    /// The point of the narrow phases: whatever the cluster's size, the
    /// probes one member receives (at steps `s`, from the node `1 + s mod
    /// (n - 1)` places before it, each at its own phase) are 0.9 to 1.1
    /// periods apart, so a member that dies waits about half a period for
    /// its first probe. Rank phases over the whole period gave 3 nodes gaps
    /// of 1/3 and 5/3 periods; this test fails with them.
    #[test]
    fn a_members_probes_are_about_one_period_apart_at_any_size() {
        for n in [2usize, 3, 4, 7, 20, 101] {
            let all = ids(n);
            let orders: Vec<(f64, ProbeOrder)> = all
                .iter()
                .map(|me| (phase(me), order_of(me, &all)))
                .collect();
            for target in &all {
                let times: Vec<f64> = (0..(3 * n as u64))
                    .map(|s| {
                        let (ph, _) = orders
                            .iter()
                            .find(|(_, o)| o.at_step(s).next() == Some(target))
                            .unwrap();
                        s as f64 + ph
                    })
                    .collect();
                for w in times.windows(2) {
                    let gap = w[1] - w[0];
                    assert!(
                        (1.0 - PHASE_SPREAD..=1.0 + PHASE_SPREAD).contains(&gap),
                        "n {n}: {target:?} probed at {times:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn phases_are_stable_spread_and_narrow() {
        let all = ids(200);
        let phases: Vec<f64> = all.iter().map(phase).collect();
        assert!(phases.iter().all(|p| (0.0..PHASE_SPREAD).contains(p)));
        assert_eq!(phase(&all[7]), phase(&NodeId::new("node-7")));
        // Spread, not bunched: each tenth of the spread holds some.
        for bucket in 0..10 {
            let lo = PHASE_SPREAD * bucket as f64 / 10.0;
            let hi = lo + PHASE_SPREAD / 10.0;
            assert!(phases.iter().any(|p| (lo..hi).contains(p)), "{bucket}");
        }
    }

    #[test]
    fn the_fallbacks_walk_the_rest_of_the_ring() {
        let all = ids(6);
        let o = order_of(&all[0], &all);
        let walk: BTreeSet<_> = o.at_step(3).collect();
        assert_eq!(walk.len(), 5);
        assert!(!walk.contains(&all[0]));
    }

    #[test]
    fn insert_and_remove_keep_the_ring_and_the_index_in_step() {
        let all = ids(10);
        let mut o = order_of(&all[0], &all);
        o.insert(all[3].clone());
        o.insert(all[0].clone());
        assert_eq!(o.len(), 9, "no duplicates, never me");
        o.remove(&all[3]);
        o.remove(&all[3]);
        assert_eq!(o.len(), 8);
        assert!(!o.contains(&all[3]));
        let round: BTreeSet<_> = (0..8).map(|s| o.at_step(s).next().unwrap()).collect();
        assert_eq!(round.len(), 8);
        assert!(!round.contains(&all[3]));
    }

    #[test]
    fn a_formed_order_is_the_one_inserts_would_build() {
        let all = ids(30);
        let ring = ProbeOrder::ring_of(all.clone());
        for me in &all {
            let f = ProbeOrder::formed(&ring, me);
            let o = order_of(me, &all);
            for s in 0..40 {
                assert_eq!(f.at_step(s).next(), o.at_step(s).next());
            }
        }
    }

    /// The ring as a plain sorted vector, rebuilt on every change: what the
    /// base-plus-changes representation must be indistinguishable from.
    struct Model {
        me: RingKey,
        ring: Vec<RingKey>,
    }

    impl Model {
        fn at_step(&self, step: u64) -> Vec<&NodeId> {
            let others = self.ring.len();
            let mine = self.ring.partition_point(|k| k < &self.me);
            let distance = if others == 0 {
                0
            } else {
                1 + (step % others as u64) as usize
            };
            let first = (mine + distance) % (others + 1);
            let first = if first > mine { first - 1 } else { first };
            (0..others)
                .map(|i| &self.ring[(first + i) % others].1)
                .collect()
        }
    }

    /// Random joins, deaths and returns, from a formed ring and from an
    /// empty one, across several rebuilds: every step's target and walk,
    /// the length and membership agree with the model.
    #[test]
    fn changes_beside_a_shared_base_answer_as_a_rebuilt_ring_would() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let all = ids(300);
        let ring = ProbeOrder::ring_of(all[..200].to_vec());
        for seed in 0..6u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let me = all[rng.gen_range(0..200)].clone();
            let mut o = if seed % 2 == 0 {
                ProbeOrder::formed(&ring, &me)
            } else {
                order_of(&me, &all[..200])
            };
            let mut model = Model {
                me: key(&me),
                ring: ring.iter().filter(|k| k.1 != me).cloned().collect(),
            };
            for round in 0..400 {
                let id = all[rng.gen_range(0..300)].clone();
                if rng.gen_bool(0.5) {
                    o.insert(id.clone());
                    if id != me && !model.ring.iter().any(|k| k.1 == id) {
                        model.ring.push(key(&id));
                        model.ring.sort();
                    }
                } else {
                    o.remove(&id);
                    model.ring.retain(|k| k.1 != id);
                }
                assert_eq!(o.len(), model.ring.len(), "seed {seed} round {round}");
                assert_eq!(
                    o.contains(&id),
                    id != me && model.ring.iter().any(|k| k.1 == id)
                );
                let step = rng.gen_range(0..1000);
                let walk: Vec<&NodeId> = o.at_step(step).collect();
                assert_eq!(
                    walk,
                    model.at_step(step),
                    "seed {seed} round {round} step {step}"
                );
            }
        }
    }

    /// The point of the representation: deaths in a formed cluster leave
    /// the shared base shared.
    #[test]
    fn removals_keep_the_formed_ring_shared_until_they_are_many() {
        let all = ids(1000);
        let ring = ProbeOrder::ring_of(all.clone());
        let mut o = ProbeOrder::formed(&ring, &all[0]);
        for id in &all[1..100] {
            o.remove(id);
        }
        assert!(
            Arc::ptr_eq(&o.base, &ring),
            "100 changes of 1,000 stay beside the base"
        );
        for id in &all[100..200] {
            o.remove(id);
        }
        assert!(!Arc::ptr_eq(&o.base, &ring), "200 changes rebuild it");
        assert_eq!(o.len(), 800);
        assert_eq!(o.members().len(), 800);
    }

    #[test]
    fn empty_order_gives_nothing_and_steps_count_periods() {
        let me = NodeId::new("me");
        assert_eq!(ProbeOrder::new(&me).at_step(5).next(), None);
        let sec = std::time::Duration::from_secs(1);
        assert_eq!(step(std::time::Duration::from_millis(2999), sec), 2);
        assert_eq!(step(std::time::Duration::from_millis(3000), sec), 3);
        assert_eq!(step(sec, std::time::Duration::ZERO), 1_000_000_000);
    }

    #[test]
    fn the_ring_hash_is_stable() {
        // Nodes of different builds must agree on the ring.
        assert_eq!(
            ring_hash(&NodeId::new("node1")),
            ring_hash(&NodeId::new("node1"))
        );
        assert_ne!(
            ring_hash(&NodeId::new("node1")),
            ring_hash(&NodeId::new("node2"))
        );
        // Pinned: a cluster whose nodes hash differently loses the one-probe-
        // per-period schedule (never a probe).
        assert_eq!(ring_hash(&NodeId::new("node1")), 0x831d_1f0d_a406_fb96);
        assert_eq!(ring_hash(&NodeId::new("")), 0xf52a_15e9_a9b5_e89b);
    }
}
