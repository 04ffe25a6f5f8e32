//! `resilience-lab`: runs a scenario on loopback and reports what each pattern did.
//!
//! ```text
//! cargo run --release -p resilience-lab                      # the built-in scenario
//! cargo run --release -p resilience-lab -- --seed 7 --duration 30s --report lab.html
//! cargo run --release -p resilience-lab -- --scenario my-scenario.toml
//! cargo run --release -p resilience-lab -- --redis auto              # three instances, shared state
//! cargo run --release -p resilience-lab -- --serve 127.0.0.1:9464     # rounds, /metrics, live page
//! ```
//!
//! Two twin upstreams go through the scenario's phases (healthy, slow, failing, recovering by
//! default). One gateway in front of the first is protected by `resilience-http`'s composite
//! layer and, around its upstream calls, a fallback, retry, circuit breaker and timeout; a
//! gateway in front of the second has no protection. One traffic plan, decided from the
//! scenario and its seed before the run, is replayed to both, so the report compares what
//! clients saw with and without protection on the very same requests. Ctrl-C stops the run
//! and still prints the report of what ran.

mod distributed;
mod gateway;
mod html;
mod live;
mod loadgen;
mod plan;
mod report;
mod run;
mod scenario;
mod serve;
mod server;
mod svg;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;

use crate::distributed::RedisChoice;
use crate::scenario::Scenario;

/// Runs a resilience scenario on loopback and reports what each pattern did.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A scenario file (TOML); the built-in scenario when absent.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Overrides the scenario's duration, e.g. "30s"; phases keep their shares.
    #[arg(long, value_parser = humantime_duration)]
    duration: Option<Duration>,
    /// Overrides the scenario's `seed`, which decides the traffic plan (which requests the
    /// upstream fails); the same number gives the same run.
    #[arg(long)]
    seed: Option<u64>,
    /// Also writes the report, with charts, to this HTML file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Distributed mode: three protected gateway instances share one rate limit and one
    /// circuit breaker through Redis. "auto" starts a private redis-server (it must be on
    /// PATH); or a URL such as redis://127.0.0.1:6379/.
    #[arg(long, value_name = "auto|URL", value_parser = RedisChoice::parse)]
    redis: Option<RedisChoice>,
    /// Runs the scenario round after round (until Ctrl-C), serving Prometheus metrics at
    /// /metrics and a live page at / on this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR", conflicts_with = "report")]
    serve: Option<SocketAddr>,
    /// With --serve: stop after this many rounds.
    #[arg(long, requires = "serve")]
    rounds: Option<u64>,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    #[derive(serde::Deserialize)]
    struct Wrapper(#[serde(with = "humantime_serde")] Duration);
    toml::Value::String(text.to_owned())
        .try_into::<Wrapper>()
        .map(|wrapper| wrapper.0)
        .map_err(|error| format!("not a duration like \"20s\": {error}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Scenario::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Scenario::parse(scenario::DEFAULT)?,
    };
    if let Some(duration) = args.duration {
        scenario.check_duration(duration, "--duration")?;
        scenario.duration = duration;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(path) = &args.report {
        check_writable(path)?;
    }
    let stop = stop_on_ctrl_c();
    // Kept to the end: a private redis-server stops when dropped.
    let (backend, _server) = match &args.redis {
        Some(choice) => {
            let (backend, server) = distributed::connect(choice).await?;
            (Some(backend), server)
        }
        None => (None, None),
    };

    if let Some(address) = args.serve {
        let stopped = serve::serve(
            address,
            Arc::new(scenario),
            stop,
            backend.as_ref(),
            args.rounds,
        )
        .await?;
        return Ok(if stopped {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        });
    }
    let (report, protected, unprotected) =
        run::run(&Arc::new(scenario), stop, backend.as_ref()).await?;
    print!("{}", report.to_text());
    if let Some(path) = &args.report {
        std::fs::write(path, html::render(&report, &protected, &unprotected))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("\nHTML report written to {}", path.display());
    }
    anyhow::ensure!(
        report.protected.adds_up() && report.unprotected.adds_up(),
        "some requests were not accounted for"
    );
    // 130: the shells' code for "ended by Ctrl-C", so scripts can tell a cut-short run.
    Ok(if report.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Fails before the run, not after it, when the report could not be written: the directory
/// must exist and accept a new file.
fn check_writable(path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    anyhow::ensure!(
        !path.is_dir(),
        "--report {shown}: is a directory, expected a file name"
    );
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    anyhow::ensure!(
        directory.is_dir(),
        "--report {shown}: directory {} does not exist",
        directory.display()
    );
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("--report {shown}: cannot write there"))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Turns true on Ctrl-C, so the run stops sending and reports what ran. A second Ctrl-C
/// ends the process at once, for a run that hangs.
fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nCtrl-C: stopping, the report follows (Ctrl-C again to quit at once)");
            let _ = sender.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
        // Keep the sender alive: a dropped sender is not a request to stop.
        std::future::pending::<()>().await;
    });
    receiver
}
