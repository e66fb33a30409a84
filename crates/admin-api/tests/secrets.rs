//! Secrets at rest after a key rotation: every stored secret is re-sealed with the new key, and
//! the old key is then no longer needed to read them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use gatehouse_admin_api::portal::Portal;
use gatehouse_admin_api::{Control, no_hook};
use gatehouse_store::{ClientRow, SecretBox, SqliteStore, Store, WriteMode, rotate_key_file};

#[tokio::test]
async fn rotation_reseals_every_stored_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let old = Arc::new(SecretBox::load_or_create(dir.path(), None).unwrap());
    let portal = Portal::new(
        Arc::clone(&store),
        Arc::clone(&old),
        no_hook(),
        ";",
        Duration::from_secs(2),
    );
    let control = Control::new(Arc::clone(&store), no_hook());
    control
        .put_api(
            json!({"name": "Pay", "api_id": "pay", "use_keyless": true,
                   "proxy": {"listen_path": "/pay/", "target_url": "http://127.0.0.1:9"}}),
            None,
            WriteMode::Create,
        )
        .await
        .unwrap();
    control
        .put_policy(
            json!({"id": "gold", "access_rights": {"pay": {"api_id": "pay", "versions": []}}}),
            None,
            WriteMode::Create,
        )
        .await
        .unwrap();
    let dcr = |token: &str| {
        json!({"provider": "other", "grant_types": ["client_credentials"],
               "registration_endpoint": "http://127.0.0.1:9/register", "access_token": token})
    };
    portal
        .put_config(json!({"enable_dcr": true, "dcr_options": dcr("global-iat")}))
        .await
        .unwrap();
    portal
        .put_catalogue(
            json!({"id": "pay", "name": "Pay", "api_id": "pay", "policy_id": "gold", "show": true,
                   "config": {"override": true, "enable_dcr": true, "dcr_options": dcr("entry-iat")}}),
            None,
            WriteMode::Create,
        )
        .await
        .unwrap();
    store
        .put_developer(
            &gatehouse_store::DeveloperRow {
                id: "d1".into(),
                email: "d@example.com".into(),
                first_name: "D".into(),
                last_name: String::new(),
                password_hash: "x".into(),
                inactive: false,
                created_at: 1,
                updated_at: 1,
            },
            WriteMode::Create,
        )
        .await
        .unwrap();
    store
        .insert_client(&ClientRow {
            client_id: "c1".into(),
            developer_id: "d1".into(),
            doc: json!({"client_name": "app"}),
            secret_sealed: Some(old.seal("client-secret")),
            rat_sealed: Some(old.seal("registration-token")),
            created_at: 1,
            updated_at: 1,
            deleted_at: None,
        })
        .await
        .unwrap();

    // Rotate: the new key is current, the old one is kept as previous, everything is re-sealed.
    let ring = Arc::new(rotate_key_file(dir.path()).unwrap());
    let rotated = Portal::new(
        Arc::clone(&store),
        Arc::clone(&ring),
        no_hook(),
        ";",
        Duration::from_secs(2),
    );
    assert_eq!(rotated.reseal_secrets().await.unwrap(), (4, 0));
    assert_eq!(
        rotated.reseal_secrets().await.unwrap(),
        (0, 4),
        "idempotent"
    );

    // A box with only the new key reads everything; one with only the old key reads nothing.
    let new_only = Arc::new(SecretBox::load_or_create(dir.path(), None).unwrap());
    assert_eq!(new_only.key_id(), ring.key_id());
    let fresh = Portal::new(
        Arc::clone(&store),
        Arc::clone(&new_only),
        no_hook(),
        ";",
        Duration::from_secs(2),
    );
    let cfg = fresh.config().await.unwrap();
    assert_eq!(cfg.dcr_options.access_token.expose(), "global-iat");
    let entry = fresh.catalogue_entry("pay").await.unwrap();
    assert_eq!(entry.config.dcr_options.access_token.expose(), "entry-iat");
    let c = store.get_client("c1").await.unwrap().unwrap();
    assert_eq!(
        new_only.open(c.secret_sealed.as_deref().unwrap()).unwrap(),
        "client-secret"
    );
    assert_eq!(
        new_only.open(c.rat_sealed.as_deref().unwrap()).unwrap(),
        "registration-token"
    );
    assert!(old.open(c.secret_sealed.as_deref().unwrap()).is_err());
    assert!(
        Portal::new(store, old, no_hook(), ";", Duration::from_secs(2))
            .config()
            .await
            .is_err()
    );
}
