//! TLS: HTTPS for the listeners (gateway, dashboard, portal) and the upstream client's trust and
//! identity.
//!
//! - [`ReloadingCertResolver`] serves the certificate and key read from two PEM files and re-reads
//!   them when their content changes ([`ReloadingCertResolver::spawn_reloader`]): a renewed
//!   certificate is used for new connections without a restart; a file that does not parse is
//!   logged with its name and the previous certificate stays in use.
//! - [`server_config`] builds the listeners' `rustls::ServerConfig`: ALPN `h2` and `http/1.1`,
//!   TLS 1.2 and 1.3 (or 1.3 only), rustls' default suites of the aws-lc-rs provider (AEAD with
//!   ECDHE forward secrecy only, see [`CIPHER_SUITES_DOC`]).
//! - [`upstream_client_config`] builds the upstream client's `rustls::ClientConfig`: system roots
//!   (Mozilla's bundled roots when the system has none) plus an optional CA bundle, and an optional
//!   client certificate (mTLS).
//!
//! This module only builds rustls configuration; accepting connections (plain or TLS) is
//! [`crate::accept`]'s.
//!
//! Private keys are never logged: errors name the file, never its content.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A TLS setup error; the message names the file or setting and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The cipher suites the listeners offer (rustls' defaults for aws-lc-rs), strongest first.
pub const CIPHER_SUITES_DOC: &str = "TLS 1.3: TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256, \
TLS13_CHACHA20_POLY1305_SHA256; TLS 1.2: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, \
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinTlsVersion {
    /// TLS 1.2 and 1.3 (the default).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl std::str::FromStr for MinTlsVersion {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        match s.trim() {
            "1.2" => Ok(Self::Tls12),
            "1.3" => Ok(Self::Tls13),
            other => Err(TlsError(format!(
                "tls_min_version must be '1.2' or '1.3', not '{other}'"
            ))),
        }
    }
}

/// A certificate chain file and its private key file (both PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate, then any intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The provider everything TLS here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path, what: &str, setting: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError(format!(
            "cannot read the {what} {}: {e} (set {setting} to a readable PEM file)",
            path.display()
        ))
    })
}

/// Parses a PEM certificate chain; `setting` names the setting in errors.
pub fn parse_certs(
    pem: &[u8],
    path: &Path,
    setting: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            TlsError(format!(
                "{} ({setting}) is not a valid PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{} ({setting}) contains no certificate: expected '-----BEGIN CERTIFICATE-----'",
            path.display()
        )));
    }
    Ok(certs)
}

/// Parses a PEM private key. The error never contains the file's content.
fn parse_key(pem: &[u8], path: &Path, setting: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        TlsError(format!(
            "{} ({setting}) contains no PEM private key: expected '-----BEGIN PRIVATE KEY-----' \
             (PKCS#8), '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----'",
            path.display()
        ))
    })
}

/// Reads a certificate chain and its key into a [`CertifiedKey`], checking that they belong
/// together. `settings` names the two settings (for errors).
pub fn load_certified_key(
    files: &CertFiles,
    settings: (&str, &str),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&files.cert, "TLS certificate file", settings.0)?;
    let key_pem = read(&files.key, "TLS private key file", settings.1)?;
    certified_key_from_pem(&cert_pem, &key_pem, files, settings, provider)
}

fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &CertFiles,
    settings: (&str, &str),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = parse_certs(cert_pem, &files.cert, settings.0)?;
    let key = parse_key(key_pem, &files.key, settings.1)?;
    let signing = provider.key_provider.load_private_key(key).map_err(|_| {
        TlsError(format!(
            "the private key in {} ({}) is not supported: use an RSA, ECDSA (P-256, P-384) or \
             Ed25519 key",
            files.key.display(),
            settings.1
        ))
    })?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|_| {
        TlsError(format!(
            "the private key in {} ({}) does not belong to the certificate in {} ({}): \
             use the key the certificate was issued for",
            files.key.display(),
            settings.1,
            files.cert.display(),
            settings.0
        ))
    })?;
    Ok(ck)
}

/// Serves the certificate from [`CertFiles`] and swaps in a new one when the files change.
pub struct ReloadingCertResolver {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// Hash of the file contents last looked at (loaded, or refused).
    seen: parking_lot::Mutex<u64>,
}

impl std::fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

const SERVER_SETTINGS: (&str, &str) = ("tls_cert_file", "tls_key_file");

fn content_hash(cert: &[u8], key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    cert.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

impl ReloadingCertResolver {
    /// Loads the files; an error names the file and the fix.
    pub fn load(files: CertFiles) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let cert_pem = read(&files.cert, "TLS certificate file", SERVER_SETTINGS.0)?;
        let key_pem = read(&files.key, "TLS private key file", SERVER_SETTINGS.1)?;
        let ck = certified_key_from_pem(&cert_pem, &key_pem, &files, SERVER_SETTINGS, &provider)?;
        Ok(Arc::new(Self {
            seen: parking_lot::Mutex::new(content_hash(&cert_pem, &key_pem)),
            files,
            provider,
            current: ArcSwap::from_pointee(ck),
        }))
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Re-reads the files; when their content changed and parses, the new certificate is served
    /// from now on (`Ok(true)`). A change that does not parse is an error and the current
    /// certificate stays; the same bad content is not reported twice.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let cert_pem = read(&self.files.cert, "TLS certificate file", SERVER_SETTINGS.0)?;
        let key_pem = read(&self.files.key, "TLS private key file", SERVER_SETTINGS.1)?;
        let hash = content_hash(&cert_pem, &key_pem);
        {
            let mut seen = self.seen.lock();
            if *seen == hash {
                return Ok(false);
            }
            *seen = hash;
        }
        let ck = certified_key_from_pem(
            &cert_pem,
            &key_pem,
            &self.files,
            SERVER_SETTINGS,
            &self.provider,
        )?;
        self.current.store(Arc::new(ck));
        Ok(true)
    }

    /// Checks the files every `interval` until the process ends; logs `certificate reloaded` or,
    /// on a bad file, a warning naming it (the current certificate stays in use).
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let r = {
                    let me = Arc::clone(&me);
                    tokio::task::spawn_blocking(move || me.reload_if_changed()).await
                };
                match r {
                    Ok(Ok(true)) => tracing::info!(
                        cert_file = %me.files.cert.display(),
                        key_file = %me.files.key.display(),
                        "certificate reloaded"
                    ),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(
                        error = %e,
                        "certificate reload failed; the current certificate stays in use"
                    ),
                    Err(e) => tracing::warn!(error = %e, "certificate reload task failed"),
                }
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The listeners' TLS configuration: the resolver's certificate, ALPN `h2` then `http/1.1`,
/// TLS 1.2+1.3 or 1.3 only, rustls' default (AEAD, forward-secret) cipher suites.
pub fn server_config(
    resolver: Arc<ReloadingCertResolver>,
    min_version: MinTlsVersion,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        MinTlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinTlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(format!("cannot configure TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The upstream client's TLS configuration: the system's roots (Mozilla's bundled roots when the
/// system has none) plus the certificates in `ca_file`, and `client` as the client certificate
/// when set (mTLS). Errors name the file and the setting.
pub fn upstream_client_config(
    ca_file: Option<&Path>,
    client: Option<&CertFiles>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system CA certificates found; using bundled roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        let pem = read(path, "upstream CA file", "upstream_ca_file")?;
        for cert in parse_certs(&pem, path, "upstream_ca_file")? {
            roots.add(cert).map_err(|e| {
                TlsError(format!(
                    "{} (upstream_ca_file) holds a certificate that cannot be a trust anchor: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("cannot configure upstream TLS: {e}")))?
        .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some(files) => {
            let settings = ("upstream_client_cert_file", "upstream_client_key_file");
            // Checks that the key belongs to the certificate, with errors naming the files.
            load_certified_key(files, settings, &provider)?;
            let certs = parse_certs(
                &read(&files.cert, "upstream client certificate file", settings.0)?,
                &files.cert,
                settings.0,
            )?;
            let key = parse_key(
                &read(&files.key, "upstream client key file", settings.1)?,
                &files.key,
                settings.1,
            )?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TlsError(format!(
                    "cannot use {} and {} as the upstream client certificate: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })
        }
    }
}
