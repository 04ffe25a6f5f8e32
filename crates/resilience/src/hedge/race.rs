//! The race of one hedged call, shared by [`Hedge`](super::Hedge)'s methods and the tower
//! future: it polls the running attempts in the caller's own task (nothing is spawned, so
//! dropping it cancels every attempt at once), starts the attempts the [`Plan`] says are
//! due, and keeps the timer for the next one.
//!
//! The primary attempt lives inside the race; extra attempts are boxed as they start, so a
//! call answered before its delay allocates nothing. A race may be made before its primary
//! starts (the handle's futures are lazy: nothing runs before the first poll): the launcher
//! then makes attempt 1 when the race is first polled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::handle::Inner;
use super::state::Plan;
use super::HedgeTrigger;

/// What a launcher did with the attempt it was asked for.
#[cfg_attr(
    not(feature = "tower"),
    expect(
        dead_code,
        reason = "only the tower launcher fails or runs out of requests"
    )
)]
pub(crate) enum Launched<F, O> {
    /// The attempt runs.
    Started(F),
    /// No attempt can be made (the request could not be copied): stop hedging.
    Unavailable,
    /// The attempt failed before it started (the service was not ready): its output.
    Failed(O),
}

/// Starts attempts on demand.
pub(crate) trait Launch {
    /// What an attempt returns.
    type Output;
    /// An attempt.
    type Future: Future<Output = Self::Output>;

    /// Starts attempt `attempt` (1-based), or says why not; `Pending` until it can start.
    fn poll_launch(
        &mut self,
        attempt: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Launched<Self::Future, Self::Output>>;

    /// Makes the primary attempt of a race made without one, when it is first polled.
    /// Launchers that are always given their primary never make one.
    fn primary(&mut self) -> Option<Self::Future> {
        None
    }
}

/// Attempts made by a closure receiving the attempt number.
pub(crate) struct FromFn<F>(pub(crate) F);

impl<F, Fut> Launch for FromFn<F>
where
    F: FnMut(u32) -> Fut,
    Fut: Future,
{
    type Output = Fut::Output;
    type Future = Fut;

    fn poll_launch(
        &mut self,
        attempt: u32,
        _: &mut Context<'_>,
    ) -> Poll<Launched<Fut, Fut::Output>> {
        Poll::Ready(Launched::Started((self.0)(attempt)))
    }

    fn primary(&mut self) -> Option<Fut> {
        Some((self.0)(1))
    }
}

pin_project! {
    /// One hedged call in progress: attempts of type `F` with output `O`, made by `L`.
    pub(crate) struct Race<L, F, O> {
        #[pin]
        primary: Option<F>,
        hedges: Vec<(u32, Pin<Box<F>>)>,
        #[pin]
        sleep: Option<Sleep>,
        launcher: L,
        plan: Option<Plan>,
        started_at: Option<Instant>,
        last: Option<O>,
        // A budget withdrawal made for an attempt still waiting for its launcher.
        withdrawn: bool,
        trigger: HedgeTrigger,
        done: bool,
    }
}

impl<L, F, O> Race<L, F, O>
where
    L: Launch<Future = F, Output = O>,
    F: Future<Output = O>,
{
    /// A race whose primary attempt is `primary` (`None`: the launcher makes it when the race
    /// is first polled); `launcher` makes the extra ones.
    pub(crate) fn new(primary: Option<F>, launcher: L) -> Self {
        Self {
            primary,
            hedges: Vec::new(),
            sleep: None,
            launcher,
            plan: None,
            started_at: None,
            last: None,
            withdrawn: false,
            trigger: HedgeTrigger::Delay,
            done: false,
        }
    }

    /// Drives the call: returns the first output `accept` takes (it judges an output and
    /// hands it back), or the last failure when every attempt failed and no other may start.
    pub(crate) fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        inner: &Inner,
        mut accept: impl FnMut(O) -> (bool, O),
    ) -> Poll<O> {
        let mut this = self.project();
        assert!(!*this.done, "hedge future polled after completion");
        let plan = this.plan.get_or_insert_with(|| {
            if this.primary.is_none() {
                this.primary.set(this.launcher.primary());
            }
            let (plan, started_at, parallel) = inner.begin();
            *this.started_at = started_at;
            if parallel {
                *this.trigger = HedgeTrigger::Parallel;
            }
            plan
        });
        loop {
            // 1. The running attempts, primary first.
            let mut finished = None;
            if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                if let Poll::Ready(output) = primary.poll(cx) {
                    this.primary.set(None);
                    finished = Some((1, output));
                }
            }
            let mut index = 0;
            loop {
                if let Some((attempt, output)) = finished.take() {
                    let (accepted, output) = accept(output);
                    if accepted {
                        // The winner: cancel every other attempt now, not when the caller
                        // drops this future.
                        this.primary.set(None);
                        this.hedges.clear();
                        this.sleep.set(None);
                        *this.done = true;
                        inner.succeeded(attempt, plan.started(), *this.started_at);
                        return Poll::Ready(output);
                    }
                    plan.failed();
                    *this.trigger = HedgeTrigger::Failure;
                    *this.last = Some(output);
                }
                let Some((attempt, future)) = this.hedges.get_mut(index) else {
                    break;
                };
                if let Poll::Ready(output) = future.as_mut().poll(cx) {
                    finished = Some((*attempt, output));
                    this.hedges.swap_remove(index);
                } else {
                    index += 1;
                }
            }

            // 2. The attempts now due.
            let mut launched = false;
            while let Some(attempt) = plan.due() {
                if !*this.withdrawn {
                    if !inner.may_hedge(attempt) {
                        plan.stop();
                        break;
                    }
                    *this.withdrawn = true;
                }
                let Poll::Ready(launch) = this.launcher.poll_launch(attempt, cx) else {
                    break;
                };
                *this.withdrawn = false;
                let now = Instant::now();
                let started_at = *this.started_at.get_or_insert(now);
                match launch {
                    Launched::Started(future) => {
                        plan.launched(now);
                        inner.hedged(attempt, now - started_at, *this.trigger);
                        this.hedges.push((attempt, Box::pin(future)));
                        launched = true;
                    }
                    Launched::Unavailable => plan.stop(),
                    Launched::Failed(output) => {
                        plan.launched(now);
                        plan.failed();
                        *this.trigger = HedgeTrigger::Failure;
                        *this.last = Some(output);
                    }
                }
            }
            if launched {
                continue;
            }
            if plan.exhausted() {
                this.sleep.set(None);
                *this.done = true;
                inner.exhausted(plan.started());
                let last = this.last.take();
                return Poll::Ready(last.expect("an exhausted hedge saw a failure"));
            }

            // 3. The timer for the next attempt, counted from the first time the primary
            // was pending (a call answered at once reads no clock).
            let started_at = *this.started_at.get_or_insert_with(Instant::now);
            plan.arm(started_at);
            let Some(at) = plan.next_at() else {
                return Poll::Pending;
            };
            match this.sleep.as_mut().as_pin_mut() {
                Some(sleep) if sleep.deadline() != at => sleep.reset(at),
                Some(_) => {}
                None => this.sleep.set(Some(tokio::time::sleep_until(at))),
            }
            let sleep = this
                .sleep
                .as_mut()
                .as_pin_mut()
                .expect("the timer was just set");
            if sleep.poll(cx).is_pending() {
                return Poll::Pending;
            }
            plan.fire();
            *this.trigger = HedgeTrigger::Delay;
        }
    }
}
