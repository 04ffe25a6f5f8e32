//! The pure core of a fallback: the choice of which errors fall back.
//!
//! Two filters, applied in order: the error's [class](ErrorClass) must be selected (plain
//! data, from the config), and then the user's predicate, if any, must hold. The predicate
//! is user code: it only runs for a selected class, and a predicate that panics selects
//! nothing, so the caller gets the true error rather than a substitute chosen by a broken
//! filter (the panic goes to the [error handler](crate::set_error_handler)).

use super::ErrorClass;

/// A set of error classes, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selection(u8);

impl Selection {
    pub(crate) fn of(classes: &[ErrorClass]) -> Self {
        Self(classes.iter().fold(0, |bits, &class| bits | bit(class)))
    }

    pub(crate) fn contains(self, class: ErrorClass) -> bool {
        self.0 & bit(class) != 0
    }
}

fn bit(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Inner => 1,
        ErrorClass::Rejected => 1 << 1,
        ErrorClass::Timeout => 1 << 2,
        ErrorClass::RetryExhausted => 1 << 3,
        ErrorClass::FallbackFailed => 1 << 4,
    }
}

/// What the user's predicate said about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// There is no predicate.
    Absent,
    /// It holds: fall back.
    Holds,
    /// It does not hold.
    Fails,
    /// It panicked.
    Panicked,
}

/// Whether a failed operation's error is answered by the fallback chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try the fallbacks.
    Fallback,
    /// Return the error untouched.
    PassThrough,
}

/// Decides for an error of `class`; `predicate` is consulted only if the class is selected.
pub(crate) fn decide(
    selection: Selection,
    class: ErrorClass,
    predicate: impl FnOnce() -> Verdict,
) -> Decision {
    if !selection.contains(class) {
        return Decision::PassThrough;
    }
    match predicate() {
        Verdict::Absent | Verdict::Holds => Decision::Fallback,
        Verdict::Fails | Verdict::Panicked => Decision::PassThrough,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_own_bit() {
        let all = Selection::of(ErrorClass::ALL);
        for &class in ErrorClass::ALL {
            assert!(all.contains(class));
            let only = Selection::of(&[class]);
            for &other in ErrorClass::ALL {
                assert_eq!(only.contains(other), other == class, "{class} vs {other}");
            }
        }
        assert!(!Selection::of(&[]).contains(ErrorClass::Inner));
    }

    #[test]
    fn without_a_predicate_the_class_decides() {
        let rejections = Selection::of(&[ErrorClass::Rejected]);
        let absent = || Verdict::Absent;
        assert_eq!(
            decide(rejections, ErrorClass::Rejected, absent),
            Decision::Fallback
        );
        assert_eq!(
            decide(rejections, ErrorClass::Inner, absent),
            Decision::PassThrough
        );
    }

    #[test]
    fn the_predicate_narrows_and_runs_only_for_selected_classes() {
        let inner = Selection::of(&[ErrorClass::Inner]);
        assert_eq!(
            decide(inner, ErrorClass::Inner, || Verdict::Holds),
            Decision::Fallback
        );
        assert_eq!(
            decide(inner, ErrorClass::Inner, || Verdict::Fails),
            Decision::PassThrough
        );
        assert_eq!(
            decide(inner, ErrorClass::Timeout, || unreachable!("not consulted")),
            Decision::PassThrough
        );
    }

    #[test]
    fn a_panicking_predicate_passes_the_error_through() {
        let all = Selection::of(ErrorClass::ALL);
        assert_eq!(
            decide(all, ErrorClass::Inner, || Verdict::Panicked),
            Decision::PassThrough
        );
    }
}
