//! Named instances: one breaker (or bulkhead, ...) per dependency, found by name.
//!
//! A [`Registry<T>`] maps names to handles of one pattern kind. Each kind has a process-wide
//! registry ([`Registry::global`]) and users may own as many more as they like
//! ([`Registry::new`]), for example one per tenant or per test.
//!
//! [`get_or_create`](Registry::get_or_create) never silently ignores a config: asking for an
//! existing name with a different config is an error ([`RegistryError::ConfigMismatch`]),
//! rather than the old instance with the new settings dropped. To change a live instance's
//! settings, call its `set_config`; its state, listeners and metrics stay.
//!
//! This module knows no pattern. A pattern, here or in another crate, implements
//! [`Registered`] for its handle; questions only that pattern answers live with it, as the
//! circuit breaker's [`open_circuits`](Registry::open_circuits) and
//! [`reset_all`](Registry::reset_all) do. A crate outside this one writes them as an extension
//! trait over [`Registry::instances`]:
//!
//! ```
//! use resilience::circuit_breaker::CircuitBreaker;
//! use resilience::registry::Registry;
//!
//! /// Operator commands on a registry of breakers.
//! trait TripAll {
//!     fn trip_all(&self);
//! }
//!
//! impl TripAll for Registry<CircuitBreaker> {
//!     fn trip_all(&self) {
//!         for breaker in self.instances() {
//!             breaker.trip();
//!         }
//!     }
//! }
//!
//! let registry = Registry::<CircuitBreaker>::new();
//! registry.get_or_create("payments", Default::default()).unwrap();
//! registry.trip_all();
//! assert_eq!(registry.open_circuits(), ["payments"]);
//! ```
//!
//! ```
//! use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
//! use resilience::registry::{Registry, RegistryError};
//!
//! let registry = Registry::<CircuitBreaker>::new();
//! let a = registry.get_or_create("payments", CircuitBreakerConfig::default()).unwrap();
//! let b = registry.get_or_create("payments", CircuitBreakerConfig::default()).unwrap();
//! a.trip();
//! assert!(b.state().is_open(), "same name, same breaker");
//!
//! let different = CircuitBreakerConfig { success_threshold: 5, ..Default::default() };
//! assert!(matches!(
//!     registry.get_or_create("payments", different),
//!     Err(RegistryError::ConfigMismatch { .. })
//! ));
//! assert_eq!(registry.metrics()["payments"].state.as_str(), "open");
//! ```

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, OnceLock, RwLock};

use crate::ConfigError;

/// A pattern handle that can live in a [`Registry`].
///
/// Every pattern of this crate implements it; a pattern of another crate implements it for its
/// own handle and gets named instances, a process-wide [`Registry::global`] and
/// [`Registry::metrics`] with nothing else to write.
pub trait Registered: Clone + Send + Sync + 'static {
    /// Its plain configuration.
    type Config: Clone + PartialEq + fmt::Debug + Send + Sync;
    /// Its metric snapshot.
    type Metrics;

    /// Builds an instance, validating `config`.
    fn create(name: &str, config: Self::Config) -> Result<Self, ConfigError>;
    /// The instance's name.
    fn registered_name(&self) -> &str;
    /// The instance's current configuration.
    fn current_config(&self) -> Self::Config;
    /// A metric snapshot.
    fn snapshot(&self) -> Self::Metrics;
}

/// Implements [`Registered`] for a handle with the constructor and accessors every pattern
/// has: `from_config`, `name`, `config` and `metrics`. Generic handles name their parameters
/// after: `registered!(Limiter<B>: Config => Metrics, for<B: Budgets>)`.
macro_rules! registered {
    ($handle:ty: $config:ty => $metrics:ty $(, for<$($generic:ident: $bound:path),*>)?) => {
        impl$(<$($generic: $bound),*>)? $crate::registry::Registered for $handle {
            type Config = $config;
            type Metrics = $metrics;

            fn create(name: &str, config: $config) -> Result<Self, $crate::ConfigError> {
                Self::from_config(name, config)
            }

            fn registered_name(&self) -> &str {
                self.name()
            }

            fn current_config(&self) -> $config {
                self.config().to_owned()
            }

            fn snapshot(&self) -> $metrics {
                self.metrics()
            }
        }
    };
}
pub(crate) use registered;

/// Why a registry refused a request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RegistryError {
    /// The config given to create the instance is invalid.
    Config(ConfigError),
    /// An instance with this name exists with a different configuration.
    ConfigMismatch {
        /// The instance name.
        name: String,
    },
    /// An instance with this name is already registered.
    AlreadyExists {
        /// The instance name.
        name: String,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(error) => error.fmt(f),
            Self::ConfigMismatch { name } => write!(
                f,
                "{name} is already registered with a different config; use set_config to change it"
            ),
            Self::AlreadyExists { name } => write!(f, "{name} is already registered"),
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(error) => Some(error),
            _ => None,
        }
    }
}

impl From<ConfigError> for RegistryError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

/// Named instances of one pattern kind. Thread-safe; handles are returned as clones that share
/// state with the registered instance.
pub struct Registry<T: Registered> {
    instances: RwLock<HashMap<String, T>>,
}

impl<T: Registered> Registry<T> {
    /// An empty registry owned by the caller.
    pub fn new() -> Self {
        Self {
            instances: RwLock::new(HashMap::new()),
        }
    }

    /// The process-wide registry of this kind.
    pub fn global() -> &'static Self {
        static GLOBALS: OnceLock<Mutex<HashMap<TypeId, &'static (dyn Any + Send + Sync)>>> =
            OnceLock::new();
        let mut globals = GLOBALS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let registry = *globals
            .entry(TypeId::of::<Self>())
            .or_insert_with(|| Box::leak(Box::new(Self::new())));
        registry
            .downcast_ref::<Self>()
            .expect("the global registry map is keyed by the registry's own type")
    }

    /// The instance called `name`, created with `config` if there is none.
    ///
    /// Fails if an instance of that name exists with a different config, or if `config` is
    /// invalid; never returns an instance whose settings differ from the ones asked for.
    pub fn get_or_create(&self, name: &str, config: T::Config) -> Result<T, RegistryError> {
        let name = name.trim();
        if let Some(existing) = self.get(name) {
            return Self::matching(existing, name, &config);
        }
        let mut instances = self.write();
        if let Some(existing) = instances.get(name) {
            return Self::matching(existing.clone(), name, &config);
        }
        let instance = T::create(name, config)?;
        instances.insert(name.to_owned(), instance.clone());
        Ok(instance)
    }

    /// Registers an instance built elsewhere (for example with callbacks set on its builder).
    pub fn insert(&self, instance: T) -> Result<(), RegistryError> {
        let name = instance.registered_name().to_owned();
        let mut instances = self.write();
        if instances.contains_key(&name) {
            return Err(RegistryError::AlreadyExists { name });
        }
        instances.insert(name, instance);
        Ok(())
    }

    /// The instance called `name`, if any.
    pub fn get(&self, name: &str) -> Option<T> {
        self.read().get(name.trim()).cloned()
    }

    /// Removes and returns the instance called `name`. Clones held elsewhere keep working.
    pub fn remove(&self, name: &str) -> Option<T> {
        self.write().remove(name.trim())
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Every instance's metrics by name, in one call (for health and metrics endpoints).
    pub fn metrics(&self) -> BTreeMap<String, T::Metrics> {
        // Snapshot outside the registry lock: taking metrics may run listeners.
        let instances: Vec<(String, T)> = self
            .read()
            .iter()
            .map(|(name, instance)| (name.clone(), instance.clone()))
            .collect();
        instances
            .into_iter()
            .map(|(name, instance)| (name, instance.snapshot()))
            .collect()
    }

    /// How many instances are registered.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every instance.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Clones of every instance, in no particular order.
    ///
    /// They are clones so that callers use them without holding the registry's lock: using a
    /// handle may run listeners, which may use the registry.
    pub fn instances(&self) -> Vec<T> {
        self.read().values().cloned().collect()
    }

    fn matching(existing: T, name: &str, config: &T::Config) -> Result<T, RegistryError> {
        if existing.current_config() == *config {
            Ok(existing)
        } else {
            Err(RegistryError::ConfigMismatch {
                name: name.to_owned(),
            })
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, T>> {
        self.instances
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, T>> {
        self.instances
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl<T: Registered> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Registered> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}
