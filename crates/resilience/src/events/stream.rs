//! [`EventStream`]: events as a `futures` `Stream` for async consumers.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::bus::Subscription;
use super::Event;

/// A stream of events from [`EventBus::subscribe`](super::EventBus::subscribe).
///
/// Events are buffered; when the consumer falls behind and the buffer is full, new events are
/// dropped (never blocking the protected calls) and counted in [`dropped`](Self::dropped).
/// Dropping the stream unsubscribes it.
#[derive(Debug)]
pub struct EventStream {
    receiver: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
    /// Unsubscribes on drop, so nobody builds events for a stream that is gone.
    _subscription: Subscription,
}

impl EventStream {
    pub(super) fn new(
        receiver: mpsc::Receiver<Event>,
        dropped: Arc<AtomicU64>,
        subscription: Subscription,
    ) -> Self {
        Self {
            receiver,
            dropped,
            _subscription: subscription,
        }
    }

    /// Waits for the next event.
    pub async fn recv(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }

    /// The next event if one is buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.receiver.try_recv().ok()
    }

    /// How many events were dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.receiver.poll_recv(cx)
    }
}
