//! Loopback: one identity per name (issue 12, item 3). Two real agents
//! started with the same NODE_ID used to refute each other forever (the
//! incarnation climbing without end, the address flapping). Now the
//! newcomer probes the holder, finds it alive and exits 2 with one line
//! naming it; the holder keeps the name.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_second_agent_with_a_taken_node_id_exits_2_and_the_holder_keeps_it() {
    let _serial = serial();
    let mut c = Cluster::new("samename", 4);
    c.spawn_n(3);
    let all = c.all();
    c.wait_all_alive(&all, &all, Duration::from_secs(40));
    // The holder has been a member past the newcomer window.
    std::thread::sleep(Duration::from_secs(22));
    let holder = 2;
    let holder_id = c.nodes[holder].id.clone();
    let holder_addr = c.nodes[holder].udp_addr();
    let dup = c.spawn(&[("NODE_ID", holder_id.as_str())]);
    let status = c.nodes[dup].wait_exit(Duration::from_secs(30));
    let log = c.nodes[dup].log_tail(50);
    let Some(status) = status else {
        c.nodes[dup].sigkill();
        panic!("the newcomer with {holder_id}'s NODE_ID kept running:\n{log}");
    };
    assert_eq!(status.code(), Some(2), "{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("is already held by the live node at"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(&holder_addr), "{}", lines[0]);
    // The holder is still running, and every node lists it alive at its own
    // address, at a small incarnation (no war).
    c.assert_running(&all);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<Option<Member>> = all
            .iter()
            .map(|&o| {
                c.nodes[o]
                    .members()
                    .and_then(|v| v.get(&holder_id).cloned())
            })
            .collect();
        let settled = views.iter().all(|m| {
            m.as_ref()
                .is_some_and(|m| m.state == "alive" && m.addr == holder_addr)
        });
        if settled {
            let top = views.iter().flatten().map(|m| m.incarnation).max();
            assert!(top <= Some(3), "incarnations climbed: {views:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{holder_id} not listed alive at {holder_addr} everywhere: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
