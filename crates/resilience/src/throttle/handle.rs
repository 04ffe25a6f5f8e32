//! [`AdaptiveThrottle`]: the shell that counts requests and refusals in the window, draws
//! against the probability of the pure core and hands out permits.

use crate::sync::atomic::{AtomicU64, Ordering};
use std::fmt;
use std::sync::Arc;

use super::instruments::Instruments;
use super::state::{headroom, probability, room_at_cap, throttles};
use super::window::{BucketWidth, Counted, Credit, Requests, Ring, BUCKETS_U32};
use super::{ThrottleBuilder, ThrottleConfig, ThrottleEvent, ThrottleMetrics};
use crate::classify::Outcome;
use crate::clock::Clock;
use crate::error::Name;
use crate::events::{Emitter, EventBus};
use crate::random;
use crate::stage::{self, Admit, LeaseToken, Leased, Stage, StagePermit};
use crate::ticket::{Slots, Ticket};
use crate::{ConfigError, PatternKind, Rejection, RejectionReason};

/// Client-side adaptive throttling: drops a share of requests locally when the backend has
/// been refusing much of what it was sent, so an overloaded backend is not also flooded with
/// requests it will refuse.
///
/// Cheap to clone; clones share the window, the random sequence, the counters and the listeners.
/// See the [module docs](super) for how it decides.
#[derive(Clone)]
pub struct AdaptiveThrottle {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    /// The name again, as every rejection copies it (see [`Name`]).
    rejection_name: Name,
    config: ThrottleConfig,
    /// Time zero of the buckets (see [`Clock`] for the source it reads).
    clock: Clock,
    /// The length of a bucket, in the clock's ticks.
    bucket: BucketWidth,
    /// Every request, throttled or not, and where each bucket began among them.
    requests: Requests,
    /// The requests the backend refused, per bucket. The window's accepts are its requests
    /// less these and less those throttled, so an accepted request writes nothing after it
    /// was counted.
    refusals: Ring,
    /// How many of the current bucket's requests are known to pass at probability 0.
    credit: Credit,
    /// How many of the current bucket's requests are known to be drawn at the cap.
    at_cap: Credit,
    /// The seed of the draws: a request drawn against the probability draws the number of
    /// its place among every request counted in the sequence this seeds, so a draw writes
    /// nothing shared.
    seed: u64,
    /// Every request throttled, and where each bucket began among them, as [`Requests`]
    /// counts requests: a throttled request is refused as it is counted, in the bucket it was
    /// counted in, so one running total serves as its window's count, its metric and the
    /// count a credit orders itself against, with a single atomic add.
    throttled: Requests,
    /// Every request the backend refused (counted after the ring). With `throttled`, how a
    /// credit granted from sums that missed a refusal finds out (see [`Credit::grant`]).
    failures: AtomicU64,
    emitter: Emitter,
    instruments: Instruments,
}

impl AdaptiveThrottle {
    /// Starts building a throttle named `name`, with the defaults of [`ThrottleConfig`].
    pub fn builder(name: impl Into<String>) -> ThrottleBuilder {
        ThrottleBuilder::new(name.into())
    }

    /// A throttle from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: ThrottleConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: ThrottleConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let clock = Clock::new();
        // The window's sixteenth, to the nanosecond, then in ticks: under a paused tokio clock
        // buckets end exactly where the window's sixteenths do.
        let sixteenth = config.window / BUCKETS_U32;
        let bucket = BucketWidth::new(clock.ticks_in(sixteenth));
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                instruments: Instruments::new(&name),
                rejection_name: Name::new(&name),
                name,
                clock,
                bucket,
                requests: Requests::new(),
                refusals: Ring::new(),
                credit: Credit::new(),
                at_cap: Credit::new(),
                seed: config.seed.unwrap_or_else(|| fastrand::u64(..)),
                config,
                throttled: Requests::new(),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// The throttle's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration.
    pub fn config(&self) -> ThrottleConfig {
        self.inner.config
    }

    /// The share of requests throttled now, from the window as it is.
    pub fn rejection_probability(&self) -> f64 {
        let inner = &*self.inner;
        let bucket = inner.current_bucket();
        let requests = inner.requests.in_window(inner.requests.total(), bucket);
        probability(requests, inner.accepts(requests, bucket), &inner.config)
    }

    /// Decides one request now: a [`Permit`] to send it, or a rejection
    /// ([`RejectionReason::Throttled`], no `retry_after`: the next request may well pass).
    /// Either way the request is counted in the window.
    ///
    /// The permit borrows the throttle; report the backend's answer through it: only a
    /// [`failure`](Permit::failure) counts against the backend. For a permit that must
    /// outlive the borrow (moved into a spawned task), use
    /// [`try_acquire_owned`](Self::try_acquire_owned).
    ///
    /// ```
    /// use resilience::throttle::AdaptiveThrottle;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let throttle = AdaptiveThrottle::builder("search-backend").build()?;
    /// let permit = throttle.try_acquire()?;
    /// let refused = false; // what the backend answered
    /// if refused {
    ///     permit.failure();
    /// } else {
    ///     permit.success();
    /// }
    /// assert_eq!(throttle.metrics().window_accepts, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejection> {
        let bucket = self.inner.decide()?;
        Ok(Permit(Ticket::new(&*self.inner, bucket)))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that holds a reference to the
    /// throttle instead of borrowing it, so it can be moved into a task and outlive this
    /// handle. Taking and dropping the reference costs two atomic operations the borrowed
    /// permit does not pay.
    ///
    /// ```
    /// use resilience::throttle::AdaptiveThrottle;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let throttle = AdaptiveThrottle::builder("search-backend").build()?;
    /// let permit = throttle.try_acquire_owned()?;
    /// tokio::spawn(async move {
    ///     // ... send the request ...
    ///     permit.success();
    /// })
    /// .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejection> {
        let bucket = self.inner.decide()?;
        Ok(OwnedPermit(Ticket::new(Arc::clone(&self.inner), bucket)))
    }

    stage::entry_points! {
        /// Runs `operation` unless throttled, counting every `Err` as not accepted by the
        /// backend.
        call;
        /// Like [`call`](Self::call), judging the outcome with `classifier`: what it calls a
        /// failure is a request the backend did not accept.
        call_with;
        /// Runs an operation that already returns this crate's [`Error`](crate::Error) (an
        /// inner pattern of a pipeline): an inner timeout is a failure, an inner rejection is
        /// ignored, and errors pass through unchanged.
        execute;
    }

    /// A snapshot of the window and the counters.
    pub fn metrics(&self) -> ThrottleMetrics {
        let inner = &*self.inner;
        let bucket = inner.current_bucket();
        let total_requests = inner.requests.total();
        let window_requests = inner.requests.in_window(total_requests, bucket);
        let window_accepts = inner.accepts(window_requests, bucket);
        ThrottleMetrics {
            name: inner.name.to_string(),
            window: inner.config.window,
            window_requests,
            window_accepts,
            rejection_probability: probability(window_requests, window_accepts, &inner.config),
            total_requests,
            total_throttled: inner.throttled.total(),
            total_failures: inner.failures.load(Ordering::Relaxed),
        }
    }

    /// This throttle's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    /// Decides one request now and counts it in the window: the bucket it was counted in if
    /// it may go out, or its rejection.
    ///
    /// Every request counts, throttled or not, so it is counted first: its count says where
    /// it stands in its bucket, which is all the credit needs to know to let it through
    /// without summing the window.
    #[inline]
    fn decide(&self) -> Result<u64, Rejection> {
        let bucket = self.current_bucket();
        let counted = self.requests.add(bucket);
        match counted.position {
            Some(position) if self.credit.covers(bucket, position) => {
                self.instruments.admitted();
                Ok(bucket)
            }
            Some(position) if self.at_cap.covers(bucket, position) => {
                self.draw(self.config.max_rejection_probability, bucket, counted)
            }
            _ => self.judge(bucket, counted),
        }
    }

    /// Decides a request the credit did not cover, from the window as it was before it, and
    /// grants credit when the probability is 0.
    fn judge(&self, bucket: u64, counted: Counted) -> Result<u64, Rejection> {
        // Read before the window, so that a refusal the sums miss changes it.
        let refused = self.refused();
        let requests = self.requests.in_window(counted.total, bucket);
        let accepts = self.accepts(requests, bucket);
        let p = probability(requests, accepts, &self.config);
        if p > 0.0 {
            if let Some(position) = counted
                .position
                .filter(|_| p == self.config.max_rejection_probability)
            {
                // The next `room` requests of this bucket are judged at the cap too, whatever
                // is refused meanwhile: those placed below `position + 1 + room` are drawn
                // against it without the sums.
                let room = room_at_cap(requests, accepts, &self.config);
                let bound = position.saturating_add(1).saturating_add(room);
                self.at_cap.cover(bucket, bound);
            }
            return self.draw(p, bucket, counted);
        }
        if let Some(position) = counted.position {
            // The next `room` requests of this bucket are judged at probability 0 too, as
            // long as no refusal is counted: those placed below `position + 1 + room` pass on
            // the credit. Concurrent callers may have counted requests since the sums were
            // read: under contention the credit can be generous by the requests racing this
            // one.
            let room = headroom(requests, accepts, &self.config);
            let bound = position.saturating_add(1).saturating_add(room);
            self.credit
                .grant(bucket, bound, refused, || self.refused_after_grant());
        }
        self.instruments.admitted();
        Ok(bucket)
    }

    /// Decides a request counted in `bucket` at probability `p`, with a draw.
    fn draw(&self, p: f64, bucket: u64, counted: Counted) -> Result<u64, Rejection> {
        // Every request has its own place in the count, so no two draw the same number.
        let draw = || random::nth_unit(self.seed, counted.total.wrapping_add(1));
        if throttles(p, draw) {
            self.throttled.add_ordered(bucket, Ordering::AcqRel);
            self.credit.revoke();
            self.instruments.throttled();
            tracing::debug!(target: "resilience::throttle", throttle = %self.name, probability = p, "request throttled");
            self.emitter
                .emit(|| ThrottleEvent::Rejected { probability: p });
            return Err(Rejection::named(
                PatternKind::Throttle,
                self.rejection_name.clone(),
                RejectionReason::Throttled,
                None,
            ));
        }
        self.instruments.admitted();
        Ok(bucket)
    }

    /// The window's accepts: its `requests` less its refusals, throttled or failed. A request
    /// is accepted unless refused, so one still waiting for its answer counts as accepted.
    /// Refusals of requests counted after `requests` was read may be counted already: the
    /// difference saturates.
    #[inline]
    fn accepts(&self, requests: u64, bucket: u64) -> u64 {
        let throttled = self.throttled.in_window(self.throttled.total(), bucket);
        requests
            .saturating_sub(throttled)
            .saturating_sub(self.refusals.total(bucket))
    }

    /// Refusals counted so far, throttled or failed. A failure is in the ring before it is
    /// in its count (see [`refuse`](Self::refuse)), and a throttled request's count is its
    /// window's, so sums read after this include every refusal it counted.
    fn refused(&self) -> u64 {
        let throttled = self.throttled.total_ordered(Ordering::Acquire);
        throttled.wrapping_add(self.failures.load(Ordering::Acquire))
    }

    /// [`refused`](Self::refused), read by read-modify-writes that add nothing: each is
    /// ordered against every refusal's own in its count, which [`Credit::grant`] relies on.
    fn refused_after_grant(&self) -> u64 {
        let throttled = self.throttled.total_by_read_modify_write();
        throttled.wrapping_add(self.failures.fetch_add(0, Ordering::AcqRel))
    }

    /// Counts the backend's refusal of a request counted in `bucket`, in the window and in
    /// the failures, and withdraws the credit, which was granted on fewer refusals.
    fn refuse(&self, bucket: u64) {
        self.refusals.add(bucket, 1);
        self.failures.fetch_add(1, Ordering::AcqRel);
        self.credit.revoke();
    }

    /// The backend's answer to a request counted in `bucket`: only a failure writes, as an
    /// accepted request was counted as accepted when it was counted.
    #[inline]
    fn record(&self, bucket: u64, outcome: Outcome) {
        if outcome == Outcome::Failure {
            self.refuse(bucket);
        }
    }

    /// The bucket holding now.
    #[inline]
    fn current_bucket(&self) -> u64 {
        self.bucket.bucket(self.clock.ticks())
    }
}

impl fmt::Debug for AdaptiveThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Decides at once; a throttled request is refused with
/// [`RejectionReason::Throttled`].
impl Stage for AdaptiveThrottle {
    type Permit = OwnedPermit;

    fn admit(&self) -> Admit<OwnedPermit> {
        Admit::ready(self.try_acquire_owned())
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Throttle
    }

    /// A call run by `call` borrows the throttle: its token carries the bucket it was counted
    /// in, and no reference count is taken.
    #[inline]
    fn lease(&self) -> Leased<OwnedPermit> {
        match self.inner.decide() {
            Ok(bucket) => Leased::Token(LeaseToken::new(bucket).wanting_outcome()),
            Err(rejection) => Leased::Rejected(rejection),
        }
    }

    #[inline]
    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        self.inner.record(token.tag(), outcome);
    }
}

crate::registry::registered!(AdaptiveThrottle: ThrottleConfig => ThrottleMetrics);

/// A request the [`AdaptiveThrottle`] let through, borrowing it; tell it how the backend
/// answered. Made by [`try_acquire`](AdaptiveThrottle::try_acquire); [`OwnedPermit`] is the
/// same without the borrow.
///
/// [`failure`](Self::failure) (the backend refused or failed the request) is the only answer
/// that counts against the backend. A [`success`](Self::success), an
/// [`ignore`](Self::ignore)d outcome (the request's own fault, such as a 404) and a permit
/// dropped without an answer (a cancelled call) all count as accepted: none of them says the
/// backend is overloaded.
#[must_use = "dropping the permit counts the request as accepted by the backend"]
pub struct Permit<'a>(Ticket<Inner, &'a Inner>);

/// A request the [`AdaptiveThrottle`] let through, holding a reference to it; tell it how
/// the backend answered. Made by [`try_acquire_owned`](AdaptiveThrottle::try_acquire_owned),
/// and what the throttle hands out as a [`Stage`] (to the tower layer and the HTTP adapters);
/// it answers as a [`Permit`] does.
#[must_use = "dropping the permit counts the request as accepted by the backend"]
pub struct OwnedPermit(Ticket<Inner, Arc<Inner>>);

/// What both permits hold besides the throttle: the bucket the request was counted in, where
/// a refusal goes too. Only a failure writes when a permit ends: the request was counted as
/// accepted when it was counted, so a permit dropped without an answer changes nothing.
impl Slots for Inner {
    type Held = u64;

    #[inline]
    fn end(&self, bucket: u64, outcome: Outcome) {
        self.record(bucket, outcome);
    }
}

/// The `Debug` of both permits.
fn debug_permit(kind: &str, throttle: &Inner, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(kind)
        .field("throttle", &throttle.name)
        .finish_non_exhaustive()
}

impl Permit<'_> {
    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`: a success is a request the backend accepted; a failure one it did
    /// not (refused, failed, timed out); an ignored outcome counts as accepted.
    #[inline]
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}

impl OwnedPermit {
    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`, as [`Permit::record`] does.
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_permit("Permit", self.0.handle(), f)
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_permit("OwnedPermit", self.0.handle(), f)
    }
}

impl StagePermit for OwnedPermit {
    /// Whether the backend accepted the call is what the throttle learns from.
    fn wants_outcome(&self) -> bool {
        true
    }

    fn record(self, outcome: Outcome) {
        Self::record(self, outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The credits only spare the sums: every decision is the one the window's sums and the
    /// request's draw give, through overload (the probability at its cap), recovery and
    /// quiet (at 0), with buckets leaving the window.
    #[tokio::test(start_paused = true)]
    async fn every_decision_is_the_one_the_sums_give() {
        let config = ThrottleConfig {
            window: Duration::from_secs(16),
            min_requests: 5,
            max_rejection_probability: 0.5,
            seed: Some(9),
            ..ThrottleConfig::default()
        };
        let throttle = AdaptiveThrottle::from_config("exact", config).unwrap();
        let inner = &*throttle.inner;
        let mut rng = fastrand::Rng::with_seed(3);
        let mut at_cap = 0;
        for step in 0..20_000 {
            if rng.u8(..) < 8 {
                tokio::time::advance(Duration::from_millis(rng.u64(..600))).await;
            }
            let bucket = inner.current_bucket();
            let total = inner.requests.total();
            let requests = inner.requests.in_window(total, bucket);
            let p = probability(requests, inner.accepts(requests, bucket), &inner.config);
            at_cap += usize::from(p == config.max_rejection_probability);
            let throttled = throttles(p, || random::nth_unit(config.seed.unwrap(), total + 1));
            // Phases of a backend refusing everything, then accepting everything.
            let refusing = (step / 400) % 2 == 0;
            match throttle.try_acquire() {
                Ok(permit) => {
                    assert!(!throttled, "step {step}: let through at {p}");
                    permit.record(if refusing {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    });
                }
                Err(_) => assert!(throttled, "step {step}: throttled at {p}"),
            }
        }
        assert!(at_cap > 2_000, "{at_cap} decisions at the cap");
    }
}
