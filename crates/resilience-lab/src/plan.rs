//! The traffic plan: every request of a run decided before it starts, from the scenario and
//! its seed alone: when it is sent, in which phase, and whether the upstream fails it.
//!
//! Every gateway replays the same plan, so they see the same requests with the same fates,
//! and the same seed gives the same run on any machine. A slow machine sends late, never
//! fewer; the report says how late.
//!
//! The upstream's trouble is the library's own chaos pattern: one [`Chaos`] per phase injects
//! the phase's latency (into every call) and a failure (into the phase's share of calls). Its
//! draws come from the plan, through [`Chaos::roll_with`], so a request's fate depends only on
//! the request and its attempt number, never on the order concurrent requests arrive in.

use std::convert::Infallible;
use std::time::Duration;

use resilience::chaos::{Chaos, Injections};

use crate::scenario::{requests_in, Scenario};

/// What the upstream answers: its work, or an injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The real work: fresh data.
    Fresh,
    /// The failure the phase's chaos injects instead.
    Failure,
}

/// The upstream's trouble in one phase.
pub(crate) type PhaseChaos = Chaos<Answer, Infallible>;

/// One planned request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    /// When it is sent, from the start of the run.
    pub(crate) at: Duration,
    /// Index of the phase it belongs to; the upstream behaves as in that phase.
    pub(crate) phase: usize,
    /// Its random draw: attempt `k` fails when `fate(draw, k)` is below the phase's failure
    /// rate, so a retry gets a fresh but repeatable chance.
    pub(crate) draw: u64,
}

/// Every request of a run, in order.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) requests: Vec<Planned>,
    failure_rates: Vec<f64>,
    latencies: Vec<Duration>,
    /// Each phase's chaos, by phase index.
    chaos: Vec<PhaseChaos>,
}

/// Two plans are equal when they plan the same requests with the same trouble.
impl PartialEq for Plan {
    fn eq(&self, other: &Self) -> bool {
        self.requests == other.requests
            && self.failure_rates == other.failure_rates
            && self.latencies == other.latencies
    }
}

impl Plan {
    /// Plans `scenario.duration` at `scenario.rate` requests per second. The scenario's checks
    /// keep the count within `max_requests`; the bound is applied again here so a plan can
    /// never grow past it.
    pub(crate) fn new(scenario: &Scenario) -> Self {
        let count = requests_in(scenario.duration, scenario.rate).min(scenario.max_requests);
        let mut rng = fastrand::Rng::with_seed(scenario.seed);
        let requests = (0..count)
            .map(|i| {
                let at = Duration::from_nanos(
                    u64::try_from(u128::from(i) * 1_000_000_000 / u128::from(scenario.rate))
                        .unwrap_or(u64::MAX),
                );
                Planned {
                    at,
                    phase: scenario.phase_at(at).0,
                    draw: rng.u64(..),
                }
            })
            .collect();
        Self {
            requests,
            failure_rates: scenario.phases.iter().map(|p| p.failure_rate).collect(),
            latencies: scenario.phases.iter().map(|p| p.latency).collect(),
            chaos: scenario
                .phases
                .iter()
                .map(|phase| {
                    let mut chaos = Chaos::builder(format!("upstream-{}", phase.name))
                        .outcome(phase.failure_rate, || Answer::Failure);
                    if !phase.latency.is_zero() {
                        chaos = chaos.latency(1.0, phase.latency);
                    }
                    // The scenario's checks keep every rate within 0..=1.
                    chaos.build().expect("a checked scenario makes valid chaos")
                })
                .collect(),
        }
    }

    /// Requests per phase, in phase order.
    pub(crate) fn per_phase(&self) -> Vec<u64> {
        let mut counts = vec![0; self.failure_rates.len()];
        for request in &self.requests {
            counts[request.phase] += 1;
        }
        counts
    }

    /// The chaos of attempt `attempt` of request `index`: its phase's instance and what it
    /// injects. Every draw of the attempt is the same number, so the failure fires exactly
    /// when it is below the phase's failure rate (the latency's rate is 1: it always fires).
    /// `None` for a request that is not in the plan.
    pub(crate) fn chaos(&self, index: usize, attempt: u32) -> Option<(&PhaseChaos, Injections)> {
        let request = self.requests.get(index)?;
        let chaos = &self.chaos[request.phase];
        let draw = unit(mix(request.draw, attempt));
        Some((chaos, chaos.roll_with(|| draw)))
    }

    /// What the upstream does with attempt `attempt` of request `index`: its latency and
    /// whether it fails. `None` for a request that is not in the plan.
    #[cfg(test)]
    pub(crate) fn upstream(&self, index: usize, attempt: u32) -> Option<(Duration, bool)> {
        let (_, injections) = self.chaos(index, attempt)?;
        Some((injections.latency.unwrap_or_default(), injections.outcome))
    }
}

/// splitmix64's finaliser: a good spread of `draw` and the attempt number.
fn mix(draw: u64, attempt: u32) -> u64 {
    let mut z = draw.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) from the top 53 bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::DEFAULT;

    fn scenario(seed: u64) -> Scenario {
        let mut scenario = Scenario::parse(DEFAULT).unwrap();
        scenario.seed = seed;
        scenario
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        assert_eq!(Plan::new(&scenario(7)), Plan::new(&scenario(7)));
        assert_ne!(Plan::new(&scenario(7)), Plan::new(&scenario(8)));
        // Fates too, not just draws: the failing phase fails different requests.
        let failed = |plan: &Plan| -> Vec<usize> {
            (0..plan.requests.len())
                .filter(|&i| plan.upstream(i, 0).unwrap().1)
                .collect()
        };
        assert_eq!(
            failed(&Plan::new(&scenario(7))),
            failed(&Plan::new(&scenario(7)))
        );
        assert_ne!(
            failed(&Plan::new(&scenario(7))),
            failed(&Plan::new(&scenario(8)))
        );
    }

    #[test]
    fn per_phase_counts_follow_the_shares() {
        let mut scenario = scenario(42);
        scenario.phases[1].share = 2;
        scenario.phases[3].share = 5;
        let plan = Plan::new(&scenario);
        // 20 s at 150/s: 3,000 requests, in shares 1:2:1:5 of 9.
        assert_eq!(plan.requests.len(), 3000);
        let expected = [3000 / 9, 3000 * 2 / 9, 3000 / 9, 3000 * 5 / 9];
        for (count, expected) in plan.per_phase().into_iter().zip(expected) {
            assert!(count.abs_diff(expected) <= 1, "{count} vs {expected}");
        }
        assert_eq!(plan.per_phase().iter().sum::<u64>(), 3000);
        // Sent in order, evenly spaced.
        assert_eq!(plan.requests[150].at, Duration::from_secs(1));
        assert!(plan.requests.windows(2).all(|w| w[0].at < w[1].at));
    }

    #[test]
    fn fates_follow_the_phase_failure_rate_and_retries_draw_again() {
        let plan = Plan::new(&scenario(42));
        let failing: Vec<usize> = (0..plan.requests.len())
            .filter(|&i| plan.requests[i].phase == 2)
            .collect();
        let failed = failing
            .iter()
            .filter(|&&i| plan.upstream(i, 0).unwrap().1)
            .count();
        let share = failed as f64 / failing.len() as f64;
        assert!((share - 0.8).abs() < 0.05, "{share}");
        let retried = failing
            .iter()
            .filter(|&&i| plan.upstream(i, 0).unwrap().1 && !plan.upstream(i, 1).unwrap().1)
            .count();
        assert!(retried > 0, "a retry must get its own chance");
        assert!(
            (0..plan.requests.len())
                .filter(|&i| plan.requests[i].phase != 2)
                .all(|i| !plan.upstream(i, 0).unwrap().1),
            "healthy phases never fail"
        );
        assert_eq!(plan.upstream(plan.requests.len(), 0), None);
    }

    #[test]
    fn chaos_fails_exactly_the_requests_the_plan_draws_to_fail() {
        let plan = Plan::new(&scenario(42));
        for (i, request) in plan.requests.iter().enumerate() {
            for attempt in 0..3 {
                let draw = unit(mix(request.draw, attempt));
                let expected = (
                    plan.latencies[request.phase],
                    draw < plan.failure_rates[request.phase],
                );
                assert_eq!(plan.upstream(i, attempt), Some(expected));
            }
        }
    }

    #[test]
    fn the_plan_never_passes_max_requests() {
        let mut scenario = scenario(1);
        scenario.max_requests = 10;
        assert_eq!(Plan::new(&scenario).requests.len(), 10);
    }
}
