//! `GET /metrics`: the node's counters in the Prometheus text format, encoded
//! with the `prometheus-client` crate.
//!
//! Nothing here keeps state: every scrape reads [`Metrics::snapshot`] and the
//! detection-latency histogram (plain atomics) and encodes them. The names are
//! stable (see docs/OPERATING.md); a counter added to `Metrics` later appears
//! as `gossip_<name>_total` without a change here (or as a gauge when its help
//! text says "(gauge)").

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::node::NodeHandle;

/// Counters exported under a name other than `gossip_<field>`.
const RENAMED: &[(&str, &str)] = &[
    ("decode_errors", "decode_failures"),
    ("foreign_cluster", "foreign_cluster_datagrams"),
    ("oversized_msgs", "oversized_messages"),
];

/// Fields exported as labelled families rather than one metric each.
const IN_FAMILIES: &[&str] = &[
    "datagrams_in",
    "datagrams_out",
    "bytes_in",
    "bytes_out",
    "members_alive",
    "members_suspect",
    "members_dead",
    "members_left",
    "checks_passing",
    "checks_warning",
    "checks_critical",
];

/// Encodes a node's metrics on each scrape.
#[derive(Debug)]
struct NodeCollector {
    node: String,
    metrics: Arc<Metrics>,
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, u64, f64>(&v, None)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    m.encode_gauge(&v)
}

impl Collector for NodeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.metrics.snapshot();
        let get = |k: &str| snap.get(k).map_or(0, |(v, _)| *v);

        {
            let mut m = enc.encode_descriptor(
                "gossip_members",
                "members of the cluster in this node's view (itself included), by state",
                None,
                MetricType::Gauge,
            )?;
            for state in ["alive", "suspect", "dead", "left"] {
                let v = get(&format!("members_{state}")) as i64;
                m.encode_family(&[("state", state)])?.encode_gauge(&v)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "gossip_checks",
                "this node's health checks, by status",
                None,
                MetricType::Gauge,
            )?;
            for status in ["passing", "warning", "critical"] {
                let v = get(&format!("checks_{status}")) as i64;
                m.encode_family(&[("status", status)])?.encode_gauge(&v)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "gossip_datagrams",
                "UDP datagrams received (in) and sent (out)",
                None,
                MetricType::Counter,
            )?;
            for dir in ["in", "out"] {
                let v = get(&format!("datagrams_{dir}"));
                m.encode_family(&[("direction", dir)])?
                    .encode_counter::<NoLabelSet, u64, f64>(&v, None)?;
            }
        }
        {
            let mut m = enc.encode_descriptor(
                "gossip_network",
                "UDP payload bytes received (in) and sent (out)",
                Some(&Unit::Bytes),
                MetricType::Counter,
            )?;
            for dir in ["in", "out"] {
                let v = get(&format!("bytes_{dir}"));
                m.encode_family(&[("direction", dir)])?
                    .encode_counter::<NoLabelSet, u64, f64>(&v, None)?;
            }
        }

        for (field, (value, help)) in &snap {
            if IN_FAMILIES.contains(field) {
                continue;
            }
            let name = RENAMED
                .iter()
                .find(|(f, _)| f == field)
                .map_or(*field, |(_, n)| *n);
            let full = format!("gossip_{name}");
            if help.contains("(gauge)") {
                gauge(&mut enc, &full, help, *value as i64)?;
            } else {
                counter(&mut enc, &full, help, None, *value)?;
            }
        }

        {
            let h = self.metrics.detection_latency.read();
            let mut m = enc.encode_descriptor(
                "gossip_detection_latency",
                "time from raising a suspicion to declaring the member dead, for suspicions that expired here",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)?;
        }
        self.encode_dns(&mut enc)?;
        {
            let h = self.metrics.check_latency.read();
            let mut m = enc.encode_descriptor(
                "gossip_check_latency",
                "how long each http and tcp check run by this node took",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)?;
        }
        {
            let mut m = enc.encode_descriptor(
                "gossip_build_info",
                "always 1; labels give the version and the node's id",
                None,
                MetricType::Gauge,
            )?;
            m.encode_family(&[
                ("version", env!("CARGO_PKG_VERSION")),
                ("node", self.node.as_str()),
            ])?
            .encode_gauge(&1i64)?;
        }
        Ok(())
    }
}

impl NodeCollector {
    /// The DNS server's families (`dns/metrics.rs`).
    fn encode_dns(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let dns = &self.metrics.dns;
        {
            let mut m = enc.encode_descriptor(
                "gossip_dns_queries",
                "DNS queries answered, by query type and response code",
                None,
                MetricType::Counter,
            )?;
            for (qtype, code, n) in dns.queries() {
                m.encode_family(&[("type", qtype), ("rcode", code)])?
                    .encode_counter::<NoLabelSet, u64, f64>(&n, None)?;
            }
        }
        let get = |c: &std::sync::atomic::AtomicU64| Metrics::get(c);
        counter(
            enc,
            "gossip_dns_malformed",
            "DNS requests that did not decode (answered FORMERR, or dropped without a header)",
            None,
            get(&dns.malformed),
        )?;
        counter(
            enc,
            "gossip_dns_truncated",
            "DNS answers cut to fit a UDP datagram, with TC set",
            None,
            get(&dns.truncated),
        )?;
        counter(
            enc,
            "gossip_dns_forwarded",
            "DNS questions outside the domain sent to dns_recursors",
            None,
            get(&dns.forwarded),
        )?;
        let (buckets, sum, count) = dns.latency();
        let mut m = enc.encode_descriptor(
            "gossip_dns_latency",
            "time from reading a DNS request to having its answer",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// The exposition of a node's metrics: Prometheus text (0.0.4), or
/// OpenMetrics when `openmetrics` is true.
pub fn render(
    node: &str,
    metrics: Arc<Metrics>,
    openmetrics: bool,
) -> Result<(String, &'static str), std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector {
        node: node.to_string(),
        metrics,
    }));
    let mut out = String::with_capacity(8 * 1024);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok((
            out,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok((
            out,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ))
    }
}

/// `GET /metrics`. Answers OpenMetrics when the scraper asks for it in
/// `Accept` (Prometheus does), the classic text format otherwise.
pub async fn metrics(node: web::Data<NodeHandle>, req: HttpRequest) -> HttpResponse {
    let openmetrics = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    match render(node.id.as_str(), node.metrics.clone(), openmetrics) {
        Ok((body, ctype)) => HttpResponse::Ok().content_type(ctype).body(body),
        Err(_) => HttpResponse::InternalServerError()
            .json(serde_json::json!({ "error": "cannot encode the metrics" })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn text_format_has_every_family() {
        let m = Arc::new(Metrics::default());
        Metrics::set(&m.members_alive, 3);
        Metrics::add(&m.bytes_in, 1200);
        Metrics::inc(&m.probes_sent);
        m.observe_detection(Duration::from_millis(2500));
        let (text, ctype) = render("n1", m, false).unwrap();
        assert!(ctype.starts_with("text/plain; version=0.0.4"));
        for line in [
            "gossip_members{state=\"alive\"} 3",
            "gossip_members{state=\"left\"} 0",
            "gossip_network_bytes_total{direction=\"in\"} 1200",
            "gossip_datagrams_total{direction=\"out\"} 0",
            "gossip_probes_sent_total 1",
            "gossip_probes_failed_total 0",
            "gossip_suspicions_raised_total 0",
            "gossip_suspicions_refuted_total 0",
            "gossip_rumors_queued_total 0",
            "gossip_rumors_sent_total 0",
            "gossip_rumors_dropped_total 0",
            "gossip_decode_failures_total 0",
            "gossip_auth_failures_total 0",
            "gossip_limits_hit_total 0",
            "gossip_actor_restarts_total 0",
            "gossip_detection_latency_seconds_bucket{le=\"2\"} 0",
            "gossip_detection_latency_seconds_bucket{le=\"3\"} 1",
            "gossip_detection_latency_seconds_bucket{le=\"+Inf\"} 1",
            "gossip_detection_latency_seconds_count 1",
            "gossip_detection_latency_seconds_sum 2.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains("# TYPE gossip_detection_latency_seconds histogram"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_ends_with_eof() {
        let (text, ctype) = render("n1", Arc::new(Metrics::default()), true).unwrap();
        assert!(ctype.starts_with("application/openmetrics-text"));
        assert!(text.ends_with("# EOF\n"));
    }
}
