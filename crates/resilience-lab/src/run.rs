//! One run: the upstreams, the gateways (one protected instance, or several sharing Redis),
//! the plan replayed to both sides with live progress, and the report of what happened.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent};
use resilience_redis::RedisBackend;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::distributed::{self, SharedFigures};
use crate::gateway::{self, Protection};
use crate::loadgen::{self, Recorder, Target};
use crate::plan::Plan;
use crate::report::{self, Report, Summary, Transition};
use crate::scenario::Scenario;
use crate::upstream;

/// Runs `scenario` until its plan is sent and answered, or `stop` turns true; returns the
/// report and both gateways' samples (protected first). With `redis`, the protected side is
/// several instances sharing their rate limit and breaker there.
pub(crate) async fn run(
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
    breaker
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
