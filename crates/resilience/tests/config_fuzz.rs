//! A fuzz-style property suite for every parser and every serde config: `Rate` strings,
//! priorities, durations, and each pattern's config read from TOML and from JSON.
//!
//! Inputs are generated (documents of known and unknown fields holding plausible and extreme
//! values: `u32::MAX`, `u64::MAX`, negatives, huge floats, `nan`/`inf`, absurd durations) or
//! mutated (byte flips, insertions, deletions and truncations of valid documents). Whatever
//! the input, nothing may panic, and every config that is accepted must build a working
//! instance: one call or acquire that succeeds or is refused with a typed error.
//!
//! The case counts are explicit below and add up to 101,000 per run (each pattern case
//! tries its document as TOML and as JSON, so about 164,000 documents in all).
#![cfg(feature = "serde")]

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use resilience::adaptive::AdaptiveConfig;
use resilience::backpressure::BackpressureConfig;
use resilience::bulkhead::BulkheadConfig;
use resilience::circuit_breaker::CircuitBreakerConfig;
use resilience::fallback::FallbackConfig;
use resilience::load_shed::{LoadShedderConfig, Priority};
use resilience::rate_limit::{LocalRateLimiter, RateLimiter, RateLimiterConfig};
use resilience::retry::RetryConfig;
use resilience::throttle::{AdaptiveThrottle, ThrottleConfig};
use resilience::timeout::TimeoutConfig;
use resilience::{
    AdaptiveLimiter, Backpressure, Bulkhead, CircuitBreaker, Error, Fallback, LoadShedder, Rate,
    Retry, Timeout,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Cases per pattern: mutated valid documents, and generated ones.
const MUTATED: u32 = 4_000;
const GENERATED: u32 = 3_000;
/// Cases of the string parsers.
const RATE_STRINGS: u32 = 12_000;
const RATE_SHAPED: u32 = 8_000;
const PRIORITIES: u32 = 8_000;
const DURATIONS: u32 = 10_000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // A failure is shrunk to a small input; the regression file keeps it.
        ..ProptestConfig::default()
    }
}

/// One runtime for the whole binary's calls: current thread, paused clock, so a retry or a
/// wait never sleeps for real.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

#[derive(Debug, Clone, Copy)]
enum Pattern {
    CircuitBreaker,
    Retry,
    Timeout,
    Bulkhead,
    RateLimit,
    LoadShed,
    Backpressure,
    Adaptive,
    Fallback,
    Throttle,
}

const PATTERNS: [Pattern; 10] = [
    Pattern::CircuitBreaker,
    Pattern::Retry,
    Pattern::Timeout,
    Pattern::Bulkhead,
    Pattern::RateLimit,
    Pattern::LoadShed,
    Pattern::Backpressure,
    Pattern::Adaptive,
    Pattern::Fallback,
    Pattern::Throttle,
];

impl Pattern {
    /// Valid TOML documents, mutated by the fuzzer (and, converted, as JSON).
    fn seeds(self) -> &'static [&'static str] {
        match self {
            Self::CircuitBreaker => &[
                "open_duration = \"30s\"\nsuccess_threshold = 2\ndetector = { type = \"failure_rate\", window = { calls = 20 }, threshold = 0.5, min_calls = 10 }\n",
                "open_duration = \"1s\"\nopen_duration_multiplier = 2.0\nmax_open_duration = \"1m\"\nhalf_open_max_calls = 3\ntimeout = \"250ms\"\ndetector = { type = \"consecutive_failures\", threshold = 5 }\n",
                "detector = { type = \"slow_call_rate\", window = { time = \"10s\" }, slow_call_duration = \"2s\", threshold = 0.8, min_calls = 5 }\n",
                "detector = { type = \"combined\", mode = \"any\", detectors = [{ type = \"failure_count\", threshold = 3, window = \"30s\" }, { type = \"consecutive_failures\", threshold = 2 }] }\n",
            ],
            Self::Retry => &[
                "max_attempts = 4\nbackoff = { type = \"exponential\", initial_delay = \"500ms\", multiplier = 2.5 }\njitter = { proportional = 0.1 }\nmax_delay = \"15s\"\nmax_elapsed = \"1m\"\nbudget = { retry_ratio = 0.2, window = \"10s\", min_retries_per_second = 10 }\n",
                "max_attempts = 3\nbackoff = { type = \"linear\", initial_delay = \"1s\", increment = \"2s\" }\njitter = \"full\"\nretry_rejections = true\nretry_timeouts = false\n",
                "backoff = { type = \"decorrelated_jitter\", initial_delay = \"100ms\" }\njitter = \"equal\"\n",
                "backoff = { type = \"fibonacci\", initial_delay = \"10ms\" }\n",
                "backoff = { type = \"constant\", delay = \"5s\" }\njitter = \"none\"\n",
            ],
            Self::Timeout => &["limit = \"2s\"\n", "timeout = \"150ms\"\n"],
            Self::Bulkhead => &[
                "max_concurrent = 20\nmax_waiting = 50\nwait_timeout = \"2s\"\n",
                "max_concurrent = 1\ntimeout = \"10ms\"\n",
            ],
            Self::RateLimit => &[
                "rate = \"100/minute\"\nburst = 20\nalgorithm = \"gcra\"\nmax_keys = 10000\nmax_wait = \"250ms\"\n",
                "rate = \"10/s\"\nalgorithm = \"token_bucket\"\nmax_limiters = 5\n",
                "rate = \"1000/hour\"\nalgorithm = \"sliding_window\"\n",
                "rate = \"10000/day\"\nalgorithm = \"sliding_log\"\nburst = 3\n",
                "rate = \"100/s\"\nalgorithm = \"sketched_window\"\nsketch = { width = 1024, depth = 4 }\n",
            ],
            // A system-aware shedder needs feature `system`; without it that seed is refused.
            #[cfg(feature = "system")]
            Self::LoadShed => &[
                "max_requests = 200\nmax_queue_depth = 50\nwait_timeout = \"250ms\"\nlow_threshold = 0.5\nnormal_threshold = 0.7\nhigh_threshold = 0.9\n",
                "max_requests = 4\nsystem = { cpu_threshold = 0.9, memory_threshold = 0.8, check_interval = \"2s\" }\n",
            ],
            #[cfg(not(feature = "system"))]
            Self::LoadShed => &[
                "max_requests = 200\nmax_queue_depth = 50\nwait_timeout = \"250ms\"\nlow_threshold = 0.5\nnormal_threshold = 0.7\nhigh_threshold = 0.9\n",
            ],
            Self::Backpressure => &[
                "max_pending = 100\nhigh_water_mark = 80\nlow_water_mark = 20\nwait_timeout = \"1s\"\n",
                "max_pending = 4\nhigh_water_mark = 3\nlow_water_mark = 1\ntimeout = \"5ms\"\n",
            ],
            Self::Adaptive => &[
                "wait_timeout = \"50ms\"\nalgorithm = { type = \"vegas\", max_limit = 500 }\n",
                "algorithm = { type = \"aimd\", initial_limit = 10, min_limit = 1, max_limit = 100, increase_rate = 1.0, decrease_factor = 0.9, measurement_window = 10, measurement_interval = \"1s\", success_threshold = 0.95, failure_threshold = 0.1 }\n",
                "algorithm = { type = \"gradient2\", initial_limit = 20, max_limit = 200, smoothing = 0.2, queue_size = 4, rtt_tolerance = 1.5, long_window = 600, probe_interval = 1000, window = \"1s\", min_window_samples = 10 }\n",
                "algorithm = { type = \"vegas\", initial_limit = 20, alpha = 3, beta = 6, smoothing = 1.0, slow_start = true, probe_multiplier = 30, window = \"1s\", min_window_samples = 10 }\n",
            ],
            Self::Fallback => &[
                "fallback_on = [\"rejected\", \"timeout\"]\n",
                "fallback_on = [\"inner\", \"retry_exhausted\", \"fallback_failed\"]\n",
            ],
            Self::Throttle => &[
                "window = \"2m\"\nk = 2.0\nmin_requests = 20\nmax_rejection_probability = 0.9\naggression = 1.0\nseed = 42\n",
                "window = \"1ms\"\nk = 1.0\nmin_requests = 0\nmax_rejection_probability = 0.0\n",
            ],
        }
    }

    /// Field names and value templates for generated documents; `$` is replaced by an
    /// extreme value.
    fn fields(self) -> &'static [(&'static str, &'static [&'static str])] {
        const DURATION: &[&str] = &["\"30s\"", "\"1ns\"", "$"];
        const COUNT: &[&str] = &["1", "10", "$"];
        const RATIO: &[&str] = &["0.5", "1.0", "$"];
        match self {
            Self::CircuitBreaker => &[
                ("open_duration", DURATION),
                ("open_duration_multiplier", &["1.0", "2.0", "$"]),
                ("max_open_duration", DURATION),
                ("success_threshold", COUNT),
                ("half_open_max_calls", COUNT),
                ("timeout", DURATION),
                (
                    "detector",
                    &[
                        r#"{"type": "consecutive_failures", "threshold": $}"#,
                        r#"{"type": "failure_count", "threshold": $, "window": "10s"}"#,
                        r#"{"type": "failure_count", "threshold": 3, "window": $}"#,
                        r#"{"type": "failure_rate", "window": {"calls": $}, "threshold": 0.5, "min_calls": 2}"#,
                        r#"{"type": "failure_rate", "window": {"time": $}, "threshold": 0.5, "min_calls": 2}"#,
                        r#"{"type": "failure_rate", "window": {"calls": 10}, "threshold": $, "min_calls": $}"#,
                        r#"{"type": "slow_call_rate", "window": {"calls": 10}, "slow_call_duration": $, "threshold": 0.5, "min_calls": 1}"#,
                        r#"{"type": "combined", "mode": "all", "detectors": [{"type": "consecutive_failures", "threshold": $}]}"#,
                        r#"{"type": "combined", "mode": $, "detectors": []}"#,
                        "$",
                    ],
                ),
            ],
            Self::Retry => &[
                ("max_attempts", COUNT),
                (
                    "backoff",
                    &[
                        r#"{"type": "constant", "delay": $}"#,
                        r#"{"type": "linear", "initial_delay": "1s", "increment": $}"#,
                        r#"{"type": "exponential", "initial_delay": $, "multiplier": 2.0}"#,
                        r#"{"type": "exponential", "initial_delay": "1s", "multiplier": $}"#,
                        r#"{"type": "fibonacci", "initial_delay": $}"#,
                        r#"{"type": "decorrelated_jitter", "initial_delay": $}"#,
                        "$",
                    ],
                ),
                (
                    "jitter",
                    &[r#""full""#, r#""equal""#, r#"{"proportional": $}"#, "$"],
                ),
                ("max_delay", DURATION),
                ("max_elapsed", DURATION),
                (
                    "budget",
                    &[
                        r#"{"retry_ratio": $, "window": "10s", "min_retries_per_second": 1}"#,
                        r#"{"retry_ratio": 0.1, "window": $, "min_retries_per_second": $}"#,
                        "$",
                    ],
                ),
                ("retry_rejections", &["true", "$"]),
                ("retry_timeouts", &["false", "$"]),
            ],
            Self::Timeout => &[("limit", DURATION), ("timeout", DURATION)],
            Self::Bulkhead => &[
                ("max_concurrent", COUNT),
                ("max_waiting", COUNT),
                ("wait_timeout", DURATION),
                ("timeout", DURATION),
            ],
            Self::RateLimit => &[
                ("rate", &[r#""10/second""#, r#""5/ms""#, "$"]),
                ("burst", COUNT),
                (
                    "algorithm",
                    &[
                        r#""gcra""#,
                        r#""token_bucket""#,
                        r#""sliding_window""#,
                        r#""sliding_log""#,
                        r#""sketched_window""#,
                        "$",
                    ],
                ),
                ("max_keys", COUNT),
                ("max_limiters", COUNT),
                ("max_wait", DURATION),
                (
                    "sketch",
                    &[
                        r#"{"width": $, "depth": 4}"#,
                        r#"{"width": 64, "depth": $}"#,
                        "$",
                    ],
                ),
            ],
            Self::LoadShed => &[
                ("max_requests", COUNT),
                ("max_queue_depth", COUNT),
                ("wait_timeout", DURATION),
                ("low_threshold", RATIO),
                ("normal_threshold", RATIO),
                ("high_threshold", RATIO),
                (
                    "system",
                    &[
                        r#"{"cpu_threshold": $, "memory_threshold": 0.9, "check_interval": "1s"}"#,
                        r#"{"cpu_threshold": 0.9, "memory_threshold": $, "check_interval": $}"#,
                        "$",
                    ],
                ),
            ],
            Self::Backpressure => &[
                ("max_pending", COUNT),
                ("high_water_mark", COUNT),
                ("low_water_mark", COUNT),
                ("wait_timeout", DURATION),
                ("timeout", DURATION),
            ],
            Self::Adaptive => &[
                ("wait_timeout", DURATION),
                (
                    "algorithm",
                    &[
                        r#"{"type": "aimd", "initial_limit": $, "min_limit": 1, "max_limit": 100}"#,
                        r#"{"type": "aimd", "increase_rate": $, "decrease_factor": $}"#,
                        r#"{"type": "aimd", "measurement_window": $, "measurement_interval": "1s"}"#,
                        r#"{"type": "aimd", "measurement_interval": $, "success_threshold": 0.9, "failure_threshold": $}"#,
                        r#"{"type": "vegas", "max_limit": $}"#,
                        r#"{"type": "vegas", "alpha": $, "beta": 1, "smoothing": $}"#,
                        r#"{"type": "vegas", "probe_multiplier": $, "window": $, "min_window_samples": $}"#,
                        r#"{"type": "gradient2", "initial_limit": $, "max_limit": $}"#,
                        r#"{"type": "gradient2", "smoothing": $, "rtt_tolerance": $, "queue_size": $}"#,
                        r#"{"type": "gradient2", "long_window": $, "probe_interval": $, "window": $}"#,
                        "$",
                    ],
                ),
            ],
            Self::Fallback => &[(
                "fallback_on",
                &[
                    r#"["rejected", $]"#,
                    r#"["inner", "timeout", "retry_exhausted", "fallback_failed", "rejected"]"#,
                    "[]",
                    "$",
                ],
            )],
            Self::Throttle => &[
                ("window", DURATION),
                ("k", &["1.0", "2.0", "$"]),
                ("min_requests", COUNT),
                ("max_rejection_probability", RATIO),
                ("aggression", &["1.0", "3.5", "$"]),
                ("seed", COUNT),
            ],
        }
    }

    /// Reads `text` as this pattern's config; when accepted, builds the pattern and makes
    /// one call. Panics only if the code under test does.
    fn exercise(self, text: &str, format: Format) {
        match self {
            Self::CircuitBreaker => {
                if let Some(config) = format.parse::<CircuitBreakerConfig>(text) {
                    if let Ok(breaker) = CircuitBreaker::from_config("fuzz", config) {
                        match breaker.try_acquire() {
                            Ok(permit) => permit.failure(),
                            Err(rejection) => drop(rejection.reason()),
                        }
                        // Opening computes the open period from the config: no overflow.
                        // A nanosecond-long open period may be over already: half-open.
                        breaker.trip();
                        if let Err(rejection) = breaker.try_acquire() {
                            let _ = rejection.retry_after();
                        }
                        let _ = breaker.metrics();
                        breaker.reset();
                        breaker
                            .try_acquire()
                            .expect("a reset breaker admits")
                            .success();
                    }
                }
            }
            Self::Retry => {
                if let Some(config) = format.parse::<RetryConfig>(text) {
                    if let Ok(retry) = Retry::from_config("fuzz", config) {
                        let result = block_on(retry.call(|| async { Ok::<_, String>(7) }));
                        assert_eq!(result.unwrap(), 7);
                    }
                }
            }
            Self::Timeout => {
                if let Some(config) = format.parse::<TimeoutConfig>(text) {
                    if let Ok(timeout) = Timeout::from_config("fuzz", config) {
                        let result = block_on(timeout.call(|| async { Ok::<_, String>(7) }));
                        assert!(matches!(result, Ok(7) | Err(Error::Timeout { .. })));
                    }
                }
            }
            Self::Bulkhead => {
                if let Some(config) = format.parse::<BulkheadConfig>(text) {
                    if let Ok(bulkhead) = Bulkhead::from_config("fuzz", config) {
                        drop(bulkhead.try_acquire().expect("a fresh bulkhead has a slot"));
                        let permit = block_on(bulkhead.acquire()).expect("a slot is free");
                        permit.success();
                    }
                }
            }
            Self::RateLimit => {
                if let Some(config) = format.parse::<RateLimiterConfig>(text) {
                    if let Ok(limiter) = LocalRateLimiter::from_config("fuzz", config) {
                        let decision = block_on(limiter.check("key"));
                        assert!(decision.is_allowed(), "the first call of a fresh key");
                        let _ = block_on(limiter.check("key"));
                    }
                }
            }
            Self::LoadShed => {
                if let Some(config) = format.parse::<LoadShedderConfig>(text) {
                    // A system-aware shedder starts its sampler on the current runtime.
                    let built = block_on(async { LoadShedder::from_config("fuzz", config) });
                    if let Ok(shedder) = built {
                        for priority in [Priority::Low, Priority::Critical] {
                            match shedder.try_acquire(priority) {
                                Ok(permit) => drop(permit),
                                Err(rejection) => drop(rejection.reason()),
                            }
                        }
                    }
                }
            }
            Self::Backpressure => {
                if let Some(config) = format.parse::<BackpressureConfig>(text) {
                    if let Ok(backpressure) = Backpressure::from_config("fuzz", config) {
                        let permit = backpressure.try_acquire().expect("nothing is pending");
                        drop(permit);
                        let permit = block_on(backpressure.acquire()).expect("nothing pending");
                        drop(permit);
                    }
                }
            }
            Self::Adaptive => {
                if let Some(config) = format.parse::<AdaptiveConfig>(text) {
                    if let Ok(limiter) = AdaptiveLimiter::from_config("fuzz", config) {
                        match limiter.try_acquire() {
                            Ok(permit) => drop(permit),
                            Err(rejection) => drop(rejection.reason()),
                        }
                    }
                }
            }
            Self::Fallback => {
                if let Some(config) = format.parse::<FallbackConfig>(text) {
                    let built = Fallback::<u32, String>::builder("fuzz")
                        .value(7)
                        .config(config)
                        .build();
                    if let Ok(fallback) = built {
                        let result =
                            block_on(fallback.call(|| async { Err::<u32, _>("down".to_string()) }));
                        assert!(matches!(result, Ok(7) | Err(Error::Inner(_))));
                    }
                }
            }
            Self::Throttle => {
                if let Some(config) = format.parse::<ThrottleConfig>(text) {
                    let built = block_on(async { AdaptiveThrottle::from_config("fuzz", config) });
                    if let Ok(throttle) = built {
                        // Enough refusals to judge with any `min_requests` up to 64.
                        for _ in 0..64 {
                            match throttle.try_acquire() {
                                Ok(permit) => permit.failure(),
                                Err(rejection) => drop(rejection.reason()),
                            }
                        }
                        let p = throttle.metrics().rejection_probability;
                        assert!((0.0..1.0).contains(&p), "{p}");
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Toml,
    Json,
}

impl Format {
    fn parse<C: DeserializeOwned>(self, text: &str) -> Option<C> {
        match self {
            Self::Toml => toml::from_str(text).ok(),
            Self::Json => serde_json::from_str(text).ok(),
        }
    }
}

/// Values that have broken parsers before: the edges of every integer type, huge, tiny and
/// negative floats, durations that overflow, and strings that look like numbers.
fn extreme() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            Value::from(0),
            Value::from(1),
            Value::from(-1),
            Value::from(u32::MAX),
            Value::from(u64::from(u32::MAX) + 1),
            Value::from(i64::MAX),
            Value::from(i64::MIN),
            Value::from(u64::MAX),
            Value::from(1e308),
            Value::from(-1e308),
            Value::from(f64::MIN_POSITIVE),
            Value::from(0.0),
            Value::from(-0.0),
            Value::from(1.0000001),
            Value::from("NaN"),
            Value::from(NAN),
            Value::from(INF),
            Value::from(NEG_INF),
            Value::from(""),
            Value::from("0s"),
            Value::from("0ns"),
            Value::from("1ns"),
            Value::from("18446744073709551615s"),
            Value::from("18446744073709551616ns"),
            Value::from("584542046090y"),
            Value::from("99999999999999999999h"),
            Value::from("1h 30m 5s 7ms"),
            Value::from("-5s"),
            Value::from("1e3s"),
            Value::from("4294967295/ns"),
            Value::from("18446744073709551615/day"),
            Value::from("0/s"),
            Value::from("-1/minute"),
            Value::from(true),
            Value::Null,
            Value::Array(vec![]),
            Value::Object(Default::default()),
        ]),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        "[a-z_]{0,12}".prop_map(Value::from),
        "[0-9]{1,22}(ns|us|ms|s|m|h|d|w|M|y|min|sec|hours)".prop_map(Value::from),
    ]
}

/// Markers for the floats JSON cannot write; in TOML they become `nan` and `inf`.
const NAN: &str = "__nan__";
const INF: &str = "__inf__";
const NEG_INF: &str = "__neg_inf__";

/// A document of some of `pattern`'s fields (and now and then a misspelt one), each from a
/// plausible template with an extreme value slotted in.
fn document(pattern: Pattern) -> impl Strategy<Value = Value> {
    let fields = pattern.fields();
    let field = (0..fields.len() + 1, any::<prop::sample::Index>(), extreme()).prop_map(
        move |(at, template, value)| match fields.get(at) {
            Some((name, templates)) => {
                let template = templates[template.index(templates.len())];
                let text = template.replace('$', &value.to_string());
                let value = serde_json::from_str(&text).expect("templates are valid JSON");
                ((*name).to_string(), value)
            }
            None => ("max_concurent".to_string(), value),
        },
    );
    prop::collection::vec(field, 0..6)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

/// The same document in both formats; TOML has no null and no integers past `i64::MAX`, so
/// it may have no TOML form.
fn both_forms(document: &Value) -> (Option<String>, String) {
    let json = document
        .to_string()
        .replace(&format!("\"{NAN}\""), "\"NaN\"")
        .replace(&format!("\"{INF}\""), "1e999")
        .replace(&format!("\"{NEG_INF}\""), "-1e999");
    let toml = toml::to_string(document).ok().map(|toml| {
        toml.replace(&format!("\"{NAN}\""), "nan")
            .replace(&format!("\"{INF}\""), "inf")
            .replace(&format!("\"{NEG_INF}\""), "-inf")
    });
    (toml, json)
}

/// One edit of a document's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, &'static str),
    Delete(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let inserted = prop::sample::select(vec![
        "9",
        "99999999999999999999",
        "-",
        ".",
        "e999",
        "\"",
        "{",
        "}",
        "[",
        "]",
        "=",
        ":",
        ",",
        "\n",
        " ",
        "nan",
        "inf",
        "/",
        "0",
        "ns",
        "y",
        "\u{0}",
        "é",
        "#",
    ]);
    prop_oneof![
        (any::<prop::sample::Index>(), 0..8_u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        (any::<prop::sample::Index>(), inserted).prop_map(|(at, s)| Mutation::Insert(at, s)),
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for mutation in mutations {
        let len = bytes.len().max(1);
        match *mutation {
            Mutation::FlipBit(at, bit) if !bytes.is_empty() => bytes[at.index(len)] ^= 1 << bit,
            Mutation::Replace(at, byte) if !bytes.is_empty() => bytes[at.index(len)] = byte,
            Mutation::Insert(at, inserted) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, inserted.bytes());
            }
            Mutation::Delete(at) if !bytes.is_empty() => drop(bytes.remove(at.index(len))),
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len() + 1)),
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A seed in both formats: the TOML as written, the JSON through serde_json's `Value`.
fn seed_forms(pattern: Pattern, index: prop::sample::Index) -> (String, String) {
    let seeds = pattern.seeds();
    let toml_text = seeds[index.index(seeds.len())];
    let value: Value = toml::from_str(toml_text).expect("seeds are valid TOML");
    (toml_text.to_string(), value.to_string())
}

/// Every seed is accepted in both formats and builds a working instance: the mutations
/// start from documents that mean something.
#[test]
fn every_seed_is_valid_in_both_formats() {
    for pattern in PATTERNS {
        for (at, toml_text) in pattern.seeds().iter().enumerate() {
            let value: Value = toml::from_str(toml_text).unwrap();
            let accepted = |text: &str, format: Format| -> bool {
                match pattern {
                    Pattern::CircuitBreaker => format
                        .parse::<CircuitBreakerConfig>(text)
                        .is_some_and(|c| CircuitBreaker::from_config("s", c).is_ok()),
                    Pattern::Retry => format
                        .parse::<RetryConfig>(text)
                        .is_some_and(|c| Retry::from_config("s", c).is_ok()),
                    Pattern::Timeout => format
                        .parse::<TimeoutConfig>(text)
                        .is_some_and(|c| Timeout::from_config("s", c).is_ok()),
                    Pattern::Bulkhead => format
                        .parse::<BulkheadConfig>(text)
                        .is_some_and(|c| Bulkhead::from_config("s", c).is_ok()),
                    Pattern::RateLimit => format
                        .parse::<RateLimiterConfig>(text)
                        .is_some_and(|c| LocalRateLimiter::from_config("s", c).is_ok()),
                    Pattern::LoadShed => format.parse::<LoadShedderConfig>(text).is_some_and(|c| {
                        block_on(async { LoadShedder::from_config("s", c).is_ok() })
                    }),
                    Pattern::Backpressure => format
                        .parse::<BackpressureConfig>(text)
                        .is_some_and(|c| Backpressure::from_config("s", c).is_ok()),
                    Pattern::Adaptive => format
                        .parse::<AdaptiveConfig>(text)
                        .is_some_and(|c| AdaptiveLimiter::from_config("s", c).is_ok()),
                    Pattern::Fallback => format.parse::<FallbackConfig>(text).is_some(),
                    Pattern::Throttle => format
                        .parse::<ThrottleConfig>(text)
                        .is_some_and(|c| AdaptiveThrottle::from_config("s", c).is_ok()),
                }
            };
            assert!(
                accepted(toml_text, Format::Toml),
                "{pattern:?} seed {at} (TOML)"
            );
            let json = value.to_string();
            assert!(
                accepted(&json, Format::Json),
                "{pattern:?} seed {at} (JSON): {json}"
            );
            pattern.exercise(toml_text, Format::Toml);
        }
    }
}

/// Regressions found by this suite, kept as plain tests.
#[test]
fn regressions() {
    // A keyed limiter reserved its whole `max_keys` at the first key: with a huge value from
    // a config file the allocation failed and aborted the process.
    for max_keys in [u64::MAX, i64::MAX as u64, u64::from(u32::MAX)] {
        let document = serde_json::json!({ "rate": "10/s", "max_keys": max_keys });
        Pattern::RateLimit.exercise(&document.to_string(), Format::Json);
        Pattern::RateLimit.exercise(
            &format!(
                "rate = \"10/s\"\nmax_keys = {}",
                max_keys.min(i64::MAX as u64)
            ),
            Format::Toml,
        );
    }
}

macro_rules! pattern_suites {
    ($($mutated:ident, $generated:ident => $pattern:expr;)*) => {$(
        proptest! {
            #![proptest_config(config(MUTATED))]
            #[test]
            fn $mutated(
                seed in any::<prop::sample::Index>(),
                mutations in prop::collection::vec(mutation(), 1..6),
            ) {
                let (toml_text, json) = seed_forms($pattern, seed);
                $pattern.exercise(&mutate(&toml_text, &mutations), Format::Toml);
                $pattern.exercise(&mutate(&json, &mutations), Format::Json);
            }
        }
        proptest! {
            #![proptest_config(config(GENERATED))]
            #[test]
            fn $generated(document in document($pattern)) {
                let (toml_text, json) = both_forms(&document);
                if let Some(toml_text) = toml_text {
                    $pattern.exercise(&toml_text, Format::Toml);
                }
                $pattern.exercise(&json, Format::Json);
            }
        }
    )*};
}

pattern_suites! {
    circuit_breaker_mutated, circuit_breaker_generated => Pattern::CircuitBreaker;
    retry_mutated, retry_generated => Pattern::Retry;
    timeout_mutated, timeout_generated => Pattern::Timeout;
    bulkhead_mutated, bulkhead_generated => Pattern::Bulkhead;
    rate_limit_mutated, rate_limit_generated => Pattern::RateLimit;
    load_shed_mutated, load_shed_generated => Pattern::LoadShed;
    backpressure_mutated, backpressure_generated => Pattern::Backpressure;
    adaptive_mutated, adaptive_generated => Pattern::Adaptive;
    fallback_mutated, fallback_generated => Pattern::Fallback;
    throttle_mutated, throttle_generated => Pattern::Throttle;
}

/// An accepted rate builds a limiter that admits a first call.
fn exercise_rate(rate: Rate) {
    let _ = (rate.count(), rate.period(), rate.burst(), rate.to_string());
    let limiter = LocalRateLimiter::from_config("fuzz", RateLimiterConfig::new(rate))
        .expect("a parsed rate is a valid config");
    assert!(block_on(limiter.check("key")).is_allowed());
}

proptest! {
    #![proptest_config(config(RATE_STRINGS))]
    #[test]
    fn rate_parses_any_string_without_panicking(text in any::<String>()) {
        if let Ok(rate) = text.parse::<Rate>() {
            exercise_rate(rate);
        }
        if let Ok(rate) = serde_json::from_value::<Rate>(Value::from(text)) {
            exercise_rate(rate);
        }
    }
}

proptest! {
    #![proptest_config(config(RATE_SHAPED))]
    #[test]
    fn rate_parses_rate_shaped_strings_without_panicking(
        text in "[ ]?[-+]?([0-9]{0,25}|4294967295|4294967296|18446744073709551615)(\\.[0-9]{0,3})?[ ]{0,2}/[ ]{0,2}[0-9]{0,3}[ ]?(s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days|ms|ns|us|w|fortnight|S|Second|SECONDS|)[ ]?",
    ) {
        if let Ok(rate) = text.parse::<Rate>() {
            exercise_rate(rate);
            // What it prints, it parses back to the same rate.
            prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        }
    }
}

proptest! {
    #![proptest_config(config(PRIORITIES))]
    #[test]
    fn priorities_parse_any_string_without_panicking(
        text in prop_oneof![
            any::<String>(),
            "[ ]?(low|normal|high|critical|LOW|Normal|HiGh|CRITICAL|urgent|)[ ]?",
        ],
    ) {
        let parsed = text.parse::<Priority>().ok();
        let deserialized = serde_json::from_value::<Priority>(Value::from(text)).ok();
        for priority in parsed.into_iter().chain(deserialized) {
            let shedder = LoadShedder::from_config("fuzz", LoadShedderConfig::default()).unwrap();
            drop(shedder.try_acquire(priority).expect("an idle shedder admits every priority"));
        }
    }
}

proptest! {
    #![proptest_config(config(DURATIONS))]
    #[test]
    fn duration_fields_accept_or_refuse_without_panicking(
        text in prop_oneof![
            any::<String>(),
            "[ ]?[-+]?[0-9]{0,25}(\\.[0-9]{1,3})?[ ]?(ns|us|µs|ms|s|sec|m|min|h|hr|d|day|w|week|M|month|y|year|years)?( [0-9]{1,20}(ms|s|h|y))?[ ]?",
        ],
    ) {
        let value = Value::from(text);
        for field in ["limit", "timeout"] {
            let document = serde_json::json!({ field: value.clone() });
            if let Ok(config) = serde_json::from_value::<TimeoutConfig>(document) {
                if let Ok(timeout) = Timeout::from_config("fuzz", config) {
                    let result = block_on(timeout.call(|| async { Ok::<_, String>(1) }));
                    assert!(matches!(result, Ok(1) | Err(Error::Timeout { .. })));
                    prop_assert!(timeout.limit() <= resilience::MAX_DURATION);
                }
            }
        }
        let document = serde_json::json!({ "open_duration": value });
        if let Ok(config) = serde_json::from_value::<CircuitBreakerConfig>(document) {
            if let Ok(breaker) = CircuitBreaker::from_config("fuzz", config) {
                breaker.trip();
                if let Err(rejection) = breaker.try_acquire() {
                    let retry_after = rejection.retry_after();
                    prop_assert!(retry_after.is_some_and(|wait| wait <= resilience::MAX_DURATION));
                }
            }
        }
        let document = serde_json::json!({ "max_concurrent": 1, "wait_timeout": value });
        if let Ok(config) = serde_json::from_value::<BulkheadConfig>(document) {
            if let Ok(bulkhead) = Bulkhead::from_config("fuzz", config) {
                let held = bulkhead.try_acquire().unwrap();
                drop(held);
                prop_assert!(bulkhead.config().wait_timeout.unwrap_or(Duration::ZERO) <= resilience::MAX_DURATION);
            }
        }
    }
}
