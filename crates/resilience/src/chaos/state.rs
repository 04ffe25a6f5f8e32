//! The pure core of chaos: which injections one call gets, from the rates and a source of
//! uniform draws, and the small generator those draws come from by default.

use std::time::Duration;

use super::ChaosConfig;

/// What is injected into one call. [`Injections::NONE`] when chaos is disabled or nothing
/// fired; see [`Chaos::roll`](super::Chaos::roll).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Injections {
    /// A delay before the call, when latency fired.
    pub latency: Option<Duration>,
    /// Whether the behaviour hook runs before the call.
    pub behavior: bool,
    /// Whether the call is replaced by an injected fault (an error).
    pub fault: bool,
    /// Whether the call is replaced by an injected outcome (a response); a fault wins if both
    /// fired.
    pub outcome: bool,
}

impl Injections {
    /// Nothing injected.
    pub const NONE: Self = Self {
        latency: None,
        behavior: false,
        fault: false,
        outcome: false,
    };

    /// Whether nothing is injected.
    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }
}

/// Decides one call's injections: one draw in `[0, 1)` per configured injection, in the
/// order latency, behaviour, fault, outcome; an injection fires when its draw is below its
/// rate (so rate 0 never fires and rate 1 always does). Injections with rate 0 take no draw.
pub(super) fn decide(config: &ChaosConfig, mut draw: impl FnMut() -> f64) -> Injections {
    let mut fires = |rate: f64| rate > 0.0 && draw() < rate;
    Injections {
        latency: fires(config.latency_rate).then_some(config.latency),
        behavior: fires(config.behavior_rate),
        fault: fires(config.fault_rate),
        outcome: fires(config.outcome_rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(rate: f64) -> ChaosConfig {
        ChaosConfig {
            fault_rate: rate,
            outcome_rate: rate,
            latency_rate: rate,
            behavior_rate: rate,
            latency: Duration::from_millis(5),
            ..ChaosConfig::default()
        }
    }

    #[test]
    fn rate_zero_never_fires_and_takes_no_draw() {
        let injections = decide(&config(0.0), || unreachable!("no draw for rate 0"));
        assert!(injections.is_none());
    }

    #[test]
    fn rate_one_always_fires() {
        let almost_one = 1.0 - f64::EPSILON;
        let injections = decide(&config(1.0), || almost_one);
        assert_eq!(injections.latency, Some(Duration::from_millis(5)));
        assert!(injections.behavior && injections.fault && injections.outcome);
    }

    #[test]
    fn draws_go_to_the_injections_in_order() {
        let mut draws = [0.1, 0.9, 0.1, 0.9].into_iter();
        let injections = decide(&config(0.5), || draws.next().unwrap());
        assert_eq!(
            injections,
            Injections {
                latency: Some(Duration::from_millis(5)),
                behavior: false,
                fault: true,
                outcome: false,
            }
        );
    }

    proptest! {
        #[test]
        fn an_injection_fires_exactly_below_its_rate(rate in 0.0..=1.0f64, draw in 0.0..1.0f64) {
            let config = ChaosConfig { fault_rate: rate, ..ChaosConfig::default() };
            prop_assert_eq!(decide(&config, || draw).fault, draw < rate);
        }
    }
}
