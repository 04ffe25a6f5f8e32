//! The sliding window: requests and refusals per time bucket, lock-free.
//!
//! Time is cut into buckets of `window / BUCKETS`; bucket `i` (counted from the throttle's
//! epoch) lives in slot `i % BUCKETS` of a ring. Each slot is one `AtomicU64` holding the
//! bucket's tag (the low [`TAG_BITS`] bits of `i`) beside a count, so a slot moves on to a new
//! bucket in one compare-exchange, with no lock and no reset racing the increments. The window
//! is the last `BUCKETS` buckets: between `15/16` of its length and the whole of it, sliding by
//! one bucket at a time.
//!
//! Refusals by the backend are a [`Ring`] of counts, one per bucket, summed over the window;
//! the window's accepts are its requests less its refusals and its throttled requests. A
//! refusal is counted in the bucket its request was counted in, so the two leave the window
//! together; a refusal that arrives after its bucket has left the ring is dropped, never added
//! to a newer bucket.
//!
//! Requests are one running total, every request ever counted ([`Requests`]): counting one is
//! a single atomic add, which the throttle's metrics read as their total too. Its ring holds,
//! per bucket, where in that total the bucket began (written once, by the bucket's first
//! request), so the window's requests are the total less the start of its oldest bucket, and a
//! request's place in its bucket is its total less its bucket's start. Throttled requests are
//! counted the same way, in a [`Requests`] of their own: a request is throttled as it is
//! counted, so its bucket is the current one, and one atomic add counts it.
//!
//! The arithmetic on a slot word ([`bump`], [`live`], [`position`], [`newer`]) is pure and
//! tested on its own; [`Ring`] and [`Requests`] apply it in compare-exchange loops.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Buckets in the window: a power of two, so a slot is a mask away from its bucket.
pub(crate) const BUCKETS: u64 = 16;
/// [`BUCKETS`], to divide a duration by.
pub(crate) const BUCKETS_U32: u32 = BUCKETS as u32;
/// Bits of a bucket's number kept as its tag; the rest of the word is the count.
const TAG_BITS: u32 = 24;
const COUNT_BITS: u32 = 64 - TAG_BITS;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Half the range of a count: positions in the running total are taken modulo
/// `2^COUNT_BITS`, and a difference in the upper half is a start *after* the total.
const COUNT_HALF: u64 = 1 << (COUNT_BITS - 1);

fn tag(word: u64) -> u64 {
    word >> COUNT_BITS
}

fn count(word: u64) -> u64 {
    word & COUNT_MAX
}

fn pack(bucket: u64, count: u64) -> u64 {
    (bucket & TAG_MASK) << COUNT_BITS | count.min(COUNT_MAX)
}

/// The length of a bucket in ticks of the throttle's clock, and division by it: every
/// decision turns the time into its bucket, and the division's latency sits on the path to
/// the slot it counts in. A multiplication by a reciprocal fixed when the throttle is built,
/// with one correction, gives the same quotient for every `u64` in a few cycles.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketWidth {
    ticks: u64,
    /// `⌊(2^64 − 1) / ticks⌋`.
    reciprocal: u64,
}

impl BucketWidth {
    /// Buckets of `ticks` ticks (at least 1).
    pub(crate) fn new(ticks: u64) -> Self {
        let ticks = ticks.max(1);
        Self {
            ticks,
            reciprocal: u64::MAX / ticks,
        }
    }

    /// The bucket holding `ticks`: exactly `ticks / self.ticks`. With `d` the width and `m`
    /// the reciprocal, `n·m / 2^64` lies in `(n/d − 1, n/d]`, so the estimate is the quotient
    /// or one less, which the remainder tells.
    #[inline]
    pub(crate) fn bucket(self, ticks: u64) -> u64 {
        let estimate = ((u128::from(ticks) * u128::from(self.reciprocal)) >> 64) as u64;
        let remainder = ticks - estimate * self.ticks;
        estimate + u64::from(remainder >= self.ticks)
    }
}

/// The slot of `bucket` in the ring.
pub(crate) fn slot(bucket: u64) -> usize {
    (bucket % BUCKETS) as usize
}

/// The slot word after adding `n` to `bucket`'s count: added to the count if the slot holds
/// that bucket, a fresh count if it holds an older one, unchanged (`None`) if it already
/// holds a newer one (the addition is late and its bucket has left the window).
#[inline]
pub(crate) fn bump(word: u64, bucket: u64, n: u64) -> Option<u64> {
    if tag(word) == bucket & TAG_MASK {
        return Some(pack(bucket, count(word).saturating_add(n)));
    }
    if newer(word, bucket) {
        return None;
    }
    Some(pack(bucket, n))
}

/// Whether the slot word holds a bucket newer than `bucket`. Tags wrap: the slot's bucket is
/// newer when it is less than half the tag space ahead. An empty slot holds nothing newer.
pub(crate) fn newer(word: u64, bucket: u64) -> bool {
    let ahead = tag(word).wrapping_sub(bucket & TAG_MASK) & TAG_MASK;
    word != 0 && ahead != 0 && ahead < (1 << (TAG_BITS - 1))
}

/// What the slot word counts for the window ending with bucket `now`: its count if it holds
/// one of the last [`BUCKETS`] buckets, else 0.
pub(crate) fn live(word: u64, now: u64) -> u64 {
    if age(word, now) < BUCKETS {
        count(word)
    } else {
        0
    }
}

/// How many buckets before `now` the slot word's bucket is (0: `now` itself; a newer bucket,
/// or one that wrapped, is far away).
fn age(word: u64, now: u64) -> u64 {
    (now & TAG_MASK).wrapping_sub(tag(word)) & TAG_MASK
}

/// Requests counted between `start` and `total` in the running total (both modulo
/// `2^COUNT_BITS`), or `None` if `start` is after `total`.
fn since(total: u64, start: u64) -> Option<u64> {
    let since = total.wrapping_sub(start) & COUNT_MAX;
    (since < COUNT_HALF).then_some(since)
}

/// Where a request of `bucket` counted after `total` others stands in its bucket (0: first),
/// if the slot word says where that bucket began, at or before it.
pub(crate) fn position(word: u64, bucket: u64, total: u64) -> Option<u64> {
    if tag(word) == bucket & TAG_MASK {
        since(total, count(word))
    } else {
        None
    }
}

/// The slot word saying that `bucket` began after `total` requests.
fn begun(bucket: u64, total: u64) -> u64 {
    (bucket & TAG_MASK) << COUNT_BITS | total & COUNT_MAX
}

/// Whether a request counted in `bucket` at `position` (0: its first) is covered by the
/// credit `word`: the word holds the bucket's tag and a bound, and the requests of that bucket
/// placed below it are certain to pass.
pub(crate) fn covers(word: u64, bucket: u64, position: u64) -> bool {
    tag(word) == bucket & TAG_MASK && position < count(word)
}

/// How far into its bucket's requests the throttle knows the probability without summing the
/// window: the fast paths of the throttle. A request reads it after counting itself and, if
/// it is covered, is judged on that one load, so the credit costs no atomic write of its own.
///
/// The throttle keeps two. One says that every request passes at probability 0
/// ([`grant`](Self::grant)): it holds while no refusal is counted (with the refusals fixed,
/// every request passing raises the accepts with the requests, so a probability of 0 stays 0
/// over the room the throttle worked out), and a refusal [revokes](Self::revoke) it. The other
/// says that the probability stays at its cap ([`cover`](Self::cover)): a refusal only lowers
/// the accepts, which keeps it there, so nothing withdraws it.
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

    /// Whether the request counted in `bucket` at `position` is certain to pass.
    #[inline]
    pub(crate) fn covers(&self, bucket: u64, position: u64) -> bool {
        covers(self.word.load(Ordering::Relaxed), bucket, position)
    }

    /// Covers the requests of `bucket` placed below `bound`, replacing what was covered,
    /// unless a refusal was counted since the window was summed: `refused` reads the count of
    /// refusals, which was `seen` before the sums, with read-modify-writes.
    ///
    /// A refusal adds to its count with a read-modify-write, then [revokes](Self::revoke).
    /// Read-modify-writes of one count are totally ordered, each reading the last: if the
    /// grant's comes first, the refusal's reads it and so sees the credit stored before it,
    /// and revokes it; if the refusal's comes first, the grant reads a count other than
    /// `seen` and withdraws itself. (Plain loads would not do: a grant and a refusal could
    /// each miss the other's write.)
    pub(crate) fn grant(&self, bucket: u64, bound: u64, seen: u64, refused: impl Fn() -> u64) {
        let word = pack(bucket, bound);
        self.word.store(word, Ordering::Release);
        if refused() != seen {
            // Unless another grant replaced it meanwhile: that one checks for itself.
            let _ = self
                .word
                .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Covers the requests of `bucket` placed below `bound`, replacing what was covered, for
    /// good: for a claim no refusal can undo.
    #[inline]
    pub(crate) fn cover(&self, bucket: u64, bound: u64) {
        self.word.store(pack(bucket, bound), Ordering::Relaxed);
    }

    /// Withdraws the credit: a refusal has just been counted, in the window and in the count
    /// [`grant`](Self::grant) reads. Only a credit still standing is written over, so under
    /// overload (no credit granted) a refusal reads the word and moves on.
    #[inline]
    pub(crate) fn revoke(&self) {
        if self.word.load(Ordering::Acquire) != 0 {
            self.word.store(0, Ordering::Release);
        }
    }
}

/// Every request counted, and where each bucket of the window began in that count.
#[derive(Debug)]
pub(crate) struct Requests {
    total: AtomicU64,
    /// Per slot: the bucket's tag, and the total (modulo `2^COUNT_BITS`) before its first
    /// request.
    starts: [AtomicU64; BUCKETS as usize],
}

/// A request as [`Requests::add`] counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Requests counted before it, ever.
    pub(crate) total: u64,
    /// Its place among its bucket's requests (0: the first), or `None` if a thread a whole
    /// window ahead has already moved its bucket's slot on.
    pub(crate) position: Option<u64>,
}

impl Requests {
    pub(crate) fn new() -> Self {
        Self {
            total: AtomicU64::new(0),
            starts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts a request in `bucket`. Only the first request of a bucket (or one that finds a
    /// later request marked the bucket's start first) writes to the ring.
    #[inline]
    pub(crate) fn add(&self, bucket: u64) -> Counted {
        self.add_ordered(bucket, Ordering::Relaxed)
    }

    /// [`add`](Self::add), with the add to the running total made with `order`: for a count
    /// whose add a [`Credit`] orders itself against.
    #[inline]
    pub(crate) fn add_ordered(&self, bucket: u64, order: Ordering) -> Counted {
        let total = self.total.fetch_add(1, order);
        let slot = &self.starts[slot(bucket)];
        let mut word = slot.load(Ordering::Relaxed);
        let position = loop {
            if let Some(position) = position(word, bucket, total) {
                break Some(position);
            }
            if newer(word, bucket) {
                break None;
            }
            let next = begun(bucket, total);
            match slot.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.retire(bucket, total);
                    break Some(0);
                }
                Err(actual) => word = actual,
            }
        };
        Counted { total, position }
    }

    /// Moves each slot holding a bucket older than the newest one of its slot out of the
    /// window on to that one, as begun at `total`. Tags repeat every `2^TAG_BITS` buckets: a
    /// slot left untouched that long (traffic that keeps missing it) would come back into the
    /// window with a start from long ago, counting every request since. Done by the first
    /// request of each bucket `now`, so while there is traffic no tag gets that old.
    #[cold]
    fn retire(&self, now: u64, total: u64) {
        let Some(out) = now.checked_sub(BUCKETS) else {
            return;
        };
        for bucket in out.saturating_sub(BUCKETS - 1)..=out {
            let slot = &self.starts[slot(bucket)];
            let word = slot.load(Ordering::Relaxed);
            if tag(word) != bucket & TAG_MASK && !newer(word, bucket) {
                // Lost to a concurrent writer: it moved the slot on itself.
                let _ = slot.compare_exchange(
                    word,
                    begun(bucket, total),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Every request counted so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// [`total`](Self::total), read with `order`.
    pub(crate) fn total_ordered(&self, order: Ordering) -> u64 {
        self.total.load(order)
    }

    /// [`total`](Self::total), read with a read-modify-write that adds nothing: ordered
    /// against every add in the total's modification order (see [`Credit::grant`]).
    pub(crate) fn total_by_read_modify_write(&self) -> u64 {
        self.total.fetch_add(0, Ordering::AcqRel)
    }

    /// The requests, of the first `total` counted, in the window ending with bucket `now`:
    /// those counted since the oldest bucket still in it began. The buckets are tried from the
    /// oldest on, so under steady traffic the first one found is the answer.
    #[inline]
    pub(crate) fn in_window(&self, total: u64, now: u64) -> u64 {
        (now.saturating_sub(BUCKETS - 1)..=now)
            .find_map(|bucket| {
                let word = self.starts[slot(bucket)].load(Ordering::Relaxed);
                (tag(word) == bucket & TAG_MASK).then(|| since(total, count(word)))
            })
            .flatten()
            .unwrap_or(0)
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
        // A late refusal for bucket 3 is dropped, not added to bucket 19.
        assert_eq!(bump(word, 3, 1), None);
        assert_eq!(live(word, 3 + BUCKETS), 1);
        assert_eq!(live(word, 3 + 2 * BUCKETS - 1), 1);
        assert_eq!(live(word, 3 + 2 * BUCKETS), 0);
    }

    #[test]
    fn credit_covers_requests_only_in_its_bucket_and_below_its_bound() {
        let word = pack(9, 2);
        assert!(covers(word, 9, 0) && covers(word, 9, 1));
        assert!(!covers(word, 9, 2), "beyond the bound");
        assert!(!covers(word, 10, 0), "another bucket");
        let credit = Credit::new();
        assert!(!credit.covers(0, 0), "none granted");
        credit.grant(4, 1, 7, || 7);
        assert!(!credit.covers(5, 0));
        assert!(credit.covers(4, 0));
        assert!(!credit.covers(4, 1));
        credit.revoke();
        assert!(!credit.covers(4, 0), "revoked by a refusal");
        credit.grant(4, 1, 7, || 8);
        assert!(
            !credit.covers(4, 0),
            "a refusal counted while the window was summed"
        );
    }

    #[test]
    fn a_request_learns_its_place_in_its_bucket() {
        let requests = Requests::new();
        assert_eq!(
            requests.add(3),
            Counted {
                total: 0,
                position: Some(0)
            }
        );
        assert_eq!(
            requests.add(3),
            Counted {
                total: 1,
                position: Some(1)
            }
        );
        assert_eq!(
            requests.add(4),
            Counted {
                total: 2,
                position: Some(0)
            }
        );
        assert_eq!(requests.in_window(3, 4), 3);
        assert_eq!(requests.in_window(3, 3 + BUCKETS), 1, "bucket 3 has left");
        assert_eq!(requests.in_window(3, 4 + BUCKETS), 0);
        // Sixteen buckets later the slot is reused.
        assert_eq!(
            requests.add(3 + BUCKETS),
            Counted {
                total: 3,
                position: Some(0)
            }
        );
        assert_eq!(requests.in_window(4, 3 + BUCKETS), 2);
        // Late for a bucket whose slot a newer one has taken: counted in the total only.
        assert_eq!(
            requests.add(3),
            Counted {
                total: 4,
                position: None
            }
        );
        assert_eq!(requests.total(), 5);
    }

    #[test]
    fn a_start_marked_late_moves_back_to_the_first_request() {
        // Two requests race into a new bucket: the one counted second marks it first.
        let word = begun(5, 11);
        assert_eq!(position(word, 5, 12), Some(1));
        assert_eq!(position(word, 5, 10), None, "counted before the start");
        assert_eq!(position(word, 6, 12), None, "another bucket");
        let requests = Requests::new();
        requests.starts[slot(5)].store(word, Ordering::Relaxed);
        requests.total.store(10, Ordering::Relaxed);
        assert_eq!(
            requests.add(5),
            Counted {
                total: 10,
                position: Some(0)
            }
        );
        assert_eq!(
            requests.starts[slot(5)].load(Ordering::Relaxed),
            begun(5, 10)
        );
    }

    #[test]
    fn slots_left_untouched_do_not_come_round_into_the_window() {
        let requests = Requests::new();
        requests.add(1);
        // Traffic that keeps missing the slot of bucket 1 (and most others).
        for step in 1..=3 {
            requests.add(step << 22);
        }
        // 2^24 buckets after bucket 1, its tag comes round again; so does the empty slots'.
        let now = TAG_MASK + 1 + 2;
        let counted = requests.add(now);
        assert_eq!(requests.in_window(counted.total + 1, now), 1);
    }

    #[test]
    fn tags_wrap_in_order() {
        assert!(
            newer(pack(1, 0), TAG_MASK),
            "bucket 2^24 + 1 after 2^24 − 1"
        );
        assert!(!newer(pack(TAG_MASK, 1), 1));
        assert!(!newer(0, 5), "an empty slot");
        assert!(!newer(pack(5, 1), 5), "the same bucket");
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
    /// (late refusals), against a model that keeps every event.
    fn events() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
        prop::collection::vec((0_u64..40, 1_u64..5, any::<bool>()), 1..200)
    }

    proptest! {
        #[test]
        fn a_bucket_is_the_quotient(nanos in any::<u64>(), width in 1_u64..u64::MAX) {
            prop_assert_eq!(BucketWidth::new(width).bucket(nanos), nanos / width);
            // Near the edges of the range and of a bucket.
            for n in [u64::MAX, u64::MAX - 1, width, width - 1, width.saturating_mul(3)] {
                prop_assert_eq!(BucketWidth::new(width).bucket(n), n / width);
            }
            for w in [1, 2, 3, 62_500, 7_500_000_000, u64::MAX] {
                prop_assert_eq!(BucketWidth::new(w).bucket(nanos), nanos / w);
            }
        }

        #[test]
        fn requests_count_exactly_the_last_sixteen_buckets(
            steps in prop::collection::vec(0_u64..40, 1..200),
            start in 0_u64..(1 << 30),
        ) {
            let requests = Requests::new();
            let mut model: Vec<u64> = Vec::new();
            let mut now = start;
            for advance in steps {
                now += advance % 7;
                let counted = requests.add(now);
                let position = model.iter().filter(|&&b| b == now).count() as u64;
                prop_assert_eq!(counted.position, Some(position));
                let before = model.iter().filter(|&&b| b + BUCKETS > now).count() as u64;
                prop_assert_eq!(requests.in_window(counted.total, now), before);
                model.push(now);
                prop_assert_eq!(requests.in_window(requests.total(), now), before + 1);
            }
        }

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
