//! `gatehouse demo`: following only what it prints gets a proxied, JWT-authenticated call.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::free_port;

#[tokio::test]
async fn the_demo_gets_a_newcomer_to_an_authenticated_call() {
    let (gw, dash, portal, idp, up) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .args(["--gateway-listen", &format!("0.0.0.0:{gw}")]) // the demo forces loopback anyway
        .args(["--dashboard-listen", &format!("127.0.0.1:{dash}")])
        .args(["--portal-listen", &format!("127.0.0.1:{portal}")])
        .args([
            "--idp-port",
            &idp.to_string(),
            "--upstream-port",
            &up.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo prints its steps");
        let done = line.starts_with("Press Ctrl-C");
        out.push(line);
        if done {
            break;
        }
    }
    let text = out.join("\n");
    let find = |prefix: &str| {
        out.iter()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix(prefix)
                    .map(|r| r.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("'{prefix}' not printed:\n{text}"))
    };
    let password = find("Demo developer:")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(text.contains("NOT for production"), "{text}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{gw}/demo/hello")),
        "{text}"
    );

    // Step 1: sign in. Step 2: create a client. Step 3: token, then the call.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://127.0.0.1:{portal}/api/login"))
        .json(&json!({"email": "developer@demo.local", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let c: Value = http
        .post(format!("http://127.0.0.1:{portal}/api/clients"))
        .header("cookie", cookie)
        .json(&json!({"catalogue_ids": ["demo"], "client_name": "my-first-app"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t: Value = http
        .post(format!("http://127.0.0.1:{idp}/token"))
        .basic_auth(
            c["client_id"].as_str().unwrap(),
            c["client_secret"].as_str(),
        )
        .body("grant_type=client_credentials")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .get(format!("http://127.0.0.1:{gw}/demo/hello"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("made it through Gatehouse")
    );

    // The demo API checks the IdP's issuer and audience, so it carries no warning about them.
    let key = find("Admin API key:");
    let api: Value = http
        .get(format!("http://127.0.0.1:{dash}/api/apis/demo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        api["jwt_allowed_issuers"],
        json!([format!("http://127.0.0.1:{idp}")]),
        "{api}"
    );
    assert_eq!(api["jwt_allowed_audiences"], json!(["gatehouse-demo"]));
    let _ = child.kill();
    let _ = child.wait();
}
