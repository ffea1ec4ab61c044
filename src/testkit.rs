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
