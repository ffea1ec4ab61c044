//! Test support: a recording mailbox. Hand an actor `recorder::<M>().0` where
//! it expects a `Recipient<M>`, then read what it sent from the log.

use actix::prelude::*;
use std::sync::{Arc, Mutex};

pub struct Recorder<M> {
    log: Arc<Mutex<Vec<M>>>,
}

impl<M: 'static + Unpin> Actor for Recorder<M> {
    type Context = Context<Self>;
}

impl<M> Handler<M> for Recorder<M>
where
    M: Message<Result = ()> + Send + Unpin + 'static,
{
    type Result = ();
    fn handle(&mut self, m: M, _: &mut Context<Self>) {
        self.log.lock().expect("recorder lock").push(m);
    }
}

/// A shared log of received messages.
#[derive(Clone)]
pub struct Log<M>(Arc<Mutex<Vec<M>>>);

impl<M: Clone> Log<M> {
    pub fn all(&self) -> Vec<M> {
        self.0.lock().expect("recorder lock").clone()
    }
    pub fn take(&self) -> Vec<M> {
        std::mem::take(&mut *self.0.lock().expect("recorder lock"))
    }
    pub fn len(&self) -> usize {
        self.0.lock().expect("recorder lock").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts a recording actor; must run inside an actix System.
pub fn recorder<M>() -> (Recipient<M>, Log<M>)
where
    M: Message<Result = ()> + Send + Unpin + 'static,
{
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = Recorder { log: log.clone() }.start();
    (addr.recipient(), Log(log))
}

/// Lets the actors process what is in their mailboxes, advancing a paused
/// clock by `ms` milliseconds.
pub async fn settle(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// A member table published by hand, for testing the actors that read the
/// snapshot: `set` and `accuse` merge a record (by the protocol's rules)
/// and publish at once, as Membership does after every change.
pub struct TestTable {
    view: crate::protocol::view::View,
    accusers: imbl::OrdMap<crate::protocol::NodeId, crate::protocol::NodeId>,
    refutations: u64,
    publisher: crate::snapshot::Publisher,
    rx: crate::snapshot::SnapshotRx,
}

impl TestTable {
    /// A table holding only `me`, alive at 127.0.0.1:1.
    pub fn new(me: &str) -> Self {
        use crate::protocol::{Member, NodeId};
        let mut view = crate::protocol::view::View::new(100_000);
        let own = Member::new_alive(NodeId::new(me), ([127, 0, 0, 1], 1).into(), 0);
        let _ = view.apply(&own, tokio::time::Instant::now());
        let (publisher, rx) = crate::snapshot::Publisher::new(NodeId::new(me), &view);
        TestTable {
            view,
            accusers: imbl::OrdMap::new(),
            refutations: 0,
            publisher,
            rx,
        }
    }

    pub fn rx(&self) -> crate::snapshot::SnapshotRx {
        self.rx.clone()
    }

    pub fn snapshot(&self) -> std::sync::Arc<crate::snapshot::Snapshot> {
        self.rx.borrow().clone()
    }

    fn merge(&mut self, m: &crate::protocol::Member, by: Option<&str>) {
        let _ = self.view.apply(m, tokio::time::Instant::now());
        match by {
            Some(b) => {
                self.accusers
                    .insert(m.id.clone(), crate::protocol::NodeId::new(b));
            }
            None => {
                self.accusers.remove(&m.id);
            }
        }
    }

    fn publish(&mut self) {
        self.publisher
            .publish(&self.view, self.accusers.clone(), self.refutations);
    }

    /// Merges one record and publishes.
    pub fn set(&mut self, m: &crate::protocol::Member) {
        self.merge(m, None);
        self.publish();
    }

    /// Merges several records and publishes once.
    pub fn set_all(&mut self, ms: &[crate::protocol::Member]) {
        for m in ms {
            self.merge(m, None);
        }
        self.publish();
    }

    /// Merges a suspect record accused by `by`, and publishes.
    pub fn accuse(&mut self, m: &crate::protocol::Member, by: &str) {
        let suspect = crate::protocol::Member {
            state: crate::protocol::MemberState::Suspect,
            ..m.clone()
        };
        self.merge(&suspect, Some(by));
        self.publish();
    }

    /// Counts one more refutation of a rumor about `me`, and publishes.
    pub fn refute(&mut self) {
        self.refutations += 1;
        self.publish();
    }
}
