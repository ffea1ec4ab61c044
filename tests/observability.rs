//! Observability with real processes (issue 8): `/metrics` checked by
//! `promtool`, the SSE event stream and `gossip monitor`, a real Prometheus
//! discovering the cluster's services through `/v1/sd/prometheus`, and the
//! dashboard rendered by headless Chromium.
//!
//! Agents run on 127.0.0.1 with random free ports and an explicit API_ADDR
//! (see tests/common); every process started here (agents, monitors,
//! Prometheus, Chromium) is stopped by PID when its guard drops, panics
//! included. Tests that need `promtool`, `prometheus` or `chromium` skip
//! when the binary is missing (`common::skip`: listed at the end of
//! test/all.sh, a failure under `CI=true`); `.ci/install-observability.sh`
//! installs them from Debian's packages.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CONVERGE: Duration = Duration::from_secs(30);
const DETECT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The binary's path on PATH, or `None` after printing why the test skips.
fn require(test: &str, bin: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        skip(
            test,
            &format!(
                "`{bin}` not found on PATH (Debian packages `prometheus` and `chromium`; \
                 run .ci/install-observability.sh)"
            ),
        );
    }
    found
}

/// A scratch directory under the target dir, emptied first (one per test,
/// so that runs do not pile up; the last run's files stay for inspection).
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("observability")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed by PID (its whole process group when
/// `group`) and reaped on drop.
struct Guard {
    name: String,
    child: Option<Child>,
    group: bool,
}

impl Guard {
    fn spawn(name: &str, cmd: &mut Command, group: bool) -> Guard {
        if group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Guard {
            name: name.to_string(),
            child: Some(child),
            group,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; reaps.
    fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let target = if self.group {
            format!("-{}", c.id())
        } else {
            c.id().to_string()
        };
        let _ = Command::new("kill")
            .args(["-TERM", "--", &target])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if !matches!(c.try_wait(), Ok(Some(_))) {
            eprintln!(
                "{}: still running after {grace:?}; SIGKILL {target}",
                self.name
            );
            let _ = Command::new("kill")
                .args(["-KILL", "--", &target])
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
        }
        let _ = c.wait();
        if self.group {
            // Helpers of the process (Chromium's zygote and renderers).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &target])
                .stderr(Stdio::null())
                .status();
        }
    }

    fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout piped")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Lines of `r`, sent on a channel by a reader thread.
fn line_channel(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn get_text(api: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let mut req = agent.get(&format!("http://{api}{path}"));
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let ctype = r.header("Content-Type").unwrap_or("").to_string();
            (status, ctype, r.into_string().unwrap_or_default())
        }
        Err(e) => panic!("GET http://{api}{path}: {e}"),
    }
}

/// Value of one sample line (`name{labels} value`) in a text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_once(' ').is_some_and(|(n, _)| n == series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn promtool_check_metrics(promtool: &Path, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\n--- input ---\n{text}",
        out.status
    );
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && s.chars().filter(|c| c.is_ascii_digit()).count() == 17
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ---------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------

const FAMILIES: &[&str] = &[
    "gossip_members",
    "gossip_probes_sent_total",
    "gossip_probes_failed_total",
    "gossip_suspicions_raised_total",
    "gossip_suspicions_refuted_total",
    "gossip_detection_latency_seconds",
    "gossip_rumors_queued_total",
    "gossip_rumors_sent_total",
    "gossip_rumors_dropped_total",
    "gossip_datagrams_total",
    "gossip_network_bytes_total",
    "gossip_decode_failures_total",
    "gossip_auth_failures_total",
    "gossip_limits_hit_total",
    "gossip_actor_restarts_total",
];

/// `/metrics` has every required family, passes `promtool check metrics`,
/// counts a real failure (detection-latency histogram included), and answers
/// OpenMetrics to a scraper that asks for it.
#[test]
fn metrics_pass_promtool_and_count_a_failure() {
    let _serial = serial();
    let promtool = require("metrics_pass_promtool_and_count_a_failure", "promtool");
    let mut c = Cluster::new("obs-metrics", 3);
    c.spawn_n(3);
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    let api1 = c.nodes[0].api();

    let (status, ctype, text) = get_text(&api1, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "content type {ctype}"
    );
    for f in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {f} ")),
            "no family {f} in\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "gossip_members{state=\"alive\"}"),
        Some(3.0),
        "{text}"
    );
    assert!(sample(&text, "gossip_datagrams_total{direction=\"in\"}").unwrap() > 0.0);
    assert!(sample(&text, "gossip_network_bytes_total{direction=\"out\"}").unwrap() > 0.0);
    if let Some(p) = &promtool {
        promtool_check_metrics(p, &text);
    }

    let (_, ctype, om) = get_text(
        &api1,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(om.ends_with("# EOF\n"));

    // A failure: node3 dies; the survivors count it.
    c.nodes[2].sigkill();
    c.wait_state_everywhere(&[0, 1], 2, "dead", DETECT, |_, _, _| {});
    let mut latencies = 0.0;
    let mut raised = 0.0;
    for n in &c.nodes[..2] {
        let (_, _, t) = get_text(&n.api(), "/metrics", None);
        latencies += sample(&t, "gossip_detection_latency_seconds_count").unwrap();
        raised += sample(&t, "gossip_suspicions_raised_total").unwrap();
        assert_eq!(
            sample(&t, "gossip_members{state=\"dead\"}"),
            Some(1.0),
            "{}: {t}",
            n.id
        );
        assert!(sample(&t, "gossip_probes_failed_total").is_some());
        if let Some(p) = &promtool {
            promtool_check_metrics(p, &t);
        }
    }
    assert!(raised >= 1.0, "no suspicion raised by the survivors");
    assert!(
        latencies >= 1.0,
        "no detection latency observed by the survivors"
    );
    eprintln!("detections observed by survivors: {latencies}");
}

// ---------------------------------------------------------------------------
// /v1/events and `gossip monitor`
// ---------------------------------------------------------------------------

/// Reads an SSE stream on a thread; sends each `data:` as JSON.
fn sse_events(api: &str) -> mpsc::Receiver<Value> {
    let url = format!("http://{api}/v1/events");
    let resp = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(3))
        .build()
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.header("Content-Type"), Some("text/event-stream"));
    let lines = line_channel(resp.into_reader());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in lines {
            if let Some(d) = line.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(d).expect("event data is JSON");
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Collects events until one matches, or panics listing what came.
fn expect_event(
    rx: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    if let Some(v) = seen.iter().find(|v| pred(v)) {
        return v.clone();
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) => {
                seen.push(v.clone());
                if pred(&v) {
                    return v;
                }
            }
            Err(_) => {
                let kinds: Vec<String> = seen
                    .iter()
                    .map(|v| format!("{}:{}", v["kind"], v["member"]))
                    .collect();
                panic!("no event {what} within {timeout:?}; got {kinds:?}");
            }
        }
    }
}

fn is(kind: &'static str, member: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["kind"] == kind && v["member"] == member
}

fn is_service(
    kind: &'static str,
    member: &'static str,
    service: &'static str,
) -> impl Fn(&Value) -> bool {
    move |v| v["kind"] == kind && v["member"] == member && v["service"]["name"] == service
}

fn monitor(api: &str, json: bool) -> Guard {
    let mut cmd = Command::new(GOSSIP);
    cmd.arg("monitor")
        .args(["--api", api])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if json {
        cmd.arg("--json");
    }
    Guard::spawn(
        if json {
            "gossip monitor --json"
        } else {
            "gossip monitor"
        },
        &mut cmd,
        false,
    )
}

/// Opens a raw event-stream request and returns the connection and its
/// status code.
fn raw_stream(api: &str) -> (TcpStream, u16) {
    let mut s = TcpStream::connect(api).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /v1/events HTTP/1.1\r\nHost: {api}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).expect("status line");
    let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
    (s, status)
}

/// Membership and service changes reach `/v1/events` with timestamp, kind,
/// member, incarnation, state and address; `gossip monitor` prints them
/// live; the number of stream clients is bounded.
#[test]
fn event_stream_and_monitor_report_changes() {
    let _serial = serial();
    let mut c = Cluster::new("obs-events", 3);
    c.spawn(&[("SERVICES", "db:5432")]);
    let api1 = c.nodes[0].api();
    wait_for("node1's API", CONVERGE, Duration::from_millis(100), || {
        c.nodes[0]
            .members()
            .map(|_| ())
            .ok_or_else(|| "not answering".into())
    });
    let rx = sse_events(&api1);
    let mut json_mon = monitor(&api1, true);
    let mut text_mon = monitor(&api1, false);
    let json_lines = line_channel(json_mon.take_stdout());
    let text_lines = line_channel(text_mon.take_stdout());
    let mut seen = Vec::new();

    // Our own service, found by the hub in the registry.
    let own = expect_event(
        &rx,
        &mut seen,
        "db registered on node1",
        CONVERGE,
        is_service("service_registered", "node1", "db"),
    );
    assert_eq!(own["service"]["port"], 5432);

    c.spawn(&[("SERVICES", "web:8080")]);
    let joined = expect_event(
        &rx,
        &mut seen,
        "node2 joined",
        CONVERGE,
        is("joined", "node2"),
    );
    expect_event(
        &rx,
        &mut seen,
        "web registered on node2",
        CONVERGE,
        is_service("service_registered", "node2", "web"),
    );

    let api2 = c.nodes[1].api();
    let r = http_put_json(
        &api2,
        "/v1/services",
        &json!({"name": "api", "port": 9090, "tags": ["v1"]}),
    )
    .expect("PUT answered");
    assert_eq!(r.status, 200, "{}", r.body);
    let reg = expect_event(
        &rx,
        &mut seen,
        "api registered on node2",
        CONVERGE,
        is_service("service_registered", "node2", "api"),
    );
    assert_eq!(reg["service"]["tags"], json!(["v1"]));
    let r = http_delete(&api2, "/v1/services/api").expect("DELETE answered");
    assert_eq!(r.status, 200, "{}", r.body);
    expect_event(
        &rx,
        &mut seen,
        "api deregistered on node2",
        CONVERGE,
        is_service("service_deregistered", "node2", "api"),
    );

    c.spawn(&[]);
    expect_event(
        &rx,
        &mut seen,
        "node3 joined",
        CONVERGE,
        is("joined", "node3"),
    );
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    c.nodes[2].sigkill();
    let failed = expect_event(
        &rx,
        &mut seen,
        "node3 failed",
        DETECT,
        is("failed", "node3"),
    );
    assert_eq!(failed["state"], "dead");
    assert!(
        seen.iter()
            .any(|v| v["kind"] == "suspected" && v["member"] == "node3"),
        "a failure is preceded by a suspicion"
    );

    // Every event has the documented fields.
    let start = now_ms() - 120_000;
    let mut last_id = 0;
    for v in &seen {
        assert!(
            is_rfc3339_utc(v["timestamp"].as_str().unwrap_or("")),
            "timestamp of {v}"
        );
        let ts = v["ts_ms"].as_u64().expect("ts_ms");
        assert!(ts > start && ts <= now_ms(), "ts_ms of {v}");
        assert!(v["incarnation"].is_u64(), "incarnation of {v}");
        for k in ["kind", "member", "state", "addr"] {
            assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{k} of {v}");
        }
        let id = v["id"].as_u64().unwrap();
        assert!(id > last_id, "ids increase: {id} after {last_id}");
        last_id = id;
    }
    assert_eq!(joined["addr"], c.nodes[1].udp_addr());
    assert_eq!(joined["state"], "alive");

    // `gossip monitor --json` printed the same events, one JSON per line.
    let mut json_seen = Vec::new();
    let jrx = {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for l in json_lines {
                if tx
                    .send(
                        serde_json::from_str::<Value>(&l)
                            .expect("monitor --json prints JSON lines"),
                    )
                    .is_err()
                {
                    break;
                }
            }
        });
        rx
    };
    expect_event(
        &jrx,
        &mut json_seen,
        "monitor --json: node2 joined",
        CONVERGE,
        is("joined", "node2"),
    );
    expect_event(
        &jrx,
        &mut json_seen,
        "monitor --json: node3 failed",
        CONVERGE,
        is("failed", "node3"),
    );
    // `gossip monitor` printed a line for the failure.
    let deadline = Instant::now() + CONVERGE;
    let mut text_seen = Vec::new();
    loop {
        match text_lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                let hit = l.contains("failed") && l.contains("node3") && l.contains("dead");
                text_seen.push(l);
                if hit {
                    break;
                }
            }
            Err(_) => panic!("gossip monitor printed no failure of node3: {text_seen:#?}"),
        }
    }
    eprintln!(
        "gossip monitor printed, e.g.:\n{}",
        text_seen
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Bounded clients: the stream, two monitors, then raw connections up to
    // the limit; one more is refused with a JSON 503.
    let mut extra = Vec::new();
    let refused = loop {
        let (s, status) = raw_stream(&api1);
        if status != 200 {
            break (s, status);
        }
        extra.push(s);
        assert!(extra.len() <= 64, "no bound on event-stream clients");
    };
    assert_eq!(refused.1, 503);
    assert_eq!(extra.len() + 3, 32, "the limit is 32 clients");
    let mut body = String::new();
    let mut s = refused.0;
    let _ = s.read_to_string(&mut body);
    assert!(body.contains("too many event-stream clients"), "{body}");
    // Closed clients free their slots.
    drop(extra);
    wait_for(
        "a slot after clients closed",
        Duration::from_secs(40),
        Duration::from_millis(500),
        || {
            let (_s, status) = raw_stream(&api1);
            if status == 200 {
                Ok(())
            } else {
                Err(format!("status {status}"))
            }
        },
    );
    json_mon.stop(Duration::from_secs(2));
    text_mon.stop(Duration::from_secs(2));
}

// ---------------------------------------------------------------------------
// Prometheus HTTP SD
// ---------------------------------------------------------------------------

struct Target {
    job: String,
    health: String,
    instance: String,
    labels: Value,
    discovered: Value,
}

fn targets(prom: &str) -> Result<Vec<Target>, String> {
    let r = http_get(prom, "/api/v1/targets?state=active").ok_or("Prometheus not answering")?;
    let v = r.json().ok_or("targets: not JSON")?;
    let mut out = Vec::new();
    for t in v["data"]["activeTargets"]
        .as_array()
        .ok_or("no activeTargets")?
    {
        out.push(Target {
            job: t["labels"]["job"].as_str().unwrap_or("").into(),
            health: t["health"].as_str().unwrap_or("").into(),
            instance: t["labels"]["instance"].as_str().unwrap_or("").into(),
            labels: t["labels"].clone(),
            discovered: t["discoveredLabels"].clone(),
        });
    }
    Ok(out)
}

fn instances_of(ts: &[Target], job: &str) -> BTreeSet<String> {
    ts.iter()
        .filter(|t| t.job == job)
        .map(|t| t.instance.clone())
        .collect()
}

/// A real Prometheus with `http_sd_configs` pointed at the cluster: the
/// targets appear (and the nodes' own /metrics are scraped), change when a
/// service is deregistered, and vanish when a node dies.
#[test]
fn prometheus_discovers_cluster_services() {
    let _serial = serial();
    let test = "prometheus_discovers_cluster_services";
    let (Some(prometheus), Some(promtool)) =
        (require(test, "prometheus"), require(test, "promtool"))
    else {
        return;
    };
    let mut c = Cluster::new("obs-sd", 3);
    // Each node offers its own API as the service "gossip-metrics", so that
    // Prometheus scrapes the nodes it discovers.
    for i in 0..3u16 {
        let spec = format!("gossip-metrics:{}", c.base + API_OFFSET + i);
        c.spawn(&[("SERVICES", spec.as_str())]);
    }
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    let web_ports = [free_tcp_port(), free_tcp_port()];
    for (i, port) in web_ports.iter().enumerate() {
        let body = json!({"name": "web", "port": port, "tags": ["blue", format!("n{}", i + 1)]});
        let r = http_put_json(&c.nodes[i].api(), "/v1/services", &body).expect("PUT answered");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let api1 = c.nodes[0].api();
    wait_for(
        "node1 to list web on 2 nodes",
        CONVERGE,
        Duration::from_millis(200),
        || {
            let n = instances_at(&api1, "web").map_or(0, |v| v.len());
            if n == 2 {
                Ok(())
            } else {
                Err(format!("{n} instances"))
            }
        },
    );

    let dir = scratch("prometheus");
    let prom_addr = format!("127.0.0.1:{}", free_tcp_port());
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gossip-nodes
    http_sd_configs:
      - url: "http://{api1}/v1/sd/prometheus?service=gossip-metrics"
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_gossip_node]
        target_label: node
  - job_name: web
    http_sd_configs:
      - url: "http://{api1}/v1/sd/prometheus?service=web"
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_gossip_node]
        target_label: node
      - source_labels: [__meta_gossip_tags]
        regex: ".*,blue,.*"
        target_label: color
        replacement: blue
"#
    );
    let cfg_path = dir.join("prometheus.yml");
    std::fs::write(&cfg_path, &config).unwrap();
    let check = Command::new(&promtool)
        .args(["check", "config"])
        .arg(&cfg_path)
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prom = Guard::spawn(
        "prometheus",
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log)),
        false,
    );
    eprintln!(
        "prometheus pid {} on {prom_addr}, log {}",
        prom.pid(),
        dir.join("prometheus.log").display()
    );

    let node_targets: BTreeSet<String> = (0..3u16)
        .map(|i| format!("127.0.0.1:{}", c.base + API_OFFSET + i))
        .collect();
    let web_targets: BTreeSet<String> =
        web_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();

    // 1. Targets appear; the nodes are scraped (up), the web labels are there.
    let t = wait_for(
        "Prometheus to discover 3 nodes (up) and 2 web targets",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let ts = targets(&prom_addr)?;
            let nodes = instances_of(&ts, "gossip-nodes");
            let webs = instances_of(&ts, "web");
            let up = ts
                .iter()
                .filter(|t| t.job == "gossip-nodes" && t.health == "up")
                .count();
            if nodes == node_targets && webs == web_targets && up == 3 {
                Ok(())
            } else {
                Err(format!("gossip-nodes {nodes:?} ({up} up), web {webs:?}"))
            }
        },
    );
    eprintln!("Prometheus discovered and scraped the cluster after {t:?}");
    let ts = targets(&prom_addr).unwrap();
    for (i, port) in web_ports.iter().enumerate() {
        let t = ts
            .iter()
            .find(|t| t.instance == format!("127.0.0.1:{port}"))
            .unwrap();
        let node = format!("node{}", i + 1);
        assert_eq!(t.labels["node"], node.as_str());
        assert_eq!(t.labels["color"], "blue");
        assert_eq!(t.discovered["__meta_gossip_service"], "web");
        assert_eq!(t.discovered["__meta_gossip_node"], node.as_str());
        assert_eq!(
            t.discovered["__meta_gossip_tags"],
            format!(",blue,n{},", i + 1).as_str()
        );
        assert_eq!(t.discovered["__meta_gossip_state"], "alive");
    }
    // What Prometheus scraped from the nodes: every node sees 3 alive.
    wait_for(
        "Prometheus to have gossip_members from 3 nodes",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let r = http_get(
                &prom_addr,
                "/api/v1/query?query=gossip_members%7Bstate%3D%22alive%22%7D",
            )
            .ok_or("no answer")?;
            let v = r.json().ok_or("not JSON")?;
            let res = v["data"]["result"].as_array().cloned().unwrap_or_default();
            let threes = res.iter().filter(|s| s["value"][1] == "3").count();
            if threes == 3 {
                Ok(())
            } else {
                Err(format!("{} series, {threes} at 3", res.len()))
            }
        },
    );

    // 2. A deregistered service leaves the targets.
    let r = http_delete(&c.nodes[1].api(), "/v1/services/web").expect("DELETE answered");
    assert_eq!(r.status, 200, "{}", r.body);
    let only1: BTreeSet<String> = [format!("127.0.0.1:{}", web_ports[0])].into();
    let t = wait_for(
        "web targets to lose node2's instance",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let webs = instances_of(&targets(&prom_addr)?, "web");
            if webs == only1 {
                Ok(())
            } else {
                Err(format!("web {webs:?}"))
            }
        },
    );
    eprintln!("deregistration reached Prometheus after {t:?}");

    // 3. A dead node's services vanish.
    c.nodes[2].sigkill();
    let two: BTreeSet<String> = node_targets.iter().take(2).cloned().collect();
    let t = wait_for(
        "gossip-nodes targets to lose node3",
        DETECT + Duration::from_secs(10),
        Duration::from_millis(500),
        || {
            let nodes = instances_of(&targets(&prom_addr)?, "gossip-nodes");
            if nodes == two {
                Ok(())
            } else {
                Err(format!("gossip-nodes {nodes:?}"))
            }
        },
    );
    eprintln!("node3's death reached Prometheus after {t:?} (failure detection included)");
    prom.stop(Duration::from_secs(10));
}

// ---------------------------------------------------------------------------
// Dashboard in headless Chromium (DevTools protocol over a pipe)
// ---------------------------------------------------------------------------

/// Chromium driven through `--remote-debugging-pipe`: requests on its fd 3,
/// answers on fd 4, NUL-separated JSON.
struct Browser {
    guard: Guard,
    to: std::process::ChildStdin,
    from: mpsc::Receiver<Value>,
    next: u64,
    session: Option<String>,
}

impl Browser {
    fn launch(chromium: &Path, profile: &Path) -> Browser {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            // exec: the shell becomes Chromium (same PID); fds 3 and 4 are our pipes.
            .arg(r#"exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg("sh")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-domain-reliability",
                "--metrics-recording-only",
                "--no-pings",
                "--hide-scrollbars",
                // Only 127.0.0.1 is reachable, whatever the browser tries.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--remote-debugging-pipe",
                "--window-size=1280,960",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut guard = Guard::spawn("chromium", &mut cmd, true);
        let to = guard.child.as_mut().unwrap().stdin.take().unwrap();
        let mut out = guard.take_stdout();
        let (tx, from) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match out.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            guard,
            to,
            from,
            next: 0,
            session: None,
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let mut msg = json!({"id": self.next, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .and_then(|_| self.to.flush())
            .expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self
                .from
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"));
            if v["id"] == self.next {
                if let Some(e) = v.get("error") {
                    panic!("chromium: {method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Opens a page and attaches to it; later calls go to the page.
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let tid = target["targetId"].as_str().unwrap().to_string();
        let att = self.call(
            "Target.attachToTarget",
            json!({"targetId": tid, "flatten": true}),
        );
        self.session = Some(att["sessionId"].as_str().unwrap().to_string());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 960, "deviceScaleFactor": 1, "mobile": false}),
        );
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Evaluates `expr` in the page; returns its value (JSON).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }

    fn close(mut self) {
        self.session = None;
        self.next += 1;
        let msg = json!({"id": self.next, "method": "Browser.close", "params": {}});
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        let _ = self.to.write_all(&bytes);
        self.guard.stop(Duration::from_secs(10));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 byte {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&b| b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= (val(b) as u32) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// What the dashboard shows, read from its DOM.
const READ_DASHBOARD: &str = r#"JSON.stringify({
  members: [...document.querySelectorAll('#members tbody tr')].map(r => ({
    id: r.dataset.member, state: r.dataset.state,
    cells: [...r.cells].map(c => c.textContent.trim()) })),
  services: [...document.querySelectorAll('#services tbody tr[data-service]')].map(r => r.dataset.service + '@' + r.dataset.node),
  events: [...document.querySelectorAll('#events li[data-kind]')].map(l => l.dataset.kind + ' ' + l.textContent),
  stats: Object.fromEntries([...document.querySelectorAll('#stats .stat')].map(s => [s.dataset.stat, s.querySelector('.v').textContent])),
  conn: document.getElementById('conn').textContent,
  self: (document.querySelector('#members tr.self') || {dataset: {}}).dataset.member || null,
  external: [...document.querySelectorAll('script[src],link[href],img[src],iframe[src]')].length
})"#;

fn dashboard(b: &mut Browser) -> Value {
    let v = b.eval(READ_DASHBOARD);
    v.as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

/// The dashboard at `GET /`, loaded in headless Chromium: the member table
/// lists every member with state and incarnation, services and STATS are
/// shown, and the page follows the event stream (a killed node turns
/// suspect/dead in the table and shows up in the event feed).
#[test]
fn dashboard_renders_in_headless_chromium() {
    let _serial = serial();
    let Some(chromium) = require("dashboard_renders_in_headless_chromium", "chromium") else {
        return;
    };
    let mut c = Cluster::new("obs-dash", 3);
    c.spawn(&[("SERVICES", "web:8080")]);
    c.spawn(&[("SERVICES", "api:9090,cache:6379")]);
    c.spawn(&[]);
    let all = c.all();
    c.wait_all_alive(&all, &all, CONVERGE);
    let api1 = c.nodes[0].api();

    // The page itself: HTML, self-contained.
    let (status, ctype, html) = get_text(&api1, "/", None);
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not load external assets"
    );

    let dir = scratch("chromium");
    let mut b = Browser::launch(&chromium, &dir.join("profile"));
    b.open(&format!("http://{api1}/"));
    let mut last = Value::Null;
    wait_for(
        "the dashboard to list 3 alive members, live",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            last = dashboard(&mut b);
            let ms = last["members"].as_array().cloned().unwrap_or_default();
            let alive = ms.iter().filter(|m| m["state"] == "alive").count();
            if alive == 3
                && last["conn"] == "live"
                && !last["events"].as_array().is_none_or(|e| e.is_empty())
            {
                Ok(())
            } else {
                Err(format!("{last}"))
            }
        },
    );
    let ms = last["members"].as_array().unwrap();
    let ids: Vec<&str> = ms.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["node1", "node2", "node3"]);
    for (i, m) in ms.iter().enumerate() {
        let cells: Vec<&str> = m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cells[0], format!("node{}", i + 1));
        assert_eq!(cells[1], c.nodes[i].udp_addr());
        assert_eq!(cells[2], "alive");
        assert!(
            cells[3].parse::<u64>().is_ok(),
            "incarnation cell {:?}",
            cells[3]
        );
    }
    let services: BTreeSet<&str> = last["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(services, ["api@node2", "cache@node2", "web@node1"].into());
    assert_eq!(last["stats"]["members_alive"], "3");
    assert!(
        last["stats"]["probes_sent"].is_string(),
        "STATS figures shown: {}",
        last["stats"]
    );
    assert_eq!(last["external"], 0);
    assert_eq!(last["self"], "node1", "the serving node is marked");

    // Live: node3 dies; the table and the feed follow.
    c.nodes[2].sigkill();
    wait_for(
        "the dashboard to show node3 failed",
        DETECT,
        Duration::from_millis(300),
        || {
            last = dashboard(&mut b);
            let state = last["members"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| m["id"] == "node3"))
                .map(|m| m["state"].clone());
            let failed = last["events"].as_array().is_some_and(|es| {
                es.iter().any(|e| {
                    e.as_str()
                        .is_some_and(|e| e.starts_with("failed") && e.contains("node3"))
                })
            });
            if state == Some(json!("dead")) && failed {
                Ok(())
            } else {
                Err(format!("node3 {state:?}, events {}", last["events"]))
            }
        },
    );
    // Let the poll catch up on the figures, then take the picture.
    thread::sleep(Duration::from_millis(2500));
    let png = b.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG screenshot"
    );
    let shot = dir.join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());
    if std::env::var_os("UPDATE_DASHBOARD_PNG").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("dashboard.png"), &png).unwrap();
        eprintln!("updated docs/dashboard.png");
    }
    b.close();
}
