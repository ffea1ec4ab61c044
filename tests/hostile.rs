//! 100,000 hostile datagrams at a running node: random bytes, truncated and
//! oversized datagrams, and well-formed datagrams that lie (false suspicions
//! and deaths of real members, thousands of invented members, absurd
//! incarnations, bogus push-pull pages, ping-reqs, join requests). The node
//! must not crash, the cluster must stay healthy, and the node's memory must
//! stay bounded. The exact growth is reported by `bench/loopback.py` and in
//! SECURITY.md; this test asserts a generous bound.

mod common;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use gossip::protocol::services::{Service, ServiceSet};
use gossip::protocol::wire::{encode_msg, frame_plain, DigestEntry, EncodedMsg, Framer, Msg};
use gossip::protocol::{Member, MemberState, NodeId};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn lie(rng: &mut SmallRng, real: &[(String, u16)], target_port: u16) -> Msg {
    let fake_id = || NodeId::new(&format!("fake-{}", rand::thread_rng().gen_range(0..3000)));
    match rng.gen_range(0..9) {
        0 | 1 => {
            let (id, port) = &real[rng.gen_range(0..real.len())];
            let state =
                [MemberState::Suspect, MemberState::Dead, MemberState::Left][rng.gen_range(0..3)];
            let member = Member {
                state,
                ..Member::new_alive(
                    NodeId::new(id),
                    format!("127.0.0.1:{port}").parse().unwrap(),
                    rng.gen_range(0..4),
                )
            };
            Msg::Update {
                member,
                by: Some(fake_id()),
            }
        }
        2 | 3 => {
            let mut member = Member::new_alive(
                fake_id(),
                format!("127.0.0.1:{}", rng.gen_range(1..65535))
                    .parse()
                    .unwrap(),
                rng.gen(),
            );
            if rng.gen_bool(0.5) {
                member.incarnation = rng.gen_range(0..10);
                member.services = ServiceSet::new(rng.gen(), vec![Service::new("evil", 666)]);
            }
            Msg::Update { member, by: None }
        }
        4 => Msg::PingReq {
            seq: rng.gen(),
            target: fake_id(),
            addr: format!("127.0.0.1:{}", target_port).parse().unwrap(),
        },
        5 => Msg::SyncStart {
            hash: rng.gen(),
            join: rng.gen_bool(0.2),
        },
        6 => Msg::SyncDigest {
            round: rng.gen(),
            page: rng.gen(),
            pages: rng.gen(),
            entries: (0..rng.gen_range(0..20))
                .map(|_| DigestEntry {
                    id: fake_id(),
                    incarnation: rng.gen(),
                    state: MemberState::Alive,
                    services_version: rng.gen(),
                })
                .collect(),
        },
        7 => Msg::SyncWant {
            ids: (0..50).map(|_| fake_id()).collect(),
        },
        _ => Msg::Ack { seq: rng.gen() },
    }
}

#[test]
fn a_hundred_thousand_hostile_datagrams_change_nothing() {
    let _g = serial();
    let mut c = Cluster::new("hostile", 3);
    let all = c.spawn_n(3);
    c.wait_all_alive(&all, &all, Duration::from_secs(30));
    let pid = c.nodes[0].pid().unwrap();
    let port = c.nodes[0].port;
    let before = rss_kb(pid);
    let real: Vec<(String, u16)> = c.nodes.iter().map(|n| (n.id.clone(), n.port)).collect();
    let cluster = c.nodes[0].cluster_name.clone();

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    let mut rng = SmallRng::seed_from_u64(42);
    let framer = Framer::new(
        &cluster,
        &NodeId::new("liar"),
        sock.local_addr().unwrap(),
        1400,
        0,
    );
    let valid: Vec<u8> = frame_plain(&framer.pack(&[encode_msg(&Msg::Ack { seq: 1 })]).0[0]);
    let start = Instant::now();
    let mut sent = 0u32;
    for i in 0..100_000u32 {
        let datagram: Vec<u8> = match i % 10 {
            0..=2 => (0..rng.gen_range(0..1500)).map(|_| rng.gen()).collect(),
            3 => {
                let mut d = valid.clone();
                d.truncate(rng.gen_range(0..d.len()));
                d
            }
            4 => (0..rng.gen_range(1500..65_000))
                .map(|_| rng.gen())
                .collect(),
            5 => {
                // A well-formed frame around garbage, and a wrong version.
                let mut d = vec![
                    if rng.gen_bool(0.5) { 1 } else { rng.gen() },
                    rng.gen_range(0..3),
                ];
                d.extend((0..rng.gen_range(0..200)).map(|_| rng.gen::<u8>()));
                d
            }
            _ => {
                let sender = Framer::new(
                    &cluster,
                    &NodeId::new(&format!("liar{}", rng.gen_range(0..50))),
                    sock.local_addr().unwrap(),
                    1400,
                    0,
                );
                let msgs: Vec<EncodedMsg> = (0..rng.gen_range(1..6))
                    .map(|_| encode_msg(&lie(&mut rng, &real, port)))
                    .collect();
                frame_plain(&sender.pack(&msgs).0[0])
            }
        };
        if sock.send_to(&datagram, &to).is_ok() {
            sent += 1;
        }
        if i % 2000 == 0 {
            // Pace a little, so that most datagrams are read rather than
            // dropped by the kernel's socket buffer.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!("sent {sent} hostile datagrams in {:?}", start.elapsed());

    // Still running, and the real members all alive everywhere again.
    c.assert_running(&all);
    let healed = c.wait_all_alive(&all, &all, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kb(pid);
    let stats = http_get(&c.nodes[0].api(), "/v1/stats")
        .and_then(|r| r.json())
        .unwrap();
    println!(
        "healthy {healed:?} after the attack; RSS {before} kB -> {after} kB; decode_errors={} limits_hit={} datagrams_in={}",
        stats["decode_errors"], stats["limits_hit"], stats["datagrams_in"]
    );
    assert!(
        stats["decode_errors"].as_u64().unwrap() > 10_000,
        "garbage was seen and counted"
    );
    assert!(
        after < before + 20_000,
        "RSS grew from {before} kB to {after} kB"
    );
    let view = c.nodes[0].members().unwrap();
    assert!(
        view.len() <= 3 + 3000 + 50,
        "the member table holds only what was claimed: {}",
        view.len()
    );
}
