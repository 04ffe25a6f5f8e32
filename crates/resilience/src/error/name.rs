//! [`Name`]: an instance's name as a [`Rejection`](super::Rejection) carries it.
//!
//! A rejection is made on the hot path of a refusing pattern (an open circuit breaker refuses
//! every call) and usually dropped at once. Sharing the name through an `Arc<str>` costs an
//! atomic increment to make it and an atomic decrement to drop it, a large part of a refusal
//! that otherwise reads one atomic word and the clock. Most names are short, so a short name
//! is copied into the rejection instead: making, cloning and dropping it touch no shared
//! counter. Names longer than 16 bytes are shared.

use std::fmt;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::sync::Arc;

/// The longest name kept inline.
const INLINE: usize = 16;

/// An instance's name: copied when short, shared when long.
#[derive(Clone)]
pub(crate) enum Name {
    Inline(Inline),
    Shared(Arc<str>),
}

/// A short name's bytes, laid out so that copying it is a copy of whole aligned words.
///
/// A rejection is built, moved into a `Result` and matched at once, each a copy. A name whose
/// size is not a whole number of words is copied in pieces that overlap, or through the stack,
/// and the next copy's wider loads then straddle stores still in flight: a load like that
/// waits for them to reach the cache, a stall of a dozen cycles on every refusal. Sixteen
/// bytes and a word-sized length are built and moved in the same two words; the length, kept
/// one above the count of bytes and so never zero, leaves zero to tell a shared name apart in
/// the same 24 bytes.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Inline {
    bytes: [u8; INLINE],
    len_plus_one: NonZeroUsize,
}

impl Name {
    pub(crate) fn new(name: &str) -> Self {
        if name.len() > INLINE {
            return Self::Shared(Arc::from(name));
        }
        let mut bytes = [0; INLINE];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        let len_plus_one = NonZeroUsize::MIN.saturating_add(name.len());
        Self::Inline(Inline {
            bytes,
            len_plus_one,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`, so always UTF-8; checked anyway rather than trusted,
            // as the crate has no `unsafe`. Only readers of the name pay for it.
            Self::Inline(inline) => {
                let len = inline.len_plus_one.get() - 1;
                std::str::from_utf8(&inline.bytes[..len])
                    .expect("an inline name is a whole copy of a str")
            }
            Self::Shared(name) => name,
        }
    }
}

impl From<Arc<str>> for Name {
    fn from(name: Arc<str>) -> Self {
        Self::Shared(name)
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_copied_and_long_ones_shared() {
        let short = Name::new("payments");
        assert!(matches!(short, Name::Inline(_)));
        assert_eq!(short.as_str(), "payments");

        let longest = "é".repeat(INLINE / 2);
        assert_eq!(longest.len(), INLINE);
        assert!(matches!(Name::new(&longest), Name::Inline(_)));
        assert_eq!(Name::new(&longest).as_str(), longest);

        let long = "x".repeat(INLINE + 1);
        assert!(matches!(Name::new(&long), Name::Shared(_)));
        assert_eq!(Name::new(&long).as_str(), long);
        assert_eq!(Name::new(""), Name::from(Arc::<str>::from("")));
    }

    #[test]
    fn equal_by_content_and_printed_as_the_str() {
        assert_eq!(
            Name::new("payments"),
            Name::from(Arc::<str>::from("payments"))
        );
        assert_ne!(Name::new("payments"), Name::new("ledger"));
        assert_eq!(format!("{:?}", Name::new("a\"b")), format!("{:?}", "a\"b"));
        assert_eq!(Name::new("ledger").to_string(), "ledger");
        assert_eq!(std::mem::size_of::<Name>(), 24);
    }
}
