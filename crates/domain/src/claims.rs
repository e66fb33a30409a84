//! Reading the claims of a verified JWT the way Tyk's JWT middleware reads them.
//!
//! Everything here works on the claims object of a token whose signature and time claims were
//! already checked (`serde_json::Map<String, Value>`). The rules reproduce Tyk's centralised JWT
//! mode (`gateway/mw_jwt.go`):
//!
//! - **Claim names** ([`string_claim`], [`lookup`]): the literal key is tried first, then, when the
//!   name contains dots, the dotted path through nested objects (`user.id` →
//!   `claims["user"]["id"]`). A literal key containing dots therefore beats the nested lookup
//!   (`TestJWTLiteralDotInClaimName`). For string claims (identity, policy) a literal key only wins
//!   when it holds a non-empty string, exactly like Tyk's `getClaimValue`.
//! - **Identity** ([`identity`]): `jwt_identity_base_field`, then `sub`. Only strings count: a
//!   number or object in the identity claim is treated as missing and the lookup falls through to
//!   `sub` (`TestJWTNestedClaimNonString`); numbers are deliberately **not** stringified, so the
//!   same token always maps to the same identity as in Tyk.
//! - **OAuth client id** ([`client_id`]): `clientId`, `cid`, `client_id` (Tyk's order), then `azp`
//!   (a Gatehouse addition for Keycloak and Auth0).
//! - **Scopes** ([`scopes`]): a string is split on spaces, an array keeps each element whole.
//! - **Policy claim** ([`policy_claim`]): a single string policy id, as Tyk reads it.

use serde_json::{Map, Value};

use crate::session::AuthzError;

/// The claims of a verified token.
pub type Claims = Map<String, Value>;

/// The claims Tyk reads the OAuth client id from, in Tyk's order (`oauthClientIDClaims`:
/// Keycloak's `clientId`, Okta's `cid`, Gluu's and newer Keycloak's `client_id`), followed by
/// `azp`, a Gatehouse addition (Keycloak and Auth0 put the client there).
pub const CLIENT_ID_CLAIMS: [&str; 4] = ["clientId", "cid", "client_id", "azp"];

/// The value of claim `name`: the literal key if present, otherwise (when `name` contains a dot)
/// the value at the dotted path through nested objects. `None` when neither exists.
///
/// This is the generic lookup (used for scopes); identity and policy claims use
/// [`string_claim`], which only lets a literal key win when it holds a non-empty string.
pub fn lookup<'a>(claims: &'a Claims, name: &str) -> Option<&'a Value> {
    claims.get(name).or_else(|| nested(claims, name))
}

/// The value at a dotted path (`a.b.c`), only when `name` contains a dot. Every step but the last
/// must be an object.
fn nested<'a>(claims: &'a Claims, name: &str) -> Option<&'a Value> {
    if !name.contains('.') {
        return None;
    }
    let mut parts = name.split('.');
    let first = parts.next()?;
    let mut current = claims.get(first)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A non-empty string claim, as Tyk's `getClaimValue` reads it: the literal key when it holds a
/// non-empty string, else the dotted path when it leads to a non-empty string.
pub fn string_claim<'a>(claims: &'a Claims, name: &str) -> Option<&'a str> {
    if let Some(Value::String(s)) = claims.get(name)
        && !s.is_empty()
    {
        return Some(s);
    }
    match nested(claims, name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// What a string claim holds, for callers that distinguish "empty" from "missing".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringClaim<'a> {
    /// A non-empty string.
    Value(&'a str),
    /// The literal key or the dotted path holds `""`.
    Empty,
    /// Something other than a string (number, bool, array, object) is there.
    NotAString,
    /// Nothing (or `null`) is there.
    Absent,
}

fn classify<'a>(claims: &'a Claims, name: &str) -> StringClaim<'a> {
    if let Some(s) = string_claim(claims, name) {
        return StringClaim::Value(s);
    }
    let candidates = [claims.get(name), nested(claims, name)];
    if candidates
        .iter()
        .any(|v| matches!(v, Some(Value::String(s)) if s.is_empty()))
    {
        return StringClaim::Empty;
    }
    if candidates
        .iter()
        .any(|v| matches!(v, Some(v) if !v.is_null()))
    {
        return StringClaim::NotAString;
    }
    StringClaim::Absent
}

/// The identity of the token's subject (Tyk's `getUserIDFromClaim`, Classic API): the
/// `base_field` claim (literal key, then dotted path) when it holds a non-empty string, else the
/// literal `sub` claim.
///
/// Errors (all 403, Tyk's messages):
/// - the base field holds `""` → [`AuthzError::EmptyBaseClaim`]
///   (`found an empty user ID in predefined base claim, claim: <base_field>`);
/// - the base field is missing or not a string and `sub` holds `""` →
///   [`AuthzError::EmptySubClaim`] (`found an empty user ID in sub claim`);
/// - neither holds a string → [`AuthzError::NoIdentityClaim`]
///   (`no suitable claims for user ID were found`).
///
/// Non-string values (numbers, objects) count as missing and are never stringified.
pub fn identity(claims: &Claims, base_field: &str) -> Result<String, AuthzError> {
    if !base_field.is_empty() {
        match classify(claims, base_field) {
            StringClaim::Value(s) => return Ok(s.to_owned()),
            StringClaim::Empty => {
                return Err(AuthzError::EmptyBaseClaim {
                    claim: base_field.to_owned(),
                });
            }
            StringClaim::NotAString | StringClaim::Absent => {}
        }
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(AuthzError::EmptySubClaim),
        _ => Err(AuthzError::NoIdentityClaim),
    }
}

/// The OAuth client id the token was issued to: the first of [`CLIENT_ID_CLAIMS`] that holds a
/// non-empty string (literal keys only, like Tyk).
///
/// Tyk stops at the first of its claims that is *present* and panics on a non-string value;
/// Gatehouse skips empty or non-string values and tries the next name. The caller must not call
/// this (or must ignore the result) when the API sets `idp_client_id_mapping_disabled`; see
/// [`client_id_for`].
pub fn client_id(claims: &Claims) -> Option<String> {
    CLIENT_ID_CLAIMS
        .iter()
        .find_map(|name| match claims.get(*name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
}

/// [`client_id`], honouring the API's `idp_client_id_mapping_disabled` (`None` when disabled).
pub fn client_id_for(claims: &Claims, mapping_disabled: bool) -> Option<String> {
    if mapping_disabled {
        None
    } else {
        client_id(claims)
    }
}

/// The scopes in claim `claim_name` (literal key first, then a dotted path; Okta's `scp` works
/// when the claim name is `scp`).
///
/// - A string is split on spaces (RFC 6749 §3.3): `"a b c"` → `[a, b, c]`.
/// - An array keeps each string element whole, even one containing spaces; nested arrays are
///   flattened; non-string elements are ignored.
/// - Anything else (missing, number, object) gives no scopes.
///
/// Empty pieces are dropped (`""` and `"a  b"` give `[]` and `[a, b]`). Tyk keeps them
/// (`strings.Split`), so in Tyk a token with `"scope": ""` counts as "has scopes" and, when
/// default policies are configured, fails with `no matching policy found in scope claim`; in
/// Gatehouse it counts as "no scopes" and gets the default policies.
pub fn scopes(claims: &Claims, claim_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    match lookup(claims, claim_name) {
        Some(Value::String(s)) => {
            out.extend(s.split(' ').filter(|p| !p.is_empty()).map(str::to_owned));
        }
        Some(Value::Array(items)) => collect_array_scopes(items, &mut out),
        _ => {}
    }
    out
}

fn collect_array_scopes(items: &[Value], out: &mut Vec<String>) {
    for item in items {
        match item {
            Value::String(s) if !s.is_empty() => out.push(s.clone()),
            Value::Array(inner) => collect_array_scopes(inner, out),
            _ => {}
        }
    }
}

/// What the policy claim (`jwt_policy_field_name`) of a token holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyClaim {
    /// The claim (or the field name) is missing, or `null`.
    Absent,
    /// The claim holds `""`.
    Empty,
    /// The claim holds something other than a string, e.g. an array of policy ids.
    ///
    /// Tyk's `getClaimValue` only accepts a string, so such a claim finds no policy and the token
    /// is treated as having no policy claim (default policies, client policies, scopes). Gatehouse
    /// does the same, so a migrated setup behaves identically; the gateway may log a warning.
    NotAString,
    /// A non-empty policy id.
    Value(String),
}

impl PolicyClaim {
    /// The policy id, when the claim holds one.
    pub fn value(&self) -> Option<&str> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// The policy claim named `field` (literal key, then dotted path). An empty `field` (the API does
/// not set `jwt_policy_field_name`) gives [`PolicyClaim::Absent`].
pub fn policy_claim(claims: &Claims, field: &str) -> PolicyClaim {
    if field.is_empty() {
        return PolicyClaim::Absent;
    }
    match classify(claims, field) {
        StringClaim::Value(s) => PolicyClaim::Value(s.to_owned()),
        StringClaim::Empty => PolicyClaim::Empty,
        StringClaim::NotAString => PolicyClaim::NotAString,
        StringClaim::Absent => PolicyClaim::Absent,
    }
}

/// The token's `exp` claim in unix seconds, when it is a number (fractions are truncated, as Tyk
/// does). Used to raise the session expiry ([`crate::session::SessionState`]).
pub fn expiry(claims: &Claims) -> Option<i64> {
    match claims.get("exp") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                // Saturating float-to-int conversion, then truncation like Go's int64(f).
                .map(|f| f.trunc() as i64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    // ---- identity: TestJWTRSAIdInClaimsWithBaseField, TestJWTRSAIdInClaimsWithoutBaseField,
    // ---- TestJWTHMACIdNewClaim, TestGetUserIDFromClaim

    #[test]
    fn identity_from_claims_table() {
        let empty_base = Err(AuthzError::EmptyBaseClaim {
            claim: "user_id".into(),
        });
        let cases: Vec<(&str, Value, &str, Result<String, AuthzError>)> = vec![
            (
                "id in the configured base field",
                json!({"user_id": "user123@test.com", "sub": "other"}),
                "user_id",
                Ok("user123@test.com".into()),
            ),
            (
                "custom claim with a dash (TestJWTHMACIdNewClaim)",
                json!({"user-id": "k1"}),
                "user-id",
                Ok("k1".into()),
            ),
            (
                "empty base field is an error, even with a sub",
                json!({"user_id": "", "sub": "x"}),
                "user_id",
                empty_base.clone(),
            ),
            (
                "base field missing: falls back to sub",
                json!({"sub": "user123@test.com"}),
                "user_id",
                Ok("user123@test.com".into()),
            ),
            (
                "base field missing, sub empty",
                json!({"sub": ""}),
                "user_id",
                Err(AuthzError::EmptySubClaim),
            ),
            (
                "neither base field nor sub",
                json!({"foo": "bar"}),
                "user_id",
                Err(AuthzError::NoIdentityClaim),
            ),
            (
                "no base field configured: sub",
                json!({"sub": "user123@test.com", "user_id": "ignored"}),
                "",
                Ok("user123@test.com".into()),
            ),
            (
                "no base field configured, no sub",
                json!({"user_id": "ignored"}),
                "",
                Err(AuthzError::NoIdentityClaim),
            ),
            (
                "non-string base field falls back to sub",
                json!({"user_id": 12345, "sub": "fallback"}),
                "user_id",
                Ok("fallback".into()),
            ),
            (
                "numbers are never stringified",
                json!({"user_id": 12345}),
                "user_id",
                Err(AuthzError::NoIdentityClaim),
            ),
            (
                "non-string sub is not an identity",
                json!({"sub": 42}),
                "",
                Err(AuthzError::NoIdentityClaim),
            ),
            (
                "base field `sub` that is empty names the base claim",
                json!({"sub": ""}),
                "sub",
                Err(AuthzError::EmptyBaseClaim {
                    claim: "sub".into(),
                }),
            ),
            (
                "sub is only read as a literal key",
                json!({"a": {"sub": "x"}}),
                "",
                Err(AuthzError::NoIdentityClaim),
            ),
        ];
        for (name, c, base, want) in cases {
            assert_eq!(identity(&claims(c), base), want, "{name}");
        }
    }

    #[test]
    fn identity_errors_carry_tyk_messages_and_403() {
        let e = identity(&claims(json!({"user_id": ""})), "user_id").unwrap_err();
        assert_eq!(
            e.message(),
            "found an empty user ID in predefined base claim, claim: user_id"
        );
        assert_eq!(e.status(), 403);
        let e = identity(&claims(json!({"sub": ""})), "user_id").unwrap_err();
        assert_eq!(e.message(), "found an empty user ID in sub claim");
        assert_eq!(e.status(), 403);
        let e = identity(&claims(json!({})), "user_id").unwrap_err();
        assert_eq!(e.message(), "no suitable claims for user ID were found");
        assert_eq!(e.status(), 403);
    }

    // ---- mw_jwt_nested_claims_test.go

    #[test]
    fn nested_subject_claim_single_level() {
        let c = claims(json!({"user": {"id": "user123"}, "policyId": "p"}));
        assert_eq!(identity(&c, "user.id").unwrap(), "user123");
    }

    #[test]
    fn nested_subject_claim_multi_level() {
        let c =
            claims(json!({"identity": {"user": {"uuid": "550e8400-e29b-41d4-a716-446655440000"}}}));
        assert_eq!(
            identity(&c, "identity.user.uuid").unwrap(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
    }

    #[test]
    fn nested_subject_claim_with_fallback() {
        let c = claims(json!({"sub": "fallback-user", "custom": {"name": "John Doe"}}));
        assert_eq!(identity(&c, "custom.userId").unwrap(), "fallback-user");
    }

    #[test]
    fn nested_base_policy_claim() {
        let c = claims(json!({"sub": "user123", "authorization": {"policy": "gold-policy"}}));
        assert_eq!(
            policy_claim(&c, "authorization.policy"),
            PolicyClaim::Value("gold-policy".into())
        );
    }

    #[test]
    fn nested_claim_empty_string_is_an_error() {
        let c = claims(json!({"user": {"id": ""}}));
        assert_eq!(
            identity(&c, "user.id"),
            Err(AuthzError::EmptyBaseClaim {
                claim: "user.id".into()
            })
        );
        // Even with a sub to fall back to: Tyk reports the empty base claim.
        let c = claims(json!({"user": {"id": ""}, "sub": "s"}));
        assert!(identity(&c, "user.id").is_err());
    }

    #[test]
    fn nested_claim_non_string_falls_back_to_sub() {
        let c = claims(json!({"user": {"id": 12345}, "sub": "fallback-user"}));
        assert_eq!(identity(&c, "user.id").unwrap(), "fallback-user");
    }

    #[test]
    fn multiple_nested_policy_claims_priority() {
        // The configured dotted field wins over an unrelated flat claim.
        let c = claims(json!({
            "sub": "user123", "fallback": {"policy": "silver"}, "policyId": "bronze"
        }));
        assert_eq!(policy_claim(&c, "fallback.policy").value(), Some("silver"));
    }

    #[test]
    fn flat_claims_backward_compatibility() {
        let c = claims(json!({"userId": "user456", "policyId": "p"}));
        assert_eq!(identity(&c, "userId").unwrap(), "user456");
        assert_eq!(policy_claim(&c, "policyId").value(), Some("p"));
    }

    #[test]
    fn nested_claims_customer_scenario() {
        let c = claims(
            json!({"test": {"sub": "123456", "policy": "premium-policy"},
            "iss": "https://customer-idp.com"}),
        );
        assert_eq!(identity(&c, "test.sub").unwrap(), "123456");
        assert_eq!(
            policy_claim(&c, "test.policy").value(),
            Some("premium-policy")
        );
    }

    #[test]
    fn literal_dot_in_claim_name_beats_nested_lookup() {
        let c = claims(json!({"user.id": "literal-dot-user", "user": {"id": "nested-user"}}));
        assert_eq!(identity(&c, "user.id").unwrap(), "literal-dot-user");
        assert_eq!(
            lookup(&c, "user.id"),
            Some(&Value::String("literal-dot-user".into()))
        );
        // A literal key holding "" does not hide a non-empty nested value (Tyk's getClaimValue).
        let c = claims(json!({"user.id": "", "user": {"id": "nested-user"}}));
        assert_eq!(identity(&c, "user.id").unwrap(), "nested-user");
    }

    #[test]
    fn nested_lookup_needs_objects_all_the_way() {
        let c = claims(json!({"a": {"b": [1, 2]}, "s": "x"}));
        assert_eq!(lookup(&c, "a.b.c"), None);
        assert_eq!(lookup(&c, "s.t"), None);
        assert_eq!(lookup(&c, "missing.x"), None);
        assert_eq!(lookup(&c, "a.b"), Some(&json!([1, 2])));
        assert_eq!(string_claim(&c, "a.b"), None);
    }

    // ---- policy claim

    #[test]
    fn policy_claim_kinds() {
        let c = claims(json!({
            "pol": "gold", "empty": "", "arr": ["a", "b"], "num": 7, "nul": null,
            "n": {"pol": "silver", "empty": ""}
        }));
        assert_eq!(policy_claim(&c, "pol"), PolicyClaim::Value("gold".into()));
        assert_eq!(
            policy_claim(&c, "n.pol"),
            PolicyClaim::Value("silver".into())
        );
        assert_eq!(policy_claim(&c, "empty"), PolicyClaim::Empty);
        assert_eq!(policy_claim(&c, "n.empty"), PolicyClaim::Empty);
        assert_eq!(policy_claim(&c, "arr"), PolicyClaim::NotAString);
        assert_eq!(policy_claim(&c, "num"), PolicyClaim::NotAString);
        assert_eq!(policy_claim(&c, "nul"), PolicyClaim::Absent);
        assert_eq!(policy_claim(&c, "missing"), PolicyClaim::Absent);
        assert_eq!(policy_claim(&c, ""), PolicyClaim::Absent);
        assert_eq!(policy_claim(&c, "arr").value(), None);
    }

    // ---- TestGetScopeFromClaim

    #[test]
    fn scope_from_claim_table() {
        let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
            (
                "space separated",
                json!({"scope": "foo bar baz"}),
                "scope",
                vec!["foo", "bar", "baz"],
            ),
            (
                "slice strings",
                json!({"scope": ["foo", "bar", "baz"]}),
                "scope",
                vec!["foo", "bar", "baz"],
            ),
            (
                "nested space separated",
                json!({"scope1": {"scope2": "foo bar baz"}}),
                "scope1.scope2",
                vec!["foo", "bar", "baz"],
            ),
            (
                "nested slice strings",
                json!({"scope1": {"scope2": ["foo", "bar", "baz"]}}),
                "scope1.scope2",
                vec!["foo", "bar", "baz"],
            ),
            (
                "array items with spaces stay whole",
                json!({"scope": ["foo bar", "baz"]}),
                "scope",
                vec!["foo bar", "baz"],
            ),
            (
                "okta scp array",
                json!({"scp": ["read:items", "write:items"], "scope": "ignored"}),
                "scp",
                vec!["read:items", "write:items"],
            ),
            (
                "nested arrays are flattened, non-strings ignored",
                json!({"scope": ["a", ["b", "c d"], 3, {"x": "y"}]}),
                "scope",
                vec!["a", "b", "c d"],
            ),
            (
                "empty pieces are dropped",
                json!({"scope": " a  b "}),
                "scope",
                vec!["a", "b"],
            ),
            ("empty string", json!({"scope": ""}), "scope", vec![]),
            ("missing", json!({}), "scope", vec![]),
            ("number", json!({"scope": 5}), "scope", vec![]),
            (
                "literal key with dots",
                json!({"https://example.com/scope": "a b"}),
                "https://example.com/scope",
                vec!["a", "b"],
            ),
        ];
        for (name, c, key, want) in cases {
            assert_eq!(scopes(&claims(c), key), want, "{name}");
        }
    }

    // ---- TestJWT_ExtractOAuthClientIDForDCR, Test_getOAuthClientIDFromClaim

    #[test]
    fn oauth_client_id_from_claims_table() {
        let cases: Vec<(&str, Value, Option<&str>)> = vec![
            (
                "okta cid",
                json!({"cid": "okta-client"}),
                Some("okta-client"),
            ),
            (
                "keycloak clientId",
                json!({"clientId": "kc-client"}),
                Some("kc-client"),
            ),
            (
                "gluu client_id",
                json!({"client_id": "gluu-client"}),
                Some("gluu-client"),
            ),
            (
                "azp (Gatehouse)",
                json!({"azp": "auth0-client"}),
                Some("auth0-client"),
            ),
            (
                "Tyk's order: clientId before cid before client_id",
                json!({"client_id": "c", "cid": "b", "clientId": "a", "azp": "d"}),
                Some("a"),
            ),
            (
                "cid before client_id",
                json!({"client_id": "c", "cid": "b"}),
                Some("b"),
            ),
            (
                "client_id before azp",
                json!({"client_id": "c", "azp": "d"}),
                Some("c"),
            ),
            (
                "empty and non-string values are skipped",
                json!({"clientId": "", "cid": 5, "client_id": "c"}),
                Some("c"),
            ),
            ("none", json!({"sub": "x"}), None),
        ];
        for (name, c, want) in cases {
            assert_eq!(client_id(&claims(c)).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn client_id_mapping_can_be_disabled() {
        let c = claims(json!({"cid": "okta-client"}));
        assert_eq!(client_id_for(&c, false).as_deref(), Some("okta-client"));
        assert_eq!(client_id_for(&c, true), None);
    }

    #[test]
    fn exp_is_read_from_numbers_only() {
        assert_eq!(
            expiry(&claims(json!({"exp": 1700000000}))),
            Some(1_700_000_000)
        );
        assert_eq!(
            expiry(&claims(json!({"exp": 1700000000.9}))),
            Some(1_700_000_000)
        );
        assert_eq!(expiry(&claims(json!({"exp": "1700000000"}))), None);
        assert_eq!(expiry(&claims(json!({}))), None);
    }
}
