//! Retry timing for the sync loop: exponential back-off with full jitter
//! (so 327 phones that regain the network together do not retry in step),
//! a small seedable random source for the jitter, and an injectable
//! [`Sleeper`] so tests never sleep.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Exponential back-off: attempt `n` (0-based) waits a random time in
/// `[0, min(max, base · 2ⁿ)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first wait.
    pub base: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// How many times one sync is tried before giving up (at least 1).
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 1 s, doubling up to 5 min, 8 attempts.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    /// The ceiling of the wait after failed attempt `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait after failed attempt `attempt`, given a jitter draw in `[0, 1)`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        self.ceiling(attempt).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// SplitMix64: a tiny seedable generator, good enough for jitter and the
/// same on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator with a fixed seed (tests, simulations).
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded from the device id and the time, so phones differ.
    pub fn from_entropy(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self(salt ^ u64::from(nanos).rotate_left(32))
    }

    /// The next draw in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top 53 bits give a uniform f64 in [0, 1).
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Waits between retries.
pub trait Sleeper: Send + Sync {
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Sleeps on the tokio timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Returns at once and remembers every wait asked for (tests, simulators).
#[derive(Debug, Clone, Default)]
pub struct RecordingSleeper(Arc<Mutex<Vec<Duration>>>);

impl RecordingSleeper {
    /// The waits asked for so far.
    pub fn waits(&self) -> Vec<Duration> {
        self.0.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        if let Ok(mut waits) = self.0.lock() {
            waits.push(duration);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 5,
        };
        let ceilings: Vec<_> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(100), Duration::from_secs(1));
        assert_eq!(b.delay(2, 0.5), Duration::from_millis(200));
        assert_eq!(b.delay(2, 7.0), Duration::from_millis(400));
    }

    #[test]
    fn jitter_is_reproducible_from_its_seed_and_stays_in_range() {
        let draws = |seed| {
            let mut j = Jitter::seeded(seed);
            (0..1000).map(|_| j.next_f64()).collect::<Vec<_>>()
        };
        let a = draws(7);
        assert_eq!(a, draws(7));
        assert_ne!(a, draws(8));
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}
