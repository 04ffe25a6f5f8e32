//! The clock the hot paths read: the CPU's time-stamp counter when it can be trusted, tokio's
//! clock whenever tokio's time is paused.
//!
//! A rate-limit decision, a rejection by an open circuit breaker, a throttle's draw and a cache
//! hit each read the time once, and reading it was their largest single cost:
//! `tokio::time::Instant::now()` is a `clock_gettime` call (and, when tokio's `test-util`
//! feature is compiled in, also a check of the runtime's clock). The time-stamp counter, read
//! through [`quanta`], costs a fraction of that.
//!
//! Tests pause tokio's clock (`#[tokio::test(start_paused = true)]`, `tokio::time::pause`,
//! `advance`) and expect every decision to follow it. The counter cannot see a paused clock,
//! so each [`Clock`] picks its source once, when it is made: tokio's clock when the runtime
//! it is made in has its clock paused, the counter otherwise. Picking once keeps every read a
//! single predictable branch.
//!
//! A path that only compares times (is this entry still fresh? which bucket is now?) reads
//! [`Clock::ticks`]: the counter's own ticks since the epoch, or nanoseconds under a paused
//! clock, with no scaling to nanoseconds. It converts its durations to ticks once, when it is
//! built, with [`Clock::ticks_in`]. The conversions are those of [`Scale`]: exact to within a
//! nanosecond's worth of ticks.

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
    /// Time zero, as tokio's instant: states count nanoseconds (or ticks) from here.
    epoch: Instant,
    source: Source,
    /// How long a tick of the source is.
    scale: Scale,
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
                scale: Scale::NANOS,
            }
        } else {
            let counter = counter().clone();
            let scale = Scale::of(&counter);
            // Read both as close together as we can: `now()` reports `epoch` plus what the
            // counter measured since `start`.
            let start = counter.raw();
            let epoch = Instant::now();
            Self {
                epoch,
                source: Source::Counter { counter, start },
                scale,
            }
        }
    }

    /// Ticks since the epoch: the counter's own, or nanoseconds when tokio's clock is
    /// followed. Only comparable with ticks of the same clock, and with durations converted by
    /// [`ticks_in`](Self::ticks_in); one counter read and a subtraction.
    #[inline]
    pub(crate) fn ticks(&self) -> u64 {
        match &self.source {
            // A core whose counter lags the one that made the clock reads 0, not a wrap.
            Source::Counter { counter, start } => counter.raw().saturating_sub(*start),
            Source::Tokio => self.nanos_at(Instant::now()),
        }
    }

    /// `duration` in this clock's ticks: the fewest ticks that read as `duration` or longer
    /// (saturating at `u64::MAX`).
    pub(crate) fn ticks_in(&self, duration: Duration) -> u64 {
        self.scale.ticks(duration.as_nanos())
    }

    /// `ticks` of this clock as a duration (rounded down to the nanosecond).
    #[cfg(any(test, feature = "cache"))]
    pub(crate) fn duration_of(&self, ticks: u64) -> Duration {
        Duration::from_nanos(self.scale.nanos(ticks))
    }

    /// Nanoseconds since the epoch (saturating at `u64::MAX`, some 584 years).
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        self.scale.nanos(self.ticks())
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

/// The length of a clock's tick, as nanoseconds per `2^SCALE_BITS` ticks: what [`quanta`]
/// calibrated for its counter, without loss. quanta scales by a factor and a right shift by
/// the bit length of the ticks it counted while calibrating (at most 200 ms: under 40 bits
/// for any counter slower than 5 THz), so `nanos` rounds exactly as quanta does.
///
/// The bounds, for any scale: `nanos(ticks(n))` is `n` or more, by less than one tick's worth
/// of nanoseconds; `ticks(nanos(t))` is `t` or less, by less than one nanosecond's worth of
/// ticks. Both saturate at `u64::MAX` rather than wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scale {
    /// Nanoseconds in `2^SCALE_BITS` ticks: at least 1.
    nanos_per_ticks: u64,
}

/// The fixed point of [`Scale`]: 40 bits hold quanta's scale exactly (see there) and leave
/// room for ticks as long as 16 ms.
const SCALE_BITS: u32 = 40;

impl Scale {
    /// A tick of one nanosecond: tokio's clock.
    const NANOS: Self = Self {
        nanos_per_ticks: 1 << SCALE_BITS,
    };

    /// The scale of `counter`'s raw readings.
    fn of(counter: &quanta::Clock) -> Self {
        Self {
            nanos_per_ticks: counter.delta_as_nanos(0, 1 << SCALE_BITS).max(1),
        }
    }

    /// `ticks` in nanoseconds, rounded down.
    #[inline]
    fn nanos(self, ticks: u64) -> u64 {
        let nanos = (u128::from(ticks) * u128::from(self.nanos_per_ticks)) >> SCALE_BITS;
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// The fewest ticks that last `nanos` or longer.
    fn ticks(self, nanos: u128) -> u64 {
        // Some 584 years: never, on any clock. Below, the shifted count fits in 104 bits.
        let Ok(nanos) = u64::try_from(nanos) else {
            return u64::MAX;
        };
        let ticks = (u128::from(nanos) << SCALE_BITS).div_ceil(u128::from(self.nanos_per_ticks));
        u64::try_from(ticks).unwrap_or(u64::MAX)
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
    use proptest::prelude::*;

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

    #[tokio::test(start_paused = true)]
    async fn under_a_paused_clock_a_tick_is_a_nanosecond() {
        let clock = Clock::new();
        let ttl = clock.ticks_in(Duration::from_millis(250));
        assert_eq!(ttl, 250_000_000);
        tokio::time::advance(Duration::from_millis(250) - Duration::from_nanos(1)).await;
        assert!(clock.ticks() < ttl, "fresh one nanosecond before");
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert_eq!(clock.ticks(), ttl, "expired exactly at the boundary");
        assert_eq!(clock.duration_of(clock.ticks()), Duration::from_millis(250));
    }

    #[test]
    fn the_counter_ticks_at_its_calibrated_rate() {
        let clock = Clock::new();
        let ticks = clock.ticks_in(Duration::from_millis(2));
        let start = clock.ticks();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        assert!(clock.ticks().saturating_sub(start) >= ticks * 9 / 10);
    }

    #[test]
    fn the_counter_scales_exactly_as_quanta_does() {
        let counter = counter();
        let scale = Scale::of(counter);
        for ticks in [
            0,
            1,
            7,
            1_000,
            3_000_000_000,
            1 << 40,
            1 << 50,
            123_456_789_012_345,
        ] {
            assert_eq!(
                scale.nanos(ticks),
                counter.delta_as_nanos(0, ticks),
                "{ticks}"
            );
        }
    }

    #[test]
    fn conversions_saturate() {
        for scale in [
            Scale::NANOS,
            Scale { nanos_per_ticks: 1 },
            Scale {
                nanos_per_ticks: u64::MAX,
            },
        ] {
            assert_eq!(scale.ticks(Duration::MAX.as_nanos()), u64::MAX);
            assert_eq!(scale.ticks(u128::from(u64::MAX) + 1), u64::MAX);
            assert_eq!(scale.ticks(0), 0);
            assert_eq!(scale.nanos(0), 0);
        }
        // A tick of 2^-40 ns: a nanosecond is more ticks than a u64 holds only near the top.
        assert_eq!(
            Scale { nanos_per_ticks: 1 }.ticks(u128::from(u64::MAX)),
            u64::MAX
        );
        // A tick of 2^24 ns: u64::MAX ticks are more nanoseconds than a u64 holds.
        assert_eq!(
            Scale {
                nanos_per_ticks: u64::MAX
            }
            .nanos(u64::MAX),
            u64::MAX
        );
        assert_eq!(Scale::NANOS.nanos(u64::MAX), u64::MAX);
        assert_eq!(Scale::NANOS.ticks(u128::from(u64::MAX)), u64::MAX);
    }

    /// Scales from a 2^-40 ns tick to a 2^24 ns one, and the usual ones: a 3 GHz counter,
    /// a 24 MHz one, nanoseconds.
    fn scales() -> impl Strategy<Value = Scale> {
        prop_oneof![
            (1_u64..=u64::MAX),
            Just((1 << SCALE_BITS) / 3),
            Just((1 << SCALE_BITS) * 125 / 3),
            Just(1 << SCALE_BITS),
        ]
        .prop_map(|nanos_per_ticks| Scale { nanos_per_ticks })
    }

    proptest! {
        #[test]
        fn nanoseconds_round_trip_within_a_tick(scale in scales(), nanos in any::<u64>()) {
            let ticks = scale.ticks(u128::from(nanos));
            prop_assume!(ticks < u64::MAX);
            let back = scale.nanos(ticks);
            // The ticks last at least `nanos`, and one tick less would not.
            prop_assert!(back >= nanos);
            prop_assert!(u128::from(back - nanos) << SCALE_BITS < u128::from(scale.nanos_per_ticks).max(1 << SCALE_BITS));
            if ticks > 0 {
                prop_assert!(scale.nanos(ticks - 1) < nanos);
            }
        }

        #[test]
        fn ticks_round_trip_within_a_nanosecond(scale in scales(), ticks in any::<u64>()) {
            let nanos = scale.nanos(ticks);
            prop_assume!(nanos < u64::MAX);
            let back = scale.ticks(u128::from(nanos));
            prop_assert!(back <= ticks);
            // Short by less than a nanosecond's worth of ticks.
            prop_assert!(u128::from(ticks - back) * u128::from(scale.nanos_per_ticks) < 1 << SCALE_BITS);
        }
    }
}
