//! The order in which the failure detector probes members.
//!
//! SWIM's shuffled round-robin: walk a shuffled list, reshuffle at the end.
//! Every member is probed once per round, so a failed member is probed by
//! each prober within at most 2N-1 periods (random choice has no such bound).
//! A new member goes in at a random position, so it is neither probed at once
//! by everyone nor last.
//!
//! The index (an ordered set) is the truth about who is a member; the list
//! is only this round's order. A removal touches the index alone, and the
//! walk skips ids no longer in it; the next reshuffle rebuilds the list from
//! the index. A round is a circular walk over the list from `start`: the
//! simulator's warm start gives every node the same shuffled list (shared
//! memory, see `protocol::formed`) with its own random `start`
//! ([`ProbeOrder::rotated`]), and an own list only from its first reshuffle.

use imbl::{OrdSet, Vector};
use rand::seq::SliceRandom;
use rand::Rng;

use super::member::NodeId;

#[derive(Debug, Default, Clone)]
pub struct ProbeOrder {
    /// This round's order; may still hold ids removed since.
    list: Vector<NodeId>,
    /// The members, for O(log n) membership tests (a 1,000-node join sends
    /// every node 2,000 membership events).
    index: OrdSet<NodeId>,
    /// Where the round began in `list`, and how many positions it has
    /// walked since.
    start: usize,
    walked: usize,
}

impl ProbeOrder {
    /// A shared order and its index without `me`, walked from a random
    /// position so that nodes starting from the same list do not probe in
    /// step: with uniform offsets, how many nodes probe one member in one
    /// period follows the same law as with independent shuffles. After the
    /// first round the node reshuffles its own copy like any other.
    pub fn rotated(
        list: &Vector<NodeId>,
        index: &OrdSet<NodeId>,
        me: &NodeId,
        rng: &mut impl Rng,
    ) -> Self {
        let mut index = index.clone();
        index.remove(me);
        ProbeOrder {
            start: rng.gen_range(0..list.len().max(1)),
            list: list.clone(),
            index,
            walked: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    pub fn contains(&self, id: &NodeId) -> bool {
        self.index.contains(id)
    }
    /// The members, in id order.
    pub fn members(&self) -> impl Iterator<Item = &NodeId> {
        self.index.iter()
    }

    /// Adds a member at a random position of the list (no-op if present).
    /// A position the round has already passed means the next round.
    pub fn insert(&mut self, id: NodeId, rng: &mut impl Rng) {
        // Checked first: inserting a present key would still copy the path.
        if self.index.contains(&id) {
            return;
        }
        self.index.insert(id.clone());
        let len = self.list.len();
        let at = rng.gen_range(0..=len);
        self.list.insert(at, id);
        if len == 0 {
            return;
        }
        if at <= self.start {
            self.start += 1;
        }
        // The new entry's place in the circular walk from `start`.
        let offset = (at + len + 1 - self.start) % (len + 1);
        if offset < self.walked {
            self.walked += 1;
        }
    }

    pub fn remove(&mut self, id: &NodeId) {
        self.index.remove(id);
    }

    /// Members the round has yet to probe (tests).
    #[cfg(test)]
    fn left_in_round(&self) -> usize {
        (self.walked..self.list.len())
            .map(|w| &self.list[(self.start + w) % self.list.len()])
            .filter(|id| self.index.contains(*id))
            .count()
    }

    /// The next member to probe; reshuffles after a full round.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<NodeId> {
        if self.index.is_empty() {
            return None;
        }
        loop {
            if self.walked >= self.list.len() {
                let mut ids: Vec<NodeId> = self.index.iter().cloned().collect();
                ids.shuffle(rng);
                self.list = ids.into_iter().collect();
                self.start = 0;
                self.walked = 0;
            }
            let i = (self.start + self.walked) % self.list.len();
            self.walked += 1;
            let id = &self.list[i];
            if self.index.contains(id) {
                return Some(id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn every_member_once_per_round() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut o = ProbeOrder::default();
        for i in 0..10 {
            o.insert(NodeId::new(&i.to_string()), &mut rng);
        }
        for _ in 0..3 {
            let round: BTreeSet<_> = (0..10).map(|_| o.next(&mut rng).unwrap()).collect();
            assert_eq!(round.len(), 10);
        }
    }

    #[test]
    fn removal_keeps_the_walk_going() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut o = ProbeOrder::default();
        for i in 0..5 {
            o.insert(NodeId::new(&i.to_string()), &mut rng);
        }
        let first = o.next(&mut rng).unwrap();
        o.remove(&first);
        let rest: BTreeSet<_> = (0..4).map(|_| o.next(&mut rng).unwrap()).collect();
        assert_eq!(rest.len(), 4);
        assert!(!rest.contains(&first));
    }

    /// Changes in the middle of a round: everyone present all along is
    /// probed exactly once in it, newcomers at most once, the removed never.
    #[test]
    fn a_round_survives_joins_and_removals() {
        for seed in 0..200 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut o = ProbeOrder::default();
            let id = |i: usize| NodeId::new(&i.to_string());
            for i in 0..20 {
                o.insert(id(i), &mut rng);
            }
            // Finish the first round so that the next starts fresh.
            while o.left_in_round() > 0 {
                o.next(&mut rng);
            }
            let mut seen: Vec<NodeId> = Vec::new();
            // At least one call, so that the new round has begun.
            let k = rng.gen_range(1..20);
            for _ in 0..k {
                seen.push(o.next(&mut rng).unwrap());
            }
            for i in 20..25 {
                o.insert(id(i), &mut rng);
            }
            let removed = [id(3), id(11), id(17)];
            for r in &removed {
                o.remove(r);
            }
            let mut after = Vec::new();
            while o.left_in_round() > 0 {
                after.push(o.next(&mut rng).unwrap());
            }
            for r in &removed {
                assert!(!after.contains(r), "seed {seed}: removed {r} probed");
            }
            let all: Vec<NodeId> = seen.iter().chain(after.iter()).cloned().collect();
            for i in (0..20).map(id).filter(|x| !removed.contains(x)) {
                let n = all.iter().filter(|x| **x == i).count();
                assert_eq!(n, 1, "seed {seed}: {i} probed {n} times in the round");
            }
            for i in (20..25).map(id) {
                assert!(all.iter().filter(|x| **x == i).count() <= 1, "seed {seed}");
            }
        }
    }

    #[test]
    fn a_rotated_shared_order_skips_me_and_covers_everyone() {
        let ids: Vec<NodeId> = (0..50).map(|i| NodeId::new(&i.to_string())).collect();
        let list: Vector<NodeId> = ids.iter().cloned().collect();
        let index: OrdSet<NodeId> = ids.iter().cloned().collect();
        let me = NodeId::new("7");
        let mut starts = BTreeSet::new();
        for seed in 0..20 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut o = ProbeOrder::rotated(&list, &index, &me, &mut rng);
            assert_eq!(o.len(), 49);
            assert!(!o.contains(&me));
            let round: Vec<NodeId> = (0..49).map(|_| o.next(&mut rng).unwrap()).collect();
            starts.insert(round[0].clone());
            let distinct: BTreeSet<_> = round.iter().collect();
            assert_eq!(distinct.len(), 49);
            assert!(!distinct.contains(&me));
        }
        // Different offsets: the nodes do not all start with the same member.
        assert!(starts.len() > 5, "{starts:?}");
    }

    #[test]
    fn empty_order_gives_nothing() {
        assert_eq!(
            ProbeOrder::default().next(&mut SmallRng::seed_from_u64(0)),
            None
        );
    }
}
