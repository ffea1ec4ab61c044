//! Service-registry actor: owns this node's own service instances. It
//! validates every registration, keeps the list within `max_services` and
//! within one datagram, and publishes the whole list to membership, which
//! versions it and spreads it with our member record.
//!
//! With a `data_dir`, the list is also written to `data_dir/services.json`
//! (atomically: a temporary file, then a rename) on every change and read
//! back at start, so registrations made at run time survive a restart of the
//! process; without one they survive restarts of this actor only (actix keeps
//! the actor value across supervised restarts).
//!
//! Each instance's check definitions are kept here too (and saved beside the
//! list, in `checks.json`), and handed to the checks actor (`checks.rs`),
//! which runs them and answers with the instance's health; a change of health
//! is a change of the list, published like any other.
//!
//! Lookups do not come here: every node answers "where is service X?" from
//! its own member table (`protocol::services::catalog`).
//!
//! Takes: `Register`, `Deregister`, `LocalServices`, `SetHealth` (checks
//! actor); `TtlUpdate` and `LocalChecks`, which it forwards to the checks
//! actor.
//! Sends: `PublishServices` to membership, `SetChecks` to the checks actor.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::protocol::checks::{worst, CheckDef};
use crate::protocol::services::{Health, Service, ServiceSet};
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::Member;

pub struct Registry {
    /// This node's instances by id (the name unless an id was given).
    services: BTreeMap<String, Service>,
    /// Each instance's check definitions, by instance id.
    checks: BTreeMap<String, Vec<CheckDef>>,
    max_services: usize,
    /// Largest encoded member record that still fits in one datagram.
    max_record_bytes: usize,
    /// Our record as others will see it, to measure the encoded size.
    template: Member,
    publish: Recipient<PublishServices>,
    store: Option<PathBuf>,
    /// The actor that runs the checks; without one (some tests) checks are
    /// kept but not run.
    runner: Option<CheckRunner>,
}

/// The checks actor, as the registry talks to it.
pub struct CheckRunner {
    pub set: Recipient<SetChecks>,
    pub ttl: Recipient<TtlUpdate>,
    pub list: Recipient<LocalChecks>,
}

/// Reads the saved checks; a file that does not parse is kept aside.
fn load_checks(path: &PathBuf) -> Option<BTreeMap<String, Vec<CheckDef>>> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(map) => Some(map),
        Err(e) => {
            let aside = path.with_extension("json.bad");
            log::error!("{}: {e}; moved to {}", path.display(), aside.display());
            let _ = std::fs::rename(path, aside);
            None
        }
    }
}

/// Reads the saved list; a file that does not parse is kept aside (renamed
/// `services.json.bad`), never overwritten.
fn load(path: &PathBuf) -> Option<Vec<Service>> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Vec<Service>>(&text) {
        Ok(list) if list.iter().all(|s| s.validate().is_ok()) => Some(list),
        other => {
            let why = other
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "invalid service".into());
            let aside = path.with_extension("json.bad");
            log::error!(
                "{}: {why}; moved to {} and starting from SERVICES",
                path.display(),
                aside.display()
            );
            let _ = std::fs::rename(path, aside);
            None
        }
    }
}

impl Registry {
    pub fn new(
        initial: Vec<Service>,
        max_services: usize,
        max_record_bytes: usize,
        template: Member,
        publish: Recipient<PublishServices>,
        data_dir: Option<PathBuf>,
        initial_checks: BTreeMap<String, Vec<CheckDef>>,
    ) -> Self {
        let store = data_dir.map(|d| d.join("services.json"));
        let (initial, checks) = match store.as_ref().and_then(load) {
            Some(saved) => {
                log::info!("restored {} service(s) from the data dir", saved.len());
                let checks = store
                    .as_ref()
                    .and_then(|p| load_checks(&p.with_file_name("checks.json")))
                    .unwrap_or_default();
                (saved, checks)
            }
            None => (initial, initial_checks),
        };
        let services: BTreeMap<String, Service> = initial
            .into_iter()
            .map(|mut s| {
                // Until the checks say otherwise: their initial status.
                let initial = checks
                    .get(s.id())
                    .map(|c| c.iter().map(|d| d.initial_status));
                s.health = initial.map_or(Health::Passing, worst);
                (s.id().to_string(), s)
            })
            .collect();
        let checks = checks
            .into_iter()
            .filter(|(id, c)| services.contains_key(id) && !c.is_empty())
            .collect();
        Registry {
            services,
            checks,
            runner: None,
            max_services,
            max_record_bytes,
            template,
            publish,
            store,
        }
    }

    /// Runs the checks through this actor from now on.
    pub fn with_runner(mut self, runner: CheckRunner) -> Self {
        self.runner = Some(runner);
        self
    }

    fn send_checks(&self, service_id: &str) {
        if let Some(r) = &self.runner {
            r.set.do_send(SetChecks {
                service_id: service_id.to_string(),
                checks: self.checks.get(service_id).cloned().unwrap_or_default(),
            });
        }
    }

    fn save(&self) {
        self.save_checks();
        let Some(path) = &self.store else { return };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.list()).unwrap_or_else(|_| "[]".into());
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            log::warn!("cannot save services to {}: {e}", path.display());
        }
    }

    fn save_checks(&self) {
        let Some(path) = &self.store else { return };
        let path = path.with_file_name("checks.json");
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.checks).unwrap_or_else(|_| "{}".into());
        if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
            log::warn!("cannot save checks to {}: {e}", path.display());
        }
    }

    fn changed(&self) {
        self.save();
        self.publish.do_send(PublishServices(self.list()));
    }

    fn list(&self) -> Vec<Service> {
        self.services.values().cloned().collect()
    }

    fn record_size(&self, services: Vec<Service>) -> usize {
        let member = Member {
            services: ServiceSet::new(u64::MAX, services),
            ..self.template.clone()
        };
        encode_msg(&Msg::Update { member, by: None }).len()
    }

    fn register(&mut self, mut s: Service, checks: Vec<CheckDef>) -> Result<(), String> {
        s.validate()?;
        let s_id = s.id().to_string();
        for (i, c) in checks.iter().enumerate() {
            if c.service_id != s_id {
                return Err(format!(
                    "checks[{i}]: belongs to {:?}, not {s_id:?}",
                    c.service_id
                ));
            }
            let taken = self
                .checks
                .iter()
                .find(|(sid, list)| **sid != s_id && list.iter().any(|o| o.id == c.id));
            if let Some((other, _)) = taken {
                return Err(format!(
                    "checks[{i}].id: {:?} is already a check of service {other:?}",
                    c.id
                ));
            }
        }
        let is_new = !self.services.contains_key(&s_id);
        if is_new && self.services.len() >= self.max_services {
            return Err(format!(
                "this node already has the maximum of {} services",
                self.max_services
            ));
        }
        // Health is the checks' to decide, never the caller's: unchanged
        // checks keep the health they reached, new ones start at their
        // initial status.
        let same_checks = self
            .checks
            .get(&s_id)
            .map_or(checks.is_empty(), |c| *c == checks);
        s.health = match self.services.get(&s_id) {
            Some(old) if same_checks => old.health,
            _ => worst(checks.iter().map(|d| d.initial_status)),
        };
        let mut candidate = self.services.clone();
        candidate.insert(s_id.clone(), s);
        let size = self.record_size(candidate.values().cloned().collect());
        if size > self.max_record_bytes {
            return Err(format!(
                "this node's services would take {size} bytes, more than fit in one datagram ({}); use fewer or shorter tags and metadata",
                self.max_record_bytes
            ));
        }
        self.services = candidate;
        if checks.is_empty() {
            self.checks.remove(&s_id);
        } else {
            self.checks.insert(s_id.clone(), checks);
        }
        self.changed();
        if !same_checks || is_new {
            self.send_checks(&s_id);
        }
        Ok(())
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // Also runs after a restart: membership gets the list again. An
        // empty list is not published: it would only cost every node a rumor.
        if !self.services.is_empty() {
            self.publish.do_send(PublishServices(self.list()));
        }
        // The checks actor keeps the state of checks it already runs.
        for id in self.checks.keys() {
            self.send_checks(id);
        }
    }
}

impl Supervised for Registry {}

impl Handler<Register> for Registry {
    type Result = Result<(), String>;
    fn handle(&mut self, m: Register, ctx: &mut Context<Self>) -> Self::Result {
        guard(ctx, |_| self.register(m.service, m.checks))
            .unwrap_or_else(|| Err("internal error; the registry restarted".into()))
    }
}

impl Handler<Deregister> for Registry {
    type Result = Result<bool, String>;
    fn handle(&mut self, m: Deregister, ctx: &mut Context<Self>) -> Self::Result {
        guard(ctx, |_| {
            let existed = self.services.remove(&m.0).is_some();
            if self.checks.remove(&m.0).is_some() {
                self.send_checks(&m.0);
            }
            if existed {
                self.changed();
            }
            Ok(existed)
        })
        .unwrap_or_else(|| Err("internal error; the registry restarted".into()))
    }
}

impl Handler<LocalServices> for Registry {
    type Result = MessageResult<LocalServices>;
    fn handle(&mut self, _: LocalServices, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.list())
    }
}

impl Handler<SetHealth> for Registry {
    type Result = ();
    fn handle(&mut self, m: SetHealth, ctx: &mut Context<Self>) {
        guard(ctx, |_| {
            // A verdict about an instance deregistered meanwhile is dropped.
            let Some(s) = self.services.get_mut(&m.service_id) else {
                return;
            };
            if s.health != m.health {
                s.health = m.health;
                self.changed();
            }
        });
    }
}

impl Handler<TtlUpdate> for Registry {
    type Result = ResponseFuture<Result<(), String>>;
    fn handle(&mut self, m: TtlUpdate, _: &mut Context<Self>) -> Self::Result {
        let runner = self.runner.as_ref().map(|r| r.ttl.clone());
        Box::pin(async move {
            match runner {
                Some(r) => r
                    .send(m)
                    .await
                    .unwrap_or_else(|_| Err("the checks actor is restarting; try again".into())),
                None => Err("this node runs no checks".into()),
            }
        })
    }
}

impl Handler<LocalChecks> for Registry {
    type Result = ResponseFuture<Vec<crate::protocol::checks::CheckState>>;
    fn handle(&mut self, m: LocalChecks, _: &mut Context<Self>) -> Self::Result {
        let runner = self.runner.as_ref().map(|r| r.list.clone());
        Box::pin(async move {
            match runner {
                Some(r) => r.send(m).await.unwrap_or_default(),
                None => Vec::new(),
            }
        })
    }
}

impl Handler<Crash> for Registry {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
