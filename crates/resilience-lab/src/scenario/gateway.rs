//! The protected gateway's settings, the `[gateway]` table of a scenario, checked with errors
//! that name the key the user wrote.

use std::fmt;
use std::time::Duration;

use anyhow::{ensure, Context};
use resilience::rate::Rate;
use serde::Deserialize;

/// The gateway's rate limit: a fixed rate, or a percentage of the plan's rate so that the
/// same share of requests is refused on every machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateLimit {
    /// `"140/second"`.
    Fixed(Rate),
    /// `"95%"`: that percentage of the scenario's `rate`.
    OfPlan(u32),
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl RateLimit {
    fn parse(text: &str) -> Result<Self, String> {
        if let Some(number) = text.trim().strip_suffix('%') {
            return match number.trim().parse::<u32>() {
                Ok(percent @ 1..=1000) => Ok(Self::OfPlan(percent)),
                _ => Err(format!(
                    "{text:?}: a percentage of the plan's rate must be a whole number from 1% to 1000%"
                )),
            };
        }
        text.parse::<Rate>().map(Self::Fixed).map_err(|error| {
            format!("{text:?}: expected a rate like \"140/second\" or a share of the plan's rate like \"95%\" ({error})")
        })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(rate) => write!(f, "{rate}"),
            Self::OfPlan(percent) => write!(f, "{percent}% of the plan's rate"),
        }
    }
}

/// The protected gateway's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayConfig {
    pub(crate) rate_limit: RateLimit,
    /// Requests the limiter lets through at once; the rate's own when absent.
    #[serde(default)]
    pub(crate) rate_limit_burst: Option<u32>,
    pub(crate) max_concurrent: u32,
    pub(crate) max_waiting: u32,
    #[serde(with = "humantime_serde")]
    pub(crate) request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(crate) upstream_timeout: Duration,
    pub(crate) retry_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub(crate) retry_delay: Duration,
    pub(crate) breaker_failure_rate: f64,
    pub(crate) breaker_window: u32,
    #[serde(with = "humantime_serde")]
    pub(crate) breaker_open_duration: Duration,
}
impl GatewayConfig {
    /// Checks every value before the patterns are built, naming the TOML key.
    pub(super) fn validate(&self, plan_rate: u64) -> anyhow::Result<()> {
        let positive = [
            ("request_timeout", self.request_timeout),
            ("upstream_timeout", self.upstream_timeout),
            ("retry_delay", self.retry_delay),
            ("breaker_open_duration", self.breaker_open_duration),
        ];
        for (key, value) in positive {
            ensure!(!value.is_zero(), "[gateway] {key} must be positive");
        }
        let at_least = [
            ("max_concurrent", self.max_concurrent, 1),
            ("retry_attempts", self.retry_attempts, 1),
            // The breaker decides once half its window is full, and half of 1 is nothing.
            ("breaker_window", self.breaker_window, 2),
        ];
        for (key, value, min) in at_least {
            ensure!(
                value >= min,
                "[gateway] {key} = {value}: must be at least {min}"
            );
        }
        ensure!(
            self.breaker_failure_rate > 0.0 && self.breaker_failure_rate <= 1.0,
            "[gateway] breaker_failure_rate = {}: must be above 0 and at most 1",
            self.breaker_failure_rate
        );
        if let Some(burst) = self.rate_limit_burst {
            ensure!(burst >= 1, "[gateway] rate_limit_burst must be at least 1");
        }
        self.rate_limit(plan_rate)?;
        Ok(())
    }

    /// The rate limit to build, resolved against the plan's rate.
    pub(crate) fn rate_limit(&self, plan_rate: u64) -> anyhow::Result<Rate> {
        let rate = match self.rate_limit {
            RateLimit::Fixed(rate) => rate,
            RateLimit::OfPlan(percent) => {
                // Per 100 seconds, so a percentage of a whole rate stays a whole count.
                let count = u32::try_from(plan_rate * u64::from(percent))
                    .context("[gateway] rate_limit: too large")?;
                Rate::new(count, Duration::from_secs(100)).context("[gateway] rate_limit")?
            }
        };
        match self.rate_limit_burst {
            Some(burst) => rate
                .try_with_burst(burst)
                .context("[gateway] rate_limit_burst"),
            None if matches!(self.rate_limit, RateLimit::OfPlan(_)) => {
                // A per-100-seconds rate would otherwise allow 100 seconds' worth at once.
                let second = (rate.count() / 100).max(1);
                Ok(rate.with_burst(second))
            }
            None => Ok(rate),
        }
    }

    /// The scenario key behind a field of the core's configs, so that an error the core
    /// raises still names what the user wrote.
    pub(crate) fn key_for(field: &str) -> &'static str {
        match field {
            "min_calls" | "window" => "breaker_window",
            "threshold" => "breaker_failure_rate",
            "max_attempts" => "retry_attempts",
            _ => "[gateway]",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tests::{refusal, replace};
    use crate::scenario::{Scenario, DEFAULT};

    #[test]
    fn errors_name_the_key_the_user_wrote() {
        for (from, to, key) in [
            (
                "breaker_window = 20",
                "breaker_window = 1",
                "breaker_window",
            ),
            (
                "request_timeout = \"1s\"",
                "request_timeout = \"0s\"",
                "request_timeout",
            ),
            (
                "upstream_timeout = \"150ms\"",
                "upstream_timeout = \"0s\"",
                "upstream_timeout",
            ),
            ("retry_attempts = 2", "retry_attempts = 0", "retry_attempts"),
            (
                "breaker_failure_rate = 0.5",
                "breaker_failure_rate = 0.0",
                "breaker_failure_rate",
            ),
        ] {
            let error = refusal(&replace(from, to));
            assert!(error.contains(key), "{to}: {error}");
            let other = ["request_timeout", "upstream_timeout"]
                .into_iter()
                .find(|other| *other != key && key.ends_with("timeout"));
            if let Some(other) = other {
                assert!(!error.contains(other), "{to} blamed {other}: {error}");
            }
        }
    }

    #[test]
    fn a_percentage_rate_limit_follows_the_plan() {
        let scenario = Scenario::parse(DEFAULT).unwrap();
        let rate = scenario.gateway.rate_limit(scenario.rate).unwrap();
        let per_second = 1.0 / rate.emission_interval().as_secs_f64();
        assert!((per_second - 142.5).abs() < 0.01, "{per_second}");
        assert_eq!(rate.burst(), 15);
        let doubled = scenario.gateway.rate_limit(scenario.rate * 2).unwrap();
        assert_eq!(doubled.emission_interval() * 2, rate.emission_interval());
        assert!(RateLimit::parse("0%").is_err());
        assert!(RateLimit::parse("1001%").is_err());
        assert_eq!(RateLimit::parse(" 50% ").unwrap(), RateLimit::OfPlan(50));
    }
}
