//! Named registries: the same instance per name, no silently ignored config, metrics of all.

use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
use resilience::registry::{Registry, RegistryError};

#[test]
fn get_or_create_never_ignores_a_different_config() {
    let registry = Registry::<CircuitBreaker>::new();
    let config = CircuitBreakerConfig {
        open_duration: Duration::from_secs(5),
        ..CircuitBreakerConfig::default()
    };
    let a = registry.get_or_create("payments", config.clone()).unwrap();
    let b = registry
        .get_or_create(" payments ", config.clone())
        .unwrap();
    a.trip();
    assert!(b.state().is_open());

    let error = registry
        .get_or_create("payments", CircuitBreakerConfig::default())
        .unwrap_err();
    assert_eq!(
        error,
        RegistryError::ConfigMismatch {
            name: "payments".into()
        }
    );
    let invalid = CircuitBreakerConfig {
        success_threshold: 0,
        ..config
    };
    assert!(matches!(
        registry.get_or_create("other", invalid),
        Err(RegistryError::Config(_))
    ));
    assert_eq!(registry.names(), ["payments"]);
}

#[test]
fn metrics_open_circuits_and_reset_all() {
    let registry = Registry::<CircuitBreaker>::new();
    for name in ["a", "b", "c"] {
        registry
            .get_or_create(name, CircuitBreakerConfig::default())
            .unwrap();
    }
    registry.get("b").unwrap().trip();
    registry.get("c").unwrap().force_open();
    assert_eq!(registry.open_circuits(), ["b", "c"]);
    let metrics = registry.metrics();
    assert_eq!(metrics.len(), 3);
    assert_eq!(metrics["b"].state, CircuitState::Open);
    registry.reset_all();
    assert!(registry.open_circuits().is_empty());

    let built = CircuitBreaker::builder("d").build().unwrap();
    registry.insert(built.clone()).unwrap();
    assert!(matches!(
        registry.insert(built),
        Err(RegistryError::AlreadyExists { .. })
    ));
    assert!(registry.remove("d").is_some());
    assert_eq!(registry.len(), 3);
}

#[test]
fn the_global_registry_is_one_per_kind() {
    let first = Registry::<CircuitBreaker>::global();
    first
        .get_or_create("global-registry-test", CircuitBreakerConfig::default())
        .unwrap();
    let again = Registry::<CircuitBreaker>::global();
    assert!(again.get("global-registry-test").is_some());
    assert!(std::ptr::eq(first, again));
}
