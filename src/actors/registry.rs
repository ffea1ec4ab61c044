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
//! Lookups do not come here: every node answers "where is service X?" from
//! its own member table (`protocol::services::catalog`).
//!
//! Takes: `Register`, `Deregister`, `LocalServices`.
//! Sends: `PublishServices` to membership.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::protocol::checks::CheckDef;
use crate::protocol::services::{Service, ServiceSet};
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
    ) -> Self {
        let store = data_dir.map(|d| d.join("services.json"));
        let initial = match store.as_ref().and_then(load) {
            Some(saved) => {
                log::info!("restored {} service(s) from the data dir", saved.len());
                saved
            }
            None => initial,
        };
        let services = initial
            .into_iter()
            .map(|s| (s.id().to_string(), s))
            .collect();
        Registry {
            services,
            checks: BTreeMap::new(),
            max_services,
            max_record_bytes,
            template,
            publish,
            store,
        }
    }

    fn save(&self) {
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

    fn register(&mut self, s: Service, checks: Vec<CheckDef>) -> Result<(), String> {
        s.validate()?;
        let is_new = !self.services.contains_key(s.id());
        if is_new && self.services.len() >= self.max_services {
            return Err(format!(
                "this node already has the maximum of {} services",
                self.max_services
            ));
        }
        let s_id = s.id().to_string();
        let mut candidate = self.services.clone();
        candidate.insert(s.id().to_string(), s);
        let size = self.record_size(candidate.values().cloned().collect());
        if size > self.max_record_bytes {
            return Err(format!(
                "this node's services would take {size} bytes, more than fit in one datagram ({}); use fewer or shorter tags and metadata",
                self.max_record_bytes
            ));
        }
        self.services = candidate;
        self.checks.insert(s_id, checks);
        self.changed();
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
            self.checks.remove(&m.0);
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

impl Handler<Crash> for Registry {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        guard(ctx, |_| panic!("test crash"));
    }
}
