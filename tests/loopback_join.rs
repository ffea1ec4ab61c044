//! Loopback: a cluster of real `gossip agent` processes forms, and a node
//! started later joins it (issue 2, "Tests").

mod common;

use common::*;
use std::time::Duration;

/// 7 agents all list all 7 alive; an 8th started later is listed by all 8.
#[test]
fn seven_agents_converge_then_an_eighth_joins() {
    let _serial = serial();
    let mut c = Cluster::new("join", 8);
    c.spawn_n(7);
    let first7 = c.all();

    // Every API comes up.
    wait_for(
        "7 APIs to answer /healthz",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            for n in &c.nodes {
                match http_get(&n.api(), "/healthz") {
                    Some(r) if r.status == 200 => {}
                    other => return Err(format!("{} /healthz: {:?}", n.id, other)),
                }
            }
            Ok(())
        },
    );

    let t7 = c.wait_all_alive(&first7, &first7, Duration::from_secs(30));
    eprintln!("7 agents: all list all 7 alive after {t7:?} (after all APIs answered)");

    // The member records carry the documented fields.
    let view = c.nodes[0].members().expect("node1 members");
    for (i, n) in c.nodes.iter().enumerate() {
        let m = view
            .get(&n.id)
            .unwrap_or_else(|| panic!("node1 does not list {}", n.id));
        assert_eq!(m.state, "alive");
        assert_eq!(
            m.addr,
            c.nodes[i].udp_addr(),
            "addr of {} as seen by node1",
            n.id
        );
    }

    // An 8th node, started later, seeded with node1 and node2.
    let eighth = c.spawn(&[]);
    let all8 = c.all();
    let t8 = c.wait_all_alive(&all8, &all8, Duration::from_secs(30));
    eprintln!("8th agent listed alive by all 8 after {t8:?}");

    // Nobody falls out right after joining: 2 s later every node still lists
    // all 8, none dead or left (a transient `suspect` on a busy machine is
    // tolerated).
    std::thread::sleep(Duration::from_secs(2));
    c.assert_running(&all8);
    for &o in &all8 {
        let view = c.nodes[o].members().expect("members");
        assert_eq!(
            view.len(),
            8,
            "{} lists {:?}",
            c.nodes[o].id,
            view.keys().collect::<Vec<_>>()
        );
        for m in view.values() {
            assert!(
                m.state == "alive" || m.state == "suspect",
                "{} lists {} as {}",
                c.nodes[o].id,
                m.id,
                m.state
            );
        }
    }
    assert_eq!(c.nodes[eighth].members().unwrap().len(), 8);
}

/// `gossip members --json` and the table form work against a running agent.
#[test]
fn members_cli_talks_to_the_api() {
    let _serial = serial();
    let mut c = Cluster::new("cli", 2);
    c.spawn_n(2);
    let all = c.all();
    c.wait_all_alive(&all, &all, Duration::from_secs(30));

    let api = c.nodes[0].api();
    let out = std::process::Command::new(GOSSIP)
        .args(["members", "--api", &api, "--json"])
        .output()
        .expect("run gossip members");
    assert!(
        out.status.success(),
        "gossip members --json failed: {:?}",
        out
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("gossip members --json prints JSON");
    let ids: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m.get("id").and_then(|i| i.as_str()))
        .collect();
    assert!(
        ids.contains(&"node1") && ids.contains(&"node2"),
        "ids: {ids:?}"
    );

    let out = std::process::Command::new(GOSSIP)
        .args(["members", "--api", &api])
        .output()
        .expect("run gossip members");
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("node1") && table.contains("node2") && table.contains("alive"),
        "{table}"
    );

    // A dead API address: non-zero exit.
    let dead_api = format!("127.0.0.1:{}", free_base_port(1) + API_OFFSET);
    let out = std::process::Command::new(GOSSIP)
        .args(["members", "--api", &dead_api])
        .output()
        .expect("run gossip members");
    assert!(
        !out.status.success(),
        "gossip members against a closed port must fail"
    );
}
