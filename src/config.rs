//! Configuration: `config.yml` (or `--config PATH`), overridden by environment
//! variables named after the keys in upper case (`NODE_ID`, `PROBE_INTERVAL_MS`).
//!
//! Every key, its default and the reason for it are documented in config.yml;
//! the defaults here must match it (a test checks that the shipped file parses
//! to exactly `Config::default()` plus a node id).
//!
//! A bad value never panics: [`load`] returns a [`ConfigError`] naming the key
//! and the problem, and the agent prints it on one line and exits with code 2.

use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use crate::protocol::services::{parse_services_spec, Service};
use crate::protocol::suspicion::SuspicionParams;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// A list given either as a YAML sequence or as one comma-separated string
/// (the form environment variables take).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list or a comma-separated string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<StringList, E> {
                Ok(StringList(
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect(),
                ))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<StringList, E> {
                Ok(StringList(vec![n.to_string()]))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<StringList, E> {
                Ok(StringList(vec![n.to_string()]))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<StringList, E> {
                Ok(StringList::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<StringList, E> {
                Ok(StringList::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    if !s.trim().is_empty() {
                        out.push(s.trim().to_string());
                    }
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every tunable. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node_id: String,
    pub node_ip: String,
    pub node_port: u16,
    pub bind_addr: Option<String>,
    pub api_addr: Option<String>,
    pub seed_nodes: StringList,
    pub services: StringList,
    pub cluster_name: String,
    pub broadcast: bool,
    pub discovery_port: u16,

    pub gossip_interval_ms: u64,
    pub fanout: usize,
    pub push_pull_interval_ms: u64,
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
    pub indirect_checks: usize,
    pub retransmit_mult: u32,
    pub suspicion_min_ms: u64,
    pub suspicion_mult: f64,
    pub suspicion_max_mult: f64,
    pub suspicion_confirmations: u32,
    pub awareness_max_mult: u32,
    pub dead_reclaim_ms: u64,
    pub reconnect_interval_ms: u64,
    pub reconnect_timeout_ms: u64,
    pub seed_timeout_ms: u64,
    pub join_retry_max_ms: u64,
    pub leave_timeout_ms: u64,
    pub stats_interval_ms: u64,

    pub max_packet_bytes: usize,
    pub max_members: usize,
    pub max_rumors: usize,
    pub max_services: usize,

    pub loss_in: f64,
    pub loss_out: f64,
    pub fault_seed: Option<u64>,

    pub gossip_key: Option<String>,
    pub encryption: Encryption,
    pub api_token: Option<String>,
    pub data_dir: Option<String>,
}

/// `encryption.keys` in the config file: base64 keys, the first encrypts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Encryption {
    pub keys: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: String::new(),
            node_ip: "127.0.0.1".into(),
            node_port: 7946,
            bind_addr: None,
            api_addr: None,
            seed_nodes: StringList::default(),
            services: StringList::default(),
            cluster_name: "default".into(),
            broadcast: false,
            discovery_port: 7947,
            gossip_interval_ms: 200,
            fanout: 3,
            push_pull_interval_ms: 10_000,
            probe_interval_ms: 1000,
            probe_timeout_ms: 500,
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_min_ms: 1800,
            suspicion_mult: 0.9,
            suspicion_max_mult: 3.0,
            suspicion_confirmations: 2,
            awareness_max_mult: 8,
            dead_reclaim_ms: 60_000,
            reconnect_interval_ms: 30_000,
            reconnect_timeout_ms: 86_400_000,
            seed_timeout_ms: 1000,
            join_retry_max_ms: 30_000,
            leave_timeout_ms: 2000,
            stats_interval_ms: 10_000,
            max_packet_bytes: 1400,
            max_members: 16_384,
            max_rumors: 8192,
            max_services: 64,
            loss_in: 0.0,
            loss_out: 0.0,
            fault_seed: None,
            gossip_key: None,
            encryption: Encryption::default(),
            api_token: None,
            data_dir: None,
        }
    }
}

/// The keys, which are also the environment variables (upper-cased).
pub const KEYS: &[&str] = &[
    "node_id",
    "node_ip",
    "node_port",
    "bind_addr",
    "api_addr",
    "seed_nodes",
    "services",
    "cluster_name",
    "broadcast",
    "discovery_port",
    "gossip_interval_ms",
    "fanout",
    "push_pull_interval_ms",
    "probe_interval_ms",
    "probe_timeout_ms",
    "indirect_checks",
    "retransmit_mult",
    "suspicion_min_ms",
    "suspicion_mult",
    "suspicion_max_mult",
    "suspicion_confirmations",
    "awareness_max_mult",
    "dead_reclaim_ms",
    "reconnect_interval_ms",
    "reconnect_timeout_ms",
    "seed_timeout_ms",
    "join_retry_max_ms",
    "leave_timeout_ms",
    "stats_interval_ms",
    "max_packet_bytes",
    "max_members",
    "max_rumors",
    "max_services",
    "loss_in",
    "loss_out",
    "fault_seed",
    "gossip_key",
    "api_token",
    "data_dir",
];

/// Loads the file (if any) and the environment `env` (pass the process
/// environment, or a map in tests), then validates.
pub fn load(
    path: Option<&Path>,
    required: bool,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(p) = path {
        if required && !p.exists() {
            return Err(err("--config", format!("{} does not exist", p.display())));
        }
        builder = builder.add_source(
            config::File::from(p)
                .format(config::FileFormat::Yaml)
                .required(required),
        );
    }
    // Only our own keys, so unrelated variables (PATH, HOME) are never read.
    let ours: HashMap<String, String> = KEYS
        .iter()
        .filter_map(|k| {
            env.get(&k.to_uppercase())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    builder = builder.add_source(config::Environment::default().source(Some(ours)));
    let raw = builder.build().map_err(|e| err("config", e.to_string()))?;
    let cfg: Config = raw.try_deserialize().map_err(|e| {
        let text = e.to_string();
        let key = KEYS
            .iter()
            .find(|k| text.contains(*k))
            .map(|k| k.to_uppercase())
            .unwrap_or_else(|| "config".into());
        err(&key, text)
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Parses `host:port` (the host may be a name that does not resolve yet).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == ',' || c == '/') {
        return Err(format!("{s:?} has no valid host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?}: port must be 1 to 65535"))?;
    Ok((host.to_string(), port))
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.is_empty() {
            return Err(err(
                "NODE_ID",
                "is required (set NODE_ID or node_id in the config file)",
            ));
        }
        if self.node_id.len() > 64
            || self
                .node_id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(err("NODE_ID", "must be 1 to 64 characters without spaces"));
        }
        if self.node_port == 0 {
            return Err(err("NODE_PORT", "must be 1 to 65535"));
        }
        if self.node_ip.trim().is_empty() {
            return Err(err("NODE_IP", "must not be empty"));
        }
        for s in &self.seed_nodes.0 {
            parse_host_port(s).map_err(|e| err("SEED_NODES", e))?;
        }
        parse_services_spec(&self.services.0, 1).map_err(|e| err("SERVICES", e))?;
        if let Some(b) = &self.bind_addr {
            b.parse::<SocketAddr>()
                .map_err(|_| err("BIND_ADDR", format!("{b:?} is not ip:port")))?;
        }
        if let Some(a) = &self.api_addr {
            a.parse::<SocketAddr>()
                .map_err(|_| err("API_ADDR", format!("{a:?} is not ip:port")))?;
        }
        if self.cluster_name.is_empty() || self.cluster_name.len() > 64 {
            return Err(err("CLUSTER_NAME", "must be 1 to 64 characters"));
        }
        let positive = [
            ("GOSSIP_INTERVAL_MS", self.gossip_interval_ms),
            ("PUSH_PULL_INTERVAL_MS", self.push_pull_interval_ms),
            ("PROBE_INTERVAL_MS", self.probe_interval_ms),
            ("PROBE_TIMEOUT_MS", self.probe_timeout_ms),
            ("RECONNECT_INTERVAL_MS", self.reconnect_interval_ms),
            ("RECONNECT_TIMEOUT_MS", self.reconnect_timeout_ms),
            ("SEED_TIMEOUT_MS", self.seed_timeout_ms),
            ("JOIN_RETRY_MAX_MS", self.join_retry_max_ms),
            ("STATS_INTERVAL_MS", self.stats_interval_ms),
            ("FANOUT", self.fanout as u64),
            ("RETRANSMIT_MULT", self.retransmit_mult as u64),
            ("AWARENESS_MAX_MULT", self.awareness_max_mult as u64),
            ("MAX_MEMBERS", self.max_members as u64),
            ("MAX_RUMORS", self.max_rumors as u64),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(err(k, "must be greater than 0"));
            }
        }
        if self.probe_timeout_ms >= self.probe_interval_ms {
            return Err(err(
                "PROBE_TIMEOUT_MS",
                "must be shorter than PROBE_INTERVAL_MS",
            ));
        }
        if !(512..=65_000).contains(&self.max_packet_bytes) {
            return Err(err("MAX_PACKET_BYTES", "must be 512 to 65000"));
        }
        if !(self.suspicion_mult >= 0.0 && self.suspicion_mult.is_finite()) {
            return Err(err("SUSPICION_MULT", "must be a number >= 0"));
        }
        if !(self.suspicion_max_mult >= 1.0 && self.suspicion_max_mult.is_finite()) {
            return Err(err("SUSPICION_MAX_MULT", "must be a number >= 1"));
        }
        for (k, v) in [("LOSS_IN", self.loss_in), ("LOSS_OUT", self.loss_out)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(err(k, "must be a fraction from 0 to 1"));
            }
        }
        self.keyring().map_err(|(k, e)| err(k, e))?;
        if let Some(t) = &self.api_token {
            if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(err(
                    "API_TOKEN",
                    "must be at least 16 characters without spaces",
                ));
            }
        }
        if self.data_dir.as_deref() == Some("") {
            return Err(err(
                "DATA_DIR",
                "must not be empty (leave it unset for none)",
            ));
        }
        if self.max_services > 1024 {
            return Err(err("MAX_SERVICES", "must be at most 1024"));
        }
        let own = parse_services_spec(&self.services.0, 1).map_err(|e| err("SERVICES", e))?;
        if own.len() > self.max_services {
            return Err(err(
                "SERVICES",
                format!("more than MAX_SERVICES ({})", self.max_services),
            ));
        }
        Ok(())
    }

    /// The keyring: GOSSIP_KEY first (it encrypts), then `encryption.keys`.
    pub fn keyring(&self) -> Result<Vec<crate::protocol::crypto::Key>, (&'static str, String)> {
        let mut keys = Vec::new();
        if let Some(k) = self.gossip_key.as_deref().filter(|k| !k.is_empty()) {
            keys.push(crate::protocol::crypto::parse_key(k).map_err(|e| ("GOSSIP_KEY", e))?);
        }
        for (i, k) in self.encryption.keys.iter().enumerate() {
            let key = crate::protocol::crypto::parse_key(k)
                .map_err(|e| ("encryption.keys", format!("key {}: {e}", i + 1)))?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// The address peers use to reach us: NODE_IP (resolved now) and NODE_PORT.
    pub fn advertise_addr(&self) -> Result<SocketAddr, ConfigError> {
        let target = format!("{}:{}", self.node_ip, self.node_port);
        let addrs: Vec<SocketAddr> = target
            .to_socket_addrs()
            .map_err(|e| {
                err(
                    "NODE_IP",
                    format!("{:?} does not resolve: {e}", self.node_ip),
                )
            })?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| {
                err(
                    "NODE_IP",
                    format!("{:?} resolves to no address", self.node_ip),
                )
            })
    }

    pub fn bind_socket_addr(&self) -> SocketAddr {
        self.bind_addr
            .as_deref()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.node_port)))
    }

    pub fn api_socket_addr(&self) -> SocketAddr {
        self.api_addr
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| default_api_addr(self.node_port))
    }

    pub fn initial_services(&self) -> Vec<Service> {
        // Validated above; a service listed without a port advertises NODE_PORT.
        parse_services_spec(&self.services.0, self.node_port).unwrap_or_default()
    }

    pub fn suspicion_params(&self) -> SuspicionParams {
        SuspicionParams {
            probe_interval: Self::ms(self.probe_interval_ms),
            suspicion_min: Self::ms(self.suspicion_min_ms),
            suspicion_mult: self.suspicion_mult,
            suspicion_max_mult: self.suspicion_max_mult,
            confirmations: self.suspicion_confirmations,
        }
    }
}

/// `127.0.0.1:(NODE_PORT + 1000)`, wrapping into the valid range.
pub fn default_api_addr(node_port: u16) -> SocketAddr {
    let port = (node_port as u32 + 1000) % 65536;
    SocketAddr::from(([127, 0, 0, 1], port.max(1) as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_and_lists_parse() {
        let c = load(
            None,
            false,
            &env(&[
                ("NODE_ID", "node1"),
                ("NODE_PORT", "8001"),
                ("SEED_NODES", "node2:8002, node3:8003"),
                ("SERVICES", "web,api:9090"),
                ("PROBE_INTERVAL_MS", "500"),
                ("PROBE_TIMEOUT_MS", "200"),
                ("BROADCAST", "true"),
                ("LOSS_IN", "0.2"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.node_port, 8001);
        assert_eq!(c.seed_nodes.0, vec!["node2:8002", "node3:8003"]);
        assert_eq!(c.initial_services()[1].port, 9090);
        assert_eq!(c.initial_services()[0].port, 8001);
        assert_eq!(c.probe_interval_ms, 500);
        assert!(c.broadcast);
        assert_eq!(c.loss_in, 0.2);
        assert_eq!(c.api_socket_addr(), "127.0.0.1:9001".parse().unwrap());
    }

    #[test]
    fn empty_and_numeric_lists() {
        // A bare number is a valid service name, not a parse error.
        let c = load(None, false, &env(&[("NODE_ID", "n"), ("SERVICES", "8080")])).unwrap();
        assert_eq!(c.initial_services()[0].name, "8080");
        let e = load(
            None,
            false,
            &env(&[("NODE_ID", "n"), ("SERVICES", "web:http")]),
        )
        .unwrap_err();
        assert_eq!(e.key, "SERVICES");
        let c = load(None, false, &env(&[("NODE_ID", "n"), ("SEED_NODES", "")])).unwrap();
        assert!(c.seed_nodes.0.is_empty());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "NODE_ID"),
            (&[("NODE_ID", "n"), ("NODE_PORT", "70000")], "NODE_PORT"),
            (&[("NODE_ID", "n"), ("NODE_PORT", "abc")], "NODE_PORT"),
            (
                &[("NODE_ID", "n"), ("SEED_NODES", "garbage::")],
                "SEED_NODES",
            ),
            (&[("NODE_ID", "n"), ("SEED_NODES", "host")], "SEED_NODES"),
            (&[("NODE_ID", "n"), ("BROADCAST", "maybe")], "BROADCAST"),
            (&[("NODE_ID", "n"), ("FANOUT", "0")], "FANOUT"),
            (&[("NODE_ID", "n"), ("LOSS_IN", "2")], "LOSS_IN"),
            (&[("NODE_ID", "n"), ("API_ADDR", "nowhere")], "API_ADDR"),
            (&[("NODE_ID", "n"), ("GOSSIP_KEY", "short")], "GOSSIP_KEY"),
            (&[("NODE_ID", "n"), ("API_TOKEN", "x")], "API_TOKEN"),
        ];
        for (vars, key) in cases {
            let e = load(None, false, &env(vars)).unwrap_err();
            assert_eq!(&e.key, key, "{vars:?} gave {e}");
        }
    }

    #[test]
    fn shipped_config_file_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yml");
        let c = load(Some(&path), true, &env(&[("NODE_ID", "x")])).unwrap();
        let expected = Config {
            node_id: "x".into(),
            ..Config::default()
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("gossip-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yml");
        std::fs::write(&p, "node_id: a\nprobe_intervl_ms: 5\n").unwrap();
        let e = load(Some(&p), true, &HashMap::new()).unwrap_err();
        assert!(e.problem.contains("probe_intervl_ms"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
