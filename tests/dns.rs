//! The DNS interface against real agents and real clients (issue 14):
//! `dig` (bind9-dnsutils) for every record form, TCP, EDNS0 and truncation;
//! hickory-resolver as a program's ordinary resolver library; forwarding to
//! `dns_recursors`; and a killed node leaving every agent's answers.
//!
//! Without `dig` the dig parts are skipped with a note, except under
//! `CI=true`, where that is a failure (`.ci/run` installs it).

mod common;

use common::*;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::json;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(40);

fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+time=3", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn short(port: u16, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("+short");
    let mut v: Vec<String> = dig(port, &a)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(no status)")
}

fn flags(out: &str) -> Vec<&str> {
    out.lines()
        .find(|l| l.starts_with(";; flags:"))
        .and_then(|l| l.trim_start_matches(";; flags:").split(';').next())
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default()
}

fn count(out: &str, section: &str) -> usize {
    out.split(&format!("{section}: "))
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// The SRV answer of the DNS server at `port` over UDP (hickory-proto
/// message, no process spawned: for tight polling).
fn srv_targets(port: u16, name: &str) -> Option<Vec<String>> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::SRV));
    sock.send_to(&q.to_vec().ok()?, ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    let m = Message::from_vec(&buf[..n]).ok()?;
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(s.target.to_ascii()),
            _ => None,
        })
        .collect();
    v.sort();
    Some(v)
}

fn register(api: &str, body: serde_json::Value) {
    let r = http_put_json(api, "/v1/services", &body).expect("PUT /v1/services answered");
    assert_eq!(r.status, 200, "register {body}: {}", r.body);
}

#[test]
fn dig_and_a_resolver_library_against_real_agents() {
    let _serial = serial();
    if !require_tool("dig", "-v") {
        return;
    }
    let dns: Vec<u16> = (0..4).map(|_| free_udp_tcp_port()).collect();
    let mut c = Cluster::new("dns", 4).with_env("PUSH_PULL_INTERVAL_MS", "2000");
    for &p in &dns[..3] {
        c.spawn(&[("DNS_ADDR", &format!("127.0.0.1:{p}"))]);
    }
    // node4 answers another domain and forwards the rest to node1.
    c.spawn(&[
        ("DNS_ADDR", &format!("127.0.0.1:{}", dns[3])),
        ("DNS_DOMAIN", "other."),
        ("DNS_RECURSORS", &format!("127.0.0.1:{}", dns[0])),
    ]);
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);

    for i in 0..3 {
        register(
            &c.nodes[i].api(),
            json!({"name": "web", "port": 8080 + i, "address": format!("127.0.0.{}", 11 + i),
                   "tags": if i == 0 { vec!["v2"] } else { vec![] }}),
        );
    }
    // A TTL check never reported is critical (its initial status).
    register(
        &c.nodes[2].api(),
        json!({"name": "db", "port": 5432, "checks": [{"ttl": "1h"}]}),
    );
    // 40 instances of `big`: more A records than 512 bytes hold (on two
    // nodes: one node's services must fit in one datagram).
    for k in 0..40 {
        register(
            &c.nodes[if k < 20 { 0 } else { 2 }].api(),
            json!({"name": "big", "id": format!("big-{k}"), "port": 9000,
                   "address": format!("127.0.1.{}", k + 1)}),
        );
    }
    let web_a = vec!["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    wait_for(
        "every agent to answer web with three addresses",
        CONVERGE,
        Duration::from_millis(300),
        || {
            for &p in &dns[..3] {
                let got = short(p, &["web.service.gossip", "A"]);
                if got != web_a {
                    return Err(format!("port {p}: {got:?}"));
                }
            }
            if short(dns[0], &["big.service.gossip", "A", "+tcp"]).len() != 40
                || status(&dig(dns[0], &["db.service.gossip"])) != "NOERROR"
            {
                return Err("big or db not there yet".into());
            }
            Ok(())
        },
    );
    let p = dns[0];

    // A, case-insensitively, authoritative.
    let out = dig(p, &["WeB.SeRvIcE.GoSsIp", "A"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(flags(&out).contains(&"aa"), "{out}");
    assert_eq!(count(&out, "ANSWER"), 3, "{out}");
    assert!(
        out.contains("WeB.SeRvIcE.GoSsIp."),
        "the question's case is kept: {out}"
    );

    // SRV: ports and node targets, with their addresses in the additional
    // section; the same over TCP.
    for extra in [&[][..], &["+tcp"][..]] {
        let mut args = vec!["_web._tcp.service.gossip", "SRV"];
        args.extend_from_slice(extra);
        let out = dig(p, &args);
        assert_eq!(status(&out), "NOERROR", "{out}");
        assert_eq!(count(&out, "ANSWER"), 3, "{out}");
        for (i, ip) in web_a.iter().enumerate() {
            let hex = format!("7f00000{:x}.addr.gossip.", 11 + i);
            assert!(
                out.contains(&format!("SRV\t1 1 {} {hex}", 8080 + i)),
                "{args:?}: {out}"
            );
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&hex) && l.ends_with(&format!("A\t{ip}"))),
                "{args:?}: glue for {hex}: {out}"
            );
        }
    }
    assert_eq!(
        short(p, &["web.service.gossip", "SRV"]).len(),
        3,
        "plain name, SRV type"
    );

    // Tags, both forms.
    assert_eq!(short(p, &["v2.web.service.gossip"]), ["127.0.0.11"]);
    assert_eq!(
        short(p, &["_web._v2.service.gossip", "SRV"]),
        ["1 1 8080 7f00000b.addr.gossip."]
    );

    // Nodes.
    assert_eq!(short(p, &["node2.node.gossip"]), ["127.0.0.1"]);
    assert_eq!(short(p, &["NODE3.node.gossip"]), ["127.0.0.1"]);

    // Negative answers: NXDOMAIN with the SOA; a known service without a
    // healthy instance: NOERROR, empty, with the SOA.
    for name in ["nope.service.gossip", "nosuch.node.gossip", "what.gossip"] {
        let out = dig(p, &[name]);
        assert_eq!(status(&out), "NXDOMAIN", "{name}: {out}");
        assert_eq!(count(&out, "AUTHORITY"), 1, "{out}");
        assert!(out.contains("IN\tSOA\t"), "{out}");
    }
    let out = dig(p, &["db.service.gossip"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(count(&out, "ANSWER"), 0, "{out}");
    assert!(out.contains("IN\tSOA\t"), "{out}");
    let out = dig(p, &["gossip", "SOA"]);
    assert_eq!(count(&out, "ANSWER"), 1, "{out}");

    // Outside the domain, no recursors: REFUSED.
    let out = dig(p, &["example.com"]);
    assert_eq!(status(&out), "REFUSED", "{out}");

    // Truncation: without EDNS0 a UDP answer stops at 512 bytes with TC;
    // EDNS0 with 4096 carries it whole; so does TCP.
    let out = dig(p, &["big.service.gossip", "+noedns", "+ignore"]);
    assert!(flags(&out).contains(&"tc"), "{out}");
    let n = count(&out, "ANSWER");
    assert!(n > 0 && n < 40, "{n}: {out}");
    let size: usize = out
        .split("MSG SIZE  rcvd: ")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(size <= 512, "{size} bytes: {out}");
    let out = dig(p, &["big.service.gossip", "+bufsize=4096"]);
    assert!(!flags(&out).contains(&"tc"), "{out}");
    assert_eq!(count(&out, "ANSWER"), 40, "{out}");
    assert!(out.contains("udp: 4096"), "our OPT record: {out}");
    let out = dig(p, &["big.service.gossip", "+noedns"]);
    assert_eq!(
        count(&out, "ANSWER"),
        40,
        "dig retries over TCP after TC: {out}"
    );
    let out = dig(p, &["big.service.gossip", "+tcp"]);
    assert_eq!(count(&out, "ANSWER"), 40, "{out}");

    // Garbage gets FORMERR (and is counted); too-short garbage gets nothing.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let junk = [
        0x12u8, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
    ];
    sock.send_to(&junk, ("127.0.0.1", p)).unwrap();
    let mut buf = [0u8; 512];
    sock.recv(&mut buf).expect("FORMERR answer");
    assert_eq!(&buf[..2], &[0x12, 0x34]);
    assert_eq!(buf[3] & 0x0f, 1, "rcode FORMERR");
    let metrics = http_get(&c.nodes[0].api(), "/metrics").unwrap().body;
    assert!(
        metrics.contains("gossip_dns_malformed_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("dns"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains("gossip_dns_queries_total{type=\"SRV\",rcode=\"NOERROR\"}"));
    assert!(metrics.contains("gossip_dns_latency_seconds_count"));

    // Forwarding: node4 answers its own domain, and passes ours to node1.
    assert_eq!(short(dns[3], &["node4.node.other"]), ["127.0.0.1"]);
    let out = dig(dns[3], &["web.service.gossip"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(flags(&out).contains(&"ra"), "{out}");
    assert_eq!(count(&out, "ANSWER"), 3, "{out}");
    let out = dig(dns[3], &["nope.service.gossip"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");

    // A resolver library, used the way a program looks names up.
    resolver_library_sees(dns[1], &web_a);

    // node2 is killed: it leaves every agent's answers as soon as that
    // agent's view says it is dead.
    let victim = 1;
    let t0 = Instant::now();
    c.nodes[victim].sigkill();
    let observers = [0usize, 2];
    let mut dead_at = [None; 2];
    let mut gone_at = [None; 2];
    let target = "7f00000c.addr.gossip.";
    while t0.elapsed() < Duration::from_secs(60) && gone_at.iter().any(Option::is_none) {
        for (k, &o) in observers.iter().enumerate() {
            if dead_at[k].is_none()
                && c.nodes[o]
                    .members()
                    .and_then(|m| m.get("node2").map(|m| m.state == "dead"))
                    == Some(true)
            {
                dead_at[k] = Some(t0.elapsed());
            }
            let in_dns =
                srv_targets(dns[o], "web.service.gossip.").map(|t| t.iter().any(|x| x == target));
            if gone_at[k].is_none() && in_dns == Some(false) {
                gone_at[k] = Some(t0.elapsed());
                assert!(
                    dead_at[k].is_some()
                        || c.nodes[o].members().and_then(|m| m
                            .get("node2")
                            .map(|m| m.state == "dead" || m.state == "left"))
                            == Some(true),
                    "node{}: gone from DNS before its view says dead",
                    o + 1
                );
                dead_at[k].get_or_insert(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (k, &o) in observers.iter().enumerate() {
        let (dead, gone) = (dead_at[k].expect("seen dead"), gone_at[k].expect("gone"));
        println!(
            "FIGURE dns_death node{}: dead in its view at {} ms, gone from its DNS at {} ms after SIGKILL",
            o + 1,
            dead.as_millis(),
            gone.as_millis()
        );
        assert!(
            gone <= dead + Duration::from_millis(500),
            "node{}: gone {gone:?} vs dead {dead:?}",
            o + 1
        );
    }
    assert_eq!(
        short(dns[0], &["web.service.gossip"]),
        ["127.0.0.11", "127.0.0.13"]
    );
    assert_eq!(status(&dig(dns[0], &["node2.node.gossip"])), "NXDOMAIN");
}

/// hickory-resolver pointed at the agent: A and SRV lookups as any Rust
/// program would make them.
fn resolver_library_sees(port: u16, want_a: &[&str]) {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::TokioResolver;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut udp = ConnectionConfig::udp();
        udp.port = port;
        let ns = NameServerConfig::new("127.0.0.1".parse().unwrap(), true, vec![udp]);
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .unwrap();
        let ips = resolver.lookup_ip("web.service.gossip.").await.unwrap();
        let mut got: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        got.sort();
        assert_eq!(got, want_a);
        let srv = resolver
            .lookup("_web._tcp.service.gossip.", RecordType::SRV)
            .await
            .unwrap();
        let mut ports: Vec<u16> = srv
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(s.port),
                _ => None,
            })
            .collect();
        ports.sort();
        assert_eq!(ports, [8080, 8081, 8082]);
        let nx = resolver
            .lookup_ip("nope.service.gossip.")
            .await
            .unwrap_err();
        assert!(nx.is_nx_domain(), "{nx}");
    });
}

/// A tiny HTTP server on 127.0.0.1 that answers every request with its own
/// name; stopped (and its thread joined) when dropped.
struct Backend {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start(name: &str) -> Backend {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (flag, body) = (stop.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 2048];
                        let _ = s.read(&mut buf);
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A child process killed by PID and reaped when dropped, even on panic.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Which backends answer `n` requests through HAProxy's frontend.
fn spread(frontend: u16, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    let agent = ureq::AgentBuilder::new()
        .max_idle_connections(0)
        .timeout(Duration::from_secs(2))
        .build();
    for _ in 0..n {
        let body = match agent.get(&format!("http://127.0.0.1:{frontend}/")).call() {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(ureq::Error::Status(code, _)) => format!("http-{code}"),
            Err(_) => "no-answer".into(),
        };
        *out.entry(body).or_insert(0) += 1;
    }
    out
}

fn wait_spread(frontend: u16, what: &str, want: &[&str]) {
    wait_for(what, CONVERGE, Duration::from_millis(200), || {
        let got = spread(frontend, 24);
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        if names == want {
            Ok(())
        } else {
            Err(format!("traffic went to {got:?}"))
        }
    });
}

/// HAProxy resolves `_web._tcp.service.gossip` SRV at an agent and balances
/// real HTTP traffic over the three backends; it follows a node kill, a
/// failing health check (TTL, reported failed) and both recoveries. HAProxy runs no
/// health checks of its own here: only DNS tells it.
#[test]
fn haproxy_balances_over_srv_records_and_follows_failures() {
    let _serial = serial();
    if !require_tool("haproxy", "-v") {
        return;
    }
    let backends: Vec<Backend> = (1..=3).map(|i| Backend::start(&format!("b{i}"))).collect();
    let dns = free_udp_tcp_port();
    let mut c = Cluster::new("haproxy", 3).with_env("PUSH_PULL_INTERVAL_MS", "2000");
    for (i, b) in backends.iter().enumerate() {
        let addr = if i == 0 {
            format!("127.0.0.1:{dns}")
        } else {
            "off".into()
        };
        c.spawn(&[
            ("DNS_ADDR", &addr),
            ("SERVICES", &format!("web:{}", b.port)),
        ]);
    }
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);

    let frontend = free_udp_tcp_port();
    let cfg = format!(
        "global
    log stderr format short local0 notice
defaults
    mode http
    log global
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    retries 0
resolvers gossipdns
    nameserver n1 127.0.0.1:{dns}
    accepted_payload_size 4096
    resolve_retries 2
    timeout resolve 250ms
    timeout retry 250ms
    hold valid 250ms
    hold obsolete 250ms
    hold nx 250ms
    hold other 250ms
frontend fe
    bind 127.0.0.1:{frontend}
    default_backend web
backend web
    balance roundrobin
    server-template web 5 _web._tcp.service.gossip resolvers gossipdns resolve-prefer ipv4 init-addr none
"
    );
    let path = c.dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(c.dir.join("haproxy.log")).unwrap();
    let _haproxy = Child(
        Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy"),
    );

    wait_spread(
        frontend,
        "traffic on all three backends",
        &["b1", "b2", "b3"],
    );

    // node3 killed: its backend still runs, but DNS drops it, so HAProxy
    // stops sending it traffic.
    c.nodes[2].sigkill();
    wait_spread(frontend, "b3 out after node3's death", &["b1", "b2"]);
    c.nodes[2].start();
    wait_spread(
        frontend,
        "b3 back after node3 rejoined",
        &["b1", "b2", "b3"],
    );

    // node2's instance gets a TTL check that fails, then passes again.
    let api2 = c.nodes[1].api();
    let port2 = backends[1].port;
    register(
        &api2,
        json!({"name": "web", "port": port2, "checks": [{"ttl": "1h"}]}),
    );
    let report = |status: &str| {
        let r = http_put_json(
            &api2,
            &format!("/v1/checks/service:web/{status}"),
            &json!({}),
        )
        .expect("check report answered");
        assert_eq!(r.status, 200, "{status}: {}", r.body);
    };
    report("fail");
    wait_spread(frontend, "b2 out while its check fails", &["b1", "b3"]);
    report("pass");
    wait_spread(
        frontend,
        "b2 back when its check passes",
        &["b1", "b2", "b3"],
    );
}

/// DNS_ADDR given explicitly but taken: the agent stops with exit code 2
/// and names the key; the default address taken only costs the DNS server.
#[test]
fn a_taken_dns_address_is_a_config_error_only_when_given() {
    let _serial = serial();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let base = free_base_port(1);
    let run = |dns_addr: Option<String>, node_port: u16| {
        let mut cmd = Command::new(GOSSIP);
        for k in AGENT_ENV_KEYS {
            cmd.env_remove(k);
        }
        cmd.arg("agent")
            .current_dir(std::env::temp_dir())
            .env("NODE_ID", "dnsbusy")
            .env("NODE_PORT", node_port.to_string())
            .env("BIND_ADDR", format!("127.0.0.1:{node_port}"))
            .env("API_ADDR", format!("127.0.0.1:{}", node_port + API_OFFSET))
            .env("CLUSTER_NAME", format!("it-dnsbusy-{node_port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(a) = dns_addr {
            cmd.env("DNS_ADDR", a);
        }
        Child(cmd.spawn().expect("spawn gossip agent"))
    };
    let mut given = run(Some(format!("127.0.0.1:{port}")), base);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = given.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "agent still running with a taken DNS_ADDR"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(given.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("DNS_ADDR") && err.contains(&port.to_string()),
        "{err}"
    );

    // The default address (NODE_PORT + 654) taken: the agent runs, API up.
    let base = free_base_port(1);
    let _busy = UdpSocket::bind(("127.0.0.1", base + 654));
    let mut default = run(None, base);
    let api = format!("127.0.0.1:{}", base + API_OFFSET);
    wait_for(
        "the agent's API with its default DNS port taken",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            assert!(default.0.try_wait().unwrap().is_none(), "the agent exited");
            http_get(&api, "/healthz")
                .filter(|r| r.status == 200)
                .map(|_| ())
                .ok_or_else(|| "no answer".to_string())
        },
    );
}
