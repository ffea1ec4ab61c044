//! The API's access rule and request rules against a real agent on 127.0.0.1:
//! the token is decided on the path the router routes (issue 12 item 4), and
//! every refusal is a JSON error that names the cause (issue 18 item 7).
//! Requests go out as raw bytes, so that no client library normalises the
//! odd paths before the agent sees them.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const TOKEN: &str = "s3cret-token-0123456789";

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// One HTTP/1.1 request written byte for byte, `Connection: close`.
fn raw(api: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(api).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn start(c: &mut Cluster) -> String {
    c.spawn_n(1);
    let api = c.nodes[0].api();
    wait_for(
        "the API",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            http_get(&api, "/healthz")
                .map(|_| ())
                .ok_or_else(|| "no answer".into())
        },
    );
    api
}

#[test]
fn the_token_is_checked_on_the_routed_path() {
    let _g = serial();
    let mut c = Cluster::new("access", 1).with_env("API_TOKEN", TOKEN);
    let api = start(&mut c);
    let bearer = format!("Bearer {TOKEN}");

    // Every spelling of the keyring that the router might serve needs the token.
    for target in [
        "/v1/keys",
        "/%761/keys",
        "/v1/%6Beys",
        "/%76%31/%6b%65%79%73",
        "//v1/keys",
        "/v1//keys",
        "/v1/./keys",
        "/v1/x/../keys",
        "/v1/keys/",
        "/V1/KEYS",
        "/v1/keys?x=1",
    ] {
        let r = raw(&api, "GET", target, &[], "");
        assert_eq!(r.status, 401, "GET {target} gave {} {}", r.status, r.body);
        assert!(r.error().contains("Bearer"), "{}", r.body);
        assert!(
            !r.body.contains("primary"),
            "GET {target} leaked the keyring"
        );
    }
    // With the token, the encoded form reaches the keyring: the router routes it.
    let r = raw(&api, "GET", "/%761/keys", &[("Authorization", &bearer)], "");
    assert_eq!(r.status, 200, "{}", r.body);

    // A percent-encoded leave must not make the node leave.
    for target in ["/%761/leave", "/v1/%6ceave", "/v1/leave"] {
        let r = raw(&api, "POST", target, &[], "");
        assert_eq!(r.status, 401, "POST {target}: {}", r.body);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!c.nodes[0].has_exited(), "the node left without the token");

    // Reads stay open, encoded or not; odd spellings of them are not open.
    for target in [
        "/v1/members",
        "/v1/%6Dembers",
        "/healthz",
        "/v1/services/web",
    ] {
        assert_eq!(raw(&api, "GET", target, &[], "").status, 200, "{target}");
    }
    for target in ["//v1/members", "/v1/members/", "/V1/members"] {
        assert_eq!(raw(&api, "GET", target, &[], "").status, 401, "{target}");
    }
    // Deny by default: an unknown route needs the token, then is a JSON 404.
    assert_eq!(raw(&api, "GET", "/v1/nothing", &[], "").status, 401);
    let r = raw(
        &api,
        "GET",
        "/v1/nothing",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(r.status, 404);
    assert!(r.error().contains("no such endpoint"), "{}", r.body);

    // A browser page of another origin cannot post, even with a token.
    let r = raw(
        &api,
        "PUT",
        "/v1/services",
        &[
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        r#"{"name": "evil", "port": 1}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn requests_are_strict_and_errors_name_the_cause() {
    let _g = serial();
    let mut c = Cluster::new("strict", 1);
    let api = start(&mut c);
    let json_ct = [("Content-Type", "application/json")];

    // A wrong method: 405 with Allow and a JSON error.
    let r = raw(&api, "POST", "/v1/members", &[], "");
    assert_eq!(r.status, 405, "{}", r.body);
    assert!(r.headers.contains("allow: get\r\n"), "{}", r.headers);
    assert!(r.error().contains("allowed: GET"), "{}", r.body);
    let r = raw(&api, "PATCH", "/v1/services", &[], "");
    assert_eq!(r.status, 405);
    assert!(r.headers.contains("allow: get, put"), "{}", r.headers);

    // Unknown fields are refused with a hint.
    let r = raw(
        &api,
        "PUT",
        "/v1/services",
        &json_ct,
        r#"{"name": "a", "prot": 1}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("\"prot\""), "{}", r.body);
    assert!(r.error().contains("did you mean \"port\""), "{}", r.body);

    // The name is checked first, and the port is optional.
    let r = raw(&api, "PUT", "/v1/services", &json_ct, r#"{"name": ""}"#);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("service name"), "{}", r.body);

    // Not an object.
    let r = raw(&api, "PUT", "/v1/services", &json_ct, "[]");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("expected a JSON object"), "{}", r.body);
    assert!(!r.body.contains("elements"), "{}", r.body);

    // `curl -d` sends a form content type: the JSON body is still read; a
    // port left out is the agent's own NODE_PORT, as with SERVICES=web.
    let node_port: u16 = c.nodes[0]
        .udp_addr()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = raw(
        &api,
        "PUT",
        "/v1/services",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        r#"{"name": "foo"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["port"], node_port, "{}", r.body);
    let r = raw(
        &api,
        "PUT",
        "/v1/services",
        &[("Content-Type", "text/csv")],
        "{}",
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("application/json"), "{}", r.body);

    // Malformed query strings get a JSON error too.
    for target in ["/v1/events?since=abc", "/v1/events?since=-1"] {
        let r = raw(&api, "GET", target, &[], "");
        assert_eq!(r.status, 400, "{target}: {}", r.body);
        assert!(r.error().contains("query string"), "{}", r.body);
    }

    // The CLI leaves the port to the agent.
    let out = std::process::Command::new(GOSSIP)
        .args(["register", "bar", "--api", &api])
        .env_remove("NODE_PORT")
        .env_remove("API_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("registered bar on port {node_port}"));
}
