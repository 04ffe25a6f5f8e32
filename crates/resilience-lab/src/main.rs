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

mod distributed;
mod gateway;
mod html;
mod loadgen;
mod plan;
mod report;
mod scenario;
mod server;
mod svg;
mod upstream;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent};
use resilience::events::EventKind;
use resilience_redis::RedisBackend;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::distributed::{RedisChoice, SharedFigures};
use crate::gateway::Protection;
use crate::loadgen::{Recorder, Target};
use crate::plan::Plan;
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
    /// Overrides the seed of the traffic plan (which requests the upstream fails).
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

    let (report, protected, unprotected) = run(&Arc::new(scenario), stop, backend.as_ref()).await?;
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

async fn run(
    scenario: &Arc<Scenario>,
    stop: watch::Receiver<bool>,
    redis: Option<&RedisBackend>,
) -> anyhow::Result<(Report, Vec<loadgen::Sample>, Vec<loadgen::Sample>)> {
    let plan = Arc::new(Plan::new(scenario));
    let protected_upstream = upstream::start(Arc::clone(&plan)).await?;
    let plain_upstream = upstream::start(Arc::clone(&plan)).await?;

    let upstream_client = reqwest::Client::builder().build()?;
    let (config, rate) = (&scenario.gateway, scenario.rate);
    let protections = match redis {
        None => vec![Protection::new(config, rate)?],
        Some(backend) => {
            let prefix = distributed::run_prefix();
            let mut instances = Vec::with_capacity(distributed::INSTANCES);
            for _ in 0..distributed::INSTANCES {
                instances.push(Protection::shared(config, rate, backend, &prefix).await?);
            }
            instances
        }
    };
    let mut protected_urls = Vec::with_capacity(protections.len());
    for protection in &protections {
        let address =
            gateway::start_protected(protection, upstream_client.clone(), protected_upstream)
                .await?;
        protected_urls.push(format!("http://{address}/api"));
    }
    let plain = gateway::start_unprotected(upstream_client, plain_upstream).await?;

    let started = Instant::now();
    let transitions = Arc::new(Mutex::new(Vec::new()));
    for (instance, protection) in protections.iter().enumerate() {
        record_transitions(
            &protection.breaker,
            instance,
            scenario,
            started,
            &transitions,
        );
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let (protected_load, plain_load) =
        (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let targets = vec![
        Target {
            urls: protected_urls,
            recorder: Arc::clone(&protected_load),
        },
        Target {
            urls: vec![format!("http://{plain}/api")],
            recorder: Arc::clone(&plain_load),
        },
    ];
    let replay = tokio::spawn(loadgen::replay(
        client,
        Arc::clone(&plan),
        targets,
        started,
        stop.clone(),
    ));
    let breakers: Vec<CircuitBreaker> = protections.iter().map(|p| p.breaker.clone()).collect();
    let state = move || {
        let states: Vec<String> = breakers.iter().map(|b| b.state().to_string()).collect();
        states.join("/")
    };
    progress(
        scenario,
        started,
        &state,
        &protected_load,
        &plain_load,
        &replay,
    )
    .await;
    let lag = replay.await?;
    let ran_for = started.elapsed().min(scenario.duration);
    let interrupted = *stop.borrow();

    let transitions = transitions
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    let (protected_samples, plain_samples) = (protected_load.samples(), plain_load.samples());
    let shared = match redis {
        Some(_) => {
            let limit = config.rate_limit(rate)?;
            let per_second = f64::from(limit.count()) / limit.period().as_secs_f64();
            let budget = (per_second * ran_for.as_secs_f64()) as u64 + u64::from(limit.burst());
            let words = format!(
                "{} = {per_second:.1}/s, burst {}",
                config.rate_limit,
                limit.burst()
            );
            Some(SharedFigures::of(
                &protections,
                &protected_samples,
                &transitions,
                words,
                budget,
            ))
        }
        None => None,
    };
    let report = Report {
        duration: scenario.duration,
        ran_for,
        interrupted,
        seed: scenario.seed,
        rate: scenario.rate,
        phases: scenario
            .phase_starts()
            .into_iter()
            .map(|(at, name)| (at, name.to_owned()))
            .collect(),
        per_phase: plan.per_phase(),
        lag,
        protected: Summary::of(
            protected_load.sent.load(Ordering::Relaxed),
            &protected_samples,
        ),
        unprotected: Summary::of(plain_load.sent.load(Ordering::Relaxed), &plain_samples),
        patterns: report::sum_figures(protections.iter().map(report::pattern_figures).collect()),
        transitions,
        shared,
    };
    Ok((report, protected_samples, plain_samples))
}

/// Appends the breaker's transitions, as `instance` saw them, to `into`.
fn record_transitions(
    breaker: &CircuitBreaker,
    instance: usize,
    scenario: &Arc<Scenario>,
    started: Instant,
    into: &Arc<Mutex<Vec<Transition>>>,
) {
    let (timeline, phases) = (Arc::clone(into), Arc::clone(scenario));
    breaker.events().on(EventKind::StateChange, move |event| {
        if let Some(CircuitBreakerEvent::StateChange { from, to, .. }) = event.as_circuit_breaker()
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
                    instance,
                });
        }
    });
}

/// Shows live progress until the replay is done: one updating line on a terminal, a line
/// every two seconds otherwise. Fallbacks are counted apart from fresh answers.
async fn progress(
    scenario: &Scenario,
    started: Instant,
    circuit: &dyn Fn() -> String,
    protected: &Recorder,
    plain: &Recorder,
    replay: &tokio::task::JoinHandle<loadgen::Lag>,
) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    };
    let counts = |recorder: &Recorder| {
        format!(
            "sent {:>5} fresh {:>5} fallback {:>5} rejected {:>4} errors {:>4}",
            recorder.sent.load(Ordering::Relaxed),
            recorder.fresh.load(Ordering::Relaxed),
            recorder.fallback.load(Ordering::Relaxed),
            recorder.rejected.load(Ordering::Relaxed),
            recorder.errors.load(Ordering::Relaxed),
        )
    };
    if !terminal {
        eprintln!(
            "running {:?} of traffic against both gateways",
            scenario.duration
        );
    }
    while !replay.is_finished() {
        tokio::time::sleep(every).await;
        let elapsed = started.elapsed();
        let line = format!(
            "[{:>5.1}s/{:.0}s] upstream {:<10} circuit {:<9} | protected: {} | unprotected: {}",
            elapsed.as_secs_f64(),
            scenario.duration.as_secs_f64(),
            scenario.phase_at(elapsed).1.name,
            circuit(),
            counts(protected),
            counts(plain),
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
