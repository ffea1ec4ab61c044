//! Gossip actor: the scheduler. Owns bootstrap (seeds, then broadcast) and
//! the timing of gossip rounds, push-pull exchanges and reconnection attempts.
//!
//! * every `gossip_interval`: a round with `fanout` random live peers; the
//!   rumor actor sends them pending rumors (nothing at all when none are
//!   pending, so an idle cluster costs only its probes);
//! * every `push_pull_interval` (scaled up with the cluster size): a full
//!   anti-entropy exchange with one random peer (digest hash first, so
//!   agreeing views cost two small datagrams);
//! * every `reconnect_interval`: a push-pull with one random dead member, so
//!   that a healed partition merges back;
//! * bootstrap: a join request to every seed (names resolved again on every
//!   attempt), then, if `broadcast` is on and nobody answered within
//!   `seed_timeout`, a discovery broadcast; retries with exponential backoff
//!   and jitter until some member is known.
//!
//! Peers and dead members are read from the published snapshot at the
//! moment they are needed; the actor keeps no copy of them, and follows new
//! snapshots only to notice its join.
//!
//! Reads: the snapshot (`SnapshotRx`), awaited as a stream of ticks.
//! Takes: `DiscoveryMsg`, `StopActivity`.
//! Sends: `GossipRound` and `Send` to the rumor actor, `StartSync` to
//! membership, `BroadcastOut` to the transport.

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::time::Duration;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::protocol::backoff;
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::NodeId;
use crate::seeds::SeedResolver;
use crate::snapshot::{changes, SnapshotRx};

/// When, after joining, the follow-up push-pulls run. Each repairs most of
/// what is still missing (at 10% loss a 1,000-member state transfer misses
/// about 100 records, and one digest push-pull recovers about 80% of them);
/// once the views agree a push-pull costs one datagram.
pub const FOLLOW_UP_SYNCS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(6),
    Duration::from_secs(14),
];

#[derive(Clone, Debug)]
pub struct GossipSettings {
    pub me: NodeId,
    pub my_addr: SocketAddr,
    pub seeds: Vec<String>,
    pub broadcast: bool,
    pub gossip_interval: Duration,
    pub fanout: usize,
    pub push_pull_interval: Duration,
    pub reconnect_interval: Duration,
    pub seed_timeout: Duration,
    pub join_retry_max: Duration,
    pub seed: u64,
}

pub struct Gossip {
    s: GossipSettings,
    snapshots: SnapshotRx,
    rng: SmallRng,
    joined: bool,
    attempt: u32,
    stopped: bool,
    resolver: Box<dyn SeedResolver>,
    round: Recipient<GossipRound>,
    send: Recipient<Send>,
    sync: Recipient<StartSync>,
    broadcast: Recipient<BroadcastOut>,
}

impl Gossip {
    pub fn new(
        s: GossipSettings,
        snapshots: SnapshotRx,
        resolver: Box<dyn SeedResolver>,
        round: Recipient<GossipRound>,
        send: Recipient<Send>,
        sync: Recipient<StartSync>,
        broadcast: Recipient<BroadcastOut>,
    ) -> Self {
        Gossip {
            rng: SmallRng::seed_from_u64(s.seed),
            s,
            snapshots,
            joined: false,
            attempt: 0,
            stopped: false,
            resolver,
            round,
            send,
            sync,
            broadcast,
        }
    }

    /// Starts as a member of a formed cluster (the simulator's warm start,
    /// see `protocol::formed`): no bootstrap.
    pub fn formed(mut self) -> Self {
        self.joined = true;
        self
    }

    /// Up to `k` random live members other than us, as the snapshot has them.
    fn sample_peers(&mut self, k: usize) -> Vec<SocketAddr> {
        let snap = self.snapshots.borrow().clone();
        snap.live
            .sample(k, &[&self.s.me], &mut self.rng)
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    /// The first snapshot with another live member in it means we joined.
    /// The join's state transfer is a burst of datagrams with no retry:
    /// digest-based push-pulls shortly after repair whatever part of it was
    /// lost.
    fn notice_join(&mut self, ctx: &mut Context<Self>) {
        let known = self.snapshots.borrow().peer_count();
        if self.joined || known == 0 {
            return;
        }
        self.joined = true;
        log::info!("joined the cluster ({} known)", known + 1);
        for delay in FOLLOW_UP_SYNCS {
            ctx.run_later(delay, |act, ctx| {
                guard(ctx, |_| {
                    if let Some(peer) = act.sample_peers(1).pop() {
                        act.sync.do_send(StartSync { peer, join: false });
                    }
                });
            });
        }
    }

    /// memberlist scales push-pull with the cluster: beyond 32 members the
    /// interval grows with log2(N/32), keeping the total sync traffic flat.
    fn push_pull_period(&self) -> Duration {
        let n = self.snapshots.borrow().peer_count() + 1;
        if n <= 32 {
            return self.s.push_pull_interval;
        }
        let mult = ((n as f64 / 32.0).log2().ceil() + 1.0).max(1.0);
        self.s.push_pull_interval.mul_f64(mult)
    }

    fn gossip_round(&mut self) {
        if self.stopped {
            return;
        }
        let peers = self.sample_peers(self.s.fanout);
        if !peers.is_empty() {
            self.round.do_send(GossipRound { peers });
        }
    }

    fn schedule_push_pull(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.push_pull_period(), |act, ctx| {
            guard(ctx, |_| {
                if !act.stopped {
                    if let Some(peer) = act.sample_peers(1).pop() {
                        act.sync.do_send(StartSync { peer, join: false });
                    }
                }
            });
            act.schedule_push_pull(ctx);
        });
    }

    fn reconnect(&mut self) {
        if self.stopped {
            return;
        }
        let dead = self.snapshots.borrow().dead.clone();
        if let Some((id, peer)) = dead.sample(1, &[], &mut self.rng).pop() {
            log::debug!("trying to reach dead member {id} at {peer}");
            self.sync.do_send(StartSync { peer, join: false });
        }
    }

    fn try_join(&mut self, ctx: &mut Context<Self>) {
        if self.joined || self.stopped {
            return;
        }
        let seeds = self.s.seeds.clone();
        let my_addr = self.s.my_addr;
        if !seeds.is_empty() {
            let fut = self.resolver.resolve(seeds);
            ctx.spawn(fut.into_actor(self).map(move |addrs, act, _| {
                for peer in addrs.into_iter().filter(|a| *a != my_addr) {
                    act.sync.do_send(StartSync { peer, join: true });
                }
            }));
        }
        ctx.run_later(self.s.seed_timeout, |act, ctx| {
            guard(ctx, |ctx| act.after_join_attempt(ctx));
        });
    }

    fn after_join_attempt(&mut self, ctx: &mut Context<Self>) {
        if self.joined || self.stopped {
            return;
        }
        if self.s.broadcast {
            log::info!("no seed answered; broadcasting for members of our cluster");
            self.broadcast.do_send(BroadcastOut {
                msgs: vec![encode_msg(&Msg::Discover)],
            });
        } else if !self.s.seeds.is_empty() && self.attempt == 0 {
            log::info!("no seed answered yet; running as a one-node cluster and retrying");
        }
        let wait = backoff::delay(
            self.attempt,
            self.s.seed_timeout,
            self.s.join_retry_max,
            &mut self.rng,
        );
        self.attempt += 1;
        ctx.run_later(wait, |act, ctx| {
            guard(ctx, |ctx| act.try_join(ctx));
        });
    }
}

impl Actor for Gossip {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.s.gossip_interval, |act, ctx| {
            guard(ctx, |_| act.gossip_round());
        });
        self.schedule_push_pull(ctx);
        ctx.run_interval(self.s.reconnect_interval, |act, ctx| {
            guard(ctx, |_| act.reconnect());
        });
        self.try_join(ctx);
        // After a restart too: the stream went with the timers.
        self.notice_join(ctx);
        ctx.add_stream(changes(&self.snapshots));
    }
}

impl Supervised for Gossip {}

impl StreamHandler<()> for Gossip {
    fn handle(&mut self, _: (), ctx: &mut Context<Self>) {
        guard(ctx, |ctx| self.notice_join(ctx));
    }
    /// The publisher is gone (the node is shutting down): nothing to follow.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<DiscoveryMsg> for Gossip {
    type Result = ();
    fn handle(&mut self, m: DiscoveryMsg, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            if self.stopped || m.sender == self.s.me {
                return;
            }
            match m.msg {
                Msg::Discover => self.send.do_send(Send {
                    to: m.from,
                    msgs: vec![encode_msg(&Msg::DiscoverReply)],
                }),
                Msg::DiscoverReply if !self.snapshots.borrow().is_live(&m.sender) => {
                    self.sync.do_send(StartSync {
                        peer: m.from,
                        join: true,
                    })
                }
                _ => {}
            }
        });
    }
}

impl Handler<StopActivity> for Gossip {
    type Result = ();
    fn handle(&mut self, _: StopActivity, _: &mut Context<Self>) {
        self.stopped = true;
    }
}

impl Handler<Crash> for Gossip {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
