//! The coalescing events.

use std::fmt;

use crate::events::{EventKind, Payload};
use crate::PatternKind;

/// Something that happened in a [`Coalescer`](super::Coalescer). Keys are not carried (they
/// need not be printable); use `tracing` at target `resilience::coalesce` for per-key detail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoalesceEvent {
    /// A call found its key idle and started the one execution for it.
    LeaderStarted,
    /// A call found its key in flight and waits for the running execution's result.
    FollowerJoined,
    /// The leader of a key was dropped before it finished; a waiting follower took over and
    /// runs its own operation (the flight was never run twice at once).
    LeaderTakenOver,
    /// An execution ended and its result went to `followers` waiting callers too.
    Completed {
        /// How many followers received the result (0: nobody joined).
        followers: usize,
        /// Whether the operation returned `Ok`.
        ok: bool,
    },
    /// The operation panicked; its `followers` got [`LeaderPanicked`](crate::RejectionReason::LeaderPanicked).
    Panicked {
        /// How many followers were waiting.
        followers: usize,
    },
    /// A call for a new key was refused: `max_keys` keys were in flight.
    Rejected,
}

impl CoalesceEvent {
    /// `"coalesce_leader_started"`: a call started the one execution of its key.
    pub const LEADER_STARTED: EventKind =
        EventKind::builtin(PatternKind::Coalesce, "coalesce_leader_started", 26);
    /// `"coalesce_follower_joined"`: a call joined an execution in flight.
    pub const FOLLOWER_JOINED: EventKind =
        EventKind::builtin(PatternKind::Coalesce, "coalesce_follower_joined", 27);
    /// `"coalesce_leader_taken_over"`: a follower took over from a dropped leader.
    pub const LEADER_TAKEN_OVER: EventKind =
        EventKind::builtin(PatternKind::Coalesce, "coalesce_leader_taken_over", 28);
    /// `"coalesce_completed"`: an execution ended (with a result or a panic) and was shared.
    pub const COMPLETED: EventKind =
        EventKind::builtin(PatternKind::Coalesce, "coalesce_completed", 29);
    /// `"coalesce_rejected"`: a new key was refused at `max_keys`.
    pub const REJECTED: EventKind =
        EventKind::builtin(PatternKind::Coalesce, "coalesce_rejected", 30);
    /// Every kind of this event, for name lookup.
    pub const KINDS: &'static [EventKind] = &[
        Self::LEADER_STARTED,
        Self::FOLLOWER_JOINED,
        Self::LEADER_TAKEN_OVER,
        Self::COMPLETED,
        Self::REJECTED,
    ];

    /// This event's kind. A panic is reported under [`COMPLETED`](Self::COMPLETED).
    pub fn kind(&self) -> EventKind {
        match self {
            Self::LeaderStarted => Self::LEADER_STARTED,
            Self::FollowerJoined => Self::FOLLOWER_JOINED,
            Self::LeaderTakenOver => Self::LEADER_TAKEN_OVER,
            Self::Completed { .. } | Self::Panicked { .. } => Self::COMPLETED,
            Self::Rejected => Self::REJECTED,
        }
    }
}

impl Payload for CoalesceEvent {
    fn kind(&self) -> EventKind {
        Self::kind(self)
    }

    fn visit_fields(&self, visit: &mut dyn FnMut(&'static str, &dyn fmt::Display)) {
        match self {
            Self::Completed { followers, ok } => {
                visit("followers", followers);
                visit("outcome", &if *ok { "ok" } else { "error" });
            }
            Self::Panicked { followers } => {
                visit("followers", followers);
                visit("outcome", &"panicked");
            }
            Self::LeaderStarted | Self::FollowerJoined | Self::LeaderTakenOver | Self::Rejected => {
            }
        }
    }
}
