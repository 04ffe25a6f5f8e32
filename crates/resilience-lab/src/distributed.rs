//! Distributed mode (`--redis auto|URL`): several protected gateway instances sharing one
//! rate limit and one circuit breaker through Redis, as a fleet behind a load balancer would.
//! The plan's requests go to the instances in turn, and the report shows how the shared
//! budget was spent and when each instance saw the shared circuit open.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use resilience_redis::RedisBackend;
use resilience_testkit::RedisServer;

use crate::gateway::Protection;
use crate::loadgen::Sample;
use crate::report::Transition;

/// Protected gateway instances in distributed mode.
pub(crate) const INSTANCES: usize = 3;

/// Where the shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedisChoice {
    /// A private `redis-server` started for this run.
    Auto,
    /// A running Redis, e.g. `redis://127.0.0.1:6379/`.
    Url(String),
}

impl RedisChoice {
    /// Reads `--redis`: `auto` or a `redis://` URL.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text == "auto" {
            Ok(Self::Auto)
        } else if text.starts_with("redis://") || text.starts_with("rediss://") {
            Ok(Self::Url(text.to_owned()))
        } else {
            Err(format!(
                "expected \"auto\" or a URL like redis://127.0.0.1:6379/, not {text:?}"
            ))
        }
    }
}

/// A connection to the chosen Redis, and the private server when `auto` started one (it stops
/// when dropped, so keep it for the whole run).
pub(crate) async fn connect(
    choice: &RedisChoice,
) -> anyhow::Result<(RedisBackend, Option<RedisServer>)> {
    let (url, server) = match choice {
        RedisChoice::Url(url) => (url.clone(), None),
        RedisChoice::Auto => {
            anyhow::ensure!(
                on_path("redis-server"),
                "--redis auto starts a private redis-server, and none is on PATH: install it \
                 (e.g. apt-get install redis-server) or give a running one, \
                 --redis redis://127.0.0.1:6379/"
            );
            let server = RedisServer::start()
                .await
                .context("--redis auto: could not start redis-server")?;
            (server.url(), Some(server))
        }
    };
    let backend = RedisBackend::connect(url.clone())
        .await
        .with_context(|| format!("--redis: cannot reach Redis at {url}"))?;
    backend
        .ping()
        .await
        .with_context(|| format!("--redis: Redis at {url} does not answer"))?;
    Ok((backend, server))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A key prefix of this run's own, so runs sharing a Redis never share state.
pub(crate) fn run_prefix() -> String {
    format!("resilience-lab-{:016x}", fastrand::u64(..))
}

/// What one protected gateway instance saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InstanceFigures {
    /// Requests the plan sent to this instance that were answered.
    pub(crate) requests: u64,
    /// Requests the shared rate limit let in through this instance.
    pub(crate) admitted: u64,
    /// Requests the shared rate limit refused at this instance.
    pub(crate) rejected: u64,
    /// When this instance first saw the shared circuit open, from the start of the run.
    pub(crate) first_open: Option<Duration>,
    /// How many times it saw the circuit open.
    pub(crate) opened: u64,
}

/// When `instance` first saw the circuit open, and how many times it did.
fn openings(transitions: &[Transition], instance: usize) -> (Option<Duration>, u64) {
    let mut opens = transitions
        .iter()
        .filter(|t| t.instance == instance && t.to == "open")
        .map(|t| t.at);
    let first = opens.next();
    (first, u64::from(first.is_some()) + opens.count() as u64)
}

/// The shared budget and what each instance saw of it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedFigures {
    /// The shared rate limit, in words.
    pub(crate) limit: String,
    /// Requests the limit allows over the run: its rate times the run time, plus its burst.
    pub(crate) budget: u64,
    pub(crate) instances: Vec<InstanceFigures>,
}

impl SharedFigures {
    /// Reads every instance's shared limiter and picks its circuit openings from `transitions`.
    pub(crate) fn of(
        protections: &[Protection],
        samples: &[Sample],
        transitions: &[Transition],
        limit: String,
        budget: u64,
    ) -> Self {
        let instances = protections
            .iter()
            .enumerate()
            .map(|(instance, protection)| {
                let metrics = protection.shared.as_ref().map(|s| s.limiter.metrics());
                let (first_open, opened) = openings(transitions, instance);
                InstanceFigures {
                    requests: samples.iter().filter(|s| s.instance == instance).count() as u64,
                    admitted: metrics.as_ref().map_or(0, |m| m.total_allowed),
                    rejected: metrics.as_ref().map_or(0, |m| m.total_rejected),
                    first_open,
                    opened,
                }
            })
            .collect();
        Self {
            limit,
            budget,
            instances,
        }
    }

    /// The figures as terminal text.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nshared through Redis by {} instances: rate limit {} (budget over the run about {})",
            self.instances.len(),
            self.limit,
            self.budget
        );
        let _ = writeln!(
            out,
            "  {:<10}{:>10}{:>10}{:>10}   shared circuit first seen open",
            "instance", "requests", "admitted", "rejected"
        );
        for (index, instance) in self.instances.iter().enumerate() {
            let open = match instance.first_open {
                Some(at) => format!("{:.2}s ({} times open)", at.as_secs_f64(), instance.opened),
                None => "never".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<10}{:>10}{:>10}{:>10}   {open}",
                index + 1,
                instance.requests,
                instance.admitted,
                instance.rejected
            );
        }
        let (admitted, rejected) = self.totals();
        let requests: u64 = self.instances.iter().map(|i| i.requests).sum();
        let _ = writeln!(
            out,
            "  {:<10}{requests:>10}{admitted:>10}{rejected:>10}   admitted {admitted} of a budget of about {}",
            "total", self.budget
        );
        out
    }

    /// Admitted and rejected over all instances.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.instances
            .iter()
            .fold((0, 0), |(admitted, rejected), i| {
                (admitted + i.admitted, rejected + i.rejected)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_choices_are_auto_or_a_url() {
        assert_eq!(RedisChoice::parse("auto"), Ok(RedisChoice::Auto));
        assert_eq!(
            RedisChoice::parse("redis://127.0.0.1:6379/"),
            Ok(RedisChoice::Url("redis://127.0.0.1:6379/".to_owned()))
        );
        assert!(RedisChoice::parse("localhost").is_err());
    }

    #[test]
    fn shared_figures_show_each_instance_and_the_total() {
        let transition = |instance, at, to: &str| Transition {
            at: Duration::from_millis(at),
            from: "closed".to_owned(),
            to: to.to_owned(),
            phase: "failing".to_owned(),
            instance,
        };
        let transitions = [
            transition(1, 5200, "open"),
            transition(1, 7200, "half_open"),
            transition(1, 7300, "open"),
            transition(0, 5300, "open"),
        ];
        assert_eq!(
            openings(&transitions, 1),
            (Some(Duration::from_millis(5200)), 2)
        );
        assert_eq!(
            openings(&transitions, 0),
            (Some(Duration::from_millis(5300)), 1)
        );
        assert_eq!(openings(&transitions, 2), (None, 0));
        let mut figures = SharedFigures::of(&[], &[], &transitions, "95%".to_owned(), 2900);
        figures.instances = (0..3)
            .map(|instance| InstanceFigures {
                admitted: 900 + instance,
                rejected: 50,
                ..InstanceFigures::default()
            })
            .collect();
        figures.instances[0].first_open = Some(Duration::from_millis(5300));
        assert_eq!(figures.totals(), (2703, 150));
        let text = figures.to_text();
        assert!(
            text.contains("shared through Redis by 3 instances"),
            "{text}"
        );
        assert!(text.contains("5.30s"), "{text}");
        assert!(text.contains("never"), "{text}");
        assert!(
            text.contains("admitted 2703 of a budget of about 2900"),
            "{text}"
        );
    }
}
