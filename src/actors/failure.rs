//! Failure-detector actor: SWIM probing with Lifeguard's refinements. Owns the
//! probe order, the probes in flight, the relayed probes it runs for others,
//! the suspicion timers and this node's local health score.
//!
//! Every `probe_interval` (stretched by the health score) it pings the next
//! member in a shuffled round-robin order. No ack within `probe_timeout`: it
//! asks `indirect_checks` other members to ping the target for it (PING-REQ);
//! relays answer with the target's ack or with a NACK. No ack by the end of
//! the period: it accuses the target (Suspect). A suspicion becomes Dead when
//! its timer expires; independent confirmations shorten the timer.
//!
//! The members it probes, their states and who accused each suspect come
//! from the published snapshot: on each new one it diffs the snapshot it
//! last saw against it, and adds to or removes from the probe order, starts
//! or cancels suspicions accordingly. So a restart (or any number of
//! snapshots published while it was busy) cannot leave it behind: the next
//! diff covers everything since the last one it saw.
//!
//! Reads: the snapshot (`SnapshotRx`), awaited as a stream of ticks.
//! Takes: `ProbeMsg` (Ping, Ack, PingReq, Nack), `Confirmation` (another
//! node's evidence, from membership), `StopActivity`.
//! Sends: `Send` (pings, acks, nacks, ping-reqs, confirmations ride as rumors)
//! to the rumor actor, `Accuse` to membership, `Spread` (confirmations).

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::awareness::Awareness;
use crate::protocol::probe_order::ProbeOrder;
use crate::protocol::suspicion::{bounds, Suspicion, SuspicionParams};
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::{Member, MemberState, NodeId};
use crate::snapshot::{changes, Snapshot, SnapshotRx};

/// A relay sends its nack after this fraction of the probe timeout.
const RELAY_NACK_FRACTION: f64 = 0.8;

#[derive(Clone, Debug)]
pub struct FailureSettings {
    pub me: NodeId,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub indirect_checks: usize,
    pub awareness_max_mult: u32,
    pub suspicion: SuspicionParams,
    pub seed: u64,
}

struct Probe {
    target: NodeId,
    incarnation: u64,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

struct Relay {
    origin: SocketAddr,
    origin_seq: u32,
}

pub struct FailureDetector {
    s: FailureSettings,
    /// Derived from `seen`: its live members other than us, shuffled.
    order: ProbeOrder,
    snapshots: SnapshotRx,
    /// The snapshot the probe order and the suspicions agree with.
    seen: Arc<Snapshot>,
    awareness: Awareness,
    suspicions: HashMap<NodeId, (Suspicion, SpawnHandle)>,
    probes: HashMap<u32, Probe>,
    relays: HashMap<u32, Relay>,
    next_seq: u32,
    rng: SmallRng,
    stopped: bool,
    send: Recipient<Send>,
    accuse: Recipient<Accuse>,
    spread: Recipient<Spread>,
    metrics: Arc<Metrics>,
}

impl FailureDetector {
    /// A detector that has seen nothing yet: its first look at `snapshots`
    /// (when it starts) brings in every member.
    pub fn new(
        s: FailureSettings,
        snapshots: SnapshotRx,
        send: Recipient<Send>,
        accuse: Recipient<Accuse>,
        spread: Recipient<Spread>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let seen = Arc::new(Snapshot::empty(s.me.clone()));
        FailureDetector {
            awareness: Awareness::new(s.awareness_max_mult),
            rng: SmallRng::seed_from_u64(s.seed),
            s,
            order: ProbeOrder::default(),
            snapshots,
            seen,
            suspicions: HashMap::new(),
            probes: HashMap::new(),
            relays: HashMap::new(),
            next_seq: 0,
            stopped: false,
            send,
            accuse,
            spread,
            metrics,
        }
    }

    /// Starts with the probe order of a formed cluster (the simulator's
    /// warm start, see `protocol::formed`), which must hold exactly the live
    /// members of the current snapshot but `me`: it counts as seen.
    pub fn with_order(mut self, order: ProbeOrder) -> Self {
        self.order = order;
        self.seen = self.snapshots.borrow().clone();
        self
    }

    /// Brings the probe order and the suspicions up to the newest snapshot,
    /// by diffing the one last seen against it.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        let now = self.snapshots.borrow().clone();
        if Arc::ptr_eq(&now, &self.seen) {
            return;
        }
        let seen = std::mem::replace(&mut self.seen, now.clone());
        // Lifeguard: each refutation of a suspicion about us means we were
        // slow to answer, so our health score rises by one.
        let refuted = now.refutations.saturating_sub(seen.refutations);
        if refuted > 0 {
            self.health(refuted.min(i32::MAX as u64) as i32);
        }
        for (old, new) in seen.diff(&now) {
            let Some(m) = new.filter(|m| m.state.is_live()) else {
                if let Some(id) = old.or(new).map(|m| &m.id) {
                    self.order.remove(id);
                    self.cancel_suspicion(id, ctx);
                }
                continue;
            };
            if m.id == self.s.me {
                continue;
            }
            self.order.insert(m.id.clone(), &mut self.rng);
            let already = old
                .is_some_and(|o| o.state == MemberState::Suspect && o.incarnation == m.incarnation);
            match m.state {
                MemberState::Suspect if !already => {
                    let by = now.accusers.get(&m.id).cloned();
                    let by = by.unwrap_or_else(|| m.id.clone());
                    if by != self.s.me {
                        self.check_suspect_soon(m.id.clone(), m.incarnation, ctx);
                    }
                    self.start_suspicion(m, by, ctx);
                }
                MemberState::Alive => self.cancel_suspicion(&m.id, ctx),
                _ => {}
            }
        }
    }

    /// A live member's record, as last seen.
    fn live(&self, id: &NodeId) -> Option<Member> {
        self.seen
            .table
            .get(id)
            .filter(|m| m.state.is_live())
            .cloned()
    }

    /// Local health score (Lifeguard), for tests and metrics.
    pub fn awareness(&self) -> u32 {
        self.awareness.score()
    }

    fn health(&mut self, delta: i32) {
        self.awareness.apply(delta);
        Metrics::set(&self.metrics.health_score, self.awareness.score() as u64);
    }

    fn seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn send(&self, to: SocketAddr, msgs: Vec<Msg>) {
        self.send.do_send(Send {
            to,
            msgs: msgs.iter().map(encode_msg).collect(),
        });
    }

    fn schedule_probe(&mut self, ctx: &mut Context<Self>) {
        let period = self.awareness.scale(self.s.probe_interval);
        ctx.run_later(period, |act, ctx| {
            guard(ctx, |ctx| act.probe(ctx));
            act.schedule_probe(ctx);
        });
    }

    fn next_target(&mut self) -> Option<Member> {
        for _ in 0..self.order.len() {
            let id = self.order.next(&mut self.rng)?;
            if let Some(m) = self.live(&id) {
                return Some(m);
            }
        }
        None
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        self.catch_up(ctx);
        if let Some(target) = self.next_target() {
            self.probe_member(target, ctx);
        }
    }

    /// A suspicion raised by someone else is checked at once: one extra probe
    /// of the suspect, at a random moment within the next probe interval (so
    /// that the whole cluster does not probe it in the same instant). A dead
    /// member is thus confirmed by several probers about one period after the
    /// first accusation, and its suspicion falls to the minimum timeout; a
    /// healthy one gets pings that carry the suspicion, and refutes sooner.
    fn check_suspect_soon(&mut self, id: NodeId, incarnation: u64, ctx: &mut Context<Self>) {
        let delay = self.s.probe_interval.mul_f64(self.rng.gen::<f64>());
        ctx.run_later(delay, move |act, ctx| {
            guard(ctx, |ctx| {
                act.catch_up(ctx);
                let still = act
                    .live(&id)
                    .filter(|m| m.state == MemberState::Suspect && m.incarnation == incarnation);
                if let Some(m) = still {
                    if !act.stopped {
                        act.probe_member(m, ctx);
                    }
                }
            });
        });
    }

    fn probe_member(&mut self, target: Member, ctx: &mut Context<Self>) {
        let seq = self.seq();
        let mut msgs = vec![Msg::Ping {
            seq,
            target: target.id.clone(),
        }];
        if target.state == MemberState::Suspect {
            // The buddy system: tell the suspect at once, so it can refute.
            msgs.push(Msg::Update {
                member: target.clone(),
                by: Some(self.s.me.clone()),
            });
        }
        self.probes.insert(
            seq,
            Probe {
                target: target.id.clone(),
                incarnation: target.incarnation,
                acked: false,
                expected_nacks: 0,
                nacks: 0,
            },
        );
        Metrics::inc(&self.metrics.probes_sent);
        self.send(target.addr, msgs);
        let timeout = self.awareness.scale(self.s.probe_timeout);
        let period = self.awareness.scale(self.s.probe_interval);
        ctx.run_later(timeout, move |act, ctx| {
            guard(ctx, |_| act.probe_indirectly(seq, target.addr));
        });
        ctx.run_later(period, move |act, ctx| {
            guard(ctx, |ctx| act.conclude(seq, ctx));
        });
    }

    fn probe_indirectly(&mut self, seq: u32, addr: SocketAddr) {
        let Some(p) = self.probes.get(&seq) else {
            return;
        };
        if p.acked || self.stopped {
            return;
        }
        let target = p.target.clone();
        let relays = self.seen.live.sample(
            self.s.indirect_checks,
            &[&target, &self.s.me],
            &mut self.rng,
        );
        for (_, relay) in &relays {
            self.send(
                *relay,
                vec![Msg::PingReq {
                    seq,
                    target: target.clone(),
                    addr,
                }],
            );
        }
        Metrics::add(&self.metrics.indirect_probes, relays.len() as u64);
        if let Some(p) = self.probes.get_mut(&seq) {
            p.expected_nacks = relays.len() as u32;
        }
    }

    fn conclude(&mut self, seq: u32, ctx: &mut Context<Self>) {
        let Some(p) = self.probes.remove(&seq) else {
            return;
        };
        if p.acked || self.stopped {
            return;
        }
        Metrics::inc(&self.metrics.probes_failed);
        // Lifeguard: relays that did not even send a nack point at our own
        // network; with no relays at all we cannot tell, so blame ourselves a bit.
        let delta = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks)
        } else {
            1
        };
        self.health(delta as i32);
        self.catch_up(ctx);
        let Some(m) = self.live(&p.target) else {
            return;
        };
        if m.incarnation != p.incarnation {
            return;
        }
        match m.state {
            MemberState::Alive => self.accuse.do_send(Accuse {
                id: m.id,
                incarnation: m.incarnation,
                state: MemberState::Suspect,
            }),
            MemberState::Suspect => {
                // Someone else suspects it too: our failed probe confirms it.
                let me = self.s.me.clone();
                if self.confirm(&m, me.clone(), ctx) {
                    self.spread.do_send(Spread {
                        member: m,
                        by: Some(me),
                    });
                }
            }
            _ => {}
        }
    }

    fn on_probe_msg(&mut self, from: SocketAddr, msg: Msg, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        match msg {
            // A ping for another id is for a previous owner of this address.
            Msg::Ping { seq, target } if target == self.s.me => {
                self.send(from, vec![Msg::Ack { seq }])
            }
            Msg::Ack { seq } => {
                if let Some(p) = self.probes.get_mut(&seq) {
                    if !p.acked {
                        p.acked = true;
                        self.health(-1);
                    }
                } else if let Some(r) = self.relays.remove(&seq) {
                    self.send(r.origin, vec![Msg::Ack { seq: r.origin_seq }]);
                }
            }
            Msg::Nack { seq } => {
                if let Some(p) = self.probes.get_mut(&seq) {
                    p.nacks += 1;
                }
            }
            Msg::PingReq { seq, target, addr } => {
                // Relaying for a stranger's address would make us a free
                // reflector: only a known member, at the address we know.
                let known = self.snapshots.borrow().table.get(&target).map(|m| m.addr);
                if known != Some(addr) {
                    Metrics::inc(&self.metrics.ping_req_refused);
                    return;
                }
                let my_seq = self.seq();
                self.relays.insert(
                    my_seq,
                    Relay {
                        origin: from,
                        origin_seq: seq,
                    },
                );
                self.send(
                    addr,
                    vec![Msg::Ping {
                        seq: my_seq,
                        target,
                    }],
                );
                // The nack must reach the origin before its probe period ends
                // (its indirect phase starts one probe timeout in, and lasts
                // one more): a late nack counts as a missing one, and would
                // wrongly raise the origin's local health score.
                ctx.run_later(
                    self.s.probe_timeout.mul_f64(RELAY_NACK_FRACTION),
                    move |act, ctx| {
                        guard(ctx, |_| {
                            if let Some(r) = act.relays.remove(&my_seq) {
                                act.send(r.origin, vec![Msg::Nack { seq: r.origin_seq }]);
                            }
                        });
                    },
                );
            }
            _ => {}
        }
    }

    fn schedule_expiry(
        &self,
        id: NodeId,
        deadline: Instant,
        ctx: &mut Context<Self>,
    ) -> SpawnHandle {
        let wait = deadline.saturating_duration_since(Instant::now());
        ctx.run_later(wait, move |act, ctx| {
            guard(ctx, |ctx| act.expire(&id, ctx));
        })
    }

    fn start_suspicion(&mut self, m: &Member, by: NodeId, ctx: &mut Context<Self>) {
        if let Some((s, h)) = self.suspicions.get(&m.id) {
            if s.incarnation >= m.incarnation {
                self.confirm(m, by, ctx);
                return;
            }
            ctx.cancel_future(*h);
        }
        let (min, max) = bounds(&self.s.suspicion, self.seen.live.len().max(1));
        let own_evidence = by == self.s.me;
        let mut s = Suspicion::new(
            m.incarnation,
            by,
            Instant::now(),
            min,
            max,
            self.s.suspicion.confirmations,
        );
        s.own_evidence = own_evidence;
        let handle = self.schedule_expiry(m.id.clone(), s.deadline(), ctx);
        self.suspicions.insert(m.id.clone(), (s, handle));
    }

    /// Records a confirmation; true if it is one worth passing on (see
    /// `Suspicion::confirm`).
    fn confirm(&mut self, m: &Member, by: NodeId, ctx: &mut Context<Self>) -> bool {
        let Some((s, h)) = self.suspicions.get_mut(&m.id) else {
            return false;
        };
        if s.incarnation != m.incarnation {
            return false;
        }
        // Our own evidence may let an expired suspicion conclude at once.
        let newly_own = by == self.s.me && !s.own_evidence;
        s.own_evidence |= newly_own;
        let counted = s.confirm(by);
        if !counted && !newly_own {
            return false;
        }
        let (deadline, old) = (s.deadline(), *h);
        ctx.cancel_future(old);
        let handle = self.schedule_expiry(m.id.clone(), deadline, ctx);
        if let Some((_, h)) = self.suspicions.get_mut(&m.id) {
            *h = handle;
        }
        counted
    }

    fn cancel_suspicion(&mut self, id: &NodeId, ctx: &mut Context<Self>) {
        if let Some((_, h)) = self.suspicions.remove(id) {
            ctx.cancel_future(h);
        }
    }

    /// A suspicion's timer ran out. A node declares a member dead only after
    /// seeing it fail a probe of its own: if this node has not (it only heard
    /// of the suspicion), it probes once more and decides one period later. A
    /// failed probe confirms (and brings this back at once); an answer
    /// usually carries the member's refutation. This costs nothing when a
    /// member has really crashed (its first accuser has seen it fail, and
    /// its "dead" reaches everyone), and guards against a refutation that got
    /// lost on its way to this one node.
    fn expire(&mut self, id: &NodeId, ctx: &mut Context<Self>) {
        let timed_out = self.suspicions.get(id).map(|(s, _)| s.incarnation);
        // A refutation we have not caught up with yet cancels it here; a
        // suspicion at a newer incarnation replaces it, with its own timer.
        self.catch_up(ctx);
        let Some((s, _)) = self.suspicions.get(id) else {
            return;
        };
        if Some(s.incarnation) != timed_out {
            return;
        }
        let (incarnation, own_evidence) = (s.incarnation, s.own_evidence);
        let current = self
            .live(id)
            .filter(|m| m.state == MemberState::Suspect && m.incarnation == incarnation);
        let Some(m) = current.filter(|_| !self.stopped) else {
            self.suspicions.remove(id);
            return;
        };
        if !own_evidence {
            let retry = self.awareness.scale(self.s.probe_interval) + Duration::from_millis(10);
            self.probe_member(m, ctx);
            let again = id.clone();
            let h = ctx.run_later(retry, move |act, ctx| {
                guard(ctx, |ctx| act.expire(&again, ctx));
            });
            if let Some((_, old)) = self.suspicions.get_mut(id) {
                *old = h;
            }
            return;
        }
        let (s, _) = self.suspicions.remove(id).expect("present");
        log::debug!("suspicion of {id} expired after {:?}", s.started.elapsed());
        self.metrics.observe_detection(s.started.elapsed());
        self.accuse.do_send(Accuse {
            id: id.clone(),
            incarnation: s.incarnation,
            state: MemberState::Dead,
        });
    }
}

impl Actor for FailureDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // After a restart the timers are gone: re-arm running suspicions.
        let pending: Vec<(NodeId, Instant)> = self
            .suspicions
            .iter()
            .map(|(id, (s, _))| (id.clone(), s.deadline()))
            .collect();
        for (id, deadline) in pending {
            let h = self.schedule_expiry(id.clone(), deadline, ctx);
            if let Some((_, old)) = self.suspicions.get_mut(&id) {
                *old = h;
            }
        }
        // Then catch up with the snapshot (everything published while we
        // were down is in the newest one) and follow every new one; the
        // restart cleared the stream with the timers, so it is added anew.
        self.catch_up(ctx);
        ctx.add_stream(changes(&self.snapshots));
        self.schedule_probe(ctx);
    }
}

impl Supervised for FailureDetector {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.probes.clear();
        self.relays.clear();
    }
}

impl Handler<ProbeMsg> for FailureDetector {
    type Result = ();
    fn handle(&mut self, m: ProbeMsg, ctx: &mut Context<Self>) {
        guard(ctx, |ctx| self.on_probe_msg(m.from, m.msg, ctx));
    }
}

impl StreamHandler<()> for FailureDetector {
    fn handle(&mut self, _: (), ctx: &mut Context<Self>) {
        guard(ctx, |ctx| self.catch_up(ctx));
    }
    /// The publisher is gone (the node is shutting down): nothing to follow.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Confirmation> for FailureDetector {
    type Result = ();
    fn handle(&mut self, c: Confirmation, ctx: &mut Context<Self>) {
        guard(ctx, |ctx| {
            // The suspicion it confirms may be in a snapshot not seen yet.
            self.catch_up(ctx);
            if self.confirm(&c.member, c.by.clone(), ctx) {
                // Pass the new confirmation on (only the first k, as
                // memberlist does).
                self.spread.do_send(Spread {
                    member: c.member,
                    by: Some(c.by),
                });
            }
        });
    }
}

impl Handler<StopActivity> for FailureDetector {
    type Result = ();
    fn handle(&mut self, _: StopActivity, _: &mut Context<Self>) {
        self.stopped = true;
    }
}

impl Handler<Crash> for FailureDetector {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}

/// A query for tests: the current health score.
#[derive(Message)]
#[rtype(result = "u32")]
pub struct GetAwareness;

impl Handler<GetAwareness> for FailureDetector {
    type Result = u32;
    fn handle(&mut self, _: GetAwareness, _: &mut Context<Self>) -> u32 {
        self.awareness.score()
    }
}

/// What the detector derived from the snapshots, for tests: the index of
/// the snapshot it last saw, the members in its probe order, and the
/// suspicions it runs (member, incarnation).
#[derive(Message)]
#[rtype(result = "(u64, Vec<NodeId>, Vec<(NodeId, u64)>)")]
pub struct GetDerived;

impl Handler<GetDerived> for FailureDetector {
    type Result = MessageResult<GetDerived>;
    fn handle(&mut self, _: GetDerived, _: &mut Context<Self>) -> Self::Result {
        let mut suspicions: Vec<(NodeId, u64)> = self
            .suspicions
            .iter()
            .map(|(id, (s, _))| (id.clone(), s.incarnation))
            .collect();
        suspicions.sort();
        MessageResult((
            self.seen.index,
            self.order.members().cloned().collect(),
            suspicions,
        ))
    }
}
