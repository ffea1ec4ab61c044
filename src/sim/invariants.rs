//! The end-of-scenario invariants, checked on the nodes' real member tables
//! (`GetMembers`), not on the observer's mirror:
//!
//! * **agreement**: once faults stop, every live node lists exactly the live
//!   nodes as alive (nobody suspect, nobody missing, nobody extra), and holds
//!   for each of them the record that member announces about itself (same
//!   incarnation, same service list; the services' version number may lag
//!   when the list did not change), so every node answers service lookups
//!   the same way (the catalogs are compared too).
//!
//! The other invariants are checked while running: "no resurrection without a
//! higher incarnation" by the observer on every event
//! ([`Observer::on_event`](super::observer::Observer::on_event)), and "no
//! healthy member declared dead" by the scenarios from the deaths the
//! observer recorded.

use std::collections::BTreeSet;

use super::observer::{node_name, slot_of};
use crate::protocol::services::catalog;
use crate::protocol::{Member, NodeId, Table};

/// One node's table, as `GetTable` returned it: a persistent map, so
/// collecting 10,000 of them copies nothing.
pub struct NodeView {
    pub slot: usize,
    pub members: Table,
}

impl NodeView {
    pub fn new(slot: usize, members: impl IntoIterator<Item = Member>) -> Self {
        NodeView {
            slot,
            members: members
                .into_iter()
                .map(|m| (m.id.clone(), std::sync::Arc::new(m)))
                .collect(),
        }
    }
}

/// At most this many examples per kind of disagreement are named.
const EXAMPLES: usize = 5;

struct Tally {
    what: &'static str,
    count: usize,
    examples: Vec<String>,
}

impl Tally {
    fn new(what: &'static str) -> Self {
        Tally {
            what,
            count: 0,
            examples: Vec::new(),
        }
    }
    fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }
    fn report(self, out: &mut Vec<String>) {
        if self.count > 0 {
            out.push(format!(
                "agreement: {} ({}): {}",
                self.what,
                self.count,
                self.examples.join("; ")
            ));
        }
    }
}

/// Checks that every view in `views` (one per live node) agrees with the
/// ground truth `live` and with the others. Returns the violations, empty if
/// none.
///
/// A view equal to the first one, when the first one passes, passes too:
/// comparing it costs only the records the two nodes changed since the
/// warm start (`OrdMap::diff` skips the chunks they share), which keeps the
/// check of 10,000 views of 10,000 members within seconds.
pub fn agreement(views: &[NodeView], live: &BTreeSet<usize>) -> Vec<String> {
    let mut t = Tallies::default();
    // Every live member's own record is the reference.
    let own: std::collections::BTreeMap<usize, &Member> = views
        .iter()
        .filter_map(|v| {
            let m = v.members.get(&NodeId::new(&node_name(v.slot)))?;
            Some((v.slot, &**m))
        })
        .collect();
    let Some(first) = views.first() else {
        return Vec::new();
    };
    check_view(first, live, &own, &mut t);
    let first_catalog = catalog(first.members.values().map(|m| &**m));
    let first_ok = t.count() == 0;
    for v in &views[1..] {
        let same = first_ok
            && v.members.len() == first.members.len()
            && v.members.diff(&first.members).next().is_none();
        if same {
            continue;
        }
        check_view(v, live, &own, &mut t);
        if catalog(v.members.values().map(|m| &**m)) != first_catalog {
            t.catalogs.add(|| format!("n{} vs n{}", v.slot, first.slot));
        }
    }
    let mut out = Vec::new();
    t.missing.report(&mut out);
    t.extra.report(&mut out);
    t.stale.report(&mut out);
    t.catalogs.report(&mut out);
    out
}

struct Tallies {
    missing: Tally,
    extra: Tally,
    stale: Tally,
    catalogs: Tally,
}

impl Default for Tallies {
    fn default() -> Self {
        Tallies {
            missing: Tally::new("live member not listed alive"),
            extra: Tally::new("member listed alive or suspect that is not live"),
            stale: Tally::new("record differs from the member's own (incarnation or service list)"),
            catalogs: Tally::new("service catalog differs from the first live node's"),
        }
    }
}

impl Tallies {
    fn count(&self) -> usize {
        self.missing.count + self.extra.count + self.stale.count + self.catalogs.count
    }
}

fn check_view(
    v: &NodeView,
    live: &BTreeSet<usize>,
    own: &std::collections::BTreeMap<usize, &Member>,
    t: &mut Tallies,
) {
    let mut seen_alive = BTreeSet::new();
    for m in v.members.values() {
        let Some(y) = slot_of(&m.id) else { continue };
        if m.state.is_live() && !live.contains(&y) {
            t.extra
                .add(|| format!("n{} lists n{y} as {}", v.slot, m.state));
        }
        if live.contains(&y) {
            if m.state == crate::protocol::MemberState::Alive {
                seen_alive.insert(y);
            }
            if let Some(o) = own.get(&y) {
                // Services are compared by content: two versions of the
                // same list answer lookups alike.
                if m.incarnation != o.incarnation || m.services.list != o.services.list {
                    t.stale.add(|| {
                        format!(
                            "n{} holds n{y} at incarnation {} services v{}, n{y} says {} v{}",
                            v.slot,
                            m.incarnation,
                            m.services.version,
                            o.incarnation,
                            o.services.version
                        )
                    });
                }
            }
        }
    }
    for y in live.difference(&seen_alive) {
        let state = v
            .members
            .get(&NodeId::new(&node_name(*y)))
            .map_or("absent".to_string(), |m| m.state.to_string());
        t.missing.add(|| format!("n{} has n{y} {state}", v.slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::services::{Service, ServiceSet};
    use crate::protocol::{MemberState, NodeId};

    fn m(slot: usize, inc: u64, state: MemberState, svc: u64) -> Member {
        let services = if svc == 0 {
            ServiceSet::default()
        } else {
            ServiceSet::new(svc, vec![Service::new("web", 80)])
        };
        Member {
            state,
            services,
            ..Member::new_alive(
                NodeId::new(&format!("n{slot}")),
                super::super::network::addr_of(slot),
                inc,
            )
        }
    }

    #[test]
    fn agreeing_views_pass_and_each_disagreement_is_named() {
        let live: BTreeSet<usize> = [0, 1].into_iter().collect();
        let records = vec![
            m(0, 1, MemberState::Alive, 1),
            m(1, 0, MemberState::Alive, 0),
            m(2, 0, MemberState::Dead, 0),
        ];
        let good = |slot| NodeView::new(slot, records.clone());
        let with = |f: &dyn Fn(&mut Member), i: usize| {
            let mut r = records.clone();
            f(&mut r[i]);
            NodeView::new(1, r)
        };
        assert!(agreement(&[good(0), good(1)], &live).is_empty());

        let bad = with(&|m| m.incarnation = 0, 0);
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("incarnation")), "{v:?}");

        let bad = with(&|m| m.state = MemberState::Alive, 2);
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("not live")), "{v:?}");

        let bad = with(&|m| m.state = MemberState::Suspect, 0);
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("not listed alive")), "{v:?}");

        let bad = with(&|m| m.services = ServiceSet::default(), 0);
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("catalog")), "{v:?}");
    }
}
