//! Identity in containers (issue 16, item 2): which address `gossip agent`
//! advertises when NODE_IP is unset or names an interface, and which name it
//! takes when NODE_ID is unset. Real agents on 127.0.0.1; every one binds
//! loopback, and none sends to another host (a lone agent without seeds and
//! without broadcast sends nothing at all).

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One agent started with exactly `env` on top of a loopback-only base, and
/// the variables in `unset` removed. Killed by PID and reaped on drop.
struct Agent {
    child: Child,
    api: String,
    port: u16,
    log: std::path::PathBuf,
}

impl Agent {
    fn start(name: &str, env: &[(&str, String)], unset: &[&str]) -> Agent {
        let port = free_base_port(1);
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("loopback")
            .join("identity");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(GOSSIP);
        for k in AGENT_ENV_KEYS {
            cmd.env_remove(k);
        }
        let api = format!("127.0.0.1:{}", port + API_OFFSET);
        cmd.arg("agent")
            .current_dir(&dir)
            .env("NODE_ID", name)
            .env("NODE_PORT", port.to_string())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("API_ADDR", &api)
            .env("CLUSTER_NAME", "it-identity")
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let child = cmd.spawn().expect("spawn gossip agent");
        Agent {
            child,
            api,
            port,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Member `id` in the agent's `/v1/members`, once its API answers.
    fn member(&mut self, id: &str) -> Member {
        let mut found = None;
        wait_for(
            "the agent's API to list the member",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || {
                if let Ok(Some(st)) = self.child.try_wait() {
                    panic!("agent exited with {st}; log:\n{}", self.log());
                }
                let members = members_at(&self.api).ok_or("no answer")?;
                found = members.get(id).cloned();
                found
                    .as_ref()
                    .map(|_| ())
                    .ok_or(format!("{id} not in {members:?}"))
            },
        );
        found.unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What memberlist would pick, read from iproute2 rather than from the
/// agent's own code: the first non-loopback private IPv4 address, else
/// 127.0.0.1.
fn first_private_address() -> Ipv4Addr {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "up"])
        .output()
        .expect("this test reads the interfaces with `ip` (Debian's iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
            cidr.split('/').next()?.parse::<Ipv4Addr>().ok()
        })
        .find(|ip| {
            let o = ip.octets();
            !ip.is_loopback() && (ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1])))
        })
        .unwrap_or(Ipv4Addr::LOCALHOST)
}

#[test]
fn node_ip_unset_advertises_the_interface_that_reaches_the_seed() {
    let _g = serial();
    let mut seed = Agent::start("seed", &[("NODE_IP", "127.0.0.1".into())], &[]);
    let seed_addr = seed.member("seed").addr;
    let mut b = Agent::start(
        "b",
        &[("SEED_NODES", format!("localhost:{}", seed.port))],
        &["NODE_IP"],
    );
    assert_eq!(b.member("b").addr, format!("127.0.0.1:{}", b.port));
    let log = b.log();
    assert!(
        log.contains(&format!(
            "advertising 127.0.0.1:{} (NODE_IP unset: the address of the interface that reaches seed localhost:{})",
            b.port, seed.port
        )),
        "the choice is logged; log:\n{log}"
    );
    // And it is the right address: the seed lists b alive at it.
    wait_for(
        "the seed to list b alive",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let m = members_at(&seed.api).ok_or("no answer")?;
            match m.get("b") {
                Some(b) if b.state == "alive" => Ok(()),
                other => Err(format!("b is {other:?}; seed at {seed_addr}")),
            }
        },
    );
}

#[test]
fn node_ip_unset_without_seeds_advertises_the_first_private_address() {
    let _g = serial();
    let expected = first_private_address();
    let mut a = Agent::start("lonely", &[], &["NODE_IP", "SEED_NODES"]);
    assert_eq!(a.member("lonely").addr, format!("{expected}:{}", a.port));
    let log = a.log();
    assert!(
        log.contains(&format!("advertising {expected}:{}", a.port)),
        "the choice is logged; log:\n{log}"
    );
}

#[test]
fn node_ip_may_name_an_interface() {
    let _g = serial();
    let mut a = Agent::start("iface", &[("NODE_IP", "lo".into())], &["SEED_NODES"]);
    assert_eq!(a.member("iface").addr, format!("127.0.0.1:{}", a.port));
    assert!(
        a.log().contains("NODE_IP names interface lo"),
        "{}",
        a.log()
    );
}

#[test]
fn node_ip_naming_nothing_is_a_config_error() {
    let _g = serial();
    let mut a = Agent::start(
        "nothing",
        &[("NODE_IP", "no-such-interface.invalid".into())],
        &["SEED_NODES"],
    );
    let st = wait_exit(&mut a.child);
    assert_eq!(st, Some(2), "log:\n{}", a.log());
    let log = a.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line:\n{log}");
    assert!(
        lines[0].contains("NODE_IP") && lines[0].contains("no-such-interface.invalid"),
        "{log}"
    );
}

#[test]
fn node_id_unset_is_the_host_name() {
    let _g = serial();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the host name")
        .trim()
        .to_string();
    let mut a = Agent::start(
        "unused",
        &[("NODE_IP", "127.0.0.1".into())],
        &["NODE_ID", "SEED_NODES"],
    );
    assert_eq!(a.member(&host).id, host);
}

fn wait_exit(child: &mut Child) -> Option<i32> {
    for _ in 0..200 {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
