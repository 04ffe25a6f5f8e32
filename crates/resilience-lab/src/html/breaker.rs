//! The circuit breaker's state over time: one band per gateway instance, on the time axis
//! the other charts use.

use std::fmt::Write as _;

use crate::report::Report;
use crate::svg::{self, palette, Scale, LEFT};

/// One band per protected instance: the circuit's state over the run.
pub(super) fn chart(report: &Report, phases: &[(f64, String)]) -> String {
    let seconds = report.duration.as_secs_f64();
    let instances = report
        .transitions
        .iter()
        .map(|t| t.instance + 1)
        .max()
        .unwrap_or(1);
    let instances = instances.max(report.shared.as_ref().map_or(1, |s| s.instances.len()));
    let (top, row) = (38.0, 28.0);
    let bottom = top + row * instances as f64;
    let time = Scale::time(seconds);
    let mut out = svg::open(
        "breaker",
        bottom + 30.0,
        "Circuit breaker state over time",
        "One band per gateway instance: closed, half-open or open, on the same time axis as \
         the charts above.",
    );
    svg::legend(
        &mut out,
        12.0,
        &[
            (palette::GREEN, "closed", None),
            (palette::ORANGE, "half-open", None),
            (palette::VERMILLION, "open", None),
        ],
    );
    for instance in 0..instances {
        let y = top + row * instance as f64 + 4.0;
        let name = if instances == 1 {
            "breaker".to_owned()
        } else {
            format!("instance {}", instance + 1)
        };
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{name}</text>",
            LEFT - 8.0,
            y + 14.0
        );
        let mut state = "closed".to_owned();
        let mut from = 0.0;
        let transitions = report.transitions.iter().filter(|t| t.instance == instance);
        let ends = transitions
            .map(|t| (t.at.as_secs_f64(), t.to.clone()))
            .chain([(seconds, String::new())]);
        for (at, next) in ends {
            band(&mut out, &time, (from, at.min(seconds)), y, &state);
            (from, state) = (at, next);
        }
    }
    svg::phases(&mut out, &time, phases, 22.0, bottom);
    svg::time_axis(&mut out, &time, seconds, bottom);
    out.push_str("</svg>");
    out
}

fn band(out: &mut String, time: &Scale, (start, end): (f64, f64), y: f64, state: &str) {
    if end <= start {
        return;
    }
    let colour = match state {
        "open" | "forced_open" => palette::VERMILLION,
        "half_open" => palette::ORANGE,
        _ => palette::GREEN,
    };
    let (x0, x1) = (time.map(start), time.map(end));
    let _ = write!(
        out,
        "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"20\" fill=\"{colour}\">\
         <title>{state} from {start:.2}s to {end:.2}s</title></rect>",
        x1 - x0
    );
    // The state in words too, where it fits, so colour is not the only cue.
    if x1 - x0 > 50.0 {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-weight=\"bold\">{state}</text>",
            x0 + 4.0,
            y + 14.0
        );
    }
}
