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
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::protocol::checks::{parse_check_line, resolve_all, CheckDef, CheckSpec};
use crate::protocol::services::{parse_services_spec, Service};
use crate::protocol::suspicion::SuspicionParams;

/// What was wrong, where, and what would be accepted, on one line:
/// `config error: NODE_PORT=70000 (environment): out of range; accepted: 1 to 65535`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The key as an environment variable (`NODE_PORT`), or the unknown key
    /// as written in the file.
    pub key: String,
    pub problem: String,
    /// Where the bad value came from: `environment`, or `FILE, line N`.
    pub place: Option<String>,
    /// The value as given, when there is one to show.
    pub value: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}", self.key)?;
        if let Some(v) = &self.value {
            write!(f, "={v}")?;
        }
        if let Some(p) = &self.place {
            write!(f, " ({p})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: problem.into(),
        place: None,
        value: None,
    }
}

/// The valid range of every numeric key, inclusive, and config.yml says the
/// same in a `# range:` line above each key (a test checks they agree).
/// Bounds are where the node still works as documented, with margin for
/// tests and benchmarks that turn knobs far from the defaults.
pub const RANGES: &[(&str, f64, f64)] = &[
    ("node_port", 1.0, 65_535.0),
    ("discovery_port", 1.0, 65_535.0),
    ("gossip_interval_ms", 10.0, 60_000.0),
    ("fanout", 1.0, 64.0),
    ("push_pull_interval_ms", 100.0, 3_600_000.0),
    ("probe_interval_ms", 20.0, 60_000.0),
    ("probe_timeout_ms", 10.0, 60_000.0),
    ("indirect_checks", 0.0, 16.0),
    ("retransmit_mult", 1.0, 16.0),
    ("suspicion_min_ms", 100.0, 3_600_000.0),
    ("suspicion_mult", 0.0, 100.0),
    ("suspicion_max_mult", 1.0, 100.0),
    ("suspicion_confirmations", 0.0, 32.0),
    ("awareness_max_mult", 1.0, 64.0),
    ("dead_reclaim_ms", 1_000.0, 604_800_000.0),
    ("max_seed_addrs", 1.0, 1_024.0),
    ("reconnect_interval_ms", 100.0, 3_600_000.0),
    ("reconnect_timeout_ms", 1000.0, 31_536_000_000.0),
    ("seed_timeout_ms", 10.0, 600_000.0),
    ("join_retry_max_ms", 10.0, 3_600_000.0),
    ("leave_timeout_ms", 0.0, 600_000.0),
    ("stats_interval_ms", 100.0, 86_400_000.0),
    ("max_packet_bytes", 512.0, 65_000.0),
    ("max_members", 1.0, 65_535.0),
    ("max_rumors", 1.0, 1_000_000.0),
    ("max_services", 0.0, 1024.0),
    ("loss_in", 0.0, 1.0),
    ("loss_out", 0.0, 1.0),
    ("dns_ttl", 0.0, 86_400.0),
    ("a_record_limit", 0.0, 1_000.0),
];

/// `1 to 65535`, `0 to 1`: a range as config.yml and the errors write it.
pub fn range_text(min: f64, max: f64) -> String {
    format!("{min} to {max}")
}

fn range_of(key: &str) -> Option<(f64, f64)> {
    RANGES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// What a key accepts, for error messages.
fn accepted(key: &str) -> String {
    if let Some((lo, hi)) = range_of(key) {
        let kind = if matches!(
            key,
            "suspicion_mult" | "suspicion_max_mult" | "loss_in" | "loss_out"
        ) {
            "a number"
        } else {
            "an integer"
        };
        return format!("accepted: {kind} from {}", range_text(lo, hi));
    }
    match key {
        "broadcast" => "accepted: true or false".into(),
        "fault_seed" => "accepted: an integer from 0 to 18446744073709551615".into(),
        "seed_nodes" => "accepted: host:port,host:port".into(),
        "services" => "accepted: web,api:9090".into(),
        _ => "accepted: a string".into(),
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

/// `services:`: each entry `"web"`, `"web:8080"`, or a map with tags,
/// metadata and checks (config.yml); the environment's `SERVICES` is the
/// comma-separated short form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceList(pub Vec<ServiceEntry>);

impl ServiceList {
    /// Short entries (`"web"`, `"web:8080"`).
    pub fn names(list: Vec<String>) -> Self {
        ServiceList(list.into_iter().map(ServiceEntry::Short).collect())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceEntry {
    Short(String),
    Full(ServiceDecl),
}

/// A service declared in full in config.yml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    pub name: String,
    /// NODE_PORT when not given.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

impl<'de> Deserialize<'de> for ServiceEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ServiceEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"name\", \"name:port\" or a map with name, port, tags, meta, checks")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ServiceEntry, E> {
                Ok(ServiceEntry::Short(s.trim().to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ServiceEntry, E> {
                Ok(ServiceEntry::Short(n.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ServiceEntry, E> {
                Ok(ServiceEntry::Short(n.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ServiceEntry, A::Error> {
                ServiceDecl::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ServiceEntry::Full)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ServiceList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ServiceList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of services or a comma-separated string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ServiceList, E> {
                StringList::deserialize(serde::de::value::StrDeserializer::<E>::new(s))
                    .map(|l| ServiceList::names(l.0))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ServiceList, E> {
                Ok(ServiceList::names(vec![n.to_string()]))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ServiceList, E> {
                Ok(ServiceList::names(vec![n.to_string()]))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<ServiceList, E> {
                Ok(ServiceList::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<ServiceList, E> {
                Ok(ServiceList::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ServiceList, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<ServiceEntry>()? {
                    if !matches!(&e, ServiceEntry::Short(s) if s.is_empty()) {
                        out.push(e);
                    }
                }
                Ok(ServiceList(out))
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
    pub node_ip: Option<String>,
    pub node_port: u16,
    pub bind_addr: Option<String>,
    pub api_addr: Option<String>,
    pub seed_nodes: StringList,
    pub services: ServiceList,
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
    pub max_seed_addrs: usize,
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

    pub dns_addr: Option<String>,
    pub dns_domain: String,
    pub dns_ttl: u32,
    pub a_record_limit: usize,
    pub only_passing: bool,
    pub dns_recursors: StringList,
    /// Checks from the environment, `SERVICE_CHECK_<NAME>` (not a file key):
    /// by service id.
    #[serde(skip)]
    pub env_checks: std::collections::BTreeMap<String, Vec<CheckSpec>>,
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
            node_ip: None,
            node_port: 7946,
            bind_addr: None,
            api_addr: None,
            seed_nodes: StringList::default(),
            services: ServiceList::default(),
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
            suspicion_min_ms: 2100,
            suspicion_mult: 0.9,
            suspicion_max_mult: 3.0,
            suspicion_confirmations: 2,
            awareness_max_mult: 8,
            dead_reclaim_ms: 60_000,
            reconnect_interval_ms: 30_000,
            reconnect_timeout_ms: 86_400_000,
            seed_timeout_ms: 1000,
            max_seed_addrs: 8,
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
            dns_addr: None,
            dns_domain: "gossip.".into(),
            dns_ttl: 0,
            a_record_limit: 0,
            only_passing: false,
            dns_recursors: StringList::default(),
            env_checks: Default::default(),
        }
    }
}

/// The prefix of the environment variables that declare checks.
pub const CHECK_ENV_PREFIX: &str = "SERVICE_CHECK_";

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
    "max_seed_addrs",
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
    "dns_addr",
    "dns_domain",
    "dns_ttl",
    "a_record_limit",
    "only_passing",
    "dns_recursors",
];

/// Top-level keys of a YAML file with their line numbers (a key is a line
/// that starts without indentation and has `name:`). Enough to name an
/// unknown key's line; the YAML parser reports everything else.
fn file_keys(text: &str) -> Vec<(String, usize)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '\'')
        })
        .filter_map(|(i, l)| {
            let (k, _) = l.split_once(':')?;
            let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
            Some((k.to_string(), i + 1))
        })
        .collect()
}

/// Checks that the file names only known keys; the error names the file,
/// the line and the closest known key.
fn check_file_keys(path: &Path, text: &str) -> Result<(), ConfigError> {
    for (k, line) in file_keys(text) {
        if KEYS.contains(&k.as_str()) || k == "encryption" {
            continue;
        }
        let all = KEYS.iter().copied().chain(["encryption"]);
        let hint = match crate::suggest::did_you_mean(&k, all) {
            Some(m) => format!("did you mean {m}?"),
            None => "config.yml lists every key".into(),
        };
        return Err(ConfigError {
            key: k,
            problem: format!("unknown key; {hint}"),
            place: Some(format!("{}, line {line}", path.display())),
            value: None,
        });
    }
    Ok(())
}

/// Loads the file (if any) and the environment `env` (pass the process
/// environment, or a map in tests), then validates.
pub fn load(
    path: Option<&Path>,
    required: bool,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    let mut file_text = None;
    if let Some(p) = path {
        if required && !p.exists() {
            return Err(err(
                "--config",
                format!(
                    "{} does not exist; accepted: a YAML file like config.yml",
                    p.display()
                ),
            ));
        }
        if p.exists() {
            let text = std::fs::read_to_string(p)
                .map_err(|e| err("--config", format!("cannot read {}: {e}", p.display())))?;
            check_file_keys(p, &text)?;
            file_text = Some(text);
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
    builder = builder.add_source(config::Environment::default().source(Some(ours.clone())));
    let place_of = |key: &str| -> (Option<String>, Option<String>) {
        if let Some(v) = ours.get(key) {
            return (Some("environment".into()), Some(v.clone()));
        }
        match (path, &file_text) {
            (Some(p), Some(text)) => {
                let line = file_keys(text)
                    .into_iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, l)| format!(", line {l}"))
                    .unwrap_or_default();
                (Some(format!("{}{line}", p.display())), None)
            }
            _ => (None, None),
        }
    };
    let raw = builder.build().map_err(|e| ConfigError {
        key: path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "--config".into()),
        problem: format!("not valid YAML: {e}"),
        place: None,
        value: None,
    })?;
    let mut cfg: Config = raw.clone().try_deserialize().map_err(|e| {
        let text = e.to_string();
        // The config crate ends its messages with "for key `name`".
        let key = text
            .split_once("for key `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(k, _)| k.to_string())
            .unwrap_or_default();
        let (place, value) = place_of(&key);
        let value = value.or_else(|| raw.get_string(&key).ok());
        let what = text.split(" for key `").next().unwrap_or(&text);
        let problem = match (&value, range_of(&key)) {
            (Some(v), Some(_)) if v.trim().parse::<f64>().is_ok() => {
                format!("out of range; {}", accepted(&key))
            }
            (_, Some(_)) => format!("not a number; {}", accepted(&key)),
            _ if KEYS.contains(&key.as_str()) => format!("{what}; {}", accepted(&key)),
            _ => what.to_string(),
        };
        ConfigError {
            key: if key.is_empty() {
                "config".into()
            } else {
                key.to_uppercase()
            },
            problem,
            place,
            value,
        }
    })?;
    for (var, value) in env {
        if let Some(name) = var.strip_prefix(CHECK_ENV_PREFIX) {
            let specs = parse_check_line(value).map_err(|e| ConfigError {
                key: var.clone(),
                problem: e,
                place: Some("environment".into()),
                value: Some(value.clone()),
            })?;
            let id = name.to_lowercase().replace('_', "-");
            cfg.env_checks.entry(id).or_default().extend(specs);
        }
    }
    if cfg.node_id.is_empty() {
        // Orchestrators give every task or pod a unique host name.
        cfg.node_id = crate::identity::host_name().unwrap_or_default();
        if !cfg.node_id.is_empty() {
            cfg.validate().map_err(|e| match e.key.as_str() {
                "NODE_ID" => err(
                    "NODE_ID",
                    format!(
                        "is unset and the host name {:?} cannot stand in for it: {}",
                        cfg.node_id, e.problem
                    ),
                ),
                _ => e,
            })?;
        }
    }
    cfg.validate().map_err(|mut e| {
        let (place, value) = place_of(&e.key.to_lowercase());
        e.place = e.place.or(place);
        // The text as given beats our reading of it (1e300, not 1000...0).
        e.value = value.or(e.value);
        e
    })?;
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
                "is required (set NODE_ID, or node_id in the config file; the host name is used when it can be read)",
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
        if self
            .node_ip
            .as_deref()
            .is_some_and(|ip| ip.trim().is_empty())
        {
            return Err(err(
                "NODE_IP",
                "must not be empty (leave it unset to pick the address automatically)",
            ));
        }
        for s in &self.seed_nodes.0 {
            parse_host_port(s).map_err(|e| err("SEED_NODES", e))?;
        }
        let declared = self.service_decls()?;
        for id in self.env_checks.keys() {
            if !declared.iter().any(|(s, _)| s.id() == id) {
                return Err(err(
                    &format!("{CHECK_ENV_PREFIX}{}", id.to_uppercase().replace('-', "_")),
                    format!("there is no service {id:?} in SERVICES"),
                ));
            }
        }
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
        for (key, value) in self.numbers() {
            let Some((lo, hi)) = range_of(key) else {
                continue;
            };
            if !(lo..=hi).contains(&value) {
                let mut e = err(
                    &key.to_uppercase(),
                    format!("out of range; {}", accepted(key)),
                );
                e.value = Some(if value.abs() >= 1e15 {
                    format!("{value:e}")
                } else {
                    value.to_string()
                });
                return Err(e);
            }
        }
        if self.probe_timeout_ms >= self.probe_interval_ms {
            return Err(err(
                "PROBE_TIMEOUT_MS",
                format!(
                    "must be shorter than PROBE_INTERVAL_MS; accepted: 10 to {}",
                    self.probe_interval_ms - 1
                ),
            ));
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
        self.validate_dns()?;
        if declared.len() > self.max_services {
            return Err(err(
                "SERVICES",
                format!("more than MAX_SERVICES ({})", self.max_services),
            ));
        }
        Ok(())
    }

    /// Every numeric key's value (a test checks this covers them all).
    pub fn numbers(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("node_port", self.node_port as f64),
            ("discovery_port", self.discovery_port as f64),
            ("gossip_interval_ms", self.gossip_interval_ms as f64),
            ("fanout", self.fanout as f64),
            ("push_pull_interval_ms", self.push_pull_interval_ms as f64),
            ("probe_interval_ms", self.probe_interval_ms as f64),
            ("probe_timeout_ms", self.probe_timeout_ms as f64),
            ("indirect_checks", self.indirect_checks as f64),
            ("retransmit_mult", self.retransmit_mult as f64),
            ("suspicion_min_ms", self.suspicion_min_ms as f64),
            ("suspicion_mult", self.suspicion_mult),
            ("suspicion_max_mult", self.suspicion_max_mult),
            (
                "suspicion_confirmations",
                self.suspicion_confirmations as f64,
            ),
            ("awareness_max_mult", self.awareness_max_mult as f64),
            ("dead_reclaim_ms", self.dead_reclaim_ms as f64),
            ("max_seed_addrs", self.max_seed_addrs as f64),
            ("reconnect_interval_ms", self.reconnect_interval_ms as f64),
            ("reconnect_timeout_ms", self.reconnect_timeout_ms as f64),
            ("seed_timeout_ms", self.seed_timeout_ms as f64),
            ("join_retry_max_ms", self.join_retry_max_ms as f64),
            ("leave_timeout_ms", self.leave_timeout_ms as f64),
            ("stats_interval_ms", self.stats_interval_ms as f64),
            ("max_packet_bytes", self.max_packet_bytes as f64),
            ("max_members", self.max_members as f64),
            ("max_rumors", self.max_rumors as f64),
            ("max_services", self.max_services as f64),
            ("loss_in", self.loss_in),
            ("loss_out", self.loss_out),
            ("dns_ttl", self.dns_ttl as f64),
            ("a_record_limit", self.a_record_limit as f64),
        ]
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
        // Validated above.
        self.service_decls()
            .unwrap_or_default()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }

    /// The checks of the services declared at start, by service id.
    pub fn initial_checks(&self) -> std::collections::BTreeMap<String, Vec<CheckDef>> {
        self.service_decls()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(s, c)| (s.id().to_string(), c))
            .collect()
    }

    /// Every service declared at start, with its checks (config.yml's and
    /// the environment's), validated. A service listed without a port
    /// advertises NODE_PORT.
    pub fn service_decls(&self) -> Result<Vec<(Service, Vec<CheckDef>)>, ConfigError> {
        let mut out: Vec<(Service, Vec<CheckSpec>)> = Vec::new();
        for (i, entry) in self.services.0.iter().enumerate() {
            let (svc, specs) = match entry {
                ServiceEntry::Short(text) => {
                    let mut list = parse_services_spec(std::slice::from_ref(text), self.node_port)
                        .map_err(|e| err("SERVICES", e))?;
                    (list.remove(0), Vec::new())
                }
                ServiceEntry::Full(d) => {
                    let key = format!("services[{i}]");
                    let svc = Service {
                        name: d.name.clone(),
                        port: d.port.unwrap_or(self.node_port),
                        tags: d.tags.clone(),
                        meta: d.meta.clone(),
                        id: d.id.clone().unwrap_or_default(),
                        address: d.address.clone(),
                        health: Default::default(),
                    };
                    svc.validate().map_err(|e| err(&key, e))?;
                    (svc, d.checks.clone())
                }
            };
            if out.iter().any(|(s, _)| s.id() == svc.id()) {
                return Err(err("SERVICES", format!("{:?} is listed twice", svc.id())));
            }
            out.push((svc, specs));
        }
        out.into_iter()
            .enumerate()
            .map(|(i, (svc, mut specs))| {
                let from_env = self.env_checks.get(svc.id());
                specs.extend(from_env.into_iter().flatten().cloned());
                let key = match from_env {
                    Some(_) => format!(
                        "{CHECK_ENV_PREFIX}{}",
                        svc.id().to_uppercase().replace('-', "_")
                    ),
                    None => format!("services[{i}]"),
                };
                let checks = resolve_all(svc.id(), &specs).map_err(|e| err(&key, e))?;
                Ok((svc, checks))
            })
            .collect()
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

/// Where the DNS server listens (`DNS_ADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsListen {
    Off,
    /// Derived from NODE_PORT: a busy port there only costs the DNS server.
    Default(SocketAddr),
    /// Given explicitly: not being able to listen there is a config error.
    Given(SocketAddr),
}

impl Config {
    fn validate_dns(&self) -> Result<(), ConfigError> {
        if let Some(a) = &self.dns_addr {
            if a != "off" {
                a.parse::<SocketAddr>()
                    .map_err(|_| err("DNS_ADDR", format!("{a:?} is not ip:port (or \"off\")")))?;
            }
        }
        crate::dns::name::normalize_domain(&self.dns_domain).map_err(|e| err("DNS_DOMAIN", e))?;
        if self.dns_recursors.0.len() > 8 {
            return Err(err("DNS_RECURSORS", "at most 8 servers"));
        }
        for r in &self.dns_recursors.0 {
            crate::dns::forward::parse_recursor(r).map_err(|e| err("DNS_RECURSORS", e))?;
        }
        Ok(())
    }

    pub fn dns_listen(&self) -> DnsListen {
        match self.dns_addr.as_deref() {
            Some("off") => DnsListen::Off,
            Some(a) => a
                .parse()
                .map(DnsListen::Given)
                .unwrap_or(DnsListen::Default(default_dns_addr(self.node_port))),
            None => DnsListen::Default(default_dns_addr(self.node_port)),
        }
    }
}

/// `127.0.0.1:(NODE_PORT + 654)`: 8600 for the default NODE_PORT, Consul's
/// DNS port, and side by side for agents on consecutive ports.
pub fn default_dns_addr(node_port: u16) -> SocketAddr {
    let port = (node_port as u32 + 654) % 65536;
    SocketAddr::from(([127, 0, 0, 1], port.max(1) as u16))
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
            (&[("NODE_ID", "a b")], "NODE_ID"),
            (&[("NODE_ID", "n"), ("NODE_IP", " ")], "NODE_IP"),
            (
                &[("NODE_ID", "n"), ("MAX_SEED_ADDRS", "0")],
                "MAX_SEED_ADDRS",
            ),
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
            (&[("NODE_ID", "n"), ("DNS_ADDR", "on")], "DNS_ADDR"),
            (
                &[("NODE_ID", "n"), ("DNS_DOMAIN", "bad_domain.")],
                "DNS_DOMAIN",
            ),
            (&[("NODE_ID", "n"), ("DNS_DOMAIN", "")], "DNS_DOMAIN"),
            (&[("NODE_ID", "n"), ("DNS_TTL", "-1")], "DNS_TTL"),
            (&[("NODE_ID", "n"), ("DNS_TTL", "90000")], "DNS_TTL"),
            (
                &[("NODE_ID", "n"), ("A_RECORD_LIMIT", "5000")],
                "A_RECORD_LIMIT",
            ),
            (
                &[("NODE_ID", "n"), ("ONLY_PASSING", "sometimes")],
                "ONLY_PASSING",
            ),
            (
                &[("NODE_ID", "n"), ("DNS_RECURSORS", "dns.google")],
                "DNS_RECURSORS",
            ),
        ];
        for (vars, key) in cases {
            let e = load(None, false, &env(vars)).unwrap_err();
            assert_eq!(&e.key, key, "{vars:?} gave {e}");
        }
    }

    #[test]
    fn dns_listens_on_loopback_next_to_the_node_port_unless_told() {
        let c = load(None, false, &env(&[("NODE_ID", "n")])).unwrap();
        assert_eq!(
            c.dns_listen(),
            DnsListen::Default("127.0.0.1:8600".parse().unwrap())
        );
        let c = load(
            None,
            false,
            &env(&[("NODE_ID", "n"), ("NODE_PORT", "8001")]),
        )
        .unwrap();
        assert_eq!(
            c.dns_listen(),
            DnsListen::Default("127.0.0.1:8655".parse().unwrap())
        );
        let c = load(None, false, &env(&[("NODE_ID", "n"), ("DNS_ADDR", "off")])).unwrap();
        assert_eq!(c.dns_listen(), DnsListen::Off);
        let c = load(
            None,
            false,
            &env(&[
                ("NODE_ID", "n"),
                ("DNS_ADDR", "0.0.0.0:53"),
                ("DNS_DOMAIN", "Consul"),
                ("DNS_RECURSORS", "10.0.0.2, 10.0.0.3:5353"),
                ("ONLY_PASSING", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.dns_listen(),
            DnsListen::Given("0.0.0.0:53".parse().unwrap())
        );
        assert_eq!(crate::dns::DnsSettings::from_config(&c).domain, "consul.");
        assert_eq!(c.dns_recursors.0.len(), 2);
        assert!(c.only_passing);
    }

    #[test]
    fn node_id_defaults_to_the_host_name_and_node_ip_to_none() {
        let c = load(None, false, &HashMap::new()).unwrap();
        assert_eq!(Some(c.node_id), crate::identity::host_name());
        assert_eq!(c.node_ip, None);
        let c = load(None, false, &env(&[("NODE_ID", "n"), ("NODE_IP", "eth0")])).unwrap();
        assert_eq!(
            (c.node_id.as_str(), c.node_ip.as_deref()),
            ("n", Some("eth0"))
        );
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
    fn numeric_keys_have_ranges_documented_in_config_yml() {
        let numbers: Vec<&str> = Config::default()
            .numbers()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        let ranged: Vec<&str> = RANGES.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(numbers, ranged, "numbers() and RANGES list the same keys");
        for k in &ranged {
            assert!(KEYS.contains(k), "{k}");
        }
        let yml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yml"))
            .unwrap();
        let lines: Vec<&str> = yml.lines().collect();
        for (key, lo, hi) in RANGES {
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{key}:")))
                .unwrap_or_else(|| panic!("config.yml has no {key}"));
            assert_eq!(
                lines[at - 1],
                format!("# range: {}", range_text(*lo, *hi)),
                "the line above {key} in config.yml"
            );
        }
        // The defaults are inside their own ranges.
        for (key, v) in Config::default().numbers() {
            let (lo, hi) = range_of(key).unwrap();
            assert!((lo..=hi).contains(&v), "default {key} = {v}");
        }
    }

    #[test]
    fn values_that_broke_the_node_are_refused() {
        for (var, value) in [
            ("SUSPICION_MAX_MULT", "1e300"),
            ("SUSPICION_MULT", "inf"),
            ("LOSS_IN", "NaN"),
            ("DEAD_RECLAIM_MS", "0"),
            ("MAX_MEMBERS", "65536"),
            ("MAX_MEMBERS", "100000"),
            ("NODE_PORT", "70000"),
            ("FANOUT", "-1"),
            ("PROBE_INTERVAL_MS", "18446744073709551615"),
        ] {
            let e = load(None, false, &env(&[("NODE_ID", "n"), (var, value)])).unwrap_err();
            assert_eq!(e.key, var, "{e}");
            let line = e.to_string();
            assert!(
                line.starts_with(&format!("config error: {var}={value} (environment): ")),
                "{line}"
            );
            assert!(line.contains("accepted: "), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        let ok = load(
            None,
            false,
            &env(&[("NODE_ID", "n"), ("MAX_MEMBERS", "65535")]),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn file_errors_name_the_file_the_line_and_a_fix() {
        let dir = std::env::temp_dir().join(format!("gossip-cfg-hint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yml");
        std::fs::write(&p, "node_id: a\nprobe_interval: 500\n").unwrap();
        let e = load(Some(&p), true, &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config error: probe_interval ("), "{e}");
        assert!(e.contains(&format!("{}, line 2", p.display())), "{e}");
        assert!(e.contains("did you mean probe_interval_ms?"), "{e}");
        assert!(!e.contains("NODE_ID"), "{e}");
        std::fs::write(&p, "node_id: a\nfanout: 0\n").unwrap();
        let e = load(Some(&p), true, &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("FANOUT=0") && e.contains("line 2") && e.contains("1 to 64"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn json_style_files_still_load() {
        let dir = std::env::temp_dir().join(format!("gossip-cfg-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yml");
        std::fs::write(&p, "{\"node_id\": \"a\", \"fanout\": 4}\n").unwrap();
        let c = load(Some(&p), true, &HashMap::new()).unwrap();
        assert_eq!(c.fanout, 4);
        std::fs::write(&p, "---\n\"node_id\": a\n").unwrap();
        assert!(load(Some(&p), true, &HashMap::new()).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("gossip-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yml");
        std::fs::write(&p, "node_id: a\nprobe_intervl_ms: 5\n").unwrap();
        let e = load(Some(&p), true, &HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("probe_intervl_ms"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn services_with_checks_from_the_file_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("gossip-cfg-checks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yml");
        std::fs::write(
            &p,
            "node_id: a\nnode_port: 7000\nservices:\n  - \"cache:6379\"\n  - name: web\n    port: 8080\n    tags: [v1]\n    checks:\n      - http: \"http://127.0.0.1:8080/healthz\"\n        interval: 5s\n        initial_status: passing\n  - name: api\n",
        )
        .unwrap();
        let c = load(
            Some(&p),
            true,
            &env(&[("SERVICE_CHECK_API", "tcp:127.0.0.1:7000 interval=2s")]),
        )
        .unwrap();
        let services = c.initial_services();
        assert_eq!(services.len(), 3);
        assert_eq!(services[1].tags, vec!["v1"]);
        assert_eq!(services[2].port, 7000, "no port: NODE_PORT");
        let checks = c.initial_checks();
        assert_eq!(checks["web"][0].interval, Duration::from_secs(5));
        assert_eq!(
            checks["web"][0].initial_status,
            crate::protocol::services::Health::Passing
        );
        assert_eq!(checks["api"][0].id, "service:api");
        assert!(!checks.contains_key("cache"));

        // Bad check definitions name where they are.
        std::fs::write(
            &p,
            "node_id: a\nservices:\n  - name: web\n    checks:\n      - http: \"http://x/\"\n        interval: fast\n",
        )
        .unwrap();
        let e = load(Some(&p), true, &HashMap::new()).unwrap_err();
        assert_eq!(e.key, "services[0]", "{e}");
        assert!(e.problem.contains("checks[0].interval"), "{e}");
        std::fs::write(
            &p,
            "node_id: a\nservices:\n  - name: web\n    colour: red\n",
        )
        .unwrap();
        let e = load(Some(&p), true, &HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        std::fs::remove_dir_all(&dir).ok();

        let e = load(
            None,
            false,
            &env(&[
                ("NODE_ID", "n"),
                ("SERVICES", "web"),
                ("SERVICE_CHECK_API", "ttl:5s"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.key, "SERVICE_CHECK_API");
        let e = load(
            None,
            false,
            &env(&[
                ("NODE_ID", "n"),
                ("SERVICES", "web"),
                ("SERVICE_CHECK_WEB", "ttl:1ms"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.key, "SERVICE_CHECK_WEB", "{e}");
        let c = load(
            None,
            false,
            &env(&[
                ("NODE_ID", "n"),
                ("SERVICES", "my-api:9000"),
                ("SERVICE_CHECK_MY_API", "http://127.0.0.1:9000/ ; ttl:30s"),
            ]),
        )
        .unwrap();
        assert_eq!(c.initial_checks()["my-api"].len(), 2);
    }
}
