//! The sliding window: a ring of time buckets counting requests and accepts, lock-free.
//!
//! Time is cut into buckets of `window / BUCKETS`; bucket `i` (counted from the throttle's
//! epoch) lives in slot `i % BUCKETS` of the ring. Each slot is one `AtomicU64` per counter
//! holding the bucket's tag (the low [`TAG_BITS`] bits of `i`) and its count, so a slot moves on to
//! a new bucket and starts counting again in one compare-exchange, with no lock and no reset
//! racing the increments. The window's count is the sum of the slots whose tag is one of the
//! last `BUCKETS` buckets: between `15/16` of the window and the whole of it, sliding by one
//! bucket at a time.
//!
//! A request and its accept are counted in the bucket the request was admitted in, so the two
//! leave the window together; an accept that arrives after its bucket has left the ring is
//! dropped, never added to a newer bucket.
//!
//! The arithmetic on a slot word ([`bump`], [`live`]) is pure and tested on its own; the
//! [`Ring`] applies it in compare-exchange loops.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets in the window: a power of two, so a slot is a mask away from its bucket.
pub(crate) const BUCKETS: u64 = 16;
/// Bits of a bucket's number kept as its tag; the rest of the word is the count.
const TAG_BITS: u32 = 24;
const COUNT_BITS: u32 = 64 - TAG_BITS;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

fn tag(word: u64) -> u64 {
    word >> COUNT_BITS
}

fn count(word: u64) -> u64 {
    word & COUNT_MAX
}

fn pack(bucket: u64, count: u64) -> u64 {
    (bucket & TAG_MASK) << COUNT_BITS | count.min(COUNT_MAX)
}

/// The slot of `bucket` in the ring.
pub(crate) fn slot(bucket: u64) -> usize {
    (bucket % BUCKETS) as usize
}

/// The slot word after adding `n` to `bucket`'s count: added to the count if the slot holds
/// that bucket, a fresh count if it holds an older one, unchanged (`None`) if it already
/// holds a newer one (the addition is late and its bucket has left the window).
pub(crate) fn bump(word: u64, bucket: u64, n: u64) -> Option<u64> {
    let held = tag(word);
    let wanted = bucket & TAG_MASK;
    if held == wanted {
        return Some(pack(bucket, count(word).saturating_add(n)));
    }
    // Tags wrap: the slot's bucket is newer when it is less than half the tag space ahead.
    let ahead = held.wrapping_sub(wanted) & TAG_MASK;
    if word != 0 && ahead < (1 << (TAG_BITS - 1)) {
        return None;
    }
    Some(pack(bucket, n))
}

/// What the slot word counts for the window ending with bucket `now`: its count if it holds
/// one of the last [`BUCKETS`] buckets, else 0.
pub(crate) fn live(word: u64, now: u64) -> u64 {
    let held = tag(word);
    let age = (now & TAG_MASK).wrapping_sub(held) & TAG_MASK;
    if age < BUCKETS {
        count(word)
    } else {
        0
    }
}

/// The word after spending one unit of `bucket`'s credit, if it holds credit for that
/// bucket.
pub(crate) fn spend(word: u64, bucket: u64) -> Option<u64> {
    (tag(word) == bucket & TAG_MASK && count(word) > 0).then(|| word - 1)
}

/// Requests certain to be admitted at probability 0, granted for one bucket: the fast path
/// of the throttle, one compare-exchange instead of summing the window.
#[derive(Debug)]
pub(crate) struct Credit {
    word: AtomicU64,
}

impl Credit {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
        }
    }

    /// Spends one unit of credit for `bucket`, if there is any.
    #[inline]
    pub(crate) fn take(&self, bucket: u64) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        spend(word, bucket).is_some_and(|next| {
            self.word
                .compare_exchange(word, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Grants `n` units for `bucket`, replacing what was left.
    pub(crate) fn grant(&self, bucket: u64, n: u64) {
        self.word.store(pack(bucket, n), Ordering::Relaxed);
    }
}

/// One counter per bucket of the window.
#[derive(Debug)]
pub(crate) struct Ring {
    slots: [AtomicU64; BUCKETS as usize],
}

impl Ring {
    pub(crate) fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds `n` to `bucket`'s count (nothing if that bucket has left the ring).
    #[inline]
    pub(crate) fn add(&self, bucket: u64, n: u64) {
        let slot = &self.slots[slot(bucket)];
        let mut word = slot.load(Ordering::Relaxed);
        while let Some(next) = bump(word, bucket, n) {
            match slot.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    /// The count over the window ending with bucket `now`.
    #[inline]
    pub(crate) fn total(&self, now: u64) -> u64 {
        self.slots
            .iter()
            .map(|slot| live(slot.load(Ordering::Relaxed), now))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_slot_counts_its_bucket_and_moves_on() {
        let word = bump(0, 3, 1).unwrap();
        assert_eq!((tag(word), count(word)), (3, 1));
        let word = bump(word, 3, 2).unwrap();
        assert_eq!(count(word), 3);
        // Sixteen buckets later the slot is reused, from zero.
        let word = bump(word, 3 + BUCKETS, 1).unwrap();
        assert_eq!((tag(word), count(word)), (3 + BUCKETS, 1));
        // A late accept for bucket 3 is dropped, not added to bucket 19.
        assert_eq!(bump(word, 3, 1), None);
        assert_eq!(live(word, 3 + BUCKETS), 1);
        assert_eq!(live(word, 3 + 2 * BUCKETS - 1), 1);
        assert_eq!(live(word, 3 + 2 * BUCKETS), 0);
    }

    #[test]
    fn credit_is_spent_only_in_its_bucket() {
        let word = pack(9, 2);
        let word = spend(word, 9).unwrap();
        assert_eq!(count(word), 1);
        assert_eq!(spend(word, 10), None, "another bucket");
        assert_eq!(spend(spend(word, 9).unwrap(), 9), None, "spent");
        let credit = Credit::new();
        assert!(!credit.take(0), "none granted");
        credit.grant(4, 1);
        assert!(!credit.take(5));
        assert!(credit.take(4));
        assert!(!credit.take(4));
    }

    #[test]
    fn counts_saturate_and_tags_wrap() {
        let full = pack(7, COUNT_MAX);
        assert_eq!(count(bump(full, 7, 5).unwrap()), COUNT_MAX);
        let wrapped = TAG_MASK + 1 + 2;
        let word = bump(pack(TAG_MASK, 4), wrapped, 1).unwrap();
        assert_eq!(live(word, wrapped), 1);
        assert_eq!(live(pack(TAG_MASK, 4), wrapped), 4, "three buckets old");
    }

    /// Events `(bucket, n)` in time order, buckets never going back by more than the window
    /// (late accepts), against a model that keeps every event.
    fn events() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
        prop::collection::vec((0_u64..40, 1_u64..5, any::<bool>()), 1..200)
    }

    proptest! {
        #[test]
        fn the_ring_counts_exactly_the_last_sixteen_buckets(steps in events(), start in 0_u64..(1 << 30)) {
            let ring = Ring::new();
            let mut model: Vec<(u64, u64)> = Vec::new();
            let mut now = start;
            for (advance, n, late) in steps {
                now += advance % 7;
                // Late additions target a bucket up to twenty behind.
                let bucket = if late { now.saturating_sub(advance % 20).max(start) } else { now };
                ring.add(bucket, n);
                // The model: an addition counts unless a newer bucket took its slot first.
                let overtaken = model.iter().any(|&(b, _)| b > bucket && slot(b) == slot(bucket));
                if !overtaken {
                    model.push((bucket, n));
                }
                let expected: u64 = model
                    .iter()
                    .filter(|&&(b, _)| b + BUCKETS > now && b <= now)
                    .filter(|&&(b, _)| !model.iter().any(|&(o, _)| o > b && slot(o) == slot(b)))
                    .map(|&(_, n)| n)
                    .sum();
                prop_assert_eq!(ring.total(now), expected);
            }
        }
    }
}
