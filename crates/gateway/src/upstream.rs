//! The upstream side: a pooled keep-alive client and the header rewriting of a proxied request.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::GatewayConfig;

/// The upstream client: HTTP/1.1 with pooled keep-alive connections, plain or TLS (system roots,
/// Mozilla's bundled roots as a fallback, plus `upstream_ca_file`; a client certificate with
/// `upstream_client_cert_file`), request bodies streamed from the client (counted
/// as they go, for the metrics and the access log).
pub type UpstreamClient = Client<
    hyper_rustls::HttpsConnector<HttpConnector>,
    gatehouse_telemetry::CountingBody<crate::limited::LimitedBody<Incoming>>,
>;

/// Builds the upstream client.
pub fn build_client(cfg: &GatewayConfig) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.upstream_connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let builder = match &cfg.upstream_tls {
        // The configured CA and client certificate (plus the system roots).
        Some(tls) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((**tls).clone()),
        None => {
            let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            match hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider.clone())
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "no system CA certificates found; using bundled roots");
                    hyper_rustls::HttpsConnectorBuilder::new()
                        .with_provider_and_webpki_roots(provider)
                        .expect("the aws-lc-rs provider supports the default protocol versions")
                }
            }
        }
    };
    let https = builder.https_or_http().enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.upstream_idle_timeout)
        .pool_max_idle_per_host(cfg.upstream_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https)
}

/// Headers that describe one connection and must not be forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those named by `Connection`. `Upgrade` goes too:
/// Gatehouse does not proxy protocol upgrades yet.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(conn) = headers.get(header::CONNECTION) {
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::UPGRADE);
}

/// Appends the client address to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host`.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let ip = client_ip.to_string();
    let xff = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(XFF, v);
    }
    headers.insert(XFP, HeaderValue::from_static(proto));
    match host {
        Some(h) => {
            headers.insert(XFH, h);
        }
        None => {
            headers.remove(XFH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_named_ones_too() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "http",
            Some(HeaderValue::from_static("example.test")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.test");
    }
}
