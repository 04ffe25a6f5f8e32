//! The cache pattern's events.

use std::fmt;
use std::time::Duration;

use crate::events::{EventKind, Payload, Seconds};
use crate::PatternKind;

/// Something that happened in a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A fresh entry answered the call; the operation did not run.
    CacheHit,
    /// No fresh entry: the operation ran.
    CacheMiss,
    /// The operation failed and an expired entry, still within the stale-if-error window,
    /// answered instead.
    CacheStale {
        /// How long ago the entry stopped being fresh.
        expired_for: Duration,
    },
}

impl CacheEvent {
    /// `"cache_hit"`: a fresh entry answered.
    pub const CACHE_HIT: EventKind = EventKind::builtin(PatternKind::Cache, "cache_hit", 44);
    /// `"cache_miss"`: the operation ran.
    pub const CACHE_MISS: EventKind = EventKind::builtin(PatternKind::Cache, "cache_miss", 45);
    /// `"cache_stale"`: a stale entry answered for a failed operation.
    pub const CACHE_STALE: EventKind = EventKind::builtin(PatternKind::Cache, "cache_stale", 46);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[Self::CACHE_HIT, Self::CACHE_MISS, Self::CACHE_STALE];

    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::CacheHit => Self::CACHE_HIT,
            Self::CacheMiss => Self::CACHE_MISS,
            Self::CacheStale { .. } => Self::CACHE_STALE,
        }
    }
}

impl Payload for CacheEvent {
    fn kind(&self) -> EventKind {
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        if let Self::CacheStale { expired_for } = self {
            visit("expired_for", &Seconds(*expired_for));
        }
    }
}
