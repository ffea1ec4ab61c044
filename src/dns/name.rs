//! Reading a query name: which question, in Consul's label grammar, a name
//! inside our domain asks. Plain string work, no I/O and no snapshot, so the
//! grammar is tested on its own.
//!
//! Labels are read from the right, after the domain:
//!
//! | name (domain `gossip.`)          | question                          |
//! | -------------------------------- | --------------------------------- |
//! | `gossip.`                        | the zone apex (SOA, NS)           |
//! | `web.service.gossip.`            | instances of `web`                |
//! | `primary.web.service.gossip.`    | instances of `web` tagged primary |
//! | `_web._tcp.service.gossip.`      | RFC 2782: instances of `web`      |
//! | `_web._primary.service.gossip.`  | RFC 2782 with a tag               |
//! | `node1.node.gossip.`             | the node's address                |
//! | `7f000001.addr.gossip.`          | the address written in hex        |
//!
//! Matching ignores case (the caller lowercases first).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a name asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Question {
    /// The domain itself.
    Apex,
    /// A service's instances, optionally only those carrying `tag`.
    Service { name: String, tag: Option<String> },
    /// A node's address. Node ids may contain dots: every label before
    /// `node` belongs to the id.
    Node(String),
    /// An address spelled in hex (the SRV target of an instance whose
    /// address is not its node's).
    Addr(IpAddr),
    /// Inside the domain, but not a form we answer: NXDOMAIN.
    Unknown,
    /// Not inside the domain: REFUSED, or forwarded to the recursors.
    Outside,
}

/// `gossip`, `Gossip.` or `gossip.` -> `gossip.`; rejects what is not a
/// host-name-like domain (letters, digits and hyphens, 1 to 63 per label).
pub fn normalize_domain(d: &str) -> Result<String, String> {
    let lower = d.trim().to_ascii_lowercase();
    let bare = lower.strip_suffix('.').unwrap_or(&lower);
    let ok = !bare.is_empty()
        && bare.len() <= 200
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(format!("{bare}."))
    } else {
        Err(format!(
            "{d:?} must be a domain name such as \"gossip.\" (letters, digits, hyphens)"
        ))
    }
}

/// Reads `qname` (lowercase, fully qualified: ends with a dot) against
/// `domain` (from [`normalize_domain`]).
pub fn parse(qname: &str, domain: &str) -> Question {
    if qname == domain {
        return Question::Apex;
    }
    let Some(rest) = qname.strip_suffix(domain).and_then(|r| r.strip_suffix('.')) else {
        return Question::Outside;
    };
    if rest.is_empty() {
        return Question::Unknown;
    }
    let labels: Vec<&str> = rest.split('.').collect();
    let (kind, before) = labels
        .split_last()
        .expect("split yields one label at least");
    match (*kind, before) {
        ("service", [name]) => service(name, None),
        ("service", [tag, name]) => match (tag.strip_prefix('_'), name.strip_prefix('_')) {
            // RFC 2782: `_name._proto`; `_tcp` is the protocol, not a tag.
            (Some(name), Some("tcp")) => service(name, None),
            (Some(name), Some(tag)) => service(name, Some(tag)),
            _ => service(name, Some(tag)),
        },
        ("node", before) if !before.is_empty() && before.iter().all(|l| !l.is_empty()) => {
            Question::Node(before.join("."))
        }
        ("addr", [hex]) => addr(hex).map_or(Question::Unknown, Question::Addr),
        _ => Question::Unknown,
    }
}

fn service(name: &str, tag: Option<&str>) -> Question {
    if name.is_empty() || tag.is_some_and(str::is_empty) {
        return Question::Unknown;
    }
    Question::Service {
        name: name.to_string(),
        tag: tag.map(str::to_string),
    }
}

/// 8 hex digits for IPv4, 32 for IPv6.
fn addr(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        8 => u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        32 => u128::from_str_radix(hex, 16)
            .ok()
            .map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        _ => None,
    }
}

/// The inverse of the `addr` form: the label for `ip`.
pub fn addr_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "gossip.";

    fn svc(name: &str, tag: Option<&str>) -> Question {
        Question::Service {
            name: name.into(),
            tag: tag.map(Into::into),
        }
    }

    #[test]
    fn consul_forms() {
        assert_eq!(parse("gossip.", D), Question::Apex);
        assert_eq!(parse("web.service.gossip.", D), svc("web", None));
        assert_eq!(parse("v2.web.service.gossip.", D), svc("web", Some("v2")));
        assert_eq!(parse("_web._tcp.service.gossip.", D), svc("web", None));
        assert_eq!(parse("_web._v2.service.gossip.", D), svc("web", Some("v2")));
        assert_eq!(
            parse("node1.node.gossip.", D),
            Question::Node("node1".into())
        );
        assert_eq!(
            parse("host.example.node.gossip.", D),
            Question::Node("host.example".into())
        );
        assert_eq!(
            parse("7f000001.addr.gossip.", D),
            Question::Addr("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse("00000000000000000000000000000001.addr.gossip.", D),
            Question::Addr("::1".parse().unwrap())
        );
    }

    #[test]
    fn everything_else_in_the_domain_is_unknown() {
        for q in [
            "service.gossip.",
            "node.gossip.",
            "a.b.web.service.gossip.",
            "web.gossip.",
            "web.query.gossip.",
            "xyz.addr.gossip.",
            "7f0001.addr.gossip.",
            "..service.gossip.",
            "._tcp.service.gossip.",
        ] {
            assert_eq!(parse(q, D), Question::Unknown, "{q}");
        }
    }

    #[test]
    fn outside_the_domain() {
        for q in ["example.com.", "gossip.com.", "web.service.xgossip.", "."] {
            assert_eq!(parse(q, D), Question::Outside, "{q}");
        }
        assert_eq!(
            parse("web.service.dc1.consul.", "dc1.consul."),
            svc("web", None)
        );
    }

    #[test]
    fn hex_labels_round_trip() {
        for ip in ["10.1.2.3", "255.255.255.255", "fd00::1", "::"] {
            let ip: IpAddr = ip.parse().unwrap();
            let q = format!("{}.addr.gossip.", addr_label(ip));
            assert_eq!(parse(&q, D), Question::Addr(ip));
        }
    }

    #[test]
    fn domains_normalize() {
        assert_eq!(normalize_domain("Gossip").unwrap(), "gossip.");
        assert_eq!(normalize_domain("dc1.consul.").unwrap(), "dc1.consul.");
        for bad in ["", ".", "a..b", "-a.", "a_b.", "a b", &"x".repeat(64)] {
            assert!(normalize_domain(bad).is_err(), "{bad:?}");
        }
    }
}
