//! Numbers in decimal for header values and rate-limit keys, without the formatting
//! machinery: small ones from a static table, larger ones written digit by digit.

use std::cell::RefCell;

use bytes::Bytes;
use http::header::HeaderValue;

/// Numbers below this are read from [`SMALL_DECIMALS`].
const SMALL: usize = 1000;

/// The decimal digits of every number below [`SMALL`], three bytes each, left-aligned and
/// padded with zero bytes.
static SMALL_DECIMALS: [u8; SMALL * 3] = {
    let mut table = [0; SMALL * 3];
    let mut number = 0;
    while number < SMALL {
        let digits = decimal_len(number);
        let mut rest = number;
        let mut index = digits;
        while index > 0 {
            index -= 1;
            // Below 10: the cast keeps every bit.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (rest % 10) as u8;
            table[number * 3 + index] = b'0' + digit;
            rest /= 10;
        }
        number += 1;
    }
    table
};

/// How many decimal digits a number below [`SMALL`] has.
const fn decimal_len(number: usize) -> usize {
    if number >= 100 {
        3
    } else if number >= 10 {
        2
    } else {
        1
    }
}

/// The digits of `number` (below 1000) as the first `len` bytes of three, the rest zero
/// bytes: copying three bytes is cheaper than copying exactly `len`.
pub(crate) fn padded_digits(number: u16) -> (&'static [u8; 3], usize) {
    let number = usize::from(number);
    let start = number * 3;
    let padded = SMALL_DECIMALS[start..start + 3]
        .try_into()
        .expect("three bytes");
    (padded, decimal_len(number))
}

/// `number` in decimal. A header value owns its bytes, so formatting one allocates: the
/// small numbers most budgets and every reset are made of come from a static table, and each
/// thread keeps the larger ones it formatted last (a limit, and a remaining count that stays
/// near it while a client is well under its rate) to hand out clones sharing their bytes.
pub(crate) fn header_value(number: u64) -> HeaderValue {
    if let Ok(small) = usize::try_from(number) {
        if small < SMALL {
            let start = small * 3;
            let digits = Bytes::from_static(&SMALL_DECIMALS[start..start + decimal_len(small)]);
            return HeaderValue::from_maybe_shared(digits).expect("decimal digits");
        }
    }
    /// Slots of the per-thread cache, chosen by the number's low bits.
    const SLOTS: usize = 8;
    thread_local! {
        static LARGE: RefCell<[Option<(u64, HeaderValue)>; SLOTS]> =
            const { RefCell::new([const { None }; SLOTS]) };
    }
    // The low bits pick the slot: the remainder keeps every bit it is given.
    #[allow(clippy::cast_possible_truncation)]
    let slot = (number % SLOTS as u64) as usize;
    LARGE.with_borrow_mut(|cache| match &cache[slot] {
        Some((cached, value)) if *cached == number => value.clone(),
        _ => {
            let value = large_header_value(number);
            cache[slot] = Some((number, value.clone()));
            value
        }
    })
}

/// `number` in decimal in one allocation, which clones share: `HeaderValue::from(u64)`
/// makes two, and bytes copied from a slice make another when first cloned.
fn large_header_value(number: u64) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from_owner(Digits::of(number))).expect("decimal digits")
}

/// The decimal digits of a number, right-aligned in a buffer as long as the longest.
struct Digits {
    buffer: [u8; 20],
    start: usize,
}

impl Digits {
    fn of(number: u64) -> Self {
        let mut digits = Self {
            buffer: [0; 20],
            start: 20,
        };
        let mut rest = number;
        loop {
            digits.start -= 1;
            // Below 10: the cast keeps every bit.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (rest % 10) as u8;
            digits.buffer[digits.start] = b'0' + digit;
            rest /= 10;
            if rest == 0 {
                break digits;
            }
        }
    }
}

impl AsRef<[u8]> for Digits {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal() {
        for number in (0..2_000).chain([9_999, 1_000_000_000, u64::MAX]) {
            assert_eq!(header_value(number), number.to_string().as_str());
            assert_eq!(large_header_value(number), number.to_string().as_str());
        }
        // Again, from the cache, and past numbers that share a slot.
        for number in [1_000_000_000, 1_000_000_008, 1_000_000_000, 9_999, u64::MAX] {
            assert_eq!(header_value(number), number.to_string().as_str());
        }
    }

    #[test]
    fn small_numbers_come_padded() {
        for number in 0..1000 {
            let (padded, len) = padded_digits(number);
            let text = number.to_string();
            assert_eq!(&padded[..len], text.as_bytes());
            assert!(padded[len..].iter().all(|&byte| byte == 0));
        }
    }
}
