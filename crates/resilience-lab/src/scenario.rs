//! Scenarios: what the upstream does over time, how hard the load generator pushes, and how
//! the gateway is protected. The built-in one is `scenarios/default.toml`.
//!
//! Every check here names the key the user wrote in the file (or the flag on the command
//! line), never an internal field, so a bad value is fixed where it was typed.

use std::fmt;
use std::time::Duration;

use anyhow::{ensure, Context};
use resilience::rate::Rate;
use serde::Deserialize;

/// The built-in scenario, embedded so the lab runs with no arguments.
pub(crate) const DEFAULT: &str = include_str!("../scenarios/default.toml");

/// The fastest plan the lab accepts: one process sends to both gateways and runs them and
/// the upstreams too, so beyond this it measures its own load generator, not the patterns.
pub(crate) const MAX_RATE: u64 = 10_000;
/// Upper bound of `max_requests`: the plan and every answer are kept in memory.
pub(crate) const MAX_REQUESTS: u64 = 1_000_000;
/// Upper bound of a phase's `share`: shares are relative lengths, small numbers suffice,
/// and this keeps their sum and the phase arithmetic far from overflowing.
pub(crate) const MAX_SHARE: u32 = 10_000;

/// A whole lab run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    /// Total run time, shared by the phases.
    #[serde(with = "humantime_serde")]
    pub(crate) duration: Duration,
    /// Requests per second in the traffic plan (each is sent to every gateway).
    pub(crate) rate: u64,
    /// Hard bound on the requests in the plan.
    pub(crate) max_requests: u64,
    /// Seed of the traffic plan: which requests the upstreams fail.
    pub(crate) seed: u64,
    /// What the upstream does, in order.
    #[serde(rename = "phase")]
    pub(crate) phases: Vec<Phase>,
    /// How the protected gateway is configured.
    pub(crate) gateway: GatewayConfig,
}

/// One stretch of the upstream's behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Phase {
    pub(crate) name: String,
    /// Relative length: a phase lasts `duration * share / sum(shares)`.
    pub(crate) share: u32,
    #[serde(with = "humantime_serde")]
    pub(crate) latency: Duration,
    /// Probability that a request fails with 503.
    pub(crate) failure_rate: f64,
}

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

impl Scenario {
    /// Parses and checks a scenario file's text.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let scenario: Self = toml::from_str(text).context("invalid scenario")?;
        scenario.validate().context("invalid scenario")?;
        Ok(scenario)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=MAX_RATE).contains(&self.rate),
            "rate = {}: must be from 1 to {MAX_RATE} requests per second",
            self.rate
        );
        ensure!(
            (1..=MAX_REQUESTS).contains(&self.max_requests),
            "max_requests = {}: must be from 1 to {MAX_REQUESTS}",
            self.max_requests
        );
        ensure!(
            !self.phases.is_empty(),
            "a scenario needs at least one [[phase]]"
        );
        for phase in &self.phases {
            let name = &phase.name;
            ensure!(
                (1..=MAX_SHARE).contains(&phase.share),
                "phase {name:?}: share = {}: must be from 1 to {MAX_SHARE} (shares are relative lengths)",
                phase.share
            );
            ensure!(
                (0.0..=1.0).contains(&phase.failure_rate),
                "phase {name:?}: failure_rate = {}: must be between 0 and 1",
                phase.failure_rate
            );
            ensure!(
                phase.latency <= Duration::from_secs(60),
                "phase {name:?}: latency = {:?}: at most 60s",
                phase.latency
            );
        }
        self.check_duration(self.duration, "duration")?;
        self.gateway.validate(self.rate)
    }

    /// Checks a run length against the plan: at least one request, and no more requests than
    /// `max_requests`. `key` is what the user wrote (`duration` or `--duration`).
    pub(crate) fn check_duration(&self, duration: Duration, key: &str) -> anyhow::Result<()> {
        let tick = Duration::from_secs(1) / u32::try_from(self.rate)?;
        ensure!(
            duration >= tick,
            "{key} {duration:?} is shorter than one request at rate = {} ({tick:?}): nothing would be sent",
            self.rate
        );
        let needed = requests_in(duration, self.rate);
        ensure!(
            needed <= self.max_requests,
            "{key} {duration:?} at rate = {} needs {needed} requests, more than max_requests = {}: \
             at most {:?}; raise max_requests or lower the rate",
            self.rate,
            self.max_requests,
            Duration::from_secs_f64(self.max_requests as f64 / self.rate as f64)
        );
        Ok(())
    }

    /// The phase running `elapsed` into the run (the last one after the end).
    pub(crate) fn phase_at(&self, elapsed: Duration) -> (usize, &Phase) {
        let starts = self.phase_starts();
        let index = starts
            .iter()
            .rposition(|(start, _)| *start <= elapsed)
            .unwrap_or(0);
        (index, &self.phases[index])
    }

    /// Where each phase starts. Shares are bounded (`MAX_SHARE`), so the sum is far from
    /// overflowing and the arithmetic runs in u128 nanoseconds.
    pub(crate) fn phase_starts(&self) -> Vec<(Duration, &str)> {
        let total: u128 = self
            .phases
            .iter()
            .map(|phase| u128::from(phase.share))
            .sum();
        let nanos = self.duration.as_nanos();
        let mut before: u128 = 0;
        self.phases
            .iter()
            .map(|phase| {
                let at = nanos * before / total.max(1);
                before += u128::from(phase.share);
                (duration_from_nanos(at), phase.name.as_str())
            })
            .collect()
    }
}

impl GatewayConfig {
    /// Checks every value before the patterns are built, naming the TOML key.
    fn validate(&self, plan_rate: u64) -> anyhow::Result<()> {
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

/// Requests in a plan of `duration` at `rate` per second: one at 0, then every `1/rate`.
pub(crate) fn requests_in(duration: Duration, rate: u64) -> u64 {
    let nanos = duration.as_nanos() * u128::from(rate);
    u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

fn duration_from_nanos(nanos: u128) -> Duration {
    Duration::new(
        u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
        (nanos % 1_000_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why a scenario was refused.
    fn refusal(text: &str) -> String {
        match Scenario::parse(text) {
            Ok(_) => panic!("the scenario was accepted"),
            Err(error) => format!("{error:#}"),
        }
    }

    fn replace(from: &str, to: &str) -> String {
        let changed = DEFAULT.replace(from, to);
        assert_ne!(changed, DEFAULT, "{from:?} must be in the default scenario");
        changed
    }

    #[test]
    fn the_default_scenario_parses_and_phases_share_the_duration() {
        let scenario = Scenario::parse(DEFAULT).unwrap();
        assert_eq!(scenario.phases.len(), 4);
        let quarter = scenario.duration / 4;
        assert_eq!(scenario.phase_at(Duration::ZERO).1.name, "healthy");
        assert_eq!(scenario.phase_at(quarter).1.name, "slow");
        assert_eq!(scenario.phase_at(quarter * 3).1.name, "recovering");
        assert_eq!(
            scenario.phase_at(scenario.duration * 2).1.name,
            "recovering"
        );
    }

    #[test]
    fn bad_scenarios_are_refused_with_a_reason() {
        let error = refusal(&replace("failure_rate = 0.8", "failure_rate = 1.8"));
        assert!(error.contains("failure_rate"), "{error}");
        let typo = replace("rate_limit = \"95%\"", "rate_limit = \"140/fortnight\"");
        assert!(refusal(&typo).contains("rate_limit"));
    }

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
    fn absurd_rates_and_shares_are_refused_without_overflow() {
        let error = refusal(&replace("rate = 150", "rate = 4294967295"));
        assert!(error.contains("rate = 4294967295"), "{error}");
        let error = refusal(&replace("rate = 150", "rate = 0"));
        assert!(error.contains("rate = 0"), "{error}");
        let error = refusal(&replace("share = 1", "share = 4294967295"));
        assert!(error.contains("share = 4294967295"), "{error}");
        // Several large shares: each within bounds, no overflow in the sum.
        let scenario = Scenario::parse(&DEFAULT.replace("share = 1", "share = 10000")).unwrap();
        assert_eq!(scenario.phase_at(scenario.duration / 2).1.name, "failing");
    }

    #[test]
    fn durations_outside_the_plan_are_refused_with_the_key() {
        let scenario = Scenario::parse(DEFAULT).unwrap();
        let error = scenario
            .check_duration(Duration::from_micros(100), "--duration")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--duration") && error.contains("shorter"),
            "{error}"
        );
        let error = scenario
            .check_duration(Duration::from_secs(3600), "--duration")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--duration") && error.contains("max_requests"),
            "{error}"
        );
        scenario
            .check_duration(scenario.duration, "--duration")
            .unwrap();
        let error = refusal(&replace("max_requests = 9000", "max_requests = 100"));
        assert!(
            error.contains("duration") && error.contains("max_requests = 100"),
            "{error}"
        );
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
