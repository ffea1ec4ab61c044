//! The scenarios. Each one (but `join`) first forms a cluster of N nodes on a
//! loss-free network (started `--stagger-ms` apart, all through the first
//! `--seeds` nodes), waits until every node lists every node, then turns the
//! loss on, lets `--warmup` pass, and does its thing. After the goal, every
//! scenario stops all faults (loss off, partition healed) and waits until all
//! live nodes agree on every record; then the invariants are checked.
//!
//! What `sim_ms` measures:
//! * join: from the first node's start until every node lists every node
//!   (as alive or suspect; suspicion is a transient state under loss);
//! * dissemination: from the registration until the last node holds it;
//! * failure: from the crash until every survivor lists every victim dead;
//! * leave: from the leave request until every other node lists them left;
//! * partition: from the heal until every node lists every node again;
//! * churn: from the end of the churn until the views match the truth;
//! * soak: the soak's duration (the goal is that nobody was declared dead);
//! * pause: from the resume until every node lists every node again.
//!
//! False positives (`false_positives`: distinct members; `false_deaths`:
//! sightings) are deaths of members that were healthy at the time: up, not
//! crashed, not left. Not counted: deaths across a partition's cut while it
//! stands (in a one-way partition, any death of a member on the side whose
//! outbound traffic is cut), and, after a heal or a restart, deaths at an
//! incarnation no higher than the member's own at that moment: those are the
//! partition's (or the previous life's) verdicts being reconciled, which the
//! member refutes by raising its incarnation.
//!
//! Invariant "no healthy member declared dead": checked for `soak` (any
//! false positive fails it) and for `partition` after the heal
//! (`false_positives_after_heal`); false positives during the partition
//! (same side, under loss) are counted in `false_positives` and reported.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::invariants::agreement;
use super::network::addr_of;
use super::observer::{node_name, Expect, Fact, Observer, Sighting};
use super::report::{percentile, round1, Report};
use super::{Form, Life, Scenario, Sim};
use crate::config::Config;
use crate::messages::Register;
use crate::protocol::formed::Formed;
use crate::protocol::services::Service;
use crate::protocol::{Member, NodeId};

/// When deaths of a member count as false positives.
#[derive(Default)]
struct Health {
    /// Per slot: `[from, to)` periods of health, and the incarnation up to
    /// which deaths are stale verdicts (not counted) in that period.
    periods: Vec<Vec<(u64, u64, Option<u32>)>>,
    /// A partition's window, its groups, and whether it was one-way.
    cut: Option<(u64, u64, Vec<u32>, bool)>,
}

impl Health {
    fn open(&mut self, y: usize, from: u64, stale: Option<u32>) {
        while self.periods.len() <= y {
            self.periods.push(Vec::new());
        }
        self.periods[y].push((from, u64::MAX, stale));
    }

    fn close(&mut self, y: usize, at: u64) {
        if let Some(p) = self.periods.get_mut(y).and_then(|v| v.last_mut()) {
            if p.1 == u64::MAX {
                p.1 = at;
            }
        }
    }

    fn excused(&self, d: &Sighting) -> bool {
        let Some((from, to, groups, one_way)) = &self.cut else {
            return false;
        };
        if d.at < *from || d.at >= *to {
            return false;
        }
        let g = |i: u32| groups.get(i as usize).copied().unwrap_or(0);
        g(d.node) != g(d.member) || (*one_way && g(d.member) == 1)
    }

    fn healthy(&self, d: &Sighting) -> bool {
        self.periods.get(d.member as usize).is_some_and(|ps| {
            ps.iter()
                .any(|(f, t, stale)| d.at >= *f && d.at < *t && stale.is_none_or(|s| d.inc > s))
        })
    }

    /// False positives among the deaths at or after `since` (virtual ms).
    fn false_positives(&self, obs: &Observer, since: u64) -> FalsePositives {
        let mut members = BTreeSet::new();
        let mut fp = FalsePositives::default();
        for d in obs.deaths.iter().filter(|d| d.at >= since) {
            if !self.healthy(d) {
                continue;
            }
            if self.excused(d) {
                fp.excused += 1;
                continue;
            }
            fp.sightings += 1;
            members.insert(d.member);
            if fp.examples.len() < 5 {
                fp.examples.push(format!(
                    "n{} declared dead by n{} at t={}ms (incarnation {})",
                    d.member, d.node, d.at, d.inc
                ));
            }
        }
        fp.members = members.len() as u64;
        fp
    }
}

#[derive(Default)]
struct FalsePositives {
    /// Distinct members.
    members: u64,
    sightings: u64,
    excused: u64,
    examples: Vec<String>,
}

pub async fn run(sim: &mut Sim) -> Report {
    let a = sim.a.clone();
    let mut r = Report::new(&a);
    let mut health = Health::default();
    let wall = std::time::Instant::now();
    let outcome = match a.scenario {
        Scenario::Join => join(sim, &mut r, &mut health).await,
        s => match form(sim, &mut health).await {
            Err(e) => Err(e),
            Ok(setup) => {
                r.setup_ms = Some(setup);
                if std::env::var_os("SIM_DEBUG").is_some() {
                    eprintln!("resident after forming: {} MB", resident_mb());
                }
                r.wall_setup_ms = wall.elapsed().as_millis() as u64;
                sim.net.set_loss(a.loss);
                sim.start_wire_log(&format!("loss {}", a.loss));
                match s {
                    Scenario::Soak => soak(sim, &mut r).await,
                    Scenario::Dissemination => dissemination(sim, &mut r).await,
                    Scenario::Failure => failure(sim, &mut r, &mut health).await,
                    Scenario::Leave => leave(sim, &mut r, &mut health).await,
                    Scenario::Partition => partition(sim, &mut r, &mut health).await,
                    Scenario::Churn => churn(sim, &mut r, &mut health).await,
                    Scenario::Pause => pause(sim, &mut r).await,
                    Scenario::Join => unreachable!(),
                }
            }
        },
    };
    let mut violations = Vec::new();
    match outcome {
        Ok(_window) => {}
        Err(e) => {
            r.converged = false;
            violations.push(e);
        }
    }

    // False positives, and the invariant where none is allowed.
    {
        let obs = sim.obs.borrow();
        let all = health.false_positives(&obs, 0);
        r.false_positives = all.members;
        r.false_deaths = all.sightings;
        r.excused_deaths = all.excused;
        r.suspicions = obs.suspicions.len() as u64;
        r.refutations = obs.refutations;
        if matches!(a.scenario, Scenario::Soak | Scenario::Pause) && all.members > 0 {
            // Their goal is that nobody is declared dead.
            r.converged = false;
        }
        // The invariant: nobody healthy declared dead in a soak, nor after a
        // partition heals (during the partition, see false_positives).
        let checked = match (a.scenario, health.cut.as_ref()) {
            (Scenario::Soak, _) => Some(all),
            (Scenario::Partition, Some(cut)) => {
                let after = health.false_positives(&obs, cut.1);
                r.false_positives_after_heal = Some(after.members);
                Some(after)
            }
            _ => None,
        };
        if let Some(fp) = checked.filter(|fp| fp.members > 0) {
            violations.push(format!(
                "healthy members declared dead: {} ({})",
                fp.members,
                fp.examples.join("; ")
            ));
        }
    }

    r.wall_scenario_ms = wall.elapsed().as_millis() as u64 - r.wall_setup_ms;
    if std::env::var_os("SIM_DEBUG").is_some() {
        for (name, v) in sim.counter_totals() {
            eprintln!("counter {name}: {v}");
        }
    }

    super::wirelog::stop(sim.now_ms());
    // Faults stop; all live nodes must come to agree.
    let wall = std::time::Instant::now();
    let (settle, disagreements) = settle(sim).await;
    r.wall_settle_ms = wall.elapsed().as_millis() as u64;
    r.settle_ms = settle;
    violations.extend(disagreements);
    {
        let obs = sim.obs.borrow();
        violations.extend(obs.violations.iter().cloned());
        if obs.violation_count > obs.violations.len() as u64 {
            violations.push(format!(
                "... {} invariant violations in all",
                obs.violation_count
            ));
        }
        r.events = obs.events;
    }
    // A missed goal is reported as such (converged: false), not as a broken
    // invariant.
    r.invariants_ok = violations.iter().all(|v| v.starts_with("goal:"));
    r.violations = violations;
    r.net = sim.net.stats();
    r.virtual_ms = sim.now_ms();
    r
}

/// The traffic of a measurement window.
struct Window {
    msgs: u64,
    bytes: u64,
    bytes_in: u64,
    secs: f64,
    nodes: usize,
}

struct Meter {
    start_ms: u64,
    start: (u64, u64, u64),
    nodes: usize,
}

impl Meter {
    fn start(sim: &Sim) -> Meter {
        Meter {
            start_ms: sim.now_ms(),
            start: sim.traffic(),
            nodes: sim.up().len(),
        }
    }
    /// Ends the window and writes its traffic into the report (whether the
    /// goal is then reached or not).
    fn stop(self, sim: &Sim, r: &mut Report) -> Window {
        let end = sim.traffic();
        let w = Window {
            msgs: end.0 - self.start.0,
            bytes: end.1 - self.start.1,
            bytes_in: end.2 - self.start.2,
            secs: (sim.now_ms() - self.start_ms) as f64 / 1000.0,
            // Joins start from nothing: count the nodes at the end then.
            nodes: self.nodes.max(sim.up().len()).max(1),
        };
        let secs = w.secs.max(0.001);
        let n = w.nodes as f64;
        r.msgs_per_node_s = round1(w.msgs as f64 / n / secs);
        r.bytes_per_node_s = round1(w.bytes as f64 / n / secs);
        r.bytes_in_per_node_s = round1(w.bytes_in as f64 / n / secs);
        w
    }
}

fn goal_missed(what: String) -> String {
    format!("goal: {what}")
}

/// A goal message with the first views that still differ.
fn missed_with_examples(sim: &Sim, what: String) -> String {
    let ex = sim.obs.borrow().mismatches(5);
    goal_missed(format!("{what}; e.g. {}", ex.join(", ")))
}

/// Starts nodes `0..n`, `--stagger-ms` apart, all joining through the
/// first `--seeds` nodes, each expected to be listed by everyone.
async fn start_all(sim: &mut Sim, health: &mut Health) {
    let n = sim.a.nodes;
    let seeds: Vec<SocketAddr> = (0..sim.a.seeds.min(n)).map(addr_of).collect();
    let stagger = Duration::from_millis(sim.a.stagger_ms);
    for i in 0..n {
        sim.start(i, &seeds);
        sim.obs.borrow_mut().set_expect(i, Expect::Live);
        health.open(i, sim.now_ms(), None);
        if i + 1 < n && !stagger.is_zero() {
            sim.sleep(stagger).await;
        }
    }
}

fn form_limit(sim: &Sim) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(sim.a.stagger_ms * sim.a.nodes as u64)
}

/// This process's resident memory (Linux), for `SIM_DEBUG`.
fn resident_mb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096 / 1_000_000)
}

/// Starts nodes `0..n` at once inside one formed cluster (`--form warm`).
fn start_formed(sim: &mut Sim, health: &mut Health) {
    let n = sim.a.nodes;
    let members: Vec<Member> = (0..n)
        .map(|i| Member::new_alive(NodeId::new(&node_name(i)), addr_of(i), 0))
        .collect();
    // The nodes' own bound (config.yml's), so the table is the one they keep.
    let max_members = Config::default().max_members;
    let formed = Formed::new(&members, max_members);
    sim.obs.borrow_mut().preload(n);
    for i in 0..n {
        sim.start_with(i, &[], Some(formed.clone()));
        health.open(i, sim.now_ms(), None);
    }
}

/// Forms the initial cluster on a loss-free network; returns when it formed.
async fn form(sim: &mut Sim, health: &mut Health) -> Result<u64, String> {
    sim.phase = "forming";
    if sim.a.form() == Form::Warm {
        start_formed(sim, health);
        return Ok(sim.now_ms());
    }
    start_all(sim, health).await;
    let limit = form_limit(sim);
    if !sim.wait(limit, |o| o.total_mismatch() == 0).await {
        let left = sim.obs.borrow().total_mismatch();
        return Err(missed_with_examples(
            sim,
            format!("the initial cluster did not form within {} s ({left} (node, member) pairs still missing)", limit.as_secs()),
        ));
    }
    Ok(sim.now_ms())
}

async fn join(sim: &mut Sim, r: &mut Report, health: &mut Health) -> Result<Window, String> {
    sim.net.set_loss(sim.a.loss);
    let meter = Meter::start(sim);
    sim.phase = "joining";
    start_all(sim, health).await;
    let last_start = sim.now_ms();
    let limit = sim.a.limit.or(sim.a.duration).unwrap_or(form_limit(sim));
    let ok = sim.wait(limit, |o| o.total_mismatch() == 0).await;
    let w = meter.stop(sim, r);
    if !ok {
        let left = sim.obs.borrow().total_mismatch();
        return Err(missed_with_examples(
            sim,
            format!(
                "not every node lists every node within {} s ({left} pairs missing)",
                limit.as_secs()
            ),
        ));
    }
    let at = sim.obs.borrow().matched_since.unwrap_or(sim.now_ms());
    r.converged = true;
    r.sim_ms = Some(at);
    r.join_after_last_start_ms = Some(at.saturating_sub(last_start));
    Ok(w)
}

async fn soak(sim: &mut Sim, r: &mut Report) -> Result<Window, String> {
    sim.phase = "soaking";
    let meter = Meter::start(sim);
    let d = sim.a.duration();
    sim.sleep(d).await;
    r.sim_ms = Some(d.as_millis() as u64);
    r.converged = true; // refined by the false-positive count
    Ok(meter.stop(sim, r))
}

async fn warmup(sim: &mut Sim) {
    sim.phase = "warm-up";
    let w = sim.a.warmup;
    sim.sleep(w).await;
}

/// `k` distinct random up nodes.
fn pick(sim: &mut Sim, k: usize) -> Vec<usize> {
    let mut up = sim.up();
    up.shuffle(&mut sim.rng);
    let mut v: Vec<usize> = up.into_iter().take(k).collect();
    v.sort_unstable();
    v
}

async fn dissemination(sim: &mut Sim, r: &mut Report) -> Result<Window, String> {
    warmup(sim).await;
    sim.phase = "disseminating";
    let owner = pick(sim, 1)[0];
    let name = "sim-rumor".to_string();
    sim.obs.borrow_mut().follow(Fact {
        owner,
        name: name.clone(),
    });
    let meter = Meter::start(sim);
    let t0 = sim.now_ms();
    super::wirelog::marker(t0, &format!("register {owner}"));
    let reg = sim
        .handle(owner)
        .registry
        .send(Register::plain(Service::new(&name, 9000)))
        .await;
    if !matches!(reg, Ok(Ok(()))) {
        return Err(format!("the registration at n{owner} failed: {reg:?}"));
    }
    let limit = sim.a.limit();
    let ok = sim.wait(limit, |o| o.fact_missing() == 0).await;
    let w = meter.stop(sim, r);
    let obs = sim.obs.borrow();
    let mut times: Vec<u64> = sim
        .up()
        .into_iter()
        .filter(|&x| x != owner)
        .filter_map(|x| obs.fact_seen[x])
        .map(|t| t - t0)
        .collect();
    times.sort_unstable();
    r.dissemination_ms_p50 = percentile(&times, 50.0);
    if !ok {
        return Err(goal_missed(format!(
            "{} nodes never got the rumor within {} s",
            obs.fact_missing(),
            limit.as_secs()
        )));
    }
    r.dissemination_ms_p100 = times.last().copied();
    r.sim_ms = r.dissemination_ms_p100;
    r.converged = true;
    Ok(w)
}

// The observer borrow below is dropped before the next await (clippy cannot see it).
#[allow(clippy::await_holding_refcell_ref)]
async fn failure(sim: &mut Sim, r: &mut Report, health: &mut Health) -> Result<Window, String> {
    warmup(sim).await;
    sim.phase = "detecting";
    let victims = pick(sim, sim.a.count());
    let meter = Meter::start(sim);
    let t0 = sim.now_ms();
    for &v in &victims {
        sim.crash(v);
        health.close(v, t0);
    }
    super::wirelog::marker(
        t0,
        &format!(
            "crash {}",
            victims
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    {
        // The goal is about the victims only: survivors may suspect one
        // another under loss meanwhile.
        let mut obs = sim.obs.borrow_mut();
        for i in 0..sim.slots.len() {
            obs.set_expect(
                i,
                if victims.contains(&i) {
                    Expect::Dead
                } else {
                    Expect::Any
                },
            );
        }
    }
    let limit = sim.a.limit();
    let ok = sim.wait(limit, |o| o.total_mismatch() == 0).await;
    let w = meter.stop(sim, r);
    let survivors = sim.up();
    let obs = sim.obs.borrow();
    let n = sim.slots.len();
    let mut first = vec![None; n * victims.len()];
    for d in obs.deaths.iter().filter(|d| d.at >= t0) {
        if let Some(vi) = victims.iter().position(|&v| v == d.member as usize) {
            let cell = &mut first[vi * n + d.node as usize];
            if cell.is_none() {
                *cell = Some(d.at - t0);
            }
        }
    }
    let mut pairs = Vec::new();
    let mut everywhere = Vec::new();
    let mut suspected = Vec::new();
    for (vi, &v) in victims.iter().enumerate() {
        let times: Vec<Option<u64>> = survivors.iter().map(|&x| first[vi * n + x]).collect();
        pairs.extend(times.iter().flatten().copied());
        if times.iter().all(Option::is_some) {
            everywhere.push(times.iter().flatten().copied().max().unwrap_or(0));
        }
        if let Some(s) = obs
            .suspicions
            .iter()
            .find(|s| s.at >= t0 && s.member as usize == v)
        {
            suspected.push(s.at - t0);
        }
    }
    pairs.sort_unstable();
    everywhere.sort_unstable();
    suspected.sort_unstable();
    r.detection_ms_p50 = percentile(&pairs, 50.0);
    r.detection_ms_p99 = percentile(&pairs, 99.0);
    r.detection_ms_max = pairs.last().copied();
    r.detection_everywhere_ms_p50 = percentile(&everywhere, 50.0);
    r.detection_everywhere_ms_max = everywhere.last().copied();
    r.first_suspicion_ms_p50 = percentile(&suspected, 50.0);
    if !ok {
        return Err(goal_missed(format!(
            "{} (survivor, victim) pairs still not dead after {} s; e.g. {}",
            obs.total_mismatch(),
            limit.as_secs(),
            obs.mismatches(5).join(", ")
        )));
    }
    r.sim_ms = r.detection_everywhere_ms_max;
    r.converged = true;
    drop(obs);
    if let Some(watch) = sim.a.watch {
        sim.phase = "watching";
        sim.sleep(watch).await;
        let obs = sim.obs.borrow();
        let mut counts = vec![0u64; n * victims.len()];
        for d in obs.deaths.iter().filter(|d| d.at >= t0) {
            if let Some(vi) = victims.iter().position(|&v| v == d.member as usize) {
                counts[vi * n + d.node as usize] += 1;
            }
        }
        let per_pair: Vec<(usize, usize, u64)> = victims
            .iter()
            .enumerate()
            .flat_map(|(vi, &v)| survivors.iter().map(move |&x| (x, v, vi)))
            .map(|(x, v, vi)| (x, v, counts[vi * n + x]))
            .collect();
        r.failed_events_per_pair_min = per_pair.iter().map(|p| p.2).min();
        r.failed_events_per_pair_max = per_pair.iter().map(|p| p.2).max();
        drop(obs);
        if let Some((x, v, c)) = per_pair.iter().find(|p| p.2 != 1) {
            sim.obs.borrow_mut().violation(format!(
                "one crash, one failed event: n{x} emitted {c} failed events about n{v} in {} s",
                watch.as_secs()
            ));
        }
    }
    if sim.a.restart {
        // Same NODE_ID, same address, a fresh process: it must come back at
        // a higher incarnation than the one it was declared dead at.
        sim.phase = "restarting";
        let t1 = sim.now_ms();
        let seeds: Vec<SocketAddr> = (0..sim.a.seeds.min(sim.a.nodes)).map(addr_of).collect();
        for &v in &victims {
            let stale = sim.obs.borrow().max_inc(v);
            sim.start(v, &seeds);
            health.open(v, t1, Some(stale));
        }
        sim.expect_truth(Expect::Live, Expect::Gone);
        let limit = sim.a.limit();
        if !sim.wait(limit, |o| o.total_mismatch() == 0).await {
            let left = sim.obs.borrow().total_mismatch();
            return Err(missed_with_examples(
                sim,
                format!(
                    "restarted victims not listed again after {} s ({left} pairs)",
                    limit.as_secs()
                ),
            ));
        }
        r.rejoin_ms = sim.obs.borrow().matched_since.map(|t| t.saturating_sub(t1));
    }
    Ok(w)
}

async fn leave(sim: &mut Sim, r: &mut Report, health: &mut Health) -> Result<Window, String> {
    warmup(sim).await;
    sim.phase = "leaving";
    let leavers = pick(sim, sim.a.count());
    let meter = Meter::start(sim);
    let t0 = sim.now_ms();
    for &v in &leavers {
        sim.leave(v);
        health.close(v, t0);
    }
    {
        let mut obs = sim.obs.borrow_mut();
        for i in 0..sim.slots.len() {
            obs.set_expect(
                i,
                if leavers.contains(&i) {
                    Expect::Left
                } else {
                    Expect::Any
                },
            );
        }
    }
    let limit = sim.a.limit();
    let ok = sim.wait(limit, |o| o.total_mismatch() == 0).await;
    let w = meter.stop(sim, r);
    let obs = sim.obs.borrow();
    let mut times: Vec<u64> = Vec::new();
    let mut seen = BTreeSet::new();
    for s in obs
        .lefts
        .iter()
        .filter(|s| s.at >= t0 && leavers.contains(&(s.member as usize)))
    {
        if seen.insert((s.node, s.member)) {
            times.push(s.at - t0);
        }
    }
    times.sort_unstable();
    r.leave_ms_p50 = percentile(&times, 50.0);
    r.leave_ms_max = times.last().copied();
    if !ok {
        return Err(goal_missed(format!(
            "{} (node, leaver) pairs not left after {} s; e.g. {}",
            obs.total_mismatch(),
            limit.as_secs(),
            obs.mismatches(5).join(", ")
        )));
    }
    r.sim_ms = obs.matched_since.map(|t| t.saturating_sub(t0));
    r.converged = true;
    Ok(w)
}

async fn partition(sim: &mut Sim, r: &mut Report, health: &mut Health) -> Result<Window, String> {
    warmup(sim).await;
    sim.phase = "partitioned";
    let n = sim.slots.len();
    let groups: Vec<u32> = (0..n).map(|i| (i >= n / 2) as u32).collect();
    let cuts: Vec<(u32, u32)> = if sim.a.one_way {
        vec![(1, 0)]
    } else {
        vec![(0, 1), (1, 0)]
    };
    let meter = Meter::start(sim);
    let t_split = sim.now_ms();
    sim.net.partition(&groups, &cuts);
    let d = sim.a.duration();
    sim.sleep(d).await;
    sim.net.heal();
    let t_heal = sim.now_ms();
    sim.phase = "healing";
    // Each member's own incarnation at the heal: deaths at or below it after
    // the heal are the partition's verdicts being reconciled.
    let views = sim.views(&sim.up()).await;
    for v in &views {
        let own = v
            .members
            .get(&NodeId::new(&node_name(v.slot)))
            .map_or(0, |m| m.incarnation);
        health.close(v.slot, t_heal);
        health.open(v.slot, t_heal, Some(own.min(u32::MAX as u64) as u32));
    }
    drop(views);
    health.cut = Some((t_split, t_heal, groups, sim.a.one_way));
    let limit = sim.a.limit();
    let ok = sim.wait(limit, |o| o.total_mismatch() == 0).await;
    let w = meter.stop(sim, r);
    if !ok {
        let left = sim.obs.borrow().total_mismatch();
        return Err(missed_with_examples(
            sim,
            format!(
                "no converged view {} s after the heal ({left} pairs differ)",
                limit.as_secs()
            ),
        ));
    }
    r.sim_ms = sim
        .obs
        .borrow()
        .matched_since
        .map(|t| t.saturating_sub(t_heal));
    r.converged = true;
    Ok(w)
}

async fn churn(sim: &mut Sim, r: &mut Report, health: &mut Health) -> Result<Window, String> {
    warmup(sim).await;
    sim.phase = "churning";
    let n = sim.a.nodes;
    let rate = (n as f64 / 100.0).max(0.5); // events per virtual second
    let min_live = (n / 2).max(3);
    let meter = Meter::start(sim);
    let end = sim.now_ms() + sim.a.duration().as_millis() as u64;
    let mut events = 0u64;
    loop {
        let u: f64 = sim.rng.gen();
        let gap = ((-(1.0 - u).ln() / rate) * 1000.0).max(1.0) as u64;
        if sim.now_ms() + gap >= end {
            let rest = end.saturating_sub(sim.now_ms());
            sim.sleep(Duration::from_millis(rest)).await;
            break;
        }
        sim.sleep(Duration::from_millis(gap)).await;
        events += 1;
        let up = sim.up();
        let crashed: Vec<usize> = (0..sim.slots.len())
            .filter(|&i| sim.life(i) == Life::Crashed)
            .collect();
        let roll: f64 = sim.rng.gen();
        let now = sim.now_ms();
        let seeds =
            |sim: &mut Sim| -> Vec<SocketAddr> { pick(sim, 3).into_iter().map(addr_of).collect() };
        if up.len() <= min_live || roll < 0.3 || (roll >= 0.75 && crashed.is_empty()) {
            let i = sim.slots.len();
            let s = seeds(sim);
            sim.start(i, &s);
            sim.obs.borrow_mut().set_expect(i, Expect::Live);
            health.open(i, now, None);
        } else if roll < 0.55 {
            let v = pick(sim, 1)[0];
            sim.crash(v);
            sim.obs.borrow_mut().set_expect(v, Expect::Gone);
            health.close(v, now);
        } else if roll < 0.75 {
            let v = pick(sim, 1)[0];
            sim.leave(v);
            sim.obs.borrow_mut().set_expect(v, Expect::Gone);
            health.close(v, now);
        } else {
            let v = crashed[sim.rng.gen_range(0..crashed.len())];
            let stale = sim.obs.borrow().max_inc(v);
            let s = seeds(sim);
            sim.start(v, &s);
            sim.obs.borrow_mut().set_expect(v, Expect::Live);
            health.open(v, now, Some(stale));
        }
    }
    r.churn_events = Some(events);
    sim.phase = "converging";
    let t_end = sim.now_ms();
    let limit = sim.a.limit();
    let ok = sim.wait(limit, |o| o.total_mismatch() == 0).await;
    let w = meter.stop(sim, r);
    if !ok {
        let left = sim.obs.borrow().total_mismatch();
        return Err(missed_with_examples(
            sim,
            format!(
                "no converged view {} s after the churn ({left} pairs differ)",
                limit.as_secs()
            ),
        ));
    }
    r.sim_ms = sim
        .obs
        .borrow()
        .matched_since
        .map(|t| t.saturating_sub(t_end));
    r.converged = true;
    Ok(w)
}

async fn pause(sim: &mut Sim, r: &mut Report) -> Result<Window, String> {
    warmup(sim).await;
    sim.phase = "paused";
    let frozen = pick(sim, sim.a.count());
    let meter = Meter::start(sim);
    for &v in &frozen {
        sim.pause(v);
    }
    let d = sim.a.duration();
    sim.sleep(d).await;
    for &v in &frozen {
        sim.resume(v);
    }
    let t_resume = sim.now_ms();
    sim.phase = "resumed";
    let limit = sim.a.limit();
    let ok = sim.wait(limit, |o| o.total_mismatch() == 0).await;
    let w = meter.stop(sim, r);
    if !ok {
        let left = sim.obs.borrow().total_mismatch();
        return Err(missed_with_examples(
            sim,
            format!(
                "no converged view {} s after the resume ({left} pairs differ)",
                limit.as_secs()
            ),
        ));
    }
    r.sim_ms = sim
        .obs
        .borrow()
        .matched_since
        .map(|t| t.saturating_sub(t_resume));
    r.converged = true;
    Ok(w)
}

/// Stops every fault, waits until the observed views match the truth (every
/// live node alive everywhere, every other one gone), then checks agreement
/// on the nodes' real tables, retrying for a while (incarnations and
/// services may still be travelling). Returns the time it took and the
/// disagreements left.
async fn settle(sim: &mut Sim) -> (Option<u64>, Vec<String>) {
    sim.phase = "settling";
    sim.net.set_loss(0.0);
    sim.net.heal();
    for i in 0..sim.slots.len() {
        if sim.life(i) == Life::Paused {
            sim.resume(i);
        }
    }
    sim.expect_truth(Expect::Alive, Expect::Gone);
    for i in 0..sim.slots.len() {
        let up = sim.life(i) == Life::Up;
        sim.obs.borrow_mut().set_counted(i, up);
    }
    let t0 = sim.now_ms();
    let limit = Duration::from_secs(120);
    let live: BTreeSet<usize> = sim.up().into_iter().collect();
    let deadline = t0 + limit.as_millis() as u64;
    loop {
        // The observed views first (cheap), then the nodes' real tables.
        let left = Duration::from_millis(deadline.saturating_sub(sim.now_ms()));
        let matched = sim.wait(left, |o| o.total_mismatch() == 0).await;
        let views = sim.views(&sim.up()).await;
        let problems = agreement(&views, &live);
        if std::env::var_os("SIM_DEBUG").is_some() {
            eprintln!("agreement at {}: {problems:?}", sim.now_ms());
        }
        drop(views);
        if problems.is_empty() && matched {
            return (Some(sim.now_ms() - t0), Vec::new());
        }
        if sim.now_ms() >= deadline {
            let mut out = vec![format!(
                "agreement: the live nodes did not agree {} s after the faults stopped",
                limit.as_secs()
            )];
            if !matched {
                let ex = sim.obs.borrow().mismatches(5);
                out.push(format!(
                    "agreement: views still differing, e.g. {}",
                    ex.join(", ")
                ));
            }
            out.extend(problems);
            return (None, out);
        }
        sim.sleep(Duration::from_secs(1)).await;
    }
}
