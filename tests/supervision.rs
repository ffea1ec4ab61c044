//! Every actor of a node is made to panic in turn (through the test-only
//! `Crash` message); the supervisor restarts it and the node is healthy again
//! within 2 s, with no member and no service lost. Three in-process nodes on
//! 127.0.0.1.

use std::time::{Duration, Instant};

use gossip::actors::supervisor::Crash;
use gossip::config::{Config, ServiceList, StringList};
use gossip::messages::*;
use gossip::metrics::Metrics;
use gossip::node::{start_on_udp, NodeHandle};
use gossip::protocol::services::{catalog, Service};
use gossip::protocol::MemberState;
use gossip::seeds::LiteralResolver;

async fn healthy(nodes: &[NodeHandle]) -> Result<(), String> {
    for n in nodes {
        let ms = n
            .membership
            .send(GetMembers)
            .await
            .map_err(|e| format!("{}: {e}", n.id))?;
        let alive = ms.iter().filter(|m| m.state == MemberState::Alive).count();
        if alive != nodes.len() {
            return Err(format!("{} sees {alive} alive", n.id));
        }
        let cat = catalog(&ms);
        if cat.get("api").map_or(0, |v| v.len()) != 1
            || cat.get("web").map_or(0, |v| v.len()) != nodes.len()
        {
            return Err(format!(
                "{} sees services {:?}",
                n.id,
                cat.keys().collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

async fn wait_healthy(nodes: &[NodeHandle], limit: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        match healthy(nodes).await {
            Ok(()) => return Ok(t0.elapsed()),
            Err(e) if t0.elapsed() > limit => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

#[actix::test]
async fn each_actor_comes_back_after_a_panic_and_nothing_is_lost() {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..3 {
        let cfg = Config {
            node_id: format!("sup{i}"),
            seed_nodes: StringList(
                nodes
                    .first()
                    .map(|n| vec![n.addr.to_string()])
                    .unwrap_or_default(),
            ),
            services: ServiceList::names(vec!["web".into()]),
            ..Config::default()
        };
        nodes.push(
            start_on_udp(
                &cfg,
                "127.0.0.1:0".parse().unwrap(),
                i,
                Box::new(LiteralResolver),
            )
            .await
            .unwrap(),
        );
    }
    nodes[0]
        .registry
        .send(Register::plain(Service::new("api", 9090)))
        .await
        .unwrap()
        .unwrap();
    wait_healthy(&nodes, Duration::from_secs(20))
        .await
        .expect("the cluster forms");

    let n = nodes[0].clone();
    type CrashOne = Box<dyn Fn()>;
    let crashes: Vec<(&str, CrashOne)> = vec![
        (
            "transport",
            Box::new({
                let a = n.transport.clone();
                move || a.do_send(Crash)
            }),
        ),
        (
            "membership",
            Box::new({
                let a = n.membership.clone();
                move || a.do_send(Crash)
            }),
        ),
        (
            "rumor",
            Box::new({
                let a = n.rumor.clone();
                move || a.do_send(Crash)
            }),
        ),
        (
            "failure detector",
            Box::new({
                let a = n.failure.clone();
                move || a.do_send(Crash)
            }),
        ),
        (
            "gossip",
            Box::new({
                let a = n.gossip.clone();
                move || a.do_send(Crash)
            }),
        ),
        (
            "registry",
            Box::new({
                let a = n.registry.clone();
                move || a.do_send(Crash)
            }),
        ),
        (
            "leave coordinator",
            Box::new({
                let a = n.leave.clone();
                move || a.do_send(Crash)
            }),
        ),
    ];
    for (k, (name, crash)) in crashes.iter().enumerate() {
        crash();
        let took = wait_healthy(&nodes, Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("after crashing the {name}: not healthy within 2 s: {e}"));
        assert_eq!(
            Metrics::get(&n.metrics.actor_restarts),
            k as u64 + 1,
            "the {name} was restarted once"
        );
        println!("{name}: restarted, healthy after {} ms", took.as_millis());
    }
    // And the restarted actors still work: a new registration spreads.
    nodes[0]
        .registry
        .send(Register::plain(Service::new("late", 1)))
        .await
        .unwrap()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let ms = nodes[2].membership.send(GetMembers).await.unwrap();
        if catalog(&ms).contains_key("late") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "a registration after the restarts did not spread"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
