//! Where limiter state lives in memory: the bounded keyed store and the shared rate cell.
//!
//! # The keyed store
//!
//! Keys are not stored: each key (or `(key, rate)` pair) is reduced to a 64-bit hash with a
//! randomly seeded SipHash owned by the limiter, and the table maps that hash to the
//! algorithm's state. For GCRA an entry is 16 bytes (hash and TAT) plus hashbrown's control
//! byte, and a new key allocates nothing. Two keys share a budget only if their seeded
//! hashes collide, which a client cannot aim for and which, at a million live keys, happens
//! to some pair with probability about 3 in 100 million; a collision makes both stricter,
//! never looser.
//!
//! The table is split into shards, each a `std::sync::Mutex<HashMap>` held for one decision
//! and never across an `.await` (a sharded map of our own rather than `dashmap`, which is the
//! same idea with an `RwLock`: ours lets each shard keep its own bound, its own "earliest
//! idle" time and its own counters under the one lock it already takes, with no dependency).
//! Shards are sized so that, full, each fills a power-of-two hashbrown table to its maximum
//! load (7/8), and the shard capacities add up to exactly `max_keys`.
//!
//! # Eviction
//!
//! Nothing runs in the background. A shard that is full when a new key arrives first looks
//! for *idle* states, those that decide exactly like a fresh one ([`Core::idle_at`], at the
//! limiter's rate now, which may have been lowered since): a GCRA key whose TAT has passed,
//! a full token bucket, a log or window with nothing left in it. Dropping them resets nobody.
//!
//! The search is bounded: the shard keeps its keys in a ring, oldest first, and a new key
//! examines at most [`SWEEP_STEP`] of them from the front, dropping the first idle one and
//! moving each live one to the back. So a key costs O(1) even under steady churn on a full
//! shard (a full scan per new key made a shard of a million keys a millisecond-long critical
//! section), and since keys mostly go idle in the order they were last used, the front is
//! where idle keys are. The ring costs 8 bytes per key, allocated with the table.
//!
//! If no idle state is found, the new key is denied with
//! [`Denial::KeysExhausted`](super::Denial::KeysExhausted): a live client's budget is never
//! reset to make room. Each time the ring has been walked round once, the shard knows the
//! earliest instant any of its states can go idle; until then a full shard refuses new keys
//! in O(1), with a `retry_after` up to that instant. Between two such instants, a new key can
//! be refused although an idle state waits further down the ring; its retry examines the
//! next keys.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::gcra::Gcra;
use super::sketch::Sketch;
use super::sliding_log::SlidingLog;
use super::sliding_window::SlidingWindow;
use super::state::Core;
use super::token_bucket::TokenBucket;
use super::{Algorithm, Decision, Denial, SketchSize};
use crate::sync::Padded;
use crate::Rate;

/// Shards never fall below this many slots unless `max_keys` does, so that keys hashed
/// unevenly across shards still find room until the whole store is nearly full.
const MIN_SHARD_BUCKETS: usize = 2_048;
/// Enough shards that threads rarely meet on one lock.
const MAX_SHARDS: usize = 64;
/// The most states a new key examines for eviction: the bound on a new key's work under
/// the shard lock.
pub(crate) const SWEEP_STEP: usize = 32;
/// Set in the hash of a state that follows the limiter's configured rate (a key's budget
/// for `check`), clear in one that keeps a rate of its own (a `(key, rate)` budget for
/// `check_rate`): eviction judges the first at the rate in force now, the second at its own,
/// without a byte more per state. Bit 56 is used neither to pick the shard (bits 24..56) nor
/// by hashbrown (the low bits pick the bucket, the top seven are the control byte).
pub(crate) const FOLLOWS_CONFIGURED: u64 = 1 << 56;

/// The rate eviction must also respect for the state hashed to `hash`.
fn followed(hash: u64, configured: Option<&Rate>) -> Option<&Rate> {
    configured.filter(|_| hash & FOLLOWS_CONFIGURED != 0)
}

/// Counters a shard keeps under its lock, summed for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) allowed: u64,
    pub(crate) rate_exceeded: u64,
    pub(crate) refused: u64,
    pub(crate) evicted: u64,
}

impl Counters {
    pub(crate) fn count(&mut self, decision: &Decision) {
        match decision.denial() {
            None => self.allowed += 1,
            Some(Denial::KeysExhausted) => self.refused += 1,
            Some(_) => self.rate_exceeded += 1,
        }
    }

    fn add(mut self, other: Self) -> Self {
        self.allowed += other.allowed;
        self.rate_exceeded += other.rate_exceeded;
        self.refused += other.refused;
        self.evicted += other.evicted;
        self
    }
}

/// The table's hasher: keys are already seeded SipHash values.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type Table<S> = HashMap<u64, S, BuildHasherDefault<Prehashed>>;

/// One shard, on its own cache lines so neighbouring locks do not contend.
type Shard<S> = Padded<Mutex<ShardInner<S>>>;

struct ShardInner<S> {
    table: Table<S>,
    /// Every hash of `table` exactly once, in the order eviction examines them.
    ring: VecDeque<u64>,
    capacity: usize,
    /// No state in the table goes idle before this instant (a lower bound), at the rate of
    /// `bound_rate`.
    next_idle: u64,
    /// The configured rate `next_idle` and `lap` were computed at; a new rate voids them.
    bound_rate: Option<Rate>,
    lap: Lap,
    counters: Counters,
    /// States examined for eviction, for tests of the bound.
    #[cfg(test)]
    examined: u64,
}

/// One walk round the ring: what it has learnt about the earliest idle instant so far.
#[derive(Debug, Clone, Copy)]
struct Lap {
    /// States of the ring still to examine in this walk.
    left: usize,
    /// The earliest idle instant of the states examined and kept, or inserted, in this walk.
    earliest: u64,
}

impl Lap {
    const DONE: Self = Self {
        left: 0,
        earliest: u64::MAX,
    };
}

/// A bounded map from hashed keys to one algorithm's states.
pub(crate) struct Store<C: Core> {
    shards: Box<[Shard<C::State>]>,
}

impl<C: Core> Store<C> {
    pub(crate) fn new(max_keys: usize) -> Self {
        let shards = layout(max_keys)
            .into_iter()
            .map(|capacity| {
                Padded(Mutex::new(ShardInner {
                    table: Table::default(),
                    ring: VecDeque::new(),
                    capacity,
                    next_idle: 0,
                    bound_rate: None,
                    lap: Lap::DONE,
                    counters: Counters::default(),
                    #[cfg(test)]
                    examined: 0,
                }))
            })
            .collect();
        Self { shards }
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, ShardInner<C::State>> {
        // Bits 24..56 pick the shard, leaving hashbrown the low bits (bucket) and the top
        // seven (control byte) uncorrelated with the shard.
        let index = (((hash >> 24) & 0xFFFF_FFFF) * self.shards.len() as u64) >> 32;
        lock(&self.shards[index as usize])
    }

    /// Decides one request for the key hashed to `hash`, counting it if the ask says so
    /// (else the caller counts it later through [`count`](Self::count)).
    pub(crate) fn check(&self, hash: u64, ask: Ask<'_>) -> Decision {
        let mut shard = self.shard(hash);
        let decision = shard.check::<C>(hash, ask.now, ask.rate, ask.configured);
        if ask.counted {
            shard.counters.count(&decision);
        }
        decision
    }

    /// Counts a decision made uncounted for the key hashed to `hash`.
    pub(crate) fn count(&self, hash: u64, decision: &Decision) {
        self.shard(hash).counters.count(decision);
    }

    /// The decision a request for the key hashed to `hash` would get now, changing nothing:
    /// the check runs on a copy of the state (a fresh one for a key not held).
    pub(crate) fn peek(&self, hash: u64, now: u64, rate: &Rate) -> Decision {
        let shard = self.shard(hash);
        let mut state = match shard.table.get(&hash) {
            Some(state) => state.clone(),
            None => C::fresh(now, rate),
        };
        drop(shard);
        C::check(&mut state, now, rate)
    }

    /// States held.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).table.len())
            .sum()
    }

    pub(crate) fn counters(&self) -> Counters {
        self.shards
            .iter()
            .map(|shard| lock(shard).counters)
            .fold(Counters::default(), Counters::add)
    }

    #[cfg(test)]
    fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

fn lock<S>(shard: &Shard<S>) -> MutexGuard<'_, ShardInner<S>> {
    shard.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl<S> ShardInner<S> {
    fn check<C: Core<State = S>>(
        &mut self,
        hash: u64,
        now: u64,
        rate: &Rate,
        configured: Option<&Rate>,
    ) -> Decision {
        if let Some(state) = self.table.get_mut(&hash) {
            return C::check(state, now, rate);
        }
        let mut state = C::fresh(now, rate);
        let decision = C::check(&mut state, now, rate);
        if !decision.is_allowed() {
            return decision;
        }
        if self.table.len() >= self.capacity {
            if let Err(wait) = self.evict_one::<C>(now, configured) {
                return Decision::deny(Denial::KeysExhausted, rate.burst(), 0, wait);
            }
        }
        if self.table.len() == self.table.capacity() {
            self.rebuild();
        }
        let idle_at = C::idle_at(&state, followed(hash, configured));
        self.next_idle = self.next_idle.min(idle_at);
        self.lap.earliest = self.lap.earliest.min(idle_at);
        self.table.insert(hash, state);
        self.ring.push_back(hash);
        decision
    }

    /// Drops one idle state, examining at most [`SWEEP_STEP`] from the front of the ring;
    /// otherwise the nanoseconds until one may go idle.
    fn evict_one<C: Core<State = S>>(
        &mut self,
        now: u64,
        configured: Option<&Rate>,
    ) -> Result<(), u64> {
        if self.bound_rate.as_ref() != configured {
            // Idle instants depend on the rate: what was learnt at another one is void.
            self.bound_rate = configured.copied();
            self.next_idle = 0;
            self.lap = Lap::DONE;
        }
        if now < self.next_idle {
            return Err(self.next_idle - now);
        }
        // The earliest idle instant among the states examined now, for the refusal.
        let mut soonest = u64::MAX;
        for _ in 0..SWEEP_STEP.min(self.ring.len()) {
            if self.lap.left == 0 {
                self.lap = Lap {
                    left: self.ring.len(),
                    earliest: u64::MAX,
                };
            }
            self.lap.left -= 1;
            let Some(hash) = self.ring.pop_front() else {
                break;
            };
            #[cfg(test)]
            {
                self.examined += 1;
            }
            let idle_at = self
                .table
                .get(&hash)
                .map_or(0, |state| C::idle_at(state, followed(hash, configured)));
            if idle_at <= now {
                self.table.remove(&hash);
                self.counters.evicted += 1;
                tracing::trace!(target: "resilience::rate_limit", kept = self.table.len(), "evicted an idle key");
                return Ok(());
            }
            self.ring.push_back(hash);
            soonest = soonest.min(idle_at);
            self.lap.earliest = self.lap.earliest.min(idle_at);
            if self.lap.left == 0 {
                // Every state was examined (or inserted) during this walk, and a state's
                // idle instant only moves later at one rate: a bound for all of them.
                self.next_idle = self.lap.earliest;
                if now < self.next_idle {
                    break;
                }
            }
        }
        let until = if self.next_idle > now {
            self.next_idle
        } else {
            soonest
        };
        Err(until.saturating_sub(now).max(1))
    }

    /// Moves the states into a table allocated for the full capacity, or for twice the
    /// states held when the capacity is past `RESERVE_WHOLE`. Called when the table has no
    /// free slot left: at the first insert, as a very large shard grows, and when removals
    /// left tombstones that would otherwise make hashbrown double the table although the
    /// shard is within bounds. Reserving a huge `max_keys` (`usize::MAX` from a config file)
    /// whole would ask for more memory than exists.
    fn rebuild(&mut self) {
        let grown = self.table.len().saturating_mul(2).max(RESERVE_WHOLE);
        let target = self.capacity.min(grown);
        let mut table = Table::with_capacity_and_hasher(target, Default::default());
        table.extend(self.table.drain());
        self.table = table;
        // The ring never holds more than `capacity` hashes.
        self.ring
            .reserve_exact(target.saturating_sub(self.ring.len()));
    }
}

/// Per-shard capacities adding up to `max_keys`: the fewest shards (up to [`MAX_SHARDS`]) of
/// at least [`MIN_SHARD_BUCKETS`] slots whose capacities fill their tables to hashbrown's
/// maximum load when full.
/// Shards of up to this many keys reserve their whole capacity at the first insert, so a new
/// key allocates nothing; larger ones grow with the keys they see.
const RESERVE_WHOLE: usize = 1 << 13;

fn layout(max_keys: usize) -> Vec<usize> {
    let max_keys = max_keys.max(1);
    let mut buckets = MIN_SHARD_BUCKETS;
    let shards = loop {
        // hashbrown holds at most 7/8 of its buckets (tables of 8 buckets and more).
        let shards = max_keys.div_ceil(buckets / 8 * 7);
        if shards <= MAX_SHARDS {
            break shards;
        }
        buckets *= 2;
    };
    let (base, extra) = (max_keys / shards, max_keys % shards);
    (0..shards).map(|i| base + usize::from(i < extra)).collect()
}

/// One keyed store per algorithm, chosen at construction.
/// One decision asked of the budgets: at `now`, against `rate`, counted in the metrics only
/// if `counted`. `configured` is the limiter's rate now, which eviction respects for the
/// states whose hash has [`FOLLOWS_CONFIGURED`] set (`None` when no state follows it).
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    pub(crate) now: u64,
    pub(crate) rate: &'a Rate,
    pub(crate) configured: Option<&'a Rate>,
    pub(crate) counted: bool,
}

#[cfg(test)]
impl<'a> Ask<'a> {
    /// A counted request at `now`, at `rate`, with `rate` the configured one.
    pub(crate) fn counted_at(now: u64, rate: &'a Rate) -> Self {
        Self {
            now,
            rate,
            configured: Some(rate),
            counted: true,
        }
    }
}

pub(crate) enum Stores {
    Gcra(Store<Gcra>),
    TokenBucket(Store<TokenBucket>),
    SlidingWindow(Store<SlidingWindow>),
    SlidingLog(Store<SlidingLog>),
    Sketch(Sketch),
}

impl Stores {
    pub(crate) fn new(algorithm: Algorithm, max_keys: usize, sketch: SketchSize) -> Self {
        match algorithm {
            Algorithm::Gcra => Self::Gcra(Store::new(max_keys)),
            Algorithm::TokenBucket => Self::TokenBucket(Store::new(max_keys)),
            Algorithm::SlidingWindow => Self::SlidingWindow(Store::new(max_keys)),
            Algorithm::SlidingLog => Self::SlidingLog(Store::new(max_keys)),
            Algorithm::SketchedWindow => Self::Sketch(Sketch::new(sketch, max_keys)),
        }
    }

    pub(crate) fn check(&self, hash: u64, ask: Ask<'_>) -> Decision {
        match self {
            Self::Gcra(store) => store.check(hash, ask),
            Self::TokenBucket(store) => store.check(hash, ask),
            Self::SlidingWindow(store) => store.check(hash, ask),
            Self::SlidingLog(store) => store.check(hash, ask),
            Self::Sketch(sketch) => sketch.check(hash, ask),
        }
    }

    /// The decision of a first request on a fresh state of `algorithm`.
    pub(crate) fn fresh_decision(algorithm: Algorithm, now: u64, rate: &Rate) -> Decision {
        fn first<C: Core>(now: u64, rate: &Rate) -> Decision {
            C::check(&mut C::fresh(now, rate), now, rate)
        }
        match algorithm {
            Algorithm::Gcra => first::<Gcra>(now, rate),
            Algorithm::TokenBucket => first::<TokenBucket>(now, rate),
            Algorithm::SlidingWindow | Algorithm::SketchedWindow => {
                first::<SlidingWindow>(now, rate)
            }
            Algorithm::SlidingLog => first::<SlidingLog>(now, rate),
        }
    }

    pub(crate) fn peek(&self, hash: u64, now: u64, rate: &Rate) -> Decision {
        match self {
            Self::Gcra(store) => store.peek(hash, now, rate),
            Self::TokenBucket(store) => store.peek(hash, now, rate),
            Self::SlidingWindow(store) => store.peek(hash, now, rate),
            Self::SlidingLog(store) => store.peek(hash, now, rate),
            Self::Sketch(sketch) => sketch.peek(hash, now, rate),
        }
    }

    pub(crate) fn count(&self, hash: u64, decision: &Decision) {
        match self {
            Self::Gcra(store) => store.count(hash, decision),
            Self::TokenBucket(store) => store.count(hash, decision),
            Self::SlidingWindow(store) => store.count(hash, decision),
            Self::SlidingLog(store) => store.count(hash, decision),
            Self::Sketch(sketch) => sketch.count(hash, decision),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Gcra(store) => store.len(),
            Self::TokenBucket(store) => store.len(),
            Self::SlidingWindow(store) => store.len(),
            Self::SlidingLog(store) => store.len(),
            Self::Sketch(sketch) => sketch.len(),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        match self {
            Self::Gcra(store) => store.counters(),
            Self::TokenBucket(store) => store.counters(),
            Self::SlidingWindow(store) => store.counters(),
            Self::SlidingLog(store) => store.counters(),
            Self::Sketch(sketch) => sketch.counters(),
        }
    }
}

/// The rate a handle applies, readable on every check without a lock and replaceable at run
/// time as one value: a sequence lock over plain atomics. Readers retry in the rare case
/// that they overlap a write; writers are serialised by the handle's config mutex.
///
/// Every part is stored as it is read, with nothing left to work out per check: the period
/// as whole seconds and nanoseconds (not a nanosecond count that a `Duration` would divide),
/// and GCRA's own numbers ([`Pace`]) apart, so a single limiter's check reads those three
/// words and nothing else.
#[derive(Debug)]
pub struct RateCell {
    sequence: AtomicU64,
    counts: AtomicU64,
    seconds: AtomicU64,
    nanos: AtomicU64,
    interval: AtomicU64,
    window: AtomicU64,
    width: AtomicU64,
}

/// What GCRA needs of a rate: its emission interval, how far ahead of now the TAT may run
/// (`burst` intervals) and the burst itself, in nanoseconds and requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub(crate) interval: u64,
    pub(crate) width: u64,
    pub(crate) burst: u32,
}

impl Pace {
    #[inline]
    pub(crate) const fn of(rate: &Rate) -> Self {
        Self {
            interval: rate.interval_nanos(),
            width: rate.width_nanos(),
            burst: rate.burst(),
        }
    }
}

impl RateCell {
    pub(crate) fn new(rate: Rate) -> Self {
        let cell = Self {
            sequence: AtomicU64::new(0),
            counts: AtomicU64::new(0),
            seconds: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            interval: AtomicU64::new(0),
            window: AtomicU64::new(0),
            width: AtomicU64::new(0),
        };
        cell.store(rate);
        cell
    }

    /// Reads `read` of the cell's parts as of one write: retried if a write overlapped it.
    #[inline(always)]
    fn consistent<T>(&self, read: impl Fn(&Self) -> T) -> T {
        loop {
            let before = self.sequence.load(Ordering::Acquire);
            if before & 1 == 0 {
                let value = read(self);
                fence(Ordering::Acquire);
                if self.sequence.load(Ordering::Relaxed) == before {
                    return value;
                }
            }
            std::hint::spin_loop();
        }
    }

    pub(crate) fn load(&self) -> Rate {
        self.consistent(|cell| {
            let counts = cell.counts.load(Ordering::Relaxed);
            let seconds = cell.seconds.load(Ordering::Relaxed);
            // Below a second: a `Duration` takes it as it is.
            let nanos = cell.nanos.load(Ordering::Relaxed) as u32;
            let period = Duration::new(seconds, nanos);
            let interval = cell.interval.load(Ordering::Relaxed);
            let window = cell.window.load(Ordering::Relaxed);
            Rate::from_stored(
                (counts >> 32) as u32,
                counts as u32,
                period,
                interval,
                window,
            )
        })
    }

    /// GCRA's numbers of the rate, as [`load`](Self::load)ed with it.
    #[inline]
    pub(crate) fn pace(&self) -> Pace {
        self.consistent(|cell| Pace {
            interval: cell.interval.load(Ordering::Relaxed),
            width: cell.width.load(Ordering::Relaxed),
            burst: cell.counts.load(Ordering::Relaxed) as u32,
        })
    }

    /// Replaces the rate. Callers hold the handle's config lock, so writes never overlap.
    pub(crate) fn store(&self, rate: Rate) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence.store(sequence + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let counts = u64::from(rate.count()) << 32 | u64::from(rate.burst());
        self.counts.store(counts, Ordering::Relaxed);
        let period = rate.period();
        self.seconds.store(period.as_secs(), Ordering::Relaxed);
        self.nanos
            .store(u64::from(period.subsec_nanos()), Ordering::Relaxed);
        self.interval
            .store(rate.interval_nanos(), Ordering::Relaxed);
        self.window.store(rate.window_nanos(), Ordering::Relaxed);
        self.width.store(rate.width_nanos(), Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn layouts_add_up_and_fill_their_tables() {
        for max_keys in [1, 3, 1_000, 1_792, 1_793, 10_000, 1_000_000, 10_000_000] {
            let shards = layout(max_keys);
            assert_eq!(shards.iter().sum::<usize>(), max_keys, "{max_keys}");
            assert!(shards.len() <= MAX_SHARDS);
        }
        assert_eq!(layout(3), [3]);
        assert_eq!(layout(10_000).len(), 6);
        // A million keys: 35 shards of 28,571 or 28,572 in tables of 32,768 slots.
        let million = layout(1_000_000);
        assert_eq!(million.len(), 35);
        assert!(million.iter().all(|&c| c <= 32_768 / 8 * 7));
    }

    #[test]
    fn the_rate_cell_round_trips() {
        let rate = Rate::per_minute(90).with_burst(7);
        let cell = RateCell::new(rate);
        let loaded = cell.load();
        assert_eq!(loaded, rate);
        assert_eq!(loaded.interval_nanos(), rate.interval_nanos());
        assert_eq!(loaded.window_nanos(), rate.window_nanos());
        let pace = cell.pace();
        assert_eq!(
            (pace.interval, pace.width, pace.burst),
            (rate.interval_nanos(), rate.width_nanos(), 7)
        );
        cell.store(Rate::per_second(3));
        assert_eq!(cell.load(), Rate::per_second(3));
        // A period with a fraction of a second keeps it exactly.
        let odd = Rate::new(3, Duration::from_millis(1_500))
            .unwrap()
            .with_burst(2);
        cell.store(odd);
        assert_eq!(cell.load(), odd);
        assert_eq!(cell.load().period(), Duration::from_millis(1_500));
        assert_eq!(cell.pace().width, odd.width_nanos());
    }

    #[test]
    fn a_full_store_evicts_only_idle_keys() {
        let store = Store::<Gcra>::new(3);
        assert_eq!(store.shard_count(), 1);
        let rate = Rate::per_second(1);
        for key in 1..=3 {
            assert!(store.check(key, Ask::counted_at(0, &rate)).is_allowed());
        }
        // Full of live keys: a fourth is refused until the first goes idle, at 1 s.
        let refused = store.check(4, Ask::counted_at(SECOND / 2, &rate));
        assert_eq!(refused.denial(), Some(Denial::KeysExhausted));
        assert_eq!(refused.retry_after(), Some(Duration::from_millis(500)));
        assert_eq!(store.len(), 3);
        // Key 1 is denied and stays so: its budget was not touched.
        assert_eq!(
            store.check(1, Ask::counted_at(SECOND / 2, &rate)).denial(),
            Some(Denial::RateExceeded)
        );
        // Keys 2 and 3 go idle at 1 s; key 1 is checked again at 1 s and stays live. A new
        // key evicts one idle key (key 1, live, moves to the back of the ring; key 2 goes).
        assert!(store.check(1, Ask::counted_at(SECOND, &rate)).is_allowed());
        assert!(store.check(4, Ask::counted_at(SECOND, &rate)).is_allowed());
        assert_eq!(store.len(), 3);
        let counters = store.counters();
        assert_eq!(
            counters,
            Counters {
                allowed: 5,
                rate_exceeded: 1,
                refused: 1,
                evicted: 1,
            }
        );
    }

    #[test]
    fn churn_never_grows_the_table_past_its_slots() {
        let store = Store::<Gcra>::new(1_000);
        let rate = Rate::per_second(1);
        for round in 0..50_u64 {
            for key in 0..1_000_u64 {
                let hash = (round * 1_000 + key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                store.check(hash, Ask::counted_at(round * SECOND, &rate));
            }
            let shard = lock(&store.shards[0]);
            assert!(shard.table.len() <= 1_000);
            assert!(
                shard.table.capacity() <= 1_792,
                "{}",
                shard.table.capacity()
            );
        }
        assert_eq!(store.counters().refused, 0);
    }

    /// Fills a one-shard store with keys last used at `0, 1, 2, ...` ms, at one per second.
    fn staggered<C: Core>(keys: u64) -> Store<C> {
        let store = Store::<C>::new(keys as usize);
        let rate = Rate::per_second(1);
        for key in 0..keys {
            assert!(store
                .check(key, Ask::counted_at(key * MS, &rate))
                .is_allowed());
        }
        store
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn churn_on_a_full_shard_costs_a_bounded_number_of_states_per_new_key() {
        let store = staggered::<Gcra>(1_000);
        let rate = Rate::per_second(1);
        // From 1 s on, one key goes idle every millisecond and one new key arrives.
        for step in 0..5_000_u64 {
            let before = lock(&store.shards[0]).examined;
            let now = SECOND + step * MS;
            let decision = store.check(1_000 + step, Ask::counted_at(now, &rate));
            assert!(decision.is_allowed(), "step {step}: {decision:?}");
            let examined = lock(&store.shards[0]).examined - before;
            assert!(examined <= SWEEP_STEP as u64, "{examined} at step {step}");
        }
        let counters = store.counters();
        assert_eq!((counters.evicted, counters.refused), (5_000, 0));
        assert_eq!(store.len(), 1_000);

        // A full shard of live keys: a walk round the ring learns when the first goes idle,
        // then new keys are refused without examining anything.
        let store = staggered::<Gcra>(1_000);
        let mut refused = 0;
        for key in 1_000..1_100_u64 {
            let before = lock(&store.shards[0]).examined;
            let decision = store.check(key, Ask::counted_at(SECOND / 2, &rate));
            assert_eq!(decision.denial(), Some(Denial::KeysExhausted));
            if key >= 1_000 + 1_000 / SWEEP_STEP as u64 {
                // The walk is over: the exact wait until key 0 goes idle.
                assert_eq!(decision.retry_after(), Some(Duration::from_millis(500)));
            }
            let examined = lock(&store.shards[0]).examined - before;
            assert!(examined <= SWEEP_STEP as u64);
            refused += 1;
        }
        assert_eq!(refused, 100);
        let shard = lock(&store.shards[0]);
        assert_eq!(
            shard.examined, 1_000,
            "one walk round the ring, then O(1) refusals"
        );
        assert_eq!(shard.next_idle, SECOND);
    }

    #[test]
    fn a_lowered_rate_keeps_budgets_that_are_not_yet_whole_at_it() {
        let fast = Rate::per_second(1);
        let slow = Rate::new(1, Duration::from_secs(10)).unwrap();
        for_each_algorithm(&fast, &slow);
    }

    fn for_each_algorithm(fast: &Rate, slow: &Rate) {
        fn run<C: Core>(fast: &Rate, slow: &Rate, evicts: bool) {
            let store = Store::<C>::new(1);
            let (ada, bob) = (1 | FOLLOWS_CONFIGURED, 2 | FOLLOWS_CONFIGURED);
            assert!(store.check(ada, Ask::counted_at(0, fast)).is_allowed());
            // At 2 s the budget is whole again at the old rate, not at the new one (1 per
            // 10 s): only a GCRA TAT in the past means a whole budget at any rate.
            let newcomer = store.check(bob, Ask::counted_at(2 * SECOND, slow));
            assert_eq!(
                newcomer.is_allowed(),
                evicts,
                "{}",
                std::any::type_name::<C>()
            );
            if !evicts {
                assert_eq!(newcomer.denial(), Some(Denial::KeysExhausted));
                let kept = store.check(ada, Ask::counted_at(2 * SECOND, slow));
                assert_eq!(kept.denial(), Some(Denial::RateExceeded));
            }
        }
        run::<Gcra>(fast, slow, true);
        run::<TokenBucket>(fast, slow, false);
        run::<SlidingWindow>(fast, slow, false);
        run::<SlidingLog>(fast, slow, false);
    }
}
