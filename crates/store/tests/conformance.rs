//! The store conformance suite: the same test functions run against every [`Store`] backend.
//!
//! - SQLite: always, in a temporary directory.
//! - PostgreSQL: against `GATEHOUSE_TEST_DATABASE_URL` if set, else
//!   `postgres://postgres@127.0.0.1:5432/test` if a server answers there. Each test creates its
//!   own database `gh_test_<pid>_<n>_<nanos>` (from `template0`) and drops it at the end, even
//!   when the test fails, so tests run in parallel without colliding, NOTIFY included. Without a
//!   server each PostgreSQL test prints `skipped: no PostgreSQL …` and passes, unless
//!   `GATEHOUSE_REQUIRE_POSTGRES=1`, which turns that into a failure (for CI).
//!
//! Tests named `postgres_only::*` cover what only the PostgreSQL store has: LISTEN/NOTIFY,
//! concurrent migrations from several processes, and the connect error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use gatehouse_store::{
    AdminSessionRow, AnalyticsFilter, AnalyticsRow, AuditEntry, ClientRow, DeveloperRow,
    PostgresStore, QuotaRow, SlotReservation, SqliteStore, Store, StoreError, WriteMode,
    WriteOutcome, unix_now,
};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::task::JoinSet;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// A place a store can be opened (and reopened) on.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl Backend {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh PostgreSQL database, or `None` (after saying so) when no server is available.
    async fn postgres() -> Option<Self> {
        TestDb::create().await.map(Self::Postgres)
    }

    /// Opens a new store on this backend; several may be open at once, like several nodes.
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(dir) => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Self::Postgres(db) => Arc::new(PostgresStore::connect(&db.url).await.unwrap()),
        }
    }
}

/// A throwaway PostgreSQL database, dropped (with its connections) when this is dropped.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    async fn create() -> Option<Self> {
        let (admin_url, source) = match std::env::var("GATEHOUSE_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, "GATEHOUSE_TEST_DATABASE_URL"),
            _ => (DEFAULT_PG_URL.to_owned(), DEFAULT_PG_URL),
        };
        let required = std::env::var("GATEHOUSE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let mut admin =
            match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url))
                .await
            {
                Ok(Ok(conn)) => conn,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer within 5 s".to_owned(),
                    };
                    assert!(
                        !required,
                        "GATEHOUSE_REQUIRE_POSTGRES=1 but no PostgreSQL at {source}: {why}"
                    );
                    eprintln!(
                        "skipped: no PostgreSQL at {source} ({why}); start one, or point \
                         GATEHOUSE_TEST_DATABASE_URL at one, to run the PostgreSQL conformance \
                         tests (GATEHOUSE_REQUIRE_POSTGRES=1 makes this a failure)"
                    );
                    return None;
                }
            };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "gh_test_{}_{}_{nanos}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
        )))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside the test's runtime (or while unwinding): use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// `url` pointing at database `name` instead (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Runs each named test function against SQLite and PostgreSQL.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::sqlite();
                    super::$name(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres().await {
                        super::$name(&backend).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    api_crud_and_exact_round_trip,
    api_conflicts_and_modes,
    policies_crud_and_conflicts,
    catalogue_crud_and_conflicts,
    config_version_bumps_exactly_on_configuration_changes,
    settings,
    quota_counters_upsert,
    analytics_add_query_prune,
    analytics_from_two_nodes_add_up,
    developers_crud_and_conflicts,
    sessions_and_expiry,
    developer_delete_removes_sessions,
    admin_sessions_flash_and_expiry,
    audit_log_newest_first_with_paging,
    clients_list_filter_tombstones_credentials,
    data_survives_reconnect_and_migrations_are_idempotent,
    concurrent_creates_with_one_listen_path,
    concurrent_creates_with_one_api_id,
    concurrent_distinct_writes_lose_no_version_bump,
    concurrent_upserts_create_once,
    concurrent_developers_with_one_email,
    concurrent_creates_of_policy_catalogue_client,
    setting_if_absent_is_set_once,
    setup_tokens_add_list_delete,
    client_slots_hold_the_limit,
    concurrent_client_slots_never_exceed_the_limit,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `$e` and asserts that the configuration version moved by exactly `$n`.
macro_rules! bumps {
    ($s:expr, $n:expr, $e:expr) => {{
        let before = $s.config_version().await.unwrap();
        let result = $e;
        let after = $s.config_version().await.unwrap();
        assert_eq!(
            after - before,
            $n,
            "{}: the version went from {before} to {after}",
            stringify!($e)
        );
        result
    }};
}

fn conflict_field(e: &StoreError) -> &'static str {
    match e {
        StoreError::Conflict { field, .. } => field,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn conflict_message(e: &StoreError) -> &str {
    match e {
        StoreError::Conflict { message, .. } => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// A document whose key order, escapes and numbers must survive storage exactly.
fn tricky_doc(tag: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"zeta": 1, "alpha": {{"y": [3, 1, 2], "b": null, "a": {{}}}}, "tag": "{tag}",
            "text": "quote \" backslash \\ nul \u0000 é 日本 😀 <script>",
            "big": 18446744073709551615, "neg": -9223372036854775808, "float": 1.5,
            "empty": [], "bool": false, "middle": "m"}}"#
    ))
    .unwrap()
}

fn dev(id: &str, email: &str) -> DeveloperRow {
    DeveloperRow {
        id: id.into(),
        email: email.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        inactive: false,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

fn client(id: &str, developer_id: &str, created_at: i64) -> ClientRow {
    ClientRow {
        client_id: id.into(),
        developer_id: developer_id.into(),
        doc: json!({"client_name": format!("app {id}"), "policies": ["p1", "p2"], "provider": "okta"}),
        secret_sealed: Some(format!("ghs1:nonce:{id}")),
        rat_sealed: Some(format!("ghs1:nonce:rat-{id}")),
        created_at,
        updated_at: created_at,
        deleted_at: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

async fn api_crud_and_exact_round_trip(b: &Backend) {
    let s = b.open().await;
    assert!(s.list_apis().await.unwrap().is_empty());
    assert!(s.get_api("nope").await.unwrap().is_none());
    s.ping().await.unwrap();

    let doc = tricky_doc("a");
    let before = unix_now();
    assert_eq!(
        s.put_api("a", "A", "/a", &doc, WriteMode::Create)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    let got = s.get_api("a").await.unwrap().unwrap();
    assert_eq!(got.id, "a");
    assert_eq!(got.doc, doc);
    // Byte for byte, key order included.
    assert_eq!(got.doc.to_string(), doc.to_string());
    let keys: Vec<&String> = got.doc.as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "zeta");
    assert_eq!(keys[keys.len() - 1], "middle");
    assert!(got.created_at >= before && got.created_at == got.updated_at);

    // Listing is ordered by id, byte-wise (as SQLite compares): "B" < "_x" < "a".
    s.put_api("B", "Upper", "/upper", &json!({"n": 2}), WriteMode::Create)
        .await
        .unwrap();
    s.put_api("_x", "Under", "/under", &json!({"n": 3}), WriteMode::Create)
        .await
        .unwrap();
    let ids: Vec<String> = s
        .list_apis()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["B", "_x", "a"]);

    // Replace keeps created_at and moves the listen path.
    let replacement = json!({"replaced": true, "a": 1});
    assert_eq!(
        s.put_api("a", "A2", "/a2", &replacement, WriteMode::Replace)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    let replaced = s.get_api("a").await.unwrap().unwrap();
    assert_eq!(replaced.doc.to_string(), replacement.to_string());
    assert_eq!(replaced.created_at, got.created_at);
    assert!(replaced.updated_at >= got.updated_at);
    // The old path is free again, the new one is taken.
    s.put_api("c", "C", "/a", &json!({}), WriteMode::Create)
        .await
        .unwrap();
    let e = s
        .put_api("d", "D", "/a2", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "proxy.listen_path");

    // Upsert creates, then updates.
    assert_eq!(
        s.put_api("u", "U", "/u", &json!({"v": 1}), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        s.put_api("u", "U", "/u", &json!({"v": 2}), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    assert_eq!(s.get_api("u").await.unwrap().unwrap().doc, json!({"v": 2}));

    assert!(s.delete_api("a").await.unwrap());
    assert!(!s.delete_api("a").await.unwrap());
    assert!(s.get_api("a").await.unwrap().is_none());
    assert_eq!(s.list_apis().await.unwrap().len(), 4);
}

async fn api_conflicts_and_modes(b: &Backend) {
    let s = b.open().await;
    let doc = json!({"api_id": "a", "name": "Alpha"});
    s.put_api("a", "Alpha", "/shared", &doc, WriteMode::Create)
        .await
        .unwrap();

    // Same id.
    let e = s
        .put_api("a", "Other", "/other", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "api_id");
    assert!(conflict_message(&e).contains("'a'"), "{e}");

    // Same listen path, for each mode: the message names the other API.
    for mode in [WriteMode::Create, WriteMode::Upsert] {
        let e = s
            .put_api("b", "Beta", "/shared", &json!({}), mode)
            .await
            .unwrap_err();
        assert_eq!(conflict_field(&e), "proxy.listen_path");
        let m = conflict_message(&e);
        assert!(m.contains("'/shared'") && m.contains("'Alpha' (a)"), "{m}");
    }
    assert!(s.get_api("b").await.unwrap().is_none());

    // Replace onto a taken path.
    s.put_api("b", "Beta", "/b", &json!({}), WriteMode::Create)
        .await
        .unwrap();
    let e = s
        .put_api(
            "b",
            "Beta",
            "/shared",
            &json!({"changed": 1}),
            WriteMode::Replace,
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "proxy.listen_path");
    assert_eq!(s.get_api("b").await.unwrap().unwrap().doc, json!({}));

    // An API keeps its own path when replaced.
    s.put_api(
        "a",
        "Alpha",
        "/shared",
        &json!({"v": 2}),
        WriteMode::Replace,
    )
    .await
    .unwrap();

    // The root path ("" as route key) is shown as "/".
    s.put_api("root", "Root", "", &json!({}), WriteMode::Create)
        .await
        .unwrap();
    let e = s
        .put_api("root2", "Root 2", "", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "proxy.listen_path");
    assert!(
        conflict_message(&e).contains("'/'") && conflict_message(&e).contains("'Root' (root)"),
        "{e}"
    );

    // Replace of a missing API: NotFound, and nothing stored.
    let e = s
        .put_api("zz", "Z", "/z", &json!({}), WriteMode::Replace)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    assert!(s.get_api("zz").await.unwrap().is_none());
    // Even when its path is taken, a missing API to replace is NotFound.
    let e = s
        .put_api("zz", "Z", "/shared", &json!({}), WriteMode::Replace)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    // Create of an existing id is reported on api_id even if the path is taken too.
    let e = s
        .put_api("a", "Alpha", "/b", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "api_id");
    assert_eq!(s.list_apis().await.unwrap().len(), 3);
}

async fn policies_crud_and_conflicts(b: &Backend) {
    let s = b.open().await;
    let doc = tricky_doc("p");
    assert_eq!(
        s.put_policy("p", "P", &doc, WriteMode::Create)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    let got = s.get_policy("p").await.unwrap().unwrap();
    assert_eq!(got.doc.to_string(), doc.to_string());
    let e = s
        .put_policy("p", "P", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "id");
    assert!(conflict_message(&e).contains("'p'"), "{e}");
    assert_eq!(s.get_policy("p").await.unwrap().unwrap().doc, doc);
    assert!(matches!(
        s.put_policy("q", "Q", &json!({}), WriteMode::Replace).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.get_policy("q").await.unwrap().is_none());
    assert_eq!(
        s.put_policy("p", "P2", &json!({"v": 2}), WriteMode::Replace)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    let replaced = s.get_policy("p").await.unwrap().unwrap();
    assert_eq!(replaced.doc, json!({"v": 2}));
    assert_eq!(replaced.created_at, got.created_at);
    assert_eq!(
        s.put_policy("q", "Q", &json!({"q": 1}), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        s.put_policy("q", "Q", &json!({"q": 2}), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    s.put_policy("A", "upper", &json!({}), WriteMode::Create)
        .await
        .unwrap();
    let ids: Vec<String> = s
        .list_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["A", "p", "q"]);
    assert!(s.delete_policy("p").await.unwrap());
    assert!(!s.delete_policy("p").await.unwrap());
    assert!(s.get_policy("p").await.unwrap().is_none());
}

async fn catalogue_crud_and_conflicts(b: &Backend) {
    let s = b.open().await;
    assert!(s.list_catalogue().await.unwrap().is_empty());
    let doc = tricky_doc("e1");
    assert_eq!(
        s.put_catalogue("e1", &doc, WriteMode::Create)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        s.get_catalogue("e1")
            .await
            .unwrap()
            .unwrap()
            .doc
            .to_string(),
        doc.to_string()
    );
    let e = s
        .put_catalogue("e1", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "id");
    assert!(conflict_message(&e).contains("'e1'"), "{e}");
    assert!(matches!(
        s.put_catalogue("e2", &json!({}), WriteMode::Replace).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.get_catalogue("e2").await.unwrap().is_none());
    assert_eq!(
        s.put_catalogue("e1", &json!({"v": 2}), WriteMode::Replace)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    assert_eq!(
        s.put_catalogue("e0", &json!({"v": 0}), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        s.put_catalogue("e0", &json!({"v": 1}), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );
    let list = s.list_catalogue().await.unwrap();
    assert_eq!(
        list.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["e0", "e1"]
    );
    assert_eq!(list[0].doc, json!({"v": 1}));
    assert!(s.delete_catalogue("e1").await.unwrap());
    assert!(!s.delete_catalogue("e1").await.unwrap());
    assert_eq!(s.list_catalogue().await.unwrap().len(), 1);
}

async fn config_version_bumps_exactly_on_configuration_changes(b: &Backend) {
    let s = b.open().await;
    let v0 = s.config_version().await.unwrap();
    assert!(v0 >= 1);

    // APIs.
    bumps!(
        s,
        1,
        s.put_api("a", "A", "/a", &json!({}), WriteMode::Create)
            .await
            .unwrap()
    );
    bumps!(
        s,
        0,
        s.put_api("a", "A", "/x", &json!({}), WriteMode::Create)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        0,
        s.put_api("b", "B", "/a", &json!({}), WriteMode::Create)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        0,
        s.put_api("m", "M", "/m", &json!({}), WriteMode::Replace)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        1,
        s.put_api("a", "A", "/a", &json!({"v": 2}), WriteMode::Replace)
            .await
            .unwrap()
    );
    bumps!(
        s,
        1,
        s.put_api("c", "C", "/c", &json!({}), WriteMode::Upsert)
            .await
            .unwrap()
    );
    bumps!(s, 0, s.delete_api("missing").await.unwrap());
    bumps!(s, 1, s.delete_api("c").await.unwrap());

    // Policies.
    bumps!(
        s,
        1,
        s.put_policy("p", "P", &json!({}), WriteMode::Create)
            .await
            .unwrap()
    );
    bumps!(
        s,
        0,
        s.put_policy("p", "P", &json!({}), WriteMode::Create)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        0,
        s.put_policy("q", "Q", &json!({}), WriteMode::Replace)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        1,
        s.put_policy("p", "P", &json!({"v": 2}), WriteMode::Upsert)
            .await
            .unwrap()
    );
    bumps!(s, 0, s.delete_policy("missing").await.unwrap());
    bumps!(s, 1, s.delete_policy("p").await.unwrap());

    // Catalogue.
    bumps!(
        s,
        1,
        s.put_catalogue("e", &json!({}), WriteMode::Create)
            .await
            .unwrap()
    );
    bumps!(
        s,
        0,
        s.put_catalogue("e", &json!({}), WriteMode::Create)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        0,
        s.put_catalogue("f", &json!({}), WriteMode::Replace)
            .await
            .unwrap_err()
    );
    bumps!(
        s,
        1,
        s.put_catalogue("e", &json!({"v": 2}), WriteMode::Replace)
            .await
            .unwrap()
    );
    bumps!(s, 0, s.delete_catalogue("missing").await.unwrap());
    bumps!(s, 1, s.delete_catalogue("e").await.unwrap());

    // OAuth clients: insert and delete bump (the gateway links tokens to clients), credential
    // rotation does not.
    bumps!(s, 1, s.insert_client(&client("c1", "d1", 1)).await.unwrap());
    bumps!(
        s,
        0,
        s.insert_client(&client("c1", "d1", 1)).await.unwrap_err()
    );
    bumps!(
        s,
        0,
        s.update_client_credentials("c1", Some("x"), None)
            .await
            .unwrap()
    );
    bumps!(s, 1, s.mark_client_deleted("c1").await.unwrap());

    // Not configuration.
    bumps!(s, 0, s.put_setting("k", "v").await.unwrap());
    bumps!(
        s,
        0,
        s.save_quota_counters(&[QuotaRow {
            key: "q".into(),
            used: 1,
            window_start: 0,
            window_secs: 60
        }])
        .await
        .unwrap()
    );
    bumps!(
        s,
        0,
        s.put_developer(&dev("d1", "d1@example.com"), WriteMode::Create)
            .await
            .unwrap()
    );
    bumps!(
        s,
        0,
        s.create_session("h", "d1", unix_now() + 60).await.unwrap()
    );
    bumps!(s, 0, s.delete_session("h").await.unwrap());
    bumps!(s, 0, s.delete_developer_sessions("d1").await.unwrap());
    bumps!(s, 0, s.delete_developer("d1").await.unwrap());
    bumps!(s, 0, s.list_apis().await.unwrap());
    bumps!(s, 0, s.ping().await.unwrap());

    // 12 changes above, each exactly one step.
    assert_eq!(s.config_version().await.unwrap(), v0 + 12);
}

async fn settings(b: &Backend) {
    let s = b.open().await;
    assert!(s.get_setting("k").await.unwrap().is_none());
    s.put_setting("k", "v").await.unwrap();
    assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("v"));
    s.put_setting("k", "w").await.unwrap();
    assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("w"));
    let long = "x".repeat(100_000);
    s.put_setting("long", &long).await.unwrap();
    assert_eq!(s.get_setting("long").await.unwrap().unwrap(), long);
    s.put_setting("empty", "").await.unwrap();
    assert_eq!(s.get_setting("empty").await.unwrap().as_deref(), Some(""));
    // Keys are case-sensitive.
    assert!(s.get_setting("K").await.unwrap().is_none());
}

async fn setting_if_absent_is_set_once(b: &Backend) {
    let s = b.open().await;
    assert!(s.put_setting_if_absent("first", "a").await.unwrap());
    assert!(!s.put_setting_if_absent("first", "b").await.unwrap());
    assert_eq!(s.get_setting("first").await.unwrap().as_deref(), Some("a"));
    // Two nodes racing: exactly one stores its value.
    let nodes = two_nodes(b).await;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move { s.put_setting_if_absent("race", &format!("v{i}")).await });
    }
    let won: Vec<bool> = tasks
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

async fn setup_tokens_add_list_delete(b: &Backend) {
    let s = b.open().await;
    assert!(s.setup_tokens().await.unwrap().is_empty());
    s.add_setup_token("aa").await.unwrap();
    s.add_setup_token("bb").await.unwrap();
    // Adding one twice is harmless.
    s.add_setup_token("aa").await.unwrap();
    let mut all = s.setup_tokens().await.unwrap();
    all.sort();
    assert_eq!(all, ["aa", "bb"]);
    assert_eq!(s.delete_setup_tokens().await.unwrap(), 2);
    assert!(s.setup_tokens().await.unwrap().is_empty());
    assert_eq!(s.delete_setup_tokens().await.unwrap(), 0);
}

async fn client_slots_hold_the_limit(b: &Backend) {
    let s = b.open().await;
    s.put_developer(&dev("d1", "d1@example.com"), WriteMode::Create)
        .await
        .unwrap();
    s.insert_client(&client("c1", "d1", 1)).await.unwrap();
    let now = 1_000;
    // Limit 3: one client stored, so two slots are free.
    let r = s.reserve_client_slot("d1", "s1", 3, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Reserved);
    let r = s.reserve_client_slot("d1", "s2", 3, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Reserved);
    let r = s.reserve_client_slot("d1", "s3", 3, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Full(3));
    // Another developer has their own slots.
    let r = s.reserve_client_slot("d2", "s4", 1, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Reserved);
    // A released slot is free again; a deleted client frees its slot.
    s.release_client_slot("s1").await.unwrap();
    s.release_client_slot("no-such-slot").await.unwrap();
    let r = s.reserve_client_slot("d1", "s5", 3, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Reserved);
    s.mark_client_deleted("c1").await.unwrap();
    let r = s.reserve_client_slot("d1", "s6", 3, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Reserved);
    let r = s.reserve_client_slot("d1", "s7", 3, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Full(3));
    // Slots of a crashed process expire.
    let later = now + 61;
    let r = s
        .reserve_client_slot("d1", "s8", 3, later, later + 60)
        .await;
    assert_eq!(r.unwrap(), SlotReservation::Reserved);
    // Limit 0: nothing.
    let r = s.reserve_client_slot("d3", "s9", 0, now, now + 60).await;
    assert_eq!(r.unwrap(), SlotReservation::Full(0));
}

async fn concurrent_client_slots_never_exceed_the_limit(b: &Backend) {
    let nodes = two_nodes(b).await;
    let mut tasks = JoinSet::new();
    for i in 0..50 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            s.reserve_client_slot("dev", &format!("slot{i}"), 3, 1_000, 2_000)
                .await
                .unwrap()
        });
    }
    let results = tasks.join_all().await;
    let reserved = results
        .iter()
        .filter(|r| **r == SlotReservation::Reserved)
        .count();
    assert_eq!(reserved, 3, "{results:?}");
}

async fn quota_counters_upsert(b: &Backend) {
    let s = b.open().await;
    assert!(s.load_quota_counters().await.unwrap().is_empty());
    s.save_quota_counters(&[]).await.unwrap();
    let q = |key: &str, used: i64, window_start: i64| QuotaRow {
        key: key.into(),
        used,
        window_start,
        window_secs: 3600,
    };
    s.save_quota_counters(&[q("b", 1, 100), q("a", 2, 100), q("c", 3, 100)])
        .await
        .unwrap();
    let sorted = |mut v: Vec<QuotaRow>| {
        v.sort_by(|x, y| x.key.cmp(&y.key));
        v
    };
    assert_eq!(
        sorted(s.load_quota_counters().await.unwrap()),
        [q("a", 2, 100), q("b", 1, 100), q("c", 3, 100)]
    );
    // Replace some, add one; within a batch the last row for a key wins.
    s.save_quota_counters(&[
        q("b", 10, 200),
        q("d", 4, 200),
        q("b", 11, 300),
        QuotaRow {
            key: "a".into(),
            used: i64::MAX,
            window_start: -5,
            window_secs: 86_400,
        },
    ])
    .await
    .unwrap();
    assert_eq!(
        sorted(s.load_quota_counters().await.unwrap()),
        [
            QuotaRow {
                key: "a".into(),
                used: i64::MAX,
                window_start: -5,
                window_secs: 86_400,
            },
            q("b", 11, 300),
            q("c", 3, 100),
            q("d", 4, 200),
        ]
    );
    // A large batch.
    let many: Vec<QuotaRow> = (0..2000)
        .map(|i| q(&format!("bulk-{i:04}"), i, i))
        .collect();
    s.save_quota_counters(&many).await.unwrap();
    assert_eq!(s.load_quota_counters().await.unwrap().len(), 2004);
}

fn arow(minute: i64, api: &str, client: &str, class: i64, requests: i64) -> AnalyticsRow {
    let mut latency_hist = [0; gatehouse_store::ANALYTICS_BUCKETS];
    latency_hist[1] = requests;
    latency_hist[15] = 1;
    AnalyticsRow {
        minute,
        api_id: api.into(),
        developer_id: if client.is_empty() {
            String::new()
        } else {
            format!("dev-{client}")
        },
        client_id: client.into(),
        status_class: class,
        requests,
        bytes_in: requests * 3,
        bytes_out: requests * 10,
        latency_us_sum: requests * 700,
        latency_hist,
    }
}

fn window(from: i64, to: i64) -> AnalyticsFilter {
    AnalyticsFilter {
        from_minute: from,
        to_minute: to,
        ..AnalyticsFilter::default()
    }
}

async fn analytics_add_query_prune(b: &Backend) {
    let s = b.open().await;
    assert!(
        s.query_analytics(&window(0, i64::MAX))
            .await
            .unwrap()
            .is_empty()
    );
    s.add_analytics(&[]).await.unwrap();
    s.add_analytics(&[
        arow(100, "b", "c1", 2, 5),
        arow(100, "a", "c1", 2, 7),
        arow(100, "a", "c1", 4, 3),
        arow(101, "a", "", 5, 1),
        arow(102, "a", "c2", 2, 2),
        // The same key twice in one batch adds up.
        arow(102, "a", "c2", 2, 4),
    ])
    .await
    .unwrap();
    // Adding again adds to the stored counters, histogram included.
    s.add_analytics(&[arow(100, "a", "c1", 2, 10)])
        .await
        .unwrap();
    let all = s.query_analytics(&window(0, i64::MAX)).await.unwrap();
    let keys: Vec<(i64, &str, &str, i64, i64)> = all
        .iter()
        .map(|r| {
            (
                r.minute,
                r.api_id.as_str(),
                r.client_id.as_str(),
                r.status_class,
                r.requests,
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (100, "a", "c1", 2, 17),
            (100, "a", "c1", 4, 3),
            (100, "b", "c1", 2, 5),
            (101, "a", "", 5, 1),
            (102, "a", "c2", 2, 6),
        ]
    );
    let first = &all[0];
    assert_eq!(first.developer_id, "dev-c1");
    assert_eq!((first.bytes_in, first.bytes_out), (51, 170));
    assert_eq!(first.latency_us_sum, 17 * 700);
    assert_eq!(first.latency_hist[1], 17);
    assert_eq!(first.latency_hist[15], 2);
    assert_eq!(all[4].latency_hist[15], 2);

    // Filters: the minute range is [from, to); API, developer and client.
    let f = |api: Option<&str>, dev: Option<&str>, client: Option<&str>| AnalyticsFilter {
        api_id: api.map(Into::into),
        developer_id: dev.map(Into::into),
        client_id: client.map(Into::into),
        ..window(100, 102)
    };
    let n = |v: Vec<AnalyticsRow>| v.iter().map(|r| r.requests).sum::<i64>();
    assert_eq!(
        n(s.query_analytics(&f(None, None, None)).await.unwrap()),
        26
    );
    assert_eq!(
        n(s.query_analytics(&f(Some("a"), None, None)).await.unwrap()),
        21
    );
    assert_eq!(
        n(s.query_analytics(&f(None, Some("dev-c1"), None))
            .await
            .unwrap()),
        25
    );
    assert_eq!(
        n(s.query_analytics(&f(Some("b"), None, Some("c1")))
            .await
            .unwrap()),
        5
    );
    assert_eq!(
        n(s.query_analytics(&f(None, None, Some("c2"))).await.unwrap()),
        0
    );
    assert_eq!(
        n(s.query_analytics(&f(Some("nope"), None, None))
            .await
            .unwrap()),
        0
    );
    let limited = s
        .query_analytics(&AnalyticsFilter {
            limit: Some(2),
            ..window(0, i64::MAX)
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0], all[0]);

    // Pruning removes whole minutes before the cut.
    assert_eq!(s.prune_analytics(101).await.unwrap(), 3);
    assert_eq!(s.prune_analytics(101).await.unwrap(), 0);
    let left = s.query_analytics(&window(0, i64::MAX)).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.minute).collect::<Vec<_>>(),
        [101, 102]
    );

    // Survives a reopen.
    drop(s);
    let s = b.open().await;
    assert_eq!(s.query_analytics(&window(0, i64::MAX)).await.unwrap(), left);
}

async fn analytics_from_two_nodes_add_up(b: &Backend) {
    let [n1, n2] = two_nodes(b).await;
    let mut set = JoinSet::new();
    for (i, s) in [n1, n2].into_iter().enumerate() {
        set.spawn(async move {
            for round in 0..20 {
                // Overlapping keys from both nodes, written at the same time.
                s.add_analytics(&[
                    arow(500, "a", "c1", 2, 1),
                    arow(500, "b", "", 4, 2),
                    arow(501 + (round % 3), "a", &format!("n{i}"), 2, 1),
                ])
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let s = b.open().await;
    let all = s.query_analytics(&window(0, i64::MAX)).await.unwrap();
    let get = |m: i64, api: &str, client: &str| {
        all.iter()
            .filter(|r| r.minute == m && r.api_id == api && r.client_id == client)
            .map(|r| r.requests)
            .sum::<i64>()
    };
    assert_eq!(get(500, "a", "c1"), 40);
    assert_eq!(get(500, "b", ""), 80);
    assert_eq!(all.iter().map(|r| r.requests).sum::<i64>(), 40 + 80 + 40);
}

async fn developers_crud_and_conflicts(b: &Backend) {
    let s = b.open().await;
    assert!(s.list_developers().await.unwrap().is_empty());
    let d1 = dev("d1", "b@example.com");
    assert_eq!(
        s.put_developer(&d1, WriteMode::Create).await.unwrap(),
        WriteOutcome::Created
    );
    let got = s.get_developer("d1").await.unwrap().unwrap();
    assert_eq!(got.email, d1.email);
    assert_eq!(got.password_hash, d1.password_hash);
    assert_eq!(got.created_at, d1.created_at);
    assert!(!got.inactive);
    assert_eq!(
        s.get_developer_by_email("b@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        "d1"
    );
    assert!(
        s.get_developer_by_email("B@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.get_developer("nobody").await.unwrap().is_none());

    // Same id.
    let e = s
        .put_developer(&dev("d1", "other@example.com"), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "id");
    // Same id and same email: the id is reported.
    let e = s.put_developer(&d1, WriteMode::Create).await.unwrap_err();
    assert_eq!(conflict_field(&e), "id");
    // Same email.
    for mode in [WriteMode::Create, WriteMode::Upsert] {
        let e = s
            .put_developer(&dev("d2", "b@example.com"), mode)
            .await
            .unwrap_err();
        assert_eq!(conflict_field(&e), "email");
        assert!(conflict_message(&e).contains("b@example.com"), "{e}");
    }
    assert!(s.get_developer("d2").await.unwrap().is_none());
    // Replace of a missing developer.
    assert!(matches!(
        s.put_developer(&dev("d9", "d9@example.com"), WriteMode::Replace)
            .await,
        Err(StoreError::NotFound)
    ));

    s.put_developer(&dev("d2", "a@example.com"), WriteMode::Create)
        .await
        .unwrap();
    s.put_developer(&dev("d3", "_z@example.com"), WriteMode::Upsert)
        .await
        .unwrap();
    // Replace onto a taken email.
    let e = s
        .put_developer(&dev("d2", "b@example.com"), WriteMode::Replace)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "email");

    // Replace: new fields, created_at kept, updated_at set by the store.
    let changed = DeveloperRow {
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        email: "c@example.com".into(),
        password_hash: "$argon2id$new".into(),
        inactive: true,
        created_at: 5,
        updated_at: 5,
        ..d1.clone()
    };
    assert_eq!(
        s.put_developer(&changed, WriteMode::Replace).await.unwrap(),
        WriteOutcome::Updated
    );
    let got = s.get_developer("d1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.first_name.as_str(),
            got.last_name.as_str(),
            got.email.as_str()
        ),
        ("Grace", "Hopper", "c@example.com")
    );
    assert!(got.inactive);
    assert_eq!(got.password_hash, "$argon2id$new");
    assert_eq!(got.created_at, d1.created_at);
    assert!(got.updated_at >= unix_now() - 60);
    // The old email is free again.
    assert!(
        s.get_developer_by_email("b@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.put_developer(&dev("d4", "b@example.com"), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        s.put_developer(&dev("d4", "b@example.com"), WriteMode::Upsert)
            .await
            .unwrap(),
        WriteOutcome::Updated
    );

    // Ordered by email, byte-wise.
    let emails: Vec<String> = s
        .list_developers()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.email)
        .collect();
    assert_eq!(
        emails,
        [
            "_z@example.com",
            "a@example.com",
            "b@example.com",
            "c@example.com"
        ]
    );

    assert!(s.delete_developer("d1").await.unwrap());
    assert!(!s.delete_developer("d1").await.unwrap());
    assert!(s.get_developer("d1").await.unwrap().is_none());
    assert_eq!(s.list_developers().await.unwrap().len(), 3);
}

async fn sessions_and_expiry(b: &Backend) {
    let s = b.open().await;
    s.put_developer(&dev("d1", "a@example.com"), WriteMode::Create)
        .await
        .unwrap();
    s.put_developer(&dev("d2", "b@example.com"), WriteMode::Create)
        .await
        .unwrap();
    let now = unix_now();
    s.create_session("live", "d1", now + 3600).await.unwrap();
    assert_eq!(
        s.session_developer("live", now).await.unwrap().as_deref(),
        Some("d1")
    );
    // Expiry is exclusive: alive while now < expires_at.
    assert_eq!(
        s.session_developer("live", now + 3599)
            .await
            .unwrap()
            .as_deref(),
        Some("d1")
    );
    assert!(
        s.session_developer("live", now + 3600)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.session_developer("unknown", now).await.unwrap().is_none());

    // An expired session is not live, and creating a session purges the expired ones.
    s.create_session("old", "d1", now - 1).await.unwrap();
    assert!(s.session_developer("old", now).await.unwrap().is_none());
    assert_eq!(
        s.session_developer("old", now - 10)
            .await
            .unwrap()
            .as_deref(),
        Some("d1")
    );
    s.create_session("other", "d2", now + 3600).await.unwrap();
    assert!(
        s.session_developer("old", now - 10)
            .await
            .unwrap()
            .is_none()
    );

    // A session needs an existing developer.
    assert!(
        s.create_session("orphan", "nobody", now + 60)
            .await
            .is_err()
    );
    // Token hashes are unique.
    assert!(s.create_session("live", "d2", now + 60).await.is_err());

    s.delete_session("live").await.unwrap();
    s.delete_session("live").await.unwrap();
    assert!(s.session_developer("live", now).await.unwrap().is_none());

    s.create_session("d1-a", "d1", now + 3600).await.unwrap();
    s.create_session("d1-b", "d1", now + 3600).await.unwrap();
    s.delete_developer_sessions("d1").await.unwrap();
    assert!(s.session_developer("d1-a", now).await.unwrap().is_none());
    assert!(s.session_developer("d1-b", now).await.unwrap().is_none());
    assert_eq!(
        s.session_developer("other", now).await.unwrap().as_deref(),
        Some("d2")
    );
}

async fn admin_sessions_flash_and_expiry(b: &Backend) {
    let s = b.open().await;
    let now = unix_now();
    s.create_admin_session("h1", "a@example.com", now + 3600)
        .await
        .unwrap();
    s.create_admin_session("h2", "a@example.com", now + 3600)
        .await
        .unwrap();
    s.create_admin_session("h3", "b@example.com", now + 3600)
        .await
        .unwrap();
    let row = s.admin_session("h1", now).await.unwrap().unwrap();
    assert_eq!(
        row,
        AdminSessionRow {
            email: "a@example.com".into(),
            expires_at: now + 3600,
        }
    );
    // Expiry is exclusive, and creating a session purges expired ones.
    assert!(s.admin_session("h1", now + 3600).await.unwrap().is_none());
    s.create_admin_session("old", "b@example.com", now - 1)
        .await
        .unwrap();
    assert!(s.admin_session("old", now).await.unwrap().is_none());
    assert!(s.admin_session("old", now - 10).await.unwrap().is_some());
    s.create_admin_session("h4", "b@example.com", now + 60)
        .await
        .unwrap();
    assert!(s.admin_session("old", now - 10).await.unwrap().is_none());
    // Token hashes are unique.
    assert!(
        s.create_admin_session("h1", "b@example.com", now + 60)
            .await
            .is_err()
    );

    s.delete_admin_session("h3").await.unwrap();
    s.delete_admin_session("h3").await.unwrap();
    assert!(s.admin_session("h3", now).await.unwrap().is_none());
    s.delete_admin_sessions_of("a@example.com").await.unwrap();
    assert!(s.admin_session("h1", now).await.unwrap().is_none());
    assert!(s.admin_session("h2", now).await.unwrap().is_none());
    assert!(s.admin_session("h4", now).await.unwrap().is_some());
}

async fn audit_log_newest_first_with_paging(b: &Backend) {
    let s = b.open().await;
    assert!(s.list_audit(10, None).await.unwrap().is_empty());
    for i in 0..5 {
        s.append_audit(&AuditEntry {
            id: 0,
            at: 1_700_000_000 + i,
            actor: "a@example.com".into(),
            action: format!("api.update{i}"),
            target: format!("t{i}"),
            detail: "d".into(),
            source: "127.0.0.1".into(),
        })
        .await
        .unwrap();
    }
    let page = s.list_audit(3, None).await.unwrap();
    let actions: Vec<&str> = page.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["api.update4", "api.update3", "api.update2"]);
    assert_eq!(page[0].at, 1_700_000_004);
    assert_eq!(page[0].target, "t4");
    assert_eq!(page[0].source, "127.0.0.1");
    let rest = s.list_audit(10, Some(page[2].id)).await.unwrap();
    let actions: Vec<&str> = rest.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["api.update1", "api.update0"]);
}

async fn developer_delete_removes_sessions(b: &Backend) {
    let s = b.open().await;
    s.put_developer(&dev("d1", "a@example.com"), WriteMode::Create)
        .await
        .unwrap();
    s.put_developer(&dev("d2", "b@example.com"), WriteMode::Create)
        .await
        .unwrap();
    let now = unix_now();
    s.create_session("s1", "d1", now + 3600).await.unwrap();
    s.create_session("s2", "d1", now + 3600).await.unwrap();
    s.create_session("s3", "d2", now + 3600).await.unwrap();
    assert!(s.delete_developer("d1").await.unwrap());
    assert!(s.session_developer("s1", now).await.unwrap().is_none());
    assert!(s.session_developer("s2", now).await.unwrap().is_none());
    assert_eq!(
        s.session_developer("s3", now).await.unwrap().as_deref(),
        Some("d2")
    );
    // A developer re-created with the same id does not get the old sessions back.
    s.put_developer(&dev("d1", "a@example.com"), WriteMode::Create)
        .await
        .unwrap();
    assert!(s.session_developer("s1", now).await.unwrap().is_none());
}

async fn clients_list_filter_tombstones_credentials(b: &Backend) {
    let s = b.open().await;
    assert!(s.list_clients(None, true).await.unwrap().is_empty());
    assert!(s.get_client("c1").await.unwrap().is_none());

    // Ordered by created_at, then client_id.
    s.insert_client(&client("c2", "d1", 5)).await.unwrap();
    s.insert_client(&client("c1", "d1", 5)).await.unwrap();
    s.insert_client(&client("c0", "d1", 1)).await.unwrap();
    let mut other = client("x1", "d2", 3);
    other.secret_sealed = None;
    other.rat_sealed = None;
    other.doc = tricky_doc("x1");
    s.insert_client(&other).await.unwrap();

    let got = s.get_client("x1").await.unwrap().unwrap();
    assert_eq!(got, other);
    assert_eq!(got.doc.to_string(), other.doc.to_string());
    assert_eq!(
        s.get_client("c1").await.unwrap().unwrap(),
        client("c1", "d1", 5)
    );

    let ids = |rows: Vec<ClientRow>| rows.into_iter().map(|c| c.client_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_clients(None, false).await.unwrap()),
        ["c0", "x1", "c1", "c2"]
    );
    assert_eq!(
        ids(s.list_clients(Some("d1"), false).await.unwrap()),
        ["c0", "c1", "c2"]
    );
    assert_eq!(ids(s.list_clients(Some("d2"), true).await.unwrap()), ["x1"]);
    assert!(
        s.list_clients(Some("nobody"), true)
            .await
            .unwrap()
            .is_empty()
    );

    // Duplicate.
    let e = s.insert_client(&client("c1", "d2", 9)).await.unwrap_err();
    assert_eq!(conflict_field(&e), "client_id");
    assert!(conflict_message(&e).contains("'c1'"), "{e}");
    assert_eq!(
        s.get_client("c1").await.unwrap().unwrap().developer_id,
        "d1"
    );

    // Credentials.
    s.update_client_credentials("c1", Some("ghs1:n:new"), Some("ghs1:n:rat2"))
        .await
        .unwrap();
    let c1 = s.get_client("c1").await.unwrap().unwrap();
    assert_eq!(c1.secret_sealed.as_deref(), Some("ghs1:n:new"));
    assert_eq!(c1.rat_sealed.as_deref(), Some("ghs1:n:rat2"));
    assert!(c1.updated_at >= unix_now() - 60);
    assert_eq!(c1.created_at, 5);
    s.update_client_credentials("c1", None, None).await.unwrap();
    let c1 = s.get_client("c1").await.unwrap().unwrap();
    assert!(c1.secret_sealed.is_none() && c1.rat_sealed.is_none());
    assert!(matches!(
        s.update_client_credentials("missing", Some("x"), None)
            .await,
        Err(StoreError::NotFound)
    ));

    // Tombstones.
    s.mark_client_deleted("c0").await.unwrap();
    let tomb = s.get_client("c0").await.unwrap().unwrap();
    assert!(tomb.deleted_at.is_some());
    assert!(tomb.secret_sealed.is_none() && tomb.rat_sealed.is_none());
    assert_eq!(tomb.doc, client("c0", "d1", 1).doc);
    assert_eq!(
        ids(s.list_clients(Some("d1"), false).await.unwrap()),
        ["c1", "c2"]
    );
    assert_eq!(
        ids(s.list_clients(Some("d1"), true).await.unwrap()),
        ["c0", "c1", "c2"]
    );
    assert_eq!(
        ids(s.list_clients(None, false).await.unwrap()),
        ["x1", "c1", "c2"]
    );
    assert_eq!(s.list_clients(None, true).await.unwrap().len(), 4);
    // A tombstone's credentials cannot be set again.
    assert!(matches!(
        s.update_client_credentials("c0", Some("x"), Some("y"))
            .await,
        Err(StoreError::NotFound)
    ));
    // Deleting again keeps the first deletion time; a tombstone's id stays taken.
    s.mark_client_deleted("c0").await.unwrap();
    assert_eq!(
        s.get_client("c0").await.unwrap().unwrap().deleted_at,
        tomb.deleted_at
    );
    assert_eq!(
        conflict_field(&s.insert_client(&client("c0", "d1", 1)).await.unwrap_err()),
        "client_id"
    );
    // Deleting an unknown client is not an error.
    s.mark_client_deleted("never-registered").await.unwrap();
    assert!(s.get_client("never-registered").await.unwrap().is_none());
}

async fn data_survives_reconnect_and_migrations_are_idempotent(b: &Backend) {
    let doc = tricky_doc("persist");
    let version = {
        let s = b.open().await;
        s.put_api("a", "A", "/a", &doc, WriteMode::Create)
            .await
            .unwrap();
        s.put_policy("p", "P", &json!({"p": 1}), WriteMode::Create)
            .await
            .unwrap();
        s.put_catalogue("e", &json!({"e": 1}), WriteMode::Create)
            .await
            .unwrap();
        s.put_setting("k", "v").await.unwrap();
        s.put_developer(&dev("d1", "a@example.com"), WriteMode::Create)
            .await
            .unwrap();
        s.create_session("h", "d1", unix_now() + 3600)
            .await
            .unwrap();
        s.insert_client(&client("c1", "d1", 1)).await.unwrap();
        s.save_quota_counters(&[QuotaRow {
            key: "q".into(),
            used: 7,
            window_start: 1,
            window_secs: 60,
        }])
        .await
        .unwrap();
        s.config_version().await.unwrap()
    };
    // Reopen twice: migrations already applied are skipped, nothing is lost or bumped.
    let first = b.open().await;
    let s = b.open().await;
    drop(first);
    assert_eq!(s.config_version().await.unwrap(), version);
    let api = s.get_api("a").await.unwrap().unwrap();
    assert_eq!(api.doc.to_string(), doc.to_string());
    assert_eq!(
        s.get_policy("p").await.unwrap().unwrap().doc,
        json!({"p": 1})
    );
    assert_eq!(
        s.get_catalogue("e").await.unwrap().unwrap().doc,
        json!({"e": 1})
    );
    assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(
        s.get_developer_by_email("a@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        "d1"
    );
    assert_eq!(
        s.session_developer("h", unix_now())
            .await
            .unwrap()
            .as_deref(),
        Some("d1")
    );
    assert_eq!(
        s.get_client("c1").await.unwrap().unwrap(),
        client("c1", "d1", 1)
    );
    assert_eq!(s.load_quota_counters().await.unwrap().len(), 1);
    // Uniqueness still holds after reopening.
    let e = s
        .put_api("b", "B", "/a", &json!({}), WriteMode::Create)
        .await
        .unwrap_err();
    assert_eq!(conflict_field(&e), "proxy.listen_path");

    if let Backend::Postgres(db) = b {
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let applied: Vec<(i64, String)> =
            sqlx::query_as("SELECT version, name FROM schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            applied,
            [
                (1, "initial".to_owned()),
                (2, "portal".to_owned()),
                (3, "analytics".to_owned()),
                (4, "admin".to_owned()),
                (5, "control_security".to_owned())
            ]
        );
    }
}

/// Two stores on the same database, like two nodes. SQLite is single-process by design (one
/// writer connection serialises all writes), so there both are the same store: a second process
/// writing developers at the same moment gets "database is locked" from `put_developer`, whose
/// transaction starts with a read.
async fn two_nodes(b: &Backend) -> [Arc<dyn Store>; 2] {
    match b {
        Backend::Sqlite(_) => {
            let s = b.open().await;
            [s.clone(), s]
        }
        Backend::Postgres(_) => [b.open().await, b.open().await],
    }
}

async fn concurrent_creates_with_one_listen_path(b: &Backend) {
    let nodes = two_nodes(b).await;
    let v0 = nodes[0].config_version().await.unwrap();
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            let id = format!("api-{i}");
            let r = s
                .put_api(
                    &id,
                    &format!("API {i}"),
                    "/shared",
                    &json!({ "i": i }),
                    WriteMode::Create,
                )
                .await;
            (id, r)
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(WriteOutcome::Created)))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0];
    let winner_name = format!("API {}", winner.trim_start_matches("api-"));
    for (id, r) in &results {
        if id == winner {
            continue;
        }
        let e = r.as_ref().unwrap_err();
        assert_eq!(conflict_field(e), "proxy.listen_path", "{e:?}");
        assert!(
            conflict_message(e).contains(&format!("'{winner_name}' ({winner})")),
            "{e}"
        );
    }
    let apis = nodes[1].list_apis().await.unwrap();
    assert_eq!(apis.len(), 1);
    assert_eq!(&apis[0].id, winner);
    assert_eq!(nodes[1].config_version().await.unwrap(), v0 + 1);
}

async fn concurrent_creates_with_one_api_id(b: &Backend) {
    let nodes = two_nodes(b).await;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            s.put_api(
                "same",
                "Same",
                &format!("/p{i}"),
                &json!({ "i": i }),
                WriteMode::Create,
            )
            .await
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(conflict_field(e), "api_id", "{e:?}");
    }
    assert_eq!(nodes[0].list_apis().await.unwrap().len(), 1);
}

async fn concurrent_distinct_writes_lose_no_version_bump(b: &Backend) {
    let nodes = two_nodes(b).await;
    let v0 = nodes[0].config_version().await.unwrap();
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            s.put_api(
                &format!("api-{i:02}"),
                "n",
                &format!("/p{i}"),
                &json!({ "i": i }),
                WriteMode::Create,
            )
            .await
            .unwrap();
            s.put_policy(&format!("pol-{i:02}"), "n", &json!({}), WriteMode::Create)
                .await
                .unwrap();
        });
    }
    tasks.join_all().await;
    assert_eq!(nodes[0].config_version().await.unwrap(), v0 + 40);
    let ids: Vec<String> = nodes[1]
        .list_apis()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("api-{i:02}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(nodes[1].list_policies().await.unwrap().len(), 20);
}

async fn concurrent_upserts_create_once(b: &Backend) {
    let nodes = two_nodes(b).await;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            let api = s
                .put_api("u", "U", "/u", &json!({ "i": i }), WriteMode::Upsert)
                .await
                .unwrap();
            let dev = s
                .put_developer(&dev("d", "d@example.com"), WriteMode::Upsert)
                .await
                .unwrap();
            let cat = s
                .put_catalogue("c", &json!({ "i": i }), WriteMode::Upsert)
                .await
                .unwrap();
            [api, dev, cat]
        });
    }
    let results = tasks.join_all().await;
    for k in 0..3 {
        let created = results
            .iter()
            .filter(|r| r[k] == WriteOutcome::Created)
            .count();
        assert_eq!(created, 1, "kind {k}: {results:?}");
    }
}

async fn concurrent_developers_with_one_email(b: &Backend) {
    let nodes = two_nodes(b).await;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            s.put_developer(
                &dev(&format!("d{i}"), "same@example.com"),
                WriteMode::Create,
            )
            .await
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(conflict_field(e), "email", "{e:?}");
    }
    assert_eq!(nodes[0].list_developers().await.unwrap().len(), 1);
}

async fn concurrent_creates_of_policy_catalogue_client(b: &Backend) {
    let nodes = two_nodes(b).await;
    let mut tasks = JoinSet::new();
    for i in 0..12 {
        let s = nodes[i % 2].clone();
        tasks.spawn(async move {
            let policy = s
                .put_policy("p", "P", &json!({ "i": i }), WriteMode::Create)
                .await;
            let catalogue = s
                .put_catalogue("e", &json!({ "i": i }), WriteMode::Create)
                .await;
            let client = s.insert_client(&client("c", &format!("d{i}"), 1)).await;
            let developer = s
                .put_developer(&dev("d", &format!("d{i}@example.com")), WriteMode::Create)
                .await;
            (
                policy.map(|_| ()),
                catalogue.map(|_| ()),
                client,
                developer.map(|_| ()),
            )
        });
    }
    let results = tasks.join_all().await;
    let check = |kind: &str, field: &str, rs: Vec<&Result<(), StoreError>>| {
        assert_eq!(rs.iter().filter(|r| r.is_ok()).count(), 1, "{kind}: {rs:?}");
        for e in rs.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(conflict_field(e), field, "{kind}: {e:?}");
        }
    };
    check("policy", "id", results.iter().map(|r| &r.0).collect());
    check("catalogue", "id", results.iter().map(|r| &r.1).collect());
    check(
        "client",
        "client_id",
        results.iter().map(|r| &r.2).collect(),
    );
    check("developer", "id", results.iter().map(|r| &r.3).collect());
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only
// ---------------------------------------------------------------------------------------------

mod postgres_only {
    use super::*;

    /// Waits (bounded) for the next version from the listener.
    async fn next_version(rx: &mut tokio::sync::mpsc::Receiver<i64>) -> i64 {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("no configuration notification within 30 s")
            .expect("the listener stopped")
    }

    async fn pg() -> Option<TestDb> {
        TestDb::create().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listen_notify_yields_each_committed_change() {
        let Some(db) = pg().await else { return };
        let node_a = PostgresStore::connect(&db.url).await.unwrap();
        let node_b = PostgresStore::connect(&db.url).await.unwrap();
        let mut rx = node_a.listen_config_changes().await.unwrap();

        // Not configuration: no notification. Then a change on this node.
        node_a.put_setting("k", "v").await.unwrap();
        node_a
            .put_api("a", "A", "/a", &json!({}), WriteMode::Create)
            .await
            .unwrap();
        let v1 = node_a.config_version().await.unwrap();
        assert_eq!(next_version(&mut rx).await, v1);

        // A failed (rolled back) change is not announced; a change on another node is.
        node_b
            .put_api("b", "B", "/a", &json!({}), WriteMode::Create)
            .await
            .unwrap_err();
        assert!(!node_b.delete_api("missing").await.unwrap());
        node_b
            .put_policy("p", "P", &json!({}), WriteMode::Create)
            .await
            .unwrap();
        assert_eq!(next_version(&mut rx).await, v1 + 1);

        // Every kind of configuration change, in commit order.
        node_b
            .put_catalogue("e", &json!({}), WriteMode::Create)
            .await
            .unwrap();
        node_b.insert_client(&client("c", "d", 1)).await.unwrap();
        node_b.mark_client_deleted("c").await.unwrap();
        node_b.delete_api("a").await.unwrap();
        for expected in v1 + 2..=v1 + 5 {
            assert_eq!(next_version(&mut rx).await, expected);
        }

        // Several listeners each get every change.
        let mut rx_b = node_b.listen_config_changes().await.unwrap();
        node_a.delete_policy("p").await.unwrap();
        assert_eq!(next_version(&mut rx).await, v1 + 6);
        assert_eq!(next_version(&mut rx_b).await, v1 + 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listener_reconnects_after_losing_its_connection() {
        let Some(db) = pg().await else { return };
        let store = PostgresStore::connect(&db.url).await.unwrap();
        let mut rx = store.listen_config_changes().await.unwrap();
        store
            .put_api("a", "A", "/a", &json!({}), WriteMode::Create)
            .await
            .unwrap();
        let v1 = store.config_version().await.unwrap();
        assert_eq!(next_version(&mut rx).await, v1);

        // Kill the listening backend from another session.
        let mut admin = PgConnection::connect(&db.url).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query LIKE 'LISTEN%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, [true]);

        // A change made around the reconnect still arrives: either as its notification, or as the
        // current version sent after reconnecting.
        store
            .put_api("b", "B", "/b", &json!({}), WriteMode::Create)
            .await
            .unwrap();
        let v2 = store.config_version().await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..10 {
            let v = next_version(&mut rx).await;
            seen.push(v);
            if v >= v2 {
                break;
            }
        }
        assert!(seen.iter().any(|&v| v >= v2), "{seen:?}");
        // And later changes are announced again.
        store
            .put_api("c", "C", "/c", &json!({}), WriteMode::Create)
            .await
            .unwrap();
        let v3 = store.config_version().await.unwrap();
        let mut last = 0;
        for _ in 0..10 {
            last = next_version(&mut rx).await;
            if last >= v3 {
                break;
            }
        }
        assert_eq!(last, v3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_at_once_apply_migrations_once() {
        let Some(db) = pg().await else { return };
        let mut tasks = JoinSet::new();
        for _ in 0..6 {
            let url = db.url.clone();
            tasks.spawn(async move { PostgresStore::connect(&url).await.map(|_| ()) });
        }
        for r in tasks.join_all().await {
            r.unwrap();
        }
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(applied, [1, 2, 3, 4, 5]);
        let version: i64 = sqlx::query_scalar("SELECT version FROM config_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(version, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn documents_are_stored_as_text_exactly() {
        let Some(db) = pg().await else { return };
        let store = PostgresStore::connect(&db.url).await.unwrap();
        let doc = tricky_doc("raw");
        store
            .put_api("a", "A", "/a", &doc, WriteMode::Create)
            .await
            .unwrap();
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let raw: String = sqlx::query_scalar("SELECT doc FROM apis WHERE api_id = 'a'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(raw, doc.to_string());
    }

    /// How many sessions of the test database are listening.
    async fn listening(c: &mut PgConnection) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query LIKE '%LISTEN%'",
        )
        .fetch_one(c)
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listener_stops_when_the_receiver_is_dropped() {
        let Some(db) = pg().await else { return };
        let store = PostgresStore::connect(&db.url).await.unwrap();
        let mut watcher = PgConnection::connect(&db.url).await.unwrap();
        let rx = store.listen_config_changes().await.unwrap();
        assert_eq!(listening(&mut watcher).await.unwrap(), 1);
        drop(rx);
        let mut gone = false;
        for _ in 0..200 {
            if listening(&mut watcher).await.unwrap() == 0 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the listening connection stayed open");
        // The store itself is unaffected.
        store.ping().await.unwrap();
    }

    /// Holds `raw_insert` uncommitted in another session while `write` runs, until `write` waits
    /// on it (a unique index), then commits it: `write` must then fail on the constraint itself,
    /// the path the checks cannot see. This stands for a writer that bypasses the store's locks.
    async fn race_uncommitted<T: Send + 'static>(
        db: &TestDb,
        raw_insert: &'static str,
        write: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let mut raw = PgConnection::connect(&db.url).await.unwrap();
        let mut watcher = PgConnection::connect(&db.url).await.unwrap();
        let mut tx = raw.begin().await.unwrap();
        sqlx::raw_sql(raw_insert).execute(&mut *tx).await.unwrap();
        let task = tokio::spawn(write);
        let mut waiting = false;
        for _ in 0..400 {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if n > 0 {
                waiting = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            waiting,
            "the store's write never waited on the uncommitted row"
        );
        tx.commit().await.unwrap();
        task.await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unique_constraints_map_to_the_same_conflicts() {
        let Some(db) = pg().await else { return };
        let store = Arc::new(PostgresStore::connect(&db.url).await.unwrap());
        let v0 = store.config_version().await.unwrap();

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO apis VALUES ('raw', '/race', 'Raw', '{}', 0, 0)",
            async move {
                s.put_api("mine", "Mine", "/race", &json!({}), WriteMode::Create)
                    .await
            },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "proxy.listen_path");
        assert!(conflict_message(&e).contains("'Raw' (raw)"), "{e}");

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO apis VALUES ('dup', '/dup-raw', 'Raw', '{}', 0, 0)",
            async move {
                s.put_api("dup", "Mine", "/dup-mine", &json!({}), WriteMode::Upsert)
                    .await
            },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "api_id");

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO policies VALUES ('p', 'Raw', '{}', 0, 0)",
            async move { s.put_policy("p", "P", &json!({}), WriteMode::Create).await },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "id");

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO catalogue VALUES ('e', '{}', 0, 0)",
            async move { s.put_catalogue("e", &json!({}), WriteMode::Create).await },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "id");

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO oauth_clients VALUES ('c', 'd', '{}', NULL, NULL, 0, 0, NULL)",
            async move { s.insert_client(&client("c", "d1", 1)).await },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "client_id");

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO developers VALUES ('raw', 'race@example.com', 'R', 'R', 'h', FALSE, 0, 0)",
            async move {
                s.put_developer(&dev("d1", "race@example.com"), WriteMode::Create)
                    .await
            },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "email");

        let s = store.clone();
        let e = race_uncommitted(
            &db,
            "INSERT INTO developers VALUES ('d2', 'other@example.com', 'R', 'R', 'h', FALSE, 0, 0)",
            async move {
                s.put_developer(&dev("d2", "d2@example.com"), WriteMode::Create)
                    .await
            },
        )
        .await
        .unwrap_err();
        assert_eq!(conflict_field(&e), "id");

        // None of the failed writes bumped the version.
        assert_eq!(store.config_version().await.unwrap(), v0);
    }

    /// Runs without a server: nothing listens on port 1.
    #[tokio::test]
    async fn connect_error_is_clear_and_hides_the_password() {
        let e = PostgresStore::connect("postgres://gh:s3cret@127.0.0.1:1/gatehouse")
            .await
            .unwrap_err();
        let m = e.to_string();
        eprintln!("{m}");
        assert!(m.contains("postgres://gh:***@127.0.0.1:1/gatehouse"), "{m}");
        assert!(!m.contains("s3cret"), "{m}");
        assert!(m.contains("Check that the server is running"), "{m}");

        let e = PostgresStore::connect("postgres://gh:s3cret@[not a host/gatehouse")
            .await
            .unwrap_err();
        eprintln!("{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[tokio::test]
    async fn wrong_database_name_is_reported() {
        let Some(db) = pg().await else { return };
        let url = with_database(&db.url, "gh_no_such_database");
        let e = PostgresStore::connect(&url).await.unwrap_err();
        let m = e.to_string();
        assert!(m.contains("gh_no_such_database"), "{m}");
    }
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
