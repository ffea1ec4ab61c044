//! Loopback: health checks with real agent processes (issue 13, "Tests").
//! The checked endpoint is an HTTP server inside this test, on 127.0.0.1,
//! which the test turns healthy and unhealthy.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(60);
/// A status change is a rumor: normally well under a second to reach all;
/// generous for a busy 2-core machine.
const FOLLOW: Duration = Duration::from_secs(30);

/// An HTTP server on 127.0.0.1 answering with the status in `code`; stops
/// when the returned flag is set (and it is, on drop of the guard).
struct Endpoint {
    port: u16,
    code: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let code = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (code.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut sock, _)) => {
                        let _ = sock.set_nonblocking(false);
                        let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut buf = [0u8; 2048];
                        let _ = sock.read(&mut buf);
                        let code = c.load(Ordering::SeqCst);
                        let _ = write!(
                            sock,
                            "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        );
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Endpoint { port, code, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/healthz", self.port)
    }

    fn set(&self, code: u16) {
        self.code.store(code, Ordering::SeqCst);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn statuses(api: &str, path: &str) -> Result<Vec<(String, String)>, String> {
    let r = http_get(api, path).ok_or_else(|| format!("{api}: no answer"))?;
    let v = r
        .json()
        .ok_or_else(|| format!("{api}: not JSON: {}", r.body))?;
    Ok(v.as_array()
        .ok_or_else(|| format!("{api}: not a list: {v}"))?
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
            (s("node"), s("status"))
        })
        .collect())
}

/// Every node's `?passing` lookup of web lists exactly `want` nodes, and the
/// plain lookup gives owner's status `status`.
fn wait_everywhere(c: &Cluster, want_passing: &[&str], status: &str) -> Duration {
    let want: Vec<String> = want_passing.iter().map(|s| s.to_string()).collect();
    wait_for(
        &format!("all nodes to see web {status}"),
        FOLLOW,
        Duration::from_millis(100),
        || {
            for n in &c.nodes {
                let passing: Vec<String> = statuses(&n.api(), "/v1/services/web?passing")?
                    .into_iter()
                    .map(|(node, _)| node)
                    .collect();
                if passing != want {
                    return Err(format!("{} ?passing lists {passing:?}", n.id));
                }
                let all = statuses(&n.api(), "/v1/services/web")?;
                if all.iter().any(|(_, s)| s != status) {
                    return Err(format!("{} lists {all:?}", n.id));
                }
            }
            Ok(())
        },
    )
}

/// 20 agents: the owner's check fails, every node's lookup drops the
/// instance (its node stays alive); it recovers, every lookup lists it.
#[test]
fn twenty_agents_follow_a_status_change() {
    let _serial = serial();
    let web = Endpoint::start();
    let mut c = Cluster::new("hc20", 20);
    let check = format!("{} interval=1s timeout=500ms", web.url());
    c.spawn(&[
        ("SERVICES", "web:8080"),
        ("SERVICE_CHECK_WEB", check.as_str()),
    ]);
    for _ in 1..20 {
        c.spawn(&[]);
    }
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    wait_everywhere(&c, &["node1"], "passing");

    web.set(503);
    let took = wait_everywhere(&c, &[], "critical");
    eprintln!("critical everywhere after {took:?}");
    c.check_all_alive(&all, &all)
        .expect("the owner stays alive");
    // Prometheus SD drops it too.
    let sd = http_get(&c.nodes[5].api(), "/v1/sd/prometheus?service=web").unwrap();
    assert_eq!(sd.json().unwrap(), json!([]));

    web.set(200);
    wait_everywhere(&c, &["node1"], "passing");
    let sd = http_get(&c.nodes[5].api(), "/v1/sd/prometheus?service=web").unwrap();
    assert_eq!(
        sd.json().unwrap()[0]["labels"]["__meta_gossip_health"],
        "passing"
    );
}

fn gossip_cli(api: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(GOSSIP)
        .args(args)
        .env("API_ADDR", api)
        .env_remove("API_TOKEN")
        .output()
        .expect("run gossip");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Registration with checks through the API and the CLI, TTL reports, the
/// check listing with output, and bad definitions refused with nothing
/// stored changed.
#[test]
fn checks_through_the_api_and_the_cli() {
    let _serial = serial();
    let web = Endpoint::start();
    let mut c = Cluster::new("hcapi", 2);
    c.spawn_n(2);
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    let api = c.nodes[0].api();

    // CLI: register with an http check; it passes.
    let (ok, out) = gossip_cli(
        &api,
        &[
            "register",
            "web",
            "--port",
            "8080",
            "--http",
            &web.url(),
            "--interval",
            "200ms",
        ],
    );
    assert!(ok, "{out}");
    wait_for(
        "web passing on node2",
        FOLLOW,
        Duration::from_millis(100),
        || match statuses(&c.nodes[1].api(), "/v1/services/web")?.as_slice() {
            [(n, s)] if n == "node1" && s == "passing" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // API: a TTL check, reported through the CLI.
    let r = http_put_json(
        &api,
        "/v1/services",
        &json!({"name": "job", "port": 9000, "checks": [{"ttl": "1m", "id": "job-ttl"}]}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json().unwrap()["health"],
        "critical",
        "the checks decide the health, not the caller"
    );
    let (ok, out) = gossip_cli(
        &api,
        &["check", "warn", "job-ttl", "--note", "queue is long"],
    );
    assert!(ok, "{out}");
    wait_for("job warning", FOLLOW, Duration::from_millis(100), || {
        let r = http_get(&c.nodes[1].api(), "/v1/services?status=warning").ok_or("no answer")?;
        let v = r.json().ok_or("not JSON")?;
        match v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()) {
            Some(keys) if keys == ["job"] => Ok(()),
            _ => Err(format!("?status=warning gives {v}")),
        }
    });
    let checks: Value = http_get(&api, "/v1/checks").unwrap().json().unwrap();
    let ttl = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "job-ttl")
        .expect("listed");
    assert_eq!(
        (ttl["status"].as_str(), ttl["output"].as_str()),
        (Some("warning"), Some("queue is long"))
    );
    let http = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "service:web")
        .unwrap();
    assert!(http["output"].as_str().unwrap().contains("200"), "{http}");
    let r = http_put_json(&api, "/v1/checks/job-ttl/pass", &json!({"not": "a note"})).unwrap();
    assert_eq!(r.status, 400, "unknown body field: {}", r.body);
    let long = "x".repeat(5000);
    let r = http_put_json(&api, "/v1/checks/job-ttl/pass", &json!({ "note": long })).unwrap();
    assert_eq!(r.status, 400, "note too long: {}", r.body);
    let r = http_put_json(&api, "/v1/checks/job-ttl/maybe", &json!({})).unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http_delete(&api, "/v1/checks").unwrap();
    assert_eq!(r.status, 405, "{}", r.body);
    let r = http_put_json(&api, "/v1/checks/nope/pass", &json!({})).unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http_put_json(&api, "/v1/checks/service:web/pass", &json!({})).unwrap();
    assert_eq!(r.status, 400, "not a TTL check: {}", r.body);

    // Bad definitions: 400 naming the field; nothing stored changes.
    let before = http_get(&api, "/v1/checks").unwrap().body;
    for (body, field) in [
        (
            json!({"name": "web", "port": 1, "checks": [{"http": "ftp://x"}]}),
            "checks[0].http",
        ),
        (
            json!({"name": "web", "port": 1, "checks": [{"tcp": "db:1", "interval": "soon"}]}),
            "checks[0].interval",
        ),
        (
            json!({"name": "web", "port": 1, "checks": [{"ttl": "1m", "colour": "red"}]}),
            "colour",
        ),
        (
            json!({"name": "web", "port": 1, "checks": [{"ttl": "1m", "id": "job-ttl"}]}),
            "checks[0].id",
        ),
    ] {
        let r = http_put_json(&api, "/v1/services", &body).unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let e = r.json().unwrap()["error"].as_str().unwrap().to_string();
        assert!(e.contains(field), "{body}: {e}");
    }
    assert_eq!(http_get(&api, "/v1/checks").unwrap().body, before);
    let r = http_get(&api, "/v1/services?status=healthy").unwrap();
    assert_eq!(r.status, 400);

    // `gossip services` shows the health column.
    let (ok, out) = gossip_cli(&api, &["services", "web"]);
    assert!(
        ok && out.contains("Health") && out.contains("passing"),
        "{out}"
    );
    let (ok, out) = gossip_cli(&api, &["checks"]);
    assert!(
        ok && out.contains("job-ttl") && out.contains("warning"),
        "{out}"
    );
}
