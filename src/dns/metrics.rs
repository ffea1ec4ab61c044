//! The DNS server's counters: queries by type and response code, malformed
//! requests, truncated answers, forwards, and a latency histogram. Plain
//! atomics, read by `GET /metrics` (`api/prometheus.rs`).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The query types counted by name; everything else is `other`.
pub const TYPES: [&str; 9] = [
    "A", "AAAA", "SRV", "ANY", "SOA", "NS", "TXT", "PTR", "other",
];
/// The response codes counted by name; everything else is `other`.
pub const CODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];
/// Upper bounds of the latency buckets, in seconds; `+Inf` follows.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.05, 0.25, 1.0,
];

#[derive(Debug, Default)]
pub struct DnsMetrics {
    queries: [[AtomicU64; CODES.len()]; TYPES.len()],
    /// Requests that did not decode (answered FORMERR, or dropped when they
    /// had no header to answer).
    pub malformed: AtomicU64,
    /// UDP answers cut to fit, with TC set.
    pub truncated: AtomicU64,
    /// Questions outside the domain sent to `dns_recursors`.
    pub forwarded: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_nanos: AtomicU64,
}

fn type_index(t: Option<RecordType>) -> usize {
    let name = match t {
        Some(RecordType::A) => "A",
        Some(RecordType::AAAA) => "AAAA",
        Some(RecordType::SRV) => "SRV",
        Some(RecordType::ANY) => "ANY",
        Some(RecordType::SOA) => "SOA",
        Some(RecordType::NS) => "NS",
        Some(RecordType::TXT) => "TXT",
        Some(RecordType::PTR) => "PTR",
        _ => "other",
    };
    TYPES
        .iter()
        .position(|t| *t == name)
        .unwrap_or(TYPES.len() - 1)
}

fn code_index(c: ResponseCode) -> usize {
    let name = match c {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    };
    CODES
        .iter()
        .position(|c| *c == name)
        .unwrap_or(CODES.len() - 1)
}

impl DnsMetrics {
    /// Counts one answered query and how long it took.
    pub fn answered(&self, qtype: Option<RecordType>, code: ResponseCode, took: Duration) {
        self.queries[type_index(qtype)][code_index(code)].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(
            took.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// `(type, code, count)` for every non-zero pair.
    pub fn queries(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (ti, row) in self.queries.iter().enumerate() {
            for (ci, n) in row.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    out.push((TYPES[ti], CODES[ci], n));
                }
            }
        }
        out
    }

    pub fn total(&self) -> u64 {
        self.queries().iter().map(|(_, _, n)| n).sum()
    }

    /// `(buckets as (upper bound, count in this bucket alone), sum in
    /// seconds, count)`, in the shape `prometheus-client` encodes.
    pub fn latency(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let buckets: Vec<(f64, u64)> = self
            .latency
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                    b.load(Ordering::Relaxed),
                )
            })
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, sum, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_type_and_code() {
        let m = DnsMetrics::default();
        m.answered(
            Some(RecordType::A),
            ResponseCode::NoError,
            Duration::from_micros(30),
        );
        m.answered(
            Some(RecordType::A),
            ResponseCode::NoError,
            Duration::from_micros(300),
        );
        m.answered(
            Some(RecordType::MX),
            ResponseCode::NXDomain,
            Duration::from_secs(3),
        );
        m.answered(None, ResponseCode::FormErr, Duration::ZERO);
        let q = m.queries();
        assert!(q.contains(&("A", "NOERROR", 2)));
        assert!(q.contains(&("other", "NXDOMAIN", 1)));
        assert!(q.contains(&("other", "FORMERR", 1)));
        let (buckets, _, count) = m.latency();
        assert_eq!(count, 4);
        assert_eq!(buckets[0].1, 2);
        assert_eq!(buckets[3].1, 1);
        assert_eq!(buckets.last().unwrap().1, 1);
    }
}
