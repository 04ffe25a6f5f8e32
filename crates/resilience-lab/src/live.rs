//! The live page of `--serve`: what `/metrics` says right now, as a small HTML page that
//! reloads itself every two seconds: the breakers' states, and every series that is not 0,
//! counters with their rate over the last second.
//!
//! The page reads the very exposition Prometheus scrapes, so it can never disagree with a
//! dashboard. No script: a `<meta refresh>` and a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use resilience_prometheus::PrometheusHandle;
use tokio::time::Instant;

use crate::scenario::Scenario;

/// One reading of the exposition: series (`name{labels}`) → value, histograms left out.
type Reading = BTreeMap<String, f64>;

/// What the page shows, shared by the sampler, the round loop and the HTTP handler.
#[derive(Clone)]
pub(crate) struct Live {
    handle: PrometheusHandle,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    round: u64,
    /// When the current round started, and its scenario (for the upstream's phase).
    current: Option<(Instant, Arc<Scenario>)>,
    previous: Option<(Instant, Reading)>,
    latest: Option<(Instant, Reading)>,
}

/// The `resilience_*` series of an exposition text, without histogram buckets, sums and
/// counts.
fn read(exposition: &str) -> Reading {
    exposition
        .lines()
        .filter(|line| line.starts_with("resilience_"))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            let histogram = ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.ends_with(suffix));
            if histogram {
                return None;
            }
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Live {
    pub(crate) fn new(handle: PrometheusHandle) -> Self {
        Self {
            handle,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes the start of round `round` of `scenario`.
    pub(crate) fn start_round(&self, round: u64, scenario: Arc<Scenario>) {
        let mut state = self.state();
        state.round = round;
        state.current = Some((Instant::now(), scenario));
    }

    /// Reads the exposition every `every`, keeping the last two readings for the rates.
    pub(crate) async fn sample_every(self, every: Duration) {
        loop {
            let reading = read(&self.handle.render());
            {
                let mut state = self.state();
                state.previous = state.latest.take();
                state.latest = Some((Instant::now(), reading));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The page.
    pub(crate) fn page(&self) -> String {
        let state = self.state();
        let mut html = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"2\"><title>resilience lab, live</title>\
             <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
             td,th{padding:2px 10px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
             .open,.forced_open{color:#b00;font-weight:bold}.half_open{color:#a60;font-weight:bold}\
             .closed{color:#070}</style></head><body><h1>resilience lab, live</h1>",
        );
        match &state.current {
            Some((started, scenario)) => {
                let elapsed = started.elapsed();
                let _ = write!(
                    html,
                    "<p>round {}, {:.0} s of {:.0} s, upstream <b>{}</b>. \
                     <a href=\"/metrics\">/metrics</a> for Prometheus.</p>",
                    state.round,
                    elapsed.as_secs_f64(),
                    scenario.duration.as_secs_f64(),
                    escape(&scenario.phase_at(elapsed).1.name),
                );
            }
            None => html.push_str("<p>starting</p>"),
        }
        let Some((now, latest)) = &state.latest else {
            html.push_str("</body></html>");
            return html;
        };
        html.push_str("<h2>circuit breakers</h2><ul id=\"breakers\">");
        for (series, value) in latest {
            if series.starts_with("resilience_circuit_breaker_state{") && *value == 1.0 {
                let label = |key: &str| {
                    let start = series.find(&format!("{key}=\""))? + key.len() + 2;
                    let end = start + series[start..].find('"')?;
                    Some(series[start..end].to_owned())
                };
                let (name, circuit) = (label("name").unwrap_or_default(), label("state"));
                let circuit = circuit.unwrap_or_default();
                let _ = write!(
                    html,
                    "<li>{} <span class=\"{circuit}\">{circuit}</span></li>",
                    escape(&name)
                );
            }
        }
        html.push_str("</ul><h2>series</h2><table id=\"series\"><tr><th>series</th><th>value</th><th>per second</th></tr>");
        let previous = state.previous.as_ref();
        // Most series sit at 0 (every transition, every rejection reason): only those that
        // say something are listed.
        let mut quiet = 0;
        for (series, value) in latest {
            if *value == 0.0 {
                quiet += 1;
                continue;
            }
            let rate = match previous {
                Some((then, before))
                    if series.split('{').next().unwrap_or("").ends_with("_total") =>
                {
                    let seconds = now.duration_since(*then).as_secs_f64();
                    before
                        .get(series)
                        .filter(|_| seconds > 0.0)
                        .map(|old| format!("{:.1}", (value - old) / seconds))
                        .unwrap_or_default()
                }
                _ => String::new(),
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"n\">{value}</td><td class=\"n\">{rate}</td></tr>",
                escape(series)
            );
        }
        let _ = write!(
            html,
            "</table><p>{quiet} series at 0 not shown.</p></body></html>"
        );
        html
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn readings_keep_counters_and_gauges_and_drop_histogram_series() {
        let exposition = "# TYPE resilience_timeout_total counter\n\
            resilience_timeout_total{name=\"a\"} 3\n\
            resilience_circuit_breaker_state{name=\"a\",state=\"open\"} 1\n\
            resilience_timeout_call_duration_seconds_bucket{name=\"a\",le=\"0.1\"} 2\n\
            resilience_timeout_call_duration_seconds_count{name=\"a\"} 2\n\
            other_metric 5\n";
        let reading = super::read(exposition);
        assert_eq!(reading.len(), 2, "{reading:?}");
        assert_eq!(reading["resilience_timeout_total{name=\"a\"}"], 3.0);
    }
}
