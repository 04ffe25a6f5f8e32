//! [`EventBus`]: a list of listeners, per pattern instance or process-wide.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use tokio::sync::mpsc;

use super::{Event, EventFilter, EventStream, UnknownEventName};
use crate::hook::{isolate, CallbackKind};

/// Identifies a registered listener so it can be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// Listener ids are unique in the process, so an id from one bus never removes another
/// bus's listener.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Default buffer of a [`EventBus::subscribe`] stream.
const DEFAULT_STREAM_CAPACITY: usize = 1024;

type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Clone)]
enum Sink {
    Callback(Callback),
    Channel {
        sender: mpsc::Sender<Event>,
        dropped: Arc<AtomicU64>,
    },
}

#[derive(Clone)]
struct Entry {
    id: ListenerId,
    filter: EventFilter,
    sink: Sink,
}

/// Listeners of events: each pattern instance has one (`events()`), and one process-wide bus
/// ([`global`](super::global)) receives the events of every instance.
///
/// Emitting costs one atomic load while no listener on the bus wants the event's kind.
/// Listeners run synchronously, in registration order, on the task that emitted the event, and never while any lock is
/// held: they see a snapshot of the list, so a listener may add or remove listeners. A
/// panicking listener is caught and reported to the [error handler](crate::set_error_handler);
/// the other listeners still run and the protected call is unaffected. Listeners should be
/// quick; slow consumers take a [`subscribe`](Self::subscribe) stream instead.
pub struct EventBus {
    listeners: Arc<Listeners>,
}

/// The bus's state, shared with its streams so that dropping a stream removes it at once.
struct Listeners {
    /// The kinds some listener wants, one bit per [`EventKind`](super::EventKind) (kinds from
    /// other crates share bits): the only thing an emit reads to learn that nobody wants its
    /// event.
    wanted: AtomicU64,
    /// Copy-on-write snapshot: registration swaps in a new list, dispatch clones the `Arc`.
    entries: RwLock<Option<Arc<[Entry]>>>,
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self {
            listeners: Arc::new(Listeners {
                wanted: AtomicU64::new(0),
                entries: RwLock::new(None),
            }),
        }
    }

    /// Calls `listener` for every event that passes `filter` (an [`EventKind`](super::EventKind)
    /// or [`EventFilter::All`]).
    ///
    /// The listener receives every event emitted after this call returns: nothing caches
    /// "nobody listens".
    pub fn on<F>(&self, filter: impl Into<EventFilter>, listener: F) -> ListenerId
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.listeners
            .add(filter.into(), Sink::Callback(Arc::new(listener)))
    }

    /// Like [`on`](Self::on), selecting events by string name (`"state_change"`,
    /// `"call_success"`, ..., or `"*"` for all): the name of any built-in kind, or of a kind
    /// another crate [registered](super::register_kinds).
    pub fn on_named<F>(&self, name: &str, listener: F) -> Result<ListenerId, UnknownEventName>
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        Ok(self.on(name.parse::<EventFilter>()?, listener))
    }

    /// A stream of the events that pass `filter`, for async consumers.
    ///
    /// The stream buffers up to 1024 events; when its consumer falls behind, newer events are
    /// dropped and counted ([`EventStream::dropped`]) rather than slowing the protected calls.
    /// Dropping the stream unsubscribes it.
    pub fn subscribe(&self, filter: impl Into<EventFilter>) -> EventStream {
        self.subscribe_with_capacity(filter, DEFAULT_STREAM_CAPACITY)
    }

    /// Like [`subscribe`](Self::subscribe) with a buffer of `capacity` events (at least 1).
    pub fn subscribe_with_capacity(
        &self,
        filter: impl Into<EventFilter>,
        capacity: usize,
    ) -> EventStream {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = Sink::Channel {
            sender,
            dropped: Arc::clone(&dropped),
        };
        let id = self.listeners.add(filter.into(), sink);
        let subscription = Subscription {
            listeners: Arc::downgrade(&self.listeners),
            id,
        };
        EventStream::new(receiver, dropped, subscription)
    }

    /// Removes a listener; returns whether it was registered here.
    pub fn remove(&self, id: ListenerId) -> bool {
        self.listeners.retain(|entry| entry.id != id) > 0
    }

    /// Removes every listener and stream.
    pub fn clear(&self) {
        self.listeners.retain(|_| false);
    }

    /// How many listeners and streams are registered.
    pub fn listener_count(&self) -> usize {
        self.listeners.snapshot().map_or(0, |entries| entries.len())
    }

    /// Whether any listener is registered.
    pub fn is_active(&self) -> bool {
        self.wanted() != 0
    }

    /// The kinds some listener wants, as a bit set (one bit per kind).
    #[inline]
    pub(crate) fn wanted(&self) -> u64 {
        self.listeners.wanted.load(Ordering::Acquire)
    }

    /// Delivers `event` to every matching listener.
    pub(crate) fn dispatch(&self, event: &Event) {
        let Some(entries) = self.listeners.snapshot() else {
            return;
        };
        let kind = event.kind();
        for entry in entries.iter().filter(|entry| entry.filter.matches(kind)) {
            match &entry.sink {
                Sink::Callback(listener) => {
                    isolate(
                        CallbackKind::Listener,
                        event.pattern(),
                        event.shared_name(),
                        || {
                            listener(event);
                        },
                    );
                }
                Sink::Channel { sender, dropped } => match sender.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    // The stream is being dropped; its drop removes the entry.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                },
            }
        }
    }
}

impl Listeners {
    fn snapshot(&self) -> Option<Arc<[Entry]>> {
        self.entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn add(&self, filter: EventFilter, sink: Sink) -> ListenerId {
        let id = ListenerId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut list: Vec<Entry> = entries.as_deref().unwrap_or_default().to_vec();
        list.push(Entry { id, filter, sink });
        self.wanted.store(wanted(&list), Ordering::Release);
        *entries = Some(list.into());
        id
    }

    /// Keeps the entries for which `keep` holds; returns how many were removed.
    fn retain(&self, keep: impl Fn(&Entry) -> bool) -> usize {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(current) = entries.as_deref() else {
            return 0;
        };
        let list: Vec<Entry> = current
            .iter()
            .filter(|entry| keep(entry))
            .cloned()
            .collect();
        let removed = current.len() - list.len();
        self.wanted.store(wanted(&list), Ordering::Release);
        *entries = (!list.is_empty()).then(|| list.into());
        removed
    }
}

/// The union of the kinds the entries want.
fn wanted(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .fold(0, |bits, entry| bits | entry.filter.mask())
}

/// Removes a stream's entry from its bus when the stream is dropped.
pub(super) struct Subscription {
    listeners: Weak<Listeners>,
    id: ListenerId,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(listeners) = self.listeners.upgrade() {
            listeners.retain(|entry| entry.id != self.id);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Subscription").field(&self.id).finish()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("listeners", &self.listener_count())
            .finish()
    }
}
