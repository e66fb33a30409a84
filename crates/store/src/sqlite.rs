//! The embedded SQLite store.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{
    ANALYTICS_BUCKETS, AdminSessionRow, AnalyticsFilter, AnalyticsRow, AuditEntry, ClientRow,
    DeveloperRow, QuotaRow, SlotReservation, Store, StoreError, StoredDoc, WriteMode, WriteOutcome,
    merge_analytics, unix_now,
};

/// Migrations for SQLite, in order. Each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "portal",
        include_str!("../migrations/sqlite/0002_portal.sql"),
    ),
    (
        3,
        "analytics",
        include_str!("../migrations/sqlite/0003_analytics.sql"),
    ),
    (
        4,
        "admin",
        include_str!("../migrations/sqlite/0004_admin.sql"),
    ),
    (
        5,
        "control_security",
        include_str!("../migrations/sqlite/0005_control_security.sql"),
    ),
];

/// The embedded store: one SQLite file, WAL mode, `synchronous=FULL`.
///
/// Writes go through a single-connection pool, so Gatehouse's own writes never contend; readers use
/// a small pool of their own. Another process writing the same file (e.g. `gatehouse import`) waits
/// on SQLite's busy timeout.
#[derive(Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

/// Adds one analytics row to the stored one (see [`Store::add_analytics`]).
const ANALYTICS_UPSERT: &str = "INSERT INTO analytics_minutes (minute, api_id, developer_id, client_id, status_class, \
     requests, bytes_in, bytes_out, latency_us_sum, h00, h01, h02, h03, h04, h05, h06, h07, \
     h08, h09, h10, h11, h12, h13, h14, h15) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
     ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (minute, api_id, developer_id, \
     client_id, status_class) DO UPDATE SET requests = analytics_minutes.requests + \
     excluded.requests, bytes_in = analytics_minutes.bytes_in + excluded.bytes_in, bytes_out \
     = analytics_minutes.bytes_out + excluded.bytes_out, latency_us_sum = \
     analytics_minutes.latency_us_sum + excluded.latency_us_sum, h00 = analytics_minutes.h00 \
     + excluded.h00, h01 = analytics_minutes.h01 + excluded.h01, h02 = analytics_minutes.h02 \
     + excluded.h02, h03 = analytics_minutes.h03 + excluded.h03, h04 = analytics_minutes.h04 \
     + excluded.h04, h05 = analytics_minutes.h05 + excluded.h05, h06 = analytics_minutes.h06 \
     + excluded.h06, h07 = analytics_minutes.h07 + excluded.h07, h08 = analytics_minutes.h08 \
     + excluded.h08, h09 = analytics_minutes.h09 + excluded.h09, h10 = analytics_minutes.h10 \
     + excluded.h10, h11 = analytics_minutes.h11 + excluded.h11, h12 = analytics_minutes.h12 \
     + excluded.h12, h13 = analytics_minutes.h13 + excluded.h13, h14 = analytics_minutes.h14 \
     + excluded.h14, h15 = analytics_minutes.h15 + excluded.h15";

/// Analytics rows by minute range and optional API, developer and client.
const ANALYTICS_SELECT: &str = "SELECT minute, api_id, developer_id, client_id, status_class, requests, bytes_in, \
     bytes_out, latency_us_sum, h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, h10, h11, \
     h12, h13, h14, h15 FROM analytics_minutes WHERE minute >= ?1 AND minute < ?2 AND (?3 IS \
     NULL OR api_id = ?3) AND (?4 IS NULL OR developer_id = ?4) AND (?5 IS NULL OR client_id \
     = ?5) ORDER BY minute, api_id, developer_id, client_id, status_class LIMIT ?6";

fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) `gatehouse.db` in `data_dir` and applies pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Database(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("gatehouse.db");
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(|e| {
                StoreError::Database(format!("cannot open the database {}: {e}", path.display()))
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(db_err)?;
        let store = Self { reader, writer };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.writer.begin().await.map_err(db_err)?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
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
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
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

    async fn list_docs(&self, sql: &'static str) -> Result<Vec<StoredDoc>, StoreError> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(row_to_doc).collect()
    }

    async fn get_doc(&self, sql: &'static str, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?;
        row.as_ref().map(row_to_doc).transpose()
    }

    async fn delete_doc(&self, sql: &'static str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
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
}

/// Applies a [`WriteMode`]: creating an existing document is a conflict on `field`, replacing a
/// missing one is `NotFound`.
fn check_mode(
    mode: WriteMode,
    exists: bool,
    field: &'static str,
    message: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match (mode, exists) {
        (WriteMode::Create, true) => Err(StoreError::Conflict {
            field,
            message: message(),
        }),
        (WriteMode::Replace, false) => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// Takes the write lock at once (the first statement of the transaction writes) and records the
/// change, so a reader that sees the new version also sees the change.
async fn bump_version(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<(), StoreError> {
    sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn row_to_doc(row: &sqlx::sqlite::SqliteRow) -> Result<StoredDoc, StoreError> {
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

#[async_trait]
impl Store for SqliteStore {
    async fn list_apis(&self) -> Result<Vec<StoredDoc>, StoreError> {
        self.list_docs("SELECT api_id, doc, created_at, updated_at FROM apis ORDER BY api_id")
            .await
    }

    async fn get_api(&self, api_id: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.get_doc(
            "SELECT api_id, doc, created_at, updated_at FROM apis WHERE api_id = ?",
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM apis WHERE api_id = ?")
            .bind(api_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        check_mode(mode, exists.is_some(), "api_id", || {
            format!("an API with api_id '{api_id}' already exists")
        })?;
        let taken: Option<(String, String)> =
            sqlx::query_as("SELECT api_id, name FROM apis WHERE route_key = ? AND api_id != ?")
                .bind(route_key)
                .bind(api_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if let Some((other_id, other_name)) = taken {
            let lp = crate::describe_route_key(route_key);
            return Err(StoreError::Conflict {
                field: "proxy.listen_path",
                message: format!(
                    "the listen path '{lp}' is already used by API '{other_name}' ({other_id})"
                ),
            });
        }
        let now = unix_now();
        let text = doc.to_string();
        if exists.is_some() {
            sqlx::query(
                "UPDATE apis SET route_key = ?, name = ?, doc = ?, updated_at = ? WHERE api_id = ?",
            )
            .bind(route_key)
            .bind(name)
            .bind(&text)
            .bind(now)
            .bind(api_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        } else {
            sqlx::query(
                "INSERT INTO apis (api_id, route_key, name, doc, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(api_id)
            .bind(route_key)
            .bind(name)
            .bind(&text)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(if exists.is_some() {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Created
        })
    }

    async fn delete_api(&self, api_id: &str) -> Result<bool, StoreError> {
        self.delete_doc("DELETE FROM apis WHERE api_id = ?", api_id)
            .await
    }

    async fn list_policies(&self) -> Result<Vec<StoredDoc>, StoreError> {
        self.list_docs("SELECT id, doc, created_at, updated_at FROM policies ORDER BY id")
            .await
    }

    async fn get_policy(&self, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.get_doc(
            "SELECT id, doc, created_at, updated_at FROM policies WHERE id = ?",
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM policies WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        check_mode(mode, exists.is_some(), "id", || {
            format!("a policy with id '{id}' already exists")
        })?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO policies (id, name, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc,
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(name)
        .bind(doc.to_string())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(if exists.is_some() {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Created
        })
    }

    async fn delete_policy(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_doc("DELETE FROM policies WHERE id = ?", id)
            .await
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(unix_now())
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(unix_now())
        .execute(&self.writer)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn add_setup_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO setup_tokens (token_hash, created_at) VALUES (?, ?)")
            .bind(token_hash)
            .bind(unix_now())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn setup_tokens(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT token_hash FROM setup_tokens ORDER BY created_at")
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)
    }

    async fn delete_setup_tokens(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM setup_tokens")
            .execute(&self.writer)
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
        // The single writer connection serialises this with every other write of the process;
        // the first statement writes, so another process's writer waits for the whole
        // transaction too.
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM client_slots WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let used: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM oauth_clients
                     WHERE developer_id = ?1 AND deleted_at IS NULL)
                  + (SELECT COUNT(*) FROM client_slots WHERE developer_id = ?1)",
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
            "INSERT INTO client_slots (slot_id, developer_id, expires_at) VALUES (?, ?, ?)",
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
        sqlx::query("DELETE FROM client_slots WHERE slot_id = ?")
            .bind(slot_id)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn load_quota_counters(&self) -> Result<Vec<QuotaRow>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> =
            sqlx::query_as("SELECT key, used, window_start, window_secs FROM quota_counters")
                .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        for r in rows {
            sqlx::query(
                "INSERT INTO quota_counters (key, used, window_start, window_secs) VALUES (?, ?, ?, ?)
                 ON CONFLICT(key) DO UPDATE SET used = excluded.used,
                 window_start = excluded.window_start, window_secs = excluded.window_secs",
            )
            .bind(&r.key)
            .bind(r.used)
            .bind(r.window_start)
            .bind(r.window_secs)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn add_analytics(&self, rows: &[AnalyticsRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await.map_err(db_err)?;
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
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(row_to_analytics).collect()
    }

    async fn prune_analytics(&self, before_minute: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM analytics_minutes WHERE minute < ?")
            .bind(before_minute)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
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
            "SELECT id, doc, created_at, updated_at FROM catalogue WHERE id = ?",
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
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM catalogue WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        check_mode(mode, exists.is_some(), "id", || {
            format!("a catalogue entry with id '{id}' already exists")
        })?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO catalogue (id, doc, created_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(doc.to_string())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(if exists.is_some() {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Created
        })
    }

    async fn delete_catalogue(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_doc("DELETE FROM catalogue WHERE id = ?", id)
            .await
    }

    async fn list_developers(&self) -> Result<Vec<DeveloperRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, email, first_name, last_name, password_hash, inactive, created_at, updated_at
             FROM developers ORDER BY email",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_developer).collect()
    }

    async fn get_developer(&self, id: &str) -> Result<Option<DeveloperRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, first_name, last_name, password_hash, inactive, created_at, updated_at
             FROM developers WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
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
             FROM developers WHERE email = ?",
        )
        .bind(email)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_developer).transpose()
    }

    async fn put_developer(
        &self,
        row: &DeveloperRow,
        mode: WriteMode,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        // Take the write lock first (a write that changes nothing), so a writer in another
        // process makes this one wait out the busy timeout instead of failing on upgrade.
        sqlx::query("UPDATE config_version SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM developers WHERE id = ?")
            .bind(&row.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        check_mode(mode, exists.is_some(), "id", || {
            format!("a developer with id '{}' already exists", row.id)
        })?;
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM developers WHERE email = ? AND id != ?")
                .bind(&row.email)
                .bind(&row.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if taken.is_some() {
            return Err(StoreError::Conflict {
                field: "email",
                message: format!("a developer with the email '{}' already exists", row.email),
            });
        }
        sqlx::query(
            "INSERT INTO developers
               (id, email, first_name, last_name, password_hash, inactive, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name,
               last_name = excluded.last_name, password_hash = excluded.password_hash,
               inactive = excluded.inactive, updated_at = excluded.updated_at",
        )
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
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(if exists.is_some() {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Created
        })
    }

    async fn delete_developer(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM portal_sessions WHERE developer_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let n = sqlx::query("DELETE FROM developers WHERE id = ?")
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
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO portal_sessions (token_hash, developer_id, created_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(developer_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
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
            "SELECT developer_id FROM portal_sessions WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_developer_sessions(&self, developer_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_sessions WHERE developer_id = ?")
            .bind(developer_id)
            .execute(&self.writer)
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
             WHERE (?1 IS NULL OR developer_id = ?1) AND (?2 OR deleted_at IS NULL)
             ORDER BY created_at, client_id",
        )
        .bind(developer_id)
        .bind(include_deleted)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter().map(row_to_client).collect()
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, developer_id, doc, secret_sealed, rat_sealed, created_at, updated_at,
                    deleted_at
             FROM oauth_clients WHERE client_id = ?",
        )
        .bind(client_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?;
        row.as_ref().map(row_to_client).transpose()
    }

    async fn insert_client(&self, row: &ClientRow) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        sqlx::query(
            "INSERT INTO oauth_clients
               (client_id, developer_id, doc, secret_sealed, rat_sealed, created_at, updated_at,
                deleted_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
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
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.message().contains("UNIQUE") => StoreError::Conflict {
                field: "client_id",
                message: format!("the client '{}' is already recorded", row.client_id),
            },
            _ => db_err(e),
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
            "UPDATE oauth_clients SET secret_sealed = ?, rat_sealed = ?, updated_at = ?
             WHERE client_id = ? AND deleted_at IS NULL",
        )
        .bind(secret_sealed)
        .bind(rat_sealed)
        .bind(unix_now())
        .bind(client_id)
        .execute(&self.writer)
        .await
        .map_err(db_err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn mark_client_deleted(&self, client_id: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        bump_version(&mut tx).await?;
        let now = unix_now();
        sqlx::query(
            "UPDATE oauth_clients SET secret_sealed = NULL, rat_sealed = NULL, deleted_at = ?,
               updated_at = ? WHERE client_id = ? AND deleted_at IS NULL",
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
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, email, created_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(email)
        .bind(now)
        .bind(expires_at)
        .execute(&self.writer)
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
             WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
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
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_admin_sessions_of(&self, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE email = ?")
            .bind(email)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, source)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.detail)
        .bind(&entry.source)
        .execute(&self.writer)
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
             WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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

fn row_to_developer(row: &sqlx::sqlite::SqliteRow) -> Result<DeveloperRow, StoreError> {
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

fn row_to_client(row: &sqlx::sqlite::SqliteRow) -> Result<ClientRow, StoreError> {
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

fn row_to_analytics(row: &sqlx::sqlite::SqliteRow) -> Result<AnalyticsRow, StoreError> {
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
    use serde_json::json;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn api_crud_and_version_bumps() {
        let (_d, s) = store().await;
        let v0 = s.config_version().await.unwrap();
        let doc = json!({"api_id": "a", "name": "A"});
        assert_eq!(
            s.put_api("a", "A", "/a", &doc, WriteMode::Create)
                .await
                .unwrap(),
            WriteOutcome::Created
        );
        assert!(s.config_version().await.unwrap() > v0);
        assert_eq!(s.get_api("a").await.unwrap().unwrap().doc, doc);
        assert_eq!(s.list_apis().await.unwrap().len(), 1);
        let e = s
            .put_api("a", "A", "/a", &doc, WriteMode::Create)
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            StoreError::Conflict {
                field: "api_id",
                ..
            }
        ));
        let e = s
            .put_api("b", "B", "/a", &doc, WriteMode::Create)
            .await
            .unwrap_err();
        match e {
            StoreError::Conflict { field, message } => {
                assert_eq!(field, "proxy.listen_path");
                assert!(message.contains("'A' (a)"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let e = s
            .put_api("zz", "Z", "/z", &doc, WriteMode::Replace)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound));
        assert!(s.get_api("zz").await.unwrap().is_none());
        assert_eq!(
            s.put_api("a", "A2", "/a2", &json!({"x": 1}), WriteMode::Replace)
                .await
                .unwrap(),
            WriteOutcome::Updated
        );
        assert!(s.delete_api("a").await.unwrap());
        assert!(!s.delete_api("a").await.unwrap());
        assert!(s.list_apis().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn policies_settings_quota() {
        let (_d, s) = store().await;
        s.put_policy("p", "P", &json!({"id": "p"}), WriteMode::Create)
            .await
            .unwrap();
        assert!(matches!(
            s.put_policy("p", "P", &json!({}), WriteMode::Create).await,
            Err(StoreError::Conflict { field: "id", .. })
        ));
        assert_eq!(s.list_policies().await.unwrap().len(), 1);
        s.put_setting("k", "v").await.unwrap();
        s.put_setting("k", "w").await.unwrap();
        assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("w"));
        let rows = vec![QuotaRow {
            key: "quota-x".into(),
            used: 3,
            window_start: 100,
            window_secs: 60,
        }];
        s.save_quota_counters(&rows).await.unwrap();
        assert_eq!(s.load_quota_counters().await.unwrap(), rows);
    }

    #[tokio::test]
    async fn portal_tables() {
        let (_d, s) = store().await;
        let dev = DeveloperRow {
            id: "d1".into(),
            email: "a@example.com".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            password_hash: "$argon2id$x".into(),
            inactive: false,
            created_at: 1,
            updated_at: 1,
        };
        s.put_developer(&dev, WriteMode::Create).await.unwrap();
        let dup = DeveloperRow {
            id: "d2".into(),
            ..dev.clone()
        };
        assert!(matches!(
            s.put_developer(&dup, WriteMode::Create).await,
            Err(StoreError::Conflict { field: "email", .. })
        ));
        assert_eq!(
            s.get_developer_by_email("a@example.com")
                .await
                .unwrap()
                .unwrap()
                .id,
            "d1"
        );
        s.create_session("h1", "d1", unix_now() + 60).await.unwrap();
        s.create_session("h2", "d1", unix_now() - 1).await.unwrap();
        assert_eq!(
            s.session_developer("h1", unix_now())
                .await
                .unwrap()
                .as_deref(),
            Some("d1")
        );
        assert!(
            s.session_developer("h2", unix_now())
                .await
                .unwrap()
                .is_none()
        );

        let v0 = s.config_version().await.unwrap();
        let client = ClientRow {
            client_id: "c1".into(),
            developer_id: "d1".into(),
            doc: json!({"client_name": "app"}),
            secret_sealed: Some("ghs1:x:y".into()),
            rat_sealed: None,
            created_at: 1,
            updated_at: 1,
            deleted_at: None,
        };
        s.insert_client(&client).await.unwrap();
        assert!(s.config_version().await.unwrap() > v0);
        assert!(matches!(
            s.insert_client(&client).await,
            Err(StoreError::Conflict { .. })
        ));
        s.update_client_credentials("c1", Some("ghs1:x:z"), Some("ghs1:x:r"))
            .await
            .unwrap();
        assert_eq!(
            s.get_client("c1")
                .await
                .unwrap()
                .unwrap()
                .rat_sealed
                .as_deref(),
            Some("ghs1:x:r")
        );
        assert_eq!(s.list_clients(Some("d1"), false).await.unwrap().len(), 1);
        s.mark_client_deleted("c1").await.unwrap();
        assert!(s.list_clients(Some("d1"), false).await.unwrap().is_empty());
        let tomb = s.get_client("c1").await.unwrap().unwrap();
        assert!(tomb.deleted_at.is_some() && tomb.secret_sealed.is_none());
        assert!(matches!(
            s.update_client_credentials("c1", None, None).await,
            Err(StoreError::NotFound)
        ));
        assert!(s.delete_developer("d1").await.unwrap());
        assert!(
            s.session_developer("h1", unix_now())
                .await
                .unwrap()
                .is_none()
        );

        s.put_catalogue("e1", &json!({"id": "e1"}), WriteMode::Create)
            .await
            .unwrap();
        assert_eq!(s.list_catalogue().await.unwrap().len(), 1);
        assert!(s.delete_catalogue("e1").await.unwrap());
    }

    #[tokio::test]
    async fn data_survives_reopen_and_migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).await.unwrap();
            s.put_api("a", "A", "/a", &json!({"k": 1}), WriteMode::Create)
                .await
                .unwrap();
        }
        let s = SqliteStore::open(dir.path()).await.unwrap();
        assert_eq!(s.get_api("a").await.unwrap().unwrap().doc, json!({"k": 1}));
    }
}
