//! What every allocation test binary shares: `dhat`'s counting global allocator, a poll for
//! futures that are ready at once, and a small harness that runs each test on the main
//! thread, alone.
//!
//! Why not libtest: the allocator counts every thread of the process, and libtest's main
//! thread keeps allocating (its bookkeeping for the test it just spawned) while the test
//! thread already runs. On a loaded machine the main thread is descheduled right after the
//! spawn and does that work in the middle of the measurement, which then counts a handful of
//! allocations that are not the code under test's. Without libtest there is no other thread:
//! what is counted is what the test itself allocated.
//!
//! Included by each allocation test as `mod common { pub(crate) mod alloc; }`, so other test
//! binaries keep the system allocator.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Polls a future that is ready at once, without a runtime (which could allocate itself).
pub(crate) fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future was expected to be ready"),
    }
}

/// How many blocks `work` allocated (the allocator's count before and after; run by
/// [`run`], the test is the only thread).
pub(crate) fn allocations(work: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    work();
    dhat::HeapStats::get().total_blocks - before
}

/// How many blocks 1,000 rounds of `round` allocated, after 10 rounds that are not counted:
/// first calls may initialise lazily created statics (tracing callsites).
#[allow(dead_code, reason = "included by every allocation test, used by some")]
pub(crate) fn allocations_in_rounds(mut round: impl FnMut()) -> u64 {
    for _ in 0..10 {
        round();
    }
    allocations(|| {
        for _ in 0..1_000 {
            round();
        }
    })
}

/// A test: its name and its body, which panics on failure.
pub(crate) type Test = (&'static str, fn());

/// libtest's options that take a value as the next argument, which is then not a filter.
const VALUED: [&str; 6] = [
    "--test-threads",
    "--skip",
    "--format",
    "--color",
    "--logfile",
    "-Z",
];

/// Runs `tests` one after the other on the main thread, each under its own `dhat` profiler,
/// and reports like libtest. Positional arguments filter by name, as libtest's do; options
/// (`--nocapture`, `--test-threads 2`, ...) are accepted and ignored.
pub(crate) fn run(tests: &[Test]) {
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if VALUED.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    let chosen: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let plural = if chosen.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let outcome = {
            let _profiler = dhat::Profiler::builder().testing().build();
            std::panic::catch_unwind(test)
        };
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict}");
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    let passed = chosen.len() - failed.len();
    let result = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {result}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        failed.len(),
        tests.len() - chosen.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
