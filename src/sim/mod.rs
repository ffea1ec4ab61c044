//! `gossip sim`: thousands of real nodes (the same actors, messages and
//! protocol code as the agent) in one process, on a simulated network
//! ([`network`]) and a virtual clock.
//!
//! Everything runs inside one `actix::System` on a single-threaded tokio
//! runtime whose clock is paused from the start
//! ([`network::paused_system`]): when every task is idle, tokio jumps the
//! clock to the next timer, so a simulated minute costs only the CPU time
//! of what happens in it. Determinism comes from three rules: every random
//! choice (nodes, network, scenario) draws from an RNG seeded from `--seed`;
//! the simulator iterates only ordered collections (`Vec`, `BTreeMap`); and
//! nothing in the protocol reads the wall clock (the actors use
//! `tokio::time`). Two runs with the same arguments therefore print the same
//! JSON, `wall_ms` aside.
//!
//! Nodes carry no HTTP server; their seeds are literal `ip:port` addresses of
//! other simulated nodes (`10.0.0.1:7946`, ...). The simulator watches them
//! through their membership events ([`observer`]), drives the scenario
//! ([`scenarios`]), checks the invariants ([`invariants`]) and reports
//! ([`report`]).

pub mod invariants;
pub mod network;
pub mod observer;
pub mod report;
pub mod scenarios;
pub mod wirelog;

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::config::{Config, StringList};
use crate::messages::{GetTable, Leave, Silence, StopActivity, Subscribe};
use crate::metrics::Metrics;
use crate::node::{start_node, NodeHandle, NodeOptions};
use crate::protocol::formed::Formed;
use crate::seeds::LiteralResolver;
use crate::transport::sim::SimLink;
use invariants::NodeView;
use network::{addr_of, Net, NetParams};
use observer::{node_name, Expect, Observer, Tap};
pub use report::Report;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N nodes start, staggered, from a few seeds; goal: every node lists every node alive.
    Join,
    /// One new rumor (a service registration) at one node; goal: every node has it.
    Dissemination,
    /// k nodes crash; goal: every survivor lists them dead.
    Failure,
    /// k nodes leave gracefully; goal: every other node lists them left.
    Leave,
    /// The cluster splits in two for D, then heals; goal: one converged view, nobody dead who is alive.
    Partition,
    /// Random joins, leaves, crashes and restarts for D; goal: a converged view after it stops.
    Churn,
    /// A healthy cluster under loss for D; goal: nobody declared dead.
    Soak,
    /// k nodes frozen for D, then resumed; goal: nobody declared dead, one converged view.
    Pause,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Join => "join",
            Scenario::Dissemination => "dissemination",
            Scenario::Failure => "failure",
            Scenario::Leave => "leave",
            Scenario::Partition => "partition",
            Scenario::Churn => "churn",
            Scenario::Soak => "soak",
            Scenario::Pause => "pause",
        }
    }

    /// What `--duration` means for this scenario, and its default.
    pub fn default_duration(self) -> Duration {
        match self {
            Scenario::Partition => Duration::from_secs(30),
            Scenario::Churn | Scenario::Soak => Duration::from_secs(60),
            Scenario::Pause => Duration::from_secs(2),
            // The time allowed to reach the goal.
            Scenario::Join | Scenario::Dissemination | Scenario::Failure | Scenario::Leave => {
                Duration::from_secs(120)
            }
        }
    }
}

/// The default `--count` stops growing here: every node copies the part of
/// its table a crash or leave changes (about 10 KB per event at 10,000
/// members), so 200 crashes at 10,000 nodes would need 20 GB.
const MAX_DEFAULT_COUNT: usize = 20;

/// How the cluster a scenario runs in comes to be.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Every node starts knowing every node alive (see `protocol::formed`):
    /// the state the joins would have left, without their cost. The default
    /// for every scenario but `join`.
    Warm,
    /// The nodes start one by one and join through the seeds, like agents.
    Join,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::Warm => "warm",
            Form::Join => "join",
        }
    }
}

/// `gossip sim` arguments (also the library's parameters).
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Fraction of datagrams lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Partition, churn, soak: how long the faults last; pause: how long the
    /// nodes are frozen; join, dissemination, failure, leave: how long the
    /// goal may take. `60`, `60s`, `500ms`, `10m`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How long the goal may take after the scenario's event (the heal, the
    /// end of the churn, the resume; for join, dissemination, failure and
    /// leave `--duration` also sets it). Default 120 s.
    #[arg(long, value_parser = parse_duration)]
    pub limit: Option<Duration>,
    /// One JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// How many nodes crash, leave or pause (default: N/50, at least 1 and
    /// at most 20).
    #[arg(long)]
    pub count: Option<usize>,
    /// Delay between node starts.
    #[arg(long, default_value_t = 10)]
    pub stagger_ms: u64,
    /// Seed nodes every node joins through (the first ones started).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// One-way network delay, and uniform jitter on top of it.
    #[arg(long, default_value_t = 1)]
    pub latency_ms: u64,
    #[arg(long, default_value_t = 2)]
    pub jitter_ms: u64,
    /// Fraction of datagrams delivered twice.
    #[arg(long, default_value_t = 0.0)]
    pub dup: f64,
    /// Fraction of datagrams held back so that later ones overtake them.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Partition: cut only the direction from the second half to the first.
    #[arg(long)]
    pub one_way: bool,
    /// Failure: once the victims are dead everywhere, restart them (same
    /// NODE_ID, same address) and wait until every node lists them again.
    #[arg(long)]
    pub restart: bool,
    /// Failure: once the victims are dead everywhere, keep watching this long
    /// (`10m`) and count the `failed` events each survivor emits about each
    /// victim: one crash must be exactly one, however long it is watched
    /// (tombstones are reclaimed meanwhile).
    #[arg(long, value_parser = parse_duration)]
    pub watch: Option<Duration>,
    /// How the initial cluster forms: `warm` (every node starts knowing
    /// everyone; the default) or `join` (real joins through the seeds,
    /// `--stagger-ms` apart). The `join` scenario always joins.
    #[arg(long, value_enum)]
    pub form: Option<Form>,
    /// Time under loss before the scenario's event (not for join).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub warmup: Duration,
    /// Overrides of the node configuration (defaults: config.yml's).
    #[arg(long)]
    pub probe_interval_ms: Option<u64>,
    #[arg(long)]
    pub gossip_interval_ms: Option<u64>,
}

impl SimArgs {
    /// The command line's defaults, for a scenario and a size.
    pub fn new(scenario: Scenario, nodes: usize) -> Self {
        SimArgs {
            nodes,
            scenario,
            loss: 0.0,
            seed: 1,
            duration: None,
            limit: None,
            json: false,
            count: None,
            stagger_ms: 10,
            seeds: 3,
            latency_ms: 1,
            jitter_ms: 2,
            dup: 0.0,
            reorder: 0.0,
            one_way: false,
            restart: false,
            watch: None,
            form: None,
            warmup: Duration::from_secs(10),
            probe_interval_ms: None,
            gossip_interval_ms: None,
        }
    }

    pub fn form(&self) -> Form {
        match (self.scenario, self.form) {
            (Scenario::Join, _) => Form::Join,
            (_, f) => f.unwrap_or(Form::Warm),
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
            .unwrap_or_else(|| self.scenario.default_duration())
    }

    /// The time allowed for the scenario's goal.
    pub fn limit(&self) -> Duration {
        match (self.limit, self.scenario) {
            (Some(l), _) => l,
            (
                None,
                Scenario::Join | Scenario::Dissemination | Scenario::Failure | Scenario::Leave,
            ) => self.duration(),
            (None, _) => Duration::from_secs(120),
        }
    }

    pub fn count(&self) -> usize {
        self.count
            .unwrap_or((self.nodes / 50).min(MAX_DEFAULT_COUNT))
            .clamp(1, self.nodes.saturating_sub(1).max(1))
    }

    /// The command that replays this run.
    pub fn replay(&self) -> String {
        let d = SimArgs::new(self.scenario, self.nodes);
        let mut s = format!(
            "gossip sim --nodes {} --scenario {} --loss {} --seed {} --duration {}",
            self.nodes,
            self.scenario.name(),
            self.loss,
            self.seed,
            fmt_duration(self.duration())
        );
        let mut opt = |flag: &str, v: String, default: String| {
            if v != default {
                s.push_str(&format!(" --{flag} {v}"));
            }
        };
        opt("count", self.count().to_string(), d.count().to_string());
        opt("form", self.form().name().into(), d.form().name().into());
        opt(
            "stagger-ms",
            self.stagger_ms.to_string(),
            d.stagger_ms.to_string(),
        );
        opt("seeds", self.seeds.to_string(), d.seeds.to_string());
        opt(
            "latency-ms",
            self.latency_ms.to_string(),
            d.latency_ms.to_string(),
        );
        opt(
            "jitter-ms",
            self.jitter_ms.to_string(),
            d.jitter_ms.to_string(),
        );
        opt("dup", self.dup.to_string(), d.dup.to_string());
        opt("reorder", self.reorder.to_string(), d.reorder.to_string());
        opt("warmup", fmt_duration(self.warmup), fmt_duration(d.warmup));
        if let Some(l) = self.limit {
            s.push_str(&format!(" --limit {}", fmt_duration(l)));
        }
        if let Some(v) = self.probe_interval_ms {
            s.push_str(&format!(" --probe-interval-ms {v}"));
        }
        if let Some(v) = self.gossip_interval_ms {
            s.push_str(&format!(" --gossip-interval-ms {v}"));
        }
        if self.one_way {
            s.push_str(" --one-way");
        }
        if self.restart {
            s.push_str(" --restart");
        }
        if let Some(w) = self.watch {
            s.push_str(&format!(" --watch {}", fmt_duration(w)));
        }
        s
    }

    fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 {
            return Err("--nodes must be at least 2".into());
        }
        for (k, v) in [
            ("--loss", self.loss),
            ("--dup", self.dup),
            ("--reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{k} must be a fraction from 0 to 1"));
            }
        }
        if self.loss >= 1.0 {
            return Err("--loss 1 would disconnect everyone".into());
        }
        if self.scenario == Scenario::Join && self.form == Some(Form::Warm) {
            return Err("the join scenario forms its cluster by joining: drop --form warm".into());
        }
        if self.seeds == 0 {
            return Err("--seeds must be at least 1".into());
        }
        Ok(())
    }
}

/// `60`, `60s`, `1500ms`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (60, 60s, 500ms, 10m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// splitmix64 over a seed and a label: independent streams per purpose.
pub fn mix(seed: u64, label: u64) -> u64 {
    let mut z = seed ^ label.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `gossip sim`: runs, prints, and returns the exit code.
pub fn run(args: SimArgs) -> i32 {
    if std::env::var_os("RUST_LOG").is_none() {
        // Thousands of nodes would drown the summary in their info lines.
        log::set_max_level(log::LevelFilter::Error);
    }
    if let Err(e) = args.validate() {
        eprintln!("error: {e}");
        return 2;
    }
    if let Err(e) = wirelog::init() {
        eprintln!("error: {e}");
        return 2;
    }
    let json = args.json;
    let report = simulate(&args);
    wirelog::finish();
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        println!("{}", report.summary());
    }
    if report.converged && report.invariants_ok {
        0
    } else {
        eprintln!(
            "SIMULATION FAILED ({}): {}\nreplay with: {}",
            if report.converged {
                "invariant violated"
            } else {
                "goal not reached"
            },
            if report.violations.is_empty() {
                "see above".to_string()
            } else {
                report.violations.join(" | ")
            },
            report.replay
        );
        1
    }
}

/// Runs one simulation in a fresh actix system on the calling thread.
pub fn simulate(args: &SimArgs) -> Report {
    let args = args.clone();
    let wall = std::time::Instant::now();
    let mut report = network::paused_system().block_on(async move {
        let mut sim = Sim::new(args);
        scenarios::run(&mut sim).await
    });
    report.wall_ms = wall.elapsed().as_millis() as u64;
    report
}

/// Where a slot's node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    NotStarted,
    Up,
    Paused,
    Crashed,
    Left,
}

pub struct NodeSlot {
    pub handle: Option<NodeHandle>,
    pub life: Life,
    /// How many times this slot's node was (re)started.
    pub generation: u32,
    /// The counters of every life of this slot (traffic adds up over lives).
    pub metrics: Vec<Arc<Metrics>>,
}

/// The running simulation: the network, the nodes, the observer, the clock.
pub struct Sim {
    pub a: SimArgs,
    pub net: Net,
    pub obs: Rc<RefCell<Observer>>,
    pub slots: Vec<NodeSlot>,
    pub origin: Instant,
    pub rng: SmallRng,
    pub phase: &'static str,
    wall: std::time::Instant,
    last_progress: std::time::Instant,
}

impl Sim {
    pub fn new(a: SimArgs) -> Sim {
        let origin = Instant::now();
        let p = NetParams {
            loss: 0.0,
            latency_ms: a.latency_ms,
            jitter_ms: a.jitter_ms,
            dup: a.dup,
            reorder: a.reorder,
            ..NetParams::default()
        };
        Sim {
            net: Net::new(p, mix(a.seed, 1), origin),
            obs: Rc::new(RefCell::new(Observer::new(origin))),
            slots: Vec::new(),
            origin,
            rng: SmallRng::seed_from_u64(mix(a.seed, 2)),
            phase: "start",
            wall: std::time::Instant::now(),
            last_progress: std::time::Instant::now(),
            a,
        }
    }

    pub fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }

    pub fn life(&self, i: usize) -> Life {
        self.slots.get(i).map_or(Life::NotStarted, |s| s.life)
    }

    /// Slots whose node is up (running and reachable).
    pub fn up(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].life == Life::Up)
            .collect()
    }

    /// Slots whose node is a member: up or paused.
    pub fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| matches!(self.slots[i].life, Life::Up | Life::Paused))
            .collect()
    }

    pub fn handle(&self, i: usize) -> &NodeHandle {
        self.slots[i].handle.as_ref().expect("started")
    }

    fn ensure(&mut self, i: usize) {
        while self.slots.len() <= i {
            self.slots.push(NodeSlot {
                handle: None,
                life: Life::NotStarted,
                generation: 0,
                metrics: Vec::new(),
            });
        }
        self.obs.borrow_mut().ensure(i);
    }

    fn config(&self, i: usize, seeds: &[SocketAddr]) -> Config {
        let me = addr_of(i);
        let mut cfg = Config {
            node_id: node_name(i),
            node_ip: Some(me.ip().to_string()),
            node_port: me.port(),
            seed_nodes: StringList(
                seeds
                    .iter()
                    .filter(|s| **s != me)
                    .map(|s| s.to_string())
                    .collect(),
            ),
            // No periodic STATS lines from thousands of nodes.
            stats_interval_ms: 3_600_000,
            ..Config::default()
        };
        if let Some(v) = self.a.probe_interval_ms {
            cfg.probe_interval_ms = v;
            cfg.probe_timeout_ms = cfg.probe_timeout_ms.min(v / 2).max(1);
        }
        if let Some(v) = self.a.gossip_interval_ms {
            cfg.gossip_interval_ms = v;
        }
        cfg
    }

    /// Starts (or restarts, same NODE_ID at the same address) the node of
    /// slot `i`, joining through `seeds`.
    pub fn start(&mut self, i: usize, seeds: &[SocketAddr]) {
        self.start_with(i, seeds, None);
    }

    /// Starts the node of slot `i` inside a formed cluster (the warm start;
    /// the observer must have been `preload`ed), or joining through `seeds`.
    pub fn start_with(&mut self, i: usize, seeds: &[SocketAddr], formed: Option<Formed>) {
        self.ensure(i);
        let warm = formed.is_some();
        let cfg = self.config(i, seeds);
        let metrics = Arc::new(Metrics::default());
        let generation = self.slots[i].generation;
        let net = self.net.clone();
        let handle = start_node(
            &cfg,
            addr_of(i),
            move |inbox| {
                net.attach(i, inbox);
                Box::new(SimLink::new(net, i))
            },
            NodeOptions {
                seed: mix(self.a.seed, 1000 + ((i as u64) << 16) + generation as u64),
                resolver: Box::new(LiteralResolver),
                owner: None,
                metrics: metrics.clone(),
                formed,
                exit_on_name_taken: false,
                clock_origin: Some(self.origin),
            },
        );
        // A fresh row for the new life; events from a previous life's actors
        // (still running, silenced) are ignored from now on.
        let life = if warm {
            self.obs.borrow_mut().new_life(i)
        } else {
            self.obs.borrow_mut().reset_row(i)
        };
        // Subscribed before the node has processed anything: the tap sees
        // every change of its view.
        let tap = Tap {
            slot: i,
            life,
            obs: self.obs.clone(),
        }
        .start();
        handle.membership.do_send(Subscribe(tap.recipient()));
        let slot = &mut self.slots[i];
        slot.handle = Some(handle);
        slot.life = Life::Up;
        slot.generation += 1;
        slot.metrics.push(metrics);
        self.obs.borrow_mut().set_counted(i, true);
    }

    /// A crash: the node goes silent at once, without a word.
    pub fn crash(&mut self, i: usize) {
        let h = self.handle(i).clone();
        self.net.set_down(i);
        h.transport.do_send(Silence);
        h.failure.do_send(StopActivity);
        h.gossip.do_send(StopActivity);
        self.slots[i].life = Life::Crashed;
        self.obs.borrow_mut().set_counted(i, false);
    }

    /// A graceful leave (the node spreads its LEAVE, then goes quiet).
    pub fn leave(&mut self, i: usize) {
        let h = self.handle(i).clone();
        let net = self.net.clone();
        actix_rt::spawn(async move {
            let _ = h.leave.send(Leave).await;
            net.set_down(i);
        });
        self.slots[i].life = Life::Left;
        self.obs.borrow_mut().set_counted(i, false);
    }

    pub fn pause(&mut self, i: usize) {
        self.net.pause(i);
        self.slots[i].life = Life::Paused;
        self.obs.borrow_mut().set_counted(i, false);
    }

    pub fn resume(&mut self, i: usize) {
        self.net.resume(i);
        self.slots[i].life = Life::Up;
        self.obs.borrow_mut().set_counted(i, true);
    }

    /// With `SIM_WIRE_LOG`: starts recording, and logs every change of a
    /// node's local health score (sampled every 50 virtual ms) while it lasts.
    pub fn start_wire_log(&self, what: &str) {
        if !wirelog::enabled() {
            return;
        }
        let now = self.now_ms();
        wirelog::start(now, what);
        let metrics: Vec<Arc<Metrics>> = self
            .slots
            .iter()
            .filter_map(|s| s.metrics.last().cloned())
            .collect();
        let origin = self.origin;
        actix_rt::spawn(async move {
            let mut last = vec![0u64; metrics.len()];
            while wirelog::recording() {
                let at = Instant::now().saturating_duration_since(origin).as_millis() as u64;
                for (i, m) in metrics.iter().enumerate() {
                    let v = Metrics::get(&m.health_score);
                    if v != last[i] {
                        wirelog::health(at, i, v);
                        last[i] = v;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// Datagrams and bytes sent by every node so far, all lives included.
    /// Every node counter summed over all nodes and lives (`SIM_DEBUG`).
    pub fn counter_totals(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut t = std::collections::BTreeMap::new();
        for m in self.slots.iter().flat_map(|s| &s.metrics) {
            for (name, (v, _)) in m.snapshot() {
                *t.entry(name).or_insert(0) += v;
            }
        }
        t
    }

    pub fn traffic(&self) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for s in &self.slots {
            for m in &s.metrics {
                t.0 += Metrics::get(&m.datagrams_out);
                t.1 += Metrics::get(&m.bytes_out);
                t.2 += Metrics::get(&m.bytes_in);
            }
        }
        t
    }

    /// The real member tables of these nodes.
    pub async fn views(&self, slots: &[usize]) -> Vec<NodeView> {
        let mut out = Vec::with_capacity(slots.len());
        for &i in slots {
            let members = self
                .handle(i)
                .membership
                .send(GetTable)
                .await
                .unwrap_or_default();
            out.push(NodeView { slot: i, members });
        }
        out
    }

    /// Sets what every slot's view should say: `live` for up and paused
    /// nodes, `gone` for the others.
    pub fn expect_truth(&mut self, live: Expect, gone: Expect) {
        let mut obs = self.obs.borrow_mut();
        for i in 0..self.slots.len() {
            let e = match self.slots[i].life {
                Life::Up | Life::Paused => live,
                Life::NotStarted => Expect::Any,
                Life::Crashed | Life::Left => gone,
            };
            obs.set_expect(i, e);
        }
    }

    /// Lets virtual time pass (printing progress).
    pub async fn sleep(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let step = (end - Instant::now()).min(Duration::from_millis(500));
            tokio::time::sleep(step).await;
            self.progress();
        }
    }

    /// Waits until `cond` holds (checked every 50 virtual ms) or `limit`
    /// passes; true if it held.
    pub async fn wait(&mut self, limit: Duration, cond: impl Fn(&Observer) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if cond(&self.obs.borrow()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.progress();
        }
    }

    /// One progress line on stderr every 2 s of wall time (not with --json).
    pub fn progress(&mut self) {
        if self.a.json || self.last_progress.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last_progress = std::time::Instant::now();
        let obs = self.obs.borrow();
        eprintln!(
            "  [{:>5.1} s wall] virtual {:>7.1} s  phase {:<12} nodes up {:>5}  views still differing from the goal: {}",
            self.wall.elapsed().as_secs_f64(),
            self.now_ms() as f64 / 1000.0,
            self.phase,
            self.up().len(),
            obs.total_mismatch()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::member::test_hooks::RESURRECT;

    /// Restores the real merge rule even if the test fails.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            RESURRECT.with(|r| r.set(false));
        }
    }

    fn crash_and_restart() -> SimArgs {
        let mut a = SimArgs::new(Scenario::Failure, 12);
        a.restart = true;
        a.warmup = Duration::from_secs(2);
        a.duration = Some(Duration::from_secs(60));
        a
    }

    #[test]
    fn crash_and_restart_keeps_the_invariants() {
        let r = simulate(&crash_and_restart());
        assert!(r.converged && r.invariants_ok, "{r:#?}");
        assert!(r.rejoin_ms.is_some(), "{r:#?}");
        assert!(
            r.refutations > 0,
            "the restarted node had to refute its death"
        );
    }

    #[test]
    fn a_broken_merge_rule_is_caught() {
        let _restore = Restore;
        RESURRECT.with(|r| r.set(true));
        let r = simulate(&crash_and_restart());
        assert!(
            !r.invariants_ok,
            "the checker missed the broken rule: {r:#?}"
        );
        assert!(
            r.violations.iter().any(|v| v.contains("resurrection")),
            "{:?}",
            r.violations
        );
        assert!(
            r.replay.contains("--seed 1"),
            "the report names the seed to replay: {}",
            r.replay
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("10x").is_err());
        assert_eq!(fmt_duration(Duration::from_secs(600)), "10m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    }
}
