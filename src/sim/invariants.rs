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

use super::observer::slot_of;
use crate::protocol::services::catalog;
use crate::protocol::Member;

/// One node's table, as `GetMembers` returned it.
pub struct NodeView {
    pub slot: usize,
    pub members: Vec<Member>,
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
pub fn agreement(views: &[NodeView], live: &BTreeSet<usize>) -> Vec<String> {
    let mut missing = Tally::new("live member not listed alive");
    let mut extra = Tally::new("member listed alive or suspect that is not live");
    let mut stale =
        Tally::new("record differs from the member's own (incarnation or service list)");
    let mut catalogs = Tally::new("service catalog differs from the first live node's");

    // Every live member's own record is the reference.
    let own: std::collections::BTreeMap<usize, &Member> = views
        .iter()
        .filter_map(|v| {
            v.members
                .iter()
                .find(|m| slot_of(&m.id) == Some(v.slot))
                .map(|m| (v.slot, m))
        })
        .collect();
    let mut first_catalog = None;
    for v in views {
        let mut seen_alive = BTreeSet::new();
        for m in &v.members {
            let Some(y) = slot_of(&m.id) else { continue };
            if m.state.is_live() && !live.contains(&y) {
                extra.add(|| format!("n{} lists n{y} as {}", v.slot, m.state));
            }
            if live.contains(&y) {
                if m.state == crate::protocol::MemberState::Alive {
                    seen_alive.insert(y);
                }
                if let Some(o) = own.get(&y) {
                    // Services are compared by content: two versions of
                    // the same list answer lookups alike.
                    if m.incarnation != o.incarnation || m.services.list != o.services.list {
                        stale.add(|| {
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
                .iter()
                .find(|m| slot_of(&m.id) == Some(*y))
                .map_or("absent".to_string(), |m| m.state.to_string());
            missing.add(|| format!("n{} has n{y} {state}", v.slot));
        }
        let cat = catalog(v.members.iter());
        match &first_catalog {
            None => first_catalog = Some((v.slot, cat)),
            Some((first, c)) => {
                if *c != cat {
                    catalogs.add(|| format!("n{} vs n{first}", v.slot));
                }
            }
        }
    }
    let mut out = Vec::new();
    missing.report(&mut out);
    extra.report(&mut out);
    stale.report(&mut out);
    catalogs.report(&mut out);
    out
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
        let good = |slot| NodeView {
            slot,
            members: vec![
                m(0, 1, MemberState::Alive, 1),
                m(1, 0, MemberState::Alive, 0),
                m(2, 0, MemberState::Dead, 0),
            ],
        };
        assert!(agreement(&[good(0), good(1)], &live).is_empty());

        let mut bad = good(1);
        bad.members[0].incarnation = 0;
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("incarnation")), "{v:?}");

        let mut bad = good(1);
        bad.members[2].state = MemberState::Alive;
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("not live")), "{v:?}");

        let mut bad = good(1);
        bad.members[0].state = MemberState::Suspect;
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("not listed alive")), "{v:?}");

        let mut bad = good(1);
        bad.members[0].services = ServiceSet::default();
        let v = agreement(&[good(0), bad], &live);
        assert!(v.iter().any(|s| s.contains("catalog")), "{v:?}");
    }
}
