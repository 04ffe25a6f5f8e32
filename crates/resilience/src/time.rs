//! Deadline arithmetic that never panics.
//!
//! `Instant + Duration` panics when the sum does not fit the platform's clock, which a
//! configured duration near `Duration::MAX` (or a backoff grown without a cap) reaches
//! easily. Every deadline in the crate is computed here instead, saturating at a point far
//! enough ahead to mean "never" for any process, and close enough for the timer wheel and
//! the `u64` nanosecond atomics to hold.

use std::time::Duration;

use tokio::time::Instant;

/// How far ahead "never" is: about thirty years, as tokio's own far-future instant. Far
/// beyond any process lifetime, and it fits every clock and every `u64` of nanoseconds.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + duration`, or `now +` [`FAR_FUTURE`] when `duration` is longer than that or the sum
/// does not fit.
pub(crate) fn deadline(now: Instant, duration: Duration) -> Instant {
    let duration = duration.min(FAR_FUTURE);
    now.checked_add(duration).unwrap_or_else(|| {
        // The clock's own limit is nearer than thirty years: the largest instant it holds is
        // still "never" in practice. Halving converges quickly and never overflows.
        let mut step = duration;
        let mut at = now;
        while !step.is_zero() {
            if let Some(later) = at.checked_add(step) {
                at = later;
            }
            step /= 2;
        }
        at
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(deadline(now, FAR_FUTURE * 2), now + FAR_FUTURE);
    }
}
