//! Shared helpers for the loopback integration tests.
//!
//! The tests start real `gossip agent` processes on 127.0.0.1, each with its own
//! UDP port `P + i` and HTTP API port `P + 1000 + i` (`P` a random free base port
//! per cluster), and observe them only through the HTTP API described in the
//! README. Every child is killed (SIGKILL) and reaped when its `Node` is dropped,
//! including when a test panics.
//!
//! Bounds are deliberately generous: the tests assert behaviour (who ends up in
//! which state), not speed; the speed figures come from `bench/loopback.py`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

/// Path of the binary under test (built by cargo for integration tests).
pub const GOSSIP: &str = env!("CARGO_BIN_EXE_gossip");

/// Offset between a node's UDP port and its API port.
pub const API_OFFSET: u16 = 1000;

/// Environment variables an agent reads; removed from the inherited
/// environment so that the developer's shell cannot change a test.
pub const AGENT_ENV_KEYS: &[&str] = &[
    "NODE_ID",
    "NODE_IP",
    "NODE_PORT",
    "SEED_NODES",
    "SERVICES",
    "API_ADDR",
    "BIND_ADDR",
    "BROADCAST",
    "CLUSTER_NAME",
    "GOSSIP_KEY",
    "API_TOKEN",
    "PROBE_INTERVAL_MS",
    "PROBE_TIMEOUT_MS",
    "GOSSIP_INTERVAL_MS",
    "PUSH_PULL_INTERVAL_MS",
    "FANOUT",
    "LOSS_IN",
    "LOSS_OUT",
    "DNS_ADDR",
    "DNS_DOMAIN",
    "DNS_TTL",
    "A_RECORD_LIMIT",
    "ONLY_PASSING",
    "DNS_RECURSORS",
];

/// Tests inside one test binary run on parallel threads; clusters of 7-10
/// processes on a 2-core machine should not compete with each other, so every
/// test takes this lock first.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

fn http() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            // No pooling: every request is its own connection (like
            // `Connection: close`), so a restarted node never sees a stale one.
            .max_idle_connections(0)
            .timeout_connect(Duration::from_millis(1000))
            .timeout(Duration::from_secs(3))
            .build()
    })
}

/// Result of one HTTP exchange: `None` when the API did not answer at all.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

impl HttpReply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

fn finish(r: Result<ureq::Response, ureq::Error>) -> Option<HttpReply> {
    let resp = match r {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(ureq::Error::Transport(_)) => return None,
    };
    let status = resp.status();
    let body = resp.into_string().ok()?;
    Some(HttpReply { status, body })
}

pub fn http_get(api: &str, path: &str) -> Option<HttpReply> {
    finish(http().get(&format!("http://{api}{path}")).call())
}

pub fn http_put_json(api: &str, path: &str, body: &Value) -> Option<HttpReply> {
    finish(
        http()
            .put(&format!("http://{api}{path}"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    )
}

pub fn http_delete(api: &str, path: &str) -> Option<HttpReply> {
    finish(http().delete(&format!("http://{api}{path}")).call())
}

pub fn http_post_json(api: &str, path: &str, body: &Value) -> Option<HttpReply> {
    finish(
        http()
            .post(&format!("http://{api}{path}"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string()),
    )
}

// ---------------------------------------------------------------------------
// API views
// ---------------------------------------------------------------------------

/// One entry of `GET /v1/members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub addr: String,
    pub state: String,
    pub incarnation: u64,
}

/// One entry of `GET /v1/services/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub node: String,
    pub addr: String,
    pub port: u64,
    pub tags: Vec<String>,
    pub state: String,
}

/// `GET /v1/members` of the API at `api`, keyed by member id.
/// `None` if the API does not answer or the body is not the documented shape.
pub fn members_at(api: &str) -> Option<BTreeMap<String, Member>> {
    let reply = http_get(api, "/v1/members")?;
    if reply.status != 200 {
        return None;
    }
    let arr = reply.json()?;
    let mut out = BTreeMap::new();
    for m in arr.as_array()? {
        let member = Member {
            id: m.get("id")?.as_str()?.to_string(),
            addr: m
                .get("addr")
                .and_then(|a| a.as_str())
                .unwrap_or("")
                .to_string(),
            state: m.get("state")?.as_str()?.to_string(),
            incarnation: m.get("incarnation").and_then(|i| i.as_u64()).unwrap_or(0),
        };
        out.insert(member.id.clone(), member);
    }
    Some(out)
}

/// `GET /v1/services/{name}` of the API at `api`.
pub fn instances_at(api: &str, name: &str) -> Option<Vec<Instance>> {
    let reply = http_get(api, &format!("/v1/services/{name}"))?;
    if reply.status != 200 {
        return None;
    }
    let arr = reply.json()?;
    let mut out = Vec::new();
    for i in arr.as_array()? {
        out.push(Instance {
            node: i.get("node")?.as_str()?.to_string(),
            addr: i
                .get("addr")
                .and_then(|a| a.as_str())
                .unwrap_or("")
                .to_string(),
            port: i.get("port").and_then(|p| p.as_u64()).unwrap_or(0),
            tags: i
                .get("tags")
                .and_then(|t| t.as_array())
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            state: i
                .get("state")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_string(),
        });
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("0.0.0.0", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port free for both UDP and TCP on 127.0.0.1 right now (for a DNS
/// server, which takes both).
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// Whether the external `tool` can run. Missing, the test is skipped with
/// a note, except under `CI=true`, where a missing tool is a failure.
pub fn require_tool(tool: &str, version_arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is not installed (CI=true: .ci/run must install it)");
        }
        eprintln!("SKIP: {tool} is not installed");
    }
    ok
}

/// A random base port `P` in 20000..60000 such that UDP `P..P+count` and TCP
/// `P+1000..P+1000+count` are all free right now.
pub fn free_base_port(count: u16) -> u16 {
    let mut rng = rand::thread_rng();
    for _ in 0..500 {
        let base: u16 = rng.gen_range(20000..(60000 - count));
        let ok = (0..count).all(|i| udp_free(base + i) && tcp_free(base + API_OFFSET + i));
        if ok {
            return base;
        }
    }
    panic!("no free block of {count} UDP + {count} TCP ports found in 20000..61000");
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// One `gossip agent` process (or a slot for one that has exited).
pub struct Node {
    pub id: String,
    pub port: u16,
    pub api_port: u16,
    pub seeds: String,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub cluster_name: String,
    dir: PathBuf,
    starts: u32,
}

impl Node {
    pub fn api(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    pub fn udp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Spawn (or re-spawn, after an exit) the agent process.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.id);
        self.starts += 1;
        let log_path = if self.starts == 1 {
            self.log.clone()
        } else {
            self.dir.join(format!("{}.run{}.log", self.id, self.starts))
        };
        let out = File::create(&log_path).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let mut cmd = Command::new(GOSSIP);
        cmd.arg("agent");
        for k in AGENT_ENV_KEYS {
            cmd.env_remove(k);
        }
        cmd.env("NODE_ID", &self.id)
            .env("NODE_IP", "127.0.0.1")
            .env("NODE_PORT", self.port.to_string())
            .env("BIND_ADDR", format!("127.0.0.1:{}", self.port))
            .env("API_ADDR", self.api())
            .env("SEED_NODES", &self.seeds)
            .env("CLUSTER_NAME", &self.cluster_name)
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // A scratch cwd so a `config.yml` in the crate root is not picked up:
        // the tests exercise the binary's built-in defaults plus the env.
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {GOSSIP} agent for {}: {e}", self.id));
        self.log = log_path;
        self.child = Some(child);
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.id));
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {pid} failed");
    }

    /// SIGKILL by PID and reap. Returns once the process is gone.
    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful leave); the process is not reaped: see `wait_exit`.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Wait up to `timeout` for the process to exit; reaps it and returns the
    /// status, or `None` if it is still running (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            match c.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return Some(st);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        }
    }

    pub fn members(&self) -> Option<BTreeMap<String, Member>> {
        members_at(&self.api())
    }

    pub fn instances(&self, service: &str) -> Option<Vec<Instance>> {
        instances_at(&self.api(), service)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(f) = File::open(&self.log) else {
            return String::from("(no log)");
        };
        let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        let start = all.len().saturating_sub(lines);
        all[start..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Always kill by PID and reap, whatever state the test left us in.
        self.sigkill();
    }
}

/// A set of agents on consecutive ports of one base.
pub struct Cluster {
    pub name: String,
    pub base: u16,
    pub capacity: u16,
    pub nodes: Vec<Node>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Cluster {
    /// Reserve a port block for up to `capacity` nodes. `name` names the log
    /// directory and (with the base port) the gossip cluster name, so that
    /// strays from other runs cannot join.
    pub fn new(name: &str, capacity: u16) -> Cluster {
        let base = free_base_port(capacity);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("loopback")
            .join(format!("{name}-{base}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create log dir");
        Cluster {
            name: name.to_string(),
            base,
            capacity,
            nodes: Vec::new(),
            dir,
            env: Vec::new(),
        }
    }

    /// Environment applied to every node started after this call.
    pub fn with_env(mut self, key: &str, value: &str) -> Cluster {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn node_id(i: usize) -> String {
        format!("node{}", i + 1)
    }

    /// Seeds for node `i`: node1 and node2 (never itself).
    fn seeds_for(&self, i: usize) -> String {
        let mut seeds = Vec::new();
        for s in 0..2usize {
            if s != i && (s as u16) < self.capacity {
                seeds.push(format!("127.0.0.1:{}", self.base + s as u16));
            }
        }
        seeds.join(",")
    }

    /// Define and start the next node, with `extra` env on top of the
    /// cluster's. Returns its index.
    pub fn spawn(&mut self, extra: &[(&str, &str)]) -> usize {
        let i = self.nodes.len();
        assert!((i as u16) < self.capacity, "cluster capacity exceeded");
        let id = Self::node_id(i);
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut node = Node {
            id: id.clone(),
            port: self.base + i as u16,
            api_port: self.base + API_OFFSET + i as u16,
            seeds: self.seeds_for(i),
            env,
            log: self.dir.join(format!("{id}.log")),
            child: None,
            cluster_name: format!("it-{}-{}", self.name, self.base),
            dir: self.dir.clone(),
            starts: 0,
        };
        node.start();
        self.nodes.push(node);
        i
    }

    pub fn spawn_n(&mut self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.spawn(&[])).collect()
    }

    pub fn ids(&self, which: &[usize]) -> Vec<String> {
        which.iter().map(|&i| self.nodes[i].id.clone()).collect()
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    pub fn except(&self, skip: &[usize]) -> Vec<usize> {
        self.all()
            .into_iter()
            .filter(|i| !skip.contains(i))
            .collect()
    }

    /// Fails fast (with the log) if a node that should be running has exited.
    pub fn assert_running(&mut self, which: &[usize]) {
        for &i in which {
            let exited = match self.nodes[i].child.as_mut() {
                None => Some(None),
                Some(c) => match c.try_wait() {
                    Ok(Some(st)) => Some(Some(st)),
                    _ => None,
                },
            };
            if let Some(st) = exited {
                panic!(
                    "{} exited unexpectedly (status {:?}); log {}:\n{}",
                    self.nodes[i].id,
                    st,
                    self.nodes[i].log.display(),
                    self.nodes[i].log_tail(30)
                );
            }
        }
    }

    /// `Ok` when every observer lists exactly `expected` as alive (every other
    /// member it knows, if any, is not alive).
    pub fn check_all_alive(&self, observers: &[usize], expected: &[usize]) -> Result<(), String> {
        let want: BTreeSet<String> = self.ids(expected).into_iter().collect();
        for &o in observers {
            let node = &self.nodes[o];
            let Some(view) = node.members() else {
                return Err(format!("{}: API {} not answering", node.id, node.api()));
            };
            let alive: BTreeSet<String> = view
                .values()
                .filter(|m| m.state == "alive")
                .map(|m| m.id.clone())
                .collect();
            if alive != want {
                let summary: Vec<String> = view
                    .values()
                    .map(|m| format!("{}={}", m.id, m.state))
                    .collect();
                return Err(format!("{} sees [{}]", node.id, summary.join(" ")));
            }
        }
        Ok(())
    }

    /// Wait until every node in `observers` lists exactly `expected` alive.
    pub fn wait_all_alive(
        &mut self,
        observers: &[usize],
        expected: &[usize],
        timeout: Duration,
    ) -> Duration {
        let obs = observers.to_vec();
        let exp = expected.to_vec();
        wait_for(
            &format!("{} nodes to list {} alive", obs.len(), exp.len()),
            timeout,
            Duration::from_millis(200),
            || {
                self.assert_running(&obs);
                self.check_all_alive(&obs, &exp)
            },
        )
    }

    /// Wait until every observer has, at some poll, reported member `subject`
    /// (by index) in `state`. Returns the elapsed time. `on_view` is called
    /// with (observer, view) for every successful poll, so a test can assert
    /// invariants on the way.
    pub fn wait_state_everywhere(
        &self,
        observers: &[usize],
        subject: usize,
        state: &str,
        timeout: Duration,
        mut on_view: impl FnMut(&Cluster, usize, &BTreeMap<String, Member>),
    ) -> Duration {
        let subject_id = self.nodes[subject].id.clone();
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        let obs = observers.to_vec();
        let what = format!("{} observers to report {subject_id} {state}", obs.len());
        let me: &Cluster = self;
        wait_for(&what, timeout, Duration::from_millis(200), || {
            let mut last = String::new();
            for &o in &obs {
                if seen.contains(&o) {
                    continue;
                }
                match me.nodes[o].members() {
                    None => last = format!("{}: API not answering", me.nodes[o].id),
                    Some(view) => {
                        on_view(me, o, &view);
                        match view.get(&subject_id) {
                            Some(m) if m.state == state => {
                                seen.insert(o);
                            }
                            Some(m) => {
                                last = format!(
                                    "{} sees {subject_id} {} (inc {})",
                                    me.nodes[o].id, m.state, m.incarnation
                                )
                            }
                            None => last = format!("{} does not list {subject_id}", me.nodes[o].id),
                        }
                    }
                }
            }
            if seen.len() == obs.len() {
                Ok(())
            } else {
                Err(format!("{}/{} so far; e.g. {last}", seen.len(), obs.len()))
            }
        })
    }

    pub fn dump_logs(&self, lines: usize) {
        for n in &self.nodes {
            eprintln!(
                "----- {} ({}) last {lines} lines -----",
                n.id,
                n.log.display()
            );
            eprintln!("{}", n.log_tail(lines));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test failed; agent logs are in {}", self.dir.display());
            self.dump_logs(15);
        }
        // Each Node's Drop kills and reaps its process.
        self.nodes.clear();
    }
}

/// Poll `check` every `every` until it returns `Ok` or `timeout` passes;
/// panics with the last error. Returns the time it took.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    let mut last;
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(e) => last = e,
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {:?} waiting for {what}: {last}", timeout);
        }
        thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------
// Skips
// ---------------------------------------------------------------------------

/// A test that cannot run here (a tool is missing) calls this and returns.
/// Cargo hides a passing test's output, so the skip is also appended to the
/// file named by `$GOSSIP_SKIP_LOG` (test/all.sh sets it and lists the
/// skips at the end). Under CI (`CI=true`), where `.ci/run` installs every
/// tool, a missing one is a failure instead.
pub fn skip(test: &str, reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {reason}, under CI=true (.ci/run should have installed it)");
    }
    eprintln!("SKIPPED {test}: {reason}");
    if let Ok(path) = std::env::var("GOSSIP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}
