//! Health checks: how one is declared, as plain data.
//!
//! A check belongs to one service instance on the node that owns it, and is
//! run by that node's agent (never by others). It is declared in three
//! forms that all end up as one [`CheckDef`]:
//! * JSON ([`CheckSpec`]): the `checks` array of `PUT /v1/services`, and
//!   config.yml's `services:` entries; durations as `"10s"`, `"500ms"`, `"1m"`;
//! * the environment (`SERVICE_CHECK_<NAME>=...`, see `config.rs`);
//! * the Consul face's `Check`/`Checks` (`api/consul`), mapped onto `CheckSpec`.
//!
//! Only the instance's resulting [`Health`] travels in gossip (inside its
//! `Service`); a check's output stays on its node.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::services::Health;

/// Bounds on a check definition.
pub const MAX_CHECKS_PER_SERVICE: usize = 8;
pub const MAX_TARGET_LEN: usize = 512;
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// GET this URL: 2xx passing, 429 warning, anything else critical.
    Http(String),
    /// Connect to this `host:port`: connected is passing.
    Tcp(String),
    /// The application reports; critical when `ttl` passes with no report.
    Ttl(#[serde(with = "millis")] Duration),
}

/// One check, validated and with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    /// Unique on this node. Defaults to `service:<service id>`, with `:2`,
    /// `:3` ... for a service's further checks (Consul's naming).
    pub id: String,
    pub name: String,
    /// The service instance (its id) this check belongs to.
    pub service_id: String,
    pub kind: CheckKind,
    #[serde(with = "millis")]
    pub interval: Duration,
    #[serde(with = "millis")]
    pub timeout: Duration,
    #[serde(with = "opt_millis", default)]
    pub deregister_critical_after: Option<Duration>,
    pub success_before_passing: u32,
    pub failures_before_critical: u32,
    /// The status before the first result: `critical` unless declared.
    pub initial_status: Health,
}

/// A check as written in JSON (API bodies, config.yml). Exactly one of
/// `http`, `tcp`, `ttl` is given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_critical_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_before_passing: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_before_critical: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_status: Option<Health>,
}

/// Parses a duration as Go and Consul write them: `"10s"`, `"500ms"`,
/// `"1m30s"`, `"2h"`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration (examples: \"10s\", \"500ms\", \"1m30s\")");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(ms) = t.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let secs = value * scale;
        if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
            return Err(format!("{text:?} is longer than 7 days"));
        }
        total += Duration::from_secs_f64(secs);
    }
    Ok(total)
}

fn duration_field(
    field: &str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| format!("{field}: {e}")),
    }
}

impl CheckSpec {
    /// Validates the spec and fills in the defaults. `index` is the check's
    /// position among its service's checks (0 for the first). Errors name
    /// the field, as `checks[i].interval: ...` once the caller prefixes it.
    pub fn resolve(&self, service_id: &str, index: usize) -> Result<CheckDef, String> {
        let kinds = [&self.http, &self.tcp, &self.ttl]
            .iter()
            .filter(|k| k.is_some())
            .count();
        if kinds != 1 {
            return Err("exactly one of http, tcp and ttl must be given".into());
        }
        let kind = if let Some(url) = &self.http {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() > MAX_TARGET_LEN
            {
                return Err(format!(
                    "http: {url:?} must be an http:// URL of at most {MAX_TARGET_LEN} bytes"
                ));
            }
            if url.starts_with("https://") {
                return Err(
                    "http: https URLs are not supported (no TLS client in the agent)".into(),
                );
            }
            parse_http_url(url).map_err(|e| format!("http: {e}"))?;
            CheckKind::Http(url.clone())
        } else if let Some(addr) = &self.tcp {
            let ok = addr.len() <= MAX_TARGET_LEN
                && addr
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(format!("tcp: {addr:?} must be host:port"));
            }
            CheckKind::Tcp(addr.clone())
        } else {
            let ttl = duration_field("ttl", &self.ttl, Duration::ZERO)?;
            if ttl < MIN_INTERVAL {
                return Err(format!(
                    "ttl: must be at least {} ms",
                    MIN_INTERVAL.as_millis()
                ));
            }
            CheckKind::Ttl(ttl)
        };
        let interval = duration_field("interval", &self.interval, DEFAULT_INTERVAL)?;
        if interval < MIN_INTERVAL {
            return Err(format!(
                "interval: must be at least {} ms",
                MIN_INTERVAL.as_millis()
            ));
        }
        let timeout = duration_field("timeout", &self.timeout, DEFAULT_TIMEOUT.min(interval))?;
        if timeout.is_zero() {
            return Err("timeout: must be more than 0".into());
        }
        let deregister_critical_after = match &self.deregister_critical_after {
            None => None,
            Some(_) => Some(duration_field(
                "deregister_critical_after",
                &self.deregister_critical_after,
                Duration::ZERO,
            )?),
        };
        let threshold = |field: &str, v: Option<u32>| match v {
            None => Ok(1),
            Some(n @ 1..=100) => Ok(n),
            Some(n) => Err(format!("{field}: {n} is not between 1 and 100")),
        };
        let id = match &self.id {
            Some(id) => {
                super::services::validate_id(id).map_err(|e| format!("id: {e}"))?;
                if id.is_empty() {
                    return Err("id: must not be empty".into());
                }
                id.clone()
            }
            None if index == 0 => format!("service:{service_id}"),
            None => format!("service:{service_id}:{}", index + 1),
        };
        let name = match &self.name {
            Some(n) if n.len() > 128 || n.chars().any(|c| c.is_control()) => {
                return Err("name: at most 128 printable characters".into())
            }
            Some(n) => n.clone(),
            None => format!("Service '{service_id}' check"),
        };
        Ok(CheckDef {
            id,
            name,
            service_id: service_id.to_string(),
            kind,
            interval,
            timeout,
            deregister_critical_after,
            success_before_passing: threshold(
                "success_before_passing",
                self.success_before_passing,
            )?,
            failures_before_critical: threshold(
                "failures_before_critical",
                self.failures_before_critical,
            )?,
            initial_status: self.initial_status.unwrap_or(Health::Critical),
        })
    }
}

/// Resolves a service's checks; the error names `checks[i].field`.
pub fn resolve_all(service_id: &str, specs: &[CheckSpec]) -> Result<Vec<CheckDef>, String> {
    if specs.len() > MAX_CHECKS_PER_SERVICE {
        return Err(format!(
            "checks: at most {MAX_CHECKS_PER_SERVICE} per service, got {}",
            specs.len()
        ));
    }
    let defs = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.resolve(service_id, i)
                .map_err(|e| format!("checks[{i}].{e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, d) in defs.iter().enumerate() {
        if defs[..i].iter().any(|o| o.id == d.id) {
            return Err(format!("checks[{i}].id: {:?} is used twice", d.id));
        }
    }
    Ok(defs)
}

/// The state of one check on the node that runs it (served by its API,
/// never gossiped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    pub def: CheckDef,
    pub status: Health,
    /// The last result's output (an HTTP status line and body excerpt, a
    /// connection error, a TTL note), truncated to `MAX_OUTPUT` bytes.
    pub output: String,
}

/// Bytes of a check's output kept.
pub const MAX_OUTPUT: usize = 4096;

/// Parses the environment's form of a service's checks (the value of
/// `SERVICE_CHECK_<NAME>`): checks separated by `;`, each a target then
/// `key=value` options separated by spaces:
///
/// ```text
/// http://127.0.0.1:8080/healthz interval=5s timeout=1s failures_before_critical=2
/// tcp:127.0.0.1:5432 interval=10s; ttl:30s deregister_critical_after=10m
/// ```
///
/// The keys are [`CheckSpec`]'s fields (`id`, `name`, `interval`, `timeout`,
/// `deregister_critical_after`, `success_before_passing`,
/// `failures_before_critical`, `initial_status`).
pub fn parse_check_line(text: &str) -> Result<Vec<CheckSpec>, String> {
    let mut out = Vec::new();
    for one in text.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let mut words = one.split_whitespace();
        let target = words.next().unwrap_or_default();
        let mut spec = CheckSpec::default();
        if target.starts_with("http://") || target.starts_with("https://") {
            spec.http = Some(target.to_string());
        } else if let Some(addr) = target
            .strip_prefix("tcp://")
            .or_else(|| target.strip_prefix("tcp:"))
        {
            spec.tcp = Some(addr.to_string());
        } else if let Some(ttl) = target.strip_prefix("ttl:") {
            spec.ttl = Some(ttl.to_string());
        } else {
            return Err(format!(
                "{target:?} must be http://..., tcp:HOST:PORT or ttl:DURATION"
            ));
        }
        for word in words {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| format!("{word:?} must be key=value"))?;
            let count = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| format!("{k}: {v:?} is not a whole number"))
            };
            match k {
                "id" => spec.id = Some(v.into()),
                "name" => spec.name = Some(v.into()),
                "interval" => spec.interval = Some(v.into()),
                "timeout" => spec.timeout = Some(v.into()),
                "deregister_critical_after" => spec.deregister_critical_after = Some(v.into()),
                "success_before_passing" => spec.success_before_passing = Some(count(v)?),
                "failures_before_critical" => spec.failures_before_critical = Some(count(v)?),
                "initial_status" => {
                    spec.initial_status = Some(match v {
                        "passing" => Health::Passing,
                        "warning" => Health::Warning,
                        "critical" => Health::Critical,
                        _ => {
                            return Err(format!(
                                "initial_status: {v:?} is not passing, warning or critical"
                            ))
                        }
                    })
                }
                other => return Err(format!("{other:?} is not a check option")),
            }
        }
        out.push(spec);
    }
    Ok(out)
}

/// Consul's threshold counters for one interval check (`StatusHandler`).
/// Both counters start at their thresholds, so the first result after a
/// registration counts at once; after that, `success_before_passing`
/// consecutive passing (or warning) results are needed to leave critical,
/// and `failures_before_critical` consecutive failures to enter it. A
/// result that does not reach its threshold changes only the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub status: Health,
    successes: u32,
    failures: u32,
    success_before_passing: u32,
    failures_before_critical: u32,
}

impl Tally {
    pub fn new(def: &CheckDef) -> Self {
        Tally {
            status: def.initial_status,
            successes: def.success_before_passing,
            failures: def.failures_before_critical,
            success_before_passing: def.success_before_passing,
            failures_before_critical: def.failures_before_critical,
        }
    }

    /// Counts one raw result and returns the check's status after it.
    pub fn record(&mut self, result: Health) -> Health {
        if result == Health::Critical {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.failures >= self.failures_before_critical {
                self.status = Health::Critical;
            }
        } else {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.successes >= self.success_before_passing {
                self.status = result;
            }
        }
        self.status
    }
}

/// The health of one HTTP answer: 2xx passing, 429 warning, else critical.
pub fn http_health(code: u16) -> Health {
    match code {
        200..=299 => Health::Passing,
        429 => Health::Warning,
        _ => Health::Critical,
    }
}

/// An `http://` check URL split for a plain HTTP/1.1 GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    /// `host:port`, to connect to.
    pub authority: String,
    /// The `Host` header: the host, with the port unless it is 80.
    pub host_header: String,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

/// Splits `http://host[:port][/path]`. Refuses what a minimal client
/// cannot send safely (user info, spaces, control characters).
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    if rest.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("{url:?} contains spaces or control characters"));
    }
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if auth.is_empty() || auth.contains('@') {
        return Err(format!("{url:?} must name a host (and no user)"));
    }
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed ["))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => return Err(format!("{url:?}: bad port")),
        };
        (format!("[{h}]"), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (auth.to_string(), None),
        }
    };
    let port: u16 = match port {
        None => 80,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{url:?}: port must be 1 to 65535"))?,
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{url:?} must name a host"));
    }
    Ok(HttpTarget {
        authority: format!("{host}:{port}"),
        host_header: if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        },
        path,
    })
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`).
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn truncate_output(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// An instance's health: the worst of its checks, `passing` with none.
pub fn worst(statuses: impl IntoIterator<Item = Health>) -> Health {
    statuses.into_iter().max().unwrap_or(Health::Passing)
}

/// Whether a check that has been critical since `since` has been so for
/// `after` (its `deregister_critical_after`) at `now`.
pub fn critical_too_long<T: Ord + Copy + std::ops::Sub<Output = Duration>>(
    since: Option<T>,
    now: T,
    after: Option<Duration>,
) -> bool {
    match (since, after) {
        (Some(since), Some(after)) => now >= since && now - since >= after,
        _ => false,
    }
}

/// The status a TTL report sets: `pass`, `warn` or `fail` (also Consul's
/// `passing`, `warning`, `critical`).
pub fn parse_ttl_verb(verb: &str) -> Result<Health, String> {
    match verb {
        "pass" | "passing" => Ok(Health::Passing),
        "warn" | "warning" => Ok(Health::Warning),
        "fail" | "critical" => Ok(Health::Critical),
        other => Err(format!("{other:?} is not pass, warn or fail")),
    }
}

/// Longest note a TTL report may carry (it becomes the check's output).
pub const MAX_NOTE: usize = MAX_OUTPUT;

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_form() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        for bad in ["", "s", "10x", "-1s", "1e300s", "ms10"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spec_resolves_with_defaults_and_names_bad_fields() {
        let spec = CheckSpec {
            http: Some("http://127.0.0.1:8080/healthz".into()),
            interval: Some("5s".into()),
            ..Default::default()
        };
        let d = spec.resolve("web", 0).unwrap();
        assert_eq!(d.id, "service:web");
        assert_eq!(d.interval, Duration::from_secs(5));
        assert_eq!(d.timeout, Duration::from_secs(5));
        assert_eq!(d.initial_status, Health::Critical);
        let bad = CheckSpec {
            tcp: Some("nohost".into()),
            ..Default::default()
        };
        let e = resolve_all("web", &[spec.clone(), bad]).unwrap_err();
        assert!(e.starts_with("checks[1].tcp:"), "{e}");
        let two = CheckSpec {
            ttl: Some("30s".into()),
            http: Some("http://x/".into()),
            ..Default::default()
        };
        assert!(two.resolve("web", 0).unwrap_err().contains("exactly one"));
        let e = resolve_all(
            "web",
            &[CheckSpec {
                ttl: Some("30s".into()),
                interval: Some("fast".into()),
                ..Default::default()
            }],
        )
        .unwrap_err();
        assert!(e.starts_with("checks[0].interval:"), "{e}");
        assert_eq!(
            resolve_all("web", &[spec.clone(), spec]).unwrap()[1].id,
            "service:web:2"
        );
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let e = serde_json::from_str::<CheckSpec>(r#"{"htp": "http://x/"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    fn def(success: u32, failures: u32, initial: Health) -> CheckDef {
        let mut d = CheckSpec {
            tcp: Some("127.0.0.1:1".into()),
            success_before_passing: Some(success),
            failures_before_critical: Some(failures),
            initial_status: Some(initial),
            ..Default::default()
        }
        .resolve("web", 0)
        .unwrap();
        d.interval = Duration::from_secs(1);
        d
    }

    #[test]
    fn the_first_result_counts_at_once() {
        let mut t = Tally::new(&def(3, 3, Health::Critical));
        assert_eq!(t.status, Health::Critical);
        assert_eq!(t.record(Health::Passing), Health::Passing);
        let mut t = Tally::new(&def(3, 3, Health::Passing));
        assert_eq!(t.record(Health::Critical), Health::Critical);
    }

    #[test]
    fn thresholds_stop_flapping() {
        let mut t = Tally::new(&def(2, 3, Health::Passing));
        t.record(Health::Passing);
        // Two failures in a row, then a success: never critical.
        for r in [Health::Critical, Health::Critical, Health::Passing] {
            assert_eq!(t.record(r), Health::Passing, "{r}");
        }
        for r in [Health::Critical, Health::Critical, Health::Passing] {
            assert_eq!(t.record(r), Health::Passing);
        }
        // Three in a row: critical.
        assert_eq!(t.record(Health::Critical), Health::Passing);
        assert_eq!(t.record(Health::Critical), Health::Passing);
        assert_eq!(t.record(Health::Critical), Health::Critical);
        // One success is not enough to pass again, two are.
        assert_eq!(t.record(Health::Passing), Health::Critical);
        assert_eq!(t.record(Health::Critical), Health::Critical);
        assert_eq!(t.record(Health::Passing), Health::Critical);
        assert_eq!(t.record(Health::Warning), Health::Warning);
    }

    #[test]
    fn with_thresholds_of_one_every_result_counts() {
        let mut t = Tally::new(&def(1, 1, Health::Critical));
        for r in [
            Health::Passing,
            Health::Critical,
            Health::Warning,
            Health::Passing,
        ] {
            assert_eq!(t.record(r), r);
        }
    }

    #[test]
    fn http_codes_map_to_health() {
        assert_eq!(http_health(200), Health::Passing);
        assert_eq!(http_health(204), Health::Passing);
        assert_eq!(http_health(429), Health::Warning);
        for c in [199, 301, 404, 500, 503] {
            assert_eq!(http_health(c), Health::Critical, "{c}");
        }
    }

    #[test]
    fn urls_split_for_a_plain_get() {
        let t = parse_http_url("http://127.0.0.1:8080/healthz?x=1").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        assert_eq!(t.path, "/healthz?x=1");
        let t = parse_http_url("http://web").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("web:80", "/"));
        assert_eq!(t.host_header, "web");
        let t = parse_http_url("http://[::1]:9000?q").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("[::1]:9000", "/?q")
        );
        for bad in [
            "https://x/",
            "http://",
            "http://u@x/",
            "http://x:0/",
            "http://x:99999/",
            "http://x/a b",
            "http://x/\r\nHost: y",
            "http://[::1/",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines_parse_or_not() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Busy\r\nX: y"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 429\r\n"), Some(429));
        for bad in [
            &b""[..],
            b"SSH-2.0",
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 999 X",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_status_line(bad), None);
        }
    }

    #[test]
    fn output_is_cut_on_a_char_boundary() {
        assert_eq!(truncate_output("abc", 10), "abc");
        assert_eq!(truncate_output("ééé", 3), "é");
        assert_eq!(
            truncate_output(&"x".repeat(5000), MAX_OUTPUT).len(),
            MAX_OUTPUT
        );
    }

    #[test]
    fn worst_of_checks_and_deregistration_deadline() {
        assert_eq!(worst([]), Health::Passing);
        assert_eq!(worst([Health::Passing, Health::Warning]), Health::Warning);
        assert_eq!(worst([Health::Critical, Health::Warning]), Health::Critical);
        let s = Duration::from_secs;
        assert!(!critical_too_long(None, s(100), Some(s(10))));
        assert!(!critical_too_long(Some(s(95)), s(100), Some(s(10))));
        assert!(critical_too_long(Some(s(90)), s(100), Some(s(10))));
        assert!(!critical_too_long(Some(s(0)), s(100), None));
    }

    #[test]
    fn ttl_verbs() {
        assert_eq!(parse_ttl_verb("pass"), Ok(Health::Passing));
        assert_eq!(parse_ttl_verb("warn"), Ok(Health::Warning));
        assert_eq!(parse_ttl_verb("fail"), Ok(Health::Critical));
        assert!(parse_ttl_verb("ok").is_err());
    }

    #[test]
    fn the_environment_form_parses() {
        let c = parse_check_line(
            "http://127.0.0.1:8080/healthz interval=1s failures_before_critical=2; tcp:db:5432 ; ttl:30s initial_status=passing",
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].http.as_deref(), Some("http://127.0.0.1:8080/healthz"));
        assert_eq!(c[0].interval.as_deref(), Some("1s"));
        assert_eq!(c[0].failures_before_critical, Some(2));
        assert_eq!(c[1].tcp.as_deref(), Some("db:5432"));
        assert_eq!(c[2].initial_status, Some(Health::Passing));
        let defs = resolve_all("web", &c).unwrap();
        assert_eq!(defs[2].kind, CheckKind::Ttl(Duration::from_secs(30)));
        for bad in [
            "ftp://x/",
            "http://x/ interval",
            "http://x/ color=red",
            "tcp:x:1 failures_before_critical=two",
            "ttl:5s initial_status=fine",
        ] {
            assert!(parse_check_line(bad).is_err(), "{bad}");
        }
        assert!(parse_check_line("").unwrap().is_empty());
    }
}
