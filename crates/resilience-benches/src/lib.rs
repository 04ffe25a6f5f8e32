//! Criterion benchmarks for `resilience`, with its peers measured in the same run.
//!
//! The library is empty; the figures come from `benches/`. Run one group with
//!
//! ```text
//! cargo bench -p resilience-benches --bench circuit_breaker -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Every group holds our entries, the peers' closest equivalents and a `floor_atomic` entry
//! (one uncontended atomic increment), so each figure can be read against the physical floor.
