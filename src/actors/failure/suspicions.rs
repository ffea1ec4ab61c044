//! The failure detector's suspicions, in their own file: when each one
//! expires (Lifeguard's timeout, stretched by our local health), starting,
//! confirming, restarting and cancelling them, and declaring a member dead
//! when one runs out on evidence of our own (ALGORITHM.md, "Failure
//! detection"). The probes that feed them are in `failure.rs`.

use super::*;

impl FailureDetector {
    /// Whether to probe a suspect again at once, after our own probe of it
    /// failed: while our suspicion has more than a probe period to run.
    ///
    /// We may declare the member dead only on evidence of our own, and
    /// evidence goes stale: a healthy member under loss can fail a probe
    /// (one in nine at 30% loss with two direct pings; rarely with the
    /// repeated pings of `ping_again`), and its refutation may miss us too (at 30% loss, 3 to 7 copies addressed to
    /// one declarer were all lost, in 4 of 100 nodes' false deaths over
    /// ten minutes). Probing on until the timer runs out means that a
    /// healthy member must fail every one of our probes in the window, each
    /// of which also carries the suspicion to it (it answers us directly),
    /// and any ack restarts our suspicion without evidence (`answered`).
    /// A member that has crashed costs one or two more failed probes per
    /// holder; they do not count against our health (`Probe::extra`).
    pub(super) fn keeps_probing(&self, id: &NodeId) -> bool {
        let Some((s, _)) = self.suspicions.get(id) else {
            return false;
        };
        let period = self.awareness.scale(self.s.probe_interval);
        s.own_evidence && self.due(s) > Instant::now() + period
    }

    /// When a suspicion expires for this node now: its timeout stretched by
    /// our health multiplier (a node missing acks waits longer).
    pub(super) fn due(&self, s: &Suspicion) -> Instant {
        s.deadline(self.awareness.multiplier())
    }

    pub(super) fn schedule_expiry(&mut self, id: &NodeId, at: Instant) -> TimerKey {
        self.timers.schedule(at, Due::Expire { id: id.clone() })
    }

    /// Moves a running suspicion's timer to `at`.
    pub(super) fn reschedule(&mut self, id: &NodeId, at: Instant) {
        let Some(old) = self.suspicions.get(id).map(|(_, k)| *k) else {
            return;
        };
        self.timers.cancel(old);
        let key = self.schedule_expiry(id, at);
        if let Some((_, k)) = self.suspicions.get_mut(id) {
            *k = key;
        }
    }

    pub(super) fn start_suspicion(&mut self, m: &Member, by: NodeId) {
        // Our own accusation starts the clock when its probe went out.
        let own_probe = self.accused.remove(&m.id);
        if let Some((s, key)) = self.suspicions.get(&m.id) {
            if s.incarnation >= m.incarnation {
                self.confirm(m, by);
                return;
            }
            let key = *key;
            self.timers.cancel(key);
        }
        let members = self.seen.live.len().max(1);
        let (min, max) = bounds(&self.s.suspicion, members);
        let own_evidence = by == self.s.me;
        let started = match own_probe {
            Some((incarnation, sent)) if own_evidence && incarnation == m.incarnation => sent,
            _ => Instant::now(),
        };
        let k = wanted(self.s.suspicion.confirmations, members);
        let mut s = Suspicion::new(m.incarnation, by, started, min, max, k);
        s.own_evidence = own_evidence;
        let key = self.schedule_expiry(&m.id, self.due(&s));
        self.suspicions.insert(m.id.clone(), (s, key));
    }

    /// Records a confirmation; true if it is one worth passing on (see
    /// `Suspicion::confirm`).
    pub(super) fn confirm(&mut self, m: &Member, by: NodeId) -> bool {
        let Some((s, _)) = self.suspicions.get_mut(&m.id) else {
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
        let s = s.clone();
        let at = self.due(&s);
        self.reschedule(&m.id, at);
        counted
    }

    /// Our probe of `id` at `incarnation` was answered. If we suspect it
    /// there, the evidence so far is stale: the suspicion starts over from
    /// now, at its maximum timeout, and we need a failed probe of our own
    /// again before we declare it dead (see `expire`). Its refutation has
    /// probably just not reached us: in the simulator at 30% loss, 7 of 12
    /// false deaths were declared by nodes that had had an ack since, and
    /// re-probing every period until one probe failed (11% each) killed the
    /// member within seconds.
    pub(super) fn answered(&mut self, id: &NodeId, incarnation: u64) {
        let Some((s, _)) = self.suspicions.get_mut(id) else {
            return;
        };
        if s.incarnation != incarnation {
            return;
        }
        s.restart(Instant::now());
        let s = s.clone();
        let at = self.due(&s);
        self.reschedule(id, at);
    }

    pub(super) fn cancel_suspicion(&mut self, id: &NodeId) {
        self.accused.remove(id);
        if let Some((_, key)) = self.suspicions.remove(id) {
            self.timers.cancel(key);
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
    pub(super) fn expire(&mut self, id: &NodeId) {
        let timed_out = self.suspicions.get(id).map(|(s, _)| s.incarnation);
        // A refutation we have not caught up with yet cancels it here; a
        // suspicion at a newer incarnation replaces it, with its own timer.
        self.catch_up();
        let Some((s, _)) = self.suspicions.get(id) else {
            return;
        };
        if Some(s.incarnation) != timed_out {
            return;
        }
        // Our health may have worsened since the timer was set: wait on.
        let due = self.due(s);
        if due > Instant::now() {
            self.reschedule(id, due);
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
            self.probe_member(m);
            self.reschedule(id, Instant::now() + retry);
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
