//! The write side: Consul's registration body mapped onto Gossip's one
//! service and check model (`Service`, `CheckSpec` -> `resolve_all`), the
//! same `Register` message `PUT /v1/services` sends.
//!
//! Consul decodes bodies the way Go does: field names case-insensitively,
//! and snake_case aliases (`deregister_critical_service_after`). So keys are
//! folded (lowercase, no underscores) before they are read. Fields Gossip
//! cannot honour are refused with a 400 naming them (a script check that is
//! silently dropped would look healthy); fields that change nothing here
//! (`EnableTagOverride`, `Weights`, `Kind` left empty) are accepted.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::protocol::checks::{CheckSpec, MAX_CHECKS_PER_SERVICE};
use crate::protocol::services::{Health, Service};

/// Lowercase without underscores: `DeregisterCriticalServiceAfter` and
/// `deregister_critical_service_after` are one key.
fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn folded(obj: &Map<String, Value>) -> BTreeMap<String, (&str, &Value)> {
    obj.iter()
        .map(|(k, v)| (fold(k), (k.as_str(), v)))
        .collect()
}

fn string(field: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(format!("{field}: expected a string")),
    }
}

/// A Go duration: a string (`"10s"`) or a number of nanoseconds.
fn duration(field: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => n
            .as_u64()
            .map(|ns| Some(format!("{}ms", ns / 1_000_000)))
            .ok_or_else(|| format!("{field}: expected a duration")),
        _ => Err(format!("{field}: expected a duration such as \"10s\"")),
    }
}

const UNSUPPORTED_SERVICE: &[(&str, &str)] = &[
    ("kind", "Kind"),
    ("proxy", "Proxy"),
    ("connect", "Connect"),
    ("taggedaddresses", "TaggedAddresses"),
    ("socketpath", "SocketPath"),
];

const UNSUPPORTED_CHECK: &[(&str, &str)] = &[
    ("args", "Args (script checks)"),
    ("scriptargs", "ScriptArgs (script checks)"),
    ("script", "Script"),
    ("grpc", "GRPC"),
    ("h2ping", "H2PING"),
    ("udp", "UDP"),
    ("dockercontainerid", "DockerContainerID"),
    ("aliasservice", "AliasService"),
    ("aliasnode", "AliasNode"),
    ("osservice", "OSService"),
    ("body", "Body"),
    ("header", "Header"),
];

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(_) => false,
    }
}

/// One Consul check definition as a `CheckSpec`; `at` names it in errors
/// (`Check`, `Checks[1]`).
pub fn check_spec(at: &str, v: &Value) -> Result<CheckSpec, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object"))?;
    let f = folded(obj);
    for (key, name) in UNSUPPORTED_CHECK {
        if f.get(*key).is_some_and(|(_, v)| !empty(v)) {
            return Err(format!(
                "{at}.{name}: not supported by Gossip (HTTP GET, TCP and TTL checks are)"
            ));
        }
    }
    let field = |k: &str| f.get(k).map(|(_, v)| *v);
    let text = |k: &str, name: &str| -> Result<Option<String>, String> {
        field(k)
            .map(|v| string(&format!("{at}.{name}"), v))
            .transpose()
            .map(|s| s.filter(|s| !s.is_empty()))
    };
    let dur = |k: &str, name: &str| -> Result<Option<String>, String> {
        field(k)
            .map(|v| duration(&format!("{at}.{name}"), v))
            .transpose()
            .map(Option::flatten)
    };
    if let Some(m) = text("method", "Method")? {
        if !m.eq_ignore_ascii_case("GET") {
            return Err(format!("{at}.Method: only GET is supported, not {m:?}"));
        }
    }
    let count = |k: &str, name: &str| -> Result<Option<u32>, String> {
        match field(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0 && n <= 100) => {
                Ok(n.as_u64().map(|n| n as u32))
            }
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(None),
            Some(_) => Err(format!("{at}.{name}: expected a number from 0 to 100")),
        }
    };
    let initial_status = match text("status", "Status")?.as_deref() {
        None => None,
        Some("passing") => Some(Health::Passing),
        Some("warning") => Some(Health::Warning),
        Some("critical") => Some(Health::Critical),
        Some(other) => {
            return Err(format!(
                "{at}.Status: {other:?} is not passing, warning or critical"
            ))
        }
    };
    Ok(CheckSpec {
        id: text("checkid", "CheckID")?.or(text("id", "ID")?),
        name: text("name", "Name")?,
        http: text("http", "HTTP")?,
        tcp: text("tcp", "TCP")?,
        ttl: dur("ttl", "TTL")?,
        interval: dur("interval", "Interval")?,
        timeout: dur("timeout", "Timeout")?,
        deregister_critical_after: dur(
            "deregistercriticalserviceafter",
            "DeregisterCriticalServiceAfter",
        )?,
        success_before_passing: count("successbeforepassing", "SuccessBeforePassing")?,
        failures_before_critical: count("failuresbeforecritical", "FailuresBeforeCritical")?,
        initial_status,
    })
}

/// Consul's `PUT /v1/agent/service/register` body as a service and its
/// check specs (not yet resolved: the caller runs `resolve_all`).
pub fn service_from_consul(body: &Value) -> Result<(Service, Vec<CheckSpec>), String> {
    let obj = body
        .as_object()
        .ok_or("the body must be a JSON object (Consul's service definition)")?;
    let f = folded(obj);
    for (key, name) in UNSUPPORTED_SERVICE {
        if f.get(*key).is_some_and(|(_, v)| !empty(v)) {
            return Err(format!("{name}: not supported by Gossip"));
        }
    }
    let field = |k: &str| f.get(k).map(|(_, v)| *v);
    let name = field("name")
        .map(|v| string("Name", v))
        .transpose()?
        .unwrap_or_default();
    if name.is_empty() {
        return Err("Name: missing service name".into());
    }
    let mut svc = Service::new(&name, 0);
    svc.id = field("id")
        .map(|v| string("ID", v))
        .transpose()?
        .unwrap_or_default();
    if svc.id == svc.name {
        svc.id.clear();
    }
    svc.port = match field("port") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("Port: must be a number from 1 to 65535")?,
        Some(_) => return Err("Port: must be a number from 1 to 65535".into()),
    };
    svc.address = field("address")
        .map(|v| string("Address", v))
        .transpose()?
        .filter(|a| !a.is_empty());
    svc.tags = match field("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| string("Tags", t))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("Tags: expected a list of strings".into()),
    };
    svc.meta = match field("meta") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("Meta.{k}: values must be strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("Meta: expected an object of strings".into()),
    };
    let mut specs = Vec::new();
    if let Some(c) = field("check").filter(|c| !c.is_null()) {
        specs.push(check_spec("Check", c)?);
    }
    match field("checks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            if list.len() + specs.len() > MAX_CHECKS_PER_SERVICE {
                return Err(format!(
                    "Checks: at most {MAX_CHECKS_PER_SERVICE} per service"
                ));
            }
            for (i, c) in list.iter().enumerate() {
                specs.push(check_spec(&format!("Checks[{i}]"), c)?);
            }
        }
        Some(_) => return Err("Checks: expected a list of checks".into()),
    }
    Ok((svc, specs))
}

/// `PUT /v1/agent/check/update/{id}`'s body: `{"Status": ..., "Output": ...}`.
pub fn check_update(body: &Value) -> Result<(Health, Option<String>), String> {
    let obj = body.as_object().ok_or("the body must be a JSON object")?;
    let f = folded(obj);
    let status = match f.get("status").map(|(_, v)| *v) {
        Some(Value::String(s)) => match s.as_str() {
            "passing" => Health::Passing,
            "warning" => Health::Warning,
            "critical" => Health::Critical,
            other => return Err(format!("Invalid check status: {other:?}")),
        },
        _ => return Err("Status: one of passing, warning, critical is required".into()),
    };
    let output = match f.get("output").map(|(_, v)| *v) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("Output: expected a string".into()),
    };
    Ok((status, output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::checks::resolve_all;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn maps_a_consul_definition_with_checks() {
        let body = json!({
            "Name": "web", "ID": "web-2", "Port": 8080, "Address": "10.1.1.1",
            "Tags": ["v1"], "Meta": {"team": "core"}, "EnableTagOverride": false,
            "Check": {"HTTP": "http://127.0.0.1:8080/health", "Interval": "5s",
                      "Timeout": "1s", "DeregisterCriticalServiceAfter": "1m"},
            "Checks": [{"TTL": "30s", "CheckID": "beat"}, {"tcp": "127.0.0.1:8080", "interval": 2000000000u64}]
        });
        let (svc, specs) = service_from_consul(&body).unwrap();
        assert_eq!(svc.name, "web");
        assert_eq!(svc.id(), "web-2");
        assert_eq!(svc.port, 8080);
        assert_eq!(svc.address.as_deref(), Some("10.1.1.1"));
        assert_eq!(svc.meta["team"], "core");
        assert!(svc.validate().is_ok());
        let defs = resolve_all(svc.id(), &specs).unwrap();
        assert_eq!(defs.len(), 3);
        assert_eq!(defs[0].id, "service:web-2");
        assert_eq!(defs[0].interval, Duration::from_secs(5));
        assert_eq!(
            defs[0].deregister_critical_after,
            Some(Duration::from_secs(60))
        );
        assert_eq!(defs[1].id, "beat");
        assert_eq!(defs[2].interval, Duration::from_secs(2));
    }

    #[test]
    fn keys_are_read_as_go_reads_them() {
        // py-consul's Check.http() writes lowercase keys and Consul's
        // snake_case alias for the deregistration delay.
        let body = json!({"name": "api", "port": 9000,
            "check": {"http": "http://127.0.0.1:9000/", "interval": "10s",
                      "deregister_critical_service_after": "90s"}});
        let (svc, specs) = service_from_consul(&body).unwrap();
        assert_eq!(svc.id(), "api");
        assert_eq!(specs[0].deregister_critical_after.as_deref(), Some("90s"));
    }

    #[test]
    fn refuses_what_it_cannot_honour_and_names_the_field() {
        let cases = [
            (json!([1]), "JSON object"),
            (json!({"Port": 80}), "Name"),
            (json!({"Name": "web", "Port": 70000}), "Port"),
            (json!({"Name": "web", "Port": "80"}), "Port"),
            (json!({"Name": "web", "Tags": "a"}), "Tags"),
            (json!({"Name": "web", "Meta": {"a": 1}}), "Meta.a"),
            (
                json!({"Name": "web", "Connect": {"Native": true}}),
                "Connect",
            ),
            (
                json!({"Name": "web", "Check": {"Args": ["/bin/true"], "Interval": "5s"}}),
                "Check.Args",
            ),
            (
                json!({"Name": "web", "Checks": [{"TTL": "5s"}, {"GRPC": "x:1"}]}),
                "Checks[1].GRPC",
            ),
            (
                json!({"Name": "web", "Check": {"HTTP": "http://x/", "Method": "POST"}}),
                "Check.Method",
            ),
            (json!({"Name": "web", "Check": {"TTL": true}}), "Check.TTL"),
        ];
        for (body, want) in cases {
            let e = service_from_consul(&body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn check_update_bodies() {
        assert_eq!(
            check_update(&json!({"Status": "warning", "Output": "slow"})).unwrap(),
            (Health::Warning, Some("slow".into()))
        );
        assert!(check_update(&json!({"Status": "maintenance"})).is_err());
        assert!(check_update(&json!({})).is_err());
        assert!(check_update(&json!("passing")).is_err());
    }
}
