//! [`Tally`]: counts kept on a hot path (a rate limiter's allowed and denied, a cache's hits
//! and misses, a breaker's successes and rejections), exact without an atomic
//! read-modify-write each.
//!
//! A rate-limit decision on one GCRA word costs one compare-exchange (none for a denial), a
//! cache hit a read lock; counting it on a shared `AtomicU64` would add a locked `fetch_add`,
//! as dear as the answer's own, and a cache line that every core counting on the instance
//! takes in turn. So each thread has a
//! *seat*: a small number, unique among the live threads, taken on its first count and given
//! back when it exits. A tally keeps a row of counts per seat, each row on its own cache
//! lines, and only the thread holding a seat writes its row: a plain load and store, no lock
//! prefix, no line shared with another writer. Reading sums the rows.
//!
//! Nothing is lost when a thread exits: its seat goes back to the pool with its counts in
//! every tally, and the next thread to take it counts on from there (the mutex that hands
//! seats over orders the last writer's stores before the next one's loads). A thread whose
//! seat is past a tally's last row (more live threads than the tally has rows), or that
//! counts while its thread-locals are being torn down, counts on a shared row of atomics.
//!
//! Under loom the counts stay std atomics: loom never switches threads between a count's load
//! and its store, so the models see exact counts without exploring them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::sync::Padded;

/// `N` exact counts (two by default: `yes` and `no`, as allowed and denied, hit and miss),
/// added to by many threads without an atomic read-modify-write each.
pub(crate) struct Tally<const N: usize = 2> {
    /// One row per seat, then the row of the threads without one.
    counts: Box<[Counts<N>]>,
}

/// One row of counts, alone on its cache lines.
type Counts<const N: usize> = Padded<[AtomicU64; N]>;

impl<const N: usize> Tally<N> {
    /// A tally with a row for each seat the threads of a busy process are likely to hold:
    /// twice the CPUs, at least 8.
    pub(crate) fn new() -> Self {
        Self::with_seats(seats_per_tally())
    }

    fn with_seats(seats: usize) -> Self {
        Self {
            counts: (0..=seats)
                .map(|_| Padded(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    /// Adds one to count `which` (below `N`).
    #[inline]
    pub(crate) fn add(&self, which: usize) {
        match self.row() {
            Row::Own(row) => increment(&row[which]),
            Row::Shared(row) => {
                row[which].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds `amount` to count `which`, saturating: for a count that is a sum, such as the
    /// nanoseconds calls took, which a busy process could run up to the limit.
    #[inline]
    pub(crate) fn add_amount(&self, which: usize, amount: u64) {
        match self.row() {
            Row::Own(row) => bump(&row[which], amount),
            Row::Shared(row) => add_shared(&row[which], amount),
        }
    }

    /// Adds one to count `which` and `amount` to count `sum` (saturating), finding this
    /// thread's row once: a call and the time it took.
    #[inline]
    pub(crate) fn add_with_amount(&self, which: usize, sum: usize, amount: u64) {
        match self.row() {
            Row::Own(row) => {
                increment(&row[which]);
                bump(&row[sum], amount);
            }
            Row::Shared(row) => {
                row[which].fetch_add(1, Ordering::Relaxed);
                add_shared(&row[sum], amount);
            }
        }
    }

    /// This thread's row, or the shared one if it holds no seat with a row here.
    #[inline]
    fn row(&self) -> Row<'_, N> {
        let shared = self.counts.len() - 1;
        match seat() {
            Some(seat) if seat < shared => Row::Own(&self.counts[seat].0),
            _ => Row::Shared(&self.counts[shared].0),
        }
    }

    /// The counts so far: every one added before this call, and perhaps some racing it.
    pub(crate) fn counts(&self) -> [u64; N] {
        self.counts.iter().fold([0; N], |mut sums, row| {
            for (sum, count) in sums.iter_mut().zip(&row.0) {
                *sum = sum.saturating_add(count.load(Ordering::Relaxed));
            }
            sums
        })
    }
}

impl Tally {
    /// Counts one answer, `yes` or no.
    #[inline]
    pub(crate) fn count(&self, yes: bool) {
        self.add(usize::from(!yes));
    }

    /// The counts so far, yes and no.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let [yes, no] = self.counts();
        (yes, no)
    }
}

/// The row a thread counts on.
enum Row<'a, const N: usize> {
    /// Its seat's: only this thread writes it, so no other write can come in between a
    /// load and a store.
    Own(&'a [AtomicU64; N]),
    /// The row of the threads without a seat here, written with read-modify-writes.
    Shared(&'a [AtomicU64; N]),
}

/// Adds one to a count only this thread writes: a plain load and store.
#[inline]
fn increment(count: &AtomicU64) {
    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Adds `amount` to a count only this thread writes: a plain load and store, saturating.
#[inline]
fn bump(count: &AtomicU64, amount: u64) {
    count.store(
        count.load(Ordering::Relaxed).saturating_add(amount),
        Ordering::Relaxed,
    );
}

/// Adds `amount` to a count of the shared row, saturating.
fn add_shared(count: &AtomicU64, amount: u64) {
    let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
        Some(total.saturating_add(amount))
    });
}

fn seats_per_tally() -> usize {
    static SEATS: OnceLock<usize> = OnceLock::new();
    *SEATS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        cpus.saturating_mul(2).clamp(8, 1_024)
    })
}

/// The seats not held by a live thread: given back ones, and every number from `next` on.
struct Pool {
    free: Vec<usize>,
    next: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    next: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // Nothing under this lock can panic halfway through.
    POOL.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// A thread's seat, given back to the pool when the thread exits.
struct Seat(usize);

impl Seat {
    fn take() -> Self {
        let mut pool = pool();
        let seat = pool.free.pop().unwrap_or_else(|| {
            pool.next += 1;
            pool.next - 1
        });
        Self(seat)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        pool().free.push(self.0);
    }
}

/// This thread's seat; `None` once its thread-locals are being torn down.
#[inline]
fn seat() -> Option<usize> {
    std::thread_local! {
        static SEAT: Seat = Seat::take();
    }
    SEAT.try_with(|seat| seat.0).ok()
}

/// A [`Tally`] that `reset_metrics` can set back to zero: a reset remembers what had been
/// counted rather than writing every thread's row.
pub(crate) struct ResettableTally<const N: usize = 2> {
    tally: Tally<N>,
    /// The tally's counts at the last reset.
    at_reset: [AtomicU64; N],
}

impl<const N: usize> ResettableTally<N> {
    pub(crate) fn new() -> Self {
        Self {
            tally: Tally::new(),
            at_reset: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds one to count `which` (below `N`).
    #[inline]
    pub(crate) fn add(&self, which: usize) {
        self.tally.add(which);
    }

    /// See [`Tally::add_amount`].
    #[inline]
    pub(crate) fn add_amount(&self, which: usize, amount: u64) {
        self.tally.add_amount(which, amount);
    }

    /// See [`Tally::add_with_amount`].
    #[inline]
    pub(crate) fn add_with_amount(&self, which: usize, sum: usize, amount: u64) {
        self.tally.add_with_amount(which, sum, amount);
    }

    /// The counts since the last reset. A count racing a reset lands on either side of it,
    /// as it would on one atomic.
    pub(crate) fn counts(&self) -> [u64; N] {
        let mut counts = self.tally.counts();
        for (count, before) in counts.iter_mut().zip(&self.at_reset) {
            *count = count.saturating_sub(before.load(Ordering::Relaxed));
        }
        counts
    }

    /// Back to zero.
    pub(crate) fn reset(&self) {
        for (count, before) in self.tally.counts().into_iter().zip(&self.at_reset) {
            before.store(count, Ordering::Relaxed);
        }
    }
}

impl<const N: usize> fmt::Debug for ResettableTally<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.counts().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_every_decision_of_every_thread_seated_or_not() {
        // Two rows for eight threads: most count on the shared row, some on seats, and
        // seats given back by exited threads are taken again with their counts.
        let tally = Arc::new(Tally::with_seats(2));
        for round in 0..3 {
            let threads: Vec<_> = (0..8)
                .map(|thread| {
                    let tally = Arc::clone(&tally);
                    std::thread::spawn(move || {
                        for i in 0..10_000 {
                            tally.count((i + thread) % 4 != 0);
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            let rounds = round + 1;
            assert_eq!(tally.totals(), (rounds * 60_000, rounds * 20_000));
        }
    }

    #[test]
    fn live_threads_hold_distinct_seats() {
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let seat = seat().unwrap();
                    // Everyone holds a seat at once before anyone gives one back.
                    barrier.wait();
                    seat
                })
            })
            .collect();
        let mut seats: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        seats.sort_unstable();
        seats.dedup();
        assert_eq!(seats.len(), 4);
    }

    #[test]
    fn rows_do_not_share_a_line() {
        assert!(std::mem::align_of::<Counts<2>>() >= 128);
        assert!(std::mem::align_of::<Counts<3>>() >= 128);
        assert!(seats_per_tally() >= 8);
    }

    #[test]
    fn a_reset_tally_counts_from_zero() {
        let tally = ResettableTally::<2>::new();
        tally.add(0);
        tally.add(0);
        tally.add(1);
        assert_eq!(tally.counts(), [2, 1]);
        tally.reset();
        assert_eq!(tally.counts(), [0, 0]);
        tally.add(1);
        tally.add_amount(0, 5);
        assert_eq!(tally.counts(), [5, 1]);
    }

    #[test]
    fn amounts_add_up_and_saturate_on_every_row() {
        // One row for a seat: at most one thread counts on it, the others on the shared row.
        let tally = Arc::new(Tally::<3>::with_seats(1));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let tally = Arc::clone(&tally);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        tally.add_with_amount(0, 2, 7);
                        tally.add_amount(1, 3);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(tally.counts(), [4_000, 12_000, 28_000]);

        tally.add_amount(2, u64::MAX);
        std::thread::spawn({
            let tally = Arc::clone(&tally);
            move || tally.add_amount(2, u64::MAX)
        })
        .join()
        .unwrap();
        assert_eq!(
            tally.counts()[2],
            u64::MAX,
            "sums saturate, on a row and across rows"
        );
    }

    #[test]
    fn three_counts_reset_together() {
        let tally = ResettableTally::<3>::new();
        for which in [0, 2, 2, 1, 2] {
            tally.add(which);
        }
        assert_eq!(tally.counts(), [1, 1, 3]);
        tally.reset();
        tally.add(2);
        assert_eq!(tally.counts(), [0, 0, 1]);
    }
}
