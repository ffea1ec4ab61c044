//! `gossip agent`: one node on a real UDP socket, with its HTTP API, until it
//! leaves (signal or API) and exits 0.

use actix::prelude::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use tokio::sync::mpsc;

use crate::config::{self, Config, DnsListen};
use crate::identity;
use crate::messages::{HasLeft, Leave};
use crate::node::{start_node, NodeOptions};
use crate::seeds::DnsResolver;
use crate::transport::udp::{broadcast_address_for, UdpLink};

/// Exit codes.
pub const EXIT_OK: i32 = 0;
pub const EXIT_RUNTIME: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;

/// Relays `HasLeft` into a channel the agent's main task waits on.
struct LeftSignal(mpsc::UnboundedSender<()>);
impl Actor for LeftSignal {
    type Context = Context<Self>;
}
impl Handler<HasLeft> for LeftSignal {
    type Result = ();
    fn handle(&mut self, _: HasLeft, _: &mut Context<Self>) {
        let _ = self.0.send(());
    }
}

/// Loads the configuration the way the agent does: `--config PATH` (must
/// exist) or `./config.yml` (if present), then the process environment.
pub fn load_config(path: Option<PathBuf>) -> Result<Config, config::ConfigError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    match path {
        Some(p) => config::load(Some(&p), true, &env),
        None => config::load(Some(std::path::Path::new("config.yml")), false, &env),
    }
}

pub fn run(config_path: Option<PathBuf>) -> i32 {
    let cfg = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let addr = match identity::advertise_addr(&cfg) {
        Ok(a) => {
            log::info!("advertising {} ({})", a.addr, a.why);
            a.addr
        }
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    System::new().block_on(run_node(cfg, addr))
}

async fn run_node(cfg: Config, addr: SocketAddr) -> i32 {
    let keyring = match crate::keyring_file::initial(&cfg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("config error: data_dir: {e}");
            return EXIT_CONFIG;
        }
    };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    let discovery = match (cfg.broadcast, addr.ip()) {
        (true, IpAddr::V4(ip)) => Some((cfg.discovery_port, broadcast_address_for(ip))),
        (true, IpAddr::V6(_)) => {
            log::warn!("broadcast bootstrap needs IPv4; NODE_IP is IPv6, so it is off");
            None
        }
        _ => None,
    };
    let link = match UdpLink::bind(cfg.bind_socket_addr(), discovery, metrics.clone()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "config error: NODE_PORT: cannot bind UDP {}: {e}",
                cfg.bind_socket_addr()
            );
            return EXIT_CONFIG;
        }
    };
    let (left_tx, mut left_rx) = mpsc::unbounded_channel();
    let owner = LeftSignal(left_tx).start();
    let mut link = Some(link);
    let node = start_node(
        &cfg,
        addr,
        |inbox| {
            let l = link.take().expect("link is made once");
            l.start_receiving(inbox);
            Box::new(l)
        },
        NodeOptions {
            seed: rand::random(),
            resolver: Box::new(DnsResolver::new(
                identity::own_addrs(addr, cfg.bind_socket_addr()),
                cfg.bind_socket_addr().is_ipv4(),
                cfg.max_seed_addrs,
                rand::random(),
            )),
            owner: Some(owner.recipient()),
            metrics,
            formed: None,
            exit_on_name_taken: true,
            clock_origin: None,
        },
    );
    let api_addr = cfg.api_socket_addr();
    let token = crate::api::auth::ApiToken(cfg.api_token.clone());
    let server = match crate::api::serve(node.clone(), api_addr, token) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("config error: API_ADDR: cannot listen on {api_addr}: {e}");
            return EXIT_CONFIG;
        }
    };
    let server_handle = server.handle();
    actix_rt::spawn(server);
    let dns = match start_dns(&cfg, &node) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let dns_note = dns.as_ref().map_or(String::from("DNS off"), |d| {
        format!("DNS on {} (UDP+TCP)", d.addr)
    });
    let security = match &keyring {
        k if !k.keys.is_empty() => format!(
            "encrypted (AES-256-GCM, {} key(s){})",
            k.keys.len(),
            match (&k.file, k.from_file) {
                (Some(f), true) => format!(", keyring restored from {}", f.display()),
                (Some(f), false) => format!(", key changes kept in {}", f.display()),
                (None, _) =>
                    ", no data_dir: run-time key changes will not survive a restart".to_string(),
            }
        ),
        _ => "PLAINTEXT: no GOSSIP_KEY, anyone who can send UDP here can join or lie".into(),
    };
    log::info!(
        "node {} up (gossip {}): gossip on {} (advertised {addr}), API on http://{api_addr}{}, {dns_note}, cluster {:?}, {security}",
        cfg.node_id,
        crate::VERSION,
        cfg.bind_socket_addr(),
        if cfg.api_token.is_some() { " (token required, except for open reads)" } else { "" },
        cfg.cluster_name
    );

    // First SIGINT/SIGTERM: leave gracefully. A second SIGINT: exit now.
    let leave = node.leave.clone();
    actix_rt::spawn(async move {
        wait_for_signal().await;
        log::info!("signal received: leaving gracefully (interrupt again to exit at once)");
        leave.do_send(Leave);
        let _ = tokio::signal::ctrl_c().await;
        log::warn!("second interrupt: exiting without finishing the leave");
        std::process::exit(130);
    });

    let _ = left_rx.recv().await;
    server_handle.stop(false).await;
    drop(dns);
    EXIT_OK
}

/// Starts the DNS server where DNS_ADDR says. An address given explicitly
/// that cannot be bound is a config error; the default one (derived from
/// NODE_PORT) only costs the DNS server, with a warning, so that agents
/// started without thinking about DNS still start.
fn start_dns(
    cfg: &Config,
    node: &crate::node::NodeHandle,
) -> Result<Option<crate::dns::DnsServer>, String> {
    let (addr, given) = match cfg.dns_listen() {
        DnsListen::Off => return Ok(None),
        DnsListen::Default(a) => (a, false),
        DnsListen::Given(a) => (a, true),
    };
    let recursors = cfg
        .dns_recursors
        .0
        .iter()
        .filter_map(|r| crate::dns::forward::parse_recursor(r).ok())
        .collect();
    match crate::dns::start(
        addr,
        crate::dns::DnsSettings::from_config(cfg),
        recursors,
        node.snapshot.clone(),
        node.metrics.clone(),
    ) {
        Ok(server) => Ok(Some(server)),
        Err(e) if given => Err(format!(
            "config error: DNS_ADDR: cannot listen on {addr} (UDP and TCP): {e}"
        )),
        Err(e) => {
            log::warn!("DNS off: cannot listen on {addr} (the default DNS_ADDR): {e}; set DNS_ADDR to another ip:port, or to off");
            Ok(None)
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
