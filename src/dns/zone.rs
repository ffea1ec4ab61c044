//! Answers from a snapshot: the records for one question, read from the
//! member table Membership published, and nothing else.
//!
//! A [`Zone`] is derived from one [`Snapshot`] (its index is kept) and is
//! rebuilt when a newer snapshot is published, so a dead node or a critical
//! instance is gone from the very next answer after the local view says so.
//! Building it costs one pass over the catalog; answering costs a hash
//! lookup, a filter and a shuffle.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;
use std::net::IpAddr;

use super::name::{addr_label, parse, Question};
use super::DnsSettings;
use crate::protocol::services::Health;
use crate::snapshot::Snapshot;

/// Where an instance is reached, as DNS says it.
#[derive(Clone, Debug)]
enum Where {
    Ip(IpAddr),
    /// A host name given as the instance's `address` (the entry's SRV
    /// target): only SRV answers name it.
    Host,
}

#[derive(Clone, Debug)]
struct Entry {
    at: Where,
    port: u16,
    /// Lowercased, for case-insensitive tag matching.
    tags: Vec<String>,
    status: Health,
    /// The SRV target: `NODE.node.DOMAIN.`, `HEX.addr.DOMAIN.` for an
    /// instance with an address of its own, or the host name.
    target: Name,
}

/// One answer: its code, the answer records (each with the additional
/// records that go with it, for SRV), and the authority section.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub code: ResponseCode,
    pub records: Vec<(Record, Option<Record>)>,
    pub authority: Vec<Record>,
}

/// Everything DNS answers, derived from one snapshot.
pub struct Zone {
    pub index: u64,
    origin: Name,
    domain: String,
    settings: DnsSettings,
    services: HashMap<String, Vec<Entry>>,
    /// Live nodes by lowercased id.
    nodes: HashMap<String, IpAddr>,
    soa: Record,
    ns: Option<(Record, Record)>,
}

impl Zone {
    pub fn build(snap: &Snapshot, settings: &DnsSettings) -> Zone {
        let domain = settings.domain.clone();
        let origin = Name::from_ascii(&domain).unwrap_or_else(|_| Name::root());
        let node_name = |id: &str| Name::from_ascii(format!("{id}.node.{domain}")).ok();
        let mut nodes = HashMap::new();
        for m in snap.members().filter(|m| m.state.is_live()) {
            nodes
                .entry(m.id.to_string().to_ascii_lowercase())
                .or_insert(m.addr.ip());
        }
        let mut services: HashMap<String, Vec<Entry>> = HashMap::new();
        for (name, instances) in snap.catalog() {
            let entries = instances
                .into_iter()
                .filter_map(|i| {
                    let node_ip = nodes.get(&i.node.to_ascii_lowercase()).copied();
                    let (at, target) = match i.addr.parse::<IpAddr>() {
                        Ok(ip) if Some(ip) == node_ip => (Where::Ip(ip), node_name(&i.node)?),
                        Ok(ip) => (
                            Where::Ip(ip),
                            Name::from_ascii(format!("{}.addr.{domain}", addr_label(ip))).ok()?,
                        ),
                        Err(_) => {
                            let host = Name::from_ascii(format!("{}.", i.addr)).ok()?;
                            (Where::Host, host)
                        }
                    };
                    Some(Entry {
                        at,
                        port: i.port,
                        tags: i.tags.iter().map(|t| t.to_ascii_lowercase()).collect(),
                        status: i.status,
                        target,
                    })
                })
                .collect();
            services.insert(name, entries);
        }
        let ttl = settings.ttl;
        let me = snap.me.to_string();
        let ns_host = node_name(&me).filter(|_| nodes.contains_key(&me.to_ascii_lowercase()));
        let mname = ns_host
            .clone()
            .unwrap_or_else(|| Name::from_ascii(format!("ns.{domain}")).unwrap_or_default());
        let rname = Name::from_ascii(format!("hostmaster.{domain}")).unwrap_or_default();
        // The serial follows the snapshot; refresh/retry/expire matter only
        // to secondaries, which this zone has none of. The minimum is the
        // TTL, so negative answers are cached exactly as long as positive.
        let soa = Record::from_rdata(
            origin.clone(),
            ttl,
            RData::SOA(SOA::new(
                mname,
                rname,
                snap.index as u32,
                3600,
                600,
                86400,
                ttl,
            )),
        );
        let ns = ns_host.and_then(|host| {
            let ip = *nodes.get(&me.to_ascii_lowercase())?;
            Some((
                Record::from_rdata(origin.clone(), ttl, RData::NS(NS(host.clone()))),
                address_record(host, ttl, ip),
            ))
        });
        Zone {
            index: snap.index,
            origin,
            domain,
            settings: settings.clone(),
            services,
            nodes,
            soa,
            ns,
        }
    }

    /// The answer to `qname` (as asked: its case is kept in the records) of
    /// type `qtype`. Questions outside the domain get REFUSED here; the
    /// server forwards them first when it has recursors.
    pub fn answer(&self, qname: &Name, qtype: RecordType, rng: &mut impl Rng) -> Answer {
        let lower = qname.to_lowercase().to_ascii();
        let lower = if lower.ends_with('.') {
            lower
        } else {
            format!("{lower}.")
        };
        let ttl = self.settings.ttl;
        let mut answer = Answer::default();
        match parse(&lower, &self.domain) {
            Question::Outside => answer.code = ResponseCode::Refused,
            Question::Unknown => answer.code = ResponseCode::NXDomain,
            Question::Apex => match (qtype, &self.ns) {
                (RecordType::SOA, _) => answer.records.push((self.soa.clone(), None)),
                (RecordType::NS, Some((ns, glue))) => {
                    answer.records.push((ns.clone(), Some(glue.clone())))
                }
                _ => {}
            },
            Question::Node(id) => match self.nodes.get(&id) {
                None => answer.code = ResponseCode::NXDomain,
                Some(ip) if wants(qtype, *ip) => answer
                    .records
                    .push((address_record(qname.clone(), ttl, *ip), None)),
                Some(_) => {}
            },
            Question::Addr(ip) => {
                if wants(qtype, ip) {
                    answer
                        .records
                        .push((address_record(qname.clone(), ttl, ip), None));
                }
            }
            Question::Service { name, tag } => {
                self.service(qname, qtype, &name, tag.as_deref(), rng, &mut answer)
            }
        }
        if answer.records.is_empty() && answer.code != ResponseCode::Refused {
            answer.authority.push(self.soa.clone());
        }
        answer
    }

    fn service(
        &self,
        qname: &Name,
        qtype: RecordType,
        name: &str,
        tag: Option<&str>,
        rng: &mut impl Rng,
        answer: &mut Answer,
    ) {
        let tagged = |e: &&Entry| tag.is_none_or(|t| e.tags.iter().any(|x| x == t));
        let Some(all) = self
            .services
            .get(name)
            .filter(|v| v.iter().any(|e| tagged(&e)))
        else {
            answer.code = ResponseCode::NXDomain;
            return;
        };
        let healthy = |e: &&Entry| match e.status {
            Health::Passing => true,
            Health::Warning => !self.settings.only_passing,
            Health::Critical => false,
        };
        let mut picked: Vec<&Entry> = all.iter().filter(tagged).filter(healthy).collect();
        picked.shuffle(rng);
        let ttl = self.settings.ttl;
        match qtype {
            RecordType::SRV => {
                for e in picked {
                    let srv = SRV::new(1, 1, e.port, e.target.clone());
                    let glue = match &e.at {
                        Where::Ip(ip) => Some(address_record(e.target.clone(), ttl, *ip)),
                        Where::Host => None,
                    };
                    answer.records.push((
                        Record::from_rdata(qname.clone(), ttl, RData::SRV(srv)),
                        glue,
                    ));
                }
            }
            RecordType::A | RecordType::AAAA | RecordType::ANY => {
                let mut seen = Vec::new();
                for e in picked {
                    if let Where::Ip(ip) = e.at {
                        if wants(qtype, ip) && !seen.contains(&ip) {
                            seen.push(ip);
                            answer
                                .records
                                .push((address_record(qname.clone(), ttl, ip), None));
                        }
                    }
                }
            }
            _ => {}
        }
        if self.settings.a_record_limit > 0 {
            answer.records.truncate(self.settings.a_record_limit);
        }
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }
}

fn wants(qtype: RecordType, ip: IpAddr) -> bool {
    matches!(
        (qtype, ip),
        (RecordType::A | RecordType::ANY, IpAddr::V4(_))
            | (RecordType::AAAA | RecordType::ANY, IpAddr::V6(_))
    )
}

fn address_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::services::{Service, ServiceSet};
    use crate::protocol::{Member, MemberState, NodeId};
    use imbl::OrdMap;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn member(id: &str, ip: &str, state: MemberState, services: Vec<Service>) -> Member {
        Member {
            state,
            services: ServiceSet::new(1, services),
            ..Member::new_alive(
                NodeId::new(id),
                std::net::SocketAddr::new(ip.parse().unwrap(), 7946),
                1,
            )
        }
    }

    fn web(port: u16, tags: &[&str], health: Health) -> Service {
        let mut s = Service::new("web", port);
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s.health = health;
        s
    }

    fn snapshot(members: Vec<Member>) -> Snapshot {
        let mut table = OrdMap::new();
        let me = members[0].id.clone();
        for m in members {
            table.insert(m.id.clone(), std::sync::Arc::new(m));
        }
        Snapshot {
            index: 7,
            table,
            ..Snapshot::empty(me)
        }
    }

    fn settings() -> DnsSettings {
        DnsSettings {
            domain: "gossip.".into(),
            ttl: 0,
            a_record_limit: 0,
            only_passing: false,
        }
    }

    fn ask(zone: &Zone, q: &str, t: RecordType) -> Answer {
        let mut rng = SmallRng::seed_from_u64(1);
        zone.answer(&Name::from_ascii(q).unwrap(), t, &mut rng)
    }

    fn ips(a: &Answer) -> Vec<String> {
        let mut v: Vec<String> = a
            .records
            .iter()
            .map(|(r, _)| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::SRV(s) => format!("{}:{}", s.target, s.port),
                other => format!("{other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    fn cluster() -> Snapshot {
        let mut own = web(8080, &["v2"], Health::Passing);
        own.id = "web-own".into();
        own.address = Some("10.9.9.9".into());
        snapshot(vec![
            member(
                "Node1",
                "10.0.0.1",
                MemberState::Alive,
                vec![web(80, &["Primary"], Health::Passing), own],
            ),
            member(
                "node2",
                "10.0.0.2",
                MemberState::Suspect,
                vec![web(81, &[], Health::Warning)],
            ),
            member(
                "node3",
                "10.0.0.3",
                MemberState::Alive,
                vec![web(82, &[], Health::Critical)],
            ),
            member(
                "node4",
                "10.0.0.4",
                MemberState::Dead,
                vec![web(83, &[], Health::Passing)],
            ),
            member(
                "node5",
                "fd00::5",
                MemberState::Alive,
                vec![web(84, &[], Health::Passing)],
            ),
            member(
                "node6",
                "10.0.0.6",
                MemberState::Alive,
                vec![{
                    let mut s = Service::new("db", 5432);
                    s.health = Health::Critical;
                    s
                }],
            ),
        ])
    }

    #[test]
    fn a_records_are_the_healthy_live_instances() {
        let z = Zone::build(&cluster(), &settings());
        let a = ask(&z, "WEB.service.gossip.", RecordType::A);
        assert_eq!(a.code, ResponseCode::NoError);
        assert_eq!(ips(&a), ["10.0.0.1", "10.0.0.2", "10.9.9.9"]);
        assert_eq!(a.records[0].0.name.to_ascii(), "WEB.service.gossip.");
        assert!(a.authority.is_empty());
        let aaaa = ask(&z, "web.service.gossip.", RecordType::AAAA);
        assert_eq!(ips(&aaaa), ["fd00::5"]);
    }

    #[test]
    fn only_passing_drops_warning() {
        let s = DnsSettings {
            only_passing: true,
            ..settings()
        };
        let z = Zone::build(&cluster(), &s);
        assert_eq!(
            ips(&ask(&z, "web.service.gossip.", RecordType::A)),
            ["10.0.0.1", "10.9.9.9"]
        );
    }

    #[test]
    fn srv_targets_nodes_or_addresses_with_glue() {
        let z = Zone::build(&cluster(), &settings());
        let a = ask(&z, "_web._tcp.service.gossip.", RecordType::SRV);
        assert_eq!(
            ips(&a),
            [
                "0a090909.addr.gossip.:8080",
                "Node1.node.gossip.:80",
                "node2.node.gossip.:81",
                "node5.node.gossip.:84"
            ]
        );
        for (srv, glue) in &a.records {
            let RData::SRV(s) = &srv.data else { panic!() };
            let glue = glue.as_ref().unwrap();
            assert_eq!(glue.name, s.target);
        }
    }

    #[test]
    fn tags_filter_case_insensitively() {
        let z = Zone::build(&cluster(), &settings());
        assert_eq!(
            ips(&ask(&z, "primary.web.service.gossip.", RecordType::A)),
            ["10.0.0.1"]
        );
        assert_eq!(
            ips(&ask(&z, "_web._V2.service.gossip.", RecordType::SRV)),
            ["0a090909.addr.gossip.:8080"]
        );
        let none = ask(&z, "nosuchtag.web.service.gossip.", RecordType::A);
        assert_eq!(none.code, ResponseCode::NXDomain);
    }

    #[test]
    fn negative_answers_carry_the_soa() {
        let z = Zone::build(&cluster(), &settings());
        let nx = ask(&z, "nope.service.gossip.", RecordType::A);
        assert_eq!(nx.code, ResponseCode::NXDomain);
        assert!(matches!(nx.authority[0].data, RData::SOA(_)));
        // A known service with no healthy instance: NOERROR, empty, SOA.
        let db = ask(&z, "db.service.gossip.", RecordType::A);
        assert_eq!(db.code, ResponseCode::NoError);
        assert!(db.records.is_empty());
        assert!(matches!(db.authority[0].data, RData::SOA(_)));
        let RData::SOA(soa) = &db.authority[0].data else {
            panic!()
        };
        assert_eq!(soa.serial, 7);
        assert_eq!(
            ask(&z, "example.com.", RecordType::A).code,
            ResponseCode::Refused
        );
    }

    #[test]
    fn nodes_and_addresses() {
        let z = Zone::build(&cluster(), &settings());
        assert_eq!(
            ips(&ask(&z, "node1.NODE.gossip.", RecordType::A)),
            ["10.0.0.1"]
        );
        assert_eq!(
            ips(&ask(&z, "node5.node.gossip.", RecordType::AAAA)),
            ["fd00::5"]
        );
        let empty = ask(&z, "node5.node.gossip.", RecordType::A);
        assert_eq!(empty.code, ResponseCode::NoError);
        assert!(empty.records.is_empty());
        assert_eq!(
            ask(&z, "node4.node.gossip.", RecordType::A).code,
            ResponseCode::NXDomain,
            "a dead node has no address"
        );
        assert_eq!(
            ips(&ask(&z, "0a090909.addr.gossip.", RecordType::A)),
            ["10.9.9.9"]
        );
    }

    #[test]
    fn apex_soa_and_ns() {
        let z = Zone::build(&cluster(), &settings());
        let soa = ask(&z, "gossip.", RecordType::SOA);
        assert!(matches!(soa.records[0].0.data, RData::SOA(_)));
        let ns = ask(&z, "gossip.", RecordType::NS);
        let (rec, glue) = &ns.records[0];
        let RData::NS(host) = &rec.data else { panic!() };
        assert_eq!(host.0.to_ascii(), "Node1.node.gossip.");
        assert!(glue.is_some());
    }

    #[test]
    fn limit_caps_and_answers_shuffle() {
        let many: Vec<Service> = (0..20)
            .map(|i| {
                let mut s = web(80, &[], Health::Passing);
                s.id = format!("w{i}");
                s.address = Some(format!("10.1.0.{i}"));
                s
            })
            .collect();
        let snap = snapshot(vec![member("n", "10.0.0.1", MemberState::Alive, many)]);
        let z = Zone::build(&snap, &settings());
        let mut rng = SmallRng::seed_from_u64(3);
        let name = Name::from_ascii("web.service.gossip.").unwrap();
        let orders: std::collections::HashSet<Vec<String>> = (0..10)
            .map(|_| {
                z.answer(&name, RecordType::A, &mut rng)
                    .records
                    .iter()
                    .map(|(r, _)| r.data.to_string())
                    .collect()
            })
            .collect();
        assert!(orders.len() > 1, "answers are shuffled");
        let limited = Zone::build(
            &snap,
            &DnsSettings {
                a_record_limit: 3,
                ..settings()
            },
        );
        assert_eq!(
            ask(&limited, "web.service.gossip.", RecordType::A)
                .records
                .len(),
            3
        );
        assert_eq!(
            ask(&limited, "web.service.gossip.", RecordType::SRV)
                .records
                .len(),
            3
        );
    }
}
