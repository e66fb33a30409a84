//! What telemetry adds to one request: `cargo bench -p gatehouse-telemetry`.
//!
//! A whole exchange (begin, API lookup, outcome, response wrapped, body polled to its end,
//! metrics recorded) with the access log off and on, and its parts.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_telemetry::{
    AccessLogTarget, ApiInfo, AuthOutcome, Telemetry, TelemetryConfig, request_id,
};
use http::{HeaderValue, Method, Response, Uri};
use http_body::Body;
use http_body_util::Full;

struct Api;
impl ApiInfo for Api {
    fn api_id(&self) -> &str {
        "5f1a0c3b2d8e4f6a9b7c1d2e3f4a5b6c"
    }
    fn listen_path(&self) -> &str {
        "/payments/"
    }
}

fn one(t: &Arc<Telemetry>, api: &Arc<Api>, uri: &Uri, id: &HeaderValue) {
    let mut ex = t.begin(Instant::now(), &Method::GET, uri, id);
    ex.set_api(api);
    ex.set_outcome(AuthOutcome::Ok);
    if ex.wants_caller() {
        ex.set_caller("user-1".to_owned(), Some("client-1".to_owned()), None);
    }
    let mut body = ex
        .finish(Response::new(Full::new(Bytes::from_static(b"hello"))))
        .into_body();
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(_)) = Pin::new(&mut body).poll_frame(&mut cx) {}
}

fn bench(c: &mut Criterion) {
    let api = Arc::new(Api);
    let uri: Uri = "/payments/v1/items?page=2".parse().unwrap();
    let id = HeaderValue::from_static("01a22033-7eaf-772e-b24b-3355c00fee4d");

    let off = Telemetry::metrics_only();
    c.bench_function("exchange, access log off", |b| {
        b.iter(|| one(&off, &api, &uri, &id))
    });

    let dir = tempfile::tempdir().unwrap();
    let on = Telemetry::builder(TelemetryConfig {
        access_log: AccessLogTarget::File(dir.path().join("access.log")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    c.bench_function("exchange, access log to a file", |b| {
        b.iter(|| one(&on, &api, &uri, &id))
    });
    on.flush_access_log(std::time::Duration::from_secs(30));

    c.bench_function("request id generated", |b| b.iter(request_id::generate));
    c.bench_function("series lookup", |b| {
        b.iter(|| off.series().get("5f1a0c3b2d8e4f6a9b7c1d2e3f4a5b6c"))
    });
    c.bench_function("render (1 API)", |b| b.iter(|| off.render()));

    let record = gatehouse_telemetry::access_log::AccessRecord {
        time: std::time::SystemTime::now(),
        request_id: id.clone(),
        api: Some(api.clone()),
        method: Method::GET,
        uri: uri.clone(),
        status: 200,
        latency: std::time::Duration::from_micros(1234),
        upstream_latency: Some(std::time::Duration::from_micros(800)),
        identity: Some("user-1".to_owned()),
        client_id: Some("client-1".to_owned()),
        developer_id: None,
        bytes_in: 0,
        bytes_out: 5,
    };
    let mut buf = Vec::with_capacity(1024);
    c.bench_function("access log line formatted (writer thread)", |b| {
        b.iter(|| {
            buf.clear();
            record.write_json(&mut buf);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
