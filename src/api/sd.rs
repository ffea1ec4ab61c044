//! `GET /v1/sd/prometheus[?service=NAME]`: the service catalog in Prometheus'
//! HTTP service-discovery format, so that a Prometheus `http_sd_configs`
//! entry pointed at any node scrapes the services the cluster knows about.
//!
//! One target group per instance:
//!
//! ```json
//! [{"targets": ["10.0.0.5:8080"],
//!   "labels": {"__meta_gossip_service": "web", "__meta_gossip_node": "node1",
//!              "__meta_gossip_tags": ",v1,blue,", ...}}]
//! ```
//!
//! Tags are joined Consul-style, with the separator at both ends, so that a
//! relabel rule can match `.*,v1,.*`. Instances on suspect members are listed
//! (with `__meta_gossip_state="suspect"`); dead and left members offer none.
//! Critical instances are dropped unless `?include_critical=true`; the others
//! carry their health in `__meta_gossip_health` (`passing` or `warning`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::node::NodeHandle;
use crate::protocol::services::{catalog, Health, Instance};
use crate::protocol::Member;

#[derive(Deserialize)]
pub struct SdQuery {
    pub service: Option<String>,
    #[serde(default)]
    pub include_critical: bool,
}

/// One entry of the HTTP SD answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// `[a-zA-Z0-9_]` only, as Prometheus label names require.
fn label_safe(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

fn group(service: &str, i: &Instance, members: &[Member]) -> TargetGroup {
    let mut labels = BTreeMap::new();
    labels.insert("__meta_gossip_service".to_string(), service.to_string());
    labels.insert("__meta_gossip_node".to_string(), i.node.clone());
    labels.insert(
        "__meta_gossip_tags".to_string(),
        format!(",{},", i.tags.join(",")),
    );
    labels.insert("__meta_gossip_state".to_string(), i.state.to_string());
    labels.insert("__meta_gossip_health".to_string(), i.status.to_string());
    labels.insert("__meta_gossip_service_port".to_string(), i.port.to_string());
    if let Some(m) = members.iter().find(|m| m.id.as_str() == i.node) {
        labels.insert("__meta_gossip_node_addr".to_string(), m.addr.to_string());
    }
    for (k, v) in &i.meta {
        labels.insert(
            format!("__meta_gossip_service_meta_{}", label_safe(k)),
            v.clone(),
        );
    }
    TargetGroup {
        targets: vec![host_port(&i.addr, i.port)],
        labels,
    }
}

/// The target groups for every service, or for one; critical instances
/// only when `include_critical`.
pub fn target_groups(
    members: &[Member],
    only: Option<&str>,
    include_critical: bool,
) -> Vec<TargetGroup> {
    let mut out = Vec::new();
    for (name, instances) in catalog(members) {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        out.extend(
            instances
                .iter()
                .filter(|i| include_critical || i.status != Health::Critical)
                .map(|i| group(&name, i, members)),
        );
    }
    out
}

/// `GET /v1/sd/prometheus[?service=NAME]`.
/// Reads the published snapshot (no round trip through Membership).
pub async fn prometheus(node: web::Data<NodeHandle>, q: web::Query<SdQuery>) -> HttpResponse {
    let snap = node.snapshot.borrow().clone();
    let ms: Vec<Member> = snap.members().cloned().collect();
    HttpResponse::Ok().json(target_groups(
        &ms,
        q.service.as_deref().filter(|s| !s.is_empty()),
        q.include_critical,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::services::{Service, ServiceSet};
    use crate::protocol::{MemberState, NodeId};

    fn member(id: &str, ip: &str, state: MemberState, services: Vec<Service>) -> Member {
        Member {
            id: NodeId::new(id),
            addr: format!("{ip}:7946").parse().unwrap(),
            incarnation: 1,
            state,
            services: ServiceSet::new(1, services),
        }
    }

    #[test]
    fn groups_carry_service_node_and_tags() {
        let mut web = Service::new("web", 8080);
        web.tags = vec!["v1".into(), "blue".into()];
        web.meta.insert("team-name".into(), "core".into());
        let ms = vec![
            member(
                "a",
                "10.0.0.1",
                MemberState::Alive,
                vec![web.clone(), Service::new("db", 5432)],
            ),
            member(
                "b",
                "10.0.0.2",
                MemberState::Suspect,
                vec![Service::new("web", 8081)],
            ),
            member(
                "c",
                "10.0.0.3",
                MemberState::Dead,
                vec![Service::new("web", 8082)],
            ),
        ];
        let all = target_groups(&ms, None, false);
        assert_eq!(all.len(), 3);
        let web_groups = target_groups(&ms, Some("web"), false);
        assert_eq!(web_groups.len(), 2);
        let a = &web_groups[0];
        assert_eq!(a.targets, vec!["10.0.0.1:8080".to_string()]);
        assert_eq!(a.labels["__meta_gossip_service"], "web");
        assert_eq!(a.labels["__meta_gossip_node"], "a");
        assert_eq!(a.labels["__meta_gossip_tags"], ",v1,blue,");
        assert_eq!(a.labels["__meta_gossip_state"], "alive");
        assert_eq!(a.labels["__meta_gossip_node_addr"], "10.0.0.1:7946");
        assert_eq!(a.labels["__meta_gossip_service_meta_team_name"], "core");
        assert_eq!(web_groups[1].labels["__meta_gossip_state"], "suspect");
        assert_eq!(web_groups[1].labels["__meta_gossip_tags"], ",,");
        assert!(target_groups(&ms, Some("nope"), false).is_empty());
    }

    #[test]
    fn critical_instances_are_dropped_unless_asked_for() {
        let mut sick = Service::new("web", 8080);
        sick.health = Health::Critical;
        let mut busy = Service::new("web", 8081);
        busy.health = Health::Warning;
        let ms = vec![
            member("a", "10.0.0.1", MemberState::Alive, vec![sick]),
            member("b", "10.0.0.2", MemberState::Alive, vec![busy]),
        ];
        let groups = target_groups(&ms, None, false);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].labels["__meta_gossip_node"], "b");
        assert_eq!(groups[0].labels["__meta_gossip_health"], "warning");
        let all = target_groups(&ms, None, true);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].labels["__meta_gossip_health"], "critical");
    }

    #[test]
    fn ipv6_targets_are_bracketed() {
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("127.0.0.1", 80), "127.0.0.1:80");
    }
}
