//! The pure core of the cache: when an entry stops being fresh, and how long after that it
//! may still be served when a fetch fails. Times are nanoseconds since the cache's epoch;
//! nothing here reads a clock.

use std::time::Duration;

/// A time that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// What a looked-up entry may be used for at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Serve it.
    Fresh,
    /// Expired `expired_for` ago, within the stale-if-error window: fetch again, and serve
    /// it only if the fetch fails.
    Stale { expired_for: Duration },
    /// Useless: fetch again.
    Expired,
}

/// `from + duration` in nanoseconds, or [`NEVER`] for no duration or past the range.
pub(crate) fn after(from: u64, duration: Option<Duration>) -> u64 {
    match duration {
        Some(duration) => from.saturating_add(nanos(duration)),
        None => NEVER,
    }
}

/// The freshness at `now` of an entry fresh until `expires` (its time to live) and, with a
/// time-to-idle, until `idle_until` (its last access plus the idle time).
pub(crate) fn freshness(
    expires: u64,
    idle_until: u64,
    now: u64,
    stale_if_error: Option<Duration>,
) -> Freshness {
    let until = expires.min(idle_until);
    if now < until {
        return Freshness::Fresh;
    }
    if stale_if_error.is_some_and(|stale| now < after(until, Some(stale))) {
        return Freshness::Stale {
            expired_for: Duration::from_nanos(now - until),
        };
    }
    Freshness::Expired
}

/// A duration in nanoseconds, saturating.
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(NEVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn fresh_until_the_first_of_ttl_and_idle_exactly() {
        assert_eq!(freshness(10 * S, NEVER, 10 * S - 1, None), Freshness::Fresh);
        assert_eq!(freshness(10 * S, NEVER, 10 * S, None), Freshness::Expired);
        assert_eq!(freshness(NEVER, 4 * S, 4 * S - 1, None), Freshness::Fresh);
        assert_eq!(freshness(10 * S, 4 * S, 4 * S, None), Freshness::Expired);
        assert_eq!(
            freshness(NEVER, NEVER, u64::MAX - 1, None),
            Freshness::Fresh
        );
    }

    #[test]
    fn stale_within_the_bound_only() {
        let stale = Some(Duration::from_secs(5));
        assert_eq!(
            freshness(10 * S, NEVER, 12 * S, stale),
            Freshness::Stale {
                expired_for: Duration::from_secs(2)
            }
        );
        assert_eq!(
            freshness(10 * S, NEVER, 15 * S - 1, stale),
            Freshness::Stale {
                expired_for: Duration::from_nanos(5 * S - 1)
            }
        );
        assert_eq!(freshness(10 * S, NEVER, 15 * S, stale), Freshness::Expired);
    }

    #[test]
    fn deadlines_saturate() {
        assert_eq!(after(5, None), NEVER);
        assert_eq!(after(NEVER - 1, Some(Duration::from_secs(1))), NEVER);
        assert_eq!(after(5, Some(Duration::from_nanos(7))), 12);
    }
}
