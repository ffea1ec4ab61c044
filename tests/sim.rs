//! The simulator end to end: every scenario at 50 nodes (virtual time keeps
//! each to about a second of wall time, even in a debug build), determinism,
//! and what the invariant checker sees. The deliberately broken merge rule is
//! tested inside the library (`sim::tests::a_broken_merge_rule_is_caught`),
//! where `cfg(test)` hooks exist.

use std::time::Duration;

use gossip::sim::{simulate, Report, Scenario, SimArgs};

fn args(scenario: Scenario, nodes: usize) -> SimArgs {
    let mut a = SimArgs::new(scenario, nodes);
    a.warmup = Duration::from_secs(5);
    a
}

fn check(r: &Report) {
    assert!(
        r.converged,
        "goal not reached: {:?}\nreplay: {}",
        r.violations, r.replay
    );
    assert!(
        r.invariants_ok,
        "invariant violated: {:?}\nreplay: {}",
        r.violations, r.replay
    );
    assert!(
        r.settle_ms.is_some(),
        "the live nodes did not come to agree: {}",
        r.replay
    );
    assert!(
        r.msgs_per_node_s > 0.0 && r.bytes_per_node_s > 0.0,
        "traffic was measured"
    );
}

#[test]
fn join_50() {
    let r = simulate(&args(Scenario::Join, 50));
    check(&r);
    // Staggered 10 ms apart: the last node starts at 490 ms.
    assert!(
        r.sim_ms.unwrap() >= 490 && r.sim_ms.unwrap() < 10_000,
        "{r:?}"
    );
}

#[test]
fn dissemination_50() {
    let r = simulate(&args(Scenario::Dissemination, 50));
    check(&r);
    let (p50, p100) = (
        r.dissemination_ms_p50.unwrap(),
        r.dissemination_ms_p100.unwrap(),
    );
    assert!(p50 <= p100 && p100 < 3_000, "{p50} {p100}");
}

#[test]
fn failure_50_under_loss() {
    let mut a = args(Scenario::Failure, 50);
    a.loss = 0.1;
    a.count = Some(2);
    let r = simulate(&a);
    check(&r);
    let (p50, max) = (r.detection_ms_p50.unwrap(), r.detection_ms_max.unwrap());
    // No detector of ours can beat the suspicion minimum, counted from the
    // unanswered probe (sent after the crash); it should not take much
    // longer than a probe round + the suspicion maximum either.
    assert!(p50 >= 2_100, "{p50}");
    assert!(max < 20_000, "{max}");
    assert_eq!(r.false_positives, 0, "{:?}", r.violations);
}

/// The scenarios start from a warm cluster by default; the same failure in a
/// cluster formed by 50 real joins.
#[test]
fn failure_50_in_a_cluster_formed_by_joins() {
    let mut a = args(Scenario::Failure, 50);
    a.form = Some(gossip::sim::Form::Join);
    a.count = Some(2);
    let r = simulate(&a);
    check(&r);
    assert_eq!(r.form, "join");
    assert!(r.setup_ms.unwrap() >= 490, "joins are staggered: {r:?}");
    assert!(r.detection_ms_max.unwrap() < 20_000, "{r:?}");
}

/// Regression test: every node probes a member it hears is suspect, and
/// every accusation used to be passed on by every node that had not seen it,
/// so one crash cost O(N^2) rumors (290 datagrams per node per second here,
/// 20 million rumors at 1,000 nodes). Confirmations now travel only while
/// they shorten the suspicion (the first k, as in memberlist). The rate is
/// over the scenario's window, which ends when the last victim is dead
/// everywhere: since detection counts from the unanswered probe (3.0 s here
/// instead of 3.8 s) the same rumors fill a shorter window, about 85
/// datagrams per node per second; the flood was 290.
#[test]
fn a_crash_costs_no_flood_of_confirmations() {
    let mut a = args(Scenario::Failure, 200);
    a.count = Some(4);
    let r = simulate(&a);
    check(&r);
    assert!(
        r.msgs_per_node_s < 120.0,
        "{} datagrams per node per second during the failure",
        r.msgs_per_node_s
    );
}

#[test]
fn leave_50() {
    let mut a = args(Scenario::Leave, 50);
    a.count = Some(3);
    let r = simulate(&a);
    check(&r);
    assert!(r.leave_ms_max.unwrap() < 2_000, "{r:?}");
    assert_eq!(r.false_positives, 0);
}

#[test]
fn partition_50() {
    let mut a = args(Scenario::Partition, 50);
    a.duration = Some(Duration::from_secs(20));
    let r = simulate(&a);
    check(&r);
    assert!(
        r.excused_deaths > 0,
        "each side declared the other dead during the partition"
    );
    assert_eq!(r.false_positives_after_heal, Some(0));
}

#[test]
fn one_way_partition_50() {
    let mut a = args(Scenario::Partition, 50);
    a.duration = Some(Duration::from_secs(20));
    a.one_way = true;
    let r = simulate(&a);
    check(&r);
}

#[test]
fn churn_50() {
    let mut a = args(Scenario::Churn, 50);
    a.duration = Some(Duration::from_secs(40));
    let r = simulate(&a);
    check(&r);
    assert!(r.churn_events.unwrap() >= 5, "{r:?}");
}

#[test]
fn soak_50_under_loss_duplication_and_reordering() {
    let mut a = args(Scenario::Soak, 50);
    a.loss = 0.05;
    a.dup = 0.05;
    a.reorder = 0.1;
    let r = simulate(&a);
    check(&r);
    assert_eq!(r.false_positives, 0);
    assert!(
        r.net.duplicated > 0 && r.net.reordered > 0 && r.net.lost > 0,
        "{:?}",
        r.net
    );
}

#[test]
fn pause_50_shorter_than_the_suspicion_timeout() {
    let mut a = args(Scenario::Pause, 50);
    a.duration = Some(Duration::from_millis(1500));
    let r = simulate(&a);
    check(&r);
    assert_eq!(
        r.false_positives, 0,
        "a 1.5 s freeze must not be declared dead"
    );
    assert!(r.net.held > 0, "datagrams were held for the paused node");
}

/// Same arguments, same JSON (wall-clock fields aside), with every source of
/// randomness in play: loss, duplication, reordering, jitter, crashes.
#[test]
fn same_seed_same_report() {
    let mut a = args(Scenario::Churn, 30);
    a.loss = 0.1;
    a.dup = 0.02;
    a.reorder = 0.05;
    a.duration = Some(Duration::from_secs(20));
    let strip = |r: &Report| {
        let mut v = serde_json::to_value(r).unwrap();
        let o = v.as_object_mut().unwrap();
        o.retain(|k, _| !k.starts_with("wall"));
        v
    };
    let first = strip(&simulate(&a));
    let second = strip(&simulate(&a));
    assert_eq!(first, second);
    a.seed = 2;
    assert_ne!(first, strip(&simulate(&a)), "another seed, another run");
}

/// Regression test for a protocol bug the simulator found: the member-table
/// hash that push-pull compares (src/protocol/view.rs) collides across a
/// healed partition (both sides' sums of FNV entry hashes come out equal),
/// so the sides never exchange digests and only merge once tombstones
/// expire, minutes later. Ignored until `entry_hash` gets a finalizer.
#[test]
fn partition_heals_within_30_s_at_100_nodes() {
    for seed in 1..=3 {
        let mut a = args(Scenario::Partition, 100);
        a.seed = seed;
        let r = simulate(&a);
        check(&r);
        assert!(r.sim_ms.unwrap() < 30_000, "seed {seed}: {:?}", r.sim_ms);
    }
}

/// Issue 5's soak target: 100 nodes, 10% loss, 10 virtual minutes, zero
/// false positives, for three seeds. About a minute in a debug build, a few
/// seconds in the release build the test command uses.
#[test]
fn soak_100_nodes_10_percent_loss_10_minutes() {
    for seed in 1..=3 {
        let mut a = args(Scenario::Soak, 100);
        a.seed = seed;
        a.loss = 0.1;
        a.duration = Some(Duration::from_secs(600));
        let r = simulate(&a);
        assert_eq!(r.false_positives, 0, "seed {seed}: {:?}", r.violations);
    }
}

/// The root cause of the test above, shown without a simulation: two views
/// that swap which of two members is dead hash the same (FNV-1a's last steps
/// are linear, so a state flip shifts an entry's hash by +-2*P^9), and
/// push-pull, which compares view hashes first, sees nothing to exchange.
#[test]
fn view_hashes_tell_apart_views_that_swap_a_dead_member() {
    use gossip::protocol::view::View;
    use gossip::protocol::{Member, MemberState, NodeId};
    let member = |i: usize, state| Member {
        state,
        ..Member::new_alive(
            NodeId::new(&format!("n{i}")),
            gossip::sim::network::addr_of(i),
            0,
        )
    };
    let now = tokio::time::Instant::now();
    let mut collisions = Vec::new();
    for x in 0..20 {
        for y in x + 1..20 {
            let (mut a, mut b) = (View::new(100), View::new(100));
            a.apply(&member(x, MemberState::Alive), now).unwrap();
            a.apply(&member(y, MemberState::Dead), now).unwrap();
            b.apply(&member(x, MemberState::Dead), now).unwrap();
            b.apply(&member(y, MemberState::Alive), now).unwrap();
            if a.hash() == b.hash() {
                collisions.push((x, y));
            }
        }
    }
    assert!(
        collisions.is_empty(),
        "{} of 190 pairs collide, e.g. {:?}",
        collisions.len(),
        &collisions[..3.min(collisions.len())]
    );
}

/// Issue 12: a partition longer than `dead_reclaim_ms` (60 s) healed only by
/// luck, since both sides had forgotten each other's addresses. With the
/// reconnect book and the seed retries it heals within `reconnect_interval`
/// (30 s) + 10 s of the heal, with nobody wrongly dead.
#[test]
fn partition_of_100_s_heals_within_reconnect_interval() {
    for seed in 1..=2 {
        let mut a = args(Scenario::Partition, 20);
        a.seed = seed;
        a.duration = Some(Duration::from_secs(100));
        a.limit = Some(Duration::from_secs(40));
        let r = simulate(&a);
        check(&r);
        assert_eq!(r.false_positives_after_heal, Some(0), "seed {seed}");
    }
}

#[test]
fn partition_of_10_virtual_minutes_heals() {
    let mut a = args(Scenario::Partition, 20);
    a.duration = Some(Duration::from_secs(600));
    a.limit = Some(Duration::from_secs(40));
    let r = simulate(&a);
    check(&r);
    assert_eq!(r.false_positives_after_heal, Some(0));
}

#[test]
fn partition_longer_than_dead_reclaim_heals_under_10_percent_loss() {
    let mut a = args(Scenario::Partition, 20);
    a.duration = Some(Duration::from_secs(150));
    a.loss = 0.1;
    a.limit = Some(Duration::from_secs(40));
    let r = simulate(&a);
    check(&r);
    assert_eq!(r.false_positives_after_heal, Some(0));
}

/// One crash, watched 10 virtual minutes (tombstones reclaimed at 60 s and
/// push-pull every 10 s meanwhile): exactly one `failed` event per survivor,
/// and no revived tombstone (the observer's invariant).
#[test]
fn one_crash_is_one_failed_event_per_survivor_over_10_minutes() {
    let mut a = args(Scenario::Failure, 20);
    a.count = Some(1);
    a.loss = 0.05;
    a.watch = Some(Duration::from_secs(600));
    let r = simulate(&a);
    check(&r);
    assert_eq!(r.failed_events_per_pair_min, Some(1), "{:?}", r.violations);
    assert_eq!(r.failed_events_per_pair_max, Some(1), "{:?}", r.violations);
}
