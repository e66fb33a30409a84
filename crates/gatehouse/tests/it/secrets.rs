//! `gatehouse secrets rotate-key` and `reseal` on a real data directory.

use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::harness::Server;

fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args)
        .env_remove("GATEHOUSE_SECRET_KEY")
        .env_remove("GATEHOUSE_SECRET_KEY_PREVIOUS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_keeps_stored_secrets_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut s = Server::start(dir.path());
    let (st, v) = s
        .admin(
            Method::PUT,
            "/api/portal/configuration",
            Some(
                &json!({"enable_dcr": true, "dcr_options": {"provider": "other",
                    "grant_types": ["client_credentials"],
                    "registration_endpoint": "http://127.0.0.1:9/register",
                    "access_token": "initial-access-token-1"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    s.terminate();
    let db = std::fs::read(dir.path().join("gatehouse.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("initial-access-token-1"));
    let old_key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();

    let (ok, out) = gatehouse(&["secrets", "rotate-key", "--data-dir", data], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("1 secret(s) re-sealed"), "{out}");
    let new_key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    assert_ne!(new_key.trim(), old_key.trim());
    let previous = std::fs::read_to_string(dir.path().join("secret.key.previous")).unwrap();
    assert_eq!(previous.trim(), old_key.trim());

    // Nothing is left under the old key: without secret.key.previous it all still reads.
    std::fs::remove_file(dir.path().join("secret.key.previous")).unwrap();
    let (ok, out) = gatehouse(&["secrets", "reseal", "--data-dir", data], &[]);
    assert!(
        ok && out.contains("0 secret(s) re-sealed with the current key, 1 already current"),
        "{out}"
    );
    s.start_again();
    let (st, v) = s
        .admin(Method::GET, "/api/portal/configuration", None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["dcr_options"]["access_token_set"], true, "{v}");

    // With an operator-held key, rotate-key explains what to do instead.
    let (ok, out) = gatehouse(
        &["secrets", "rotate-key", "--data-dir", data],
        &[("GATEHOUSE_SECRET_KEY", &"ab".repeat(32))],
    );
    assert!(!ok);
    assert!(out.contains("GATEHOUSE_SECRET_KEY_PREVIOUS"), "{out}");
}
