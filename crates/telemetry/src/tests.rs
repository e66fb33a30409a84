//! Tests of the whole: an exchange through to the exposition and the access log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::*;

/// Samples of an exposition: `name{k="v",...}` (labels sorted) → value. Checks the format's
/// rules on the way: every sample's family has a `# TYPE`, HELP/TYPE come once per family.
pub(crate) fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice for {name}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
            None => (series, ""),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "no TYPE for {name}");
        let mut pairs = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, r) = rest.split_once("=\"").unwrap();
            let mut v = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next().expect("closing quote");
                match c {
                    '\\' => {
                        let (_, e) = chars.next().unwrap();
                        v.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                    '"' => break i,
                    c => v.push(c),
                }
            };
            pairs.push(format!("{k}=\"{v}\""));
            rest = r[end + 1..].trim_start_matches(',');
        }
        pairs.sort();
        let key = format!("{name}{{{}}}", pairs.join(","));
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        assert!(out.insert(key.clone(), value).is_none(), "{key} twice");
    }
    out
}

struct Api(&'static str);
impl ApiInfo for Api {
    fn api_id(&self) -> &str {
        self.0
    }
    fn listen_path(&self) -> &str {
        "/a/"
    }
}

async fn drain<B: http_body::Body + Unpin>(mut b: B) -> usize
where
    B::Error: std::fmt::Debug,
{
    let mut n = 0;
    while let Some(f) = b.frame().await {
        if let Some(d) = f.unwrap().data_ref() {
            n += bytes::Buf::remaining(d);
        }
    }
    n
}

#[tokio::test]
async fn exchanges_become_metrics() {
    let t = Telemetry::metrics_only();
    let api = Arc::new(Api("pay\"ments"));
    let id = HeaderValue::from_static("r1");

    // A proxied request with a body, answered 200 with 5 bytes.
    let mut ex = t.begin(Instant::now(), &Method::POST, &"/a/x".parse().unwrap(), &id);
    ex.set_api(&api);
    ex.set_outcome(AuthOutcome::Ok);
    let req = ex.count_request_body(Full::new(Bytes::from_static(b"abc")));
    assert_eq!(drain(req).await, 3);
    ex.set_upstream_latency(Duration::from_millis(2));
    let resp = ex.finish(Response::new(Full::new(Bytes::from_static(b"hello"))));
    assert_eq!(drain(resp.into_body()).await, 5);

    // A rate-limited one, dropped without being polled.
    let mut ex = t.begin(Instant::now(), &Method::GET, &"/a/y".parse().unwrap(), &id);
    ex.set_api(&api);
    ex.rejected(LimitKind::Rate);
    ex.set_error(ErrorSource::Downstream);
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    drop(ex.finish(r));

    // No API matched.
    let mut ex = t.begin(Instant::now(), &Method::GET, &"/nope".parse().unwrap(), &id);
    ex.set_error(ErrorSource::Downstream);
    let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
    *r.status_mut() = StatusCode::NOT_FOUND;
    drain(ex.finish(r).into_body()).await;

    let text = t.render();
    let m = parse(&text);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} in\n{text}"))
    };
    assert_eq!(
        get(r#"gatehouse_requests_total{api="pay"ments",auth="ok",status_class="2xx"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_requests_total{api="pay"ments",auth="rate_limited",status_class="4xx"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_requests_total{api="",auth="none",status_class="4xx"}"#),
        1.0
    );
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("gatehouse_requests_total"))
            .count(),
        3
    );
    assert_eq!(
        get(r#"gatehouse_request_duration_seconds_count{api="pay"ments"}"#),
        2.0
    );
    assert_eq!(
        get(r#"gatehouse_request_duration_seconds_bucket{api="pay"ments",le="+Inf"}"#),
        2.0
    );
    assert_eq!(
        get(r#"gatehouse_upstream_duration_seconds_count{api="pay"ments"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_upstream_duration_seconds_bucket{api="pay"ments",le="0.0025"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_upstream_duration_seconds_bucket{api="pay"ments",le="0.001"}"#),
        0.0
    );
    assert_eq!(
        get(r#"gatehouse_request_bytes_total{api="pay"ments"}"#),
        3.0
    );
    assert_eq!(
        get(r#"gatehouse_response_bytes_total{api="pay"ments"}"#),
        5.0
    );
    assert_eq!(get(r#"gatehouse_response_bytes_total{api=""}"#), 2.0);
    assert_eq!(
        get(r#"gatehouse_limit_rejections_total{api="pay"ments",limit="rate"}"#),
        1.0
    );
    assert_eq!(
        get(r#"gatehouse_errors_total{api="pay"ments",source="downstream"}"#),
        1.0
    );
    assert_eq!(get(r#"gatehouse_build_info{version="0.1.0"}"#), 1.0);
    assert!(text.contains("# TYPE gatehouse_requests_total counter\n"));
    assert!(text.contains("# TYPE gatehouse_request_duration_seconds histogram\n"));
    // No JWKS or limiter source was registered.
    assert!(!text.contains("gatehouse_jwks_"));
}

#[test]
fn scrape_time_sources_are_read_at_each_scrape() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let fetches = Arc::new(AtomicU64::new(1));
    let f = Arc::clone(&fetches);
    let t = Telemetry::builder(TelemetryConfig::default())
        .jwks_stats(move || {
            vec![
                JwksUrlReport {
                    url: "https://idp/jwks?k=secret".into(),
                    fetches: f.load(Relaxed),
                    fetch_failures: 0,
                    unknown_kid_refetches: 1,
                    refetches_suppressed: 0,
                    key_set_changes: 0,
                    keys: 2,
                    age: Some(Duration::from_millis(1500)),
                    stale: false,
                    usable: true,
                },
                JwksUrlReport {
                    url: "https://other/jwks".into(),
                    fetches: 3,
                    fetch_failures: 3,
                    unknown_kid_refetches: 0,
                    refetches_suppressed: 2,
                    key_set_changes: 0,
                    keys: 0,
                    age: None,
                    stale: true,
                    usable: false,
                },
            ]
        })
        .failover("sessions", || LimiterReport {
            backend_errors: 4,
            fallbacks: 7,
            unavailable: 0,
            recoveries: 1,
            backend_up: true,
        })
        .build()
        .unwrap();
    let m = parse(&t.render());
    assert_eq!(
        m[r#"gatehouse_jwks_fetches_total{url="https://idp/jwks"}"#],
        1.0
    );
    assert_eq!(
        m[r#"gatehouse_jwks_unknown_kid_refetches_total{url="https://idp/jwks"}"#],
        1.0
    );
    assert_eq!(
        m[r#"gatehouse_jwks_cache_age_seconds{url="https://idp/jwks"}"#],
        1.5
    );
    assert!(!m.contains_key(r#"gatehouse_jwks_cache_age_seconds{url="https://other/jwks"}"#));
    assert_eq!(m[r#"gatehouse_jwks_keys{url="https://idp/jwks"}"#], 2.0);
    assert_eq!(m[r#"gatehouse_jwks_usable{url="https://other/jwks"}"#], 0.0);
    assert_eq!(m[r#"gatehouse_jwks_stale{url="https://other/jwks"}"#], 1.0);
    assert_eq!(
        m[r#"gatehouse_jwks_fetch_failures_total{url="https://other/jwks"}"#],
        3.0
    );
    assert_eq!(
        m[r#"gatehouse_limiter_fallbacks_total{limiter="sessions"}"#],
        7.0
    );
    assert_eq!(
        m[r#"gatehouse_limiter_backend_up{limiter="sessions"}"#],
        1.0
    );
    fetches.store(5, Relaxed);
    let m = parse(&t.render());
    assert_eq!(
        m[r#"gatehouse_jwks_fetches_total{url="https://idp/jwks"}"#],
        5.0
    );
    assert!(!t.render().contains("secret"));
}

#[test]
fn every_defined_metric_is_documented_and_exposed() {
    let docs = include_str!("lib.rs");
    let documented: Vec<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("gatehouse_"))
        .collect();
    let defined: Vec<&str> = names::ALL.iter().map(|m| m.exposed).collect();
    assert_eq!(
        documented, defined,
        "the table in lib.rs and names::ALL differ"
    );
    for m in names::ALL {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("//! | `{}`", m.exposed)))
            .unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], m.kind.as_str(), "{}", m.exposed);
        assert_eq!(cells[3], m.labels.join(", "), "{}", m.exposed);
    }

    // With every source registered, every metric has its TYPE line.
    let t = Telemetry::builder(TelemetryConfig::default())
        .jwks_stats(Vec::new)
        .failover("sessions", LimiterReport::default)
        .analytics(Arc::new(crate::AnalyticsRecorder::default()))
        .build()
        .unwrap();
    let text = t.render();
    for m in names::ALL {
        assert!(
            text.contains(&format!("# TYPE {} {}\n", m.exposed, m.kind.as_str())),
            "{} in\n{text}",
            m.exposed
        );
    }
}

#[test]
fn settings() {
    // The gateway listener is public: no metrics there unless asked for.
    let d = TelemetryConfig::from_settings(None, None).unwrap();
    assert_eq!(d.metrics_path, None);
    assert_eq!(d.access_log, AccessLogTarget::Off);
    let c = TelemetryConfig::from_settings(Some("off"), Some("/tmp/a.log")).unwrap();
    assert_eq!(c.metrics_path, None);
    assert_eq!(c.access_log, AccessLogTarget::File("/tmp/a.log".into()));
    assert_eq!(
        TelemetryConfig::from_settings(Some("/__gh/metrics"), Some("stdout"))
            .unwrap()
            .metrics_path
            .as_deref(),
        Some("/__gh/metrics")
    );
    for bad in ["metrics", "/a b", "/m?x=1", ""] {
        assert!(
            TelemetryConfig::from_settings(Some(bad), None).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn access_log_lines_come_from_finished_exchanges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let t = Telemetry::builder(TelemetryConfig {
        access_log: AccessLogTarget::File(path.clone()),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let api = Arc::new(Api("a1"));
    let mut ex = t.begin(
        Instant::now(),
        &Method::GET,
        &"/a/x?access_token=tok".parse().unwrap(),
        &HeaderValue::from_static("rid-1"),
    );
    ex.set_api(&api);
    ex.set_outcome(AuthOutcome::Ok);
    assert!(ex.wants_caller());
    ex.set_caller("alice".into(), Some("client-9".into()), None);
    let resp = ex.finish(Response::new(Full::new(Bytes::from_static(b"0123456789"))));
    drain(resp.into_body()).await;
    assert!(t.flush_access_log(Duration::from_secs(10)));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["request_id"], "rid-1");
    assert_eq!(v["api_id"], "a1");
    assert_eq!(v["listen_path"], "/a/");
    assert_eq!(v["path"], "/a/x");
    assert_eq!(v["identity"], "alice");
    assert_eq!(v["client_id"], "client-9");
    assert_eq!(v["bytes_out"], 10);
    assert_eq!(v["upstream_latency_ms"], serde_json::Value::Null);
    assert!(!text.contains("access_token"), "{text}");
    let m = parse(&t.render());
    assert_eq!(m["gatehouse_access_log_lines_total{}"], 1.0);
}

#[test]
fn a_request_dropped_before_its_answer_counts_as_499_once() {
    let t = Telemetry::metrics_only();
    let api = Arc::new(Api("slow"));
    let mut ex = t.begin(
        Instant::now(),
        &Method::GET,
        &"/a/x".parse().unwrap(),
        &HeaderValue::from_static("r"),
    );
    ex.set_api(&api);
    ex.set_outcome(AuthOutcome::Ok);
    ex.set_upstream_latency(Duration::from_millis(1));
    drop(ex);
    let s = t.series().get("slow");
    assert_eq!(
        s.requests(StatusClass::ClientError, AuthOutcome::Ok),
        1,
        "recorded as 499"
    );
    // A finished exchange is recorded once, not again when dropped.
    let mut ex = t.begin(
        Instant::now(),
        &Method::GET,
        &"/a/x".parse().unwrap(),
        &HeaderValue::from_static("r"),
    );
    ex.set_api(&api);
    ex.set_outcome(AuthOutcome::Ok);
    drop(ex.finish(Response::new(Full::new(Bytes::new()))));
    assert_eq!(s.requests(StatusClass::Success, AuthOutcome::Ok), 1);
    assert_eq!(s.duration.count(), 2);
}

#[tokio::test]
async fn finished_exchanges_feed_analytics_with_the_caller() {
    let rec = Arc::new(crate::AnalyticsRecorder::default());
    let t = Telemetry::builder(TelemetryConfig::default())
        .analytics(Arc::clone(&rec))
        .build()
        .unwrap();
    let api = Arc::new(Api("a1"));
    let id = HeaderValue::from_static("r");
    for status in [200, 200, 403] {
        let mut ex = t.begin(Instant::now(), &Method::GET, &"/a/x".parse().unwrap(), &id);
        ex.set_api(&api);
        assert!(
            ex.wants_caller(),
            "analytics wants the caller without an access log"
        );
        ex.set_caller("sub".into(), Some("c1".into()), Some("d1".into()));
        let mut r = Response::new(Full::new(Bytes::from_static(b"abcd")));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        drain(ex.finish(r).into_body()).await;
    }
    // Dropped before its answer: 499, no caller.
    let mut ex = t.begin(Instant::now(), &Method::GET, &"/a/y".parse().unwrap(), &id);
    ex.set_api(&api);
    drop(ex);
    let d = rec.drain();
    let got: Vec<(&str, &str, &str, u8, u64, u64)> = d
        .iter()
        .map(|(k, c)| {
            (
                k.api_id.as_str(),
                k.developer_id.as_str(),
                k.client_id.as_str(),
                k.status_class,
                c.requests,
                c.bytes_out,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a1", "", "", 4, 1, 0),
            ("a1", "d1", "c1", 2, 2, 8),
            ("a1", "d1", "c1", 4, 1, 4),
        ]
    );
    let m = parse(&t.render());
    assert_eq!(m["gatehouse_analytics_pending_keys{}"], 0.0);
    assert_eq!(m["gatehouse_analytics_dropped_total{}"], 0.0);
}
