//! The DNS face: every agent answers DNS for the catalog it already holds,
//! so software that knows nothing about Gossip finds `web` by name.
//!
//! | file | concern |
//! | --- | --- |
//! | `name.rs` | reading a query name into a [`name::Question`] (Consul's grammar) |
//! | `zone.rs` | the records for a question, built from the published snapshot |
//! | `respond.rs` | request bytes -> response bytes: checks, EDNS0, truncation |
//! | `forward.rs` | names outside the domain, to `dns_recursors` (hickory-resolver) |
//! | `server.rs` | the UDP and TCP sockets, on a thread of their own |
//! | `metrics.rs` | queries by type and code, malformed requests, latency |
//!
//! The server reads `NodeHandle.snapshot` and nothing else: it sends no
//! actor a message and keeps no copy fed by events.

pub mod forward;
pub mod metrics;
pub mod name;
pub mod respond;
pub mod server;
pub mod zone;

use crate::config::Config;

/// What answers depend on, from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// Normalized: lowercase, ends with a dot (`gossip.`).
    pub domain: String,
    pub ttl: u32,
    /// At most this many records per answer; 0 means no limit.
    pub a_record_limit: usize,
    /// Leave `warning` instances out too (`critical` ones always are).
    pub only_passing: bool,
}

impl DnsSettings {
    pub fn from_config(cfg: &Config) -> DnsSettings {
        DnsSettings {
            domain: name::normalize_domain(&cfg.dns_domain).unwrap_or_else(|_| "gossip.".into()),
            ttl: cfg.dns_ttl,
            a_record_limit: cfg.a_record_limit,
            only_passing: cfg.only_passing,
        }
    }
}

pub use server::{start, DnsServer};
