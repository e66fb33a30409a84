//! The storage seam.
//!
//! Callers see one trait, [`Store`], with narrow async operations on whole JSON documents (API
//! definitions, policies), settings and quota counters. Only this crate knows SQL. The embedded
//! default is [`SqliteStore`] (a file in the data directory, WAL mode, `synchronous=FULL`, so a
//! committed change survives `kill -9`); [`PostgresStore`] implements the same trait, with the same
//! semantics, for several nodes sharing one database.
//!
//! [`PostgresStore`] (`--database-url postgres://…`) keeps documents as JSON text, so they read back
//! exactly as written (key order included), and makes concurrent writers from several nodes safe:
//! each configuration change locks and bumps the version row first, which serialises configuration
//! writes across nodes, and the UNIQUE constraints map to the same [`StoreError::Conflict`] as the
//! checks. Each version bump also sends `NOTIFY gatehouse_config, '<version>'` at commit;
//! [`PostgresStore::listen_config_changes`] yields those versions, so gateways need not poll.
//! Migrations run under an advisory lock, so nodes may start at once.
//!
//! Every configuration change bumps a version number in the same transaction
//! ([`Store::config_version`]); gateways poll it to learn that they must reload.
//!
//! Schema migrations are plain SQL files in `migrations/<backend>/NNNN_name.sql`, embedded in the
//! binary and applied in order at start ([`SqliteStore::open`], [`PostgresStore::connect`]); the
//! applied versions are recorded in `schema_migrations`.

mod postgres;
pub mod secrets;
mod sqlite;

use async_trait::async_trait;
use serde_json::Value;

pub use postgres::PostgresStore;
pub use secrets::{PREVIOUS_KEYS_ENV, SecretBox, rotate_key_file};
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

/// Latency buckets per analytics row (columns `h00`..`h15`).
pub const ANALYTICS_BUCKETS: usize = 16;

/// One row of per-minute analytics (`analytics_minutes`): the key columns, then counters that
/// [`Store::add_analytics`] adds to what is stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnalyticsRow {
    /// Unix seconds / 60.
    pub minute: i64,
    /// API id (`""`: no API matched).
    pub api_id: String,
    /// Developer id (`""`: none).
    pub developer_id: String,
    /// OAuth client id (`""`: none).
    pub client_id: String,
    /// 1..=5 for 1xx..5xx.
    pub status_class: i64,
    /// Requests.
    pub requests: i64,
    /// Request body bytes.
    pub bytes_in: i64,
    /// Response body bytes.
    pub bytes_out: i64,
    /// Sum of latencies, microseconds.
    pub latency_us_sum: i64,
    /// Requests per latency bucket.
    pub latency_hist: [i64; ANALYTICS_BUCKETS],
}

/// Which analytics rows to read: minutes in `[from_minute, to_minute)`, optionally of one API,
/// developer or client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyticsFilter {
    /// First minute (unix seconds / 60), inclusive.
    pub from_minute: i64,
    /// Last minute, exclusive.
    pub to_minute: i64,
    /// Only this API.
    pub api_id: Option<String>,
    /// Only this developer.
    pub developer_id: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
    /// At most this many rows (the earliest); `None`: all.
    pub limit: Option<u32>,
}

/// A developer account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeveloperRow {
    /// Id.
    pub id: String,
    /// Email, normalised; unique.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Deactivated: cannot sign in, clients deleted.
    pub inactive: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An OAuth client registered through the portal, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    /// The IdP's client id.
    pub client_id: String,
    /// Owner.
    pub developer_id: String,
    /// Name, catalogue ids, policy ids, provider, endpoints (no secrets).
    pub doc: Value,
    /// The client secret, sealed with the [`SecretBox`].
    pub secret_sealed: Option<String>,
    /// The registration access token, sealed.
    pub rat_sealed: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Set when the client was deleted (a tombstone: its tokens are refused).
    pub deleted_at: Option<i64>,
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
    /// Sets a setting only when it does not exist yet, atomically across nodes: `true` when this
    /// call stored it, `false` (nothing changed) when it existed. The first dashboard admin is
    /// created this way, so two nodes cannot both create "the first" admin.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError>;

    /// Records the SHA-256 (hex) of a first-admin setup token. Every dashboard process that
    /// starts while no admin exists prints its own token and records its hash here, so the link
    /// printed by any node works on every node.
    async fn add_setup_token(&self, token_hash: &str) -> Result<(), StoreError>;
    /// The hashes of the recorded setup tokens.
    async fn setup_tokens(&self) -> Result<Vec<String>, StoreError>;
    /// Deletes every setup token (the first admin exists); returns how many there were.
    async fn delete_setup_tokens(&self) -> Result<u64, StoreError>;

    /// Holds one of a developer's OAuth client slots while a client is registered at the IdP:
    /// in one transaction, serialised per developer across nodes, drops expired slots, counts the
    /// developer's live clients plus the slots held, and adds slot `slot_id` (until `expires_at`)
    /// only when that count is below `limit`. Release it with
    /// [`Store::release_client_slot`] once the client is stored or the registration failed.
    async fn reserve_client_slot(
        &self,
        developer_id: &str,
        slot_id: &str,
        limit: u64,
        now: i64,
        expires_at: i64,
    ) -> Result<SlotReservation, StoreError>;
    /// Gives a slot back (unknown slots are fine).
    async fn release_client_slot(&self, slot_id: &str) -> Result<(), StoreError>;

    /// All persisted quota counters.
    async fn load_quota_counters(&self) -> Result<Vec<QuotaRow>, StoreError>;
    /// Writes a batch of quota counters (insert or replace).
    async fn save_quota_counters(&self, rows: &[QuotaRow]) -> Result<(), StoreError>;

    /// Adds each row's counters to the stored row with the same key (creating it when missing),
    /// in one transaction; rows with one key in a batch add up.
    async fn add_analytics(&self, rows: &[AnalyticsRow]) -> Result<(), StoreError>;
    /// Analytics rows matching `filter`, ordered by key (minute first).
    async fn query_analytics(
        &self,
        filter: &AnalyticsFilter,
    ) -> Result<Vec<AnalyticsRow>, StoreError>;
    /// Deletes analytics rows of minutes before `before_minute`; returns how many.
    async fn prune_analytics(&self, before_minute: i64) -> Result<u64, StoreError>;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// All catalogue entries.
    async fn list_catalogue(&self) -> Result<Vec<StoredDoc>, StoreError>;
    /// One catalogue entry.
    async fn get_catalogue(&self, id: &str) -> Result<Option<StoredDoc>, StoreError>;
    /// Stores a catalogue entry.
    async fn put_catalogue(
        &self,
        id: &str,
        doc: &Value,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError>;
    /// Deletes a catalogue entry; `false` if it did not exist.
    async fn delete_catalogue(&self, id: &str) -> Result<bool, StoreError>;

    /// All developers, by email.
    async fn list_developers(&self) -> Result<Vec<DeveloperRow>, StoreError>;
    /// One developer by id.
    async fn get_developer(&self, id: &str) -> Result<Option<DeveloperRow>, StoreError>;
    /// One developer by (normalised) email.
    async fn get_developer_by_email(&self, email: &str)
    -> Result<Option<DeveloperRow>, StoreError>;
    /// Stores a developer; a taken email is a conflict on `email`.
    async fn put_developer(
        &self,
        row: &DeveloperRow,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError>;
    /// Deletes a developer (and their sessions); `false` if they did not exist.
    async fn delete_developer(&self, id: &str) -> Result<bool, StoreError>;

    /// Records a portal session.
    async fn create_session(
        &self,
        token_hash: &str,
        developer_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// The developer of a live session.
    async fn session_developer(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Ends every session of a developer.
    async fn delete_developer_sessions(&self, developer_id: &str) -> Result<(), StoreError>;

    /// OAuth clients, optionally of one developer, tombstones included when asked.
    async fn list_clients(
        &self,
        developer_id: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<ClientRow>, StoreError>;
    /// One OAuth client (tombstones included).
    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError>;
    /// Records a newly registered client (bumps the configuration version: the gateway links
    /// tokens to clients).
    async fn insert_client(&self, row: &ClientRow) -> Result<(), StoreError>;
    /// Replaces a client's sealed credentials (after a rotation, or a rotated registration access
    /// token).
    async fn update_client_credentials(
        &self,
        client_id: &str,
        secret_sealed: Option<&str>,
        rat_sealed: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Turns a client into a tombstone: credentials wiped, `deleted_at` set.
    async fn mark_client_deleted(&self, client_id: &str) -> Result<(), StoreError>;

    /// Records a dashboard session (and drops expired ones).
    async fn create_admin_session(
        &self,
        token_hash: &str,
        email: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// A live dashboard session.
    async fn admin_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<AdminSessionRow>, StoreError>;
    /// Ends a dashboard session.
    async fn delete_admin_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Ends every dashboard session of one admin (after their removal or a password change).
    async fn delete_admin_sessions_of(&self, email: &str) -> Result<(), StoreError>;

    /// Appends to the audit log.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The newest audit entries first, at most `limit`, older than `before_id` when given.
    async fn list_audit(
        &self,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// The answer of [`Store::reserve_client_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotReservation {
    /// The slot is held.
    Reserved,
    /// No slot is free: the developer has this many clients and registrations in progress.
    Full(u64),
}

/// A dashboard session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionRow {
    /// The admin's email.
    pub email: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// One audit log entry: who changed what, when. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store (0 before).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Admin email, `admin-api-key`, `cli` or `system`.
    pub actor: String,
    /// What was done, e.g. `api.update`.
    pub action: String,
    /// The id acted on (empty when none).
    pub target: String,
    /// Short detail (no secrets).
    pub detail: String,
    /// The client address, or `cli`.
    pub source: String,
}

/// Rows with one key merged (counters added), sorted by key: one upsert per key, in an order
/// that two nodes share (no deadlocks).
pub(crate) fn merge_analytics(rows: &[AnalyticsRow]) -> Vec<AnalyticsRow> {
    let mut v: Vec<AnalyticsRow> = rows.to_vec();
    v.sort_by(|a, b| {
        (
            a.minute,
            &a.api_id,
            &a.developer_id,
            &a.client_id,
            a.status_class,
        )
            .cmp(&(
                b.minute,
                &b.api_id,
                &b.developer_id,
                &b.client_id,
                b.status_class,
            ))
    });
    let mut out: Vec<AnalyticsRow> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(l)
                if (
                    l.minute,
                    &l.api_id,
                    &l.developer_id,
                    &l.client_id,
                    l.status_class,
                ) == (
                    r.minute,
                    &r.api_id,
                    &r.developer_id,
                    &r.client_id,
                    r.status_class,
                ) =>
            {
                l.requests = l.requests.saturating_add(r.requests);
                l.bytes_in = l.bytes_in.saturating_add(r.bytes_in);
                l.bytes_out = l.bytes_out.saturating_add(r.bytes_out);
                l.latency_us_sum = l.latency_us_sum.saturating_add(r.latency_us_sum);
                for (a, b) in l.latency_hist.iter_mut().zip(r.latency_hist) {
                    *a = a.saturating_add(b);
                }
            }
            _ => out.push(r),
        }
    }
    out
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A route key as an operator writes it: the listen path (`/` for the root), preceded by the
/// domain when the API has one (`api.example.com/pay`).
pub(crate) fn describe_route_key(route_key: &str) -> String {
    if route_key.is_empty() {
        "/".to_owned()
    } else if route_key.contains('/') {
        route_key.to_owned()
    } else {
        format!("{route_key}/")
    }
}
