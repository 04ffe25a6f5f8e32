//! [`Recorder`]: writes down, in order, what callbacks were given.

use std::sync::{Arc, Mutex, PoisonError};

/// A shared, ordered list of what callbacks received: hand [`sink`](Self::sink) to the code
/// under test (a guard, a hook, a listener) and assert on [`items`](Self::items).
///
/// ```
/// use resilience_testkit::Recorder;
///
/// let record = Recorder::default();
/// let callback = record.sink();
/// callback("finished");
/// assert_eq!(record.items(), ["finished"]);
/// ```
#[derive(Debug)]
pub struct Recorder<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Self {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T: Send + 'static> Recorder<T> {
    /// Records `item`.
    pub fn push(&self, item: T) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(item);
    }

    /// A callback that records what it is called with; as many as needed, all into this list.
    pub fn sink(&self) -> impl Fn(T) + Clone + Send + Sync + 'static {
        let record = self.clone();
        move |item| record.push(item)
    }
}

impl<T: Clone> Recorder<T> {
    /// What was recorded so far, in order.
    pub fn items(&self) -> Vec<T> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
