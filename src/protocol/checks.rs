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
}
