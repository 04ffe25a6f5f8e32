//! Distributed mode against a real `redis-server` (the test kit starts a private one): three
//! protected instances share one rate limit and one circuit breaker.

use std::process::Command;

use resilience_testkit::RedisServer;

/// The `(requests, admitted, rejected)` columns of an instance row, and its last column.
fn row(line: &str) -> ([u64; 3], String) {
    let columns: Vec<&str> = line.split_whitespace().collect();
    let numbers = [1, 2, 3].map(|i| columns[i].parse().unwrap());
    (numbers, columns[4..].join(" "))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_one_budget_and_one_circuit_through_redis() {
    let server = RedisServer::start()
        .await
        .expect("redis-server on PATH (scripts/test installs it)");
    let output = tokio::task::spawn_blocking({
        let url = server.url();
        move || {
            Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
                .args(["--redis", &url, "--duration", "4s"])
                .output()
                .expect("the lab binary runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("shared through Redis by 3 instances"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|line| line.trim_start().starts_with("instance "))
        .expect("the per-instance table");
    let mut totals = [0; 3];
    for line in &lines[header + 1..header + 4] {
        let (numbers, open) = row(line);
        // The plan's 600 requests go to the instances in turn.
        assert_eq!(numbers[0], 200, "{line}");
        assert_eq!(numbers[1] + numbers[2], 200, "{line}");
        // The slow and failing phases open the shared circuit, and every instance sees it.
        assert!(open.ends_with("times open)"), "{line}");
        for (total, number) in totals.iter_mut().zip(numbers) {
            *total += number;
        }
    }
    let (total, _) = row(lines[header + 4]);
    assert_eq!(total, totals, "{stdout}");
    // The shared limit refuses some requests, and the client saw exactly those as 429s.
    assert!(totals[2] > 0, "{stdout}");
    assert!(
        stdout.contains(&format!("rejections by status: 429: {}", totals[2])),
        "{stdout}"
    );
    assert!(
        stdout.contains("instance 3"),
        "transitions per instance:\n{stdout}"
    );
}

#[test]
fn redis_auto_without_a_redis_server_says_what_to_do() {
    let empty = std::env::temp_dir().join(format!("lab-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
        .args(["--redis", "auto"])
        .env("PATH", &empty)
        .output()
        .expect("the lab binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("redis-server") && stderr.contains("--redis redis://"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir(empty);
}
