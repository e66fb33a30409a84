//! Parsing a compact JWS and checking its claims. No keys, no I/O.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::JwtError;

/// Tokens longer than this are refused as malformed before any work is done.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

/// The `kid` header, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kid {
    Absent,
    String(String),
    NotString,
}

/// A compact JWS split into its parts, with the header decoded. Nothing is verified.
#[derive(Debug)]
pub(crate) struct RawToken<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub payload_b64: &'a str,
    pub signature_b64: &'a str,
    /// The `alg` header exactly as sent.
    pub alg: String,
    pub kid: Kid,
}

fn malformed(reason: impl Into<String>) -> JwtError {
    JwtError::Malformed {
        reason: reason.into(),
    }
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits and checks the shape of a token and decodes its header.
///
/// The header must be a JSON object with a string `alg`. `crit` is refused (RFC 7515 §4.1.11: we
/// understand no extension). `jku`, `x5u`, `jwk` and `x5c` are ignored: keys only ever come from
/// the API's configured sources.
pub(crate) fn parse(token: &str) -> Result<RawToken<'_>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!(
            "token is {} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() {
        return Err(malformed("empty header or payload"));
    }
    if !is_b64url(h) || !is_b64url(p) || !is_b64url(s) {
        return Err(malformed("a part is not unpadded base64url"));
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|e| malformed(format!("header is not base64url: {e}")))?;
    let header = strict_object(&header_bytes)
        .map_err(|e| malformed(format!("header is not a JSON object: {e}")))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        Some(_) => return Err(malformed("alg header is not a string")),
        None => return Err(malformed("no alg header")),
    };
    if header.contains_key("crit") {
        return Err(malformed("crit header: no JWS extension is supported"));
    }
    let kid = match header.get("kid") {
        None => Kid::Absent,
        Some(Value::String(k)) => Kid::String(k.clone()),
        Some(_) => Kid::NotString,
    };
    Ok(RawToken {
        signing_input: &token[..h.len() + 1 + p.len()],
        payload_b64: p,
        signature_b64: s,
        alg,
        kid,
    })
}

/// Decodes the payload into a claims object.
pub(crate) fn decode_claims(payload_b64: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|e| malformed(format!("payload is not base64url: {e}")))?;
    strict_object(&bytes).map_err(|e| malformed(format!("payload is not a JSON object: {e}")))
}

/// Reads a JSON object strictly: a member name that appears twice in any object, at any depth,
/// is an error. RFC 7515 §5.2 and RFC 7519 §4 let a verifier either reject duplicate names or
/// take the last one; taking one silently lets two parsers (ours and the upstream's, or a WAF's)
/// read different values from the same signed token, so we reject. Nesting is bounded by
/// serde_json's recursion limit (128), so deep documents are an error, not a stack overflow.
fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(m))) => Ok(m),
        Ok(_) => Err("not an object".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON value whose objects have no duplicate member names.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if obj.contains_key(&name) {
                return Err(de::Error::custom(format!("duplicate member name {name:?}")));
            }
            obj.insert(name, v);
        }
        Ok(Value::Object(obj))
    }
}

/// The registered time claims (unix seconds). `None` means absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeClaims {
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
}

impl TimeClaims {
    /// Reads `exp`, `iat`, `nbf`. A missing claim is `None`; any present value must be a JSON
    /// number (fractions are truncated toward zero, as Tyk does), otherwise the token is malformed.
    pub(crate) fn from_claims(claims: &Map<String, Value>) -> Result<Self, JwtError> {
        Ok(Self {
            exp: numeric_claim(claims, "exp")?,
            iat: numeric_claim(claims, "iat")?,
            nbf: numeric_claim(claims, "nbf")?,
        })
    }
}

fn numeric_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                // A float: truncate toward zero; `as` saturates out-of-range values.
                #[allow(clippy::cast_possible_truncation)]
                let v = n.as_f64().map_or(0, |f| f.trunc() as i64);
                Ok(Some(v))
            }
        }
        Some(_) => Err(malformed(format!("{name} claim is not a number"))),
    }
}

/// Per-API leeways, in seconds (Tyk's `jwt_*_validation_skew`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skews {
    /// `jwt_expires_at_validation_skew`.
    pub expires_at: u64,
    /// `jwt_issued_at_validation_skew`.
    pub issued_at: u64,
    /// `jwt_not_before_validation_skew`.
    pub not_before: u64,
}

fn as_i64(skew: u64) -> i64 {
    i64::try_from(skew).unwrap_or(i64::MAX)
}

/// Tyk's `timeValidateJWTClaims`: with `now` in unix seconds,
/// - `exp` passes when `now - skew < exp`;
/// - `iat` passes when `now + skew >= iat`;
/// - `nbf` passes when `now + skew >= nbf`;
///
/// and a missing claim passes. When several fail, the reported one follows Tyk (the last checked
/// wins): `nbf`, then `iat`, then `exp`.
pub(crate) fn check_time(t: &TimeClaims, now: i64, skews: &Skews) -> Result<(), JwtError> {
    let mut err = None;
    if let Some(exp) = t.exp
        && now.saturating_sub(as_i64(skews.expires_at)) >= exp
    {
        err = Some(JwtError::Expired {
            exp,
            now,
            skew: skews.expires_at,
        });
    }
    if let Some(iat) = t.iat
        && now.saturating_add(as_i64(skews.issued_at)) < iat
    {
        err = Some(JwtError::UsedBeforeIssued {
            iat,
            now,
            skew: skews.issued_at,
        });
    }
    if let Some(nbf) = t.nbf
        && now.saturating_add(as_i64(skews.not_before)) < nbf
    {
        err = Some(JwtError::NotValidYet {
            nbf,
            now,
            skew: skews.not_before,
        });
    }
    err.map_or(Ok(()), Err)
}

/// `iss` must be a string equal to one of `allowed` (exact, case-sensitive). Empty `allowed`
/// accepts anything.
pub(crate) fn check_issuer(
    claims: &Map<String, Value>,
    allowed: &[String],
) -> Result<(), JwtError> {
    if allowed.is_empty() {
        return Ok(());
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if allowed.iter().any(|a| a == iss) => Ok(()),
        other => Err(JwtError::InvalidIssuer {
            iss: other.map(Value::to_string),
        }),
    }
}

/// `aud` (a string or an array of strings) must contain one of `allowed`. Empty `allowed` accepts
/// anything. Non-string array members are ignored.
pub(crate) fn check_audience(
    claims: &Map<String, Value>,
    allowed: &[String],
) -> Result<(), JwtError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let aud = claims.get("aud");
    let ok = match aud {
        Some(Value::String(a)) => allowed.iter().any(|x| x == a),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| allowed.iter().any(|x| x == a)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(JwtError::InvalidAudience {
            aud: aud.map(Value::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn tok(header: &Value, claims: &Value) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    #[test]
    fn parses_parts_and_header() {
        let t = tok(&json!({"alg": "RS256", "kid": "k1"}), &json!({"sub": "a"}));
        let r = parse(&t).unwrap();
        assert_eq!(r.alg, "RS256");
        assert_eq!(r.kid, Kid::String("k1".into()));
        assert_eq!(r.signature_b64, "c2ln");
        assert_eq!(
            format!("{}.{}", r.signing_input, r.signature_b64),
            t,
            "signing input is header.payload"
        );
        assert_eq!(decode_claims(r.payload_b64).unwrap()["sub"], json!("a"));
    }

    #[test]
    fn kid_forms() {
        let k = |h: Value| parse(&tok(&h, &json!({}))).unwrap().kid;
        assert_eq!(k(json!({"alg": "RS256"})), Kid::Absent);
        assert_eq!(k(json!({"alg": "RS256", "kid": 5})), Kid::NotString);
        assert_eq!(k(json!({"alg": "RS256", "kid": null})), Kid::NotString);
        assert_eq!(k(json!({"alg": "RS256", "kid": ["a"]})), Kid::NotString);
    }

    #[test]
    fn malformed_shapes() {
        let good_h = b64(&json!({"alg": "RS256"}));
        let good_p = b64(&json!({}));
        let cases = [
            String::new(),
            "123".to_owned(),
            "a.b".to_owned(),
            format!("{good_h}.{good_p}.sig.extra"),
            format!("{good_h}.{good_p}.sig.a.b"), // JWE shape
            format!(".{good_p}.sig"),
            format!("{good_h}..sig"),
            format!("{good_h}=.{good_p}.sig"),
            format!("{good_h}.{good_p}.si+g"),
            format!("{}.{good_p}.sig", b64(&json!([1]))),
            format!("{}.{good_p}.sig", b64(&json!({"alg": 256}))),
            format!("{}.{good_p}.sig", b64(&json!({"typ": "JWT"}))),
            format!(
                "{}.{good_p}.sig",
                b64(&json!({"alg": "RS256", "crit": ["b64"]}))
            ),
            format!("{}.{good_p}.sig", URL_SAFE_NO_PAD.encode(b"not json")),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for c in cases {
            let e = parse(&c).unwrap_err();
            assert_eq!(e.reason(), "malformed", "{c:.60}: {e:?}");
        }
        // An empty signature parses (alg none is refused later, with its own message).
        assert!(parse(&format!("{good_h}.{good_p}.")).is_ok());
        assert!(decode_claims(&b64(&json!([1]))).is_err());
        assert!(decode_claims("%%%").is_err());
    }

    #[test]
    fn duplicate_names_are_refused_at_any_depth() {
        let enc = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());
        for h in [
            r#"{"alg":"none","alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"a"}"#,
            r#"{"alg":"RS256","x":[{"a":1,"a":1}]}"#,
        ] {
            let t = format!("{}.{}.c2ln", enc(h), enc("{}"));
            let e = parse(&t).unwrap_err();
            assert!(
                e.detail().contains("duplicate member name"),
                "{}",
                e.detail()
            );
        }
        let e = decode_claims(&enc(r#"{"sub":"a","sub":"b"}"#)).unwrap_err();
        assert!(
            e.detail().contains("duplicate member name"),
            "{}",
            e.detail()
        );
        // The same names in different objects are fine, and values keep their JSON types.
        let c = decode_claims(&enc(
            r#"{"a":{"x":1},"b":{"x":-2.5},"c":[null,true,"s",18446744073709551615]}"#,
        ))
        .unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"a":{"x":1},"b":{"x":-2.5},"c":[null,true,"s",18446744073709551615u64]})
        );
    }

    #[test]
    fn nesting_is_bounded_without_overflowing_the_stack() {
        let enc = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());
        let ok = format!(r#"{{"d":{}{}}}"#, "[".repeat(120), "]".repeat(120));
        assert!(decode_claims(&enc(&ok)).is_ok());
        let deep = format!(r#"{{"d":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let e = decode_claims(&enc(&deep)).unwrap_err();
        assert!(e.detail().contains("recursion limit"), "{}", e.detail());
    }

    #[test]
    fn time_claims_must_be_numbers() {
        let c = |v: Value| TimeClaims::from_claims(v.as_object().unwrap());
        assert_eq!(c(json!({})).unwrap(), TimeClaims::default());
        let t = c(json!({"exp": 10, "iat": 5.9, "nbf": -3.5})).unwrap();
        assert_eq!((t.exp, t.iat, t.nbf), (Some(10), Some(5), Some(-3)));
        assert_eq!(
            c(json!({"exp": 18446744073709551615u64})).unwrap().exp,
            Some(i64::MAX)
        );
        assert_eq!(c(json!({"exp": 1e300})).unwrap().exp, Some(i64::MAX));
        for bad in [
            json!({"exp": "1700000000"}),
            json!({"iat": null}),
            json!({"nbf": true}),
            json!({"exp": [1]}),
        ] {
            assert_eq!(c(bad).unwrap_err().reason(), "malformed");
        }
    }

    const NOW: i64 = 1_700_000_000;

    fn exp(offset: i64, skew: u64) -> Result<(), JwtError> {
        let t = TimeClaims {
            exp: Some(NOW + offset),
            ..TimeClaims::default()
        };
        check_time(
            &t,
            NOW,
            &Skews {
                expires_at: skew,
                ..Skews::default()
            },
        )
    }
    fn iat(offset: i64, skew: u64) -> Result<(), JwtError> {
        let t = TimeClaims {
            iat: Some(NOW + offset),
            ..TimeClaims::default()
        };
        check_time(
            &t,
            NOW,
            &Skews {
                issued_at: skew,
                ..Skews::default()
            },
        )
    }
    fn nbf(offset: i64, skew: u64) -> Result<(), JwtError> {
        let t = TimeClaims {
            nbf: Some(NOW + offset),
            ..TimeClaims::default()
        };
        check_time(
            &t,
            NOW,
            &Skews {
                not_before: skew,
                ..Skews::default()
            },
        )
    }

    /// Tyk `TestTimeValidateClaims`, "expires at" table.
    #[test]
    fn tyk_time_validate_claims_expires_at() {
        assert!(exp(1, 0).is_ok(), "after now - valid");
        assert!(exp(1, 1).is_ok(), "after now add skew - valid");
        assert!(exp(-1, 1000).is_ok(), "before now with skew - valid");
        assert_eq!(
            exp(-1, 1).unwrap_err(),
            JwtError::Expired {
                exp: NOW - 1,
                now: NOW,
                skew: 1
            },
            "before now - invalid"
        );
        // The boundary: exp == now is expired (now < exp is required).
        assert!(exp(0, 0).is_err());
        assert!(exp(-1, 2).is_ok());
    }

    /// Tyk `TestTimeValidateClaims`, "issued at" table.
    #[test]
    fn tyk_time_validate_claims_issued_at() {
        assert!(iat(-1, 0).is_ok(), "before now - valid jwt");
        assert!(
            iat(1, 1000).is_ok(),
            "after now with large skew - valid jwt"
        );
        assert!(iat(-3, 2).is_ok(), "before now, add skew - valid jwt");
        assert!(iat(1, 1).is_ok(), "after now, add skew - valid jwt");
        assert_eq!(
            iat(60, 0).unwrap_err().public_message(),
            "Key not authorized: token used before issued",
            "after now, no skew - invalid jwt"
        );
        assert!(iat(0, 0).is_ok(), "iat == now passes");
    }

    /// Tyk `TestTimeValidateClaims`, "not before" table.
    #[test]
    fn tyk_time_validate_claims_not_before() {
        assert!(nbf(-1, 0).is_ok(), "not before now - valid jwt");
        assert!(nbf(1, 1).is_ok(), "after now, add skew - valid jwt");
        assert!(nbf(1, 1000).is_ok(), "after now with huge skew - valid_jwt");
        assert_eq!(
            nbf(1, 0).unwrap_err().public_message(),
            "Key not authorized: token is not valid yet",
            "after now - invalid jwt"
        );
        assert!(nbf(0, 0).is_ok(), "nbf == now passes");
    }

    #[test]
    fn missing_claims_pass_and_tyk_precedence_when_several_fail() {
        assert!(check_time(&TimeClaims::default(), NOW, &Skews::default()).is_ok());
        let all_bad = TimeClaims {
            exp: Some(NOW - 10),
            iat: Some(NOW + 10),
            nbf: Some(NOW + 10),
        };
        assert_eq!(
            check_time(&all_bad, NOW, &Skews::default())
                .unwrap_err()
                .reason(),
            "not_valid_yet"
        );
        let exp_iat = TimeClaims {
            nbf: None,
            ..all_bad
        };
        assert_eq!(
            check_time(&exp_iat, NOW, &Skews::default())
                .unwrap_err()
                .reason(),
            "used_before_issued"
        );
        // exp 0 is 1970: expired (unlike Go's zero-value quirk, which treats it as absent).
        let zero = TimeClaims {
            exp: Some(0),
            ..TimeClaims::default()
        };
        assert!(check_time(&zero, NOW, &Skews::default()).is_err());
        // Huge skews saturate rather than overflow.
        let s = Skews {
            expires_at: u64::MAX,
            issued_at: u64::MAX,
            not_before: u64::MAX,
        };
        assert!(check_time(&all_bad, NOW, &s).is_ok());
    }

    #[test]
    fn issuer() {
        let allowed = vec!["https://idp.example/".to_owned(), "other".to_owned()];
        let c = |v: Value| check_issuer(v.as_object().unwrap(), &allowed);
        assert!(c(json!({"iss": "other"})).is_ok());
        assert!(c(json!({"iss": "https://idp.example/"})).is_ok());
        for bad in [
            json!({}),
            json!({"iss": "https://idp.example"}),
            json!({"iss": "OTHER"}),
            json!({"iss": ["other"]}),
            json!({"iss": null}),
        ] {
            assert_eq!(
                c(bad).unwrap_err().public_message(),
                "Key not authorized: invalid issuer"
            );
        }
        assert!(check_issuer(json!({}).as_object().unwrap(), &[]).is_ok());
    }

    #[test]
    fn audience_string_or_array_any_match() {
        let allowed = vec!["api://a".to_owned(), "api://b".to_owned()];
        let c = |v: Value| check_audience(v.as_object().unwrap(), &allowed);
        assert!(c(json!({"aud": "api://b"})).is_ok());
        assert!(c(json!({"aud": ["x", "api://a"]})).is_ok());
        assert!(c(json!({"aud": [1, "api://a"]})).is_ok());
        for bad in [
            json!({}),
            json!({"aud": "x"}),
            json!({"aud": []}),
            json!({"aud": ["x", "y"]}),
            json!({"aud": 1}),
            json!({"aud": null}),
        ] {
            assert_eq!(
                c(bad).unwrap_err().public_message(),
                "Key not authorized: invalid audience"
            );
        }
        assert!(check_audience(json!({}).as_object().unwrap(), &[]).is_ok());
    }
}
