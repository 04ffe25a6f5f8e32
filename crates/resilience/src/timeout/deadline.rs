//! [`Deadline`]: one absolute point in time shared by several operations, and the task-local
//! "current deadline" that nested calls honour.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::state;
use crate::{Error, PatternKind, Rejection, RejectionReason};

// The current deadline is what a tokio task-local would be, kept in thread-locals that are
// set around every poll of a scope: its point in a plain cell (read by every call, so a read
// is one load), its name by reference (read only to build a rejection or answer
// `Deadline::current`, so entering a scope touches no reference count). Both are set and
// restored together by `enter_scope`: the point is not `NO_DEADLINE` exactly when a name is
// set.
//
// A deadline's run makes the whole deadline current, by reference, and its point
// `UNRESOLVED`: working its point out takes longer than the rest of a run's start, and only
// a nested call or a nested deadline needs it (then once per deadline, which keeps it).
//
// The point is one word, nanoseconds on the process's timeline (see `timeline`), rather than
// an instant: saved, set and restored on every poll, a word is a single load and store, and
// comparing two deadlines is comparing two integers.
thread_local! {
    /// The point of the innermost scope being polled (or entered) on this thread, or
    /// `NO_DEADLINE`.
    static CURRENT_AT: Cell<u64> = const { Cell::new(NO_DEADLINE) };
}

/// No scope is current. No point on the timeline is this late (see [`timeline::nanos`]).
pub(crate) const NO_DEADLINE: u64 = u64::MAX;

/// The current scope is a deadline's run: its point is `CURRENT_DEADLINE`'s (see
/// [`resolve`]). No point on the timeline is this late either.
const UNRESOLVED: u64 = u64::MAX - 1;

scoped_tls::scoped_thread_local! {
    /// The name of that scope, unless its point is `UNRESOLVED`.
    static CURRENT_NAME: Arc<str>
}

scoped_tls::scoped_thread_local! {
    /// The deadline of that scope when its point is `UNRESOLVED`.
    static CURRENT_DEADLINE: Deadline
}

/// The process's timeline: instants as nanoseconds since a point before any instant the
/// process will meet (its first use, less thirty years where the clock reaches back that far).
pub(crate) mod timeline {
    use std::sync::OnceLock;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::UNRESOLVED;

    /// Where the timeline starts.
    fn origin() -> Instant {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        *ORIGIN.get_or_init(|| {
            let now = Instant::now();
            // A paused tokio clock starts where the system's was when it was paused, and
            // deadlines may be set in the past: step back thirty years, or half as far until
            // the clock can (it cannot reach before the system's start on every platform).
            let mut step = crate::time::FAR_FUTURE;
            let mut at = now;
            while !step.is_zero() {
                if let Some(earlier) = at.checked_sub(step) {
                    at = earlier;
                    break;
                }
                step /= 2;
            }
            at
        })
    }

    /// `instant` on the timeline (the origin for an earlier one), never [`NO_DEADLINE`] nor
    /// [`UNRESOLVED`].
    pub(crate) fn nanos(instant: Instant) -> u64 {
        let nanos = instant.saturating_duration_since(origin()).as_nanos();
        u64::try_from(nanos).map_or(LATEST, |nanos| nanos.min(LATEST))
    }

    /// The latest point on the timeline.
    const LATEST: u64 = UNRESOLVED - 1;

    /// The instant `nanos` along the timeline (saturating far in the future).
    pub(crate) fn instant(nanos: u64) -> Instant {
        let origin = origin();
        origin
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or_else(|| crate::time::deadline(origin, Duration::from_nanos(nanos)))
    }
}

/// A deadline as a timer needs it: `nanos` after `base`, added up only when it is read. A
/// timeout knows its deadline in nanoseconds of its own clock; making an instant of it on
/// every call would cost more than the rest of its bookkeeping, and is needed only once the
/// operation has been pending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    base: Instant,
    nanos: u64,
}

impl At {
    /// `nanos` after `base` (saturating far in the future, as every deadline does).
    pub(crate) fn after(base: Instant, nanos: u64) -> Self {
        Self { base, nanos }
    }

    /// `instant` itself.
    pub(crate) fn instant(instant: Instant) -> Self {
        Self::after(instant, 0)
    }

    /// The instant it stands for.
    pub(crate) fn get(self) -> Instant {
        if self.nanos == 0 {
            return self.base;
        }
        crate::time::deadline(self.base, Duration::from_nanos(self.nanos))
    }
}

/// The point of the current scope on the [`timeline`], or [`NO_DEADLINE`]: pass it to
/// [`resolve`] before comparing it with a point.
#[inline]
pub(crate) fn current_at() -> u64 {
    CURRENT_AT.get()
}

/// `at`, read by [`current_at`], on the [`timeline`] (or [`NO_DEADLINE`]).
#[inline]
pub(crate) fn resolve(at: u64) -> u64 {
    if at == UNRESOLVED {
        current_deadline_point()
    } else {
        at
    }
}

#[cold]
fn current_deadline_point() -> u64 {
    CURRENT_DEADLINE.with(Deadline::point)
}

/// Puts the enclosing point back, even if the scope's poll panics.
struct Restore(u64);

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        CURRENT_AT.set(self.0);
    }
}

/// Runs `f` with the deadline at `at` on the [`timeline`], named `name`, current, unless the
/// current one is at least as early (nested scopes never extend an enclosing one).
#[inline]
pub(crate) fn enter_scope<R>(at: u64, name: &Arc<str>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_AT.get();
    // `UNRESOLVED` is later than any point: the enclosing deadline's own is looked up.
    if state::enclosing_wins(at, previous)
        || (previous == UNRESOLVED && state::enclosing_wins(at, current_deadline_point()))
    {
        return f();
    }
    CURRENT_AT.set(at);
    let _restore = Restore(previous);
    CURRENT_NAME.set(name, f)
}

/// [`enter_scope`] for `deadline`, whose point is worked out only if a scope encloses it.
#[inline]
fn enter_deadline_scope<R>(deadline: &Deadline, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_AT.get();
    if previous != NO_DEADLINE && state::enclosing_wins(deadline.point(), resolve(previous)) {
        return f();
    }
    CURRENT_AT.set(UNRESOLVED);
    let _restore = Restore(previous);
    CURRENT_DEADLINE.set(deadline, f)
}

/// What a [`Guarded`] operation has current while it is polled.
pub(crate) trait Scope: Copy {
    /// Runs `f` with it current (unless an enclosing scope is at least as early).
    fn enter<R>(self, f: impl FnOnce() -> R) -> R;
}

/// A point on the [`timeline`] and its name: a timeout's call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Named<'a> {
    pub(crate) at: u64,
    pub(crate) name: &'a Arc<str>,
}

impl Scope for Named<'_> {
    #[inline]
    fn enter<R>(self, f: impl FnOnce() -> R) -> R {
        enter_scope(self.at, self.name, f)
    }
}

impl Scope for &Deadline {
    #[inline]
    fn enter<R>(self, f: impl FnOnce() -> R) -> R {
        enter_deadline_scope(self, f)
    }
}

pin_project! {
    /// An operation polled with a deadline current, and cancelled at a point: the one guard
    /// behind [`Timeout`](super::Timeout), [`Deadline::run`] and the tower layer, which each
    /// keep their deadline as they like and pass it to every poll.
    ///
    /// Like `tokio::time::timeout_at`, it polls the operation before its timer, so an
    /// operation ready at its limit succeeds; unlike it, the timer is made (and registered
    /// in tokio's wheel) only once the operation has been pending, so an operation ready at
    /// its first poll costs no timer at all.
    #[derive(Debug)]
    pub(crate) struct Guarded<F> {
        #[pin]
        future: F,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F: Future> Guarded<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            future,
            timer: None,
        }
    }

    /// Polls the operation with `scope` current, then the timer at `until`:
    /// `Ready(Some(output))` when the operation ended, `Ready(None)` once `until` has passed.
    #[inline]
    pub(crate) fn poll_until(
        self: Pin<&mut Self>,
        scope: impl Scope,
        until: At,
        cx: &mut Context<'_>,
    ) -> Poll<Option<F::Output>> {
        use tokio::task::coop;

        let mut this = self.project();
        let had_budget_before = coop::has_budget_remaining();
        let future = this.future;
        if let Poll::Ready(output) = scope.enter(|| future.poll(cx)) {
            return Poll::Ready(Some(output));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(until.get())));
        }
        let Some(timer) = this.timer.as_pin_mut() else {
            unreachable!("the timer was just set");
        };
        // As `tokio::time::timeout`: if the operation used up the task's budget, the timer is
        // polled unconstrained, so an operation that always exhausts it still times out.
        let fired = if had_budget_before && !coop::has_budget_remaining() {
            pin!(coop::unconstrained(timer)).poll(cx)
        } else {
            timer.poll(cx)
        };
        fired.map(|()| None)
    }
}

pin_project! {
    /// An operation made at its first poll: made by a guard, it is made with the guard's
    /// deadline already current, at no extra cost.
    #[project = LazyProjection]
    pub(crate) enum Lazy<M, F> {
        Unmade { make: Option<M> },
        Made { #[pin] future: F },
    }
}

impl<M: FnOnce() -> F, F: Future> Lazy<M, F> {
    pub(crate) fn new(make: M) -> Self {
        Self::Unmade { make: Some(make) }
    }
}

impl<M: FnOnce() -> F, F: Future> Future for Lazy<M, F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let LazyProjection::Unmade { make } = self.as_mut().project() {
            let Some(make) = make.take() else {
                unreachable!("an unmade operation is made at once");
            };
            self.set(Self::Made { future: make() });
        }
        match self.project() {
            LazyProjection::Made { future } => future.poll(cx),
            LazyProjection::Unmade { .. } => unreachable!("made above"),
        }
    }
}

/// One absolute deadline, on the monotonic tokio clock, shared by several operations.
///
/// Where a [`Timeout`](super::Timeout) gives each call its own limit, a deadline is a budget
/// for a whole piece of work: three calls made one after the other under a 100 ms deadline
/// get 100 ms *together*, each only what the previous ones left. An operation started once
/// the deadline has passed is rejected without running ([`Error::Rejected`] with
/// [`PatternKind::Deadline`] and [`RejectionReason::DeadlineExpired`]); one still running when
/// it passes is cancelled (its future dropped) and fails with [`Error::Timeout`].
///
/// [`scope`](Self::scope) makes it the *current* deadline of everything the future awaits:
/// every [`Timeout`](super::Timeout) inside waits at most until then, and code anywhere below
/// can ask [`Deadline::current`] how much time is left (to pass it on to a remote call, say).
/// Nested scopes never extend an enclosing one: the earlier deadline wins.
///
/// A `Deadline` is a value (an instant and a name); clones are cheap and equal.
///
/// ```
/// use resilience::timeout::Deadline;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let deadline = Deadline::after(Duration::from_millis(100)).named("checkout");
/// let step = || async {
///     tokio::time::sleep(Duration::from_millis(40)).await;
///     Ok::<_, std::io::Error>(())
/// };
/// assert!(deadline.run(step()).await.is_ok()); // 40 ms used, 60 left
/// assert!(deadline.run(step()).await.is_ok()); // 20 left
/// let third = deadline.run(step()).await.unwrap_err();
/// assert!(third.is_timeout()); // cancelled after the 20 ms that were left
/// let fourth = deadline.run(step()).await.unwrap_err();
/// assert!(fourth.is_rejected()); // never started
/// # }
/// ```
pub struct Deadline {
    at: Instant,
    /// `None` for the default name, so an unnamed deadline touches no reference count.
    name: Option<Arc<str>>,
    /// `at` on the [`timeline`] once worked out, [`UNRESOLVED`] until then.
    point: AtomicU64,
}

impl Clone for Deadline {
    fn clone(&self) -> Self {
        Self {
            at: self.at,
            name: self.name.clone(),
            point: AtomicU64::new(self.point.load(Ordering::Relaxed)),
        }
    }
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.name() == other.name()
    }
}

impl Eq for Deadline {}

impl Deadline {
    /// A deadline `duration` from now.
    pub fn after(duration: Duration) -> Self {
        Self::at(state::after(Instant::now(), duration))
    }

    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self {
            at: instant,
            name: None,
            point: AtomicU64::new(UNRESOLVED),
        }
    }

    /// Names this deadline; the name appears in its rejections. The default is `"deadline"`.
    #[must_use]
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub(crate) fn with_shared_name(at: Instant, name: &Arc<str>) -> Self {
        Self {
            name: Some(Arc::clone(name)),
            ..Self::at(at)
        }
    }

    /// The deadline of the enclosing [`scope`](Self::scope), if the current task is inside one.
    pub fn current() -> Option<Self> {
        let (at, name) = match CURRENT_AT.get() {
            NO_DEADLINE => return None,
            UNRESOLVED => CURRENT_DEADLINE
                .with(|deadline| (deadline.point(), Self::shared_name(deadline.name_arc()))),
            at => (at, CURRENT_NAME.with(Self::shared_name)),
        };
        Some(Self {
            name,
            ..Self::at(timeline::instant(at))
        })
    }

    /// Its instant on the [`timeline`], worked out once.
    fn point(&self) -> u64 {
        match self.point.load(Ordering::Relaxed) {
            UNRESOLVED => {
                let point = timeline::nanos(self.at);
                self.point.store(point, Ordering::Relaxed);
                point
            }
            point => point,
        }
    }

    /// `name` as this type keeps it: the shared default is kept as `None`.
    fn shared_name(name: &Arc<str>) -> Option<Arc<str>> {
        (!Arc::ptr_eq(name, default_name())).then(|| Arc::clone(name))
    }

    /// The name, as shared with rejections and the current scope.
    fn name_arc(&self) -> &Arc<str> {
        self.name.as_ref().unwrap_or_else(|| default_name())
    }

    /// The instant it falls at.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.name_arc()
    }

    /// The time left, zero once it has passed.
    pub fn remaining(&self) -> Duration {
        state::remaining(self.at, Instant::now())
    }

    /// Whether it has passed. A deadline is expired *at* its instant, not only after.
    pub fn is_expired(&self) -> bool {
        state::is_expired(self.at, Instant::now())
    }

    /// Makes this the current deadline while `future` runs (unless an enclosing scope's
    /// deadline is earlier, which then stays current). `future` itself is not cancelled at
    /// the deadline; the timeouts and deadlines inside it are bounded by it. To cancel,
    /// use [`run`](Self::run).
    ///
    /// The enclosing deadline is looked up each time the future is polled, so a scope built
    /// outside and awaited inside another one still honours the earlier of the two.
    pub fn scope<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped {
            deadline: self.clone(),
            at: self.point(),
            future,
        }
    }

    /// Runs `operation` until this deadline (or an earlier enclosing one), with this deadline
    /// current inside it. Rejected without polling `operation` if the deadline has passed;
    /// cancelled (dropped) if it is still running when the deadline passes.
    pub fn run<T, E, Fut>(
        &self,
        operation: Fut,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, Fut>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        // The operation's own errors become this crate's once it has ended: no wrapping
        // future around it.
        self.guard(operation, |result| result.map_err(Error::Inner))
    }

    /// Like [`run`](Self::run) for an operation that already returns this crate's [`Error`],
    /// such as another pattern's call; its errors pass through unchanged.
    pub fn execute<T, E, Fut>(
        &self,
        operation: Fut,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, Fut>
    where
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        self.guard(operation, |result| result)
    }

    /// The call behind [`run`](Self::run) and [`execute`](Self::execute): `convert` turns
    /// the operation's output into the call's result.
    fn guard<T, E, Fut, C>(&self, operation: Fut, convert: C) -> Run<'_, Fut, C>
    where
        Fut: Future,
        C: Fn(Fut::Output) -> Result<T, Error<E>>,
    {
        Run {
            deadline: self,
            guarded: Guarded::new(operation),
            phase: Phase::Unstarted,
            convert,
        }
    }

    /// The rejection of an operation that would start after this deadline.
    pub(crate) fn expired(&self) -> Rejection {
        tracing::debug!(target: "resilience::timeout", deadline = %self.name(), "deadline expired before the operation started");
        Rejection::new(
            PatternKind::Deadline,
            Arc::clone(self.name_arc()),
            RejectionReason::DeadlineExpired,
            None,
        )
    }
}

/// The shared default name, so an unnamed deadline allocates nothing.
fn default_name() -> &'static Arc<str> {
    static NAME: OnceLock<Arc<str>> = OnceLock::new();
    NAME.get_or_init(|| Arc::from("deadline"))
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("name", &self.name())
            .field("remaining", &self.remaining())
            .finish()
    }
}

pin_project! {
    /// A future run with a [`Deadline`] as the current one; made by [`Deadline::scope`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Scoped<F> {
        deadline: Deadline,
        // The deadline on the timeline.
        at: u64,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// The deadline this future runs under (an enclosing scope may still be earlier).
    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        enter_scope(*this.at, this.deadline.name_arc(), || future.poll(cx))
    }
}

/// Where a [`Run`] is: its start (the clock read, the budget) waits for its first poll, so a
/// run built outside a scope and awaited inside it honours that scope.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Unstarted,
    Running {
        started: Instant,
        /// When it is cancelled: this deadline or an earlier enclosing one.
        until: Instant,
        /// Whether an enclosing deadline, not this one, set `until`.
        enclosed: bool,
    },
    Ended,
}

pin_project! {
    /// The future of [`Deadline::run`] and [`Deadline::execute`].
    struct Run<'a, F, C> {
        deadline: &'a Deadline,
        #[pin]
        guarded: Guarded<F>,
        phase: Phase,
        convert: C,
    }
}

impl<F, C, T, E> Future for Run<'_, F, C>
where
    F: Future,
    C: Fn(F::Output) -> Result<T, Error<E>>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let deadline = *this.deadline;
        let (started, until, enclosed) = match *this.phase {
            Phase::Running {
                started,
                until,
                enclosed,
            } => (started, until, enclosed),
            Phase::Unstarted => {
                let started = Instant::now();
                // The enclosing deadline stays in force when it is the earlier one.
                let (until, enclosed) = match current_at() {
                    NO_DEADLINE => (deadline.at, false),
                    enclosing => match resolve(enclosing) {
                        enclosing if state::enclosing_wins(deadline.point(), enclosing) => {
                            (timeline::instant(enclosing), true)
                        }
                        _ => (deadline.at, false),
                    },
                };
                // The rule of `state::budget` for a bare deadline; the budget's length is
                // needed only if the operation is cancelled.
                if state::is_expired(until, started) {
                    *this.phase = Phase::Ended;
                    let rejection = match enclosed.then(Deadline::current).flatten() {
                        Some(enclosing) => enclosing.expired(),
                        None => deadline.expired(),
                    };
                    return Poll::Ready(Err(Error::Rejected(rejection)));
                }
                *this.phase = Phase::Running {
                    started,
                    until,
                    enclosed,
                };
                (started, until, enclosed)
            }
            Phase::Ended => panic!("a deadline's run polled after it ended"),
        };
        // This deadline is current inside, as with `scope` (an earlier enclosing one stays).
        let output = std::task::ready!(this.guarded.poll_until(deadline, At::instant(until), cx));
        *this.phase = Phase::Ended;
        Poll::Ready(match output {
            Some(output) => (this.convert)(output),
            None => {
                let elapsed = started.elapsed();
                let limit = state::remaining(until, started);
                let enclosing = enclosed.then(Deadline::current).flatten();
                let effective = enclosing.as_ref().unwrap_or(deadline);
                tracing::debug!(target: "resilience::timeout", deadline = %effective.name(), ?limit, "deadline exceeded");
                Err(Error::Timeout { elapsed, limit })
            }
        })
    }
}
