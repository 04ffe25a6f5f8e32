//! Load shedding: refuse work early when the service is overloaded, least important first.

mod event;

pub use event::LoadShedderEvent;
