//! The clock the hot paths read: the CPU's time-stamp counter when it can be trusted, tokio's
//! clock whenever tokio's time is paused.
//!
//! A rate-limit decision, a rejection by an open circuit breaker, a throttle's draw and a cache
//! hit each read the time once, and reading it was their largest single cost:
//! `tokio::time::Instant::now()` is a `clock_gettime` call (and, when tokio's `test-util`
//! feature is compiled in, also a check of the runtime's clock). The time-stamp counter, read
//! through [`quanta`] and scaled to nanoseconds, costs a fraction of that.
//!
//! Tests pause tokio's clock (`#[tokio::test(start_paused = true)]`, `tokio::time::pause`,
//! `advance`) and expect every decision to follow it. The counter cannot see a paused clock,
//! so each [`Clock`] picks its source once, when it is made: tokio's clock when the runtime
//! it is made in has its clock paused, the counter otherwise. Picking once keeps every read a
//! single predictable branch.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// Nanoseconds since a [`Clock`]'s epoch, read from the source it picked when it was made.
///
/// Every value it returns is on one timeline: [`nanos`](Self::nanos) counts from `epoch`, and
/// [`now`](Self::now) is `epoch` plus that count, so instants and nanosecond counts from the
/// same clock compare without drift between two sources.
#[derive(Clone)]
pub(crate) struct Clock {
    /// Time zero, as tokio's instant: states count nanoseconds from here.
    epoch: Instant,
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// tokio's clock: it was paused when this clock was made, so tests drive it.
    Tokio,
    /// The time-stamp counter (or, where the CPU has none that is invariant, the monotonic
    /// clock quanta falls back to), `start` being its raw reading at `epoch`.
    Counter { counter: quanta::Clock, start: u64 },
}

impl Clock {
    /// A clock starting now, on tokio's clock if the current runtime's clock is paused and on
    /// the time-stamp counter otherwise.
    pub(crate) fn new() -> Self {
        if tokio_clock_is_paused() {
            Self {
                epoch: Instant::now(),
                source: Source::Tokio,
            }
        } else {
            let counter = counter().clone();
            // Read both as close together as we can: `now()` reports `epoch` plus what the
            // counter measured since `start`.
            let start = counter.raw();
            let epoch = Instant::now();
            Self {
                epoch,
                source: Source::Counter { counter, start },
            }
        }
    }

    /// Nanoseconds since the epoch (saturating at `u64::MAX`, some 584 years).
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        match &self.source {
            Source::Counter { counter, start } => counter.delta_as_nanos(*start, counter.raw()),
            Source::Tokio => self.nanos_at(Instant::now()),
        }
    }

    /// Now, as tokio's instant on this clock's timeline.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match &self.source {
            Source::Counter { .. } => self.instant_at(self.nanos()),
            Source::Tokio => Instant::now(),
        }
    }

    /// `at` in nanoseconds since the epoch; 0 for instants before it.
    #[inline]
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the epoch (saturating far in the future).
    #[inline]
    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        crate::time::deadline(self.epoch, Duration::from_nanos(nanos))
    }

    /// Whether this clock reads tokio's (paused) clock rather than the counter.
    #[cfg(test)]
    pub(crate) fn follows_tokio(&self) -> bool {
        matches!(self.source, Source::Tokio)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match self.source {
            Source::Tokio => "tokio",
            Source::Counter { .. } => "counter",
        };
        f.debug_struct("Clock").field("source", &source).finish()
    }
}

/// The process's counter clock, made once: making one asks the CPU what it supports (a
/// `cpuid`, slow in a virtual machine) and calibrates the counter against the monotonic clock
/// the first time.
fn counter() -> &'static quanta::Clock {
    static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();
    COUNTER.get_or_init(quanta::Clock::new)
}

/// Whether tokio's clock, as seen from here, is paused.
///
/// tokio does not say so directly. A paused clock stands still until it is advanced, and
/// nothing advances it while this function runs (auto-advance needs the runtime to be idle,
/// and `advance` is awaited), so: read tokio's clock, let the system's monotonic clock move on,
/// read tokio's clock again. A running clock moved with the system's; a paused one did not.
/// Outside a runtime tokio's clock is the system's, so the answer is `false`. Costs well under
/// a microsecond, once per [`Clock`].
#[expect(
    clippy::disallowed_methods,
    reason = "the system's clock is the reference a paused tokio clock is told apart from"
)]
fn tokio_clock_is_paused() -> bool {
    let before = Instant::now();
    let system = std::time::Instant::now();
    while std::time::Instant::now() == system {
        std::hint::spin_loop();
    }
    Instant::now() == before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_the_counter_is_read() {
        let clock = Clock::new();
        assert!(!clock.follows_tokio());
        let first = clock.nanos();
        // Outside a runtime tokio's clock is the system's: the counter keeps pace with it.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let second = clock.nanos();
        assert!(second >= first + 1_000_000, "{first} then {second}");
    }

    #[tokio::test]
    async fn a_running_runtime_clock_is_read_through_the_counter() {
        assert!(!Clock::new().follows_tokio());
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_is_followed_exactly() {
        let clock = Clock::new();
        assert!(clock.follows_tokio());
        assert_eq!(clock.nanos(), 0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.nanos(), 1_500_000_000);
        assert_eq!(clock.now(), clock.instant_at(1_500_000_000));
        assert_eq!(clock.nanos_at(clock.now()), 1_500_000_000);
    }

    #[test]
    fn instants_and_nanoseconds_share_one_timeline() {
        let clock = Clock::new();
        let now = clock.now();
        let nanos = clock.nanos_at(now);
        assert_eq!(clock.instant_at(nanos), now);
        assert!(clock.nanos() >= nanos);
        // Far beyond any clock's range: saturates rather than panicking.
        assert!(clock.instant_at(u64::MAX) > now);
    }
}
