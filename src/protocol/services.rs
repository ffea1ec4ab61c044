//! Service instances: what a node offers, how it is validated, and how the
//! cluster-wide catalog is read out of the member view.
//!
//! A node owns its services. It publishes them as one [`ServiceSet`] with a
//! version that only the owner raises; the set travels inside the owner's
//! [`Member`](super::member::Member) record, so rumors and push-pull carry it
//! like any other membership fact.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::member::{Member, MemberState};

/// Bounds on one service definition. Counted in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 63;
pub const MAX_TAGS: usize = 16;
pub const MAX_TAG_LEN: usize = 64;
pub const MAX_META: usize = 16;
pub const MAX_META_KEY_LEN: usize = 64;
pub const MAX_META_VALUE_LEN: usize = 256;

pub const MAX_ID_LEN: usize = 128;
pub const MAX_ADDRESS_LEN: usize = 253;

/// The health of one service instance, as its owner's checks last decided
/// it. Ordered from best to worst, so the worst of several checks is `max`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Passing,
    Warning,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One service instance offered by a node. The fields after `meta` were
/// added later: on the wire (msgpack arrays) they are trailing elements with
/// defaults, so a record without them still decodes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub port: u16,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// The instance's id, unique on its node; empty means "the name" (see
    /// [`Service::id`]), so one node can run two instances of `web`.
    #[serde(default)]
    pub id: String,
    /// An address other than the node's own, where the instance listens.
    #[serde(default)]
    pub address: Option<String>,
    /// The instance's health, decided by its owner's checks and gossiped
    /// with the set; `passing` when it has no checks.
    #[serde(default)]
    pub health: Health,
}

impl Service {
    pub fn new(name: &str, port: u16) -> Self {
        Service {
            name: name.to_string(),
            port,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            id: String::new(),
            address: None,
            health: Health::Passing,
        }
    }

    /// The instance id: `id`, or the name when no id was given.
    pub fn id(&self) -> &str {
        if self.id.is_empty() {
            &self.name
        } else {
            &self.id
        }
    }

    /// Checks every bound; the message says which field is wrong and why.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        validate_id(&self.id)?;
        if let Some(a) = &self.address {
            validate_address(a)?;
        }
        if self.port == 0 {
            return Err("port must be between 1 and 65535".into());
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags, got {}", self.tags.len()));
        }
        for t in &self.tags {
            if t.is_empty() || t.len() > MAX_TAG_LEN || t.chars().any(|c| c.is_control()) {
                return Err(format!(
                    "tag {t:?} must be 1 to {MAX_TAG_LEN} printable characters"
                ));
            }
        }
        if self.meta.len() > MAX_META {
            return Err(format!(
                "at most {MAX_META} metadata entries, got {}",
                self.meta.len()
            ));
        }
        for (k, v) in &self.meta {
            if k.is_empty() || k.len() > MAX_META_KEY_LEN || k.chars().any(|c| c.is_control()) {
                return Err(format!(
                    "metadata key {k:?} must be 1 to {MAX_META_KEY_LEN} printable characters"
                ));
            }
            if v.len() > MAX_META_VALUE_LEN {
                return Err(format!(
                    "metadata value of {k:?} is longer than {MAX_META_VALUE_LEN} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// An instance id: empty (meaning the name), or 1 to 128 of
/// `[A-Za-z0-9_.:-]`, starting with a letter or digit.
pub fn validate_id(id: &str) -> Result<(), String> {
    let ok = id.is_empty()
        || (id.len() <= MAX_ID_LEN
            && id.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'_' | b'.' | b':' | b'-'))
            }));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "id {id:?} must be 1 to {MAX_ID_LEN} of [A-Za-z0-9_.:-], starting with a letter or digit"
        ))
    }
}

/// An instance address: an IP address or a DNS host name.
pub fn validate_address(a: &str) -> Result<(), String> {
    if a.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let host_ok = !a.is_empty()
        && a.len() <= MAX_ADDRESS_LEN
        && a.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if host_ok {
        Ok(())
    } else {
        Err(format!(
            "address {a:?} must be an IP address or a host name"
        ))
    }
}

/// `[a-z0-9][a-z0-9-]{0,62}`
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "service name {name:?} must match [a-z0-9][a-z0-9-]{{0,62}}"
        ))
    }
}

/// Parses the `SERVICES` form: `web,api,cache` or `web:8080,api:9090`.
/// A service given without a port gets port 0 replaced by `default_port`.
pub fn parse_services_spec(items: &[String], default_port: u16) -> Result<Vec<Service>, String> {
    let mut out: Vec<Service> = Vec::new();
    for raw in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (name, port) = match raw.split_once(':') {
            None => (raw, default_port),
            Some((n, p)) => {
                let port: u16 = p
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{raw:?}: port must be a number from 1 to 65535"))?;
                (n, port)
            }
        };
        let svc = Service::new(name, port);
        svc.validate().map_err(|e| format!("{raw:?}: {e}"))?;
        if out.iter().any(|s| s.name == svc.name) {
            return Err(format!("{name:?} is listed twice"));
        }
        out.push(svc);
    }
    Ok(out)
}

/// A node's published services, ordered by `(version, list)` so that merging
/// two sets is a lattice join. Only the owner raises the version.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceSet {
    pub version: u64,
    pub list: Arc<Vec<Service>>,
}

impl ServiceSet {
    pub fn new(version: u64, mut list: Vec<Service>) -> Self {
        list.sort_by(|a, b| (&a.name, a.id()).cmp(&(&b.name, b.id())));
        ServiceSet {
            version,
            list: Arc::new(list),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// One row of a lookup answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub node: String,
    /// The instance's id on its node (the service name unless given).
    pub id: String,
    /// Where the instance listens: its own `address` if it has one, else the
    /// node's IP.
    pub addr: String,
    pub port: u16,
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// The node's state: `alive` or `suspect`.
    pub state: MemberState,
    /// The instance's health: `passing`, `warning` or `critical`.
    pub status: Health,
}

/// The catalog as seen from a member view: instances on alive members, and on
/// suspect members marked as such; dead and left members offer nothing.
pub fn catalog<'a>(
    members: impl IntoIterator<Item = &'a Member>,
) -> BTreeMap<String, Vec<Instance>> {
    let mut out: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for m in members.into_iter().filter(|m| m.state.is_live()) {
        for s in m.services.list.iter() {
            out.entry(s.name.clone()).or_default().push(Instance {
                node: m.id.to_string(),
                id: s.id().to_string(),
                addr: s.address.clone().unwrap_or_else(|| m.addr.ip().to_string()),
                port: s.port,
                tags: s.tags.clone(),
                meta: s.meta.clone(),
                state: m.state,
                status: s.health,
            });
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
    }
    out
}

/// Which instance statuses a lookup keeps (`?passing`, `?status=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthFilter(Option<Vec<Health>>);

impl HealthFilter {
    /// Every status.
    pub fn any() -> Self {
        HealthFilter(None)
    }

    /// From a lookup's query: `passing` (present, any value but `false`)
    /// keeps passing instances; `status=passing,warning` keeps those. Both
    /// given: an instance must satisfy both.
    pub fn from_query(passing: Option<&str>, status: Option<&str>) -> Result<Self, String> {
        let mut keep: Option<Vec<Health>> = None;
        if let Some(list) = status {
            let parsed = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s {
                    "passing" => Ok(Health::Passing),
                    "warning" => Ok(Health::Warning),
                    "critical" => Ok(Health::Critical),
                    other => Err(format!(
                        "status: {other:?} is not passing, warning or critical"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if parsed.is_empty() {
                return Err("status: give passing, warning and/or critical".into());
            }
            keep = Some(parsed);
        }
        match passing {
            None | Some("false") | Some("0") => {}
            Some("" | "true" | "1") => {
                keep = Some(match keep {
                    Some(k) => k.into_iter().filter(|h| *h == Health::Passing).collect(),
                    None => vec![Health::Passing],
                })
            }
            Some(other) => return Err(format!("passing: {other:?} is not true or false")),
        }
        Ok(HealthFilter(keep))
    }

    pub fn keeps(&self, h: Health) -> bool {
        self.0.as_ref().is_none_or(|k| k.contains(&h))
    }

    /// The catalog without the instances this filter drops (and without
    /// services left with none).
    pub fn apply(
        &self,
        mut cat: BTreeMap<String, Vec<Instance>>,
    ) -> BTreeMap<String, Vec<Instance>> {
        if self.0.is_none() {
            return cat;
        }
        for list in cat.values_mut() {
            list.retain(|i| self.keeps(i.status));
        }
        cat.retain(|_, l| !l.is_empty());
        cat
    }
}

/// Instances of one member whose health changed between two of its
/// records: `(new instance, old health)`.
pub fn health_changes<'a>(before: &[Service], now: &'a [Service]) -> Vec<(&'a Service, Health)> {
    now.iter()
        .filter_map(|s| {
            before
                .iter()
                .find(|b| b.name == s.name && b.id() == s.id())
                .filter(|b| b.health != s.health)
                .map(|b| (s, b.health))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::member::NodeId;

    #[test]
    fn names_follow_the_pattern() {
        for ok in ["web", "a", "api-2", "0x", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "Web", "we_b", "web.", &"a".repeat(64), "wéb"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_the_seed_projects_forms() {
        let s = parse_services_spec(&["web".into(), "api:9090".into(), " ".into()], 80).unwrap();
        assert_eq!(s, vec![Service::new("web", 80), Service::new("api", 9090)]);
        assert!(parse_services_spec(&["web:0".into()], 80).is_err());
        assert!(parse_services_spec(&["web:99999".into()], 80).is_err());
        assert!(parse_services_spec(&["Bad".into()], 80).is_err());
        assert!(parse_services_spec(&["a".into(), "a:1".into()], 80).is_err());
    }

    #[test]
    fn rejects_oversized_tags_and_meta() {
        let mut s = Service::new("web", 80);
        s.tags = vec!["t".into(); MAX_TAGS + 1];
        assert!(s.validate().unwrap_err().contains("tags"));
        let mut s = Service::new("web", 80);
        s.meta
            .insert("k".into(), "v".repeat(MAX_META_VALUE_LEN + 1));
        assert!(s.validate().is_err());
    }

    #[test]
    fn catalog_hides_dead_and_marks_suspect() {
        let mk = |id: &str, state| Member {
            id: NodeId::new(id),
            addr: "10.0.0.1:1".parse().unwrap(),
            incarnation: 1,
            state,
            services: ServiceSet::new(1, vec![Service::new("web", 80)]),
        };
        let members = [
            mk("a", MemberState::Alive),
            mk("b", MemberState::Suspect),
            mk("c", MemberState::Dead),
            mk("d", MemberState::Left),
        ];
        let cat = catalog(&members);
        let web = &cat["web"];
        assert_eq!(web.len(), 2);
        assert_eq!(web[1].state, MemberState::Suspect);
        assert_eq!(web[0].addr, "10.0.0.1");
    }

    #[test]
    fn health_filters_from_the_query() {
        let f = |p: Option<&str>, s: Option<&str>| HealthFilter::from_query(p, s);
        let all = f(None, None).unwrap();
        assert!(all.keeps(Health::Critical));
        let passing = f(Some(""), None).unwrap();
        assert!(passing.keeps(Health::Passing) && !passing.keeps(Health::Warning));
        assert!(f(Some("false"), None).unwrap().keeps(Health::Critical));
        let ok = f(None, Some("passing,warning")).unwrap();
        assert!(ok.keeps(Health::Warning) && !ok.keeps(Health::Critical));
        let both = f(Some("true"), Some("warning")).unwrap();
        assert!(!both.keeps(Health::Warning) && !both.keeps(Health::Passing));
        assert!(f(None, Some("healthy")).unwrap_err().starts_with("status:"));
        assert!(f(None, Some("")).is_err());
        assert!(f(Some("maybe"), None).unwrap_err().starts_with("passing:"));
    }

    #[test]
    fn filtering_drops_instances_and_empty_services() {
        let mk = |id: &str, health| {
            let mut s = Service::new("web", 80);
            s.health = health;
            Member {
                id: NodeId::new(id),
                addr: "10.0.0.1:1".parse().unwrap(),
                incarnation: 1,
                state: MemberState::Alive,
                services: ServiceSet::new(1, vec![s]),
            }
        };
        let members = [mk("a", Health::Passing), mk("b", Health::Critical)];
        let cat = catalog(&members);
        let passing = HealthFilter::from_query(Some(""), None)
            .unwrap()
            .apply(cat.clone());
        assert_eq!(passing["web"].len(), 1);
        assert_eq!(passing["web"][0].node, "a");
        let critical = HealthFilter::from_query(None, Some("warning"))
            .unwrap()
            .apply(cat);
        assert!(critical.is_empty());
    }

    #[test]
    fn health_changes_are_found_by_instance() {
        let mut a = Service::new("web", 80);
        let before = vec![a.clone(), Service::new("db", 5432)];
        a.health = Health::Critical;
        let now = vec![a, Service::new("db", 5432), Service::new("new", 1)];
        let ch = health_changes(&before, &now);
        assert_eq!(ch.len(), 1);
        assert_eq!(
            (ch[0].0.name.as_str(), ch[0].0.health, ch[0].1),
            ("web", Health::Critical, Health::Passing)
        );
    }
}
