//! The HTML report: the terminal report plus charts drawn as inline SVG (no scripts, no
//! network), so the file opens anywhere.

use std::fmt::Write as _;
use std::time::Duration;

use crate::loadgen::{Sample, Seen};
use crate::report::Report;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 220.0;

/// Renders the report and both gateways' samples as one HTML page.
pub(crate) fn render(report: &Report, protected: &[Sample], unprotected: &[Sample]) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>resilience lab</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:960px}\
         pre{background:#f6f6f6;padding:1em}svg{background:#fff;border:1px solid #ddd}\
         .legend span{margin-right:1.5em}</style></head><body><h1>resilience lab</h1>",
    );
    let _ = write!(page, "<pre>{}</pre>", escape(&report.to_text()));
    for (title, samples) in [
        ("protected gateway", protected),
        ("unprotected gateway", unprotected),
    ] {
        let _ = write!(page, "<h2>{title}: latency of each request</h2>");
        page.push_str(
            "<p class=\"legend\"><span style=\"color:#2a7\">&#9679; fresh</span>\
             <span style=\"color:#27c\">&#9679; fallback</span>\
             <span style=\"color:#e90\">&#9679; rejected</span>\
             <span style=\"color:#d33\">&#9679; failed or unanswered</span></p>",
        );
        page.push_str(&scatter(report, samples));
    }
    page.push_str("<h2>circuit breaker state</h2>");
    page.push_str(&timeline(report));
    page.push_str("</body></html>");
    page
}

fn scatter(report: &Report, samples: &[Sample]) -> String {
    let duration = report.duration.as_secs_f64().max(1e-9);
    let ceiling = samples
        .iter()
        .map(|sample| sample.latency)
        .max()
        .unwrap_or(Duration::from_millis(1))
        .as_secs_f64()
        .max(1e-3);
    let mut svg = format!("<svg width=\"{WIDTH}\" height=\"{HEIGHT}\">");
    for (at, name) in &report.phases {
        let x = at.as_secs_f64() / duration * WIDTH;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{HEIGHT}\" stroke=\"#ccc\"/>\
             <text x=\"{:.1}\" y=\"12\" font-size=\"11\" fill=\"#888\">{}</text>",
            x + 3.0,
            escape(name)
        );
    }
    for sample in samples {
        let x = sample.sent_at.as_secs_f64() / duration * WIDTH;
        let y = HEIGHT - sample.latency.as_secs_f64() / ceiling * (HEIGHT - 20.0);
        let color = match sample.seen {
            Seen::Fresh => "#2a7",
            Seen::Fallback => "#27c",
            Seen::Rejected(_) => "#e90",
            Seen::Failed(_) | Seen::Unanswered => "#d33",
        };
        let _ = write!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"1.6\" fill=\"{color}\"/>"
        );
    }
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"{:.1}\" font-size=\"11\" fill=\"#888\">max {:.0} ms</text></svg>",
        HEIGHT - 4.0,
        ceiling * 1000.0
    );
    svg
}

fn timeline(report: &Report) -> String {
    let duration = report.duration.as_secs_f64().max(1e-9);
    let mut svg = format!("<svg width=\"{WIDTH}\" height=\"40\">");
    let mut state = "closed".to_owned();
    let mut from = 0.0;
    let band = |svg: &mut String, start: f64, end: f64, state: &str| {
        let color = match state {
            "open" | "forced_open" => "#d33",
            "half_open" => "#e90",
            _ => "#2a7",
        };
        let (x, width) = (start / duration * WIDTH, (end - start) / duration * WIDTH);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"5\" width=\"{width:.1}\" height=\"20\" fill=\"{color}\">\
             <title>{state}</title></rect>"
        );
    };
    for transition in &report.transitions {
        let at = transition.at.as_secs_f64();
        band(&mut svg, from, at, &state);
        state.clone_from(&transition.to);
        from = at;
    }
    band(&mut svg, from, duration, &state);
    svg.push_str("<text x=\"4\" y=\"38\" font-size=\"11\" fill=\"#888\">green closed, orange half-open, red open</text></svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
