//! Stages: one shape for every pattern that admits or refuses a call and learns its outcome.
//!
//! A [`Stage`] answers one question, "may this call go in?", with an [`Admit`] future that
//! resolves to a permit or a [`Rejection`](crate::Rejection) saying why not and when to come
//! back. The permit ([`StagePermit`]) travels with the call and learns how it went through
//! [`record`](StagePermit::record); dropping it releases what it holds, whether the call
//! finished, failed, panicked or was cancelled, so nothing can leak.
//!
//! Every admitting pattern is a stage: the [`CircuitBreaker`](crate::CircuitBreaker), the
//! [`DirectRateLimiter`](crate::rate_limit::DirectRateLimiter), the
//! [`Bulkhead`](crate::Bulkhead), the [`LoadShedder`](crate::LoadShedder) (and a shedder at a
//! fixed priority), [`Backpressure`](crate::Backpressure) and the
//! [`AdaptiveLimiter`](crate::AdaptiveLimiter); the Redis-backed limiter and breaker in
//! `resilience-redis` are stages too. `()` admits everything at no cost, and a pair `(A, B)`
//! admits through `A`, then `B`.
//!
//! Because the shape is one, what surrounds a call is written once for all of them:
//!
//! * [`call`], [`call_with`] and [`execute`] run an operation through any stage (the handles'
//!   own `call` methods are these);
//! * [`StageLayer`] makes any stage tower middleware (the handles' layer names, such as
//!   [`BulkheadLayer`](crate::bulkhead::BulkheadLayer), are this layer);
//! * [`Pipeline`](crate::Pipeline) takes any stage in its rate-limiter and bulkhead slots;
//! * `resilience-http` turns any stage into HTTP behaviour (429/503 with `Retry-After`, the
//!   permit held until the response body ends).
//!
//! Retry, timeout and fallback do not admit: they wrap the call (re-run it, race it against a
//! timer, replace its error), and compose around stages as layers or in a pipeline.
//!
//! # Writing a stage
//!
//! A stage is a cheap handle (clones share state) that decides in [`admit`](Stage::admit).
//! A stage that decides at once returns [`Admit::ready`]; one that must wait returns
//! [`Admit::waiting`]. Here, a kill switch that refuses every call while it is on:
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//! use resilience::stage::{self, Admit, Stage};
//! use resilience::{Error, PatternKind, Rejection, RejectionReason};
//!
//! #[derive(Clone, Default)]
//! struct KillSwitch(Arc<AtomicBool>);
//!
//! impl Stage for KillSwitch {
//!     type Permit = ();
//!
//!     fn admit(&self) -> Admit<()> {
//!         if self.0.load(Ordering::Relaxed) {
//!             let reason = RejectionReason::Custom("switched off");
//!             Admit::rejected(Rejection::new(self.pattern(), "kill-switch".into(), reason, None))
//!         } else {
//!             Admit::admitted(())
//!         }
//!     }
//!
//!     fn name(&self) -> &str {
//!         "kill-switch"
//!     }
//!
//!     fn pattern(&self) -> PatternKind {
//!         PatternKind::Custom("kill_switch")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let switch = KillSwitch::default();
//! let answer = stage::call(&switch, || async { Ok::<_, std::io::Error>(42) }).await;
//! assert_eq!(answer.unwrap(), 42);
//! switch.0.store(true, Ordering::Relaxed);
//! let refused = stage::call(&switch, || async { Ok::<_, std::io::Error>(42) }).await;
//! assert!(matches!(refused, Err(Error::Rejected(_))));
//! # }
//! ```

mod admit;
#[cfg(feature = "tower")]
mod layer;
mod lease;
mod run;

use std::time::Duration;

pub use admit::Admit;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{ResponseFuture, StageLayer, StageService};
pub use lease::{LeaseToken, Leased};
pub use run::{call, call_with, execute};

use crate::classify::Outcome;
use crate::PatternKind;

/// A step that admits or refuses a call before it runs and learns its outcome after.
///
/// See the [module docs](self) for the model and an example.
pub trait Stage: Send + Sync {
    /// What an admitted call holds while it runs.
    type Permit: StagePermit + 'static;

    /// Admits or refuses one call, now or after a wait the stage's policy allows (a queue, a
    /// bounded wait for the rate). Dropping the returned future gives up the place in any
    /// queue.
    fn admit(&self) -> Admit<Self::Permit>;

    /// The instance's name, for rejections, events and reports of a panicking classifier.
    fn name(&self) -> &str;

    /// Which pattern this stage is.
    fn pattern(&self) -> PatternKind;

    /// The longest an admitted call may run, if the stage limits it (a circuit breaker's
    /// `timeout`). Whoever runs the call enforces it: the call is cut off, counts as a
    /// failure, and ends in [`Error::Timeout`](crate::Error::Timeout).
    fn call_limit(&self) -> Option<Duration> {
        None
    }

    /// Admits a call that ends while this borrow of the stage lasts, as [`call`],
    /// [`call_with`] and [`execute`] run it.
    ///
    /// The default answers as [`admit`](Self::admit) does. A stage whose permit owns a handle
    /// to it (a reference count taken and given back on every call) can answer a call
    /// admitted at once with a [`LeaseToken`] instead: the call then borrows the stage, and
    /// its end (outcome, or [`Outcome::Ignored`] when cancelled) comes back to
    /// [`end_lease`](Self::end_lease), exactly once.
    #[inline]
    fn lease(&self) -> Leased<Self::Permit> {
        Leased::Admit(self.admit())
    }

    /// Ends a call this stage admitted by [`lease`](Self::lease) with `token`: the
    /// counterpart of dropping or recording a permit. Only called with tokens this stage
    /// made; the default does nothing, as a stage that never leases gets none.
    #[inline]
    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        let _ = (token, outcome);
    }
}

/// Held by an admitted call; dropping it releases what the stage gave.
pub trait StagePermit: Send {
    /// Whether [`record`](Self::record) uses the outcome, so callers can skip judging the
    /// result (which may run user predicates) for permits that would ignore it.
    fn wants_outcome(&self) -> bool {
        false
    }

    /// Reports how the call went, then releases. Dropping without calling this releases too,
    /// with the outcome unknown (as for a cancelled call).
    fn record(self, outcome: Outcome)
    where
        Self: Sized,
    {
        let _ = outcome;
    }
}

impl<S: Stage + ?Sized> Stage for &S {
    type Permit = S::Permit;

    fn admit(&self) -> Admit<S::Permit> {
        (**self).admit()
    }

    fn name(&self) -> &str {
        (**self).name()
    }

    fn pattern(&self) -> PatternKind {
        (**self).pattern()
    }

    fn call_limit(&self) -> Option<Duration> {
        (**self).call_limit()
    }

    #[inline]
    fn lease(&self) -> Leased<S::Permit> {
        (**self).lease()
    }

    #[inline]
    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        (**self).end_lease(token, outcome);
    }
}

/// Admits everything, at no cost: an empty slot of a pipeline.
impl Stage for () {
    type Permit = ();

    fn admit(&self) -> Admit<()> {
        Admit::admitted(())
    }

    fn name(&self) -> &str {
        ""
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Custom("none")
    }
}

impl StagePermit for () {}

/// Admits through `A`, then `B`, so several stages can share one slot; a refusal by `B`
/// releases `A`'s permit. A call limit is the shorter of the two.
impl<A, B> Stage for (A, B)
where
    A: Stage,
    B: Stage + Clone + 'static,
{
    type Permit = (A::Permit, B::Permit);

    fn admit(&self) -> Admit<Self::Permit> {
        match self.0.admit().now() {
            Ok(Err(rejection)) => Admit::rejected(rejection),
            Ok(Ok(first)) => match self.1.admit().now() {
                Ok(second) => Admit::ready(second.map(|second| (first, second))),
                Err(waiting) => Admit::waiting(async move { Ok((first, waiting.await?)) }),
            },
            Err(waiting) => {
                let second = self.1.clone();
                Admit::waiting(async move {
                    let first = waiting.await?;
                    Ok((first, second.admit().await?))
                })
            }
        }
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn pattern(&self) -> PatternKind {
        self.0.pattern()
    }

    fn call_limit(&self) -> Option<Duration> {
        match (self.0.call_limit(), self.1.call_limit()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<A: StagePermit, B: StagePermit> StagePermit for (A, B) {
    fn wants_outcome(&self) -> bool {
        self.0.wants_outcome() || self.1.wants_outcome()
    }

    fn record(self, outcome: Outcome) {
        self.1.record(outcome);
        self.0.record(outcome);
    }
}

/// Writes a handle's entry points, each a thin door to [`call`], [`call_with`] or
/// [`execute`] with the handle as the stage, so every handle runs calls the same way and
/// keeps only its own docs. `execute` judges with every `Err` a failure; `execute(classifier)`
/// takes the judge as its first argument.
macro_rules! entry_points {
    () => {};
    ($(#[$doc:meta])* call; $($rest:tt)*) => {
        $crate::stage::entry_points!(@door $(#[$doc])* call [] () Result<T, E> => call());
        $crate::stage::entry_points!($($rest)*);
    };
    ($(#[$doc:meta])* call_with; $($rest:tt)*) => {
        $crate::stage::entry_points!(@door $(#[$doc])* call_with
            [C: $crate::classify::Classify<T, E>] (classifier: &'a C)
            Result<T, E> => call_with(classifier));
        $crate::stage::entry_points!($($rest)*);
    };
    ($(#[$doc:meta])* execute(classifier); $($rest:tt)*) => {
        $crate::stage::entry_points!(@door $(#[$doc])* execute
            [C: $crate::classify::Classify<T, E>] (classifier: &'a C)
            Result<T, $crate::Error<E>> => execute(classifier));
        $crate::stage::entry_points!($($rest)*);
    };
    ($(#[$doc:meta])* execute; $($rest:tt)*) => {
        $crate::stage::entry_points!(@door $(#[$doc])* execute [] ()
            Result<T, $crate::Error<E>> => execute(&$crate::classify::EveryError));
        $crate::stage::entry_points!($($rest)*);
    };
    // One door: the handle as the stage, the operation's output type, what is passed on.
    (@door $(#[$doc:meta])* $name:ident [$($generic:ident: $bound:path)?]
        ($($arg:ident: $ty:ty)?) $output:ty => $target:ident($($pass:expr)?)) => {
        $(#[$doc])*
        pub fn $name<'a, $($generic,)? T, E, F, Fut>(
            &'a self,
            $($arg: $ty,)?
            operation: F,
        ) -> impl ::std::future::Future<Output = Result<T, $crate::Error<E>>>
               + use<'a, $($generic,)? T, E, F, Fut>
        where
            $($generic: $bound,)?
            F: FnOnce() -> Fut,
            Fut: ::std::future::Future<Output = $output>,
        {
            $crate::stage::$target(self, $($pass,)? operation)
        }
    };
}
pub(crate) use entry_points;

/// Writes the constructors every slot-limiting handle shares: `builder`, `from_config`, the
/// crate's `new_validated` over `Inner::new(name, config)`, and `name`. `$what` names the
/// pattern in the docs ("a bulkhead").
macro_rules! slot_handle_constructors {
    ($builder:ty, $config:ty, $what:literal) => {
        #[doc = concat!("Starts building ", $what, " named `name`.")]
        pub fn builder(name: impl Into<String>) -> $builder {
            <$builder>::new(name.into())
        }

        #[doc = concat!("Makes ", $what, " from a plain config, validated the same way as the builder's.")]
        pub fn from_config(
            name: impl Into<String>,
            config: $config,
        ) -> Result<Self, $crate::ConfigError> {
            Self::builder(name).config(config).build()
        }

        pub(super) fn new_validated(name: &str, config: $config) -> Self {
            Self {
                inner: std::sync::Arc::new(Inner::new(name, config)),
            }
        }

        #[doc = concat!("The name of ", $what, ".")]
        pub fn name(&self) -> &str {
            self.inner.name()
        }
    };
}
pub(crate) use slot_handle_constructors;

/// Writes a middleware's `poll_ready`: ready when the inner service is, its errors as
/// [`Error::Inner`](crate::Error::Inner).
#[cfg(feature = "tower")]
macro_rules! forward_ready {
    () => {
        fn poll_ready(
            &mut self,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx).map_err($crate::Error::Inner)
        }
    };
}
#[cfg(feature = "tower")]
pub(crate) use forward_ready;

/// Writes tower's three accessors of a middleware service, `get_ref`, `get_mut` and
/// `into_inner`, for a service keeping the wrapped service in a field.
///
/// Used inside an `impl` block: `resilience::service_accessors!(inner: S);` where `inner` is
/// the field and `S` its type. Every tower service of this workspace has them, as tower's own
/// middleware does; the macro keeps them one definition. After a `;`, the pattern the service
/// applies gets a getter too, named as its field and documented by the doc comment given:
/// `service_accessors!(inner: S; /** The retry policy. */ retry: Retry);`.
#[macro_export]
macro_rules! service_accessors {
    ($field:ident: $inner:ty; $(#[$doc:meta])* $pattern:ident: $applied:ty) => {
        $crate::service_accessors!($field: $inner);

        $(#[$doc])*
        pub fn $pattern(&self) -> &$applied {
            &self.$pattern
        }
    };
    ($field:ident: $inner:ty) => {
        /// The inner service.
        pub fn get_ref(&self) -> &$inner {
            &self.$field
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.$field
        }

        /// Unwraps the inner service (anything held for the next call is released).
        pub fn into_inner(self) -> $inner {
            self.$field
        }
    };
}
