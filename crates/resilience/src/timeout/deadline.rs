//! [`Deadline`]: one absolute point in time shared by several operations, and the task-local
//! "current deadline" that nested calls honour.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::state::{self, Budget};
use crate::{Error, PatternKind, Rejection, RejectionReason};

// The current deadline is what a tokio task-local would be, kept in two thread-locals that
// are set around every poll of a scope: its instant in a plain cell (read by every call, so
// a read is one load), its name by reference (read only to build a rejection or answer
// `Deadline::current`, so entering a scope touches no reference count). Both are set and
// restored together by `enter_scope`: the instant is `Some` exactly when a name is set.
thread_local! {
    /// The instant of the innermost scope being polled (or entered) on this thread, if any.
    static CURRENT_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

scoped_tls::scoped_thread_local! {
    /// The name of that scope.
    static CURRENT_NAME: Arc<str>
}

/// Runs `f` with the deadline at `at`, named `name`, current, unless the current one is at
/// least as early (nested scopes never extend an enclosing one).
pub(crate) fn enter_scope<R>(at: Instant, name: &Arc<str>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_AT.get();
    if previous.is_some_and(|enclosing| state::enclosing_wins(at, enclosing)) {
        return f();
    }
    /// Puts the enclosing instant back, even if `f` panics.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT_AT.set(self.0);
        }
    }
    CURRENT_AT.set(Some(at));
    let _restore = Restore(previous);
    CURRENT_NAME.set(name, f)
}

pin_project! {
    /// An operation run until `until`, polled with that deadline current: the one guard
    /// behind [`Timeout`](super::Timeout), [`Deadline::run`] and the tower layer.
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
        until: Instant,
        // The deadline made current inside: `until` unless told otherwise.
        current: Instant,
    }
}

pin_project! {
    /// A [`Guarded`] operation as a future named `name`: what a timeout's call awaits, with
    /// no pinned local, reference and `poll_fn` beside it in the caller's future.
    pub(crate) struct Named<'a, F> {
        #[pin]
        guarded: Guarded<F>,
        name: &'a Arc<str>,
    }
}

impl<F: Future> Future for Named<'_, F> {
    /// `Some(output)` when the operation ended, `None` once its deadline passed.
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.guarded.poll_named(this.name, cx)
    }
}

impl<F: Future> Guarded<F> {
    pub(crate) fn new(until: Instant, future: F) -> Self {
        Self {
            future,
            timer: None,
            until,
            current: until,
        }
    }

    /// This operation as a future, its deadline current under `name`.
    pub(crate) fn named(self, name: &Arc<str>) -> Named<'_, F> {
        Named {
            guarded: self,
            name,
        }
    }

    /// Makes `at`, not `until`, the deadline current inside (an earlier enclosing one still
    /// stays current).
    pub(crate) fn current_at(mut self, at: Instant) -> Self {
        self.current = at;
        self
    }

    /// Polls the operation with its deadline, named `name`, current, then the timer:
    /// `Ready(Some(output))` when the operation ended, `Ready(None)` once `until` has passed.
    pub(crate) fn poll_named(
        self: Pin<&mut Self>,
        name: &Arc<str>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<F::Output>> {
        use tokio::task::coop;

        let mut this = self.project();
        let until = *this.until;
        let had_budget_before = coop::has_budget_remaining();
        let future = this.future;
        if let Poll::Ready(output) = enter_scope(*this.current, name, || future.poll(cx)) {
            return Poll::Ready(Some(output));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(until)));
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
#[derive(Clone)]
pub struct Deadline {
    at: Instant,
    /// `None` for the default name, so an unnamed deadline touches no reference count.
    name: Option<Arc<str>>,
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
            at,
            name: Some(Arc::clone(name)),
        }
    }

    /// The deadline of the enclosing [`scope`](Self::scope), if the current task is inside one.
    pub fn current() -> Option<Self> {
        let at = CURRENT_AT.get()?;
        let name = CURRENT_NAME.with(Self::shared_name);
        Some(Self { at, name })
    }

    /// The instant of the enclosing scope's deadline; no reference count touched.
    pub(crate) fn current_instant() -> Option<Instant> {
        CURRENT_AT.get()
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
    async fn guard<T, E, Fut: Future>(
        &self,
        operation: Fut,
        convert: impl FnOnce(Fut::Output) -> Result<T, Error<E>>,
    ) -> Result<T, Error<E>> {
        let started = Instant::now();
        // The enclosing deadline is cloned (for its name) only when it is the earlier one.
        let enclosing = Self::current_instant()
            .filter(|&outer| state::enclosing_wins(self.at, outer))
            .and_then(|_| Self::current());
        let effective = enclosing.as_ref().unwrap_or(self);
        let (until, limit) = match state::budget(None, Some(effective.at), started) {
            Budget::Run { until, limit, .. } => (until, limit),
            Budget::Expired => return Err(Error::Rejected(effective.expired())),
        };
        // This deadline is current inside, as with `scope` (an earlier enclosing one stays).
        let guarded = Guarded::new(until, operation).current_at(self.at);
        match guarded.named(self.name_arc()).await {
            Some(output) => convert(output),
            None => {
                let elapsed = started.elapsed();
                tracing::debug!(target: "resilience::timeout", deadline = %effective.name(), ?limit, "deadline exceeded");
                Err(Error::Timeout { elapsed, limit })
            }
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

    /// Runs `f` with this deadline current, unless the current one is at least as early.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        enter_scope(self.at, self.name_arc(), f)
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
        this.deadline.enter(|| future.poll(cx))
    }
}
