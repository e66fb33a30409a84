//! Hostile tokens (issue 8, part 1): a table of attacks against validators built the way the
//! gateway builds them (`JwtValidator::from_api` with a real API definition; keys from a JWKS
//! served on 127.0.0.1 or from `jwt_source`). Each attack must be refused with its specific
//! error, 401 (never a 5xx: the one 503 is "IdP unreachable", tested in `errors.rs`), and no
//! panic. Where an attack relies on the token's own key material, the test also checks that the
//! attacker's URL was never fetched and that no signature was checked when none should be.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use gatehouse_jwt::{JwtError, MAX_TOKEN_BYTES, unix_now};
use serde_json::{Value, json};

use crate::confusion::pem as cert;
use crate::support::*;

const SECRET: &[u8] = b"hostile-tests-hmac-secret-32-byt";

/// What a case must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// `JwtError::reason()` of the refusal (all are 401).
    Refused(&'static str),
    /// Accepted (documented leniency, e.g. a fractional `exp`).
    Accepted,
}
use Want::{Accepted, Refused};

/// Which validator a case runs against.
#[derive(Debug, Clone, Copy)]
enum Api {
    /// `rsa`, keys from the JWKS (`k1` = RSA 0, `ec` = P-256 0).
    Rsa,
    /// `ecdsa`, same JWKS.
    Ecdsa,
    /// `hmac`, secret `SECRET` in `jwt_source`.
    Hmac,
}

struct Case {
    name: String,
    api: Api,
    token: String,
    want: Want,
}

fn case(name: impl Into<String>, api: Api, token: String, want: Want) -> Case {
    Case {
        name: name.into(),
        api,
        token,
        want,
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token whose header and payload are exactly these JSON texts (so they may hold duplicate
/// names, odd spacing, or be nested), signed by `key` with `alg`.
fn raw_signed(header: &str, payload: &str, key: K, alg: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A token with this header, HMAC-signed (the header's `alg`) with `secret`.
fn hs_with_secret(header: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims_text().as_bytes())
    );
    let alg = header["alg"].as_str().unwrap();
    format!("{input}.{}", b64(&hmac_sign(alg, secret, input.as_bytes())))
}

fn rs(header: &Value, claims: &Value) -> String {
    token_with_header(header, K::Rsa(0), claims)
}

fn claims_text() -> String {
    claims().to_string()
}

/// `claims()` with `patch` applied (a `null` removes the claim).
fn claims_with(patch: Value) -> Value {
    let mut c = claims();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// Replaces the signature part of `token` with `sig`.
fn with_signature(token: &str, sig: &str) -> String {
    let cut = token.rfind('.').unwrap();
    format!("{}.{sig}", &token[..cut])
}

fn cases(evil_url: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let good_rs = rs(&json!({"alg": "RS256", "kid": "k1"}), &claims());
    let good_es = token("ES256", Some("ec"), K::Ec256(0), &claims());
    let good_hs = token("HS256", None, K::Hmac(SECRET), &claims());
    // The baselines: the same shapes, untouched, pass.
    out.push(case("baseline RS256", Api::Rsa, good_rs.clone(), Accepted));
    out.push(case(
        "baseline ES256",
        Api::Ecdsa,
        good_es.clone(),
        Accepted,
    ));
    out.push(case("baseline HS256", Api::Hmac, good_hs.clone(), Accepted));

    // ── alg: none in every spelling, signed or not, on every kind of API ──
    for alg in [
        "none",
        "None",
        "NONE",
        "nOnE",
        "none ",
        " none",
        "none\u{0}",
        "",
        "null",
    ] {
        for api in [Api::Rsa, Api::Ecdsa, Api::Hmac] {
            let h = json!({"alg": alg, "kid": "k1"});
            for sig in [&b""[..], b"x"] {
                out.push(case(
                    format!("alg {alg:?} sig {} bytes on {api:?}", sig.len()),
                    api,
                    assemble(&h, &claims(), sig),
                    Refused("unexpected_signing_method"),
                ));
            }
        }
    }
    // Names are case-sensitive and exact; unsupported names are refused the same way.
    for alg in [
        "rs256",
        "RS256 ",
        "RS 256",
        "HS256\u{0}",
        "ES512",
        "ES256K",
        "RSA1_5",
    ] {
        out.push(case(
            format!("alg {alg:?}"),
            Api::Rsa,
            assemble(&json!({"alg": alg, "kid": "k1"}), &claims(), b"sig"),
            Refused("unexpected_signing_method"),
        ));
    }

    // ── HS/RS and HS/ES confusion: the public key used as an HMAC secret ──
    let rsa_pem = K::Rsa(0).public_pem();
    let rsa_jwk = K::Rsa(0).jwk("k1").to_string();
    let ec_pem = K::Ec256(0).public_pem();
    let ec_der = K::Ec256(0).public_der();
    let ec_jwk = K::Ec256(0).jwk("ec").to_string();
    let confusions: [(Api, &str, &[u8]); 5] = [
        (Api::Rsa, "k1", rsa_pem.as_bytes()),
        (Api::Rsa, "k1", rsa_jwk.as_bytes()),
        (Api::Ecdsa, "ec", ec_pem.as_bytes()),
        (Api::Ecdsa, "ec", &ec_der),
        (Api::Ecdsa, "ec", ec_jwk.as_bytes()),
    ];
    for (api, kid, secret) in confusions {
        for alg in ["HS256", "HS384", "HS512"] {
            let h = json!({"alg": alg, "kid": kid});
            out.push(case(
                format!("{alg} with the public key of {api:?} as secret"),
                api,
                hs_with_secret(&h, secret),
                Refused("unexpected_signing_method"),
            ));
        }
    }
    // And the other way: an RS256/ES256 token on the hmac API.
    out.push(case(
        "RS256 on the hmac API",
        Api::Hmac,
        good_rs.clone(),
        Refused("unexpected_signing_method"),
    ));
    out.push(case(
        "ES256 on the hmac API",
        Api::Hmac,
        good_es.clone(),
        Refused("unexpected_signing_method"),
    ));

    // ── kid values that are paths, SQL, huge, or not strings ──
    let huge_kid = "k".repeat(20_000);
    for kid in [
        "../../../../../../etc/passwd",
        "/dev/null",
        "file:///etc/passwd",
        "k1/../k1",
        "' OR '1'='1",
        "k1' --",
        "k1\u{0}",
        "K1",
        " k1",
        "${jndi:ldap://127.0.0.1/a}",
        huge_kid.as_str(),
    ] {
        out.push(case(
            format!("kid {kid:.40?}"),
            Api::Rsa,
            rs(&json!({"alg": "RS256", "kid": kid}), &claims()),
            Refused("unknown_kid"),
        ));
    }
    for kid in [
        json!(1),
        json!(-1.5),
        json!(true),
        json!(null),
        json!(["k1"]),
        json!({"kid": "k1"}),
    ] {
        out.push(case(
            format!("kid {kid}"),
            Api::Rsa,
            rs(&json!({"alg": "RS256", "kid": kid}), &claims()),
            Refused("kid_not_string"),
        ));
    }
    // With a configured secret the kid plays no part (Tyk), so a hostile kid changes nothing.
    out.push(case(
        "path kid on the hmac API",
        Api::Hmac,
        token_with_header(
            &json!({"alg": "HS256", "kid": "../../etc/passwd"}),
            K::Hmac(SECRET),
            &claims(),
        ),
        Accepted,
    ));

    // ── jku / x5u / x5c / jwk: the token bringing its own key ──
    let evil_jwk = K::Rsa(2).jwk("k1");
    let evil_cert = STANDARD.encode(cert::cert_for(&K::Rsa(2).public_der()));
    let own_key_headers = [
        json!({"jku": evil_url}),
        json!({"x5u": evil_url}),
        json!({"jwk": evil_jwk}),
        json!({"x5c": [evil_cert]}),
        json!({"jku": evil_url, "x5u": evil_url, "jwk": evil_jwk, "x5c": [evil_cert]}),
    ];
    for extra in &own_key_headers {
        let mut h = extra.clone();
        h["alg"] = json!("RS256");
        // Signed by the attacker's key, naming the real kid: the real key refuses it.
        h["kid"] = json!("k1");
        out.push(case(
            format!("own key {extra:.60} kid k1"),
            Api::Rsa,
            token_with_header(&h, K::Rsa(2), &claims()),
            Refused("bad_signature"),
        ));
        // Naming a kid only the attacker's set has.
        h["kid"] = json!("evil");
        out.push(case(
            format!("own key {extra:.60} kid evil"),
            Api::Rsa,
            token_with_header(&h, K::Rsa(2), &claims()),
            Refused("unknown_kid"),
        ));
        // No kid: every configured key is tried, none verifies.
        h.as_object_mut().unwrap().remove("kid");
        out.push(case(
            format!("own key {extra:.60} no kid"),
            Api::Rsa,
            token_with_header(&h, K::Rsa(2), &claims()),
            Refused("bad_signature"),
        ));
        // The same headers on a token the real key signed are harmless (ignored, not used).
        h["kid"] = json!("k1");
        out.push(case(
            format!("own key {extra:.60} real signature"),
            Api::Rsa,
            token_with_header(&h, K::Rsa(0), &claims()),
            Accepted,
        ));
    }

    // ── crit (RFC 7515 §4.1.11): no extension is understood, so any crit is refused ──
    for crit in [
        json!(["b64"]),
        json!(["exp"]),
        json!(["http://example.invalid/unknown"]),
        json!([]),
        json!("b64"),
        json!(null),
    ] {
        let mut h = json!({"alg": "RS256", "kid": "k1", "b64": false});
        h["crit"] = crit.clone();
        out.push(case(
            format!("crit {crit}"),
            Api::Rsa,
            rs(&h, &claims()),
            Refused("malformed"),
        ));
    }

    // ── duplicate names: ambiguous, refused (RFC 7515 §5.2, RFC 7519 §4 allow it) ──
    let c = claims_text();
    let dup_headers = [
        r#"{"alg":"none","alg":"RS256","kid":"k1"}"#,
        r#"{"alg":"RS256","alg":"RS256","kid":"k1"}"#,
        r#"{"alg":"RS256","kid":"evil","kid":"k1"}"#,
        r#"{"alg":"RS256","kid":"k1","x":{"a":1,"a":2}}"#,
    ];
    for h in dup_headers {
        out.push(case(
            format!("duplicate header {h}"),
            Api::Rsa,
            raw_signed(h, &c, K::Rsa(0), "RS256"),
            Refused("malformed"),
        ));
    }
    let inner = c.trim_start_matches('{').trim_end_matches('}');
    let exp = unix_now() + 600;
    let dup_claims = [
        format!(r#"{{"sub":"admin",{inner}}}"#),
        format!(r#"{{{inner},"pol":"platinum"}}"#),
        format!(r#"{{{inner},"exp":{exp}}}"#),
        format!(r#"{{{inner},"realm":{{"roles":["a"],"roles":["admin"]}}}}"#),
    ];
    for p in &dup_claims {
        out.push(case(
            format!("duplicate claims {p:.50}"),
            Api::Rsa,
            raw_signed(r#"{"alg":"RS256","kid":"k1"}"#, p, K::Rsa(0), "RS256"),
            Refused("malformed"),
        ));
    }

    // ── deeply nested or huge claims ──
    // serde_json stops at 128 levels: a recursion error, not a stack overflow.
    for (depth, want) in [
        (100, Accepted),
        (129, Refused("malformed")),
        (5_000, Refused("malformed")),
    ] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let p = format!(r#"{{{inner},"deep":{nested}}}"#);
        out.push(case(
            format!("claims nested {depth} deep"),
            Api::Rsa,
            raw_signed(r#"{"alg":"RS256","kid":"k1"}"#, &p, K::Rsa(0), "RS256"),
            want,
        ));
    }
    let nested_obj = format!("{}1{}", r#"{"a":"#.repeat(3_000), "}".repeat(3_000));
    out.push(case(
        "header nested 3000 objects deep",
        Api::Rsa,
        raw_signed(
            &format!(r#"{{"alg":"RS256","kid":"k1","x":{nested_obj}}}"#),
            &c,
            K::Rsa(0),
            "RS256",
        ),
        Refused("malformed"),
    ));
    // Big but under the limit: verified like any token.
    let pad = "x".repeat(MAX_TOKEN_BYTES / 2);
    out.push(case(
        "claims of 16 KiB",
        Api::Rsa,
        rs(
            &json!({"alg": "RS256", "kid": "k1"}),
            &claims_with(json!({"pad": pad})),
        ),
        Accepted,
    ));
    // Over the limit: refused before any parsing.
    let big = "x".repeat(100 * 1024);
    out.push(case(
        "token of 100 KiB (signed)",
        Api::Rsa,
        rs(
            &json!({"alg": "RS256", "kid": "k1"}),
            &claims_with(json!({"pad": big})),
        ),
        Refused("malformed"),
    ));
    out.push(case(
        "token of 100 KiB (junk)",
        Api::Hmac,
        format!(
            "{}.{}.{}",
            "e".repeat(50_000),
            "e".repeat(50_000),
            "e".repeat(2_400)
        ),
        Refused("malformed"),
    ));

    // ── bad base64 and padding variants ──
    let parts: Vec<&str> = good_rs.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let std_sig = STANDARD.encode(URL_SAFE_NO_PAD.decode(s).unwrap());
    let padded_sig = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(s).unwrap());
    let bad_b64 = [
        ("padding on the header", format!("{h}==.{p}.{s}")),
        ("padding on the payload", format!("{h}.{p}=.{s}")),
        ("padded signature", format!("{h}.{p}.{padded_sig}")),
        ("standard alphabet signature", format!("{h}.{p}.{std_sig}")),
        (
            "space in the payload",
            format!("{h}.{} {}.{s}", &p[..10], &p[10..]),
        ),
        (
            "newline in the signature",
            format!("{h}.{p}.{}\n{}", &s[..10], &s[10..]),
        ),
        ("leading space", format!(" {good_rs}")),
        ("trailing newline", format!("{good_rs}\n")),
        ("non-ASCII", format!("{h}.{p}é.{s}")),
        (
            "percent-encoded",
            format!("{h}.{p}.{}%3D", &s[..s.len() - 1]),
        ),
        (
            "one char short header",
            format!("{}.{p}.{s}", &h[..h.len() - 1]),
        ),
        ("4 dots", format!("{h}.{p}.{s}.")),
        ("2 parts", format!("{h}.{p}")),
        ("empty header", format!(".{p}.{s}")),
        ("empty payload", format!("{h}..{s}")),
        ("only dots", "..".to_owned()),
        ("empty", String::new()),
        ("Bearer prefix left on", format!("Bearer {good_rs}")),
        (
            "header is an array",
            format!("{}.{p}.{s}", b64(b"[\"RS256\"]")),
        ),
        (
            "header is a string",
            format!("{}.{p}.{s}", b64(b"\"RS256\"")),
        ),
        ("header is null", format!("{}.{p}.{s}", b64(b"null"))),
        (
            "header not UTF-8",
            format!("{}.{p}.{s}", b64(&[0xff, 0xfe, b'{', b'}'])),
        ),
        (
            "header with a BOM",
            format!(
                "{}.{p}.{s}",
                b64("\u{feff}{\"alg\":\"RS256\",\"kid\":\"k1\"}".as_bytes())
            ),
        ),
        (
            "header JSON with trailing garbage",
            format!("{}.{p}.{s}", b64(br#"{"alg":"RS256","kid":"k1"}x"#)),
        ),
    ];
    for (name, t) in bad_b64 {
        // The BOM and standard-alphabet variants fail at the first check they meet.
        out.push(case(name, Api::Rsa, t, Refused("malformed")));
    }
    // Non-canonical base64: the last character of the signature differs only in its unused
    // bits. Decoders that ignore those bits would accept a second spelling of the same token.
    let last = s.as_bytes()[s.len() - 1];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|c| *c == last).unwrap();
    // 256-byte signature: 342 characters, the last one carries 2 bits; flip a low (unused) bit.
    let twin = alphabet[idx ^ 1] as char;
    out.push(case(
        "signature with non-zero trailing bits",
        Api::Rsa,
        format!("{h}.{p}.{}{twin}", &s[..s.len() - 1]),
        Refused("bad_signature"),
    ));
    // The same in the header and the payload, HMAC-signed over the non-canonical text itself so
    // that only the decoding can refuse it. `{"alg":"HS256","kid":"a"}` is 25 bytes: 34
    // characters, the last carrying 4 unused bits.
    let twiddle = |part: &str| -> String {
        let last = part.as_bytes()[part.len() - 1];
        let idx = alphabet.iter().position(|c| *c == last).unwrap();
        format!("{}{}", &part[..part.len() - 1], alphabet[idx ^ 1] as char)
    };
    let h25 = b64(br#"{"alg":"HS256","kid":"a"}"#);
    let p_odd = b64(br#"{"sub":"user-1"}"#); // 16 bytes: 22 characters, 4 unused bits
    for (name, hh, pp) in [
        (
            "header with non-zero trailing bits",
            twiddle(&h25),
            p_odd.clone(),
        ),
        (
            "payload with non-zero trailing bits",
            h25.clone(),
            twiddle(&p_odd),
        ),
    ] {
        let input = format!("{hh}.{pp}");
        let sig = hmac_sign("HS256", SECRET, input.as_bytes());
        out.push(case(
            name,
            Api::Hmac,
            format!("{input}.{}", b64(&sig)),
            Refused("malformed"),
        ));
    }
    // ...while the canonical spelling of that token verifies.
    let input = format!("{h25}.{p_odd}");
    let sig = hmac_sign("HS256", SECRET, input.as_bytes());
    out.push(case(
        "canonical twin of the above",
        Api::Hmac,
        format!("{input}.{}", b64(&sig)),
        Accepted,
    ));

    // ── exp / nbf / iat types and ranges ──
    let now = unix_now();
    let time_cases = [
        (
            json!({"exp": (now + 600).to_string()}),
            Refused("malformed"),
        ),
        (
            json!({"exp": format!("{}", now + 600) + ".0"}),
            Refused("malformed"),
        ),
        (json!({"exp": null}), Refused("malformed")),
        (json!({"exp": true}), Refused("malformed")),
        (json!({"exp": [now + 600]}), Refused("malformed")),
        (json!({"exp": {"$date": now + 600}}), Refused("malformed")),
        (json!({"nbf": "0"}), Refused("malformed")),
        (json!({"iat": "now"}), Refused("malformed")),
        // A NumericDate may be fractional (RFC 7519 §2): accepted, truncated.
        (json!({"exp": now as f64 + 600.5}), Accepted),
        (json!({"exp": now as f64 - 0.5}), Refused("expired")),
        // Far future: the IdP's choice; stored saturated, no overflow.
        (json!({"exp": i64::MAX}), Accepted),
        (json!({"exp": u64::MAX}), Accepted),
        (json!({"exp": 1e300}), Accepted),
        // Far past and negative.
        (json!({"exp": 0}), Refused("expired")),
        (json!({"exp": -1}), Refused("expired")),
        (json!({"exp": i64::MIN}), Refused("expired")),
        (json!({"exp": -1e300}), Refused("expired")),
        (json!({"iat": i64::MAX}), Refused("used_before_issued")),
        (json!({"nbf": 1e300}), Refused("not_valid_yet")),
        (json!({"nbf": i64::MIN, "iat": i64::MIN}), Accepted),
    ];
    for (patch, want) in time_cases {
        // Here `null` is the claim's value (not "remove").
        let mut claims = claims();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        out.push(case(
            format!("time claims {patch}"),
            Api::Rsa,
            rs(&json!({"alg": "RS256", "kid": "k1"}), &claims),
            want,
        ));
    }
    // No exp at all: accepted, as Tyk does (the IdP decides lifetimes; documented in SECURITY.md).
    out.push(case(
        "no exp, no iat",
        Api::Rsa,
        rs(
            &json!({"alg": "RS256", "kid": "k1"}),
            &claims_with(json!({"exp": null, "iat": null})),
        ),
        Accepted,
    ));
    // exp written with an exponent or as a big integer literal in the raw JSON.
    for lit in [
        "1e10",
        "9223372036854775808",
        "99999999999999999999999999",
        "-0",
    ] {
        let p = format!(r#"{{"sub":"user-1","exp":{lit}}}"#);
        let want = if lit == "-0" {
            Refused("expired")
        } else {
            Accepted
        };
        out.push(case(
            format!("exp literal {lit}"),
            Api::Rsa,
            raw_signed(r#"{"alg":"RS256","kid":"k1"}"#, &p, K::Rsa(0), "RS256"),
            want,
        ));
    }

    // ── signatures of the wrong length or form ──
    let raw_rs = URL_SAFE_NO_PAD.decode(s).unwrap();
    let es_sig = URL_SAFE_NO_PAD
        .decode(good_es.rsplit('.').next().unwrap())
        .unwrap();
    let hs_sig = URL_SAFE_NO_PAD
        .decode(good_hs.rsplit('.').next().unwrap())
        .unwrap();
    let mut der_es = vec![0x30, 0x44, 0x02, 0x20];
    der_es.extend_from_slice(&es_sig[..32]);
    der_es.extend_from_slice(&[0x02, 0x20]);
    der_es.extend_from_slice(&es_sig[32..]);
    let wrong_len: Vec<(&str, Api, &str, Vec<u8>)> = vec![
        ("RS256 empty", Api::Rsa, &good_rs, vec![]),
        ("RS256 1 byte", Api::Rsa, &good_rs, vec![0]),
        ("RS256 255 bytes", Api::Rsa, &good_rs, raw_rs[1..].to_vec()),
        (
            "RS256 257 bytes",
            Api::Rsa,
            &good_rs,
            [&[0u8][..], &raw_rs].concat(),
        ),
        ("RS256 doubled", Api::Rsa, &good_rs, raw_rs.repeat(2)),
        ("RS256 zeros", Api::Rsa, &good_rs, vec![0; 256]),
        ("RS256 all ones", Api::Rsa, &good_rs, vec![0xff; 256]),
        ("ES256 empty", Api::Ecdsa, &good_es, vec![]),
        ("ES256 63 bytes", Api::Ecdsa, &good_es, es_sig[1..].to_vec()),
        (
            "ES256 65 bytes",
            Api::Ecdsa,
            &good_es,
            [&es_sig[..], &[0]].concat(),
        ),
        // CVE-2022-21449 ("psychic signatures"): r = s = 0.
        ("ES256 r=s=0", Api::Ecdsa, &good_es, vec![0; 64]),
        ("ES256 DER instead of r||s", Api::Ecdsa, &good_es, der_es),
        (
            "ES256 as P-384 length",
            Api::Ecdsa,
            &good_es,
            es_sig.repeat(2)[..96].to_vec(),
        ),
        ("HS256 empty", Api::Hmac, &good_hs, vec![]),
        (
            "HS256 truncated to 16",
            Api::Hmac,
            &good_hs,
            hs_sig[..16].to_vec(),
        ),
        ("HS256 31 bytes", Api::Hmac, &good_hs, hs_sig[..31].to_vec()),
        (
            "HS256 33 bytes",
            Api::Hmac,
            &good_hs,
            [&hs_sig[..], &[0]].concat(),
        ),
        ("HS256 zeros", Api::Hmac, &good_hs, vec![0; 32]),
    ];
    for (name, api, base, sig) in wrong_len {
        out.push(case(
            format!("signature: {name}"),
            api,
            with_signature(base, &b64(&sig)),
            Refused("bad_signature"),
        ));
    }
    out
}

#[tokio::test]
async fn the_attack_table() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1"), (K::Ec256(0), "ec")]);
    // The attacker's key set, on the same loopback server: it must never be fetched.
    idp.serve("/evil", &[(K::Rsa(2), "k1"), (K::Rsa(2), "evil")]);
    let url = idp.url("/jwks");
    let rsa = setup(&api("rsa", &url));
    let ecdsa = setup(&api("ecdsa", &url));
    let hmac = setup(&api("hmac", &STANDARD.encode(SECRET)));
    wait_loaded(&rsa.cache, &url).await;
    wait_loaded(&ecdsa.cache, &url).await;

    let table = cases(&idp.url("/evil"));
    assert!(table.len() > 150, "{} cases", table.len());
    let mut failures = Vec::new();
    for c in &table {
        let v = match c.api {
            Api::Rsa => &rsa.v,
            Api::Ecdsa => &ecdsa.v,
            Api::Hmac => &hmac.v,
        };
        let r = within(v.validate(&c.token)).await;
        let got = match &r {
            Ok(_) => Accepted,
            Err(e) => {
                assert_eq!(
                    e.status().as_u16(),
                    401,
                    "{}: {} (only an unreachable IdP may give 503)",
                    c.name,
                    e.detail()
                );
                assert!(!e.public_message().is_empty());
                Refused(e.reason())
            }
        };
        if got != c.want {
            let detail = r.as_ref().err().map(JwtError::detail).unwrap_or_default();
            failures.push(format!(
                "{}: want {:?}, got {got:?} {detail:.200}",
                c.name, c.want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
    assert_eq!(idp.hits("/evil"), 0, "a token's own key URL was fetched");
    // Garbage kids caused at most one refetch (prefetch + one per refetch interval).
    // Two prefetches (one cache per validator here) and one refetch for the first unknown kid; the
    // other garbage kids are absorbed by the refetch interval.
    assert!(idp.hits("/jwks") <= 3, "{} JWKS fetches", idp.hits("/jwks"));
}

#[tokio::test]
async fn refusals_before_the_signature_cost_no_signature_check() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1")]);
    let s = setup(&api("rsa", &idp.url("/jwks")));
    wait_loaded(&s.cache, &idp.url("/jwks")).await;
    let huge = rs(
        &json!({"alg": "RS256", "kid": "k1"}),
        &claims_with(json!({"pad": "x".repeat(100 * 1024)})),
    );
    let crit = rs(
        &json!({"alg": "RS256", "kid": "k1", "crit": ["b64"]}),
        &claims(),
    );
    let dup = raw_signed(
        r#"{"alg":"RS256","alg":"RS256","kid":"k1"}"#,
        &claims_text(),
        K::Rsa(0),
        "RS256",
    );
    let none = assemble(&json!({"alg": "none"}), &claims(), b"");
    for t in [&huge, &crit, &dup, &none] {
        assert!(s.v.validate(t).await.is_err());
    }
    assert_eq!(s.v.signature_checks(), 0);
    let fetches = idp.hits("/jwks");
    assert_eq!(fetches, 1, "only the prefetch");
}

/// Every prefix and every single-character corruption of valid tokens is refused with a 401 and
/// never panics (a small deterministic fuzz next to the cargo-fuzz targets).
#[tokio::test]
async fn every_truncation_and_corruption_is_a_401() {
    let idp = Idp::start().await;
    idp.serve("/jwks", &[(K::Rsa(0), "k1"), (K::Ec256(0), "ec")]);
    let url = idp.url("/jwks");
    let rsa = setup(&api("rsa", &url));
    let ecdsa = setup(&api("ecdsa", &url));
    let hmac = setup(&api("hmac", &STANDARD.encode(SECRET)));
    wait_loaded(&rsa.cache, &url).await;
    let tokens = [
        (&rsa.v, token("RS256", Some("k1"), K::Rsa(0), &claims())),
        (&ecdsa.v, token("ES256", Some("ec"), K::Ec256(0), &claims())),
        (&hmac.v, token("HS256", None, K::Hmac(SECRET), &claims())),
    ];
    let mut checked = 0;
    for (v, t) in &tokens {
        assert!(v.validate(t).await.is_ok());
        for i in 0..t.len() {
            let cut = &t[..i];
            let e = v.validate(cut).await.unwrap_err();
            assert_eq!(e.status().as_u16(), 401, "prefix {i}: {}", e.detail());
            for repl in ['A', '.', '-', '='] {
                if t.as_bytes()[i] == repl as u8 {
                    continue;
                }
                let mut m = t.clone().into_bytes();
                m[i] = repl as u8;
                let m = String::from_utf8(m).unwrap();
                let e = v.validate(&m).await.unwrap_err();
                assert_eq!(
                    e.status().as_u16(),
                    401,
                    "byte {i} -> {repl}: {}",
                    e.detail()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
