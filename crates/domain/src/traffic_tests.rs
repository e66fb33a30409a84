use super::*;
use crate::template::tests::Req;
use serde_json::json;

fn ctx() -> Arc<PathContext> {
    Arc::new(PathContext {
        listen_path: "/api/".to_owned(),
        ..PathContext::default()
    })
}

fn rules(v: Value, vars: bool) -> TrafficRules {
    compile_traffic("v1", &v, "v", ctx(), MatchOptions::default(), vars)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn ext(extended: Value) -> TrafficRules {
    rules(
        json!({"use_extended_paths": true, "extended_paths": extended}),
        true,
    )
}

fn err(v: Value) -> ValidationError {
    compile_traffic("v1", &v, "v", ctx(), MatchOptions::default(), true).unwrap_err()
}

fn req(path: &str) -> Req {
    Req {
        path: path.into(),
        headers: vec![("Authorization".into(), "Bearer t".into())],
        claims: json!({"sub": "u-1"}).as_object().unwrap().clone(),
        ..Req::default()
    }
}

use HeaderEdit::{Remove, Set};

#[test]
fn request_headers_global_first_then_the_matching_entry() {
    let r = rules(
        json!({"use_extended_paths": true,
        "global_headers_remove": ["Cookie"],
        "global_headers": {"X-Env": "prod", "X-User": "$tyk_context.jwt_claims_sub"},
        "extended_paths": {"transform_headers": [
            {"path": "/admin", "method": "GET", "disabled": true,
             "add_headers": {"X-Never": "1"}},
            {"path": "/users/{id}", "method": "GET", "delete_headers": ["X-Env"],
             "add_headers": {"X-Req": "$tyk_context.request_id"}},
            {"path": "/users", "method": "GET", "add_headers": {"X-Second": "1"}}
        ]}}),
        true,
    );
    assert!(!r.is_empty());
    let edits = r
        .request_header_edits("/api/users/7", "GET", &req("/api/users/7"))
        .unwrap();
    assert_eq!(
        edits,
        vec![
            Remove("Cookie".into()),
            Set("X-Env".into(), "prod".into()),
            Set("X-User".into(), "u-1".into()),
            Remove("X-Env".into()),
            Set("X-Req".into(), "req-1".into()),
        ]
    );
    // Another method: only the global part; the method is compared exactly.
    assert_eq!(
        r.request_header_edits("/api/users/7", "POST", &req("/api/users/7"))
            .unwrap()
            .len(),
        3
    );
    // Without enable_context_vars the variables are empty, as in Tyk.
    let r = rules(
        json!({"global_headers": {"X-User": "$tyk_context.jwt_claims_sub"}}),
        false,
    );
    assert_eq!(
        r.request_header_edits("/api/x", "GET", &req("/api/x"))
            .unwrap(),
        vec![Set("X-User".into(), String::new())]
    );
}

#[test]
fn disabled_switches_and_legacy_versions() {
    let r = rules(
        json!({"global_headers": {"X-A": "1"}, "global_headers_disabled": true,
        "global_response_headers": {"X-B": "1"}, "global_response_headers_disabled": true,
        "extended_paths": {"transform_headers": [{"path": "/x", "method": "GET",
            "add_headers": {"X-C": "1"}}]}}),
        true,
    );
    // Without use_extended_paths the entries do not apply (validation refuses them anyway).
    assert!(r.is_empty());
}

#[test]
fn response_headers_entry_first_then_global() {
    let r = rules(
        json!({"use_extended_paths": true,
        "global_response_headers_remove": ["Server"],
        "global_response_headers": {"X-Served-By": "gatehouse"},
        "extended_paths": {"transform_response_headers": [
            {"path": "/secret", "method": "GET", "delete_headers": ["X-Internal-Id"],
             "add_headers": {"Cache-Control": "no-store"}}]}}),
        true,
    );
    assert_eq!(
        r.response_header_edits("/api/secret", "GET", &req("/api/secret"))
            .unwrap(),
        vec![
            Remove("X-Internal-Id".into()),
            Set("Cache-Control".into(), "no-store".into()),
            Remove("Server".into()),
            Set("X-Served-By".into(), "gatehouse".into()),
        ]
    );
}

#[test]
fn values_that_cannot_be_sent_fail_the_request() {
    let r = rules(
        json!({"global_headers": {"X-Sub": "$tyk_context.jwt_claims_sub"}}),
        true,
    );
    let mut bad = req("/api/x");
    bad.claims = json!({"sub": "a\r\nX-Evil: 1"})
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        r.request_header_edits("/api/x", "GET", &bad).unwrap_err(),
        InvalidHeaderValue {
            name: "X-Sub".into()
        }
    );
}

#[test]
fn rewrites_timeouts_breakers_and_methods_per_endpoint() {
    let r = ext(json!({
        "url_rewrites": [{"path": "/old/{id}", "method": "GET",
                          "match_pattern": "/api/old/(\\d+)", "rewrite_to": "/new/$1"}],
        "hard_timeouts": [{"path": "/slow", "method": "GET", "timeout": 3},
                          {"path": "/zero", "method": "GET", "timeout": 0}],
        "circuit_breakers": [{"path": "/flaky", "method": "POST", "threshold_percent": 0.5,
                              "samples": 10, "return_to_service_after": 30}],
        "method_transforms": [{"path": "/legacy", "method": "POST", "to_method": "put"}]
    }));
    let (out, _) = r
        .url_rewrite("/api/old/9", "GET", "/api/old/9?x=1", &req("/api/old/9"))
        .unwrap()
        .unwrap();
    assert_eq!(out.url, "/new/9");
    assert!(
        r.url_rewrite("/api/old/9", "POST", "/api/old/9", &req("/"))
            .is_none()
    );
    assert_eq!(
        r.hard_timeout("/api/slow", "GET"),
        Some(Duration::from_secs(3))
    );
    assert_eq!(r.hard_timeout("/api/zero", "GET"), None);
    assert_eq!(r.hard_timeout("/api/fast", "GET"), None);
    let (id, s) = r.circuit_breaker("/api/flaky", "POST").unwrap();
    assert_eq!(
        id,
        BreakerId {
            version: "v1".into(),
            index: 0
        }
    );
    assert_eq!(s.samples, 10);
    assert!(s.half_open);
    assert_eq!(s.return_to_service_after, Duration::from_secs(30));
    assert_eq!(r.breakers().count(), 1);
    assert!(r.circuit_breaker("/api/flaky", "GET").is_none());
    assert_eq!(r.method_transform("/api/legacy", "POST"), Some("PUT"));
    assert_eq!(r.method_transform("/api/legacy", "GET"), None);
}

#[test]
fn bad_entries_are_refused_naming_the_field() {
    let e = |extended: Value| err(json!({"use_extended_paths": true, "extended_paths": extended}));
    let cases = [
        (
            e(json!({"hard_timeouts": [{"path": "/a", "method": "GET", "timeout": -1}]})),
            "v.extended_paths.hard_timeouts.0.timeout",
        ),
        (
            e(json!({"circuit_breakers": [{"path": "/a", "method": "GET",
                "threshold_percent": 50, "samples": 5}]})),
            "v.extended_paths.circuit_breakers.0.threshold_percent",
        ),
        (
            e(json!({"circuit_breakers": [{"path": "/a", "method": "GET",
                "threshold_percent": 0.5, "samples": 0}]})),
            "v.extended_paths.circuit_breakers.0.samples",
        ),
        (
            e(json!({"method_transforms": [{"path": "/a", "method": "GET",
                "to_method": "FETCH"}]})),
            "v.extended_paths.method_transforms.0.to_method",
        ),
        (
            e(json!({"transform_headers": [{"path": "/a", "method": "get"}]})),
            "v.extended_paths.transform_headers.0.method",
        ),
        (
            e(json!({"transform_headers": [{"path": "(", "method": "GET"}]})),
            "v.extended_paths.transform_headers.0.path",
        ),
        (
            e(
                json!({"transform_response_headers": [{"path": "/a", "method": "GET",
                "add_headers": {"X-A": "$secret_env.KEY"}}]}),
            ),
            "v.extended_paths.transform_response_headers.0.add_headers.X-A",
        ),
        (
            e(json!({"transform_headers": [{"path": "/a", "method": "GET",
                "delete_headers": ["bad name"]}]})),
            "v.extended_paths.transform_headers.0.delete_headers.0",
        ),
        (
            e(json!({"url_rewrites": [{"path": "/a", "method": "GET",
                "match_pattern": "(", "rewrite_to": "/"}]})),
            "v.extended_paths.url_rewrites.0.match_pattern",
        ),
        (
            err(json!({"global_response_headers": {"X-A": "a\nb"}})),
            "v.global_response_headers.X-A",
        ),
    ];
    for (e, field) in cases {
        assert_eq!(e.field, field, "{e:?}");
        assert!(e.message.starts_with(field), "{e:?}");
    }
}

#[test]
fn go_nulls_are_zero_values() {
    let r = rules(
        json!({"use_extended_paths": true, "global_headers": null,
        "extended_paths": {"transform_headers": null, "url_rewrites": [{"path": "/a",
            "method": "GET", "match_pattern": ".*", "rewrite_to": "/b", "triggers": null}]}}),
        true,
    );
    assert!(
        r.url_rewrite("/api/a", "GET", "/api/a", &req("/api/a"))
            .is_some()
    );
}
