//! The member record and the rules that merge two views of it.
//!
//! Every piece of membership knowledge is a [`Member`] record. Two records about
//! the same member are merged by [`merge`], which is a join on a lattice made of
//! two independent parts:
//!
//! * **liveness**: ordered by `(incarnation, state precedence, addr)`. Only the
//!   member itself raises its incarnation (to refute a suspicion or to rejoin),
//!   so a higher incarnation is always newer; at the same incarnation
//!   `Alive < Suspect < Dead < Left`, so bad news wins until refuted.
//! * **services**: ordered by `(version, content)`. Only the owner raises the
//!   version.
//!
//! Because `merge` takes the maximum of each part, it is commutative,
//! associative and idempotent (see the property tests below), so every delivery
//! order of the same rumors converges to the same view.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::services::ServiceSet;

/// A member's unique name (`NODE_ID`). Cheap to clone. Ordered as its
/// string (see the `Ord` impl).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub Arc<str>);

/// The string's order (what `derive` gave), faster: every table, book and
/// peer-set lookup compares ids, and names are short, so a byte loop beats
/// the call to `memcmp` the slice comparison makes (a tenth of a large
/// simulation's time went to that call), and two clones of one id are
/// equal without reading them.
impl Ord for NodeId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return x.cmp(y);
            }
        }
        a.len().cmp(&b.len())
    }
}

impl PartialOrd for NodeId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl NodeId {
    pub fn new(s: &str) -> Self {
        NodeId(Arc::from(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId::new(s)
    }
}

/// Liveness states, in precedence order: at equal incarnation a later variant
/// overrides an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
    /// Alive or suspect: still a member we talk to.
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// On the wire (msgpack) one byte; in JSON the lowercase name.
impl Serialize for MemberState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.as_str())
        } else {
            s.serialize_u8(*self as u8)
        }
    }
}

impl<'de> Deserialize<'de> for MemberState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let states = [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ];
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            states
                .into_iter()
                .find(|x| x.as_str() == s)
                .ok_or_else(|| D::Error::custom(format!("unknown state {s:?}")))
        } else {
            let n = u8::deserialize(d)?;
            states
                .get(n as usize)
                .copied()
                .ok_or_else(|| D::Error::custom(format!("unknown state {n}")))
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything one node knows about one member. This is also the rumor that
/// travels on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    #[serde(with = "super::wire::addr_bytes")]
    pub addr: SocketAddr,
    pub incarnation: u64,
    pub state: MemberState,
    pub services: ServiceSet,
}

impl Member {
    pub fn new_alive(id: NodeId, addr: SocketAddr, incarnation: u64) -> Self {
        Member {
            id,
            addr,
            incarnation,
            state: MemberState::Alive,
            services: ServiceSet::default(),
        }
    }

    /// The total order of the liveness part.
    pub fn liveness_cmp(&self, other: &Member) -> Ordering {
        (self.incarnation, self.state, self.addr).cmp(&(other.incarnation, other.state, other.addr))
    }
}

/// Joins two records about the same member (the lattice join).
pub fn merge(a: &Member, b: &Member) -> Member {
    debug_assert_eq!(a.id, b.id);
    let live = if a.liveness_cmp(b) == Ordering::Less {
        b
    } else {
        a
    };
    #[cfg(test)]
    let live = test_hooks::broken_precedence(a, b).unwrap_or(live);
    let services = if a.services.cmp(&b.services) == Ordering::Less {
        &b.services
    } else {
        &a.services
    };
    Member {
        id: live.id.clone(),
        addr: live.addr,
        incarnation: live.incarnation,
        state: live.state,
        services: services.clone(),
    }
}

/// Test builds only (nothing of it exists in a normal build): a switch that
/// breaks the merge rule on purpose, so that a test can show the simulator's
/// invariant checker catching the bug (`sim::tests`).
#[cfg(test)]
pub mod test_hooks {
    use super::{Member, MemberState};
    use std::cell::Cell;

    thread_local! {
        /// Per thread rather than process-wide: the other unit tests run in
        /// parallel threads of the same process and must keep the real rule.
        pub static RESURRECT: Cell<bool> = const { Cell::new(false) };
    }

    /// With the switch on, at equal incarnation an alive record beats a dead
    /// or left one: the resurrection the precedence rule exists to prevent.
    pub fn broken_precedence<'a>(a: &'a Member, b: &'a Member) -> Option<&'a Member> {
        if !RESURRECT.with(|r| r.get()) || a.incarnation != b.incarnation {
            return None;
        }
        match (a.state, b.state) {
            (MemberState::Alive, MemberState::Dead | MemberState::Left) => Some(a),
            (MemberState::Dead | MemberState::Left, MemberState::Alive) => Some(b),
            _ => None,
        }
    }
}

/// What applying a rumor to a local record changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The liveness state before, `None` for a member we did not know.
    pub old_state: Option<MemberState>,
    pub new_state: MemberState,
    pub liveness_changed: bool,
    pub services_changed: bool,
}

impl Change {
    pub fn is_news(&self) -> bool {
        self.liveness_changed || self.services_changed
    }
}

/// Applies `incoming` to `current` (None when unknown) and reports the change.
/// The result is always `merge(current, incoming)`.
pub fn apply(current: Option<&Member>, incoming: &Member) -> (Member, Change) {
    match current {
        None => (
            incoming.clone(),
            Change {
                old_state: None,
                new_state: incoming.state,
                liveness_changed: true,
                services_changed: !incoming.services.is_empty(),
            },
        ),
        Some(cur) => {
            let merged = merge(cur, incoming);
            let change = Change {
                old_state: Some(cur.state),
                new_state: merged.state,
                liveness_changed: merged.liveness_cmp(cur) != Ordering::Equal,
                services_changed: merged.services != cur.services,
            };
            (merged, change)
        }
    }
}

/// The largest incarnation accepted for a member we do not know yet.
pub const MAX_NEW_INCARNATION: u64 = 1 << 40;
/// The largest step up from the incarnation we know for a member.
pub const MAX_INCARNATION_JUMP: u64 = 1 << 20;

/// Whether an incarnation is believable. Real incarnations grow by one per
/// refutation or restart; a rumor that jumps far ahead is a lie (or garbage)
/// that would otherwise let its author outbid every refutation for good, so it
/// is refused. Without a key anyone can still lie within these bounds; see
/// SECURITY.md.
pub fn plausible_incarnation(known: Option<u64>, incoming: u64) -> bool {
    match known {
        None => incoming <= MAX_NEW_INCARNATION,
        Some(k) => incoming <= k.saturating_add(MAX_INCARNATION_JUMP),
    }
}

/// How a node must answer a rumor about itself. Returns the incarnation to
/// announce when the rumor has to be refuted: someone thinks we are suspect,
/// dead or left, or knows an incarnation of ours at least as high as ours
/// (a previous life of this node id).
pub fn refutation(own_incarnation: u64, own_addr: SocketAddr, rumor: &Member) -> Option<u64> {
    let stale = rumor.incarnation < own_incarnation;
    let bad_news = rumor.state != MemberState::Alive;
    let foreign_alive = rumor.state == MemberState::Alive
        && (rumor.incarnation > own_incarnation
            || (rumor.incarnation == own_incarnation && rumor.addr != own_addr));
    if stale || !(bad_news || foreign_alive) {
        return None;
    }
    // Saturate rather than wrap: a liar who sends u64::MAX cannot make us
    // announce incarnation 0. See SECURITY.md for the bound on jumps.
    Some(rumor.incarnation.saturating_add(1))
}

/// How long after its join a node counts as the newcomer in a name
/// conflict: a node started with a NODE_ID already in use finds the other
/// holder in its join's state transfer (or the follow-up push-pulls, 2, 6
/// and 14 s later, under loss) and probes it for three probe timeouts, well
/// within 20 s of joining; the holder hears of the newcomer later than that
/// only if it joined less than 20 s before it (then both give up: two
/// processes started together with one NODE_ID is a deployment error).
pub const NEWCOMER_WINDOW: std::time::Duration = std::time::Duration::from_secs(20);

/// What a node does about an alive record of its own NODE_ID at another
/// address, once it has probed that address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameVerdict {
    /// Nothing answers there: a previous life of ours (a container restarted
    /// with a new IP). Take the name over with a higher incarnation.
    TakeOver,
    /// Someone answers, and we joined within `NEWCOMER_WINDOW`: we are the
    /// newcomer and give the name up (the agent exits 2).
    GiveUp,
    /// Someone answers, and we have been a member longer: we hold the name,
    /// and keep it without raising our incarnation (no war); the newcomer
    /// exits, and the suspicion of its silent address brings our record back.
    Keep,
}

/// The verdict on a name conflict: whether the other address answered, and
/// how long we have been a member (None: not joined yet, a newcomer).
pub fn name_verdict(answered: bool, member_for: Option<std::time::Duration>) -> NameVerdict {
    match (answered, member_for) {
        (false, _) => NameVerdict::TakeOver,
        (true, Some(d)) if d >= NEWCOMER_WINDOW => NameVerdict::Keep,
        (true, _) => NameVerdict::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_order_as_their_strings() {
        let ids = [
            "", "a", "ab", "b", "n10", "n2", "n100", "node-1", "node-10", "é", "z",
        ];
        for x in ids {
            for y in ids {
                assert_eq!(NodeId::new(x).cmp(&NodeId::new(y)), x.cmp(y), "{x} {y}");
            }
        }
        let a = NodeId::new("n1");
        assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
    }

    use super::*;
    use crate::protocol::services::{Service, ServiceSet};
    use proptest::prelude::*;

    fn arb_member() -> impl Strategy<Value = Member> {
        (0u64..4, 0u8..4, 1u16..4, 0u64..3, 0u16..3).prop_map(|(inc, st, port, sv, sp)| {
            let state = [
                MemberState::Alive,
                MemberState::Suspect,
                MemberState::Dead,
                MemberState::Left,
            ][st as usize];
            let services = if sv == 0 {
                ServiceSet::default()
            } else {
                ServiceSet::new(sv, vec![Service::new("web", 8000 + sp)])
            };
            Member {
                id: NodeId::new("n"),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                incarnation: inc,
                state,
                services,
            }
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_member(), b in arb_member()) {
            prop_assert_eq!(merge(&a, &b), merge(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in arb_member(), b in arb_member(), c in arb_member()) {
            prop_assert_eq!(merge(&merge(&a, &b), &c), merge(&a, &merge(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_member(), b in arb_member()) {
            prop_assert_eq!(merge(&a, &a), a.clone());
            let ab = merge(&a, &b);
            prop_assert_eq!(merge(&ab, &b), ab.clone());
        }

        #[test]
        fn every_delivery_order_converges(mut rumors in proptest::collection::vec(arb_member(), 1..8)) {
            let fold = |rs: &[Member]| rs.iter().skip(1).fold(rs[0].clone(), |acc, r| apply(Some(&acc), r).0);
            let forward = fold(&rumors);
            rumors.reverse();
            prop_assert_eq!(fold(&rumors), forward);
        }
    }

    fn m(inc: u64, state: MemberState) -> Member {
        Member {
            state,
            ..Member::new_alive(NodeId::new("n"), "127.0.0.1:1".parse().unwrap(), inc)
        }
    }

    #[test]
    fn dead_member_needs_higher_incarnation_to_come_back() {
        let dead = m(5, MemberState::Dead);
        let (after, change) = apply(Some(&dead), &m(5, MemberState::Alive));
        assert_eq!(after.state, MemberState::Dead);
        assert!(!change.is_news());
        let (after, change) = apply(Some(&dead), &m(6, MemberState::Alive));
        assert_eq!(after.state, MemberState::Alive);
        assert!(change.liveness_changed);
    }

    #[test]
    fn suspicion_at_current_incarnation_overrides_alive() {
        let (after, _) = apply(Some(&m(2, MemberState::Alive)), &m(2, MemberState::Suspect));
        assert_eq!(after.state, MemberState::Suspect);
        let (after, _) = apply(Some(&m(3, MemberState::Alive)), &m(2, MemberState::Suspect));
        assert_eq!(after.state, MemberState::Alive, "stale suspicion ignored");
    }

    #[test]
    fn a_name_conflict_is_settled_by_who_answers_and_who_came_last() {
        use std::time::Duration;
        assert_eq!(name_verdict(false, None), NameVerdict::TakeOver);
        assert_eq!(
            name_verdict(false, Some(Duration::from_secs(9999))),
            NameVerdict::TakeOver
        );
        assert_eq!(name_verdict(true, None), NameVerdict::GiveUp);
        assert_eq!(
            name_verdict(true, Some(Duration::from_secs(5))),
            NameVerdict::GiveUp
        );
        assert_eq!(name_verdict(true, Some(NEWCOMER_WINDOW)), NameVerdict::Keep);
    }

    #[test]
    fn refutes_bad_news_and_previous_lives() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(refutation(3, addr, &m(3, MemberState::Suspect)), Some(4));
        assert_eq!(refutation(3, addr, &m(7, MemberState::Left)), Some(8));
        assert_eq!(refutation(0, addr, &m(4, MemberState::Alive)), Some(5));
        assert_eq!(refutation(3, addr, &m(2, MemberState::Dead)), None, "stale");
        assert_eq!(
            refutation(3, addr, &m(3, MemberState::Alive)),
            None,
            "our own news"
        );
        assert_eq!(
            refutation(0, addr, &m(u64::MAX, MemberState::Dead)),
            Some(u64::MAX)
        );
    }
}
