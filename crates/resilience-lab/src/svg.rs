//! The little SVG the charts need: scales (linear and log), "nice" ticks, and a frame with
//! axes, so every chart lines up on the same time axis.

use std::fmt::Write as _;

/// Okabe-Ito colours, distinguishable with the common forms of colour blindness.
pub(crate) mod palette {
    pub(crate) const GREEN: &str = "#009E73";
    pub(crate) const SKY: &str = "#56B4E9";
    pub(crate) const ORANGE: &str = "#E69F00";
    pub(crate) const VERMILLION: &str = "#D55E00";
    pub(crate) const BLUE: &str = "#0072B2";
    pub(crate) const GREY: &str = "#555555";
}

/// Every chart has this width and these side margins, so their time axes line up.
pub(crate) const WIDTH: f64 = 1000.0;
pub(crate) const LEFT: f64 = 70.0;
pub(crate) const RIGHT: f64 = 20.0;

/// Maps a value range onto a pixel range, linearly or on a log10 scale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    from: (f64, f64),
    to: (f64, f64),
    log: bool,
}

impl Scale {
    pub(crate) fn linear(from: (f64, f64), to: (f64, f64)) -> Self {
        Self {
            from,
            to,
            log: false,
        }
    }

    /// `from` must be positive; values at or below its start map to its start.
    pub(crate) fn log(from: (f64, f64), to: (f64, f64)) -> Self {
        Self {
            from: (from.0.log10(), from.1.log10()),
            to,
            log: true,
        }
    }

    pub(crate) fn map(&self, value: f64) -> f64 {
        let value = if self.log {
            value.max(10f64.powf(self.from.0)).log10()
        } else {
            value
        };
        let span = self.from.1 - self.from.0;
        let share = if span == 0.0 {
            0.0
        } else {
            (value - self.from.0) / span
        };
        self.to.0 + share * (self.to.1 - self.to.0)
    }

    /// The time axis of every chart: `0..seconds` across the plot area.
    pub(crate) fn time(seconds: f64) -> Self {
        Self::linear((0.0, seconds.max(1e-9)), (LEFT, WIDTH - RIGHT))
    }
}

/// Ticks at 1, 2 or 5 times a power of ten, about `count` of them from 0 to `max`.
pub(crate) fn linear_ticks(max: f64, count: usize) -> Vec<f64> {
    if max <= 0.0 || count == 0 {
        return vec![0.0];
    }
    let rough = max / count as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power);
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|tick| *tick <= max * (1.0 + 1e-9))
        .collect()
}

/// Ticks at the powers of ten from `min` to `max` (both positive).
pub(crate) fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let (low, high) = (min.log10().ceil() as i32, max.log10().floor() as i32);
    (low..=high).map(|power| 10f64.powi(power)).collect()
}

/// Opens an SVG that scales with the page (`viewBox`, no fixed size) and tells screen readers
/// what it shows (`<title>` and `<desc>`).
pub(crate) fn open(id: &str, height: f64, title: &str, description: &str) -> String {
    format!(
        "<svg id=\"{id}\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" font-family=\"sans-serif\" font-size=\"12\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(title),
        escape(description)
    )
}

/// The time axis along `y`, with a tick and a label every few seconds.
pub(crate) fn time_axis(svg: &mut String, time: &Scale, seconds: f64, y: f64) {
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\"/>",
        WIDTH - RIGHT,
        palette::GREY
    );
    for tick in linear_ticks(seconds, 10) {
        let x = time.map(tick);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"{grey}\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"{grey}\">{tick}s</text>",
            y + 5.0,
            y + 18.0,
            grey = palette::GREY
        );
    }
}

/// A value axis along the left edge: ticks, labels from `label`, light grid lines, and the
/// axis name written upwards.
pub(crate) fn value_axis(
    svg: &mut String,
    scale: &Scale,
    ticks: &[f64],
    label: impl Fn(f64) -> String,
    name: &str,
) {
    let (top, bottom) = (
        scale.map(*ticks.last().unwrap_or(&0.0)),
        scale.map(ticks[0]),
    );
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{top:.1}\" x2=\"{LEFT}\" y2=\"{bottom:.1}\" stroke=\"{}\"/>",
        palette::GREY
    );
    for &tick in ticks {
        let y = scale.map(tick);
        let _ = write!(
            svg,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{}\">{}</text>",
            LEFT - 5.0,
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0,
            palette::GREY,
            label(tick)
        );
    }
    let middle = (top + bottom) / 2.0;
    let _ = write!(
        svg,
        "<text transform=\"translate(14 {middle:.1}) rotate(-90)\" text-anchor=\"middle\" \
         fill=\"{}\">{}</text>",
        palette::GREY,
        escape(name)
    );
}

/// Phase boundaries as dashed lines from `top` to `bottom`, named at the top.
pub(crate) fn phases(
    svg: &mut String,
    time: &Scale,
    phases: &[(f64, String)],
    top: f64,
    bottom: f64,
) {
    for (at, name) in phases {
        let x = time.map(*at);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"{grey}\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" fill=\"{grey}\">{}</text>",
            x + 4.0,
            top + 12.0,
            escape(name),
            grey = palette::GREY
        );
    }
}

/// A legend row: a swatch (or a line sample with `dash`) and a label per entry.
pub(crate) fn legend(svg: &mut String, y: f64, entries: &[(&str, &str, Option<&str>)]) {
    let mut x = LEFT;
    for (colour, label, dash) in entries {
        match dash {
            Some(dash) => {
                let _ = write!(
                    svg,
                    "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" \
                     stroke-width=\"2.5\" stroke-dasharray=\"{dash}\"/>",
                    x + 24.0
                );
            }
            None => {
                let _ = write!(
                    svg,
                    "<rect x=\"{x}\" y=\"{}\" width=\"24\" height=\"10\" fill=\"{colour}\"/>",
                    y - 5.0
                );
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 30.0,
            y + 4.0,
            escape(label)
        );
        x += 40.0 + 7.0 * label.len() as f64;
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_ends_and_log_decades_evenly() {
        let linear = Scale::linear((0.0, 20.0), (70.0, 980.0));
        assert_eq!(linear.map(0.0), 70.0);
        assert_eq!(linear.map(20.0), 980.0);
        assert_eq!(linear.map(10.0), 525.0);
        // Upside down, as y axes are.
        let log = Scale::log((0.1, 1000.0), (200.0, 0.0));
        assert!((log.map(0.1) - 200.0).abs() < 1e-9);
        assert!((log.map(1000.0)).abs() < 1e-9);
        assert!((log.map(1.0) - 150.0).abs() < 1e-9);
        assert!(
            (log.map(0.0) - 200.0).abs() < 1e-9,
            "zero sits on the floor"
        );
    }

    #[test]
    fn ticks_are_round_numbers_covering_the_range() {
        assert_eq!(
            linear_ticks(20.0, 10),
            [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0]
        );
        assert_eq!(linear_ticks(150.0, 4), [0.0, 50.0, 100.0, 150.0]);
        assert_eq!(linear_ticks(3.0, 10), [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!(linear_ticks(0.0, 4), [0.0]);
        assert_eq!(log_ticks(0.1, 1000.0), [0.1, 1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(0.5, 50.0), [1.0, 10.0]);
    }

    #[test]
    fn an_svg_scales_and_has_a_title_for_screen_readers() {
        let svg = open("outcomes", 300.0, "a <title>", "what it shows");
        assert!(svg.contains("viewBox=\"0 0 1000 300\""));
        assert!(!svg.contains("height=\""), "no fixed size: {svg}");
        assert!(svg.contains("<title id=\"outcomes-title\">a &lt;title&gt;</title>"));
        assert!(svg.contains("aria-labelledby=\"outcomes-title outcomes-desc\""));
    }

    #[test]
    fn axes_have_ticks_and_labels() {
        let mut svg = String::new();
        time_axis(&mut svg, &Scale::time(20.0), 20.0, 100.0);
        assert_eq!(svg.matches("<text").count(), 11);
        assert!(svg.contains(">20s</text>") && svg.contains(">0s</text>"));
        let mut svg = String::new();
        let scale = Scale::linear((0.0, 100.0), (200.0, 0.0));
        value_axis(
            &mut svg,
            &scale,
            &[0.0, 50.0, 100.0],
            |v| format!("{v}/s"),
            "requests",
        );
        assert!(svg.contains(">50/s</text>") && svg.contains(">requests</text>"));
    }
}
