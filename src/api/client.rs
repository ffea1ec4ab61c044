//! The CLI's side of the HTTP API: small blocking requests and the tables
//! that `gossip members` and `gossip services` print.

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

use super::MemberView;
use crate::config::default_api_addr;
use crate::protocol::services::Instance;

/// `--api`, else `$API_ADDR`, else `127.0.0.1:($NODE_PORT + 1000)`, else the
/// default port's API.
pub fn api_addr(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("API_ADDR").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| {
            let port = std::env::var("NODE_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(7946);
            default_api_addr(port).to_string()
        })
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build()
}

/// Performs a request and returns the JSON body, or a one-line error.
pub fn request(method: &str, api: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let url = format!("http://{api}{path}");
    let mut req = agent().request(method, &url);
    if let Ok(token) = std::env::var("API_TOKEN") {
        if !token.is_empty() {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
    }
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => r
            .into_json::<Value>()
            .map_err(|e| format!("bad answer from {url}: {e}")),
        Err(ureq::Error::Status(code, r)) => {
            let v: Value = r.into_json().unwrap_or(Value::Null);
            let msg = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no details");
            Err(format!("{method} {path} answered {code}: {msg}"))
        }
        Err(e) => Err(format!(
            "cannot reach the agent's API at {api} ({e}); is the agent running? \
             The address comes from --api, else $API_ADDR, else 127.0.0.1:($NODE_PORT + 1000)"
        )),
    }
}

/// Left-aligned columns, like `serf members`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:w$}", c, w = widths[i]))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn members_table(members: &[MemberView]) -> String {
    let mut ms: Vec<&MemberView> = members.iter().collect();
    ms.sort_by(|a, b| a.id.cmp(&b.id));
    let rows: Vec<Vec<String>> = ms
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.addr.clone(),
                m.state.to_string(),
                m.incarnation.to_string(),
            ]
        })
        .collect();
    table(&["Node", "Address", "Status", "Incarnation"], &rows)
}

pub fn services_table(services: &BTreeMap<String, Vec<Instance>>) -> String {
    let mut rows = Vec::new();
    for (name, instances) in services {
        for i in instances {
            rows.push(vec![
                name.clone(),
                i.node.clone(),
                format!("{}:{}", i.addr, i.port),
                i.state.to_string(),
                i.status.to_string(),
                i.tags.join(","),
            ]);
        }
    }
    table(
        &["Service", "Node", "Address", "Status", "Health", "Tags"],
        &rows,
    )
}

pub fn checks_table(checks: &[super::checks::CheckView]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let output: String = c
                .output
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            vec![
                c.id.clone(),
                c.service_id.clone(),
                c.kind.clone(),
                c.status.to_string(),
                output,
            ]
        })
        .collect();
    table(&["Check", "Service", "Type", "Status", "Output"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MemberState;

    #[test]
    fn members_table_is_aligned_and_sorted() {
        let ms = vec![
            MemberView {
                id: "node10".into(),
                addr: "127.0.0.1:8010".into(),
                state: MemberState::Suspect,
                incarnation: 2,
            },
            MemberView {
                id: "n2".into(),
                addr: "10.0.0.2:8002".into(),
                state: MemberState::Alive,
                incarnation: 0,
            },
        ];
        let t = members_table(&ms);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Node    Address         Status   Incarnation");
        assert_eq!(lines[1], "n2      10.0.0.2:8002   alive    0");
        assert_eq!(lines[2], "node10  127.0.0.1:8010  suspect  2");
    }
}
