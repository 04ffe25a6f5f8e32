//! [`EventKind`]: the open set of event kinds, the names listeners select them by, and the
//! bits a bus keeps them in.

use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

use crate::PatternKind;

/// Bits `0..FIRST_SHARED_BIT` belong to the kinds of this crate's own patterns, one each, so
/// that a listener for one of them never makes another one's emission build its event.
/// Kinds declared by other crates share the bits above it (see [`EventKind::new`]).
pub(crate) const FIRST_SHARED_BIT: u8 = 48;

/// The kind of an event, by which listeners select what they receive.
///
/// A kind is a name (`"state_change"`, `"circuit_opened"`, ..., the names other resilience
/// libraries use too), the [`PatternKind`] that emits it, and the bit a bus keeps it in. Each
/// pattern declares its kinds as constants next to its event type, for example
/// [`CircuitBreakerEvent::STATE_CHANGE`](crate::circuit_breaker::CircuitBreakerEvent::STATE_CHANGE)
/// or [`RetryEvent::RETRY_ATTEMPT`](crate::retry::RetryEvent::RETRY_ATTEMPT), and lists them in
/// a `KINDS` constant. A pattern written in another crate declares its own with
/// [`EventKind::new`] and registers them with [`register_kinds`] so that their names parse too.
///
/// Two kinds are equal when their name, pattern and bit are; names are unique among the
/// kinds [registered](register_kinds) for string lookup. Kinds order by bit, so the built-in
/// ones sort as they are declared. Kind constants work as `match` patterns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKind {
    // Field order is the derived order.
    bit: u8,
    name: &'static str,
    pattern: PatternKind,
}

impl EventKind {
    /// A kind for a pattern defined outside this crate.
    ///
    /// `name` should be `snake_case` and unique in the process (prefixing it with the pattern's
    /// name is a good habit: `"hedge_fired"`). Its bit is derived from the name in the range
    /// shared by every kind from another crate, so that a bus still decides with one atomic
    /// load whether anyone may want it. Two such kinds may share a bit: then a listener for one
    /// makes emitting the other build its event and find no listener, which costs time but
    /// never delivers an event to the wrong listener.
    ///
    /// ```
    /// use resilience::events::EventKind;
    /// use resilience::PatternKind;
    ///
    /// const HEDGE_FIRED: EventKind = EventKind::new(PatternKind::Custom("hedge"), "hedge_fired");
    /// assert_eq!(HEDGE_FIRED.as_str(), "hedge_fired");
    /// assert_eq!(HEDGE_FIRED.pattern(), PatternKind::Custom("hedge"));
    /// ```
    pub const fn new(pattern: PatternKind, name: &'static str) -> Self {
        let shared = 64 - FIRST_SHARED_BIT as u64;
        // FNV-1a: a const-evaluable hash, so the kind stays a `const`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        Self {
            name,
            pattern,
            bit: FIRST_SHARED_BIT + (hash % shared) as u8,
        }
    }

    /// A kind of one of this crate's patterns, with a bit of its own (below
    /// [`FIRST_SHARED_BIT`]; a unit test checks that no two built-in kinds share one).
    pub(crate) const fn builtin(pattern: PatternKind, name: &'static str, bit: u8) -> Self {
        assert!(
            bit < FIRST_SHARED_BIT,
            "built-in kinds use the private bits"
        );
        Self { name, pattern, bit }
    }

    /// The kind's string name, such as `"state_change"`.
    pub const fn as_str(self) -> &'static str {
        self.name
    }

    /// The pattern that emits events of this kind.
    pub const fn pattern(self) -> PatternKind {
        self.pattern
    }

    /// This kind's bit in a bus's set of wanted kinds.
    pub(crate) const fn mask(self) -> u64 {
        1 << self.bit
    }
}

impl fmt::Debug for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventKind({}.{})", self.pattern, self.name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Kinds registered at run time by patterns outside this crate. The built-in kinds are not
/// stored here: they are a constant list, so looking them up needs no lock and no setup.
static REGISTERED: RwLock<Vec<EventKind>> = RwLock::new(Vec::new());

/// Makes `kinds` known by name, so that [`EventFilter::from_str`] and
/// [`EventBus::on_named`](super::EventBus::on_named) accept them.
///
/// Patterns outside this crate call it once (registering the same kinds again is harmless),
/// typically when their first instance is built. Typed listeners and [`EventFilter::All`] work
/// without it; only string names need it. This crate's own kinds are always known.
///
/// Fails, registering none of `kinds`, if one of their names already names a different kind.
pub fn register_kinds(kinds: &[EventKind]) -> Result<(), EventKindConflict> {
    let mut registered = REGISTERED
        .write()
        .unwrap_or_else(|poison| poison.into_inner());
    for (at, kind) in kinds.iter().enumerate() {
        let earlier = kinds[..at].iter();
        let known = crate::BUILTIN_EVENT_KINDS
            .iter()
            .flat_map(|kinds| kinds.iter());
        if let Some(&existing) = known
            .chain(registered.iter())
            .chain(earlier)
            .find(|known| known.name.eq_ignore_ascii_case(kind.name) && *known != kind)
        {
            return Err(EventKindConflict {
                existing,
                rejected: *kind,
            });
        }
    }
    for kind in kinds {
        if !registered.contains(kind) && lookup_builtin(kind.name) != Some(*kind) {
            registered.push(*kind);
        }
    }
    Ok(())
}

/// Every kind known by name: this crate's, then those [registered](register_kinds) by other
/// crates, in registration order.
pub fn known_kinds() -> Vec<EventKind> {
    let registered = REGISTERED
        .read()
        .unwrap_or_else(|poison| poison.into_inner());
    crate::BUILTIN_EVENT_KINDS
        .iter()
        .flat_map(|kinds| kinds.iter().copied())
        .chain(registered.iter().copied())
        .collect()
}

fn lookup_builtin(name: &str) -> Option<EventKind> {
    crate::BUILTIN_EVENT_KINDS
        .iter()
        .flat_map(|kinds| kinds.iter())
        .find(|kind| kind.name.eq_ignore_ascii_case(name))
        .copied()
}

fn lookup(name: &str) -> Option<EventKind> {
    lookup_builtin(name).or_else(|| {
        REGISTERED
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .find(|kind| kind.name.eq_ignore_ascii_case(name))
            .copied()
    })
}

/// [`register_kinds`] was given a kind whose name already names another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKindConflict {
    /// The kind known under that name.
    pub existing: EventKind,
    /// The kind that was not registered.
    pub rejected: EventKind,
}

impl fmt::Display for EventKindConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event name {:?} already names a {} event",
            self.existing.name, self.existing.pattern
        )
    }
}

impl std::error::Error for EventKindConflict {}

/// Which events a listener receives: one kind, or all of them (`"*"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFilter {
    /// Every event.
    All,
    /// Only events of this kind.
    Kind(EventKind),
}

impl EventFilter {
    /// Whether an event of `kind` passes this filter.
    pub fn matches(self, kind: EventKind) -> bool {
        match self {
            Self::All => true,
            Self::Kind(wanted) => wanted == kind,
        }
    }

    /// The bits of the kinds this filter lets through.
    pub(crate) fn mask(self) -> u64 {
        match self {
            Self::All => u64::MAX,
            Self::Kind(kind) => kind.mask(),
        }
    }
}

impl From<EventKind> for EventFilter {
    fn from(kind: EventKind) -> Self {
        Self::Kind(kind)
    }
}

/// A string that names no known event kind (and is not `"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEventName(pub String);

impl fmt::Display for UnknownEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown event name {:?}", self.0)
    }
}

impl std::error::Error for UnknownEventName {}

impl FromStr for EventFilter {
    type Err = UnknownEventName;

    /// Parses `"*"` or the name of a known kind such as `"state_change"`, ignoring ASCII case.
    /// Known kinds are this crate's and those [registered](register_kinds) by other crates.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        if name == "*" {
            return Ok(Self::All);
        }
        lookup(name)
            .map(Self::Kind)
            .ok_or_else(|| UnknownEventName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::CircuitBreakerEvent;

    #[test]
    fn filters_parse_names_and_wildcard() {
        assert_eq!("*".parse(), Ok(EventFilter::All));
        assert_eq!(
            "state_change".parse(),
            Ok(EventFilter::Kind(CircuitBreakerEvent::STATE_CHANGE))
        );
        assert_eq!(
            " Circuit_Opened ".parse(),
            Ok(EventFilter::Kind(CircuitBreakerEvent::CIRCUIT_OPENED))
        );
        assert!("circuit_openned".parse::<EventFilter>().is_err());
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in known_kinds() {
            assert_eq!(kind.as_str().parse(), Ok(EventFilter::Kind(kind)));
        }
    }

    #[test]
    fn builtin_kinds_have_distinct_private_bits_and_names() {
        let builtin: Vec<EventKind> = crate::BUILTIN_EVENT_KINDS
            .iter()
            .flat_map(|kinds| kinds.iter().copied())
            .collect();
        let mut bits = 0_u64;
        for kind in &builtin {
            assert!(kind.bit < FIRST_SHARED_BIT, "{kind:?} uses a shared bit");
            assert_eq!(bits & kind.mask(), 0, "{kind:?} reuses a bit");
            bits |= kind.mask();
            let same_name = builtin.iter().filter(|k| k.name == kind.name).count();
            assert_eq!(same_name, 1, "{kind:?} reuses a name");
        }
    }

    #[test]
    fn external_kinds_use_shared_bits_and_conflicts_are_refused() {
        const MINE: EventKind = EventKind::new(PatternKind::Custom("unit"), "unit_test_kind");
        const { assert!(MINE.bit >= FIRST_SHARED_BIT && MINE.bit < 64) };
        assert_eq!(register_kinds(&[MINE]), Ok(()));
        assert_eq!(register_kinds(&[MINE]), Ok(()), "idempotent");
        assert_eq!(known_kinds().iter().filter(|k| **k == MINE).count(), 1);
        assert_eq!("unit_test_kind".parse(), Ok(EventFilter::Kind(MINE)));

        let clash = EventKind::new(PatternKind::Custom("other"), "state_change");
        let error = register_kinds(&[clash]).unwrap_err();
        assert_eq!(error.existing, CircuitBreakerEvent::STATE_CHANGE);
        assert_eq!(error.rejected, clash);
    }
}
