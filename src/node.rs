//! Builds one node: its configuration, a link to the network, and its eight
//! actors under supervision, wired to each other by typed recipients.
//!
//! Every actor's context is created first, so that every address exists
//! before any actor is constructed; that lets actors that talk in a circle
//! (transport -> failure detector -> rumor -> transport) each get the others'
//! recipients at construction. The same function builds agent nodes, demo
//! nodes and simulated nodes; only the link and the seed resolver differ.

use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::actors::checks::Checks;
use crate::actors::failure::{FailureDetector, FailureSettings};
use crate::actors::gossip::{Gossip, GossipSettings};
use crate::actors::leave::LeaveCoordinator;
use crate::actors::membership::{Membership, MembershipSettings};
use crate::actors::registry::{CheckRunner, Registry};
use crate::actors::rumor::{Rumor, RumorSettings};
use crate::actors::supervisor::supervise;
use crate::actors::transport::{Routes, Transport, WireSettings};
use crate::config::Config;
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::crypto::{Keyring, SEAL_OVERHEAD};
use crate::protocol::formed::Formed;
use crate::protocol::probe_order::ProbeOrder;
use crate::protocol::wire::Framer;
use crate::protocol::{Member, NodeId};
use crate::seeds::SeedResolver;
use crate::snapshot::SnapshotRx;
use crate::transport::Link;

/// Messages waiting in each actor of the receive path (transport, and the
/// actors it feeds); beyond this, datagrams are dropped and counted.
pub const RECEIVE_MAILBOX: usize = 4096;

/// The addresses of a running node's actors.
#[derive(Clone)]
pub struct NodeHandle {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub membership: Addr<Membership>,
    pub registry: Addr<Registry>,
    pub leave: Addr<LeaveCoordinator>,
    pub transport: Addr<Transport>,
    pub failure: Addr<FailureDetector>,
    pub gossip: Addr<Gossip>,
    pub rumor: Addr<Rumor>,
    pub metrics: Arc<Metrics>,
    /// The member table as Membership last published it (`snapshot.rs`).
    pub snapshot: SnapshotRx,
    /// The cluster's name (the Consul face's datacenter).
    pub cluster: Arc<str>,
}

pub struct NodeOptions {
    /// Seeds every RNG of the node (the simulator passes the scenario's).
    pub seed: u64,
    pub resolver: Box<dyn SeedResolver>,
    /// Told when the node has left the cluster.
    pub owner: Option<Recipient<HasLeft>>,
    /// The node's counters (the link may count into them too).
    pub metrics: Arc<Metrics>,
    /// Start inside this formed cluster instead of joining (the simulator's
    /// warm start; agents always join).
    pub formed: Option<Formed>,
    /// Exit the process (code 2) when another live node holds our NODE_ID
    /// and we are the newcomer: the agent does; the simulator and tests
    /// only see the `name_conflict` event.
    pub exit_on_name_taken: bool,
    /// The instant probe steps count from, shared by every node (the
    /// simulator's start); `None` for agents, which use wall-clock
    /// multiples of the probe interval (`wall_clock_origin`).
    pub clock_origin: Option<Instant>,
}

/// The latest instant that was a whole multiple of `interval` on the wall
/// clock, and which multiple it was (the step number): agents whose clocks
/// agree (NTP) number their probe steps alike, whenever each started,
/// which is what makes the shared probe schedule work across hosts.
fn wall_clock_origin(interval: Duration) -> (Instant, u64) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let interval = interval.as_nanos().max(1);
    let into_step = since_epoch.as_nanos() % interval;
    let step = (since_epoch.as_nanos() / interval).min(u64::MAX as u128) as u64;
    let origin = Instant::now().checked_sub(Duration::from_nanos(into_step as u64));
    match origin {
        Some(origin) => (origin, step),
        None => (Instant::now(), 0),
    }
}

fn salt(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Starts a node advertised at `addr`. `make_link` receives the transport's
/// inbox and returns the link it will send through.
pub fn start_node(
    cfg: &Config,
    addr: SocketAddr,
    make_link: impl FnOnce(Recipient<Inbound>) -> Box<dyn Link>,
    opts: NodeOptions,
) -> NodeHandle {
    let me = NodeId::new(&cfg.node_id);
    let metrics = opts.metrics.clone();
    let ms = Config::ms;

    let transport_ctx: Context<Transport> = Context::new();
    let membership_ctx: Context<Membership> = Context::new();
    let rumor_ctx: Context<Rumor> = Context::new();
    let failure_ctx: Context<FailureDetector> = Context::new();
    let gossip_ctx: Context<Gossip> = Context::new();
    let registry_ctx: Context<Registry> = Context::new();
    let checks_ctx: Context<Checks> = Context::new();
    let leave_ctx: Context<LeaveCoordinator> = Context::new();

    let transport = transport_ctx.address();
    let membership = membership_ctx.address();
    let rumor = rumor_ctx.address();
    let failure = failure_ctx.address();
    let gossip = gossip_ctx.address();
    let registry = registry_ctx.address();
    let checks = checks_ctx.address();
    let leave = leave_ctx.address();

    // Room for the seal is always reserved, so that a key installed at run
    // time never makes a full datagram too large.
    let framer = Framer::new(
        &cfg.cluster_name,
        &me,
        addr,
        cfg.max_packet_bytes,
        SEAL_OVERHEAD,
    );
    // The agent checked the keyring file before starting; here a damaged one
    // can only come from a race, and the configured keys are the fallback.
    let initial = crate::keyring_file::initial(cfg).unwrap_or_else(|e| {
        log::error!("keyring: {e}; starting with the configured keys");
        crate::keyring_file::Initial {
            keys: cfg.keyring().unwrap_or_default(),
            key_ops: Default::default(),
            file: None,
            from_file: false,
        }
    });
    let keyring = Keyring::new(&initial.keys);
    let room = framer.room();
    let link = make_link(transport.clone().recipient());
    let routes = Routes {
        probe: failure.clone().recipient(),
        rumors: membership.clone().recipient(),
        sync: membership.clone().recipient(),
        discovery: gossip.clone().recipient(),
    };
    let faults = SetFaults {
        loss_in: cfg.loss_in,
        loss_out: cfg.loss_out,
        block: Vec::new(),
    };
    let fault_seed = cfg.fault_seed.unwrap_or_else(|| salt(opts.seed, "faults"));
    // Bounded receive path: the link and the transport hand datagrams and
    // messages on with try_send, which these capacities bound.
    let mut transport_ctx = transport_ctx;
    transport_ctx.set_mailbox_capacity(RECEIVE_MAILBOX);
    let mut membership_ctx = membership_ctx;
    membership_ctx.set_mailbox_capacity(RECEIVE_MAILBOX);
    let mut failure_ctx = failure_ctx;
    failure_ctx.set_mailbox_capacity(RECEIVE_MAILBOX);
    let mut gossip_ctx = gossip_ctx;
    gossip_ctx.set_mailbox_capacity(RECEIVE_MAILBOX);
    supervise(
        transport_ctx,
        Transport::new(
            me.clone(),
            cfg.cluster_name.clone(),
            framer,
            keyring,
            link,
            routes,
            faults,
            fault_seed,
            metrics.clone(),
        )
        .with_wire(WireSettings {
            discovery: cfg.broadcast,
            keyring_file: initial.file,
            key_ops: initial.key_ops,
            ..WireSettings::default()
        }),
        metrics.clone(),
    );

    // A warm start: the formed view (shared with every other node until
    // this one changes it) and a rotation of the shared probe order.
    let formed = opts.formed.as_ref().map(|f| {
        let order = ProbeOrder::formed(&f.ring, &me);
        (f, order)
    });

    let own = Member::new_alive(me.clone(), addr, 0);
    let membership_actor = Membership::new(
        MembershipSettings {
            me: own.clone(),
            room,
            max_members: cfg.max_members,
            dead_reclaim: ms(cfg.dead_reclaim_ms),
            reconnect_timeout: ms(cfg.reconnect_timeout_ms),
            exit_on_name_taken: opts.exit_on_name_taken,
            stats_interval: ms(cfg.stats_interval_ms),
            seed: salt(opts.seed, "membership"),
        },
        rumor.clone().recipient(),
        rumor.clone().recipient(),
        failure.clone().recipient(),
        metrics.clone(),
    );
    let membership_actor = membership_actor.with_name_probe(failure.clone().recipient());
    let membership_actor = match &formed {
        Some((f, _)) => membership_actor.with_view(f.view.clone()),
        None => membership_actor,
    };
    let snapshot = membership_actor.snapshots();
    supervise(membership_ctx, membership_actor, metrics.clone());

    let rumor_actor = Rumor::new(
        RumorSettings {
            me: me.clone(),
            room,
            fanout: cfg.fanout,
            retransmit_mult: cfg.retransmit_mult,
            max_rumors: cfg.max_rumors,
            seed: salt(opts.seed, "rumor"),
        },
        snapshot.clone(),
        transport.clone().recipient(),
        metrics.clone(),
    );
    supervise(rumor_ctx, rumor_actor, metrics.clone());

    let (step_origin, first_step) = match opts.clock_origin {
        Some(origin) => (origin, 0),
        None => wall_clock_origin(ms(cfg.probe_interval_ms)),
    };
    let failure_actor = FailureDetector::new(
        FailureSettings {
            me: me.clone(),
            probe_interval: ms(cfg.probe_interval_ms),
            probe_timeout: ms(cfg.probe_timeout_ms),
            indirect_checks: cfg.indirect_checks,
            awareness_max_mult: cfg.awareness_max_mult,
            suspicion: cfg.suspicion_params(),
            seed: salt(opts.seed, "failure"),
            step_origin,
            first_step,
        },
        snapshot.clone(),
        rumor.clone().recipient(),
        membership.clone().recipient(),
        rumor.clone().recipient(),
        metrics.clone(),
    );
    let failure_actor = match &formed {
        Some((_, order)) => failure_actor.with_order(order.clone()),
        None => failure_actor,
    };
    supervise(failure_ctx, failure_actor, metrics.clone());

    let gossip_actor = Gossip::new(
        GossipSettings {
            me: me.clone(),
            my_addr: addr,
            seeds: cfg.seed_nodes.0.clone(),
            broadcast: cfg.broadcast,
            gossip_interval: ms(cfg.gossip_interval_ms),
            fanout: cfg.fanout,
            push_pull_interval: ms(cfg.push_pull_interval_ms),
            reconnect_interval: ms(cfg.reconnect_interval_ms),
            seed_timeout: ms(cfg.seed_timeout_ms),
            join_retry_max: ms(cfg.join_retry_max_ms),
            seed: salt(opts.seed, "gossip"),
        },
        snapshot.clone(),
        opts.resolver,
        rumor.clone().recipient(),
        rumor.clone().recipient(),
        membership.clone().recipient(),
        transport.clone().recipient(),
    )
    .with_metrics(metrics.clone());
    let gossip_actor = match &formed {
        Some(_) => gossip_actor.formed(),
        None => gossip_actor,
    };
    supervise(gossip_ctx, gossip_actor, metrics.clone());

    supervise(
        registry_ctx,
        Registry::new(
            cfg.initial_services(),
            cfg.max_services,
            room.saturating_sub(16),
            own,
            membership.clone().recipient(),
            cfg.data_dir.as_ref().map(std::path::PathBuf::from),
            cfg.initial_checks(),
        )
        .with_runner(CheckRunner {
            set: checks.clone().recipient(),
            ttl: checks.clone().recipient(),
            list: checks.clone().recipient(),
        }),
        metrics.clone(),
    );
    supervise(
        checks_ctx,
        Checks::new(
            registry.clone().recipient(),
            registry.clone().recipient(),
            metrics.clone(),
        ),
        metrics.clone(),
    );

    supervise(
        leave_ctx,
        LeaveCoordinator::new(
            crate::actors::leave::ALL_SENDS,
            ms(cfg.leave_timeout_ms),
            membership.clone().recipient(),
            rumor.clone().recipient(),
            vec![failure.clone().recipient(), gossip.clone().recipient()],
            transport.clone().recipient(),
            opts.owner,
        ),
        metrics.clone(),
    );

    NodeHandle {
        id: me,
        addr,
        membership,
        registry,
        leave,
        transport,
        failure,
        gossip,
        rumor,
        metrics,
        snapshot,
        cluster: cfg.cluster_name.as_str().into(),
    }
}

/// Starts a node on a real UDP socket bound to `bind` (port 0 picks one) and
/// advertised at the bound address: the demo's and the tests' way to run
/// several nodes in one process. The agent does the same plus signals and API.
pub async fn start_on_udp(
    cfg: &Config,
    bind: SocketAddr,
    seed: u64,
    resolver: Box<dyn SeedResolver>,
) -> std::io::Result<NodeHandle> {
    let metrics = Arc::new(Metrics::default());
    let link = crate::transport::udp::UdpLink::bind(bind, None, metrics.clone()).await?;
    let addr = link.local_addr()?;
    let cfg = Config {
        node_port: addr.port(),
        ..cfg.clone()
    };
    let mut link = Some(link);
    Ok(start_node(
        &cfg,
        addr,
        |inbox| {
            let l = link.take().expect("the link is made once");
            l.start_receiving(inbox);
            Box::new(l)
        },
        NodeOptions {
            seed,
            resolver,
            owner: None,
            metrics,
            formed: None,
            exit_on_name_taken: false,
            clock_origin: None,
        },
    ))
}
