//! Transport actor: owns the link (UDP socket or simulated network), the wire
//! codec, the keyring (encryption) and fault injection.
//!
//! Takes: `Inbound` (a datagram arrived), `Outbound` (send to one peer),
//! `BroadcastOut`, `SetFaults`, `KeyringOp`, `Silence`.
//! Sends: `ProbeMsg` to the failure detector, `Rumors` and `SyncMsg` to
//! membership, `DiscoveryMsg` to gossip.
//!
//! Decoding never panics; a datagram that fails to decode or to
//! authenticate, or belongs to another cluster, is dropped and counted. With
//! a keyring, every datagram out is sealed and every datagram in must be.

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::crypto::{encode_key, parse_key, Keyring};
use crate::protocol::wire::{
    decode_envelope, frame_plain, unframe, DecodeError, Framer, KeyOpKind, Msg, KIND_PLAIN,
    KIND_SEALED,
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
        }
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
        let env = match unframe(data).and_then(|(kind, body)| match (kind, keyed) {
            (KIND_PLAIN, false) => decode_envelope(body, &self.cluster),
            (KIND_PLAIN, true) => Err(DecodeError::Unsealed),
            (KIND_SEALED, false) => Err(DecodeError::Sealed),
            (KIND_SEALED, true) => {
                decode_envelope(&self.keyring.open(body, &self.cluster)?, &self.cluster)
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
        let mut updates = Vec::new();
        let mut states = Vec::new();
        for msg in env.msgs {
            if from_our_name && !matches!(msg, Msg::Ping { .. } | Msg::Ack { .. }) {
                continue;
            }
            match msg {
                Msg::Ping { .. } | Msg::Ack { .. } | Msg::PingReq { .. } | Msg::Nack { .. } => {
                    self.routes.probe.do_send(ProbeMsg {
                        from,
                        sender: env.from.clone(),
                        msg,
                    })
                }
                Msg::Update { member, by } => updates.push((member, by)),
                Msg::State { member } => states.push((member, None)),
                Msg::SyncStart { .. } | Msg::SyncDigest { .. } | Msg::SyncWant { .. } => {
                    self.routes.sync.do_send(SyncMsg {
                        from,
                        sender: env.from.clone(),
                        msg,
                    })
                }
                Msg::Discover | Msg::DiscoverReply => self.routes.discovery.do_send(DiscoveryMsg {
                    from,
                    sender: env.from.clone(),
                    msg,
                }),
                Msg::KeyOp { op, key } => self.apply_remote_key_op(&env.from, op, &key, keyed),
            }
        }
        if !updates.is_empty() {
            self.routes.rumors.do_send(Rumors {
                from,
                updates,
                via_sync: false,
                sender: env.from.clone(),
            });
        }
        if !states.is_empty() {
            self.routes.rumors.do_send(Rumors {
                from,
                updates: states,
                via_sync: true,
                sender: env.from.clone(),
            });
        }
    }

    /// A keyring change sent by another member. Accepted only when we have
    /// keys (so the datagram was sealed with one of them); a plaintext cluster
    /// has no authority to trust with its keys.
    fn apply_remote_key_op(&mut self, from: &NodeId, op: KeyOpKind, key: &str, keyed: bool) {
        if !keyed {
            Metrics::inc(&self.metrics.auth_failures);
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
    }

    fn frames(&mut self, msgs: &[crate::protocol::wire::EncodedMsg]) -> Vec<Vec<u8>> {
        let (envelopes, oversized) = self.framer.pack(msgs);
        Metrics::add(&self.metrics.oversized_msgs, oversized as u64);
        if self.keyring.is_empty() {
            envelopes.iter().map(|e| frame_plain(e)).collect()
        } else {
            envelopes
                .iter()
                .filter_map(|e| self.keyring.seal(e, &self.cluster))
                .collect()
        }
    }

    fn send(&mut self, to: SocketAddr, msgs: &[crate::protocol::wire::EncodedMsg]) {
        if self.silenced {
            return;
        }
        for d in self.frames(msgs) {
            if self.dropped_by_fault(to, self.faults.loss_out) {
                continue;
            }
            Metrics::inc(&self.metrics.datagrams_out);
            Metrics::add(&self.metrics.bytes_out, d.len() as u64);
            self.link.send(to, d);
        }
    }
}

impl Actor for Transport {
    type Context = Context<Self>;
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
