//! HTTPS on the three listeners (HTTP/2 by ALPN, minimum version, certificate reload without a
//! restart) and TLS to upstreams (a CA from `upstream_ca_file`, a client certificate for mTLS).
//! Certificates are made at test time with `rcgen`; everything runs on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use gatehouse_test_support::upstream::EchoUpstream;

use crate::harness::{Server, keyless_api};

/// A test certificate authority.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf certificate for `sans` (usable by servers and clients): (cert PEM, key PEM).
    fn leaf(&self, sans: &[&str], serial: u64) -> (String, String) {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.serial_number = Some(SerialNumber::from(serial));
        p.distinguished_name.push(DnType::CommonName, sans[0]);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }
}

/// Writes a certificate and key into `dir`; returns their paths.
fn write_pair(dir: &Path, name: &str, pair: &(String, String)) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &pair.0).unwrap();
    std::fs::write(&key, &pair.1).unwrap();
    (cert, key)
}

fn der_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A rustls client trusting `ca`, limited to `versions`.
fn client_config(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(ca.roots())
            .with_no_client_auth(),
    )
}

/// Opens a new TLS connection to 127.0.0.1:`port`; returns the certificate the server showed.
async fn handshake(
    cfg: Arc<rustls::ClientConfig>,
    port: u16,
) -> std::io::Result<CertificateDer<'static>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let conn = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await?;
    let (_, session) = conn.get_ref();
    Ok(session.peer_certificates().unwrap()[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_on_all_listeners_with_http2_by_alpn() {
    let up = EchoUpstream::start("up").await.unwrap();
    let ca = TestCa::new("Gatehouse test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(
        dir.path(),
        "server",
        &ca.leaf(&["127.0.0.1", "localhost"], 1),
    );
    let s = Server::start_https(dir.path(), &ca.pem, &cert, &key, &[]);
    assert!(
        s.stdout_lines
            .iter()
            .any(|l| l.contains("https://127.0.0.1")),
        "{:?}",
        s.stdout_lines
    );
    // Admin API over HTTPS (the harness's client trusts only the test CA).
    s.create_api(&keyless_api("Api", "/api/", &up.url())).await;

    let http = s.new_client();
    let r = http.get(s.gateway("/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-proto"], "https", "{v}");

    // HTTP/1.1 when the client offers only that.
    let h1 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let r = h1.get(s.gateway("/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // Dashboard and portal, over HTTP/2 too; cookies are Secure; answers carry HSTS (the
    // gateway's are left to the API's upstream).
    let r = http
        .get(s.admin_url("/api/apis"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    // No admin yet: the dashboard's first page is the setup link printed on the console (https).
    let setup = s.setup_link().expect("a first-admin setup link");
    assert!(setup.starts_with("https://127.0.0.1:"), "{setup}");
    for url in [setup, s.portal_url("/login")] {
        let r = http.get(&url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=31536000",
            "{url}"
        );
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert!(
            !cookies.is_empty(),
            "{url}: no cookie set, nothing to check"
        );
        for c in cookies {
            let c = c.to_str().unwrap();
            assert!(c.contains("; Secure"), "{url}: cookie without Secure: {c}");
        }
    }

    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/hello", s.gateway_port))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // A client that does not trust the CA is refused.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(TestCa::new("Other CA").pem.as_bytes()).unwrap(),
        ])
        .build()
        .unwrap();
    assert!(untrusting.get(s.gateway("/hello")).send().await.is_err());

    // No private key in the log.
    assert!(!s.logs().contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimum_version_1_3_refuses_tls_1_2_clients() {
    let ca = TestCa::new("Gatehouse test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "server", &ca.leaf(&["127.0.0.1"], 1));
    let s = Server::start_https(
        dir.path(),
        &ca.pem,
        &cert,
        &key,
        &["--tls-min-version", "1.3"],
    );
    let only_12 = client_config(&ca, &[&rustls::version::TLS12]);
    let only_13 = client_config(&ca, &[&rustls::version::TLS13]);
    for port in [s.gateway_port, s.dashboard_port, s.portal_port] {
        assert!(
            handshake(Arc::clone(&only_12), port).await.is_err(),
            "a TLS 1.2 client got through on {port}"
        );
        handshake(Arc::clone(&only_13), port).await.unwrap();
    }

    // The default (1.2) accepts both.
    let dir2 = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir2.path(), "server", &ca.leaf(&["127.0.0.1"], 2));
    let s2 = Server::start_https(dir2.path(), &ca.pem, &cert, &key, &[]);
    handshake(only_12, s2.gateway_port).await.unwrap();
    handshake(only_13, s2.gateway_port).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_reloaded_without_a_restart() {
    let ca = TestCa::new("Gatehouse test CA");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf(&["127.0.0.1"], 1001);
    let (cert, key) = write_pair(dir.path(), "server", &first);
    let s = Server::start_https(
        dir.path(),
        &ca.pem,
        &cert,
        &key,
        &["--tls-reload-interval-secs", "1"],
    );
    let pid = s.pid();
    let client = client_config(&ca, &[&rustls::version::TLS13, &rustls::version::TLS12]);
    assert_eq!(
        handshake(Arc::clone(&client), s.gateway_port)
            .await
            .unwrap(),
        der_of(&first.0)
    );
    // An open connection keeps working across the reload.
    let http = s.new_client();
    assert_eq!(
        http.get(s.gateway("/hello")).send().await.unwrap().status(),
        200
    );

    // Renew: a new certificate (new serial, an extra name) and a new key.
    let second = ca.leaf(&["127.0.0.1", "renewed.test"], 1002);
    write_pair(dir.path(), "server", &second);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = handshake(Arc::clone(&client), s.gateway_port)
            .await
            .unwrap();
        if seen == der_of(&second.0) {
            break;
        }
        assert_eq!(seen, der_of(&first.0));
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every listener serves it, and the process is the same one.
    for port in [s.dashboard_port, s.portal_port] {
        assert_eq!(
            handshake(Arc::clone(&client), port).await.unwrap(),
            der_of(&second.0)
        );
    }
    assert_eq!(s.pid(), pid);
    assert_eq!(
        http.get(s.gateway("/hello")).send().await.unwrap().status(),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.logs().contains("certificate reloaded") {
        assert!(Instant::now() < deadline, "no 'certificate reloaded' log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken file: logged with its name, the current certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.logs().contains("certificate reload failed") {
        assert!(
            Instant::now() < deadline,
            "the broken file was not reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = s.logs();
    assert!(logs.contains("server.crt"), "{logs}");
    assert!(!logs.contains("PRIVATE KEY"), "a key reached the log");
    assert_eq!(
        handshake(Arc::clone(&client), s.gateway_port)
            .await
            .unwrap(),
        der_of(&second.0)
    );
}

#[test]
fn bad_certificate_files_stop_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    std::fs::write(&key, "not a key").unwrap();
    let missing = dir.path().join("missing.crt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--gateway-listen")
        .arg("127.0.0.1:0")
        .arg("--dashboard-listen")
        .arg("127.0.0.1:0")
        .arg("--portal-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-cert-file")
        .arg(&missing)
        .arg("--tls-key-file")
        .arg(&key)
        .env("GATEHOUSE_ADMIN_KEY", crate::harness::ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.crt") && err.contains("tls_cert_file"),
        "{err}"
    );

    // A certificate with a key that is not PEM.
    let ca = TestCa::new("CA");
    let (cert, _) = write_pair(dir.path(), "good", &ca.leaf(&["127.0.0.1"], 1));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--gateway-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .env("GATEHOUSE_ADMIN_KEY", crate::harness::ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.key") && err.contains("tls_key_file"),
        "{err}"
    );
}

/// An HTTPS upstream on 127.0.0.1 with a certificate from `ca`; with `client_ca`, it requires a
/// client certificate issued by that CA. Answers 200 `secure upstream`.
async fn tls_upstream(ca: &TestCa, client_ca: Option<&TestCa>) -> u16 {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (cert, key) = ca.leaf(&["127.0.0.1"], 77);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(c) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(c.roots()),
                Arc::clone(&provider),
            )
            .build()
            .unwrap(),
        ),
    };
    let cfg = builder
        .with_single_cert(
            vec![der_of(&cert)],
            rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"secure upstream")),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_over_tls_with_a_configured_ca_and_client_certificate() {
    let upstream_ca = TestCa::new("Upstream CA");
    let client_ca = TestCa::new("Client CA");
    let tls_port = tls_upstream(&upstream_ca, None).await;
    let mtls_port = tls_upstream(&upstream_ca, Some(&client_ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, &upstream_ca.pem).unwrap();
    let (client_cert, client_key) = write_pair(
        dir.path(),
        "client",
        &client_ca.leaf(&["gatehouse.test"], 5),
    );
    let apis = [
        keyless_api("Tls", "/tls/", &format!("https://127.0.0.1:{tls_port}")),
        keyless_api("Mtls", "/mtls/", &format!("https://127.0.0.1:{mtls_port}")),
    ];

    // Without the CA: the upstream's certificate is not trusted (502).
    let plain_dir = tempfile::tempdir().unwrap();
    let s = Server::start(plain_dir.path());
    for api in &apis {
        s.create_api(api).await;
    }
    assert_eq!(s.call("/tls/x").await.0, 502);
    drop(s);

    // With the CA: the TLS upstream answers; the mTLS one refuses a client without a certificate.
    let d1 = dir.path().join("ca-only");
    let s = Server::start_with(
        &d1,
        &["--upstream-ca-file", ca_file.to_str().unwrap()],
        Some(crate::harness::ADMIN_KEY),
    );
    for api in &apis {
        s.create_api(api).await;
    }
    let (st, body) = s.call("/tls/x").await;
    assert_eq!((st, body.as_str()), (200, "secure upstream"));
    assert_eq!(s.call("/mtls/x").await.0, 502);
    drop(s);

    // With the client certificate too: the mTLS upstream answers.
    let d2 = dir.path().join("mtls");
    let s = Server::start_with(
        &d2,
        &[
            "--upstream-ca-file",
            ca_file.to_str().unwrap(),
            "--upstream-client-cert-file",
            client_cert.to_str().unwrap(),
            "--upstream-client-key-file",
            client_key.to_str().unwrap(),
        ],
        Some(crate::harness::ADMIN_KEY),
    );
    for api in &apis {
        s.create_api(api).await;
    }
    let (st, body) = s.call("/mtls/x").await;
    assert_eq!((st, body.as_str()), (200, "secure upstream"));
    let (st, _) = s.call("/tls/x").await;
    assert_eq!(st, 200);
}
