//! Loopback: graceful leave and service discovery with real processes
//! (issue 4, "Tests").

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(30);
/// A service change travels as a rumor (normally well under a second) and, for
/// a node that missed every copy, by anti-entropy (push_pull_interval, 30 s by
/// default): the bound covers the latter.
const SPREAD: Duration = Duration::from_secs(45);

fn nodes_listed(c: &Cluster, observer: usize, service: &str) -> Result<Vec<String>, String> {
    let n = &c.nodes[observer];
    let inst = n
        .instances(service)
        .ok_or_else(|| format!("{}: GET /v1/services/{service} failed", n.id))?;
    let mut ids: Vec<String> = inst.into_iter().map(|i| i.node).collect();
    ids.sort();
    Ok(ids)
}

/// Wait until every observer lists exactly `owners` (node ids) for `service`.
fn wait_service_owners(
    c: &Cluster,
    observers: &[usize],
    service: &str,
    owners: &[&str],
    timeout: Duration,
) -> Duration {
    let mut want: Vec<String> = owners.iter().map(|s| s.to_string()).collect();
    want.sort();
    wait_for(
        &format!(
            "{} nodes to list {service} on {:?}",
            observers.len(),
            owners
        ),
        timeout,
        Duration::from_millis(200),
        || {
            for &o in observers {
                let got = nodes_listed(c, o, service)?;
                if got != want {
                    return Err(format!("{} lists {service} on {:?}", c.nodes[o].id, got));
                }
            }
            Ok(())
        },
    )
}

/// A service registered on one node (PUT /v1/services) is listed by all;
/// one from SERVICES too; bad input gets 400; deregistration spreads.
#[test]
fn registered_service_is_listed_by_all() {
    let _serial = serial();
    let mut c = Cluster::new("svc", 7);
    c.spawn(&[]);
    c.spawn(&[("SERVICES", "web:8080,cache")]);
    for _ in 2..7 {
        c.spawn(&[]);
    }
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);

    // From the SERVICES variable.
    wait_service_owners(&c, &all, "web", &["node2"], SPREAD);
    wait_service_owners(&c, &all, "cache", &["node2"], SPREAD);

    // Registered at runtime on node3.
    let api3 = c.nodes[2].api();
    let r = http_put_json(
        &api3,
        "/v1/services",
        &json!({"name": "api", "port": 9090, "tags": ["v1"], "meta": {"k": "v"}}),
    )
    .expect("PUT /v1/services answered");
    assert_eq!(r.status, 200, "PUT /v1/services: {}", r.body);
    let t = wait_service_owners(&c, &all, "api", &["node3"], SPREAD);
    eprintln!("registration on node3 listed by all 7 after {t:?}");

    // The instance carries the documented fields, at every node.
    for &o in &all {
        let inst = c.nodes[o].instances("api").unwrap();
        assert_eq!(inst.len(), 1);
        let i = &inst[0];
        assert_eq!(i.node, "node3");
        assert_eq!(
            i.addr, "127.0.0.1",
            "addr of the instance at {}",
            c.nodes[o].id
        );
        assert_eq!(i.port, 9090);
        assert_eq!(i.tags, vec!["v1".to_string()]);
        assert_eq!(i.state, "alive");
    }
    // GET /v1/services lists everything by name.
    let allsvc = http_get(&c.nodes[6].api(), "/v1/services")
        .unwrap()
        .json()
        .expect("JSON");
    for name in ["web", "cache", "api"] {
        assert!(
            allsvc
                .get(name)
                .and_then(|v| v.as_array())
                .map(|a| !a.is_empty())
                .unwrap_or(false),
            "{name} missing in {allsvc}"
        );
    }
    // An unknown service is an empty array, not an error.
    let none = http_get(&c.nodes[0].api(), "/v1/services/nosuch").unwrap();
    assert_eq!(none.status, 200);
    assert_eq!(none.json(), Some(json!([])));

    // Bad input: 400 with a JSON error, and nothing stored.
    for bad in [
        json!({"name": "Bad_Name", "port": 80}),
        json!({"name": "ok-name", "port": 0}),
        json!({"name": "ok-name", "port": 70000}),
        json!({"port": 80}),
    ] {
        let r = http_put_json(&api3, "/v1/services", &bad).expect("PUT answered");
        assert_eq!(
            r.status, 400,
            "PUT {bad} should be 400, got {} {}",
            r.status, r.body
        );
        assert!(
            r.json().and_then(|v| v.get("error").cloned()).is_some(),
            "400 body has an error field: {}",
            r.body
        );
    }
    assert_eq!(
        nodes_listed(&c, 2, "ok-name").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        http_delete(&api3, "/v1/services/nosuch").unwrap().status,
        404
    );

    // Deregistration spreads.
    let r = http_delete(&api3, "/v1/services/api").expect("DELETE answered");
    assert_eq!(r.status, 200, "DELETE: {}", r.body);
    let t = wait_service_owners(&c, &all, "api", &[], SPREAD);
    eprintln!("deregistration on node3 seen by all 7 after {t:?}");
}

/// SIGTERM: exit code 0, `left` (never `dead`) everywhere, its services gone.
/// Then the node restarts with the same NODE_ID and rejoins with a higher
/// incarnation, services back.
#[test]
fn sigterm_leaves_cleanly_and_a_restart_rejoins() {
    let _serial = serial();
    let mut c = Cluster::new("leave", 7);
    for i in 0..7 {
        if i == 3 {
            c.spawn(&[("SERVICES", "cache:7000")]);
        } else {
            c.spawn(&[]);
        }
    }
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    wait_service_owners(&c, &all, "cache", &["node4"], SPREAD);
    let inc_before = c.nodes[0].members().unwrap()["node4"].incarnation;

    let leaver = 3;
    let others = c.except(&[leaver]);
    c.nodes[leaver].sigterm();
    let status = c.nodes[leaver]
        .wait_exit(Duration::from_secs(15))
        .expect("node4 exits within 15 s of SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "node4 exit status after SIGTERM: {status:?}"
    );

    let mut left_inc = 0u64;
    let t = c.wait_state_everywhere(&others, leaver, "left", SPREAD, |c, o, view| {
        if let Some(m) = view.get("node4") {
            assert_ne!(
                m.state, "dead",
                "{} reports gracefully leaving node4 as dead",
                c.nodes[o].id
            );
            if m.state == "left" {
                left_inc = left_inc.max(m.incarnation);
            }
        }
    });
    eprintln!(
        "SIGTERM: node4 left at all 6 others after {t:?} (incarnation {inc_before} -> {left_inc})"
    );
    wait_service_owners(&c, &others, "cache", &[], SPREAD);
    // Still `left`, not `dead`, a little later; the others are all alive.
    std::thread::sleep(Duration::from_secs(3));
    for &o in &others {
        let view = c.nodes[o].members().unwrap();
        assert_eq!(
            view["node4"].state, "left",
            "{} view of node4 3 s after leave",
            c.nodes[o].id
        );
    }
    c.wait_all_alive(&others, &others, CONVERGE);

    // Restart with the same NODE_ID (same ports, same SERVICES).
    c.nodes[leaver].start();
    let t = c.wait_all_alive(&all, &all, CONVERGE);
    let mut incs = Vec::new();
    for &o in &all {
        let inc = c.nodes[o].members().unwrap()["node4"].incarnation;
        incs.push(inc);
    }
    eprintln!("restarted node4 alive everywhere after {t:?}, incarnations seen {incs:?}");
    for (&o, &inc) in all.iter().zip(&incs) {
        assert!(
            inc > left_inc,
            "{} lists restarted node4 alive with incarnation {inc}, not above its left incarnation {left_inc}",
            c.nodes[o].id
        );
    }
    wait_service_owners(&c, &all, "cache", &["node4"], SPREAD);

    // POST /v1/leave works the same way: 202, exit 0, left everywhere.
    let leaver2 = 5;
    let r = http_post_json(&c.nodes[leaver2].api(), "/v1/leave", &json!({}))
        .expect("POST /v1/leave answered");
    assert_eq!(r.status, 202, "POST /v1/leave: {}", r.body);
    let status = c.nodes[leaver2]
        .wait_exit(Duration::from_secs(15))
        .expect("node6 exits after POST /v1/leave");
    assert_eq!(status.code(), Some(0));
    let others2 = c.except(&[leaver2]);
    c.wait_state_everywhere(&others2, leaver2, "left", SPREAD, |_, _, _| {});
}

/// SIGKILL: once a node reports the victim `dead`, none of its services is
/// listed by that node any more; eventually dead everywhere, services gone.
#[test]
fn sigkill_services_gone_once_dead() {
    let _serial = serial();
    let mut c = Cluster::new("svckill", 7);
    for i in 0..7 {
        if i == 4 {
            c.spawn(&[("SERVICES", "web:8080,db:5432")]);
        } else if i == 1 {
            c.spawn(&[("SERVICES", "web:8081")]);
        } else {
            c.spawn(&[]);
        }
    }
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    wait_service_owners(&c, &all, "web", &["node2", "node5"], SPREAD);
    wait_service_owners(&c, &all, "db", &["node5"], SPREAD);

    let victim = 4;
    c.nodes[victim].sigkill();
    let survivors = c.except(&[victim]);
    let t = c.wait_state_everywhere(
        &survivors,
        victim,
        "dead",
        Duration::from_secs(40),
        |c, o, view| {
            if view
                .get("node5")
                .map(|m| m.state == "dead")
                .unwrap_or(false)
            {
                // The members view said dead; a services view fetched after it
                // must not list node5 any more.
                let web = nodes_listed(c, o, "web").unwrap();
                let db = nodes_listed(c, o, "db").unwrap();
                assert!(
                    !web.contains(&"node5".to_string()) && db.is_empty(),
                    "{} reports node5 dead but still lists its services: web {web:?} db {db:?}",
                    c.nodes[o].id
                );
            }
        },
    );
    eprintln!("SIGKILL: node5 dead at all 6 survivors after {t:?}");
    wait_service_owners(&c, &survivors, "web", &["node2"], SPREAD);
    wait_service_owners(&c, &survivors, "db", &[], SPREAD);
}
