//! Rumor actor: the dissemination engine. Owns the queue of pending rumors
//! and decides which of them ride on each outgoing datagram.
//!
//! Takes: `Spread` (queue a rumor), `Send` (a datagram to fill with rumors and
//! pass on), `GossipRound` (rumor-only datagrams to some peers), `WaitSent`
//! (the leave coordinator waits for its LEAVE to go out).
//! Reads: the snapshot, for the peers of an eager push and the cluster size
//! (it keeps no copy of them).
//! Sends: `Outbound` to the transport.
//!
//! A fresh rumor is not left waiting for the next gossip round: within
//! `EAGER_DELAY` it is pushed to `fanout` random peers, each of whom does the
//! same when the rumor is news to them. Suspicions, failures and leaves thus
//! cross the cluster in a few network hops; the rounds then repeat every
//! rumor until its retransmit limit, for the members that missed it.

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::amplification::VERIFY_SEQ_BIT;
use crate::protocol::rumor_queue::{retransmit_limit, RumorQueue};
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::NodeId;
use crate::snapshot::SnapshotRx;

/// How long fresh rumors are collected before the eager push, so that a burst
/// of news shares datagrams.
pub const EAGER_DELAY: Duration = Duration::from_millis(2);

pub struct RumorSettings {
    pub me: NodeId,
    pub room: usize,
    pub fanout: usize,
    pub retransmit_mult: u32,
    pub max_rumors: usize,
    pub seed: u64,
}

struct Waiter {
    id: NodeId,
    remaining: u32,
    done: oneshot::Sender<()>,
}

pub struct Rumor {
    s: RumorSettings,
    queue: RumorQueue,
    snapshots: SnapshotRx,
    rng: SmallRng,
    transport: Recipient<Outbound>,
    metrics: Arc<Metrics>,
    eager_scheduled: bool,
    waiters: Vec<Waiter>,
    dropped_reported: u64,
}

impl Rumor {
    pub fn new(
        s: RumorSettings,
        snapshots: SnapshotRx,
        transport: Recipient<Outbound>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Rumor {
            queue: RumorQueue::new(s.max_rumors),
            snapshots,
            rng: SmallRng::seed_from_u64(s.seed),
            s,
            transport,
            metrics,
            eager_scheduled: false,
            waiters: Vec::new(),
            dropped_reported: 0,
        }
    }

    /// Live members other than us.
    fn peer_count(&self) -> usize {
        self.snapshots.borrow().peer_count()
    }

    fn limit(&self) -> u32 {
        retransmit_limit(self.s.retransmit_mult, self.peer_count() + 1)
    }

    /// Takes rumors for `room` bytes and counts their transmission.
    fn take(&mut self, room: usize) -> Vec<crate::protocol::wire::EncodedMsg> {
        let limit = self.limit();
        let filled = self.queue.fill(room, limit);
        Metrics::add(&self.metrics.rumors_sent, filled.keys.len() as u64);
        if !self.waiters.is_empty() {
            for key in &filled.keys {
                for w in self.waiters.iter_mut().filter(|w| &w.id == key) {
                    w.remaining = w.remaining.saturating_sub(1);
                }
            }
            self.release_waiters();
        }
        filled.msgs
    }

    fn release_waiters(&mut self) {
        let (done, pending): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.remaining == 0);
        self.waiters = pending;
        for w in done {
            let _ = w.done.send(());
        }
    }

    fn gossip_to(&mut self, peers: &[std::net::SocketAddr]) {
        for &to in peers {
            if self.queue.is_empty() {
                return;
            }
            let msgs = self.take(self.s.room);
            if !msgs.is_empty() {
                self.transport.do_send(Outbound { to, msgs });
            }
        }
    }

    fn eager_push(&mut self) {
        self.eager_scheduled = false;
        let live = self.snapshots.borrow().live.clone();
        let peers: Vec<_> = live
            .sample(self.s.fanout, &[&self.s.me], &mut self.rng)
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        self.gossip_to(&peers);
    }

    fn note_drops(&mut self) {
        let d = self.queue.dropped();
        if d > self.dropped_reported {
            Metrics::add(&self.metrics.rumors_dropped, d - self.dropped_reported);
            Metrics::add(&self.metrics.limits_hit, d - self.dropped_reported);
            self.dropped_reported = d;
        }
    }
}

/// An ack of the transport's address verification (`protocol::amplification`):
/// it answers a peer that has just sent us its first datagram, most often
/// the very rumor we would add. Carrying rumors, these acks took a quarter
/// of each rumor's retransmissions in a freshly formed 50-node cluster, sent
/// back to members that had it, and one member in two runs missed a new
/// service until the next push-pull, 10 s later.
fn is_verification_ack(msgs: &[crate::protocol::wire::EncodedMsg]) -> bool {
    match msgs {
        [one] => matches!(
            rmp_serde::from_slice::<Msg>(one),
            Ok(Msg::Ack { seq }) if seq & VERIFY_SEQ_BIT != 0
        ),
        _ => false,
    }
}

impl Actor for Rumor {
    type Context = Context<Self>;
}

impl Supervised for Rumor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The timer that would have run the eager push is gone.
        self.eager_scheduled = false;
    }
}

impl Handler<Spread> for Rumor {
    type Result = ();
    fn handle(&mut self, m: Spread, ctx: &mut Context<Self>) {
        guard(ctx, |ctx| {
            let key = m.member.id.clone();
            let msg = encode_msg(&Msg::Update {
                member: m.member,
                by: m.by,
            });
            if msg.len() > self.s.room {
                // It could never be sent: queued, it would never retire and
                // would take a place in the queue for good.
                self.queue.remove(&key);
                Metrics::inc(&self.metrics.rumors_oversized);
                log::warn!(
                    "rumor about {key} is {} bytes, more than a datagram holds ({}): dropped",
                    msg.len(),
                    self.s.room
                );
                return;
            }
            self.queue.push(key, msg);
            Metrics::inc(&self.metrics.rumors_queued);
            self.note_drops();
            if !self.eager_scheduled {
                self.eager_scheduled = true;
                ctx.run_later(EAGER_DELAY, |act, ctx| {
                    guard(ctx, |_| act.eager_push());
                });
            }
        });
    }
}

impl Handler<Send> for Rumor {
    type Result = ();
    fn handle(&mut self, m: Send, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            let used: usize = m.msgs.iter().map(|x| x.len()).sum();
            let mut msgs = m.msgs;
            if used < self.s.room && !self.queue.is_empty() && !is_verification_ack(&msgs) {
                msgs.extend(self.take(self.s.room - used));
            }
            self.transport.do_send(Outbound { to: m.to, msgs });
        });
    }
}

impl Handler<GossipRound> for Rumor {
    type Result = ();
    fn handle(&mut self, m: GossipRound, ctx: &mut Context<Self>) {
        guard(ctx, |_| self.gossip_to(&m.peers));
    }
}

impl Handler<WaitSent> for Rumor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, m: WaitSent, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        // The queue drops a rumor at its retransmit limit: a wait for more
        // would never end.
        let times = m.times.min(self.limit()).min(self.peer_count() as u32);
        if times == 0 {
            let _ = tx.send(());
        } else {
            self.waiters.push(Waiter {
                id: m.id,
                remaining: times,
                done: tx,
            });
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Crash> for Rumor {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
