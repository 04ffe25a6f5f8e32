//! [`Rate`]: how many requests per period, parsed from `"10/second"` or built in code.
//!
//! A rate is `count` requests per `period`, of which up to `burst` may come at once (by
//! default `burst = count`, so an idle client may spend a whole period's allowance in one go,
//! as aioresilience's limiter allows). The sustained rate is always `count / period`.
//!
//! ```
//! use resilience::Rate;
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), resilience::ConfigError> {
//! let parsed: Rate = " 100/minute ".parse()?;
//! assert_eq!(parsed, Rate::per_minute(100));
//! assert_eq!(parsed.to_string(), "100/minute");
//! assert_eq!("10/s".parse::<Rate>()?, Rate::per_second(10));
//!
//! let bursty = Rate::per_second(10).with_burst(50);
//! assert_eq!(bursty.burst(), 50);
//! assert_eq!(Rate::new(3, Duration::from_secs(1))?.emission_interval().as_nanos(), 333_333_334);
//! # Ok(())
//! # }
//! ```
//!
//! # The rate-string grammar
//!
//! `<count>/<unit>`, with whitespace allowed around either part. `count` is a whole number from
//! 1 to 4,294,967,295. `unit` is one of, case-sensitive:
//!
//! | period | spellings |
//! |---|---|
//! | 1 second | `second`, `seconds`, `sec`, `secs`, `s` |
//! | 1 minute | `minute`, `minutes`, `min`, `mins`, `m` |
//! | 1 hour | `hour`, `hours`, `hr`, `hrs`, `h` |
//! | 1 day | `day`, `days`, `d` |
//!
//! Anything else is a [`ConfigError`] with field `rate` and a [`RateProblem`] saying what was
//! wrong, at construction time. A typo never means "no limit", and `"0/second"` never means "reject
//! everything".

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::time::Duration;

use crate::config::{ConfigError, ConfigProblem};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A rate limit: `count` requests per `period`, up to `burst` at once.
///
/// Always valid: every constructor rejects a zero count, a zero period and a zero burst.
/// Equality and hashing consider `count`, `period` and `burst`, so `"60/minute"` and
/// `"1/second"` are different rates (the first allows a burst of 60, the second of 1).
///
/// Arithmetic is in whole nanoseconds: the time between two requests at the sustained rate
/// (the [emission interval](Self::emission_interval)) is `period / count` rounded *up*, so a
/// limiter never allows more than the rate says.
#[derive(Clone, Copy)]
pub struct Rate {
    count: u32,
    burst: u32,
    period: Duration,
    /// `period / count` in nanoseconds, rounded up, at least 1.
    interval: u64,
    /// The window that holds `burst` requests at the sustained rate: `period * burst / count`
    /// in nanoseconds, rounded up, saturating. Equal to `period` when `burst == count`.
    window: u64,
}

/// What was wrong with a rate, inside [`ConfigProblem::InvalidRate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateProblem {
    /// The string was empty or only whitespace.
    Empty,
    /// The string was not `<count>/<unit>` (no slash, several slashes, or an empty part).
    Format,
    /// The count was not a whole number (`"ten/second"`, `"1e3/second"`).
    InvalidCount,
    /// The count was zero.
    ZeroCount,
    /// The count was negative.
    NegativeCount,
    /// The count had a fractional part (`"1.5/hour"`): use a whole count over a longer period.
    FractionalCount,
    /// The count was above `u32::MAX`.
    CountTooLarge,
    /// The unit was not one of the accepted spellings.
    UnknownUnit(String),
    /// The period was zero.
    ZeroPeriod,
    /// The period does not fit in 64 bits of nanoseconds (about 584 years).
    PeriodTooLong,
    /// The burst was zero.
    ZeroBurst,
    /// No rate was given where one is required.
    Missing,
}

impl fmt::Display for RateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty; expected a rate such as \"10/second\""),
            Self::Format => {
                f.write_str("is not of the form \"<count>/<unit>\", such as \"10/second\"")
            }
            Self::InvalidCount => f.write_str("has a count that is not a whole number"),
            Self::ZeroCount => f.write_str("must allow at least 1 request per period"),
            Self::NegativeCount => f.write_str("has a negative count"),
            Self::FractionalCount => {
                f.write_str("has a fractional count; use a whole count over a longer period")
            }
            Self::CountTooLarge => write!(f, "has a count above {}", u32::MAX),
            Self::UnknownUnit(unit) => write!(
                f,
                "has an unknown unit {unit:?}; expected second, minute, hour or day \
                 (or s, sec, min, m, h, hr, d, and plurals)"
            ),
            Self::ZeroPeriod => f.write_str("has a zero period"),
            Self::PeriodTooLong => f.write_str("has a period longer than 584 years"),
            Self::ZeroBurst => f.write_str("must allow a burst of at least 1"),
            Self::Missing => f.write_str("is missing; give one such as \"10/second\""),
        }
    }
}

fn invalid(field: &'static str, problem: RateProblem) -> ConfigError {
    ConfigError::new(field, ConfigProblem::InvalidRate(problem))
}

impl Rate {
    /// `count` requests per second, all of them allowed at once.
    ///
    /// # Panics
    ///
    /// If `count` is zero (in a `const`, that is a compile-time error). For counts that are
    /// not literals, use [`Rate::new`] or parse a string; both return a typed error instead.
    pub const fn per_second(count: u32) -> Self {
        Self::per(count, 1)
    }

    /// `count` requests per minute, all of them allowed at once.
    ///
    /// # Panics
    ///
    /// If `count` is zero; see [`per_second`](Self::per_second).
    pub const fn per_minute(count: u32) -> Self {
        Self::per(count, 60)
    }

    /// `count` requests per hour, all of them allowed at once.
    ///
    /// # Panics
    ///
    /// If `count` is zero; see [`per_second`](Self::per_second).
    pub const fn per_hour(count: u32) -> Self {
        Self::per(count, 3_600)
    }

    /// `count` requests per day, all of them allowed at once.
    ///
    /// # Panics
    ///
    /// If `count` is zero; see [`per_second`](Self::per_second).
    pub const fn per_day(count: u32) -> Self {
        Self::per(count, 86_400)
    }

    const fn per(count: u32, seconds: u64) -> Self {
        assert!(count > 0, "a rate needs a count of at least 1");
        Self::from_parts(
            count,
            Duration::from_secs(seconds),
            seconds * NANOS_PER_SECOND,
        )
    }

    /// `count` requests per `period`, all of them allowed at once.
    ///
    /// Fails, naming the field `rate`, when `count` or `period` is zero or `period` exceeds
    /// about 584 years.
    pub fn new(count: u32, period: Duration) -> Result<Self, ConfigError> {
        if count == 0 {
            return Err(invalid("rate", RateProblem::ZeroCount));
        }
        if period.is_zero() {
            return Err(invalid("rate", RateProblem::ZeroPeriod));
        }
        let nanos = u64::try_from(period.as_nanos())
            .map_err(|_| invalid("rate", RateProblem::PeriodTooLong))?;
        Ok(Self::from_parts(count, period, nanos))
    }

    const fn from_parts(count: u32, period: Duration, period_nanos: u64) -> Self {
        let interval = period_nanos.div_ceil(count as u64);
        Self {
            count,
            burst: count,
            period,
            interval: if interval == 0 { 1 } else { interval },
            window: period_nanos,
        }
    }

    /// The same rate allowing up to `burst` requests at once (the bucket size of a token
    /// bucket, the tolerance of GCRA). The sustained rate does not change.
    ///
    /// # Panics
    ///
    /// If `burst` is zero; [`try_with_burst`](Self::try_with_burst) returns an error instead.
    pub const fn with_burst(self, burst: u32) -> Self {
        assert!(burst > 0, "a rate needs a burst of at least 1");
        let period = self.period.as_nanos();
        let window = (period * burst as u128).div_ceil(self.count as u128);
        Self {
            burst,
            window: if window > u64::MAX as u128 {
                u64::MAX
            } else {
                window as u64
            },
            ..self
        }
    }

    /// What a limiter builder was given: its rate (required: `None` fails with field `rate`)
    /// with its burst applied when one was set (zero fails with field `burst`). For builders
    /// of limiters in other crates, so they report bad input as this crate's do.
    pub fn from_builder(rate: Option<Self>, burst: Option<u32>) -> Result<Self, ConfigError> {
        let rate = rate.ok_or_else(|| invalid("rate", RateProblem::Missing))?;
        match burst {
            Some(burst) => rate.try_with_burst(burst),
            None => Ok(rate),
        }
    }

    /// Like [`with_burst`](Self::with_burst), failing with field `burst` when it is zero.
    pub fn try_with_burst(self, burst: u32) -> Result<Self, ConfigError> {
        if burst == 0 {
            return Err(invalid("burst", RateProblem::ZeroBurst));
        }
        Ok(self.with_burst(burst))
    }

    /// Requests per period.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The period `count` applies to.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once after a long enough pause (`count` unless set).
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one request costs at the sustained rate: `period / count`, rounded up to the
    /// nanosecond.
    pub const fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The window that holds `burst` requests at the sustained rate: `period * burst / count`,
    /// rounded up to the nanosecond, so `period` itself when the burst is the count. The
    /// window algorithms (sliding log and counter) count over it.
    pub const fn window(&self) -> Duration {
        Duration::from_nanos(self.window)
    }

    /// The emission interval in nanoseconds.
    pub(crate) const fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// The window holding `burst` requests, in nanoseconds (`period` when `burst == count`).
    pub(crate) const fn window_nanos(&self) -> u64 {
        self.window
    }

    /// `burst * interval` in nanoseconds, saturating: how far ahead of now GCRA's theoretical
    /// arrival time may run.
    pub(crate) const fn width_nanos(&self) -> u64 {
        self.interval.saturating_mul(self.burst as u64)
    }

    /// Rebuilds a rate from the parts stored by a handle (see `rate_limit::store`).
    pub(crate) const fn from_stored(
        count: u32,
        burst: u32,
        period: Duration,
        interval: u64,
        window: u64,
    ) -> Self {
        Self {
            count,
            burst,
            period,
            interval,
            window,
        }
    }
}

impl PartialEq for Rate {
    fn eq(&self, other: &Self) -> bool {
        (self.count, self.period, self.burst) == (other.count, other.period, other.burst)
    }
}

impl Eq for Rate {}

impl Hash for Rate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.count, self.period, self.burst).hash(state);
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rate")
            .field("count", &self.count)
            .field("period", &self.period)
            .field("burst", &self.burst)
            .finish()
    }
}

impl fmt::Display for Rate {
    /// `"10/second"`; a period that is not one unit shows as a duration (`"7/90s"`), and a
    /// burst other than the count is appended (`"10/second (burst 50)"`). Only the first form
    /// is also accepted by [`FromStr`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match (self.period.as_secs(), self.period.subsec_nanos()) {
            (1, 0) => Some("second"),
            (60, 0) => Some("minute"),
            (3_600, 0) => Some("hour"),
            (86_400, 0) => Some("day"),
            _ => None,
        };
        match unit {
            Some(unit) => write!(f, "{}/{unit}", self.count)?,
            None => write!(f, "{}/{:?}", self.count, self.period)?,
        }
        if self.burst != self.count {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

impl FromStr for Rate {
    type Err = ConfigError;

    /// Parses `"<count>/<unit>"`; see the [module docs](self) for the grammar.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text).map_err(|problem| invalid("rate", problem))
    }
}

fn parse(text: &str) -> Result<Rate, RateProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(RateProblem::Empty);
    }
    let (count, unit) = text.split_once('/').ok_or(RateProblem::Format)?;
    let (count, unit) = (count.trim(), unit.trim());
    if count.is_empty() || unit.is_empty() || unit.contains('/') {
        return Err(RateProblem::Format);
    }
    let count = parse_count(count)?;
    let seconds = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        other => return Err(RateProblem::UnknownUnit(other.to_owned())),
    };
    Ok(Rate::per(count, seconds))
}

fn parse_count(text: &str) -> Result<u32, RateProblem> {
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if is_digits(digits) {
        let zero = digits.bytes().all(|b| b == b'0');
        return if zero {
            Err(RateProblem::ZeroCount)
        } else if negative {
            Err(RateProblem::NegativeCount)
        } else {
            digits
                .parse::<u32>()
                .map_err(|_| RateProblem::CountTooLarge)
        };
    }
    let fractional = digits.split_once('.').is_some_and(|(whole, fraction)| {
        (whole.is_empty() || is_digits(whole)) && is_digits(fraction)
    });
    match (fractional, negative) {
        (true, true) => Err(RateProblem::NegativeCount),
        (true, false) => Err(RateProblem::FractionalCount),
        (false, _) => Err(RateProblem::InvalidCount),
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Rate {
    /// From the rate string, for example `rate = "100/minute"`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Rate {
    /// As its [`Display`](fmt::Display) form, `"100/minute"`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> RateProblem {
        let error = text.parse::<Rate>().unwrap_err();
        assert_eq!(error.field(), "rate");
        match error.problem() {
            ConfigProblem::InvalidRate(problem) => problem.clone(),
            other => panic!("{text:?}: unexpected problem {other:?}"),
        }
    }

    #[test]
    fn every_unit_spelling_parses() {
        let units: [(&[&str], u64); 4] = [
            (&["s", "sec", "secs", "second", "seconds"], 1),
            (&["m", "min", "mins", "minute", "minutes"], 60),
            (&["h", "hr", "hrs", "hour", "hours"], 3_600),
            (&["d", "day", "days"], 86_400),
        ];
        for (spellings, seconds) in units {
            for unit in spellings {
                let rate: Rate = format!("7/{unit}").parse().unwrap();
                assert_eq!(rate.count(), 7, "{unit}");
                assert_eq!(rate.period(), Duration::from_secs(seconds), "{unit}");
                assert_eq!(rate.burst(), 7);
            }
        }
    }

    #[test]
    fn the_issues_examples_and_whitespace() {
        assert_eq!("10/second".parse::<Rate>().unwrap(), Rate::per_second(10));
        assert_eq!("100/minute".parse::<Rate>().unwrap(), Rate::per_minute(100));
        assert_eq!("1000/hour".parse::<Rate>().unwrap(), Rate::per_hour(1000));
        assert_eq!("10000/day".parse::<Rate>().unwrap(), Rate::per_day(10_000));
        assert_eq!("10/s".parse::<Rate>().unwrap(), Rate::per_second(10));
        assert_eq!(
            " \t10 / second\n".parse::<Rate>().unwrap(),
            Rate::per_second(10)
        );
        assert_eq!("+5/min".parse::<Rate>().unwrap(), Rate::per_minute(5));
        assert_eq!("4294967295/day".parse::<Rate>().unwrap().count(), u32::MAX);
    }

    #[test]
    fn every_bad_input_is_a_typed_error() {
        assert_eq!(problem("0/second"), RateProblem::ZeroCount);
        assert_eq!(problem("000/second"), RateProblem::ZeroCount);
        assert_eq!(problem("-1/minute"), RateProblem::NegativeCount);
        assert_eq!(problem("-1.5/minute"), RateProblem::NegativeCount);
        assert_eq!(problem("1.5/hour"), RateProblem::FractionalCount);
        assert_eq!(problem(".5/hour"), RateProblem::FractionalCount);
        assert_eq!(
            problem("10/fortnight"),
            RateProblem::UnknownUnit("fortnight".into())
        );
        assert_eq!(
            problem("10/Second"),
            RateProblem::UnknownUnit("Second".into())
        );
        assert_eq!(problem("10/week"), RateProblem::UnknownUnit("week".into()));
        assert_eq!(problem("ten/second"), RateProblem::InvalidCount);
        assert_eq!(problem("1e3/second"), RateProblem::InvalidCount);
        assert_eq!(problem("1 0/second"), RateProblem::InvalidCount);
        assert_eq!(problem("4294967296/second"), RateProblem::CountTooLarge);
        assert_eq!(problem("10"), RateProblem::Format);
        assert_eq!(problem("10/"), RateProblem::Format);
        assert_eq!(problem("/second"), RateProblem::Format);
        assert_eq!(problem("5/minute/x"), RateProblem::Format);
        assert_eq!(problem(""), RateProblem::Empty);
        assert_eq!(problem("   "), RateProblem::Empty);
    }

    #[test]
    fn errors_read_well() {
        let error = "10/fortnight".parse::<Rate>().unwrap_err();
        assert!(error
            .to_string()
            .starts_with("rate has an unknown unit \"fortnight\""));
        assert_eq!(
            "0/second".parse::<Rate>().unwrap_err().to_string(),
            "rate must allow at least 1 request per period"
        );
    }

    #[test]
    fn constructors_validate() {
        let zero = Rate::new(0, Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            zero.problem(),
            &ConfigProblem::InvalidRate(RateProblem::ZeroCount)
        );
        let zero = Rate::new(1, Duration::ZERO).unwrap_err();
        assert_eq!(
            zero.problem(),
            &ConfigProblem::InvalidRate(RateProblem::ZeroPeriod)
        );
        let long = Rate::new(1, Duration::MAX).unwrap_err();
        assert_eq!(
            long.problem(),
            &ConfigProblem::InvalidRate(RateProblem::PeriodTooLong)
        );
        let burst = Rate::per_second(1).try_with_burst(0).unwrap_err();
        assert_eq!(burst.field(), "burst");
        assert_eq!(
            Rate::new(10, Duration::from_secs(1)).unwrap(),
            Rate::per_second(10)
        );
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn a_zero_literal_panics() {
        let _ = Rate::per_second(std::hint::black_box(0));
    }

    #[test]
    fn builders_require_a_rate_and_a_non_zero_burst() {
        let field = |rate, burst| Rate::from_builder(rate, burst).unwrap_err().field();
        assert_eq!(field(None, None), "rate");
        assert_eq!(field(None, Some(5)), "rate");
        assert_eq!(field(Some(Rate::per_second(10)), Some(0)), "burst");
        let rate = Rate::per_second(10);
        assert_eq!(Rate::from_builder(Some(rate), None).unwrap(), rate);
        assert_eq!(
            Rate::from_builder(Some(rate), Some(3)).unwrap(),
            rate.with_burst(3)
        );
    }

    #[test]
    fn arithmetic_rounds_up_and_bursts_keep_the_sustained_rate() {
        let rate = Rate::per_second(3);
        assert_eq!(rate.interval_nanos(), 333_333_334);
        assert_eq!(rate.window_nanos(), 1_000_000_000);
        assert_eq!(rate.width_nanos(), 1_000_000_002);
        let bursty = Rate::per_second(10).with_burst(20);
        assert_eq!(bursty.interval_nanos(), 100_000_000);
        assert_eq!(bursty.window_nanos(), 2_000_000_000);
        assert_eq!(Rate::per_second(u32::MAX).interval_nanos(), 1);
        let slow = Rate::new(1, Duration::from_nanos(u64::MAX)).unwrap();
        assert_eq!(slow.with_burst(u32::MAX).window_nanos(), u64::MAX);
        assert_eq!(slow.with_burst(u32::MAX).width_nanos(), u64::MAX);
    }

    #[test]
    fn display_and_equality() {
        assert_eq!(Rate::per_second(10).to_string(), "10/second");
        assert_eq!(Rate::per_day(1).to_string(), "1/day");
        assert_eq!(
            Rate::per_second(10).with_burst(50).to_string(),
            "10/second (burst 50)"
        );
        let odd = Rate::new(7, Duration::from_secs(90)).unwrap();
        assert_eq!(odd.to_string(), "7/90s");
        assert_ne!(Rate::per_minute(60), Rate::per_second(1));
        assert_eq!(Rate::per_second(10).with_burst(10), Rate::per_second(10));
        for text in ["1/second", "100/minute", "1000/hour", "10000/day"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
    }
}
