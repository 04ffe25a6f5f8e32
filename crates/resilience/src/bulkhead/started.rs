//! [`Started`]: when a slot was taken, as its permit keeps it, in one word.

use std::num::NonZeroU64;
use std::time::Duration;

use tokio::time::Instant;

/// When a permit's slot was taken, if the clock was read for it (only a listener of
/// `bulkhead_released` needs it): nanoseconds since the bulkhead's epoch, plus one, or
/// [`UNTIMED`](Self::UNTIMED).
///
/// One word where an `Option<Instant>` takes two, so that the permit is two words, the
/// handle and this, and moves in registers (see [`Ticket`](crate::ticket::Ticket)). Zero is
/// never used, so that an `Option` of a permit (where the tower layer keeps the permit for
/// the next call) is two words too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Started(NonZeroU64);

impl Started {
    /// The clock was not read.
    const UNTIMED: Self = Self(NonZeroU64::MAX);

    /// `at` on the timeline of `epoch`. An instant before the epoch counts as the epoch, and
    /// one 584 years after it as not read.
    #[inline]
    pub(super) fn new(epoch: Instant, at: Option<Instant>) -> Self {
        match at {
            None => Self::UNTIMED,
            Some(at) => {
                let nanos = at.saturating_duration_since(epoch).as_nanos();
                let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
                Self(NonZeroU64::MIN.saturating_add(nanos))
            }
        }
    }

    /// The instant it stands for, on the timeline of `epoch`, if the clock was read.
    pub(super) fn at(self, epoch: Instant) -> Option<Instant> {
        let nanos = self.0.get() - 1;
        (self != Self::UNTIMED).then(|| crate::time::deadline(epoch, Duration::from_nanos(nanos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_instant_to_the_nanosecond() {
        let epoch = Instant::now();
        for nanos in [0, 1, 999_999_999, 86_400_000_000_000] {
            let at = epoch + Duration::from_nanos(nanos);
            assert_eq!(Started::new(epoch, Some(at)).at(epoch), Some(at));
        }
    }

    #[test]
    fn an_unread_clock_stays_unread() {
        let epoch = Instant::now();
        assert_eq!(Started::new(epoch, None).at(epoch), None);
    }

    #[test]
    fn an_instant_before_the_epoch_counts_as_the_epoch() {
        let epoch = Instant::now() + Duration::from_secs(1);
        let before = Started::new(epoch, Some(epoch - Duration::from_secs(1)));
        assert_eq!(before.at(epoch), Some(epoch));
    }

    #[test]
    fn a_permit_is_two_words() {
        let two_words = 2 * std::mem::size_of::<usize>();
        assert_eq!(std::mem::size_of::<super::super::OwnedPermit>(), two_words);
        assert_eq!(std::mem::size_of::<super::super::Permit<'_>>(), two_words);
        assert_eq!(
            std::mem::size_of::<Option<super::super::OwnedPermit>>(),
            two_words
        );
    }
}
