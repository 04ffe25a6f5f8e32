//! Isolation of user callbacks: a panicking listener or callback never reaches the caller.
//!
//! Event listeners, `on_state_change` callbacks and `on_error` hooks are user code that runs
//! inside a protected call. If one of them panics, the protected call must still complete with
//! its own outcome, and the pattern must keep working. Each such callback runs inside
//! [`std::panic::catch_unwind`]; the panic is turned into a [`CallbackPanic`] and handed to the
//! process-wide error handler (aioresilience's `set_error_handler`), which by default logs it
//! through `tracing` at target `resilience::hook`.
//!
//! ```
//! resilience::set_error_handler(|panic| eprintln!("listener failed: {panic}"));
//! # resilience::reset_error_handler();
//! ```

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};

use crate::PatternKind;

/// Which kind of user callback panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackKind {
    /// An event listener.
    Listener,
    /// A state-change callback (`on_state_change`).
    StateChange,
    /// An error hook (`on_error`) or a classification predicate.
    ErrorHook,
}

/// A panic caught in a user callback.
#[derive(Debug, Clone)]
pub struct CallbackPanic {
    /// What kind of callback it was.
    pub kind: CallbackKind,
    /// The pattern whose callback it was.
    pub pattern: PatternKind,
    /// The instance name.
    pub name: Arc<str>,
    /// The panic message, when it was a string.
    pub message: String,
}

impl fmt::Display for CallbackPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            CallbackKind::Listener => "event listener",
            CallbackKind::StateChange => "state-change callback",
            CallbackKind::ErrorHook => "error hook",
        };
        write!(
            f,
            "{kind} of {} {} panicked: {}",
            self.pattern, self.name, self.message
        )
    }
}

type Handler = Arc<dyn Fn(&CallbackPanic) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);

/// Installs the process-wide handler for panics caught in user callbacks.
///
/// It replaces the default, which logs an `ERROR` event at target `resilience::hook`.
/// A panic inside the handler itself is caught and dropped.
pub fn set_error_handler<F>(handler: F)
where
    F: Fn(&CallbackPanic) + Send + Sync + 'static,
{
    *HANDLER.write().unwrap_or_else(|poison| poison.into_inner()) = Some(Arc::new(handler));
}

/// Restores the default handler (a `tracing` error event).
pub fn reset_error_handler() {
    *HANDLER.write().unwrap_or_else(|poison| poison.into_inner()) = None;
}

/// Runs `callback`, catching a panic and reporting it to the error handler.
///
/// Returns `None` when the callback panicked.
pub(crate) fn isolate<R>(
    kind: CallbackKind,
    pattern: PatternKind,
    name: &str,
    callback: impl FnOnce() -> R,
) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(callback)) {
        Ok(value) => Some(value),
        Err(payload) => {
            report(&CallbackPanic {
                kind,
                pattern,
                name: Arc::from(name),
                message: panic_message(payload.as_ref()),
            });
            None
        }
    }
}

fn report(panic: &CallbackPanic) {
    // Clone the handler out so it never runs under the lock: a handler that installs another
    // handler must not deadlock.
    let handler = HANDLER
        .read()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    match handler {
        Some(handler) => {
            let _ = catch_unwind(AssertUnwindSafe(|| handler(panic)));
        }
        None => tracing::error!(target: "resilience::hook", kind = ?panic.kind, "{panic}"),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
