//! Keeping the gateway's snapshot current.
//!
//! The [`ConfigWatcher`] rebuilds the snapshot from the store whenever the store's configuration
//! version differs from the snapshot's. In a single process the admin API awaits
//! [`ConfigWatcher::sync`] after each write, so a change is live when its request returns; the
//! watcher also polls the version every `poll_interval`, which is how a change written by another
//! process (such as `gatehouse import`) is seen. The swap is atomic: requests in flight keep the
//! snapshot they started with, and reloads are serialised so an older snapshot never replaces a
//! newer one.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::Store;
use tokio::sync::Notify;

use crate::SharedSnapshot;
use crate::snapshot::{AuthDeps, Snapshot, SnapshotOptions};

/// Reloads the snapshot when the configuration changes.
pub struct ConfigWatcher {
    store: Arc<dyn Store>,
    snapshot: SharedSnapshot,
    deps: AuthDeps,
    options: SnapshotOptions,
    wake: Notify,
    poll_interval: Duration,
    /// Serialises reloads, so an older snapshot can never replace a newer one.
    reload_lock: tokio::sync::Mutex<()>,
}

impl ConfigWatcher {
    /// A watcher for `snapshot`, reading `store`.
    pub fn new(
        store: Arc<dyn Store>,
        snapshot: SharedSnapshot,
        deps: AuthDeps,
        options: SnapshotOptions,
        poll_interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            snapshot,
            deps,
            options,
            wake: Notify::new(),
            poll_interval,
            reload_lock: tokio::sync::Mutex::new(()),
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

    /// Reloads now if needed and returns once the gateway serves the store's current version
    /// (the admin API awaits this, so a change is live when its request returns).
    pub async fn sync(&self) {
        if let Err(e) = self.reload_if_changed().await {
            tracing::warn!(error = %e, "configuration reload failed; the poller will retry");
        }
    }

    /// Loads the whole configuration and swaps it in.
    pub async fn reload(&self) -> Result<(), gatehouse_store::StoreError> {
        let _guard = self.reload_lock.lock().await;
        // Read the version first: if a write lands while we read, the next poll sees a newer
        // version and loads again, so no change is ever missed.
        let version = self.store.config_version().await?;
        let apis = self.store.list_apis().await?;
        let policies = self.store.list_policies().await?;
        let clients = self.store.list_clients(None, true).await?;
        let (snap, problems) = Snapshot::build(
            version,
            &apis,
            &policies,
            &clients,
            Some(&self.deps),
            &self.options,
        );
        for p in problems {
            tracing::error!(problem = %p, "configuration item skipped");
        }
        tracing::info!(
            version,
            apis = snap.routes.len(),
            policies = snap.policies.len(),
            "configuration loaded"
        );
        // The verified-token cache needs no flush here: its entries are keyed by the validator's
        // settings (keys, issuers, audiences), and time claims are re-checked on every hit.
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
