//! The health check of an unhealthy backend: find Redis again (for Sentinel, the primary it
//! names now), ping it, renew the subscriptions, and mark the backend healthy.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::Inner;
use crate::subscriptions::PushSink;

impl Inner {
    /// One health check: for Sentinel, move to the primary it names if that is another
    /// server; then ping. On success, subscribe again to every channel (a subscription
    /// made while Redis was down, or on the old primary, is missing) and wake the
    /// listeners, which may have missed messages meanwhile.
    async fn check(&self) -> bool {
        let push = PushSink(Arc::clone(&self.subscriptions));
        if let Ok(Some(located)) = self.locator.locate(self.timeouts, &push).await {
            let mut endpoint = self
                .endpoint
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            if endpoint.address() != located.address() {
                tracing::info!(target: "resilience::redis", primary = ?located.address(), "sentinel names a new primary");
                *endpoint = located;
            }
        }
        let mut connection = self.current().connection.clone();
        let ping = async {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await?;
            connection.subscribe(&self.subscriptions.channels()).await
        };
        matches!(
            tokio::time::timeout(self.timeouts.call, ping).await,
            Ok(Ok(()))
        )
    }
}

/// Checks every `health_check_interval` until Redis answers, then marks it healthy. Holds
/// only a weak reference, so it ends when the last handle is dropped.
pub(super) async fn health_check(weak: Weak<Inner>) {
    loop {
        let Some(interval) = weak.upgrade().map(|inner| inner.health_check_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.check().await {
            // In this order: an error between the two stores starts a new checker rather
            // than leaving the backend down with no checker running.
            inner.probing.store(false, Ordering::Release);
            inner.healthy.store(true, Ordering::Release);
            tracing::info!(target: "resilience::redis", "redis answers again; back to shared state");
            return;
        }
    }
}
