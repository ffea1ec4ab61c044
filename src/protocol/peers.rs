//! A set of peers to pick random targets from in O(k).
//!
//! Gossip rounds, eager pushes, indirect probes and push-pull all pick random
//! members, thousands of times a second in a large simulation, so the set
//! keeps a dense vector for sampling and an index for O(1) removal.

use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;

use super::member::NodeId;

#[derive(Debug, Default, Clone)]
pub struct PeerSet {
    items: Vec<(NodeId, SocketAddr)>,
    index: HashMap<NodeId, usize>,
}

impl PeerSet {
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn contains(&self, id: &NodeId) -> bool {
        self.index.contains_key(id)
    }
    pub fn addr(&self, id: &NodeId) -> Option<SocketAddr> {
        self.index.get(id).map(|&i| self.items[i].1)
    }

    /// Adds or updates a peer.
    pub fn insert(&mut self, id: NodeId, addr: SocketAddr) {
        match self.index.get(&id) {
            Some(&i) => self.items[i].1 = addr,
            None => {
                self.index.insert(id.clone(), self.items.len());
                self.items.push((id, addr));
            }
        }
    }

    pub fn remove(&mut self, id: &NodeId) {
        if let Some(i) = self.index.remove(id) {
            self.items.swap_remove(i);
            if let Some((moved, _)) = self.items.get(i) {
                self.index.insert(moved.clone(), i);
            }
        }
    }

    /// Up to `k` distinct random peers, none of them in `exclude`.
    pub fn sample(
        &self,
        k: usize,
        exclude: &[&NodeId],
        rng: &mut impl Rng,
    ) -> Vec<(NodeId, SocketAddr)> {
        let want = k.min(self.items.len());
        let mut out: Vec<(NodeId, SocketAddr)> = Vec::with_capacity(want);
        // Rejection sampling: cheap while k is small next to the set.
        let mut tries = 0;
        while out.len() < want && tries < 4 * want + 16 {
            tries += 1;
            let (id, addr) = &self.items[rng.gen_range(0..self.items.len())];
            if exclude.contains(&id) || out.iter().any(|(o, _)| o == id) {
                continue;
            }
            out.push((id.clone(), *addr));
        }
        if out.len() < want {
            // Small or crowded set: fall back to a scan.
            for (id, addr) in &self.items {
                if out.len() >= want {
                    break;
                }
                if !exclude.contains(&id) && !out.iter().any(|(o, _)| o == id) {
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
}
