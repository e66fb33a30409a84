//! The PostgreSQL store, for several Gatehouse nodes sharing one database.
//!
//! Same tables, same semantics as [`crate::SqliteStore`]; the differences are PostgreSQL's:
//!
//! - **Concurrent writers.** Every configuration change starts by bumping the single
//!   `config_version` row (`UPDATE … RETURNING`), which row-locks it until commit; so configuration
//!   writes are serialised across all nodes, exactly like SQLite's single writer, and the
//!   uniqueness checks that follow (api id, listen path, policy and catalogue ids) see every
//!   earlier commit. Developer writes, which do not bump the version, take a transaction-scoped
//!   advisory lock instead. The UNIQUE constraints stay the last line of defence: a violation is
//!   mapped to the same [`StoreError::Conflict`] as the check would have given.
//! - **Change propagation.** The transaction that bumps the version also sends
//!   `NOTIFY gatehouse_config, '<version>'`, delivered at commit (never for a rolled-back change);
//!   [`PostgresStore::listen_config_changes`] turns those into a channel of versions.
//! - **Migrations** (`migrations/postgres/NNNN_name.sql`) are applied at connect under a
//!   session-level `pg_advisory_lock`, so several nodes starting at once apply each exactly once.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use tokio::sync::mpsc;

use crate::{
    ANALYTICS_BUCKETS, AdminSessionRow, AnalyticsFilter, AnalyticsRow, AuditEntry, ClientRow,
    DeveloperRow, QuotaRow, SlotReservation, Store, StoreError, StoredDoc, WriteMode, WriteOutcome,
    merge_analytics, unix_now,
};

/// Migrations for PostgreSQL, in order; the versions match the SQLite ones. Each runs once, in its
/// own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "portal",
        include_str!("../migrations/postgres/0002_portal.sql"),
    ),
    (
        3,
        "analytics",
        include_str!("../migrations/postgres/0003_analytics.sql"),
    ),
    (
        4,
        "admin",
        include_str!("../migrations/postgres/0004_admin.sql"),
    ),
    (
        5,
        "control_security",
        include_str!("../migrations/postgres/0005_control_security.sql"),
    ),
];

/// Connections per node. Several nodes share one server (default `max_connections` 100).
const MAX_CONNECTIONS: u32 = 10;
/// How long connecting, or waiting for a pooled connection, may take before it is an error.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Advisory lock key held while migrations run ("gh-migr").
const MIGRATION_LOCK: i64 = 0x0067_682d_6d69_6772;
/// Advisory lock key held by each developer write ("gh-devs").
const DEVELOPER_LOCK: i64 = 0x0067_682d_6465_7673;
/// Advisory lock class of a developer's client slots ("gh-slot"), with the developer id's hash
/// as the second key.
const CLIENT_SLOT_LOCK: i32 = 0x6768_736c;
/// Listener reconnect backoff bounds.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(250);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The PostgreSQL store, for `--database-url postgres://…`: several gateway and dashboard nodes
/// share one database.
///
/// A pool of up to 10 connections; waiting for a connection (or connecting at start) gives up after
/// 5 seconds with an error instead of hanging. Every configuration change bumps the version and
/// sends `NOTIFY gatehouse_config, '<version>'` in the same transaction; see
/// [`listen_config_changes`](Self::listen_config_changes).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// The URL without its password, for messages.
    shown: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Adds one analytics row to the stored one (see [`Store::add_analytics`]).
const ANALYTICS_UPSERT: &str = "INSERT INTO analytics_minutes (minute, api_id, developer_id, client_id, status_class, \
     requests, bytes_in, bytes_out, latency_us_sum, h00, h01, h02, h03, h04, h05, h06, h07, \
     h08, h09, h10, h11, h12, h13, h14, h15) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) ON CONFLICT \
     (minute, api_id, developer_id, client_id, status_class) DO UPDATE SET requests = \
     analytics_minutes.requests + excluded.requests, bytes_in = analytics_minutes.bytes_in + \
     excluded.bytes_in, bytes_out = analytics_minutes.bytes_out + excluded.bytes_out, \
     latency_us_sum = analytics_minutes.latency_us_sum + excluded.latency_us_sum, h00 = \
     analytics_minutes.h00 + excluded.h00, h01 = analytics_minutes.h01 + excluded.h01, h02 = \
     analytics_minutes.h02 + excluded.h02, h03 = analytics_minutes.h03 + excluded.h03, h04 = \
     analytics_minutes.h04 + excluded.h04, h05 = analytics_minutes.h05 + excluded.h05, h06 = \
     analytics_minutes.h06 + excluded.h06, h07 = analytics_minutes.h07 + excluded.h07, h08 = \
     analytics_minutes.h08 + excluded.h08, h09 = analytics_minutes.h09 + excluded.h09, h10 = \
     analytics_minutes.h10 + excluded.h10, h11 = analytics_minutes.h11 + excluded.h11, h12 = \
     analytics_minutes.h12 + excluded.h12, h13 = analytics_minutes.h13 + excluded.h13, h14 = \
     analytics_minutes.h14 + excluded.h14, h15 = analytics_minutes.h15 + excluded.h15";

/// Analytics rows by minute range and optional API, developer and client.
const ANALYTICS_SELECT: &str = "SELECT minute, api_id, developer_id, client_id, status_class, requests, bytes_in, \
     bytes_out, latency_us_sum, h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, h10, h11, \
     h12, h13, h14, h15 FROM analytics_minutes WHERE minute >= $1 AND minute < $2 AND \
     ($3::text IS NULL OR api_id = $3) AND ($4::text IS NULL OR developer_id = $4) AND \
     ($5::text IS NULL OR client_id = $5) ORDER BY minute, api_id, developer_id, client_id, \
     status_class LIMIT $6";

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// The constraint named by a unique violation, if `e` is one.
fn unique_violation(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Some(d.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

fn connect_error(shown: &str, cause: &str) -> StoreError {
    StoreError::Database(format!(
        "cannot connect to PostgreSQL at {shown}: {cause}. Check that the server is running and \
         reachable from this host, and that the user, password and database name in the URL are \
         right"
    ))
}

/// `url` with its password (user-info or `password=` parameter) replaced by `***`.
fn redact_url(url: &str) -> String {
    let mut out = match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
                    None => url.to_owned(),
                },
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    // Query parameters (or a key=value string): password=…, sslpassword=…
    let mut from = 0;
    while let Some(pos) = out[from..].find("password=") {
        let start = from + pos + "password=".len();
        let end = out[start..]
            .find(['&', ' ', '#'])
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
        from = start + 3;
    }
    out
}

impl PostgresStore {
    /// The channel on which every configuration change is announced (payload: the new version).
    pub const CONFIG_CHANNEL: &'static str = "gatehouse_config";

    /// Connects to the database at `url` (`postgres://user:password@host:port/database?…`, any
    /// option sqlx's `PgConnectOptions` accepts, e.g. `sslmode=require`) and applies pending
    /// migrations.
    ///
    /// Fails within about 5 seconds when the server cannot be reached; the error names the URL
    /// without its password and says what to check.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL {shown}: {e}")))?;
        if options.get_application_name().is_none() {
            options = options.application_name("gatehouse");
        }

        // One connection first: it gives the real cause when the server is unreachable (the pool
        // would only say that it timed out), and it holds the migration lock.
        let mut conn =
            match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(connect_error(&shown, &e.to_string())),
                Err(_) => {
                    return Err(connect_error(
                        &shown,
                        &format!("no answer within {} seconds", ACQUIRE_TIMEOUT.as_secs()),
                    ));
                }
            };
        let migrated = migrate(&mut conn).await;
        // Closing the session also releases the advisory lock, whatever happened.
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the migration connection");
        }
        migrated?;

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .max_lifetime(Duration::from_secs(1800))
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_error(&shown, &e.to_string()))?;
        Ok(Self {
            pool,
            options,
            shown,
        })
    }

    /// Subscribes to configuration changes made by any node: the receiver yields the new
    /// configuration version after each committed change (API, policy, catalogue entry, OAuth
    /// client), in commit order.
    ///
    /// The subscription is active when this returns, so every change committed afterwards is
    /// delivered. It uses its own connection (`LISTEN gatehouse_config`), outside the pool. If that
    /// connection is lost, a warning is logged and it reconnects by itself (backing off from
    /// 250 ms to 30 s); since notifications sent meanwhile are lost, the current version is read
    /// and sent after each reconnect, so a consumer that compares versions misses nothing. Values
    /// may therefore repeat. The background task ends when the receiver is dropped.
    ///
    /// Fails if the first connection cannot be made.
    pub async fn listen_config_changes(&self) -> Result<mpsc::Receiver<i64>, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.options.clone());
        let listener = subscribe(&pool).await.map_err(|e| {
            StoreError::Database(format!(
                "cannot listen for configuration changes at {}: {e}",
                self.shown
            ))
        })?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(listen_loop(
            listener,
            pool,
            self.pool.clone(),
            tx,
            self.shown.clone(),
        ));
        Ok(rx)
    }

    async fn list_docs(&self, sql: &'static str) -> Result<Vec<StoredDoc>, StoreError> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(row_to_doc).collect()
    }

    async fn get_doc(&self, sql: &'static str, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(row_to_doc).transpose()
    }

    async fn delete_doc(&self, sql: &'static str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let n = sqlx::query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if n == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// After a unique violation on the listen path (the transaction is aborted): the conflict,
    /// naming the API that holds the path now.
    async fn route_key_violation(&self, route_key: &str, api_id: &str) -> StoreError {
        let other: Option<(String, String)> =
            sqlx::query_as("SELECT api_id, name FROM apis WHERE route_key = $1 AND api_id <> $2")
                .bind(route_key)
                .bind(api_id)
                .fetch_optional(&self.pool)
                .await
                .unwrap_or_default();
        listen_path_conflict(route_key, other)
    }
}

/// The conflict on `proxy.listen_path` for `route_key`, naming the API (id, name) that holds it.
fn listen_path_conflict(route_key: &str, other: Option<(String, String)>) -> StoreError {
    let lp = crate::describe_route_key(route_key);
    StoreError::Conflict {
        field: "proxy.listen_path",
        message: match other {
            Some((other_id, other_name)) => {
                format!("the listen path '{lp}' is already used by API '{other_name}' ({other_id})")
            }
            None => format!("the listen path '{lp}' is already used by another API"),
        },
    }
}

/// Applies pending migrations on `conn`, holding the migration advisory lock.
async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if !got {
        tracing::info!("another node is applying schema migrations; waiting for it");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let result = apply_migrations(conn).await;
    if result.is_ok() {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    result
}

async fn apply_migrations(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = conn.begin().await.map_err(db_err)?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(|e| {
            StoreError::Database(format!("migration {version} ({name}) failed: {e}"))
        })?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(unix_now())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(())
}

/// Bumps the configuration version and announces it at commit. The `UPDATE` row-locks the single
/// version row until the transaction ends, which serialises configuration writes across nodes;
/// so it must be the first statement of every configuration-changing transaction.
async fn bump_version(tx: &mut Transaction<'_, Postgres>) -> Result<i64, StoreError> {
    let version: i64 = sqlx::query_scalar(
        "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(PostgresStore::CONFIG_CHANNEL)
        .bind(version.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(version)
}

/// Serialises developer writes across nodes (they do not bump the configuration version).
async fn lock_developers(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DEVELOPER_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(PostgresStore::CONFIG_CHANNEL).await?;
    Ok(listener)
}

/// The listener task: forwards notifications until the receiver is dropped, then closes the
/// listening connection.
async fn listen_loop(
    listener: PgListener,
    listen_pool: PgPool,
    pool: PgPool,
    tx: mpsc::Sender<i64>,
    shown: String,
) {
    forward_notifications(listener, &listen_pool, &pool, &tx, &shown).await;
    // The listener has been dropped (it hands its connection back after UNLISTEN *); close it.
    if tokio::time::timeout(ACQUIRE_TIMEOUT, listen_pool.close())
        .await
        .is_err()
    {
        tracing::debug!("the listening connection did not close in time");
    }
    tracing::debug!(database = %shown, "stopped listening for configuration changes");
}

/// Forwards notifications to `tx` until it is closed, reconnecting as needed.
async fn forward_notifications(
    listener: PgListener,
    listen_pool: &PgPool,
    pool: &PgPool,
    tx: &mpsc::Sender<i64>,
    shown: &str,
) {
    let mut listener = Some(listener);
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        let Some(active) = listener.as_mut() else {
            let attempt = tokio::select! {
                () = tx.closed() => return,
                r = subscribe(listen_pool) => r,
            };
            match attempt {
                Ok(l) => {
                    tracing::info!(database = %shown, "listening for configuration changes again");
                    listener = Some(l);
                    backoff = LISTEN_BACKOFF_MIN;
                    if !resync(pool, tx).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(database = %shown, error = %e, retry_in = ?backoff,
                        "cannot listen for configuration changes");
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                }
            }
            continue;
        };
        let next = tokio::select! {
            () = tx.closed() => return,
            r = active.try_recv() => r,
        };
        match next {
            Ok(Some(n)) => match n.payload().parse::<i64>() {
                Ok(version) => {
                    if tx.send(version).await.is_err() {
                        return;
                    }
                }
                Err(_) => tracing::warn!(
                    payload = n.payload(),
                    "ignoring a malformed configuration notification"
                ),
            },
            Ok(None) => {
                // sqlx has already reconnected and listens again; changes made meanwhile were not
                // announced.
                tracing::warn!(database = %shown,
                    "lost the connection listening for configuration changes; reconnected");
                if !resync(pool, tx).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(database = %shown, error = %e,
                    "lost the connection listening for configuration changes; reconnecting");
                listener = None;
            }
        }
    }
}

/// Sends the current version after a reconnect; `false` when the receiver is gone.
async fn resync(pool: &PgPool, tx: &mpsc::Sender<i64>) -> bool {
    match sqlx::query_scalar::<_, i64>("SELECT version FROM config_version WHERE id = 1")
        .fetch_one(pool)
        .await
    {
        Ok(version) => tx.send(version).await.is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the configuration version after reconnecting");
            true
        }
    }
}

fn row_to_doc(row: &PgRow) -> Result<StoredDoc, StoreError> {
    let id: String = row.try_get(0).map_err(db_err)?;
    let text: String = row.try_get(1).map_err(db_err)?;
    let doc = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        id: id.clone(),
        reason: e.to_string(),
    })?;
    Ok(StoredDoc {
        id,
        doc,
        created_at: row.try_get(2).map_err(db_err)?,
        updated_at: row.try_get(3).map_err(db_err)?,
    })
}

fn row_to_developer(row: &PgRow) -> Result<DeveloperRow, StoreError> {
    Ok(DeveloperRow {
        id: row.try_get(0).map_err(db_err)?,
        email: row.try_get(1).map_err(db_err)?,
        first_name: row.try_get(2).map_err(db_err)?,
        last_name: row.try_get(3).map_err(db_err)?,
        password_hash: row.try_get(4).map_err(db_err)?,
        inactive: row.try_get(5).map_err(db_err)?,
        created_at: row.try_get(6).map_err(db_err)?,
        updated_at: row.try_get(7).map_err(db_err)?,
    })
}

fn row_to_client(row: &PgRow) -> Result<ClientRow, StoreError> {
    let client_id: String = row.try_get(0).map_err(db_err)?;
    let text: String = row.try_get(2).map_err(db_err)?;
    let doc = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        id: client_id.clone(),
        reason: e.to_string(),
    })?;
    Ok(ClientRow {
        client_id,
        developer_id: row.try_get(1).map_err(db_err)?,
        doc,
        secret_sealed: row.try_get(3).map_err(db_err)?,
        rat_sealed: row.try_get(4).map_err(db_err)?,
        created_at: row.try_get(5).map_err(db_err)?,
        updated_at: row.try_get(6).map_err(db_err)?,
        deleted_at: row.try_get(7).map_err(db_err)?,
    })
}

/// Applies a [`WriteMode`]: creating an existing document is `conflict()`, replacing a missing one
/// is `NotFound`.
fn check_mode(
    mode: WriteMode,
    exists: bool,
    conflict: impl FnOnce() -> StoreError,
) -> Result<(), StoreError> {
    match (mode, exists) {
        (WriteMode::Create, true) => Err(conflict()),
        (WriteMode::Replace, false) => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

fn outcome(existed: bool) -> WriteOutcome {
    if existed {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn list_apis(&self) -> Result<Vec<StoredDoc>, StoreError> {
        self.list_docs("SELECT api_id, doc, created_at, updated_at FROM apis ORDER BY api_id")
            .await
    }

    async fn get_api(&self, api_id: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.get_doc(
            "SELECT api_id, doc, created_at, updated_at FROM apis WHERE api_id = $1",
            api_id,
        )
        .await
    }

    async fn put_api(
        &self,
        api_id: &str,
        name: &str,
        route_key: &str,
        doc: &Value,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM apis WHERE api_id = $1")
            .bind(api_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let api_id_conflict = || StoreError::Conflict {
            field: "api_id",
            message: format!("an API with api_id '{api_id}' already exists"),
        };
        check_mode(mode, exists.is_some(), api_id_conflict)?;
        let taken: Option<(String, String)> =
            sqlx::query_as("SELECT api_id, name FROM apis WHERE route_key = $1 AND api_id <> $2")
                .bind(route_key)
                .bind(api_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if taken.is_some() {
            return Err(listen_path_conflict(route_key, taken));
        }
        let now = unix_now();
        let text = doc.to_string();
        let written = if exists.is_some() {
            sqlx::query(
                "UPDATE apis SET route_key = $1, name = $2, doc = $3, updated_at = $4
                 WHERE api_id = $5",
            )
            .bind(route_key)
            .bind(name)
            .bind(&text)
            .bind(now)
            .bind(api_id)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query(
                "INSERT INTO apis (api_id, route_key, name, doc, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(api_id)
            .bind(route_key)
            .bind(name)
            .bind(&text)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
        };
        // Unreachable while every writer goes through this store (the version row lock serialises
        // them), but the constraints decide if something else writes the table.
        if let Err(e) = written {
            drop(tx);
            return Err(match unique_violation(&e).as_deref() {
                Some("apis_route_key_key") => self.route_key_violation(route_key, api_id).await,
                Some(_) => api_id_conflict(),
                None => db_err(e),
            });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(outcome(exists.is_some()))
    }

    async fn delete_api(&self, api_id: &str) -> Result<bool, StoreError> {
        self.delete_doc("DELETE FROM apis WHERE api_id = $1", api_id)
            .await
    }

    async fn list_policies(&self) -> Result<Vec<StoredDoc>, StoreError> {
        self.list_docs("SELECT id, doc, created_at, updated_at FROM policies ORDER BY id")
            .await
    }

    async fn get_policy(&self, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.get_doc(
            "SELECT id, doc, created_at, updated_at FROM policies WHERE id = $1",
            id,
        )
        .await
    }

    async fn put_policy(
        &self,
        id: &str,
        name: &str,
        doc: &Value,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM policies WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let conflict = || StoreError::Conflict {
            field: "id",
            message: format!("a policy with id '{id}' already exists"),
        };
        check_mode(mode, exists.is_some(), conflict)?;
        let now = unix_now();
        // A plain INSERT when creating, so that a concurrent creation is a conflict, not an
        // overwrite.
        let sql = if exists.is_some() {
            "INSERT INTO policies (id, name, doc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, doc = excluded.doc,
             updated_at = excluded.updated_at"
        } else {
            "INSERT INTO policies (id, name, doc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
        };
        sqlx::query(sql)
            .bind(id)
            .bind(name)
            .bind(doc.to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => conflict(),
                None => db_err(e),
            })?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcome(exists.is_some()))
    }

    async fn delete_policy(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_doc("DELETE FROM policies WHERE id = $1", id)
            .await
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
             updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(unix_now())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(unix_now())
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn add_setup_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO setup_tokens (token_hash, created_at) VALUES ($1, $2)
             ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(token_hash)
        .bind(unix_now())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn setup_tokens(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT token_hash FROM setup_tokens ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn delete_setup_tokens(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM setup_tokens")
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    async fn reserve_client_slot(
        &self,
        developer_id: &str,
        slot_id: &str,
        limit: u64,
        now: i64,
        expires_at: i64,
    ) -> Result<SlotReservation, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // One developer's reservations are serialised on every node until commit, so the count
        // below sees every slot taken before.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(CLIENT_SLOT_LOCK)
            .bind(developer_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM client_slots WHERE developer_id = $1 AND expires_at <= $2")
            .bind(developer_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let used: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM oauth_clients
                     WHERE developer_id = $1 AND deleted_at IS NULL)
                  + (SELECT COUNT(*) FROM client_slots WHERE developer_id = $1)",
        )
        .bind(developer_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let used = u64::try_from(used).unwrap_or(0);
        if used >= limit {
            tx.rollback().await.map_err(db_err)?;
            return Ok(SlotReservation::Full(used));
        }
        sqlx::query(
            "INSERT INTO client_slots (slot_id, developer_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(slot_id)
        .bind(developer_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(SlotReservation::Reserved)
    }

    async fn release_client_slot(&self, slot_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM client_slots WHERE slot_id = $1")
            .bind(slot_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn load_quota_counters(&self) -> Result<Vec<QuotaRow>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT key, used, window_start, window_secs FROM quota_counters ORDER BY key",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(key, used, window_start, window_secs)| QuotaRow {
                key,
                used,
                window_start,
                window_secs,
            })
            .collect())
    }

    async fn save_quota_counters(&self, rows: &[QuotaRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // One statement for the batch. The last row of a key wins (as with one upsert per row),
        // and keys go in sorted order so that two nodes flushing overlapping batches cannot
        // deadlock.
        let latest: BTreeMap<&str, &QuotaRow> = rows.iter().map(|r| (r.key.as_str(), r)).collect();
        let keys: Vec<&str> = latest.keys().copied().collect();
        let used: Vec<i64> = latest.values().map(|r| r.used).collect();
        let starts: Vec<i64> = latest.values().map(|r| r.window_start).collect();
        let secs: Vec<i64> = latest.values().map(|r| r.window_secs).collect();
        sqlx::query(
            "INSERT INTO quota_counters (key, used, window_start, window_secs)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
             ON CONFLICT (key) DO UPDATE SET used = excluded.used,
             window_start = excluded.window_start, window_secs = excluded.window_secs",
        )
        .bind(keys)
        .bind(used)
        .bind(starts)
        .bind(secs)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn add_analytics(&self, rows: &[AnalyticsRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for r in merge_analytics(rows) {
            let mut q = sqlx::query(ANALYTICS_UPSERT)
                .bind(r.minute)
                .bind(&r.api_id)
                .bind(&r.developer_id)
                .bind(&r.client_id)
                .bind(r.status_class)
                .bind(r.requests)
                .bind(r.bytes_in)
                .bind(r.bytes_out)
                .bind(r.latency_us_sum);
            for h in r.latency_hist {
                q = q.bind(h);
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn query_analytics(&self, f: &AnalyticsFilter) -> Result<Vec<AnalyticsRow>, StoreError> {
        let rows = sqlx::query(ANALYTICS_SELECT)
            .bind(f.from_minute)
            .bind(f.to_minute)
            .bind(f.api_id.as_deref())
            .bind(f.developer_id.as_deref())
            .bind(f.client_id.as_deref())
            .bind(f.limit.map_or(i64::MAX, i64::from))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(row_to_analytics).collect()
    }

    async fn prune_analytics(&self, before_minute: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM analytics_minutes WHERE minute < $1")
            .bind(before_minute)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_catalogue(&self) -> Result<Vec<StoredDoc>, StoreError> {
        self.list_docs("SELECT id, doc, created_at, updated_at FROM catalogue ORDER BY id")
            .await
    }

    async fn get_catalogue(&self, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.get_doc(
            "SELECT id, doc, created_at, updated_at FROM catalogue WHERE id = $1",
            id,
        )
        .await
    }

    async fn put_catalogue(
        &self,
        id: &str,
        doc: &Value,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM catalogue WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let conflict = || StoreError::Conflict {
            field: "id",
            message: format!("a catalogue entry with id '{id}' already exists"),
        };
        check_mode(mode, exists.is_some(), conflict)?;
        let now = unix_now();
        let sql = if exists.is_some() {
            "INSERT INTO catalogue (id, doc, created_at, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at"
        } else {
            "INSERT INTO catalogue (id, doc, created_at, updated_at) VALUES ($1, $2, $3, $4)"
        };
        sqlx::query(sql)
            .bind(id)
            .bind(doc.to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(_) => conflict(),
                None => db_err(e),
            })?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcome(exists.is_some()))
    }

    async fn delete_catalogue(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_doc("DELETE FROM catalogue WHERE id = $1", id)
            .await
    }

    async fn list_developers(&self) -> Result<Vec<DeveloperRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, email, first_name, last_name, password_hash, inactive, created_at, updated_at
             FROM developers ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_developer).collect()
    }

    async fn get_developer(&self, id: &str) -> Result<Option<DeveloperRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, first_name, last_name, password_hash, inactive, created_at, updated_at
             FROM developers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_developer).transpose()
    }

    async fn get_developer_by_email(
        &self,
        email: &str,
    ) -> Result<Option<DeveloperRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, first_name, last_name, password_hash, inactive, created_at, updated_at
             FROM developers WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_developer).transpose()
    }

    async fn put_developer(
        &self,
        row: &DeveloperRow,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_developers(&mut tx).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM developers WHERE id = $1")
            .bind(&row.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let id_conflict = || StoreError::Conflict {
            field: "id",
            message: format!("a developer with id '{}' already exists", row.id),
        };
        let email_conflict = || StoreError::Conflict {
            field: "email",
            message: format!("a developer with the email '{}' already exists", row.email),
        };
        check_mode(mode, exists.is_some(), id_conflict)?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM developers WHERE email = $1 AND id <> $2")
                .bind(&row.email)
                .bind(&row.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if taken.is_some() {
            return Err(email_conflict());
        }
        let sql = if exists.is_some() {
            "INSERT INTO developers
               (id, email, first_name, last_name, password_hash, inactive, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET email = excluded.email,
               first_name = excluded.first_name, last_name = excluded.last_name,
               password_hash = excluded.password_hash, inactive = excluded.inactive,
               updated_at = excluded.updated_at"
        } else {
            "INSERT INTO developers
               (id, email, first_name, last_name, password_hash, inactive, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        };
        sqlx::query(sql)
            .bind(&row.id)
            .bind(&row.email)
            .bind(&row.first_name)
            .bind(&row.last_name)
            .bind(&row.password_hash)
            .bind(row.inactive)
            .bind(row.created_at)
            .bind(unix_now())
            .execute(&mut *tx)
            .await
            .map_err(|e| match unique_violation(&e).as_deref() {
                Some("developers_email_key") => email_conflict(),
                Some(_) => id_conflict(),
                None => db_err(e),
            })?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcome(exists.is_some()))
    }

    async fn delete_developer(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        lock_developers(&mut tx).await?;
        sqlx::query("DELETE FROM portal_sessions WHERE developer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let n = sqlx::query("DELETE FROM developers WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn create_session(
        &self,
        token_hash: &str,
        developer_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO portal_sessions (token_hash, developer_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(developer_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session_developer(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT developer_id FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_developer_sessions(&self, developer_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_sessions WHERE developer_id = $1")
            .bind(developer_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_clients(
        &self,
        developer_id: Option<&str>,
        include_deleted: bool,
    ) -> Result<Vec<ClientRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, developer_id, doc, secret_sealed, rat_sealed, created_at, updated_at,
                    deleted_at
             FROM oauth_clients
             WHERE ($1::text IS NULL OR developer_id = $1) AND ($2 OR deleted_at IS NULL)
             ORDER BY created_at, client_id",
        )
        .bind(developer_id)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_client).collect()
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, developer_id, doc, secret_sealed, rat_sealed, created_at, updated_at,
                    deleted_at
             FROM oauth_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_client).transpose()
    }

    async fn insert_client(&self, row: &ClientRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        sqlx::query(
            "INSERT INTO oauth_clients
               (client_id, developer_id, doc, secret_sealed, rat_sealed, created_at, updated_at,
                deleted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&row.client_id)
        .bind(&row.developer_id)
        .bind(row.doc.to_string())
        .bind(&row.secret_sealed)
        .bind(&row.rat_sealed)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::Conflict {
                field: "client_id",
                message: format!("the client '{}' is already recorded", row.client_id),
            },
            None => db_err(e),
        })?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn update_client_credentials(
        &self,
        client_id: &str,
        secret_sealed: Option<&str>,
        rat_sealed: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE oauth_clients SET secret_sealed = $1, rat_sealed = $2, updated_at = $3
             WHERE client_id = $4 AND deleted_at IS NULL",
        )
        .bind(secret_sealed)
        .bind(rat_sealed)
        .bind(unix_now())
        .bind(client_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn mark_client_deleted(&self, client_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let now = unix_now();
        sqlx::query(
            "UPDATE oauth_clients SET secret_sealed = NULL, rat_sealed = NULL, deleted_at = $1,
               updated_at = $2 WHERE client_id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn create_admin_session(
        &self,
        token_hash: &str,
        email: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, email, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(email)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn admin_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<AdminSessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT email, expires_at FROM admin_sessions
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(AdminSessionRow {
                email: r.try_get(0).map_err(db_err)?,
                expires_at: r.try_get(1).map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn delete_admin_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_admin_sessions_of(&self, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE email = $1")
            .bind(email)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, source)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.detail)
        .bind(&entry.source)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail, source FROM audit_log
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get(0).map_err(db_err)?,
                    at: r.try_get(1).map_err(db_err)?,
                    actor: r.try_get(2).map_err(db_err)?,
                    action: r.try_get(3).map_err(db_err)?,
                    target: r.try_get(4).map_err(db_err)?,
                    detail: r.try_get(5).map_err(db_err)?,
                    source: r.try_get(6).map_err(db_err)?,
                })
            })
            .collect()
    }
}

fn row_to_analytics(row: &PgRow) -> Result<AnalyticsRow, StoreError> {
    let mut latency_hist = [0i64; ANALYTICS_BUCKETS];
    for (i, h) in latency_hist.iter_mut().enumerate() {
        *h = row.try_get(9 + i).map_err(db_err)?;
    }
    Ok(AnalyticsRow {
        minute: row.try_get(0).map_err(db_err)?,
        api_id: row.try_get(1).map_err(db_err)?,
        developer_id: row.try_get(2).map_err(db_err)?,
        client_id: row.try_get(3).map_err(db_err)?,
        status_class: row.try_get(4).map_err(db_err)?,
        requests: row.try_get(5).map_err(db_err)?,
        bytes_in: row.try_get(6).map_err(db_err)?,
        bytes_out: row.try_get(7).map_err(db_err)?,
        latency_us_sum: row.try_get(8).map_err(db_err)?,
        latency_hist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://gh:s3cret@db.internal:5432/gatehouse"),
            "postgres://gh:***@db.internal:5432/gatehouse"
        );
        assert_eq!(
            redact_url("postgresql://gh:p%40ss@db/gh?sslmode=require"),
            "postgresql://gh:***@db/gh?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("postgres://db/gh?user=gh&password=s3cret&sslmode=require"),
            "postgres://db/gh?user=gh&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u:a@db/gh?sslpassword=k"),
            "postgres://u:***@db/gh?sslpassword=***"
        );
        assert_eq!(redact_url("postgres://db"), "postgres://db");
    }
}
