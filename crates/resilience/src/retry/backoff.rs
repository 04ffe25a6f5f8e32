//! [`Backoff`] strategies and [`Jitter`]: pure functions from an attempt number (and one random
//! number in `[0, 1)`) to the wait before the next attempt.
//!
//! The order of operations keeps every wait within the cap: the strategy's delay is capped at
//! `max_delay`, jitter is applied, and the result is capped again, so no delay ever exceeds
//! `max_delay` (aioresilience let jitter push it up to twice the cap, provide-foundation by a
//! quarter). Arithmetic is done in nanoseconds and saturates instead of overflowing, so
//! attempt 10 000 of an exponential backoff is simply `max_delay`.

use std::time::Duration;

/// How the wait between attempts grows. The delays below are for the wait after the `n`-th
/// failed attempt (1-based), before jitter and the `max_delay` cap.
///
/// With the `serde` feature it deserializes from a table with a `type` tag, durations written
/// like `"500ms"`:
///
/// ```toml
/// backoff = { type = "exponential", initial_delay = "500ms", multiplier = 2.5 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Backoff {
    /// Always `delay` (`CONSTANT` in aioresilience, `fixed` in provide-foundation).
    Constant {
        /// The wait after every failed attempt.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        delay: Duration,
    },
    /// `initial_delay + increment * (n - 1)` (aioresilience's `LINEAR`, whose multiplier was
    /// an increment in seconds).
    Linear {
        /// The wait after the first failed attempt.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        initial_delay: Duration,
        /// Added for every further failed attempt.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        increment: Duration,
    },
    /// `initial_delay * multiplier^(n - 1)`; `multiplier` must be at least 1.
    Exponential {
        /// The wait after the first failed attempt.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        initial_delay: Duration,
        /// The growth factor, at least 1.0.
        multiplier: f64,
    },
    /// `initial_delay * fib(n)` with fib = 1, 1, 2, 3, 5, 8, ... (provide-foundation's
    /// `fibonacci`).
    Fibonacci {
        /// The wait after the first and the second failed attempt.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        initial_delay: Duration,
    },
    /// AWS's "decorrelated jitter": a random wait between `initial_delay` and three times the
    /// previous wait. It is random by itself, so the [`Jitter`] setting is not applied on top.
    DecorrelatedJitter {
        /// The shortest wait, and the first "previous" one.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        initial_delay: Duration,
    },
}

impl Backoff {
    /// [`Backoff::Constant`].
    pub const fn constant(delay: Duration) -> Self {
        Self::Constant { delay }
    }

    /// [`Backoff::Linear`].
    pub const fn linear(initial_delay: Duration, increment: Duration) -> Self {
        Self::Linear {
            initial_delay,
            increment,
        }
    }

    /// [`Backoff::Exponential`].
    pub const fn exponential(initial_delay: Duration, multiplier: f64) -> Self {
        Self::Exponential {
            initial_delay,
            multiplier,
        }
    }

    /// [`Backoff::Fibonacci`].
    pub const fn fibonacci(initial_delay: Duration) -> Self {
        Self::Fibonacci { initial_delay }
    }

    /// [`Backoff::DecorrelatedJitter`].
    pub const fn decorrelated_jitter(initial_delay: Duration) -> Self {
        Self::DecorrelatedJitter { initial_delay }
    }

    /// The wait after the first failed attempt (for [`Backoff::DecorrelatedJitter`], the
    /// shortest wait).
    pub fn initial_delay(&self) -> Duration {
        match *self {
            Self::Constant { delay } => delay,
            Self::Linear { initial_delay, .. }
            | Self::Exponential { initial_delay, .. }
            | Self::Fibonacci { initial_delay }
            | Self::DecorrelatedJitter { initial_delay } => initial_delay,
        }
    }

    /// Whether the strategy draws its own randomness (and takes no [`Jitter`]).
    pub(crate) fn is_randomized(&self) -> bool {
        matches!(self, Self::DecorrelatedJitter { .. })
    }

    /// The strategy's delay after failed attempt `attempt` (1-based), before jitter and cap.
    /// `previous` is the last wait (decorrelated jitter only), `random` lies in `[0, 1)`.
    pub(crate) fn raw(&self, attempt: u32, previous: Duration, random: f64) -> Duration {
        let steps = attempt.saturating_sub(1);
        match *self {
            Self::Constant { delay } => delay,
            Self::Linear {
                initial_delay,
                increment,
            } => increment
                .checked_mul(steps)
                .and_then(|grown| initial_delay.checked_add(grown))
                .unwrap_or(Duration::MAX),
            Self::Exponential {
                initial_delay,
                multiplier,
            } => scale(
                initial_delay,
                multiplier.powi(i32::try_from(steps).unwrap_or(i32::MAX)),
            ),
            Self::Fibonacci { initial_delay } => {
                let nanos = initial_delay.as_nanos().saturating_mul(fibonacci(attempt));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            Self::DecorrelatedJitter { initial_delay } => {
                let low = initial_delay;
                let high = scale(previous.max(initial_delay), 3.0);
                low + scale(high.saturating_sub(low), random)
            }
        }
    }
}

/// Randomness added to each wait, so that clients that failed together do not retry together.
///
/// With the `serde` feature: `jitter = "none"`, `"full"`, `"equal"` or `{ proportional = 0.1 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Jitter {
    /// The wait is exactly the strategy's delay.
    None,
    /// A uniform wait in `[d * (1 - factor), d * (1 + factor)]`, `factor` in `[0, 1]`
    /// (aioresilience's `jitter`), then capped at `max_delay`.
    Proportional(f64),
    /// A uniform wait in `[0, d]` (AWS's "full jitter").
    Full,
    /// A uniform wait in `[d / 2, d]` (AWS's "equal jitter").
    Equal,
}

impl Jitter {
    /// `delay` with this jitter applied, given `random` in `[0, 1)`.
    pub(crate) fn apply(self, delay: Duration, random: f64) -> Duration {
        match self {
            Self::None => delay,
            Self::Proportional(factor) => scale(delay, 1.0 + factor * (2.0 * random - 1.0)),
            Self::Full => scale(delay, random),
            Self::Equal => scale(delay, 0.5 + 0.5 * random),
        }
    }

    /// Whether applying it needs a random number.
    pub(crate) fn is_random(self) -> bool {
        match self {
            Self::None => false,
            Self::Proportional(factor) => factor > 0.0,
            Self::Full | Self::Equal => true,
        }
    }
}

/// The wait after failed attempt `attempt` (1-based): the strategy's delay capped at
/// `max_delay`, jittered, and capped again (the cap is applied after jitter).
pub(crate) fn delay(
    backoff: &Backoff,
    jitter: Jitter,
    max_delay: Duration,
    attempt: u32,
    previous: Duration,
    random: f64,
) -> Duration {
    let base = backoff.raw(attempt, previous, random).min(max_delay);
    let jittered = if backoff.is_randomized() {
        base
    } else {
        jitter.apply(base, random)
    };
    jittered.min(max_delay)
}

/// Whether [`delay`] needs a random number for this strategy and jitter.
pub(crate) fn needs_random(backoff: &Backoff, jitter: Jitter) -> bool {
    backoff.is_randomized() || jitter.is_random()
}

/// `duration * factor`, rounded to the nanosecond, saturating at `Duration::MAX` (and at zero
/// for a negative or NaN factor). Nanoseconds keep round numbers exact
/// (0.1 s * 4 is 400 ms, not 400 ms and a rounding error).
fn scale(duration: Duration, factor: f64) -> Duration {
    let nanos = duration.as_nanos() as f64 * factor;
    if nanos.is_nan() || nanos <= 0.0 {
        Duration::ZERO
    } else if nanos >= u64::MAX as f64 {
        Duration::MAX
    } else {
        Duration::from_nanos(nanos.round() as u64)
    }
}

/// The `n`-th Fibonacci number, 1-based (1, 1, 2, 3, 5, ...), saturating.
fn fibonacci(n: u32) -> u128 {
    let (mut previous, mut current) = (0u128, 1u128);
    for _ in 1..n {
        let next = previous.saturating_add(current);
        if next == u128::MAX {
            return next;
        }
        (previous, current) = (current, next);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// The un-jittered delays after attempts 1..=n.
    fn schedule(backoff: Backoff, max_delay: Duration, n: u32) -> Vec<Duration> {
        (1..=n)
            .map(|attempt| delay(&backoff, Jitter::None, max_delay, attempt, ms(0), 0.0))
            .collect()
    }

    #[test]
    fn seed_pinned_numbers() {
        // aioresilience `test_exponential_backoff`, `test_linear_backoff`, `test_max_delay_cap`.
        let max = Duration::from_secs(60);
        assert_eq!(
            schedule(Backoff::exponential(ms(100), 2.0), max, 3),
            [ms(100), ms(200), ms(400)]
        );
        assert_eq!(
            schedule(Backoff::linear(ms(100), ms(100)), max, 3),
            [ms(100), ms(200), ms(300)]
        );
        assert_eq!(
            schedule(Backoff::exponential(ms(1000), 10.0), ms(2000), 3),
            [ms(1000), ms(2000), ms(2000)]
        );
        assert_eq!(schedule(Backoff::constant(ms(100)), max, 3), [ms(100); 3]);
    }

    #[test]
    fn fibonacci_follows_the_sequence() {
        assert_eq!(
            schedule(Backoff::fibonacci(ms(100)), Duration::from_secs(60), 7),
            [100, 100, 200, 300, 500, 800, 1300].map(ms)
        );
        assert_eq!(fibonacci(1), 1);
        assert_eq!(fibonacci(0), 1);
        assert_eq!(fibonacci(1000), u128::MAX);
    }

    #[test]
    fn huge_attempts_saturate_at_the_cap() {
        let cap = Duration::from_secs(30);
        for backoff in [
            Backoff::exponential(ms(100), 2.0),
            Backoff::linear(Duration::MAX, Duration::MAX),
            Backoff::fibonacci(ms(100)),
        ] {
            assert_eq!(
                delay(&backoff, Jitter::None, cap, u32::MAX, ms(0), 0.5),
                cap
            );
        }
    }

    #[test]
    fn jitter_bounds_at_the_extremes() {
        let d = ms(1000);
        assert_eq!(Jitter::Proportional(0.5).apply(d, 0.0), ms(500));
        assert_eq!(Jitter::Proportional(0.5).apply(d, 0.5), ms(1000));
        assert_eq!(Jitter::Full.apply(d, 0.0), ms(0));
        assert_eq!(Jitter::Full.apply(d, 0.25), ms(250));
        assert_eq!(Jitter::Equal.apply(d, 0.0), ms(500));
        assert_eq!(Jitter::Equal.apply(d, 0.5), ms(750));
        assert_eq!(Jitter::None.apply(d, 0.9), d);
        assert!(!Jitter::Proportional(0.0).is_random());
    }

    #[test]
    fn seed_bug_b7_jitter_never_exceeds_the_cap() {
        // aioresilience gave up to 1.999 s with max_delay 1 s and jitter 1.0.
        let backoff = Backoff::constant(ms(1000));
        let top = delay(
            &backoff,
            Jitter::Proportional(1.0),
            ms(1000),
            1,
            ms(0),
            0.999_999,
        );
        assert_eq!(top, ms(1000));
    }

    #[test]
    fn decorrelated_jitter_starts_from_the_initial_delay() {
        let backoff = Backoff::decorrelated_jitter(ms(100));
        let cap = Duration::from_secs(60);
        // Between initial and 3 * max(previous, initial).
        assert_eq!(delay(&backoff, Jitter::Full, cap, 1, ms(0), 0.0), ms(100));
        assert_eq!(delay(&backoff, Jitter::Full, cap, 1, ms(0), 0.5), ms(200));
        assert_eq!(
            delay(&backoff, Jitter::None, cap, 2, ms(1000), 0.5),
            ms(1550)
        );
        assert!(needs_random(&backoff, Jitter::None));
    }

    fn any_backoff() -> impl Strategy<Value = Backoff> {
        let millis = 0u64..5_000;
        prop_oneof![
            millis.clone().prop_map(|d| Backoff::constant(ms(d))),
            (millis.clone(), millis.clone()).prop_map(|(a, b)| Backoff::linear(ms(a), ms(b))),
            (millis.clone(), 1.0f64..10.0).prop_map(|(a, m)| Backoff::exponential(ms(a), m)),
            millis.clone().prop_map(|d| Backoff::fibonacci(ms(d))),
            millis.prop_map(|d| Backoff::decorrelated_jitter(ms(d))),
        ]
    }

    fn any_jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::None),
            (0.0f64..=1.0).prop_map(Jitter::Proportional),
            Just(Jitter::Full),
            Just(Jitter::Equal),
        ]
    }

    proptest! {
        /// Many samples from one seeded generator, as the handle draws them: never above
        /// `max_delay`, whatever the strategy, jitter and attempt.
        #[test]
        fn never_exceeds_max_delay(
            backoff in any_backoff(),
            jitter in any_jitter(),
            cap_ms in 0u64..10_000,
            seed in any::<u64>(),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let cap = ms(cap_ms);
            let mut previous = backoff.initial_delay();
            for attempt in 1..=64 {
                let wait = delay(&backoff, jitter, cap, attempt, previous, rng.f64());
                prop_assert!(wait <= cap, "{wait:?} > {cap:?} at attempt {attempt}");
                previous = wait;
            }
        }

        #[test]
        fn full_and_equal_jitter_stay_in_their_ranges(d_ms in 0u64..100_000, random in 0.0f64..1.0) {
            let d = ms(d_ms);
            prop_assert!(Jitter::Full.apply(d, random) <= d);
            let equal = Jitter::Equal.apply(d, random);
            prop_assert!(equal >= d / 2 && equal <= d);
        }

        #[test]
        fn proportional_jitter_stays_within_its_factor(
            d_ms in 0u64..100_000,
            factor in 0.0f64..=1.0,
            random in 0.0f64..1.0,
        ) {
            let d = ms(d_ms);
            let jittered = Jitter::Proportional(factor).apply(d, random);
            prop_assert!(jittered >= d.mul_f64(1.0 - factor).saturating_sub(Duration::from_nanos(1)));
            prop_assert!(jittered <= d.mul_f64(1.0 + factor) + Duration::from_nanos(1));
        }

        #[test]
        fn decorrelated_jitter_stays_between_initial_and_three_times_previous(
            initial_ms in 0u64..1_000,
            previous_ms in 0u64..10_000,
            random in 0.0f64..1.0,
        ) {
            let initial = ms(initial_ms);
            let previous = ms(previous_ms);
            let wait = Backoff::decorrelated_jitter(initial).raw(2, previous, random);
            prop_assert!(wait >= initial);
            prop_assert!(wait <= previous.max(initial) * 3);
        }
    }
}
