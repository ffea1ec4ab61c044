use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{addr, id, member};
use crate::actors::transport::{Routes, Transport};
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
    metrics: Arc<Metrics>,
}

fn start(faults: SetFaults) -> Fixture {
    start_keyed(faults, Keyring::default())
}

fn start_keyed(faults: SetFaults, keyring: Keyring) -> Fixture {
    let (probe, probes) = recorder::<ProbeMsg>();
    let (rum, rumors) = recorder::<Rumors>();
    let (sync, _) = recorder::<SyncMsg>();
    let (disc, _) = recorder::<DiscoveryMsg>();
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
    .start();
    Fixture {
        t,
        link,
        probes,
        rumors,
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
