//! Verification keys, parsed once: from a JWKS document or from a configured PEM key / secret.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::der::{self, PublicKey};

/// RSA moduli outside this range (in bits) are refused (aws-lc-rs verifies 2048..=8192).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// The JOSE algorithm named `name` (case-sensitive), if we verify it. `Ed25519` (the fully
/// specified name of RFC 9864) is read as `EdDSA`, the only EdDSA curve we verify.
pub(crate) fn alg_from_name(name: &str) -> Option<Algorithm> {
    match name {
        "Ed25519" => Some(Algorithm::EdDSA),
        other => Algorithm::from_str(other).ok(),
    }
}

/// What a key is, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg` (the JWK `kty`/`crv` ↔ JWS `alg` rule).
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (
                Self::Rsa,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (Self::EcP256, Algorithm::ES256)
                | (Self::EcP384, Algorithm::ES384)
                | (Self::Ed25519, Algorithm::EdDSA)
                | (
                    Self::Hmac,
                    Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
                )
        )
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Ed25519 => "OKP Ed25519",
            Self::Hmac => "HMAC secret",
        }
    }
}

/// One verification key, ready to use.
pub(crate) struct Key {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The JWK's own `alg`, when it has one: then only that algorithm is accepted.
    pub alg: Option<Algorithm>,
    pub decoding: DecodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }

    /// For logs: kind, kid and alg.
    pub(crate) fn describe(&self) -> String {
        let mut s = self.kind.tag().to_owned();
        if let Some(kid) = &self.kid {
            s.push_str(&format!(" kid {kid:?}"));
        }
        if let Some(alg) = self.alg {
            s.push_str(&format!(" alg {alg:?}"));
        }
        s
    }

    /// Builds a key from a parsed public key (PEM/DER source).
    pub(crate) fn from_public_key(pk: &PublicKey) -> Result<(Self, Vec<u8>), String> {
        let (kind, decoding, material) = match pk {
            PublicKey::Rsa { n, e } => {
                check_rsa(n, e)?;
                (
                    KeyKind::Rsa,
                    DecodingKey::from_rsa_raw_components(n, e),
                    [n.as_slice(), e.as_slice()].concat(),
                )
            }
            PublicKey::EcP256(p) => {
                check_ec(KeyKind::EcP256, p)?;
                (KeyKind::EcP256, DecodingKey::from_ec_der(p), p.clone())
            }
            PublicKey::EcP384(p) => {
                check_ec(KeyKind::EcP384, p)?;
                (KeyKind::EcP384, DecodingKey::from_ec_der(p), p.clone())
            }
            PublicKey::Ed25519(x) => (KeyKind::Ed25519, DecodingKey::from_ed_der(x), x.clone()),
        };
        Ok((
            Self {
                kid: None,
                kind,
                alg: None,
                decoding,
            },
            material,
        ))
    }

    /// An HMAC secret.
    pub(crate) fn hmac(secret: &[u8]) -> Self {
        Self {
            kid: None,
            kind: KeyKind::Hmac,
            alg: None,
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let n = der::strip_zeros(n);
    let bits = match n.first() {
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits (only {RSA_MIN_BITS}..={RSA_MAX_BITS} are accepted)"
        ));
    }
    let e = der::strip_zeros(e);
    if e.is_empty() || e.len() > 8 {
        return Err("RSA exponent is empty or too large".to_owned());
    }
    Ok(())
}

fn check_ec(kind: KeyKind, point: &[u8]) -> Result<(), String> {
    let alg = if kind == KeyKind::EcP256 {
        &ECDSA_P256_SHA256_FIXED
    } else {
        &ECDSA_P384_SHA384_FIXED
    };
    ParsedPublicKey::new(alg, point)
        .map(|_| ())
        .map_err(|e| format!("EC point is not on the curve: {e}"))
}

/// A set of keys with a `kid` index. Immutable once built; shared behind an `Arc`.
pub(crate) struct KeySet {
    keys: Vec<Arc<Key>>,
    by_kid: HashMap<String, Vec<usize>>,
    /// SHA-256 over every key's identity and material, to tell whether a refetch changed anything.
    digest: [u8; 32],
    /// Keys of the document that were skipped (unsupported or invalid).
    skipped: usize,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    fn build(entries: Vec<(Key, Vec<u8>)>, skipped: usize) -> Self {
        let mut hasher = Sha256::new();
        let mut keys = Vec::with_capacity(entries.len());
        let mut by_kid: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (key, material)) in entries.into_iter().enumerate() {
            hasher.update(key.kind.tag().as_bytes());
            let kid = key.kid.as_deref().unwrap_or("");
            hasher.update((kid.len() as u64).to_be_bytes());
            hasher.update(kid.as_bytes());
            hasher.update(format!("{:?}", key.alg).as_bytes());
            hasher.update((material.len() as u64).to_be_bytes());
            hasher.update(&material);
            if let Some(kid) = &key.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
            keys.push(Arc::new(key));
        }
        Self {
            keys,
            by_kid,
            digest: hasher.finalize().into(),
            skipped,
        }
    }

    /// A set of one configured key (PEM key or HMAC secret): it has no `kid` and fits any.
    pub(crate) fn single(key: Key, material: &[u8]) -> Self {
        Self::build(vec![(key, material.to_vec())], 0)
    }

    /// Parses a JWKS document (`{"keys": [...]}`). Keys that cannot be used for signature
    /// verification are skipped, not fatal: `use` other than `sig`, `key_ops` without `verify`,
    /// an `alg` we do not verify (e.g. `RSA-OAEP`), `kty: oct` (a JWKS never carries our HMAC
    /// secrets), curves other than P-256/P-384/Ed25519, RSA keys outside 2048..=8192 bits, points
    /// not on their curve, and non-string `kid`s.
    pub(crate) fn from_jwks_json(body: &[u8]) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let Some(Value::Array(items)) = doc.get("keys") else {
            return Err("JWKS has no \"keys\" array".to_owned());
        };
        let mut entries = Vec::with_capacity(items.len());
        let mut skipped = 0;
        for (i, item) in items.iter().enumerate() {
            match parse_jwk(item) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => skipped += 1,
                Err(why) => {
                    skipped += 1;
                    tracing::warn!(index = i, reason = %why, "JWKS key skipped");
                }
            }
        }
        Ok(Self::build(entries, skipped))
    }

    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn all(&self) -> &[Arc<Key>] {
        &self.keys
    }

    /// The keys whose `kid` equals `kid` (usually one).
    pub(crate) fn with_kid(&self, kid: &str) -> impl Iterator<Item = &Arc<Key>> {
        self.by_kid
            .get(kid)
            .into_iter()
            .flatten()
            .map(|i| &self.keys[*i])
    }

    /// The `kid`s in the set, in document order.
    pub(crate) fn kids(&self) -> Vec<String> {
        self.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }
}

fn b64url_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = obj
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string member \"{name}\""))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("\"{name}\" is not base64url: {e}"))
}

/// One JWK → a key (with its material for the set digest), `None` when it is not a signature key
/// we use, or an error when it claims to be one but is broken.
fn parse_jwk(v: &Value) -> Result<Option<(Key, Vec<u8>)>, String> {
    let Value::Object(obj) = v else {
        return Err("not a JSON object".to_owned());
    };
    let kty = obj
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| "no string kty".to_owned())?;
    match obj.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Ok(None),
    }
    if let Some(ops) = obj.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Ok(None);
        }
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("kid is not a string".to_owned()),
    };
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(a)) => match alg_from_name(a) {
            Some(alg) => Some(alg),
            // An encryption algorithm or one we do not verify (ES512, ...): not for us.
            None => return Ok(None),
        },
        Some(_) => return Err("alg is not a string".to_owned()),
    };
    let (kind, decoding, material) = match kty {
        "RSA" => {
            let n = b64url_field(obj, "n")?;
            let e = b64url_field(obj, "e")?;
            let (n, e) = (der::strip_zeros(&n), der::strip_zeros(&e));
            check_rsa(n, e)?;
            (
                KeyKind::Rsa,
                DecodingKey::from_rsa_raw_components(n, e),
                [n, e].concat(),
            )
        }
        "EC" => {
            let kind = match obj.get("crv").and_then(Value::as_str) {
                Some("P-256") => KeyKind::EcP256,
                Some("P-384") => KeyKind::EcP384,
                _ => return Ok(None),
            };
            let x = b64url_field(obj, "x")?;
            let y = b64url_field(obj, "y")?;
            let size = if kind == KeyKind::EcP256 { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return Err(format!("EC coordinates are not {size} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            check_ec(kind, &point)?;
            (kind, DecodingKey::from_ec_der(&point), point)
        }
        "OKP" => {
            if obj.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                return Ok(None);
            }
            let x = b64url_field(obj, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".to_owned());
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x), x)
        }
        // Symmetric keys are never taken from a JWKS; other types are not supported.
        _ => return Ok(None),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err(format!("alg {alg:?} does not fit a {} key", kind.tag()));
    }
    Ok(Some((
        Key {
            kid,
            kind,
            alg,
            decoding,
        },
        material,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn ec_jwk(kid: &str) -> Value {
        let kp =
            EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = kp.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..])})
    }

    fn rsa_jwk(kid: &str) -> Value {
        let mut n = vec![0xC5u8; 256];
        n[255] |= 1;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    #[test]
    fn kinds_fit_algorithms() {
        assert!(KeyKind::Rsa.fits(Algorithm::PS512));
        assert!(!KeyKind::Rsa.fits(Algorithm::ES256));
        assert!(!KeyKind::Rsa.fits(Algorithm::HS256));
        assert!(KeyKind::EcP256.fits(Algorithm::ES256));
        assert!(!KeyKind::EcP256.fits(Algorithm::ES384));
        assert!(KeyKind::EcP384.fits(Algorithm::ES384));
        assert!(KeyKind::Ed25519.fits(Algorithm::EdDSA));
        assert!(KeyKind::Hmac.fits(Algorithm::HS512));
        assert!(!KeyKind::Hmac.fits(Algorithm::RS256));
    }

    #[test]
    fn jwks_parse_keeps_signature_keys_and_skips_the_rest() {
        let ed = Ed25519KeyPair::generate().unwrap();
        let mut other_rsa = rsa_jwk("rsa-enc");
        other_rsa["use"] = json!("enc");
        let mut oaep = rsa_jwk("rsa-oaep");
        oaep["alg"] = json!("RSA-OAEP");
        let mut ops = rsa_jwk("ops");
        ops["key_ops"] = json!(["encrypt"]);
        let mut rs = rsa_jwk("rs");
        rs["alg"] = json!("RS256");
        rs["use"] = json!("sig");
        let doc = json!({"keys": [
            rs,
            ec_jwk("ec"),
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AA"},
            other_rsa, oaep, ops,
            {"kty": "RSA", "kid": "small", "n": b64(&[0xC5; 128]), "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "offcurve", "x": b64(&[1; 32]), "y": b64(&[2; 32])},
            {"kty": "RSA", "kid": 7, "n": b64(&[0xC5; 256]), "e": "AQAB"},
            {"kty": "RSA", "kid": "badalg", "alg": "ES256", "n": b64(&[0xC5; 256]), "e": "AQAB"},
            "junk",
        ]});
        let ks = KeySet::from_jwks_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(ks.kids(), vec!["rs", "ec", "ed"]);
        assert_eq!(ks.skipped, 11);
        let rs: Vec<_> = ks.with_kid("rs").collect();
        assert_eq!(rs.len(), 1);
        assert!(rs[0].accepts(Algorithm::RS256));
        assert!(!rs[0].accepts(Algorithm::RS512), "the JWK alg pins it");
        let ec: Vec<_> = ks.with_kid("ec").collect();
        assert!(ec[0].accepts(Algorithm::ES256) && !ec[0].accepts(Algorithm::RS256));
        assert_eq!(ks.with_kid("nope").count(), 0);
    }

    #[test]
    fn jwks_document_errors() {
        assert!(KeySet::from_jwks_json(b"<html>").is_err());
        assert!(KeySet::from_jwks_json(b"{}").is_err());
        assert!(KeySet::from_jwks_json(br#"{"keys": {}}"#).is_err());
        let empty = KeySet::from_jwks_json(br#"{"keys": []}"#).unwrap();
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn digest_tracks_changes() {
        let a = json!({"keys": [rsa_jwk("a")]}).to_string();
        let b = json!({"keys": [rsa_jwk("b")]}).to_string();
        let d = |s: &str| *KeySet::from_jwks_json(s.as_bytes()).unwrap().digest();
        assert_eq!(d(&a), d(&a));
        assert_ne!(d(&a), d(&b));
        // Whitespace or member order in the document does not matter.
        let a2 = a.replace(',', ", ");
        assert_eq!(d(&a), d(&a2));
    }
}
