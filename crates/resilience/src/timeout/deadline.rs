//! [`Deadline`]: one absolute point in time shared by several operations, and the task-local
//! "current deadline" that nested calls honour.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::state::{self, Budget};
use crate::{Error, PatternKind, Rejection, RejectionReason};

scoped_tls::scoped_thread_local! {
    /// The deadline of the innermost scope being polled (or entered) on this thread, if any:
    /// what a tokio task-local is, set by reference instead of by a clone per poll.
    static CURRENT: Deadline
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
#[derive(Clone, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    name: Arc<str>,
}

impl Deadline {
    /// A deadline `duration` from now.
    pub fn after(duration: Duration) -> Self {
        Self::at(state::after(Instant::now(), duration))
    }

    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self {
            at: instant,
            name: default_name(),
        }
    }

    /// Names this deadline; the name appears in its rejections. The default is `"deadline"`.
    #[must_use]
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    pub(crate) fn with_shared_name(at: Instant, name: &Arc<str>) -> Self {
        Self {
            at,
            name: Arc::clone(name),
        }
    }

    /// The deadline of the enclosing [`scope`](Self::scope), if the current task is inside one.
    pub fn current() -> Option<Self> {
        CURRENT.is_set().then(|| CURRENT.with(Self::clone))
    }

    /// The instant of the enclosing scope's deadline; no reference count touched.
    pub(crate) fn current_instant() -> Option<Instant> {
        CURRENT.is_set().then(|| CURRENT.with(|current| current.at))
    }

    /// The instant it falls at.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
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
    pub async fn run<T, E, Fut>(&self, operation: Fut) -> Result<T, Error<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.execute(async move { operation.await.map_err(Error::Inner) })
            .await
    }

    /// Like [`run`](Self::run) for an operation that already returns this crate's [`Error`],
    /// such as another pattern's call; its errors pass through unchanged.
    pub async fn execute<T, E, Fut>(&self, operation: Fut) -> Result<T, Error<E>>
    where
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        let started = Instant::now();
        let enclosing = Self::current();
        let effective = match &enclosing {
            Some(outer) if state::enclosing_wins(self.at, outer.at) => outer,
            _ => self,
        };
        let (until, limit) = match state::budget(None, Some(effective.at), started) {
            Budget::Run { until, limit, .. } => (until, limit),
            Budget::Expired => return Err(Error::Rejected(effective.expired())),
        };
        match tokio::time::timeout_at(until, self.scope(operation)).await {
            Ok(result) => result,
            Err(_) => {
                let elapsed = started.elapsed();
                tracing::debug!(target: "resilience::timeout", deadline = %effective.name, ?limit, "deadline exceeded");
                Err(Error::Timeout { elapsed, limit })
            }
        }
    }

    /// The rejection of an operation that would start after this deadline.
    pub(crate) fn expired(&self) -> Rejection {
        tracing::debug!(target: "resilience::timeout", deadline = %self.name, "deadline expired before the operation started");
        Rejection::new(
            PatternKind::Deadline,
            Arc::clone(&self.name),
            RejectionReason::DeadlineExpired,
            None,
        )
    }

    /// Runs `f` with this deadline current, unless the current one is at least as early.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        if Self::current_instant()
            .is_some_and(|enclosing| state::enclosing_wins(self.at, enclosing))
        {
            f()
        } else {
            CURRENT.set(self, f)
        }
    }
}

/// The shared default name, so an unnamed deadline allocates nothing.
fn default_name() -> Arc<str> {
    static NAME: OnceLock<Arc<str>> = OnceLock::new();
    Arc::clone(NAME.get_or_init(|| Arc::from("deadline")))
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("name", &self.name)
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
