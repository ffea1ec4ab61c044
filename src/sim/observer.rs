//! Watching every node's view without asking it: one small `Tap` actor per
//! node is subscribed to the node's membership events (`Subscribe`, sent right
//! after `start_node`, so it sees every change from the first one), and feeds
//! a shared [`Observer`] that mirrors, for every (node, member) pair, the
//! member's liveness state and incarnation as that node holds it.
//!
//! From that mirror the observer answers, in O(1) per event:
//! * whether every counted node's view matches what the scenario expects
//!   (`mismatch`, incrementally maintained), and when that last became true;
//! * when each node first saw the scenario's rumor (dissemination);
//! * every death and suspicion, timestamped in virtual time (detection
//!   latency, false positives);
//! * the "no resurrection" invariant: a member a node holds as dead or left
//!   must not become alive or suspect there again unless at a higher
//!   incarnation, and more generally a node's record of a member must never
//!   go backwards in `(incarnation, state)` order. A `Reclaimed` event (the
//!   tombstone expired and the node forgot the member) resets the pair: the
//!   node knows nothing any more, so a later alive record is a fresh
//!   learning;
//! * "tombstones stay gone": a node takes no suspect, dead or left record
//!   about a member it does not hold (never knew, or forgot by `Reclaimed`),
//!   so one crash is one `failed` event per node, however long it is
//!   watched.

use actix::prelude::*;
use imbl::Vector;
use std::cell::RefCell;
use std::rc::Rc;
use tokio::time::Instant;

use crate::messages::{EventKind, MemberEvent};
use crate::protocol::{MemberState, NodeId};

pub const UNKNOWN: u8 = 0;
pub const ALIVE: u8 = 1;
pub const SUSPECT: u8 = 2;
pub const DEAD: u8 = 3;
pub const LEFT: u8 = 4;

fn code(s: MemberState) -> u8 {
    match s {
        MemberState::Alive => ALIVE,
        MemberState::Suspect => SUSPECT,
        MemberState::Dead => DEAD,
        MemberState::Left => LEFT,
    }
}

pub fn state_name(c: u8) -> &'static str {
    ["unknown", "alive", "suspect", "dead", "left"][c as usize]
}

/// The simulator names its nodes `n<slot>`.
pub fn node_name(slot: usize) -> String {
    format!("n{slot}")
}

pub fn slot_of(id: &NodeId) -> Option<usize> {
    id.as_str().strip_prefix('n')?.parse().ok()
}

/// One node's record of one member: 8 bytes, so that 1,000 x 1,000 pairs
/// take 8 MB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rec {
    pub inc: u32,
    pub state: u8,
}

/// What a scenario expects a node's view to say about a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Any,
    Alive,
    /// Alive or suspect: listed as a member (suspicion is transient under loss).
    Live,
    Dead,
    Left,
    /// Not alive or suspect: dead, left, or unknown (never heard of, or forgotten).
    Gone,
}

impl Expect {
    fn matches(self, r: Rec) -> bool {
        match self {
            Expect::Any => true,
            Expect::Alive => r.state == ALIVE,
            Expect::Live => matches!(r.state, ALIVE | SUSPECT),
            Expect::Dead => r.state == DEAD,
            Expect::Left => r.state == LEFT,
            Expect::Gone => matches!(r.state, UNKNOWN | DEAD | LEFT),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    /// Virtual ms since the simulation started.
    pub at: u64,
    /// The node whose view changed.
    pub node: u32,
    /// The member it is about.
    pub member: u32,
    pub inc: u32,
}

/// A rumor to follow: a service named `name` published by slot `owner`.
#[derive(Clone, Debug)]
pub struct Fact {
    pub owner: usize,
    pub name: String,
}

#[derive(Default)]
pub struct Observer {
    origin: Option<Instant>,
    /// `SIM_TRACE=x:y` prints every event node `x` emits about member `y`.
    trace: Option<(usize, usize)>,
    /// Persistent rows: a warm start gives every node the same row, and
    /// 10,000 x 10,000 pairs then cost what the nodes changed, not 800 MB.
    rows: Vec<Vector<Rec>>,
    counted: Vec<bool>,
    lives: Vec<u32>,
    expect: Vec<Expect>,
    mismatch: Vec<u32>,
    total_mismatch: u64,
    /// When `total_mismatch` last became 0 (None while it is not 0).
    pub matched_since: Option<u64>,
    pub deaths: Vec<Sighting>,
    pub suspicions: Vec<Sighting>,
    pub lefts: Vec<Sighting>,
    pub refutations: u64,
    pub events: u64,
    pub fact: Option<Fact>,
    /// Per slot: when it first held the fact.
    pub fact_seen: Vec<Option<u64>>,
    fact_missing: u64,
    /// Invariant violations seen while running (at most 50 kept, all counted).
    pub violations: Vec<String>,
    pub violation_count: u64,
}

impl Observer {
    pub fn new(origin: Instant) -> Self {
        let trace = std::env::var("SIM_TRACE").ok().and_then(|v| {
            let (x, y) = v.split_once(':')?;
            Some((
                x.trim_start_matches('n').parse().ok()?,
                y.trim_start_matches('n').parse().ok()?,
            ))
        });
        Observer {
            origin: Some(origin),
            trace,
            ..Default::default()
        }
    }

    pub fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin.expect("origin set"))
            .as_millis() as u64
    }

    pub fn slots(&self) -> usize {
        self.rows.len()
    }

    /// Makes room for slots `0..=i`.
    pub fn ensure(&mut self, i: usize) {
        let n = i + 1;
        if self.rows.len() >= n {
            return;
        }
        // Existing rows grow once; new rows are clones of one blank row (a
        // warm start of 10,000 nodes would otherwise build 10,000 distinct
        // rows, 800 MB, before `preload` replaces them).
        for row in self.rows.iter_mut() {
            row.extend(std::iter::repeat_n(Rec::default(), n - row.len()));
        }
        let blank: Vector<Rec> = std::iter::repeat_n(Rec::default(), n).collect();
        self.rows.resize(n, blank);
        self.counted.resize(n, false);
        self.expect.resize(n, Expect::Any);
        self.mismatch.resize(n, 0);
        self.fact_seen.resize(n, None);
        self.lives.resize(n, 0);
    }

    pub fn rec(&self, node: usize, member: usize) -> Rec {
        self.rows
            .get(node)
            .and_then(|r| r.get(member))
            .copied()
            .unwrap_or_default()
    }

    /// Highest incarnation any node holds for `member`.
    pub fn max_inc(&self, member: usize) -> u32 {
        self.rows
            .iter()
            .filter_map(|r| r.get(member))
            .map(|r| r.inc)
            .max()
            .unwrap_or(0)
    }

    /// Up to `max` (node, member) pairs of counted nodes whose view does not
    /// match the expectation, described.
    pub fn mismatches(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        for x in 0..self.rows.len() {
            if !self.counted[x] || self.mismatch[x] == 0 {
                continue;
            }
            for (y, r) in self.rows[x].iter().enumerate() {
                if y != x && !self.expect[y].matches(*r) {
                    if out.len() >= max {
                        return out;
                    }
                    out.push(format!(
                        "n{x} holds n{y} {}@{} (expected {:?})",
                        state_name(r.state),
                        r.inc,
                        self.expect[y]
                    ));
                }
            }
        }
        out
    }

    pub fn total_mismatch(&self) -> u64 {
        self.total_mismatch
    }

    pub fn fact_missing(&self) -> u64 {
        self.fact_missing
    }

    fn recount(&mut self, x: usize) -> u32 {
        self.rows[x]
            .iter()
            .enumerate()
            .filter(|&(y, r)| y != x && !self.expect[y].matches(*r))
            .count() as u32
    }

    fn set_mismatch(&mut self, x: usize, m: u32) {
        let counted = self.counted[x];
        if counted {
            self.total_mismatch = self.total_mismatch - self.mismatch[x] as u64 + m as u64;
        }
        self.mismatch[x] = m;
        self.note_match();
    }

    fn note_match(&mut self) {
        if self.total_mismatch == 0 {
            if self.matched_since.is_none() {
                self.matched_since = Some(self.now_ms());
            }
        } else {
            self.matched_since = None;
        }
    }

    /// Whether node `x`'s view counts towards the scenario's goal (it is up).
    pub fn set_counted(&mut self, x: usize, counted: bool) {
        self.ensure(x);
        if self.counted[x] == counted {
            return;
        }
        let misses_fact =
            self.fact.as_ref().is_some_and(|f| f.owner != x) && self.fact_seen[x].is_none();
        if counted {
            self.total_mismatch += self.mismatch[x] as u64;
            self.fact_missing += misses_fact as u64;
        } else {
            self.total_mismatch -= self.mismatch[x] as u64;
            self.fact_missing -= misses_fact as u64;
        }
        self.counted[x] = counted;
        self.note_match();
    }

    pub fn set_expect(&mut self, y: usize, e: Expect) {
        self.ensure(y);
        let old = self.expect[y];
        if old == e {
            return;
        }
        self.expect[y] = e;
        for x in 0..self.rows.len() {
            if x == y {
                continue;
            }
            let r = self.rows[x][y];
            let (was, is) = (old.matches(r), e.matches(r));
            if was != is {
                if is {
                    self.mismatch[x] -= 1;
                } else {
                    self.mismatch[x] += 1;
                }
                if self.counted[x] {
                    if is {
                        self.total_mismatch -= 1;
                    } else {
                        self.total_mismatch += 1;
                    }
                }
            }
        }
        self.note_match();
    }

    pub fn expect(&self, y: usize) -> Expect {
        self.expect.get(y).copied().unwrap_or(Expect::Any)
    }

    /// Slots `0..n` will hold a formed cluster (the warm start): every node
    /// lists every node alive at incarnation 0, and each is expected live.
    /// One row shared by all. The nodes are then started with `new_life`.
    pub fn preload(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.ensure(n - 1);
        let alive = Rec {
            inc: 0,
            state: ALIVE,
        };
        let row: Vector<Rec> = std::iter::repeat_n(alive, self.rows.len()).collect();
        for x in 0..n {
            self.rows[x] = row.clone();
            self.expect[x] = Expect::Live;
        }
        for x in 0..self.rows.len() {
            let m = self.recount(x);
            self.set_mismatch(x, m);
        }
    }

    /// A node starts with the row `preload` gave it: a new life, no reset.
    pub fn new_life(&mut self, x: usize) -> u32 {
        self.ensure(x);
        self.lives[x] += 1;
        self.lives[x]
    }

    /// The current life of slot `x`'s node (how many times it started).
    pub fn life(&self, x: usize) -> u32 {
        self.lives.get(x).copied().unwrap_or(0)
    }

    /// A node (re)started with an empty view: a new life for its slot, whose
    /// number is returned.
    pub fn reset_row(&mut self, x: usize) -> u32 {
        self.ensure(x);
        self.lives[x] += 1;
        let n = self.rows[x].len();
        self.rows[x] = std::iter::repeat_n(Rec::default(), n).collect();
        let had_fact = self.fact_seen[x].take().is_some();
        if had_fact && self.counted[x] && self.fact.as_ref().is_some_and(|f| f.owner != x) {
            self.fact_missing += 1;
        }
        let m = self.recount(x);
        self.set_mismatch(x, m);
        self.lives[x]
    }

    /// Starts following a fact; every counted node but the owner must see it.
    pub fn follow(&mut self, fact: Fact) {
        let owner = fact.owner;
        self.fact = Some(fact);
        self.fact_missing = (0..self.rows.len())
            .filter(|&x| x != owner && self.counted[x] && self.fact_seen[x].is_none())
            .count() as u64;
    }

    pub fn violation(&mut self, what: String) {
        self.violation_count += 1;
        if self.violations.len() < 50 {
            self.violations.push(what);
        }
    }

    pub fn on_event(&mut self, x: usize, e: &MemberEvent) {
        self.events += 1;
        if super::wirelog::recording() {
            super::wirelog::event(self.now_ms(), x, e);
        }
        if e.kind == EventKind::SelfRefuted {
            if self.trace.is_some_and(|(t, _)| t == x) {
                eprintln!(
                    "trace t={}ms n{x} refutes {}@{}",
                    self.now_ms(),
                    e.member.state,
                    e.member.incarnation
                );
            }
            self.refutations += 1;
            return;
        }
        if e.kind == EventKind::Confirmed {
            return;
        }
        let Some(y) = slot_of(&e.member.id) else {
            return;
        };
        if y == x {
            return;
        }
        if self.trace == Some((x, y)) {
            eprintln!(
                "trace t={}ms n{x} about n{y}: {:?} {}@{} by {:?}",
                self.now_ms(),
                e.kind,
                e.member.state,
                e.member.incarnation,
                e.by
            );
        }
        self.ensure(x.max(y));
        let now = self.now_ms();
        let old = self.rows[x][y];
        let new = if e.kind == EventKind::Reclaimed {
            Rec {
                inc: old.inc,
                state: UNKNOWN,
            }
        } else {
            Rec {
                inc: e.member.incarnation.min(u32::MAX as u64) as u32,
                state: code(e.member.state),
            }
        };
        if e.kind != EventKind::Reclaimed
            && old.state == UNKNOWN
            && matches!(new.state, SUSPECT | DEAD | LEFT)
        {
            // A node must ignore bad news about a member it does not hold:
            // learning it would revive a reclaimed tombstone and count the
            // same crash again (one crash, one `failed` per node).
            self.violation(format!(
                "tombstone revived at t={now}ms: node n{x}, which did not hold n{y}, took {}@{} about it ({:?})",
                state_name(new.state),
                new.inc,
                e.kind
            ));
        }
        if e.kind != EventKind::Reclaimed && old.state != UNKNOWN {
            let back_from_the_dead =
                matches!(old.state, DEAD | LEFT) && matches!(new.state, ALIVE | SUSPECT);
            if back_from_the_dead && new.inc <= old.inc {
                self.violation(format!(
                    "resurrection at t={now}ms: node n{x} took n{y} from {} (incarnation {}) back to {} at incarnation {} without a higher incarnation",
                    state_name(old.state),
                    old.inc,
                    state_name(new.state),
                    new.inc
                ));
            } else if (new.inc, new.state) < (old.inc, old.state) {
                self.violation(format!(
                    "regression at t={now}ms: node n{x}'s record of n{y} went from {}@{} back to {}@{}",
                    state_name(old.state),
                    old.inc,
                    state_name(new.state),
                    new.inc
                ));
            }
        }
        let s = Sighting {
            at: now,
            node: x as u32,
            member: y as u32,
            inc: new.inc,
        };
        match e.kind {
            EventKind::Failed => self.deaths.push(s),
            EventKind::Suspected => self.suspicions.push(s),
            EventKind::Left => self.lefts.push(s),
            _ => {}
        }
        self.rows[x].set(y, new);
        let ex = self.expect[y];
        let (was, is) = (ex.matches(old), ex.matches(new));
        if was != is {
            if is {
                self.mismatch[x] -= 1;
            } else {
                self.mismatch[x] += 1;
            }
            if self.counted[x] {
                if is {
                    self.total_mismatch -= 1;
                } else {
                    self.total_mismatch += 1;
                }
                self.note_match();
            }
        }
        if let Some(f) = &self.fact {
            if y == f.owner
                && self.fact_seen[x].is_none()
                && new.state == ALIVE
                && e.member.services.list.iter().any(|s| s.name == f.name)
            {
                self.fact_seen[x] = Some(now);
                if self.counted[x] && x != f.owner {
                    self.fact_missing -= 1;
                }
            }
        }
    }
}

/// Receives one node's membership events and feeds them to the observer.
pub struct Tap {
    pub slot: usize,
    /// Which life of the slot's node this tap listens to (see `reset_row`).
    pub life: u32,
    pub obs: Rc<RefCell<Observer>>,
}

impl Actor for Tap {
    type Context = Context<Self>;
}

impl Handler<MemberEvent> for Tap {
    type Result = ();
    fn handle(&mut self, e: MemberEvent, _: &mut Context<Self>) {
        let mut obs = self.obs.borrow_mut();
        // A crashed node's actors keep running (silenced); after a restart
        // their events (tombstones expiring) must not touch the new life's row.
        if obs.life(self.slot) == self.life {
            obs.on_event(self.slot, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Member;

    fn ev(kind: EventKind, who: usize, inc: u64, state: MemberState) -> MemberEvent {
        let m = Member {
            state,
            ..Member::new_alive(
                NodeId::new(&node_name(who)),
                "10.0.0.1:7946".parse().unwrap(),
                inc,
            )
        };
        MemberEvent {
            kind,
            member: m,
            by: None,
        }
    }

    #[actix::test]
    async fn tracks_expectations_incrementally() {
        tokio::time::pause();
        let mut o = Observer::new(Instant::now());
        o.ensure(2);
        for x in 0..3 {
            o.set_counted(x, true);
            o.set_expect(x, Expect::Alive);
        }
        assert_eq!(o.total_mismatch(), 6);
        for x in 0..3 {
            for y in 0..3 {
                if x != y {
                    o.on_event(x, &ev(EventKind::Joined, y, 0, MemberState::Alive));
                }
            }
        }
        assert_eq!(o.total_mismatch(), 0);
        assert!(o.matched_since.is_some());
        o.set_expect(2, Expect::Dead);
        o.set_counted(2, false);
        assert_eq!(o.total_mismatch(), 2);
        o.on_event(0, &ev(EventKind::Failed, 2, 0, MemberState::Dead));
        o.on_event(1, &ev(EventKind::Failed, 2, 0, MemberState::Dead));
        assert_eq!(o.total_mismatch(), 0);
        assert_eq!(o.deaths.len(), 2);
        assert!(o.violations.is_empty());
    }

    #[actix::test]
    async fn a_previous_lifes_events_are_ignored() {
        tokio::time::pause();
        let obs = Rc::new(RefCell::new(Observer::new(Instant::now())));
        let first = obs.borrow_mut().reset_row(0);
        let old = Tap {
            slot: 0,
            life: first,
            obs: obs.clone(),
        }
        .start();
        old.send(ev(EventKind::Failed, 1, 0, MemberState::Dead))
            .await
            .unwrap();
        assert_eq!(obs.borrow().rec(0, 1).state, DEAD);
        // Restarted: the old actors still run, and their tombstone expires.
        let second = obs.borrow_mut().reset_row(0);
        assert_eq!(second, first + 1);
        let new = Tap {
            slot: 0,
            life: second,
            obs: obs.clone(),
        }
        .start();
        new.send(ev(EventKind::Joined, 1, 1, MemberState::Alive))
            .await
            .unwrap();
        old.send(ev(EventKind::Reclaimed, 1, 0, MemberState::Dead))
            .await
            .unwrap();
        assert_eq!(
            obs.borrow().rec(0, 1),
            Rec {
                inc: 1,
                state: ALIVE
            }
        );
    }

    #[actix::test]
    async fn catches_resurrection_and_regression() {
        tokio::time::pause();
        let mut o = Observer::new(Instant::now());
        o.on_event(0, &ev(EventKind::Joined, 1, 3, MemberState::Alive));
        o.on_event(0, &ev(EventKind::Failed, 1, 3, MemberState::Dead));
        o.on_event(0, &ev(EventKind::Joined, 1, 4, MemberState::Alive));
        assert!(
            o.violations.is_empty(),
            "a higher incarnation may come back"
        );
        o.on_event(0, &ev(EventKind::Left, 1, 5, MemberState::Left));
        o.on_event(0, &ev(EventKind::Joined, 1, 5, MemberState::Alive));
        assert_eq!(o.violation_count, 1);
        assert!(
            o.violations[0].contains("resurrection"),
            "{:?}",
            o.violations
        );
        o.on_event(0, &ev(EventKind::Updated, 1, 2, MemberState::Alive));
        assert!(o.violations[1].contains("regression"), "{:?}", o.violations);
        // Forgotten, then learned again: not a resurrection.
        o.on_event(2, &ev(EventKind::Joined, 1, 0, MemberState::Alive));
        o.on_event(2, &ev(EventKind::Failed, 1, 0, MemberState::Dead));
        o.on_event(2, &ev(EventKind::Reclaimed, 1, 0, MemberState::Dead));
        o.on_event(2, &ev(EventKind::Joined, 1, 0, MemberState::Alive));
        assert_eq!(o.violation_count, 2);
    }

    /// The bug the observer used to miss: a reclaimed tombstone brought back
    /// by stale gossip, a second `failed` for one crash.
    #[actix::test]
    async fn catches_a_reclaimed_tombstone_coming_back() {
        tokio::time::pause();
        let mut o = Observer::new(Instant::now());
        o.on_event(0, &ev(EventKind::Joined, 1, 0, MemberState::Alive));
        o.on_event(0, &ev(EventKind::Failed, 1, 0, MemberState::Dead));
        o.on_event(0, &ev(EventKind::Reclaimed, 1, 0, MemberState::Dead));
        assert_eq!(o.violation_count, 0);
        o.on_event(0, &ev(EventKind::Failed, 1, 0, MemberState::Dead));
        assert_eq!(o.violation_count, 1);
        assert!(
            o.violations[0].contains("tombstone revived"),
            "{:?}",
            o.violations
        );
        // Never known at all: the same rule.
        o.on_event(3, &ev(EventKind::Suspected, 2, 0, MemberState::Suspect));
        assert_eq!(o.violation_count, 2);
    }
}
