use super::*;
use crate::classify::Outcome;

fn window(aimd: &mut Aimd, at: Instant, successes: u32, failures: u32) -> u32 {
    let sample = |outcome| Sample::new(at, Duration::from_millis(1), 1, outcome);
    let mut limit = aimd.limit();
    for _ in 0..successes {
        limit = aimd.update(&sample(Outcome::Success));
    }
    for _ in 0..failures {
        limit = aimd.update(&sample(Outcome::Failure));
    }
    limit
}

fn aimd(config: AimdConfig) -> Aimd {
    config.validate().unwrap();
    Aimd::new(config)
}

fn seed(window: u32) -> AimdConfig {
    AimdConfig {
        measurement_window: window,
        ..AimdConfig::default()
    }
}

#[test]
fn the_seeds_sequences() {
    let at = Instant::now();
    // Up by one after a window of successes (window 10).
    assert_eq!(window(&mut aimd(seed(10)), at, 10, 0), 101);
    // Down at 50 % success: 100 * 0.9.
    assert_eq!(window(&mut aimd(seed(10)), at, 5, 5), 90);
    // 85 % is between the thresholds: unchanged.
    assert_eq!(window(&mut aimd(seed(20)), at, 17, 3), 100);
    // 100 * 0.8 -> exactly 80.
    let factor = AimdConfig {
        decrease_factor: 0.8,
        ..seed(10)
    };
    assert_eq!(window(&mut aimd(factor), at, 0, 10), 80);
    // +5 additive increase.
    let rate = AimdConfig {
        increase_rate: 5.0,
        ..seed(10)
    };
    let mut five = aimd(rate);
    assert_eq!(window(&mut five, at, 10, 0), 105);
    for _ in 0..4 {
        window(&mut five, at, 10, 0);
    }
    assert_eq!(five.limit(), 125, "five increase cycles: more than +20");
    // Five decrease cycles at 0.9: 90, 81, 72, 64, 57, below 60 % of the start.
    let mut shrinking = aimd(seed(10));
    let limits: Vec<u32> = (0..5).map(|_| window(&mut shrinking, at, 0, 10)).collect();
    assert_eq!(limits, [90, 81, 72, 64, 57]);
}

#[test]
fn thresholds_are_strict() {
    let at = Instant::now();
    // Exactly 95 %: not above the success threshold.
    assert_eq!(window(&mut aimd(seed(20)), at, 19, 1), 100);
    // Exactly 80 %: not below the failure threshold.
    assert_eq!(window(&mut aimd(seed(10)), at, 8, 2), 100);
    assert_eq!(window(&mut aimd(seed(10)), at, 7, 3), 90);
}

#[test]
fn counters_reset_after_every_window_and_ignored_calls_do_not_count() {
    let at = Instant::now();
    let mut aimd = aimd(seed(10));
    assert_eq!(
        window(&mut aimd, at, 9, 0),
        100,
        "nine calls: no window yet"
    );
    let ignored = Sample::new(at, Duration::from_millis(1), 1, Outcome::Ignored);
    assert_eq!(aimd.update(&ignored), 100);
    assert_eq!(window(&mut aimd, at, 1, 0), 101);
    // The next window starts empty: 5 failures then 5 successes is 50 %.
    assert_eq!(window(&mut aimd, at, 5, 5), 90);
}

#[test]
fn limits_stay_within_min_and_max_and_fractions_accumulate() {
    let at = Instant::now();
    let config = AimdConfig {
        initial_limit: 11,
        min_limit: 10,
        max_limit: 12,
        increase_rate: 0.5,
        ..seed(1)
    };
    let mut aimd = aimd(config);
    let limits: Vec<u32> = (0..5).map(|_| window(&mut aimd, at, 1, 0)).collect();
    assert_eq!(limits, [11, 12, 12, 12, 12]);
    let limits: Vec<u32> = (0..3).map(|_| window(&mut aimd, at, 0, 1)).collect();
    assert_eq!(limits, [10, 10, 10]);
}

#[test]
fn a_quiet_service_closes_its_window_by_time() {
    let epoch = Instant::now();
    let mut aimd = aimd(AimdConfig::default());
    let call = |outcome| Sample::new(epoch, Duration::from_millis(10), 1, outcome);
    aimd.update(&call(Outcome::Failure));
    aimd.update(&call(Outcome::Success));
    let opened = epoch + Duration::from_millis(10);
    let interval = Duration::from_secs(10);
    assert_eq!(aimd.poll(opened + interval - Duration::from_nanos(1)), 100);
    assert_eq!(aimd.poll(opened + interval), 90, "50 % after 10 s");
    assert_eq!(
        aimd.poll(opened + interval * 5),
        90,
        "an empty window changes nothing"
    );
}

#[test]
fn the_seeds_validation_rules_name_each_field() {
    let base = AimdConfig::default;
    let field = |config: AimdConfig| config.validate().unwrap_err().field();
    assert_eq!(
        field(AimdConfig {
            initial_limit: 0,
            min_limit: 0,
            ..base()
        }),
        "min_limit"
    );
    assert_eq!(
        field(AimdConfig {
            max_limit: 5,
            ..base()
        }),
        "min_limit"
    );
    assert_eq!(
        field(AimdConfig {
            initial_limit: 5,
            ..base()
        }),
        "initial_limit"
    );
    assert_eq!(
        field(AimdConfig {
            initial_limit: 5000,
            ..base()
        }),
        "initial_limit"
    );
    assert_eq!(
        field(AimdConfig {
            increase_rate: 0.0,
            ..base()
        }),
        "increase_rate"
    );
    assert_eq!(
        field(AimdConfig {
            decrease_factor: 1.0,
            ..base()
        }),
        "decrease_factor"
    );
    assert_eq!(
        field(AimdConfig {
            decrease_factor: 0.0,
            ..base()
        }),
        "decrease_factor"
    );
    assert_eq!(
        field(AimdConfig {
            measurement_window: 0,
            ..base()
        }),
        "measurement_window"
    );
    assert_eq!(
        field(AimdConfig {
            measurement_interval: Duration::ZERO,
            ..base()
        }),
        "measurement_interval"
    );
    assert_eq!(
        field(AimdConfig {
            success_threshold: 1.1,
            ..base()
        }),
        "success_threshold"
    );
    assert_eq!(
        field(AimdConfig {
            failure_threshold: -0.1,
            ..base()
        }),
        "failure_threshold"
    );
    assert_eq!(
        field(AimdConfig {
            failure_threshold: 0.95,
            ..base()
        }),
        "failure_threshold"
    );
}
