use super::*;
use crate::adaptive::{LimitAlgorithm, Sample};
use crate::classify::Outcome;

struct Driver {
    gradient: Gradient2,
    clock: Instant,
}

impl Driver {
    fn new(config: Gradient2Config) -> Self {
        config.validate().unwrap();
        Self {
            gradient: Gradient2::with_seed(config, 3),
            clock: Instant::now(),
        }
    }

    fn window(&mut self, rtt_ms: u64, in_flight: u32) -> u32 {
        let rtt = Duration::from_millis(rtt_ms);
        for _ in 0..10 {
            let sample = Sample::new(self.clock, rtt, in_flight, Outcome::Success);
            self.gradient.update(&sample);
        }
        self.clock += Duration::from_secs(1) + rtt;
        self.gradient.poll(self.clock)
    }
}

fn millis(duration: Option<Duration>) -> f64 {
    duration.unwrap().as_secs_f64() * 1e3
}

fn config() -> Gradient2Config {
    Gradient2Config {
        min_limit: 1,
        probe_interval: 0,
        ..Gradient2Config::default()
    }
}

#[test]
fn without_queueing_the_limit_grows_by_the_smoothed_headroom() {
    let mut driver = Driver::new(config());
    // 20 -> 20.8 -> 21.6 -> 22.4: + queue_size * smoothing per window.
    let limits: Vec<u32> = (0..3).map(|_| driver.window(100, 20)).collect();
    assert_eq!(limits, [20, 21, 22]);
    assert!((millis(driver.gradient.baseline()) - 100.0).abs() < 1e-6);
}

#[test]
fn latency_above_the_tolerance_shrinks_the_limit_at_most_by_half() {
    let mut driver = Driver::new(Gradient2Config {
        initial_limit: 100,
        ..config()
    });
    // Warm the baseline up at 100 ms, app-limited so the limit holds still.
    for _ in 0..10 {
        assert_eq!(driver.window(100, 10), 100);
    }
    // 1.5 * 100 / 300 = 0.5: target 54, smoothed 100 * 0.8 + 54 * 0.2 = 90.8.
    assert_eq!(driver.window(300, 100), 90);
    // Within the tolerance (150 ms = 1.5 x): gradient 1, grows by 0.8.
    assert_eq!(driver.window(150, 100), 91);
    // App-limited: unchanged.
    assert_eq!(driver.window(1000, 10), 91);
}

#[test]
fn the_baseline_ignores_slower_windows_after_its_warm_up() {
    let mut driver = Driver::new(config());
    for _ in 0..10 {
        driver.window(100, 20);
    }
    for _ in 0..50 {
        driver.window(140, 30);
    }
    assert!((millis(driver.gradient.baseline()) - 100.0).abs() < 1e-6);
    driver.window(80, 30);
    let baseline = millis(driver.gradient.baseline());
    assert!(baseline < 100.0 && baseline > 99.0, "{baseline}");
    // Much faster than the baseline: the 5 % cut applies too.
    driver.window(10, 30);
    assert!(millis(driver.gradient.baseline()) < 95.0);
}

#[test]
fn a_probe_restarts_the_baseline_at_half_the_limit() {
    let mut driver = Driver::new(Gradient2Config {
        initial_limit: 40,
        probe_interval: 30,
        ..config()
    });
    let probed = (0..30).any(|_| {
        driver.window(100, 10);
        driver.gradient.baseline().is_none()
    });
    assert!(probed, "probed within 30 windows");
    assert_eq!(driver.gradient.limit(), 20, "at half the limit");
    // A call admitted before the probe is skipped.
    let stale = Sample::new(
        driver.clock - Duration::from_secs(5),
        Duration::from_millis(5),
        20,
        Outcome::Success,
    );
    for _ in 0..20 {
        driver.gradient.update(&stale);
    }
    driver.gradient.poll(driver.clock + Duration::from_secs(2));
    assert_eq!(driver.gradient.baseline(), None);
    // The next windows measure the (slower) latency afresh.
    driver.window(300, 20);
    assert!((millis(driver.gradient.baseline()) - 300.0).abs() < 1e-6);
    // Once the new baseline has warmed up (10 windows), the old limit is back.
    for _ in 0..8 {
        assert!(driver.window(300, 20) < 40);
    }
    assert_eq!(driver.window(300, 20), 40);
}

#[test]
fn every_invalid_field_is_named() {
    let base = Gradient2Config::default;
    let field = |config: Gradient2Config| config.validate().unwrap_err().field();
    assert_eq!(
        field(Gradient2Config {
            max_limit: 10,
            ..base()
        }),
        "min_limit"
    );
    assert_eq!(
        field(Gradient2Config {
            initial_limit: 10,
            ..base()
        }),
        "initial_limit"
    );
    assert_eq!(
        field(Gradient2Config {
            smoothing: 2.0,
            ..base()
        }),
        "smoothing"
    );
    assert_eq!(
        field(Gradient2Config {
            rtt_tolerance: 0.9,
            ..base()
        }),
        "rtt_tolerance"
    );
    assert_eq!(
        field(Gradient2Config {
            long_window: 0,
            ..base()
        }),
        "long_window"
    );
    assert_eq!(
        field(Gradient2Config {
            window: Duration::ZERO,
            ..base()
        }),
        "window"
    );
}
