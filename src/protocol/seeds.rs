//! Which resolved seed addresses one join attempt contacts.
//!
//! A seed name may stand for a whole fleet: Docker Swarm's `tasks.gossip` and
//! a Kubernetes headless Service resolve to every task's or pod's address. A
//! join needs only a few members that answer, and each contacted member costs
//! a full state exchange, so an attempt contacts a bounded random sample.
//! Every attempt resolves and samples again, so the retries of a node that
//! picked unlucky addresses (tasks that just stopped) try others.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashSet;
use std::net::SocketAddr;

/// The addresses to contact: `resolved` without duplicates, without any of
/// `own` (this node's own addresses: contacting itself would only waste an
/// attempt), only those of `family_v4`'s family (the socket is bound to one
/// family, and a resolver may return `::1` before `127.0.0.1`), and at most
/// `limit` of them, chosen at random when there are more.
pub fn pick(
    resolved: impl IntoIterator<Item = SocketAddr>,
    own: &[SocketAddr],
    family_v4: bool,
    limit: usize,
    rng: &mut impl Rng,
) -> Vec<SocketAddr> {
    let mut seen = HashSet::new();
    let mut out: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|a| a.is_ipv4() == family_v4 && !own.contains(a) && seen.insert(*a))
        .collect();
    if out.len() > limit {
        out.shuffle(rng);
        out.truncate(limit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn task(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 1, i], 7946))
    }

    #[test]
    fn few_addresses_are_all_kept_but_never_our_own() {
        let me = task(3);
        let got = pick(
            [task(1), task(2), task(3), task(2)],
            &[me],
            true,
            8,
            &mut SmallRng::seed_from_u64(1),
        );
        assert_eq!(got, vec![task(1), task(2)]);
    }

    #[test]
    fn many_addresses_give_a_bounded_sample_that_varies() {
        let all: Vec<SocketAddr> = (1..=50).map(task).collect();
        let me = task(7);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut union = HashSet::new();
        let mut samples = HashSet::new();
        for _ in 0..40 {
            let got = pick(all.clone(), &[me], true, 8, &mut rng);
            assert_eq!(got.len(), 8);
            assert!(!got.contains(&me));
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), 8, "{got:?}");
            let mut sorted = got.clone();
            sorted.sort();
            samples.insert(sorted);
            union.extend(got);
        }
        // Retries reach further than the first sample: after 40 attempts
        // nearly every other task has been tried.
        assert!(samples.len() > 30, "{} distinct samples", samples.len());
        assert!(union.len() >= 45, "{} tasks reached", union.len());
    }

    #[test]
    fn only_the_sockets_family() {
        let v6: SocketAddr = "[::1]:7946".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        assert_eq!(pick([v6, v4], &[], true, 8, &mut rng), vec![v4]);
        assert_eq!(pick([v6, v4], &[], false, 8, &mut rng), vec![v6]);
    }
}
