//! One fallback of a chain: a value, a function or an async function of the error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::Error;

pub(super) type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;
type ValueFn<T> = Box<dyn Fn() -> T + Send + Sync>;
type SyncFn<T, E> = Box<dyn Fn(&Error<E>) -> Result<T, E> + Send + Sync>;
type AsyncFn<T, E> = Box<dyn Fn(&Error<E>) -> BoxFuture<T, E> + Send + Sync>;

/// One fallback. A value is a distinct case from a function, so a value that happens to be
/// callable is returned, never called.
pub(super) enum Step<T, E> {
    /// A static value, cloned out on each use.
    Value(ValueFn<T>),
    /// A function of the primary error.
    Sync(SyncFn<T, E>),
    /// An async function of the primary error.
    Async(AsyncFn<T, E>),
}

/// A step started: done already, or a future to await.
pub(super) enum Started<T, E> {
    Ready(Result<T, E>),
    Pending(BoxFuture<T, E>),
}

impl<T, E> Step<T, E> {
    pub(super) fn value(value: T) -> Self
    where
        T: Clone + Send + Sync + 'static,
    {
        Self::Value(Box::new(move || value.clone()))
    }

    /// Starts this step for `primary`. Not async itself: the borrow of `primary` ends here,
    /// so the caller's future holds no reference to the error across an await (and needs
    /// `E: Send`, not `E: Sync`).
    pub(super) fn start(&self, primary: &Error<E>) -> Started<T, E> {
        match self {
            Self::Value(value) => Started::Ready(Ok(value())),
            Self::Sync(function) => Started::Ready(function(primary)),
            Self::Async(function) => Started::Pending(function(primary)),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Value(_) => "value",
            Self::Sync(_) => "fn",
            Self::Async(_) => "async fn",
        }
    }
}

impl<T, E> fmt::Debug for Step<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}
