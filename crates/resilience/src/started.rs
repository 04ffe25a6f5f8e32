//! [`Started`]: when a call started, as its permit keeps it: one word on a [`Clock`]'s
//! timeline.

use std::num::NonZeroU64;

use tokio::time::Instant;

use crate::clock::Clock;

/// When a call started, if a clock was read for it: nanoseconds since a [`Clock`]'s epoch,
/// plus one, or [`UNTIMED`](Self::UNTIMED).
///
/// One word where an `Option<Instant>` takes two, so that a permit holding its handle and
/// this is two words and moves in registers (see [`Ticket`](crate::ticket::Ticket)). Zero is
/// never used, so that an `Option` of such a permit (where a tower layer keeps the permit for
/// the next call) is no larger than the permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Started(NonZeroU64);

impl Started {
    /// The clock was not read for the call.
    pub(crate) const UNTIMED: Self = Self(NonZeroU64::MAX);

    /// `nanos` after the clock's epoch (584 years after it, the call counts as untimed).
    #[inline]
    pub(crate) fn at_nanos(nanos: u64) -> Self {
        Self(NonZeroU64::MIN.saturating_add(nanos))
    }

    /// `at` on `clock`'s timeline, or untimed. An instant before the epoch counts as the
    /// epoch.
    #[inline]
    pub(crate) fn of(clock: &Clock, at: Option<Instant>) -> Self {
        at.map_or(Self::UNTIMED, |at| Self::at_nanos(clock.nanos_at(at)))
    }

    /// Nanoseconds since the clock's epoch, if the call was timed.
    #[inline]
    pub(crate) fn nanos(self) -> Option<u64> {
        (self != Self::UNTIMED).then(|| self.0.get() - 1)
    }

    /// The instant it stands for on `clock`'s timeline, if the call was timed.
    pub(crate) fn instant(self, clock: &Clock) -> Option<Instant> {
        self.nanos().map(|nanos| clock.instant_at(nanos))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keeps_the_instant_to_the_nanosecond() {
        let clock = Clock::new();
        let epoch = clock.instant_at(0);
        for nanos in [0, 1, 999_999_999, 86_400_000_000_000] {
            let at = epoch + Duration::from_nanos(nanos);
            let started = Started::of(&clock, Some(at));
            assert_eq!(started.nanos(), Some(nanos));
            assert_eq!(started.instant(&clock), Some(at));
        }
    }

    #[test]
    fn an_unread_clock_stays_unread() {
        let clock = Clock::new();
        assert_eq!(Started::of(&clock, None), Started::UNTIMED);
        assert_eq!(Started::UNTIMED.nanos(), None);
        assert_eq!(Started::UNTIMED.instant(&clock), None);
    }

    #[test]
    fn an_instant_before_the_epoch_counts_as_the_epoch() {
        let clock = Clock::new();
        let epoch = clock.instant_at(0);
        if let Some(before) = epoch.checked_sub(Duration::from_secs(1)) {
            assert_eq!(
                Started::of(&clock, Some(before)).instant(&clock),
                Some(epoch)
            );
        }
    }

    #[test]
    fn the_far_future_saturates_to_untimed_without_panicking() {
        assert_eq!(Started::at_nanos(u64::MAX), Started::UNTIMED);
        assert_eq!(Started::at_nanos(u64::MAX - 2).nanos(), Some(u64::MAX - 2));
    }
}
