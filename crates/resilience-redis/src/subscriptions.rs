//! Pub/sub nudges: components register a channel and a [`Notify`]; a message on the channel,
//! or a (re)subscription confirmed by Redis, wakes them. The message carries no state on
//! purpose: the woken component reads the shared state itself, through the same
//! compare-and-set logic as its periodic poll, so a lost, late or duplicated message can
//! cost a round trip but never apply a wrong state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use redis::aio::{AsyncPushSender, SendError};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

/// Called when a connection carrying subscriptions is lost.
type OnLost = Box<dyn Fn() + Send + Sync>;

/// The channels this backend's components listen to.
#[derive(Default)]
pub(crate) struct Subscriptions {
    channels: Mutex<HashMap<Vec<u8>, Vec<Weak<Notify>>>>,
    on_lost: OnceLock<OnLost>,
}

impl Subscriptions {
    /// Sets what to do when the connection is lost (once; later calls are ignored).
    pub(crate) fn on_lost(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_lost.set(Box::new(f));
    }

    /// Adds a listener to `channel`.
    pub(crate) fn register(&self, channel: &str, listener: &Arc<Notify>) {
        let mut channels = self.lock();
        let listeners = channels.entry(channel.as_bytes().to_vec()).or_default();
        listeners.retain(|weak| weak.strong_count() > 0);
        listeners.push(Arc::downgrade(listener));
    }

    /// Every channel with a listener, to subscribe a new or reconnected connection to.
    pub(crate) fn channels(&self) -> Vec<String> {
        self.lock()
            .keys()
            .map(|channel| String::from_utf8_lossy(channel).into_owned())
            .collect()
    }

    /// Wakes the listeners of `channel`.
    fn nudge(&self, channel: &[u8]) {
        let mut channels = self.lock();
        if let Some(listeners) = channels.get_mut(channel) {
            listeners.retain(|weak| match weak.upgrade() {
                Some(listener) => {
                    // `notify_one` keeps a permit when the listener is busy, so a message
                    // arriving mid-poll still causes one more poll afterwards.
                    listener.notify_one();
                    true
                }
                None => false,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Vec<Weak<Notify>>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The push sender of the backend's RESP3 connections: routes messages to listeners. It
/// runs on the connection's reader, so it only takes a short std lock and never waits.
#[derive(Clone)]
pub(crate) struct PushSink(pub(crate) Arc<Subscriptions>);

impl AsyncPushSender for PushSink {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        // A confirmed subscription also nudges: after a reconnect the `redis` crate
        // subscribes again, and messages published in the gap were lost, so listeners read
        // the state once to catch up.
        // A lost connection is an outage even if no call noticed it yet: a backend used only
        // by listeners would otherwise never find a Sentinel's new primary.
        if info.kind == PushKind::Disconnection {
            if let Some(on_lost) = self.0.on_lost.get() {
                on_lost();
            }
        }
        if matches!(info.kind, PushKind::Message | PushKind::Subscribe) {
            if let Some(Value::BulkString(channel)) = info.data.first() {
                self.0.nudge(channel);
            }
        }
        Ok(())
    }
}
