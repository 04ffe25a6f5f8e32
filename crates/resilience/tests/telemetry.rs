//! Feature `metrics`: what each pattern records through the `metrics` facade, read back from
//! a recorder of plain atomics (`metrics-util`'s `Registry`; its `DebuggingRecorder` resets
//! every value when read, which makes gauges unreadable twice). Each test builds its instances
//! inside `with_local_recorder`, so tests run in parallel without a global recorder; the kept
//! handles go on recording into it after the closure returns.

mod common {
    pub(crate) mod recorder;
}

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::recorder::Values;
use metrics::Key;

use resilience::adaptive::{AdaptiveLimiter, VegasConfig};
use resilience::load_shed::Priority;
use resilience::rate_limit::DirectRateLimiter;
use resilience::telemetry::{MetricType, METRICS};
use resilience::{
    Backpressure, Bulkhead, CircuitBreaker, Fallback, LoadShedder, Rate, Retry, Timeout,
};

/// A recorder, and whatever `build` builds registered with it.
fn recorded<T>(build: impl FnOnce() -> T) -> (Values, T) {
    let values = Values::new();
    let built = metrics::with_local_recorder(&values, build);
    (values, built)
}

fn matches(key: &Key, metric: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == metric
        && labels.iter().all(|(name, value)| {
            key.labels()
                .any(|label| label.key() == *name && label.value() == *value)
        })
}

/// The value of the one series of `metric` whose labels include every pair of `labels`.
fn counter(values: &Values, metric: &str, labels: &[(&str, &str)]) -> u64 {
    let found: Vec<_> = values
        .0
        .get_counter_handles()
        .into_iter()
        .filter(|(key, _)| matches(key, metric, labels))
        .collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}");
    found[0].1.load(Ordering::SeqCst)
}

fn gauge(values: &Values, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = values
        .0
        .get_gauge_handles()
        .into_iter()
        .filter(|(key, _)| matches(key, metric, labels))
        .collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}");
    f64::from_bits(found[0].1.load(Ordering::SeqCst))
}

fn histogram(values: &Values, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let found: Vec<_> = values
        .0
        .get_histogram_handles()
        .into_iter()
        .filter(|(key, _)| matches(key, metric, labels))
        .collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}");
    found[0].1.data()
}

#[tokio::test]
async fn a_breaker_trip_records_the_transition_the_state_and_the_rejection() {
    let (metrics, breaker) = recorded(|| {
        CircuitBreaker::builder("payments")
            .failure_threshold(2)
            .build()
            .unwrap()
    });
    let state = |state| {
        gauge(
            &metrics,
            "resilience_circuit_breaker_state",
            &[("name", "payments"), ("state", state)],
        )
    };
    assert_eq!((state("closed"), state("open")), (1.0, 0.0));

    breaker.call(|| async { Ok::<_, &str>(()) }).await.unwrap();
    for _ in 0..2 {
        let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    }
    let rejected = breaker.call(|| async { Ok::<_, &str>(()) }).await;
    assert!(rejected.unwrap_err().is_rejected());

    let calls = |outcome| {
        counter(
            &metrics,
            "resilience_circuit_breaker_calls_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(
        (calls("success"), calls("failure"), calls("rejected")),
        (1, 2, 1)
    );
    let transitions = |from, to| {
        counter(
            &metrics,
            "resilience_circuit_breaker_transitions_total",
            &[("from", from), ("to", to)],
        )
    };
    assert_eq!(transitions("closed", "open"), 1);
    assert_eq!(transitions("open", "closed"), 0);
    assert_eq!((state("closed"), state("open")), (0.0, 1.0));

    breaker.reset();
    assert_eq!(transitions("open", "closed"), 1);
    assert_eq!((state("closed"), state("open")), (1.0, 0.0));
}

#[tokio::test]
async fn a_rate_limit_rejection_records_the_decision() {
    let (metrics, limiter) = recorded(|| {
        DirectRateLimiter::builder("partner")
            .rate(Rate::per_second(2))
            .build()
            .unwrap()
    });
    for _ in 0..3 {
        let _ = limiter.try_acquire();
    }
    let decisions = |decision| {
        counter(
            &metrics,
            "resilience_rate_limit_decisions_total",
            &[("name", "partner"), ("decision", decision)],
        )
    };
    assert_eq!((decisions("allowed"), decisions("rejected")), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_gauges_go_up_and_down() {
    let (metrics, bulkhead) = recorded(|| {
        Bulkhead::builder("db")
            .max_concurrent(1)
            .max_waiting(1)
            .build()
            .unwrap()
    });
    let active = || gauge(&metrics, "resilience_bulkhead_active", &[("name", "db")]);
    let queued = || gauge(&metrics, "resilience_bulkhead_queued", &[("name", "db")]);
    let held = bulkhead.try_acquire().unwrap();
    assert_eq!((active(), queued()), (1.0, 0.0));

    let waiter = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.map(drop) }
    });
    tokio::task::yield_now().await;
    assert_eq!((active(), queued()), (1.0, 1.0));
    assert!(bulkhead.acquire().await.is_err(), "the queue is full");

    tokio::time::advance(Duration::from_millis(5)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!((active(), queued()), (0.0, 0.0));
    let decisions = |decision| {
        counter(
            &metrics,
            "resilience_bulkhead_decisions_total",
            &[("decision", decision)],
        )
    };
    assert_eq!((decisions("accepted"), decisions("queue_full")), (2, 1));
    assert_eq!(
        histogram(&metrics, "resilience_bulkhead_wait_duration_seconds", &[]),
        [0.005]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_attempts_are_counted_by_result() {
    let (metrics, retry) = recorded(|| Retry::builder("fetch").max_attempts(3).build().unwrap());
    let mut failures = 1;
    retry
        .call(|| {
            let fail = failures > 0;
            failures -= 1;
            async move {
                if fail {
                    Err("flaky")
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
    let _ = retry.call(|| async { Err::<(), _>("down") }).await;
    let attempts = |result| {
        counter(
            &metrics,
            "resilience_retry_attempts_total",
            &[("name", "fetch"), ("result", result)],
        )
    };
    assert_eq!(
        (attempts("success"), attempts("retry"), attempts("give_up")),
        (1, 3, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_counted_and_latencies_recorded() {
    let (metrics, timeout) = recorded(|| {
        Timeout::builder("search")
            .limit(Duration::from_millis(100))
            .build()
            .unwrap()
    });
    timeout
        .call(|| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, &str>(())
        })
        .await
        .unwrap();
    let late = timeout
        .call(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, &str>(())
        })
        .await;
    assert!(late.unwrap_err().is_timeout());
    assert_eq!(
        counter(&metrics, "resilience_timeout_total", &[("name", "search")]),
        1
    );
    assert_eq!(
        histogram(&metrics, "resilience_timeout_call_duration_seconds", &[]),
        [0.03]
    );
}

#[tokio::test]
async fn load_shedder_backpressure_adaptive_and_fallback_record_theirs() {
    let (metrics, (shedder, backpressure, adaptive, fallback)) = recorded(|| {
        (
            LoadShedder::builder("edge")
                .max_requests(1)
                .max_queue_depth(0)
                .build()
                .unwrap(),
            Backpressure::builder("jobs")
                .max_pending(1)
                .water_marks(1, 0)
                .build()
                .unwrap(),
            // Vegas learns from latency, so its calls feed the latency histogram (AIMD's
            // do not: it reads no latency).
            AdaptiveLimiter::builder("upstream")
                .vegas(VegasConfig::default())
                .build()
                .unwrap(),
            Fallback::<u32, &str>::builder("cached")
                .value(7)
                .build()
                .unwrap(),
        )
    });

    let permit = shedder.try_acquire(Priority::Critical).unwrap();
    assert_eq!(gauge(&metrics, "resilience_load_shed_active", &[]), 1.0);
    assert!(shedder.try_acquire(Priority::Low).is_err());
    drop(permit);
    assert_eq!(gauge(&metrics, "resilience_load_shed_active", &[]), 0.0);
    let shed = |decision, priority| {
        counter(
            &metrics,
            "resilience_load_shed_decisions_total",
            &[("decision", decision), ("priority", priority)],
        )
    };
    assert_eq!((shed("accepted", "critical"), shed("shed", "low")), (1, 1));

    let item = backpressure.try_acquire().unwrap();
    assert!(backpressure.try_acquire().is_err());
    assert_eq!(gauge(&metrics, "resilience_backpressure_active", &[]), 1.0);
    drop(item);
    assert_eq!(gauge(&metrics, "resilience_backpressure_active", &[]), 0.0);
    let pressure = |decision| {
        counter(
            &metrics,
            "resilience_backpressure_decisions_total",
            &[("decision", decision)],
        )
    };
    assert_eq!((pressure("accepted"), pressure("rejected")), (1, 1));

    assert_eq!(
        gauge(&metrics, "resilience_adaptive_limit", &[]),
        f64::from(adaptive.limit())
    );
    adaptive.try_acquire().unwrap().success();
    assert_eq!(
        counter(
            &metrics,
            "resilience_adaptive_decisions_total",
            &[("decision", "accepted")]
        ),
        1
    );
    assert_eq!(
        histogram(&metrics, "resilience_adaptive_latency_seconds", &[]).len(),
        1
    );

    assert_eq!(fallback.call(|| async { Err("down") }).await.unwrap(), 7);
    assert_eq!(
        counter(
            &metrics,
            "resilience_fallback_total",
            &[("result", "triggered")]
        ),
        1
    );
}

#[test]
fn instances_built_without_a_recorder_work_and_record_nothing() {
    let breaker = CircuitBreaker::builder("quiet").build().unwrap();
    breaker.trip();
    assert!(breaker.state().is_open());
}

#[test]
fn the_docs_table_lists_every_metric_and_nothing_else() {
    let docs = include_str!("../src/telemetry/mod.rs");
    let readme = include_str!("../../../README.md");
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| {
                line.trim_start_matches("//!")
                    .trim()
                    .strip_prefix("| `resilience_")
            })
            .map(|rest| format!("resilience_{}", &rest[..rest.find('`').unwrap()]))
            .collect()
    };
    let names: Vec<String> = METRICS
        .iter()
        .map(|metric| metric.name.to_owned())
        .collect();
    assert_eq!(rows(docs), names, "the module docs' table");
    assert_eq!(rows(readme), names, "README's table");
    for metric in METRICS {
        let suffix_ok = match metric.kind {
            MetricType::Counter => metric.name.ends_with("_total"),
            MetricType::Histogram => metric.name.ends_with("_seconds"),
            MetricType::Gauge => !metric.name.ends_with("_total"),
        };
        assert!(
            suffix_ok,
            "{} breaks the Prometheus naming conventions",
            metric.name
        );
    }
}
