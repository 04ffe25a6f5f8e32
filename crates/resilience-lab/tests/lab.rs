//! The lab's default run, as a user starts it: it completes, every request is accounted for
//! (admitted + rejected = sent), and the HTML report is written.

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
    let html = std::fs::read_to_string(&report).expect("the HTML report was written");
    assert!(html.contains("<svg") && html.contains("circuit breaker state"));
    let _ = std::fs::remove_file(report);
}
