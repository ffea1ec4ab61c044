//! Suspicion timing (Lifeguard's dynamic suspicion).
//!
//! A suspected member is declared dead when its suspicion times out. The
//! timeout starts at `max` and falls toward `min` as independent members
//! confirm the suspicion, because several accusers are less likely to all be
//! wrong than one:
//!
//! ```text
//! timeout(n) = max - (max - min) * ln(n + 1) / ln(k + 1)     (n confirmations, capped at k)
//! min        = max(suspicion_min, suspicion_mult * log10(N) * probe_interval)
//! max        = suspicion_max_mult * min
//! ```
//!
//! `min` has a floor so that a member frozen for a short while (a GC pause, a
//! `docker pause`) can wake up and refute before anyone declares it dead, and
//! grows with log10(N) because the refutation needs about log(N) gossip hops
//! to reach everyone. See config.yml for the numbers and the trade-off.
//!
//! Three adjustments to Lifeguard's formula:
//!
//! * **The clock starts at the unanswered probe.** The node whose own probe
//!   failed counts its suspicion from when it sent that probe, not from the
//!   end of the probe period: the member has been silent since then, so a
//!   freeze shorter than `min` is still refuted in time, and a crash is
//!   declared `min` after the probe instead of `probe_interval + min`.
//! * **k follows the cluster** ([`wanted`]): only `N - 2` members can confirm
//!   (not the suspect, not the first accuser), so a 3-node cluster wants one
//!   confirmation and a 2-node cluster none. Waiting for confirmations that
//!   cannot come kept small clusters' timers near `max` (memberlist sets k to
//!   0 below k + 2 members).
//! * **The node's own health stretches it** (`Awareness::scale`): a node
//!   that is itself missing acks and nacks waits longer before declaring
//!   anyone dead, as Lifeguard stretches its probe interval and timeout.

use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

use super::member::NodeId;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuspicionParams {
    pub probe_interval: Duration,
    pub suspicion_min: Duration,
    pub suspicion_mult: f64,
    pub suspicion_max_mult: f64,
    pub confirmations: u32,
}

/// `(min, max)` suspicion timeouts for a cluster of `n` members.
pub fn bounds(p: &SuspicionParams, n: usize) -> (Duration, Duration) {
    let scale = (n.max(1) as f64).log10();
    let scaled = p
        .probe_interval
        .mul_f64((p.suspicion_mult * scale).max(0.0));
    let min = scaled.max(p.suspicion_min);
    let max = min.mul_f64(p.suspicion_max_mult.max(1.0));
    (min, max)
}

/// How many confirmations a suspicion waits for in a cluster of `members`
/// (counting this node and the suspect): at most `k`, and no more than the
/// `members - 2` that could send one.
pub fn wanted(k: u32, members: usize) -> u32 {
    let able = members.saturating_sub(2).min(u32::MAX as usize) as u32;
    k.min(able)
}

/// How many members, on average, probe a suspect when they hear of the
/// suspicion (besides their round-robin probes): enough that `k` of their
/// probes fail within a fraction of a period when the suspect has really
/// crashed, few enough that a false suspicion at high loss does not bring
/// the whole cluster's pings (and their failed probes' confirmations) down
/// on one member. With 3(k+1) = 9 expected probers and k = 2, fewer than two
/// probe one time in 800 (Poisson), and the round-robin probes still come.
pub fn suspect_probers(k: u32) -> f64 {
    3.0 * (k as f64 + 1.0)
}

/// The chance that this node probes a suspect it heard of, in a cluster of
/// `members` (`members - 2` candidates: not the suspect, not its accuser).
pub fn suspect_probe_chance(k: u32, members: usize) -> f64 {
    let candidates = members.saturating_sub(2).max(1) as f64;
    (suspect_probers(k) / candidates).min(1.0)
}

/// The timeout after `n` independent confirmations, wanting `k`.
pub fn timeout(min: Duration, max: Duration, n: u32, k: u32) -> Duration {
    if k == 0 || n >= k {
        return min;
    }
    let frac = ((n as f64) + 1.0).ln() / ((k as f64) + 1.0).ln();
    max.saturating_sub((max - min).mul_f64(frac)).max(min)
}

/// One running suspicion: who was suspected at which incarnation, since when,
/// and who has confirmed it.
#[derive(Clone, Debug)]
pub struct Suspicion {
    pub incarnation: u64,
    pub started: Instant,
    min: Duration,
    max: Duration,
    k: u32,
    /// The first accuser and at most `k` confirmations: more would not move
    /// the deadline (it is at its floor), and keeping every accuser would
    /// cost N entries per suspicion at every node.
    accusers: BTreeSet<NodeId>,
    /// This node raised the suspicion or saw a probe of its own fail: its own
    /// evidence, which it needs before declaring the member dead.
    pub own_evidence: bool,
}

impl Suspicion {
    pub fn new(
        incarnation: u64,
        first_accuser: NodeId,
        started: Instant,
        min: Duration,
        max: Duration,
        k: u32,
    ) -> Self {
        let mut accusers = BTreeSet::new();
        accusers.insert(first_accuser);
        Suspicion {
            incarnation,
            started,
            min,
            max,
            k,
            accusers,
            own_evidence: false,
        }
    }

    /// Records a confirmation; true if it came from a new accuser.
    ///
    /// True only for a new accuser among the first `k` confirmations: the
    /// ones that shorten the deadline and are worth passing on. Beyond `k`
    /// memberlist stops re-gossiping too; without that bound, when every
    /// node probes a suspect (as ours do on hearing of it) and re-spreads
    /// every accusation it has not seen, one crash in a cluster of N costs
    /// N^2 rumors (the simulator measured 20 million at N = 1,000).
    pub fn confirm(&mut self, by: NodeId) -> bool {
        self.confirmations() < self.k && self.accusers.insert(by)
    }

    /// The member answered one of our probes: the evidence so far is
    /// stale. The clock starts again at `now` with no confirmations (the
    /// first accuser stays on record) and without our own evidence.
    pub fn restart(&mut self, now: Instant) {
        let first = self.accusers.iter().next().cloned();
        self.accusers.clear();
        self.accusers.extend(first);
        self.started = now;
        self.own_evidence = false;
    }

    pub fn confirmations(&self) -> u32 {
        (self.accusers.len() as u32).saturating_sub(1)
    }

    /// The timeout as it stands, for a healthy node.
    pub fn timeout(&self) -> Duration {
        timeout(self.min, self.max, self.confirmations(), self.k)
    }

    /// When it expires for a node whose health multiplier is `stretch`
    /// (`Awareness::multiplier`, 1 when healthy).
    pub fn deadline(&self, stretch: u32) -> Instant {
        self.started + self.timeout() * stretch.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SuspicionParams {
        SuspicionParams {
            probe_interval: Duration::from_secs(1),
            suspicion_min: Duration::from_millis(1800),
            suspicion_mult: 0.9,
            suspicion_max_mult: 3.0,
            confirmations: 2,
        }
    }

    #[test]
    fn min_has_a_floor_and_grows_with_log_n() {
        let p = params();
        assert_eq!(bounds(&p, 7).0, Duration::from_millis(1800));
        assert_eq!(bounds(&p, 20).0, Duration::from_millis(1800));
        let (min, max) = bounds(&p, 1000);
        assert_eq!(min, Duration::from_millis(2700));
        assert_eq!(max, Duration::from_millis(8100));
    }

    #[test]
    fn timeout_falls_from_max_to_min_with_confirmations() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(6));
        assert_eq!(timeout(min, max, 0, 2), max);
        let one = timeout(min, max, 1, 2);
        assert!(one < max && one > min, "{one:?}");
        assert_eq!(timeout(min, max, 2, 2), min);
        assert_eq!(timeout(min, max, 9, 2), min);
    }

    #[test]
    fn confirmation_counts_distinct_accusers_and_shortens_deadline() {
        let t0 = Instant::now();
        let mut s = Suspicion::new(
            1,
            NodeId::new("a"),
            t0,
            Duration::from_secs(2),
            Duration::from_secs(6),
            2,
        );
        assert_eq!(s.deadline(1), t0 + Duration::from_secs(6));
        assert_eq!(
            s.deadline(3),
            t0 + Duration::from_secs(18),
            "an unhealthy node waits longer"
        );
        assert!(
            !s.confirm(NodeId::new("a")),
            "the first accuser again is no confirmation"
        );
        assert!(s.confirm(NodeId::new("b")));
        assert!(s.deadline(1) < t0 + Duration::from_secs(6));
        assert!(s.confirm(NodeId::new("c")));
        assert_eq!(s.deadline(1), t0 + Duration::from_secs(2));
        assert!(
            !s.confirm(NodeId::new("d")),
            "beyond k a confirmation changes nothing and is not passed on"
        );
        assert_eq!(s.confirmations(), 2);
    }

    #[test]
    fn small_clusters_want_only_the_confirmations_they_can_send() {
        assert_eq!(wanted(2, 20), 2);
        assert_eq!(wanted(2, 4), 2);
        assert_eq!(
            wanted(2, 3),
            1,
            "one member besides the accuser and the suspect"
        );
        assert_eq!(wanted(2, 2), 0, "nobody can confirm");
        assert_eq!(wanted(2, 0), 0);
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(6));
        assert_eq!(timeout(min, max, 0, wanted(2, 2)), min);
        assert_eq!(timeout(min, max, 1, wanted(2, 3)), min);
    }

    #[test]
    fn suspect_probing_is_bounded_in_large_clusters_and_total_in_small_ones() {
        assert_eq!(suspect_probe_chance(2, 5), 1.0);
        assert_eq!(suspect_probe_chance(2, 11), 1.0);
        assert!((suspect_probe_chance(2, 20) - 0.5).abs() < 1e-9);
        let expected = suspect_probe_chance(2, 1000) * 998.0;
        assert!((expected - 9.0).abs() < 1e-9, "{expected}");
        assert_eq!(suspect_probe_chance(2, 0), 1.0, "no panic on an empty view");
    }

    #[test]
    fn an_answer_restarts_the_clock_at_the_maximum_without_our_evidence() {
        let t0 = Instant::now();
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(6));
        let mut s = Suspicion::new(3, NodeId::new("a"), t0, min, max, 2);
        s.own_evidence = true;
        assert!(s.confirm(NodeId::new("b")));
        assert!(s.confirm(NodeId::new("c")));
        assert_eq!(s.deadline(1), t0 + min);
        let later = t0 + Duration::from_secs(1);
        s.restart(later);
        assert_eq!(s.confirmations(), 0);
        assert!(!s.own_evidence);
        assert_eq!(s.deadline(1), later + max);
        assert!(!s.confirm(NodeId::new("a")), "the first accuser is kept");
        assert!(s.confirm(NodeId::new("b")), "old confirmations count again");
    }
}
