//! Leave coordinator: turns "please leave" (a signal, `POST /v1/leave`,
//! `gossip leave`) into a graceful exit.
//!
//! 1. membership marks us `left` at incarnation + 1 and spreads it;
//! 2. wait until the rumor engine has sent that LEAVE as often as it sends any
//!    rumor (its retransmit limit: memberlist's leave, too, waits for its
//!    broadcast to finish), or `leave_timeout` passes. Waiting for only the
//!    first `fanout` sends loses leaves when many nodes leave at once
//!    (scaling 50 tasks down to 20): those first sends go to random peers
//!    that are mostly leaving too, and a node that has left relays nothing,
//!    so the survivors never hear of it and declare it dead. The later sends
//!    go to peers that have not left (their LEAVEs have arrived by then);
//! 3. stop probing and gossiping, silence the transport;
//! 4. tell the owner of the node (`HasLeft`), who exits.
//!
//! Takes: `Leave` (resolves when done; a second `Leave` waits for the first).
//! Sends: `LeaveCluster` to membership, `WaitSent` to the rumor actor,
//! `StopActivity` to the failure detector and gossip, `Silence` to the
//! transport, `HasLeft` to the owner.

use actix::prelude::*;
use std::time::Duration;
use tokio::sync::watch;

use super::supervisor::{guard, Crash};
use crate::messages::*;

/// `LeaveCoordinator::new`'s `sends` for "the LEAVE's whole retransmit
/// limit" (the rumor engine caps a wait at that limit).
pub const ALL_SENDS: u32 = u32::MAX;

pub struct LeaveCoordinator {
    sends: u32,
    timeout: Duration,
    membership: Recipient<LeaveCluster>,
    rumor: Recipient<WaitSent>,
    stop: Vec<Recipient<StopActivity>>,
    transport: Recipient<Silence>,
    owner: Option<Recipient<HasLeft>>,
    /// false until the leave has finished; watchers wait on it.
    done: watch::Sender<bool>,
    started: bool,
}

impl LeaveCoordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sends: u32,
        timeout: Duration,
        membership: Recipient<LeaveCluster>,
        rumor: Recipient<WaitSent>,
        stop: Vec<Recipient<StopActivity>>,
        transport: Recipient<Silence>,
        owner: Option<Recipient<HasLeft>>,
    ) -> Self {
        let (done, _) = watch::channel(false);
        LeaveCoordinator {
            sends,
            timeout,
            membership,
            rumor,
            stop,
            transport,
            owner,
            done,
            started: false,
        }
    }
}

impl Actor for LeaveCoordinator {
    type Context = Context<Self>;
}

impl Supervised for LeaveCoordinator {}

impl Handler<Leave> for LeaveCoordinator {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        let mut watcher = self.done.subscribe();
        if !self.started {
            self.started = true;
            let (membership, rumor, stop, transport, owner) = (
                self.membership.clone(),
                self.rumor.clone(),
                self.stop.clone(),
                self.transport.clone(),
                self.owner.clone(),
            );
            let (sends, timeout, done) = (self.sends, self.timeout, self.done.clone());
            actix_rt::spawn(async move {
                log::info!("leaving the cluster");
                if let Ok(record) = membership.send(LeaveCluster).await {
                    let wait = rumor.send(WaitSent {
                        id: record.id.clone(),
                        times: sends,
                    });
                    if tokio::time::timeout(timeout, wait).await.is_err() {
                        log::warn!(
                            "leave: timed out waiting for the LEAVE to go out; leaving anyway"
                        );
                    }
                }
                for s in &stop {
                    s.do_send(StopActivity);
                }
                transport.do_send(Silence);
                log::info!("left the cluster");
                let _ = done.send(true);
                if let Some(o) = owner {
                    o.do_send(HasLeft);
                }
            });
        }
        Box::pin(async move {
            let _ = watcher.wait_for(|d| *d).await;
        })
    }
}

impl Handler<Crash> for LeaveCoordinator {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
