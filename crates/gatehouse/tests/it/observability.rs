//! Metrics, the access log and request ids, through the real binary with the real test IdP:
//! known traffic, then the exact change of every counter it touches, every access log line, and
//! `X-Request-Id` given, generated, forwarded upstream and returned on errors.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_test_support::idp::{IdpShape, TestIdp, decode_jwt};
use gatehouse_test_support::upstream::EchoUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Server};

/// Samples of a Prometheus text exposition: `name{k="v",...}` (labels sorted) → value. Checks on
/// the way that each sample's family was declared with `# TYPE` and that no series repeats.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {name}"
            );
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let (name, labels) = match series.find('{') {
            Some(i) => {
                assert!(series.ends_with('}'), "{line}");
                (&series[..i], &series[i + 1..series.len() - 1])
            }
            None => (series, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "no # TYPE for {name}");
        let mut pairs = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").expect("label=\"value\"");
            let mut v = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next().expect("a closing quote");
                match c {
                    '\\' => match chars.next().expect("an escaped character").1 {
                        'n' => v.push('\n'),
                        other => v.push(other),
                    },
                    '"' => break i,
                    c => v.push(c),
                }
            };
            pairs.push(format!("{k}=\"{v}\""));
            rest = r[end + 1..].trim_start_matches(',');
        }
        pairs.sort();
        let key = format!("{name}{{{}}}", pairs.join(","));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        assert!(out.insert(key.clone(), value).is_none(), "{key} twice");
    }
    out
}

/// A series key as [`parse_exposition`] makes it.
fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    pairs.sort();
    format!("{name}{{{}}}", pairs.join(","))
}

async fn scrape(s: &Server, url: &str) -> (String, BTreeMap<String, f64>) {
    let r = s.http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    let parsed = parse_exposition(&text);
    (text, parsed)
}

/// The request metrics (`gatehouse_requests_total` and the other per-API series) that differ
/// between two scrapes.
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(k, _)| {
            [
                "gatehouse_requests_total{",
                "gatehouse_errors_total{",
                "gatehouse_limit_rejections_total{",
                "gatehouse_request_bytes_total{",
                "gatehouse_request_duration_seconds_count{",
                "gatehouse_upstream_duration_seconds_count{",
            ]
            .iter()
            .any(|p| k.starts_with(p))
        })
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

struct Answer {
    status: u16,
    request_id: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(
    s: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    request_id: Option<&str>,
    body: Option<&'static str>,
) -> Answer {
    let mut rb = s.http().request(method, s.gateway(path));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    if let Some(id) = request_id {
        rb = rb.header("x-request-id", id);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let request_id = r
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{path} answered {status} without x-request-id"))
        .to_str()
        .unwrap()
        .to_owned();
    let body = r.text().await.unwrap();
    Answer {
        status,
        request_id,
        body,
    }
}

fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'7'
        && s.bytes()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn metrics_access_log_and_request_ids_with_a_real_idp() {
    let idp = TestIdp::start(IdpShape::Plain).await.unwrap();
    let upstream = EchoUpstream::start("obs").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let s = Server::start_with(
        dir.path(),
        &[
            "--access-log",
            log_path.to_str().unwrap(),
            "--metrics-path",
            "/metrics",
        ],
        Some(ADMIN_KEY),
    );
    let create = |path: &'static str, body: Value| {
        let s = &s;
        async move {
            let (st, v) = s.admin(Method::POST, path, Some(&body.to_string())).await;
            assert_eq!(st, 201, "{path}: {v}");
        }
    };
    create(
        "/api/apis",
        json!({
            "name": "Obs JWT", "api_id": "obs-jwt", "enable_jwt": true,
            "jwt_signing_method": "rsa", "jwt_source": idp.jwks_uri(),
            "jwt_identity_base_field": "sub", "jwt_policy_field_name": "pol",
            "strip_auth_data": true,
            "proxy": {"listen_path": "/obs/", "target_url": upstream.url(), "strip_listen_path": true}
        }),
    )
    .await;
    create(
        "/api/apis",
        json!({
            "name": "Obs open", "api_id": "obs-open", "use_keyless": true,
            "global_rate_limit": {"rate": 1, "per": 3600},
            "proxy": {"listen_path": "/open/", "target_url": upstream.url(), "strip_listen_path": true}
        }),
    )
    .await;
    create(
        "/api/policies",
        json!({"id": "obs-gold", "name": "gold", "rate": 0, "per": 0, "quota_max": -1,
            "access_rights": {"obs-jwt": {"api_id": "obs-jwt", "api_name": "obs", "versions": []}}}),
    )
    .await;
    let client = idp
        .register_client(
            json!({"client_name": "obs-app", "grant_types": ["client_credentials"],
            "response_types": [], "token_endpoint_auth_method": "client_secret_basic",
            "pol": "obs-gold"}),
        )
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let token = idp
        .client_credentials_token(&client_id, &secret, None)
        .await
        .unwrap();
    let (_, claims) = decode_jwt(&token).unwrap();
    let sub = claims["sub"].as_str().unwrap().to_owned();

    let metrics_url = s.gateway("/metrics");
    let (_, before) = scrape(&s, &metrics_url).await;
    let r = s.http().get(&metrics_url).send().await.unwrap();
    assert!(r.headers().contains_key("x-request-id"));

    // Known traffic: 3 OK calls with the token (one with the client's request id, one with the
    // token also in the query string, one with an 11-byte body), 2 without a token, 1 unknown
    // path, 2 calls to the rate-limited keyless API (the second refused).
    let mut answers = Vec::new();
    let given = send(
        &s,
        Method::GET,
        "/obs/items",
        Some(&token),
        Some("client-req-1"),
        None,
    )
    .await;
    assert_eq!(given.status, 200, "{}", given.body);
    assert_eq!(given.request_id, "client-req-1");
    assert_eq!(given.json()["headers"]["x-request-id"], "client-req-1");
    assert!(
        given.json()["headers"].get("authorization").is_none(),
        "strip_auth_data"
    );
    answers.push(given);

    let generated = send(
        &s,
        Method::GET,
        &format!("/obs/items?access_token={token}"),
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(generated.status, 200);
    assert!(
        is_uuid_v7(&generated.request_id),
        "{}",
        generated.request_id
    );
    assert_eq!(
        generated.json()["headers"]["x-request-id"],
        generated.request_id.as_str(),
        "the generated id is forwarded upstream"
    );
    answers.push(generated);

    // An id that is too long is replaced, upstream and in the answer alike.
    let long_id = "x".repeat(129);
    let replaced = send(
        &s,
        Method::POST,
        "/obs/upload-ish",
        Some(&token),
        Some(&long_id),
        Some("hello world"),
    )
    .await;
    assert_eq!(replaced.status, 200);
    assert_ne!(replaced.request_id, long_id);
    assert!(is_uuid_v7(&replaced.request_id));
    assert_eq!(
        replaced.json()["headers"]["x-request-id"],
        replaced.request_id.as_str()
    );
    assert_eq!(replaced.json()["body_bytes"], 11);
    answers.push(replaced);

    for id in [Some("err-req-1"), None] {
        let a = send(&s, Method::GET, "/obs/items", None, id, None).await;
        assert_eq!(a.status, 401);
        if let Some(id) = id {
            assert_eq!(a.request_id, id, "errors carry the request id too");
        }
        answers.push(a);
    }
    let unknown = send(&s, Method::GET, "/nowhere/at-all", None, None, None).await;
    assert_eq!(unknown.status, 404);
    assert!(is_uuid_v7(&unknown.request_id));
    answers.push(unknown);
    let open_ok = send(&s, Method::GET, "/open/a", None, None, None).await;
    assert_eq!(open_ok.status, 200);
    answers.push(open_ok);
    let open_limited = send(&s, Method::GET, "/open/b", None, None, None).await;
    assert_eq!(open_limited.status, 429);
    answers.push(open_limited);

    // /hello is not counted but carries an id.
    let hello = s.http().get(s.gateway("/hello")).send().await.unwrap();
    assert!(hello.headers().contains_key("x-request-id"));

    // The counters are recorded as each response body ends, before its last bytes are written;
    // a few scrapes absorb any scheduling between the connection tasks.
    let expected: BTreeMap<String, f64> = [
        (
            key(
                "gatehouse_requests_total",
                &[("api", "obs-jwt"), ("status_class", "2xx"), ("auth", "ok")],
            ),
            3.0,
        ),
        (
            key(
                "gatehouse_requests_total",
                &[
                    ("api", "obs-jwt"),
                    ("status_class", "4xx"),
                    ("auth", "missing_token"),
                ],
            ),
            2.0,
        ),
        (
            key(
                "gatehouse_requests_total",
                &[("api", ""), ("status_class", "4xx"), ("auth", "none")],
            ),
            1.0,
        ),
        (
            key(
                "gatehouse_requests_total",
                &[
                    ("api", "obs-open"),
                    ("status_class", "2xx"),
                    ("auth", "keyless"),
                ],
            ),
            1.0,
        ),
        (
            key(
                "gatehouse_requests_total",
                &[
                    ("api", "obs-open"),
                    ("status_class", "4xx"),
                    ("auth", "rate_limited"),
                ],
            ),
            1.0,
        ),
        (
            key(
                "gatehouse_errors_total",
                &[("api", "obs-jwt"), ("source", "downstream")],
            ),
            2.0,
        ),
        (
            key(
                "gatehouse_errors_total",
                &[("api", ""), ("source", "downstream")],
            ),
            1.0,
        ),
        (
            key(
                "gatehouse_errors_total",
                &[("api", "obs-open"), ("source", "downstream")],
            ),
            1.0,
        ),
        (
            key(
                "gatehouse_limit_rejections_total",
                &[("api", "obs-open"), ("limit", "api_rate")],
            ),
            1.0,
        ),
        (
            key("gatehouse_request_bytes_total", &[("api", "obs-jwt")]),
            11.0,
        ),
        (
            key(
                "gatehouse_request_duration_seconds_count",
                &[("api", "obs-jwt")],
            ),
            5.0,
        ),
        (
            key("gatehouse_request_duration_seconds_count", &[("api", "")]),
            1.0,
        ),
        (
            key(
                "gatehouse_request_duration_seconds_count",
                &[("api", "obs-open")],
            ),
            2.0,
        ),
        (
            key(
                "gatehouse_upstream_duration_seconds_count",
                &[("api", "obs-jwt")],
            ),
            3.0,
        ),
        (
            key(
                "gatehouse_upstream_duration_seconds_count",
                &[("api", "obs-open")],
            ),
            1.0,
        ),
    ]
    .into_iter()
    .collect();
    let mut after = BTreeMap::new();
    let mut text = String::new();
    for _ in 0..50 {
        (text, after) = scrape(&s, &metrics_url).await;
        if delta(&before, &after) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delta(&before, &after), expected, "\n{text}");

    // Response bytes: exactly what the client read from the JWT API's five answers.
    let jwt_bytes: usize = answers[..5].iter().map(|a| a.body.len()).sum();
    let k = key("gatehouse_response_bytes_total", &[("api", "obs-jwt")]);
    assert_eq!(
        after[&k] - before.get(&k).copied().unwrap_or(0.0),
        jwt_bytes as f64
    );
    // Histogram buckets are cumulative and end with +Inf = count.
    let inf = key(
        "gatehouse_request_duration_seconds_bucket",
        &[("api", "obs-jwt"), ("le", "+Inf")],
    );
    assert_eq!(after[&inf], 5.0);

    // The JWKS cache, read at scrape time.
    let url = idp.jwks_uri();
    assert!(after[&key("gatehouse_jwks_fetches_total", &[("url", url)])] >= 1.0);
    assert_eq!(after[&key("gatehouse_jwks_usable", &[("url", url)])], 1.0);
    assert!(after[&key("gatehouse_jwks_keys", &[("url", url)])] >= 1.0);
    assert!(after[&key("gatehouse_jwks_cache_age_seconds", &[("url", url)])] >= 0.0);
    assert_eq!(
        after[&key("gatehouse_build_info", &[("version", "0.1.0")])],
        1.0
    );
    assert!(!text.contains(&token) && !text.contains(&secret));

    // The dashboard listener answers the same metrics.
    let (_, dash) = scrape(&s, &s.admin_url("/metrics")).await;
    assert!(
        dash.keys()
            .any(|k| k.starts_with("gatehouse_requests_total{"))
    );

    // The access log: one valid JSON line per request, in the documented shape, no credential.
    let mut log = String::new();
    for _ in 0..50 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.lines().count() >= answers.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), answers.len(), "{log}");
    for secret_text in [token.as_str(), secret.as_str(), "Bearer", "access_token"] {
        assert!(!log.contains(secret_text), "the log holds {secret_text:?}");
    }
    assert!(!log.to_lowercase().contains("authorization"));
    let fields = [
        "time",
        "request_id",
        "api_id",
        "listen_path",
        "method",
        "path",
        "status",
        "latency_ms",
        "upstream_latency_ms",
        "identity",
        "client_id",
        "developer_id",
        "bytes_in",
        "bytes_out",
    ];
    for (line, answer) in lines.iter().zip(&answers) {
        let names: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, fields, "{line}");
        let time = line["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.contains('T'), "{time}");
        assert_eq!(line["request_id"], answer.request_id.as_str(), "{line}");
        assert_eq!(line["status"], answer.status, "{line}");
        assert_eq!(line["bytes_out"], answer.body.len(), "{line}");
        assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
        assert!(!line["path"].as_str().unwrap().contains('?'));
    }
    let ok = &lines[0];
    assert_eq!(ok["api_id"], "obs-jwt");
    assert_eq!(ok["listen_path"], "/obs/");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/obs/items");
    assert_eq!(ok["identity"], sub.as_str());
    assert_eq!(ok["client_id"], client_id.as_str());
    assert_eq!(ok["developer_id"], Value::Null);
    assert_eq!(ok["bytes_in"], 0);
    assert!(ok["upstream_latency_ms"].as_f64().unwrap() <= ok["latency_ms"].as_f64().unwrap());
    assert_eq!(lines[1]["path"], "/obs/items", "no query string");
    assert_eq!(lines[2]["method"], "POST");
    assert_eq!(lines[2]["bytes_in"], 11);
    for refused in &lines[3..5] {
        assert_eq!(refused["status"], 401);
        assert_eq!(refused["identity"], Value::Null);
        assert_eq!(refused["upstream_latency_ms"], Value::Null);
    }
    assert_eq!(lines[5]["api_id"], Value::Null);
    assert_eq!(lines[5]["path"], "/nowhere/at-all");
    assert_eq!(lines[6]["api_id"], "obs-open");
    assert_eq!(lines[6]["identity"], Value::Null);
    assert_eq!(lines[7]["status"], 429);
    let written = key("gatehouse_access_log_lines_total", &[]);
    assert!(after[&written] <= answers.len() as f64);
    assert_eq!(
        after[&key(
            "gatehouse_access_log_dropped_total",
            &[("reason", "queue_full")]
        )],
        0.0
    );
}
