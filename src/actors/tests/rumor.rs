use actix::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::{addr, id, member};
use crate::actors::rumor::{Rumor, RumorSettings};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::MemberState;
use crate::testkit::{recorder, settle, Log, TestTable};

/// The table must outlive the test: a dropped publisher leaves the last
/// snapshot readable, but keep it anyway, as a node would.
fn start(peers: u16) -> (Addr<Rumor>, Log<Outbound>) {
    let (r, log, _t) = start_with_table(peers);
    (r, log)
}

fn start_with_table(peers: u16) -> (Addr<Rumor>, Log<Outbound>, TestTable) {
    let (out, log) = recorder::<Outbound>();
    let s = RumorSettings {
        me: id("me"),
        room: 1200,
        fanout: 3,
        retransmit_mult: 4,
        max_rumors: 100,
        seed: 3,
    };
    let mut t = TestTable::new("me");
    let ms: Vec<_> = (0..peers)
        .map(|i| member(&format!("p{i}"), 9000 + i, 0, MemberState::Alive))
        .collect();
    t.set_all(&ms);
    let r = Rumor::new(s, t.rx(), out, Arc::new(Metrics::default())).start();
    (r, log, t)
}

fn count_updates(o: &Outbound) -> usize {
    o.msgs
        .iter()
        .filter(|m| matches!(rmp_serde::from_slice::<Msg>(m).unwrap(), Msg::Update { .. }))
        .count()
}

#[actix::test]
async fn rumors_ride_on_outgoing_datagrams() {
    tokio::time::pause();
    let (r, out) = start(0);
    r.do_send(Spread {
        member: member("a", 1, 0, MemberState::Suspect),
        by: Some(id("me")),
    });
    r.do_send(Send {
        to: addr(7000),
        msgs: vec![encode_msg(&Msg::Ack { seq: 1 })],
    });
    settle(1).await;
    let sent = out.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].msgs.len(), 2, "the ack plus the rumor");
    assert_eq!(count_updates(&sent[0]), 1);
}

#[actix::test]
async fn an_idle_round_sends_nothing() {
    tokio::time::pause();
    let (r, out) = start(5);
    r.do_send(GossipRound {
        peers: vec![addr(9000), addr(9001)],
    });
    settle(10).await;
    assert!(out.is_empty());
}

#[actix::test]
async fn fresh_rumors_are_pushed_at_once_to_fanout_peers() {
    tokio::time::pause();
    let (r, out) = start(6);
    r.do_send(Spread {
        member: member("a", 1, 0, MemberState::Dead),
        by: None,
    });
    settle(5).await;
    let sent = out.take();
    let peers: BTreeSet<_> = sent.iter().map(|o| o.to).collect();
    assert_eq!(peers.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|o| count_updates(o) == 1));
}

#[actix::test]
async fn each_rumor_is_retired_after_its_retransmit_limit() {
    tokio::time::pause();
    let (r, out) = start(1); // N = 2: limit 4 * max(2, ceil(log10(3))) = 8
    r.do_send(Spread {
        member: member("a", 1, 0, MemberState::Alive),
        by: None,
    });
    settle(5).await;
    for _ in 0..20 {
        r.do_send(GossipRound {
            peers: vec![addr(9000)],
        });
    }
    settle(5).await;
    let total: usize = out.all().iter().map(count_updates).sum();
    assert_eq!(total, 8);
}

#[actix::test]
async fn a_newer_rumor_replaces_the_older() {
    tokio::time::pause();
    let (r, out) = start(0);
    r.do_send(Spread {
        member: member("a", 1, 0, MemberState::Suspect),
        by: None,
    });
    r.do_send(Spread {
        member: member("a", 1, 1, MemberState::Alive),
        by: None,
    });
    r.do_send(Send {
        to: addr(7000),
        msgs: vec![],
    });
    settle(1).await;
    let sent = out.take();
    assert_eq!(count_updates(&sent[0]), 1);
    let Msg::Update { member, .. } = rmp_serde::from_slice::<Msg>(&sent[0].msgs[0]).unwrap() else {
        panic!()
    };
    assert_eq!(member.incarnation, 1);
}

#[actix::test]
async fn wait_sent_resolves_after_enough_transmissions() {
    tokio::time::pause();
    let (r, _out) = start(5);
    r.do_send(Spread {
        member: member("me", 1, 1, MemberState::Left),
        by: None,
    });
    let waited = r.send(WaitSent {
        id: id("me"),
        times: 3,
    });
    // The eager push sends it to 3 peers within a few milliseconds.
    let res = tokio::time::timeout(std::time::Duration::from_millis(50), waited).await;
    assert!(res.is_ok(), "resolved by the eager push");
}

#[actix::test]
async fn wait_sent_for_every_send_ends_at_the_retransmit_limit() {
    tokio::time::pause();
    // 20 peers: the limit is 4 * 2 = 8 sends, fewer than the peers.
    let (r, out) = start(20);
    r.do_send(Spread {
        member: member("me", 1, 1, MemberState::Left),
        by: None,
    });
    let waited = r.send(WaitSent {
        id: id("me"),
        times: crate::actors::leave::ALL_SENDS,
    });
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    settle(1).await;
    let eager = out.take().len();
    assert_eq!(eager, 3, "the eager push");
    // Five more sends in gossip rounds reach the limit.
    r.do_send(GossipRound {
        peers: (0..5).map(|i| addr(9000 + i)).collect(),
    });
    let res = tokio::time::timeout(std::time::Duration::from_millis(50), waited).await;
    assert!(res.is_ok(), "resolved once sent 8 times");
}

#[actix::test]
async fn wait_sent_for_every_send_waits_past_the_eager_push() {
    tokio::time::pause();
    let (r, _out) = start(20);
    r.do_send(Spread {
        member: member("me", 1, 1, MemberState::Left),
        by: None,
    });
    let waited = r.send(WaitSent {
        id: id("me"),
        times: crate::actors::leave::ALL_SENDS,
    });
    let res = tokio::time::timeout(std::time::Duration::from_millis(50), waited).await;
    assert!(res.is_err(), "the eager push alone (3 sends) is not enough");
}

#[actix::test]
async fn a_rumor_too_large_for_a_datagram_is_dropped_and_counted() {
    use crate::protocol::services::{Service, ServiceSet};
    tokio::time::pause();
    let (out, log) = recorder::<Outbound>();
    let metrics = Arc::new(Metrics::default());
    let s = RumorSettings {
        me: id("me"),
        room: 1200,
        fanout: 3,
        retransmit_mult: 4,
        max_rumors: 100,
        seed: 3,
    };
    let t = TestTable::new("me");
    let r = Rumor::new(s, t.rx(), out, metrics.clone()).start();
    let huge = crate::protocol::Member {
        services: ServiceSet::new(
            1,
            (0..200)
                .map(|i| Service::new(&format!("service-{i}"), 80))
                .collect(),
        ),
        ..member("big", 1, 0, MemberState::Alive)
    };
    r.do_send(Spread {
        member: member("big", 1, 0, MemberState::Alive),
        by: None,
    });
    r.do_send(Spread {
        member: huge,
        by: None,
    });
    r.do_send(Spread {
        member: member("small", 2, 0, MemberState::Alive),
        by: None,
    });
    settle(1).await;
    assert_eq!(Metrics::get(&metrics.rumors_oversized), 1);
    for _ in 0..20 {
        r.do_send(Send {
            to: addr(7000),
            msgs: vec![encode_msg(&Msg::Ack { seq: 1 })],
        });
    }
    settle(1).await;
    let sent = log.take();
    let ids: BTreeSet<String> = sent
        .iter()
        .flat_map(|o| o.msgs.iter())
        .filter_map(|m| match rmp_serde::from_slice::<Msg>(m).unwrap() {
            Msg::Update { member, .. } => Some(member.id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["small".to_string()]),
        "the stale rumor about big is gone too"
    );
}
