//! [`ChaosConfig`] and its validation.

use std::time::Duration;

use crate::config::{check, ConfigError};

/// Settings of a [`Chaos`](super::Chaos): the rates and the latency. What a fault, an
/// outcome or a behaviour *is* is code, given to the [builder](super::ChaosBuilder).
///
/// `Default` injects nothing: every rate 0, enabled, a random seed. With the `serde` feature
/// it deserializes from any format serde supports:
///
/// ```toml
/// enabled = true
/// seed = 42
/// fault_rate = 0.1
/// latency_rate = 0.5
/// latency = "200ms"
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ChaosConfig {
    /// Whether anything is injected; switchable at run time with
    /// [`set_enabled`](super::Chaos::set_enabled). Default: true.
    pub enabled: bool,
    /// The seed of the generator that decides injections; the same seed gives the same
    /// sequence of decisions. `None` (default): a random seed.
    pub seed: Option<u64>,
    /// Share of calls replaced by an injected fault (an error), 0.0 to 1.0. Default: 0.
    pub fault_rate: f64,
    /// Share of calls replaced by an injected outcome (a response), 0.0 to 1.0. Default: 0.
    pub outcome_rate: f64,
    /// Share of calls delayed by `latency` before they run, 0.0 to 1.0. Default: 0.
    pub latency_rate: f64,
    /// The injected delay. Default: 0.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub latency: Duration,
    /// Share of calls preceded by the behaviour hook, 0.0 to 1.0. Default: 0.
    pub behavior_rate: f64,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            seed: None,
            fault_rate: 0.0,
            outcome_rate: 0.0,
            latency_rate: 0.0,
            latency: Duration::ZERO,
            behavior_rate: 0.0,
        }
    }
}

impl ChaosConfig {
    /// Checks every field; the error names the first offending one. (That a fault, outcome
    /// or behaviour with a positive rate has its function is checked by the builder.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::ratio("fault_rate", self.fault_rate)?;
        check::ratio("outcome_rate", self.outcome_rate)?;
        check::ratio("latency_rate", self.latency_rate)?;
        check::ratio("behavior_rate", self.behavior_rate)?;
        check::duration("latency", self.latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigProblem;

    #[test]
    fn rates_outside_zero_to_one_are_refused_naming_the_field() {
        ChaosConfig::default().validate().unwrap();
        for (field, config) in [
            (
                "fault_rate",
                ChaosConfig {
                    fault_rate: 1.5,
                    ..ChaosConfig::default()
                },
            ),
            (
                "outcome_rate",
                ChaosConfig {
                    outcome_rate: -0.1,
                    ..ChaosConfig::default()
                },
            ),
            (
                "latency_rate",
                ChaosConfig {
                    latency_rate: f64::NAN,
                    ..ChaosConfig::default()
                },
            ),
            (
                "behavior_rate",
                ChaosConfig {
                    behavior_rate: 2.0,
                    ..ChaosConfig::default()
                },
            ),
        ] {
            let error = config.validate().unwrap_err();
            assert_eq!(error.field(), field);
            assert_eq!(
                error.problem(),
                &ConfigProblem::OutOfRange { min: 0.0, max: 1.0 }
            );
        }
        let huge = ChaosConfig {
            latency: Duration::MAX,
            ..ChaosConfig::default()
        };
        assert_eq!(huge.validate().unwrap_err().field(), "latency");
    }
}
