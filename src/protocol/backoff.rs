//! Retry timing for joining through seeds: exponential backoff with jitter,
//! so a fleet that starts at once does not retry in lockstep.

use rand::Rng;
use std::time::Duration;

/// Delay before retry number `attempt` (0-based): `base * 2^attempt`, capped
/// at `max`, then drawn uniformly from its upper half ("equal jitter").
pub fn delay(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20));
    let d = exp.min(max);
    let half = d / 2;
    half + half.mul_f64(rng.gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn grows_then_caps_with_jitter() {
        let mut rng = SmallRng::seed_from_u64(1);
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        for attempt in 0..40 {
            let d = delay(attempt, base, max, &mut rng);
            let cap = base.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
    }
}
