//! Heap allocations per call, ours and the peers', counted with `dhat`: a coalesced call
//! nobody joins next to `singleflight-async`'s `work`, and chaos that injects nothing next to
//! `fail`'s fail points.
//!
//! Run with: `cargo run --release -p resilience-benches --example coalesce_chaos_allocations`

use std::future::Future;

use futures_util::FutureExt;
use resilience::chaos::Chaos;
use resilience::coalesce::Coalescer;
use singleflight_async::SingleFlight;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const CALLS: u64 = 10_000;

fn ready<F: Future>(future: F) -> F::Output {
    future.now_or_never().expect("ready at once")
}

/// Allocations per call of `call`, after a warm-up.
fn per_call(name: &str, mut call: impl FnMut()) {
    for _ in 0..10 {
        call();
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..CALLS {
        call();
    }
    let blocks = dhat::HeapStats::get().total_blocks - before;
    println!(
        "{name:<40} {:.2} allocations per call",
        blocks as f64 / CALLS as f64
    );
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let ours = Coalescer::<u64, u64, ()>::builder("a").build().unwrap();
    per_call("coalescer_call", || {
        ready(ours.call(7, || async { Ok(1) })).unwrap();
    });
    let peer = SingleFlight::<u64, u64>::new();
    per_call("singleflight_async_work", || {
        ready(peer.work(7, || async { 1 }));
    });

    let off = Chaos::<u64, ()>::builder("off")
        .fault(1.0, || ())
        .enabled(false)
        .build()
        .unwrap();
    per_call("chaos_call (disabled)", || {
        ready(off.call(|| async { Ok(1) })).unwrap();
    });
    let armed = Chaos::<u64, ()>::builder("armed")
        .fault(f64::MIN_POSITIVE, || ())
        .build()
        .unwrap();
    per_call("chaos_call (enabled, not firing)", || {
        ready(armed.call(|| async { Ok(1) })).unwrap();
    });
    per_call("fail_point (unconfigured)", || {
        fail::fail_point!("unconfigured");
    });
    fail::cfg("off", "off").unwrap();
    per_call("fail_point (configured off)", || {
        fail::fail_point!("off");
    });
}
