//! [`KeyedCircuitBreaker`]: one breaker per key, bounded, evicting only idle closed breakers
//! nobody holds. Paused time: idleness is exact.

use std::time::Duration;

use resilience::circuit_breaker::{CircuitState, KeyedCircuitBreaker};
use resilience::RejectionReason;

fn keyed(max_keys: usize) -> KeyedCircuitBreaker<String> {
    KeyedCircuitBreaker::builder("hosts")
        .failure_threshold(2)
        .open_duration(Duration::from_secs(30))
        .max_keys(max_keys)
        .idle_after(Duration::from_secs(60))
        .build()
        .expect("valid config")
}

async fn fail_twice(map: &KeyedCircuitBreaker<String>, key: &str) {
    let breaker = map.breaker(key).expect("admitted");
    for _ in 0..2 {
        let _ = breaker.call(|| async { Err::<(), _>("boom") }).await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_breaker_per_key_sharing_state_by_key() {
    let map = keyed(8);
    fail_twice(&map, "http://a").await;
    assert_eq!(map.breaker("http://a").unwrap().state(), CircuitState::Open);
    assert_eq!(
        map.breaker("http://b").unwrap().state(),
        CircuitState::Closed
    );
    assert_eq!(map.len(), 2);
    assert_eq!(map.breaker("http://a").unwrap().name(), "hosts:http://a");
    assert!(map.get("http://c").is_none(), "get makes nothing");
    assert_eq!(map.len(), 2);
    let clone = map.clone();
    assert_eq!(clone.get("http://a").unwrap().state(), CircuitState::Open);
    let metrics = map.metrics();
    assert_eq!(metrics.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn only_idle_closed_unheld_breakers_are_evicted() {
    let map = keyed(3);
    fail_twice(&map, "open").await; // open: never evicted
    map.breaker("idle").unwrap(); // closed, idle soon
    let held = map.breaker("held").unwrap(); // closed, but a clone is kept
    tokio::time::advance(Duration::from_secs(59)).await;
    // Full, nothing idle yet: the new key is refused, nothing is evicted.
    let refused = map.breaker("new").unwrap_err();
    assert_eq!(refused.reason(), RejectionReason::CapacityFull);
    assert_eq!(refused.name(), "hosts");
    assert_eq!(map.len(), 3);

    tokio::time::advance(Duration::from_secs(1)).await;
    // Idle for exactly `idle_after`: "idle" goes; "open" (open, even if its open time has
    // passed and it would report half-open) and "held" stay.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(map.breaker("new").is_ok());
    assert_eq!(map.evicted(), 1);
    assert!(map.get("idle").is_none());
    assert!(map.get("open").is_some());
    assert!(map.get("held").is_some());

    // Once released and idle, "held" can go too; "new" was just used.
    drop(held);
    tokio::time::advance(Duration::from_secs(60)).await;
    map.breaker("new").unwrap();
    assert_eq!(map.evict_idle(), 1);
    assert!(map.get("held").is_none());
    assert!(map.get("new").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_keeps_its_breaker() {
    let map = keyed(1);
    let permit = map
        .breaker("busy")
        .unwrap()
        .try_acquire_owned()
        .expect("closed");
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(map.evict_idle(), 0, "the permit holds the breaker");
    permit.success();
    assert_eq!(map.evict_idle(), 1);
    assert!(map.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_permit_taken_through_the_map_keeps_its_breaker_and_records_into_it() {
    let map = keyed(1);
    let permit = map.try_acquire_owned("busy").expect("closed");
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(map.evict_idle(), 0, "the permit holds the breaker");
    permit.failure();
    map.try_acquire_owned("busy").expect("closed").failure();
    assert_eq!(map.get("busy").unwrap().state(), CircuitState::Open);
    let refused = map.try_acquire_owned("busy").unwrap_err();
    assert_eq!(refused.reason(), RejectionReason::CircuitOpen);

    // A refused permit holds nothing; a full map refuses a new key, as `breaker` does.
    let full = map.try_acquire_owned("other").unwrap_err();
    assert_eq!(full.reason(), RejectionReason::CapacityFull);
    let closed = keyed(1);
    closed.try_acquire_owned("quiet").unwrap().success();
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(closed.evict_idle(), 1, "released and idle: evicted");
}

#[tokio::test(start_paused = true)]
async fn a_borrowed_permit_keeps_its_breaker() {
    let map = keyed(1);
    let breaker = map.breaker("busy").unwrap();
    let permit = breaker.try_acquire().expect("closed");
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(map.evict_idle(), 0, "the permit borrows a handle");
    permit.success();
    drop(breaker);
    assert_eq!(map.evict_idle(), 1);
    assert!(map.is_empty());
}

#[test]
fn bounds_are_validated() {
    let error = KeyedCircuitBreaker::<String>::builder("hosts")
        .max_keys(0)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "max_keys");
    let error = KeyedCircuitBreaker::<String>::builder("hosts")
        .failure_threshold(0)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "failure_threshold");
    let error = KeyedCircuitBreaker::<u64>::builder(" ")
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "name");
}

#[tokio::test(start_paused = true)]
async fn a_later_use_is_stamped_once_the_stamp_is_a_64th_of_idle_after_old() {
    // idle_after 60 s: a use is stamped when the last stamp is older than 60/64 s.
    let map = keyed(1);
    drop(map.breaker("busy").unwrap());
    tokio::time::advance(Duration::from_millis(500)).await;
    drop(map.breaker("busy").unwrap()); // within the grain: not stamped
    tokio::time::advance(Duration::from_millis(1_500)).await;
    drop(map.breaker("busy").unwrap()); // 2 s after the stamp: stamped at 2 s
                                        // 60 s after the first stamp, 58 s after the last use: still in use, not evicted.
    tokio::time::advance(Duration::from_secs(58)).await;
    let refused = map.breaker("new").unwrap_err();
    assert_eq!(refused.reason(), RejectionReason::CapacityFull);
    // Idle for idle_after since the stamped use: evicted.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(map.breaker("new").is_ok());
    assert!(map.get("busy").is_none());
}
