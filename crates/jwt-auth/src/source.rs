//! Reading `jwt_source` (Tyk's rules, made strict about key types).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use gatehouse_domain::api::SigningMethod;

use crate::der;
use crate::keys::{Key, KeyKind, KeySet};

/// Where an API's keys come from.
#[derive(Debug)]
pub(crate) enum SourceSpec {
    /// A JWKS URL (fetched and cached by the shared `JwksCache`).
    Jwks(String),
    /// A configured key: a public key for rsa/ecdsa/eddsa, or a secret for hmac.
    Static(Arc<KeySet>),
}

/// Whether `s` is an `http://` or `https://` URL (Tyk: `^(?i)https?://`).
pub(crate) fn is_http_url(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() > 7 && b[..7].eq_ignore_ascii_case(b"http://"))
        || (b.len() > 8 && b[..8].eq_ignore_ascii_case(b"https://"))
}

/// Checks a JWKS URL and returns it normalised (trimmed).
pub(crate) fn jwks_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !is_http_url(s) {
        return Err(format!("'{s}' must start with http:// or https://"));
    }
    let u = reqwest::Url::parse(s).map_err(|e| format!("'{s}' is not a valid URL: {e}"))?;
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{s}' has no host"));
    }
    Ok(s.to_owned())
}

/// Base64 as operators paste it: standard or URL-safe alphabet, padded or not, possibly wrapped
/// over several lines (as the `base64` tool writes it).
fn decode_base64_lenient(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(compact.as_bytes()).ok())
}

/// Reads `jwt_source` for an API whose `jwt_signing_method` is `method`:
///
/// 1. an `http(s)://` URL → a JWKS URL;
/// 2. otherwise base64 is decoded; a decoded `http(s)://` URL → a JWKS URL;
/// 3. `hmac`: the decoded bytes are the shared secret — but a PEM block or a DER public key is
///    refused, since a public key is not a secret (the classic RS256→HS256 confusion);
/// 4. `rsa`/`ecdsa`/`eddsa`: the decoded bytes must be a PEM (or DER) public key or X.509
///    certificate of that family. For convenience, PEM text given without base64 is accepted too.
pub(crate) fn classify(source: &str, method: SigningMethod) -> Result<SourceSpec, String> {
    let s = source.trim();
    if is_http_url(s) {
        return jwks_url(s).map(SourceSpec::Jwks);
    }
    let bytes = if der::looks_like_pem(s.as_bytes()) {
        s.as_bytes().to_vec()
    } else {
        decode_base64_lenient(s).ok_or_else(|| {
            "not a JWKS URL and not base64 (expected a base64 PEM key, a base64 secret or a \
             base64 URL)"
                .to_owned()
        })?
    };
    if let Ok(text) = std::str::from_utf8(&bytes)
        && is_http_url(text.trim())
    {
        return jwks_url(text).map(SourceSpec::Jwks);
    }
    if method == SigningMethod::Hmac {
        if der::looks_like_pem(&bytes) || der::parse_public_key(&bytes).is_ok() {
            return Err(
                "jwt_signing_method is hmac but jwt_source holds a public key or certificate; \
                 a public key is not a secret (set rsa/ecdsa/eddsa, or give the HMAC secret)"
                    .to_owned(),
            );
        }
        if bytes.is_empty() {
            return Err("the HMAC secret is empty".to_owned());
        }
        if bytes.len() < 32 {
            tracing::warn!(
                bytes = bytes.len(),
                "HMAC secret in jwt_source is shorter than 32 bytes"
            );
        }
        return Ok(SourceSpec::Static(Arc::new(KeySet::single(
            Key::hmac(&bytes),
            &bytes,
        ))));
    }
    let pk = der::parse_public_key(&bytes)?;
    let (key, material) = Key::from_public_key(&pk)?;
    let fits = matches!(
        (method, key.kind),
        (SigningMethod::Rsa, KeyKind::Rsa)
            | (SigningMethod::Ecdsa, KeyKind::EcP256 | KeyKind::EcP384)
            | (SigningMethod::Eddsa, KeyKind::Ed25519)
    );
    if !fits {
        return Err(format!(
            "the key is {:?}, which does not match jwt_signing_method {method:?}",
            key.kind
        ));
    }
    Ok(SourceSpec::Static(Arc::new(KeySet::single(key, &material))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_raw_and_base64() {
        let url = "HTTPS://idp.example/.well-known/jwks.json";
        for m in [SigningMethod::Rsa, SigningMethod::Hmac] {
            match classify(url, m).unwrap() {
                SourceSpec::Jwks(u) => assert_eq!(u, url),
                SourceSpec::Static(_) => panic!("raw URL"),
            }
        }
        let b64 = STANDARD.encode("http://127.0.0.1:9/jwks");
        match classify(&b64, SigningMethod::Rsa).unwrap() {
            SourceSpec::Jwks(u) => assert_eq!(u, "http://127.0.0.1:9/jwks"),
            SourceSpec::Static(_) => panic!("base64 URL"),
        }
        assert!(classify("http://", SigningMethod::Rsa).is_err());
        assert!(is_http_url("hTTp://x"));
        assert!(!is_http_url("ftp://x"));
        assert!(!is_http_url("http:/x"));
    }

    #[test]
    fn hmac_secret_is_the_decoded_bytes() {
        let b64 = STANDARD.encode("a-very-long-shared-secret-of-32+bytes");
        match classify(&b64, SigningMethod::Hmac).unwrap() {
            SourceSpec::Static(ks) => {
                assert_eq!(ks.len(), 1);
                assert_eq!(ks.all()[0].kind, KeyKind::Hmac);
            }
            SourceSpec::Jwks(_) => panic!("secret"),
        }
        assert!(classify("!!not base64!!", SigningMethod::Hmac).is_err());
        assert!(classify("", SigningMethod::Hmac).is_err());
    }

    #[test]
    fn base64_is_read_leniently() {
        let text = "http://127.0.0.1:9/a-rather-long-path/for/line/wrapping/jwks.json";
        let b64 = STANDARD.encode(text);
        let wrapped = format!("{}\n{}\n", &b64[..20], &b64[20..]);
        assert!(matches!(
            classify(&wrapped, SigningMethod::Rsa),
            Ok(SourceSpec::Jwks(_))
        ));
        let url_safe = URL_SAFE_NO_PAD.encode(text);
        assert!(matches!(
            classify(&url_safe, SigningMethod::Rsa),
            Ok(SourceSpec::Jwks(_))
        ));
    }

    #[test]
    fn public_key_methods_need_a_public_key() {
        let secret = STANDARD.encode("just a secret, not a key");
        let e = classify(&secret, SigningMethod::Rsa).unwrap_err();
        assert!(e.contains("not a PEM or DER public key"), "{e}");
    }

    #[test]
    fn hmac_refuses_a_pem_as_secret() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n";
        let e = classify(&STANDARD.encode(pem), SigningMethod::Hmac).unwrap_err();
        assert!(e.contains("not a secret"), "{e}");
        assert!(classify(pem, SigningMethod::Hmac).is_err());
    }
}
