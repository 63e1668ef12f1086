//! Jittered exponential backoff for redialing HQ.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `BASE` up to `CAP`, each drawn at random from its upper half so a
/// fleet of runners does not redial in lockstep after an HQ restart.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(250);
    const CAP: Duration = Duration::from_secs(30);

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::BASE.saturating_mul(1 << self.attempt.min(16)).min(Self::CAP);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling_ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ceiling_ms / 2..=ceiling_ms))
    }

    /// Starts over after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first <= Backoff::BASE && first >= Backoff::BASE / 2);
        for _ in 0..40 {
            assert!(backoff.next_delay() <= Backoff::CAP);
        }
        assert!(backoff.next_delay() >= Backoff::CAP / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= Backoff::BASE);
    }
}
