//! Counters shared by a node's actors: plain atomics, so counting never waits
//! for a mailbox. The STATS log line, `/v1/stats` and `/metrics` read them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

macro_rules! counters {
    ($($name:ident : $help:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: AtomicU64,)*
            /// How long suspicions raised here lasted before the member was
            /// declared dead (`/metrics`: `gossip_detection_latency_seconds`).
            pub detection_latency: Histogram,
            /// The DNS server's counters (`dns/metrics.rs`).
            pub dns: crate::dns::metrics::DnsMetrics,
            /// How long each http and tcp check took (`/metrics`:
            /// `gossip_check_latency_seconds`).
            pub check_latency: CheckLatency,
        }

        impl Metrics {
            /// Every counter by name, with its help text.
            pub fn snapshot(&self) -> BTreeMap<&'static str, (u64, &'static str)> {
                let mut m = BTreeMap::new();
                $(m.insert(stringify!($name), (self.$name.load(Ordering::Relaxed), $help));)*
                m
            }
        }
    };
}

counters! {
    datagrams_in: "datagrams received",
    datagrams_out: "datagrams sent",
    bytes_in: "bytes received",
    bytes_out: "bytes sent",
    decode_errors: "datagrams dropped because they did not decode",
    foreign_cluster: "datagrams dropped because they belong to another cluster",
    auth_failures: "datagrams dropped because they failed authentication or were not encrypted",
    injected_drops: "datagrams dropped by fault injection",
    oversized_msgs: "messages too large for one datagram, not sent",
    send_errors: "datagrams the socket refused to send",
    probes_sent: "direct probes sent",
    probes_failed: "probes that got no ack, direct or indirect",
    indirect_probes: "indirect probes (ping-req) sent",
    suspicions_raised: "suspicions this node raised",
    suspicions_refuted: "suspicions about this node that it refuted",
    members_failed: "members declared dead (by anyone) as seen here",
    rumors_queued: "rumors queued for dissemination",
    rumors_sent: "rumor transmissions",
    rumors_dropped: "rumors dropped because the queue was full",
    limits_hit: "inputs refused because a configured bound was reached",
    wire_bounds: "datagrams dropped because a field broke a bound (node id, service set)",
    replays_refused: "sealed datagrams and key operations refused as replays or outside the time window",
    amplification_held: "messages to unverified addresses held until a ping/ack round trip",
    amplification_dropped: "messages to unverified addresses dropped (hold full or expired)",
    addresses_verified: "addresses that completed a ping/ack round trip",
    discovery_ignored: "discovery datagrams ignored because broadcast is off",
    ping_req_refused: "ping-reqs not relayed because the target is not a known member at that address",
    want_duplicates: "duplicate ids in want-lists, answered once",
    rumors_oversized: "rumors too large for one datagram, dropped",
    receive_queue_drops: "decoded messages dropped because a receive mailbox was full",
    stale_ignored: "suspect, dead or left rumors ignored because the member is not in the table (reclaimed or never known)",
    reconnect_attempts: "push-pulls sent to failed members from the reconnect book",
    seed_retries: "join or push-pull attempts sent to seeds after the first join",
    sync_retries: "periodic push-pulls tried again because the exchange had not brought every digest page and asked-for record within 1 s (a new start to another member, or the want sent again)",
    name_conflicts: "another live address found holding this node's NODE_ID",
    actor_restarts: "actors restarted by the supervisor",
    members_alive: "members alive (gauge)",
    members_suspect: "members suspect (gauge)",
    members_dead: "members dead (gauge)",
    members_left: "members left (gauge)",
    health_score: "Lifeguard local health score, 0 = healthy (gauge)",
    check_runs: "http and tcp checks run by this node",
    checks_passing: "this node's checks that are passing (gauge)",
    checks_warning: "this node's checks that are warning (gauge)",
    checks_critical: "this node's checks that are critical (gauge)",
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn set(c: &AtomicU64, n: u64) {
        c.store(n, Ordering::Relaxed);
    }
}

impl Metrics {
    /// What the wire defences refused, in one figure for the STATS line
    /// (each is its own counter in `/v1/stats` and `/metrics`).
    pub fn wire_refused(&self) -> u64 {
        [
            &self.wire_bounds,
            &self.replays_refused,
            &self.amplification_held,
            &self.amplification_dropped,
            &self.discovery_ignored,
            &self.ping_req_refused,
            &self.want_duplicates,
            &self.rumors_oversized,
            &self.receive_queue_drops,
        ]
        .iter()
        .map(|c| Metrics::get(c))
        .sum()
    }

    /// Records how long a suspicion lasted before it declared a member dead.
    pub fn observe_detection(&self, d: Duration) {
        self.detection_latency.observe(d);
    }
}

/// Upper bounds (seconds) of the detection-latency buckets; a last, implicit
/// bucket is `+Inf`.
pub const DETECTION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
];

/// Upper bounds (seconds) of the check-latency buckets.
pub const CHECK_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A fixed-bucket histogram of durations made of atomics (no lock, no
/// allocation).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64; 12],
    buckets: [AtomicU64; DETECTION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_bounds(&DETECTION_BUCKETS)
    }
}

/// The check-latency histogram: the same shape, finer buckets.
#[derive(Debug)]
pub struct CheckLatency(pub Histogram);

impl Default for CheckLatency {
    fn default() -> Self {
        CheckLatency(Histogram::with_bounds(&CHECK_BUCKETS))
    }
}

impl std::ops::Deref for CheckLatency {
    type Target = Histogram;
    fn deref(&self) -> &Histogram {
        &self.0
    }
}

/// A consistent-enough copy of a [`Histogram`], in Prometheus' shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations in this bucket alone)`, ending
    /// with `+Inf`; not cumulative (the text encoder accumulates).
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn with_bounds(bounds: &'static [f64; 12]) -> Self {
        Histogram {
            bounds,
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn read(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                    b.load(Ordering::Relaxed),
                )
            })
            .collect();
        // The count is the sum of the buckets, as the exposition format requires.
        let count = buckets.iter().map(|(_, n)| n).sum();
        HistogramSnapshot {
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
            buckets,
        }
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;

    #[test]
    fn buckets_count_alone_and_end_at_inf() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_millis(2500));
        h.observe(Duration::from_secs(500));
        let s = h.read();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.5, 1));
        assert_eq!(s.buckets[3], (3.0, 1));
        assert_eq!(s.buckets[4], (4.0, 0));
        assert_eq!(*s.buckets.last().unwrap(), (f64::INFINITY, 1));
        assert!((s.sum_seconds - 502.8).abs() < 1e-6);
    }
}
