//! Circuit breaker: ours side by side with `recloser`, `failsafe` and `tower-resilience`, per
//! call.
//!
//! ```text
//! cargo bench -p resilience-benches --bench circuit_breaker -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups (every one starts with `floor_atomic`, one uncontended `AtomicU64::fetch_add`, so each
//! figure reads against the physical floor, as `tracing/benches/baseline.rs` does):
//!
//! * `circuit_breaker/closed_success`: a closed breaker around an operation that succeeds at
//!   once, through each library's closest equivalent of "run this and record the outcome".
//! * `circuit_breaker/closed_success_2_threads`: the sync and async calls of `closed_success`
//!   while a second thread makes the same calls on the same breaker: a figure close to the
//!   one-thread figure means two threads get twice the calls through. Ours against the peer with two threads is
//!   `benches/contended.rs`'s: it alternates them round by round, where these entries are
//!   measured one after the other.
//! * `circuit_breaker/open_rejection`: the same breakers held open, so every call is refused.
//! * `events/emit_no_listener`: our `call` with no listener, with one no-op listener on the
//!   event it emits, and with one listener on an event it never emits.
//!
//! # How futures are driven, and why
//!
//! Every async entry (ours, `failsafe::futures`, both tower services) is polled exactly once
//! with [`FutureExt::now_or_never`], a no-op waker and no runtime. The operation is always
//! ready, so one poll completes it, and no entry pays for an executor: a `block_on` or a tokio
//! runtime would add the same fixed cost to every async entry and blur the differences between
//! them, while the sync entries would not pay it at all. None of the paths measured here needs a
//! runtime (no timer is armed: no call timeout, no backpressure), which [`check`] asserts once
//! before measuring: every entry is checked to complete on its first poll with the expected
//! outcome, so no figure is the cost of returning `Pending`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience::circuit_breaker::{
    CircuitBreaker, CircuitBreakerEvent, CircuitBreakerLayer, KeyedCircuitBreaker,
};
use resilience_benches::{answer, check_outcome, floor, poll_once, Contender};
use tower::{service_fn, Layer, Service, ServiceExt};

/// Long enough that an open breaker stays open for the whole run.
const OPEN_FOR: Duration = Duration::from_secs(3600);

/// Drives a tower service through one request: `ready`, then `call`, each polled once.
fn tower_call<S: Service<()>>(service: &mut S) -> Option<Result<S::Response, S::Error>> {
    match poll_once(service.ready()) {
        Some(Ok(service)) => poll_once(service.call(())),
        Some(Err(error)) => Some(Err(error)),
        None => None,
    }
}

fn closed_success(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker/closed_success");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    // Ours, with the defaults (5 consecutive failures open it): admission is one atomic load
    // and the outcome a few relaxed increments.
    let breaker = CircuitBreaker::builder("bench")
        .build()
        .expect("default config is valid");

    let mut entry = || poll_once(breaker.call(|| async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("resilience_call", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("resilience_call", |b| b.iter(&mut entry));

    let mut entry = || breaker.call_blocking(|| Ok::<_, ()>(black_box(1_u64)));
    check_outcome("resilience_call_blocking", &mut entry, |r| {
        matches!(r, Ok(1))
    });
    group.bench_function("resilience_call_blocking", |b| b.iter(&mut entry));

    // `try_acquire`'s permit borrows the breaker, as `call` does: no reference count.
    let mut entry = || match breaker.try_acquire() {
        Ok(permit) => {
            permit.success();
            true
        }
        Err(_) => false,
    };
    check_outcome("resilience_permit", &mut entry, |admitted| *admitted);
    group.bench_function("resilience_permit", |b| b.iter(&mut entry));

    // One breaker per host: the map lookup (shared lock, one hash of the key, a stamp of the
    // last use) on top of the permit, in a map of 1,000 hosts.
    let hosts = KeyedCircuitBreaker::<String>::builder("bench")
        .build()
        .expect("default config is valid");
    for host in 0..1_000 {
        let key = format!("http://10.0.{}.{}:8080", host / 256, host % 256);
        hosts.breaker(&key).expect("room");
    }
    let mut entry = || match hosts.breaker(black_box("http://10.0.1.44:8080")) {
        Ok(breaker) => match breaker.try_acquire() {
            Ok(permit) => {
                permit.success();
                true
            }
            Err(_) => false,
        },
        Err(_) => false,
    };
    check_outcome("resilience_keyed_permit", &mut entry, |admitted| *admitted);
    group.bench_function("resilience_keyed_permit", |b| b.iter(&mut entry));

    // Ours as tower middleware, the like-for-like comparison with tower-resilience.
    let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check_outcome("resilience_tower", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("resilience_tower", |b| b.iter(&mut entry));

    // failsafe with its defaults (success rate over a time window, or 5 consecutive
    // failures, with jittered backoff), through its sync and its futures interfaces.
    let failsafe_breaker = failsafe::Config::new().build();

    let mut entry =
        || failsafe::CircuitBreaker::call(&failsafe_breaker, || Ok::<_, ()>(black_box(1_u64)));
    check_outcome("failsafe", &mut entry, |r| matches!(r, Ok(1)));
    group.bench_function("failsafe", |b| b.iter(&mut entry));

    let mut entry = || {
        poll_once(failsafe::futures::CircuitBreaker::call(
            &failsafe_breaker,
            async { Ok::<_, ()>(black_box(1_u64)) },
        ))
    };
    check_outcome("failsafe_futures", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("failsafe_futures", |b| b.iter(&mut entry));

    // recloser with its defaults (failure rate over ring buffers of calls), sync and async.
    let recloser = recloser::Recloser::default();
    let mut entry = || recloser.call(|| Ok::<_, ()>(black_box(1_u64)));
    check_outcome("recloser", &mut entry, |r| matches!(r, Ok(1)));
    group.bench_function("recloser", |b| b.iter(&mut entry));

    let async_recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let mut entry = || poll_once(async_recloser.call(async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("recloser_async", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("recloser_async", |b| b.iter(&mut entry));

    // tower-resilience with its defaults (failure rate over the last 100 calls); it is only
    // offered as tower middleware.
    let layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .name("bench")
        .build()
        .expect("default config is valid");
    let mut service = layer.layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check_outcome("tower_resilience", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("tower_resilience", |b| b.iter(&mut entry));

    group.finish();
}

fn closed_success_2_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker/closed_success_2_threads");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let breaker = CircuitBreaker::builder("bench")
        .build()
        .expect("default config is valid");
    let other = breaker.clone();
    let _contender = Contender::start(move || {
        other
            .call_blocking(|| Ok::<_, ()>(black_box(1_u64)))
            .is_ok()
    });
    let mut entry = || breaker.call_blocking(|| Ok::<_, ()>(black_box(1_u64)));
    check_outcome("resilience_call_blocking", &mut entry, |r| {
        matches!(r, Ok(1))
    });
    group.bench_function("resilience_call_blocking", |b| b.iter(&mut entry));
    let mut entry = || poll_once(breaker.call(|| async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("resilience_call", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("resilience_call", |b| b.iter(&mut entry));
    drop(_contender);

    let recloser = std::sync::Arc::new(recloser::Recloser::default());
    let other = std::sync::Arc::clone(&recloser);
    let _contender = Contender::start(move || other.call(|| Ok::<_, ()>(black_box(1_u64))).is_ok());
    let mut entry = || recloser.call(|| Ok::<_, ()>(black_box(1_u64)));
    check_outcome("recloser", &mut entry, |r| matches!(r, Ok(1)));
    group.bench_function("recloser", |b| b.iter(&mut entry));
    drop(_contender);

    let failsafe_breaker = failsafe::Config::new().build();
    let other = failsafe_breaker.clone();
    let _contender = Contender::start(move || {
        failsafe::CircuitBreaker::call(&other, || Ok::<_, ()>(black_box(1_u64))).is_ok()
    });
    let mut entry =
        || failsafe::CircuitBreaker::call(&failsafe_breaker, || Ok::<_, ()>(black_box(1_u64)));
    check_outcome("failsafe", &mut entry, |r| matches!(r, Ok(1)));
    group.bench_function("failsafe", |b| b.iter(&mut entry));
    drop(_contender);

    group.finish();
}

fn open_rejection(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker/open_rejection");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    // Ours, tripped: open until `OPEN_FOR` has passed. A rejection reads the clock (for
    // `retry_after`), counts itself and emits `call_rejected` to nobody.
    let breaker = CircuitBreaker::builder("bench")
        .open_duration(OPEN_FOR)
        .build()
        .expect("config is valid");
    breaker.trip();

    let mut entry = || poll_once(breaker.call(|| async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("resilience_call", &mut entry, |r| {
        matches!(r, Some(Err(resilience::Error::Rejected(_))))
    });
    group.bench_function("resilience_call", |b| b.iter(&mut entry));

    let mut entry = || breaker.call_blocking(|| Ok::<_, ()>(black_box(1_u64)));
    check_outcome("resilience_call_blocking", &mut entry, |r| {
        matches!(r, Err(resilience::Error::Rejected(_)))
    });
    group.bench_function("resilience_call_blocking", |b| b.iter(&mut entry));

    let mut entry = || breaker.try_acquire().is_err();
    check_outcome("resilience_permit", &mut entry, |rejected| *rejected);
    group.bench_function("resilience_permit", |b| b.iter(&mut entry));

    let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check_outcome("resilience_tower", &mut entry, |r| {
        matches!(r, Some(Err(resilience::Error::Rejected(_))))
    });
    group.bench_function("resilience_tower", |b| b.iter(&mut entry));

    // recloser over a ring of one call, open for `OPEN_FOR`: the first failure fills the
    // ring, the second opens it.
    let recloser = recloser::Recloser::custom()
        .closed_len(1)
        .error_rate(0.5)
        .open_wait(OPEN_FOR)
        .build();
    for _ in 0..2 {
        let _ = recloser.call(|| Err::<u64, ()>(()));
    }
    let mut entry = || recloser.call(|| Ok::<_, ()>(black_box(1_u64)));
    check_outcome("recloser", &mut entry, |r| {
        matches!(r, Err(recloser::Error::Rejected))
    });
    group.bench_function("recloser", |b| b.iter(&mut entry));

    // failsafe, opened by one failure with a constant backoff of `OPEN_FOR`.
    let failsafe_breaker = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(OPEN_FOR),
        ))
        .build();
    let opened = failsafe::CircuitBreaker::call(&failsafe_breaker, || Err::<u64, ()>(()));
    assert!(matches!(opened, Err(failsafe::Error::Inner(()))));

    let mut entry =
        || failsafe::CircuitBreaker::call(&failsafe_breaker, || Ok::<_, ()>(black_box(1_u64)));
    check_outcome("failsafe", &mut entry, |r| {
        matches!(r, Err(failsafe::Error::Rejected))
    });
    group.bench_function("failsafe", |b| b.iter(&mut entry));

    let mut entry = || {
        poll_once(failsafe::futures::CircuitBreaker::call(
            &failsafe_breaker,
            async { Ok::<_, ()>(black_box(1_u64)) },
        ))
    };
    check_outcome("failsafe_futures", &mut entry, |r| {
        matches!(r, Some(Err(failsafe::Error::Rejected)))
    });
    group.bench_function("failsafe_futures", |b| b.iter(&mut entry));

    // tower-resilience, forced open with a wait of `OPEN_FOR` (not manual mode: the same
    // timed open state as the others). Without backpressure, `poll_ready` admits the request
    // and the call future fails it.
    let layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .name("bench")
        .wait_duration_in_open(OPEN_FOR)
        .build()
        .expect("config is valid");
    let mut service = layer.layer(service_fn(answer));
    poll_once(service.force_open()).expect("an uncontended lock is ready at once");
    let mut entry = || tower_call(&mut service);
    check_outcome("tower_resilience", &mut entry, |r| {
        matches!(
            r,
            Some(Err(
                tower_resilience::circuitbreaker::CircuitBreakerError::OpenCircuit
            ))
        )
    });
    group.bench_function("tower_resilience", |b| b.iter(&mut entry));

    group.finish();
}

fn emit_no_listener(c: &mut Criterion) {
    let mut group = c.benchmark_group("events/emit_no_listener");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    // One breaker per entry, so a listener on one cannot leak into another's figure. Nothing
    // in this process listens on the global bus.
    let quiet = CircuitBreaker::builder("quiet")
        .build()
        .expect("default config is valid");
    let mut entry = || poll_once(quiet.call(|| async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("no_listener", &mut entry, |r| matches!(r, Some(Ok(1))));
    group.bench_function("no_listener", |b| b.iter(&mut entry));

    // A no-op listener on `call_success`: every call now builds the event and dispatches it.
    let heard = CircuitBreaker::builder("heard")
        .build()
        .expect("default config is valid");
    heard
        .events()
        .on(CircuitBreakerEvent::CALL_SUCCESS, |event| {
            black_box(event);
        });
    let mut entry = || poll_once(heard.call(|| async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("one_noop_listener", &mut entry, |r| {
        matches!(r, Some(Ok(1)))
    });
    group.bench_function("one_noop_listener", |b| b.iter(&mut entry));

    // A listener on an event the happy path never emits: shows whether a listener for
    // something else costs the happy path anything.
    let elsewhere = CircuitBreaker::builder("elsewhere")
        .build()
        .expect("default config is valid");
    elsewhere
        .events()
        .on(CircuitBreakerEvent::CIRCUIT_OPENED, |event| {
            black_box(event);
        });
    let mut entry = || poll_once(elsewhere.call(|| async { Ok::<_, ()>(black_box(1_u64)) }));
    check_outcome("listener_other_kind", &mut entry, |r| {
        matches!(r, Some(Ok(1)))
    });
    group.bench_function("listener_other_kind", |b| b.iter(&mut entry));

    group.finish();
}

/// Short warm-up and measurement so that the whole file runs in about a minute on two cores;
/// command-line flags still override these.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = closed_success, closed_success_2_threads, open_rejection, emit_no_listener
}
criterion_main!(benches);
