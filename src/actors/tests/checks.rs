//! The checks actor with the real registry beside it (what it reports is
//! read from the registry's publications): real HTTP and TCP endpoints on
//! 127.0.0.1 that the tests turn healthy and unhealthy, and TTL expiry and
//! deregistration under a paused clock.

use actix::prelude::*;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::member;
use crate::actors::checks::Checks;
use crate::actors::registry::{CheckRunner, Registry};
use crate::actors::supervisor::{supervise, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::checks::{resolve_all, CheckSpec};
use crate::protocol::services::{Health, Service};
use crate::protocol::MemberState;
use crate::testkit::{recorder, settle, Log};

struct Pair {
    registry: Addr<Registry>,
    checks: Addr<Checks>,
    published: Log<PublishServices>,
    metrics: Arc<Metrics>,
}

fn start() -> Pair {
    let (publish, published) = recorder::<PublishServices>();
    let metrics = Arc::new(Metrics::default());
    let registry_ctx: Context<Registry> = Context::new();
    let checks_ctx: Context<Checks> = Context::new();
    let registry = registry_ctx.address();
    let checks = checks_ctx.address();
    let reg = Registry::new(
        vec![],
        8,
        1300,
        member("me", 1, 0, MemberState::Alive),
        publish,
        None,
        Default::default(),
    )
    .with_runner(CheckRunner {
        set: checks.clone().recipient(),
        ttl: checks.clone().recipient(),
        list: checks.clone().recipient(),
    });
    supervise(registry_ctx, reg, metrics.clone());
    let checks_addr = checks.clone();
    supervise(
        checks_ctx,
        Checks::new(
            registry.clone().recipient(),
            registry.clone().recipient(),
            metrics.clone(),
        ),
        metrics.clone(),
    );
    Pair {
        registry,
        checks: checks_addr,
        published,
        metrics,
    }
}

impl Pair {
    async fn register(&self, name: &str, specs: Vec<CheckSpec>) {
        let checks = resolve_all(name, &specs).unwrap();
        let r = self.registry.send(Register {
            service: Service::new(name, 80),
            checks,
        });
        assert_eq!(r.await.unwrap(), Ok(()));
    }

    /// The health of `name` in each publication since the last call.
    fn healths(&self, name: &str) -> Vec<Health> {
        self.published
            .take()
            .iter()
            .filter_map(|p| p.0.iter().find(|s| s.name == name).map(|s| s.health))
            .collect()
    }

    /// Waits (real time, generously) until `name` is published with `want`.
    async fn wait_for(&self, name: &str, want: Health) -> Vec<Health> {
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen.extend(self.healths(name));
            if seen.last() == Some(&want) {
                return seen;
            }
            settle(50).await;
        }
        panic!("{name} never became {want}; published {seen:?}");
    }
}

/// An HTTP server on 127.0.0.1 answering every GET with the status in
/// `code` (0: accept, then never answer).
async fn http_server(code: Arc<AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let code = code.load(Ordering::SeqCst);
            actix_rt::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                if code == 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let body = format!("status {code}");
                let answer = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/healthz")
}

fn http_check(url: &str, interval: &str) -> CheckSpec {
    CheckSpec {
        http: Some(url.into()),
        interval: Some(interval.into()),
        timeout: Some("300ms".into()),
        ..Default::default()
    }
}

#[actix::test]
async fn an_http_check_follows_a_real_server() {
    let p = start();
    let code = Arc::new(AtomicU16::new(200));
    let url = http_server(code.clone()).await;
    p.register("web", vec![http_check(&url, "100ms")]).await;
    // Critical at registration (the default initial status), then passing.
    let seen = p.wait_for("web", Health::Passing).await;
    assert_eq!(seen.first(), Some(&Health::Critical), "{seen:?}");
    code.store(500, Ordering::SeqCst);
    p.wait_for("web", Health::Critical).await;
    code.store(429, Ordering::SeqCst);
    p.wait_for("web", Health::Warning).await;
    code.store(0, Ordering::SeqCst); // hangs: the timeout decides
    p.wait_for("web", Health::Critical).await;
    code.store(204, Ordering::SeqCst);
    p.wait_for("web", Health::Passing).await;
    let checks = p.registry.send(LocalChecks).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert!(checks[0].output.contains("204"), "{}", checks[0].output);
    assert!(Metrics::get(&p.metrics.check_runs) >= 5);
    assert!(p.metrics.check_latency.read().count >= 5);
    assert_eq!(Metrics::get(&p.metrics.checks_passing), 1);
}

#[actix::test]
async fn an_unchanged_status_publishes_nothing() {
    let p = start();
    let code = Arc::new(AtomicU16::new(200));
    let url = http_server(code.clone()).await;
    p.register("web", vec![http_check(&url, "100ms")]).await;
    p.wait_for("web", Health::Passing).await;
    let runs = Metrics::get(&p.metrics.check_runs);
    settle(1000).await;
    assert!(
        Metrics::get(&p.metrics.check_runs) >= runs + 3,
        "the check kept running"
    );
    assert!(p.healths("web").is_empty(), "passing again is not news");
}

#[actix::test]
async fn a_tcp_check_follows_a_real_listener() {
    let p = start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = CheckSpec {
        tcp: Some(addr.to_string()),
        interval: Some("100ms".into()),
        timeout: Some("300ms".into()),
        ..Default::default()
    };
    p.register("db", vec![tcp]).await;
    p.wait_for("db", Health::Passing).await;
    drop(listener);
    p.wait_for("db", Health::Critical).await;
    let _again = std::net::TcpListener::bind(addr).unwrap();
    p.wait_for("db", Health::Passing).await;
}

#[actix::test]
async fn thresholds_keep_one_bad_answer_from_flapping() {
    let p = start();
    let code = Arc::new(AtomicU16::new(200));
    let url = http_server(code.clone()).await;
    let spec = CheckSpec {
        failures_before_critical: Some(3),
        ..http_check(&url, "100ms")
    };
    p.register("web", vec![spec]).await;
    p.wait_for("web", Health::Passing).await;
    // One bad answer (between one and two runs), then healthy again.
    code.store(500, Ordering::SeqCst);
    settle(150).await;
    code.store(200, Ordering::SeqCst);
    settle(600).await;
    assert!(p.healths("web").is_empty(), "one failure stays passing");
    code.store(500, Ordering::SeqCst);
    p.wait_for("web", Health::Critical).await;
}

#[actix::test]
async fn the_worst_check_decides_and_checks_are_listed() {
    let p = start();
    let code = Arc::new(AtomicU16::new(200));
    let url = http_server(code.clone()).await;
    let ttl = CheckSpec {
        ttl: Some("1h".into()),
        initial_status: Some(Health::Passing),
        ..Default::default()
    };
    p.register("web", vec![http_check(&url, "100ms"), ttl])
        .await;
    p.wait_for("web", Health::Passing).await;
    let warn = TtlUpdate {
        check_id: "service:web:2".into(),
        status: Health::Warning,
        note: Some("disk 91% full".into()),
    };
    assert_eq!(p.registry.send(warn).await.unwrap(), Ok(()));
    p.wait_for("web", Health::Warning).await;
    let list = p.registry.send(LocalChecks).await.unwrap();
    let ttl = list.iter().find(|c| c.def.id == "service:web:2").unwrap();
    assert_eq!(
        (ttl.status, ttl.output.as_str()),
        (Health::Warning, "disk 91% full")
    );
    // Reports to unknown or non-TTL checks are refused.
    let bad = |id: &str| TtlUpdate {
        check_id: id.into(),
        status: Health::Passing,
        note: None,
    };
    let e = p.registry.send(bad("nope")).await.unwrap().unwrap_err();
    assert!(e.contains("no check"), "{e}");
    let e = p
        .registry
        .send(bad("service:web"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.contains("not a TTL"), "{e}");
    // Deregistering drops the checks.
    assert_eq!(
        p.registry.send(Deregister("web".into())).await.unwrap(),
        Ok(true)
    );
    settle(50).await;
    assert!(p.registry.send(LocalChecks).await.unwrap().is_empty());
}

#[actix::test]
async fn no_checks_cost_nothing() {
    let p = start();
    p.register("web", vec![]).await;
    settle(300).await;
    assert_eq!(p.healths("web"), vec![Health::Passing]);
    assert_eq!(Metrics::get(&p.metrics.check_runs), 0);
    assert!(p.registry.send(LocalChecks).await.unwrap().is_empty());
}

#[actix::test]
async fn a_ttl_check_expires_without_reports() {
    tokio::time::pause();
    let p = start();
    let ttl = CheckSpec {
        ttl: Some("30s".into()),
        ..Default::default()
    };
    p.register("job", vec![ttl]).await;
    settle(1).await;
    assert_eq!(
        p.healths("job"),
        vec![Health::Critical],
        "critical until a report"
    );
    let pass = || TtlUpdate {
        check_id: "service:job".into(),
        status: Health::Passing,
        note: None,
    };
    assert_eq!(p.registry.send(pass()).await.unwrap(), Ok(()));
    settle(1).await;
    assert_eq!(p.healths("job"), vec![Health::Passing]);
    // Reports within the TTL keep it passing (and publish nothing).
    for _ in 0..3 {
        settle(20_000).await;
        assert_eq!(p.registry.send(pass()).await.unwrap(), Ok(()));
    }
    settle(29_000).await;
    assert!(p.healths("job").is_empty());
    settle(2_000).await;
    assert_eq!(p.healths("job"), vec![Health::Critical], "expired");
    let list = p.registry.send(LocalChecks).await.unwrap();
    assert!(list[0].output.contains("TTL expired"), "{}", list[0].output);
}

#[actix::test]
async fn critical_for_too_long_deregisters_the_instance() {
    tokio::time::pause();
    let p = start();
    let ttl = CheckSpec {
        ttl: Some("10s".into()),
        initial_status: Some(Health::Passing),
        deregister_critical_after: Some("1m".into()),
        ..Default::default()
    };
    p.register("job", vec![ttl]).await;
    settle(11_000).await;
    assert_eq!(p.healths("job"), vec![Health::Passing, Health::Critical]);
    settle(59_000).await;
    let services = p.registry.send(LocalServices).await.unwrap();
    assert_eq!(services.len(), 1, "not yet: critical for 59 s");
    settle(2_000).await;
    assert!(p.registry.send(LocalServices).await.unwrap().is_empty());
    // A check that recovers in time keeps its instance.
    p.register(
        "job",
        vec![CheckSpec {
            ttl: Some("10s".into()),
            initial_status: Some(Health::Passing),
            deregister_critical_after: Some("1m".into()),
            ..Default::default()
        }],
    )
    .await;
    settle(40_000).await;
    let pass = TtlUpdate {
        check_id: "service:job".into(),
        status: Health::Passing,
        note: None,
    };
    assert_eq!(p.registry.send(pass).await.unwrap(), Ok(()));
    settle(35_000).await;
    assert_eq!(p.registry.send(LocalServices).await.unwrap().len(), 1);
}

#[actix::test]
async fn a_check_id_belongs_to_one_service() {
    let p = start();
    let spec = CheckSpec {
        id: Some("shared".into()),
        ttl: Some("1m".into()),
        ..Default::default()
    };
    p.register("web", vec![spec.clone()]).await;
    let r = p
        .registry
        .send(Register {
            service: Service::new("api", 81),
            checks: resolve_all("api", &[spec]).unwrap(),
        })
        .await
        .unwrap();
    assert!(r.unwrap_err().starts_with("checks[0].id"));
    assert_eq!(p.registry.send(LocalServices).await.unwrap().len(), 1);
}

#[actix::test]
async fn checks_keep_running_after_the_actor_restarts() {
    let p = start();
    let code = Arc::new(AtomicU16::new(200));
    let url = http_server(code.clone()).await;
    p.register("web", vec![http_check(&url, "100ms")]).await;
    p.wait_for("web", Health::Passing).await;
    p.checks.do_send(Crash);
    settle(200).await;
    assert_eq!(Metrics::get(&p.metrics.actor_restarts), 1);
    assert!(p.healths("web").is_empty(), "a restart changes no status");
    code.store(500, Ordering::SeqCst);
    p.wait_for("web", Health::Critical).await;
}
