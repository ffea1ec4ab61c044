//! What a simulation run reports: one JSON object (`--json`), or a readable
//! summary. Times are virtual milliseconds unless named `wall`.

use serde::Serialize;

use super::network::NetStats;
use super::SimArgs;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub nodes: usize,
    pub scenario: String,
    pub seed: u64,
    pub loss: f64,
    /// How the initial cluster formed: `warm` or `join` (see `sim --form`).
    pub form: String,
    /// The scenario's goal was reached within its time limit.
    pub converged: bool,
    /// Virtual ms from the scenario's event until its goal (see BENCHMARKS.md).
    pub sim_ms: Option<u64>,
    pub wall_ms: u64,
    /// Wall time spent forming the initial cluster, on the scenario itself,
    /// and settling afterwards (like `wall_ms`, not deterministic).
    pub wall_setup_ms: u64,
    pub wall_scenario_ms: u64,
    pub wall_settle_ms: u64,
    /// failure: time until a survivor lists a victim dead, over every
    /// (survivor, victim) pair.
    pub detection_ms_p50: Option<u64>,
    pub detection_ms_p99: Option<u64>,
    pub detection_ms_max: Option<u64>,
    /// dissemination: time until a node holds the rumor, over every node.
    pub dissemination_ms_p50: Option<u64>,
    pub dissemination_ms_p100: Option<u64>,
    /// Healthy members ever declared dead (distinct members).
    pub false_positives: u64,
    /// Datagrams and bytes sent per node per virtual second, over the
    /// scenario's measurement window.
    pub msgs_per_node_s: f64,
    pub bytes_per_node_s: f64,

    /// Every invariant held (agreement after faults stop, no resurrection,
    /// no false positive where none is allowed).
    pub invariants_ok: bool,
    pub violations: Vec<String>,
    pub replay: String,
    pub duration_ms: u64,
    /// Nodes crashed, left or paused.
    pub count: usize,
    /// Virtual ms until the initial cluster had formed (not for join).
    pub setup_ms: Option<u64>,
    /// Virtual ms after the goal (faults stopped) until every live node
    /// agreed on every record.
    pub settle_ms: Option<u64>,
    /// failure: per victim, time until every survivor lists it dead.
    pub detection_everywhere_ms_p50: Option<u64>,
    pub detection_everywhere_ms_max: Option<u64>,
    /// failure: per victim, time until someone first suspected it.
    pub first_suspicion_ms_p50: Option<u64>,
    /// failure --restart: from the restart until every node lists the
    /// restarted victims alive again.
    pub rejoin_ms: Option<u64>,
    /// failure --watch: the fewest and the most `failed` events one survivor
    /// emitted about one victim (both must be 1).
    pub failed_events_per_pair_min: Option<u64>,
    pub failed_events_per_pair_max: Option<u64>,
    /// join: from the last node's start until every node lists every node.
    pub join_after_last_start_ms: Option<u64>,
    /// leave: per (node, leaver) pair, time until the node lists it left.
    pub leave_ms_p50: Option<u64>,
    pub leave_ms_max: Option<u64>,
    /// partition: false positives after the heal (the invariant).
    pub false_positives_after_heal: Option<u64>,
    /// (node, member) death sightings counted as false positives.
    pub false_deaths: u64,
    /// Deaths expected by the scenario that do not count (across a cut).
    pub excused_deaths: u64,
    pub suspicions: u64,
    pub refutations: u64,
    pub events: u64,
    pub bytes_in_per_node_s: f64,
    pub churn_events: Option<u64>,
    pub net: NetStats,
    /// Virtual ms when the run ended.
    pub virtual_ms: u64,
}

impl Report {
    pub fn new(a: &SimArgs) -> Report {
        Report {
            nodes: a.nodes,
            scenario: a.scenario.name().to_string(),
            seed: a.seed,
            loss: a.loss,
            form: a.form().name().to_string(),
            replay: a.replay(),
            duration_ms: a.duration().as_millis() as u64,
            count: a.count(),
            invariants_ok: true,
            ..Default::default()
        }
    }

    pub fn summary(&self) -> String {
        let ms =
            |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.2} s", v as f64 / 1000.0));
        let mut out = vec![
            format!(
                "gossip sim: {} nodes, scenario {}, loss {}, seed {}",
                self.nodes, self.scenario, self.loss, self.seed
            ),
            format!(
                "  goal {}: {} virtual (run: {:.1} s virtual in {:.2} s wall)",
                if self.converged {
                    "reached"
                } else {
                    "NOT reached"
                },
                ms(self.sim_ms),
                self.virtual_ms as f64 / 1000.0,
                self.wall_ms as f64 / 1000.0
            ),
        ];
        if let Some(s) = self.setup_ms {
            out.push(format!("  cluster formed in {} virtual", ms(Some(s))));
        }
        out.push(format!(
            "  wall time: {:.2} s forming the cluster, {:.2} s for the scenario, {:.2} s settling",
            self.wall_setup_ms as f64 / 1000.0,
            self.wall_scenario_ms as f64 / 1000.0,
            self.wall_settle_ms as f64 / 1000.0
        ));
        if self.detection_ms_p50.is_some() {
            out.push(format!(
                "  detection (survivor, victim): p50 {}  p99 {}  max {};  dead everywhere: p50 {}  max {};  first suspicion p50 {}",
                ms(self.detection_ms_p50),
                ms(self.detection_ms_p99),
                ms(self.detection_ms_max),
                ms(self.detection_everywhere_ms_p50),
                ms(self.detection_everywhere_ms_max),
                ms(self.first_suspicion_ms_p50)
            ));
        }
        if self.dissemination_ms_p50.is_some() || self.scenario == "dissemination" {
            out.push(format!(
                "  dissemination: p50 {}  p100 {}",
                ms(self.dissemination_ms_p50),
                ms(self.dissemination_ms_p100)
            ));
        }
        if let (Some(lo), Some(hi)) = (
            self.failed_events_per_pair_min,
            self.failed_events_per_pair_max,
        ) {
            out.push(format!(
                "  failed events per (survivor, victim) over the watch: min {lo}  max {hi}"
            ));
        }
        if let Some(j) = self.rejoin_ms {
            out.push(format!(
                "  restarted victims listed alive everywhere again after {}",
                ms(Some(j))
            ));
        }
        if let Some(j) = self.join_after_last_start_ms {
            out.push(format!("  after the last start: {}", ms(Some(j))));
        }
        if self.leave_ms_p50.is_some() {
            out.push(format!(
                "  left everywhere: p50 {}  max {}",
                ms(self.leave_ms_p50),
                ms(self.leave_ms_max)
            ));
        }
        if let Some(c) = self.churn_events {
            out.push(format!("  churn events: {c}"));
        }
        out.push(format!(
            "  false positives: {} members{} ({} sightings; {} expected deaths across a cut not counted); suspicions {}, refutations {}",
            self.false_positives,
            self.false_positives_after_heal.map_or(String::new(), |h| format!(", {h} after the heal")),
            self.false_deaths,
            self.excused_deaths,
            self.suspicions,
            self.refutations
        ));
        out.push(format!(
            "  traffic per node: {:.1} datagrams/s, {:.0} bytes/s sent, {:.0} bytes/s received",
            self.msgs_per_node_s, self.bytes_per_node_s, self.bytes_in_per_node_s
        ));
        out.push(format!(
            "  network: {} sent, {} delivered, {} lost, {} cut, {} to down nodes, {} duplicated",
            self.net.sent,
            self.net.delivered,
            self.net.lost,
            self.net.cut,
            self.net.to_down,
            self.net.duplicated
        ));
        if let Some(s) = self.settle_ms {
            out.push(format!(
                "  after faults stopped, all live nodes agreed in {}",
                ms(Some(s))
            ));
        }
        if self.invariants_ok {
            out.push("  invariants: ok (agreement, no resurrection, no false death where none is allowed)".into());
        } else {
            out.push("  INVARIANTS VIOLATED:".into());
            for v in &self.violations {
                out.push(format!("    - {v}"));
            }
        }
        if let Ok(kb) = peak_rss_kb() {
            out.push(format!(
                "  peak memory (whole process): {:.0} MB",
                kb as f64 / 1024.0
            ));
        }
        out.push(format!("  replay: {}", self.replay));
        out.join("\n")
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The process's peak resident memory (VmHWM), for the human summary only:
/// it is not deterministic, so it stays out of the JSON.
pub fn peak_rss_kb() -> Result<u64, String> {
    let s = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
