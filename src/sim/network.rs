//! The simulated network: an in-memory datagram switch driven by the
//! single-threaded actix runtime and tokio's (paused) clock.
//!
//! Every node sits in a [`Slot`] at a fixed simulated address
//! (`10.a.b.c:7946`, derived from the slot index, so no map is needed to
//! route). A datagram handed to a [`SimLink`](crate::transport::sim::SimLink)
//! goes through [`Net::send`], which decides its fate at once with the
//! network's own seeded RNG: dropped (loss, partition cut, sender or receiver
//! down), or scheduled for delivery after `latency + jitter` (plus an extra
//! delay for reordered datagrams), possibly twice (duplication). Deliveries are
//! kept in per-millisecond buckets (`BTreeMap<ms, Vec<_>>`, FIFO inside a
//! bucket); the first datagram of a bucket spawns one task that sleeps until
//! that millisecond and then hands the bucket's datagrams to the receivers'
//! transports as `Inbound` messages. Nothing here reads the wall clock or
//! iterates a hash map, so the same seed gives the same delivery sequence.
//!
//! Node faults:
//! * **down** (crash, left): everything to or from the node is dropped;
//! * **paused** (a frozen process): datagrams *to* it are held, like a socket
//!   buffer (at most `buffer` of them; the rest are dropped), and datagrams it
//!   tries to send are held too; on resume the held inbound ones are handed
//!   over at once and the held outbound ones leave with normal delays. The
//!   node's actors are NOT frozen (actix cannot suspend an actor): their
//!   timers keep firing during the pause, so a paused node may time out its
//!   own probes and accuse healthy members, which they then refute. A real
//!   SIGSTOPped process does much the same when it wakes up with overdue
//!   timers, but the approximation is noted wherever pause is used.
//! * **partitions**: every slot has a group number; a directed cut
//!   `(from_group, to_group)` drops datagrams between groups, so a two-way
//!   partition is two cuts and a one-way partition is one. Cuts are checked
//!   when a datagram is sent and again when it would be delivered.

use actix::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

use super::wirelog;
use crate::messages::Inbound;

/// Port every simulated node listens on.
pub const SIM_PORT: u16 = 7946;
const BASE_IP: u32 = 0x0A00_0000; // 10.0.0.0

/// The simulated address of slot `i`: 10.0.0.1, 10.0.0.2, ...
pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(BASE_IP + 1 + i as u32), SIM_PORT))
}

/// The slot behind a simulated address.
pub fn index_of(a: SocketAddr) -> Option<usize> {
    match a {
        SocketAddr::V4(v4) if v4.port() == SIM_PORT => {
            let ip = u32::from(*v4.ip());
            (ip > BASE_IP && ip - BASE_IP <= 0x00FF_FFFF).then(|| (ip - BASE_IP - 1) as usize)
        }
        _ => None,
    }
}

/// An actix system on a runtime whose clock is paused from its very start.
///
/// Tokio's timers tick in whole milliseconds counted from the instant the
/// runtime was built, and round every deadline up to a tick. Pausing later
/// (`tokio::time::pause()`) would leave the clock at a random sub-millisecond
/// offset from those ticks, which makes every timer fire up to 1 ms late, by
/// an amount that depends on the wall clock at start-up: fractional
/// deadlines (Lifeguard's suspicion timeouts) would then round differently
/// from run to run. Paused from the start, the offset is zero and the
/// simulation is deterministic to the millisecond.
pub fn paused_system() -> actix::SystemRunner {
    System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a single-threaded tokio runtime")
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetParams {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// One-way delay, and uniform jitter added on top (milliseconds).
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Probability that a datagram is delivered twice.
    pub dup: f64,
    /// Probability that a datagram is held back (by up to a few latencies) so
    /// that later ones overtake it.
    pub reorder: f64,
    /// Datagrams held for a paused node (its socket buffer).
    pub buffer: usize,
}

impl Default for NetParams {
    fn default() -> Self {
        NetParams {
            loss: 0.0,
            latency_ms: 1,
            jitter_ms: 2,
            dup: 0.0,
            reorder: 0.0,
            buffer: 512,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No node at this address (yet).
    Absent,
    Up,
    Paused,
    /// Crashed or gone: silence both ways.
    Down,
}

struct Slot {
    inbox: Option<Recipient<Inbound>>,
    status: Status,
    group: u32,
    held_in: VecDeque<(usize, Vec<u8>)>,
    held_out: VecDeque<(usize, Vec<u8>)>,
}

/// What happened to the datagrams, network-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetStats {
    /// Datagrams handed to the network by senders that were up.
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Dropped by a partition cut.
    pub cut: u64,
    /// Dropped because the sender or the receiver was down or absent.
    pub to_down: u64,
    /// Held for a paused node (in or out), and dropped when its buffer was full.
    pub held: u64,
    pub overflow: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub unroutable: u64,
}

type Datagram = (usize, usize, Vec<u8>);

pub struct Network {
    p: NetParams,
    rng: SmallRng,
    origin: Instant,
    slots: Vec<Slot>,
    cuts: BTreeSet<(u32, u32)>,
    queue: BTreeMap<u64, Vec<Datagram>>,
    stats: NetStats,
}

/// A shared handle to the network (single-threaded: `Rc<RefCell<_>>`).
#[derive(Clone)]
pub struct Net(Rc<RefCell<Network>>);

impl Net {
    /// `origin` is virtual time zero; `seed` drives every fate decision.
    pub fn new(p: NetParams, seed: u64, origin: Instant) -> Net {
        Net(Rc::new(RefCell::new(Network {
            p,
            rng: SmallRng::seed_from_u64(seed),
            origin,
            slots: Vec::new(),
            cuts: BTreeSet::new(),
            queue: BTreeMap::new(),
            stats: NetStats::default(),
        })))
    }

    fn ensure(&self, i: usize) {
        let mut n = self.0.borrow_mut();
        while n.slots.len() <= i {
            n.slots.push(Slot {
                inbox: None,
                status: Status::Absent,
                group: 0,
                held_in: VecDeque::new(),
                held_out: VecDeque::new(),
            });
        }
    }

    /// Connects (or reconnects, after a restart) the node at slot `i`.
    pub fn attach(&self, i: usize, inbox: Recipient<Inbound>) {
        self.ensure(i);
        let mut n = self.0.borrow_mut();
        let s = &mut n.slots[i];
        s.inbox = Some(inbox);
        s.status = Status::Up;
        s.held_in.clear();
        s.held_out.clear();
    }

    pub fn status(&self, i: usize) -> Status {
        self.0
            .borrow()
            .slots
            .get(i)
            .map_or(Status::Absent, |s| s.status)
    }

    /// Crash or departure: the slot goes silent both ways.
    pub fn set_down(&self, i: usize) {
        self.ensure(i);
        let mut n = self.0.borrow_mut();
        let s = &mut n.slots[i];
        s.status = Status::Down;
        s.held_in.clear();
        s.held_out.clear();
    }

    pub fn pause(&self, i: usize) {
        self.ensure(i);
        let mut n = self.0.borrow_mut();
        if n.slots[i].status == Status::Up {
            n.slots[i].status = Status::Paused;
        }
    }

    /// Ends a pause: held inbound datagrams are delivered at once, held
    /// outbound ones leave now with normal delays.
    pub fn resume(&self, i: usize) {
        let (inbound, outbound, inbox) = {
            let mut n = self.0.borrow_mut();
            let Some(s) = n.slots.get_mut(i) else { return };
            if s.status != Status::Paused {
                return;
            }
            s.status = Status::Up;
            (
                std::mem::take(&mut s.held_in),
                std::mem::take(&mut s.held_out),
                s.inbox.clone(),
            )
        };
        if let Some(inbox) = inbox {
            for (from, data) in inbound {
                self.0.borrow_mut().stats.delivered += 1;
                inbox.do_send(Inbound {
                    from: addr_of(from),
                    data,
                });
            }
        }
        for (to, data) in outbound {
            self.route(i, to, data);
        }
    }

    /// Puts every slot in a group (slots beyond `groups` stay in group 0) and
    /// installs the directed cuts.
    pub fn partition(&self, groups: &[u32], cuts: &[(u32, u32)]) {
        let mut n = self.0.borrow_mut();
        for (i, s) in n.slots.iter_mut().enumerate() {
            s.group = groups.get(i).copied().unwrap_or(0);
        }
        n.cuts = cuts.iter().copied().collect();
    }

    pub fn heal(&self) {
        let mut n = self.0.borrow_mut();
        n.cuts.clear();
        for s in n.slots.iter_mut() {
            s.group = 0;
        }
    }

    pub fn set_loss(&self, loss: f64) {
        self.0.borrow_mut().p.loss = loss;
    }

    pub fn params(&self) -> NetParams {
        self.0.borrow().p.clone()
    }

    pub fn stats(&self) -> NetStats {
        self.0.borrow().stats.clone()
    }

    /// Datagrams scheduled and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.0.borrow().queue.values().map(Vec::len).sum()
    }

    /// A datagram from slot `from` to address `to` (called by `SimLink`).
    pub fn send(&self, from: usize, to: SocketAddr, data: Vec<u8>) {
        let Some(t) = index_of(to) else {
            self.0.borrow_mut().stats.unroutable += 1;
            return;
        };
        self.ensure(from.max(t));
        {
            let mut n = self.0.borrow_mut();
            match n.slots[from].status {
                Status::Up => {}
                Status::Paused => {
                    let buffer = n.p.buffer;
                    n.stats.held += 1;
                    if n.slots[from].held_out.len() < buffer {
                        n.slots[from].held_out.push_back((t, data));
                    } else {
                        n.stats.overflow += 1;
                    }
                    return;
                }
                Status::Down | Status::Absent => {
                    n.stats.to_down += 1;
                    return;
                }
            }
        }
        self.route(from, t, data);
    }

    fn route(&self, from: usize, to: usize, data: Vec<u8>) {
        let mut new_buckets = Vec::new();
        {
            let mut n = self.0.borrow_mut();
            n.stats.sent += 1;
            let now = n.now_ms();
            if n.is_cut(from, to) {
                n.stats.cut += 1;
                wirelog::datagram(now, None, "cut", from, to, &data);
                return;
            }
            if n.p.loss > 0.0 && n.rng.gen::<f64>() < n.p.loss {
                n.stats.lost += 1;
                wirelog::datagram(now, None, "lost", from, to, &data);
                return;
            }
            if n.p.dup > 0.0 && n.rng.gen::<f64>() < n.p.dup {
                n.stats.duplicated += 1;
                let at = now + n.delay();
                wirelog::datagram(now, Some(at), "ok", from, to, &data);
                if n.schedule(at, (from, to, data.clone())) {
                    new_buckets.push(at);
                }
            }
            let at = now + n.delay();
            wirelog::datagram(now, Some(at), "ok", from, to, &data);
            if n.schedule(at, (from, to, data)) {
                new_buckets.push(at);
            }
        }
        for at in new_buckets {
            self.arm(at);
        }
    }

    /// Spawns the task that delivers bucket `at`.
    fn arm(&self, at: u64) {
        let net = self.clone();
        let when = self.0.borrow().origin + Duration::from_millis(at);
        actix_rt::spawn(async move {
            tokio::time::sleep_until(when).await;
            net.deliver(at);
        });
    }

    fn deliver(&self, at: u64) {
        let mut out: Vec<(Recipient<Inbound>, SocketAddr, Vec<u8>)> = Vec::new();
        {
            let mut n = self.0.borrow_mut();
            let Some(batch) = n.queue.remove(&at) else {
                return;
            };
            let buffer = n.p.buffer;
            for (from, to, data) in batch {
                if n.is_cut(from, to) {
                    n.stats.cut += 1;
                    continue;
                }
                let s = &mut n.slots[to];
                match (s.status, &s.inbox) {
                    (Status::Up, Some(inbox)) => out.push((inbox.clone(), addr_of(from), data)),
                    (Status::Paused, _) => {
                        if s.held_in.len() < buffer {
                            s.held_in.push_back((from, data));
                            n.stats.held += 1;
                        } else {
                            n.stats.overflow += 1;
                        }
                    }
                    _ => n.stats.to_down += 1,
                }
            }
            n.stats.delivered += out.len() as u64;
        }
        for (inbox, from, data) in out {
            inbox.do_send(Inbound { from, data });
        }
    }
}

impl Network {
    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }

    fn delay(&mut self) -> u64 {
        let mut d = self.p.latency_ms
            + if self.p.jitter_ms > 0 {
                self.rng.gen_range(0..=self.p.jitter_ms)
            } else {
                0
            };
        if self.p.reorder > 0.0 && self.rng.gen::<f64>() < self.p.reorder {
            self.stats.reordered += 1;
            d += self
                .rng
                .gen_range(1..=3 * (self.p.latency_ms + self.p.jitter_ms) + 3);
        }
        d.max(1)
    }

    /// True if this bucket is new (its delivery task must be armed).
    fn schedule(&mut self, at: u64, d: Datagram) -> bool {
        match self.queue.get_mut(&at) {
            Some(v) => {
                v.push(d);
                false
            }
            None => {
                self.queue.insert(at, vec![d]);
                true
            }
        }
    }

    fn is_cut(&self, from: usize, to: usize) -> bool {
        if self.cuts.is_empty() {
            return false;
        }
        let g = |i: usize| self.slots.get(i).map_or(0, |s| s.group);
        self.cuts.contains(&(g(from), g(to)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for i in [0usize, 1, 254, 255, 256, 9_999, 70_000] {
            assert_eq!(index_of(addr_of(i)), Some(i));
        }
        assert_eq!(addr_of(0).to_string(), "10.0.0.1:7946");
        assert_eq!(index_of("10.0.0.1:7000".parse().unwrap()), None);
        assert_eq!(index_of("127.0.0.1:7946".parse().unwrap()), None);
    }

    type Received = Rc<RefCell<Vec<(SocketAddr, Vec<u8>, u64)>>>;

    #[derive(Default)]
    struct Sink(Received, Option<Instant>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Inbound> for Sink {
        type Result = ();
        fn handle(&mut self, m: Inbound, _: &mut Context<Self>) {
            let t = Instant::now().duration_since(self.1.unwrap()).as_millis() as u64;
            self.0.borrow_mut().push((m.from, m.data, t));
        }
    }

    /// Sends `count` numbered datagrams 0 -> 1 under `p`, one per ms, and
    /// returns what slot 1 got and when.
    fn run(p: NetParams, seed: u64, count: u8, cut: bool) -> (Vec<(u8, u64)>, NetStats) {
        paused_system().block_on(async move {
            let origin = Instant::now();
            let net = Net::new(p, seed, origin);
            let got = Rc::new(RefCell::new(Vec::new()));
            let a = Sink(Rc::new(RefCell::new(Vec::new())), Some(origin)).start();
            let b = Sink(got.clone(), Some(origin)).start();
            net.attach(0, a.recipient());
            net.attach(1, b.recipient());
            if cut {
                net.partition(&[0, 1], &[(0, 1)]);
            }
            for k in 0..count {
                net.send(0, addr_of(1), vec![k]);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let out: Vec<(u8, u64)> = got
                .borrow()
                .iter()
                .map(|(f, d, t)| {
                    assert_eq!(*f, addr_of(0));
                    (d[0], *t)
                })
                .collect();
            (out, net.stats())
        })
    }

    #[test]
    fn delivers_in_order_with_fixed_latency() {
        let p = NetParams {
            latency_ms: 5,
            jitter_ms: 0,
            ..Default::default()
        };
        let (got, stats) = run(p, 1, 20, false);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..20).collect::<Vec<u8>>()
        );
        assert!(got.iter().all(|(k, t)| *t == *k as u64 + 5), "{got:?}");
        assert_eq!(stats.delivered, 20);
    }

    #[test]
    fn loss_duplication_and_reordering_are_seeded() {
        let p = NetParams {
            loss: 0.3,
            dup: 0.2,
            reorder: 0.3,
            latency_ms: 2,
            jitter_ms: 3,
            ..Default::default()
        };
        let (a, sa) = run(p.clone(), 7, 200, false);
        let (b, _) = run(p.clone(), 7, 200, false);
        let (c, _) = run(p, 8, 200, false);
        assert_eq!(a, b, "same seed, same deliveries");
        assert_ne!(a, c, "another seed, other deliveries");
        assert!(sa.lost > 30 && sa.lost < 90, "{sa:?}");
        assert!(sa.duplicated > 10, "{sa:?}");
        let order: Vec<u8> = a.iter().map(|g| g.0).collect();
        assert!(
            order.windows(2).any(|w| w[1] < w[0]),
            "some datagram was overtaken"
        );
    }

    #[test]
    fn cuts_are_directed() {
        let (got, stats) = run(NetParams::default(), 1, 10, true);
        assert!(got.is_empty());
        assert_eq!(stats.cut, 10);
    }

    #[test]
    fn paused_node_gets_its_datagrams_on_resume() {
        paused_system().block_on(async {
            let origin = Instant::now();
            let p = NetParams {
                latency_ms: 1,
                jitter_ms: 0,
                buffer: 5,
                ..Default::default()
            };
            let net = Net::new(p, 1, origin);
            let got = Rc::new(RefCell::new(Vec::new()));
            let sent_by_b = Rc::new(RefCell::new(Vec::new()));
            net.attach(0, Sink(sent_by_b.clone(), Some(origin)).start().recipient());
            net.attach(1, Sink(got.clone(), Some(origin)).start().recipient());
            net.pause(1);
            for k in 0..10u8 {
                net.send(0, addr_of(1), vec![k]);
            }
            net.send(1, addr_of(0), vec![99]);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(got.borrow().is_empty(), "nothing reaches a paused node");
            assert!(
                sent_by_b.borrow().is_empty(),
                "nothing leaves a paused node"
            );
            net.resume(1);
            tokio::time::sleep(Duration::from_millis(10)).await;
            let held: Vec<u8> = got.borrow().iter().map(|g| g.1[0]).collect();
            assert_eq!(
                held,
                vec![0, 1, 2, 3, 4],
                "the buffer kept the first five, in order"
            );
            assert!(
                got.borrow().iter().all(|g| g.2 == 50),
                "handed over at the resume"
            );
            assert_eq!(
                sent_by_b.borrow().len(),
                1,
                "what it sent while paused leaves on resume"
            );
            assert_eq!(net.stats().overflow, 5);
        });
    }
}
