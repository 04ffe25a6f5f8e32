//! `resilience-lab`: runs a scenario on loopback and reports what each pattern did.
//!
//! ```text
//! cargo run --release -p resilience-lab                      # the built-in scenario
//! cargo run --release -p resilience-lab -- --seed 7 --duration 30s --report lab.html
//! cargo run --release -p resilience-lab -- --scenario my-scenario.toml
//! ```
//!
//! Two twin upstreams go through the scenario's phases (healthy, slow, failing, recovering by
//! default). One gateway in front of the first is protected by `resilience-http`'s composite
//! layer and, around its upstream calls, a fallback, retry, circuit breaker and timeout; a
//! gateway in front of the second has no protection. A load generator sends the same traffic
//! to both, so the report compares what clients saw with and without protection.

mod gateway;
mod html;
mod loadgen;
mod report;
mod scenario;
mod server;
mod upstream;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use resilience::circuit_breaker::CircuitBreakerEvent;
use tokio::time::Instant;

use crate::gateway::Protection;
use crate::loadgen::Recorder;
use crate::report::{Report, Summary, Transition};
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
    /// Overrides the seed of the upstreams' failures.
    #[arg(long)]
    seed: Option<u64>,
    /// Also writes the report, with charts, to this HTML file.
    #[arg(long)]
    report: Option<PathBuf>,
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
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Scenario::parse(&text)?
        }
        None => Scenario::parse(scenario::DEFAULT)?,
    };
    if let Some(duration) = args.duration {
        anyhow::ensure!(!duration.is_zero(), "--duration must be positive");
        scenario.duration = duration;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let scenario = Arc::new(scenario);

    let report = run(&scenario).await?;
    print!("{}", report.0.to_text());
    if let Some(path) = &args.report {
        std::fs::write(path, html::render(&report.0, &report.1, &report.2))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("\nHTML report written to {}", path.display());
    }
    anyhow::ensure!(
        report.0.protected.adds_up() && report.0.unprotected.adds_up(),
        "some requests were not accounted for"
    );
    Ok(())
}

async fn run(
    scenario: &Arc<Scenario>,
) -> anyhow::Result<(Report, Vec<loadgen::Sample>, Vec<loadgen::Sample>)> {
    let started = Instant::now();
    let protected_upstream = upstream::start(Arc::clone(scenario), started, scenario.seed).await?;
    let plain_upstream = upstream::start(Arc::clone(scenario), started, scenario.seed).await?;

    let upstream_client = reqwest::Client::builder().build()?;
    let protection = Protection::new(&scenario.gateway)?;
    let protected =
        gateway::start_protected(&protection, upstream_client.clone(), protected_upstream).await?;
    let plain = gateway::start_unprotected(upstream_client, plain_upstream).await?;

    let transitions = Arc::new(Mutex::new(Vec::new()));
    let timeline = Arc::clone(&transitions);
    let phases = Arc::clone(scenario);
    protection
        .breaker
        .events()
        .on(CircuitBreakerEvent::STATE_CHANGE, move |event| {
            if let Some(CircuitBreakerEvent::StateChange { from, to, .. }) =
                event.as_circuit_breaker()
            {
                let at = started.elapsed();
                timeline
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .push(Transition {
                        at,
                        from: from.to_string(),
                        to: to.to_string(),
                        phase: phases.phase_at(at).1.name.clone(),
                    });
            }
        });

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let (protected_load, plain_load) =
        (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let generators = [
        tokio::spawn(loadgen::run(
            client.clone(),
            format!("http://{protected}/api"),
            Arc::clone(scenario),
            started,
            Arc::clone(&protected_load),
        )),
        tokio::spawn(loadgen::run(
            client,
            format!("http://{plain}/api"),
            Arc::clone(scenario),
            started,
            Arc::clone(&plain_load),
        )),
    ];
    progress(
        scenario,
        started,
        &protection,
        &protected_load,
        &plain_load,
        &generators,
    )
    .await;
    for generator in generators {
        generator.await?;
    }

    let (protected_samples, plain_samples) = (protected_load.samples(), plain_load.samples());
    let report = Report {
        duration: scenario.duration,
        seed: scenario.seed,
        phases: scenario
            .phase_starts()
            .into_iter()
            .map(|(at, name)| (at, name.to_owned()))
            .collect(),
        protected: Summary::of(
            protected_load.sent.load(Ordering::Relaxed),
            &protected_samples,
        ),
        unprotected: Summary::of(plain_load.sent.load(Ordering::Relaxed), &plain_samples),
        patterns: report::pattern_figures(&protection),
        transitions: transitions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone(),
    };
    Ok((report, protected_samples, plain_samples))
}

/// Shows live progress until both load generators are done: one updating line on a
/// terminal, a line every two seconds otherwise.
async fn progress(
    scenario: &Scenario,
    started: Instant,
    protection: &Protection,
    protected: &Recorder,
    plain: &Recorder,
    generators: &[tokio::task::JoinHandle<()>],
) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    };
    while generators.iter().any(|generator| !generator.is_finished()) {
        tokio::time::sleep(every).await;
        let elapsed = started.elapsed();
        let line = format!(
            "[{:>5.1}s/{:.0}s] upstream {:<10} circuit {:<9} | protected: sent {:>5} ok {:>5} | unprotected: sent {:>5} ok {:>5}",
            elapsed.as_secs_f64(),
            scenario.duration.as_secs_f64(),
            scenario.phase_at(elapsed).1.name,
            protection.breaker.state().to_string(),
            protected.sent.load(Ordering::Relaxed),
            protected.ok.load(Ordering::Relaxed),
            plain.sent.load(Ordering::Relaxed),
            plain.ok.load(Ordering::Relaxed),
        );
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if terminal {
        eprintln!();
    }
}
