//! Checks actor: runs this node's health checks and owns their state (status,
//! threshold counters, last output). It runs nothing, and holds no timer,
//! while no check is declared.
//!
//! * http and tcp checks run every `interval` (the first one after a random
//!   stagger within the first interval, at most 1 s, so checks declared
//!   together do not fire together), each under its `timeout`, at most
//!   [`MAX_CONCURRENT`] at once; a check still running when its next turn
//!   comes skips that turn. Results go through Consul's thresholds
//!   (`protocol::checks::Tally`).
//! * ttl checks run nothing: a report (`TtlUpdate`) sets the status and
//!   restarts the timer; when `ttl` passes without one, the check is critical.
//! * A check critical for `deregister_critical_after` deregisters its
//!   instance (`Deregister` to the registry).
//!
//! After every status change the instance's health (the worst of its checks)
//! is recomputed, and sent to the registry only if it changed: an unchanged
//! status costs no message, no rumor. Output stays here (`LocalChecks`).
//!
//! Takes: `SetChecks` (registry), `TtlUpdate`, `LocalChecks` (forwarded by
//! the registry).
//! Sends: `SetHealth` and `Deregister` to the registry.

use actix::prelude::*;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::metrics::Metrics;
use crate::protocol::checks::{
    critical_too_long, truncate_output, worst, CheckDef, CheckKind, CheckState, Tally, MAX_OUTPUT,
};
use crate::protocol::services::Health;

/// http and tcp checks in flight at once, node-wide.
pub const MAX_CONCURRENT: usize = 64;
/// The first run of a new check comes within this (or its interval).
const MAX_STAGGER: Duration = Duration::from_secs(1);

struct Running {
    def: CheckDef,
    tally: Tally,
    output: String,
    in_flight: bool,
    /// The interval timer, or the TTL's expiry timer.
    timer: Option<SpawnHandle>,
    critical_since: Option<Instant>,
}

pub struct Checks {
    running: BTreeMap<String, Running>,
    /// The health last sent to the registry, per instance.
    reported: BTreeMap<String, Health>,
    health: Recipient<SetHealth>,
    deregister: Recipient<Deregister>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Checks {
    pub fn new(
        health: Recipient<SetHealth>,
        deregister: Recipient<Deregister>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Checks {
            running: BTreeMap::new(),
            reported: BTreeMap::new(),
            health,
            deregister,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            metrics,
        }
    }

    fn schedule(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(r) = self.running.get_mut(id) else {
            return;
        };
        if let Some(h) = r.timer.take() {
            ctx.cancel_future(h);
        }
        let key = id.to_string();
        r.timer = Some(match r.def.kind {
            CheckKind::Ttl(ttl) => ctx.run_later(ttl, move |a, ctx| a.ttl_expired(&key, ctx)),
            _ => {
                let interval = r.def.interval;
                let stagger =
                    rand::thread_rng().gen_range(Duration::ZERO..=interval.min(MAX_STAGGER));
                ctx.run_later(stagger, move |a, ctx| {
                    a.run_once(&key, ctx);
                    let again = key.clone();
                    let h = ctx.run_interval(interval, move |a, ctx| a.run_once(&again, ctx));
                    if let Some(r) = a.running.get_mut(&key) {
                        r.timer = Some(h);
                    }
                })
            }
        });
    }

    fn run_once(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(r) = self.running.get_mut(id) else {
            return;
        };
        if r.in_flight {
            return;
        }
        r.in_flight = true;
        let def = r.def.clone();
        let permits = self.permits.clone();
        let metrics = self.metrics.clone();
        let key = id.to_string();
        let work = async move {
            let _permit = permits.acquire_owned().await.ok();
            let started = Instant::now();
            let result = crate::check_io::run(&def.kind, def.timeout).await;
            Metrics::inc(&metrics.check_runs);
            metrics.check_latency.observe(started.elapsed());
            (def, result)
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |(def, (raw, output)), a, ctx| {
                    let Some(r) = a.running.get_mut(&key) else {
                        return;
                    };
                    r.in_flight = false;
                    if r.def != def {
                        return; // redefined while it ran
                    }
                    r.output = output;
                    let status = r.tally.record(raw);
                    a.settle(&key, status, ctx);
                }),
        );
    }

    fn ttl_expired(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(r) = self.running.get_mut(id) else {
            return;
        };
        r.timer = None;
        let CheckKind::Ttl(ttl) = r.def.kind else {
            return;
        };
        r.output = format!("TTL expired: no report within {} ms", ttl.as_millis());
        r.tally.status = Health::Critical;
        self.settle(id, Health::Critical, ctx);
    }

    /// After a check's status may have changed: the deregistration deadline,
    /// the gauges, and the instance's health.
    fn settle(&mut self, id: &str, status: Health, ctx: &mut Context<Self>) {
        let Some(service_id) = self.running.get(id).map(|r| r.def.service_id.clone()) else {
            return;
        };
        self.track_critical(id, status, ctx);
        self.update_gauges();
        self.report(&service_id);
    }

    /// Starts (or clears) the time a check has been critical, and the timer
    /// that deregisters its instance after `deregister_critical_after`.
    fn track_critical(&mut self, id: &str, status: Health, ctx: &mut Context<Self>) {
        let Some(r) = self.running.get_mut(id) else {
            return;
        };
        match (status, r.critical_since) {
            (Health::Critical, None) => {
                r.critical_since = Some(Instant::now());
                if let Some(after) = r.def.deregister_critical_after {
                    let key = id.to_string();
                    ctx.run_later(after, move |a, _| a.deregister_if_still_critical(&key));
                }
            }
            (Health::Critical, Some(_)) => {}
            (_, _) => r.critical_since = None,
        }
    }

    fn deregister_if_still_critical(&mut self, id: &str) {
        let Some(r) = self.running.get(id) else {
            return;
        };
        if critical_too_long(
            r.critical_since,
            Instant::now(),
            r.def.deregister_critical_after,
        ) {
            log::warn!(
                "check {id} critical for longer than deregister_critical_after: deregistering {}",
                r.def.service_id
            );
            self.deregister
                .do_send(Deregister(r.def.service_id.clone()));
        }
    }

    fn service_health(&self, service_id: &str) -> Health {
        worst(
            self.running
                .values()
                .filter(|r| r.def.service_id == service_id)
                .map(|r| r.tally.status),
        )
    }

    /// Tells the registry the instance's health, if it changed.
    fn report(&mut self, service_id: &str) {
        let health = self.service_health(service_id);
        if self.reported.get(service_id) == Some(&health) {
            return;
        }
        if let Some(old) = self.reported.insert(service_id.to_string(), health) {
            log::info!("service {service_id}: {old} -> {health}");
        }
        self.health.do_send(SetHealth {
            service_id: service_id.to_string(),
            health,
        });
    }

    fn update_gauges(&self) {
        let count = |h| {
            self.running
                .values()
                .filter(|r| r.tally.status == h)
                .count() as u64
        };
        let m = &self.metrics;
        Metrics::set(&m.checks_passing, count(Health::Passing));
        Metrics::set(&m.checks_warning, count(Health::Warning));
        Metrics::set(&m.checks_critical, count(Health::Critical));
    }

    fn set_checks(&mut self, m: SetChecks, ctx: &mut Context<Self>) {
        let wanted: BTreeMap<String, CheckDef> =
            m.checks.into_iter().map(|d| (d.id.clone(), d)).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(id, r)| r.def.service_id == m.service_id && wanted.get(*id) != Some(&r.def))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(h) = self.running.remove(&id).and_then(|r| r.timer) {
                ctx.cancel_future(h);
            }
        }
        for (id, def) in wanted {
            if self.running.contains_key(&id) {
                continue; // unchanged: keeps its state and timer
            }
            let tally = Tally::new(&def);
            let status = tally.status;
            self.running.insert(
                id.clone(),
                Running {
                    def,
                    tally,
                    output: String::new(),
                    in_flight: false,
                    timer: None,
                    critical_since: None,
                },
            );
            self.schedule(&id, ctx);
            self.track_critical(&id, status, ctx);
        }
        self.update_gauges();
        if self
            .running
            .values()
            .any(|r| r.def.service_id == m.service_id)
        {
            self.report(&m.service_id);
        } else {
            self.reported.remove(&m.service_id);
        }
    }

    fn ttl_update(&mut self, m: TtlUpdate, ctx: &mut Context<Self>) -> Result<(), String> {
        let r = self
            .running
            .get_mut(&m.check_id)
            .ok_or_else(|| format!("no check {:?} on this node", m.check_id))?;
        if !matches!(r.def.kind, CheckKind::Ttl(_)) {
            return Err(format!(
                "check {:?} is not a TTL check; only TTL checks take reports",
                m.check_id
            ));
        }
        r.output = truncate_output(m.note.as_deref().unwrap_or(""), MAX_OUTPUT);
        r.tally.status = m.status;
        self.schedule(&m.check_id, ctx);
        self.settle(&m.check_id, m.status, ctx);
        Ok(())
    }
}

impl Actor for Checks {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // After a supervised restart the timers are gone; the state is not.
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            if let Some(r) = self.running.get_mut(&id) {
                r.timer = None;
                r.in_flight = false;
            }
            self.schedule(&id, ctx);
        }
    }
}

impl Supervised for Checks {}

impl Handler<SetChecks> for Checks {
    type Result = ();
    fn handle(&mut self, m: SetChecks, ctx: &mut Context<Self>) {
        guard(ctx, |ctx| self.set_checks(m, ctx));
    }
}

impl Handler<TtlUpdate> for Checks {
    type Result = Result<(), String>;
    fn handle(&mut self, m: TtlUpdate, ctx: &mut Context<Self>) -> Self::Result {
        guard(ctx, |ctx| self.ttl_update(m, ctx))
            .unwrap_or_else(|| Err("internal error; the checks actor restarted".into()))
    }
}

impl Handler<LocalChecks> for Checks {
    type Result = MessageResult<LocalChecks>;
    fn handle(&mut self, _: LocalChecks, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.running
                .values()
                .map(|r| CheckState {
                    def: r.def.clone(),
                    status: r.tally.status,
                    output: r.output.clone(),
                })
                .collect(),
        )
    }
}

impl Handler<Crash> for Checks {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
