use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use super::{addr, id, member};
use crate::actors::failure::{FailureDetector, FailureSettings, GetAwareness};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::probe_order::phase;
use crate::protocol::suspicion::SuspicionParams;
use crate::protocol::wire::Msg;
use crate::protocol::{Member, MemberState};
use crate::testkit::{recorder, settle, Log, TestTable};

struct Fixture {
    fd: Addr<FailureDetector>,
    t: TestTable,
    sends: Log<Send>,
    accuses: Log<Accuse>,
    spreads: Log<Spread>,
    metrics: Arc<Metrics>,
}

fn settings(probe_interval_ms: u64) -> FailureSettings {
    FailureSettings {
        me: id("me"),
        probe_interval: Duration::from_millis(probe_interval_ms),
        probe_timeout: Duration::from_millis(probe_interval_ms / 2),
        indirect_checks: 3,
        awareness_max_mult: 8,
        suspicion: SuspicionParams {
            probe_interval: Duration::from_millis(probe_interval_ms),
            suspicion_min: Duration::from_millis(1800),
            suspicion_mult: 0.0,
            suspicion_max_mult: 3.0,
            confirmations: 2,
        },
        seed: 7,
        // Shifted back by our phase, so that our ticks fall on whole
        // periods from the test's start (the first at 1 s).
        step_origin: tokio::time::Instant::now()
            - Duration::from_millis(probe_interval_ms).mul_f64(phase(&id("me"))),
        first_step: 0,
    }
}

fn start(probe_interval_ms: u64) -> Fixture {
    let (send, sends) = recorder::<Send>();
    let (accuse, accuses) = recorder::<Accuse>();
    let (spread, spreads) = recorder::<Spread>();
    let metrics = Arc::new(Metrics::default());
    let t = TestTable::new("me");
    let fd = FailureDetector::new(
        settings(probe_interval_ms),
        t.rx(),
        send,
        accuse,
        spread,
        metrics.clone(),
    )
    .start();
    Fixture {
        fd,
        t,
        sends,
        accuses,
        spreads,
        metrics,
    }
}

fn confirmation(m: &Member, by: &str) -> Confirmation {
    Confirmation {
        member: m.clone(),
        by: id(by),
    }
}

fn decoded(sends: &[Send]) -> Vec<(std::net::SocketAddr, Msg)> {
    sends
        .iter()
        .flat_map(|s| {
            s.msgs
                .iter()
                .map(move |m| (s.to, rmp_serde::from_slice::<Msg>(m).expect("decodes")))
        })
        .collect()
}

fn join_four(t: &mut TestTable) -> Vec<Member> {
    let ms: Vec<Member> = (1..=4)
        .map(|i| member(&format!("n{i}"), 9000 + i, 0, MemberState::Alive))
        .collect();
    t.set_all(&ms);
    ms
}

/// The first probe: its target's address and sequence number.
fn first_ping(sends: &Log<Send>) -> (std::net::SocketAddr, u32) {
    decoded(&sends.all())
        .into_iter()
        .find_map(|(to, m)| match m {
            Msg::Ping { seq, .. } => Some((to, seq)),
            _ => None,
        })
        .expect("a ping was sent")
}

#[actix::test]
async fn probe_timeout_leads_to_ping_req_then_suspicion() {
    tokio::time::pause();
    let mut f = start(1000);
    let ms = join_four(&mut f.t);
    settle(1010).await;
    let (target, seq) = first_ping(&f.sends);
    let target_id = ms.iter().find(|m| m.addr == target).unwrap().id.clone();
    assert!(f.accuses.is_empty());
    settle(500).await;
    let reqs: Vec<_> = decoded(&f.sends.all())
        .into_iter()
        .filter(|(_, m)| matches!(m, Msg::PingReq { seq: s, .. } if *s == seq))
        .collect();
    assert_eq!(reqs.len(), 3, "three relays asked");
    assert!(
        reqs.iter().all(|(to, _)| *to != target),
        "never the target itself"
    );
    assert!(f.accuses.is_empty(), "not before the end of the period");
    settle(500).await;
    let acc = f.accuses.all();
    assert_eq!(acc.len(), 1);
    assert_eq!(
        (acc[0].id.clone(), acc[0].state, acc[0].incarnation),
        (target_id, MemberState::Suspect, 0)
    );
}

#[actix::test]
async fn indirect_probe_rescued_by_a_relay() {
    tokio::time::pause();
    let mut f = start(1000);
    join_four(&mut f.t);
    settle(1010).await;
    let (_, seq) = first_ping(&f.sends);
    settle(500).await;
    // A relay got the target's ack and passes it on.
    f.fd.do_send(ProbeMsg {
        from: addr(9001),
        sender: id("n1"),
        msg: Msg::Ack { seq },
    });
    settle(600).await;
    assert!(f.accuses.is_empty(), "{:?}", f.accuses.all());
    assert_eq!(f.fd.send(GetAwareness).await.unwrap(), 0);
}

#[actix::test]
async fn relays_ping_for_others_and_answer_ack_or_nack() {
    tokio::time::pause();
    let f = start(100_000);
    let mut f = f;
    f.t.set_all(&[
        member("t", 7001, 0, MemberState::Alive),
        member("o", 7000, 0, MemberState::Alive),
    ]);
    let origin = addr(7000);
    let req = Msg::PingReq {
        seq: 77,
        target: id("t"),
        addr: addr(7001),
    };
    f.fd.do_send(ProbeMsg {
        from: origin,
        sender: id("o"),
        msg: req,
    });
    settle(10).await;
    let sent = decoded(&f.sends.take());
    let my_seq = match &sent[..] {
        [(to, Msg::Ping { seq, target })] if *to == addr(7001) && target == &id("t") => *seq,
        other => panic!("expected one ping to the target, got {other:?}"),
    };
    f.fd.do_send(ProbeMsg {
        from: addr(7001),
        sender: id("t"),
        msg: Msg::Ack { seq: my_seq },
    });
    settle(10).await;
    assert_eq!(
        decoded(&f.sends.take()),
        vec![(origin, Msg::Ack { seq: 77 })]
    );
    settle(20_000).await;
    assert!(f.sends.take().is_empty(), "no ping after the ack");

    // A target that stays silent: a nack after the probe timeout.
    f.fd.do_send(ProbeMsg {
        from: origin,
        sender: id("o"),
        msg: Msg::PingReq {
            seq: 78,
            target: id("t"),
            addr: addr(7001),
        },
    });
    settle(10).await;
    f.sends.take();
    settle(50_000).await;
    // The target pinged again every eighth of the probe timeout (a lost
    // round trip is common under loss) until the nack, at 0.8 of it: six
    // more pings, then the nack.
    let later = decoded(&f.sends.take());
    assert_eq!(later.len(), 7, "{later:?}");
    assert!(later[..6].iter().all(
        |m| matches!(m, (to, Msg::Ping { target, .. }) if *to == addr(7001) && target == &id("t"))
    ));
    assert_eq!(later[6], (origin, Msg::Nack { seq: 78 }));
}

/// A ping-req from an address that is not a live member's gets one ping
/// of the target and a nack, not a ping every eighth of the timeout: one
/// datagram from a stranger buys no more than one ping at a member.
#[actix::test]
async fn a_stranger_s_ping_req_gets_one_ping_of_the_target() {
    tokio::time::pause();
    let mut f = start(100_000);
    f.t.set(&member("t", 7001, 0, MemberState::Alive));
    let stranger = addr(7000);
    f.fd.do_send(ProbeMsg {
        from: stranger,
        sender: id("o"),
        msg: Msg::PingReq {
            seq: 5,
            target: id("t"),
            addr: addr(7001),
        },
    });
    settle(50_000).await;
    let sent = decoded(&f.sends.take());
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(matches!(&sent[0], (to, Msg::Ping { .. }) if *to == addr(7001)));
    assert_eq!(sent[1], (stranger, Msg::Nack { seq: 5 }));
}

#[actix::test]
async fn relays_only_to_a_known_member_at_its_known_address() {
    tokio::time::pause();
    let f = start(100_000);
    let mut f = f;
    f.t.set(&member("t", 7001, 0, MemberState::Alive));
    for (target, at) in [("stranger", 7002), ("t", 7003)] {
        f.fd.do_send(ProbeMsg {
            from: addr(7000),
            sender: id("o"),
            msg: Msg::PingReq {
                seq: 5,
                target: id(target),
                addr: addr(at),
            },
        });
    }
    settle(50_000).await;
    let relayed: Vec<_> = decoded(&f.sends.take())
        .into_iter()
        .filter(|(to, m)| *to != addr(7001) || matches!(m, Msg::Nack { .. }))
        .collect();
    assert_eq!(relayed, vec![], "no ping, and no nack either");
    assert_eq!(Metrics::get(&f.metrics.ping_req_refused), 2);
}

#[actix::test]
async fn answers_pings_meant_for_it_only() {
    tokio::time::pause();
    let f = start(100_000);
    f.fd.do_send(ProbeMsg {
        from: addr(7000),
        sender: id("o"),
        msg: Msg::Ping {
            seq: 5,
            target: id("me"),
        },
    });
    f.fd.do_send(ProbeMsg {
        from: addr(7000),
        sender: id("o"),
        msg: Msg::Ping {
            seq: 6,
            target: id("previous-owner"),
        },
    });
    settle(10).await;
    assert_eq!(
        decoded(&f.sends.all()),
        vec![(addr(7000), Msg::Ack { seq: 5 })]
    );
}

#[actix::test]
async fn suspicion_expires_into_dead_at_the_maximum_timeout() {
    tokio::time::pause();
    let mut f = start(1_000_000); // no probing during the test
    join_four(&mut f.t); // members able to confirm: k stays 2
    let a = member("a", 9001, 4, MemberState::Alive);
    f.t.set(&a);
    // Our own accusation (after our own failed probe), no confirmations:
    // max = 3 * 1.8 s = 5.4 s.
    f.t.accuse(&a, "me");
    settle(5300).await;
    assert!(f.accuses.is_empty());
    settle(200).await;
    let acc = f.accuses.all();
    assert_eq!(acc.len(), 1);
    assert_eq!((acc[0].state, acc[0].incarnation), (MemberState::Dead, 4));
}

#[actix::test]
async fn confirmations_shorten_the_suspicion() {
    tokio::time::pause();
    let mut f = start(1_000_000);
    join_four(&mut f.t);
    let a = member("a", 9001, 0, MemberState::Alive);
    f.t.set(&a);
    let sa = Member {
        state: MemberState::Suspect,
        ..a.clone()
    };
    f.t.accuse(&a, "me");
    f.fd.do_send(confirmation(&sa, "y"));
    f.fd.do_send(confirmation(&sa, "y")); // same accuser: no news
    f.fd.do_send(confirmation(&sa, "z"));
    settle(1700).await;
    assert!(f.accuses.is_empty());
    settle(200).await;
    assert_eq!(f.accuses.len(), 1, "dead at the minimum, 1.8 s, not 5.4 s");
    let spread_by: Vec<_> = f.spreads.all().into_iter().map(|s| s.by.unwrap()).collect();
    assert_eq!(
        spread_by,
        vec![id("y"), id("z")],
        "each new confirmation is passed on once"
    );
}

#[actix::test]
async fn refutation_cancels_the_suspicion() {
    tokio::time::pause();
    let mut f = start(1_000_000);
    let a = member("a", 9001, 0, MemberState::Alive);
    f.t.set(&a);
    f.t.accuse(&a, "x");
    settle(100).await;
    f.t.set(&Member {
        incarnation: 1,
        ..a.clone()
    });
    settle(10_000).await;
    assert!(f.accuses.is_empty());
}

#[actix::test]
async fn a_ping_to_a_suspect_carries_the_suspicion() {
    tokio::time::pause();
    let mut f = start(1000);
    let a = member("a", 9001, 2, MemberState::Alive);
    f.t.set(&a);
    f.t.accuse(&a, "x");
    settle(1010).await;
    let msgs = decoded(&f.sends.all());
    assert!(matches!(&msgs[0].1, Msg::Ping { target, .. } if target == &id("a")));
    assert!(
        msgs.iter().any(|(to, m)| *to == a.addr
            && matches!(m, Msg::Update { member, .. } if member.state == MemberState::Suspect)),
        "{msgs:?}"
    );
}

#[actix::test]
async fn local_health_rises_on_failures_and_refutations_and_slows_probing() {
    tokio::time::pause();
    let mut f = start(1000);
    let a = member("a", 9001, 0, MemberState::Alive);
    let b = member("b", 9002, 0, MemberState::Alive);
    f.t.set_all(&[a.clone(), b.clone()]);
    // Two members: a failed probe of one asks the other, which sends no
    // nack either: the score rises by one.
    settle(2010).await;
    assert_eq!(f.fd.send(GetAwareness).await.unwrap(), 1);
    f.t.refute();
    settle(1).await;
    assert_eq!(f.fd.send(GetAwareness).await.unwrap(), 2);
    // With a score of 2 the next probes come every 3 s instead of every 1 s
    // (a probe is counted once, though its ping is sent again with the
    // ping-reqs; the re-probes of the members it accuses, which carry the
    // accusation, are not round-robin probes).
    let probes = |f: &Fixture| {
        [a.addr, b.addr]
            .iter()
            .flat_map(|to| pings_to(&f.sends, *to))
            .filter(|(_, buddy)| !buddy)
            .map(|(seq, _)| seq)
            .collect::<std::collections::BTreeSet<u32>>()
            .len()
    };
    let before = probes(&f);
    settle(2900).await;
    let after = probes(&f);
    assert!(
        after - before <= 1,
        "probed {} times in 2.9 s",
        after - before
    );
}

#[actix::test]
async fn stops_probing_and_answering_after_stop() {
    tokio::time::pause();
    let mut f = start(1000);
    join_four(&mut f.t);
    f.fd.do_send(StopActivity);
    f.fd.do_send(ProbeMsg {
        from: addr(7000),
        sender: id("o"),
        msg: Msg::Ping {
            seq: 5,
            target: id("me"),
        },
    });
    settle(5000).await;
    assert!(f.sends.is_empty());
    assert!(f.accuses.is_empty());
}

/// Plays the healthy rest of the cluster for `ms` milliseconds: acks every
/// ping to a member other than `dead`, and nacks every ping-req about
/// `dead` (the relay's own ping went unanswered), so that this node's
/// health score stays at 0 and only `dead` fails its probes.
async fn healthy_cluster_but(f: &Fixture, dead: &Member, ms: u64) {
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..ms / 50 {
        settle(50).await;
        for (to, m) in decoded(&f.sends.all()) {
            let reply = match m {
                Msg::Ping { seq, .. } if to != dead.addr => Msg::Ack { seq },
                Msg::PingReq { seq, target, .. } if target == dead.id => Msg::Nack { seq },
                _ => continue,
            };
            if answered.insert((to, format!("{reply:?}"))) {
                f.fd.do_send(ProbeMsg {
                    from: to,
                    sender: id("relay"),
                    msg: reply,
                });
            }
        }
    }
}

#[actix::test]
async fn a_suspicion_heard_from_others_is_checked_with_an_extra_probe() {
    tokio::time::pause();
    let mut f = start(1000);
    // Many members, so the round-robin alone would rarely reach "a" soon.
    join_four(&mut f.t);
    let a = member("a", 9100, 0, MemberState::Alive);
    f.t.set(&a);
    f.t.accuse(&a, "x");
    healthy_cluster_but(&f, &a, 300).await;
    let pings_to_a = decoded(&f.sends.all())
        .iter()
        .filter(|(to, m)| *to == a.addr && matches!(m, Msg::Ping { .. }))
        .count();
    assert!(
        pings_to_a >= 1,
        "the suspect was probed within 0.2 s of an interval"
    );
    // Unanswered, it is our confirmation: spread with us as the accuser, and
    // the suspicion (x, then us) ends at the 2-confirmation rule's middle step
    // (3.1 s) rather than the 5.4 s maximum.
    healthy_cluster_but(&f, &a, 1000).await;
    assert!(
        f.spreads
            .all()
            .iter()
            .any(|s| s.member.id == a.id && s.by == Some(id("me"))),
        "{:?}",
        f.spreads.all()
    );
    assert_eq!(f.fd.send(GetAwareness).await.unwrap(), 0, "relays nacked");
    healthy_cluster_but(&f, &a, 2000).await;
    assert!(
        f.accuses
            .all()
            .iter()
            .any(|x| x.id == a.id && x.state == MemberState::Dead),
        "dead well before 5.4 s"
    );
}

#[actix::test]
async fn a_node_that_only_heard_of_a_suspicion_verifies_it_before_declaring_death() {
    tokio::time::pause();
    let mut f = start(1000);
    let a = member("a", 9001, 0, MemberState::Alive);
    f.t.set(&a);
    let sa = Member {
        state: MemberState::Suspect,
        ..a.clone()
    };
    // Heard from x and y; our own probes of "a" are answered.
    f.t.accuse(&a, "x");
    f.fd.do_send(confirmation(&sa, "y"));
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..80 {
        settle(100).await;
        for (to, m) in decoded(&f.sends.all()) {
            if let Msg::Ping { seq, .. } = m {
                if to == a.addr && answered.insert(seq) {
                    f.fd.do_send(ProbeMsg {
                        from: a.addr,
                        sender: id("a"),
                        msg: Msg::Ack { seq },
                    });
                }
            }
        }
    }
    assert!(
        f.accuses.is_empty(),
        "a member that answers us is never declared dead by us: {:?}",
        f.accuses.all()
    );
    assert!(answered.len() >= 3, "it was probed again at expiry");
    // Now it stops answering: our next probe fails, and we declare it.
    settle(3000).await;
    assert!(f.accuses.all().iter().any(|x| x.state == MemberState::Dead));
}

#[actix::test]
async fn probing_a_dead_member_through_answering_relays_does_not_hurt_local_health() {
    tokio::time::pause();
    // Two detectors: "me" probes, "relay" answers ping-reqs; the target is
    // silent. The relay's nack must arrive before the end of my period.
    let (send, sends) = recorder::<Send>();
    let (accuse, _) = recorder::<Accuse>();
    let (spread, _) = recorder::<Spread>();
    let mut t = TestTable::new("me");
    let fd = FailureDetector::new(
        settings(1000),
        t.rx(),
        send,
        accuse,
        spread,
        Arc::new(Metrics::default()),
    )
    .start();
    let (rsend, rsends) = recorder::<Send>();
    let (raccuse, _) = recorder::<Accuse>();
    let (rspread, _) = recorder::<Spread>();
    let mut relay_table = TestTable::new("relay");
    let relay = FailureDetector::new(
        FailureSettings {
            me: id("relay"),
            ..settings(1000)
        },
        relay_table.rx(),
        rsend,
        raccuse,
        rspread,
        Arc::new(Metrics::default()),
    )
    .start();
    let target = member("t", 9001, 0, MemberState::Alive);
    relay_table.set(&target);
    t.set_all(&[target, member("relay", 9002, 0, MemberState::Alive)]);
    // Pump: whatever "me" sends to the relay reaches it, and back.
    let mut worst = 0;
    for _ in 0..300 {
        let a = fd.send(GetAwareness).await.unwrap();
        worst = worst.max(a);
        settle(10).await;
        for s in sends.take() {
            for m in &s.msgs {
                let msg: Msg = rmp_serde::from_slice(m).unwrap();
                if s.to == addr(9002) {
                    relay.do_send(ProbeMsg {
                        from: addr(1),
                        sender: id("me"),
                        msg,
                    });
                }
            }
        }
        for s in rsends.take() {
            for m in &s.msgs {
                let msg: Msg = rmp_serde::from_slice(m).unwrap();
                if s.to == addr(1) {
                    fd.do_send(ProbeMsg {
                        from: addr(9002),
                        sender: id("relay"),
                        msg,
                    });
                }
            }
        }
    }
    // Failed probes of t are excused by the relay's nack: the score never
    // rises.
    assert_eq!(worst, 0);
}

/// A detector with one peer, `a`, that never answers: returned once the
/// first failed probe has accused it (within 3 s).
async fn lone_peer_accused() -> (Fixture, Member) {
    let mut f = start(1000);
    let a = member("a", 9001, 0, MemberState::Alive);
    f.t.set(&a);
    let mut waited = 0;
    while f.accuses.is_empty() {
        settle(10).await;
        waited += 10;
        assert!(waited < 3000, "no accusation in 3 s");
    }
    (f, a)
}

/// In a two-member cluster a failed probe of the one peer says nothing about
/// this node (there is nobody to ask): its health score, which stretches its
/// suspicion timeouts, stays at 0 while the peer is dead. The peer is
/// declared dead at the suspicion minimum (k = 0: nobody can confirm),
/// counted from when the unanswered probe was sent, not from when its
/// period ended or the suspicion was published.
#[actix::test]
async fn a_lone_peer_is_declared_dead_at_the_minimum_counted_from_the_probe() {
    tokio::time::pause();
    // The first probe's period ends (1 s after it was sent): it accuses.
    let (mut f, a) = lone_peer_accused().await;
    assert_eq!(f.fd.send(GetAwareness).await.unwrap(), 0);
    // Membership publishes our accusation: the clock started when that
    // probe was sent, about 1.0 s ago, so dead 0.8 s from now, not 1.8 s.
    f.t.accuse(&a, "me");
    let dead = |f: &Fixture| {
        f.accuses
            .all()
            .iter()
            .any(|x| x.id == a.id && x.state == MemberState::Dead)
    };
    settle(700).await;
    assert!(!dead(&f), "not before the probe + 1.8 s");
    settle(200).await;
    assert!(dead(&f), "dead at the probe + 1.8 s: {:?}", f.accuses.all());
}

/// The direct pings of probe `seq` to `target`, and the ping-reqs sent for
/// it, so far.
fn pings_and_relays(sends: &Log<Send>, target: std::net::SocketAddr, seq: u32) -> (usize, usize) {
    let all = decoded(&sends.all());
    let pings = all
        .iter()
        .filter(|(to, m)| *to == target && matches!(m, Msg::Ping { seq: s, .. } if *s == seq))
        .count();
    let relays = all
        .iter()
        .filter(|(_, m)| matches!(m, Msg::PingReq { seq: s, .. } if *s == seq))
        .count();
    (pings, relays)
}

/// An unanswered probe pings its target again every `probe_timeout / 8`
/// (62.5 ms here) until its period ends: sixteen direct round trips, with
/// the relays asked at the timeout, after the eighth. Under 30% loss each
/// round trip halves the chance that a healthy member fails its probe.
#[actix::test]
async fn an_unanswered_probe_pings_again_until_its_period_ends() {
    tokio::time::pause();
    let mut f = start(1000);
    join_four(&mut f.t);
    settle(1010).await;
    let (target, seq) = first_ping(&f.sends);
    settle(480).await;
    assert_eq!(
        pings_and_relays(&f.sends, target, seq),
        (8, 0),
        "every 62.5 ms, no relay before the timeout"
    );
    settle(30).await;
    assert_eq!(pings_and_relays(&f.sends, target, seq), (9, 3));
    settle(1500).await;
    assert_eq!(
        pings_and_relays(&f.sends, target, seq).0,
        16,
        "none after the period"
    );
}

/// An ack ends the direct pings, and one before the timeout spares the
/// relays altogether.
#[actix::test]
async fn an_ack_stops_the_direct_pings_and_spares_the_relays() {
    tokio::time::pause();
    let mut f = start(1000);
    let ms = join_four(&mut f.t);
    settle(1010).await;
    let (target, seq) = first_ping(&f.sends);
    settle(200).await;
    assert_eq!(pings_and_relays(&f.sends, target, seq), (4, 0));
    let m = ms.iter().find(|m| m.addr == target).expect("a member");
    f.fd.do_send(ProbeMsg {
        from: target,
        sender: m.id.clone(),
        msg: Msg::Ack { seq },
    });
    settle(1500).await;
    assert_eq!(pings_and_relays(&f.sends, target, seq), (4, 0));
    assert!(f.accuses.all().is_empty(), "{:?}", f.accuses.all());
}

/// The pings sent to `to`, with their sequence numbers and whether the
/// suspicion rode along (the buddy Update).
fn pings_to(sends: &Log<Send>, to: std::net::SocketAddr) -> Vec<(u32, bool)> {
    sends
        .all()
        .iter()
        .filter(|s| s.to == to)
        .filter_map(|s| {
            let msgs: Vec<Msg> = s
                .msgs
                .iter()
                .map(|m| rmp_serde::from_slice(m).expect("decodes"))
                .collect();
            let seq = msgs.iter().find_map(|m| match m {
                Msg::Ping { seq, .. } => Some(*seq),
                _ => None,
            })?;
            let buddy = msgs.iter().any(
                |m| matches!(m, Msg::Update { member, .. } if member.state == MemberState::Suspect),
            );
            Some((seq, buddy))
        })
        .collect()
}

/// A node accuses only on evidence of its own, and keeps it fresh: when its
/// probe fails it probes the member again at once, the ping carrying the
/// accusation, and an ack to that re-probe restarts the suspicion without
/// evidence, so the member is not declared dead at the minimum. Without
/// the re-probe, the lone peer below would be dead 1.8 s after the first
/// probe, as in the test above.
#[actix::test]
async fn an_accuser_probes_again_at_once_and_an_ack_saves_the_member() {
    tokio::time::pause();
    let (mut f, a) = lone_peer_accused().await;
    settle(5).await;
    let pings = pings_to(&f.sends, a.addr);
    // (The round robin may probe the lone peer again too, without it.)
    let again: std::collections::BTreeSet<u32> = pings
        .iter()
        .filter(|(_, buddy)| *buddy)
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(
        again.len(),
        1,
        "a re-probe carrying the accusation: {pings:?}"
    );
    let again = *again.iter().next().unwrap();
    f.t.accuse(&a, "me");
    settle(10).await;
    f.fd.do_send(ProbeMsg {
        from: a.addr,
        sender: a.id.clone(),
        msg: Msg::Ack { seq: again },
    });
    // Dead at the first probe + 1.8 s without the ack: well past that.
    settle(1500).await;
    assert!(
        !f.accuses.all().iter().any(|x| x.state == MemberState::Dead),
        "{:?}",
        f.accuses.all()
    );
}

/// A suspect that keeps failing our probes is probed again every period
/// while our timer runs (each ping carrying the accusation), and is still
/// declared dead when it runs out, at its maximum here (nobody confirms).
#[actix::test]
async fn an_accuser_probes_on_every_period_and_declares_on_time() {
    tokio::time::pause();
    let mut f = start(1000);
    let ms = join_four(&mut f.t);
    let dead = ms[0].clone();
    let mut waited = 0;
    while f.accuses.is_empty() {
        healthy_cluster_but(&f, &dead, 50).await;
        waited += 50;
        assert!(waited < 6000, "no accusation in 6 s");
    }
    assert_eq!(f.accuses.all()[0].id, dead.id);
    f.t.accuse(&dead, "me");
    // The clock started at the failed probe, a period ago: dead at its
    // maximum (3 x 1.8 s), 4.4 s from now, whatever the re-probes.
    healthy_cluster_but(&f, &dead, 4200).await;
    let declared = |f: &Fixture| f.accuses.all().iter().any(|x| x.state == MemberState::Dead);
    assert!(!declared(&f), "not before the maximum");
    healthy_cluster_but(&f, &dead, 400).await;
    assert!(declared(&f), "dead at the maximum: {:?}", f.accuses.all());
    assert_eq!(f.fd.send(GetAwareness).await.unwrap(), 0);
    let with_accusation = pings_to(&f.sends, dead.addr)
        .iter()
        .filter(|(_, buddy)| *buddy)
        .map(|(seq, _)| *seq)
        .collect::<std::collections::BTreeSet<u32>>()
        .len();
    // A re-probe every period from the accusation on (four or five; the
    // round robin comes back to it once in four periods).
    assert!(with_accusation >= 4, "{with_accusation} probes carried it");
}
