//! A formed cluster to start a node in: the simulator's warm start.
//!
//! A node normally learns its members by joining: a push-pull with a seed,
//! then rumors. Scenarios that study what happens *in* a cluster (a failure,
//! a rumor, a partition) need a formed one first, and forming 10,000 nodes by
//! joins costs 10,000 full table transfers and 10^8 merges before the
//! scenario even begins. `Formed` is the state such a join would have left:
//! every member alive at incarnation 0, in the persistent structures a node
//! keeps, built once and cloned into every node in O(1): the membership
//! actor's view (whose peer sets every actor samples through the published
//! snapshot) and the failure detector's probe order. The nodes then share
//! one copy of the table and pay only for the records they change.
//!
//! Agents never use it: they join.

use std::sync::Arc;
use tokio::time::Instant;

use super::member::{Member, NodeId};
use super::probe_order::{ProbeOrder, RingKey};
use super::view::View;

#[derive(Clone, Debug)]
pub struct Formed {
    /// The membership actor's table: every member, self included.
    pub view: View,
    /// The probe ring, shared by every node (`ProbeOrder::formed` takes
    /// each node off its own view of it).
    pub ring: Arc<Vec<RingKey>>,
}

impl Formed {
    /// `members` must all be alive records with distinct ids.
    pub fn new(members: &[Member], max_members: usize) -> Self {
        let now = Instant::now();
        let mut view = View::new(max_members);
        for m in members {
            // Errors only when the table is full; the caller sized it.
            let _ = view.apply(m, now);
        }
        let ids: Vec<NodeId> = members.iter().map(|m| m.id.clone()).collect();
        Formed {
            view,
            ring: ProbeOrder::ring_of(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn every_member_is_everywhere() {
        let members: Vec<Member> = (0..20u16)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, 0, 1], 7000 + i));
                Member::new_alive(NodeId::new(&format!("n{i}")), addr, 0)
            })
            .collect();
        let f = Formed::new(&members, 100);
        assert_eq!(f.view.len(), 20);
        assert_eq!(f.view.live_count(), 20);
        assert_eq!(f.ring.len(), 20);
        assert_eq!(f.view.live().len(), 20);
        // Two views built from the same records in another order hash the same.
        let mut rev = View::new(100);
        for m in members.iter().rev() {
            rev.apply(m, Instant::now()).unwrap();
        }
        assert_eq!(rev.hash(), f.view.hash());
    }
}
