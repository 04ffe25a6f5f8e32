//! Timeout: ours side by side with `tokio::time::timeout`, per call.
//!
//! ```text
//! cargo bench -p resilience-benches --bench timeout -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups (each starts with `floor_atomic`, one uncontended `AtomicU64::fetch_add`):
//!
//! * `timeout/ready`: the operation is ready at its first poll, so no timer is ever
//!   registered. `bare` awaits it with no limit; `tokio_timeout` is `tokio::time::timeout`;
//!   `resilience_call` is [`Timeout::call`] (limit, task-local deadline for nested calls,
//!   metrics and events); `resilience_deadline_run` is [`Deadline::run`].
//! * `timeout/armed`: the operation is pending at its first poll and ready at its second, so
//!   each entry registers its timer in tokio's wheel and removes it again.
//!
//! Every entry is polled with a no-op waker inside a current-thread runtime's context (the
//! timer needs one), never through `block_on`, so no figure includes an executor's cost.
//! Each entry is run once before measuring and its outcome asserted.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience::timeout::{Deadline, Timeout};
use resilience_benches::{check_outcome, floor};

const LIMIT: Duration = Duration::from_secs(30);

/// Pending once, then ready with 1: makes every timeout register its timer.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = Result<u64, std::io::Error>;

    fn poll(mut self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            Poll::Ready(Ok(black_box(1)))
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// Polls `future` until it completes, at most twice, with a no-op waker.
fn drive<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..2 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
    }
    None
}

fn is_one<E>(outcome: &Option<Result<u64, E>>) -> bool {
    matches!(outcome, Some(Ok(1)))
}

fn groups(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _context = runtime.enter();
    let ours = Timeout::builder("bench")
        .limit(LIMIT)
        .build()
        .expect("valid config");

    let mut group = c.benchmark_group("timeout/ready");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    let operation = || async { Ok::<_, std::io::Error>(black_box(1_u64)) };
    let mut entry = || drive(operation());
    check_outcome("bare", &mut entry, is_one);
    group.bench_function("bare", |b| b.iter(&mut entry));
    let mut entry = || drive(tokio::time::timeout(LIMIT, operation())).map(|r| r.unwrap());
    check_outcome("tokio_timeout", &mut entry, is_one);
    group.bench_function("tokio_timeout", |b| b.iter(&mut entry));
    let mut entry = || drive(ours.call(operation));
    check_outcome("resilience_call", &mut entry, is_one);
    group.bench_function("resilience_call", |b| b.iter(&mut entry));
    let mut entry =
        || drive(Deadline::after(LIMIT).run(async { Ok::<_, resilience::Error<()>>(1_u64) }));
    check_outcome("resilience_deadline_run", &mut entry, is_one);
    group.bench_function("resilience_deadline_run", |b| b.iter(&mut entry));
    group.finish();

    let mut group = c.benchmark_group("timeout/armed");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    let mut entry = || drive(PendingOnce(false));
    check_outcome("bare", &mut entry, is_one);
    group.bench_function("bare", |b| b.iter(&mut entry));
    let mut entry = || drive(tokio::time::timeout(LIMIT, PendingOnce(false))).map(|r| r.unwrap());
    check_outcome("tokio_timeout", &mut entry, is_one);
    group.bench_function("tokio_timeout", |b| b.iter(&mut entry));
    let mut entry = || drive(ours.call(|| PendingOnce(false)));
    check_outcome("resilience_call", &mut entry, is_one);
    group.bench_function("resilience_call", |b| b.iter(&mut entry));
    group.finish();
}

criterion_group!(benches, groups);
criterion_main!(benches);
