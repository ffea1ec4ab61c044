//! Seed resolution: turns `SEED_NODES` (`host:port` entries) into the
//! addresses one join attempt contacts. The Gossip actor calls
//! [`SeedResolver::resolve`] on every join and rejoin attempt, so names are
//! looked up again each time: a seed's name may not exist until its container
//! starts, and `tasks.gossip` (Swarm) or a headless Service (Kubernetes)
//! names a different set of tasks or pods from one minute to the next.
//!
//! Every address a name resolves to counts, not just the first; which of them
//! an attempt contacts is decided by `protocol::seeds::pick` (a bounded
//! random sample, never this node itself).

use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use crate::protocol::seeds::pick;

pub type Addrs = Pin<Box<dyn Future<Output = Vec<SocketAddr>>>>;

/// Resolves seed entries to the addresses to contact. The agent uses DNS;
/// the simulator and the demo use literal addresses only.
pub trait SeedResolver: 'static {
    fn resolve(&self, seeds: Vec<String>) -> Addrs;
}

/// One name lookup: `host:port` to every address it stands for.
pub type Lookup = Rc<dyn Fn(String) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>>>>>;

/// The system resolver (`getaddrinfo`: /etc/hosts, then DNS).
pub fn system_lookup() -> Lookup {
    Rc::new(|seed: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host(seed.as_str()).await?.collect()) })
    })
}

/// Resolves through a [`Lookup`] (the system resolver unless a test gives
/// another), all names of one attempt at once.
pub struct DnsResolver {
    own: Rc<Vec<SocketAddr>>,
    family_v4: bool,
    limit: usize,
    rng: Rc<RefCell<SmallRng>>,
    lookup: Lookup,
}

impl DnsResolver {
    /// `own`: this node's addresses (never contacted); `family_v4`: the
    /// family of its socket; `limit`: at most this many addresses per attempt.
    pub fn new(own: Vec<SocketAddr>, family_v4: bool, limit: usize, seed: u64) -> Self {
        DnsResolver {
            own: Rc::new(own),
            family_v4,
            limit,
            rng: Rc::new(RefCell::new(SmallRng::seed_from_u64(seed))),
            lookup: system_lookup(),
        }
    }

    pub fn with_lookup(mut self, lookup: Lookup) -> Self {
        self.lookup = lookup;
        self
    }
}

impl SeedResolver for DnsResolver {
    fn resolve(&self, seeds: Vec<String>) -> Addrs {
        let lookups: Vec<_> = seeds
            .iter()
            .map(|s| {
                let s = s.clone();
                let fut = (self.lookup)(s.clone());
                async move { (s, fut.await) }
            })
            .collect();
        let (own, family_v4, limit, rng) = (
            self.own.clone(),
            self.family_v4,
            self.limit,
            self.rng.clone(),
        );
        Box::pin(async move {
            let mut all = Vec::new();
            for (seed, result) in futures_util::future::join_all(lookups).await {
                match result {
                    Ok(addrs) => {
                        log::debug!("seed {seed} resolves to {} address(es)", addrs.len());
                        all.extend(addrs);
                    }
                    Err(e) => log::debug!("seed {seed} does not resolve yet: {e}"),
                }
            }
            let found = all.len();
            let chosen = pick(all, &own, family_v4, limit, &mut *rng.borrow_mut());
            if found > chosen.len() {
                log::debug!("contacting {} of {found} seed addresses", chosen.len());
            }
            chosen
        })
    }
}

/// Parses literal `ip:port` seeds only.
pub struct LiteralResolver;

impl SeedResolver for LiteralResolver {
    fn resolve(&self, seeds: Vec<String>) -> Addrs {
        let out = seeds.iter().filter_map(|s| s.parse().ok()).collect();
        Box::pin(std::future::ready(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::HashSet;

    fn task(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 1, i], 7946))
    }

    /// A fake DNS: `tasks.gossip` stands for 40 tasks (this node among
    /// them, and an IPv6 address first), `static-seed` for one address,
    /// `nowhere` does not resolve. Counts the lookups.
    fn fake_dns(calls: Rc<Cell<usize>>) -> Lookup {
        Rc::new(move |name: String| {
            calls.set(calls.get() + 1);
            let r = match name.as_str() {
                "tasks.gossip:7946" => {
                    let mut v = vec!["[fd00::1]:7946".parse().unwrap()];
                    v.extend((1..=40).map(task));
                    Ok(v)
                }
                "static-seed:7946" => Ok(vec![SocketAddr::from(([192, 168, 5, 5], 7946))]),
                _ => Err(io::Error::other("EAI_AGAIN")),
            };
            Box::pin(std::future::ready(r))
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_name_with_many_addresses_yields_a_sample_of_all_of_them_every_attempt() {
        let calls = Rc::new(Cell::new(0));
        let me = task(9);
        let r = DnsResolver::new(vec![me], true, 8, 42).with_lookup(fake_dns(calls.clone()));
        let seeds = vec!["tasks.gossip:7946".to_string()];
        let mut reached = HashSet::new();
        for attempt in 1..=30 {
            let got = block_on(r.resolve(seeds.clone()));
            assert_eq!(calls.get(), attempt, "resolved again on every attempt");
            assert_eq!(got.len(), 8, "{got:?}");
            assert!(!got.contains(&me), "never the node itself: {got:?}");
            assert!(got.iter().all(|a| a.is_ipv4()), "{got:?}");
            reached.extend(got);
        }
        // Not cut to the first address: the attempts reach most of the 39
        // other tasks.
        assert!(reached.len() >= 35, "only {} tasks reached", reached.len());
    }

    #[test]
    fn names_that_do_not_resolve_yet_do_not_hide_the_others() {
        let calls = Rc::new(Cell::new(0));
        let r = DnsResolver::new(vec![], true, 64, 1).with_lookup(fake_dns(calls.clone()));
        let got = block_on(r.resolve(vec![
            "nowhere:7946".into(),
            "static-seed:7946".into(),
            "tasks.gossip:7946".into(),
        ]));
        assert_eq!(calls.get(), 3);
        assert_eq!(got.len(), 41, "every IPv4 address of both names: {got:?}");
        assert!(got.contains(&SocketAddr::from(([192, 168, 5, 5], 7946))));
    }

    #[test]
    fn the_system_resolver_reads_literal_addresses_and_localhost() {
        let r = DnsResolver::new(vec![], true, 8, 1);
        let got = block_on(r.resolve(vec!["127.0.0.1:7001".into(), "localhost:7002".into()]));
        assert!(got.contains(&"127.0.0.1:7001".parse().unwrap()), "{got:?}");
        assert!(got.contains(&"127.0.0.1:7002".parse().unwrap()), "{got:?}");
    }
}
