//! Push-pull planning: given a peer's digest (one entry per member: id,
//! incarnation, state, services version), which records we send it and
//! which we ask for.
//!
//! A digest travels as pages of one datagram each, and on UDP some pages are
//! lost: at 10% loss the 15 pages of a 1,000-member digest all arrive one time
//! in five. So each page is planned alone, as it arrives. Digests list a view
//! in id order and pages keep that order, so a page speaks for every id from
//! its first entry to its last (the first page for every id before it too,
//! the last page for every id after): ours in that range that the page does
//! not list, the peer lacks. Ids between two pages are settled once both have
//! arrived ([`plan_gap`]). A lost page costs only its own range, until the
//! next push-pull.

use std::collections::BTreeSet;
use std::ops::Bound;

use super::member::NodeId;
use super::view::View;
use super::wire::DigestEntry;

/// What a push-pull peer and we should send each other.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Records where ours is newer, or that the peer lacks: we send them.
    pub send: Vec<NodeId>,
    /// Records where the peer's is newer, or that we lack: we ask for them.
    pub want: Vec<NodeId>,
}

/// Compares our records with the entries listed.
fn compare(view: &View, listed: &[DigestEntry], plan: &mut SyncPlan) {
    for r in listed {
        match view.get(&r.id) {
            // A dead or left member we do not know stays unknown: its
            // tombstone was reclaimed here (or never reached us), and
            // fetching it would only bring it back (memberlist's rule).
            None if !r.state.is_live() => {}
            None => plan.want.push(r.id.clone()),
            Some(m) => {
                let ours = (m.incarnation, m.state);
                let theirs = (r.incarnation, r.state);
                if theirs > ours || r.services_version > m.services.version {
                    plan.want.push(r.id.clone());
                }
                if ours > theirs || m.services.version > r.services_version {
                    plan.send.push(r.id.clone());
                }
            }
        }
    }
}

/// Compares our view with a peer's complete digest.
pub fn plan_sync(view: &View, remote: &[DigestEntry]) -> SyncPlan {
    let mut plan = SyncPlan::default();
    compare(view, remote, &mut plan);
    let seen: BTreeSet<&NodeId> = remote.iter().map(|r| &r.id).collect();
    plan.send.extend(
        view.iter()
            .filter(|m| !seen.contains(&m.id) && m.state.is_live())
            .map(|m| m.id.clone()),
    );
    plan
}

/// The ids a page speaks for, if its entries are in strict id order (a page
/// out of order speaks only for the ids it lists).
pub fn page_bounds(page: &[DigestEntry]) -> Option<(NodeId, NodeId)> {
    let sorted = page.windows(2).all(|w| w[0].id < w[1].id);
    match (page.first(), page.last()) {
        (Some(a), Some(b)) if sorted => Some((a.id.clone(), b.id.clone())),
        _ => None,
    }
}

/// Plans from one page of `pages`: its entries compared with ours, plus ours
/// within its range that it does not list.
pub fn plan_page(view: &View, page: &[DigestEntry], index: u16, pages: u16) -> SyncPlan {
    let mut plan = SyncPlan::default();
    compare(view, page, &mut plan);
    if let Some((first, last)) = page_bounds(page) {
        let lo = if index == 0 {
            Bound::Unbounded
        } else {
            Bound::Included(&first)
        };
        let hi = if index + 1 == pages {
            Bound::Unbounded
        } else {
            Bound::Included(&last)
        };
        let listed: BTreeSet<&NodeId> = page.iter().map(|r| &r.id).collect();
        plan.send.extend(
            view.range(lo, hi)
                .filter(|m| !listed.contains(&m.id) && m.state.is_live())
                .map(|m| m.id.clone()),
        );
    }
    plan
}

/// Ours strictly between the last id of one page and the first of the next:
/// the peer lacks them. (Only live ones, here and in every plan: a peer that
/// lacks a member ignores bad news about it, so a tombstone it lacks is not
/// sent.)
pub fn plan_gap(view: &View, after: &NodeId, before: &NodeId) -> Vec<NodeId> {
    if after >= before {
        return Vec::new();
    }
    view.range(Bound::Excluded(after), Bound::Excluded(before))
        .filter(|m| m.state.is_live())
        .map(|m| m.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::view::digest_entry;
    use crate::protocol::view::tests::m;
    use crate::protocol::wire::paginate;
    use crate::protocol::MemberState;
    use proptest::prelude::*;
    use tokio::time::Instant;

    #[test]
    fn sync_plan_sends_newer_and_wants_missing() {
        let now = Instant::now();
        let mut v = View::new(100);
        v.apply(&m("mine-newer", 3, MemberState::Alive), now)
            .unwrap();
        v.apply(&m("theirs-newer", 1, MemberState::Alive), now)
            .unwrap();
        v.apply(&m("same", 1, MemberState::Alive), now).unwrap();
        v.apply(&m("only-mine", 1, MemberState::Alive), now)
            .unwrap();
        let remote = vec![
            digest_entry(&m("mine-newer", 2, MemberState::Alive)),
            digest_entry(&m("theirs-newer", 1, MemberState::Dead)),
            digest_entry(&m("same", 1, MemberState::Alive)),
            digest_entry(&m("only-theirs", 1, MemberState::Alive)),
        ];
        let plan = plan_sync(&v, &remote);
        assert_eq!(
            plan.send,
            vec![NodeId::new("mine-newer"), NodeId::new("only-mine")]
        );
        assert_eq!(
            plan.want,
            vec![NodeId::new("theirs-newer"), NodeId::new("only-theirs")]
        );
    }

    fn view_of(ids: &[(u32, u64)]) -> View {
        let mut v = View::new(10_000);
        for (id, inc) in ids {
            v.apply(
                &m(&format!("n{id:04}"), *inc, MemberState::Alive),
                Instant::now(),
            )
            .unwrap();
        }
        v
    }

    fn sorted(mut v: Vec<NodeId>) -> Vec<NodeId> {
        v.sort();
        v
    }

    proptest! {
        /// With every page in, page by page plus the gaps plans exactly what
        /// the whole digest does; with some pages lost, only a subset of it.
        #[test]
        fn pages_plan_what_the_whole_digest_plans(
            ours in proptest::collection::btree_map(0u32..300, 0u64..3, 0..120),
            theirs in proptest::collection::btree_map(0u32..300, 0u64..3, 1..120),
            room in 40usize..400,
            lost in proptest::collection::vec(any::<bool>(), 64),
        ) {
            let ours: Vec<(u32, u64)> = ours.into_iter().collect();
            let theirs: Vec<(u32, u64)> = theirs.into_iter().collect();
            let (a, b) = (view_of(&ours), view_of(&theirs));
            let whole = plan_sync(&a, &b.digest());
            let pages = paginate(b.digest(), room);
            let n = pages.len() as u16;
            for drop in [false, true] {
                let arrived: Vec<bool> = (0..pages.len()).map(|i| !(drop && lost[i % 64])).collect();
                let mut send = Vec::new();
                let mut want = Vec::new();
                for (i, p) in pages.iter().enumerate() {
                    if arrived[i] {
                        let plan = plan_page(&a, p, i as u16, n);
                        send.extend(plan.send);
                        want.extend(plan.want);
                    }
                }
                for i in 1..pages.len() {
                    if arrived[i - 1] && arrived[i] {
                        let (_, last) = page_bounds(&pages[i - 1]).unwrap();
                        let (first, _) = page_bounds(&pages[i]).unwrap();
                        send.extend(plan_gap(&a, &last, &first));
                    }
                }
                let (send, want) = (sorted(send), sorted(want));
                let mut dedup = send.clone();
                dedup.dedup();
                prop_assert_eq!(&dedup, &send, "a record planned twice");
                if drop {
                    let (ws, ww) = (sorted(whole.send.clone()), sorted(whole.want.clone()));
                    prop_assert!(send.iter().all(|x| ws.contains(x)));
                    prop_assert!(want.iter().all(|x| ww.contains(x)));
                } else {
                    prop_assert_eq!(send, sorted(whole.send.clone()));
                    prop_assert_eq!(want, sorted(whole.want.clone()));
                }
            }
        }
    }

    #[test]
    fn a_page_out_of_order_speaks_only_for_what_it_lists() {
        let a = view_of(&[(1, 0), (2, 0), (3, 0)]);
        let page = vec![
            digest_entry(&m("n0003", 0, MemberState::Alive)),
            digest_entry(&m("n0001", 0, MemberState::Alive)),
        ];
        assert_eq!(page_bounds(&page), None);
        let plan = plan_page(&a, &page, 0, 1);
        assert!(plan.send.is_empty() && plan.want.is_empty(), "{plan:?}");
    }

    #[test]
    fn tombstones_of_members_the_other_lacks_are_neither_asked_for_nor_sent() {
        let now = Instant::now();
        let mut v = View::new(100);
        v.apply(&m("a", 0, MemberState::Alive), now).unwrap();
        v.apply(&m("mine-dead", 0, MemberState::Alive), now)
            .unwrap();
        v.apply(&m("mine-dead", 0, MemberState::Dead), now).unwrap();
        let remote = vec![
            digest_entry(&m("a", 0, MemberState::Alive)),
            digest_entry(&m("theirs-dead", 4, MemberState::Dead)),
            digest_entry(&m("theirs-left", 4, MemberState::Left)),
            digest_entry(&m("theirs-alive", 0, MemberState::Alive)),
        ];
        let whole = plan_sync(&v, &remote);
        let page = plan_page(&v, &remote, 0, 1);
        for plan in [whole, page] {
            assert_eq!(plan.want, vec![NodeId::new("theirs-alive")]);
            assert!(plan.send.is_empty(), "{plan:?}");
        }
    }
}
