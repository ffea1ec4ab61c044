//! A bad configuration value stops `gossip agent` with exit code 2 and one
//! line on stderr naming the key (issue 2, item 7).

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `gossip agent` with `env` (on top of a valid base config) and return
/// (exit code, stderr). Kills it if it does not exit within 10 s.
fn run_agent(env: &[(&str, &str)], unset: &[&str]) -> (Option<i32>, String) {
    let base = free_base_port(1);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("loopback")
        .join("config");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(GOSSIP);
    for k in AGENT_ENV_KEYS {
        cmd.env_remove(k);
    }
    cmd.arg("agent")
        .current_dir(&dir)
        .env("NODE_ID", "bad1")
        .env("NODE_IP", "127.0.0.1")
        .env("NODE_PORT", base.to_string())
        .env("API_ADDR", format!("127.0.0.1:{}", base + API_OFFSET))
        .env("BIND_ADDR", format!("127.0.0.1:{base}"))
        .env("SEED_NODES", "")
        .env("CLUSTER_NAME", format!("it-config-{base}"))
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let stderr_path = dir.join(format!("stderr-{base}.txt"));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    let mut child = cmd.spawn().expect("spawn gossip agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    let status = status.unwrap_or_else(|| {
        panic!("agent with {env:?} (unset {unset:?}) still running after 10 s; stderr:\n{err}")
    });
    (status.code(), err)
}

fn assert_rejected(env: &[(&str, &str)], unset: &[&str], key: &str) {
    let (code, err) = run_agent(env, unset);
    assert_eq!(
        code,
        Some(2),
        "exit code for {env:?} (unset {unset:?}); stderr:\n{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr for {env:?} (unset {unset:?}), got:\n{err}"
    );
    assert!(
        lines[0].to_lowercase().contains(&key.to_lowercase()),
        "the error line for {env:?} (unset {unset:?}) does not name {key}: {}",
        lines[0]
    );
}

#[test]
fn port_out_of_range_is_rejected() {
    assert_rejected(&[("NODE_PORT", "70000")], &[], "NODE_PORT");
}

#[test]
fn port_not_a_number_is_rejected() {
    assert_rejected(&[("NODE_PORT", "notaport")], &[], "NODE_PORT");
}

#[test]
fn unparsable_seed_is_rejected() {
    assert_rejected(&[("SEED_NODES", "garbage::")], &[], "SEED_NODES");
}

#[test]
fn invalid_node_id_is_rejected() {
    // Unset, NODE_ID is the host name (tests/loopback_identity.rs).
    assert_rejected(&[("NODE_ID", "two words")], &[], "NODE_ID");
}

#[test]
fn bad_tunable_is_rejected() {
    assert_rejected(&[("PROBE_INTERVAL_MS", "soon")], &[], "PROBE_INTERVAL_MS");
}

#[test]
fn loss_fraction_out_of_range_is_rejected() {
    assert_rejected(&[("LOSS_IN", "1.5")], &[], "LOSS_IN");
}

/// Issue 12 item 8: values that used to start a broken node.
#[test]
fn values_outside_their_range_are_rejected() {
    assert_rejected(
        &[("SUSPICION_MAX_MULT", "1e300")],
        &[],
        "SUSPICION_MAX_MULT",
    );
    assert_rejected(&[("DEAD_RECLAIM_MS", "0")], &[], "DEAD_RECLAIM_MS");
    assert_rejected(&[("MAX_MEMBERS", "65536")], &[], "MAX_MEMBERS");
}
