use super::*;
use crate::adaptive::{LimitAlgorithm, Sample};
use crate::classify::Outcome;

const WINDOW: Duration = Duration::from_secs(1);

/// Drives one window: `count` calls started at `*clock`, each `rtt_ms` long at `in_flight`,
/// then a poll when the window is due. Returns the limit after it.
struct Driver {
    vegas: Vegas,
    clock: Instant,
}

impl Driver {
    fn new(config: VegasConfig) -> Self {
        config.validate().unwrap();
        Self {
            vegas: Vegas::with_seed(config, 7),
            clock: Instant::now(),
        }
    }

    fn window(&mut self, rtt_ms: u64, in_flight: u32, outcome: Outcome) -> u32 {
        let rtt = Duration::from_millis(rtt_ms);
        for _ in 0..10 {
            let sample = Sample::new(self.clock, rtt, in_flight, outcome);
            self.vegas.update(&sample);
        }
        self.clock += WINDOW + rtt;
        self.vegas.poll(self.clock)
    }
}

fn no_probe() -> VegasConfig {
    VegasConfig {
        probe_multiplier: 0,
        ..VegasConfig::default()
    }
}

#[test]
fn the_first_window_measures_the_no_load_latency() {
    let mut driver = Driver::new(no_probe());
    assert_eq!(driver.window(100, 20, Outcome::Success), 20);
    assert_eq!(driver.vegas.rtt_noload(), Some(Duration::from_millis(100)));
    // A faster window lowers it and changes nothing else.
    assert_eq!(driver.window(80, 20, Outcome::Success), 20);
    assert_eq!(driver.vegas.rtt_noload(), Some(Duration::from_millis(80)));
}

#[test]
fn slow_start_doubles_until_queueing_then_drops_to_the_served_concurrency() {
    let mut driver = Driver::new(no_probe());
    driver.window(100, 20, Outcome::Success);
    assert_eq!(driver.window(100, 20, Outcome::Success), 40);
    assert_eq!(driver.window(100, 40, Outcome::Success), 80);
    assert!(driver.vegas.in_slow_start());
    // 80 in flight at twice the latency: the dependency served 40 without queueing.
    assert_eq!(driver.window(200, 80, Outcome::Success), 40);
    assert!(!driver.vegas.in_slow_start());
}

#[test]
fn netflix_rules_after_slow_start() {
    let config = VegasConfig {
        slow_start: false,
        initial_limit: 100,
        ..no_probe()
    };
    // root = 2 at 100: threshold 2, alpha 6, beta 12.
    let mut driver = Driver::new(config);
    driver.window(100, 100, Outcome::Success);
    // No queue: + beta.
    assert_eq!(driver.window(100, 100, Outcome::Success), 112);
    // queue = ceil(112 * (1 - 100/104)) = 5 < alpha 6: + root.
    assert_eq!(driver.window(104, 112, Outcome::Success), 114);
    // queue = ceil(114 * (1 - 100/110)) = 11: between alpha and beta, unchanged.
    assert_eq!(driver.window(110, 114, Outcome::Success), 114);
    // queue = ceil(114 * (1 - 100/200)) = 57 > beta: - root.
    assert_eq!(driver.window(200, 114, Outcome::Success), 112);
    // A failure: - root, whatever the latency.
    assert_eq!(driver.window(100, 112, Outcome::Failure), 110);
    // Fewer than half in flight: unchanged.
    assert_eq!(driver.window(100, 54, Outcome::Success), 110);
}

#[test]
fn limits_are_clamped_and_short_windows_discarded() {
    let config = VegasConfig {
        initial_limit: 10,
        max_limit: 15,
        min_limit: 9,
        ..no_probe()
    };
    let mut driver = Driver::new(config);
    driver.window(100, 10, Outcome::Success);
    assert_eq!(driver.window(100, 10, Outcome::Success), 15);
    for _ in 0..10 {
        driver.window(100, 15, Outcome::Failure);
    }
    assert_eq!(driver.vegas.limit(), 9);
    // Nine samples are too few to update on.
    let rtt = Duration::from_millis(100);
    for _ in 0..9 {
        driver
            .vegas
            .update(&Sample::new(driver.clock, rtt, 9, Outcome::Failure));
    }
    assert_eq!(driver.vegas.poll(driver.clock + WINDOW * 2), 9);
}

#[test]
fn probes_forget_the_no_load_latency_halve_and_skip_older_calls() {
    let config = VegasConfig {
        initial_limit: 10,
        probe_multiplier: 1,
        slow_start: false,
        ..VegasConfig::default()
    };
    let mut driver = Driver::new(config);
    let mut probed = false;
    for _ in 0..12 {
        let before = driver.vegas.limit();
        // Four in flight: app-limited, so the limit holds still until the probe.
        let after = driver.window(100, 4, Outcome::Success);
        if driver.vegas.rtt_noload().is_none() {
            assert_eq!(after, before / 2, "a probe halves the limit");
            probed = true;
            break;
        }
    }
    assert!(
        probed,
        "a probe within 10 windows (probe_multiplier 1, limit 10)"
    );
    // A call admitted before the probe is discarded: the latency is not learnt from it.
    let stale = Sample::new(
        driver.clock - WINDOW * 3,
        Duration::from_millis(5),
        10,
        Outcome::Success,
    );
    for _ in 0..20 {
        driver.vegas.update(&stale);
    }
    driver.vegas.poll(driver.clock + WINDOW * 2);
    assert_eq!(driver.vegas.rtt_noload(), None);
}

#[test]
fn every_invalid_field_is_named() {
    let base = VegasConfig::default;
    let field = |config: VegasConfig| config.validate().unwrap_err().field();
    assert_eq!(
        field(VegasConfig {
            min_limit: 0,
            ..base()
        }),
        "min_limit"
    );
    assert_eq!(
        field(VegasConfig {
            initial_limit: 2000,
            ..base()
        }),
        "initial_limit"
    );
    assert_eq!(field(VegasConfig { alpha: 0, ..base() }), "alpha");
    assert_eq!(field(VegasConfig { alpha: 7, ..base() }), "alpha");
    assert_eq!(
        field(VegasConfig {
            smoothing: 0.0,
            ..base()
        }),
        "smoothing"
    );
    assert_eq!(
        field(VegasConfig {
            window: Duration::ZERO,
            ..base()
        }),
        "window"
    );
    assert_eq!(
        field(VegasConfig {
            min_window_samples: 0,
            ..base()
        }),
        "min_window_samples"
    );
}
