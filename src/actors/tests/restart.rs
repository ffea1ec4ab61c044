//! Restarts cannot diverge: an actor that panics while the table changes
//! under it misses every change one by one (nothing is queued for it: the
//! snapshot channel keeps only the newest), and still ends up with exactly
//! what a fresh reader of the newest snapshot derives.

use actix::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{addr, id, member};
use crate::actors::failure::{FailureDetector, FailureSettings, GetDerived};
use crate::actors::gossip::{Gossip, GossipSettings};
use crate::actors::supervisor::{supervise, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::suspicion::SuspicionParams;
use crate::protocol::{Member, MemberState};
use crate::seeds::LiteralResolver;
use crate::testkit::{recorder, settle, TestTable};

fn fd_settings() -> FailureSettings {
    FailureSettings {
        me: id("me"),
        // Slow probing: the test is about what the detector derives.
        probe_interval: Duration::from_secs(1000),
        probe_timeout: Duration::from_secs(500),
        indirect_checks: 3,
        awareness_max_mult: 8,
        suspicion: SuspicionParams {
            probe_interval: Duration::from_secs(1000),
            suspicion_min: Duration::from_secs(3000),
            suspicion_mult: 0.0,
            suspicion_max_mult: 3.0,
            confirmations: 2,
        },
        seed: 5,
        step_origin: tokio::time::Instant::now(),
        first_step: 0,
    }
}

fn start_fd(t: &TestTable, supervised: bool) -> Addr<FailureDetector> {
    let (send, _) = recorder::<Send>();
    let (accuse, _) = recorder::<Accuse>();
    let (spread, _) = recorder::<Spread>();
    let fd = FailureDetector::new(
        fd_settings(),
        t.rx(),
        send,
        accuse,
        spread,
        Arc::new(Metrics::default()),
    );
    if supervised {
        supervise(Context::new(), fd, Arc::new(Metrics::default()))
    } else {
        fd.start()
    }
}

fn alive(i: u16) -> Member {
    member(&format!("n{i}"), 9000 + i, 0, MemberState::Alive)
}

/// Every kind of change at once: a failure, a suspicion, a leave, a
/// refutation of an older suspicion, a new member, a dead one reclaimed.
fn churn(t: &mut TestTable) {
    t.set(&Member {
        state: MemberState::Dead,
        ..alive(1)
    });
    t.accuse(&alive(2), "x");
    t.set(&Member {
        incarnation: 1,
        state: MemberState::Left,
        ..alive(3)
    });
    t.set(&Member {
        incarnation: 1,
        ..alive(4)
    });
    t.set(&alive(7));
    t.accuse(&alive(8), "me");
}

#[actix::test]
async fn a_restarted_failure_detector_derives_what_a_fresh_one_does() {
    tokio::time::pause();
    let mut t = TestTable::new("me");
    t.set_all(&(1..=6).map(alive).collect::<Vec<_>>());
    t.set(&alive(8));
    t.accuse(&alive(4), "y");
    let fd = start_fd(&t, true);
    settle(10).await;
    let (_, order, suspicions) = fd.send(GetDerived).await.unwrap();
    assert_eq!(order.len(), 7);
    assert_eq!(suspicions, vec![(id("n4"), 0)]);

    // It panics, and the table changes six times before it runs again.
    fd.do_send(Crash);
    churn(&mut t);
    settle(10).await;
    let restarted = fd.send(GetDerived).await.unwrap();
    let fresh = start_fd(&t, false).send(GetDerived).await.unwrap();
    assert_eq!(restarted, fresh, "no divergence after the restart");
    let (index, order, suspicions) = restarted;
    assert_eq!(index, t.snapshot().index, "it saw the newest snapshot");
    let order: BTreeSet<String> = order.iter().map(|i| i.to_string()).collect();
    let want: BTreeSet<String> = ["n2", "n4", "n5", "n6", "n7", "n8"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(order, want, "dead and left members are out, the new one in");
    assert_eq!(
        suspicions,
        vec![(id("n2"), 0), (id("n8"), 0)],
        "n4's refuted suspicion is gone, n2's and n8's are running"
    );

    // And it keeps following: the stream came back with the restart.
    t.set(&Member {
        incarnation: 1,
        ..alive(2)
    });
    settle(10).await;
    let (_, _, suspicions) = fd.send(GetDerived).await.unwrap();
    assert_eq!(suspicions, vec![(id("n8"), 0)]);
}

#[actix::test]
async fn a_restarted_gossip_scheduler_picks_peers_from_the_newest_snapshot() {
    tokio::time::pause();
    let mut t = TestTable::new("me");
    t.set_all(&(1..=6).map(alive).collect::<Vec<_>>());
    let (round, rounds) = recorder::<GossipRound>();
    let (send, _) = recorder::<Send>();
    let (sync, syncs) = recorder::<StartSync>();
    let (bc, _) = recorder::<BroadcastOut>();
    let g = Gossip::new(
        GossipSettings {
            me: id("me"),
            my_addr: addr(1),
            seeds: vec![],
            broadcast: false,
            gossip_interval: Duration::from_millis(200),
            fanout: 3,
            push_pull_interval: Duration::from_secs(3600),
            reconnect_interval: Duration::from_secs(5),
            seed_timeout: Duration::from_secs(1),
            join_retry_max: Duration::from_secs(30),
            seed: 2,
        },
        t.rx(),
        Box::new(LiteralResolver),
        round,
        send,
        sync,
        bc,
    );
    let g = supervise(Context::new(), g, Arc::new(Metrics::default()));
    settle(10).await;
    g.do_send(Crash);
    churn(&mut t);
    settle(10).await;
    rounds.take();
    syncs.take();
    settle(6_000).await;
    // The live members, and 9001 just declared dead (gossip to the dead).
    let live: BTreeSet<_> = [1, 2, 4, 5, 6, 7, 8]
        .iter()
        .map(|i| addr(9000 + i))
        .collect();
    let rounds = rounds.take();
    assert!(rounds.len() >= 25, "{} rounds in 6 s", rounds.len());
    for r in &rounds {
        assert!(r.peers.iter().all(|p| live.contains(p)), "{:?}", r.peers);
    }
    // Reconnection: 1 booked for 7 alive, one chance in 7 per 5 s tick.
    settle(120_000).await;
    let reconnects: Vec<_> = syncs.take().into_iter().map(|s| s.peer).collect();
    assert!(
        !reconnects.is_empty() && reconnects.iter().all(|p| *p == addr(9001)),
        "only the dead member is retried: {reconnects:?}"
    );
}
