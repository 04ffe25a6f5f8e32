//! Hedging through the public API, under tokio's paused clock so every delay is exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::classify::Classifier;
use resilience::hedge::{Hedge, HedgeBuilder, HedgeDelay, HedgeEvent, HedgeTrigger};
use resilience::retry::BudgetConfig;
use resilience::{Error, Timeout};
use resilience_testkit::EventRecorder;
use tokio::time::{sleep, Instant};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A hedge without a budget, so only the delay decides.
fn unbudgeted(name: &str) -> HedgeBuilder {
    Hedge::builder(name).no_budget()
}

/// Counts attempts alive (started and not yet dropped) and attempts that ran to their end.
#[derive(Clone, Default)]
struct Attempts {
    alive: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    starts: Arc<Mutex<Vec<(u32, Instant)>>>,
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Attempts {
    /// An attempt numbered `attempt` that answers `result` after `latency`.
    fn run<T>(
        &self,
        attempt: u32,
        latency: Duration,
        result: T,
    ) -> impl std::future::Future<Output = T> {
        self.starts.lock().unwrap().push((attempt, Instant::now()));
        self.alive.fetch_add(1, Ordering::SeqCst);
        let guard = Alive(Arc::clone(&self.alive));
        let finished = Arc::clone(&self.finished);
        async move {
            let _guard = guard;
            sleep(latency).await;
            finished.fetch_add(1, Ordering::SeqCst);
            result
        }
    }

    /// When each attempt started, relative to `start`.
    fn starts(&self, start: Instant) -> Vec<(u32, Duration)> {
        let starts = self.starts.lock().unwrap();
        starts.iter().map(|(n, at)| (*n, *at - start)).collect()
    }

    fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

#[tokio::test(start_paused = true)]
async fn a_primary_answering_before_the_delay_is_never_hedged() {
    let hedge = unbudgeted("fast").delay(ms(20)).build().unwrap();
    let recorder = EventRecorder::attach(hedge.events());
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| attempts.run(n, ms(19), Ok::<_, String>(n)))
        .await;
    assert_eq!(answer.unwrap(), 1);
    assert_eq!(start.elapsed(), ms(19));
    assert_eq!(attempts.starts(start), [(1, ms(0))]);
    sleep(ms(100)).await;
    assert_eq!(attempts.starts(start).len(), 1, "no hedge after the answer");
    assert_eq!(recorder.names(), ["hedge_success"]);
    let metrics = hedge.metrics();
    assert_eq!((metrics.total_requests, metrics.hedged_attempts), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_slow_primary_is_hedged_at_exactly_the_delay_and_the_hedge_wins() {
    let hedge = unbudgeted("slow").delay(ms(20)).build().unwrap();
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| {
            let latency = if n == 1 { ms(100) } else { ms(5) };
            attempts.run(n, latency, Ok::<_, String>(n))
        })
        .await;
    assert_eq!(answer.unwrap(), 2);
    assert_eq!(start.elapsed(), ms(25));
    assert_eq!(attempts.starts(start), [(1, ms(0)), (2, ms(20))]);
    let metrics = hedge.metrics();
    assert_eq!((metrics.hedged_attempts, metrics.hedge_wins), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn losers_are_cancelled_at_once_and_nothing_keeps_running() {
    let hedge = unbudgeted("cancel")
        .delay(ms(10))
        .max_hedged_attempts(3)
        .build()
        .unwrap();
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| {
            // Attempt 3 (started at 20 ms) answers at 22 ms; the others much later.
            let latency = if n == 3 { ms(2) } else { ms(1_000) };
            attempts.run(n, latency, Ok::<_, String>(n))
        })
        .await;
    assert_eq!(answer.unwrap(), 3);
    assert_eq!(start.elapsed(), ms(22));
    assert_eq!(
        attempts.alive(),
        0,
        "every loser was dropped before the call returned"
    );
    sleep(ms(5_000)).await;
    assert_eq!(attempts.finished(), 1, "only the winner ever finished");
    assert_eq!(
        attempts.starts(start),
        [(1, ms(0)), (2, ms(10)), (3, ms(20))]
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_cancels_every_attempt() {
    let hedge = unbudgeted("dropped")
        .parallel()
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let attempts = Attempts::default();
    let call = hedge.call(|n| attempts.run(n, ms(1_000), Ok::<_, String>(n)));
    let timed_out = tokio::time::timeout(ms(50), call).await;
    assert!(timed_out.is_err());
    assert_eq!(attempts.alive(), 0);
    assert_eq!(attempts.starts(Instant::now()).len(), 3);
    sleep(ms(5_000)).await;
    assert_eq!(attempts.finished(), 0);
}

#[tokio::test(start_paused = true)]
async fn fallback_mode_starts_the_next_attempt_only_when_one_fails() {
    let hedge = unbudgeted("fallback")
        .fallback()
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let attempts = Attempts::default();
    let start = Instant::now();
    // A slow success is never hedged.
    let answer = hedge
        .call(|n| attempts.run(n, ms(10_000), Ok::<_, String>(n)))
        .await;
    assert_eq!((answer.unwrap(), start.elapsed()), (1, ms(10_000)));

    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| {
            let result = if n < 3 {
                Err(format!("attempt {n} failed"))
            } else {
                Ok(n)
            };
            attempts.run(n, ms(30), result)
        })
        .await;
    assert_eq!(answer.unwrap(), 3);
    assert_eq!(
        attempts.starts(start),
        [(1, ms(0)), (2, ms(30)), (3, ms(60))]
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_mode_starts_every_attempt_at_once() {
    let hedge = unbudgeted("parallel")
        .parallel()
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(hedge.events());
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| attempts.run(n, ms(40 - 10 * u64::from(n)), Ok::<_, String>(n)))
        .await;
    assert_eq!(answer.unwrap(), 3);
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(attempts.starts(start), [(1, ms(0)), (2, ms(0)), (3, ms(0))]);
    let triggers: Vec<_> = recorder
        .events()
        .iter()
        .filter_map(|event| match event.payload::<HedgeEvent>() {
            Some(HedgeEvent::HedgeAttempt { trigger, .. }) => Some(*trigger),
            _ => None,
        })
        .collect();
    assert_eq!(triggers, [HedgeTrigger::Parallel, HedgeTrigger::Parallel]);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_sends_no_hedge() {
    let empty = BudgetConfig {
        retry_ratio: 0.0,
        window: Duration::from_secs(10),
        min_retries_per_second: 0,
    };
    let hedge = Hedge::builder("budget")
        .delay(ms(20))
        .budget(empty)
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(hedge.events());
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| attempts.run(n, ms(100), Ok::<_, String>(n)))
        .await;
    assert_eq!((answer.unwrap(), start.elapsed()), (1, ms(100)));
    assert_eq!(attempts.starts(start), [(1, ms(0))]);
    assert_eq!(recorder.names(), ["hedge_skipped", "hedge_success"]);
    assert_eq!(hedge.metrics().skipped_by_budget, 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_allows_its_share_of_hedges() {
    let half = BudgetConfig {
        retry_ratio: 0.5,
        window: Duration::from_secs(10),
        min_retries_per_second: 0,
    };
    let hedge = Hedge::builder("share")
        .delay(ms(20))
        .budget(half)
        .build()
        .unwrap();
    let mut hedged = 0;
    for _ in 0..10 {
        let attempts = Attempts::default();
        let _ = hedge
            .call(|n| attempts.run(n, ms(100), Ok::<_, String>(n)))
            .await;
        hedged += attempts.starts(Instant::now()).len() - 1;
    }
    assert_eq!(hedged, 5, "half an extra attempt per call");
    assert_eq!(hedge.metrics().skipped_by_budget, 5);
}

#[tokio::test(start_paused = true)]
async fn events_report_the_attempt_started_then_the_winner() {
    let hedge = unbudgeted("events")
        .delay(ms(20))
        .max_hedged_attempts(2)
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(hedge.events());
    let attempts = Attempts::default();
    let answer = hedge
        .call(|n| {
            // The primary answers first, after both hedges started.
            let latency = if n == 1 { ms(45) } else { ms(1_000) };
            attempts.run(n, latency, Ok::<_, String>(n))
        })
        .await;
    assert_eq!(answer.unwrap(), 1);
    let payloads: Vec<HedgeEvent> = recorder
        .events()
        .iter()
        .map(|event| event.payload::<HedgeEvent>().unwrap().clone())
        .collect();
    assert_eq!(
        payloads,
        [
            HedgeEvent::HedgeAttempt {
                attempt: 2,
                after: ms(20),
                trigger: HedgeTrigger::Delay
            },
            HedgeEvent::HedgeAttempt {
                attempt: 3,
                after: ms(40),
                trigger: HedgeTrigger::Delay
            },
            HedgeEvent::HedgeSuccess {
                attempt: 1,
                attempts: 3
            },
        ]
    );
    assert_eq!(hedge.metrics().hedge_wins, 0, "the primary won");
}

#[tokio::test(start_paused = true)]
async fn a_failure_starts_the_next_attempt_at_once_and_the_last_failure_is_returned() {
    let hedge = unbudgeted("failing")
        .delay(ms(50))
        .max_hedged_attempts(1)
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(hedge.events());
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| attempts.run(n, ms(10), Err::<u32, _>(format!("attempt {n} failed"))))
        .await;
    assert!(matches!(answer, Err(Error::Inner(ref e)) if e == "attempt 2 failed"));
    assert_eq!(start.elapsed(), ms(20));
    assert_eq!(attempts.starts(start), [(1, ms(0)), (2, ms(10))]);
    assert_eq!(
        recorder.names(),
        ["hedge_attempt", "hedge_failure"],
        "the failure started attempt 2"
    );
    assert_eq!(hedge.metrics().failed_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn an_ignored_error_is_an_answer_and_ends_the_call() {
    let hedge = unbudgeted("ignored").delay(ms(20)).build().unwrap();
    let classifier = Classifier::<u32, String>::new().ignore_if(|e| e == "not found");
    let attempts = Attempts::default();
    let answer = hedge
        .call_with(&classifier, |n| {
            attempts.run(n, ms(5), Err::<u32, _>("not found".to_owned()))
        })
        .await;
    assert!(matches!(answer, Err(Error::Inner(ref e)) if e == "not found"));
    assert_eq!(attempts.starts(Instant::now()).len(), 1);

    // A value the classifier rejects is not accepted: the hedge answers instead.
    let classifier = Classifier::<u32, String>::new().failure_on_result(|n| *n == 503);
    let attempts = Attempts::default();
    let answer = hedge
        .call_with(&classifier, |n| {
            let (latency, status) = if n == 1 { (ms(5), 503) } else { (ms(5), 200) };
            attempts.run(n, latency, Ok(status))
        })
        .await;
    assert_eq!(answer.unwrap(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_one_attempt_does_not_cancel_the_hedge() {
    let hedge = unbudgeted("timeouts")
        .delay(ms(10))
        .max_hedged_attempts(1)
        .build()
        .unwrap();
    let timeout = Timeout::new(ms(30)).unwrap();
    let attempts = Attempts::default();
    let start = Instant::now();
    // The primary hangs and times out at 30 ms; the hedge started at 10 ms answers at 35 ms.
    let answer = hedge
        .execute(|n| {
            let latency = if n == 1 { ms(1_000) } else { ms(25) };
            let attempt = attempts.run(n, latency, Ok::<_, String>(n));
            let timeout = timeout.clone();
            async move { timeout.call(|| attempt).await }
        })
        .await;
    assert_eq!(answer.unwrap(), 2);
    assert_eq!(start.elapsed(), ms(35));
    assert_eq!(timeout.metrics().timed_out_executions, 1);

    // When every attempt times out, the call returns the last timeout.
    let answer: Result<u32, Error<String>> = hedge
        .execute(|_| {
            let timeout = timeout.clone();
            async move { timeout.call(std::future::pending).await }
        })
        .await;
    assert!(answer.unwrap_err().is_timeout());
}

#[tokio::test(start_paused = true)]
async fn percentile_mode_learns_a_sub_millisecond_delay() {
    let hedge = unbudgeted("percentile")
        .delay_mode(HedgeDelay::Percentile {
            percentile: 90.0,
            min_samples: 10,
            refresh: ms(100),
        })
        .build()
        .unwrap();
    assert_eq!(hedge.current_delay(), None, "no samples yet");
    // 20 calls of 200 µs (the clock moved by hand: tokio's timers tick in milliseconds),
    // then time for a refresh.
    for _ in 0..20 {
        hedge
            .call(|_| async {
                tokio::time::advance(Duration::from_micros(200)).await;
                Ok::<_, String>(())
            })
            .await
            .unwrap();
    }
    sleep(ms(100)).await;
    hedge.call(|_| async { Ok::<_, String>(()) }).await.unwrap();
    let delay = hedge.current_delay().unwrap();
    assert!(
        delay >= Duration::from_micros(200) && delay < Duration::from_micros(213),
        "{delay:?}"
    );
    // A slow call is now hedged after that delay, not at once. tokio's timer wheel ticks in
    // milliseconds, so the hedge starts at the first tick at or after the delay.
    let attempts = Attempts::default();
    let start = Instant::now();
    let answer = hedge
        .call(|n| {
            let latency = if n == 1 { ms(50) } else { ms(1) };
            attempts.run(n, latency, Ok::<_, String>(n))
        })
        .await;
    assert_eq!(answer.unwrap(), 2);
    let starts = attempts.starts(start);
    assert_eq!(starts[0], (1, ms(0)));
    assert!(
        starts[1].1 >= delay && starts[1].1 <= delay + ms(1),
        "{starts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_attempt_number_can_direct_a_hedge_elsewhere() {
    let hedge = unbudgeted("replicas").delay(ms(20)).build().unwrap();
    let replicas = ["eu-west", "eu-central"];
    let answer = hedge
        .call(|n| async move {
            if n == 1 {
                sleep(ms(500)).await;
            }
            Ok::<_, String>(replicas[n as usize - 1])
        })
        .await;
    assert_eq!(answer.unwrap(), "eu-central");
}

#[tokio::test(start_paused = true)]
async fn nothing_starts_before_the_call_is_polled() {
    let hedge = unbudgeted("lazy").delay(ms(20)).build().unwrap();
    let made = AtomicUsize::new(0);
    let operation = |n: u32| {
        made.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, String>(n) }
    };
    drop(hedge.call(operation));
    assert_eq!(
        made.load(Ordering::SeqCst),
        0,
        "an unpolled call makes no attempt"
    );
    assert_eq!(hedge.metrics().total_requests, 0);
    let call = hedge.call(operation);
    assert_eq!(made.load(Ordering::SeqCst), 0);
    assert_eq!(call.await.unwrap(), 1);
    assert_eq!(made.load(Ordering::SeqCst), 1);
    assert_eq!(hedge.metrics().total_requests, 1);
}

#[test]
fn invalid_configs_are_refused_naming_the_field() {
    let error = Hedge::builder("x")
        .max_hedged_attempts(0)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "max_hedged_attempts");
    let error = Hedge::builder("x").percentile(100.0).build().unwrap_err();
    assert_eq!(error.field(), "delay.percentile");
    assert_eq!(Hedge::builder(" ").build().unwrap_err().field(), "name");
}

#[cfg(feature = "tower")]
mod tower_layer {
    use super::*;
    use resilience::hedge::HedgeLayer;
    use resilience::RejectionReason;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    #[tokio::test(start_paused = true)]
    async fn the_layer_hedges_a_slow_request() {
        let hedge = unbudgeted("layer").delay(ms(20)).build().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let service = ServiceBuilder::new()
            .layer(HedgeLayer::new(hedge.clone()))
            .service(service_fn(move |n: u64| {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    // The first call is slow, every later one fast.
                    sleep(if call == 0 { ms(500) } else { ms(5) }).await;
                    Ok::<_, String>(n * 2)
                }
            }));
        let start = Instant::now();
        assert_eq!(service.oneshot(21).await.unwrap(), 42);
        assert_eq!(start.elapsed(), ms(25));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(hedge.metrics().hedge_wins, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_cannot_be_copied_is_refused_up_front() {
        let hedge = unbudgeted("uncloneable").build().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let service = ServiceBuilder::new()
            .layer(HedgeLayer::new(hedge).requests(|_: u32, _: &String| None))
            .service(service_fn(move |body: String| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, String>(body) }
            }));
        let error = service.oneshot("streaming".to_owned()).await.unwrap_err();
        let rejection = error.rejection().expect("a rejection");
        assert_eq!(rejection.reason(), RejectionReason::NotCloneable);
        assert_eq!(
            error.to_string(),
            "hedge uncloneable cannot copy the request for its extra attempts"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0, "never sent");
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_policy_directs_each_attempt() {
        let hedge = unbudgeted("directed").delay(ms(20)).build().unwrap();
        let service = ServiceBuilder::new()
            .layer(
                HedgeLayer::new(hedge).requests(|attempt: u32, path: &String| {
                    Some(format!("replica-{attempt}{path}"))
                }),
            )
            .service(service_fn(|target: String| async move {
                if target.starts_with("replica-1") {
                    sleep(ms(500)).await;
                }
                Ok::<_, String>(target)
            }));
        assert_eq!(
            service.oneshot("/items".to_owned()).await.unwrap(),
            "replica-2/items"
        );
    }
}
