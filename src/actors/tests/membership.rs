use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use super::{addr, id, member};
use crate::actors::membership::{Membership, MembershipSettings};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::wire::DigestEntry;
use crate::protocol::wire::Msg;
use crate::protocol::{Member, MemberState, NodeId};
use crate::snapshot::SnapshotRx;
use crate::testkit::{recorder, settle, Log};

struct Fixture {
    ms: Addr<Membership>,
    spreads: Log<Spread>,
    sends: Log<Send>,
    events: Log<MemberEvent>,
    confirms: Log<Confirmation>,
    snapshots: crate::snapshot::SnapshotRx,
    metrics: Arc<Metrics>,
    snap: SnapshotRx,
}

/// Answers every `ProbeOwnName` the same way, and counts them.
struct NameProbe(bool, Arc<std::sync::atomic::AtomicU32>);

impl Actor for NameProbe {
    type Context = Context<Self>;
}

impl Handler<ProbeOwnName> for NameProbe {
    type Result = bool;
    fn handle(&mut self, _: ProbeOwnName, _: &mut Context<Self>) -> bool {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0
    }
}

async fn start() -> Fixture {
    start_with(None).await
}

async fn start_with(probe: Option<Recipient<ProbeOwnName>>) -> Fixture {
    let (spread, spreads) = recorder::<Spread>();
    let (send, sends) = recorder::<Send>();
    let (ev, events) = recorder::<MemberEvent>();
    let (confirm, confirms) = recorder::<Confirmation>();
    let s = MembershipSettings {
        me: member("me", 1000, 0, MemberState::Alive),
        room: 1200,
        max_members: 100,
        dead_reclaim: Duration::from_secs(60),
        reconnect_timeout: Duration::from_secs(3600),
        exit_on_name_taken: false,
        stats_interval: Duration::from_secs(3600),
        seed: 1,
    };
    let metrics = Arc::new(Metrics::default());
    let mut ms = Membership::new(s, spread, send, confirm, metrics.clone());
    if let Some(p) = probe {
        ms = ms.with_name_probe(p);
    }
    let snapshots = ms.snapshots();
    let snap = ms.snapshots();
    let ms = ms.start();
    ms.do_send(Subscribe(ev));
    settle(1).await;
    spreads.take(); // our own record, spread at start
    Fixture {
        ms,
        spreads,
        sends,
        events,
        metrics,
        snap,
        confirms,
        snapshots,
    }
}

fn rumor(m: Member, by: Option<&str>) -> Rumors {
    Rumors {
        from: addr(5000),
        updates: vec![(m, by.map(id))],
        via_sync: false,
        sender: id("p"),
    }
}

fn kinds(log: &Log<MemberEvent>) -> Vec<(EventKind, String)> {
    log.take()
        .into_iter()
        .map(|e| (e.kind, e.member.id.to_string()))
        .collect()
}

fn decoded(sends: Vec<Send>) -> Vec<Msg> {
    sends
        .iter()
        .flat_map(|s| {
            s.msgs
                .iter()
                .map(|m| rmp_serde::from_slice::<Msg>(m).unwrap())
        })
        .collect()
}

#[actix::test]
async fn refutes_a_suspicion_about_itself() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(
        member("me", 1000, 0, MemberState::Suspect),
        Some("x"),
    ));
    settle(1).await;
    let spread = f.spreads.take();
    assert_eq!(spread.len(), 1);
    assert_eq!(
        (spread[0].member.state, spread[0].member.incarnation),
        (MemberState::Alive, 1)
    );
    assert_eq!(
        kinds(&f.events),
        vec![(EventKind::SelfRefuted, "me".into())]
    );
    let snap = f.snapshots.borrow().clone();
    assert_eq!(snap.refutations, 1, "published for the failure detector");
    assert_eq!(snap.own().unwrap().incarnation, 1);
    // A rumor of our death at an old incarnation is stale: nothing to do.
    f.ms.do_send(rumor(member("me", 1000, 0, MemberState::Dead), None));
    settle(1).await;
    assert!(f.spreads.is_empty());
}

#[actix::test]
async fn a_restarted_node_rises_above_its_previous_life() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("me", 1000, 7, MemberState::Left), None));
    settle(1).await;
    let spread = f.spreads.take();
    assert_eq!(
        (spread[0].member.state, spread[0].member.incarnation),
        (MemberState::Alive, 8)
    );
}

#[actix::test]
async fn stale_gossip_cannot_resurrect_the_dead() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 3, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 3, MemberState::Dead), Some("x")));
    settle(1).await;
    assert_eq!(
        kinds(&f.events),
        vec![
            (EventKind::Joined, "a".into()),
            (EventKind::Failed, "a".into())
        ]
    );
    f.spreads.take();
    f.ms.do_send(rumor(member("a", 2000, 3, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 2, MemberState::Alive), None));
    settle(1).await;
    assert!(f.events.is_empty(), "old news changes nothing");
    assert!(f.spreads.is_empty(), "and is not passed on");
    f.ms.do_send(rumor(member("a", 2000, 4, MemberState::Alive), None));
    settle(1).await;
    assert_eq!(kinds(&f.events), vec![(EventKind::Joined, "a".into())]);
    assert_eq!(f.spreads.len(), 1);
}

#[actix::test]
async fn a_second_accuser_is_a_confirmation() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Suspect), Some("x")));
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Suspect), Some("y")));
    settle(1).await;
    let evs = f.events.take();
    let got: Vec<_> = evs.iter().map(|e| (e.kind, e.by.clone())).collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Joined, None),
            (EventKind::Suspected, Some(id("x"))),
            (EventKind::Confirmed, Some(id("y")))
        ]
    );
    // The snapshot names the first accuser; the failure detector gets the
    // confirmation as evidence.
    let snap = f.snapshots.borrow().clone();
    assert_eq!(snap.accusers.get(&id("a")), Some(&id("x")));
    let c = f.confirms.take();
    assert_eq!((c.len(), c[0].by.clone()), (1, id("y")));
    // Refuted: the accuser is forgotten with the suspicion.
    f.ms.do_send(rumor(member("a", 2000, 1, MemberState::Alive), None));
    settle(1).await;
    let snap = f.snapshots.borrow().clone();
    assert!(snap.accusers.is_empty());
    assert!(snap.is_live(&id("a")) && snap.peer_count() == 1);
}

#[actix::test]
async fn accusations_apply_only_to_the_incarnation_probed() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 2, MemberState::Alive), None));
    settle(1).await;
    f.events.take();
    f.spreads.take();
    f.ms.do_send(Accuse {
        id: id("a"),
        incarnation: 1,
        state: MemberState::Suspect,
    });
    f.ms.do_send(Accuse {
        id: id("a"),
        incarnation: 2,
        state: MemberState::Dead,
    });
    settle(1).await;
    assert!(
        f.events.is_empty(),
        "stale or out-of-order verdicts are ignored"
    );
    f.ms.do_send(Accuse {
        id: id("a"),
        incarnation: 2,
        state: MemberState::Suspect,
    });
    settle(1).await;
    let e = f.events.take();
    assert_eq!(
        (e[0].kind, e[0].by.clone()),
        (EventKind::Suspected, Some(id("me")))
    );
    assert_eq!(f.spreads.take()[0].member.state, MemberState::Suspect);
}

#[actix::test]
async fn push_pull_exchanges_digests_then_records() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 1, MemberState::Alive), None));
    settle(1).await;
    // A peer whose view differs: we answer with our digest.
    f.ms.do_send(SyncMsg {
        from: addr(3000),
        sender: id("p"),
        msg: Msg::SyncStart {
            hash: 12345,
            join: false,
        },
    });
    settle(1).await;
    let msgs = decoded(f.sends.take());
    let Msg::SyncDigest { pages, entries, .. } = &msgs[0] else {
        panic!("{msgs:?}")
    };
    assert_eq!((*pages, entries.len()), (1, 2));
    // Its digest: it knows "b" (we don't) and an older "a": we send "a" and
    // "me" (which it lacks) and ask for "b".
    let digest = vec![
        crate::protocol::view::digest_entry(&member("a", 2000, 0, MemberState::Alive)),
        crate::protocol::view::digest_entry(&member("b", 2001, 0, MemberState::Alive)),
    ];
    f.ms.do_send(SyncMsg {
        from: addr(3000),
        sender: id("p"),
        msg: Msg::SyncDigest {
            round: 1,
            page: 0,
            pages: 1,
            entries: digest,
        },
    });
    settle(1).await;
    let msgs = decoded(f.sends.take());
    let states: Vec<String> = msgs
        .iter()
        .filter_map(|m| {
            if let Msg::State { member } = m {
                Some(member.id.to_string())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(states, vec!["a", "me"]);
    assert!(msgs.contains(&Msg::SyncWant { ids: vec![id("b")] }));
    // Agreeing views cost nothing beyond the hash.
    let our_hash = {
        f.ms.do_send(StartSync {
            peer: addr(3000),
            join: false,
            retry: false,
        });
        settle(1).await;
        match &decoded(f.sends.take())[0] {
            Msg::SyncStart { hash, .. } => *hash,
            m => panic!("{m:?}"),
        }
    };
    f.ms.do_send(SyncMsg {
        from: addr(3000),
        sender: id("p"),
        msg: Msg::SyncStart {
            hash: our_hash,
            join: false,
        },
    });
    settle(1).await;
    assert!(f.sends.is_empty());
}

/// Each digest page is acted on as it arrives: with the middle page of three
/// lost, what the other two say is still fetched and sent, and nothing is
/// said about the lost page's ids.
#[actix::test]
async fn digest_pages_are_acted_on_without_waiting_for_a_lost_one() {
    tokio::time::pause();
    let f = start().await;
    for (name, port) in [("b", 2001), ("d", 2003), ("f", 2005)] {
        f.ms.do_send(rumor(member(name, port, 0, MemberState::Alive), None));
    }
    settle(1).await;
    f.sends.take();
    let entry = |name: &str, port: u16, inc: u64| {
        crate::protocol::view::digest_entry(&member(name, port, inc, MemberState::Alive))
    };
    // The peer's digest in id order: [a, b] [c, d] [e, me]; page 1 is lost.
    let pages = [
        vec![entry("a", 2000, 0), entry("b", 2001, 1)],
        vec![entry("e", 2004, 0), entry("me", 1000, 0)],
    ];
    for (page, entries) in [(0u16, &pages[0]), (2u16, &pages[1])] {
        f.ms.do_send(SyncMsg {
            from: addr(3000),
            sender: id("p"),
            msg: Msg::SyncDigest {
                round: 7,
                page,
                pages: 3,
                entries: entries.clone(),
            },
        });
    }
    settle(1).await;
    let msgs = decoded(f.sends.take());
    let wants: Vec<NodeId> = msgs
        .iter()
        .filter_map(|m| match m {
            Msg::SyncWant { ids } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let states: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            Msg::State { member } => Some(member.id.to_string()),
            _ => None,
        })
        .collect();
    // Page 0: "a" is new to us, "b" newer there. Page 2 covers "e" onwards:
    // "f" (ours, not listed) is sent. "d" sat in the lost page: nothing.
    assert_eq!(wants, vec![id("a"), id("b"), id("e")]);
    assert_eq!(states, vec!["f"]);
}

#[actix::test]
async fn a_join_request_gets_every_record_and_sync_news_is_not_regossiped() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(Rumors {
        from: addr(3000),
        updates: vec![(member("a", 2000, 0, MemberState::Alive), None)],
        via_sync: true,
        sender: id("p"),
    });
    settle(1).await;
    assert_eq!(kinds(&f.events), vec![(EventKind::Joined, "a".into())]);
    assert!(
        f.spreads.is_empty(),
        "a record learned by push-pull about a new member is not re-gossiped"
    );
    f.ms.do_send(SyncMsg {
        from: addr(3001),
        sender: id("new"),
        msg: Msg::SyncStart {
            hash: 0,
            join: true,
        },
    });
    settle(1).await;
    let n = decoded(f.sends.take())
        .iter()
        .filter(|m| matches!(m, Msg::State { .. }))
        .count();
    assert_eq!(n, 2);
}

#[actix::test]
async fn leaving_marks_us_left_and_stops_refuting() {
    tokio::time::pause();
    let f = start().await;
    let rec = f.ms.send(LeaveCluster).await.unwrap();
    assert_eq!((rec.state, rec.incarnation), (MemberState::Left, 1));
    assert_eq!(f.spreads.take()[0].member.state, MemberState::Left);
    f.ms.do_send(rumor(member("me", 1000, 1, MemberState::Dead), None));
    settle(1).await;
    assert!(f.spreads.is_empty());
}

#[actix::test]
async fn tombstones_are_forgotten_after_dead_reclaim() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Dead), None));
    settle(59_000).await;
    assert_eq!(f.ms.send(GetMembers).await.unwrap().len(), 2);
    settle(2_000).await;
    assert_eq!(f.ms.send(GetMembers).await.unwrap().len(), 1);
    assert!(f
        .events
        .all()
        .iter()
        .any(|e| e.kind == EventKind::Reclaimed));
}

#[actix::test]
async fn a_lie_at_the_top_of_the_incarnation_range_cannot_wedge_us() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(
        member("me", 1000, u64::MAX, MemberState::Dead),
        Some("liar"),
    ));
    f.ms.do_send(rumor(member("a", 2000, u64::MAX, MemberState::Alive), None));
    settle(1).await;
    assert!(f.spreads.is_empty() && f.events.is_empty(), "both refused");
    let own =
        f.ms.send(GetMembers)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.id == id("me"))
            .unwrap();
    assert_eq!((own.state, own.incarnation), (MemberState::Alive, 0));
    // An ordinary lie is refuted as usual.
    f.ms.do_send(rumor(
        member("me", 1000, 3, MemberState::Dead),
        Some("liar"),
    ));
    settle(1).await;
    assert_eq!(f.spreads.take()[0].member.incarnation, 4);
}

#[actix::test]
async fn a_joiner_announces_itself_and_its_own_record_is_spread() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(StartSync {
        peer: addr(3000),
        join: true,
        retry: false,
    });
    settle(1).await;
    let msgs = decoded(f.sends.take());
    assert!(matches!(msgs[0], Msg::SyncStart { join: true, .. }));
    assert!(
        matches!(&msgs[1], Msg::Update { member, .. } if member.id == id("me")),
        "{msgs:?}"
    );
    // A record that came by push-pull about its own sender is news to spread.
    f.ms.do_send(Rumors {
        from: addr(3000),
        updates: vec![(member("p", 3000, 0, MemberState::Alive), None)],
        via_sync: true,
        sender: id("p"),
    });
    settle(1).await;
    assert_eq!(f.spreads.take().len(), 1);
}

#[actix::test]
async fn a_refutation_goes_straight_to_its_accuser_and_every_member() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("b", 2001, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("c", 2002, 0, MemberState::Dead), None));
    settle(1).await;
    f.sends.take();
    f.ms.do_send(rumor(
        member("me", 1000, 0, MemberState::Suspect),
        Some("a"),
    ));
    settle(1).await;
    let to: Vec<_> = f.sends.take().into_iter().map(|s| s.to).collect();
    assert_eq!(
        to[0],
        addr(2000),
        "the accuser first: its timer runs out first"
    );
    let mut rest = to[1..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        vec![addr(2000), addr(2001), addr(5000)],
        "then live members (not the dead one), and the messenger, which we do not hold live"
    );
}

#[actix::test]
async fn a_want_list_naming_one_member_many_times_gets_one_record() {
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 1, MemberState::Alive), None));
    settle(1).await;
    f.sends.take();
    f.ms.do_send(SyncMsg {
        from: addr(5000),
        sender: id("p"),
        msg: Msg::SyncWant {
            ids: vec![id("a"); 20],
        },
    });
    settle(1).await;
    let states = decoded(f.sends.take())
        .into_iter()
        .filter(|m| matches!(m, Msg::State { .. }))
        .count();
    assert_eq!(states, 1);
}

fn sync_rumor(m: Member) -> Rumors {
    Rumors {
        from: addr(3000),
        updates: vec![(m, None)],
        via_sync: true,
        sender: id("p"),
    }
}

/// A crashed member, declared dead and then forgotten (its tombstone
/// reclaimed), is not brought back by stale bad news, by rumor or by
/// push-pull: one crash, one `failed` event, one count.
#[actix::test]
async fn a_reclaimed_tombstone_stays_gone() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 3, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 3, MemberState::Dead), Some("x")));
    settle(61_000).await;
    assert_eq!(f.ms.send(GetMembers).await.unwrap().len(), 1, "reclaimed");
    for state in [MemberState::Suspect, MemberState::Dead, MemberState::Left] {
        f.ms.do_send(rumor(member("a", 2000, 3, state), Some("x")));
        f.ms.do_send(sync_rumor(member("a", 2000, 3, state)));
        // Never known at all: the same rule.
        f.ms.do_send(rumor(member("b", 2001, 0, state), Some("x")));
    }
    settle(1).await;
    assert_eq!(f.ms.send(GetMembers).await.unwrap().len(), 1);
    let failed = f
        .events
        .all()
        .iter()
        .filter(|e| e.kind == EventKind::Failed)
        .count();
    assert_eq!(failed, 1);
    assert_eq!(Metrics::get(&f.metrics.members_failed), 1);
    assert_eq!(Metrics::get(&f.metrics.stale_ignored), 9);
}

#[actix::test]
async fn push_pull_does_not_ask_for_or_send_tombstones_the_other_lacks() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("c", 2002, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("c", 2002, 0, MemberState::Dead), None));
    settle(1).await;
    f.sends.take();
    let entry = |id: &str, state| DigestEntry {
        id: NodeId::new(id),
        incarnation: 0,
        state,
        services_version: 0,
    };
    f.ms.do_send(SyncMsg {
        from: addr(3000),
        sender: id("p"),
        msg: Msg::SyncDigest {
            round: 1,
            page: 0,
            pages: 1,
            entries: vec![
                entry("me", MemberState::Alive),
                entry("x", MemberState::Dead),
                entry("y", MemberState::Alive),
                entry("z", MemberState::Left),
            ],
        },
    });
    settle(1).await;
    let msgs = decoded(f.sends.take());
    let wanted: Vec<NodeId> = msgs
        .iter()
        .filter_map(|m| match m {
            Msg::SyncWant { ids } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(wanted, vec![NodeId::new("y")]);
    assert!(
        !msgs.iter().any(|m| matches!(m, Msg::State { .. })),
        "our tombstone of c is not pushed to a peer that lacks it: {msgs:?}"
    );
}

/// The reconnect book keeps a failed member's address after its tombstone
/// is reclaimed, in the published snapshot; a record of it alive learned by
/// push-pull (the healed side of a partition) is spread to the rest of ours.
#[actix::test]
async fn the_reconnect_book_outlives_the_tombstone_and_a_return_is_spread() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Dead), Some("x")));
    // Left members are not reconnected to.
    f.ms.do_send(rumor(member("l", 2005, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("l", 2005, 0, MemberState::Left), None));
    settle(61_000).await;
    let snap = f.snap.borrow().clone();
    assert!(snap.table.get(&id("a")).is_none(), "tombstone reclaimed");
    let booked: Vec<_> = snap
        .reconnect
        .iter()
        .map(|(i, b)| (i.clone(), b.addr))
        .collect();
    assert_eq!(booked, vec![(id("a"), addr(2000))]);
    f.spreads.take();
    f.ms.do_send(sync_rumor(member("a", 2000, 0, MemberState::Alive)));
    settle(1).await;
    let spread: Vec<NodeId> = f.spreads.take().into_iter().map(|s| s.member.id).collect();
    assert_eq!(spread, vec![id("a")]);
    assert!(
        f.snap.borrow().reconnect.is_empty(),
        "back, so off the book"
    );
    // A stranger learned by push-pull is still not re-gossiped.
    f.ms.do_send(sync_rumor(member("s", 2009, 0, MemberState::Alive)));
    settle(1).await;
    assert!(f.spreads.is_empty());
}

#[actix::test]
async fn the_reconnect_book_forgets_after_reconnect_timeout() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Dead), Some("x")));
    settle(3_000_000).await;
    assert_eq!(f.snap.borrow().reconnect.len(), 1);
    settle(700_000).await;
    assert!(f.snap.borrow().reconnect.is_empty());
}

async fn with_name_probe(answers: bool) -> (Fixture, Arc<std::sync::atomic::AtomicU32>) {
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let probe = NameProbe(answers, n.clone()).start();
    (start_with(Some(probe.recipient())).await, n)
}

fn own_spreads(f: &Fixture) -> Vec<(u64, std::net::SocketAddr)> {
    f.spreads
        .take()
        .into_iter()
        .filter(|s| s.member.id == id("me"))
        .map(|s| (s.member.incarnation, s.member.addr))
        .collect()
}

/// Issue 12: two processes with one NODE_ID used to outbid each other
/// forever. The holder (a member for longer than the newcomer window) keeps
/// the name without raising its incarnation once the other answers.
#[actix::test]
async fn a_live_holder_of_our_name_is_not_outbid() {
    tokio::time::pause();
    let (f, probes) = with_name_probe(true).await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    settle(120_000).await;
    f.spreads.take();
    for inc in [0, 0, 1, 1] {
        f.ms.do_send(rumor(member("me", 3000, inc, MemberState::Alive), None));
        settle(2_000).await;
    }
    assert_eq!(own_spreads(&f), vec![], "no incarnation war");
    assert_eq!(
        probes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "probed once"
    );
    let conflicts: Vec<_> = f
        .events
        .all()
        .into_iter()
        .filter(|e| e.kind == EventKind::NameConflict)
        .map(|e| e.member.addr)
        .collect();
    assert_eq!(conflicts, vec![addr(3000)]);
    assert_eq!(Metrics::get(&f.metrics.name_conflicts), 1);
    let own = f.snap.borrow().own().cloned().unwrap();
    assert_eq!((own.incarnation, own.addr), (0, addr(1000)));
    // Once the newcomer is gone, being suspected at its address is refuted
    // as usual, and our address comes back.
    f.ms.do_send(rumor(
        member("me", 3000, 1, MemberState::Suspect),
        Some("a"),
    ));
    settle(1).await;
    assert_eq!(own_spreads(&f), vec![(2, addr(1000))]);
}

/// The newcomer (not a member yet, or for less than the window) gives the
/// name up: the `name_conflict` event, and the agent exits 2.
#[actix::test]
async fn a_newcomer_finding_a_live_holder_gives_the_name_up() {
    tokio::time::pause();
    let (f, _) = with_name_probe(true).await;
    f.ms.do_send(Rumors {
        from: addr(2000),
        updates: vec![
            (member("a", 2000, 0, MemberState::Alive), None),
            (member("me", 3000, 4, MemberState::Alive), None),
        ],
        via_sync: true,
        sender: id("a"),
    });
    settle(2_000).await;
    assert_eq!(own_spreads(&f), vec![]);
    assert!(f
        .events
        .all()
        .iter()
        .any(|e| e.kind == EventKind::NameConflict));
}

/// Nothing answers at the other address: a previous life of ours (a
/// container restarted with a new IP). We take the name over.
#[actix::test]
async fn a_silent_address_with_our_name_is_a_previous_life_taken_over() {
    tokio::time::pause();
    let (f, _) = with_name_probe(false).await;
    f.ms.do_send(rumor(member("me", 3000, 4, MemberState::Alive), None));
    settle(2_000).await;
    assert_eq!(own_spreads(&f), vec![(5, addr(1000))]);
    assert!(!f
        .events
        .all()
        .iter()
        .any(|e| e.kind == EventKind::NameConflict));
}

/// A restart on the same address rejoins at once: no probe needed.
#[actix::test]
async fn a_previous_life_at_our_own_address_is_outbid_at_once() {
    tokio::time::pause();
    let (f, probes) = with_name_probe(true).await;
    f.ms.do_send(rumor(member("me", 1000, 7, MemberState::Alive), None));
    settle(1).await;
    assert_eq!(own_spreads(&f), vec![(8, addr(1000))]);
    assert_eq!(probes.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// An accuser that missed our refutation and pings us again with its
/// suspicion (its buddy message) gets our current record straight back.
/// The same stale suspicion relayed by another node gets no answer: the
/// relay is not the one whose timer is running.
#[actix::test]
async fn a_stale_accusation_from_its_accuser_gets_our_record_back() {
    tokio::time::pause();
    let f = start().await;
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("b", 2001, 0, MemberState::Alive), None));
    settle(1).await;
    f.ms.do_send(rumor(
        member("me", 1000, 0, MemberState::Suspect),
        Some("a"),
    ));
    settle(1).await;
    f.sends.take();
    let stale = |sender: &str| Rumors {
        from: addr(2000),
        updates: vec![(member("me", 1000, 0, MemberState::Suspect), Some(id("a")))],
        via_sync: false,
        sender: id(sender),
    };
    f.ms.do_send(stale("b"));
    settle(1).await;
    assert!(f.sends.take().is_empty(), "relayed by b: no answer");
    f.ms.do_send(stale("a"));
    settle(1).await;
    let sends = f.sends.take();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].to, addr(2000));
    match &decoded(sends)[0] {
        Msg::Update { member, .. } => {
            assert_eq!(member.id, id("me"));
            assert_eq!((member.state, member.incarnation), (MemberState::Alive, 1));
        }
        other => panic!("{other:?}"),
    }
}

/// "a", "b" and "c", alive at ports 2000-2002.
async fn three_live_members(f: &Fixture) {
    f.ms.do_send(Rumors {
        from: addr(2000),
        updates: ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| (member(n, 2000 + i as u16, 0, MemberState::Alive), None))
            .collect(),
        via_sync: false,
        sender: id("a"),
    });
    settle(1).await;
}

/// "a" (port 2000), known and then declared dead; nothing sent left over.
async fn hold_a_dead(f: &Fixture) {
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Alive), None));
    f.ms.do_send(rumor(member("a", 2000, 0, MemberState::Dead), None));
    settle(1).await;
    f.sends.take();
}

/// The sync starts among `sends`, by address.
fn sync_starts(sends: Vec<Send>) -> Vec<std::net::SocketAddr> {
    sends
        .into_iter()
        .filter(|s| {
            s.msgs
                .iter()
                .any(|m| matches!(rmp_serde::from_slice::<Msg>(m), Ok(Msg::SyncStart { .. })))
        })
        .map(|s| s.to)
        .collect()
}

/// Starts a periodic (retried) push-pull with `peer` and checks that its
/// start went there.
async fn start_retried_sync(f: &Fixture, peer: std::net::SocketAddr) {
    f.ms.do_send(StartSync {
        peer,
        join: false,
        retry: true,
    });
    settle(1).await;
    assert_eq!(sync_starts(f.sends.take()), vec![peer]);
}

/// An exchange whose digest came in part (one of two pages lost) is not
/// complete: a second later it starts again with another member, since the
/// missing page may hold what we lack.
#[actix::test]
async fn a_push_pull_with_a_lost_digest_page_starts_again_elsewhere() {
    tokio::time::pause();
    let f = start().await;
    three_live_members(&f).await;
    f.sends.take();
    start_retried_sync(&f, addr(2001)).await;
    let entry = crate::protocol::view::digest_entry(&member("b", 2001, 0, MemberState::Alive));
    f.ms.do_send(SyncMsg {
        from: addr(2001),
        sender: id("b"),
        msg: Msg::SyncDigest {
            round: 3,
            page: 1,
            pages: 2,
            entries: vec![entry],
        },
    });
    settle(1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    settle(1).await;
    let again = sync_starts(f.sends.take());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0], addr(2001));
}

/// The ids of the wants sent to `to`.
fn wants_to(sends: &[Send], to: std::net::SocketAddr) -> Vec<NodeId> {
    sends
        .iter()
        .filter(|s| s.to == to)
        .flat_map(|s| s.msgs.iter())
        .filter_map(|m| match rmp_serde::from_slice::<Msg>(m) {
            Ok(Msg::SyncWant { ids }) => Some(ids),
            _ => None,
        })
        .flatten()
        .collect()
}

/// A periodic push-pull whose peer sends no digest page goes to another
/// live member a second later, up to three exchanges in all; one whose
/// digest asks for nothing is not repeated, and one whose wanted records
/// do not come asks the same member for them again.
#[actix::test]
async fn an_unanswered_push_pull_goes_to_another_member() {
    tokio::time::pause();
    let f = start().await;
    three_live_members(&f).await;
    f.sends.take();
    start_retried_sync(&f, addr(2000)).await;
    let mut tried = vec![addr(2000)];
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        settle(1).await;
        let next = sync_starts(f.sends.take());
        assert_eq!(next.len(), 1, "one retry per second");
        assert_ne!(Some(&next[0]), tried.last(), "another member");
        assert!((2000..2003).contains(&next[0].port()));
        tried.push(next[0]);
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    settle(1).await;
    assert!(
        sync_starts(f.sends.take()).is_empty(),
        "three exchanges in all"
    );
    assert_eq!(Metrics::get(&f.metrics.sync_retries), 2);

    // Answered with nothing to fetch (it knows less than we do): done.
    let digest = |members: &[Member]| {
        members
            .iter()
            .map(crate::protocol::view::digest_entry)
            .collect::<Vec<DigestEntry>>()
    };
    for (round, newer, answered) in [(7, false, false), (8, true, false), (9, true, true)] {
        start_retried_sync(&f, addr(2001)).await;
        let inc = if newer { u64::from(round) } else { 0 };
        f.ms.do_send(SyncMsg {
            from: addr(2001),
            sender: id("b"),
            msg: Msg::SyncDigest {
                round,
                page: 0,
                pages: 1,
                entries: digest(&[member("b", 2001, inc, MemberState::Alive)]),
            },
        });
        settle(1).await;
        let first = f.sends.take();
        assert_eq!(wants_to(&first, addr(2001)).len(), usize::from(newer));
        if answered {
            f.ms.do_send(Rumors {
                from: addr(2001),
                updates: vec![(member("b", 2001, inc, MemberState::Alive), None)],
                via_sync: true,
                sender: id("b"),
            });
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        settle(1).await;
        let sent = f.sends.take();
        let asked_again = wants_to(&sent, addr(2001)) == vec![id("b")];
        assert_eq!(asked_again, newer && !answered, "round {round}: {sent:?}");
        assert!(
            sync_starts(sent).is_empty(),
            "round {round}: no new exchange"
        );
        tokio::time::sleep(Duration::from_millis(3000)).await;
        settle(1).await;
        f.sends.take();
    }
    // Not for exchanges that name their peer on purpose.
    f.ms.do_send(StartSync {
        peer: addr(2002),
        join: false,
        retry: false,
    });
    tokio::time::sleep(Duration::from_millis(3000)).await;
    settle(1).await;
    assert_eq!(sync_starts(f.sends.take()), vec![addr(2002)]);
}

/// The updates among `sends` to `to`.
fn updates_to(sends: &[Send], to: u16) -> Vec<Member> {
    sends
        .iter()
        .filter(|s| s.to == addr(to))
        .flat_map(|s| s.msgs.iter())
        .filter_map(|m| match rmp_serde::from_slice::<Msg>(m) {
            Ok(Msg::Update { member, .. }) => Some(member),
            _ => None,
        })
        .collect()
}

/// After a partition heals, nothing would tell a member that we hold it
/// dead: a datagram from it gets its dead record back, once a second.
#[actix::test]
async fn a_member_held_dead_that_sends_us_something_is_told() {
    tokio::time::pause();
    let f = start().await;
    hold_a_dead(&f).await;
    let from_a = |m: Member| Rumors {
        from: addr(2000),
        updates: vec![(m, None)],
        via_sync: false,
        sender: id("a"),
    };
    // A rumor about someone else, from "a".
    f.ms.do_send(from_a(member("b", 2001, 0, MemberState::Alive)));
    settle(1).await;
    let told = updates_to(&f.sends.take(), 2000);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (told[0].id.as_str(), told[0].state),
        ("a", MemberState::Dead)
    );
    // Again at once: not again.
    f.ms.do_send(from_a(member("b", 2001, 0, MemberState::Alive)));
    settle(1).await;
    assert!(updates_to(&f.sends.take(), 2000).is_empty());
    // A second later, still dead: told again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.ms.do_send(from_a(member("b", 2001, 0, MemberState::Alive)));
    settle(1).await;
    assert_eq!(updates_to(&f.sends.take(), 2000).len(), 1);
    // Its refutation: alive again, nothing more to tell.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    f.ms.do_send(from_a(member("a", 2000, 1, MemberState::Alive)));
    settle(1).await;
    assert!(updates_to(&f.sends.take(), 2000).is_empty());
}

/// The other side of it: told that we are dead by a member we hold dead
/// (each side of a healed partition holds the other dead), we refute, and
/// the refutation goes straight back to the one who told us, not only to
/// the members we hold live.
#[actix::test]
async fn told_we_are_dead_by_a_member_we_hold_dead_we_answer_it() {
    tokio::time::pause();
    let f = start().await;
    hold_a_dead(&f).await;
    f.ms.do_send(Rumors {
        from: addr(2000),
        updates: vec![(member("me", 1000, 0, MemberState::Dead), None)],
        via_sync: false,
        sender: id("a"),
    });
    settle(1).await;
    let back = updates_to(&f.sends.take(), 2000);
    assert!(
        back.iter()
            .any(|m| m.id == id("me") && m.state == MemberState::Alive && m.incarnation == 1),
        "{back:?}"
    );
    assert!(
        back.iter()
            .any(|m| m.id == id("a") && m.state == MemberState::Dead),
        "and it is told it is dead: {back:?}"
    );
}

/// A retry timer belongs to its exchange: the timer of an answered exchange
/// does not cut short the wait of the next one.
#[actix::test]
async fn an_answered_exchange_timer_does_not_hurry_the_next_one() {
    tokio::time::pause();
    let f = start().await;
    three_live_members(&f).await;
    let sync = |peer: u16| StartSync {
        peer: addr(peer),
        join: false,
        retry: true,
    };
    f.ms.do_send(sync(2000));
    settle(1).await;
    // Answered at once, with nothing to fetch.
    f.ms.do_send(SyncMsg {
        from: addr(2000),
        sender: id("a"),
        msg: Msg::SyncDigest {
            round: 1,
            page: 0,
            pages: 1,
            entries: vec![crate::protocol::view::digest_entry(&member(
                "a",
                2000,
                0,
                MemberState::Alive,
            ))],
        },
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.ms.do_send(sync(2001)); // the next one, half a second later, unanswered
    settle(1).await;
    f.sends.take();
    tokio::time::sleep(Duration::from_millis(600)).await; // the first one's timer
    settle(1).await;
    assert!(
        sync_starts(f.sends.take()).is_empty(),
        "not retried after 0.6 s"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    settle(1).await;
    assert_eq!(sync_starts(f.sends.take()).len(), 1, "retried after 1.1 s");
}
