//! README.md cannot drift from the code (issue 18): this test reads the
//! README's quick start and configuration examples out of README.md itself,
//! runs them as written on loopback, and checks that they print what the
//! README says they print.
//!
//! Adapted, and only these: `cargo run --release -- demo` runs the binary
//! under test (`gossip demo`: the same program, without a second release
//! build), and `cargo build --release` is left out (cargo built the binary
//! under test; `./target/release/gossip` is a link to it). The agents the
//! quick start starts are stopped by its own `kill %1 %2 %3`; the test then
//! waits for them, and kills the whole process group if anything is left.
//!
//! The quick start uses fixed ports (8001-8003, 9001-9003). Where `unshare`
//! can make a network namespace (as an unprivileged user), the commands run
//! in one of their own, on its loopback, so that nothing else on the machine
//! can hold those ports; elsewhere they run on the host's 127.0.0.1 and the
//! test fails with a clear message if a port is taken.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fenced code block: its info string and its lines.
#[derive(Debug, Clone)]
struct Block {
    lang: String,
    lines: Vec<String>,
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md")
}

/// The text of the section that starts with `heading`, up to the next `## `.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

fn blocks(section: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in section.lines() {
        if let Some(info) = line.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => {
                    current = Some(Block {
                        lang: info.trim().to_string(),
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(b) = current.as_mut() {
            b.lines.push(line.to_string());
        }
    }
    out
}

/// A scratch directory where `./target/release/gossip` and `gossip` on
/// PATH are the binary under test.
fn workdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("readme")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("target/release")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::os::unix::fs::symlink(GOSSIP, dir.join("target/release/gossip")).unwrap();
    std::os::unix::fs::symlink(GOSSIP, dir.join("bin/gossip")).unwrap();
    dir
}

/// `bash -c script` in `dir`, in its own process group, with the agent's
/// variables cleared and `dir/bin` first on PATH; `netns` runs it in a new
/// network namespace. Returns (exit code, stdout, stderr).
fn run_script(dir: &Path, script: &str, netns: bool, limit: Duration) -> (i32, String, String) {
    let mut cmd = if netns {
        let mut c = Command::new("unshare");
        c.args([
            "-rn",
            "bash",
            "-c",
            "ip link set lo up && exec bash -c \"$0\"",
        ]);
        c.arg(script);
        c
    } else {
        let mut c = Command::new("bash");
        c.arg("-c").arg(script);
        c
    };
    for k in AGENT_ENV_KEYS {
        cmd.env_remove(k);
    }
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().expect("start bash");
    let pgid = child.id();
    // Kills whatever is left of the group, on every way out of this function.
    struct Group(u32);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0)])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _group = Group(pgid);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the README commands did not finish within {limit:?}"))
        .expect("wait for bash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn netns_available() -> bool {
    Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Trailing spaces aside, line for line.
fn same_lines(got: &str, want: &[String]) -> bool {
    let got: Vec<&str> = got.lines().map(str::trim_end).collect();
    let want: Vec<&str> = want.iter().map(|l| l.trim_end()).collect();
    got == want
}

#[test]
fn quick_start_runs_as_written() {
    let _g = serial();
    let text = readme();
    let quick = blocks(section(&text, "## Quick start"));
    assert!(quick.len() >= 3, "quick start blocks: {quick:?}");

    // 1. The demo (adapted: the binary, not `cargo run --release --`).
    assert_eq!(quick[0].lines, vec!["cargo run --release -- demo"]);
    let dir = workdir("demo");
    let started = Instant::now();
    let (code, out, err) = run_script(&dir, "gossip demo", false, Duration::from_secs(90));
    assert_eq!(code, 0, "gossip demo failed:\n{out}\n{err}");
    for expected in [
        "converged: every node sees all 7 alive",
        "== demo finished ==",
    ] {
        assert!(
            out.contains(expected),
            "the demo did not print {expected:?}:\n{out}"
        );
    }
    assert!(
        err.trim().is_empty(),
        "the demo's narration should stand alone, but stderr has:\n{err}"
    );
    eprintln!("demo: {:?}", started.elapsed());

    // 2. Three agents and the CLI, verbatim but for `cargo build --release`.
    let script: Vec<&str> = quick[1].lines.iter().map(String::as_str).collect();
    assert_eq!(script[0], "cargo build --release");
    let body = script[1..].join("\n");
    assert!(
        body.contains("kill %1 %2 %3"),
        "the quick start must stop its agents"
    );
    let expected = &quick[2];
    assert_eq!(
        expected.lang, "text",
        "the block after the commands is their output"
    );
    let netns = netns_available();
    if !netns {
        for port in [8001, 8002, 8003] {
            assert!(
                std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
                "UDP port {port} is taken on this machine and `unshare -rn` is not \
                 available: the README's quick start cannot run here"
            );
        }
    }
    let dir = workdir("agents");
    let (code, out, err) = run_script(
        &dir,
        &format!("set -e\n{body}\nwait\n"),
        netns,
        Duration::from_secs(60),
    );
    let logs: String = (1..=3)
        .map(|i| {
            let log = std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default();
            format!("--- node{i}.log\n{log}")
        })
        .collect();
    assert_eq!(
        code, 0,
        "the quick start failed (netns: {netns}):\n{out}\n{err}\n{logs}"
    );
    assert!(
        same_lines(&out, &expected.lines),
        "the quick start printed\n{out}\nbut README.md says\n{}\n{logs}",
        expected.lines.join("\n")
    );
    for i in 1..=3 {
        let log = std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap();
        assert!(
            log.contains("left"),
            "node{i} did not leave gracefully:\n{log}"
        );
    }
}

#[test]
fn configuration_errors_are_as_written() {
    let _g = serial();
    let text = readme();
    let config = blocks(section(&text, "## Configuration"));
    let console: Vec<&Block> = config.iter().filter(|b| b.lang == "console").collect();
    assert!(
        !console.is_empty(),
        "the configuration section has no console example"
    );
    let mut ran = 0;
    for block in console {
        // `$ command` lines, each followed by what it prints.
        let mut steps: Vec<(String, Vec<String>)> = Vec::new();
        for line in &block.lines {
            match line.strip_prefix("$ ") {
                Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
                None => steps
                    .last_mut()
                    .expect("output before a command")
                    .1
                    .push(line.clone()),
            }
        }
        let dir = workdir("config");
        for (cmd, want) in steps {
            let (code, out, err) = run_script(&dir, &cmd, false, Duration::from_secs(20));
            let printed = format!("{out}{err}");
            assert!(
                same_lines(&printed, &want),
                "`{cmd}` printed\n{printed}\nbut README.md says\n{}",
                want.join("\n")
            );
            if cmd.contains("gossip agent") {
                assert_eq!(code, 2, "`{cmd}` should exit 2 on a bad configuration");
            }
            ran += 1;
        }
    }
    assert!(ran >= 2, "ran {ran} configuration examples");
}

/// With `RUST_LOG=info` the demo interleaves seven nodes' logs: every
/// membership line names the node that wrote it (issue 18, item 6).
#[test]
fn the_demos_node_logs_name_their_node() {
    let _g = serial();
    let dir = workdir("demo-logs");
    let (code, out, err) = run_script(
        &dir,
        "RUST_LOG=info gossip demo",
        false,
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "gossip demo failed:\n{out}\n{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": member ") || l.contains("joined the cluster"))
        .collect();
    assert!(lines.len() >= 7, "too few membership lines:\n{err}");
    for l in lines {
        let msg = l.split("] ").nth(1).unwrap_or(l);
        let writer = msg.split(':').next().unwrap_or("");
        assert!(
            writer.starts_with("node") && !writer.contains(' '),
            "this line does not say which node wrote it: {l}"
        );
    }
}
