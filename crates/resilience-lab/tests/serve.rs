//! `--serve`: the lab binary serves Prometheus metrics and a live page on a loopback port
//! while it runs its rounds, then stops by itself after `--rounds`. Real HTTP, real time.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::{timeout, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mode_exports_metrics_and_a_live_page_while_it_runs() {
    let mut lab = Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
        .args([
            "--serve",
            "127.0.0.1:0",
            "--duration",
            "4s",
            "--rounds",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the lab binary runs");
    let mut stdout = BufReader::new(lab.stdout.take().unwrap()).lines();
    let first = timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("the lab says where it serves")
        .unwrap()
        .unwrap();
    let base = first
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .trim_end_matches('/')
        .to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Traffic flows: the gateway's limiter has allowed requests (bounded wait, real time).
    let started = Instant::now();
    let exposition = loop {
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = response.text().await.unwrap();
        let allowed = text.lines().any(|line| {
            line.starts_with(
                r#"resilience_rate_limit_decisions_total{name="gateway",decision="allowed"} "#,
            ) && !line.ends_with(" 0")
        });
        if allowed {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no traffic seen:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for series in [
        r#"resilience_circuit_breaker_state{name="upstream",state="closed"}"#,
        r#"resilience_retry_attempts_total{name="upstream",result="success"}"#,
        r#"resilience_bulkhead_decisions_total{name="gateway",decision="accepted"}"#,
        r#"resilience_load_shed_active{name="gateway"}"#,
        r#"resilience_timeout_call_duration_seconds_bucket{name="upstream""#,
        r#"resilience_fallback_total{name="upstream",result="triggered"}"#,
    ] {
        assert!(exposition.contains(series), "no {series} in\n{exposition}");
    }
    resilience_testkit::prometheus_server::check_metrics(&exposition)
        .await
        .expect("promtool check metrics");

    // The live page: one breaker with its state, and the series with their rates. It shows
    // rates once two readings (a second apart) exist.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let response = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<meta http-equiv="refresh""#), "{page}");
    assert!(page.contains("round 1"), "{page}");
    let breakers = page
        .split(r#"<ul id="breakers">"#)
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .expect("the breakers list");
    assert!(breakers.contains("<li>upstream <span class="), "{breakers}");
    assert!(
        page.contains("resilience_rate_limit_decisions_total{name=&quot;gateway&quot;"),
        "{page}"
    );
    assert!(page.contains("per second"), "{page}");

    // After its one round the lab stops by itself, successfully.
    let mut rest = Vec::new();
    while let Ok(Some(line)) = timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("the round ends")
    {
        rest.push(line);
    }
    let status = timeout(Duration::from_secs(10), lab.wait())
        .await
        .expect("the lab exits after its rounds")
        .unwrap();
    assert!(status.success(), "{status}: {rest:?}");
    assert!(
        rest.iter().any(|line| line.starts_with("round 1: sent ")),
        "{rest:?}"
    );
}
