//! Forwarding names outside our domain to `dns_recursors`, through
//! hickory-resolver (which retries over the servers in order and caches by
//! the upstream TTLs). Only used when the operator names recursors: without
//! them no query ever leaves the agent.

use hickory_proto::op::{Message, ResponseCode};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::zone::Answer;

/// `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`. Names are refused: a
/// forwarder that first had to resolve its upstream would ask itself.
pub fn parse_recursor(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0)
        .ok_or_else(|| format!("{s:?} must be an IP address, optionally with :port"))
}

pub struct Forwarder {
    resolver: TokioResolver,
}

impl Forwarder {
    /// Must be called inside the Tokio runtime that will run the lookups.
    pub fn new(recursors: &[SocketAddr]) -> Result<Forwarder, String> {
        let servers = recursors
            .iter()
            .map(|a| {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = a.port();
                NameServerConfig::new(a.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        // Short: a client's own resolver gives up after a few seconds.
        opts.timeout = Duration::from_secs(1);
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.recursion_desired = true;
        opts.edns0 = true;
        opts.cache_size = 1024;
        opts.ndots = 0;
        let config = ResolverConfig::from_parts(None, vec![], servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        *builder.options_mut() = opts;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(Forwarder { resolver })
    }

    /// The upstream answer to the request's (single) question.
    pub async fn answer(&self, req: &Message) -> Answer {
        let Some(q) = req.queries.first() else {
            return Answer {
                code: ResponseCode::FormErr,
                ..Answer::default()
            };
        };
        let mut name = q.name().clone();
        name.set_fqdn(true);
        match self.resolver.lookup(name, q.query_type()).await {
            Ok(lookup) => Answer {
                code: ResponseCode::NoError,
                records: lookup.answers().iter().map(|r| (r.clone(), None)).collect(),
                authority: Vec::new(),
            },
            Err(NetError::Dns(DnsError::NoRecordsFound(no))) => Answer {
                code: no.response_code,
                records: Vec::new(),
                authority: no
                    .soa
                    .map(|s| vec![(*s).into_record_of_rdata()])
                    .unwrap_or_default(),
            },
            Err(e) => {
                log::debug!("dns: forwarding {} failed: {e}", q.name());
                Answer {
                    code: ResponseCode::ServFail,
                    ..Answer::default()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursors_are_addresses() {
        assert_eq!(parse_recursor("10.0.0.1").unwrap().port(), 53);
        assert_eq!(parse_recursor("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_recursor("[::1]:53").unwrap().port(), 53);
        assert!(parse_recursor("::1").is_ok());
        for bad in ["dns.google", "1.2.3.4:0", "", "1.2.3.4:x"] {
            assert!(parse_recursor(bad).is_err(), "{bad}");
        }
    }
}
