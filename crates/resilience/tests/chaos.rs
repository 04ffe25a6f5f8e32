//! Chaos through the public API: rates, seeds, the run-time switch, exact latency under
//! paused time, and chaos inside a pipeline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::chaos::{Chaos, ChaosConfig, ChaosEvent, Injections};
use resilience::pipeline::Pipeline;
use resilience::{Error, PatternKind, Retry, Timeout};
use resilience_testkit::EventRecorder;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

type Faulty = Chaos<u32, String>;

fn faults(rate: f64, seed: u64) -> Faulty {
    Chaos::builder("test")
        .fault(rate, || "injected".to_owned())
        .seed(seed)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn injected_latency_is_exact_and_the_call_then_runs() {
    let chaos = Faulty::builder("slow")
        .latency(1.0, 250 * MS)
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(chaos.call(|| async { Ok(1) }).await.unwrap(), 1);
    assert_eq!(started.elapsed(), 250 * MS);
    let metrics = chaos.metrics();
    assert_eq!(metrics.latencies_injected, 1);
    assert_eq!(metrics.total_injected_latency, 250 * MS);
}

#[test]
fn the_same_seed_gives_the_same_injections_and_another_seed_others() {
    let sequence = |seed| {
        let chaos = faults(0.5, seed);
        (0..1_000).map(|_| chaos.roll().fault).collect::<Vec<_>>()
    };
    assert_eq!(sequence(42), sequence(42));
    assert_ne!(sequence(42), sequence(43));
}

#[test]
fn rate_zero_never_injects_and_rate_one_always_does() {
    let never = faults(0.0, 1);
    let always = faults(1.0, 1);
    for _ in 0..10_000 {
        assert!(never.roll().is_none());
        assert!(always.roll().fault);
    }
}

#[test]
fn a_rate_is_the_share_of_calls_hit() {
    let chaos = faults(0.3, 9);
    let hits = (0..20_000).filter(|_| chaos.roll().fault).count();
    assert!((5_700..=6_300).contains(&hits), "{hits} of 20,000 at 0.3");
}

#[tokio::test(start_paused = true)]
async fn the_switch_works_at_run_time_and_off_counts_nothing() {
    let chaos = faults(1.0, 1);
    let clone = chaos.clone();
    assert!(chaos.call(|| async { Ok(1) }).await.is_err());
    clone.set_enabled(false);
    assert!(!chaos.is_enabled());
    assert_eq!(chaos.roll(), Injections::NONE);
    assert_eq!(chaos.call(|| async { Ok(1) }).await.unwrap(), 1);
    assert_eq!(chaos.metrics().total_calls, 1, "nothing counted while off");
    assert!(!chaos.config().enabled);
    clone.set_enabled(true);
    assert!(matches!(
        chaos.call(|| async { Ok(1) }).await,
        Err(Error::Inner(e)) if e == "injected"
    ));
    let metrics = chaos.metrics();
    assert_eq!((metrics.total_calls, metrics.faults_injected), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_chaos_built_disabled_injects_nothing_until_enabled() {
    let chaos = Faulty::builder("off")
        .fault(1.0, || "injected".to_owned())
        .enabled(false)
        .build()
        .unwrap();
    assert_eq!(chaos.call(|| async { Ok(3) }).await.unwrap(), 3);
    chaos.set_enabled(true);
    assert!(chaos.call(|| async { Ok(3) }).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn faults_and_outcomes_replace_the_call_and_behaviours_precede_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let hooks = Arc::new(AtomicUsize::new(0));
    let operation = || {
        let calls = Arc::clone(&calls);
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        }
    };
    let outcome = Faulty::builder("outcome")
        .outcome(1.0, || 99)
        .build()
        .unwrap();
    assert_eq!(outcome.call(operation()).await.unwrap(), 99);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "replaced, never called");

    let counted = Arc::clone(&hooks);
    let behavior = Faulty::builder("behavior")
        .behavior(1.0, move || {
            let counted = Arc::clone(&counted);
            async move {
                tokio::time::sleep(10 * MS).await;
                counted.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(behavior.call(operation()).await.unwrap(), 1);
    assert_eq!(started.elapsed(), 10 * MS, "the hook ran first, to its end");
    assert_eq!(
        (hooks.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)),
        (1, 1)
    );

    // A fault wins over an outcome.
    let both = Faulty::builder("both")
        .fault(1.0, || "fault".to_owned())
        .outcome(1.0, || 99)
        .build()
        .unwrap();
    assert!(matches!(both.call(operation()).await, Err(Error::Inner(e)) if e == "fault"));
}

#[test]
fn caller_draws_make_decisions_independent_of_call_order() {
    let chaos = faults(0.5, 1);
    assert!(chaos.roll_with(|| 0.49).fault);
    assert!(!chaos.roll_with(|| 0.5).fault);
    chaos.set_enabled(false);
    assert!(chaos.roll_with(|| 0.0).is_none());
}

#[tokio::test(start_paused = true)]
async fn every_injection_is_an_event() {
    let chaos = Faulty::builder("events")
        .latency(1.0, 5 * MS)
        .behavior(1.0, || async {})
        .fault(1.0, || "x".to_owned())
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(chaos.events());
    let _ = chaos.call(|| async { Ok(1) }).await;
    assert_eq!(
        recorder.names(),
        [
            "chaos_latency_injected",
            "chaos_behavior_injected",
            "chaos_fault_injected"
        ]
    );
    let first = &recorder.events()[0];
    assert_eq!(first.pattern(), PatternKind::Chaos);
    assert_eq!(
        first.payload::<ChaosEvent>(),
        Some(&ChaosEvent::LatencyInjected { latency: 5 * MS })
    );
}

#[test]
fn invalid_rates_and_missing_functions_are_config_errors() {
    let error = Faulty::builder("x")
        .fault(1.5, String::new)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "fault_rate");
    let error = Faulty::builder("x").latency(-0.5, MS).build().unwrap_err();
    assert_eq!(error.field(), "latency_rate");
    let config = ChaosConfig {
        outcome_rate: 0.5,
        ..ChaosConfig::default()
    };
    let error = Faulty::from_config("x", config).unwrap_err();
    assert_eq!(error.field(), "outcome_rate");
    let latency_only = ChaosConfig {
        latency_rate: 0.5,
        latency: MS,
        ..ChaosConfig::default()
    };
    Faulty::from_config("x", latency_only).unwrap();
}

#[tokio::test(start_paused = true)]
async fn inside_a_pipeline_injected_trouble_looks_like_the_dependencys_own() {
    // Faults are retried like real ones.
    let chaos = Chaos::<u32, String>::builder("flaky")
        .fault(1.0, || "injected".to_owned())
        .build()
        .unwrap();
    let pipeline = Pipeline::<u32, String>::builder("p")
        .retry(Retry::builder("p").max_attempts(3).build().unwrap())
        .chaos(chaos.clone())
        .build()
        .unwrap();
    let attempts = AtomicUsize::new(0);
    let result = pipeline
        .call(|| async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        })
        .await;
    assert!(result.is_err());
    assert_eq!(chaos.metrics().faults_injected, 3, "every attempt hit");
    assert_eq!(attempts.load(Ordering::SeqCst), 0);

    // Injected latency counts against the timeout around it.
    let slow = Chaos::<u32, String>::builder("slow")
        .latency(1.0, 100 * MS)
        .build()
        .unwrap();
    let pipeline = Pipeline::<u32, String>::builder("p")
        .timeout(Timeout::new(50 * MS).unwrap())
        .chaos(slow)
        .build()
        .unwrap();
    let result = pipeline.call(|| async { Ok(1) }).await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_tower_layer_injects_and_passes_through() {
    use resilience::chaos::ChaosLayer;
    use tower::{service_fn, Layer, ServiceExt};

    let chaos = Chaos::<u32, String>::builder("layer")
        .latency(1.0, 20 * MS)
        .outcome(1.0, || 7)
        .build()
        .unwrap();
    let service = ChaosLayer::new(chaos.clone())
        .layer(service_fn(|n: u32| async move { Ok::<_, String>(n * 2) }));
    let started = Instant::now();
    assert_eq!(service.clone().oneshot(21).await.unwrap(), 7);
    assert_eq!(started.elapsed(), 20 * MS);
    chaos.set_enabled(false);
    assert_eq!(service.oneshot(21).await.unwrap(), 42);
}
