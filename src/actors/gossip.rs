//! Gossip actor: the scheduler. Owns bootstrap (seeds, then broadcast) and
//! the timing of gossip rounds, push-pull exchanges and reconnection attempts.
//!
//! * every `gossip_interval`: a round with `fanout` random live peers; the
//!   rumor actor sends them pending rumors (nothing at all when none are
//!   pending, so an idle cluster costs only its probes);
//! * every `push_pull_interval` (scaled up with the cluster size): a full
//!   anti-entropy exchange with one random peer (digest hash first, so
//!   agreeing views cost two small datagrams);
//! * every `reconnect_interval` (jittered): maybe a push-pull with one
//!   member of the reconnect book, at serf's rate (`protocol::reconnect`),
//!   so that a healed partition merges back however long it lasted;
//! * the seeds, for as long as the node runs: a join request to every seed
//!   (names resolved again on every attempt) while no live member is known,
//!   then, if `broadcast` is on and nobody answered within `seed_timeout`, a
//!   discovery broadcast; a push-pull to any seed missing from the live view
//!   otherwise; retries with exponential backoff and jitter up to
//!   `join_retry_max`, then every `join_retry_max`.
//!
//! Peers, the recently dead and the reconnect book are read from the published snapshot at the
//! moment they are needed; the actor keeps no copy of them, and follows new
//! snapshots only to notice its join.
//!
//! Reads: the snapshot (`SnapshotRx`), awaited as a stream of ticks.
//! Takes: `DiscoveryMsg`, `StopActivity`.
//! Sends: `GossipRound` and `Send` to the rumor actor, `StartSync` to
//! membership, `BroadcastOut` to the transport.

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::NodeId;
use crate::protocol::{backoff, reconnect};
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

/// How long a member declared dead still gets gossip rounds (memberlist's
/// `GossipToTheDeadTime`, 30 s): the side of a healed partition that the
/// other declared dead learns it from the first rumors and refutes, rather
/// than after a push-pull or a reconnection picks it (tens of seconds at
/// 100 nodes). Costs a share of the rounds proportional to the recently
/// dead, for 30 s after each death.
pub const GOSSIP_TO_THE_DEAD: Duration = Duration::from_secs(30);

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
    metrics: Arc<Metrics>,
    /// `recent_dead`'s cache: snapshot index, when computed, the addresses.
    recent: Option<(u64, Instant, Vec<SocketAddr>)>,
    /// Computes it from what changed since the last snapshot.
    recently_failed: reconnect::RecentlyFailed,
    /// The seed addresses as last resolved.
    seed_addrs: Vec<SocketAddr>,
    /// When the next regular reconnection attempt is due.
    reconnect_due: Instant,
    /// The reconnect book's size at the last check (it shrinks as members
    /// come back: a healing partition).
    booked: usize,
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
            metrics: Arc::new(Metrics::default()),
            recent: None,
            recently_failed: reconnect::RecentlyFailed::default(),
            seed_addrs: Vec::new(),
            reconnect_due: Instant::now(),
            booked: 0,
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

    /// Counts reconnection attempts and seed retries in the node's metrics.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
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
        log::info!("{}: joined the cluster ({} known)", self.s.me, known + 1);
        for delay in FOLLOW_UP_SYNCS {
            ctx.run_later(delay, |act, ctx| {
                guard(ctx, |_| {
                    if let Some(peer) = act.sample_peers(1).pop() {
                        act.sync.do_send(StartSync {
                            peer,
                            join: false,
                            retry: true,
                        });
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

    /// Members declared dead within `GOSSIP_TO_THE_DEAD`, recomputed when
    /// a new snapshot is out or a second has passed.
    fn recent_dead(&mut self) -> &[SocketAddr] {
        let now = Instant::now();
        let index = self.snapshots.borrow().index;
        let fresh = self.recent.as_ref().is_some_and(|(i, at, _)| {
            *i == index && now.duration_since(*at) < Duration::from_secs(1)
        });
        if !fresh {
            let snap = self.snapshots.borrow().clone();
            let list = self
                .recently_failed
                .update(&snap.reconnect, now, GOSSIP_TO_THE_DEAD);
            self.recent = Some((index, now, list));
        }
        self.recent
            .as_ref()
            .map(|(_, _, l)| l.as_slice())
            .unwrap_or(&[])
    }

    /// `fanout` targets from the live members and, in proportion, the
    /// recently dead ones (see `GOSSIP_TO_THE_DEAD`).
    fn gossip_round(&mut self) {
        if self.stopped {
            return;
        }
        let dead = self.recent_dead().to_vec();
        let live = self.snapshots.borrow().peer_count();
        if live + dead.len() == 0 {
            return;
        }
        let share = dead.len() as f64 / (live + dead.len()) as f64;
        let to_dead = (0..self.s.fanout)
            .filter(|_| self.rng.gen::<f64>() < share)
            .count()
            .min(dead.len());
        let mut peers = self.sample_peers(self.s.fanout - to_dead);
        for i in rand::seq::index::sample(&mut self.rng, dead.len(), to_dead) {
            peers.push(dead[i]);
        }
        if !peers.is_empty() {
            self.round.do_send(GossipRound { peers });
        }
    }

    fn schedule_push_pull(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.push_pull_period(), |act, ctx| {
            guard(ctx, |_| {
                if !act.stopped {
                    if let Some(peer) = act.sample_peers(1).pop() {
                        act.sync.do_send(StartSync {
                            peer,
                            join: false,
                            retry: true,
                        });
                    }
                }
            });
            act.schedule_push_pull(ctx);
        });
    }

    /// One reconnection tick: maybe a push-pull with one member from the
    /// reconnect book (`protocol::reconnect::pick`, serf's rate).
    fn reconnect(&mut self) {
        if self.stopped {
            return;
        }
        let snap = self.snapshots.borrow().clone();
        if let Some((id, peer)) = reconnect::pick(&snap.reconnect, &snap.table, &mut self.rng) {
            log::debug!("trying to reach failed member {id} at {peer}");
            Metrics::inc(&self.metrics.reconnect_attempts);
            self.sync.do_send(StartSync {
                peer,
                join: false,
                retry: false,
            });
        }
    }

    /// Reconnection attempts every `reconnect_interval`, +-10%, the first
    /// one at a random point of the first interval (nodes started together
    /// do not tick together). Checked ten times per interval: while members
    /// are coming back from the book (a partition is healing), an attempt
    /// at every check, so that the rest of the other side hears it was
    /// declared dead and refutes within seconds, not intervals.
    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>, first: bool) {
        let interval = self.s.reconnect_interval;
        if first {
            self.reconnect_due = Instant::now() + interval.mul_f64(self.rng.gen_range(0.1..1.0));
        }
        ctx.run_later(interval / 10, |act, ctx| {
            guard(ctx, |_| {
                let now = Instant::now();
                let booked = act.snapshots.borrow().reconnect.len();
                let healing = booked < act.booked;
                act.booked = booked;
                if healing || now >= act.reconnect_due {
                    act.reconnect();
                    if now >= act.reconnect_due {
                        act.reconnect_due = now
                            + act
                                .s
                                .reconnect_interval
                                .mul_f64(act.rng.gen_range(0.9..1.1));
                    }
                }
            });
            act.schedule_reconnect(ctx, false);
        });
    }

    /// The seeds, for as long as the node runs: resolved again each time,
    /// then a join to every seed while we know no live member, or a
    /// push-pull to each seed missing from our live view.
    fn seek(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let fut = self.resolver.resolve(self.s.seeds.clone());
        ctx.spawn(fut.into_actor(self).map(|addrs, act, ctx| {
            guard(ctx, |ctx| act.contact_seeds(addrs, ctx));
        }));
    }

    fn contact_seeds(&mut self, seeds: Vec<SocketAddr>, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let snap = self.snapshots.borrow().clone();
        let alone = !reconnect::knows_someone(&snap.table, &self.s.me);
        let missing = reconnect::missing_seeds(&seeds, &snap.table, &self.s.me, self.s.my_addr);
        self.seed_addrs = seeds;
        if self.attempt > 0 {
            Metrics::add(&self.metrics.seed_retries, missing.len() as u64);
        }
        if !alone && !missing.is_empty() {
            log::debug!("seeds missing from our live view: {missing:?}");
        }
        for peer in &missing {
            self.sync.do_send(StartSync {
                peer: *peer,
                join: alone,
                retry: false,
            });
        }
        if alone || !missing.is_empty() {
            ctx.run_later(self.s.seed_timeout, |act, ctx| {
                guard(ctx, |ctx| act.after_seed_attempt(ctx));
            });
        } else {
            // Everything is where it should be: watch for a change.
            self.attempt = 0;
            self.watch_seeds(ctx, self.s.join_retry_max);
        }
    }

    /// While every seed is live: every `seed_timeout`, compare the table
    /// with the seeds as last resolved (no resolution, so a DNS seed costs
    /// nothing here); resolve again after `resolve_in` anyway. A seed that
    /// goes missing (declared dead: a partition) is tried at once.
    fn watch_seeds(&mut self, ctx: &mut Context<Self>, resolve_in: Duration) {
        ctx.run_later(self.s.seed_timeout, move |act, ctx| {
            guard(ctx, |ctx| {
                if act.stopped {
                    return;
                }
                let snap = act.snapshots.borrow().clone();
                let alone = !reconnect::knows_someone(&snap.table, &act.s.me);
                let missing = reconnect::missing_seeds(
                    &act.seed_addrs,
                    &snap.table,
                    &act.s.me,
                    act.s.my_addr,
                );
                let left = resolve_in.saturating_sub(act.s.seed_timeout);
                if alone || !missing.is_empty() || left.is_zero() {
                    act.seek(ctx);
                } else {
                    act.watch_seeds(ctx, left);
                }
            });
        });
    }

    fn after_seed_attempt(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let alone = !reconnect::knows_someone(&self.snapshots.borrow().table, &self.s.me);
        if alone {
            // Joined before and lost everyone since: the next member seen
            // is a new join (with its follow-up push-pulls).
            self.joined = false;
            if self.s.broadcast {
                log::info!("no seed answered; broadcasting for members of our cluster");
                self.broadcast.do_send(BroadcastOut {
                    msgs: vec![encode_msg(&Msg::Discover)],
                });
            } else if !self.s.seeds.is_empty() && self.attempt == 0 {
                log::info!("no seed answered yet; running as a one-node cluster and retrying");
            }
        }
        let wait = backoff::delay(
            self.attempt,
            self.s.seed_timeout,
            self.s.join_retry_max,
            &mut self.rng,
        );
        self.attempt = self.attempt.saturating_add(1);
        ctx.run_later(wait, |act, ctx| {
            guard(ctx, |ctx| act.seek(ctx));
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
        self.schedule_reconnect(ctx, true);
        self.seek(ctx);
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
                        retry: false,
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
