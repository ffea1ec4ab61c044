//! Writes the fuzzer's seed corpus (fuzz/corpus/datagram): one valid datagram
//! of each message kind. `cargo run --example make_fuzz_corpus`.
use gossip::protocol::services::{Service, ServiceSet};
use gossip::protocol::wire::*;
use gossip::protocol::*;

fn main() {
    let me = NodeId::new("node1");
    let addr = "127.0.0.1:8001".parse().unwrap();
    let f = Framer::new("default", &me, addr, 1400, 0);
    let member = Member {
        services: ServiceSet::new(3, vec![Service::new("web", 80)]),
        ..Member::new_alive(NodeId::new("node2"), "10.0.0.2:8002".parse().unwrap(), 4)
    };
    let msgs = [
        (
            "ping",
            Msg::Ping {
                seq: 1,
                target: NodeId::new("node2"),
            },
        ),
        ("ack", Msg::Ack { seq: 1 }),
        (
            "ping-req",
            Msg::PingReq {
                seq: 2,
                target: NodeId::new("node3"),
                addr,
            },
        ),
        ("nack", Msg::Nack { seq: 2 }),
        (
            "update",
            Msg::Update {
                member: member.clone(),
                by: Some(me.clone()),
            },
        ),
        ("state", Msg::State { member }),
        (
            "sync-start",
            Msg::SyncStart {
                hash: 99,
                join: true,
            },
        ),
        (
            "sync-digest",
            Msg::SyncDigest {
                round: 1,
                page: 0,
                pages: 1,
                entries: vec![DigestEntry {
                    id: me.clone(),
                    incarnation: 1,
                    state: MemberState::Suspect,
                    services_version: 2,
                }],
            },
        ),
        (
            "sync-want",
            Msg::SyncWant {
                ids: vec![me.clone()],
            },
        ),
        ("discover", Msg::Discover),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/datagram");
    for (name, m) in msgs {
        let d = frame_plain(&f.pack(&[encode_msg(&m)]).0[0]);
        std::fs::write(format!("{dir}/{name}"), d).unwrap();
    }
}
