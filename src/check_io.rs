//! The network side of a health check: one HTTP/1.1 GET or one TCP connect,
//! under the check's timeout, turned into a raw result and an output line.
//! No TLS, no redirects, no keep-alive: a check is one short connection, so
//! a thousand of them cost a thousand connects per interval and nothing else.
//! The decisions (what a status code means, thresholds) are in
//! `protocol::checks`.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::checks::{
    http_health, parse_http_url, parse_status_line, truncate_output, CheckKind, MAX_OUTPUT,
};
use crate::protocol::services::Health;

/// Bytes read of an HTTP answer at most (head and the start of the body).
const MAX_READ: usize = 16 * 1024;

/// Runs one http or tcp check. A TTL check has nothing to run.
pub async fn run(kind: &CheckKind, timeout: Duration) -> (Health, String) {
    let work = async {
        match kind {
            CheckKind::Http(url) => http_get(url).await,
            CheckKind::Tcp(addr) => tcp_connect(addr).await,
            CheckKind::Ttl(_) => (Health::Critical, "a TTL check is not run".into()),
        }
    };
    let (health, output) = match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => (
            Health::Critical,
            format!("no answer within the timeout of {} ms", timeout.as_millis()),
        ),
    };
    (health, truncate_output(&output, MAX_OUTPUT))
}

async fn tcp_connect(addr: &str) -> (Health, String) {
    match TcpStream::connect(addr).await {
        Ok(_) => (Health::Passing, format!("TCP connect {addr}: success")),
        Err(e) => (Health::Critical, format!("TCP connect {addr}: {e}")),
    }
}

async fn http_get(url: &str) -> (Health, String) {
    let target = match parse_http_url(url) {
        Ok(t) => t,
        Err(e) => return (Health::Critical, e),
    };
    let mut stream = match TcpStream::connect(&target.authority).await {
        Ok(s) => s,
        Err(e) => return (Health::Critical, format!("HTTP GET {url}: {e}")),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gossip-health-check\r\nAccept: text/plain, text/*, */*\r\nConnection: close\r\n\r\n",
        target.path, target.host_header
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return (Health::Critical, format!("HTTP GET {url}: {e}"));
    }
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while answer.len() < MAX_READ {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n.min(MAX_READ - answer.len())]),
            Err(e) if answer.is_empty() => {
                return (Health::Critical, format!("HTTP GET {url}: {e}"))
            }
            Err(_) => break,
        }
    }
    let Some(code) = parse_status_line(&answer) else {
        return (
            Health::Critical,
            format!("HTTP GET {url}: the answer is not HTTP/1.x"),
        );
    };
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| String::from_utf8_lossy(&answer[i + 4..]).into_owned())
        .unwrap_or_default();
    let line = String::from_utf8_lossy(answer.split(|&b| b == b'\n').next().unwrap_or(&[]))
        .trim_end()
        .to_string();
    (
        http_health(code),
        format!("HTTP GET {url}: {line} Output: {body}"),
    )
}
