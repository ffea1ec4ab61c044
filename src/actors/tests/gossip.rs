use actix::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

use super::{addr, id, member};
use crate::actors::gossip::{Gossip, GossipSettings};
use crate::messages::*;
use crate::protocol::wire::Msg;
use crate::protocol::MemberState;
use crate::seeds::LiteralResolver;
use crate::testkit::{recorder, settle, Log, TestTable};

struct Fixture {
    g: Addr<Gossip>,
    t: TestTable,
    rounds: Log<GossipRound>,
    sends: Log<Send>,
    syncs: Log<StartSync>,
    broadcasts: Log<BroadcastOut>,
}

fn start(seeds: &[&str], broadcast: bool) -> Fixture {
    let (round, rounds) = recorder::<GossipRound>();
    let (send, sends) = recorder::<Send>();
    let (sync, syncs) = recorder::<StartSync>();
    let (bc, broadcasts) = recorder::<BroadcastOut>();
    let s = GossipSettings {
        me: id("me"),
        my_addr: addr(1000),
        seeds: seeds.iter().map(|s| s.to_string()).collect(),
        broadcast,
        gossip_interval: Duration::from_millis(200),
        fanout: 3,
        push_pull_interval: Duration::from_secs(30),
        reconnect_interval: Duration::from_secs(5),
        seed_timeout: Duration::from_secs(1),
        join_retry_max: Duration::from_secs(30),
        seed: 9,
    };
    let t = TestTable::new("me");
    let g = Gossip::new(s, t.rx(), Box::new(LiteralResolver), round, send, sync, bc).start();
    Fixture {
        g,
        t,
        rounds,
        sends,
        syncs,
        broadcasts,
    }
}

#[actix::test]
async fn joins_through_every_seed_but_itself_and_retries_with_backoff() {
    tokio::time::pause();
    let mut f = start(
        &["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:1000"],
        false,
    );
    settle(10).await;
    let first: Vec<_> = f
        .syncs
        .take()
        .into_iter()
        .map(|s| (s.peer, s.join))
        .collect();
    assert_eq!(first, vec![(addr(9001), true), (addr(9002), true)]);
    settle(5_000).await;
    let retries = f.syncs.take().len();
    assert!(
        (2..=6).contains(&retries),
        "one or two retries in 5 s, got {retries} syncs"
    );
    // Once a member is known, no more join attempts.
    f.t.set(&member("a", 9001, 0, MemberState::Alive));
    settle(60_000).await;
    assert!(f.syncs.all().iter().all(|s| !s.join));
}

#[actix::test]
async fn broadcasts_when_no_seed_answers() {
    tokio::time::pause();
    let f = start(&[], true);
    settle(1_100).await;
    let b = f.broadcasts.take();
    assert_eq!(b.len(), 1);
    assert_eq!(
        rmp_serde::from_slice::<Msg>(&b[0].msgs[0]).unwrap(),
        Msg::Discover
    );
    // Answers a discovery, and joins whoever answers ours.
    f.g.do_send(DiscoveryMsg {
        from: addr(7947),
        sender: id("other"),
        msg: Msg::Discover,
    });
    f.g.do_send(DiscoveryMsg {
        from: addr(9005),
        sender: id("x"),
        msg: Msg::DiscoverReply,
    });
    settle(1).await;
    let replies = f.sends.take();
    assert_eq!(replies[0].to, addr(7947));
    assert_eq!(
        rmp_serde::from_slice::<Msg>(&replies[0].msgs[0]).unwrap(),
        Msg::DiscoverReply
    );
    assert!(f.syncs.all().iter().any(|s| s.peer == addr(9005) && s.join));
}

#[actix::test]
async fn rounds_go_to_fanout_distinct_live_peers_and_none_when_alone() {
    tokio::time::pause();
    let mut f = start(&[], false);
    settle(1_000).await;
    assert!(f.rounds.is_empty(), "no peers, no rounds");
    for i in 0..6 {
        f.t.set(&member(&format!("p{i}"), 9000 + i, 0, MemberState::Alive));
    }
    f.t.set(&member("p0", 9000, 0, MemberState::Dead));
    settle(1_000).await;
    let rounds = f.rounds.take();
    assert!(
        (5..=6).contains(&rounds.len()),
        "{} rounds in 1 s",
        rounds.len()
    );
    for r in &rounds {
        let distinct: BTreeSet<_> = r.peers.iter().collect();
        assert_eq!(distinct.len(), 3);
    }
    // A member just declared dead still gets a share of the rounds for 30 s
    // (so that a member wrongly declared dead hears it and refutes)...
    settle(20_000).await;
    let rounds = f.rounds.take();
    let to_dead = rounds
        .iter()
        .filter(|r| r.peers.contains(&addr(9000)))
        .count();
    assert!(to_dead > 0, "no round to the recently dead in 20 s");
    // Each of the 3 slots goes to it with chance 1/6: about 42% of rounds.
    assert!(
        to_dead < rounds.len() * 3 / 4,
        "{to_dead} of {} rounds",
        rounds.len()
    );
    // ...then none.
    settle(15_000).await;
    f.rounds.take();
    settle(10_000).await;
    assert!(f
        .rounds
        .take()
        .iter()
        .all(|r| !r.peers.contains(&addr(9000))));
    // It gets reconnection attempts from the reconnect book, at serf's
    // rate: 1 booked for 6 alive, one chance in 6 per 5 s tick.
    f.syncs.take();
    settle(240_000).await;
    let tries = f
        .syncs
        .take()
        .iter()
        .filter(|s| s.peer == addr(9000) && !s.join)
        .count();
    assert!((1..=20).contains(&tries), "{tries} attempts in 48 ticks");
}

#[actix::test]
async fn a_push_pull_follows_the_join_to_repair_a_lost_state_transfer() {
    tokio::time::pause();
    let mut f = start(&["127.0.0.1:9001"], false);
    settle(10).await;
    f.syncs.take();
    f.t.set(&member("a", 9001, 0, MemberState::Alive));
    settle(2_100).await;
    let syncs = f.syncs.take();
    assert!(
        syncs.iter().any(|s| s.peer == addr(9001) && !s.join),
        "{:?}",
        syncs.iter().map(|s| (s.peer, s.join)).collect::<Vec<_>>()
    );
}

/// One follow-up rarely repairs a big transfer under loss: three run, at 2, 6
/// and 14 s, and then nothing until the periodic push-pull (30 s here).
#[actix::test]
async fn three_follow_up_push_pulls_then_only_the_periodic_one() {
    tokio::time::pause();
    let mut f = start(&["127.0.0.1:9001"], false);
    settle(10).await;
    f.syncs.take();
    f.t.set(&member("a", 9001, 0, MemberState::Alive));
    let mut per_window = Vec::new();
    for ms in [2_100, 4_000, 8_000, 10_000] {
        settle(ms).await;
        per_window.push(f.syncs.take().iter().filter(|s| !s.join).count());
    }
    // Up to 2.1 s, 6.1 s, 14.1 s and 24.1 s after the join.
    assert_eq!(per_window, vec![1, 1, 1, 0]);
}

/// A member whose tombstone is reclaimed stays in the reconnect book, and
/// a node alone with it tries it at every tick, for as long as it runs.
#[actix::test]
async fn reconnects_to_the_book_for_as_long_as_it_runs() {
    tokio::time::pause();
    let mut f = start(&[], false);
    f.t.set(&member("gone", 9100, 0, MemberState::Alive));
    f.t.set(&member("gone", 9100, 0, MemberState::Dead));
    settle(3_600_000).await;
    f.syncs.take();
    settle(600_000).await;
    let tries: Vec<_> = f.syncs.take().iter().map(|s| (s.peer, s.join)).collect();
    // 5 s +-10%: 109 to 134 ticks in 10 minutes, each one a try.
    assert!((100..=135).contains(&tries.len()), "{}", tries.len());
    assert!(tries.iter().all(|t| *t == (addr(9100), false)));
}

/// A seed missing from the live view (the other side of a partition, or a
/// seed that restarted) is tried with backoff for as long as the node runs;
/// a seed that is live is left alone.
#[actix::test]
async fn keeps_trying_a_seed_missing_from_the_live_view() {
    tokio::time::pause();
    let mut f = start(&["127.0.0.1:9001", "127.0.0.1:9002"], false);
    settle(10).await;
    f.t.set(&member("a", 9001, 0, MemberState::Alive));
    settle(3_600_000).await;
    f.syncs.take();
    settle(600_000).await;
    let syncs = f.syncs.take();
    assert!(syncs.iter().all(|s| !s.join));
    let to_seed = syncs.iter().filter(|s| s.peer == addr(9002)).count();
    // Backoff capped at 30 s (15 to 30 s drawn) plus the 1 s seed timeout;
    // the rest are the periodic push-pulls with a (every 30 s).
    assert!((18..=40).contains(&to_seed), "{to_seed} tries in 10 min");
    assert!(syncs.len() - to_seed <= 21, "{}", syncs.len());
    // Once it is live, only the periodic push-pulls.
    f.t.set(&member("b", 9002, 0, MemberState::Alive));
    settle(60_000).await;
    f.syncs.take();
    settle(600_000).await;
    assert!(f.syncs.take().len() <= 21);
}

/// A node that loses every member goes back to joining through its seeds
/// (and broadcasting), however long it had been joined.
#[actix::test]
async fn rejoins_through_the_seeds_after_losing_everyone() {
    tokio::time::pause();
    let mut f = start(&["127.0.0.1:9001"], true);
    settle(10).await;
    f.t.set(&member("a", 9001, 0, MemberState::Alive));
    settle(3_600_000).await;
    f.syncs.take();
    f.broadcasts.take();
    f.t.set(&member("a", 9001, 0, MemberState::Dead));
    settle(35_000).await;
    assert!(f.syncs.all().iter().any(|s| s.peer == addr(9001) && s.join));
    assert!(!f.broadcasts.is_empty());
}
