//! Scenarios: what the upstream does over time, how hard the load generator pushes, and how
//! the gateway is protected. The built-in one is `scenarios/default.toml`.

use std::time::Duration;

use anyhow::{ensure, Context};
use resilience::rate::Rate;
use serde::Deserialize;

/// The built-in scenario, embedded so the lab runs with no arguments.
pub(crate) const DEFAULT: &str = include_str!("../scenarios/default.toml");

/// A whole lab run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    /// Total run time, shared by the phases.
    #[serde(with = "humantime_serde")]
    pub(crate) duration: Duration,
    /// Requests per second sent to each gateway.
    pub(crate) rate: u32,
    /// Hard bound on the requests sent to each gateway.
    pub(crate) max_requests: u32,
    /// Seed of the upstreams' random failures.
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

/// The protected gateway's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayConfig {
    pub(crate) rate_limit: Rate,
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
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.duration.is_zero(), "duration must be positive");
        ensure!(self.rate > 0, "rate must be at least 1 request per second");
        ensure!(self.max_requests > 0, "max_requests must be at least 1");
        ensure!(
            !self.phases.is_empty(),
            "a scenario needs at least one [[phase]]"
        );
        for phase in &self.phases {
            ensure!(
                phase.share > 0,
                "phase {}: share must be at least 1",
                phase.name
            );
            ensure!(
                (0.0..=1.0).contains(&phase.failure_rate),
                "phase {}: failure_rate must be between 0 and 1",
                phase.name
            );
        }
        Ok(())
    }

    /// The phase running `elapsed` into the run (the last one after the end).
    pub(crate) fn phase_at(&self, elapsed: Duration) -> (usize, &Phase) {
        let total: u32 = self.phases.iter().map(|phase| phase.share).sum();
        let mut end = Duration::ZERO;
        for (index, phase) in self.phases.iter().enumerate() {
            end += self.duration * phase.share / total;
            if elapsed < end {
                return (index, phase);
            }
        }
        let last = self.phases.len() - 1;
        (last, &self.phases[last])
    }

    /// Where each phase starts, for the report's timeline.
    pub(crate) fn phase_starts(&self) -> Vec<(Duration, &str)> {
        let total: u32 = self.phases.iter().map(|phase| phase.share).sum();
        let mut start = Duration::ZERO;
        self.phases
            .iter()
            .map(|phase| {
                let at = start;
                start += self.duration * phase.share / total;
                (at, phase.name.as_str())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let broken = DEFAULT.replace("failure_rate = 0.8", "failure_rate = 1.8");
        let error = Scenario::parse(&broken).unwrap_err();
        assert!(format!("{error:#}").contains("failure_rate"));
        let typo = DEFAULT.replace(
            "rate_limit = \"140/second\"",
            "rate_limit = \"140/fortnight\"",
        );
        assert_ne!(typo, DEFAULT, "the typo must land in the scenario");
        assert!(Scenario::parse(&typo).is_err());
    }
}
