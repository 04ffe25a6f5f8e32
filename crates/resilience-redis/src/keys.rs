//! Redis key names: `{prefix}:{kind}:{name}:{<key>}`, safe for Redis Cluster and for any
//! user-supplied key.
//!
//! * The logical key sits inside `{...}`, a Redis Cluster **hash tag**: Cluster places a key
//!   by the part between the first `{` and the next `}`, so every Redis key of one logical
//!   key lives in one slot, and a script touching several of them (a breaker's state, probe
//!   leases and trip votes, tagged with the breaker's name) is legal on a cluster.
//! * **Escaping.** In the key, `%`, `{`, `}`, `:`, whitespace and control bytes are written as
//!   `%XX` (upper-case hex), so a key can neither end the hash tag early nor imitate a
//!   separator. The limiter or breaker name is escaped the same way, and the prefix may not
//!   contain braces (checked when the component is built). The encoding is injective, so two
//!   different `(kind, name, key)` never share a Redis key.
//! * **Never an empty tag.** Redis Cluster hashes a key whose tag is empty (`{}`) as a whole,
//!   which would split a breaker's keys over several slots, so an empty key or name is
//!   written `%e` (again a form the escaping cannot produce).
//! * **Length bound.** An escaped key longer than [`MAX_KEY_BYTES`] is replaced by `%h`
//!   followed by the SHA-1 of the raw key in hex (42 bytes). `%h` cannot come out of the
//!   escaping (which writes `%` only before two hex digits), so a hashed key never equals an
//!   escaped one. Any key is accepted; Redis key names stay short.
//! * **Per-call rates** (`check_rate(key, rate)`) get their own budget: the rate is appended
//!   after the hash tag as `:{count}/{period}` (`:100/60s`, or `:7/1500000000ns` when the
//!   period is not whole seconds) and `:b{burst}` when the burst differs from the count.
//!
//! Examples, with the default prefix `resilience`:
//!
//! | component | logical key | Redis key |
//! |---|---|---|
//! | GCRA limiter `api` | `ada` | `resilience:gcra:api:{ada}` |
//! | sliding-log limiter `api`, `check_rate(key, 100/minute)` | `ada` | `resilience:sliding_log:api:{ada}:100/60s` |
//! | GCRA limiter `api` | `10.0.0.1:443` | `resilience:gcra:api:{10.0.0.1%3A443}` |
//! | breaker `payments` | (the breaker) | `resilience:cb:{payments}`, `resilience:cb:{payments}:probes`, `...:votes` |

use std::fmt::Write;

use resilience::Rate;

/// Escaped keys longer than this are replaced by their SHA-1.
pub const MAX_KEY_BYTES: usize = 128;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "resilience";

/// Whether `prefix` may start key names: non-empty and without braces or whitespace.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && !prefix
            .bytes()
            .any(|b| matches!(b, b'{' | b'}') || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// A builder's check of its `prefix` setting.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), resilience::ConfigError> {
    if valid_prefix(prefix) {
        return Ok(());
    }
    Err(resilience::ConfigError::new(
        "prefix",
        resilience::ConfigProblem::Invalid(
            "must be non-empty, without braces or whitespace".into(),
        ),
    ))
}

/// Appends `part` with `%`, braces, `:`, whitespace and control bytes escaped as `%XX`.
fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        let special = matches!(c, '%' | '{' | '}' | ':') || c.is_whitespace() || c.is_control();
        if special && c.is_ascii() {
            let _ = write!(out, "%{:02X}", c as u32);
        } else if special {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

/// The escaped name, for the part between the kind and the hash tag.
pub(crate) fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    escape_into(&mut out, part);
    out
}

/// The start of every key of one component: `{prefix}:{kind}:{escaped name}:`.
pub(crate) fn base(prefix: &str, kind: &str, name: &str) -> String {
    format!("{prefix}:{kind}:{}:", escape(name))
}

/// `{base}{<escaped or hashed key>}`.
pub(crate) fn tagged(base: &str, key: &str) -> String {
    let mut out = String::with_capacity(base.len() + key.len() + 4);
    out.push_str(base);
    out.push('{');
    let start = out.len();
    escape_into(&mut out, key);
    if key.is_empty() {
        out.push_str("%e");
    } else if out.len() - start > MAX_KEY_BYTES {
        out.truncate(start);
        out.push_str("%h");
        let _ = write!(out, "{}", sha1_smol::Sha1::from(key.as_bytes()).digest());
    }
    out.push('}');
    out
}

/// The keys of the shared breaker `name`: its state hash, its probe leases and its trip
/// votes, all tagged with the name so that they share one slot.
pub(crate) fn breaker(prefix: &str, name: &str) -> [String; 3] {
    let state = tagged(&format!("{prefix}:cb:"), name);
    [format!("{state}:probes"), format!("{state}:votes"), state]
}

/// `{base}{<key>}:{rate}`: the budget of `key` at a per-call `rate`.
pub(crate) fn tagged_with_rate(base: &str, key: &str, rate: &Rate) -> String {
    let mut out = tagged(base, key);
    let period = rate.period();
    if period.subsec_nanos() == 0 {
        let _ = write!(out, ":{}/{}s", rate.count(), period.as_secs());
    } else {
        let _ = write!(out, ":{}/{}ns", rate.count(), period.as_nanos());
    }
    if rate.burst() != rate.count() {
        let _ = write!(out, ":b{}", rate.burst());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn plain_keys_keep_their_shape() {
        let base = base("resilience", "gcra", "api");
        assert_eq!(tagged(&base, "ada"), "resilience:gcra:api:{ada}");
    }

    #[test]
    fn separators_and_braces_are_escaped() {
        let base = base("rl", "gcra", "a:b");
        assert_eq!(base, "rl:gcra:a%3Ab:");
        assert_eq!(tagged(&base, "x}{y:%"), "rl:gcra:a%3Ab:{x%7D%7By%3A%25}");
        assert_eq!(tagged(&base, "a b\n"), "rl:gcra:a%3Ab:{a%20b%0A}");
        assert_eq!(tagged(&base, "\u{2028}"), "rl:gcra:a%3Ab:{%E2%80%A8}");
        // Non-ASCII text that is not special stays as it is.
        assert_eq!(tagged(&base, "zoë"), "rl:gcra:a%3Ab:{zoë}");
    }

    #[test]
    fn long_keys_are_hashed_and_bounded() {
        let base = base("resilience", "gcra", "api");
        let long = "k".repeat(1_000);
        let key = tagged(&base, &long);
        assert_eq!(key.len(), base.len() + 2 + 2 + 40);
        assert!(key.starts_with("resilience:gcra:api:{%h"));
        // Stable across runs and processes.
        assert_eq!(key, tagged(&base, &long));
        assert_ne!(key, tagged(&base, &"k".repeat(999)));
        // A key at the bound is kept as it is.
        let edge = "e".repeat(MAX_KEY_BYTES);
        assert_eq!(tagged(&base, &edge), format!("{base}{{{edge}}}"));
        // Escaping counts towards the bound: 43 colons escape to 129 bytes.
        assert!(tagged(&base, &":".repeat(43)).contains("%h"));
    }

    #[test]
    fn per_call_rates_get_their_own_keys() {
        let base = base("resilience", "sliding_log", "api");
        let minute = tagged_with_rate(&base, "ada", &Rate::per_minute(100));
        assert_eq!(minute, "resilience:sliding_log:api:{ada}:100/60s");
        let burst = tagged_with_rate(&base, "ada", &Rate::per_minute(100).with_burst(5));
        assert_eq!(burst, "resilience:sliding_log:api:{ada}:100/60s:b5");
        let odd = Rate::new(7, Duration::from_millis(1_500)).unwrap();
        assert_eq!(
            tagged_with_rate(&base, "ada", &odd),
            "resilience:sliding_log:api:{ada}:7/1500000000ns"
        );
        assert_ne!(minute, tagged(&base, "ada"));
    }

    /// Every script touches the keys of one slot only, or Redis Cluster refuses it
    /// (`CROSSSLOT`): a limiter's script one key, a breaker's its three keys.
    #[test]
    fn every_script_touches_one_slot() {
        use redis::cluster_routing::Slot;
        let names = [
            "", "api", "a:b", "{", "}", "{x}", "}{", "%e", "%h", "zoë", " ", "\u{0}",
        ];
        let mut many: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        many.extend((0..500).map(|i| format!("user-{i}:{{{i}}}")));
        many.push("k".repeat(1_000));
        let mut slots = std::collections::HashSet::new();
        for name in &many {
            let [probes, votes, state] = breaker("resilience", name);
            let slot = Slot::for_key(&state);
            assert_eq!(
                Slot::for_key(&probes),
                slot,
                "{name:?}: {probes} vs {state}"
            );
            assert_eq!(Slot::for_key(&votes), slot, "{name:?}: {votes} vs {state}");
            slots.insert(slot);
            // The logical key decides the slot, not the limiter: one user's budgets under
            // different rates stay together, and users spread over the cluster.
            let base = base("resilience", "gcra", name);
            let key = tagged(&base, name);
            let minute = tagged_with_rate(&base, name, &Rate::per_minute(10));
            assert_eq!(
                Slot::for_key(&key),
                Slot::for_key(&minute),
                "{key} vs {minute}"
            );
        }
        assert!(
            slots.len() > 400,
            "breakers spread over {} slots",
            slots.len()
        );
        // An empty name is a tag of its own, not an empty tag hashed as the whole key.
        assert_eq!(breaker("resilience", "")[2], "resilience:cb:{%e}");
        assert_ne!(tagged("b:", ""), tagged("b:", "%e"));
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(valid_prefix("resilience"));
        assert!(valid_prefix("app:rl"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a{b}"));
        assert!(!valid_prefix("a b"));
    }
}
