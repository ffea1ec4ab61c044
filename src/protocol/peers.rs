//! A set of peers to pick random targets from in O(k).
//!
//! Gossip rounds, eager pushes, indirect probes and push-pull all pick random
//! members, thousands of times a second in a large simulation, so the set
//! keeps a dense vector for sampling and an index by id.
//!
//! Both are persistent (`imbl`): a clone costs O(1) and shares everything
//! unchanged, which is what lets the simulator start 10,000 nodes from one
//! formed cluster without 10,000 copies of it (see `protocol::formed`). To
//! keep what a change copies small, a removal only marks the id absent in
//! the index (the vector keeps its entry, which sampling skips); the vector
//! is compacted once absent entries outnumber present ones.

use imbl::{OrdMap, Vector};
use rand::Rng;
use std::net::SocketAddr;

use super::member::NodeId;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// Position in `items`.
    at: usize,
    present: bool,
}

#[derive(Debug, Default, Clone)]
pub struct PeerSet {
    items: Vector<(NodeId, SocketAddr)>,
    index: OrdMap<NodeId, Slot>,
    present: usize,
}

impl PeerSet {
    pub fn len(&self) -> usize {
        self.present
    }
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }
    fn slot(&self, id: &NodeId) -> Option<Slot> {
        self.index.get(id).copied().filter(|s| s.present)
    }
    pub fn contains(&self, id: &NodeId) -> bool {
        self.slot(id).is_some()
    }
    pub fn addr(&self, id: &NodeId) -> Option<SocketAddr> {
        self.slot(id).map(|s| self.items[s.at].1)
    }

    /// Adds or updates a peer.
    pub fn insert(&mut self, id: NodeId, addr: SocketAddr) {
        match self.index.get(&id).copied() {
            // Unchanged: no write, so that a shared chunk stays shared.
            Some(s) if s.present && self.items[s.at].1 == addr => {}
            Some(s) => {
                if self.items[s.at].1 != addr {
                    self.items.set(s.at, (id.clone(), addr));
                }
                if !s.present {
                    self.index.insert(id, Slot { present: true, ..s });
                    self.present += 1;
                }
            }
            None => {
                let at = self.items.len();
                self.index.insert(id.clone(), Slot { at, present: true });
                self.items.push_back((id, addr));
                self.present += 1;
            }
        }
    }

    pub fn remove(&mut self, id: &NodeId) {
        let Some(s) = self.slot(id) else { return };
        self.index.insert(
            id.clone(),
            Slot {
                present: false,
                ..s
            },
        );
        self.present -= 1;
        let absent = self.items.len() - self.present;
        if absent > 16 && absent > self.present {
            self.compact();
        }
    }

    /// Drops the absent entries (a new, unshared vector and index).
    fn compact(&mut self) {
        let items: Vector<(NodeId, SocketAddr)> = self
            .items
            .iter()
            .filter(|(id, _)| self.contains(id))
            .cloned()
            .collect();
        self.index = items
            .iter()
            .enumerate()
            .map(|(at, (id, _))| (id.clone(), Slot { at, present: true }))
            .collect();
        self.items = items;
    }

    /// Up to `k` distinct random peers, none of them in `exclude`.
    pub fn sample(
        &self,
        k: usize,
        exclude: &[&NodeId],
        rng: &mut impl Rng,
    ) -> Vec<(NodeId, SocketAddr)> {
        let want = k.min(self.present);
        let mut out: Vec<(NodeId, SocketAddr)> = Vec::with_capacity(want);
        let usable = |id: &NodeId, out: &[(NodeId, SocketAddr)]| {
            !exclude.contains(&id) && !out.iter().any(|(o, _)| o == id) && self.contains(id)
        };
        // Rejection sampling: cheap while k is small next to the set (and at
        // least half the entries are present, see `remove`).
        let mut tries = 0;
        while out.len() < want && tries < 4 * want + 16 {
            tries += 1;
            let (id, addr) = &self.items[rng.gen_range(0..self.items.len())];
            if usable(id, &out) {
                out.push((id.clone(), *addr));
            }
        }
        if out.len() < want {
            // Small or crowded set: fall back to a scan.
            for (id, addr) in &self.items {
                if out.len() >= want {
                    break;
                }
                if usable(id, &out) {
                    out.push((id.clone(), *addr));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn sample_is_distinct_and_respects_exclusions() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut s = PeerSet::default();
        for i in 0..5 {
            s.insert(NodeId::new(&i.to_string()), addr(i));
        }
        let x = NodeId::new("0");
        for _ in 0..100 {
            let got = s.sample(3, &[&x], &mut rng);
            assert_eq!(got.len(), 3);
            assert!(got.iter().all(|(id, _)| id != &x));
            let mut ids: Vec<_> = got.iter().map(|(i, _)| i.clone()).collect();
            ids.dedup();
            assert_eq!(ids.len(), 3);
        }
        assert_eq!(s.sample(10, &[&x], &mut rng).len(), 4);
    }

    #[test]
    fn remove_keeps_index_consistent() {
        let mut s = PeerSet::default();
        for i in 0..4 {
            s.insert(NodeId::new(&i.to_string()), addr(i));
        }
        s.remove(&NodeId::new("0"));
        s.remove(&NodeId::new("9"));
        assert_eq!(s.len(), 3);
        assert_eq!(s.addr(&NodeId::new("3")), Some(addr(3)));
        s.insert(NodeId::new("3"), addr(33));
        assert_eq!(s.addr(&NodeId::new("3")), Some(addr(33)));
    }

    #[test]
    fn removed_peers_are_never_sampled_and_can_come_back() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut s = PeerSet::default();
        let id = |i: u16| NodeId::new(&i.to_string());
        for i in 0..100 {
            s.insert(id(i), addr(i));
        }
        // Enough removals to force a compaction, and some re-additions.
        for i in 0..70 {
            s.remove(&id(i));
        }
        for i in 0..10 {
            s.insert(id(i), addr(1000 + i));
        }
        assert_eq!(s.len(), 40);
        assert!(!s.contains(&id(50)));
        assert_eq!(s.addr(&id(5)), Some(addr(1005)));
        for _ in 0..200 {
            for (p, a) in s.sample(5, &[], &mut rng) {
                assert!(s.contains(&p));
                assert_eq!(s.addr(&p), Some(a));
                let n: u16 = p.as_str().parse().unwrap();
                assert!(!(10..70).contains(&n), "{p} was removed");
            }
        }
        // Asking for everyone gives everyone present, once.
        let all = s.sample(100, &[], &mut rng);
        assert_eq!(all.len(), 40);
    }
}
