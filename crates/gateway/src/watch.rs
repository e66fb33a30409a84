//! Keeping the gateway's snapshot current.
//!
//! The [`ConfigWatcher`] rebuilds the snapshot from the store whenever the store's configuration
//! version differs from the snapshot's. It is woken at once by [`ConfigWatcher::notify`] (the admin
//! API calls it after each write in the same process) and polls the version every
//! `poll_interval` as a safety net (which is also how a change written by another process, such as
//! `gatehouse import`, is seen). The swap is atomic: requests in flight keep the snapshot they
//! started with.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::Store;
use tokio::sync::Notify;

use crate::SharedSnapshot;
use crate::snapshot::Snapshot;

/// Reloads the snapshot when the configuration changes.
pub struct ConfigWatcher {
    store: Arc<dyn Store>,
    snapshot: SharedSnapshot,
    wake: Notify,
    poll_interval: Duration,
}

impl ConfigWatcher {
    /// A watcher for `snapshot`, reading `store`.
    pub fn new(
        store: Arc<dyn Store>,
        snapshot: SharedSnapshot,
        poll_interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            snapshot,
            wake: Notify::new(),
            poll_interval,
        })
    }

    /// Asks for a reload now (after a write in this process).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Loads the configuration if its version changed. Returns whether a new snapshot was swapped in.
    pub async fn reload_if_changed(&self) -> Result<bool, gatehouse_store::StoreError> {
        let version = self.store.config_version().await?;
        if version == self.snapshot.load().version {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Loads the whole configuration and swaps it in.
    pub async fn reload(&self) -> Result<(), gatehouse_store::StoreError> {
        // Read the version first: if a write lands while we read, the next poll sees a newer
        // version and loads again, so no change is ever missed.
        let version = self.store.config_version().await?;
        let apis = self.store.list_apis().await?;
        let policies = self.store.list_policies().await?;
        let (snap, problems) = Snapshot::build(version, &apis, &policies);
        for p in problems {
            tracing::error!(problem = %p, "configuration item skipped");
        }
        tracing::info!(
            version,
            apis = snap.routes.len(),
            policies = snap.policies.len(),
            "configuration loaded"
        );
        self.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// Runs until the task is dropped: waits for a notification or the poll interval, then reloads
    /// if the version changed. Store errors are logged and the last good snapshot keeps serving.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {},
                () = tokio::time::sleep(self.poll_interval) => {},
            }
            if let Err(e) = self.reload_if_changed().await {
                tracing::warn!(error = %e, "configuration reload failed; serving the last good configuration");
            }
        }
    }
}
