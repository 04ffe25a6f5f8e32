//! The pure core of the load shedder: `(counts, request) -> (decision, new counts)`.
//!
//! No clock, no atomics, no events. The handle packs [`Counts`] into one atomic word and runs
//! these functions in a compare-exchange loop (the uncontended path) or under its queue lock.
//!
//! The rules, in order (aioresilience's order: its own checks first, then CPU, then memory):
//! 1. **Priority threshold**: a non-critical request is shed while utilisation
//!    (`active / max_requests`) is strictly above its priority's threshold.
//! 2. **System load** (feature `system`): low and normal requests are shed while CPU or memory
//!    use is strictly above its threshold; high ones only while either is above 90 % (the
//!    critical system level); critical ones never.
//! 3. **Hard cap**: below `max_requests`, with nobody queued, the request is admitted.
//!    Otherwise it joins the FIFO queue if the queue has room, and is shed if not. Nobody
//!    overtakes the queue: while anyone waits, newcomers queue behind them.
//! 4. **Release**: the slot is freed; if anybody waits, the oldest waiters are then admitted
//!    while there is room. The freed slot goes to them, not to a newcomer: newcomers queue
//!    behind them.

use std::fmt;

use super::{LoadLevel, LoadShedderConfig, Priority};

/// Requests running and waiting, packed by the handle into one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) active: u32,
    pub(crate) queued: u32,
}

/// One running request in a packed word: subtracting it frees a slot.
pub(crate) const ONE_ACTIVE: u64 = 1 << 32;

impl Counts {
    pub(crate) fn pack(self) -> u64 {
        u64::from(self.active) << 32 | u64::from(self.queued)
    }

    pub(crate) fn unpack(word: u64) -> Self {
        Self {
            active: (word >> 32) as u32,
            queued: word as u32,
        }
    }
}

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ShedReason {
    /// Utilisation was above the request's priority threshold.
    Utilization,
    /// Every slot was taken and there is no queue (`max_queue_depth` 0).
    MaxRequests,
    /// Every slot was taken and the queue was full.
    QueueFull,
    /// The request waited in the queue for `wait_timeout` without getting a slot.
    WaitTimeout,
    /// CPU use was above its threshold (feature `system`).
    Cpu,
    /// Memory use was above its threshold (feature `system`).
    Memory,
}

impl ShedReason {
    /// The reason in `snake_case`, as events carry it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Utilization => "utilization",
            Self::MaxRequests => "max_requests",
            Self::QueueFull => "queue_full",
            Self::WaitTimeout => "wait_timeout",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
        }
    }

    /// The reason a [`Rejection`](crate::Rejection) carries.
    pub const fn rejection_reason(self) -> crate::RejectionReason {
        match self {
            Self::QueueFull => crate::RejectionReason::QueueFull,
            Self::WaitTimeout => crate::RejectionReason::WaitTimeout,
            _ => crate::RejectionReason::LoadShed,
        }
    }
}

impl fmt::Display for ShedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The latest system sample with its thresholds, as ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SystemLoad {
    pub(crate) cpu: f64,
    pub(crate) memory: f64,
    pub(crate) cpu_threshold: f64,
    pub(crate) memory_threshold: f64,
}

/// Above this CPU or memory ratio the system load level is critical, which sheds even high
/// priority requests (aioresilience's rule).
pub(crate) const SYSTEM_CRITICAL: f64 = 0.90;

/// The answer to "may this request run?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Admit,
    Queue,
    Shed(ShedReason),
}

/// The limits a decision reads: the config's numbers, copied out so the handle can keep them
/// in atomics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_requests: u32,
    pub(crate) max_queue_depth: u32,
    /// For low, normal and high priority: the most requests in flight at which utilisation is
    /// not above the priority's threshold (see [`most_within`]).
    pub(crate) most_within: [u32; 3],
}

impl Limits {
    pub(crate) fn of(config: &LoadShedderConfig) -> Self {
        let max_requests = config.max_requests;
        Self {
            max_requests,
            max_queue_depth: config.max_queue_depth,
            most_within: [
                config.low_threshold,
                config.normal_threshold,
                config.high_threshold,
            ]
            .map(|threshold| most_within(threshold, max_requests)),
        }
    }

    fn most_within(&self, priority: Priority) -> Option<u32> {
        match priority {
            Priority::Low => Some(self.most_within[0]),
            Priority::Normal => Some(self.most_within[1]),
            Priority::High => Some(self.most_within[2]),
            Priority::Critical => None,
        }
    }
}

/// The most requests in flight at which [`utilization`] is not above `threshold`: a request
/// is shed by its threshold exactly when more than this many are in flight.
///
/// Worked out once per config, so a decision compares two integers where it would otherwise
/// divide: the shorter the work between reading the counts and swapping in new ones, the
/// less often another core changes them in between and the swap has to be retried.
pub(crate) fn most_within(threshold: f64, max_requests: u32) -> u32 {
    debug_assert!(threshold >= 0.0, "validated as a ratio");
    if utilization(u32::MAX, max_requests) <= threshold {
        return u32::MAX;
    }
    // `threshold × max_requests` rounded down is the answer up to the rounding of the
    // product; the rule grows with `active`, so step to where it turns.
    let mut most = (threshold * f64::from(max_requests)) as u32;
    while most > 0 && utilization(most, max_requests) > threshold {
        most -= 1;
    }
    while utilization(most + 1, max_requests) <= threshold {
        most += 1;
    }
    most
}

/// Utilisation as a ratio in `0..=1` (active may exceed the cap after the cap was lowered).
pub(crate) fn utilization(active: u32, max_requests: u32) -> f64 {
    (f64::from(active) / f64::from(max_requests)).min(1.0)
}

/// Decides a request of `priority` and returns the counts after the decision.
pub(crate) fn decide(
    counts: Counts,
    priority: Priority,
    config: &Limits,
    system: Option<SystemLoad>,
) -> (Decision, Counts) {
    if let Some(most) = config.most_within(priority) {
        if counts.active > most {
            return (Decision::Shed(ShedReason::Utilization), counts);
        }
    }
    if let Some(reason) = system.and_then(|load| system_shed(load, priority)) {
        return (Decision::Shed(reason), counts);
    }
    if counts.queued == 0 && counts.active < config.max_requests {
        let active = counts.active + 1;
        return (Decision::Admit, Counts { active, ..counts });
    }
    if counts.queued < config.max_queue_depth {
        let queued = counts.queued + 1;
        return (Decision::Queue, Counts { queued, ..counts });
    }
    let reason = if config.max_queue_depth == 0 {
        ShedReason::MaxRequests
    } else {
        ShedReason::QueueFull
    };
    (Decision::Shed(reason), counts)
}

fn system_shed(load: SystemLoad, priority: Priority) -> Option<ShedReason> {
    let (cpu_limit, memory_limit) = match priority {
        Priority::Critical => return None,
        Priority::High => (SYSTEM_CRITICAL, SYSTEM_CRITICAL),
        Priority::Normal | Priority::Low => (load.cpu_threshold, load.memory_threshold),
    };
    if load.cpu > cpu_limit {
        Some(ShedReason::Cpu)
    } else if load.memory > memory_limit {
        Some(ShedReason::Memory)
    } else {
        None
    }
}

/// The system load level (aioresilience's): critical above 90 % CPU or memory, high above 75 % CPU
/// or 80 % memory, elevated above 60 % CPU or 70 % memory.
pub(crate) fn system_level(load: SystemLoad) -> LoadLevel {
    let (cpu, memory) = (load.cpu, load.memory);
    if cpu > 0.90 || memory > 0.90 {
        LoadLevel::Critical
    } else if cpu > 0.75 || memory > 0.80 {
        LoadLevel::High
    } else if cpu > 0.60 || memory > 0.70 {
        LoadLevel::Elevated
    } else {
        LoadLevel::Normal
    }
}

/// Releases one slot: it is freed. The handle does this with one subtraction of
/// [`ONE_ACTIVE`] from the packed word (this function is its model in the tests), then, if
/// anybody was queued, admits waiters with [`admit_waiter`] while there is room (above a
/// lowered cap there is none).
#[cfg(test)]
pub(crate) fn free_slot(counts: Counts) -> Counts {
    debug_assert!(counts.active > 0, "a release without a permit");
    Counts {
        active: counts.active.saturating_sub(1),
        ..counts
    }
}

/// A waiter leaves the queue without a slot (timed out or cancelled).
pub(crate) fn leave_queue(counts: Counts) -> Counts {
    debug_assert!(counts.queued > 0, "leaving an empty queue");
    Counts {
        queued: counts.queued.saturating_sub(1),
        ..counts
    }
}

/// Whether the oldest waiter can be admitted now (after a release, or after the cap was
/// raised), and the counts if so.
pub(crate) fn admit_waiter(counts: Counts, max_requests: u32) -> Option<Counts> {
    (counts.queued > 0 && counts.active < max_requests).then(|| Counts {
        active: counts.active + 1,
        queued: counts.queued - 1,
    })
}

#[cfg(test)]
mod tests;
