//! The load generator: a fixed request rate against one gateway, bounded in count and time,
//! recording what every request saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::scenario::Scenario;

/// Header the protected gateway sets when its answer came from the fallback.
pub(crate) const SERVED_BY: &str = "x-served-by";

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
    /// When it was sent, from the start of the run.
    pub(crate) sent_at: Duration,
    pub(crate) latency: Duration,
    pub(crate) seen: Seen,
}

/// Everything one load generator recorded, shared with the progress display.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) sent: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) ok: AtomicU64,
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
        self.answered.fetch_add(1, Ordering::Relaxed);
        if matches!(sample.seen, Seen::Fresh | Seen::Fallback) {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
        self.samples
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(sample);
    }
}

/// Sends `scenario.rate` requests per second to `url` until the duration or the request bound
/// is reached, then waits for the answers (each bounded by a client timeout).
pub(crate) async fn run(
    client: reqwest::Client,
    url: String,
    scenario: Arc<Scenario>,
    started: Instant,
    recorder: Arc<Recorder>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / scenario.rate);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut requests = JoinSet::new();
    for _ in 0..scenario.max_requests {
        ticker.tick().await;
        let sent_at = started.elapsed();
        if sent_at >= scenario.duration {
            break;
        }
        recorder.sent.fetch_add(1, Ordering::Relaxed);
        let (client, url, recorder) = (client.clone(), url.clone(), Arc::clone(&recorder));
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
            });
        });
    }
    while requests.join_next().await.is_some() {}
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
