//! Scenarios: what the upstream does over time, how hard the load generator pushes, and how
//! the gateway is protected. The built-in one is `scenarios/default.toml`.
//!
//! Every check here names the key the user wrote in the file (or the flag on the command
//! line), never an internal field, so a bad value is fixed where it was typed.

use std::time::Duration;

use anyhow::{ensure, Context};
use serde::Deserialize;

mod gateway;

pub(crate) use gateway::GatewayConfig;

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
pub(crate) mod tests {
    use super::*;

    /// Why a scenario was refused.
    pub(crate) fn refusal(text: &str) -> String {
        match Scenario::parse(text) {
            Ok(_) => panic!("the scenario was accepted"),
            Err(error) => format!("{error:#}"),
        }
    }

    /// The default scenario with one piece of text replaced.
    pub(crate) fn replace(from: &str, to: &str) -> String {
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
}
