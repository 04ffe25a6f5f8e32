//! The latency histogram behind [`HedgeDelay::Percentile`](super::HedgeDelay::Percentile).
//!
//! Fixed log-linear buckets over nanoseconds: exact below 16 ns, then 16 buckets per power of
//! two, so every bucket is at most 1/16 (6.25 %) wide relative to its values, from
//! nanoseconds to about 18 minutes (longer latencies share the last bucket). A sub-millisecond
//! service gets a sub-millisecond delay: a histogram of whole milliseconds would put every
//! call of such a service at zero and hedge each one at once.
//!
//! Recording is one atomic add. The percentile is not computed per call: the first call to
//! finish after each `refresh` period recomputes it (one pass over the buckets) and halves
//! every count, so the delay follows the last few periods; every other call reads one atomic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Bits of the value below its leading one that pick the bucket within a power of two.
const SUB_BITS: u32 = 4;
const SUBS: usize = 1 << SUB_BITS;
/// The largest power of two with buckets of its own: 2^40 ns is about 18 minutes.
const MAX_EXP: u32 = 40;
/// Exact values `0..SUBS`, then `SUBS` buckets per power of two from `SUB_BITS` to `MAX_EXP`.
pub(crate) const BUCKETS: usize = SUBS + (MAX_EXP - SUB_BITS + 1) as usize * SUBS;

/// The bucket of a latency of `nanos`.
pub(crate) fn bucket(nanos: u64) -> usize {
    if nanos < SUBS as u64 {
        return nanos as usize;
    }
    let exp = 63 - nanos.leading_zeros();
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (nanos >> (exp - SUB_BITS)) as usize & (SUBS - 1);
    SUBS + (exp - SUB_BITS) as usize * SUBS + sub
}

/// The largest latency, in nanoseconds, that falls in bucket `index`: a percentile is
/// reported as the top of its bucket, so a hedge fires no earlier than it should.
pub(crate) fn upper(index: usize) -> u64 {
    if index < SUBS {
        return index as u64;
    }
    let exp = (index - SUBS) / SUBS + SUB_BITS as usize;
    let sub = ((index - SUBS) % SUBS) as u64;
    let width = 1_u64 << (exp - SUB_BITS as usize);
    ((SUBS as u64 + sub) * width) + width - 1
}

/// The latency, in nanoseconds, below which `percentile` % of `counts` fall, or `None` with
/// fewer than `min_samples` counted.
pub(crate) fn percentile(counts: &[u64], percentile: f64, min_samples: u64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total < min_samples.max(1) {
        return None;
    }
    // The rank of the wanted sample, 1-based: the smallest that covers the percentile.
    let rank = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(upper(index));
        }
    }
    Some(upper(counts.len() - 1))
}

/// The shared histogram and the delay last computed from it.
pub(crate) struct Latencies {
    counts: Box<[AtomicU64]>,
    percentile: f64,
    min_samples: u64,
    refresh: Duration,
    epoch: Instant,
    /// Nanoseconds since `epoch` of the next recomputation.
    next_refresh: AtomicU64,
    /// The current delay in nanoseconds; `u64::MAX` while there are too few samples.
    delay: AtomicU64,
}

impl Latencies {
    pub(crate) fn new(percentile: f64, min_samples: u32, refresh: Duration, now: Instant) -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            percentile,
            min_samples: min_samples.into(),
            refresh,
            epoch: now,
            next_refresh: AtomicU64::new(nanos(refresh)),
            delay: AtomicU64::new(u64::MAX),
        }
    }

    /// The delay for a new call, if enough calls have been measured.
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay.load(Ordering::Relaxed) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Counts one call that took `latency` and finished at `now`; recomputes the delay when
    /// a refresh period has passed.
    pub(crate) fn record(&self, latency: Duration, now: Instant) {
        self.counts[bucket(nanos(latency))].fetch_add(1, Ordering::Relaxed);
        let at = nanos(now.saturating_duration_since(self.epoch));
        let due = self.next_refresh.load(Ordering::Relaxed);
        if at >= due
            && self
                .next_refresh
                .compare_exchange(
                    due,
                    at.saturating_add(nanos(self.refresh)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.refresh();
        }
    }

    /// Recomputes the delay, then halves every count. Only the caller that won the
    /// compare-exchange runs it; concurrent recordings are never lost (a halving subtracts
    /// what it read, not what it finds).
    fn refresh(&self) {
        // On the stack (under 5 KiB): a refresh allocates nothing either.
        let mut counts = [0_u64; BUCKETS];
        for (seen, count) in counts.iter_mut().zip(self.counts.iter()) {
            *seen = count.load(Ordering::Relaxed);
        }
        if let Some(delay) = percentile(&counts, self.percentile, self.min_samples) {
            self.delay.store(delay, Ordering::Relaxed);
        }
        for (count, seen) in self.counts.iter().zip(counts) {
            count.fetch_sub(seen - seen / 2, Ordering::Relaxed);
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for nanos in (0..5_000_u64).chain((1..2_000).map(|n| n * 997_331)) {
            let index = bucket(nanos);
            assert!(index >= last, "{nanos}");
            last = index;
            let top = upper(index);
            assert!(top >= nanos, "{nanos} above its bucket's top {top}");
            // At most 1/16 wider than the value itself.
            assert!(top - nanos <= nanos / 16 + 1, "{nanos}: top {top}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket(1 << MAX_EXP), BUCKETS - 16);
    }

    #[test]
    fn sub_millisecond_latencies_keep_their_scale() {
        let mut counts = vec![0; BUCKETS];
        counts[bucket(100_000)] += 90; // 100 µs
        counts[bucket(400_000)] += 10; // 400 µs
        let p50 = percentile(&counts, 50.0, 1).unwrap();
        assert!((100_000..=106_250).contains(&p50), "{p50}");
        let p95 = percentile(&counts, 95.0, 1).unwrap();
        assert!((400_000..=425_000).contains(&p95), "{p95}");
        assert_eq!(percentile(&counts, 95.0, 101), None);
    }

    #[test]
    fn refresh_sets_the_delay_and_halves_the_counts() {
        let epoch = Instant::now();
        let second = Duration::from_secs(1);
        let latencies = Latencies::new(90.0, 10, second, epoch);
        for _ in 0..20 {
            latencies.record(Duration::from_micros(250), epoch);
        }
        assert_eq!(latencies.delay(), None, "not refreshed yet");
        latencies.record(Duration::from_micros(250), epoch + second);
        let delay = latencies.delay().unwrap();
        assert!(delay >= Duration::from_micros(250) && delay < Duration::from_micros(266));
        let left: u64 = latencies
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        assert_eq!(left, 10, "21 halved, rounding down");
        // The next refresh is a period later.
        latencies.record(Duration::from_millis(5), epoch + second);
        assert!(latencies.delay().unwrap() < Duration::from_millis(1));
    }
}
