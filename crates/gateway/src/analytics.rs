//! Analytics persistence: the gateway's [`AnalyticsRecorder`] (filled on the request path, see
//! `gatehouse_telemetry::analytics`) is drained every `flush_interval` by a background task and
//! *added* to the `analytics_minutes` table ([`Store::add_analytics`]), and drained once more at
//! shutdown. A failed write puts the data back for the next flush. [`spawn_pruner`] deletes rows
//! older than the retention.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{ANALYTICS_BUCKETS, AnalyticsRow, Store, StoreError};
use gatehouse_telemetry::AnalyticsRecorder;
use gatehouse_telemetry::analytics::{AnalyticsKey, BUCKETS, Counters};

const _: () = assert!(
    BUCKETS == ANALYTICS_BUCKETS,
    "the recorder's histogram and the table's bucket columns must match"
);

/// Analytics settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsSettings {
    /// Record analytics (default on).
    pub enabled: bool,
    /// How often gateways write what they recorded (default 10 s).
    pub flush_interval: Duration,
    /// Rows older than this many days are deleted (default 30).
    pub retention_days: u32,
    /// Distinct keys kept in memory between two flushes (default 100,000).
    pub max_keys: usize,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            flush_interval: Duration::from_secs(10),
            retention_days: 30,
            max_keys: gatehouse_telemetry::analytics::DEFAULT_MAX_KEYS,
        }
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Store rows of drained entries.
pub fn to_rows(entries: &[(AnalyticsKey, Counters)]) -> Vec<AnalyticsRow> {
    entries
        .iter()
        .map(|(k, c)| AnalyticsRow {
            minute: k.minute,
            api_id: k.api_id.clone(),
            developer_id: k.developer_id.clone(),
            client_id: k.client_id.clone(),
            status_class: i64::from(k.status_class),
            requests: clamp(c.requests),
            bytes_in: clamp(c.bytes_in),
            bytes_out: clamp(c.bytes_out),
            latency_us_sum: clamp(c.latency_us_sum),
            latency_hist: c.latency_hist.map(clamp),
        })
        .collect()
}

/// Writes everything recorded so far; returns the number of rows written. On failure the data
/// goes back into the recorder.
pub async fn flush(recorder: &AnalyticsRecorder, store: &dyn Store) -> Result<usize, StoreError> {
    let entries = recorder.drain();
    if entries.is_empty() {
        return Ok(0);
    }
    let rows = to_rows(&entries);
    match store.add_analytics(&rows).await {
        Ok(()) => Ok(rows.len()),
        Err(e) => {
            recorder.restore(entries);
            Err(e)
        }
    }
}

/// Flushes every `interval` until `stop` completes (a flush in progress finishes first). Await
/// the task, let in-flight requests finish, then call [`flush`] once more.
pub fn spawn_flusher(
    recorder: Arc<AnalyticsRecorder>,
    store: Arc<dyn Store>,
    interval: Duration,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = flush(&recorder, store.as_ref()).await {
                tracing::warn!(error = %e, "analytics could not be written; kept for the next flush");
            }
        }
    })
}

/// Deletes rows older than `retention_days` now and then every `every`.
pub fn spawn_pruner(
    store: Arc<dyn Store>,
    retention_days: u32,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let cut = gatehouse_store::unix_now().div_euclid(60) - i64::from(retention_days) * 1440;
            match store.prune_analytics(cut).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, retention_days, "pruned old analytics"),
                Err(e) => tracing::warn!(error = %e, "old analytics could not be pruned"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_store::{AnalyticsFilter, SqliteStore};
    use gatehouse_telemetry::analytics::Observation;

    fn obs(status: u16) -> Observation<'static> {
        Observation {
            unix_secs: 120,
            api_id: "a",
            developer_id: "d",
            client_id: "c",
            status,
            latency: Duration::from_millis(3),
            bytes_in: 1,
            bytes_out: 2,
        }
    }

    #[tokio::test]
    async fn flushes_add_up_in_the_store() {
        let dir = tempfile_dir();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let rec = AnalyticsRecorder::new(10);
        for s in [200, 200, 404] {
            rec.record(&obs(s));
        }
        assert_eq!(flush(&rec, &store).await.unwrap(), 2);
        assert_eq!(flush(&rec, &store).await.unwrap(), 0);
        rec.record(&obs(200));
        assert_eq!(flush(&rec, &store).await.unwrap(), 1);
        let rows = store
            .query_analytics(&AnalyticsFilter {
                from_minute: 0,
                to_minute: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let got: Vec<(i64, i64, i64, i64)> = rows
            .iter()
            .map(|r| (r.minute, r.status_class, r.requests, r.latency_hist[3]))
            .collect();
        assert_eq!(got, [(2, 2, 3, 3), (2, 4, 1, 1)]);
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }
}
