//! The rumor queue: which pending rumors ride on the next datagram.
//!
//! One rumor per member (a newer rumor about the same member replaces the
//! older and starts its count afresh). Each datagram takes the rumors that
//! have been transmitted the fewest times first, newest first among equals,
//! until the datagram is full; a rumor is retired after `limit` transmissions,
//! where `limit = retransmit_mult * max(2, ceil(log10(N + 1)))` (memberlist's formula with a floor),
//! enough for an infection-style spread to reach every member with high
//! probability. The queue is bounded; when full, the most transmitted (then
//! oldest) rumor is dropped and counted.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use super::member::NodeId;
use super::wire::EncodedMsg;

/// How many times each rumor is sent in a cluster of `n` members. The scale
/// is at least 2: in a cluster under ten members memberlist's formula gives
/// only `retransmit_mult` sends per node, and about one change in a few
/// hundred then missed a member until the next push-pull.
pub fn retransmit_limit(retransmit_mult: u32, n: usize) -> u32 {
    let scale = ((n as f64) + 1.0).log10().ceil().max(2.0) as u32;
    retransmit_mult.max(1) * scale
}

type Rank = (u32, Reverse<u64>);

#[derive(Debug)]
pub struct RumorQueue {
    rank_of: HashMap<NodeId, Rank>,
    ordered: BTreeMap<Rank, (NodeId, EncodedMsg)>,
    next_seq: u64,
    max_len: usize,
    dropped: u64,
}

/// What one call to [`RumorQueue::fill`] picked.
#[derive(Debug, Default)]
pub struct Filled {
    pub msgs: Vec<EncodedMsg>,
    pub keys: Vec<NodeId>,
    pub bytes: usize,
}

impl RumorQueue {
    pub fn new(max_len: usize) -> Self {
        RumorQueue {
            rank_of: HashMap::new(),
            ordered: BTreeMap::new(),
            next_seq: 0,
            max_len: max_len.max(1),
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ordered.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
    /// Rumors pushed out because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues a rumor about `key`, replacing any older rumor about it.
    pub fn push(&mut self, key: NodeId, msg: EncodedMsg) {
        if let Some(rank) = self.rank_of.remove(&key) {
            self.ordered.remove(&rank);
        }
        while self.ordered.len() >= self.max_len {
            let Some((_, (victim, _))) = self.ordered.pop_last() else {
                break;
            };
            self.rank_of.remove(&victim);
            self.dropped += 1;
        }
        let rank = (0, Reverse(self.next_seq));
        self.next_seq += 1;
        self.rank_of.insert(key.clone(), rank);
        self.ordered.insert(rank, (key, msg));
    }

    /// Removes the pending rumor about `key`, if any.
    pub fn remove(&mut self, key: &NodeId) {
        if let Some(rank) = self.rank_of.remove(key) {
            self.ordered.remove(&rank);
        }
    }

    /// Takes rumors that fit in `room` bytes, fewest-transmitted first, and
    /// counts one transmission for each; rumors reaching `limit` are retired.
    pub fn fill(&mut self, room: usize, limit: u32) -> Filled {
        let mut picked: Vec<Rank> = Vec::new();
        let mut out = Filled::default();
        let mut misses = 0;
        for (rank, (_, msg)) in self.ordered.iter() {
            if out.bytes + msg.len() <= room {
                out.bytes += msg.len();
                picked.push(*rank);
            } else {
                // Keep looking for a smaller rumor, but not forever.
                misses += 1;
                if misses > 32 || room - out.bytes < 16 {
                    break;
                }
            }
        }
        for rank in picked {
            let (key, msg) = self.ordered.remove(&rank).expect("picked rank exists");
            out.msgs.push(msg.clone());
            out.keys.push(key.clone());
            let sent = rank.0 + 1;
            if sent < limit {
                let new_rank = (sent, rank.1);
                self.rank_of.insert(key.clone(), new_rank);
                self.ordered.insert(new_rank, (key, msg));
            } else {
                self.rank_of.remove(&key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn msg(n: usize) -> EncodedMsg {
        Arc::from(vec![0u8; n])
    }

    #[test]
    fn limit_follows_memberlist() {
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 7), 8, "small clusters: at least 2x");
        assert_eq!(retransmit_limit(4, 0), 8);
    }

    #[test]
    fn fewest_transmitted_first_and_retired_at_limit() {
        let mut q = RumorQueue::new(10);
        q.push(NodeId::new("a"), msg(10));
        let f = q.fill(100, 2);
        assert_eq!(f.keys, vec![NodeId::new("a")]);
        q.push(NodeId::new("b"), msg(10));
        // b has 0 transmissions, a has 1: with room for one, b goes first.
        assert_eq!(q.fill(10, 2).keys, vec![NodeId::new("b")]);
        assert_eq!(q.fill(100, 2).keys.len(), 2);
        assert!(q.is_empty(), "both reached the limit of 2");
    }

    #[test]
    fn newer_rumor_replaces_older_and_resets_count() {
        let mut q = RumorQueue::new(10);
        q.push(NodeId::new("a"), msg(10));
        q.fill(100, 3);
        q.fill(100, 3);
        q.push(NodeId::new("a"), msg(20));
        assert_eq!(q.len(), 1);
        let f = q.fill(100, 3);
        assert_eq!(f.bytes, 20);
        assert_eq!(q.len(), 1, "fresh count: 1 of 3");
    }

    #[test]
    fn fills_up_to_room_and_skips_what_does_not_fit() {
        let mut q = RumorQueue::new(10);
        q.push(NodeId::new("big"), msg(90));
        q.push(NodeId::new("small"), msg(20));
        q.push(NodeId::new("mid"), msg(50));
        let f = q.fill(75, 5);
        assert_eq!(f.bytes, 70);
        assert_eq!(f.keys.len(), 2);
    }

    #[test]
    fn bounded_length_drops_and_counts() {
        let mut q = RumorQueue::new(2);
        for k in ["a", "b", "c"] {
            q.push(NodeId::new(k), msg(1));
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 1);
    }
}
