//! Membership actor: owns the member table (this node's view of the cluster)
//! and this node's own record. Every change to the table goes through the
//! merge rules in `protocol::member`; this actor only decides what to do
//! about a change: tell the subscribers, re-gossip it, or refute it when the
//! rumor is about ourselves. It also runs push-pull exchanges, since they
//! read and write the table: that part is in `membership/sync.rs`.
//!
//! Takes: `Rumors` (updates and push-pull records from the transport),
//! `SyncMsg` and `StartSync` (push-pull, in `sync.rs`), `Accuse` (the
//! failure detector's verdicts), `PublishServices` (the registry),
//! `LeaveCluster` (the leave coordinator), `GetMembers`, `GetTable`,
//! `Subscribe`.
//! Sends: `MemberEvent` to subscribers (the event stream's feed),
//! `Confirmation` to the failure detector, `Spread` and `Send` to the rumor
//! actor.
//! Publishes: a [`Snapshot`](crate::snapshot::Snapshot) of the table (with
//! its peer sets, the accuser of each suspect and the refutation count)
//! after every change; every other actor and face reads that, not events.

use actix::prelude::*;
use imbl::OrdMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

mod sync;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::member::{
    name_verdict, plausible_incarnation, refutation, Change, NameVerdict,
};
use crate::protocol::services::ServiceSet;
use crate::protocol::sync_plan::{page_bounds, plan_gap, plan_page};
use crate::protocol::view::View;
use crate::protocol::wire::{encode_msg, paginate, DigestEntry, EncodedMsg, Msg};
use crate::protocol::{Member, MemberState, NodeId};
use crate::snapshot::{Publisher, SnapshotRx};

/// How many members a refutation is sent to directly.
const DIRECT_REFUTATION_PEERS: usize = 64;
/// A member we hold dead that sends us a datagram is told so, at most once
/// per this long (see `tell_the_dead`).
const TELL_THE_DEAD_EVERY: Duration = Duration::from_secs(1);

pub struct MembershipSettings {
    pub me: Member,
    pub room: usize,
    pub max_members: usize,
    pub dead_reclaim: Duration,
    /// How long a failed member stays in the reconnect book.
    pub reconnect_timeout: Duration,
    /// Exit the process (code 2) on losing a name conflict (the agent).
    pub exit_on_name_taken: bool,
    pub stats_interval: Duration,
    pub seed: u64,
}

pub struct Membership {
    me: NodeId,
    room: usize,
    view: View,
    leaving: bool,
    dead_reclaim: Duration,
    reconnect_timeout: Duration,
    stats_interval: Duration,
    rng: SmallRng,
    partial: BTreeMap<(SocketAddr, u32), sync::PartialSync>,
    /// The periodic push-pull waiting for all its pages and records.
    awaiting_sync: Option<sync::AwaitingSync>,
    /// Tokens handed to awaited exchanges so far.
    sync_tokens: u64,
    /// Members we hold dead that we told so, and when (`tell_the_dead`).
    told_dead: BTreeMap<NodeId, Instant>,
    rumor: Recipient<Spread>,
    send: Recipient<Send>,
    subscribers: Vec<Recipient<MemberEvent>>,
    confirm: Recipient<Confirmation>,
    metrics: Arc<Metrics>,
    publisher: Publisher,
    /// Who made each suspect member suspect (published with the table).
    accusers: OrdMap<NodeId, NodeId>,
    /// Suspicions about ourselves refuted so far (published).
    refutations: u64,
    /// The view generation last published.
    published: u64,
    /// Asks the failure detector whether another address answers to our
    /// name (None: no probe, a previous life is outbid at once).
    name_probe: Option<Recipient<ProbeOwnName>>,
    exit_on_name_taken: bool,
    /// What we know about each other address seen holding our name.
    name_checks: BTreeMap<SocketAddr, NameCheck>,
    /// Addresses to probe once the current message is handled.
    to_probe: Vec<SocketAddr>,
    /// When we first knew another live member.
    joined_at: Option<Instant>,
}

/// Another address holding our NODE_ID, as far as we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameCheck {
    /// Being probed; the highest incarnation it was seen with.
    Probing(u64),
    /// It answered: another live process with our name (no war with it).
    Held,
    /// It did not answer: a previous life of ours, outbid like any other.
    PreviousLife,
}

/// Names a change to another member's record.
pub fn classify(change: &Change) -> EventKind {
    use MemberState::*;
    if !change.liveness_changed {
        return EventKind::Updated;
    }
    match (change.old_state, change.new_state) {
        (None | Some(Dead) | Some(Left), Alive) => EventKind::Joined,
        (Some(Suspect), Alive) => EventKind::AliveAgain,
        (Some(Alive), Alive) => EventKind::Updated,
        (_, Suspect) => EventKind::Suspected,
        (_, Dead) => EventKind::Failed,
        (_, Left) => EventKind::Left,
    }
}

impl Membership {
    pub fn new(
        s: MembershipSettings,
        rumor: Recipient<Spread>,
        send: Recipient<Send>,
        confirm: Recipient<Confirmation>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut view = View::new(s.max_members);
        let me = s.me.id.clone();
        // Our own record always fits: the table is empty.
        let _ = view.apply(&s.me, Instant::now());
        let (publisher, _) = Publisher::new(me.clone(), &view);
        let published = view.generation();
        Membership {
            me,
            room: s.room,
            view,
            leaving: false,
            dead_reclaim: s.dead_reclaim,
            reconnect_timeout: s.reconnect_timeout,
            stats_interval: s.stats_interval,
            rng: SmallRng::seed_from_u64(s.seed),
            partial: BTreeMap::new(),
            awaiting_sync: None,
            sync_tokens: 0,
            told_dead: BTreeMap::new(),
            rumor,
            send,
            subscribers: Vec::new(),
            confirm,
            metrics,
            publisher,
            accusers: OrdMap::new(),
            refutations: 0,
            published,
            name_probe: None,
            exit_on_name_taken: s.exit_on_name_taken,
            name_checks: BTreeMap::new(),
            to_probe: Vec::new(),
            joined_at: None,
        }
    }

    /// Probes another address holding our name before outbidding it
    /// (through the failure detector).
    pub fn with_name_probe(mut self, probe: Recipient<ProbeOwnName>) -> Self {
        self.name_probe = Some(probe);
        self
    }

    /// Probes the addresses found holding our name since the last call.
    fn start_name_probes(&mut self, ctx: &mut Context<Self>) {
        let Some(probe) = self.name_probe.clone() else {
            self.to_probe.clear();
            return;
        };
        for addr in std::mem::take(&mut self.to_probe) {
            log::info!(
                "another address, {addr}, claims our NODE_ID {}: probing it",
                self.me
            );
            ctx.spawn(probe.send(ProbeOwnName { addr }).into_actor(self).map(
                move |answer, act, _| match answer {
                    Ok(answered) => {
                        act.on_name_probe(addr, answered);
                        act.publish();
                    }
                    // The detector was restarting: ask again next time.
                    Err(_) => {
                        act.name_checks.remove(&addr);
                    }
                },
            ));
        }
    }

    fn on_name_probe(&mut self, addr: SocketAddr, answered: bool) {
        let Some(NameCheck::Probing(seen)) = self.name_checks.get(&addr).copied() else {
            return;
        };
        let member_for = self.joined_at.map(|t| t.elapsed());
        match name_verdict(answered, member_for) {
            NameVerdict::TakeOver => {
                self.name_checks.insert(addr, NameCheck::PreviousLife);
                let mut own = self.own();
                own.incarnation = own.incarnation.max(seen).saturating_add(1);
                log::info!(
                    "nothing answers at {addr}: a previous life of ours; taking our name back at incarnation {}",
                    own.incarnation
                );
                self.announce_self(own);
            }
            verdict => {
                self.name_checks.insert(addr, NameCheck::Held);
                Metrics::inc(&self.metrics.name_conflicts);
                let holder = Member::new_alive(self.me.clone(), addr, seen);
                self.emit(EventKind::NameConflict, &holder, None);
                if verdict == NameVerdict::GiveUp {
                    log::error!(
                        "NODE_ID {} is already held by the live node at {addr}: give this node another NODE_ID",
                        self.me
                    );
                    if self.exit_on_name_taken {
                        std::process::exit(2);
                    }
                } else {
                    log::warn!(
                        "NODE_ID {} is also claimed by the live node at {addr}, which joined after us: keeping it, without raising our incarnation",
                        self.me
                    );
                }
            }
        }
    }

    /// A reader of the snapshots this actor publishes.
    pub fn snapshots(&self) -> SnapshotRx {
        self.publisher.subscribe()
    }

    /// Publishes a snapshot if the table changed since the last one. Called
    /// at the end of every handler that can change it, so one message that
    /// changes many records (a push-pull page) publishes once.
    fn publish(&mut self) {
        if self.view.generation() != self.published {
            self.published = self.view.generation();
            self.publisher
                .publish(&self.view, self.accusers.clone(), self.refutations);
        }
    }

    /// Starts from a formed cluster's table (the simulator's warm start, see
    /// `protocol::formed`), which holds our own record as we would.
    pub fn with_view(mut self, view: View) -> Self {
        let own = self.own();
        self.view = view;
        let _ = self.view.apply(&own, Instant::now());
        self.publish();
        self
    }

    fn own(&self) -> Member {
        self.view
            .get(&self.me)
            .cloned()
            .expect("own record is never removed")
    }

    fn emit(&self, kind: EventKind, member: &Member, by: Option<NodeId>) {
        for s in &self.subscribers {
            s.do_send(MemberEvent {
                kind,
                member: member.clone(),
                by: by.clone(),
            });
        }
    }

    fn update_gauges(&self) {
        let m = &self.metrics;
        Metrics::set(&m.members_alive, self.view.count(MemberState::Alive) as u64);
        Metrics::set(
            &m.members_suspect,
            self.view.count(MemberState::Suspect) as u64,
        );
        Metrics::set(&m.members_dead, self.view.count(MemberState::Dead) as u64);
        Metrics::set(&m.members_left, self.view.count(MemberState::Left) as u64);
    }

    /// Replaces our own record (always newer than the table's) and spreads it.
    fn announce_self(&mut self, record: Member) {
        let _ = self.view.apply(&record, Instant::now());
        self.rumor.do_send(Spread {
            member: record,
            by: None,
        });
        self.update_gauges();
    }

    fn on_self_rumor(&mut self, rumor: &Member, accuser: Option<&NodeId>, sender: &NodeId) {
        if self.leaving {
            return;
        }
        let mut own = self.own();
        let stale_accusation =
            rumor.state != MemberState::Alive && rumor.incarnation < own.incarnation;
        if stale_accusation && accuser == Some(sender) {
            // An accuser still pinging us with a suspicion we have refuted
            // (its buddy message) missed our refutation: one lost datagram
            // from the 30% of them in a lossy network, and its timer will
            // declare us dead. Tell it directly.
            self.answer_stale_accusation(own.clone(), sender);
        }
        let another_holder = rumor.state == MemberState::Alive
            && rumor.addr != own.addr
            && rumor.incarnation >= own.incarnation;
        if another_holder && self.name_probe.is_some() {
            // A previous life (outbid it) or another process (do not):
            // probe first, unless we already know which.
            match self.name_checks.get(&rumor.addr).copied() {
                None => {
                    self.name_checks
                        .insert(rumor.addr, NameCheck::Probing(rumor.incarnation));
                    self.to_probe.push(rumor.addr);
                    return;
                }
                Some(NameCheck::Probing(seen)) => {
                    let seen = seen.max(rumor.incarnation);
                    self.name_checks
                        .insert(rumor.addr, NameCheck::Probing(seen));
                    return;
                }
                Some(NameCheck::Held) => return,
                Some(NameCheck::PreviousLife) => {}
            }
        }
        let mut changed = false;
        let mut refute_directly = false;
        if let Some(inc) = refutation(own.incarnation, own.addr, rumor) {
            if rumor.state != MemberState::Alive {
                Metrics::inc(&self.metrics.suspicions_refuted);
                log::info!(
                    "{}: refuting: we were called {} at incarnation {}; now at {inc}",
                    self.me,
                    rumor.state,
                    rumor.incarnation
                );
                self.refutations += 1;
                self.emit(EventKind::SelfRefuted, rumor, None);
                refute_directly = true;
            } else {
                log::info!(
                    "raising our incarnation to {inc} above a previous life's {}",
                    rumor.incarnation
                );
            }
            own.incarnation = inc;
            changed = true;
        }
        if rumor.services.version >= own.services.version && rumor.services != own.services {
            // A previous life published services we no longer have.
            own.services = ServiceSet {
                version: rumor.services.version.saturating_add(1),
                list: own.services.list.clone(),
            };
            changed = true;
        }
        if changed {
            self.announce_self(own.clone());
        }
        if refute_directly {
            self.send_refutation(own, accuser);
        }
    }

    /// After a partition heals, each side holds the other dead, and the
    /// death rumors have long been spent: nothing tells a member it is
    /// thought dead until a reconnection or a push-pull reaches it (30 s
    /// and more; at 10% loss a 1,000-node partition had not converged 120 s
    /// after the heal). But the two sides gossip to their recently dead and
    /// answer reconnections, so datagrams cross at once: a datagram from a
    /// member we hold dead gets its dead record back (at most once per
    /// `TELL_THE_DEAD_EVERY`), and it refutes at once. A refutation that a
    /// datagram from a member we do not hold live caused goes back to it
    /// straight away too, since our own refutation only goes straight to
    /// members we hold live.
    fn tell_the_dead(&mut self, sender: &NodeId, from: SocketAddr, refuted: bool) {
        if *sender == self.me {
            return;
        }
        let record = self.view.get(sender);
        if refuted && !record.is_some_and(|r| r.state.is_live()) {
            let own = encode_msg(&Msg::Update {
                member: self.own(),
                by: None,
            });
            self.send_to(from, vec![own]);
        }
        let Some(dead) = record.filter(|r| r.state == MemberState::Dead).cloned() else {
            return;
        };
        let now = Instant::now();
        if self
            .told_dead
            .get(sender)
            .is_some_and(|t| now.duration_since(*t) < TELL_THE_DEAD_EVERY)
        {
            return;
        }
        if self.told_dead.len() >= self.view.len() {
            self.told_dead
                .retain(|_, t| now.duration_since(*t) < TELL_THE_DEAD_EVERY);
        }
        self.told_dead.insert(sender.clone(), now);
        let msg = encode_msg(&Msg::Update {
            member: dead,
            by: None,
        });
        self.send_to(from, vec![msg]);
    }

    fn answer_stale_accusation(&mut self, own: Member, accuser: &NodeId) {
        let msg = encode_msg(&Msg::Update {
            member: own,
            by: None,
        });
        self.send_to_member(accuser, msg);
    }

    /// Sends `msg` to the live member `id` (not ourselves), if we know it.
    fn send_to_member(&mut self, id: &NodeId, msg: EncodedMsg) {
        let addr = Some(id)
            .filter(|id| **id != self.me)
            .and_then(|id| self.view.get(id))
            .filter(|m| m.state.is_live())
            .map(|m| m.addr);
        if let Some(addr) = addr {
            self.send_to(addr, vec![msg]);
        }
    }

    /// A refutation races the suspicion's timers on every node, so besides
    /// the rumor it goes straight to the accuser named in the rumor (whose
    /// timer, counted from its unanswered probe, runs out first) and to up
    /// to `DIRECT_REFUTATION_PEERS` random live members (all of them in a
    /// small cluster).
    fn send_refutation(&mut self, own: Member, accuser: Option<&NodeId>) {
        let peers: Vec<SocketAddr> = self
            .view
            .iter()
            .filter(|m| m.id != self.me && m.state.is_live())
            .map(|m| m.addr)
            .collect();
        let n = peers.len().min(DIRECT_REFUTATION_PEERS);
        let msg = encode_msg(&Msg::Update {
            member: own,
            by: None,
        });
        if let Some(accuser) = accuser {
            self.send_to_member(accuser, msg.clone());
        }
        for i in rand::seq::index::sample(&mut self.rng, peers.len(), n) {
            self.send_to(peers[i], vec![msg.clone()]);
        }
    }

    fn on_rumor(&mut self, member: Member, by: Option<NodeId>, via_sync: bool, sender: &NodeId) {
        // One lookup for what we hold: most rumors repeat what we know, and
        // in a 1,000-node simulation table lookups were a fifth of the time.
        let before = self.view.get(&member.id).map(|m| (m.state, m.incarnation));
        let known = before.map(|(_, inc)| inc);
        if !plausible_incarnation(known, member.incarnation) || member.services.version > (1 << 40)
        {
            Metrics::inc(&self.metrics.limits_hit);
            log::debug!(
                "ignoring implausible rumor about {} at incarnation {}",
                member.id,
                member.incarnation
            );
            return;
        }
        if member.id == self.me {
            return self.on_self_rumor(&member, by.as_ref(), sender);
        }
        if known.is_none() && member.state != MemberState::Alive {
            // Bad news about a member we do not know (never did, or whose
            // tombstone we reclaimed) is ignored, as memberlist ignores it:
            // storing it would bring a reclaimed tombstone back, restart its
            // clock and count the same death again.
            Metrics::inc(&self.metrics.stale_ignored);
            log::debug!(
                "ignoring {} about unknown member {}",
                member.state,
                member.id
            );
            return;
        }
        // Only read for a member new to the table (`old_state` None below).
        let returning = known.is_none() && self.view.is_booked(&member.id);
        let change = match self.view.apply(&member, Instant::now()) {
            Ok(c) => c,
            Err(_) => {
                Metrics::inc(&self.metrics.limits_hit);
                log::debug!(
                    "member table full ({}), not adding {}",
                    self.view.len(),
                    member.id
                );
                return;
            }
        };
        if self.joined_at.is_none() && self.view.get(&member.id).is_some_and(|m| m.state.is_live())
        {
            self.joined_at = Some(Instant::now());
        }
        if !change.is_news() {
            let confirms = member.state == MemberState::Suspect
                && before == Some((MemberState::Suspect, member.incarnation))
                && by.is_some();
            if let Some(by) = by.filter(|_| confirms) {
                let after = self.view.get(&member.id).cloned().expect("just applied");
                self.confirm.do_send(Confirmation {
                    member: after.clone(),
                    by: by.clone(),
                });
                self.emit(EventKind::Confirmed, &after, Some(by));
            }
            return;
        }
        let after = self.view.get(&member.id).cloned().expect("just applied");
        let kind = classify(&change);
        let accuser = if after.state == MemberState::Suspect {
            by
        } else {
            None
        };
        match &accuser {
            Some(a) => {
                self.accusers.insert(after.id.clone(), a.clone());
            }
            // No write when there is nothing to remove: a chunk shared with
            // older snapshots stays shared.
            None if self.accusers.contains_key(&after.id) => {
                self.accusers.remove(&after.id);
            }
            None => {}
        }
        if change.liveness_changed {
            let from = change
                .old_state
                .map_or("unknown".to_string(), |s| s.to_string());
            let by_text = accuser
                .as_ref()
                .map(|b| format!(" (by {b})"))
                .unwrap_or_default();
            let level = if change.old_state == Some(after.state) {
                log::Level::Debug
            } else {
                log::Level::Info
            };
            // Named by the node that saw it: the in-process demo runs seven
            // nodes in one log.
            log::log!(
                level,
                "{}: member {} {} incarnation {}: {from} -> {}{by_text}",
                self.me,
                after.id,
                after.addr,
                after.incarnation,
                after.state
            );
        }
        if kind == EventKind::Failed {
            Metrics::inc(&self.metrics.members_failed);
        }
        self.emit(kind, &after, accuser.clone());
        // Records learned by push-pull about members new to us are not
        // re-gossiped (a joiner would otherwise re-broadcast the whole
        // table), except the sender's own record (a joiner announcing
        // itself) and members back from the reconnect book (a healed
        // partition: the side that learned of the other by one push-pull
        // spreads it to the rest of its side).
        if !via_sync || change.old_state.is_some() || &after.id == sender || returning {
            self.rumor.do_send(Spread {
                member: after,
                by: accuser,
            });
        }
        self.update_gauges();
    }

    fn send_to(&self, to: SocketAddr, msgs: Vec<EncodedMsg>) {
        if !msgs.is_empty() {
            self.send.do_send(Send { to, msgs });
        }
    }

    fn reclaim(&mut self) {
        let now = Instant::now();
        self.view.expire_book(now, self.reconnect_timeout);
        for id in self.view.reclaim(now, self.dead_reclaim) {
            log::debug!("forgetting {id}: tombstone expired");
            if self.accusers.contains_key(&id) {
                self.accusers.remove(&id);
            }
            let gone = Member::new_alive(id, SocketAddr::from(([0, 0, 0, 0], 0)), 0);
            self.emit(
                EventKind::Reclaimed,
                &Member {
                    state: MemberState::Dead,
                    ..gone
                },
                None,
            );
        }
        self.partial
            .retain(|_, p| now.duration_since(p.started) < sync::PARTIAL_SYNC_TTL);
        self.update_gauges();
    }

    fn log_stats(&self) {
        let m = &self.metrics;
        log::info!(
            "STATS node={} alive={} suspect={} dead={} left={} datagrams_in={} datagrams_out={} bytes_in={} bytes_out={} decode_errors={} rumors_sent={} checks_passing={} checks_warning={} checks_critical={} wire_refused={}",
            self.me,
            self.view.count(MemberState::Alive),
            self.view.count(MemberState::Suspect),
            self.view.count(MemberState::Dead),
            self.view.count(MemberState::Left),
            Metrics::get(&m.datagrams_in),
            Metrics::get(&m.datagrams_out),
            Metrics::get(&m.bytes_in),
            Metrics::get(&m.bytes_out),
            Metrics::get(&m.decode_errors),
            Metrics::get(&m.rumors_sent),
            Metrics::get(&m.checks_passing),
            Metrics::get(&m.checks_warning),
            Metrics::get(&m.checks_critical),
            m.wire_refused(),
        );
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Our own record is the first rumor: it rides on the join requests.
        let own = self.own();
        self.rumor.do_send(Spread {
            member: own,
            by: None,
        });
        self.update_gauges();
        let tick =
            (self.dead_reclaim / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        ctx.run_interval(tick, |act, ctx| {
            guard(ctx, |_| {
                act.reclaim();
                act.publish();
            });
        });
        ctx.run_interval(self.stats_interval, |act, ctx| {
            guard(ctx, |_| act.log_stats());
        });
    }
}

impl Supervised for Membership {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.partial.clear();
    }
}

impl Handler<Rumors> for Membership {
    type Result = ();
    fn handle(&mut self, m: Rumors, ctx: &mut Context<Self>) {
        guard(ctx, |ctx| {
            if let Some(a) = self
                .awaiting_sync
                .as_mut()
                .filter(|a| m.via_sync && a.peer == m.from)
            {
                a.received(m.updates.iter().map(|(member, _)| &member.id));
                if a.complete() {
                    self.awaiting_sync = None;
                }
            }
            let incarnation = self.view.get(&self.me).map(|o| o.incarnation);
            for (member, by) in m.updates {
                self.on_rumor(member, by, m.via_sync, &m.sender);
            }
            let refuted = self.view.get(&self.me).map(|o| o.incarnation) != incarnation;
            self.tell_the_dead(&m.sender, m.from, refuted);
            self.publish();
            self.start_name_probes(ctx);
        });
    }
}

impl Handler<Accuse> for Membership {
    type Result = ();
    fn handle(&mut self, m: Accuse, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            let Some(cur) = self.view.get(&m.id).cloned() else {
                return;
            };
            let expected = match m.state {
                MemberState::Suspect => MemberState::Alive,
                MemberState::Dead => MemberState::Suspect,
                _ => return,
            };
            if cur.incarnation != m.incarnation || cur.state != expected {
                return; // the member moved on (refuted, or already declared)
            }
            if m.state == MemberState::Suspect {
                Metrics::inc(&self.metrics.suspicions_raised);
            }
            let me = self.me.clone();
            self.on_rumor(
                Member {
                    state: m.state,
                    ..cur
                },
                Some(me.clone()),
                false,
                &me,
            );
            self.publish();
        });
    }
}

impl Handler<PublishServices> for Membership {
    type Result = ();
    fn handle(&mut self, m: PublishServices, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            let mut own = self.own();
            own.services = ServiceSet::new(own.services.version.saturating_add(1), m.0);
            self.announce_self(own);
            self.publish();
        });
    }
}

impl Handler<LeaveCluster> for Membership {
    type Result = MessageResult<LeaveCluster>;
    fn handle(&mut self, _: LeaveCluster, _: &mut Context<Self>) -> Self::Result {
        let mut own = self.own();
        if !self.leaving {
            self.leaving = true;
            own.incarnation = own.incarnation.saturating_add(1);
            own.state = MemberState::Left;
            self.announce_self(own.clone());
            self.publish();
        }
        MessageResult(own)
    }
}

impl Handler<GetTable> for Membership {
    type Result = MessageResult<GetTable>;
    fn handle(&mut self, _: GetTable, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view.table())
    }
}

impl Handler<GetMembers> for Membership {
    type Result = MessageResult<GetMembers>;
    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view.iter().cloned().collect())
    }
}

impl Handler<Subscribe> for Membership {
    type Result = ();
    fn handle(&mut self, m: Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(m.0);
    }
}

impl Handler<Crash> for Membership {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
