//! The small seedable generator behind every random decision of the crate (chaos injections,
//! adaptive throttling): splitmix64 over one atomic word.
//!
//! The `n`-th output of the sequence seeded with `seed` is `mix(seed + n·γ)`, so a generator
//! shared by every clone of a handle is one relaxed atomic add per draw, and a seed gives the
//! same sequence on any machine (tests fix it).

use std::sync::atomic::{AtomicU64, Ordering};

/// splitmix64's increment, the golden ratio in 64 bits.
pub(crate) const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's output function for the generator state `state`.
pub(crate) fn mix(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in `[0, 1)` from the top 53 bits of `bits`.
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

/// The `n`-th number in `[0, 1)` of the sequence seeded with `seed`: what the `n`-th draw of
/// a [`SplitMix`] seeded with `seed` gives, for a caller that numbers its draws itself.
#[inline]
pub(crate) fn nth_unit(seed: u64, n: u64) -> f64 {
    unit(mix(seed.wrapping_add(n.wrapping_mul(GAMMA))))
}

/// A shared splitmix64 generator: draws from any thread, one atomic add each.
#[derive(Debug)]
pub(crate) struct SplitMix {
    state: AtomicU64,
}

impl SplitMix {
    /// Seeded with `seed`, or randomly when `None`.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self {
            state: AtomicU64::new(seed.unwrap_or_else(|| fastrand::u64(..))),
        }
    }

    /// The next number in `[0, 1)`.
    #[inline]
    pub(crate) fn next_unit(&self) -> f64 {
        let state = self.state.fetch_add(GAMMA, Ordering::Relaxed);
        nth_unit(state, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splitmix_matches_its_reference_values() {
        // The first outputs of splitmix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(mix(GAMMA), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(GAMMA.wrapping_mul(2)), 0x6E78_9E6A_A1B9_65F4);
        let generator = SplitMix::new(Some(0));
        assert_eq!(generator.next_unit(), unit(0xE220_A839_7B1D_CDAF));
        assert_eq!(generator.next_unit(), unit(0x6E78_9E6A_A1B9_65F4));
        assert_eq!(nth_unit(0, 2), unit(0x6E78_9E6A_A1B9_65F4));
    }

    proptest! {
        #[test]
        fn units_lie_in_the_half_open_interval(bits in any::<u64>()) {
            let u = unit(bits);
            prop_assert!((0.0..1.0).contains(&u));
        }
    }
}
