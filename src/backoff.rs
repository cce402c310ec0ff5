//! Retry delays: `min(2^failCount × base, max)`, then up to `jitter` extra so that jobs
//! failing together do not retry together. Pure functions, unit-tested below.

use std::time::Duration;

use crate::error::{Error, Result};

/// Exponential backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay unit: retry `n` waits `2^n × base`. Default 60 s.
    pub base: Duration,
    /// No retry waits longer than this. Default 24 h.
    pub max: Duration,
    /// Up to this fraction of the delay is added at random (0 disables). Default 0.1.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(60),
            max: Duration::from_secs(24 * 60 * 60),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.base.is_zero() {
            return Err(Error::option(
                "base_retry_interval",
                "must be greater than zero",
            ));
        }
        if self.max < self.base {
            return Err(Error::option(
                "max_backoff_delay",
                "must be at least base_retry_interval",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::option("jitter", "must be between 0 and 1"));
        }
        Ok(())
    }

    /// The delay before the retry that follows failure number `fail_count` (1 = first
    /// failure), without jitter: `min(2^fail_count × base, max)`.
    pub fn delay(&self, fail_count: u32) -> Duration {
        // 2^63 already overflows any Duration we could multiply; saturate instead.
        let factor = 1u64.checked_shl(fail_count.min(63)).unwrap_or(u64::MAX);
        let millis = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(millis).min(self.max)
    }

    /// `delay(fail_count)` plus `unit × jitter` of it (`unit` in `[0, 1)`), still capped.
    pub fn delay_with_jitter(&self, fail_count: u32, unit: f64) -> Duration {
        let delay = self.delay(fail_count);
        let extra = delay.mul_f64(self.jitter * unit.clamp(0.0, 1.0));
        (delay + extra).min(self.max)
    }

    /// `delay_with_jitter` with a random draw.
    pub fn next_delay(&self, fail_count: u32) -> Duration {
        self.delay_with_jitter(fail_count, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_two_to_the_fail_count_minutes() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_secs(120));
        assert_eq!(b.delay(2), Duration::from_secs(240));
        assert_eq!(b.delay(5), Duration::from_secs(32 * 60));
    }

    #[test]
    fn delay_is_capped_and_never_overflows() {
        let b = Backoff::default();
        assert_eq!(b.delay(11), Duration::from_secs(24 * 3600));
        assert_eq!(b.delay(63), b.max);
        assert_eq!(b.delay(u32::MAX), b.max);
        assert_eq!(b.delay_with_jitter(u32::MAX, 0.99), b.max);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let b = Backoff::default();
        for n in 1..8 {
            let base = b.delay(n);
            for _ in 0..200 {
                let d = b.next_delay(n);
                assert!(d >= base && d <= base.mul_f64(1.1), "{d:?} vs {base:?}");
            }
        }
        let none = Backoff { jitter: 0.0, ..b };
        assert_eq!(none.next_delay(3), none.delay(3));
    }

    #[test]
    fn monotonic_in_fail_count() {
        let b = Backoff {
            base: Duration::from_millis(7),
            max: Duration::from_secs(3600),
            jitter: 0.0,
        };
        let mut last = Duration::ZERO;
        for n in 0..80 {
            let d = b.delay(n);
            assert!(d >= last);
            last = d;
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        let b = Backoff::default();
        assert!(Backoff {
            base: Duration::ZERO,
            ..b
        }
        .validate()
        .is_err());
        assert!(Backoff {
            max: Duration::from_secs(1),
            ..b
        }
        .validate()
        .is_err());
        assert!(Backoff { jitter: 1.5, ..b }.validate().is_err());
        assert!(Backoff {
            jitter: f64::NAN,
            ..b
        }
        .validate()
        .is_err());
    }
}
