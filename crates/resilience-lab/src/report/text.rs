//! The report as terminal text: the plan, the headline with what protection bought and
//! cost, what the client saw, every pattern's figures and the circuit's timeline.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Report, Summary};
use crate::loadgen::Lag;

impl Report {
    /// The report as terminal text.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== resilience lab: {:?}, seed {} ==",
            self.duration, self.seed
        );
        let phases: Vec<String> = self
            .phases
            .iter()
            .zip(&self.per_phase)
            .map(|((at, name), count)| format!("{:.1}s {name} ({count})", at.as_secs_f64()))
            .collect();
        let _ = writeln!(
            out,
            "traffic plan: {} requests at {}/s, the same to both gateways; upstream phases: {}",
            self.per_phase.iter().sum::<u64>(),
            self.rate,
            phases.join(" | ")
        );
        let _ = writeln!(out, "{}", self.lag_line());
        if self.interrupted {
            let _ = writeln!(
                out,
                "INTERRUPTED (Ctrl-C) at {:.1}s of {:?}: this report covers what ran; requests \
                 still in flight are counted as cut short",
                self.ran_for.as_secs_f64(),
                self.duration
            );
        }
        let (p, u) = (&self.protected, &self.unprotected);
        let _ = writeln!(out, "\nheadline");
        let _ = writeln!(
            out,
            "  protected:   {} fresh, {} fallback, {} errors, p90 {}",
            percent(p.fresh_rate()),
            percent(p.fallback_rate()),
            percent(p.error_rate()),
            millis(p.p90)
        );
        let _ = writeln!(
            out,
            "  unprotected: {} fresh, {} fallback, {} errors, p90 {}",
            percent(u.fresh_rate()),
            percent(u.fallback_rate()),
            percent(u.error_rate()),
            millis(u.p90)
        );
        let _ = writeln!(out, "  {}\n", trade_off(p, u));

        let _ = writeln!(
            out,
            "{:<22}{:>14}{:>14}",
            "client saw", "protected", "unprotected"
        );
        let mut rows: Vec<(&str, String, String)> = vec![
            ("sent", p.sent.to_string(), u.sent.to_string()),
            ("fresh (200)", p.fresh.to_string(), u.fresh.to_string()),
            (
                "fallback (200)",
                p.fallback.to_string(),
                u.fallback.to_string(),
            ),
            (
                "rejected (429/503/408)",
                p.rejected_total().to_string(),
                u.rejected_total().to_string(),
            ),
            (
                "failed (5xx)",
                p.failed_total().to_string(),
                u.failed_total().to_string(),
            ),
            (
                "unanswered",
                p.unanswered.to_string(),
                u.unanswered.to_string(),
            ),
        ];
        if self.interrupted {
            rows.push((
                "cut short",
                p.cut_short.to_string(),
                u.cut_short.to_string(),
            ));
        }
        rows.extend([
            ("fresh", percent(p.fresh_rate()), percent(u.fresh_rate())),
            (
                "fallback",
                percent(p.fallback_rate()),
                percent(u.fallback_rate()),
            ),
            (
                "error rate",
                percent(p.error_rate()),
                percent(u.error_rate()),
            ),
            ("latency p50", millis(p.p50), millis(u.p50)),
            ("latency p90", millis(p.p90), millis(u.p90)),
            ("latency p99", millis(p.p99), millis(u.p99)),
            ("latency max", millis(p.max), millis(u.max)),
        ]);
        for (label, protected, unprotected) in rows {
            let _ = writeln!(out, "{label:<22}{protected:>14}{unprotected:>14}");
        }
        let _ = writeln!(
            out,
            "\nprotected gateway: admitted {} + rejected {} = sent {} ({})",
            p.admitted(),
            p.rejected_total(),
            p.sent,
            if p.adds_up() {
                "adds up"
            } else {
                "DOES NOT ADD UP"
            }
        );
        if !p.rejected.is_empty() {
            let by_status: Vec<String> = p
                .rejected
                .iter()
                .map(|(status, count)| format!("{status}: {count}"))
                .collect();
            let _ = writeln!(out, "rejections by status: {}", by_status.join(", "));
        }

        let _ = writeln!(out, "\nper pattern (protected gateway)");
        for pattern in &self.patterns {
            let figures: Vec<String> = pattern
                .figures
                .iter()
                .map(|(label, value)| format!("{label} {value}"))
                .collect();
            let _ = writeln!(out, "  {:<18}{}", pattern.pattern, figures.join(", "));
        }
        if let Some(shared) = &self.shared {
            out.push_str(&shared.to_text());
        }

        let _ = writeln!(out, "\ncircuit breaker timeline");
        if self.transitions.is_empty() {
            let _ = writeln!(out, "  (no transitions)");
        }
        for transition in &self.transitions {
            let instance = if self.shared.is_some() {
                format!("instance {}  ", transition.instance + 1)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:>7.2}s  {instance}{:<9} -> {:<9} (upstream {})",
                transition.at.as_secs_f64(),
                transition.from,
                transition.to,
                transition.phase
            );
        }
        out
    }

    fn lag_line(&self) -> String {
        let lag = &self.lag;
        if lag.late == 0 {
            format!(
                "this machine kept to the plan: every request went out within {} of its time \
                 (the latest {} late)",
                millis(Lag::LATE),
                millis(lag.max)
            )
        } else {
            format!(
                "this machine fell behind the plan: {} requests went out more than {} late, \
                 up to {} (p99 {}); both gateways still got every request, at the same moments",
                lag.late,
                millis(Lag::LATE),
                millis(lag.max),
                millis(lag.p99)
            )
        }
    }
}

/// One line: what protection bought (latency, errors) and what it cost (fresh answers given
/// up, fallbacks served, requests refused).
pub(crate) fn trade_off(protected: &Summary, unprotected: &Summary) -> String {
    let (p, u) = (protected, unprotected);
    let fresh = if p.fresh < u.fresh {
        format!(
            "{} fewer fresh upstream answers ({} vs {})",
            u.fresh - p.fresh,
            p.fresh,
            u.fresh
        )
    } else {
        format!(
            "no fewer fresh upstream answers ({} vs {})",
            p.fresh, u.fresh
        )
    };
    format!(
        "protection: p90 {} -> {}, errors {} -> {}; cost: {fresh}, {} answers from the fallback, {} requests refused",
        millis(u.p90),
        millis(p.p90),
        percent(u.error_rate()),
        percent(p.error_rate()),
        p.fallback,
        p.rejected_total()
    )
}

fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

fn millis(value: Duration) -> String {
    format!("{:.1} ms", value.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::Seen;
    use crate::report::tests::sample;

    #[test]
    fn the_trade_off_line_says_what_protection_bought_and_cost() {
        let protected = Summary::of(
            10,
            &[
                [sample(5, Seen::Fresh); 4].as_slice(),
                &[sample(5, Seen::Fallback); 5],
                &[sample(1, Seen::Rejected(429))],
            ]
            .concat(),
        );
        let unprotected = Summary::of(
            10,
            &[
                [sample(400, Seen::Fresh); 8].as_slice(),
                &[sample(5, Seen::Failed(502)); 2],
            ]
            .concat(),
        );
        assert_eq!(protected.fresh_rate(), 0.4);
        assert_eq!(protected.fallback_rate(), 0.5);
        assert_eq!(protected.error_rate(), 0.1);
        let line = trade_off(&protected, &unprotected);
        assert_eq!(
            line,
            "protection: p90 400.0 ms -> 5.0 ms, errors 20.0 % -> 10.0 %; cost: 4 fewer fresh \
             upstream answers (4 vs 8), 5 answers from the fallback, 1 requests refused"
        );
    }

    fn report(lag: Lag) -> Report {
        Report {
            duration: Duration::from_secs(4),
            ran_for: Duration::from_secs(4),
            interrupted: false,
            seed: 1,
            rate: 150,
            phases: vec![(Duration::ZERO, "healthy".to_owned())],
            per_phase: vec![600],
            lag,
            protected: Summary::default(),
            unprotected: Summary::default(),
            patterns: Vec::new(),
            transitions: Vec::new(),
            shared: None,
        }
    }

    #[test]
    fn the_report_says_whether_the_machine_kept_to_the_plan() {
        let kept = report(Lag {
            max: Duration::from_millis(3),
            ..Lag::default()
        })
        .to_text();
        assert!(kept.contains("kept to the plan"), "{kept}");
        assert!(kept.contains("the latest 3.0 ms late"), "{kept}");
        let behind = report(Lag {
            max: Duration::from_millis(800),
            p99: Duration::from_millis(120),
            late: 42,
        })
        .to_text();
        assert!(
            behind.contains("fell behind the plan: 42 requests went out more than 50.0 ms late, up to 800.0 ms (p99 120.0 ms)"),
            "{behind}"
        );
        assert!(
            behind.contains("traffic plan: 600 requests at 150/s"),
            "{behind}"
        );
        assert!(!behind.contains("INTERRUPTED"), "{behind}");
    }
}
