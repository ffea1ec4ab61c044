//! The `gossip` command line.

use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;

use gossip::api::client::{self, api_addr};
use gossip::api::MemberView;

/// The `--api` flag's help, shared by every client command.
const API_HELP: &str =
    "The agent's HTTP API, host:port [default: $API_ADDR, else 127.0.0.1:($NODE_PORT + 1000)]";

#[derive(Parser)]
#[command(
    name = "gossip",
    version = gossip::VERSION,
    about = "Decentralized cluster membership, failure detection and service discovery over UDP gossip"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node (configured by config.yml and NODE_ID, NODE_IP, NODE_PORT, SEED_NODES, SERVICES, ...).
    Agent {
        /// Configuration file (default: ./config.yml if present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the members as the agent sees them.
    Members {
        #[arg(long, help = API_HELP)]
        api: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the services the cluster offers (all, or one by name), with each instance's health.
    Services {
        /// Only this service's instances.
        name: Option<String>,
        /// Only instances whose checks pass.
        #[arg(long)]
        passing: bool,
        #[arg(long, help = API_HELP)]
        api: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register (or update) a service on the agent, optionally with one health check.
    Register {
        /// The service's name: 1 to 63 of a-z, 0-9 and '-' (not first).
        name: String,
        /// The port it listens on [default: the agent's NODE_PORT].
        #[arg(long)]
        port: Option<u16>,
        /// A tag; repeat for several (--tag v1 --tag blue).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Check: GET this URL (2xx passing, 429 warning, else critical).
        #[arg(long, conflicts_with_all = ["tcp", "ttl"])]
        http: Option<String>,
        /// Check: connect to this host:port.
        #[arg(long, conflicts_with = "ttl")]
        tcp: Option<String>,
        /// Check: the application reports with `gossip check pass ID` within this ("30s").
        #[arg(long)]
        ttl: Option<String>,
        /// How often the http or tcp check runs ("10s").
        #[arg(long)]
        interval: Option<String>,
        /// How long the http or tcp check may take ("5s").
        #[arg(long)]
        timeout: Option<String>,
        /// Deregister the service when the check has been critical this long ("10m").
        #[arg(long)]
        deregister_critical_after: Option<String>,
        #[arg(long, help = API_HELP)]
        api: Option<String>,
    },
    /// Report a TTL check's status: pass, warn or fail.
    Check {
        #[arg(value_parser = ["pass", "warn", "fail"])]
        status: String,
        /// The check id (`service:<name>` unless one was given).
        id: String,
        /// Kept as the check's output.
        #[arg(long)]
        note: Option<String>,
        #[arg(long, help = API_HELP)]
        api: Option<String>,
    },
    /// List this agent's health checks with their status and last output.
    Checks {
        #[arg(long, help = API_HELP)]
        api: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deregister a service from the agent.
    Deregister {
        /// The service's id (its name unless registered with another id).
        name: String,
        #[arg(long, help = API_HELP)]
        api: Option<String>,
    },
    /// Make the agent leave the cluster gracefully and exit.
    Leave {
        #[arg(long, help = API_HELP)]
        api: Option<String>,
    },
    /// Stream the agent's membership and service events live (recent ones first).
    Monitor {
        #[arg(long, help = API_HELP)]
        api: Option<String>,
        /// One JSON object per line instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// Print a new random encryption key (base64 of 32 bytes) for GOSSIP_KEY.
    Keygen,
    /// List or change the agent's keyring at run time (needs API_TOKEN if the agent has one).
    Keys {
        #[command(subcommand)]
        op: KeysOp,
        #[arg(long, global = true, help = API_HELP)]
        api: Option<String>,
    },
    /// A narrated in-process cluster on 127.0.0.1.
    Demo {
        /// How many nodes the demo cluster has.
        #[arg(long, default_value_t = 7)]
        nodes: usize,
    },
    /// A simulated cluster: real nodes, in-memory network, virtual clock, faults.
    Sim(gossip::sim::SimArgs),
}

#[derive(Subcommand)]
enum KeysOp {
    /// The installed keys, primary (encrypting) first.
    List,
    /// Add a key; it decrypts at once and encrypts once made primary.
    Install {
        /// Base64 of 32 bytes (`gossip keygen`).
        key: String,
    },
    /// Make an installed key the one that encrypts.
    Use {
        /// An installed key, base64.
        key: String,
    },
    /// Remove a key that is not primary.
    Remove {
        /// An installed key, base64.
        key: String,
    },
}

fn main() {
    let cli = Cli::parse();
    // The demo narrates on stdout; seven nodes' info logs on stderr would bury
    // it (RUST_LOG=info shows them).
    let default_level = if matches!(cli.cmd, Cmd::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_target(false)
        .init();
    let code = match cli.cmd {
        Cmd::Agent { config } => gossip::agent::run(config),
        Cmd::Keygen => {
            println!(
                "{}",
                gossip::protocol::crypto::encode_key(&gossip::protocol::crypto::generate_key())
            );
            0
        }
        Cmd::Keys { op, api } => run_client(|| {
            let api = api_addr(api);
            let v = match op {
                KeysOp::List => client::request("GET", &api, "/v1/keys", None)?,
                KeysOp::Install { key } => client::request(
                    "POST",
                    &api,
                    "/v1/keys",
                    Some(json!({"op": "install", "key": key})),
                )?,
                KeysOp::Use { key } => client::request(
                    "POST",
                    &api,
                    "/v1/keys",
                    Some(json!({"op": "use", "key": key})),
                )?,
                KeysOp::Remove { key } => client::request(
                    "POST",
                    &api,
                    "/v1/keys",
                    Some(json!({"op": "remove", "key": key})),
                )?,
            };
            let keys: Vec<String> = serde_json::from_value(v["keys"].clone()).unwrap_or_default();
            if keys.is_empty() {
                return Ok("no keys: this agent runs in plaintext".into());
            }
            Ok(keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{k}{}", if i == 0 { "  (primary)" } else { "" }))
                .collect::<Vec<_>>()
                .join("\n"))
        }),
        Cmd::Demo { nodes } => gossip::demo::run(nodes),
        Cmd::Sim(args) => gossip::sim::run(args),
        Cmd::Members { api, json } => run_client(|| {
            let v = client::request("GET", &api_addr(api), "/v1/members", None)?;
            if json {
                return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            let ms: Vec<MemberView> =
                serde_json::from_value(v).map_err(|e| format!("unexpected answer: {e}"))?;
            Ok(client::members_table(&ms))
        }),
        Cmd::Services {
            name,
            passing,
            api,
            json,
        } => run_client(|| {
            let mut path = match &name {
                Some(n) => format!("/v1/services/{n}"),
                None => "/v1/services".into(),
            };
            if passing {
                path.push_str("?passing");
            }
            let v = client::request("GET", &api_addr(api), &path, None)?;
            if json {
                return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            let map = match name {
                Some(n) => serde_json::from_value(json!({ n: v })),
                None => serde_json::from_value(v),
            }
            .map_err(|e| format!("unexpected answer: {e}"))?;
            Ok(client::services_table(&map))
        }),
        Cmd::Register {
            name,
            port,
            tags,
            http,
            tcp,
            ttl,
            interval,
            timeout,
            deregister_critical_after,
            api,
        } => run_client(|| {
            // The agent, not the CLI, supplies the default port.
            let mut body = json!({ "name": name, "tags": tags });
            if let Some(p) = port {
                body["port"] = json!(p);
            }
            let check = gossip::protocol::checks::CheckSpec {
                http,
                tcp,
                ttl,
                interval,
                timeout,
                deregister_critical_after,
                ..Default::default()
            };
            let has_check = check.http.is_some() || check.tcp.is_some() || check.ttl.is_some();
            if has_check {
                body["checks"] = json!([check]);
            } else if check != Default::default() {
                return Err("--interval, --timeout and --deregister-critical-after need --http, --tcp or --ttl".into());
            }
            let stored = client::request("PUT", &api_addr(api), "/v1/services", Some(body))?;
            Ok(format!(
                "registered {name} on port {}{}",
                stored["port"],
                if has_check {
                    " with a health check (critical until it first passes)"
                } else {
                    ""
                }
            ))
        }),
        Cmd::Check {
            status,
            id,
            note,
            api,
        } => run_client(|| {
            let body = note.map(|n| json!({ "note": n }));
            client::request(
                "PUT",
                &api_addr(api),
                &format!("/v1/checks/{id}/{status}"),
                body,
            )?;
            Ok(format!("check {id}: {status}"))
        }),
        Cmd::Checks { api, json } => run_client(|| {
            let v = client::request("GET", &api_addr(api), "/v1/checks", None)?;
            if json {
                return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            let list: Vec<gossip::api::checks::CheckView> =
                serde_json::from_value(v).map_err(|e| format!("unexpected answer: {e}"))?;
            Ok(client::checks_table(&list))
        }),
        Cmd::Deregister { name, api } => run_client(|| {
            client::request(
                "DELETE",
                &api_addr(api),
                &format!("/v1/services/{name}"),
                None,
            )?;
            Ok(format!("deregistered {name}"))
        }),
        Cmd::Leave { api } => run_client(|| {
            client::request("POST", &api_addr(api), "/v1/leave", None)?;
            Ok("leaving".into())
        }),
        Cmd::Monitor { api, json } => match gossip::api::events::monitor(&api_addr(api), json) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

fn run_client(f: impl FnOnce() -> Result<String, String>) -> i32 {
    match f() {
        Ok(out) => {
            println!("{out}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
