use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{addr, id, member};
use crate::actors::transport::{Routes, Transport, WireSettings};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::crypto::{generate_key, Keyring};
use crate::protocol::wire::{encode_msg, frame_plain, Framer, Msg};
use crate::protocol::MemberState;
use crate::testkit::{recorder, settle, Log};
use crate::transport::Link;

type Sent = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct FakeLink(Sent);

impl Link for FakeLink {
    fn send(&self, to: SocketAddr, d: Vec<u8>) {
        self.0.lock().unwrap().push((to, d));
    }
}

struct Fixture {
    t: Addr<Transport>,
    link: FakeLink,
    probes: Log<ProbeMsg>,
    rumors: Log<Rumors>,
    discoveries: Log<DiscoveryMsg>,
    metrics: Arc<Metrics>,
}

fn start(faults: SetFaults) -> Fixture {
    start_keyed(faults, Keyring::default())
}

fn start_keyed(faults: SetFaults, keyring: Keyring) -> Fixture {
    start_wire(faults, keyring, WireSettings::default())
}

fn start_wire(faults: SetFaults, keyring: Keyring, wire: WireSettings) -> Fixture {
    let (probe, probes) = recorder::<ProbeMsg>();
    let (rum, rumors) = recorder::<Rumors>();
    let (sync, _) = recorder::<SyncMsg>();
    let (disc, discoveries) = recorder::<DiscoveryMsg>();
    let link = FakeLink::default();
    let metrics = Arc::new(Metrics::default());
    let framer = Framer::new("default", &id("me"), addr(1000), 1400, 0);
    let routes = Routes {
        probe,
        rumors: rum,
        sync,
        discovery: disc,
    };
    let t = Transport::new(
        id("me"),
        "default".into(),
        framer,
        keyring,
        Box::new(link.clone()),
        routes,
        faults,
        1,
        metrics.clone(),
    )
    .with_wire(wire)
    .start();
    Fixture {
        t,
        link,
        probes,
        rumors,
        discoveries,
        metrics,
    }
}

fn datagram_from(sender: &str, cluster: &str, msgs: &[Msg]) -> Vec<u8> {
    let f = Framer::new(cluster, &id(sender), addr(2000), 1400, 0);
    let enc: Vec<_> = msgs.iter().map(encode_msg).collect();
    frame_plain(&f.pack(&enc).0[0])
}

#[actix::test]
async fn routes_each_message_to_its_actor() {
    let f = start(SetFaults::default());
    let d = datagram_from(
        "n2",
        "default",
        &[
            Msg::Ping {
                seq: 1,
                target: id("me"),
            },
            Msg::Update {
                member: member("x", 1, 0, MemberState::Alive),
                by: None,
            },
        ],
    );
    f.t.do_send(Inbound {
        from: addr(2000),
        data: d,
    });
    settle(5).await;
    assert_eq!(f.probes.len(), 1);
    assert_eq!(f.probes.all()[0].sender, id("n2"));
    assert_eq!(f.rumors.all()[0].updates.len(), 1);
}

#[actix::test]
async fn garbage_and_foreign_clusters_are_counted_and_dropped() {
    let f = start(SetFaults::default());
    for junk in [
        vec![],
        vec![1],
        vec![1, 0, 0xc1],
        vec![7, 0, 1, 2],
        vec![1, 1, 9, 9, 9],
        vec![0xff; 2000],
    ] {
        f.t.do_send(Inbound {
            from: addr(2000),
            data: junk,
        });
    }
    f.t.do_send(Inbound {
        from: addr(2000),
        data: datagram_from("n2", "other", &[Msg::Ack { seq: 1 }]),
    });
    settle(5).await;
    assert!(f.probes.is_empty() && f.rumors.is_empty());
    assert_eq!(Metrics::get(&f.metrics.decode_errors), 5);
    assert_eq!(
        Metrics::get(&f.metrics.auth_failures),
        1,
        "a sealed datagram without a key"
    );
    assert_eq!(Metrics::get(&f.metrics.foreign_cluster), 1);
}

#[actix::test]
async fn frames_outbound_messages_within_the_packet_size() {
    let f = start(SetFaults::default());
    let msgs: Vec<_> = (0..100)
        .map(|i| {
            encode_msg(&Msg::Update {
                member: member(&format!("member-{i}"), 1, i, MemberState::Alive),
                by: None,
            })
        })
        .collect();
    f.t.do_send(Outbound {
        to: addr(3000),
        msgs,
    });
    settle(5).await;
    let sent = f.link.0.lock().unwrap().clone();
    assert!(sent.len() > 1);
    assert!(sent
        .iter()
        .all(|(to, d)| *to == addr(3000) && d.len() <= 1400));
}

#[actix::test]
async fn fault_injection_drops_and_counts() {
    let f = start(SetFaults {
        loss_in: 0.0,
        loss_out: 1.0,
        block: vec![],
    });
    f.t.do_send(Outbound {
        to: addr(3000),
        msgs: vec![encode_msg(&Msg::Ack { seq: 1 })],
    });
    settle(5).await;
    assert!(f.link.0.lock().unwrap().is_empty());
    f.t.do_send(SetFaults {
        loss_in: 0.0,
        loss_out: 0.0,
        block: vec![addr(2000)],
    });
    f.t.do_send(Inbound {
        from: addr(2000),
        data: datagram_from("n2", "default", &[Msg::Ack { seq: 1 }]),
    });
    f.t.do_send(Outbound {
        to: addr(3000),
        msgs: vec![encode_msg(&Msg::Ack { seq: 2 })],
    });
    settle(5).await;
    assert!(f.probes.is_empty(), "blocked peer");
    assert_eq!(f.link.0.lock().unwrap().len(), 1, "others still reachable");
    assert_eq!(Metrics::get(&f.metrics.injected_drops), 2);
}

#[actix::test]
async fn silence_stops_both_directions() {
    let f = start(SetFaults::default());
    f.t.do_send(Silence);
    f.t.do_send(Inbound {
        from: addr(2000),
        data: datagram_from("n2", "default", &[Msg::Ack { seq: 1 }]),
    });
    f.t.do_send(Outbound {
        to: addr(3000),
        msgs: vec![encode_msg(&Msg::Ack { seq: 2 })],
    });
    settle(5).await;
    assert!(f.probes.is_empty());
    assert!(f.link.0.lock().unwrap().is_empty());
}

#[actix::test]
async fn with_a_key_only_sealed_datagrams_from_key_holders_get_in() {
    let key = generate_key();
    let f = start_keyed(SetFaults::default(), Keyring::new(&[key]));
    let plain = datagram_from("n2", "default", &[Msg::Ack { seq: 1 }]);
    let envelope = plain[2..].to_vec();
    let good = Keyring::new(&[key])
        .seal(&envelope, "default", crate::protocol::wire::unix_micros())
        .unwrap();
    let wrong = Keyring::new(&[generate_key()])
        .seal(&envelope, "default", crate::protocol::wire::unix_micros())
        .unwrap();
    f.t.do_send(Inbound {
        from: addr(2000),
        data: plain,
    });
    f.t.do_send(Inbound {
        from: addr(2000),
        data: wrong,
    });
    f.t.do_send(Inbound {
        from: addr(2000),
        data: good,
    });
    settle(5).await;
    assert_eq!(f.probes.len(), 1, "only the sealed datagram under our key");
    assert_eq!(Metrics::get(&f.metrics.auth_failures), 2);
    // What we send is sealed too.
    f.t.do_send(Outbound {
        to: addr(3000),
        msgs: vec![encode_msg(&Msg::Ack { seq: 2 })],
    });
    settle(5).await;
    let sent = f.link.0.lock().unwrap().clone();
    assert_eq!(sent[0].1[1], crate::protocol::wire::KIND_SEALED);
    // Rotation through the actor.
    let k2 = crate::protocol::crypto::encode_key(&generate_key());
    let keys =
        f.t.send(KeyringOp::Install(k2.clone()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(keys.len(), 2);
    f.t.send(KeyringOp::Use(k2.clone())).await.unwrap().unwrap();
    assert_eq!(f.t.send(KeyringOp::List).await.unwrap().unwrap()[0], k2);
    assert!(
        f.t.send(KeyringOp::Remove(k2)).await.unwrap().is_err(),
        "primary"
    );
    assert!(f
        .t
        .send(KeyringOp::Install("junk".into()))
        .await
        .unwrap()
        .is_err());
}

fn sealed_from(sender: &str, key: &crate::protocol::crypto::Key, msgs: &[Msg]) -> Vec<u8> {
    let plain = datagram_from(sender, "default", msgs);
    Keyring::new(&[*key])
        .seal(&plain[2..], "default", crate::protocol::wire::unix_micros())
        .unwrap()
}

async fn keys_of(f: &Fixture) -> Vec<String> {
    f.t.send(KeyringOp::List).await.unwrap().unwrap()
}

#[actix::test]
async fn a_captured_key_operation_replayed_after_removal_changes_nothing() {
    use crate::protocol::crypto::encode_key;
    use crate::protocol::wire::KeyOpKind;
    let (k1, k2) = (generate_key(), generate_key());
    let dir = std::env::temp_dir().join(format!("gossip-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = crate::keyring_file::path_in(&dir);
    let wire = WireSettings {
        keyring_file: Some(file.clone()),
        ..WireSettings::default()
    };
    let f = start_wire(SetFaults::default(), Keyring::new(&[k1]), wire.clone());
    let op = Msg::key_op(KeyOpKind::Install, encode_key(&k2));
    let captured = sealed_from("n2", &k1, std::slice::from_ref(&op));
    f.t.do_send(Inbound {
        from: addr(2000),
        data: captured.clone(),
    });
    settle(5).await;
    assert_eq!(keys_of(&f).await, vec![encode_key(&k1), encode_key(&k2)]);
    f.t.send(KeyringOp::Remove(encode_key(&k2)))
        .await
        .unwrap()
        .unwrap();
    // The same datagram again, and the same operation in a fresh datagram.
    f.t.do_send(Inbound {
        from: addr(2000),
        data: captured.clone(),
    });
    f.t.do_send(Inbound {
        from: addr(2001),
        data: sealed_from("n2", &k1, std::slice::from_ref(&op)),
    });
    settle(5).await;
    assert_eq!(keys_of(&f).await, vec![encode_key(&k1)], "K2 stays removed");
    assert_eq!(Metrics::get(&f.metrics.replays_refused), 1, "the datagram");

    // An operation made long ago, in a datagram sealed now: refused.
    let old = Msg::KeyOp {
        op: KeyOpKind::Install,
        key: encode_key(&k2),
        id: 99,
        at: crate::protocol::wire::unix_ms() - 10 * 60_000,
    };
    f.t.do_send(Inbound {
        from: addr(2000),
        data: sealed_from("n2", &k1, &[old]),
    });
    settle(5).await;
    assert_eq!(keys_of(&f).await, vec![encode_key(&k1)]);
    assert_eq!(Metrics::get(&f.metrics.replays_refused), 2);

    // A restarted node (keyring and applied operations from the file)
    // refuses the operation too, in a datagram it has never seen.
    let stored = crate::keyring_file::load(&file).unwrap().unwrap();
    assert_eq!(stored.keys, vec![encode_key(&k1)]);
    let restarted = start_wire(
        SetFaults::default(),
        Keyring::new(&[k1]),
        WireSettings {
            key_ops: crate::protocol::replay::KeyOpLog::from_entries(stored.key_ops),
            ..wire
        },
    );
    restarted.t.do_send(Inbound {
        from: addr(2000),
        data: sealed_from("n2", &k1, &[op]),
    });
    settle(5).await;
    assert_eq!(keys_of(&restarted).await, vec![encode_key(&k1)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix::test]
async fn discovery_is_heard_only_with_broadcast_on() {
    for on in [false, true] {
        let f = start_wire(
            SetFaults::default(),
            Keyring::default(),
            WireSettings {
                discovery: on,
                ..WireSettings::default()
            },
        );
        f.t.do_send(Inbound {
            from: addr(2000),
            data: datagram_from("n2", "default", &[Msg::Discover, Msg::DiscoverReply]),
        });
        settle(5).await;
        assert_eq!(f.discoveries.len(), if on { 2 } else { 0 });
        assert_eq!(
            Metrics::get(&f.metrics.discovery_ignored),
            if on { 0 } else { 2 }
        );
    }
}

fn bytes_to(f: &Fixture, to: SocketAddr) -> usize {
    f.link
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, _)| *a == to)
        .map(|(_, d)| d.len())
        .sum()
}

#[actix::test]
async fn a_stranger_gets_twice_its_bytes_until_it_acks_our_ping_then_the_rest() {
    let f = start(SetFaults::default());
    let joiner = addr(2000);
    let request = datagram_from(
        "n2",
        "default",
        &[Msg::SyncStart {
            hash: 0,
            join: true,
        }],
    );
    let asked = request.len();
    f.t.do_send(Inbound {
        from: joiner,
        data: request,
    });
    settle(5).await;
    // The whole table in answer: 40 records.
    let records: Vec<_> = (0..40)
        .map(|i| {
            encode_msg(&Msg::State {
                member: member(&format!("member-{i}"), 3000 + i, 0, MemberState::Alive),
            })
        })
        .collect();
    let table: usize = records.iter().map(|m| m.len()).sum();
    f.t.do_send(Outbound {
        to: joiner,
        msgs: records,
    });
    settle(5).await;
    let first = bytes_to(&f, joiner);
    assert!(first > 0 && first <= 2 * asked, "{first} bytes for {asked}");
    assert!(Metrics::get(&f.metrics.amplification_held) > 0);
    // The answer carried a ping naming the joiner; only its ack releases
    // the rest, and only from the joiner's address.
    let sent = f.link.0.lock().unwrap().clone();
    let env = crate::protocol::wire::decode_envelope(&sent[0].1[2..], "default").unwrap();
    let seq = env
        .msgs
        .iter()
        .find_map(|m| match m {
            Msg::Ping { seq, target } if target == &id("n2") => Some(*seq),
            _ => None,
        })
        .expect("a verification ping");
    let ack = datagram_from("n2", "default", &[Msg::Ack { seq }]);
    f.t.do_send(Inbound {
        from: addr(2001),
        data: ack.clone(),
    });
    settle(5).await;
    assert_eq!(bytes_to(&f, joiner), first, "an ack from elsewhere");
    f.t.do_send(Inbound {
        from: joiner,
        data: ack,
    });
    settle(5).await;
    assert!(
        bytes_to(&f, joiner) > table,
        "the whole table once verified"
    );
    assert_eq!(Metrics::get(&f.metrics.addresses_verified), 1);
    assert!(
        f.probes.is_empty(),
        "our own ack does not reach the detector"
    );
}
