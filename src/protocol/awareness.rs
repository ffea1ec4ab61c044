//! Local health awareness (Lifeguard): how much this node distrusts itself.
//!
//! A node that misses acks, receives no nacks from its relays, or has to
//! refute suspicions about itself is probably the slow one. Its score rises,
//! and its own probe interval and probe timeout are multiplied by
//! `score + 1`, so an overloaded node accuses others less; so are its
//! suspicion timeouts, so it also waits longer before declaring anyone dead
//! (`protocol::suspicion`). Successful probes lower the score again.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Awareness {
    score: u32,
    max_mult: u32,
}

impl Awareness {
    /// `max_mult` is the largest multiplier (memberlist's awareness max, 8).
    pub fn new(max_mult: u32) -> Self {
        Awareness {
            score: 0,
            max_mult: max_mult.max(1),
        }
    }

    pub fn score(&self) -> u32 {
        self.score
    }

    /// Adds `delta` to the score, clamped to `0..max_mult`.
    pub fn apply(&mut self, delta: i32) {
        let s = self.score as i64 + delta as i64;
        self.score = s.clamp(0, (self.max_mult - 1) as i64) as u32;
    }

    /// What this node's periods and timeouts are multiplied by: 1 when
    /// healthy, up to `max_mult`.
    pub fn multiplier(&self) -> u32 {
        self.score + 1
    }

    pub fn scale(&self, d: Duration) -> Duration {
        d * self.multiplier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_clamped_and_scales() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(1));
        for _ in 0..20 {
            a.apply(1);
        }
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_millis(500)), Duration::from_secs(4));
    }
}
