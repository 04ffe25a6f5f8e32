//! [`BackendError`]: what went wrong talking to Redis, as one opaque type.

use std::fmt;
use std::time::Duration;

/// A failure of the Redis backend: unreachable, too slow, or an error reply.
///
/// Opaque on purpose: callers of a limiter or breaker never see it (the
/// [`FailurePolicy`](crate::FailurePolicy) decides what they get), and code that does (the
/// [`RedisBackend`](crate::RedisBackend) constructors, [`RedisBackend::ping`](crate::RedisBackend::ping))
/// asks the predicates rather than matching on the `redis` crate's error kinds, which are
/// not part of this crate's API. `Display` wording is not a contract.
#[derive(Debug, Clone)]
pub struct BackendError {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The call did not finish within the backend's call timeout.
    Timeout,
    /// The connection could not be made, or broke.
    Connection,
    /// Redis answered with an error (a script error, a wrong type, an invalid URL).
    Other,
}

impl BackendError {
    pub(crate) fn timeout(limit: Duration) -> Self {
        Self {
            kind: Kind::Timeout,
            message: format!("redis call timed out after {limit:?}"),
        }
    }

    pub(crate) fn from_redis(error: &redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        // A server that became a replica, or a cluster in the middle of a failover, cannot
        // take writes until the failover is over: an outage, not a bad reply.
        let failing_over = error.is_cluster_error()
            || matches!(
                error.kind(),
                ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        let kind = if error.is_timeout() {
            Kind::Timeout
        } else if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || failing_over
        {
            Kind::Connection
        } else {
            Kind::Other
        };
        Self {
            kind,
            message: error.to_string(),
        }
    }

    pub(crate) fn disconnected() -> Self {
        Self {
            kind: Kind::Connection,
            message: "the connection to redis was lost".to_owned(),
        }
    }

    pub(crate) fn unexpected(what: impl Into<String>) -> Self {
        Self {
            kind: Kind::Other,
            message: what.into(),
        }
    }

    /// Whether the call ran out of time (the backend's call timeout, or the socket's).
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }

    /// Whether Redis could not be reached or the connection broke.
    pub fn is_connection(&self) -> bool {
        self.kind == Kind::Connection
    }

    /// Whether this error says the backend is down (a timeout or a connection failure), as
    /// opposed to one bad reply from a healthy server.
    pub(crate) fn is_outage(&self) -> bool {
        matches!(self.kind, Kind::Timeout | Kind::Connection)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}
