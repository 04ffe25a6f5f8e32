//! [`FallbackBuilder`]: the chain, the selection, and validation.

use std::fmt;
use std::future::Future;

use super::chain::Step;
use super::handle::Predicate;
use super::{ErrorClass, Fallback, FallbackConfig};
use crate::config::{check, ConfigError, ConfigProblem};
use crate::Error;

/// Builds a [`Fallback`]: the fallbacks in the order they are tried, and which errors use
/// them. Nothing is checked until [`build`](Self::build), which requires at least one
/// fallback.
///
/// ```
/// use resilience::fallback::{ErrorClass, Fallback};
/// use resilience::Error;
///
/// # fn main() -> Result<(), resilience::ConfigError> {
/// let prices = Fallback::<u32, String>::builder("prices")
///     .fallback_on([ErrorClass::Rejected, ErrorClass::Timeout])
///     .with(|error: &Error<String>| Err(format!("no cached price after {error}")))
///     .value(0)
///     .build()?;
/// assert_eq!(prices.len(), 2);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct FallbackBuilder<T, E> {
    name: String,
    config: FallbackConfig,
    chain: Vec<Step<T, E>>,
    predicate: Option<Predicate<E>>,
}

impl<T, E> FallbackBuilder<T, E> {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            config: FallbackConfig::default(),
            chain: Vec::new(),
            predicate: None,
        }
    }

    /// Adds a static value to the chain. It is cloned out each time it is used, and never
    /// called, even if it is a function.
    pub fn value(mut self, value: T) -> Self
    where
        T: Clone + Send + Sync + 'static,
    {
        self.chain.push(Step::value(value));
        self
    }

    /// Adds a function of the primary error to the chain; an `Err` moves on to the next
    /// fallback.
    pub fn with<F>(mut self, fallback: F) -> Self
    where
        F: Fn(&Error<E>) -> Result<T, E> + Send + Sync + 'static,
    {
        self.chain.push(Step::Sync(Box::new(fallback)));
        self
    }

    /// Adds an async function of the primary error to the chain; an `Err` moves on to the next
    /// fallback.
    ///
    /// The function sees the error by reference and returns a future that does not borrow
    /// it: take what you need from the error first, then move that into the `async` block.
    ///
    /// ```
    /// # use resilience::fallback::Fallback;
    /// # use resilience::Error;
    /// # fn main() -> Result<(), resilience::ConfigError> {
    /// let fallback = Fallback::<String, std::io::Error>::builder("profile")
    ///     .with_async(|error: &Error<std::io::Error>| {
    ///         let why = error.to_string();
    ///         async move { Ok(format!("cached profile ({why})")) }
    ///     })
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_async<F, Fut>(mut self, fallback: F) -> Self
    where
        F: Fn(&Error<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.chain.push(Step::Async(Box::new(move |error| {
            Box::pin(fallback(error))
        })));
        self
    }

    /// Falls back only for errors of these classes (default: all); others are returned
    /// untouched.
    pub fn fallback_on(mut self, classes: impl IntoIterator<Item = ErrorClass>) -> Self {
        self.config.fallback_on = classes.into_iter().collect();
        self
    }

    /// Falls back only for errors for which `predicate` holds (within the selected classes).
    /// Replaces an earlier [`when`](Self::when) or [`when_inner`](Self::when_inner).
    ///
    /// The predicate runs isolated: if it panics, the error is returned untouched and the
    /// panic is reported to the [error handler](crate::set_error_handler).
    pub fn when<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&Error<E>) -> bool + Send + Sync + 'static,
    {
        self.predicate = Some(Box::new(predicate));
        self
    }

    /// Falls back only for the operation's own errors ([`Error::Inner`]) for which
    /// `predicate` holds; every other error is returned untouched. Replaces an earlier
    /// [`when`](Self::when) or [`when_inner`](Self::when_inner).
    pub fn when_inner<P>(self, predicate: P) -> Self
    where
        P: Fn(&E) -> bool + Send + Sync + 'static,
        E: 'static,
    {
        self.when(move |error| error.inner().is_some_and(&predicate))
    }

    /// Replaces the plain configuration (which classes fall back).
    pub fn config(mut self, config: FallbackConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates the name, the configuration and the chain, and builds the fallback.
    pub fn build(self) -> Result<Fallback<T, E>, ConfigError> {
        check::name(&self.name)?;
        self.config.validate()?;
        if self.chain.is_empty() {
            return Err(ConfigError::new(
                "fallbacks",
                ConfigProblem::Invalid("at least one fallback is required".to_owned()),
            ));
        }
        Ok(Fallback::new_validated(
            &self.name,
            self.config,
            self.chain,
            self.predicate,
        ))
    }
}

impl<T, E> fmt::Debug for FallbackBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("chain", &self.chain)
            .field("when", &self.predicate.is_some())
            .finish()
    }
}
