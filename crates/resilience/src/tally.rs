//! [`Tally`]: the counts of a two-way answer given on a hot path (a rate limiter's allowed or
//! denied, a cache's hit or miss), kept exact without an atomic read-modify-write each.
//!
//! A rate-limit decision on one GCRA word costs one compare-exchange (none for a denial), a
//! cache hit a read lock; counting it on a shared `AtomicU64` would add a locked `fetch_add`,
//! as dear as the answer's own, and a cache line that every core counting on the instance
//! takes in turn. So each thread has a
//! *seat*: a small number, unique among the live threads, taken on its first count and given
//! back when it exits. A tally keeps a pair of counts per seat, each pair on its own cache
//! lines, and only the thread holding a seat writes its pair: a plain load and store, no lock
//! prefix, no line shared with another writer. Reading sums the pairs.
//!
//! Nothing is lost when a thread exits: its seat goes back to the pool with its counts in
//! every tally, and the next thread to take it counts on from there (the mutex that hands
//! seats over orders the last writer's stores before the next one's loads). A thread whose
//! seat is past a tally's last pair (more live threads than the tally has pairs), or that
//! counts while its thread-locals are being torn down, counts on a shared pair of atomics.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Exact counts of a two-way answer (`yes` and `no`: allowed and denied, hit and miss), added
/// to by many threads without an atomic read-modify-write each.
pub(crate) struct Tally {
    /// One pair per seat, then the pair of the threads without one.
    counts: Box<[Counts]>,
}

/// One pair of counts, alone on its cache lines (two on CPUs that fetch lines in pairs).
#[repr(align(128))]
#[derive(Default)]
struct Counts {
    yes: AtomicU64,
    no: AtomicU64,
}

impl Counts {
    fn of(&self, yes: bool) -> &AtomicU64 {
        if yes {
            &self.yes
        } else {
            &self.no
        }
    }
}

impl Tally {
    /// A tally with a pair for each seat the threads of a busy process are likely to hold:
    /// twice the CPUs, at least 8.
    pub(crate) fn new() -> Self {
        Self::with_seats(seats_per_tally())
    }

    fn with_seats(seats: usize) -> Self {
        Self {
            counts: (0..=seats).map(|_| Counts::default()).collect(),
        }
    }

    /// Counts one answer, `yes` or no.
    #[inline]
    pub(crate) fn count(&self, yes: bool) {
        let shared = self.counts.len() - 1;
        match seat() {
            // Only this thread writes its seat's counts: no other write can come in between.
            Some(seat) if seat < shared => {
                let count = self.counts[seat].of(yes);
                count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            _ => {
                self.counts[shared].of(yes).fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counts so far, yes and no: every answer counted before this call, and perhaps
    /// some racing it.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.counts.iter().fold((0, 0), |(yes, no), counts| {
            (
                yes + counts.yes.load(Ordering::Relaxed),
                no + counts.no.load(Ordering::Relaxed),
            )
        })
    }
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

/// A [`Tally`] that `reset_metrics` can set back to zero: a reset
/// remembers what had been counted rather than writing every thread's pair.
pub(crate) struct ResettableTally {
    tally: Tally,
    /// The tally's yes and no counts at the last reset.
    at_reset: [AtomicU64; 2],
}

impl ResettableTally {
    pub(crate) fn new() -> Self {
        Self {
            tally: Tally::new(),
            at_reset: Default::default(),
        }
    }

    /// Counts one answer, `yes` or no.
    #[inline]
    pub(crate) fn count(&self, yes: bool) {
        self.tally.count(yes);
    }

    /// The counts since the last reset, yes and no. A count racing a reset lands on either
    /// side of it, as it would on one atomic.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let (yes, no) = self.tally.totals();
        let [yes_before, no_before] = self.at_reset.each_ref().map(load);
        (yes.saturating_sub(yes_before), no.saturating_sub(no_before))
    }

    /// Back to zero.
    pub(crate) fn reset(&self) {
        let (yes, no) = self.tally.totals();
        let [yes_before, no_before] = &self.at_reset;
        yes_before.store(yes, Ordering::Relaxed);
        no_before.store(no, Ordering::Relaxed);
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl fmt::Debug for ResettableTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.totals().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_every_decision_of_every_thread_seated_or_not() {
        // Two pairs for eight threads: most count on the shared pair, some on seats, and
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
    fn pairs_do_not_share_a_line() {
        assert!(std::mem::align_of::<Counts>() >= 128);
        assert!(seats_per_tally() >= 8);
    }

    #[test]
    fn a_reset_tally_counts_from_zero() {
        let tally = ResettableTally::new();
        tally.count(true);
        tally.count(true);
        tally.count(false);
        assert_eq!(tally.totals(), (2, 1));
        tally.reset();
        assert_eq!(tally.totals(), (0, 0));
        tally.count(false);
        assert_eq!(tally.totals(), (0, 1));
    }
}
