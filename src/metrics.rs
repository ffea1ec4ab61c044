//! Counters shared by a node's actors: plain atomics, so counting never waits
//! for a mailbox. The STATS log line, `/v1/stats` and `/metrics` read them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident : $help:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: AtomicU64,)*
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
    actor_restarts: "actors restarted by the supervisor",
    members_alive: "members alive (gauge)",
    members_suspect: "members suspect (gauge)",
    members_dead: "members dead (gauge)",
    members_left: "members left (gauge)",
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
