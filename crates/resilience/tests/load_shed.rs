//! The load shedder through the public API, under paused time (and on four threads where
//! releases race the queue): every priority threshold at its exact boundary, the FIFO queue
//! with its depth limit and wait timeout, system thresholds with an injected source,
//! cancellation, events, the tower layer, configs and the registry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use resilience::load_shed::{
    LoadLevel, LoadShedder, LoadShedderConfig, Permit, Priority, ShedReason,
};
use resilience::registry::{Registry, RegistryError};
use resilience::stage::Stage;
use resilience::{Error, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::task::yield_now;
use tokio::time::{advance, Instant};

fn shedder(max_requests: u32, max_queue_depth: u32) -> LoadShedder {
    LoadShedder::builder("api")
        .max_requests(max_requests)
        .max_queue_depth(max_queue_depth)
        .wait_timeout(Duration::from_millis(100))
        .build()
        .unwrap()
}

fn hold(shedder: &LoadShedder, count: u32) -> Vec<Permit<'_>> {
    (0..count)
        .map(|_| shedder.try_acquire(Priority::Critical).unwrap())
        .collect()
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..10 {
        yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn each_priority_is_shed_exactly_above_its_threshold() {
    for (priority, last_admitted) in [
        (Priority::Low, 60),
        (Priority::Normal, 75),
        (Priority::High, 90),
        (Priority::Critical, 99),
    ] {
        let shedder = shedder(100, 0);
        let recorder = EventRecorder::attach(shedder.events());
        let mut held = hold(&shedder, last_admitted);
        let admitted = shedder.try_acquire(priority).unwrap();
        assert_eq!(admitted.priority(), priority);
        drop(admitted);
        held.push(shedder.try_acquire(Priority::Critical).unwrap());
        let shed = shedder.try_acquire(priority).unwrap_err();
        assert_eq!(shed.reason(), RejectionReason::LoadShed, "{priority}");
        let metadata = recorder.events().last().unwrap().metadata();
        let reason = if priority == Priority::Critical {
            ShedReason::MaxRequests
        } else {
            ShedReason::Utilization
        };
        assert_eq!(metadata["reason"], reason.as_str(), "{priority}");
        assert_eq!(metadata["priority"], priority.as_str());
    }
}

#[tokio::test(start_paused = true)]
async fn load_levels_and_metrics_follow_the_seed() {
    let shedder = shedder(100, 5);
    let mut held = hold(&shedder, 50);
    assert_eq!(shedder.load_level(), LoadLevel::Normal);
    held.extend(hold(&shedder, 15));
    assert_eq!(shedder.load_level(), LoadLevel::Elevated);
    held.extend(hold(&shedder, 15));
    assert_eq!(shedder.load_level(), LoadLevel::High);
    held.extend(hold(&shedder, 15));
    assert_eq!(shedder.load_level(), LoadLevel::Critical);
    held.extend(hold(&shedder, 5));
    let _ = shedder.try_acquire(Priority::Low);
    let metrics = shedder.metrics();
    assert_eq!(metrics.active_requests, 100);
    assert_eq!(metrics.utilization, 1.0, "a ratio, not a percentage");
    assert_eq!((metrics.total_shed, metrics.total_accepted), (1, 100));
    assert_eq!((metrics.max_requests, metrics.max_queue_depth), (100, 5));
    assert_eq!(metrics.load_level, LoadLevel::Critical);
    assert_eq!(metrics.cpu_usage, None);
    drop(held);
    assert_eq!(shedder.metrics().active_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_fifo_and_its_depth_is_real_and_limited() {
    let shedder = shedder(1, 3);
    let first = shedder.try_acquire(Priority::Critical).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for id in 0..3 {
        let (shedder, order) = (shedder.clone(), Arc::clone(&order));
        waiters.push(tokio::spawn(async move {
            let permit = shedder.acquire(Priority::Critical).await.unwrap();
            order.lock().unwrap().push(id);
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(permit);
        }));
        settle().await;
    }
    assert_eq!(shedder.metrics().queue_depth, 3);
    let full = shedder.acquire(Priority::Critical).await.unwrap_err();
    assert_eq!(full.reason(), RejectionReason::QueueFull);
    // A newcomer never overtakes the queue, even at the moment a slot frees up.
    drop(first);
    assert!(shedder.try_acquire(Priority::Critical).is_err());
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    let metrics = shedder.metrics();
    assert_eq!((metrics.active_requests, metrics.queue_depth), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_times_out_exactly_at_its_wait_timeout() {
    let shedder = shedder(1, 1);
    let held = shedder.try_acquire(Priority::Critical).unwrap();
    let started = Instant::now();
    let error = shedder.acquire(Priority::Critical).await.unwrap_err();
    assert_eq!(error.reason(), RejectionReason::WaitTimeout);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(shedder.metrics().queue_depth, 0);

    // A slot freed one nanosecond before the deadline is taken.
    let waiter = tokio::spawn({
        let shedder = shedder.clone();
        async move { shedder.acquire(Priority::Critical).await.map(drop) }
    });
    settle().await;
    advance(Duration::from_millis(100) - Duration::from_nanos(1)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
    let metrics = shedder.metrics();
    assert_eq!((metrics.active_requests, metrics.total_shed), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue_and_a_late_grant_is_passed_on() {
    let shedder = shedder(1, 2);
    let held = shedder.try_acquire(Priority::Critical).unwrap();
    let cancelled = tokio::spawn({
        let shedder = shedder.clone();
        async move { shedder.acquire(Priority::Critical).await.map(drop) }
    });
    settle().await;
    assert_eq!(shedder.metrics().queue_depth, 1);
    cancelled.abort();
    let _ = cancelled.await;
    assert_eq!(shedder.metrics().queue_depth, 0);

    // Granted but dropped before it was polled again: the slot goes to the next waiter.
    let mut granted = Box::pin(shedder.acquire(Priority::Critical));
    assert!((&mut granted).now_or_never().is_none(), "queued");
    let next = tokio::spawn({
        let shedder = shedder.clone();
        async move { shedder.acquire(Priority::Critical).await }
    });
    settle().await;
    drop(held);
    drop(granted);
    let permit = next.await.unwrap().unwrap();
    assert_eq!(shedder.metrics().active_requests, 1);
    drop(permit);
    assert_eq!(shedder.metrics().active_requests, 0);
}

#[tokio::test(start_paused = true)]
async fn raising_the_cap_admits_waiters_at_once() {
    let shedder = shedder(1, 2);
    let _held = shedder.try_acquire(Priority::Critical).unwrap();
    let waiter = tokio::spawn({
        let shedder = shedder.clone();
        async move { shedder.acquire(Priority::Critical).await.map(drop) }
    });
    settle().await;
    let config = LoadShedderConfig {
        max_requests: 2,
        ..shedder.config()
    };
    shedder.set_config(config.clone()).unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!(shedder.config(), config);
    let invalid = LoadShedderConfig {
        max_requests: 0,
        ..config
    };
    assert_eq!(
        shedder.set_config(invalid).unwrap_err().field(),
        "max_requests"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_cancelled_tasks_leave_every_counter_at_zero() {
    let shedder = LoadShedder::builder("crowd")
        .max_requests(50)
        .max_queue_depth(100)
        .wait_timeout(Duration::from_millis(25))
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut tasks = Vec::new();
    for _ in 0..10_000 {
        let shedder = shedder.clone();
        let priority = Priority::ALL[rng.usize(..4)];
        let work = Duration::from_millis(rng.u64(1..20));
        let cancel_after = Duration::from_millis(rng.u64(0..40));
        let task = tokio::spawn(async move {
            let call = shedder.call(priority, || async move {
                tokio::time::sleep(work).await;
                Ok::<_, ()>(())
            });
            let _ = tokio::time::timeout(cancel_after, call).await;
        });
        if rng.u8(..10) == 0 {
            task.abort();
        }
        tasks.push(task);
    }
    for task in tasks {
        let _ = task.await;
    }
    let metrics = shedder.metrics();
    assert_eq!((metrics.active_requests, metrics.queue_depth), (0, 0));
    assert!(metrics.total_shed > 0 && metrics.total_accepted > 0);
    assert_eq!(hold(&shedder, 50).len(), 50, "every slot is free again");
}

/// Releases on four threads race newcomers queueing: a release frees its slot and then looks
/// for waiters, so a request that queued just as the slot came back must still be admitted,
/// never left to wait out its timeout. Every request here is critical (never shed by its
/// threshold) and may wait far longer than the test runs, so one shed is a lost slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_releases_and_queued_requests_lose_no_slot() {
    let shedder = LoadShedder::builder("race")
        .max_requests(3)
        .max_queue_depth(10_000)
        .wait_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..4_000)
        .map(|_| {
            let shedder = shedder.clone();
            tokio::spawn(async move {
                shedder
                    .call(Priority::Critical, || async {
                        yield_now().await;
                        Ok::<_, ()>(())
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok(), "a request was shed");
    }
    let metrics = shedder.metrics();
    assert_eq!((metrics.total_accepted, metrics.total_shed), (4_000, 0));
    assert_eq!((metrics.active_requests, metrics.queue_depth), (0, 0));
    assert_eq!(hold(&shedder, 3).len(), 3, "every slot is free again");
}

#[tokio::test(start_paused = true)]
async fn events_come_in_order_with_their_reasons() {
    let shedder = LoadShedder::builder("api")
        .max_requests(2)
        .max_queue_depth(0)
        .threshold(Priority::Low, 0.4)
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(shedder.events());
    let first = shedder.try_acquire(Priority::Normal).unwrap();
    let _ = shedder.try_acquire(Priority::Low).unwrap_err();
    let _second = shedder.try_acquire(Priority::High).unwrap();
    let _ = shedder.try_acquire(Priority::Critical).unwrap_err();
    drop(first);
    assert_eq!(
        recorder.names(),
        [
            "request_accepted",
            "request_shed",
            "request_accepted",
            "request_shed"
        ]
    );
    let events = recorder.events();
    let field = |index: usize, key: &str| events[index].metadata()[key].clone();
    assert_eq!(field(0, "load_level"), "normal", "50 % is not above 60 %");
    assert_eq!(field(1, "reason"), "utilization");
    assert_eq!(field(2, "active"), "2");
    assert_eq!(field(3, "reason"), "max_requests");
}

#[tokio::test(start_paused = true)]
async fn call_and_execute_keep_errors_apart() {
    let shedder = shedder(1, 0);
    let value = shedder
        .call(Priority::Normal, || async { Ok::<_, &str>(5) })
        .await
        .unwrap();
    assert_eq!(value, 5);
    let error = shedder
        .call(Priority::Normal, || async { Err::<(), _>("boom") })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Inner("boom")));
    let nested = shedder
        .execute(Priority::Normal, || async {
            Err::<(), Error<&str>>(Error::Inner("inner"))
        })
        .await
        .unwrap_err();
    assert!(matches!(nested, Error::Inner("inner")), "not nested");
    let _held = shedder.try_acquire(Priority::Critical).unwrap();
    let shed = shedder
        .call(Priority::Critical, || async { Ok::<_, ()>(()) })
        .await
        .unwrap_err();
    assert!(shed.is_rejected());
    assert_eq!(shedder.metrics().active_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn the_admission_impls_use_normal_or_the_chosen_priority() {
    let shedder = shedder(10, 0);
    let _held = hold(&shedder, 7);
    assert!(
        shedder.admit().await.is_ok(),
        "normal: 70 % is not above 75 %"
    );
    assert!(shedder.prioritized(Priority::Low).admit().await.is_err());
    assert!(shedder.prioritized(Priority::High).admit().await.is_ok());
}

#[test]
fn every_invalid_field_is_named_at_build() {
    let build =
        |config: LoadShedderConfig| LoadShedder::from_config("api", config).unwrap_err().field();
    let base = LoadShedderConfig::default;
    assert_eq!(
        build(LoadShedderConfig {
            max_requests: 0,
            ..base()
        }),
        "max_requests"
    );
    assert_eq!(
        build(LoadShedderConfig {
            wait_timeout: Duration::ZERO,
            ..base()
        }),
        "wait_timeout"
    );
    assert_eq!(
        build(LoadShedderConfig {
            high_threshold: 1.01,
            ..base()
        }),
        "high_threshold"
    );
    assert_eq!(
        build(LoadShedderConfig {
            normal_threshold: 0.5,
            ..base()
        }),
        "low_threshold"
    );
    let error = LoadShedder::builder("api")
        .threshold(Priority::High, 0.5)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "normal_threshold");
    assert_eq!(
        LoadShedder::builder("").build().unwrap_err().field(),
        "name"
    );
}

#[test]
fn the_registry_refuses_a_different_config() {
    let registry = Registry::<LoadShedder>::new();
    let shedder = registry
        .get_or_create("api", LoadShedderConfig::default())
        .unwrap();
    let different = LoadShedderConfig {
        max_requests: 10,
        ..LoadShedderConfig::default()
    };
    assert!(matches!(
        registry.get_or_create("api", different),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    let _permit = shedder.try_acquire(Priority::Normal).unwrap();
    assert_eq!(registry.metrics()["api"].active_requests, 1);
}

#[cfg(feature = "serde")]
#[test]
fn configs_deserialize_with_durations_and_reject_unknown_fields() {
    let config: LoadShedderConfig = serde_json::from_str(
        r#"{"max_requests": 200, "wait_timeout": "250ms", "low_threshold": 0.5}"#,
    )
    .unwrap();
    assert_eq!(config.max_requests, 200);
    assert_eq!(config.wait_timeout, Duration::from_millis(250));
    assert_eq!(config.low_threshold, 0.5);
    assert_eq!(config.max_queue_depth, 500, "the rest keeps its default");
    assert!(serde_json::from_str::<LoadShedderConfig>(r#"{"max_request": 1}"#).is_err());
    assert_eq!(
        serde_json::from_str::<Priority>(r#""critical""#).unwrap(),
        Priority::Critical
    );
    let metrics = serde_json::to_value(shedder(4, 0).metrics()).unwrap();
    for key in [
        "active_requests",
        "queue_depth",
        "total_shed",
        "load_level",
        "max_requests",
        "max_queue_depth",
        "utilization",
    ] {
        assert!(metrics.get(key).is_some(), "{key} missing from {metrics}");
    }
    assert_eq!(metrics["load_level"], "normal");
}

#[cfg(feature = "system")]
mod system {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use resilience::load_shed::{SystemConfig, SystemSample};

    use super::*;

    /// A scripted source: the test sets the next reading and counts samples.
    #[derive(Clone, Default)]
    struct Script {
        reading: Arc<(AtomicU64, AtomicU64)>,
        samples: Arc<AtomicUsize>,
    }

    impl Script {
        fn set(&self, cpu: f64, memory: f64) {
            self.reading.0.store(cpu.to_bits(), Ordering::SeqCst);
            self.reading.1.store(memory.to_bits(), Ordering::SeqCst);
        }

        fn samples(&self) -> usize {
            self.samples.load(Ordering::SeqCst)
        }

        fn source(&self) -> impl FnMut() -> SystemSample + Send + 'static {
            let script = self.clone();
            move || {
                script.samples.fetch_add(1, Ordering::SeqCst);
                let cpu = f64::from_bits(script.reading.0.load(Ordering::SeqCst));
                let memory = f64::from_bits(script.reading.1.load(Ordering::SeqCst));
                SystemSample::new(cpu, memory)
            }
        }
    }

    const INTERVAL: Duration = Duration::from_secs(1);

    fn system_shedder(script: &Script) -> LoadShedder {
        LoadShedder::builder("system")
            .system(SystemConfig {
                cpu_threshold: 0.85,
                memory_threshold: 0.85,
                check_interval: INTERVAL,
            })
            .system_source(script.source())
            .build()
            .unwrap()
    }

    /// Sets the next reading and lets the sampler take it.
    async fn next_sample(script: &Script, cpu: f64, memory: f64) {
        script.set(cpu, memory);
        advance(INTERVAL).await;
        settle().await;
    }

    #[tokio::test(start_paused = true)]
    async fn cpu_and_memory_thresholds_are_strict_and_depend_on_priority() {
        let script = Script::default();
        script.set(0.85, 0.85);
        let shedder = system_shedder(&script);
        assert_eq!(script.samples(), 1, "the first reading is taken at build");
        assert!(
            shedder.try_acquire(Priority::Low).is_ok(),
            "85 % is not above 85 %"
        );

        next_sample(&script, 0.8501, 0.0).await;
        let shed = shedder.try_acquire(Priority::Normal).unwrap_err();
        assert_eq!(shed.reason(), RejectionReason::LoadShed);
        assert_eq!(
            shed.retry_after(),
            Some(INTERVAL),
            "the next sample is a second away"
        );
        assert!(shedder.try_acquire(Priority::High).is_ok());

        next_sample(&script, 0.0, 0.86).await;
        let recorder = EventRecorder::attach(shedder.events());
        assert!(shedder.try_acquire(Priority::Low).is_err());
        assert_eq!(recorder.events()[0].metadata()["reason"], "memory");

        // High is only shed above 90 %, critical never.
        next_sample(&script, 0.90, 0.90).await;
        assert!(shedder.try_acquire(Priority::High).is_ok());
        next_sample(&script, 0.9001, 0.0).await;
        assert!(shedder.try_acquire(Priority::High).is_err());
        next_sample(&script, 1.0, 1.0).await;
        assert!(shedder.try_acquire(Priority::Critical).is_ok());
        let metrics = shedder.metrics();
        assert_eq!(
            (metrics.cpu_usage, metrics.memory_usage),
            (Some(1.0), Some(1.0))
        );
        assert_eq!(
            metrics.load_level,
            LoadLevel::Critical,
            "from the system level"
        );
        next_sample(&script, 0.65, 0.65).await;
        assert_eq!(shedder.load_level(), LoadLevel::Elevated);
        next_sample(&script, 0.30, 0.40).await;
        assert_eq!(shedder.load_level(), LoadLevel::Normal);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_stops_when_the_shedder_is_dropped() {
        let script = Script::default();
        let shedder = system_shedder(&script);
        let clone = shedder.clone();
        for _ in 0..3 {
            next_sample(&script, 0.1, 0.1).await;
        }
        assert_eq!(script.samples(), 4);
        drop(shedder);
        next_sample(&script, 0.1, 0.1).await;
        assert_eq!(script.samples(), 5, "a clone keeps it running");
        drop(clone);
        for _ in 0..5 {
            next_sample(&script, 0.1, 0.1).await;
        }
        assert_eq!(
            script.samples(),
            5,
            "no sample after the last handle is gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn system_shedding_cannot_be_toggled_at_run_time() {
        let script = Script::default();
        let shedder = system_shedder(&script);
        let mut config = shedder.config();
        config.system = None;
        assert_eq!(shedder.set_config(config).unwrap_err().field(), "system");
        let mut config = shedder.config();
        config.system = Some(SystemConfig {
            cpu_threshold: 0.5,
            ..SystemConfig::default()
        });
        shedder.set_config(config).unwrap();
        next_sample(&script, 0.6, 0.0).await;
        assert!(shedder.try_acquire(Priority::Normal).is_err());
    }

    #[test]
    fn building_outside_a_runtime_fails_loudly() {
        let error = LoadShedder::builder("system")
            .system(SystemConfig::default())
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "system");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn the_system_section_deserializes() {
        let config: LoadShedderConfig =
            serde_json::from_str(r#"{"system": {"cpu_threshold": 0.9, "check_interval": "2s"}}"#)
                .unwrap();
        let system = config.system.unwrap();
        assert_eq!(system.cpu_threshold, 0.9);
        assert_eq!(system.memory_threshold, 0.85);
        assert_eq!(system.check_interval, Duration::from_secs(2));
    }
}

#[cfg(feature = "tower")]
mod layer {
    use resilience::load_shed::LoadShedderLayer;
    use tower::Layer;
    use tower_test::mock::{self, Spawn};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_layer_sheds_by_request_priority_and_queues_at_the_cap() {
        let shedder = LoadShedder::builder("api")
            .max_requests(2)
            .max_queue_depth(1)
            .threshold(Priority::Low, 0.4)
            .build()
            .unwrap();
        let layer = LoadShedderLayer::new(shedder.clone())
            .priority_fn(|request: &&str| request.parse().unwrap_or(Priority::Normal));
        let (service, mut handle) = mock::pair::<&str, &str>();
        let mut service = Spawn::new(layer.layer(service));
        handle.allow(0);
        assert!(
            service.poll_ready().is_pending(),
            "readiness is the inner's"
        );
        handle.allow(10);

        assert!(service.poll_ready().is_ready());
        let first = service.call("normal");
        // 50 % is above 40 %: low is shed, its inner future never polled.
        assert!(service.poll_ready().is_ready());
        let shed = service.call("low").await.unwrap_err();
        assert_eq!(
            shed.rejection().unwrap().reason(),
            RejectionReason::LoadShed
        );
        assert!(service.poll_ready().is_ready());
        let second = service.call("critical");
        assert!(service.poll_ready().is_ready());
        let mut queued = Box::pin(service.call("critical"));
        assert!((&mut queued).now_or_never().is_none(), "queued at the cap");
        assert_eq!(shedder.metrics().queue_depth, 1);

        // The inner service sees each request when it is called (tower's contract), shed or
        // not; a shed request's future is dropped unpolled. Answer them all, in order.
        let respond = async {
            for _ in 0..4 {
                let (request, respond) = handle.next_request().await.unwrap();
                respond.send_response(request);
            }
        };
        let (first, second, ()) = tokio::join!(first, second, respond);
        assert_eq!(first.unwrap(), "normal");
        assert_eq!(second.unwrap(), "critical");
        assert_eq!(queued.await.unwrap(), "critical");
        assert_eq!(shedder.metrics().active_requests, 0);
    }
}
