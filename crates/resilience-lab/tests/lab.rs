//! The lab as a user starts it: the default run completes, every request is accounted for
//! (admitted + rejected = sent) and the HTML report is written; Ctrl-C still prints a report;
//! bad input is refused before the run, naming what to fix.

use std::process::Command;

#[test]
fn the_default_run_completes_and_its_numbers_add_up() {
    let report = std::env::temp_dir().join(format!("resilience-lab-{}.html", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
        .arg("--report")
        .arg(&report)
        .output()
        .expect("the lab binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "lab failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("adds up"), "{stdout}");
    for section in [
        "client saw",
        "per pattern",
        "circuit breaker timeline",
        "latency p99",
    ] {
        assert!(stdout.contains(section), "missing {section:?} in\n{stdout}");
    }
    // The failing phase must open the circuit, and the fallback must serve while it is open.
    assert!(stdout.contains("-> open"), "{stdout}");
    // One plan, replayed to both gateways: the same count on each, on any machine.
    assert!(
        stdout.contains("traffic plan: 3000 requests at 150/s"),
        "{stdout}"
    );
    let sent = stdout
        .lines()
        .find(|line| line.starts_with("sent"))
        .unwrap();
    assert_eq!(
        sent.split_whitespace().collect::<Vec<_>>(),
        ["sent", "3000", "3000"]
    );
    assert!(stdout.contains("this machine "), "{stdout}");
    // The rate limit follows the plan's rate, so it refuses some requests everywhere.
    assert!(stdout.contains("rejections by status: 429: "), "{stdout}");
    // The headline counts fallbacks apart and says what protection cost.
    assert!(stdout.contains("protection: p90 "), "{stdout}");
    assert!(stdout.contains("fewer fresh upstream answers"), "{stdout}");
    assert!(stdout.contains("answers from the fallback"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fallback"),
        "progress must count fallbacks apart:\n{stderr}"
    );
    let html = std::fs::read_to_string(&report).expect("the HTML report was written");
    for chart in ["outcomes", "latency", "breaker"] {
        assert!(
            html.contains(&format!("<svg id=\"{chart}\"")),
            "no {chart} chart"
        );
    }
    let _ = std::fs::remove_file(report);
}

/// Ctrl-C stops the run and the report of what ran is still printed.
#[test]
fn ctrl_c_stops_the_run_and_prints_the_report_of_what_ran() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    let mut lab = Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the lab binary runs");
    // The first progress line comes two seconds in, once requests have been sent.
    let mut stderr = BufReader::new(lab.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = stderr.read_line(&mut line).unwrap();
        assert!(read > 0, "the lab ended before showing progress:\n{seen}");
        seen.push_str(&line);
        if line.starts_with('[') {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &lab.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut stdout = String::new();
    lab.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = lab.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{seen}{rest}"
    );
    assert!(stdout.contains("INTERRUPTED (Ctrl-C)"), "{stdout}");
    assert!(stdout.contains("client saw"), "{stdout}");
    assert!(stdout.contains("adds up"), "{stdout}");
    assert!(rest.contains("Ctrl-C: stopping"), "{rest}");
    // Stopped early: fewer requests than the full plan's 3,000.
    let sent: u64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("sent"))
        .and_then(|counts| counts.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .expect("a sent row");
    assert!(sent > 0 && sent < 3000, "sent {sent}");
}

fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
        .args(args)
        .output()
        .expect("the lab binary runs");
    assert!(!output.status.success(), "{args:?} was accepted");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("client saw"),
        "{args:?} ran before refusing:\n{stdout}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_report_path_that_cannot_be_written_is_refused_before_the_run() {
    let missing = std::env::temp_dir().join("no-such-directory-for-the-lab/report.html");
    let error = refused(&["--report", missing.to_str().unwrap()]);
    assert!(error.contains("does not exist"), "{error}");
    let directory = std::env::temp_dir();
    let error = refused(&["--report", directory.to_str().unwrap()]);
    assert!(error.contains("is a directory"), "{error}");
}

#[test]
fn durations_outside_the_plan_are_refused() {
    let error = refused(&["--duration", "1ms"]);
    assert!(
        error.contains("--duration") && error.contains("shorter"),
        "{error}"
    );
    let error = refused(&["--duration", "10m"]);
    assert!(
        error.contains("--duration") && error.contains("max_requests"),
        "{error}"
    );
}

#[test]
fn scenario_file_errors_name_the_key_and_the_file() {
    let default = include_str!("../scenarios/default.toml");
    let path = std::env::temp_dir().join(format!("lab-scenario-{}.toml", std::process::id()));
    for (from, to, key) in [
        (
            "breaker_window = 20",
            "breaker_window = 1",
            "breaker_window",
        ),
        ("rate = 150", "rate = 4294967295", "rate = 4294967295"),
        ("share = 1", "share = 4000000000", "share = 4000000000"),
        (
            "upstream_timeout = \"150ms\"",
            "upstream_timeout = \"0s\"",
            "upstream_timeout",
        ),
    ] {
        std::fs::write(&path, default.replacen(from, to, 1)).unwrap();
        let error = refused(&["--scenario", path.to_str().unwrap()]);
        assert!(error.contains(key), "{to}: {error}");
        assert!(error.contains(path.to_str().unwrap()), "{error}");
        assert!(!error.contains("panicked"), "{error}");
    }
    let _ = std::fs::remove_file(path);
}
