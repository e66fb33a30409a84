//! Test keys (generated once per run), token signing, a fault-injecting JWKS server on 127.0.0.1,
//! and API-definition helpers.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_domain::api::{ApiDefinition, JwksUri};
use gatehouse_jwt::{
    JwksCache, JwksCacheConfig, JwtError, JwtValidator, VerifiedTokenCache, unix_now,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

struct Keys {
    rsa: Vec<RsaKeyPair>,
    ec256: Vec<EcdsaKeyPair>,
    ec384: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: (0..3)
            .map(|_| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
            .collect(),
        ec256: (0..2)
            .map(|_| EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
            .collect(),
        ec384: EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
        ed: Ed25519KeyPair::generate().unwrap(),
    })
}

/// A signing key of the test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    /// One of three RSA-2048 keys.
    Rsa(usize),
    /// One of two P-256 keys.
    Ec256(usize),
    Ec384,
    Ed,
    Hmac(&'static [u8]),
}

impl K {
    /// The public JWK (no `alg`, `use: sig`).
    pub fn jwk(self, kid: &str) -> Value {
        let k = keys();
        match self {
            K::Rsa(i) => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.rsa[i].public_key());
                json!({"kty": "RSA", "use": "sig", "kid": kid, "n": b64url(&c.n), "e": b64url(&c.e)})
            }
            K::Ec256(_) | K::Ec384 => {
                let p = self.ec().public_key().as_ref().to_vec();
                let (crv, n) = if self == K::Ec384 {
                    ("P-384", 48)
                } else {
                    ("P-256", 32)
                };
                json!({"kty": "EC", "use": "sig", "crv": crv, "kid": kid,
                       "x": b64url(&p[1..=n]), "y": b64url(&p[1 + n..])})
            }
            K::Ed => json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid,
                            "x": b64url(k.ed.public_key().as_ref())}),
            K::Hmac(s) => json!({"kty": "oct", "kid": kid, "k": b64url(s)}),
        }
    }

    fn ec(self) -> &'static EcdsaKeyPair {
        match self {
            K::Ec256(i) => &keys().ec256[i],
            K::Ec384 => &keys().ec384,
            _ => unreachable!(),
        }
    }

    /// SubjectPublicKeyInfo DER of the public key.
    pub fn public_der(self) -> Vec<u8> {
        let k = keys();
        match self {
            K::Rsa(i) => k.rsa[i].public_key().as_der().unwrap().as_ref().to_vec(),
            K::Ec256(_) | K::Ec384 => self.ec().public_key().as_der().unwrap().as_ref().to_vec(),
            K::Ed => k.ed.public_key().as_der().unwrap().as_ref().to_vec(),
            K::Hmac(s) => s.to_vec(),
        }
    }

    /// The public key as PEM text.
    pub fn public_pem(self) -> String {
        pem("PUBLIC KEY", &self.public_der())
    }

    /// Signs `msg` as `alg` would (the key must fit; tests of mismatches sign with a fitting alg).
    pub fn sign(self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            K::Rsa(i) => {
                let enc: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("RSA cannot sign {other}"),
                };
                let kp = &keys().rsa[i];
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(enc, &rng, msg, &mut sig).unwrap();
                sig
            }
            K::Ec256(_) | K::Ec384 => self.ec().sign(&rng, msg).unwrap().as_ref().to_vec(),
            K::Ed => keys().ed.sign(msg).as_ref().to_vec(),
            K::Hmac(secret) => hmac_sign(alg, secret, msg),
        }
    }
}

pub fn hmac_sign(alg: &str, secret: &[u8], msg: &[u8]) -> Vec<u8> {
    let a = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        other => panic!("HMAC cannot sign {other}"),
    };
    hmac::sign(&hmac::Key::new(a, secret), msg)
        .as_ref()
        .to_vec()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// `header.payload.signature` with the given signature bytes.
pub fn assemble(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(&serde_json::to_vec(header).unwrap()),
        b64url(&serde_json::to_vec(claims).unwrap()),
        b64url(sig)
    )
}

/// A token with this exact header, signed by `key` with the header's `alg`.
pub fn token_with_header(header: &Value, key: K, claims: &Value) -> String {
    let alg = header["alg"].as_str().unwrap();
    let input = format!(
        "{}.{}",
        b64url(&serde_json::to_vec(header).unwrap()),
        b64url(&serde_json::to_vec(claims).unwrap())
    );
    let sig = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64url(&sig))
}

/// A token `{"alg": alg, "kid": kid}` signed by `key`.
pub fn token(alg: &str, kid: Option<&str>, key: K, claims: &Value) -> String {
    let mut h = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        h["kid"] = json!(kid);
    }
    token_with_header(&h, key, claims)
}

/// Claims valid for ten minutes from now.
pub fn claims() -> Value {
    let now = unix_now();
    json!({"sub": "user-1", "iss": "https://idp.test/", "aud": "api://default",
           "iat": now, "exp": now + 600, "pol": "gold"})
}

pub fn jwks(keys: &[(K, &str)]) -> String {
    json!({"keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>()}).to_string()
}

/// What the test IdP does for a path.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with this body and optional `Cache-Control`.
    Body {
        body: String,
        cache_control: Option<String>,
    },
    /// This status, empty body.
    Status(u16),
    /// Accept, read the request, never answer.
    Hang,
    /// Accept and close at once (a network error).
    Close,
}

#[derive(Default)]
struct IdpState {
    routes: HashMap<String, Behaviour>,
    hits: HashMap<String, u64>,
}

/// A hand-written JWKS server on 127.0.0.1 that counts fetches and injects faults.
#[derive(Clone)]
pub struct Idp {
    addr: SocketAddr,
    state: Arc<Mutex<IdpState>>,
}

impl Idp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(IdpState::default()));
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(sock, Arc::clone(&st)));
            }
        });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, b: Behaviour) {
        self.state.lock().routes.insert(path.to_owned(), b);
    }

    pub fn serve(&self, path: &str, keys: &[(K, &str)]) {
        self.set(
            path,
            Behaviour::Body {
                body: jwks(keys),
                cache_control: None,
            },
        );
    }

    pub fn serve_with_cache_control(&self, path: &str, keys: &[(K, &str)], cc: &str) {
        self.set(
            path,
            Behaviour::Body {
                body: jwks(keys),
                cache_control: Some(cc.to_owned()),
            },
        );
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> u64 {
        self.state.lock().hits.get(path).copied().unwrap_or(0)
    }
}

async fn serve(mut sock: tokio::net::TcpStream, state: Arc<Mutex<IdpState>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let behaviour = {
        let mut st = state.lock();
        *st.hits.entry(path.clone()).or_default() += 1;
        st.routes
            .get(&path)
            .cloned()
            .unwrap_or(Behaviour::Status(404))
    };
    let response = match behaviour {
        Behaviour::Body {
            body,
            cache_control,
        } => {
            let cc = cache_control
                .map(|c| format!("Cache-Control: {c}\r\n"))
                .unwrap_or_default();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{cc}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Behaviour::Status(code) => {
            format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Behaviour::Close => return,
    };
    let _ = sock.write_all(response.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// A JWT API definition.
pub fn api(method: &str, source: &str) -> ApiDefinition {
    ApiDefinition {
        name: "test".into(),
        api_id: "api-1".into(),
        enable_jwt: true,
        jwt_signing_method: method.into(),
        jwt_source: source.into(),
        ..ApiDefinition::default()
    }
}

/// A JWT API definition with `jwt_jwks_uris`.
pub fn api_uris(method: &str, urls: &[(String, Option<u64>)]) -> ApiDefinition {
    let mut d = api(method, "");
    d.jwt_jwks_uris = urls
        .iter()
        .map(|(url, t)| JwksUri {
            url: url.clone(),
            cache_timeout: *t,
        })
        .collect();
    d
}

/// Cache settings for tests: the defaults with a short fetch timeout.
pub fn cfg() -> JwksCacheConfig {
    JwksCacheConfig {
        fetch_timeout: Duration::from_millis(1500),
        ..JwksCacheConfig::default()
    }
}

/// A validator with a fresh JWKS cache and token cache.
pub struct Setup {
    pub cache: Arc<JwksCache>,
    pub tokens: Arc<VerifiedTokenCache>,
    pub v: JwtValidator,
}

pub fn setup_with(def: &ApiDefinition, cfg: JwksCacheConfig) -> Setup {
    let cache = JwksCache::new(cfg).unwrap();
    let tokens = VerifiedTokenCache::new(1000);
    let v = JwtValidator::from_api(def, Arc::clone(&cache), Arc::clone(&tokens)).unwrap();
    Setup { cache, tokens, v }
}

pub fn setup(def: &ApiDefinition) -> Setup {
    setup_with(def, cfg())
}

/// Waits (bounded: 15 s) until `cond` holds; panics with `what` otherwise. Not a timing
/// assertion: it only bounds how long a test may hang.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..750 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until the cache has fetched `url` successfully at least once.
pub async fn wait_loaded(cache: &JwksCache, url: &str) {
    wait_until("the JWKS is loaded", || {
        cache.stats().urls.iter().any(|u| u.url == url && u.usable)
    })
    .await;
}

/// Asserts the error's status and public message.
#[track_caller]
pub fn assert_refused(
    r: &Result<Arc<gatehouse_jwt::VerifiedToken>, JwtError>,
    status: u16,
    msg: &str,
) {
    match r {
        Ok(t) => panic!("expected {status} {msg:?}, got a valid token {t:?}"),
        Err(e) => {
            assert_eq!(
                (e.status().as_u16(), e.public_message()),
                (status, msg),
                "detail: {}",
                e.detail()
            );
        }
    }
}

pub const NOT_AUTHORIZED: &str = "Key not authorized";
pub const UNEXPECTED: &str = "Key not authorized: Unexpected signing method";

/// Runs `f` with a deadline so a broken test fails instead of hanging.
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test step took more than 60 s")
}
