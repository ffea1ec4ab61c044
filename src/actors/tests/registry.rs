use actix::prelude::*;
use std::sync::Arc;

use super::member;
use crate::actors::registry::Registry;
use crate::actors::supervisor::{supervise, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::services::Service;
use crate::protocol::MemberState;
use crate::testkit::{recorder, settle, Log};

fn start(max_services: usize) -> (Addr<Registry>, Log<PublishServices>, Arc<Metrics>) {
    start_in(max_services, None)
}

fn start_in(
    max_services: usize,
    dir: Option<std::path::PathBuf>,
) -> (Addr<Registry>, Log<PublishServices>, Arc<Metrics>) {
    let (publish, log) = recorder::<PublishServices>();
    let metrics = Arc::new(Metrics::default());
    let reg = Registry::new(
        vec![Service::new("web", 80)],
        max_services,
        1300,
        member("me", 1, 0, MemberState::Alive),
        publish,
        dir,
        Default::default(),
    );
    let addr = supervise(Context::new(), reg, metrics.clone());
    (addr, log, metrics)
}

fn names(p: &PublishServices) -> Vec<String> {
    p.0.iter().map(|s| s.name.clone()).collect()
}

#[actix::test]
async fn publishes_initial_and_registered_services() {
    let (r, log, _) = start(4);
    settle(1).await;
    assert_eq!(names(&log.take()[0]), vec!["web"]);
    let mut api = Service::new("api", 9090);
    api.tags = vec!["v1".into()];
    assert_eq!(r.send(Register::plain(api)).await.unwrap(), Ok(()));
    settle(1).await;
    assert_eq!(names(&log.take()[0]), vec!["api", "web"]);
    assert_eq!(r.send(Deregister("api".into())).await.unwrap(), Ok(true));
    assert_eq!(r.send(Deregister("nope".into())).await.unwrap(), Ok(false));
    settle(1).await;
    assert_eq!(log.take().len(), 1, "only a real change is published");
}

#[actix::test]
async fn refuses_bad_and_excess_registrations_and_keeps_nothing_of_them() {
    let (r, log, _) = start(2);
    settle(1).await;
    log.take();
    assert!(r
        .send(Register::plain(Service::new("Bad_Name", 80)))
        .await
        .unwrap()
        .is_err());
    assert!(r
        .send(Register::plain(Service::new("ok", 0)))
        .await
        .unwrap()
        .is_err());
    assert_eq!(
        r.send(Register::plain(Service::new("two", 81)))
            .await
            .unwrap(),
        Ok(())
    );
    let e = r
        .send(Register::plain(Service::new("three", 82)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.contains("maximum of 2"), "{e}");
    let mut fat = Service::new("two", 81);
    fat.meta = (0..16)
        .map(|i| (format!("key{i}"), "v".repeat(200)))
        .collect();
    let e = r.send(Register::plain(fat)).await.unwrap().unwrap_err();
    assert!(e.contains("datagram"), "{e}");
    let list = r.send(LocalServices).await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["two", "web"]
    );
}

#[actix::test]
async fn survives_a_crash_with_its_services() {
    let (r, log, metrics) = start(8);
    r.send(Register::plain(Service::new("api", 9090)))
        .await
        .unwrap()
        .unwrap();
    settle(1).await;
    log.take();
    r.do_send(Crash);
    settle(5).await;
    assert_eq!(Metrics::get(&metrics.actor_restarts), 1);
    let list = r.send(LocalServices).await.unwrap();
    assert_eq!(list.len(), 2, "nothing lost");
    assert_eq!(
        names(&log.take()[0]),
        vec!["api", "web"],
        "republished after the restart"
    );
}

#[actix::test]
async fn registrations_survive_a_process_restart_with_a_data_dir() {
    let dir = std::env::temp_dir().join(format!("gossip-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (r, _, _) = start_in(8, Some(dir.clone()));
    r.send(Register::plain(Service::new("api", 9090)))
        .await
        .unwrap()
        .unwrap();
    // A new registry (a new process) starts from the saved list, not SERVICES.
    let (r2, log, _) = start_in(8, Some(dir.clone()));
    settle(1).await;
    assert_eq!(names(&log.take()[0]), vec!["api", "web"]);
    r2.send(Deregister("web".into())).await.unwrap().unwrap();
    // A damaged file is kept aside, never overwritten, and SERVICES is used.
    std::fs::write(dir.join("services.json"), "{not json").unwrap();
    let (_r3, log, _) = start_in(8, Some(dir.clone()));
    settle(1).await;
    assert_eq!(names(&log.take()[0]), vec!["web"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("services.json.bad")).unwrap(),
        "{not json"
    );
    std::fs::remove_dir_all(&dir).ok();
}
