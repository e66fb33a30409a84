//! The storage seam.
//!
//! Callers see one trait, [`Store`], with narrow async operations on whole JSON documents (API
//! definitions, policies), settings and quota counters. Only this crate knows SQL. The embedded
//! default is [`SqliteStore`] (a file in the data directory, WAL mode, `synchronous=FULL`, so a
//! committed change survives `kill -9`); a PostgreSQL implementation can be added behind the same
//! trait without touching callers.
//!
//! Every configuration change bumps a version number in the same transaction
//! ([`Store::config_version`]); gateways poll it to learn that they must reload.
//!
//! Schema migrations are plain SQL files in `migrations/<backend>/NNNN_name.sql`, embedded in the
//! binary and applied in order at start ([`SqliteStore::open`]); the applied versions are recorded
//! in `schema_migrations`.

mod sqlite;

use async_trait::async_trait;
use serde_json::Value;

pub use sqlite::SqliteStore;

/// A stored document with its id and timestamps (unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    /// The document's id (`api_id` or policy `id`).
    pub id: String,
    /// The document as stored.
    pub doc: Value,
    /// When it was first stored.
    pub created_at: i64,
    /// When it was last replaced.
    pub updated_at: i64,
}

/// Whether a write must create a new document or replace an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with [`StoreError::Conflict`] if the id exists.
    Create,
    /// Fail with [`StoreError::NotFound`] if the id does not exist.
    Replace,
    /// Create or replace (used by imports).
    Upsert,
}

/// What a successful write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A new document was stored.
    Created,
    /// An existing document was replaced.
    Updated,
}

/// A quota counter as persisted (see `gatehouse-ratelimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRow {
    /// Counter key.
    pub key: String,
    /// Requests admitted in the window.
    pub used: i64,
    /// Window start, unix seconds.
    pub window_start: i64,
    /// Window length in seconds.
    pub window_secs: i64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; `field` names the input field at fault.
    #[error("{message}")]
    Conflict {
        /// The input field at fault (`api_id`, `proxy.listen_path`, `id`).
        field: &'static str,
        /// A sentence naming the other document.
        message: String,
    },
    /// The document to replace does not exist.
    #[error("not found")]
    NotFound,
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// A stored document could not be read back.
    #[error("corrupt stored document {id}: {reason}")]
    Corrupt {
        /// The document id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// The storage operations Gatehouse needs. Implementations must be safe to share across tasks.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// All API definitions, ordered by id.
    async fn list_apis(&self) -> Result<Vec<StoredDoc>, StoreError>;
    /// One API definition.
    async fn get_api(&self, api_id: &str) -> Result<Option<StoredDoc>, StoreError>;
    /// Stores an API definition. `route_key` is its listen path without trailing slashes and must
    /// be unique across APIs ([`StoreError::Conflict`] on `proxy.listen_path` otherwise).
    async fn put_api(
        &self,
        api_id: &str,
        name: &str,
        route_key: &str,
        doc: &Value,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError>;
    /// Deletes an API definition; `false` if it did not exist.
    async fn delete_api(&self, api_id: &str) -> Result<bool, StoreError>;

    /// All policies, ordered by id.
    async fn list_policies(&self) -> Result<Vec<StoredDoc>, StoreError>;
    /// One policy.
    async fn get_policy(&self, id: &str) -> Result<Option<StoredDoc>, StoreError>;
    /// Stores a policy.
    async fn put_policy(
        &self,
        id: &str,
        name: &str,
        doc: &Value,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError>;
    /// Deletes a policy; `false` if it did not exist.
    async fn delete_policy(&self, id: &str) -> Result<bool, StoreError>;

    /// The configuration version; it changes whenever an API or policy changes.
    async fn config_version(&self) -> Result<i64, StoreError>;

    /// A setting.
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets a setting.
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// All persisted quota counters.
    async fn load_quota_counters(&self) -> Result<Vec<QuotaRow>, StoreError>;
    /// Writes a batch of quota counters (insert or replace).
    async fn save_quota_counters(&self, rows: &[QuotaRow]) -> Result<(), StoreError>;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
