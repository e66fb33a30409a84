//! The Tyk Classic API definition, as Gatehouse reads it.
//!
//! An operator sends a Tyk Classic API definition (the JSON Tyk's gateway keeps in `apps/*.json` and
//! Tyk's dashboard exchanges on `/api/apis`). Gatehouse keeps the document exactly as given (so a
//! Tyk definition round-trips) and reads the fields it acts on into [`ApiDefinition`]. What happens
//! to every other field is decided by the table in [`crate::compat`]: a field that restricts access
//! and is not enforced makes the definition refused (400, naming the field); a field that only
//! adds behaviour comes back in `warnings` with its consequence. Versions and endpoint rules are
//! compiled by [`crate::versions::VersionSet`] to check them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ValidationError;
use crate::ids;
use crate::pathmatch::MatchOptions;
use crate::versions::{VersionSet, parse_expiry};

/// The fields of a Tyk Classic API definition that Gatehouse acts on. Every field is optional on
/// the wire and takes Tyk's default when absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiDefinition {
    /// Human name of the API.
    pub name: String,
    /// Stable identifier; generated when absent.
    pub api_id: String,
    /// Owning organisation (kept; Gatehouse has a single organisation).
    pub org_id: String,
    /// Dashboard slug; skipped after the listen path when the version is read from the URL.
    #[serde(deserialize_with = "null_default")]
    pub slug: String,
    /// When a non-versioned API expires: Tyk's `YYYY-MM-DD HH:MM` (UTC), `""` or `-1` for never.
    #[serde(deserialize_with = "null_default")]
    pub expiration: String,
    /// An inactive API is not routed (404).
    pub active: bool,
    /// Tyk's `domain`: the API is served only for requests to this host (exact, `*.example.com`
    /// or a mux pattern such as `{tenant}.example.com`); empty serves every host.
    pub domain: String,
    /// An internal API is never reachable from outside (404); Tyk reaches it only by looping
    /// (`tyk://`), which Gatehouse does not do.
    pub internal: bool,
    /// Node segmentation: a gateway started with `--tags` serves only the APIs carrying one of
    /// them (a gateway without tags serves every API).
    pub tags: Vec<String>,
    /// Where the API listens and where it forwards.
    pub proxy: ProxyConfig,
    /// Serve without authentication.
    pub use_keyless: bool,
    /// Authenticate with a JWT.
    pub enable_jwt: bool,
    /// Allowed algorithm family: `rsa`, `ecdsa`, `eddsa` or `hmac`.
    pub jwt_signing_method: String,
    /// A JWKS URL, a base64-encoded JWKS URL, or a base64-encoded PEM key / HMAC secret.
    pub jwt_source: String,
    /// Several JWKS endpoints, each with an optional cache timeout.
    #[serde(deserialize_with = "null_default")]
    pub jwt_jwks_uris: Vec<JwksUri>,
    /// Claim holding the identity (literal key first, then a dotted path); falls back to `sub`.
    pub jwt_identity_base_field: String,
    /// Tyk's "client base field" (a Tyk key id); kept, not acted on.
    pub jwt_client_base_field: String,
    /// Claim holding the policy id (e.g. `pol`).
    pub jwt_policy_field_name: String,
    /// Policies applied when the token names none.
    #[serde(deserialize_with = "null_default")]
    pub jwt_default_policies: Vec<String>,
    /// Leeway in seconds for `iat` in the future.
    pub jwt_issued_at_validation_skew: u64,
    /// Leeway in seconds after `exp`.
    pub jwt_expires_at_validation_skew: u64,
    /// Leeway in seconds before `nbf`.
    pub jwt_not_before_validation_skew: u64,
    /// Tyk one-to-one mode only; kept, not acted on.
    pub jwt_skip_kid: bool,
    /// Legacy scope → policy mapping (Tyk: deprecated in favour of `scopes.jwt`).
    #[serde(deserialize_with = "null_default")]
    pub jwt_scope_to_policy_mapping: BTreeMap<String, String>,
    /// Legacy name of the scope claim (default `scope`).
    pub jwt_scope_claim_name: String,
    /// Accepted `iss` values; empty accepts any (Gatehouse extension, Tyk OAS `allowedIssuers`).
    #[serde(deserialize_with = "null_default")]
    pub jwt_allowed_issuers: Vec<String>,
    /// Accepted `aud` values, any one must match; empty accepts any (Tyk OAS `allowedAudiences`).
    #[serde(deserialize_with = "null_default")]
    pub jwt_allowed_audiences: Vec<String>,
    /// New home of the scope mapping.
    pub scopes: Scopes,
    /// Do not record the OAuth client id from `cid`/`client_id`/`clientId`/`azp`.
    pub idp_client_id_mapping_disabled: bool,
    /// Legacy location of the credential.
    pub auth: AuthConfig,
    /// Where each auth method reads its credential; key `jwt` for JWT.
    #[serde(deserialize_with = "null_default")]
    pub auth_configs: BTreeMap<String, AuthConfig>,
    /// Remove the credential before proxying.
    pub strip_auth_data: bool,
    /// Do not enforce session rate limits on this API.
    pub disable_rate_limit: bool,
    /// Do not enforce quotas on this API.
    pub disable_quota: bool,
    /// A rate limit for the API as a whole.
    pub global_rate_limit: RateLimit,
    /// Versions of the API.
    pub version_data: VersionData,
    /// Where the version is read from a request.
    pub definition: VersionDefinition,
    /// Tyk's `enable_context_vars`: `$tyk_context` variables have values (else they are empty).
    #[serde(deserialize_with = "null_default")]
    pub enable_context_vars: bool,
    /// Tyk's `CORS` block ([`crate::cors`]).
    #[serde(rename = "CORS", deserialize_with = "null_default")]
    pub cors: crate::cors::CorsConfig,
}

impl Default for ApiDefinition {
    fn default() -> Self {
        Self {
            name: String::new(),
            api_id: String::new(),
            org_id: String::new(),
            slug: String::new(),
            expiration: String::new(),
            active: true,
            domain: String::new(),
            internal: false,
            tags: Vec::new(),
            proxy: ProxyConfig::default(),
            use_keyless: false,
            enable_jwt: false,
            jwt_signing_method: String::new(),
            jwt_source: String::new(),
            jwt_jwks_uris: Vec::new(),
            jwt_identity_base_field: String::new(),
            jwt_client_base_field: String::new(),
            jwt_policy_field_name: String::new(),
            jwt_default_policies: Vec::new(),
            jwt_issued_at_validation_skew: 0,
            jwt_expires_at_validation_skew: 0,
            jwt_not_before_validation_skew: 0,
            jwt_skip_kid: false,
            jwt_scope_to_policy_mapping: BTreeMap::new(),
            jwt_scope_claim_name: String::new(),
            jwt_allowed_issuers: Vec::new(),
            jwt_allowed_audiences: Vec::new(),
            scopes: Scopes::default(),
            idp_client_id_mapping_disabled: false,
            auth: AuthConfig::default(),
            auth_configs: BTreeMap::new(),
            strip_auth_data: false,
            disable_rate_limit: false,
            disable_quota: false,
            global_rate_limit: RateLimit::default(),
            version_data: VersionData::default(),
            definition: VersionDefinition::default(),
            enable_context_vars: false,
            cors: crate::cors::CorsConfig::default(),
        }
    }
}

/// `proxy{…}`: routing and forwarding.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    /// Path prefix the API is served under, e.g. `/payments/`.
    pub listen_path: String,
    /// Upstream base URL, `http://` or `https://`.
    pub target_url: String,
    /// Remove the listen path before forwarding.
    pub strip_listen_path: bool,
    /// Send the client's `Host` header upstream instead of the target's host.
    pub preserve_host_header: bool,
}

/// One entry of `jwt_jwks_uris`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct JwksUri {
    /// The JWKS URL.
    pub url: String,
    /// Cache lifetime for this URL in seconds (a number, or a duration such as `"300s"`, `"5m"`);
    /// `None` uses the global setting.
    #[serde(
        deserialize_with = "de_opt_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_timeout: Option<u64>,
}

/// `scopes{jwt{…}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Scopes {
    /// Scope mapping for JWT.
    pub jwt: ScopeMapping,
}

/// A scope claim name and a scope → policy id map.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScopeMapping {
    /// Claim holding the scopes (default `scope`).
    pub scope_claim_name: String,
    /// Scope → policy id.
    pub scope_to_policy: BTreeMap<String, String>,
}

/// Where a credential is read (`auth` / `auth_configs.<method>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AuthConfig {
    /// Header holding the credential (default `Authorization`).
    pub auth_header_name: String,
    /// Read it from a query parameter.
    pub use_param: bool,
    /// Name of that parameter (default: the header name).
    pub param_name: String,
    /// Read it from a cookie.
    pub use_cookie: bool,
    /// Name of that cookie (default: the header name).
    pub cookie_name: String,
    /// Do not read the header at all.
    pub disable_header: bool,
}

/// A rate limit: `rate` requests per `per` seconds. `rate <= 0` means none.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub rate: f64,
    /// Window length in seconds.
    pub per: f64,
    /// Tyk's `global_rate_limit.disabled`: the limit is not applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl RateLimit {
    /// Whether this limit restricts anything.
    pub fn is_enabled(&self) -> bool {
        !self.disabled && self.rate > 0.0 && self.per > 0.0
    }
}

/// `version_data{…}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionData {
    /// The API has a single, unnamed version (`Default`).
    pub not_versioned: bool,
    /// Version used when a request names none.
    #[serde(deserialize_with = "null_default")]
    pub default_version: String,
    /// Versions by name, as given (compiled by [`VersionSet::compile`]).
    #[serde(deserialize_with = "null_default")]
    pub versions: BTreeMap<String, Value>,
}

impl Default for VersionData {
    fn default() -> Self {
        Self {
            not_versioned: true,
            default_version: String::new(),
            versions: BTreeMap::new(),
        }
    }
}

/// `definition{…}`: where the version name is read (see [`crate::versions`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionDefinition {
    /// `header`, `url-param` or `url`.
    #[serde(deserialize_with = "null_default")]
    pub location: String,
    /// Header or parameter name.
    #[serde(deserialize_with = "null_default")]
    pub key: String,
    /// Remove the version from the path before forwarding (`url` location; older name of
    /// `strip_versioning_data`).
    #[serde(deserialize_with = "null_default")]
    pub strip_path: bool,
    /// Remove the version header, query parameter or path segment before forwarding.
    #[serde(deserialize_with = "null_default")]
    pub strip_versioning_data: bool,
    /// `url` location: only a segment matching this regular expression is stripped.
    #[serde(deserialize_with = "null_default")]
    pub url_versioning_pattern: String,
    /// An unknown version is served by `default_version`.
    #[serde(deserialize_with = "null_default")]
    pub fallback_to_default: bool,
}

/// The algorithm families of `jwt_signing_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningMethod {
    /// RS256/384/512 and PS256/384/512.
    Rsa,
    /// ES256/384.
    Ecdsa,
    /// EdDSA (Ed25519).
    Eddsa,
    /// HS256/384/512 with a shared secret.
    Hmac,
}

impl SigningMethod {
    /// Parses Tyk's value (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" => Some(Self::Rsa),
            "ecdsa" => Some(Self::Ecdsa),
            "eddsa" => Some(Self::Eddsa),
            "hmac" => Some(Self::Hmac),
            _ => None,
        }
    }
}

/// A definition that passed validation: the typed view, the document to store (the input with
/// `api_id` filled in and the listen path normalised), and the warnings to show.
#[derive(Debug, Clone)]
pub struct ValidatedApi {
    /// The typed view the gateway acts on.
    pub def: ApiDefinition,
    /// The document as stored and returned: every field of the input is kept.
    pub raw: Value,
    /// Fields that are kept but have no effect in Gatehouse.
    pub warnings: Vec<String>,
}

impl ApiDefinition {
    /// Reads a stored document without validating it (it was validated when it was stored).
    pub fn from_stored(raw: &Value) -> Result<Self, ValidationError> {
        serde_path_to_error::deserialize(without_nulls(raw))
            .map_err(|e| ValidationError::from_serde(&e))
    }

    /// Tyk's `global_size_limit` of the version requests are served by (`default_version`, else
    /// `Default`, else the only version): the largest request body in bytes. `None` when unset
    /// or 0 (the gateway's own `max_request_body` applies then).
    pub fn request_size_limit(&self) -> Option<u64> {
        let vd = &self.version_data;
        let version = vd
            .versions
            .get(&vd.default_version)
            .or_else(|| vd.versions.get("Default"))
            .or_else(|| {
                (vd.versions.len() == 1)
                    .then(|| vd.versions.values().next())
                    .flatten()
            })?;
        version
            .get("global_size_limit")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
    }

    /// The API-level `expiration` as Unix seconds (UTC); `None` never expires. Tyk checks it only
    /// for non-versioned APIs ([`VersionSet::select`] does). `Err` names the problem for a date
    /// not in Tyk's `YYYY-MM-DD HH:MM` layout ([`validate_api`] refuses those).
    pub fn expires_at(&self) -> Result<Option<i64>, String> {
        parse_expiry(&self.expiration)
    }

    /// The API-wide rate limit as Tyk applies it: `global_rate_limit`, unless it is disabled or
    /// the API has `disable_rate_limit` (which in Tyk also turns the API-wide limit off).
    /// Per-endpoint limits ([`crate::endpoints::EndpointRules::rate_limit`]) replace it for the
    /// requests they match.
    pub fn api_rate_limit(&self) -> Option<RateLimit> {
        (!self.disable_rate_limit && self.global_rate_limit.is_enabled())
            .then_some(self.global_rate_limit)
    }

    /// The compiled `CORS` block, when `CORS.enable` is true ([`crate::cors::CorsPolicy`]).
    pub fn cors_policy(&self) -> Option<crate::cors::CorsPolicy> {
        crate::cors::CorsPolicy::compile(&self.cors)
    }

    /// Whether the API authenticates requests with some method Gatehouse does not support; such
    /// APIs are refused (401) rather than served open.
    pub fn auth_mode(&self) -> AuthMode {
        if self.use_keyless {
            AuthMode::Keyless
        } else if self.enable_jwt {
            AuthMode::Jwt
        } else {
            AuthMode::Unsupported
        }
    }

    /// Where the JWT is read: `auth_configs.jwt`, else the legacy `auth`, else the defaults.
    pub fn jwt_auth_config(&self) -> AuthConfig {
        self.auth_configs
            .get("jwt")
            .cloned()
            .unwrap_or_else(|| self.auth.clone())
    }

    /// The scope claim and mapping in force: `scopes.jwt` when it has a mapping, else the legacy
    /// `jwt_scope_*` fields (Tyk's rule).
    pub fn scope_mapping(&self) -> ScopeMapping {
        if !self.scopes.jwt.scope_to_policy.is_empty() {
            let mut m = self.scopes.jwt.clone();
            if m.scope_claim_name.is_empty() {
                m.scope_claim_name = "scope".to_owned();
            }
            m
        } else {
            ScopeMapping {
                scope_claim_name: if self.jwt_scope_claim_name.is_empty() {
                    "scope".to_owned()
                } else {
                    self.jwt_scope_claim_name.clone()
                },
                scope_to_policy: self.jwt_scope_to_policy_mapping.clone(),
            }
        }
    }
}

/// How an API authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication.
    Keyless,
    /// JWT checked against keys from the IdP.
    Jwt,
    /// A Tyk auth method Gatehouse does not implement; requests are refused.
    Unsupported,
}

/// Validates an API definition sent by an operator (create or replace) and returns what to store.
///
/// `path_id` is the id from the URL on a replace; the body's `api_id` must then be absent or equal.
pub fn validate_api(input: Value, path_id: Option<&str>) -> Result<ValidatedApi, ValidationError> {
    let Value::Object(mut obj) = input else {
        return Err(ValidationError::new(
            "",
            "the body must be a JSON object (a Tyk Classic API definition)",
        ));
    };
    // Tyk's dashboard wraps definitions as {"api_definition": {...}}; accept that too.
    if !obj.contains_key("proxy")
        && let Some(Value::Object(inner)) = obj.get("api_definition")
    {
        obj = inner.clone();
    }

    if obj.contains_key("x-tyk-api-gateway") || obj.contains_key("openapi") {
        return Err(ValidationError::new(
            "x-tyk-api-gateway",
            "this is a Tyk OAS API definition (an OpenAPI document); Gatehouse does not convert \
             those yet: export the API from Tyk as a Tyk Classic definition",
        ));
    }
    let def: ApiDefinition =
        serde_path_to_error::deserialize(without_nulls(&Value::Object(obj.clone())))
            .map_err(|e| ValidationError::from_serde(&e))?;
    let mut def = def;

    // Identity.
    match (path_id, def.api_id.is_empty()) {
        (Some(id), true) => def.api_id = id.to_owned(),
        (Some(id), false) if def.api_id != id => {
            return Err(ValidationError::new(
                "api_id",
                format!(
                    "api_id '{}' in the body does not match '{id}' in the URL",
                    def.api_id
                ),
            ));
        }
        (None, true) => def.api_id = ids::new_id(),
        _ => {}
    }
    if !ids::is_valid_id(&def.api_id) {
        return Err(ValidationError::new(
            "api_id",
            "api_id must be 1-128 characters of letters, digits, '.', '_', '~' or '-'",
        ));
    }
    obj.insert("api_id".to_owned(), Value::String(def.api_id.clone()));

    if def.name.trim().is_empty() {
        return Err(ValidationError::new("name", "name is required"));
    }
    if def.name.len() > 200 {
        return Err(ValidationError::new(
            "name",
            "name must be at most 200 characters",
        ));
    }

    // Proxy.
    let lp = normalize_listen_path(&def.proxy.listen_path)
        .map_err(|m| ValidationError::new("proxy.listen_path", m))?;
    def.proxy.listen_path = lp.clone();
    if let Some(Value::Object(p)) = obj.get_mut("proxy") {
        p.insert("listen_path".to_owned(), Value::String(lp));
    }
    validate_target_url(&def.proxy.target_url)
        .map_err(|m| ValidationError::new("proxy.target_url", m))?;
    crate::routing::HostPattern::parse(&def.domain)
        .map_err(|m| ValidationError::new("domain", m))?;

    // Authentication.
    if def.use_keyless && def.enable_jwt {
        return Err(ValidationError::new(
            "enable_jwt",
            "use_keyless and enable_jwt are mutually exclusive: choose one authentication mode",
        ));
    }
    if def.enable_jwt {
        validate_jwt(&def)?;
    }
    // Tyk fields that restrict access and are not enforced are refused here, the others warned
    // about (crate::compat). Unsupported auth switches are among the refused ones: Tyk would
    // require them, together with a JWT when enable_jwt is set too.
    let mut warnings = crate::compat::check_fields(crate::compat::API_FIELDS, &obj)?;
    if def.auth_mode() == AuthMode::Unsupported {
        return Err(ValidationError::new(
            "use_keyless",
            "no authentication method is set, so Tyk would require its auth tokens, which \
             Gatehouse does not implement: set use_keyless or enable_jwt",
        ));
    }
    let versions = VersionSet::compile(&def, MatchOptions::default())?;
    if let Some(proxy) = obj.get("proxy") {
        crate::balance::TargetSet::from_definition(proxy, &def.proxy.target_url)?;
    }
    if let Some(tests) = obj.get("uptime_tests").filter(|v| v.is_object()) {
        crate::balance::HealthPlan::compile(tests)?;
    }
    if def.global_rate_limit.rate < 0.0 || def.global_rate_limit.per < 0.0 {
        return Err(ValidationError::new(
            "global_rate_limit",
            "global_rate_limit.rate and .per must not be negative",
        ));
    }
    if def.global_rate_limit.rate > 0.0 && def.global_rate_limit.per <= 0.0 {
        return Err(ValidationError::new(
            "global_rate_limit.per",
            "global_rate_limit.per must be a positive number of seconds when rate is set",
        ));
    }

    warnings.extend(version_warnings(&def, &versions));
    Ok(ValidatedApi {
        def,
        raw: Value::Object(obj),
        warnings,
    })
}

fn validate_jwt(def: &ApiDefinition) -> Result<(), ValidationError> {
    if SigningMethod::parse(&def.jwt_signing_method).is_none() {
        return Err(ValidationError::new(
            "jwt_signing_method",
            "jwt_signing_method must be one of rsa, ecdsa, eddsa, hmac",
        ));
    }
    if def.jwt_source.trim().is_empty() && def.jwt_jwks_uris.is_empty() {
        return Err(ValidationError::new(
            "jwt_source",
            "enable_jwt needs jwt_source (a JWKS URL, a base64 JWKS URL or a base64 PEM key/secret) \
             or jwt_jwks_uris",
        ));
    }
    for (i, u) in def.jwt_jwks_uris.iter().enumerate() {
        validate_http_url(&u.url)
            .map_err(|m| ValidationError::new(format!("jwt_jwks_uris.{i}.url"), m))?;
    }
    if def.jwt_identity_base_field.contains(char::is_whitespace) {
        return Err(ValidationError::new(
            "jwt_identity_base_field",
            "jwt_identity_base_field must be a claim name without spaces",
        ));
    }
    Ok(())
}

/// Normalises a listen path: a leading `/` is added; it must not contain whitespace, `?` or `#`,
/// must already be a normalised path ([`crate::path::is_normal_listen_path`]) and must not be one
/// of the gateway's own paths ([`RESERVED_PATHS`]).
pub fn normalize_listen_path(lp: &str) -> Result<String, String> {
    let lp = lp.trim();
    if lp.is_empty() {
        return Err("proxy.listen_path is required, e.g. \"/my-api/\"".to_owned());
    }
    if lp.len() > 1024 {
        return Err("proxy.listen_path must be at most 1024 characters".to_owned());
    }
    if lp.contains(|c: char| c.is_whitespace() || c == '?' || c == '#' || c.is_control()) {
        return Err("proxy.listen_path must not contain spaces, '?' or '#'".to_owned());
    }
    let lp = if lp.starts_with('/') {
        lp.to_owned()
    } else {
        format!("/{lp}")
    };
    if !crate::path::is_normal_listen_path(&lp) {
        return Err(format!(
            "proxy.listen_path '{lp}' is not a normalised path: no '//', no '.' or '..' segments, \
             no %2F, %5C or '\\', no control characters (the gateway routes normalised request \
             paths, so it could never match)"
        ));
    }
    let key = crate::routing::route_key(&lp);
    if let Some(reserved) = RESERVED_PATHS.iter().find(|r| **r == key) {
        return Err(format!(
            "proxy.listen_path '{lp}' is reserved: the gateway answers {reserved} itself \
             (reserved: {})",
            RESERVED_PATHS.join(", ")
        ));
    }
    Ok(lp)
}

/// Paths the gateway listener answers itself, before routing: no API may listen on them.
/// (`/metrics` only when metrics are served on the gateway listener; it is reserved always so a
/// later change of that setting cannot silently shadow an API.)
pub const RESERVED_PATHS: &[&str] = &["/hello", "/ready", "/metrics"];

/// Checks an upstream URL: `http://` or `https://` with a host.
pub(crate) fn validate_http_url(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("a URL is required, e.g. \"http://127.0.0.1:9000\"".to_owned());
    }
    let u = url::Url::parse(s).map_err(|e| format!("'{s}' is not a valid URL: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("'{s}' must start with http:// or https://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{s}' has no host"));
    }
    Ok(())
}

/// Checks an upstream URL (`proxy.target_url`, `override_target`, `target_list` entries): `http`,
/// `https`, `ws`, `wss` (WebSocket upstreams, proxied as HTTP upgrades) or `h2c` (cleartext
/// HTTP/2), with a host. `tcp://` and `tls://` select Tyk's TCP proxy and are refused.
pub(crate) fn validate_target_url(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("a URL is required, e.g. \"http://127.0.0.1:9000\"".to_owned());
    }
    let u = url::Url::parse(s).map_err(|e| format!("'{s}' is not a valid URL: {e}"))?;
    match u.scheme() {
        "http" | "https" | "ws" | "wss" | "h2c" => {}
        "tcp" | "tls" => {
            return Err(format!(
                "'{s}' is a {} target, which Tyk serves with its TCP proxy; Gatehouse proxies \
                 HTTP (http, https, ws, wss, h2c) only",
                u.scheme()
            ));
        }
        other => {
            return Err(format!(
                "'{s}': the scheme '{other}' is not one Gatehouse proxies to; use http, https, \
                 ws, wss or h2c"
            ));
        }
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{s}' has no host"));
    }
    Ok(())
}

/// The warning for a JWT API that checks neither `iss` nor `aud`.
pub const JWT_UNRESTRICTED_WARNING: &str = "jwt_allowed_issuers, jwt_allowed_audiences: neither is set, so any token signed by a key \
     of this API's key source is accepted, including tokens the same IdP issued for other \
     applications; set jwt_allowed_issuers to the IdP's issuer and, if its tokens carry one, \
     jwt_allowed_audiences to this API's audience";

/// Warnings about version settings that Tyk, and so Gatehouse, ignores in this definition, and
/// about a JWT API that accepts tokens issued for anything.
fn version_warnings(def: &ApiDefinition, versions: &VersionSet) -> Vec<String> {
    let mut out = Vec::new();
    if versions.is_versioned() && versions.api_expires_at().is_some() {
        out.push(
            "expiration: Tyk checks it only on an API with not_versioned true, so this API does \
             not expire; set expires on each version instead"
                .to_owned(),
        );
    }
    if !versions.is_versioned() {
        for (name, v) in &def.version_data.versions {
            if v.get("expires")
                .and_then(Value::as_str)
                .is_some_and(|e| !e.is_empty() && e != "-1")
            {
                out.push(format!(
                    "version_data.versions.{name}.expires: Tyk checks it only on a versioned API, \
                     so this API does not expire; set expiration instead"
                ));
            }
        }
    }
    if def.auth_mode() == AuthMode::Jwt
        && def.jwt_allowed_issuers.is_empty()
        && def.jwt_allowed_audiences.is_empty()
    {
        out.push(JWT_UNRESTRICTED_WARNING.to_owned());
    }
    out
}

/// The document without its `null` members, recursively, for the typed view: Tyk is written in Go,
/// whose exports write empty lists and maps as `null` (`"tags": null`), meaning the zero value.
/// The stored document keeps them.
pub fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Whether a JSON value carries information: `null`, `false`, `0`, `""`, `[]`, `{}` and objects
/// made only of those do not. Tyk exports are full of such defaults, which are not worth a warning.
pub fn has_value(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => o.values().any(has_value),
    }
}

/// Go's JSON decoder leaves a field at its zero value for `null`; so does this.
fn null_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Accepts seconds as a number or as a duration string (`"300s"`, `"5m"`, `"1h"`, `"250"`).
fn de_opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
            serde::de::Error::custom("cache_timeout must be a whole number of seconds")
        }),
        Value::String(s) => parse_duration_secs(&s).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "'{s}' is not a duration such as \"300s\" or \"5m\""
            ))
        }),
        _ => Err(serde::de::Error::custom(
            "cache_timeout must be seconds or a duration string",
        )),
    }
}

/// Parses `"300"`, `"300s"`, `"5m"`, `"1h"`, `"1h30m"` into seconds.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            let mult = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(mult)?)?;
        }
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "name": "Echo",
            "proxy": {"listen_path": "/echo/", "target_url": "http://127.0.0.1:9000"},
            "use_keyless": true
        })
    }

    #[test]
    fn minimal_definition_gets_an_id_and_no_warnings() {
        let v = validate_api(minimal(), None).unwrap();
        assert_eq!(v.def.api_id.len(), 32);
        assert_eq!(v.raw["api_id"], json!(v.def.api_id));
        assert!(v.def.active, "active defaults to true");
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.def.auth_mode(), AuthMode::Keyless);
    }

    #[test]
    fn request_size_limit_comes_from_the_served_version() {
        assert_eq!(
            validate_api(minimal(), None)
                .unwrap()
                .def
                .request_size_limit(),
            None
        );
        let mut d = minimal();
        d["version_data"] = json!({"not_versioned": true, "default_version": "",
            "versions": {"Default": {"name": "Default", "global_size_limit": 1024}}});
        let v = validate_api(d.clone(), None).unwrap();
        assert_eq!(v.def.request_size_limit(), Some(1024));
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        d["version_data"]["versions"]["Default"]["global_size_limit"] = json!(0);
        assert_eq!(
            validate_api(d.clone(), None)
                .unwrap()
                .def
                .request_size_limit(),
            None
        );
        d["version_data"] = json!({"not_versioned": false, "default_version": "v2",
            "versions": {"v1": {"global_size_limit": 10}, "v2": {"global_size_limit": 20}}});
        assert_eq!(
            validate_api(d.clone(), None)
                .unwrap()
                .def
                .request_size_limit(),
            Some(20)
        );
        d["version_data"]["versions"]["v2"]["global_size_limit"] = json!("20 KB");
        assert_eq!(
            validate_api(d, None).unwrap_err().field,
            "version_data.versions.v2.global_size_limit"
        );
    }

    #[test]
    fn listen_path_gets_a_leading_slash_in_both_views() {
        let mut d = minimal();
        d["proxy"]["listen_path"] = json!("echo/");
        let v = validate_api(d, None).unwrap();
        assert_eq!(v.def.proxy.listen_path, "/echo/");
        assert_eq!(v.raw["proxy"]["listen_path"], json!("/echo/"));
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let mut d = minimal();
        d.as_object_mut().unwrap().remove("name");
        assert_eq!(validate_api(d, None).unwrap_err().field, "name");

        let mut d = minimal();
        d["proxy"]["target_url"] = json!("ftp://x");
        assert_eq!(validate_api(d, None).unwrap_err().field, "proxy.target_url");

        let mut d = minimal();
        d["proxy"]["listen_path"] = json!(42);
        let e = validate_api(d, None).unwrap_err();
        assert_eq!(e.field, "proxy.listen_path");
        assert!(e.message.contains("invalid type"), "{}", e.message);

        let mut d = minimal();
        d["proxy"].as_object_mut().unwrap().remove("listen_path");
        assert_eq!(
            validate_api(d, None).unwrap_err().field,
            "proxy.listen_path"
        );

        assert_eq!(validate_api(json!([1]), None).unwrap_err().field, "");
    }

    #[test]
    fn listen_paths_must_be_normal_and_not_reserved() {
        for lp in [
            "/a//b/",
            "/a/../b/",
            "/a/./",
            "/a%2Fb/",
            "/a\\b/",
            "/x/%2e%2e/",
        ] {
            let mut d = minimal();
            d["proxy"]["listen_path"] = json!(lp);
            let e = validate_api(d, None).unwrap_err();
            assert_eq!(e.field, "proxy.listen_path", "{lp}");
            assert!(e.message.contains("normalised"), "{lp}: {}", e.message);
        }
        for lp in ["/hello", "/hello/", "hello", "/ready", "/metrics/"] {
            let mut d = minimal();
            d["proxy"]["listen_path"] = json!(lp);
            let e = validate_api(d, None).unwrap_err();
            assert_eq!(e.field, "proxy.listen_path", "{lp}");
            assert!(e.message.contains("reserved"), "{lp}: {}", e.message);
        }
        for lp in ["/hello-world/", "/hello/x/", "/metrics-api"] {
            let mut d = minimal();
            d["proxy"]["listen_path"] = json!(lp);
            assert!(validate_api(d, None).is_ok(), "{lp}");
        }
    }

    #[test]
    fn id_in_body_must_match_the_url() {
        let mut d = minimal();
        d["api_id"] = json!("a");
        assert_eq!(
            validate_api(d.clone(), Some("b")).unwrap_err().field,
            "api_id"
        );
        assert_eq!(validate_api(d, Some("a")).unwrap().def.api_id, "a");
        assert_eq!(validate_api(minimal(), Some("c")).unwrap().def.api_id, "c");
    }

    #[test]
    fn jwt_needs_a_method_and_a_key_source() {
        let mut d = minimal();
        d["use_keyless"] = json!(false);
        d["enable_jwt"] = json!(true);
        assert_eq!(
            validate_api(d.clone(), None).unwrap_err().field,
            "jwt_signing_method"
        );
        d["jwt_signing_method"] = json!("rsa");
        assert_eq!(
            validate_api(d.clone(), None).unwrap_err().field,
            "jwt_source"
        );
        d["jwt_jwks_uris"] = json!([{"url": "nope"}]);
        assert_eq!(
            validate_api(d.clone(), None).unwrap_err().field,
            "jwt_jwks_uris.0.url"
        );
        d["jwt_jwks_uris"] = json!([{"url": "http://127.0.0.1/jwks", "cache_timeout": "5m"}]);
        let v = validate_api(d.clone(), None).unwrap();
        assert_eq!(v.def.jwt_jwks_uris[0].cache_timeout, Some(300));
        assert_eq!(v.def.auth_mode(), AuthMode::Jwt);
        d["use_keyless"] = json!(true);
        assert_eq!(validate_api(d, None).unwrap_err().field, "enable_jwt");
    }

    #[test]
    fn tyk_fields_without_effect_are_kept_and_warned_about() {
        let mut d = minimal();
        d["CORS"] = json!({"enable": true, "allowed_origins": ["*"]});
        d["enable_batch_request_support"] = json!(false); // a default: no warning
        d["custom_middleware"] = json!({"pre": [], "post": []}); // empty: no warning
        d["proxy"]["enable_load_balancing"] = json!(true);
        d["version_data"] = json!({"not_versioned": true, "versions": {"Default": {
            "name": "Default", "use_extended_paths": true,
            "extended_paths": {"transform": [{"path": "/x"}]}}}});
        let v = validate_api(d, None).unwrap();
        assert_eq!(v.raw["CORS"]["allowed_origins"], json!(["*"]));
        assert_eq!(v.raw["enable_batch_request_support"], json!(false));
        let w = v.warnings.join("\n");
        assert!(
            w.contains("CORS: (with CORS.enable) kept, not applied"),
            "{w}"
        );
        assert!(
            w.contains("proxy.enable_load_balancing: kept, not applied: every request goes to"),
            "{w}"
        );
        assert!(
            w.contains("version_data.versions.Default.extended_paths.transform: kept, not applied"),
            "{w}"
        );
        assert!(!w.contains("enable_batch_request_support"), "{w}");
        assert!(!w.contains("custom_middleware"), "{w}");
        assert_eq!(v.warnings.len(), 3, "{w}");
    }

    #[test]
    fn a_jwt_api_checking_neither_issuer_nor_audience_is_warned_about() {
        let mut d = minimal();
        d["use_keyless"] = json!(false);
        d["enable_jwt"] = json!(true);
        d["jwt_signing_method"] = json!("rsa");
        d["jwt_source"] = json!("http://127.0.0.1/jwks");
        let v = validate_api(d.clone(), None).unwrap();
        assert_eq!(v.warnings, vec![JWT_UNRESTRICTED_WARNING.to_owned()]);
        assert!(v.warnings[0].contains("other applications"));
        for (field, value) in [
            ("jwt_allowed_issuers", json!(["https://idp.example/"])),
            ("jwt_allowed_audiences", json!(["api://orders"])),
        ] {
            let mut d = d.clone();
            d[field] = value;
            let v = validate_api(d, None).unwrap();
            assert!(v.warnings.is_empty(), "{field}: {:?}", v.warnings);
        }
        // Keyless APIs check no tokens: nothing to warn about.
        assert!(validate_api(minimal(), None).unwrap().warnings.is_empty());
    }

    #[test]
    fn restricting_fields_gatehouse_does_not_enforce_are_refused() {
        for (field, value) in [
            ("use_basic_auth", json!(true)),
            ("use_standard_auth", json!(true)),
            ("enable_signature_checking", json!(true)),
            ("listen_port", json!(8443)),
            ("is_oas", json!(true)),
            ("client_certificates", json!(["cert-id"])),
            (
                "custom_middleware",
                json!({"pre": [{"name": "deny", "path": "deny.js"}]}),
            ),
        ] {
            let mut d = minimal();
            d[field] = value;
            let e = validate_api(d, None).unwrap_err();
            assert_eq!(e.field, field, "{e:?}");
            assert!(e.message.starts_with(&format!("{field}: ")), "{e:?}");
        }
        let mut d = minimal();
        d["enable_ip_whitelisting"] = json!(true);
        d["allowed_ips"] = json!(["10.0.0.0/8"]);
        assert_eq!(validate_api(d, None).unwrap_err().field, "allowed_ips");
        let mut d = minimal();
        d["version_data"]["versions"]["Default"] = json!({"name": "Default",
            "use_extended_paths": true,
            "extended_paths": {"virtual": [{"path": "/v", "method": "GET",
                                            "response_function_name": "f"}]}});
        assert_eq!(
            validate_api(d, None).unwrap_err().field,
            "version_data.versions.Default.extended_paths.virtual"
        );
        // JWT together with another method would require both in Tyk: refused, not served as
        // JWT only.
        let mut d = minimal();
        d["use_keyless"] = json!(false);
        d["enable_jwt"] = json!(true);
        d["jwt_signing_method"] = json!("rsa");
        d["jwt_source"] = json!("http://127.0.0.1/jwks");
        d["use_standard_auth"] = json!(true);
        assert_eq!(
            validate_api(d, None).unwrap_err().field,
            "use_standard_auth"
        );
    }

    #[test]
    fn no_authentication_method_is_refused() {
        let mut d = minimal();
        d["use_keyless"] = json!(false);
        let e = validate_api(d, None).unwrap_err();
        assert_eq!(e.field, "use_keyless");
        assert!(
            e.message.contains("set use_keyless or enable_jwt"),
            "{}",
            e.message
        );
        // A stored definition from before still reads as unsupported (the gateway answers 401).
        let stored = json!({"name": "x", "use_keyless": false,
            "proxy": {"listen_path": "/x/", "target_url": "http://127.0.0.1:9"}});
        let def = ApiDefinition::from_stored(&stored).unwrap();
        assert_eq!(def.auth_mode(), AuthMode::Unsupported);
    }

    #[test]
    fn versions_and_endpoint_rules_are_checked_when_saved() {
        let mut d = minimal();
        d["version_data"] = json!({"not_versioned": true, "versions": {"Default": {
            "name": "Default", "use_extended_paths": true,
            "extended_paths": {"black_list": [{"path": "/admin(", "method": "GET"}]}}}});
        assert_eq!(
            validate_api(d, None).unwrap_err().field,
            "version_data.versions.Default.extended_paths.black_list.0.path"
        );
        let mut d = minimal();
        d["expiration"] = json!("next year");
        let e = validate_api(d, None).unwrap_err();
        assert_eq!(e.field, "expiration");
        assert!(e.message.contains("2006-01-02 15:04"), "{}", e.message);
        let mut d = minimal();
        d["definition"] = json!({"enabled": true, "name": "v1", "versions": {"v2": "api-2"}});
        assert_eq!(
            validate_api(d, None).unwrap_err().field,
            "definition.enabled"
        );
    }

    #[test]
    fn expiry_settings_tyk_ignores_are_warned_about() {
        let mut d = minimal();
        d["expiration"] = json!("2030-01-01 00:00");
        d["definition"] = json!({"location": "header", "key": "x-version"});
        d["version_data"] = json!({"not_versioned": false, "default_version": "v1",
            "versions": {"v1": {"name": "v1"}}});
        let v = validate_api(d, None).unwrap();
        assert_eq!(v.def.expires_at(), Ok(Some(1_893_456_000)));
        assert!(
            v.warnings
                .iter()
                .any(|w| w.starts_with("expiration: Tyk checks it only"))
        );
        let mut d = minimal();
        d["version_data"] = json!({"not_versioned": true, "versions": {"Default": {
            "name": "Default", "expires": "2030-01-01 00:00"}}});
        let v = validate_api(d, None).unwrap();
        assert_eq!(
            v.warnings,
            vec![
                "version_data.versions.Default.expires: Tyk checks it only on a versioned API, so \
                 this API does not expire; set expiration instead"
                    .to_owned()
            ]
        );
        assert_eq!(v.def.expires_at(), Ok(None));
    }

    #[test]
    fn api_rate_limit_honours_both_switches() {
        let mut def = ApiDefinition {
            global_rate_limit: RateLimit {
                rate: 5.0,
                per: 1.0,
                disabled: false,
            },
            ..ApiDefinition::default()
        };
        assert_eq!(def.api_rate_limit().map(|l| l.rate), Some(5.0));
        def.disable_rate_limit = true;
        assert_eq!(def.api_rate_limit(), None);
        def.disable_rate_limit = false;
        def.global_rate_limit.disabled = true;
        assert_eq!(def.api_rate_limit(), None);
    }

    /// A Tyk Classic definition as Tyk's dashboard exports it (written from the documented
    /// format): every block present with its defaults, Go's nulls for empty lists.
    fn dashboard_export() -> Value {
        serde_json::from_str(include_str!("../testdata/tyk/dashboard-export-orders.json")).unwrap()
    }

    #[test]
    fn a_dashboard_export_is_accepted_with_only_meaningful_warnings() {
        let v = validate_api(dashboard_export(), None).unwrap();
        assert_eq!(v.def.slug, "orders");
        assert!(v.def.jwt_default_policies.is_empty());
        assert_eq!(
            v.warnings,
            vec![
                "cache_options: (with cache_options.enable_cache) kept, not applied: responses are \
                 not cached, every request reaches the upstream",
                JWT_UNRESTRICTED_WARNING
            ]
        );
        let versions = VersionSet::compile(&v.def, MatchOptions::default()).unwrap();
        let version = versions.select(None, 0).unwrap();
        use crate::endpoints::EndpointVerdict;
        assert_eq!(
            version.endpoints().check("/orders/admin", "GET"),
            EndpointVerdict::Forbidden
        );
        assert_eq!(
            version.endpoints().check("/orders/admin", "POST"),
            EndpointVerdict::Pass
        );
        assert_eq!(
            version.endpoints().check("/orders/health", "GET"),
            EndpointVerdict::Ignored
        );
    }

    #[test]
    fn dashboard_wrapper_is_unwrapped() {
        let d = json!({"api_definition": minimal(), "hook_references": [], "is_site": false});
        let v = validate_api(d, None).unwrap();
        assert_eq!(v.def.name, "Echo");
        assert!(v.raw.get("hook_references").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("300"), Some(300));
        assert_eq!(parse_duration_secs("300s"), Some(300));
        assert_eq!(parse_duration_secs("5m"), Some(300));
        assert_eq!(parse_duration_secs("1h30m"), Some(5400));
        assert_eq!(parse_duration_secs("5x"), None);
        assert_eq!(parse_duration_secs("5m3"), None);
    }

    #[test]
    fn scope_mapping_prefers_the_new_home() {
        let mut d = ApiDefinition::default();
        d.jwt_scope_to_policy_mapping
            .insert("a".into(), "p1".into());
        assert_eq!(d.scope_mapping().scope_claim_name, "scope");
        assert_eq!(d.scope_mapping().scope_to_policy["a"], "p1");
        d.scopes.jwt.scope_claim_name = "scp".into();
        d.scopes.jwt.scope_to_policy.insert("b".into(), "p2".into());
        let m = d.scope_mapping();
        assert_eq!(m.scope_claim_name, "scp");
        assert!(!m.scope_to_policy.contains_key("a"));
    }
}

#[cfg(test)]
mod null_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_nulls_in_tyk_exports_are_defaults() {
        let d = json!({"name": "E", "use_keyless": true, "tags": null, "jwt_default_policies": null,
            "proxy": {"listen_path": "/e/", "target_url": "http://127.0.0.1:1"}});
        let v = validate_api(d, None);
        assert!(v.is_ok(), "{v:?}");
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;
    use serde_json::json;

    fn with_target(t: &str) -> Result<ValidatedApi, ValidationError> {
        validate_api(
            json!({"name": "E", "use_keyless": true,
                   "proxy": {"listen_path": "/e/", "target_url": t}}),
            None,
        )
    }

    #[test]
    fn websocket_and_h2c_targets_are_accepted_tcp_is_refused_clearly() {
        for t in [
            "ws://127.0.0.1:9000",
            "wss://echo.example",
            "h2c://127.0.0.1:50051",
        ] {
            assert!(with_target(t).is_ok(), "{t}");
        }
        let e = with_target("tcp://127.0.0.1:9000").unwrap_err();
        assert_eq!(e.field, "proxy.target_url");
        assert!(e.message.contains("TCP proxy"), "{}", e.message);
        assert!(with_target("tls://127.0.0.1:9000").is_err());
        assert!(with_target("ftp://x").unwrap_err().message.contains("ftp"));
    }

    #[test]
    fn oas_documents_are_named_as_such() {
        let e = validate_api(
            json!({"openapi": "3.0.3", "info": {"title": "x"},
            "x-tyk-api-gateway": {"info": {"name": "x"}}}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "x-tyk-api-gateway");
        assert!(e.message.contains("Tyk OAS"), "{}", e.message);
    }

    #[test]
    fn load_balancing_targets_and_uptime_checks_are_checked_when_saved() {
        let e = validate_api(
            json!({"name": "E", "use_keyless": true, "uptime_tests": {"check_list": [
                       {"url": "x", "protocol": "tcp"}]},
                   "proxy": {"listen_path": "/e/", "target_url": "http://127.0.0.1:1"}}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "uptime_tests.check_list.0.protocol");
        let e = validate_api(
            json!({"name": "E", "use_keyless": true,
                   "proxy": {"listen_path": "/e/", "target_url": "http://127.0.0.1:1",
                             "enable_load_balancing": true, "target_list": ["tls://a:1"]}}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "proxy.target_list.0");
    }

    #[test]
    fn cors_and_context_vars_are_read() {
        let v = validate_api(
            json!({"name": "E", "use_keyless": true, "enable_context_vars": true,
                   "CORS": {"enable": true, "allowed_origins": ["https://a"]},
                   "proxy": {"listen_path": "/e/", "target_url": "http://127.0.0.1:1"}}),
            None,
        )
        .unwrap();
        assert!(v.def.enable_context_vars);
        assert!(v.def.cors_policy().is_some());
        let d = ApiDefinition::from_stored(&json!({"CORS": null})).unwrap();
        assert!(d.cors_policy().is_none());
    }
}
