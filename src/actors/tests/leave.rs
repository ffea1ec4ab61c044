use actix::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::member;
use crate::actors::leave::LeaveCoordinator;
use crate::messages::*;
use crate::protocol::{Member, MemberState};
use crate::testkit::{recorder, settle};

/// Stands in for membership and the rumor engine, logging what it is asked.
struct Peer {
    log: Arc<Mutex<Vec<String>>>,
    wait: Duration,
}
impl Actor for Peer {
    type Context = Context<Self>;
}
impl Handler<LeaveCluster> for Peer {
    type Result = MessageResult<LeaveCluster>;
    fn handle(&mut self, _: LeaveCluster, _: &mut Context<Self>) -> Self::Result {
        self.log.lock().unwrap().push("leave-cluster".into());
        MessageResult(Member {
            state: MemberState::Left,
            ..member("me", 1, 1, MemberState::Left)
        })
    }
}
impl Handler<WaitSent> for Peer {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, m: WaitSent, _: &mut Context<Self>) -> Self::Result {
        self.log
            .lock()
            .unwrap()
            .push(format!("wait-sent {} x{}", m.id, m.times));
        let wait = self.wait;
        Box::pin(async move { tokio::time::sleep(wait).await })
    }
}

async fn run(wait: Duration) -> (Vec<String>, usize, usize, usize, Duration) {
    tokio::time::pause();
    let log = Arc::new(Mutex::new(Vec::new()));
    let peer = Peer {
        log: log.clone(),
        wait,
    }
    .start();
    let (stop, stops) = recorder::<StopActivity>();
    let (silence, silences) = recorder::<Silence>();
    let (owner, left) = recorder::<HasLeft>();
    let lc = LeaveCoordinator::new(
        3,
        Duration::from_secs(2),
        peer.clone().recipient(),
        peer.recipient(),
        vec![stop.clone(), stop],
        silence,
        Some(owner),
    )
    .start();
    let t0 = tokio::time::Instant::now();
    let first = lc.send(Leave);
    let second = lc.send(Leave);
    first.await.unwrap();
    second.await.unwrap();
    let took = t0.elapsed();
    settle(1).await;
    let l = log.lock().unwrap().clone();
    (l, stops.len(), silences.len(), left.len(), took)
}

#[actix::test]
async fn leaves_in_order_once_the_leave_is_out() {
    let (log, stops, silences, left, took) = run(Duration::from_millis(30)).await;
    assert_eq!(log, vec!["leave-cluster", "wait-sent me x3"]);
    assert_eq!(
        (stops, silences, left),
        (2, 1, 1),
        "a second Leave does not leave twice"
    );
    assert!(took < Duration::from_millis(100));
}

#[actix::test]
async fn leaves_anyway_after_the_timeout() {
    let (_, stops, silences, left, took) = run(Duration::from_secs(60)).await;
    assert_eq!((stops, silences, left), (2, 1, 1));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
}
