//! The wire as an attacker sees it, against one in-process node on
//! 127.0.0.1: every datagram type sent from an address that never completed
//! a ping/ack round trip buys at most twice its size in answers (the
//! amplification factor printed here is the figure in SECURITY.md), and a
//! ping-req naming a stranger makes the node ping no one.
//!
//! Run alone with `cargo test --test wire_abuse -- --nocapture` to see the
//! table.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use gossip::config::Config;
use gossip::messages::GetMembers;
use gossip::node::start_on_udp;
use gossip::protocol::wire::{encode_msg, frame_plain, DigestEntry, Framer, KeyOpKind, Msg};
use gossip::protocol::{Member, MemberState, NodeId};
use gossip::seeds::LiteralResolver;

const CLUSTER: &str = "default";
const TABLE: usize = 20;

fn datagram(from: &str, addr: SocketAddr, msgs: &[Msg]) -> Vec<u8> {
    let f = Framer::new(CLUSTER, &NodeId::new(from), addr, 1400, 0);
    let enc: Vec<_> = msgs.iter().map(encode_msg).collect();
    let (d, oversized) = f.pack(&enc);
    assert_eq!((d.len(), oversized), (1, 0));
    frame_plain(&d[0])
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Bytes that reached `s` so far.
fn drain(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 65_536];
    let mut total = 0;
    while let Ok(n) = s.recv(&mut buf) {
        total += n;
    }
    total
}

fn fake(i: usize) -> Member {
    Member::new_alive(
        NodeId::new(&format!("member-{i:02}")),
        SocketAddr::from(([127, 0, 0, 1], 1 + i as u16)),
        1,
    )
}

/// One node on a real UDP socket on 127.0.0.1, with default settings.
async fn start_node(id: &str, seed: u64) -> gossip::node::NodeHandle {
    let cfg = Config {
        node_id: id.into(),
        ..Config::default()
    };
    start_on_udp(
        &cfg,
        "127.0.0.1:0".parse().unwrap(),
        seed,
        Box::new(LiteralResolver),
    )
    .await
    .unwrap()
}

#[actix::test]
async fn strangers_get_at_most_twice_what_they_send_for_every_datagram_type() {
    let node = start_node("target", 1).await;
    let target = node.addr;
    assert_eq!(target.ip().to_string(), "127.0.0.1");

    // A table worth asking for: TABLE members, told by a feeder.
    let feeder = socket();
    let fa = feeder.local_addr().unwrap();
    for chunk in (0..TABLE).collect::<Vec<_>>().chunks(5) {
        let updates: Vec<Msg> = chunk
            .iter()
            .map(|&i| Msg::Update {
                member: fake(i),
                by: None,
            })
            .collect();
        feeder
            .send_to(&datagram("feeder", fa, &updates), target)
            .unwrap();
    }
    let t0 = Instant::now();
    loop {
        let n = node.membership.send(GetMembers).await.unwrap().len();
        if n > TABLE {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "table has {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ids: Vec<NodeId> = (0..TABLE).map(|i| fake(i).id).collect();
    let cases: Vec<(&str, Vec<Msg>)> = vec![
        (
            "ping",
            vec![Msg::Ping {
                seq: 1,
                target: NodeId::new("target"),
            }],
        ),
        ("ack", vec![Msg::Ack { seq: 1 }]),
        (
            "ping-req",
            vec![Msg::PingReq {
                seq: 1,
                target: fake(0).id,
                addr: fake(0).addr,
            }],
        ),
        ("nack", vec![Msg::Nack { seq: 1 }]),
        (
            "update",
            vec![Msg::Update {
                member: fake(TABLE + 1),
                by: None,
            }],
        ),
        (
            "sync-start join",
            vec![Msg::SyncStart {
                hash: 0,
                join: true,
            }],
        ),
        (
            "sync-start",
            vec![Msg::SyncStart {
                hash: 1,
                join: false,
            }],
        ),
        (
            "sync-digest",
            vec![Msg::SyncDigest {
                round: 1,
                page: 0,
                pages: 1,
                entries: vec![DigestEntry {
                    id: NodeId::new("zzz"),
                    incarnation: 1,
                    state: MemberState::Alive,
                    services_version: 0,
                }],
            }],
        ),
        (
            "sync-want (one id 20 times)",
            vec![Msg::SyncWant {
                ids: vec![ids[3].clone(); 20],
            }],
        ),
        ("sync-want (all ids)", vec![Msg::SyncWant { ids }]),
        (
            "state",
            vec![Msg::State {
                member: fake(TABLE + 2),
            }],
        ),
        ("discover", vec![Msg::Discover]),
        ("discover-reply", vec![Msg::DiscoverReply]),
        (
            "key-op",
            vec![Msg::key_op(
                KeyOpKind::Install,
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
            )],
        ),
    ];
    // Each type from its own fresh address, all at once; the attackers never
    // answer the node's verification ping.
    let mut attacks = Vec::new();
    for (i, (name, msgs)) in cases.into_iter().enumerate() {
        let s = socket();
        let a = s.local_addr().unwrap();
        let d = datagram(&format!("stranger-{i}"), a, &msgs);
        s.send_to(&d, target).unwrap();
        attacks.push((name, s, d.len()));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut worst = 0.0f64;
    let mut report = String::from("\ndatagram type                  sent  back  factor\n");
    for (name, s, sent) in &attacks {
        let back = drain(s);
        let factor = back as f64 / *sent as f64;
        worst = worst.max(factor);
        report += &format!("{name:<28} {sent:>6} {back:>5}  {factor:.2}\n");
    }
    println!("{report}worst factor: {worst:.2}");
    assert!(worst <= 2.0, "amplification above 2:{report}");
    assert!(
        gossip::metrics::Metrics::get(&node.metrics.amplification_held) > 0,
        "the big answers were held, not sent:{report}"
    );
}

#[actix::test]
async fn a_ping_req_for_a_stranger_makes_the_node_ping_no_one() {
    let node = start_node("relay", 2).await;
    let victim = socket();
    let attacker = socket();
    let a = attacker.local_addr().unwrap();
    for seq in 0..10 {
        let d = datagram(
            "attacker",
            a,
            &[Msg::PingReq {
                seq,
                target: NodeId::new("victim"),
                addr: victim.local_addr().unwrap(),
            }],
        );
        attacker.send_to(&d, node.addr).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(drain(&victim), 0, "the victim got pinged");
    assert_eq!(
        gossip::metrics::Metrics::get(&node.metrics.ping_req_refused),
        10
    );
}
