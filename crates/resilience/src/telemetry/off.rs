//! The handles without feature `metrics`: zero-sized, and every method an empty inline
//! function, so an instance's instruments take no memory and a recording compiles to nothing.

use std::sync::Arc;

use super::Metric;

/// A monotonic count; without feature `metrics` it records nothing and takes no memory.
#[derive(Clone, Debug)]
pub struct Counter(());

impl Counter {
    /// Registers nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn register(_: &Metric, _: &Arc<str>, _: &[(&'static str, &'static str)]) -> Self {
        Self(())
    }

    /// Does nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn increment(&self) {}
}

/// A value that goes up and down; without feature `metrics` it records nothing.
#[derive(Clone, Debug)]
pub struct Gauge(());

impl Gauge {
    /// Registers nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn register(_: &Metric, _: &Arc<str>, _: &[(&'static str, &'static str)]) -> Self {
        Self(())
    }

    /// Does nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn increment(&self) {}

    /// Does nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn decrement(&self) {}

    /// Does nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn set(&self, _: f64) {}
}

/// A distribution of durations; without feature `metrics` it records nothing.
#[derive(Clone, Debug)]
pub struct Histogram(());

impl Histogram {
    /// Registers nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn register(_: &Metric, _: &Arc<str>, _: &[(&'static str, &'static str)]) -> Self {
        Self(())
    }

    /// Does nothing: feature `metrics` is off.
    #[inline(always)]
    pub fn record(&self, _: std::time::Duration) {}
}
