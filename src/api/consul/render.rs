//! The read side: Consul's answers rendered from one published snapshot, as
//! plain functions (no runtime), so they are tested alone.
//!
//! Gossip keeps no per-check records of other nodes: each instance carries
//! one health, decided by its owner's checks. So every instance shows one
//! synthetic check, `service:<id>`, holding that health, and every node a
//! `serfHealth` check (Consul's name for "the gossip layer sees this node"):
//! passing when alive, warning when suspect. Dead and left nodes, and their
//! services, are not in the catalog (Consul deregisters them too).
//!
//! Every index in a body (CreateIndex, ModifyIndex) is stable while the
//! fact it stands for is, so that the body's hash changes only when what a
//! client asked for changes (see `blocking.rs`). A node's services travel
//! as one versioned set, so no instance has an index of its own: services
//! and their checks say 1 (the X-Consul-Index header is what clients
//! block on); a node says its incarnation + 1.

use std::collections::{BTreeMap, BTreeSet};

use super::types::*;
use crate::protocol::checks::{CheckKind, CheckState};
use crate::protocol::services::{Health, Service};
use crate::protocol::{Member, MemberState};
use crate::snapshot::Snapshot;

/// Serf's status numbers, as `/v1/agent/members` gives them.
pub fn serf_status(state: MemberState) -> u8 {
    match state {
        MemberState::Alive | MemberState::Suspect => 1,
        MemberState::Left => 3,
        MemberState::Dead => 4,
    }
}

/// A UUID-shaped id derived from the node's name, stable across restarts
/// (Consul's node ids are UUIDs, and some clients expect that shape).
pub fn node_uuid(name: &str) -> String {
    let h = |seed: u64| {
        name.bytes()
            .fold(seed, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
    };
    let (a, b) = (h(0xcbf2_9ce4_8422_2325), h(0x8422_2325_cbf2_9ce4));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn node_ip(m: &Member) -> String {
    m.addr.ip().to_string()
}

pub fn node(m: &Member, dc: &str) -> Node {
    let ip = node_ip(m);
    Node {
        id: node_uuid(m.id.as_str()),
        node: m.id.to_string(),
        address: ip.clone(),
        datacenter: dc.to_string(),
        tagged_addresses: [("lan".to_string(), ip.clone()), ("wan".to_string(), ip)].into(),
        meta: BTreeMap::new(),
        create_index: 1,
        modify_index: m.incarnation + 1,
    }
}

pub fn agent_service(s: &Service, dc: &str) -> AgentService {
    AgentService {
        id: s.id().to_string(),
        service: s.name.clone(),
        tags: s.tags.clone(),
        meta: s.meta.clone(),
        port: s.port,
        address: s.address.clone().unwrap_or_default(),
        weights: WEIGHTS,
        enable_tag_override: false,
        datacenter: dc.to_string(),
        create_index: 1,
        modify_index: 1,
    }
}

pub fn serf_check(m: &Member) -> HealthCheck {
    let (status, output) = match m.state {
        MemberState::Alive => ("passing", "Agent alive and reachable"),
        MemberState::Suspect => ("warning", "Agent suspected by the failure detector"),
        MemberState::Dead => ("critical", "Agent not live or unreachable"),
        MemberState::Left => ("critical", "Agent left the cluster"),
    };
    HealthCheck {
        node: m.id.to_string(),
        check_id: "serfHealth".into(),
        name: "Serf Health Status".into(),
        status: status.into(),
        notes: String::new(),
        output: output.into(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        kind: String::new(),
        create_index: 1,
        modify_index: m.incarnation + 1,
    }
}

/// The instance's one check: its health as its owner's checks decided it.
pub fn service_check(m: &Member, s: &Service) -> HealthCheck {
    HealthCheck {
        node: m.id.to_string(),
        check_id: format!("service:{}", s.id()),
        name: format!("Service '{}' health", s.name),
        status: s.health.as_str().into(),
        notes: "the instance's health, as all of its checks on its node decide it".into(),
        output: String::new(),
        service_id: s.id().to_string(),
        service_name: s.name.clone(),
        service_tags: s.tags.clone(),
        kind: String::new(),
        create_index: 1,
        modify_index: 1,
    }
}

/// One of this agent's own checks, as it runs it (`LocalChecks`).
pub fn local_check(snap: &Snapshot, c: &CheckState) -> HealthCheck {
    let own = snap.own();
    let service = own.and_then(|m| m.services.list.iter().find(|s| s.id() == c.def.service_id));
    HealthCheck {
        node: snap.me.to_string(),
        check_id: c.def.id.clone(),
        name: c.def.name.clone(),
        status: c.status.as_str().into(),
        notes: String::new(),
        output: c.output.clone(),
        service_id: c.def.service_id.clone(),
        service_name: service.map(|s| s.name.clone()).unwrap_or_default(),
        service_tags: service.map(|s| s.tags.clone()).unwrap_or_default(),
        kind: match c.def.kind {
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Ttl(_) => "ttl",
        }
        .into(),
        create_index: 1,
        modify_index: 1,
    }
}

/// The live members (alive, suspect), whose services make the catalog.
fn live(snap: &Snapshot) -> impl Iterator<Item = &Member> {
    snap.members().filter(|m| m.state.is_live())
}

/// Every instance of `name` on a live member carrying all of `tags`.
fn instances<'a>(
    snap: &'a Snapshot,
    name: &'a str,
    tags: &'a [String],
) -> impl Iterator<Item = (&'a Member, &'a Service)> + 'a {
    live(snap).flat_map(move |m| {
        m.services
            .list
            .iter()
            .filter(move |s| s.name == name && tags.iter().all(|t| s.tags.contains(t)))
            .map(move |s| (m, s))
    })
}

/// `/v1/catalog/services`: each service name with the union of its tags.
pub fn catalog_services(snap: &Snapshot) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in live(snap) {
        for s in m.services.list.iter() {
            out.entry(s.name.clone())
                .or_default()
                .extend(s.tags.iter().cloned());
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

pub fn catalog_service(
    snap: &Snapshot,
    name: &str,
    tags: &[String],
    dc: &str,
) -> Vec<CatalogService> {
    instances(snap, name, tags)
        .map(|(m, s)| {
            let n = node(m, dc);
            CatalogService {
                id: n.id,
                node: n.node,
                address: n.address,
                datacenter: n.datacenter,
                tagged_addresses: n.tagged_addresses,
                node_meta: n.meta,
                service_kind: String::new(),
                service_id: s.id().to_string(),
                service_name: s.name.clone(),
                service_tags: s.tags.clone(),
                service_address: s.address.clone().unwrap_or_default(),
                service_weights: WEIGHTS,
                service_meta: s.meta.clone(),
                service_port: s.port,
                service_enable_tag_override: false,
                create_index: 1,
                modify_index: 1,
            }
        })
        .collect()
}

pub fn catalog_nodes(snap: &Snapshot, dc: &str) -> Vec<Node> {
    live(snap).map(|m| node(m, dc)).collect()
}

/// `/v1/catalog/node/{node}`; `None` (Consul's `null`) for a node the
/// catalog does not hold.
pub fn catalog_node(snap: &Snapshot, name: &str, dc: &str) -> Option<NodeServices> {
    let m = live(snap).find(|m| m.id.as_str() == name)?;
    Some(NodeServices {
        node: node(m, dc),
        services: m
            .services
            .list
            .iter()
            .map(|s| (s.id().to_string(), agent_service(s, dc)))
            .collect(),
    })
}

/// Worst first, as Consul aggregates: critical, warning, passing.
fn all_passing(checks: &[HealthCheck]) -> bool {
    checks.iter().all(|c| c.status == "passing")
}

pub fn health_service(
    snap: &Snapshot,
    name: &str,
    tags: &[String],
    passing_only: bool,
    dc: &str,
) -> Vec<ServiceEntry> {
    instances(snap, name, tags)
        .map(|(m, s)| ServiceEntry {
            node: node(m, dc),
            service: agent_service(s, dc),
            checks: vec![serf_check(m), service_check(m, s)],
        })
        .filter(|e| !passing_only || all_passing(&e.checks))
        .collect()
}

pub fn health_checks(snap: &Snapshot, name: &str) -> Vec<HealthCheck> {
    instances(snap, name, &[])
        .map(|(m, s)| service_check(m, s))
        .collect()
}

/// The states `/v1/health/state/{state}` takes.
pub fn parse_state(state: &str) -> Option<Option<Health>> {
    match state {
        "any" => Some(None),
        "passing" => Some(Some(Health::Passing)),
        "warning" => Some(Some(Health::Warning)),
        "critical" => Some(Some(Health::Critical)),
        _ => None,
    }
}

pub fn health_state(snap: &Snapshot, state: Option<Health>) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    for m in live(snap) {
        out.push(serf_check(m));
        out.extend(m.services.list.iter().map(|s| service_check(m, s)));
    }
    out.retain(|c| state.is_none_or(|h| c.status == h.as_str()));
    out
}

/// `/v1/agent/services`: this agent's own instances, by id.
pub fn agent_services(snap: &Snapshot, dc: &str) -> BTreeMap<String, AgentService> {
    snap.own()
        .map(|m| {
            m.services
                .list
                .iter()
                .map(|s| (s.id().to_string(), agent_service(s, dc)))
                .collect()
        })
        .unwrap_or_default()
}

/// `/v1/agent/members`: every member this agent knows of, failed and left
/// ones included, as Serf lists them.
pub fn agent_members(snap: &Snapshot, dc: &str) -> Vec<AgentMember> {
    snap.members().map(|m| agent_member(m, dc)).collect()
}

/// One member as Serf describes it.
pub fn agent_member(m: &Member, dc: &str) -> AgentMember {
    AgentMember {
        name: m.id.to_string(),
        addr: node_ip(m),
        port: m.addr.port(),
        tags: [
            ("dc".to_string(), dc.to_string()),
            ("role".to_string(), "node".to_string()),
            ("id".to_string(), node_uuid(m.id.as_str())),
        ]
        .into(),
        status: serf_status(m.state),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::services::ServiceSet;
    use crate::protocol::NodeId;
    use imbl::OrdMap;

    pub fn member(id: &str, ip: &str, state: MemberState, services: Vec<Service>) -> Member {
        Member {
            id: NodeId::new(id),
            addr: format!("{ip}:7946").parse().unwrap(),
            incarnation: 3,
            state,
            services: ServiceSet::new(2, services),
        }
    }

    pub fn snapshot(members: Vec<Member>) -> Snapshot {
        let me = members[0].id.clone();
        let table: OrdMap<_, _> = members.into_iter().map(|m| (m.id.clone(), m)).collect();
        Snapshot {
            index: 7,
            table,
            ..Snapshot::empty(me)
        }
    }

    fn web(id: &str, tags: &[&str], health: Health) -> Service {
        let mut s = Service::new("web", 8080);
        s.id = id.into();
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s.health = health;
        s
    }

    fn cluster() -> Snapshot {
        snapshot(vec![
            member(
                "a",
                "10.0.0.1",
                MemberState::Alive,
                vec![
                    web("web-1", &["v1", "blue"], Health::Passing),
                    web("web-2", &["v1"], Health::Critical),
                    Service::new("db", 5432),
                ],
            ),
            member(
                "b",
                "10.0.0.2",
                MemberState::Suspect,
                vec![web("", &["v2"], Health::Passing)],
            ),
            member(
                "c",
                "10.0.0.3",
                MemberState::Dead,
                vec![web("", &["v3"], Health::Passing)],
            ),
        ])
    }

    #[test]
    fn catalog_services_unites_tags_of_live_instances() {
        let s = catalog_services(&cluster());
        assert_eq!(s["web"], vec!["blue", "v1", "v2"]);
        assert_eq!(s["db"], Vec::<String>::new());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn two_instances_of_one_service_on_one_node_and_tag_filters() {
        let snap = cluster();
        let all = catalog_service(&snap, "web", &[], "dc1");
        let ids: Vec<_> = all
            .iter()
            .map(|c| (c.node.as_str(), c.service_id.as_str()))
            .collect();
        assert_eq!(ids, [("a", "web-1"), ("a", "web-2"), ("b", "web")]);
        assert_eq!(all[0].address, "10.0.0.1");
        assert_eq!(all[0].datacenter, "dc1");
        let v1_blue = catalog_service(&snap, "web", &["v1".into(), "blue".into()], "dc1");
        assert_eq!(v1_blue.len(), 1);
        assert_eq!(v1_blue[0].service_id, "web-1");
        assert!(catalog_service(&snap, "nope", &[], "dc1").is_empty());
    }

    #[test]
    fn health_passing_drops_critical_instances_and_suspect_nodes() {
        let snap = cluster();
        let all = health_service(&snap, "web", &[], false, "dc1");
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].checks[1].status, "critical");
        assert_eq!(all[2].checks[0].check_id, "serfHealth");
        assert_eq!(all[2].checks[0].status, "warning");
        let passing = health_service(&snap, "web", &[], true, "dc1");
        assert_eq!(passing.len(), 1);
        assert_eq!(passing[0].service.id, "web-1");
    }

    #[test]
    fn health_state_filters_by_status() {
        let snap = cluster();
        let crit = health_state(&snap, Some(Health::Critical));
        assert_eq!(crit.len(), 1);
        assert_eq!(crit[0].check_id, "service:web-2");
        // 2 serfHealth + 4 service checks on live nodes.
        assert_eq!(health_state(&snap, None).len(), 6);
        assert_eq!(parse_state("any"), Some(None));
        assert_eq!(parse_state("bogus"), None);
    }

    #[test]
    fn members_use_serf_numbers_and_include_the_dead() {
        let m = agent_members(&cluster(), "dc1");
        let st: Vec<_> = m.iter().map(|x| (x.name.as_str(), x.status)).collect();
        assert_eq!(st, [("a", 1), ("b", 1), ("c", 4)]);
        assert_eq!(m[0].port, 7946);
        assert_eq!(m[0].addr, "10.0.0.1");
    }

    #[test]
    fn node_lookup_and_agent_services() {
        let snap = cluster();
        let n = catalog_node(&snap, "a", "dc1").unwrap();
        assert_eq!(n.services.len(), 3);
        assert!(catalog_node(&snap, "c", "dc1").is_none());
        let own = agent_services(&snap, "dc1");
        assert_eq!(own.keys().collect::<Vec<_>>(), ["db", "web-1", "web-2"]);
        assert_eq!(node_uuid("a").len(), 36);
        assert_ne!(node_uuid("a"), node_uuid("b"));
    }

    #[test]
    fn an_instance_renders_the_same_when_its_node_registers_another() {
        let before = cluster();
        let mut after = cluster();
        let a = std::sync::Arc::make_mut(
            after
                .table
                .get_mut(&crate::protocol::NodeId::new("a"))
                .unwrap(),
        );
        let mut list = (*a.services.list).clone();
        list.push(Service::new("cache", 6379));
        a.services = ServiceSet::new(a.services.version + 1, list);
        let web = |s: &Snapshot| {
            serde_json::to_string(&health_service(s, "web", &[], false, "dc1")).unwrap()
        };
        assert_eq!(web(&before), web(&after));
        assert_ne!(catalog_services(&before), catalog_services(&after));
    }

    #[test]
    fn json_uses_consul_field_names() {
        let v = serde_json::to_value(health_service(&cluster(), "web", &[], false, "dc1")).unwrap();
        let e = &v[0];
        for key in ["Node", "Service", "Checks"] {
            assert!(e.get(key).is_some(), "{key}");
        }
        assert_eq!(e["Service"]["ID"], "web-1");
        assert_eq!(e["Service"]["Service"], "web");
        assert_eq!(e["Node"]["Datacenter"], "dc1");
        assert_eq!(e["Checks"][1]["CheckID"], "service:web-1");
        assert_eq!(e["Checks"][1]["ServiceID"], "web-1");
        let c = serde_json::to_value(&catalog_service(&cluster(), "web", &[], "dc1")[0]).unwrap();
        assert_eq!(c["ServiceID"], "web-1");
        assert_eq!(c["ServicePort"], 8080);
    }
}
