//! The embedded SQLite store.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{QuotaRow, Store, StoreError, StoredDoc, WriteMode, WriteOutcome, unix_now};

/// Migrations for SQLite, in order. Each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../migrations/sqlite/0001_initial.sql"),
)];

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
        match (mode, exists.is_some()) {
            (WriteMode::Create, true) => {
                return Err(StoreError::Conflict {
                    field: "api_id",
                    message: format!("an API with api_id '{api_id}' already exists"),
                });
            }
            (WriteMode::Replace, false) => return Err(StoreError::NotFound),
            _ => {}
        }
        let taken: Option<(String, String)> =
            sqlx::query_as("SELECT api_id, name FROM apis WHERE route_key = ? AND api_id != ?")
                .bind(route_key)
                .bind(api_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if let Some((other_id, other_name)) = taken {
            let lp = if route_key.is_empty() { "/" } else { route_key };
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
        match (mode, exists.is_some()) {
            (WriteMode::Create, true) => {
                return Err(StoreError::Conflict {
                    field: "id",
                    message: format!("a policy with id '{id}' already exists"),
                });
            }
            (WriteMode::Replace, false) => return Err(StoreError::NotFound),
            _ => {}
        }
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

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(())
    }
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
