//! The cache through the public API, under tokio's paused clock so every expiry is exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::cache::{Cache, CacheEvent};
use resilience::classify::Classifier;
use resilience::Error;
use resilience_testkit::EventRecorder;
use tokio::time::advance;

const NS: Duration = Duration::from_nanos(1);

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// An operation counting its runs and answering `value`.
fn counted(
    runs: &AtomicUsize,
    value: u32,
) -> impl std::future::Future<Output = Result<u32, String>> + '_ {
    runs.fetch_add(1, Ordering::SeqCst);
    async move { Ok(value) }
}

fn failing(runs: &AtomicUsize) -> impl std::future::Future<Output = Result<u32, String>> + '_ {
    runs.fetch_add(1, Ordering::SeqCst);
    async { Err("upstream down".to_owned()) }
}

#[tokio::test(start_paused = true)]
async fn a_hit_answers_without_running_the_operation() {
    let cache = Cache::<&str, u32>::builder("hits").build().unwrap();
    let recorder = EventRecorder::attach(cache.events());
    let runs = AtomicUsize::new(0);
    assert_eq!(
        cache
            .get_or_fetch(&"a", || counted(&runs, 1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        cache
            .get_or_fetch(&"a", || counted(&runs, 2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        cache
            .get_or_fetch(&"b", || counted(&runs, 3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(recorder.names(), ["cache_miss", "cache_hit", "cache_miss"]);
    let metrics = cache.metrics();
    assert_eq!((metrics.hits, metrics.misses, metrics.entries), (1, 2, 2));
    assert!((metrics.hit_rate - 1.0 / 3.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn entries_expire_exactly_at_their_ttl() {
    let cache = Cache::<u8, u32>::builder("ttl")
        .ttl(secs(10))
        .build()
        .unwrap();
    cache.insert(1, 7);
    advance(secs(10) - NS).await;
    assert_eq!(cache.get(&1), Some(7), "fresh one nanosecond before");
    advance(NS).await;
    assert_eq!(cache.get(&1), None, "expired at the ttl");
    assert_eq!(cache.len(), 0, "the expired entry was removed when found");
    // Reads do not extend a time to live.
    cache.insert(2, 8);
    for _ in 0..9 {
        advance(secs(1)).await;
        assert_eq!(cache.get(&2), Some(8));
    }
    advance(secs(1)).await;
    assert_eq!(cache.get(&2), None);
}

#[tokio::test(start_paused = true)]
async fn idle_entries_expire_and_reads_keep_them_fresh() {
    let cache = Cache::<u8, u32>::builder("idle")
        .no_ttl()
        .time_to_idle(secs(5))
        .build()
        .unwrap();
    cache.insert(1, 1);
    for _ in 0..10 {
        advance(secs(5) - NS).await;
        assert_eq!(cache.get(&1), Some(1), "read just before going idle");
    }
    advance(secs(5)).await;
    assert_eq!(cache.get(&1), None, "idle for exactly the limit");

    // With both, the first limit wins.
    let cache = Cache::<u8, u32>::builder("both")
        .ttl(secs(8))
        .time_to_idle(secs(5))
        .build()
        .unwrap();
    cache.insert(1, 1);
    advance(secs(4)).await;
    assert_eq!(cache.get(&1), Some(1));
    advance(secs(4) - NS).await;
    assert_eq!(cache.get(&1), Some(1));
    advance(NS).await;
    assert_eq!(cache.get(&1), None, "the ttl ends it although it was read");
}

#[tokio::test(start_paused = true)]
async fn the_bound_is_respected() {
    let cache = Cache::<u32, u32>::builder("bounded")
        .max_entries(100)
        .build()
        .unwrap();
    for key in 0..1_000 {
        cache.insert(key, key);
    }
    assert!(cache.len() <= 100, "{} entries", cache.len());
    assert!(cache.metrics().capacity == 100);

    let weighed = Cache::<u32, Vec<u8>>::builder("weighed")
        .max_weight(1_000, |_: &u32, value: &Vec<u8>| value.len() as u64)
        .build()
        .unwrap();
    for key in 0..100 {
        weighed.insert(key, vec![0; 100]);
    }
    assert!(weighed.metrics().weight <= 1_000, "{:?}", weighed.metrics());
    assert!(weighed.len() <= 10);
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_within_its_bound_and_errors_after() {
    let cache = Cache::<&str, u32>::builder("stale")
        .ttl(secs(10))
        .stale_if_error(secs(30))
        .build()
        .unwrap();
    let recorder = EventRecorder::attach(cache.events());
    let runs = AtomicUsize::new(0);
    cache
        .get_or_fetch(&"k", || counted(&runs, 5))
        .await
        .unwrap();

    // Expired 20 s ago: the operation runs, fails, the stale value answers.
    advance(secs(30)).await;
    assert_eq!(
        cache.get_or_fetch(&"k", || failing(&runs)).await.unwrap(),
        5
    );
    let stale: Vec<_> = recorder
        .events()
        .iter()
        .filter_map(|event| event.payload::<CacheEvent>().cloned())
        .collect();
    assert_eq!(
        stale.last(),
        Some(&CacheEvent::CacheStale {
            expired_for: secs(20)
        })
    );

    // One nanosecond before the bound it still answers; at the bound the error comes back.
    advance(secs(10) - NS).await;
    assert_eq!(
        cache.get_or_fetch(&"k", || failing(&runs)).await.unwrap(),
        5
    );
    advance(NS).await;
    let error = cache
        .get_or_fetch(&"k", || failing(&runs))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Inner(ref e) if e == "upstream down"));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        4,
        "every miss ran the operation"
    );
    assert_eq!(cache.metrics().stale_hits, 2);
    assert_eq!(
        recorder.names(),
        [
            "cache_miss",
            "cache_miss",
            "cache_stale",
            "cache_miss",
            "cache_stale",
            "cache_miss"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_failure_cannot_stretch_the_stale_bound() {
    let cache = Cache::<&str, u32>::builder("slow")
        .ttl(secs(10))
        .stale_if_error(secs(5))
        .build()
        .unwrap();
    cache.insert("k", 1);
    advance(secs(12)).await;
    let result = cache
        .get_or_fetch(&"k", || async {
            tokio::time::sleep(secs(10)).await;
            Err::<u32, _>("timeout".to_owned())
        })
        .await;
    assert!(result.is_err(), "the failure came after the stale bound");
}

#[tokio::test(start_paused = true)]
async fn failures_and_rejected_values_are_not_stored() {
    let cache = Cache::<&str, u16>::builder("classified").build().unwrap();
    let classifier = Classifier::<u16, String>::new()
        .failure_on_result(|status| *status >= 500)
        .ignore_if(|error| error == "not found");
    let answer = cache
        .get_or_fetch_with(&classifier, &"a", || async { Ok::<u16, String>(503) })
        .await;
    assert_eq!(
        answer.unwrap(),
        503,
        "no stale entry: the value is returned as is"
    );
    assert_eq!(cache.len(), 0);
    let answer = cache
        .get_or_fetch_with(&classifier, &"a", || async {
            Err::<u16, _>("not found".to_owned())
        })
        .await;
    assert!(answer.is_err());
    assert_eq!(cache.len(), 0);
    cache
        .get_or_fetch_with(&classifier, &"a", || async { Ok::<u16, String>(200) })
        .await
        .unwrap();
    assert_eq!(cache.get(&"a"), Some(200));
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_are_not_coalesced() {
    let cache = Cache::<&str, u32>::builder("concurrent").build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let calls = (0..10).map(|n| {
        let cache = cache.clone();
        let runs = Arc::clone(&runs);
        async move {
            cache
                .get_or_fetch(&"k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok::<_, String>(n)
                })
                .await
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    assert_eq!(runs.load(Ordering::SeqCst), 10, "each concurrent miss ran");
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(cache.len(), 1, "one entry remains");
}

#[tokio::test(start_paused = true)]
async fn invalidate_and_clear_forget_entries() {
    let cache = Cache::<u8, u8>::builder("forget").build().unwrap();
    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.invalidate(&1);
    assert_eq!((cache.get(&1), cache.get(&2)), (None, Some(2)));
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn invalid_configs_are_refused_naming_the_field() {
    let field =
        |builder: resilience::cache::CacheBuilder<u8, u8>| builder.build().unwrap_err().field();
    assert_eq!(field(Cache::builder("x").max_entries(0)), "max_entries");
    assert_eq!(field(Cache::builder("x").ttl(Duration::ZERO)), "ttl");
    assert_eq!(field(Cache::builder(" ")), "name");
}

#[cfg(feature = "tower")]
mod tower_layer {
    use super::*;
    use resilience::cache::CacheLayer;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    #[tokio::test(start_paused = true)]
    async fn the_layer_answers_hits_and_serves_stale_on_errors() {
        let cache = Cache::<String, String>::builder("http")
            .ttl(secs(10))
            .stale_if_error(secs(60))
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let service = ServiceBuilder::new()
            .layer(CacheLayer::new(cache.clone(), |path: &String| path.clone()))
            .service(service_fn(move |path: String| {
                let run = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if run == 0 {
                        Ok(format!("body of {path}"))
                    } else {
                        Err("upstream down".to_owned())
                    }
                }
            }));
        let get = |path: &str| service.clone().oneshot(path.to_owned());
        assert_eq!(get("/a").await.unwrap(), "body of /a");
        assert_eq!(get("/a").await.unwrap(), "body of /a");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        advance(secs(20)).await;
        assert_eq!(get("/a").await.unwrap(), "body of /a", "stale");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(get("/b").await.unwrap_err().is_inner());
        assert_eq!(cache.metrics().stale_hits, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_is_looked_up_before_the_call_is_polled() {
    let cache = Cache::<&str, u32>::builder("lazy").build().unwrap();
    cache.insert("a", 1);
    let runs = AtomicUsize::new(0);
    drop(cache.get_or_fetch(&"a", || counted(&runs, 2)));
    drop(cache.get_or_fetch(&"b", || counted(&runs, 2)));
    let metrics = cache.metrics();
    assert_eq!(
        (metrics.hits, metrics.misses),
        (0, 0),
        "an unpolled call counts nothing"
    );
    // A call made before the entry expires looks it up when polled, at the time of the poll.
    let call = cache.get_or_fetch(&"a", || counted(&runs, 3));
    advance(secs(60)).await;
    assert_eq!(call.await.unwrap(), 3, "expired by the time it was polled");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn hits_and_misses_from_many_threads_add_up_exactly() {
    // More threads than a small machine's per-thread seats, some exiting before others start:
    // every lookup is counted once, whichever thread made it.
    let cache = Cache::<u32, u32>::builder("shared").build().unwrap();
    cache.insert(1, 10);
    for _round in 0..3 {
        let threads: Vec<_> = (0..24)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        // Key 1 is held: a hit; key 2 never is: a miss.
                        let key = if i % 4 == 0 { 2 } else { 1 };
                        let _ = cache.get(&key);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }
    let metrics = cache.metrics();
    assert_eq!(metrics.hits, 3 * 24 * 750);
    assert_eq!(metrics.misses, 3 * 24 * 250);
}
