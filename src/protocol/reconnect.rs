//! Reaching lost members again: which failed member to try, and which seeds
//! are missing, decided from the published snapshot (the table and the
//! reconnect book, see `View::reconnect_book`). The gossip scheduler calls
//! these on its timers.

use imbl::OrdMap;
use rand::Rng;
use std::net::SocketAddr;

use super::member::NodeId;
use super::view::{Failed, Table};

/// One reconnection attempt, or none this time. serf's rule
/// (`serf.reconnect`): with probability booked / alive (capped at 1), one
/// booked member chosen at random. Across the cluster that is about one
/// attempt per failed member per interval, whatever the cluster's size. A
/// member that is live again in the table is not tried (it is no longer
/// lost; the book forgets it as soon as its record says so anyway).
pub fn pick(
    book: &OrdMap<NodeId, Failed>,
    table: &Table,
    rng: &mut impl Rng,
) -> Option<(NodeId, SocketAddr)> {
    let lost: Vec<(&NodeId, &Failed)> = book
        .iter()
        .filter(|(id, _)| !table.get(*id).is_some_and(|m| m.state.is_live()))
        .collect();
    if lost.is_empty() {
        return None;
    }
    // Self is always alive in its own table.
    let alive = table.values().filter(|m| m.state.is_live()).count().max(1);
    let chance = lost.len() as f64 / alive as f64;
    if rng.gen::<f64>() >= chance {
        return None;
    }
    let (id, f) = lost[rng.gen_range(0..lost.len())];
    Some((id.clone(), f.addr))
}

/// The addresses of members declared dead within `window` before `now` and
/// not live again: gossip rounds still include them for a while (memberlist's
/// `GossipToTheDeadTime`), so that a member wrongly declared dead (the other
/// side of a healed partition) hears it and refutes at once, instead of
/// waiting to be picked by a reconnection or a push-pull.
pub fn recently_failed(
    book: &OrdMap<NodeId, Failed>,
    table: &Table,
    now: tokio::time::Instant,
    window: std::time::Duration,
) -> Vec<SocketAddr> {
    book.iter()
        .filter(|(id, f)| {
            now.saturating_duration_since(f.since) < window
                && !table.get(*id).is_some_and(|m| m.state.is_live())
        })
        .map(|(_, f)| f.addr)
        .collect()
}

/// [`recently_failed`], kept up to date from one book to the next by their
/// diff (`OrdMap::diff` skips the chunks they share) instead of a walk of
/// the whole book with a table lookup per entry. The gossip scheduler asks
/// on every round, and in a partition the book holds half the cluster and
/// changes with every death: the walk was O(N) lookups per round per node.
///
/// It reads no table: `View` keeps a booked member out of the table's live
/// ones (a record that turns live leaves the book, `View::file_in_book`),
/// so the walk's table check never drops anything the book lists, and the
/// answer is the same list in the same (id) order. Only the book is kept
/// between calls: a copy of an older table would cost every node the
/// chunks changed since.
#[derive(Default)]
pub struct RecentlyFailed {
    book: OrdMap<NodeId, Failed>,
    /// Book entries not yet older than the window at the last call.
    within: std::collections::BTreeMap<NodeId, Failed>,
}

impl RecentlyFailed {
    /// The addresses `recently_failed(book, table, now, window)` returns
    /// for a table consistent with `book`; `now` must not go back between
    /// calls (an entry that aged out is dropped, and comes back only with a
    /// new `since`, which the book's diff shows).
    pub fn update(
        &mut self,
        book: &OrdMap<NodeId, Failed>,
        now: tokio::time::Instant,
        window: std::time::Duration,
    ) -> Vec<SocketAddr> {
        use imbl::ordmap::DiffItem;
        for d in self.book.diff(book) {
            match d {
                DiffItem::Add(id, f) | DiffItem::Update { new: (id, f), .. } => {
                    self.within.insert(id.clone(), *f);
                }
                DiffItem::Remove(id, _) => {
                    self.within.remove(id);
                }
            }
        }
        self.book = book.clone();
        self.within
            .retain(|_, f| now.saturating_duration_since(f.since) < window);
        self.within.values().map(|f| f.addr).collect()
    }
}

/// The seed addresses that no live member of the table (other than us) is
/// at: the seeds a node must keep trying. Our own address is never missing.
pub fn missing_seeds(
    seeds: &[SocketAddr],
    table: &Table,
    me: &NodeId,
    my_addr: SocketAddr,
) -> Vec<SocketAddr> {
    // The few seeds, looked for in one pass over the table that stops once
    // all are found (the scheduler asks every `seed_timeout`; a set of every
    // live address was a thousand allocations per node each time).
    let mut out: Vec<SocketAddr> = seeds.iter().filter(|a| **a != my_addr).copied().collect();
    out.sort();
    out.dedup();
    let mut found = vec![false; out.len()];
    let mut left = out.len();
    for m in table.values() {
        if left == 0 {
            break;
        }
        if &m.id == me || !m.state.is_live() {
            continue;
        }
        if let Ok(i) = out.binary_search(&m.addr) {
            if !found[i] {
                found[i] = true;
                left -= 1;
            }
        }
    }
    let mut found = found.into_iter();
    out.retain(|_| !found.next().expect("one flag per seed"));
    out
}

/// Whether the table holds a live member other than us.
pub fn knows_someone(table: &Table, me: &NodeId) -> bool {
    table.values().any(|m| &m.id != me && m.state.is_live())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Member, MemberState};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use tokio::time::Instant;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn table(members: &[(&str, u16, MemberState)]) -> Table {
        members
            .iter()
            .map(|(id, p, st)| {
                let m = Member {
                    state: *st,
                    ..Member::new_alive(NodeId::new(id), addr(*p), 0)
                };
                (m.id.clone(), std::sync::Arc::new(m))
            })
            .collect()
    }

    fn book(ids: &[(&str, u16)]) -> OrdMap<NodeId, Failed> {
        let now = Instant::now();
        ids.iter()
            .map(|(id, p)| {
                (
                    NodeId::new(id),
                    Failed {
                        addr: addr(*p),
                        since: now,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn tries_reclaimed_members_at_serfs_rate() {
        use MemberState::*;
        // 4 alive (self included), 2 booked, one of them already reclaimed
        // from the table: each tick tries with probability 2/4.
        let t = table(&[
            ("me", 1, Alive),
            ("a", 2, Alive),
            ("b", 3, Alive),
            ("c", 4, Suspect),
            ("x", 9, Dead),
        ]);
        let b = book(&[("x", 9), ("y", 10)]);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut tried = std::collections::BTreeMap::new();
        let n = 10_000;
        for _ in 0..n {
            if let Some((id, a)) = pick(&b, &t, &mut rng) {
                assert!(id.as_str() == "x" && a == addr(9) || id.as_str() == "y" && a == addr(10));
                *tried.entry(id).or_insert(0) += 1;
            }
        }
        let total: i32 = tried.values().sum();
        assert!((4_500..5_500).contains(&total), "{total} of {n}");
        assert!(tried.values().all(|c| *c > 2_000), "{tried:?}");
    }

    #[test]
    fn always_tries_when_more_are_lost_than_alive_and_never_when_none() {
        use MemberState::*;
        let t = table(&[("me", 1, Alive)]);
        let b = book(&[("x", 9), ("y", 10)]);
        let mut rng = SmallRng::seed_from_u64(2);
        for _ in 0..100 {
            assert!(pick(&b, &t, &mut rng).is_some());
        }
        // A booked member that is back alive is not lost.
        let t = table(&[("me", 1, Alive), ("x", 9, Alive)]);
        let b = book(&[("x", 9)]);
        for _ in 0..100 {
            assert!(pick(&b, &t, &mut rng).is_none());
        }
    }

    #[test]
    fn only_recent_failures_still_get_gossip() {
        use MemberState::*;
        let t0 = Instant::now();
        let mut b = book(&[("x", 9), ("y", 10), ("z", 11)]);
        b.insert(
            NodeId::new("old"),
            Failed {
                addr: addr(12),
                since: t0 - std::time::Duration::from_secs(60),
            },
        );
        let t = table(&[("me", 1, Alive), ("x", 9, Dead), ("z", 11, Alive)]);
        let got = recently_failed(&b, &t, t0, std::time::Duration::from_secs(30));
        assert_eq!(got, vec![addr(9), addr(10)]);
    }

    #[test]
    fn the_incremental_list_is_the_walk() {
        use MemberState::*;
        let w = std::time::Duration::from_secs(30);
        let t0 = Instant::now();
        let dead = |id: &str, p: u16| {
            (
                NodeId::new(id),
                table(&[(id, p, Dead)])[&NodeId::new(id)].clone(),
            )
        };
        let mut r = RecentlyFailed::default();
        // As a view keeps them: booked members are dead or gone from the table.
        let mut b = book(&[("x", 9), ("y", 10)]);
        let mut t = table(&[("me", 1, Alive), ("x", 9, Dead), ("z", 11, Alive)]);
        assert_eq!(r.update(&b, t0, w), recently_failed(&b, &t, t0, w));
        // z dies later, y comes back, time passes.
        let (id, m) = dead("z", 11);
        t.insert(id.clone(), m);
        b.insert(
            id,
            Failed {
                addr: addr(11),
                since: t0 + std::time::Duration::from_secs(20),
            },
        );
        b.remove(&NodeId::new("y"));
        t.insert(
            NodeId::new("y"),
            table(&[("y", 10, Alive)])[&NodeId::new("y")].clone(),
        );
        let t1 = t0 + std::time::Duration::from_secs(25);
        assert_eq!(r.update(&b, t1, w), recently_failed(&b, &t, t1, w));
        let t2 = t0 + std::time::Duration::from_secs(40);
        let got = r.update(&b, t2, w);
        assert_eq!(got, recently_failed(&b, &t, t2, w));
        assert_eq!(got, vec![addr(11)]);
        b.remove(&NodeId::new("z"));
        assert_eq!(r.update(&b, t2, w), Vec::<SocketAddr>::new());
    }

    #[test]
    fn seeds_not_live_are_missing() {
        use MemberState::*;
        let t = table(&[
            ("me", 1, Alive),
            ("a", 2, Alive),
            ("b", 3, Dead),
            ("c", 4, Suspect),
        ]);
        let me = NodeId::new("me");
        let seeds = [addr(1), addr(2), addr(3), addr(4), addr(5), addr(5)];
        assert_eq!(
            missing_seeds(&seeds, &t, &me, addr(1)),
            vec![addr(3), addr(5)]
        );
        assert!(knows_someone(&t, &me));
        assert!(!knows_someone(
            &table(&[("me", 1, Alive), ("b", 3, Dead)]),
            &me
        ));
    }
}
