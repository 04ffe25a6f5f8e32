//! The load generator: replays the traffic plan to every gateway at once, recording what each
//! request saw.
//!
//! One task sends request `i` to every target at its planned time, so the gateways see the
//! same requests. When the machine falls behind it sends late rather than dropping requests,
//! and records how late.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::Plan;

/// Header the protected gateway sets when its answer came from the fallback.
pub(crate) const SERVED_BY: &str = "x-served-by";

/// How long requests still in flight get to finish after Ctrl-C.
const GRACE: Duration = Duration::from_secs(1);

/// What one request saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A fresh answer from the upstream.
    Fresh,
    /// The gateway's fallback answer.
    Fallback,
    /// Refused by the gateway's protection, with its status (429, 503, 408).
    Rejected(u16),
    /// Any other failure status.
    Failed(u16),
    /// No answer at all (connection error or client timeout).
    Unanswered,
}

/// One request's record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Its planned send time, from the start of the run.
    pub(crate) sent_at: Duration,
    pub(crate) latency: Duration,
    pub(crate) seen: Seen,
    /// Which gateway instance served it (always 0 with a single gateway).
    pub(crate) instance: usize,
}

/// Everything recorded for one gateway (all its instances), shared with the progress display.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) sent: AtomicU64,
    pub(crate) fresh: AtomicU64,
    pub(crate) fallback: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) errors: AtomicU64,
    samples: Mutex<Vec<Sample>>,
}

impl Recorder {
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn record(&self, sample: Sample) {
        let counter = match sample.seen {
            Seen::Fresh => &self.fresh,
            Seen::Fallback => &self.fallback,
            Seen::Rejected(_) => &self.rejected,
            Seen::Failed(_) | Seen::Unanswered => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.samples
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(sample);
    }
}

/// One gateway: its instances' URLs (request `i` goes to instance `i % len`) and its recorder.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) urls: Vec<String>,
    pub(crate) recorder: Arc<Recorder>,
}

/// How far behind the plan the requests went out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Lag {
    pub(crate) max: Duration,
    pub(crate) p99: Duration,
    /// Requests sent more than `Lag::LATE` after their planned time.
    pub(crate) late: u64,
}

impl Lag {
    /// Later than this counts as behind the plan: well past scheduler jitter on a busy
    /// machine, and a tenth of a second's worth of requests at the default rate.
    pub(crate) const LATE: Duration = Duration::from_millis(50);

    fn of(mut lags: Vec<Duration>) -> Self {
        lags.sort_unstable();
        let Some(&max) = lags.last() else {
            return Self::default();
        };
        let p99 = lags[(lags.len() * 99).div_ceil(100).clamp(1, lags.len()) - 1];
        let late = lags.iter().filter(|&&lag| lag > Self::LATE).count() as u64;
        Self { max, p99, late }
    }
}

/// Sends every planned request to every target, then waits for the answers (each bounded
/// by the client's timeout). When `stop` turns true, sends nothing more, gives requests in
/// flight `GRACE` to finish and abandons the rest (they count as sent but unanswered).
pub(crate) async fn replay(
    client: reqwest::Client,
    plan: Arc<Plan>,
    targets: Vec<Target>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> Lag {
    let mut requests = JoinSet::new();
    let mut lags = Vec::with_capacity(plan.requests.len());
    for (index, planned) in plan.requests.iter().enumerate() {
        tokio::select! {
            () = tokio::time::sleep_until(started + planned.at) => {}
            () = stopped(&mut stop) => break,
        }
        lags.push(started.elapsed().saturating_sub(planned.at));
        for target in &targets {
            let instance = index % target.urls.len();
            let url = format!("{}?i={index}", target.urls[instance]);
            let (client, recorder) = (client.clone(), Arc::clone(&target.recorder));
            recorder.sent.fetch_add(1, Ordering::Relaxed);
            let sent_at = planned.at;
            requests.spawn(async move {
                let begun = Instant::now();
                let seen = match client.get(&url).send().await {
                    Ok(response) => classify(&response),
                    Err(_) => Seen::Unanswered,
                };
                recorder.record(Sample {
                    sent_at,
                    latency: begun.elapsed(),
                    seen,
                    instance,
                });
            });
        }
    }
    if !*stop.borrow() {
        tokio::select! {
            () = drain(&mut requests) => return Lag::of(lags),
            () = stopped(&mut stop) => {}
        }
    }
    // Dropping the set aborts what did not finish in time.
    let _ = tokio::time::timeout(GRACE, drain(&mut requests)).await;
    Lag::of(lags)
}

async fn drain(requests: &mut JoinSet<()>) {
    while requests.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true; never if its sender is gone without stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn classify(response: &reqwest::Response) -> Seen {
    let status = response.status().as_u16();
    match status {
        200 if response.headers().contains_key(SERVED_BY) => Seen::Fallback,
        200 => Seen::Fresh,
        408 | 429 | 503 => Seen::Rejected(status),
        _ => Seen::Failed(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_summarises_how_late_requests_went_out() {
        assert_eq!(Lag::of(Vec::new()).late, 0);
        let lags: Vec<Duration> = (0..100).map(Duration::from_millis).collect();
        let lag = Lag::of(lags);
        assert_eq!(lag.max, Duration::from_millis(99));
        assert_eq!(lag.p99, Duration::from_millis(98));
        assert_eq!(lag.late, 49);
    }
}
