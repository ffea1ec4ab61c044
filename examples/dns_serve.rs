//! The agent's DNS server (`gossip::dns`) over a published snapshot of a
//! large catalog, for bench/dns.sh: 1,000 members, each offering 3 of 1,000
//! services, so every service has 3 instances on 3 nodes.
//!
//!   cargo run --release --example dns_serve -- PORT [ZONE_FILE]
//!
//! Serves UDP and TCP on 127.0.0.1:PORT until killed. With ZONE_FILE it
//! first writes the same records as a zone file for nsd (bench/dns.sh
//! serves it with nsd and runs the same dnsperf command against both).
//! The addresses in the records are data only: nothing is sent to them.

use gossip::dns::{start, DnsSettings};
use gossip::metrics::Metrics;
use gossip::protocol::services::{Service, ServiceSet};
use gossip::protocol::view::View;
use gossip::protocol::{Member, NodeId};
use gossip::snapshot::Publisher;
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

const NODES: u32 = 1000;
const SERVICES: u32 = 1000;
const PER_NODE: u32 = 3;

fn node_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: dns_serve PORT [ZONE_FILE]");
    let mut view = View::new(NODES as usize + 1);
    let now = tokio::time::Instant::now();
    let mut zone = String::from(
        "$ORIGIN gossip.\n$TTL 0\n@ IN SOA ns.gossip. hostmaster.gossip. 1 3600 600 86400 0\n@ IN NS ns.gossip.\nns IN A 127.0.0.1\n",
    );
    for i in 0..NODES {
        let id = NodeId::new(&format!("n{i}"));
        let services = (0..PER_NODE)
            .map(|k| {
                let s = (i + k) % SERVICES;
                Service::new(&format!("svc{s}"), 8000 + k as u16)
            })
            .collect::<Vec<_>>();
        let _ = writeln!(zone, "n{i}.node IN A {}", node_ip(i));
        for svc in &services {
            let _ = writeln!(zone, "{}.service IN A {}", svc.name, node_ip(i));
            let _ = writeln!(
                zone,
                "{}.service IN SRV 1 1 {} n{i}.node.gossip.",
                svc.name, svc.port
            );
        }
        let addr = SocketAddr::new(node_ip(i).into(), 7946);
        let member = Member {
            services: ServiceSet::new(1, services),
            ..Member::new_alive(id.clone(), addr, 1)
        };
        if view.apply(&member, now).is_err() {
            panic!("member {i} refused");
        }
    }
    if let Some(path) = args.get(2) {
        std::fs::write(path, zone).expect("write the zone file");
    }
    let (_publisher, rx) = Publisher::new(NodeId::new("n0"), &view);
    let settings = DnsSettings {
        domain: "gossip.".into(),
        ttl: 0,
        a_record_limit: 0,
        only_passing: false,
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _server = start(addr, settings, Vec::new(), rx, Arc::new(Metrics::default()))
        .expect("bind the DNS port");
    println!("serving on {addr}");
    loop {
        std::thread::park();
    }
}
