//! The pure core of one hedged call: which attempts are running, which are owed, and when
//! the next one is due. No clock, no async, no atomics: every method takes what it needs.

use std::time::Duration;

use tokio::time::Instant;

use crate::time::deadline;

/// One call's plan. The primary attempt counts as started when the plan is made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Attempts allowed in all, the primary included.
    max_attempts: u32,
    /// Attempts started so far.
    started: u32,
    /// Attempts started and not yet finished.
    running: u32,
    /// Attempts that should start now (a timer fired, an attempt failed, parallel mode).
    owed: u32,
    /// Wait between attempts; `None` starts attempts only after failures.
    delay: Option<Duration>,
    /// When the next attempt is due on time, once armed.
    next_at: Option<Instant>,
    /// No more attempts: the budget or the request generator said no.
    stopped: bool,
    /// Whether the first timer was set.
    armed: bool,
}

impl Plan {
    /// A call allowed `max_attempts` in all, starting extra ones every `delay` (`None`: only
    /// after failures). The primary is running; a zero delay owes every other attempt at
    /// once.
    pub(crate) fn new(max_attempts: u32, delay: Option<Duration>) -> Self {
        let mut plan = Self {
            max_attempts,
            started: 1,
            running: 1,
            owed: 0,
            delay,
            next_at: None,
            stopped: false,
            armed: false,
        };
        if delay == Some(Duration::ZERO) {
            plan.owed = plan.remaining();
        }
        plan
    }

    /// Attempts that may still start.
    fn remaining(&self) -> u32 {
        if self.stopped {
            0
        } else {
            self.max_attempts - self.started
        }
    }

    /// Sets the first timer, counted from `now` (when the primary was first seen pending).
    /// Only the first call does anything: later timers count from the attempt before.
    pub(crate) fn arm(&mut self, now: Instant) {
        if !self.armed {
            self.armed = true;
            self.schedule(now);
        }
    }

    /// Sets the timer for the next attempt, counted from `now`, unless one is set or nothing
    /// is left to start.
    fn schedule(&mut self, now: Instant) {
        if self.next_at.is_none() && self.remaining() > self.owed {
            if let Some(delay) = self.delay.filter(|delay| !delay.is_zero()) {
                self.next_at = Some(deadline(now, delay));
            }
        }
    }

    /// When the next attempt is due on time, if a timer is set.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// The timer fired: the next attempt is owed now.
    pub(crate) fn fire(&mut self) {
        if self.next_at.take().is_some() && self.remaining() > self.owed {
            self.owed += 1;
        }
    }

    /// A running attempt failed: the next one is owed at once, if any is left.
    pub(crate) fn failed(&mut self) {
        self.running -= 1;
        if self.remaining() > self.owed {
            self.owed += 1;
            // It replaces the one the timer would have started.
            self.next_at = None;
        }
    }

    /// The number of the attempt to start now (1-based, the primary is 1), if one is owed.
    pub(crate) fn due(&self) -> Option<u32> {
        (self.owed > 0 && self.remaining() > 0).then_some(self.started + 1)
    }

    /// The owed attempt started at `now`; the timer restarts for the one after it.
    pub(crate) fn launched(&mut self, now: Instant) {
        self.started += 1;
        self.running += 1;
        self.owed -= 1;
        self.next_at = None;
        self.schedule(now);
    }

    /// No attempt may start any more.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        self.owed = 0;
        self.next_at = None;
    }

    /// Attempts started so far.
    pub(crate) fn started(&self) -> u32 {
        self.started
    }

    /// Nothing is running and nothing will start: the call has failed.
    pub(crate) fn exhausted(&self) -> bool {
        self.running == 0 && self.due().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn latency_mode_starts_one_attempt_per_delay() {
        let t0 = Instant::now();
        let mut plan = Plan::new(3, Some(10 * MS));
        assert_eq!(plan.due(), None);
        plan.arm(t0);
        assert_eq!(plan.next_at(), Some(t0 + 10 * MS));
        plan.fire();
        assert_eq!(plan.due(), Some(2));
        plan.launched(t0 + 10 * MS);
        assert_eq!(plan.next_at(), Some(t0 + 20 * MS));
        plan.fire();
        plan.launched(t0 + 20 * MS);
        assert_eq!(
            (plan.due(), plan.next_at()),
            (None, None),
            "all three started"
        );
        assert!(!plan.exhausted());
        plan.failed();
        plan.failed();
        assert!(!plan.exhausted());
        plan.failed();
        assert!(plan.exhausted());
    }

    #[test]
    fn a_failure_starts_the_next_attempt_at_once_and_resets_the_timer() {
        let t0 = Instant::now();
        let mut plan = Plan::new(2, Some(10 * MS));
        plan.arm(t0);
        plan.failed();
        assert_eq!(plan.due(), Some(2));
        assert_eq!(plan.next_at(), None);
        assert!(!plan.exhausted());
        plan.launched(t0 + 3 * MS);
        plan.failed();
        assert!(plan.exhausted());
    }

    #[test]
    fn parallel_owes_everything_at_once() {
        let mut plan = Plan::new(4, Some(Duration::ZERO));
        for attempt in 2..=4 {
            assert_eq!(plan.due(), Some(attempt));
            plan.launched(Instant::now());
        }
        assert_eq!(plan.due(), None);
        assert_eq!(plan.next_at(), None);
    }

    #[test]
    fn fallback_waits_for_failures_only() {
        let t0 = Instant::now();
        let mut plan = Plan::new(3, None);
        plan.arm(t0);
        assert_eq!(plan.next_at(), None);
        plan.failed();
        assert_eq!(plan.due(), Some(2));
        plan.launched(t0);
        assert_eq!(plan.next_at(), None);
        plan.failed();
        assert_eq!(plan.due(), Some(3));
    }

    #[test]
    fn stopping_ends_the_call_once_nothing_runs() {
        let t0 = Instant::now();
        let mut plan = Plan::new(3, Some(10 * MS));
        plan.arm(t0);
        plan.fire();
        plan.stop();
        assert_eq!((plan.due(), plan.next_at()), (None, None));
        assert!(!plan.exhausted(), "the primary still runs");
        plan.failed();
        assert!(plan.exhausted());
        assert_eq!(plan.started(), 1);
    }

    #[test]
    fn a_timer_firing_with_an_attempt_owed_adds_nothing() {
        let t0 = Instant::now();
        let mut plan = Plan::new(2, Some(10 * MS));
        plan.arm(t0);
        plan.fire();
        plan.fire();
        plan.arm(t0);
        assert_eq!(plan.next_at(), None, "armed once only");
        plan.launched(t0);
        assert_eq!(plan.due(), None);
    }
}
