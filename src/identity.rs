//! Who this node says it is, decided once when the agent starts.
//!
//! * Its name: `NODE_ID`, else the host name (Docker Swarm and Kubernetes
//!   give every task or pod a unique one).
//! * The address peers reach it at: `NODE_IP` as an IP address, an interface
//!   name (`eth0`) or a host name; unset, the address of the interface this
//!   host would use to reach the first seed that resolves, else the first
//!   non-loopback private IPv4 address (as memberlist does), else 127.0.0.1.
//!   The agent logs which it picked and why: advertising the wrong address
//!   is the classic way for a containerised cluster to half-work.
//!
//! [`choose`] is the decision, with the system's answers passed in so that
//! it is tested without a network; [`advertise_addr`] asks the system.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use crate::config::{Config, ConfigError};

/// The advertised address and a sentence saying why it was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    pub addr: SocketAddr,
    pub why: String,
}

/// What the system says, for [`choose`].
pub struct System<'a> {
    /// Every interface address, in the system's order.
    pub interfaces: &'a [(String, IpAddr)],
    /// `host:port` to addresses (`getaddrinfo`).
    pub resolve: &'a dyn Fn(&str) -> Result<Vec<SocketAddr>, String>,
    /// The local address the routing table would send from to reach `to`.
    pub route_from: &'a dyn Fn(SocketAddr) -> Option<IpAddr>,
}

/// The IPv4 blocks memberlist treats as private: RFC 1918 and RFC 6598
/// (carrier-grade NAT, which some overlay networks use).
pub fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1]))
}

fn first_v4(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

pub fn choose(
    node_ip: Option<&str>,
    port: u16,
    seeds: &[String],
    sys: &System,
) -> Result<Advertised, String> {
    let at = |ip: IpAddr, why: String| Advertised {
        addr: SocketAddr::new(ip, port),
        why,
    };
    if let Some(given) = node_ip {
        if let Ok(ip) = given.parse::<IpAddr>() {
            return Ok(at(ip, "NODE_IP".into()));
        }
        let on_iface: Vec<IpAddr> = sys
            .interfaces
            .iter()
            .filter(|(name, _)| name == given)
            .map(|(_, ip)| *ip)
            .collect();
        if !on_iface.is_empty() {
            let ip = on_iface
                .iter()
                .find(|ip| ip.is_ipv4())
                .unwrap_or(&on_iface[0]);
            return Ok(at(*ip, format!("NODE_IP names interface {given}")));
        }
        let addrs = (sys.resolve)(&format!("{given}:{port}"))
            .map_err(|e| format!("{given:?} is neither an interface nor a resolvable name: {e}"))?;
        let a = first_v4(&addrs).ok_or_else(|| format!("{given:?} resolves to no address"))?;
        return Ok(at(a.ip(), format!("NODE_IP {given} resolves to it")));
    }
    for seed in seeds {
        let Some(to) = (sys.resolve)(seed).ok().and_then(|a| first_v4(&a)) else {
            continue;
        };
        if let Some(ip) = (sys.route_from)(to).filter(|ip| !ip.is_unspecified()) {
            return Ok(at(
                ip,
                format!("NODE_IP unset: the address of the interface that reaches seed {seed}"),
            ));
        }
    }
    let private = sys.interfaces.iter().find_map(|(name, ip)| match ip {
        IpAddr::V4(v4) if !v4.is_loopback() && is_private_v4(*v4) => Some((name, *ip)),
        _ => None,
    });
    if let Some((name, ip)) = private {
        let why = if seeds.is_empty() {
            format!("NODE_IP unset, no seeds: the first private address (interface {name})")
        } else {
            format!(
                "NODE_IP unset, no seed resolves yet: the first private address (interface {name})"
            )
        };
        return Ok(at(ip, why));
    }
    Ok(at(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "NODE_IP unset and no private address: loopback, so only nodes on this host can reach it"
            .into(),
    ))
}

/// Every address of every interface that is up (`getifaddrs`).
pub fn interfaces() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then free
    // exactly once; every pointer is checked for null before it is read, and
    // a sockaddr is read as sockaddr_in/in6 only when its family says so.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null()
                || ifa.ifa_name.is_null()
                || ifa.ifa_flags & libc::IFF_UP as libc::c_uint == 0
            {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            let ip = match (*ifa.ifa_addr).sa_family as libc::c_int {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(sin6.sin6_addr.s6_addr.into())
                }
                _ => continue,
            };
            out.push((name, ip));
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The host name (`gethostname`), if it is set and valid UTF-8.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer outlives the call and its length is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Which local address the kernel would send from to reach `to`: a
/// connected UDP socket learns its source address without sending anything.
pub fn route_from(to: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    Some(s.local_addr().ok()?.ip())
}

fn system_resolve(target: &str) -> Result<Vec<SocketAddr>, String> {
    target
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| e.to_string())
}

/// The address to advertise, asking this host (see [`choose`]).
pub fn advertise_addr(cfg: &Config) -> Result<Advertised, ConfigError> {
    let ifaces = interfaces();
    let sys = System {
        interfaces: &ifaces,
        resolve: &system_resolve,
        route_from: &route_from,
    };
    choose(
        cfg.node_ip.as_deref(),
        cfg.node_port,
        &cfg.seed_nodes.0,
        &sys,
    )
    .map_err(|problem| ConfigError {
        key: "NODE_IP".into(),
        problem,
        place: None,
        value: cfg.node_ip.clone(),
    })
}

/// This node's own addresses at its gossip port, which seed resolution must
/// never contact: the advertised one and, when bound to the unspecified
/// address, every interface address at the bound port.
pub fn own_addrs(advertised: SocketAddr, bind: SocketAddr) -> Vec<SocketAddr> {
    let mut out = vec![advertised, bind];
    if bind.ip().is_unspecified() {
        out.extend(
            interfaces()
                .into_iter()
                .map(|(_, ip)| SocketAddr::new(ip, bind.port())),
        );
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A container on an overlay network (eth0) and Docker's gateway bridge
    /// (eth1), whose DNS knows `tasks.gossip` and `node2`.
    fn container() -> Vec<(String, IpAddr)> {
        vec![
            ("lo".into(), v4("127.0.0.1")),
            ("lo".into(), v4("::1")),
            ("eth0".into(), v4("fd00::5")),
            ("eth0".into(), v4("10.0.1.5")),
            ("eth1".into(), v4("172.18.0.3")),
        ]
    }

    fn resolve(target: &str) -> Result<Vec<SocketAddr>, String> {
        let (host, port) = target.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        let ips: Vec<&str> = match host {
            "tasks.gossip" => vec!["::1", "10.0.1.7", "10.0.1.8"],
            "node2" => vec!["192.168.9.2"],
            "localhost" => vec!["127.0.0.1"],
            _ => return Err("EAI_AGAIN".into()),
        };
        Ok(ips.iter().map(|ip| SocketAddr::new(v4(ip), port)).collect())
    }

    /// Routes: the overlay's subnet through eth0, loopback through lo,
    /// everything else through the gateway bridge.
    fn route(to: SocketAddr) -> Option<IpAddr> {
        match to.ip() {
            IpAddr::V4(ip) if ip.octets()[..3] == [10, 0, 1] => Some(v4("10.0.1.5")),
            IpAddr::V4(ip) if ip.is_loopback() => Some(v4("127.0.0.1")),
            IpAddr::V4(_) => Some(v4("172.18.0.3")),
            IpAddr::V6(_) => None,
        }
    }

    fn pick(node_ip: Option<&str>, seeds: &[&str], ifaces: &[(String, IpAddr)]) -> Advertised {
        try_pick(node_ip, seeds, ifaces).unwrap()
    }

    fn try_pick(
        node_ip: Option<&str>,
        seeds: &[&str],
        ifaces: &[(String, IpAddr)],
    ) -> Result<Advertised, String> {
        let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        let sys = System {
            interfaces: ifaces,
            resolve: &resolve,
            route_from: &route,
        };
        choose(node_ip, 7946, &seeds, &sys)
    }

    #[test]
    fn node_ip_as_address_name_or_interface() {
        let c = container();
        assert_eq!(pick(Some("10.9.9.9"), &[], &c).addr.ip(), v4("10.9.9.9"));
        assert_eq!(pick(Some("node2"), &[], &c).addr.ip(), v4("192.168.9.2"));
        let eth1 = pick(Some("eth1"), &[], &c);
        assert_eq!(eth1.addr, "172.18.0.3:7946".parse().unwrap());
        assert!(eth1.why.contains("interface eth1"), "{}", eth1.why);
        // IPv4 is preferred on an interface that also has IPv6.
        assert_eq!(pick(Some("eth0"), &[], &c).addr.ip(), v4("10.0.1.5"));
        let e = try_pick(Some("eth7"), &[], &c).unwrap_err();
        assert!(e.contains("eth7") && e.contains("interface"), "{e}");
    }

    #[test]
    fn unset_node_ip_follows_the_route_to_the_first_seed_that_resolves() {
        let c = container();
        let a = pick(None, &["not-yet:7946", "tasks.gossip:7946"], &c);
        assert_eq!(a.addr, "10.0.1.5:7946".parse().unwrap());
        assert!(a.why.contains("tasks.gossip"), "{}", a.why);
        // A seed on this host: loopback, as the README's quick start needs.
        assert_eq!(
            pick(None, &["localhost:8001"], &c).addr.ip(),
            v4("127.0.0.1")
        );
        // A seed elsewhere: the interface the route leaves through.
        assert_eq!(pick(None, &["node2:7946"], &c).addr.ip(), v4("172.18.0.3"));
    }

    #[test]
    fn unset_node_ip_without_seeds_takes_the_first_private_address() {
        let c = container();
        let a = pick(None, &[], &c);
        assert_eq!(a.addr.ip(), v4("10.0.1.5"));
        assert!(a.why.contains("eth0"), "{}", a.why);
        // Seeds that do not resolve yet (the first tasks of a deployment).
        assert_eq!(pick(None, &["not-yet:7946"], &c).addr.ip(), v4("10.0.1.5"));
        // Public and link-local addresses are skipped; 100.64/10 counts.
        let odd = vec![
            ("lo".into(), v4("127.0.0.1")),
            ("eth0".into(), v4("169.254.1.1")),
            ("eth1".into(), v4("8.8.4.4")),
            ("wg0".into(), v4("100.100.1.2")),
        ];
        assert_eq!(pick(None, &[], &odd).addr.ip(), v4("100.100.1.2"));
        // Nothing private: loopback, said plainly.
        let lonely = vec![("lo".into(), v4("127.0.0.1"))];
        let a = pick(None, &[], &lonely);
        assert_eq!(a.addr.ip(), v4("127.0.0.1"));
        assert!(a.why.contains("loopback"), "{}", a.why);
    }

    #[test]
    fn the_system_answers() {
        assert!(interfaces().iter().any(|(_, ip)| *ip == v4("127.0.0.1")));
        assert_eq!(
            route_from("127.0.0.1:9".parse().unwrap()),
            Some(v4("127.0.0.1"))
        );
        assert!(host_name().is_some());
    }
}
