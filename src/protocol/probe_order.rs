//! The order in which the failure detector probes members.
//!
//! SWIM's shuffled round-robin: walk a shuffled list, reshuffle at the end.
//! Every member is probed once per round, so a failed member is probed by
//! each prober within at most 2N-1 periods (random choice has no such bound).
//! A new member goes in at a random position, so it is neither probed at once
//! by everyone nor last.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;

use super::member::NodeId;

#[derive(Debug, Default)]
pub struct ProbeOrder {
    list: Vec<NodeId>,
    /// The same ids, for O(1) membership tests (a 1,000-node join sends
    /// every node 2,000 membership events).
    index: HashSet<NodeId>,
    pos: usize,
}

impl ProbeOrder {
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn contains(&self, id: &NodeId) -> bool {
        self.index.contains(id)
    }

    pub fn insert(&mut self, id: NodeId, rng: &mut impl Rng) {
        if !self.index.insert(id.clone()) {
            return;
        }
        let at = rng.gen_range(0..=self.list.len());
        self.list.insert(at, id);
        if at < self.pos {
            self.pos += 1;
        }
    }

    pub fn remove(&mut self, id: &NodeId) {
        if !self.index.remove(id) {
            return;
        }
        if let Some(i) = self.list.iter().position(|x| x == id) {
            self.list.remove(i);
            if i < self.pos {
                self.pos -= 1;
            }
        }
    }

    /// The next member to probe; reshuffles after a full pass.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<NodeId> {
        if self.list.is_empty() {
            return None;
        }
        if self.pos >= self.list.len() {
            self.list.shuffle(rng);
            self.pos = 0;
        }
        let id = self.list[self.pos].clone();
        self.pos += 1;
        Some(id)
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

    #[test]
    fn empty_order_gives_nothing() {
        assert_eq!(
            ProbeOrder::default().next(&mut SmallRng::seed_from_u64(0)),
            None
        );
    }
}
