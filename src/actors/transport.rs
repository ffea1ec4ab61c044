//! Transport actor: owns the link (UDP socket or simulated network), the wire
//! codec, the keyring (encryption) and fault injection.
//!
//! Takes: `Inbound` (a datagram arrived), `Outbound` (send to one peer),
//! `BroadcastOut`, `SetFaults`, `KeyringOp`, `Silence`.
//! Sends: `ProbeMsg` to the failure detector, `Rumors` and `SyncMsg` to
//! membership, `DiscoveryMsg` to gossip (each through a bounded mailbox:
//! what does not fit is dropped and counted).
//!
//! Decoding never panics; a datagram that fails to decode or to
//! authenticate, breaks a wire bound, or belongs to another cluster, is
//! dropped and counted. With a keyring, every datagram out is sealed and
//! stamped, every datagram in must be, and a replayed one is refused
//! (`protocol::replay`). What goes to an address that has not completed a
//! ping/ack round trip is held to twice what it sent
//! (`protocol::amplification`). With a keyring file, key changes are
//! written to it (`crate::keyring_file`).

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::supervisor::{guard, Crash};
use crate::keyring_file::{self, KeyringFile};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::amplification::{Admit, AmplificationGuard, VERIFY_SEQ_BIT};
use crate::protocol::crypto::{encode_key, parse_key, Keyring, SEAL_OVERHEAD};
use crate::protocol::replay::{KeyOpLog, Refused, ReplayGuard, Stamper};
use crate::protocol::wire::{
    decode_envelope, encode_msg, frame_plain, unframe, unix_micros, unix_ms, DecodeError,
    EncodedMsg, Framer, KeyOpKind, Msg, KIND_PLAIN, KIND_SEALED,
};
use crate::protocol::NodeId;
use crate::transport::Link;

/// Where decoded messages go.
#[derive(Clone)]
pub struct Routes {
    pub probe: Recipient<ProbeMsg>,
    pub rumors: Recipient<Rumors>,
    pub sync: Recipient<SyncMsg>,
    pub discovery: Recipient<DiscoveryMsg>,
}

/// The transport's defences; [`WireSettings::default`] is what a node
/// without configuration gets.
#[derive(Clone, Debug)]
pub struct WireSettings {
    /// Whether Discover/DiscoverReply are heeded (broadcast bootstrap on).
    pub discovery: bool,
    /// Sealed datagrams and key operations older or newer than this, by our
    /// clock, are refused.
    pub replay_window_ms: u64,
    /// Addresses (and senders) tracked by the amplification and replay
    /// guards, each.
    pub max_tracked: usize,
    /// Where the keyring is kept across restarts (`data_dir`).
    pub keyring_file: Option<PathBuf>,
    /// Key operations already applied (restored from the keyring file).
    pub key_ops: KeyOpLog,
}

impl Default for WireSettings {
    fn default() -> Self {
        WireSettings {
            discovery: false,
            replay_window_ms: 60_000,
            max_tracked: 4096,
            keyring_file: None,
            key_ops: KeyOpLog::default(),
        }
    }
}

/// How often held messages are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

pub struct Transport {
    me: NodeId,
    cluster: String,
    framer: Framer,
    keyring: Keyring,
    link: Box<dyn Link>,
    routes: Routes,
    faults: SetFaults,
    rng: SmallRng,
    metrics: Arc<Metrics>,
    silenced: bool,
    blocked: HashSet<SocketAddr>,
    /// Rate limit for decode-error warnings: the next time one may be logged.
    next_warning: Option<tokio::time::Instant>,
    wire: WireSettings,
    amplification: AmplificationGuard,
    replay: ReplayGuard,
    stamper: Stamper,
}

impl Transport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: NodeId,
        cluster: String,
        framer: Framer,
        keyring: Keyring,
        link: Box<dyn Link>,
        routes: Routes,
        faults: SetFaults,
        seed: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        let blocked = faults.block.iter().copied().collect();
        Transport {
            me,
            cluster,
            framer,
            keyring,
            link,
            routes,
            faults,
            rng: SmallRng::seed_from_u64(seed),
            metrics,
            silenced: false,
            blocked,
            next_warning: None,
            amplification: AmplificationGuard::new(WireSettings::default().max_tracked),
            replay: ReplayGuard::new(
                WireSettings::default().replay_window_ms,
                WireSettings::default().max_tracked,
            ),
            wire: WireSettings::default(),
            stamper: Stamper::default(),
        }
    }

    pub fn with_wire(mut self, wire: WireSettings) -> Self {
        self.amplification = AmplificationGuard::new(wire.max_tracked);
        self.replay = ReplayGuard::new(wire.replay_window_ms, wire.max_tracked);
        self.wire = wire;
        self
    }

    fn dropped_by_fault(&mut self, peer: SocketAddr, loss: f64) -> bool {
        let drop = self.blocked.contains(&peer) || (loss > 0.0 && self.rng.gen::<f64>() < loss);
        if drop {
            Metrics::inc(&self.metrics.injected_drops);
        }
        drop
    }

    fn warn_rate_limited(&mut self, from: SocketAddr, e: &DecodeError) {
        let now = tokio::time::Instant::now();
        if self.next_warning.is_none_or(|t| now >= t) {
            log::warn!("dropping datagram from {from}: {e} (further ones counted, logged at most every 10 s)");
            self.next_warning = Some(now + std::time::Duration::from_secs(10));
        }
    }

    fn receive(&mut self, from: SocketAddr, data: &[u8]) {
        Metrics::inc(&self.metrics.datagrams_in);
        Metrics::add(&self.metrics.bytes_in, data.len() as u64);
        if self.silenced || self.dropped_by_fault(from, self.faults.loss_in) {
            return;
        }
        let keyed = !self.keyring.is_empty();
        let mut stamp = None;
        let env = match unframe(data).and_then(|(kind, body)| match (kind, keyed) {
            (KIND_PLAIN, false) => decode_envelope(body, &self.cluster),
            (KIND_PLAIN, true) => Err(DecodeError::Unsealed),
            (KIND_SEALED, false) => Err(DecodeError::Sealed),
            (KIND_SEALED, true) => {
                let (at, envelope) = self.keyring.open(body, &self.cluster)?;
                stamp = Some(at);
                decode_envelope(&envelope, &self.cluster)
            }
            _ => Err(DecodeError::Body(format!("unknown frame kind {kind}"))),
        }) {
            Ok(env) => env,
            Err(e) => {
                match e {
                    DecodeError::Cluster(_) => Metrics::inc(&self.metrics.foreign_cluster),
                    DecodeError::Auth | DecodeError::Unsealed | DecodeError::Sealed => {
                        Metrics::inc(&self.metrics.auth_failures)
                    }
                    DecodeError::Bounds(_) => Metrics::inc(&self.metrics.wire_bounds),
                    _ => Metrics::inc(&self.metrics.decode_errors),
                }
                self.warn_rate_limited(from, &e);
                return;
            }
        };
        // From our own name: our own broadcast, a confused peer, or another
        // process holding our NODE_ID. Only its pings and acks are taken:
        // they are how each of the two proves to the other that it is alive
        // (`ProbeOwnName`, one identity per name).
        let from_our_name = env.from == self.me;
        if let Some(at) = stamp {
            if let Err(e) = self.replay.check(&env.from, at, unix_micros()) {
                Metrics::inc(&self.metrics.replays_refused);
                log::debug!("dropping datagram from {from} ({}): {e}", env.from);
                return;
            }
        }
        // An ack may complete the round trip that verifies this address.
        for msg in &env.msgs {
            if let Msg::Ack { seq } = msg {
                if let Some(held) = self.amplification.on_ack(from, *seq) {
                    Metrics::inc(&self.metrics.addresses_verified);
                    self.send(from, &held);
                }
            }
        }
        self.amplification
            .on_receive(from, Some(&env.from), data.len());
        // Start verifying a new address at once, so that a real peer is
        // verified before any large answer is due (that answer, and our own
        // probes of it, would otherwise wait in the hold).
        self.verify(from);
        let mut updates = Vec::new();
        let mut states = Vec::new();
        for msg in env.msgs {
            if from_our_name && !matches!(msg, Msg::Ping { .. } | Msg::Ack { .. }) {
                continue;
            }
            match msg {
                // Our own verification pings' acks stop here.
                Msg::Ack { seq } if seq & VERIFY_SEQ_BIT != 0 => {}
                Msg::Ping { .. } | Msg::Ack { .. } | Msg::PingReq { .. } | Msg::Nack { .. } => {
                    let m = ProbeMsg {
                        from,
                        sender: env.from.clone(),
                        msg,
                    };
                    self.deliver(&self.routes.probe, m)
                }
                Msg::Update { member, by } => updates.push((member, by)),
                Msg::State { member } => states.push((member, None)),
                Msg::SyncStart { .. } | Msg::SyncDigest { .. } | Msg::SyncWant { .. } => {
                    let m = SyncMsg {
                        from,
                        sender: env.from.clone(),
                        msg,
                    };
                    self.deliver(&self.routes.sync, m)
                }
                Msg::Discover | Msg::DiscoverReply if !self.wire.discovery => {
                    Metrics::inc(&self.metrics.discovery_ignored)
                }
                Msg::Discover | Msg::DiscoverReply => {
                    let m = DiscoveryMsg {
                        from,
                        sender: env.from.clone(),
                        msg,
                    };
                    self.deliver(&self.routes.discovery, m)
                }
                Msg::KeyOp { op, key, id, at } => {
                    self.apply_remote_key_op(&env.from, op, &key, (id, at), keyed)
                }
            }
        }
        if !updates.is_empty() {
            let m = Rumors {
                from,
                updates,
                via_sync: false,
                sender: env.from.clone(),
            };
            self.deliver(&self.routes.rumors, m);
        }
        if !states.is_empty() {
            let m = Rumors {
                from,
                updates: states,
                via_sync: true,
                sender: env.from.clone(),
            };
            self.deliver(&self.routes.rumors, m);
        }
    }

    /// Hands a decoded message on through a bounded mailbox; when it is
    /// full the message is dropped and counted, so a flood cannot grow the
    /// receive path without bound.
    fn deliver<M>(&self, to: &Recipient<M>, m: M)
    where
        M: Message + std::marker::Send + 'static,
        M::Result: std::marker::Send,
    {
        if to.try_send(m).is_err() {
            Metrics::inc(&self.metrics.receive_queue_drops);
        }
    }

    /// A keyring change sent by another member. Accepted only when we have
    /// keys (so the datagram was sealed with one of them); a plaintext cluster
    /// has no authority to trust with its keys.
    fn apply_remote_key_op(
        &mut self,
        from: &NodeId,
        op: KeyOpKind,
        key: &str,
        (id, at): (u64, u64),
        keyed: bool,
    ) {
        if !keyed {
            Metrics::inc(&self.metrics.auth_failures);
            return;
        }
        if let Err(e) = self
            .wire
            .key_ops
            .admit(id, at, unix_ms(), self.wire.replay_window_ms)
        {
            // The sender repeats each operation (UDP may lose one): a known
            // id is normal and quiet; an operation outside the window is not.
            if e == Refused::OutsideWindow {
                Metrics::inc(&self.metrics.replays_refused);
                log::warn!("keyring: {op:?} from {from} refused: {e}");
            } else {
                log::debug!("keyring: {op:?} from {from} already applied");
            }
            return;
        }
        let result = parse_key(key).and_then(|k| match op {
            KeyOpKind::Install => {
                self.keyring.install(k);
                Ok(())
            }
            KeyOpKind::Use => self.keyring.use_key(&k),
            KeyOpKind::Remove => self.keyring.remove(&k).or_else(|e| {
                // Already gone is what was asked for.
                if self.keyring.keys().contains(&k) {
                    Err(e)
                } else {
                    Ok(())
                }
            }),
        });
        match result {
            Ok(()) => log::info!(
                "keyring: {op:?} from {from}; {} key(s) now",
                self.keyring.keys().len()
            ),
            Err(e) => log::warn!("keyring: {op:?} from {from} refused: {e}"),
        }
        self.persist_keyring();
    }

    /// Writes the keyring (and the key operations applied) to the keyring
    /// file, if there is one. A failure is logged: the keyring in memory is
    /// what counts until the next restart.
    fn persist_keyring(&self) {
        let Some(path) = &self.wire.keyring_file else {
            return;
        };
        let file = KeyringFile {
            keys: self.keyring.keys().iter().map(encode_key).collect(),
            key_ops: self.wire.key_ops.entries(),
        };
        if let Err(e) = keyring_file::save(path, &file) {
            log::error!(
                "keyring: cannot write {}: {e}; this change will not survive a restart",
                path.display()
            );
        }
    }

    fn frames(&mut self, msgs: &[EncodedMsg]) -> Vec<Vec<u8>> {
        let (envelopes, oversized) = self.framer.pack(msgs);
        Metrics::add(&self.metrics.oversized_msgs, oversized as u64);
        if self.keyring.is_empty() {
            envelopes.iter().map(|e| frame_plain(e)).collect()
        } else {
            envelopes
                .iter()
                .filter_map(|e| {
                    let stamp = self.stamper.next(unix_micros());
                    self.keyring.seal(e, &self.cluster, stamp)
                })
                .collect()
        }
    }

    /// Sends to `to` what its amplification budget allows; the rest waits
    /// for the ping/ack round trip that verifies it (see
    /// `protocol::amplification`).
    fn send(&mut self, to: SocketAddr, msgs: &[EncodedMsg]) {
        if self.silenced || msgs.is_empty() {
            return;
        }
        if self.amplification.is_verified(&to) {
            return self.transmit(to, msgs);
        }
        // Which of them are our pings, decoded once: each may verify the
        // address, and each goes out whatever its credit (below).
        let is_ping: Vec<bool> = msgs
            .iter()
            .map(|m| match rmp_serde::from_slice::<Msg>(m) {
                Ok(Msg::Ping { seq, .. }) => {
                    self.amplification.on_ping_sent(&to, seq);
                    true
                }
                _ => false,
            })
            .collect();
        let credit = match self.amplification.admit(&to) {
            Admit::Open => return self.transmit(to, msgs),
            Admit::Credit(c) => c as usize,
        };
        let fixed = self.framer.fixed_overhead() + self.seal_overhead();
        let total: usize = fixed + msgs.iter().map(|m| m.len()).sum::<usize>();
        if total <= credit && total <= self.framer.room() + fixed {
            return self.transmit(to, msgs);
        }
        // Too much for a stranger. Our own pings go out all the same: the
        // failure detector sends them on its own schedule to members it
        // knows (as a relay, only to a member at its known address), never
        // as an answer a stranger can buy, and each is a round trip that
        // verifies the address. Holding them left a member under loss
        // probed only through relays: at 30% loss in the simulator, one
        // whose address had not yet completed a round trip with its prober
        // got no direct ping for 14 s, failed its probes and was declared
        // dead.
        let (mut pings, mut others) = (Vec::new(), Vec::new());
        for (m, ping) in msgs.iter().zip(is_ping) {
            if ping { &mut pings } else { &mut others }.push(m.clone());
        }
        if !pings.is_empty() {
            self.transmit(to, &pings);
        } else {
            // Ask it to prove it owns its address.
            self.verify(to);
        }
        // Send what fits, hold the rest until it has proved it.
        let now = tokio::time::Instant::now();
        let mut queue = others;
        let credit = match self.amplification.admit(&to) {
            Admit::Open => return self.transmit(to, &queue),
            Admit::Credit(c) => c as usize,
        };
        let mut used = fixed;
        let mut fit = 0;
        for m in &queue {
            if used + m.len() > credit || used + m.len() > self.framer.room() + fixed {
                break;
            }
            used += m.len();
            fit += 1;
        }
        let rest = queue.split_off(fit);
        if !queue.is_empty() {
            self.transmit(to, &queue);
        }
        let held = self.amplification.hold(&to, rest, now);
        Metrics::add(&self.metrics.amplification_held, held.held as u64);
        Metrics::add(&self.metrics.amplification_dropped, held.dropped as u64);
    }

    /// Sends `to` a verification ping if one is due (one per `HOLD_TTL`
    /// per address), whatever its credit: a single small ping, which only
    /// the owner of the address can answer. Held back by the credit, it
    /// could be marked sent without going out, and everything for that
    /// address was then held until a probe of ours happened to verify it.
    fn verify(&mut self, to: SocketAddr) {
        if self.amplification.admit(&to) == Admit::Open {
            return;
        }
        let now = tokio::time::Instant::now();
        if let Some((seq, target)) = self.amplification.verification_due(&to, now) {
            self.transmit(to, &[encode_msg(&Msg::Ping { seq, target })]);
        }
    }

    fn seal_overhead(&self) -> usize {
        if self.keyring.is_empty() {
            0
        } else {
            SEAL_OVERHEAD
        }
    }

    fn transmit(&mut self, to: SocketAddr, msgs: &[EncodedMsg]) {
        for d in self.frames(msgs) {
            if self.dropped_by_fault(to, self.faults.loss_out) {
                continue;
            }
            self.amplification.on_send(&to, d.len());
            Metrics::inc(&self.metrics.datagrams_out);
            Metrics::add(&self.metrics.bytes_out, d.len() as u64);
            self.link.send(to, d);
        }
    }
}

impl Actor for Transport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(EXPIRY_TICK, |act, ctx| {
            guard(ctx, |_| {
                let dropped = act.amplification.expire(tokio::time::Instant::now());
                Metrics::add(&act.metrics.amplification_dropped, dropped as u64);
            });
        });
    }
}

impl Supervised for Transport {}

impl Handler<Inbound> for Transport {
    type Result = ();
    fn handle(&mut self, m: Inbound, ctx: &mut Context<Self>) {
        guard(ctx, |_| self.receive(m.from, &m.data));
    }
}

impl Handler<Outbound> for Transport {
    type Result = ();
    fn handle(&mut self, m: Outbound, ctx: &mut Context<Self>) {
        guard(ctx, |_| self.send(m.to, &m.msgs));
    }
}

impl Handler<BroadcastOut> for Transport {
    type Result = ();
    fn handle(&mut self, m: BroadcastOut, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            if self.silenced {
                return;
            }
            for d in self.frames(&m.msgs) {
                Metrics::inc(&self.metrics.datagrams_out);
                Metrics::add(&self.metrics.bytes_out, d.len() as u64);
                self.link.broadcast(d);
            }
        });
    }
}

impl Handler<SetFaults> for Transport {
    type Result = ();
    fn handle(&mut self, m: SetFaults, _: &mut Context<Self>) {
        log::info!(
            "fault injection: loss_in={} loss_out={} blocked={:?}",
            m.loss_in,
            m.loss_out,
            m.block
        );
        self.blocked = m.block.iter().copied().collect();
        self.faults = m;
    }
}

impl Handler<KeyringOp> for Transport {
    type Result = Result<Vec<String>, String>;
    fn handle(&mut self, op: KeyringOp, _: &mut Context<Self>) -> Self::Result {
        let was_keyed = !self.keyring.is_empty();
        match &op {
            KeyringOp::List => {}
            KeyringOp::Install(k) => self.keyring.install(parse_key(k)?),
            KeyringOp::Use(k) => self.keyring.use_key(&parse_key(k)?)?,
            KeyringOp::Remove(k) => self.keyring.remove(&parse_key(k)?)?,
        }
        if !was_keyed && !self.keyring.is_empty() {
            log::warn!("a key was installed on a plaintext node: it now encrypts everything and refuses plaintext");
        }
        if op != KeyringOp::List {
            log::info!("keyring changed: {} keys", self.keyring.keys().len());
            self.persist_keyring();
        }
        Ok(self.keyring.keys().iter().map(encode_key).collect())
    }
}

impl Handler<Silence> for Transport {
    type Result = ();
    fn handle(&mut self, _: Silence, _: &mut Context<Self>) {
        self.silenced = true;
        self.link.close();
    }
}

impl Handler<Crash> for Transport {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
