//! The HTML report: the terminal report plus three charts on one shared time axis (outcomes
//! per second, latency percentiles, the circuit's state), drawn as inline SVG with no scripts
//! and no network, so the file opens anywhere.

use std::fmt::Write as _;
use std::time::Duration;

use crate::loadgen::{Sample, Seen};
use crate::report::Report;
use crate::svg::{self, escape, palette, Scale};

mod breaker;

/// The four outcomes, bottom to top in each stacked bar.
const OUTCOMES: [(&str, &str); 4] = [
    ("fresh", palette::GREEN),
    ("fallback", palette::SKY),
    ("rejected", palette::ORANGE),
    ("error", palette::VERMILLION),
];

/// Renders the report and both gateways' samples as one HTML page.
pub(crate) fn render(report: &Report, protected: &[Sample], unprotected: &[Sample]) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>resilience lab</title>\
         <style>body{font-family:sans-serif;margin:2em auto;max-width:1100px;padding:0 1em}\
         pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}figure{margin:2em 0}\
         figcaption{font-weight:bold;margin-bottom:.5em}</style></head><body>\
         <h1>resilience lab</h1>",
    );
    let seconds = report.duration.as_secs_f64();
    let phases: Vec<(f64, String)> = report
        .phases
        .iter()
        .map(|(at, name)| (at.as_secs_f64(), name.clone()))
        .collect();
    let run = Run {
        seconds,
        phases: &phases,
        protected,
        unprotected,
    };
    let charts = [
        (
            "Requests per second by outcome, protected and unprotected gateway",
            outcomes(&run),
        ),
        ("Latency percentiles per second (log scale)", latency(&run)),
        ("Circuit breaker state", breaker::chart(report, &phases)),
    ];
    for (caption, chart) in charts {
        let _ = write!(
            page,
            "<figure><figcaption>{caption}</figcaption>{chart}</figure>"
        );
    }
    let _ = write!(
        page,
        "<pre>{}</pre></body></html>",
        escape(&report.to_text())
    );
    page
}

/// What the per-second charts draw: the run's length, its phases (start, name) and the
/// samples of both gateways.
#[derive(Clone, Copy)]
struct Run<'a> {
    seconds: f64,
    phases: &'a [(f64, String)],
    protected: &'a [Sample],
    unprotected: &'a [Sample],
}

impl Run<'_> {
    /// The number of one-second buckets, at least one.
    fn whole_seconds(&self) -> usize {
        self.seconds.ceil().max(1.0) as usize
    }
}

/// Outcome counts per second of planned send time: fresh, fallback, rejected, error.
fn per_second(samples: &[Sample], seconds: usize) -> Vec<[u32; 4]> {
    let mut buckets = vec![[0; 4]; seconds];
    for sample in samples {
        let second = (sample.sent_at.as_secs() as usize).min(seconds.saturating_sub(1));
        let outcome = match sample.seen {
            Seen::Fresh => 0,
            Seen::Fallback => 1,
            Seen::Rejected(_) => 2,
            Seen::Failed(_) | Seen::Unanswered => 3,
        };
        if let Some(bucket) = buckets.get_mut(second) {
            bucket[outcome] += 1;
        }
    }
    buckets
}

/// p50, p90 and p99 latency of the requests sent in each second, if any were.
fn percentiles_per_second(samples: &[Sample], seconds: usize) -> Vec<Option<[Duration; 3]>> {
    let mut buckets: Vec<Vec<Duration>> = vec![Vec::new(); seconds];
    for sample in samples {
        let second = (sample.sent_at.as_secs() as usize).min(seconds.saturating_sub(1));
        if let Some(bucket) = buckets.get_mut(second) {
            bucket.push(sample.latency);
        }
    }
    buckets
        .into_iter()
        .map(|mut latencies| {
            latencies.sort_unstable();
            let len = latencies.len();
            let rank = |q: f64| latencies[((len as f64 * q).ceil() as usize).clamp(1, len) - 1];
            (len > 0).then(|| [rank(0.5), rank(0.9), rank(0.99)])
        })
        .collect()
}

fn outcomes(run: &Run<'_>) -> String {
    let (seconds, phases) = (run.seconds, run.phases);
    let whole = run.whole_seconds();
    let panels = [
        ("protected gateway", per_second(run.protected, whole), 50.0),
        (
            "unprotected gateway",
            per_second(run.unprotected, whole),
            250.0,
        ),
    ];
    let height = 170.0;
    let peak = panels
        .iter()
        .flat_map(|(_, buckets, _)| buckets.iter().map(|b| b.iter().sum::<u32>()))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = svg::open(
        "outcomes",
        460.0,
        "Requests per second by outcome",
        "Stacked bars per second for each gateway: fresh upstream answers, fallback answers, \
         rejections and errors, with the upstream's phases marked.",
    );
    let entries: Vec<(&str, &str, Option<&str>)> = OUTCOMES
        .iter()
        .map(|(label, colour)| (*colour, *label, None))
        .collect();
    svg::legend(&mut out, 14.0, &entries);
    let time = Scale::time(seconds);
    for (title, buckets, top) in &panels {
        let scale = Scale::linear((0.0, f64::from(peak)), (top + height, *top));
        let ticks = svg::linear_ticks(f64::from(peak), 4);
        let name = format!("{}, requests/s", title.trim_end_matches(" gateway"));
        svg::value_axis(&mut out, &scale, &ticks, |v| format!("{v}"), &name);
        for (second, counts) in buckets.iter().enumerate() {
            let start = second as f64;
            let (x0, x1) = (time.map(start), time.map((start + 1.0).min(seconds)));
            let mut below = 0;
            for ((label, colour), count) in OUTCOMES.iter().zip(counts) {
                if *count == 0 {
                    continue;
                }
                let (y0, y1) = (
                    scale.map(f64::from(below)),
                    scale.map(f64::from(below + count)),
                );
                let _ = write!(
                    out,
                    "<rect x=\"{x0:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                     fill=\"{colour}\"><title>{title}, {start}-{}s: {count} {label}</title></rect>",
                    (x1 - x0 - 1.0).max(0.5),
                    y0 - y1,
                    start + 1.0
                );
                below += count;
            }
        }
    }
    svg::phases(&mut out, &time, phases, 32.0, 420.0);
    svg::time_axis(&mut out, &time, seconds, 420.0);
    out.push_str("</svg>");
    out
}

fn latency(run: &Run<'_>) -> String {
    let (seconds, phases) = (run.seconds, run.phases);
    let whole = run.whole_seconds();
    let series = [
        (
            "protected",
            palette::BLUE,
            percentiles_per_second(run.protected, whole),
        ),
        (
            "unprotected",
            palette::VERMILLION,
            percentiles_per_second(run.unprotected, whole),
        ),
    ];
    let millis = |d: Duration| d.as_secs_f64() * 1000.0;
    let all = series
        .iter()
        .flat_map(|(_, _, buckets)| buckets.iter().flatten().flatten().map(|d| millis(*d)));
    let (low, high) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let floor = 10f64.powf(low.max(0.01).log10().floor()).min(1.0);
    let ceiling = 10f64.powf(high.max(1.0).log10().ceil()).max(floor * 10.0);
    let (top, bottom) = (46.0, 286.0);
    let scale = Scale::log((floor, ceiling), (bottom, top));
    let time = Scale::time(seconds);
    let mut out = svg::open(
        "latency",
        326.0,
        "Latency percentiles per second, log scale",
        "p50, p90 and p99 latency of the requests sent in each second, for both gateways, on one \
         logarithmic scale in milliseconds.",
    );
    let dashes = [("p50", "2 3"), ("p90", "none"), ("p99", "8 4")];
    let mut entries = Vec::new();
    let labels: Vec<String> = series
        .iter()
        .flat_map(|(name, _, _)| dashes.iter().map(move |(p, _)| format!("{name} {p}")))
        .collect();
    for (i, label) in labels.iter().enumerate() {
        let (colour, dash) = (series[i / 3].1, dashes[i % 3].1);
        entries.push((colour, label.as_str(), Some(dash)));
    }
    svg::legend(&mut out, 14.0, &entries);
    let ticks = svg::log_ticks(floor, ceiling);
    svg::value_axis(&mut out, &scale, &ticks, |v| format!("{v} ms"), "latency");
    svg::phases(&mut out, &time, phases, 28.0, bottom);
    for (name, colour, buckets) in &series {
        for (which, (label, dash)) in dashes.iter().enumerate() {
            // A second with no request ends one line; the next starts a new one.
            for run in runs(buckets, which) {
                let points: Vec<String> = run
                    .iter()
                    .map(|(second, value)| {
                        format!(
                            "{:.1},{:.1}",
                            time.map(*second as f64 + 0.5),
                            scale.map(millis(*value))
                        )
                    })
                    .collect();
                let _ = write!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" \
                     stroke-dasharray=\"{dash}\"><title>{name} {label}</title></polyline>",
                    points.join(" ")
                );
            }
        }
    }
    svg::time_axis(&mut out, &time, seconds, bottom);
    out.push_str("</svg>");
    out
}

/// The unbroken runs of `(second, percentile)` in `buckets`, for percentile `which`.
fn runs(buckets: &[Option<[Duration; 3]>], which: usize) -> Vec<Vec<(usize, Duration)>> {
    let mut runs = vec![Vec::new()];
    for (second, bucket) in buckets.iter().enumerate() {
        match bucket {
            Some(values) => runs.last_mut().unwrap().push((second, values[which])),
            None if runs.last().is_some_and(|run| !run.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    runs.retain(|run| !run.is_empty());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, latency_ms: u64, seen: Seen) -> Sample {
        Sample {
            sent_at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            seen,
            instance: 0,
        }
    }

    #[test]
    fn outcomes_are_counted_per_second_of_planned_time() {
        let samples = [
            sample(0, 1, Seen::Fresh),
            sample(999, 1, Seen::Fallback),
            sample(1000, 1, Seen::Rejected(429)),
            sample(1500, 1, Seen::Failed(502)),
            sample(1600, 1, Seen::Unanswered),
            // Past the end (a late answer): counted in the last second.
            sample(5000, 1, Seen::Fresh),
        ];
        assert_eq!(per_second(&samples, 2), [[1, 1, 0, 0], [1, 0, 1, 2]]);
    }

    #[test]
    fn percentiles_per_second_leave_empty_seconds_empty() {
        let samples: Vec<Sample> = (1..=100).map(|ms| sample(2000, ms, Seen::Fresh)).collect();
        let buckets = percentiles_per_second(&samples, 3);
        assert_eq!(buckets[0], None);
        let ms = Duration::from_millis;
        assert_eq!(buckets[2], Some([ms(50), ms(90), ms(99)]));
    }

    #[test]
    fn latency_lines_break_where_no_request_was_sent() {
        let ms = Duration::from_millis;
        let buckets = [
            None,
            Some([ms(1), ms(2), ms(3)]),
            None,
            None,
            Some([ms(4), ms(5), ms(6)]),
        ];
        assert_eq!(runs(&buckets, 2), [vec![(1, ms(3))], vec![(4, ms(6))]]);
        assert!(runs(&[None, None], 0).is_empty());
    }
}
