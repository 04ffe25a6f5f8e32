//! The pure core of adaptive throttling: the rejection probability as a function of what the
//! window has seen, and the decision for one draw. No clock, no atomics, no events.

use super::ThrottleConfig;

/// The share of requests to reject locally, given `requests` (every request the client
/// attempted in the window, those it throttled included) and `accepts` (those the backend
/// did not refuse):
///
/// ```text
/// p = min(max_rejection_probability, max(0, (requests − K·accepts) / (requests + 1)) ^ (1 / aggression))
/// ```
///
/// and 0 while `requests` is below `min_requests` (too little traffic to judge, and a cold
/// start has none). The `+ 1` keeps `p` below 1 for any count, so a client always sends some
/// requests, and those find out when the backend is back.
pub(crate) fn probability(requests: u64, accepts: u64, config: &ThrottleConfig) -> f64 {
    if requests < config.min_requests || requests == 0 {
        return 0.0;
    }
    let requests = requests as f64;
    let excess = requests - config.k * accepts as f64;
    if excess <= 0.0 {
        return 0.0;
    }
    let mut p = excess / (requests + 1.0);
    if config.aggression != 1.0 {
        p = p.powf(1.0 / config.aggression);
    }
    p.min(config.max_rejection_probability)
}

/// How many requests after one judged on `requests` and `accepts` are certain to be judged
/// at probability 0 too, as long as the window keeps its buckets and nothing is refused: the
/// `j`-th is judged on `requests + j` requests and at least `accepts` accepts (with no
/// refusal, every request adds an accept), and probability 0 holds while `requests + j` is
/// below `min_requests` or at most `k · accepts`. The handle lets that many through on their
/// place in the bucket, without summing the window, and withdraws them on a refusal.
pub(crate) fn headroom(requests: u64, accepts: u64, config: &ThrottleConfig) -> u64 {
    let quiet = config.min_requests.saturating_sub(1);
    // `as` saturates, and the floor is exact for the integer `requests + j`.
    let accepted = (config.k * accepts as f64).floor() as u64;
    quiet.max(accepted).saturating_sub(requests)
}

/// How many requests after one judged on `requests` and `accepts` at the cap
/// (`max_rejection_probability`) are certain to be judged at the cap too, as long as the
/// window keeps its buckets: the `j`-th is judged on `requests + j` requests and at most
/// `accepts + j` accepts (a refusal only lowers them), and fewer accepts only raise the
/// probability, which falls with `j` at that bound. The handle draws those against the cap
/// without summing the window; nothing withdraws them.
pub(crate) fn room_at_cap(requests: u64, accepts: u64, config: &ThrottleConfig) -> u64 {
    let cap = config.max_rejection_probability;
    // At the bound, `(R + j − K·(A + j)) / (R + j + 1) ≥ cap^aggression` holds for
    // `j ≤ (R − K·A − c·(R + 1)) / (K − 1 + c)`, `c` being the cap before shaping.
    let c = cap.powf(config.aggression);
    let (r, a) = (requests as f64, accepts as f64);
    let slack = r - config.k * a - c * (r + 1.0);
    let per = config.k - 1.0 + c;
    if !(slack > 0.0 && per > 0.0) {
        return 0;
    }
    // `as` saturates; the estimate is then checked against the probability itself, whose
    // rounding may put the last step or two below the cap.
    let estimate = (slack / per).floor() as u64;
    let at_cap = |j: u64| {
        probability(
            requests.saturating_add(j),
            accepts.saturating_add(j),
            config,
        ) >= cap
    };
    (0..4)
        .map(|back| estimate.saturating_sub(back))
        .find(|&j| at_cap(j))
        .unwrap_or(0)
}

/// Whether a request is throttled: it is when `draw`, uniform in `[0, 1)`, falls below the
/// probability `p`. So `p = 0` never throttles and no draw is taken for it.
pub(crate) fn throttles(p: f64, draw: impl FnOnce() -> f64) -> bool {
    p > 0.0 && draw() < p
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            min_requests: 0,
            max_rejection_probability: 0.99,
            ..ThrottleConfig::default()
        }
    }

    #[test]
    fn the_formula_of_the_sre_book() {
        let config = config();
        // 100 requests, 25 accepted, K = 2: (100 − 50) / 101.
        assert_eq!(probability(100, 25, &config), 50.0 / 101.0);
        // The backend accepts half or more: K = 2 leaves it all its traffic.
        assert_eq!(probability(100, 50, &config), 0.0);
        assert_eq!(probability(100, 100, &config), 0.0);
        // Nothing accepted: (R − 0) / (R + 1), capped.
        assert_eq!(probability(10, 0, &config), 10.0 / 11.0);
        assert_eq!(probability(1_000, 0, &config), 0.99);
        assert_eq!(probability(0, 0, &config), 0.0);
        // K = 1.5.
        let k = ThrottleConfig { k: 1.5, ..config };
        assert_eq!(probability(100, 40, &k), 40.0 / 101.0);
    }

    #[test]
    fn the_envoy_refinements() {
        // Below the minimum number of requests, never.
        let quiet = ThrottleConfig {
            min_requests: 20,
            ..config()
        };
        assert_eq!(probability(19, 0, &quiet), 0.0);
        assert_eq!(probability(20, 0, &quiet), 20.0 / 21.0);
        // The cap.
        let capped = ThrottleConfig {
            max_rejection_probability: 0.5,
            ..config()
        };
        assert_eq!(probability(100, 0, &capped), 0.5);
        // Aggression: p^(1/a), applied before the cap.
        let aggressive = ThrottleConfig {
            aggression: 2.0,
            ..config()
        };
        let p = probability(100, 25, &aggressive);
        assert_eq!(p, (50.0_f64 / 101.0).sqrt());
    }

    #[test]
    fn a_draw_below_the_probability_throttles() {
        assert!(!throttles(0.0, || unreachable!("no draw at p = 0")));
        assert!(throttles(0.5, || 0.499));
        assert!(!throttles(0.5, || 0.5));
    }

    #[test]
    fn headroom_counts_the_requests_certain_to_pass() {
        let config = ThrottleConfig {
            min_requests: 20,
            ..ThrottleConfig::default()
        };
        // Below the minimum: requests 6..=19 are judged below it.
        assert_eq!(headroom(5, 0, &config), 14);
        // K·A = 100 accepts' worth: requests judged on up to 100 requests pass.
        assert_eq!(headroom(60, 50, &config), 40);
        assert_eq!(headroom(100, 50, &config), 0);
        assert_eq!(headroom(150, 50, &config), 0);
    }

    proptest! {
        #[test]
        fn headroom_is_exact(
            requests in 0_u64..1_000_000,
            accepts in 0_u64..1_000_000,
            min_requests in 0_u64..100,
            k in 1.0..10.0_f64,
        ) {
            let config = ThrottleConfig { min_requests, k, ..config() };
            prop_assume!(probability(requests, accepts, &config) == 0.0);
            let room = headroom(requests, accepts, &config);
            for j in [1, room / 2, room].into_iter().filter(|&j| j >= 1 && j <= room) {
                prop_assert_eq!(probability(requests + j, accepts, &config), 0.0);
            }
            prop_assert!(probability(requests + room + 1, accepts, &config) > 0.0);
        }

        #[test]
        fn room_at_cap_is_exact(
            requests in 1_u64..1_000_000,
            share in 0.0..0.5_f64,
            min_requests in 0_u64..100,
            k in 1.0..4.0_f64,
            max in 0.01..1.0_f64,
            aggression in 1.0..4.0_f64,
        ) {
            // Few accepts, so that the probability is often at its cap.
            let accepts = (requests as f64 * share / k) as u64;
            let config = ThrottleConfig {
                min_requests,
                k,
                max_rejection_probability: max,
                aggression,
                ..config()
            };
            prop_assume!(probability(requests, accepts, &config) == max);
            let room = room_at_cap(requests, accepts, &config);
            for j in [1, room / 2, room].into_iter().filter(|&j| j >= 1 && j <= room) {
                prop_assert_eq!(probability(requests + j, accepts + j, &config), max);
            }
            // Not far short of the last request at the cap.
            prop_assert!(probability(requests + room + 5, accepts + room + 5, &config) < max);
        }

        #[test]
        fn the_probability_stays_in_range_and_falls_as_accepts_rise(
            requests in 0_u64..1_000_000_000,
            accepts in 0_u64..1_000_000_000,
            more in 0_u64..1_000,
            k in 1.0..100.0_f64,
            max in 0.0..1.0_f64,
            aggression in 1.0..10.0_f64,
        ) {
            let config = ThrottleConfig {
                k,
                max_rejection_probability: max,
                aggression,
                ..config()
            };
            let p = probability(requests, accepts, &config);
            prop_assert!((0.0..=max).contains(&p));
            prop_assert!(p < 1.0);
            prop_assert!(probability(requests, accepts.saturating_add(more), &config) <= p);
        }
    }
}
