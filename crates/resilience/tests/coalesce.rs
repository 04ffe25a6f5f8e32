//! Request coalescing through the public API: one execution per key, results shared,
//! cancellation and panics never strand a caller nor leak a key.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::coalesce::{CoalesceEvent, Coalescer};
use resilience::{Error, PatternKind, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::sync::Notify;
use tokio::time::sleep;

const MS: Duration = Duration::from_millis(1);

type Group = Coalescer<u64, u64, String>;

fn group() -> Group {
    Coalescer::builder("test").build().unwrap()
}

/// Counts executions and how many run at once, through a guard that is dropped with the
/// operation's future (so a cancelled execution stops counting as running).
#[derive(Default)]
struct Probe {
    started: AtomicUsize,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

struct Running<'a>(&'a Probe);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Probe {
    fn enter(&self) -> Running<'_> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        Running(self)
    }

    /// An operation that sleeps `duration`, then answers `value`.
    fn op(
        self: &Arc<Self>,
        duration: Duration,
        value: u64,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> {
        let probe = Arc::clone(self);
        move || {
            Box::pin(async move {
                let _running = probe.enter();
                sleep(duration).await;
                Ok(value)
            })
        }
    }
}

async fn thousand_identical_calls_run_once() {
    let group = group();
    let probe = Arc::new(Probe::default());
    let gate = Arc::new(Notify::new());
    let callers: Vec<_> = (0..1_000)
        .map(|i| {
            let (group, probe, gate) = (group.clone(), Arc::clone(&probe), Arc::clone(&gate));
            tokio::spawn(async move {
                group
                    .call(1, || async move {
                        let _running = probe.enter();
                        // Held until every caller has joined, so none comes too late.
                        gate.notified().await;
                        Ok::<_, String>(i)
                    })
                    .await
            })
        })
        .collect();
    while group.metrics().coalesced_calls < 999 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    let mut answers = Vec::new();
    for caller in callers {
        answers.push(caller.await.unwrap().unwrap());
    }
    assert_eq!(probe.started.load(Ordering::SeqCst), 1);
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "one shared answer"
    );
    let metrics = group.metrics();
    assert_eq!((metrics.executions, metrics.coalesced_calls), (1, 999));
    assert_eq!(metrics.in_flight_keys, 0);
    assert!(!group.is_in_flight(&1));
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_identical_calls_execute_once() {
    thousand_identical_calls_run_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_identical_calls_execute_once_on_four_threads() {
    thousand_identical_calls_run_once().await;
}

#[tokio::test(start_paused = true)]
async fn errors_are_shared_too_and_the_next_call_runs_again() {
    let group = group();
    let failing = || async {
        sleep(MS).await;
        Err::<u64, _>("down".to_owned())
    };
    let (a, b) = tokio::join!(group.call(1, failing), group.call(1, failing));
    assert!(matches!(a, Err(Error::Inner(ref e)) if e == "down"));
    assert!(matches!(b, Err(Error::Inner(ref e)) if e == "down"));
    // Results are shared, never cached.
    assert_eq!(group.call(1, || async { Ok(5) }).await.unwrap(), 5);
    assert_eq!(group.metrics().executions, 2);
}

#[tokio::test(start_paused = true)]
async fn the_shared_flag_says_who_shared() {
    let group = group();
    let slow = || async {
        sleep(MS).await;
        Ok(1)
    };
    let (leader, follower) = tokio::join!(group.call_shared(1, slow), group.call_shared(1, slow));
    assert_eq!((leader.1, follower.1), (true, true));
    let alone = group.call_shared(1, slow).await;
    assert!(!alone.1);
}

#[tokio::test(start_paused = true)]
async fn distinct_keys_run_independently() {
    let group = group();
    let probe = Arc::new(Probe::default());
    let (a, b) = tokio::join!(
        group.call(1, probe.op(10 * MS, 1)),
        group.call(2, probe.op(10 * MS, 2))
    );
    assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    assert_eq!(probe.started.load(Ordering::SeqCst), 2);
    assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn keys_beyond_the_bound_are_refused_but_joining_is_not() {
    let group = Group::builder("bounded").max_keys(2).build().unwrap();
    let probe = Arc::new(Probe::default());
    let first = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 1));
        async move { group.call(1, op).await }
    });
    let second = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 2));
        async move { group.call(2, op).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(group.in_flight(), 2);
    match group.call(3, probe.op(MS, 3)).await {
        Err(Error::Rejected(rejection)) => {
            assert_eq!(rejection.pattern(), PatternKind::Coalesce);
            assert_eq!(rejection.reason(), RejectionReason::CapacityFull);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Joining key 1 adds no key.
    assert_eq!(group.call(1, probe.op(MS, 9)).await.unwrap(), 1);
    assert_eq!(
        (
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap()
        ),
        (1, 2)
    );
    assert_eq!(group.call(3, probe.op(MS, 3)).await.unwrap(), 3);
    assert_eq!(group.metrics().rejected_calls, 1);
    assert_eq!(group.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_reaches_every_follower_as_an_error_and_the_key_is_removed() {
    let group = group();
    let leader = tokio::spawn({
        let group = group.clone();
        async move {
            group
                .call(1, || async {
                    sleep(10 * MS).await;
                    panic!("the operation panicked");
                })
                .await
        }
    });
    tokio::task::yield_now().await;
    let followers: Vec<_> = (0..10)
        .map(|_| {
            let group = group.clone();
            tokio::spawn(async move { group.call(1, || async { Ok(0) }).await })
        })
        .collect();
    assert!(
        leader.await.unwrap_err().is_panic(),
        "the leader's own panic goes on"
    );
    for follower in followers {
        match follower.await.unwrap() {
            Err(Error::Rejected(rejection)) => {
                assert_eq!(rejection.reason(), RejectionReason::LeaderPanicked);
            }
            other => panic!("expected the typed panic error, got {other:?}"),
        }
    }
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.metrics().panics, 1);
    assert_eq!(group.call(1, || async { Ok(2) }).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_leader_hands_over_to_one_follower() {
    let group = group();
    let probe = Arc::new(Probe::default());
    let leader = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 1));
        async move { group.call(1, op).await }
    });
    tokio::task::yield_now().await;
    let followers: Vec<_> = (2..5)
        .map(|value| {
            let (group, op) = (group.clone(), probe.op(10 * MS, value));
            tokio::spawn(async move { group.call(1, op).await })
        })
        .collect();
    sleep(5 * MS).await;
    leader.abort();
    let mut answers = Vec::new();
    for follower in followers {
        answers.push(follower.await.unwrap().unwrap());
    }
    // One follower ran its own operation and the others got its answer.
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(probe.started.load(Ordering::SeqCst), 2);
    assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(group.metrics().takeovers, 1);
    assert_eq!(group.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_key_whose_every_caller_is_gone_is_removed() {
    let group = group();
    let probe = Arc::new(Probe::default());
    let callers: Vec<_> = (0..4)
        .map(|value| {
            let (group, op) = (group.clone(), probe.op(10 * MS, value));
            tokio::spawn(async move { group.call(1, op).await })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(group.in_flight(), 1);
    // The leader first, then each follower, before any takes over.
    for caller in &callers {
        caller.abort();
    }
    for caller in callers {
        assert!(caller.await.unwrap_err().is_cancelled());
    }
    assert_eq!(group.in_flight(), 0);
    assert!(!group.is_in_flight(&1));
    assert_eq!(probe.running.load(Ordering::SeqCst), 0);
}

/// Callers arrive and leave at seeded random moments; the leader is often among those
/// dropped. Whatever happens: never two executions of the key at once, every caller that is
/// not dropped gets an answer, and nothing stays in the map.
#[tokio::test(start_paused = true)]
async fn callers_dropped_at_random_points_never_strand_anyone() {
    let mut takeovers = 0;
    for seed in 0..300 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let group = group();
        let probe = Arc::new(Probe::default());
        let count = rng.usize(2..24);
        let mut callers = Vec::new();
        for value in 0..count {
            let start = rng.u32(0..30) * MS;
            let work = rng.u32(1..20) * MS;
            let (group, op) = (group.clone(), probe.op(work, value as u64));
            let task = tokio::spawn(async move {
                sleep(start).await;
                group.call(7, op).await
            });
            let drop_at = rng.bool().then(|| rng.u32(0..40) * MS);
            callers.push((task, drop_at));
        }
        let dropper = {
            let handles: Vec<_> = callers
                .iter()
                .filter_map(|(task, at)| at.map(|at| (task.abort_handle(), at)))
                .collect();
            tokio::spawn(async move {
                let mut handles = handles;
                handles.sort_by_key(|(_, at)| *at);
                let mut now = Duration::ZERO;
                for (handle, at) in handles {
                    sleep(at - now).await;
                    now = at;
                    handle.abort();
                }
            })
        };
        for (task, _) in callers {
            match task.await {
                Ok(answer) => {
                    answer.unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
                }
                Err(error) => assert!(error.is_cancelled(), "seed {seed}"),
            }
        }
        dropper.await.unwrap();
        assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1, "seed {seed}");
        assert_eq!(probe.running.load(Ordering::SeqCst), 0, "seed {seed}");
        assert_eq!(group.in_flight(), 0, "seed {seed}");
        assert!(!group.is_in_flight(&7), "seed {seed}");
        takeovers += group.metrics().takeovers;
    }
    assert!(takeovers > 50, "the seeds exercise hand-overs: {takeovers}");
}

#[tokio::test(start_paused = true)]
async fn forget_starts_afresh_while_the_old_followers_keep_their_answer() {
    let group = group();
    let probe = Arc::new(Probe::default());
    let old_leader = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 1));
        async move { group.call(1, op).await }
    });
    tokio::task::yield_now().await;
    let old_follower = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 99));
        async move { group.call(1, op).await }
    });
    tokio::task::yield_now().await;
    assert!(group.forget(&1));
    assert!(!group.forget(&1));
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.call(1, probe.op(MS, 2)).await.unwrap(), 2);
    assert_eq!(old_leader.await.unwrap().unwrap(), 1);
    assert_eq!(old_follower.await.unwrap().unwrap(), 1);
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.metrics().forgotten_keys, 1);
}

#[tokio::test(start_paused = true)]
async fn a_forgotten_key_whose_leader_is_dropped_still_answers_its_followers() {
    let group = group();
    let probe = Arc::new(Probe::default());
    let leader = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 1));
        async move { group.call(1, op).await }
    });
    tokio::task::yield_now().await;
    let follower = tokio::spawn({
        let (group, op) = (group.clone(), probe.op(10 * MS, 2));
        async move { group.call(1, op).await }
    });
    tokio::task::yield_now().await;
    group.forget(&1);
    leader.abort();
    assert_eq!(
        follower.await.unwrap().unwrap(),
        2,
        "the follower took over"
    );
    assert_eq!(group.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn events_tell_the_story_of_a_flight() {
    let group = group();
    let recorder = EventRecorder::attach(group.events());
    let slow = || async {
        sleep(MS).await;
        Ok(1)
    };
    let _ = tokio::join!(group.call(1, slow), group.call(1, slow));
    assert_eq!(
        recorder.names(),
        [
            "coalesce_leader_started",
            "coalesce_follower_joined",
            "coalesce_completed"
        ]
    );
    let completed = &recorder.events()[2];
    assert_eq!(completed.pattern(), PatternKind::Coalesce);
    assert_eq!(
        completed.payload::<CoalesceEvent>(),
        Some(&CoalesceEvent::Completed {
            followers: 1,
            ok: true
        })
    );
    assert_eq!(completed.metadata()["followers"], "1");
}

#[tokio::test(start_paused = true)]
async fn zero_keys_is_a_config_error() {
    let error = Group::builder("x").max_keys(0).build().unwrap_err();
    assert_eq!(error.field(), "max_keys");
    assert_eq!(Group::builder(" ").build().unwrap_err().field(), "name");
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_tower_layer_coalesces_requests_by_key() {
    use resilience::coalesce::CoalesceLayer;
    use tower::{service_fn, Layer, ServiceExt};

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let group = Coalescer::<u64, String, String>::builder("layer")
        .build()
        .unwrap();
    let service = CoalesceLayer::new(group.clone(), |request: &(u64, &str)| request.0).layer(
        service_fn(move |(user, _): (u64, &str)| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                sleep(MS).await;
                Ok::<_, String>(format!("user {user}"))
            }
        }),
    );
    let (a, b, c) = tokio::join!(
        service.clone().oneshot((1, "a")),
        service.clone().oneshot((1, "b")),
        service.clone().oneshot((2, "c"))
    );
    assert_eq!(
        (a.unwrap(), b.unwrap(), c.unwrap()),
        ("user 1".into(), "user 1".into(), "user 2".into())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(group.in_flight(), 0);
}
