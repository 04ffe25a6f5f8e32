//! The pure core of the cache: when an entry stops being fresh, and how long after that it
//! may still be served when a fetch fails. Times and spans are ticks of the cache's clock,
//! its durations converted once when it is built ([`Spans`]); nothing here reads a clock.

use std::time::Duration;

use super::CacheConfig;

/// A time that never comes, and a span that never ends.
pub(crate) const NEVER: u64 = u64::MAX;

/// The cache's durations in ticks of its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spans {
    /// The time to live; [`NEVER`] for none.
    pub(crate) ttl: u64,
    /// The time to idle; [`NEVER`] for none.
    pub(crate) idle: u64,
    /// How long after it expired an entry may answer a failed call; 0 for never.
    pub(crate) stale: u64,
}

impl Spans {
    /// `config`'s durations, converted by `ticks_in` (which saturates at [`NEVER`]).
    pub(crate) fn new(config: &CacheConfig, ticks_in: impl Fn(Duration) -> u64) -> Self {
        Self {
            ttl: config.ttl.map_or(NEVER, &ticks_in),
            idle: config.time_to_idle.map_or(NEVER, &ticks_in),
            stale: config.stale_if_error.map_or(0, &ticks_in),
        }
    }

    /// Whether entries age at all: if not, a lookup has no use for the time.
    pub(crate) fn age(&self) -> bool {
        self.ttl != NEVER || self.idle != NEVER
    }
}

/// What a looked-up entry may be used for at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Serve it.
    Fresh,
    /// Expired `expired_for` ticks ago, within the stale-if-error window: fetch again, and
    /// serve it only if the fetch fails.
    Stale { expired_for: u64 },
    /// Useless: fetch again.
    Expired,
}

/// The freshness at `now` of an entry fresh until `expires` (its time to live) and, with a
/// time-to-idle, until `idle_until` (its last access plus the idle time), that may answer a
/// failed call for `stale` after that.
pub(crate) fn freshness(expires: u64, idle_until: u64, now: u64, stale: u64) -> Freshness {
    let until = expires.min(idle_until);
    if now < until {
        return Freshness::Fresh;
    }
    if now < until.saturating_add(stale) {
        return Freshness::Stale {
            expired_for: now - until,
        };
    }
    Freshness::Expired
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn fresh_until_the_first_of_ttl_and_idle_exactly() {
        assert_eq!(freshness(10 * S, NEVER, 10 * S - 1, 0), Freshness::Fresh);
        assert_eq!(freshness(10 * S, NEVER, 10 * S, 0), Freshness::Expired);
        assert_eq!(freshness(NEVER, 4 * S, 4 * S - 1, 0), Freshness::Fresh);
        assert_eq!(freshness(10 * S, 4 * S, 4 * S, 0), Freshness::Expired);
        assert_eq!(freshness(NEVER, NEVER, u64::MAX - 1, 0), Freshness::Fresh);
    }

    #[test]
    fn stale_within_the_bound_only() {
        let stale = 5 * S;
        assert_eq!(
            freshness(10 * S, NEVER, 12 * S, stale),
            Freshness::Stale { expired_for: 2 * S }
        );
        assert_eq!(
            freshness(10 * S, NEVER, 15 * S - 1, stale),
            Freshness::Stale {
                expired_for: 5 * S - 1
            }
        );
        assert_eq!(freshness(10 * S, NEVER, 15 * S, stale), Freshness::Expired);
        // A bound past the end of time saturates.
        assert_eq!(
            freshness(10 * S, NEVER, u64::MAX - 1, NEVER),
            Freshness::Stale {
                expired_for: u64::MAX - 1 - 10 * S
            }
        );
    }

    #[test]
    fn spans_are_converted_once_and_saturate() {
        let config = CacheConfig {
            ttl: Some(Duration::from_secs(3)),
            time_to_idle: None,
            stale_if_error: Some(Duration::MAX),
            ..CacheConfig::default()
        };
        let twice = |d: Duration| u64::try_from(d.as_nanos() * 2).unwrap_or(NEVER);
        let spans = Spans::new(&config, twice);
        assert_eq!(
            spans,
            Spans {
                ttl: 6 * S,
                idle: NEVER,
                stale: NEVER
            }
        );
        assert!(spans.age());
        let forever = CacheConfig {
            ttl: Some(Duration::MAX),
            stale_if_error: None,
            ..config
        };
        let spans = Spans::new(&forever, twice);
        assert_eq!(
            (spans.stale, spans.age()),
            (0, false),
            "never ages: no clock"
        );
    }
}
