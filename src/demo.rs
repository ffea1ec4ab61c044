//! `gossip demo`: a whole cluster in one process on 127.0.0.1, each node with
//! its own actors and its own UDP socket, narrated step by step: the cluster
//! forms, a service is registered and found, one node leaves gracefully,
//! another crashes and is detected. It exits by itself.

use actix::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::client::{members_table, services_table};
use crate::api::MemberView;
use crate::config::{Config, ServiceList, StringList};
use crate::messages::*;
use crate::node::{start_on_udp, NodeHandle};
use crate::protocol::services::{catalog, Service};
use crate::protocol::{MemberState, NodeId};
use crate::seeds::LiteralResolver;

pub fn run(nodes: usize) -> i32 {
    System::new().block_on(async move {
        match demo(nodes.max(3)).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("demo failed: {e}");
                1
            }
        }
    })
}

async fn view(node: &NodeHandle) -> Vec<crate::protocol::Member> {
    node.snapshot.borrow().members().cloned().collect()
}

/// Waits until `check` holds for every node in `nodes`, up to `limit`.
async fn wait_all(
    nodes: &[NodeHandle],
    limit: Duration,
    check: impl Fn(&[crate::protocol::Member]) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut all = true;
        for n in nodes {
            if !check(&view(n).await) {
                all = false;
                break;
            }
        }
        if all {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn state_of(ms: &[crate::protocol::Member], id: &NodeId) -> Option<MemberState> {
    ms.iter().find(|m| &m.id == id).map(|m| m.state)
}

async fn print_view(title: &str, node: &NodeHandle) {
    let ms: Vec<MemberView> = view(node).await.iter().map(MemberView::from).collect();
    println!(
        "\n{title} (as {} sees it):\n{}\n",
        node.id,
        members_table(&ms)
    );
}

async fn demo(n: usize) -> Result<(), String> {
    println!("== Gossip demo: {n} nodes on 127.0.0.1, one process, one UDP socket each ==");
    println!("(the nodes' own logs are off; RUST_LOG=info shows them, on stderr)");
    let mut nodes: Vec<NodeHandle> = Vec::new();
    let mut seed: Option<SocketAddr> = None;
    let t0 = Instant::now();
    for i in 1..=n {
        let cfg = Config {
            node_id: format!("node{i}"),
            seed_nodes: StringList(seed.iter().map(|s| s.to_string()).collect()),
            services: ServiceList::names(if i % 2 == 1 {
                vec!["web".into()]
            } else {
                vec![]
            }),
            stats_interval_ms: 3_600_000,
            ..Config::default()
        };
        let node = start_on_udp(
            &cfg,
            "127.0.0.1:0".parse().unwrap(),
            i as u64,
            Box::new(LiteralResolver),
        )
        .await
        .map_err(|e| format!("cannot bind a UDP socket on 127.0.0.1: {e}"))?;
        let addr = node.addr;
        println!(
            "started {} on {addr}{}",
            node.id,
            seed.map(|s| format!(", joining through {s}"))
                .unwrap_or_default()
        );
        seed.get_or_insert(addr);
        nodes.push(node);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = t0.elapsed();

    // 1. Convergence, shown as how many members each node sees alive.
    println!("\n-- 1. the cluster forms: alive members seen by each node --");
    let start = Instant::now();
    loop {
        let mut counts = Vec::new();
        for node in &nodes {
            counts.push(
                view(node)
                    .await
                    .iter()
                    .filter(|m| m.state == MemberState::Alive)
                    .count(),
            );
        }
        let line: Vec<String> = nodes
            .iter()
            .zip(&counts)
            .map(|(nd, c)| format!("{}={c}", nd.id))
            .collect();
        println!(
            "  t+{:>5} ms  {}",
            start.elapsed().as_millis(),
            line.join(" ")
        );
        if counts.iter().all(|c| *c == n) {
            println!(
                "converged: every node sees all {n} alive, {} ms after the last start",
                start.elapsed().as_millis()
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(15) {
            return Err("the cluster did not converge within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = started;
    print_view("Members", &nodes[0]).await;

    // 2. A service registered on one node is found on another.
    println!(
        "-- 2. register service 'api' on node2, look it up from node{} --",
        n - 2
    );
    let mut api = Service::new("api", 9090);
    api.tags = vec!["v1".into()];
    nodes[1]
        .registry
        .send(Register::plain(api))
        .await
        .map_err(|e| e.to_string())??;
    let spread = wait_all(&nodes[n - 3..n - 2], Duration::from_secs(10), |ms| {
        catalog(ms).contains_key("api")
    })
    .await
    .ok_or("the registration did not reach the other node")?;
    let ms = view(&nodes[n - 3]).await;
    println!(
        "visible at node{} after {} ms:\n{}\n",
        n - 2,
        spread.as_millis(),
        services_table(&catalog(&ms))
    );

    // 3. Graceful leave.
    let leaver = nodes[n - 2].clone();
    println!("-- 3. {} leaves gracefully --", leaver.id);
    let others: Vec<NodeHandle> = nodes
        .iter()
        .filter(|x| x.id != leaver.id)
        .cloned()
        .collect();
    leaver.leave.send(Leave).await.map_err(|e| e.to_string())?;
    let t = wait_all(&others, Duration::from_secs(10), |ms| {
        state_of(ms, &leaver.id) == Some(MemberState::Left)
    })
    .await
    .ok_or("the leave did not reach everyone")?;
    println!(
        "{} is 'left' in every other node's view after {} ms",
        leaver.id,
        t.as_millis()
    );

    // 4. A crash: the node goes silent without a word.
    let victim = nodes[n - 1].clone();
    println!("\n-- 4. {} crashes (goes silent) --", victim.id);
    victim.transport.do_send(Silence);
    victim.failure.do_send(StopActivity);
    victim.gossip.do_send(StopActivity);
    let survivors: Vec<NodeHandle> = others
        .iter()
        .filter(|x| x.id != victim.id)
        .cloned()
        .collect();
    let mut suspected_at = None;
    let start = Instant::now();
    let dead_after = loop {
        let states: Vec<Option<MemberState>> =
            futures_util::future::join_all(survivors.iter().map(view))
                .await
                .iter()
                .map(|ms| state_of(ms, &victim.id))
                .collect();
        if suspected_at.is_none() && states.contains(&Some(MemberState::Suspect)) {
            suspected_at = Some(start.elapsed());
            println!("  t+{:>5} ms  suspected", start.elapsed().as_millis());
        }
        if states.iter().all(|s| *s == Some(MemberState::Dead)) {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the crash was not detected within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "  t+{:>5} ms  dead in every survivor's view",
        dead_after.as_millis()
    );
    print_view("Final membership", &nodes[0]).await;
    let ms = view(&nodes[0]).await;
    println!("Services now:\n{}\n", services_table(&catalog(&ms)));
    println!("== demo finished ==");
    Ok(())
}
