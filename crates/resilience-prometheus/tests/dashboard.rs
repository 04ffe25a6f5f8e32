//! `dashboards/resilience.json` is an importable Grafana dashboard whose every query reads
//! series the exporter really emits: the metric names of each panel's PromQL are found in
//! the exposition of an app running every pattern (a Redis limiter on a real `redis-server`
//! included), counters and histograms only go through `rate`, and a real Prometheus scraping
//! that app accepts every query. Real time throughout (real sockets, real processes).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use resilience::adaptive::AdaptiveLimiter;
use resilience::backpressure::Backpressure;
use resilience::circuit_breaker::DetectorConfig;
use resilience::load_shed::Priority;
use resilience::rate_limit::DirectRateLimiter;
use resilience::telemetry::{MetricType, METRICS};
use resilience::throttle::AdaptiveThrottle;
use resilience::{Bulkhead, CircuitBreaker, Fallback, LoadShedder, Rate, Retry, Timeout};
use resilience_redis::{RedisBackend, RedisRateLimiter};
use resilience_testkit::{PrometheusServer, RedisServer};
use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dashboards/resilience.json"
    );
    let text = std::fs::read_to_string(path).expect("dashboards/resilience.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, rows included, with the panels nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

/// Every PromQL expression, with the panel title for messages.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .filter(|panel| panel["type"] != "row")
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |target| {
                    let expr = target["expr"].as_str().expect("a PromQL expr");
                    (title.clone(), expr.to_owned())
                })
        })
        .collect()
}

/// The `resilience_*` identifiers of `expr`, each with the function applied to it (`rate`,
/// `increase`, ...), if any.
fn identifiers(expr: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("resilience_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let before = rest[..start].trim_end();
        let function = before.strip_suffix('(').map(|head| {
            head.chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
        });
        rest = &rest[start + name.len()..];
        found.push((name, function));
    }
    found
}

/// The families of an exposition text: name → type (`counter`, `gauge`, `histogram`).
fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.trim().to_owned()))
        })
        .collect()
}

/// The family an identifier of a query reads: `x_bucket`, `x_sum`, `x_count` of histogram
/// `x` are `x`.
fn family_of<'a>(identifier: &'a str, families: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = identifier.strip_suffix(suffix) {
            if families.get(base).map(String::as_str) == Some("histogram") {
                return base;
            }
        }
    }
    identifier
}

/// Grafana's variables, replaced by what they stand for in a plain Prometheus query.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$name", ".*")
}

/// An app with an instance of every pattern, each exercised once, recording into a
/// Prometheus recorder; returns the rendering handle and what must stay alive.
async fn app(redis: &RedisServer) -> (resilience_prometheus::PrometheusHandle, impl Sized) {
    let recorder = resilience_prometheus::recorder().unwrap();
    let handle = recorder.handle();
    let backend = RedisBackend::builder(redis.url())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let instances = metrics::with_local_recorder(&recorder, || {
        (
            CircuitBreaker::builder("payments")
                .detector(DetectorConfig::SlowCallRate {
                    window: resilience::circuit_breaker::Window::Calls(10),
                    slow_call_duration: Duration::from_secs(1),
                    threshold: 0.5,
                    min_calls: 5,
                })
                .build()
                .unwrap(),
            DirectRateLimiter::builder("partner")
                .rate(Rate::per_second(1))
                .build()
                .unwrap(),
            RedisRateLimiter::builder("shared", &backend)
                .rate(Rate::per_minute(1))
                .build()
                .unwrap(),
            Bulkhead::builder("db").max_concurrent(1).build().unwrap(),
            Retry::builder("upstream").max_attempts(2).build().unwrap(),
            Timeout::builder("search")
                .limit(Duration::from_secs(5))
                .build()
                .unwrap(),
            LoadShedder::builder("api").max_requests(4).build().unwrap(),
            Backpressure::builder("jobs")
                .max_pending(16)
                .water_marks(8, 2)
                .build()
                .unwrap(),
            AdaptiveLimiter::builder("dependency").build().unwrap(),
            Fallback::builder("cached").value(()).build().unwrap(),
            AdaptiveThrottle::builder("backend").build().unwrap(),
        )
    });
    let (
        breaker,
        limiter,
        shared,
        bulkhead,
        retry,
        timeout,
        shedder,
        backpressure,
        adaptive,
        fallback,
        throttle,
    ) = &instances;
    let _ = breaker.call(|| async { Ok::<_, ()>(()) }).await;
    let _ = limiter.try_acquire();
    let _ = limiter.try_acquire();
    let _ = resilience::rate_limit::RateLimiter::check(shared, "ada").await;
    let _ = bulkhead.call(|| async { Ok::<_, ()>(()) }).await;
    let _ = retry.call(|| async { Err::<(), _>("down") }).await;
    let _ = timeout.call(|| async { Ok::<_, ()>(()) }).await;
    let _ = shedder.try_acquire(Priority::Normal);
    let _ = backpressure.try_acquire();
    let _ = adaptive.call(|| async { Ok::<_, ()>(()) }).await;
    let _ = fallback.call(|| async { Err::<(), _>("down") }).await;
    let _ = throttle.call(|| async { Ok::<_, ()>(()) }).await;
    (handle, (instances, backend))
}

#[test]
fn the_dashboard_is_a_valid_grafana_dashboard() {
    let dashboard = dashboard();
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let input = &dashboard["__inputs"][0];
    assert_eq!(input["name"], "DS_PROMETHEUS");
    assert_eq!(input["pluginId"], "prometheus");
    let variables: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let variable = |name: &str| {
        *variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(variable("name")["type"], "query");

    let panels = panels(&dashboard);
    assert!(panels.len() > 10, "{} panels", panels.len());
    let mut ids = HashSet::new();
    let mut rows = 0;
    for panel in &panels {
        let id = panel["id"].as_u64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        let title = panel["title"].as_str().expect("a title");
        assert!(!title.is_empty());
        for field in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][field].is_u64(), "{title}: gridPos.{field}");
        }
        if panel["type"] == "row" {
            rows += 1;
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = HashSet::new();
        for target in targets {
            assert!(refs.insert(target["refId"].as_str().expect("refId")));
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().expect("expr");
            assert!(
                expr.contains(r#"name=~"$name""#),
                "{title}: {expr} ignores the name variable"
            );
        }
    }
    // One row per pattern (the Redis backend has its own).
    assert_eq!(rows, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_reads_series_the_exporter_emits_and_prometheus_accepts_it() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let (handle, _alive) = app(&redis).await;
    let exposition = handle.render();
    let emitted = families(&exposition);

    // The exposition is the core's table, name for name and type for type.
    let table: BTreeMap<String, String> = METRICS
        .iter()
        .map(|metric| {
            let kind = match metric.kind {
                MetricType::Counter => "counter",
                MetricType::Gauge => "gauge",
                MetricType::Histogram => "histogram",
            };
            (metric.name.to_owned(), kind.to_owned())
        })
        .collect();
    assert_eq!(emitted, table, "{exposition}");

    let dashboard = dashboard();
    let expressions = expressions(&dashboard);
    let mut shown = BTreeSet::new();
    for (title, expr) in &expressions {
        let found = identifiers(expr);
        assert!(
            !found.is_empty(),
            "{title}: {expr} reads no resilience metric"
        );
        for (identifier, function) in found {
            let family = family_of(&identifier, &emitted);
            let kind = emitted
                .get(family)
                .unwrap_or_else(|| panic!("{title}: {identifier} is not emitted"));
            if identifier != family {
                assert!(
                    identifier.ends_with("_bucket") && function.as_deref() == Some("rate"),
                    "{title}: histogram series {identifier} read as {function:?}"
                );
            }
            match function.as_deref() {
                Some("rate" | "increase") => assert!(
                    kind == "counter" || identifier.ends_with("_bucket"),
                    "{title}: {function:?} of the {kind} {identifier}"
                ),
                _ => assert_eq!(kind, "gauge", "{title}: a {kind} {identifier} read raw"),
            }
            shown.insert(family.to_owned());
        }
    }
    // And every metric has a panel.
    let missing: Vec<&String> = table.keys().filter(|name| !shown.contains(*name)).collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");

    // A real Prometheus scrapes the app and accepts every query.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(resilience_prometheus::serve(listener, handle));
    let prometheus = PrometheusServer::start(&[target], Duration::from_millis(250))
        .await
        .expect("a real prometheus server (apt-get install prometheus)");
    prometheus
        .wait_for(
            r#"resilience_backend_up{name="shared"} == 1"#,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    for (title, expr) in &expressions {
        let query = substitute(expr);
        let body = prometheus
            .query(&query)
            .await
            .unwrap_or_else(|error| panic!("{title}: Prometheus refused {query}: {error}"));
        assert!(body.contains(r#""status":"success""#), "{title}: {body}");
    }
    // The raw selectors of the state panel find the breaker.
    let state = prometheus
        .query(r#"resilience_circuit_breaker_state{name=~".*",state="closed"}"#)
        .await
        .unwrap();
    assert!(state.contains(r#""name":"payments""#), "{state}");
}
