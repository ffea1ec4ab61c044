//! Service-registry actor: owns this node's own service instances. It
//! validates every registration, keeps the list within `max_services` and
//! within one datagram, and publishes the whole list to membership, which
//! versions it and spreads it with our member record.
//!
//! Lookups do not come here: every node answers "where is service X?" from
//! its own member table (`protocol::services::catalog`).
//!
//! Takes: `Register`, `Deregister`, `LocalServices`.
//! Sends: `PublishServices` to membership.

use actix::prelude::*;
use std::collections::BTreeMap;

use super::supervisor::{guard, Crash};
use crate::messages::*;
use crate::protocol::services::{Service, ServiceSet};
use crate::protocol::wire::{encode_msg, Msg};
use crate::protocol::Member;

pub struct Registry {
    services: BTreeMap<String, Service>,
    max_services: usize,
    /// Largest encoded member record that still fits in one datagram.
    max_record_bytes: usize,
    /// Our record as others will see it, to measure the encoded size.
    template: Member,
    publish: Recipient<PublishServices>,
}

impl Registry {
    pub fn new(
        initial: Vec<Service>,
        max_services: usize,
        max_record_bytes: usize,
        template: Member,
        publish: Recipient<PublishServices>,
    ) -> Self {
        let services = initial.into_iter().map(|s| (s.name.clone(), s)).collect();
        Registry {
            services,
            max_services,
            max_record_bytes,
            template,
            publish,
        }
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

    fn register(&mut self, s: Service) -> Result<(), String> {
        s.validate()?;
        let is_new = !self.services.contains_key(&s.name);
        if is_new && self.services.len() >= self.max_services {
            return Err(format!(
                "this node already has the maximum of {} services",
                self.max_services
            ));
        }
        let mut candidate = self.services.clone();
        candidate.insert(s.name.clone(), s);
        let size = self.record_size(candidate.values().cloned().collect());
        if size > self.max_record_bytes {
            return Err(format!(
                "this node's services would take {size} bytes, more than fit in one datagram ({}); use fewer or shorter tags and metadata",
                self.max_record_bytes
            ));
        }
        self.services = candidate;
        self.publish.do_send(PublishServices(self.list()));
        Ok(())
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // Also runs after a restart: membership gets the list again.
        self.publish.do_send(PublishServices(self.list()));
    }
}

impl Supervised for Registry {}

impl Handler<Register> for Registry {
    type Result = Result<(), String>;
    fn handle(&mut self, m: Register, ctx: &mut Context<Self>) -> Self::Result {
        guard(ctx, |_| self.register(m.0))
            .unwrap_or_else(|| Err("internal error; the registry restarted".into()))
    }
}

impl Handler<Deregister> for Registry {
    type Result = Result<bool, String>;
    fn handle(&mut self, m: Deregister, ctx: &mut Context<Self>) -> Self::Result {
        guard(ctx, |_| {
            let existed = self.services.remove(&m.0).is_some();
            if existed {
                self.publish.do_send(PublishServices(self.list()));
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
