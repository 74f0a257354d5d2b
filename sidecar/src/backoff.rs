//! Retry delay: capped exponential backoff with "equal jitter".
//!
//! delay(n) = c/2 + uniform(0, c/2) where c = min(max, base * 2^(n-1)), n = attempts so far (≥ 1).
//! Half the delay is guaranteed (so a burst of failures really backs off), half is random (so many
//! rows failing together do not come back together).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    pub fn new(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            base_ms: base_ms.max(1),
            max_ms: max_ms.max(base_ms.max(1)),
        }
    }

    /// The un-jittered ceiling for the `attempt`-th failure (1-based).
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(62);
        self.base_ms.saturating_mul(1u64 << shift).min(self.max_ms)
    }

    /// Delay before the next try after the `attempt`-th failure, with `unit` in [0, 1) as the
    /// random draw (pure, for tests).
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let c = self.ceiling_ms(attempt);
        let half = c / 2;
        let unit = unit.clamp(0.0, 1.0);
        let jitter = ((c - half) as f64 * unit) as u64;
        Duration::from_millis(half + jitter)
    }

    /// Delay with a fresh random draw.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let b = Backoff::new(1_000, 60_000);
        assert_eq!(b.ceiling_ms(1), 1_000);
        assert_eq!(b.ceiling_ms(2), 2_000);
        assert_eq!(b.ceiling_ms(3), 4_000);
        assert_eq!(b.ceiling_ms(7), 60_000);
        assert_eq!(b.ceiling_ms(500), 60_000);
        assert_eq!(b.ceiling_ms(0), 1_000);
    }

    #[test]
    fn jitter_bounds() {
        let b = Backoff::new(1_000, 60_000);
        assert_eq!(b.delay_with(3, 0.0), Duration::from_millis(2_000));
        assert_eq!(b.delay_with(3, 1.0), Duration::from_millis(4_000));
        for n in 1..20 {
            let d = b.delay(n).as_millis() as u64;
            assert!(
                d >= b.ceiling_ms(n) / 2 && d <= b.ceiling_ms(n),
                "attempt {n}: {d}"
            );
        }
    }

    #[test]
    fn degenerate_inputs() {
        let b = Backoff::new(0, 0);
        assert!(b.delay(1) <= Duration::from_millis(1));
        let b = Backoff::new(u64::MAX / 2, u64::MAX);
        assert!(b.ceiling_ms(63) >= u64::MAX / 2);
    }
}
