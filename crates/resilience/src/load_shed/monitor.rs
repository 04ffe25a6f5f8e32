//! The system sampler as the handle sees it: readings when the `system` feature is on, a unit
//! placeholder when it is off. Each function comes in both forms, so the handle itself has no
//! feature gates.

use std::time::Duration;

#[cfg(feature = "system")]
use tokio::time::Instant;

use super::state::{ShedReason, SystemLoad};
use super::LoadShedderConfig;
use crate::ConfigError;

/// The system sampler's readings, when system shedding is on.
#[cfg(feature = "system")]
pub(crate) type Monitor = Option<super::system::Monitor>;
#[cfg(not(feature = "system"))]
pub(crate) type Monitor = ();

/// A CPU or memory decision cannot change before the next sample; nothing else is known.
#[cfg(feature = "system")]
pub(super) fn retry_after(monitor: &Monitor, reason: ShedReason) -> Option<Duration> {
    match (monitor, reason) {
        (Some(monitor), ShedReason::Cpu | ShedReason::Memory) => {
            Some(monitor.until_next_sample(Instant::now()))
        }
        _ => None,
    }
}

#[cfg(not(feature = "system"))]
pub(super) fn retry_after(_monitor: &Monitor, _reason: ShedReason) -> Option<Duration> {
    None
}

#[cfg(feature = "system")]
pub(super) fn system_load(monitor: &Monitor) -> Option<SystemLoad> {
    monitor.as_ref().map(super::system::Monitor::load)
}

#[cfg(not(feature = "system"))]
pub(super) fn system_load(_monitor: &Monitor) -> Option<SystemLoad> {
    None
}

#[cfg(feature = "system")]
pub(super) fn configure_system(monitor: &Monitor, config: &LoadShedderConfig) {
    if let (Some(monitor), Some(system)) = (monitor, &config.system) {
        monitor.configure(system);
    }
}

#[cfg(not(feature = "system"))]
pub(super) fn configure_system(_monitor: &Monitor, _config: &LoadShedderConfig) {}

/// System shedding is started by `build` (a sampler task); `set_config` may retune it but
/// not turn it on or off.
#[cfg(feature = "system")]
pub(super) fn check_system_unchanged(
    current: &LoadShedderConfig,
    new: &LoadShedderConfig,
) -> Result<(), ConfigError> {
    if current.system.is_some() != new.system.is_some() {
        return Err(ConfigError::new(
            "system",
            crate::ConfigProblem::Invalid(
                "system shedding cannot be turned on or off at run time".into(),
            ),
        ));
    }
    Ok(())
}

#[cfg(not(feature = "system"))]
pub(super) fn check_system_unchanged(
    _current: &LoadShedderConfig,
    _new: &LoadShedderConfig,
) -> Result<(), ConfigError> {
    Ok(())
}
