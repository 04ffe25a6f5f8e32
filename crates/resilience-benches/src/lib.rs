//! Criterion benchmarks for `resilience`, with its peers measured in the same run.
//!
//! The library is empty; the figures come from `benches/`. Run one group with
//!
//! ```text
//! cargo bench -p resilience-benches --bench circuit_breaker -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Every group holds our entries, the peers' closest equivalents and a `floor_atomic` entry
//! (one uncontended atomic increment), so each figure can be read against the physical floor.
//!
//! The helpers every bench file shares live here: polling a ready future once, the floor
//! entry, the two slot-limiter peers, and a contending second thread.

use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use criterion::BenchmarkGroup;
use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tower::limit::ConcurrencyLimit;
use tower::{service_fn, Service, ServiceExt};

/// A criterion group measuring wall time.
pub type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The result of polling `future` once, with a no-op waker and no runtime: `Some` when it
/// completed.
pub fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    future.now_or_never()
}

/// Runs `entry` once outside the measurement and asserts that it was admitted at once, so a
/// figure never measures a rejection or a `Pending`.
pub fn check(name: &str, entry: &mut impl FnMut() -> bool) {
    assert!(entry(), "{name}: not admitted at once");
}

/// Runs `entry` once outside the measurement and asserts that `expected` holds for its
/// outcome, so a figure never measures the wrong path.
pub fn check_outcome<T>(
    name: &str,
    entry: &mut impl FnMut() -> T,
    expected: impl FnOnce(&T) -> bool,
) {
    let outcome = entry();
    assert!(expected(&outcome), "{name}: unexpected outcome");
}

/// Adds the floor entry: one uncontended atomic increment.
pub fn floor(group: &mut Group<'_>) {
    let counter = AtomicU64::new(0);
    group.bench_function("floor_atomic", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed));
    });
}

/// The inner tower service of every middleware entry: answers at once.
pub fn answer((): ()) -> Ready<Result<u64, ()>> {
    ready(Ok(black_box(1)))
}

/// One request through a tower service: `ready`, then `call`, each polled once; whether it
/// answered `Ok(1)` at once.
pub fn tower_call<S: Service<(), Response = u64>>(service: &mut S) -> bool {
    match poll_once(service.ready()) {
        Some(Ok(service)) => matches!(poll_once(service.call(())), Some(Ok(1))),
        _ => false,
    }
}

/// The peers of every slot limiter: tokio's `Semaphore::try_acquire` and tower's
/// `ConcurrencyLimit` around [`answer`], both on `semaphore`.
pub fn semaphore_peers(group: &mut Group<'_>, semaphore: &Arc<Semaphore>) {
    let mut entry = || semaphore.try_acquire().is_ok();
    check("semaphore_try_acquire", &mut entry);
    group.bench_function("semaphore_try_acquire", |b| b.iter(&mut entry));

    let mut service = ConcurrencyLimit::with_semaphore(service_fn(answer), Arc::clone(semaphore));
    let mut entry = || tower_call(&mut service);
    check("tower_concurrency_limit", &mut entry);
    group.bench_function("tower_concurrency_limit", |b| b.iter(&mut entry));
}

/// The median of `values`, which are left sorted: their first and last are the range.
///
/// # Panics
///
/// If `values` is empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A second thread taking and releasing slots of the same instance until dropped.
#[derive(Debug)]
pub struct Contender {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Contender {
    /// Starts running `op` in a loop on another thread; it must always be admitted.
    pub fn start(mut op: impl FnMut() -> bool + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                assert!(op(), "the contending thread was not admitted");
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the contending thread panicked");
        }
    }
}
