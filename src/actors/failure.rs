//! Failure-detector actor: SWIM probing with Lifeguard's refinements. Owns the
//! probe order, the probes in flight, the relayed probes it runs for others,
//! the suspicion timers and this node's local health score.
//!
//! Every `probe_interval` (stretched by the health score) it pings the member
//! that the schedule all nodes share names for this step
//! (`protocol::probe_order`). While no ack comes it pings again, every
//! eighth of `probe_timeout`; at `probe_timeout` it also asks
//! `indirect_checks` other members to ping the target for it (PING-REQ);
//! relays answer with the target's ack or with a NACK. No ack by the end of
//! the period: it accuses the target (Suspect), and probes it
//! again every period while its suspicion runs. A suspicion becomes Dead
//! when its timer expires; independent confirmations shorten the timer.
//!
//! Its timers are data (`protocol::timers`): one ordered queue of `Due`
//! values and a single actix timer armed for the earliest, so a wake-up
//! costs nothing for the hundreds of suspicion timers a partition leaves
//! pending (actix polls every `run_later` of an actor on every wake-up).
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
//! node's evidence, from membership), `StopActivity`, `ProbeOwnName`
//! (membership: does another address answer to our name?).
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
use crate::protocol::probe_order::{phase, step, ProbeOrder};
use crate::protocol::suspicion::{
    bounds, suspect_probe_chance, wanted, Suspicion, SuspicionParams,
};
use crate::protocol::timers::{TimerKey, Timers};
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::{Member, MemberState, NodeId};
use crate::snapshot::{changes, Snapshot, SnapshotRx};

mod suspicions;

/// A relay sends its nack after this fraction of the probe timeout.
const RELAY_NACK_FRACTION: f64 = 0.8;

/// An unanswered probe pings its target again every `probe_timeout` divided
/// by this (62.5 ms by default), until an ack or the end of the period:
/// eight direct round trips before the relays are asked, sixteen in the
/// period. Relays ping as often. See `ping_again`.
const PINGS_PER_PROBE_TIMEOUT: u32 = 8;

/// A member that hears of a suspicion and is chosen to check it probes the
/// suspect within this fraction of a probe interval: soon, so that a crash
/// collects its confirmations by the time the first accuser's timer reaches
/// its minimum, yet spread out so the probers do not all ping at once.
const SUSPECT_CHECK_SPREAD: f64 = 0.2;

/// What the detector's timers do when they fire.
#[derive(Debug)]
enum Due {
    /// The next round-robin probe.
    Tick,
    /// A probe's direct phase is over: ask relays (PING-REQ).
    Indirect { seq: u32, addr: SocketAddr },
    /// A probe's period is over: accuse or confirm if nothing answered.
    Conclude { seq: u32 },
    /// A probe is still unanswered: the direct ping again (every
    /// `probe_timeout / PINGS_PER_PROBE_TIMEOUT` until the period ends).
    Retry { seq: u32, addr: SocketAddr },
    /// A probe relayed for another node got no ack in time: nack it.
    RelayNack { seq: u32 },
    /// A probe relayed for another node is half-way to its nack: ping the
    /// target once more.
    RelayRetry { seq: u32 },
    /// Probe a suspect someone else accused.
    CheckSuspect { id: NodeId, incarnation: u64 },
    /// A suspicion's timer.
    Expire { id: NodeId },
}

#[derive(Clone, Debug)]
pub struct FailureSettings {
    pub me: NodeId,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub indirect_checks: usize,
    pub awareness_max_mult: u32,
    pub suspicion: SuspicionParams,
    pub seed: u64,
    /// Probe steps are counted from here (`protocol::probe_order`): an
    /// instant that is a whole number of probe intervals from every other
    /// node's, numbered `first_step`, so that all nodes number a step alike.
    pub step_origin: Instant,
    pub first_step: u64,
}

struct Probe {
    target: NodeId,
    incarnation: u64,
    sent: Instant,
    /// When its period ends (`Due::Conclude`): no direct ping after.
    ends: Instant,
    /// The gap between its direct pings while no ack comes.
    retry_every: Duration,
    /// An extra probe, beside the round robin: of a suspect, or again of
    /// a member we have just accused (see `conclude`).
    extra: bool,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

struct Relay {
    origin: SocketAddr,
    origin_seq: u32,
    /// Whom we ping for the origin, to ping again (`Due::RelayRetry`).
    target: NodeId,
    addr: SocketAddr,
    /// When we give up and nack: no ping after.
    nack_at: Instant,
}

pub struct FailureDetector {
    s: FailureSettings,
    /// Derived from `seen`: its live members other than us, on the ring.
    order: ProbeOrder,
    snapshots: SnapshotRx,
    /// The snapshot the probe order and the suspicions agree with.
    seen: Arc<Snapshot>,
    awareness: Awareness,
    timers: Timers<Due>,
    /// The one actix timer, armed for the earliest of `timers`.
    alarm: Option<(Instant, SpawnHandle)>,
    suspicions: HashMap<NodeId, (Suspicion, TimerKey)>,
    /// Our accusations on their way through membership: the member, the
    /// incarnation accused and when the unanswered probe was sent, which is
    /// when the suspicion's clock starts once the snapshot shows it.
    accused: HashMap<NodeId, (u64, Instant)>,
    probes: HashMap<u32, Probe>,
    relays: HashMap<u32, Relay>,
    /// Probes of our own name at another address (`ProbeOwnName`): acked?
    name_probes: HashMap<u32, bool>,
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
            order: ProbeOrder::new(&s.me),
            s,
            snapshots,
            seen,
            timers: Timers::default(),
            alarm: None,
            suspicions: HashMap::new(),
            accused: HashMap::new(),
            probes: HashMap::new(),
            relays: HashMap::new(),
            name_probes: HashMap::new(),
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
    fn catch_up(&mut self) {
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
                    self.cancel_suspicion(id);
                }
                continue;
            };
            if m.id == self.s.me {
                continue;
            }
            self.order.insert(m.id.clone());
            let already = old
                .is_some_and(|o| o.state == MemberState::Suspect && o.incarnation == m.incarnation);
            match m.state {
                MemberState::Suspect if !already => {
                    let by = now.accusers.get(&m.id).cloned();
                    let by = by.unwrap_or_else(|| m.id.clone());
                    if by != self.s.me {
                        self.check_suspect_soon(m.id.clone(), m.incarnation);
                    }
                    self.start_suspicion(m, by);
                }
                MemberState::Alive => self.cancel_suspicion(&m.id),
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
            .map(|m| Member::clone(m))
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

    fn after(&mut self, wait: Duration, due: Due) -> TimerKey {
        self.timers.schedule(Instant::now() + wait, due)
    }

    /// Points the one actix timer at the earliest due timer. Called at the
    /// end of everything that may have scheduled or cancelled one.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let next = self.timers.next();
        if self.alarm.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, h)) = self.alarm.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = next {
            let wait = at.saturating_duration_since(Instant::now());
            let h = ctx.run_later(wait, |act, ctx| {
                act.alarm = None;
                act.fire(ctx);
            });
            self.alarm = Some((at, h));
        }
    }

    /// Runs every timer that is due, then re-arms.
    fn fire(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        while let Some(due) = self.timers.pop_due(now) {
            if guard(ctx, |_| self.on_due(due)).is_none() {
                return; // panicked: the actor restarts and re-arms
            }
        }
        self.arm(ctx);
    }

    fn on_due(&mut self, due: Due) {
        match due {
            Due::Tick => {
                self.probe();
                let at = self.next_tick(self.awareness.multiplier());
                self.timers.schedule(at, Due::Tick);
            }
            Due::Indirect { seq, addr } => self.probe_indirectly(seq, addr),
            Due::Retry { seq, addr } => self.ping_again(seq, addr),
            Due::Conclude { seq } => self.conclude(seq),
            Due::RelayRetry { seq } => {
                if let Some(r) = self.relays.get(&seq) {
                    let again = Msg::Ping {
                        seq,
                        target: r.target.clone(),
                    };
                    let (addr, nack_at) = (r.addr, r.nack_at);
                    self.send(addr, vec![again]);
                    let every = self.retry_every(self.s.probe_timeout);
                    if Instant::now() + every < nack_at {
                        self.after(every, Due::RelayRetry { seq });
                    }
                }
            }
            Due::RelayNack { seq } => {
                if let Some(r) = self.relays.remove(&seq) {
                    self.send(r.origin, vec![Msg::Nack { seq: r.origin_seq }]);
                }
            }
            Due::CheckSuspect { id, incarnation } => {
                self.catch_up();
                let still = self
                    .live(&id)
                    .filter(|m| m.state == MemberState::Suspect && m.incarnation == incarnation);
                if let Some(m) = still.filter(|_| !self.stopped) {
                    self.probe_member(m);
                }
            }
            Due::Expire { id } => self.expire(&id),
        }
    }

    /// Where this node's ticks fall within a probe period: its phase
    /// (`probe_order::phase`), within the first tenth of the period, so
    /// that the probes one member receives from its successive probers
    /// come 0.9 to 1.1 periods apart.
    fn phase_origin(&self) -> Instant {
        self.s.step_origin + self.s.probe_interval.mul_f64(phase(&self.s.me))
    }

    /// The step this node is at now: the number of whole periods since
    /// its phase origin, rounded (a tick fires a hair after its instant).
    fn current_step(&self) -> u64 {
        let t = self.s.probe_interval;
        let elapsed = Instant::now().saturating_duration_since(self.phase_origin());
        self.s.first_step.wrapping_add(step(elapsed + t / 2, t))
    }

    /// The instant of this node's tick `periods` steps from now (at least
    /// half a period away, so a change of phase never probes twice in one
    /// step).
    fn next_tick(&self, periods: u32) -> Instant {
        let t = self.s.probe_interval;
        let now = Instant::now();
        let origin = self.phase_origin();
        let elapsed = now.saturating_duration_since(origin);
        let slot = |k: u64| origin + t.saturating_mul(k.min(u32::MAX as u64) as u32);
        let mut k = step(elapsed, t) + periods.max(1) as u64;
        while slot(k) < now + t / 2 {
            k += 1;
        }
        slot(k)
    }

    /// This step's member on the shared schedule (`protocol::probe_order`).
    fn next_target(&self) -> Option<Member> {
        let step = self.current_step();
        self.order.at_step(step).find_map(|id| self.live(id))
    }

    fn probe(&mut self) {
        if self.stopped {
            return;
        }
        self.catch_up();
        if let Some(target) = self.next_target() {
            self.probe_member(target);
        }
    }

    /// A suspicion raised by someone else is checked soon by a few members:
    /// each that hears of it probes the suspect with a chance that makes
    /// about `suspect_probers` (9) probers in all, at a random moment within
    /// `SUSPECT_CHECK_SPREAD` of a probe interval. A crashed member is thus
    /// confirmed about one period after the first accusation, when the first
    /// accuser's timer (counted from its own probe) nears its minimum; a
    /// healthy one gets pings that carry the suspicion, and refutes sooner.
    /// Every member probing every suspect, as before, cost N pings and up to
    /// N failed-probe confirmations per false suspicion: at 30% loss, when
    /// a fifth of all probes failed, that was most of the cluster's traffic.
    fn check_suspect_soon(&mut self, id: NodeId, incarnation: u64) {
        let k = self.s.suspicion.confirmations;
        if !self
            .rng
            .gen_bool(suspect_probe_chance(k, self.seen.live.len()))
        {
            return;
        }
        let spread = self.s.probe_interval.mul_f64(SUSPECT_CHECK_SPREAD);
        let delay = spread.mul_f64(self.rng.gen::<f64>());
        self.after(delay, Due::CheckSuspect { id, incarnation });
    }

    /// The ping of probe `seq`, with the buddy message when the target is
    /// suspect, or when `accusing` it (an extra probe of a member we have
    /// just accused, whose suspicion may not be in the table yet): it learns
    /// of the suspicion at once and can refute (or, if it has refuted
    /// already, answer us directly: we are behind).
    fn ping(&self, seq: u32, target: &Member, accusing: bool) -> Vec<Msg> {
        let mut msgs = vec![Msg::Ping {
            seq,
            target: target.id.clone(),
        }];
        if accusing || target.state == MemberState::Suspect {
            msgs.push(Msg::Update {
                member: Member {
                    state: MemberState::Suspect,
                    ..target.clone()
                },
                by: Some(self.s.me.clone()),
            });
        }
        msgs
    }

    fn probe_member(&mut self, target: Member) {
        let extra = target.state == MemberState::Suspect;
        self.probe_member_as(target, extra);
    }

    fn probe_member_as(&mut self, target: Member, extra: bool) {
        let seq = self.seq();
        let msgs = self.ping(seq, &target, extra);
        let timeout = self.awareness.scale(self.s.probe_timeout);
        let period = self.awareness.scale(self.s.probe_interval);
        let retry_every = self.retry_every(timeout);
        let now = Instant::now();
        self.probes.insert(
            seq,
            Probe {
                target: target.id.clone(),
                incarnation: target.incarnation,
                sent: now,
                ends: now + period,
                retry_every,
                extra,
                acked: false,
                expected_nacks: 0,
                nacks: 0,
            },
        );
        Metrics::inc(&self.metrics.probes_sent);
        self.send(target.addr, msgs);
        let addr = target.addr;
        self.after(retry_every, Due::Retry { seq, addr });
        self.after(timeout, Due::Indirect { seq, addr });
        self.after(period, Due::Conclude { seq });
    }

    /// The gap between the pings of a probe that gets no ack (ours, or one
    /// we relay), for a probe timeout of `timeout`.
    fn retry_every(&self, timeout: Duration) -> Duration {
        (timeout / PINGS_PER_PROBE_TIMEOUT).max(Duration::from_millis(1))
    }

    /// The direct ping of probe `seq` again, if it is still unanswered, and
    /// the next one armed: every `probe_timeout / PINGS_PER_PROBE_TIMEOUT`
    /// (62.5 ms) until an ack or the end of the period, sixteen at most.
    ///
    /// Under loss every extra round trip halves the chance that a healthy
    /// member fails its probe (at 30% loss, 0.51 per round trip), and a
    /// failed probe costs a suspicion and a refutation whose rumors reach
    /// every member about twelve times: at 30% loss, with two direct pings
    /// and the relays, those rumors were four fifths of all traffic (1,750
    /// bytes per node per second at 100 nodes, against 78 without loss).
    /// A ping costs one datagram, sent only while the ack is missing, and
    /// eight of them before the timeout spare most of the relays' traffic
    /// (three ping-reqs, their pings, acks and nacks). The relays remain for
    /// what direct pings cannot tell: a path between us and the target that
    /// is down while the target is well. The price: a round trip longer
    /// than the gap gets its ping twice (config.yml, `probe_timeout_ms`).
    fn ping_again(&mut self, seq: u32, addr: SocketAddr) {
        let Some(p) = self.probes.get(&seq) else {
            return;
        };
        if p.acked || self.stopped {
            return;
        }
        let (target, extra, incarnation) = (p.target.clone(), p.extra, p.incarnation);
        let next = Instant::now() + p.retry_every;
        if next < p.ends {
            self.after(p.retry_every, Due::Retry { seq, addr });
        }
        let again = match self.live(&target) {
            // An extra probe is of a suspect, or of a member we have just
            // accused: its pings all carry the suspicion (unless the member
            // has moved on to a new incarnation since).
            Some(m) => self.ping(seq, &m, extra && m.incarnation == incarnation),
            None => vec![Msg::Ping { seq, target }],
        };
        self.send(addr, again);
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

    fn conclude(&mut self, seq: u32) {
        let Some(p) = self.probes.remove(&seq) else {
            return;
        };
        if p.acked || self.stopped {
            return;
        }
        Metrics::inc(&self.metrics.probes_failed);
        // Lifeguard: relays that did not even send a nack point at our own
        // network. Without relays memberlist blames itself a little for any
        // failed probe; we do so only when relays are configured off. In a
        // two-member cluster there is nobody to ask, and a failed probe of
        // the one peer says nothing about us: blaming ourselves would stretch
        // our suspicion timeout (times 3 after two probes) exactly when the
        // peer has crashed. Extra probes of suspects do not count either:
        // their number follows the suspicions going round, not our network,
        // and at 10% loss (a fifth of relay nacks lost) they raised every
        // node's score to 5 within seconds of a 20-node crash, stretching
        // every period 6x.
        let delta = if p.extra {
            0
        } else if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks)
        } else if self.s.indirect_checks == 0 {
            1
        } else {
            0
        };
        self.health(delta as i32);
        self.catch_up();
        let Some(m) = self.live(&p.target) else {
            return;
        };
        if m.incarnation != p.incarnation {
            return;
        }
        match m.state {
            MemberState::Alive => {
                self.accused.insert(m.id.clone(), (m.incarnation, p.sent));
                self.accuse.do_send(Accuse {
                    id: m.id.clone(),
                    incarnation: m.incarnation,
                    state: MemberState::Suspect,
                });
                // Probing on starts now (see `keeps_probing`), the ping
                // carrying our accusation; a failed re-probe while the
                // accusation is still on its way accuses once more, and
                // stops there.
                if !p.extra {
                    self.probe_member_as(m, true);
                }
            }
            MemberState::Suspect => {
                // Someone else suspects it too: our failed probe confirms it.
                let me = self.s.me.clone();
                if self.confirm(&m, me.clone()) {
                    self.spread.do_send(Spread {
                        member: m.clone(),
                        by: Some(me),
                    });
                }
                if self.keeps_probing(&m.id) {
                    self.probe_member_as(m, true);
                }
            }
            _ => {}
        }
    }

    fn on_probe_msg(&mut self, from: SocketAddr, sender: &NodeId, msg: Msg) {
        if self.stopped {
            return;
        }
        match msg {
            // A ping for another id is for a previous owner of this address.
            Msg::Ping { seq, target } if target == self.s.me => {
                self.send(from, vec![Msg::Ack { seq }])
            }
            Msg::Ack { seq } => {
                if let Some(acked) = self.name_probes.get_mut(&seq) {
                    *acked = true;
                } else if let Some(p) = self.probes.get_mut(&seq) {
                    if !p.acked {
                        p.acked = true;
                        let (target, incarnation) = (p.target.clone(), p.incarnation);
                        self.health(-1);
                        self.answered(&target, incarnation);
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
                let (known, origin_is_member) = {
                    let snap = self.snapshots.borrow();
                    let origin = snap.table.get(sender);
                    (
                        snap.table.get(&target).map(|m| m.addr),
                        origin.is_some_and(|m| m.addr == from && m.state.is_live()),
                    )
                };
                if known != Some(addr) {
                    Metrics::inc(&self.metrics.ping_req_refused);
                    return;
                }
                let my_seq = self.seq();
                // The nack must reach the origin before its probe period ends
                // (its indirect phase starts one probe timeout in, and lasts
                // one more): a late nack counts as a missing one, and would
                // wrongly raise the origin's local health score.
                let wait = self.s.probe_timeout.mul_f64(RELAY_NACK_FRACTION);
                self.relays.insert(
                    my_seq,
                    Relay {
                        origin: from,
                        origin_seq: seq,
                        target: target.clone(),
                        addr,
                        nack_at: Instant::now() + wait,
                    },
                );
                self.send(
                    addr,
                    vec![Msg::Ping {
                        seq: my_seq,
                        target,
                    }],
                );
                self.after(wait, Due::RelayNack { seq: my_seq });
                // Until then the ping again, as often as our own probes do
                // (`ping_again`): our round trip to the target is lost half
                // the time at 30% loss, and a relay that rescues the probe
                // saves a false suspicion. Only for a live member at its
                // known address, though: for anyone else one ping per
                // ping-req, so that a stranger cannot buy six pings at a
                // member with one datagram.
                if origin_is_member {
                    let every = self.retry_every(self.s.probe_timeout);
                    self.after(every, Due::RelayRetry { seq: my_seq });
                }
            }
            _ => {}
        }
    }
}

impl Actor for FailureDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The timer queue survives a restart (suspicions keep their
        // deadlines); the actix timer that woke us for it does not.
        self.alarm = None;
        // The first probe at this node's phase of the shared schedule (see
        // `next_tick`), half a period to a period and a half from now.
        let at = self.next_tick(1);
        self.timers.schedule(at, Due::Tick);
        // Then catch up with the snapshot (everything published while we
        // were down is in the newest one) and follow every new one; the
        // restart cleared the stream with the timers, so it is added anew.
        self.catch_up();
        ctx.add_stream(changes(&self.snapshots));
        self.arm(ctx);
    }
}

impl Supervised for FailureDetector {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.probes.clear();
        self.relays.clear();
        // Probes in flight are forgotten, and `started` schedules the next
        // tick: only the suspicions' timers (and checks of them) carry over.
        self.timers
            .retain(|d| matches!(d, Due::Expire { .. } | Due::CheckSuspect { .. }));
    }
}

impl Handler<ProbeMsg> for FailureDetector {
    type Result = ();
    fn handle(&mut self, m: ProbeMsg, ctx: &mut Context<Self>) {
        guard(ctx, |_| self.on_probe_msg(m.from, &m.sender, m.msg));
        self.arm(ctx);
    }
}

impl StreamHandler<()> for FailureDetector {
    fn handle(&mut self, _: (), ctx: &mut Context<Self>) {
        guard(ctx, |_| self.catch_up());
        self.arm(ctx);
    }
    /// The publisher is gone (the node is shutting down): nothing to follow.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<Confirmation> for FailureDetector {
    type Result = ();
    fn handle(&mut self, c: Confirmation, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            // The suspicion it confirms may be in a snapshot not seen yet.
            self.catch_up();
            if self.confirm(&c.member, c.by.clone()) {
                // Pass the new confirmation on (only the first k, as
                // memberlist does).
                self.spread.do_send(Spread {
                    member: c.member,
                    by: Some(c.by),
                });
            }
        });
        self.arm(ctx);
    }
}

impl Handler<StopActivity> for FailureDetector {
    type Result = ();
    fn handle(&mut self, _: StopActivity, _: &mut Context<Self>) {
        self.stopped = true;
    }
}

/// Pings our own NODE_ID at the address given, three times a probe timeout
/// apart, and answers whether any ack came back (`ProbeOwnName`).
impl Handler<ProbeOwnName> for FailureDetector {
    type Result = ResponseActFuture<Self, bool>;
    fn handle(&mut self, m: ProbeOwnName, ctx: &mut Context<Self>) -> Self::Result {
        let seq = self.seq();
        self.name_probes.insert(seq, false);
        for i in 0..3u32 {
            let target = self.s.me.clone();
            ctx.run_later(self.s.probe_timeout * i, move |act, _| {
                act.send(m.addr, vec![Msg::Ping { seq, target }]);
            });
        }
        let wait = self.s.probe_timeout * 3;
        Box::pin(
            tokio::time::sleep(wait)
                .into_actor(self)
                .map(move |_, act, _| act.name_probes.remove(&seq).unwrap_or(false)),
        )
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
        MessageResult((self.seen.index, self.order.members(), suspicions))
    }
}
