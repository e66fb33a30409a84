//! The developer portal: Dynamic Client Registration settings, the portal configuration,
//! catalogue entries and developers.
//!
//! DCR settings use Tyk Classic Portal's names (`enable_dcr`, `dcr_options.provider`,
//! `grant_types`, `response_types`, `token_endpoint_auth_method`, `idp_host`,
//! `registration_endpoint`, `access_token`) plus Gatehouse's additions (`scopes`,
//! `ssl_insecure_skip_verify`, `token_endpoint`, `jwks_uri`, `registration_metadata`,
//! `registration_client_uri_origins`). The settings exist globally
//! ([`PortalConfig`]) and per catalogue entry ([`CatalogueEntry`], with `config.override`);
//! [`effective_dcr`] picks the one that applies.
//!
//! # The initial access token is write-only
//! [`DcrOptions::access_token`] is read from input as `access_token` but is serialized only as
//! `"access_token_set": true|false`, so no API response or log line built with `serde` can carry
//! it. It is held in a [`Secret`], whose `Debug` output is redacted and which has no `Display`
//! and no `Serialize`. Storage uses the explicit [`DcrOptions::to_storage_json`] (and the same on
//! [`PortalConfig`] and [`CatalogueEntry`]), and reads back with `from_stored`.
//!
//! On update an absent or empty `access_token` keeps the stored one, so an administrator can edit
//! other fields without typing the token again ([`merge_write_only`]). Two exceptions: the input
//! sets `clear_access_token: true` (the token is removed), or the registration target (provider,
//! registration endpoint or IdP host) changed: a stored token is never sent to a new place
//! without being typed again, so the merge fails and names `access_token`.
//!
//! # Order of operations for an update
//! `parse_*` (shape and defaults) → [`merge_write_only`] with the stored value → `validate_*`.
//! [`PortalConfig::from_input`] and [`CatalogueEntry::from_input`] do all three.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::ValidationError;
use crate::ids;

/// Grant types offered when `grant_types` is empty.
pub const DEFAULT_GRANT_TYPES: &[&str] = &["client_credentials"];
/// Token endpoint auth method used when `token_endpoint_auth_method` is empty (RFC 7591's default).
pub const DEFAULT_AUTH_METHOD: &str = "client_secret_basic";
/// Token endpoint auth methods a portal client may ask for (Tyk's list).
pub const KNOWN_AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
];
/// Grant types known by their short names; any absolute URI (e.g.
/// `urn:ietf:params:oauth:grant-type:device_code`) is accepted too.
pub const KNOWN_GRANT_TYPES: &[&str] = &[
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "implicit",
    "password",
];
/// Default separator of redirect URIs typed as one string (Tyk's `oauth_redirect_uri_separator`).
pub const DEFAULT_REDIRECT_URI_SEPARATOR: &str = ";";
/// Minimum password length for developers.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Maximum password length for developers (keeps hashing cheap and bounded).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Maximum length of a developer's first or last name.
pub const MAX_NAME_CHARS: usize = 100;
/// Maximum number of redirect URIs for one client.
pub const MAX_REDIRECT_URIS: usize = 20;

// ---------------------------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------------------------

/// A credential (initial access token, client secret, registration access token, password).
///
/// `Debug` prints `Secret([redacted])` (or `Secret(<empty>)`); there is no `Display` and no
/// `Serialize`, so the value leaves only through [`Secret::expose`]. Deserializes from a string
/// (`null` gives an empty secret).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call this only where the value must go on the wire or into storage.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (no secret).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `None` when empty.
    pub fn non_empty(&self) -> Option<&Secret> {
        (!self.is_empty()).then_some(self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret([redacted])")
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(Option::<String>::deserialize(d)?.unwrap_or_default()))
    }
}

// ---------------------------------------------------------------------------------------------
// Provider and DcrOptions
// ---------------------------------------------------------------------------------------------

/// Which identity provider driver registers the clients (`dcr_options.provider`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Okta: `SSWS` API token, `/oauth2/v1/clients`, no RFC 7592.
    Okta,
    /// Keycloak: initial access token, RFC 7592 with a registration access token that rotates.
    Keycloak,
    /// Gluu / Janssen: RFC 7592 with query-parameter client URIs, often open registration.
    Gluu,
    /// Any standard RFC 7591/7592 server (Tyk: provider left empty).
    #[default]
    Other,
}

impl Provider {
    /// The wire name: `okta`, `keycloak`, `gluu` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Okta => "okta",
            Provider::Keycloak => "keycloak",
            Provider::Gluu => "gluu",
            Provider::Other => "other",
        }
    }

    /// A name for people: `Okta`, `Keycloak`, `Gluu`, or `the identity provider`.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Okta => "Okta",
            Provider::Keycloak => "Keycloak",
            Provider::Gluu => "Gluu",
            Provider::Other => "the identity provider",
        }
    }

    /// Parses a provider name: case-insensitive, trimmed; empty, `other` and `generic` mean
    /// [`Provider::Other`]; `janssen` means [`Provider::Gluu`].
    pub fn parse(s: &str) -> Option<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "okta" => Some(Provider::Okta),
            "keycloak" => Some(Provider::Keycloak),
            "gluu" | "janssen" => Some(Provider::Gluu),
            "" | "other" | "generic" => Some(Provider::Other),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<String>::deserialize(d)?.unwrap_or_default();
        Provider::parse(&raw).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown provider '{raw}': expected okta, keycloak, gluu or other (empty)"
            ))
        })
    }
}

fn serialize_is_set<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(!secret.is_empty())
}

/// DCR settings (`dcr_options`), with Tyk's names.
///
/// Serializing gives `access_token_set` instead of `access_token` (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DcrOptions {
    /// The driver: `okta`, `keycloak`, `gluu` or `other` (empty).
    pub provider: Provider,
    /// Grant types of registered clients (default `["client_credentials"]`).
    pub grant_types: Vec<String>,
    /// Response types of registered clients (empty: the driver picks what the IdP expects).
    pub response_types: Vec<String>,
    /// How clients authenticate at the token endpoint (default `client_secret_basic`).
    pub token_endpoint_auth_method: String,
    /// Base URL of the IdP, e.g. `https://acme.okta.com` (Okta derives the registration
    /// endpoint from it when `registration_endpoint` is empty).
    pub idp_host: String,
    /// The RFC 7591 registration endpoint (from discovery's `registration_endpoint`).
    pub registration_endpoint: String,
    /// The initial access token (Okta: the API token, sent as `SSWS`). Write-only.
    #[serde(
        rename(serialize = "access_token_set"),
        serialize_with = "serialize_is_set"
    )]
    pub access_token: Secret,
    /// Input only: remove the stored initial access token on update.
    #[serde(skip_serializing)]
    pub clear_access_token: bool,
    /// Scopes asked for at registration, space-separated (optional).
    pub scopes: String,
    /// Skip TLS certificate verification towards the IdP (lab IdPs only; Tyk's
    /// `dcr_ssl_insecure_skip_verify`).
    #[serde(alias = "dcr_ssl_insecure_skip_verify")]
    pub ssl_insecure_skip_verify: bool,
    /// The IdP's token endpoint, shown to developers (optional, usually from discovery).
    pub token_endpoint: String,
    /// The IdP's JWKS URI, for the gateway's JWT check (optional, usually from discovery).
    pub jwks_uri: String,
    /// Extra client metadata sent with every registration (Gatehouse extension), e.g.
    /// `{"pol": "{policy_id}"}` for an IdP that turns client metadata into token claims. String
    /// values may use `{policy_id}`, `{catalogue_id}` and `{developer_id}`.
    pub registration_metadata: serde_json::Map<String, serde_json::Value>,
    /// Further origins (`scheme://host[:port]`) the IdP may name in a client's
    /// `registration_client_uri` (Gatehouse extension). By default that URI must be on the
    /// registration endpoint's origin, because Gatehouse sends the client's registration access
    /// token there. An IdP that builds the URI from its public hostname while Gatehouse reaches
    /// it on another address (Keycloak with `hostname` set, called on an internal address) needs
    /// its public origin listed here.
    pub registration_client_uri_origins: Vec<String>,
}

impl DcrOptions {
    /// Trims strings, drops empty and repeated list entries, and fills the defaults
    /// (`grant_types = ["client_credentials"]`, `token_endpoint_auth_method =
    /// "client_secret_basic"`).
    pub fn normalized(mut self) -> Self {
        self.grant_types = clean_list(self.grant_types);
        if self.grant_types.is_empty() {
            self.grant_types = DEFAULT_GRANT_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        }
        self.response_types = clean_list(self.response_types);
        self.token_endpoint_auth_method = self.token_endpoint_auth_method.trim().to_owned();
        if self.token_endpoint_auth_method.is_empty() {
            self.token_endpoint_auth_method = DEFAULT_AUTH_METHOD.to_owned();
        }
        self.idp_host = self.idp_host.trim().to_owned();
        self.registration_endpoint = self.registration_endpoint.trim().to_owned();
        self.scopes = self.scopes.split_whitespace().collect::<Vec<_>>().join(" ");
        self.token_endpoint = self.token_endpoint.trim().to_owned();
        self.jwks_uri = self.jwks_uri.trim().to_owned();
        self.registration_client_uri_origins = clean_list(self.registration_client_uri_origins);
        let token = self.access_token.expose().trim();
        if token.len() != self.access_token.expose().len() {
            self.access_token = Secret::new(token);
        }
        self
    }

    /// The URL clients are registered at: `registration_endpoint`, or for Okta
    /// `{idp_host}/oauth2/v1/clients` when it is empty. `None` when neither is known.
    pub fn registration_url(&self) -> Option<String> {
        let configured = self.registration_endpoint.trim();
        if !configured.is_empty() {
            return Some(configured.to_owned());
        }
        let host = self.idp_host.trim().trim_end_matches('/');
        (self.provider == Provider::Okta && !host.is_empty())
            .then(|| format!("{host}/oauth2/v1/clients"))
    }

    /// The initial access token, if one is set.
    pub fn initial_access_token(&self) -> Option<&Secret> {
        self.access_token.non_empty()
    }

    /// Whether clients registered with these options use only the client-credentials grant.
    pub fn client_credentials_only(&self) -> bool {
        let grants = if self.grant_types.is_empty() {
            DEFAULT_GRANT_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            clean_list(self.grant_types.clone())
        };
        grants.iter().all(|g| g == "client_credentials")
    }

    /// The JSON kept in storage: the public form plus the real `access_token`.
    /// Read it back with [`DcrOptions::from_stored`].
    pub fn to_storage_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.remove("access_token_set");
            map.insert(
                "access_token".to_owned(),
                Value::String(self.access_token.expose().to_owned()),
            );
        }
        v
    }

    /// Reads what [`DcrOptions::to_storage_json`] wrote.
    pub fn from_stored(raw: &Value) -> Result<Self, ValidationError> {
        serde_path_to_error::deserialize(raw.clone()).map_err(|e| ValidationError::from_serde(&e))
    }
}

fn clean_list(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim();
        if !item.is_empty() && !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Checks complete DCR settings (call it when DCR is enabled, on [`DcrOptions::normalized`]
/// options). `prefix` is the dotted path of the options (e.g. `dcr_options` or
/// `config.dcr_options`) and starts every error's field.
///
/// Rules: a registration endpoint (http/https URL; Okta may give `idp_host` instead); known
/// grant types (non-empty), response types and auth method; scopes made of RFC 6749 scope
/// characters; optional URLs well formed; Okta needs an access token (its API token), the other
/// providers may have one; a token must be printable ASCII without spaces (it goes into a
/// header).
pub fn validate_dcr_options(opts: &DcrOptions, prefix: &str) -> Result<(), ValidationError> {
    let f = |name: &str| join(prefix, name);

    if !opts.idp_host.is_empty() {
        validate_http_url(&opts.idp_host).map_err(|m| ValidationError::new(f("idp_host"), m))?;
    }
    if opts.registration_endpoint.is_empty() {
        let hint = if opts.provider == Provider::Okta {
            "set it (https://<your-okta-domain>/oauth2/v1/clients) or set idp_host"
        } else {
            "take it from the IdP's discovery document (registration_endpoint)"
        };
        if opts.registration_url().is_none() {
            return Err(ValidationError::new(
                f("registration_endpoint"),
                format!(
                    "{}: a registration endpoint is required when DCR is enabled; {hint}",
                    f("registration_endpoint")
                ),
            ));
        }
    } else {
        validate_http_url(&opts.registration_endpoint)
            .map_err(|m| ValidationError::new(f("registration_endpoint"), m))?;
    }

    if opts.grant_types.is_empty() {
        return Err(ValidationError::new(
            f("grant_types"),
            format!("{}: at least one grant type is required", f("grant_types")),
        ));
    }
    for (i, g) in opts.grant_types.iter().enumerate() {
        if !is_known_grant_type(g) {
            return Err(ValidationError::new(
                format!("{}.{i}", f("grant_types")),
                format!(
                    "{}: unknown grant type '{g}': use one of {} or an absolute URI",
                    f("grant_types"),
                    KNOWN_GRANT_TYPES.join(", ")
                ),
            ));
        }
    }
    for (i, r) in opts.response_types.iter().enumerate() {
        validate_response_type(r).map_err(|m| {
            ValidationError::new(
                format!("{}.{i}", f("response_types")),
                format!("{}: {m}", f("response_types")),
            )
        })?;
    }
    if !KNOWN_AUTH_METHODS.contains(&opts.token_endpoint_auth_method.as_str()) {
        return Err(ValidationError::new(
            f("token_endpoint_auth_method"),
            format!(
                "{}: unknown method '{}': use one of {}",
                f("token_endpoint_auth_method"),
                opts.token_endpoint_auth_method,
                KNOWN_AUTH_METHODS.join(", ")
            ),
        ));
    }
    for scope in opts.scopes.split_whitespace() {
        if !is_scope_token(scope) {
            return Err(ValidationError::new(
                f("scopes"),
                format!(
                    "{}: '{scope}' is not a valid scope (no quotes, backslashes or control characters)",
                    f("scopes")
                ),
            ));
        }
    }
    for (name, value) in [
        ("token_endpoint", &opts.token_endpoint),
        ("jwks_uri", &opts.jwks_uri),
    ] {
        if !value.is_empty() {
            validate_http_url(value).map_err(|m| ValidationError::new(f(name), m))?;
        }
    }

    for (i, origin) in opts.registration_client_uri_origins.iter().enumerate() {
        validate_origin(origin).map_err(|m| {
            ValidationError::new(
                format!("{}.{i}", f("registration_client_uri_origins")),
                format!("{}: {m}", f("registration_client_uri_origins")),
            )
        })?;
    }

    let token = opts.access_token.expose();
    if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ValidationError::new(
            f("access_token"),
            format!(
                "{}: the token must be printable ASCII without spaces",
                f("access_token")
            ),
        ));
    }
    if opts.provider == Provider::Okta && token.is_empty() {
        return Err(ValidationError::new(
            f("access_token"),
            format!(
                "{}: Okta needs an API token (Okta admin console: Security → API → Tokens); \
                 Gatehouse sends it as 'SSWS <token>'",
                f("access_token")
            ),
        ));
    }
    Ok(())
}

fn is_known_grant_type(g: &str) -> bool {
    KNOWN_GRANT_TYPES.contains(&g)
        || (g.contains(':') && !g.contains(char::is_whitespace) && url::Url::parse(g).is_ok())
}

fn validate_response_type(r: &str) -> Result<(), String> {
    let parts: Vec<&str> = r.split(' ').collect();
    if parts
        .iter()
        .any(|p| !matches!(*p, "code" | "token" | "id_token" | "none"))
    {
        return Err(format!(
            "unknown response type '{r}': use code, token, id_token, none or a space-separated combination"
        ));
    }
    if parts.len() > 1 && parts.contains(&"none") {
        return Err(format!("'{r}': 'none' cannot be combined"));
    }
    Ok(())
}

/// RFC 6749 `scope-token`: `1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn validate_http_url(s: &str) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("'{s}' is not a valid URL: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("'{s}' must start with http:// or https://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{s}' has no host"));
    }
    if u.fragment().is_some() {
        return Err(format!("'{s}' must not have a #fragment"));
    }
    Ok(())
}

/// An origin: an http(s) URL with a host and nothing after it but an optional `/`.
fn validate_origin(s: &str) -> Result<(), String> {
    validate_http_url(s)?;
    let u = url::Url::parse(s).map_err(|e| format!("'{s}' is not a valid URL: {e}"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("'{s}' must not contain a user name or password"));
    }
    if u.path() != "/" || u.query().is_some() {
        return Err(format!(
            "'{s}' must be an origin only (scheme://host[:port]), e.g. '{}'",
            u.origin().ascii_serialization()
        ));
    }
    Ok(())
}

/// Where a token would be sent: provider plus the origin and path of the registration URL.
fn registration_target(opts: &DcrOptions) -> (Provider, Option<String>) {
    let target = opts.registration_url().map(|u| {
        url::Url::parse(&u)
            .map(|p| format!("{}{}", p.origin().ascii_serialization(), p.path()))
            .unwrap_or(u)
    });
    (opts.provider, target)
}

/// The write-only rule for `access_token` on update: returns `incoming` with the token to keep.
///
/// - `clear_access_token: true` → no token;
/// - a non-empty incoming token → that token;
/// - otherwise the stored token, **unless** the provider or the registration URL changed: then
///   the token must be typed again and this fails naming `{prefix}.access_token` (a stored
///   token is never sent somewhere new without the administrator retyping it).
///
/// `clear_access_token` is reset to `false` in the result.
pub fn merge_write_only(
    stored: &DcrOptions,
    mut incoming: DcrOptions,
    prefix: &str,
) -> Result<DcrOptions, ValidationError> {
    if incoming.clear_access_token {
        incoming.access_token = Secret::default();
    } else if incoming.access_token.expose().trim().is_empty() && !stored.access_token.is_empty() {
        if registration_target(stored) != registration_target(&incoming) {
            let field = join(prefix, "access_token");
            return Err(ValidationError::new(
                field.clone(),
                format!(
                    "{field}: the provider or registration endpoint changed, so the stored token is \
                     not reused: enter the token again (or set clear_access_token)"
                ),
            ));
        }
        incoming.access_token = stored.access_token.clone();
    }
    incoming.clear_access_token = false;
    Ok(incoming)
}

// ---------------------------------------------------------------------------------------------
// Portal configuration
// ---------------------------------------------------------------------------------------------

/// The portal's global settings (Tyk: `/api/portal/configuration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortalConfig {
    /// Register developers' OAuth clients at the IdP (for every catalogue entry without
    /// `config.override`).
    pub enable_dcr: bool,
    /// The global DCR settings.
    pub dcr_options: DcrOptions,
    /// Developers may sign up themselves (otherwise an administrator creates them).
    pub signup_enabled: bool,
    /// Most OAuth clients one developer may have; negative (`-1`) = unlimited, `0` = none.
    /// Tyk's name `oauth_usage_limit` is accepted as input.
    #[serde(alias = "oauth_usage_limit")]
    pub max_clients_per_developer: i64,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            enable_dcr: false,
            dcr_options: DcrOptions::default(),
            signup_enabled: false,
            max_clients_per_developer: -1,
        }
    }
}

impl PortalConfig {
    /// Whether a developer who has `current` clients may create another.
    pub fn allows_another_client(&self, current: usize) -> bool {
        self.max_clients_per_developer < 0
            || (current as u64) < self.max_clients_per_developer as u64
    }

    /// Parse → write-only merge with `stored` (if any) → validate.
    pub fn from_input(
        input: Value,
        stored: Option<&PortalConfig>,
    ) -> Result<PortalConfig, ValidationError> {
        let mut cfg = parse_portal_config(input)?;
        if let Some(stored) = stored {
            cfg.dcr_options =
                merge_write_only(&stored.dcr_options, cfg.dcr_options, "dcr_options")?;
        }
        validate_portal_config(&cfg)?;
        Ok(cfg)
    }

    /// The JSON kept in storage (with the real initial access token).
    pub fn to_storage_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("dcr_options".to_owned(), self.dcr_options.to_storage_json());
        }
        v
    }

    /// Reads what [`PortalConfig::to_storage_json`] wrote.
    pub fn from_stored(raw: &Value) -> Result<Self, ValidationError> {
        serde_path_to_error::deserialize(raw.clone()).map_err(|e| ValidationError::from_serde(&e))
    }
}

/// Reads a portal configuration document (fields named on error) and normalizes its DCR options.
pub fn parse_portal_config(input: Value) -> Result<PortalConfig, ValidationError> {
    if !input.is_object() {
        return Err(ValidationError::new(
            "",
            "the portal configuration must be a JSON object",
        ));
    }
    let mut cfg: PortalConfig =
        serde_path_to_error::deserialize(input).map_err(|e| ValidationError::from_serde(&e))?;
    cfg.dcr_options = cfg.dcr_options.normalized();
    Ok(cfg)
}

/// Validates a (parsed, merged) portal configuration: DCR settings must be complete when
/// `enable_dcr` is on; `max_clients_per_developer` must be `-1` or more.
pub fn validate_portal_config(cfg: &PortalConfig) -> Result<(), ValidationError> {
    if cfg.max_clients_per_developer < -1 {
        return Err(ValidationError::new(
            "max_clients_per_developer",
            "max_clients_per_developer must be -1 (unlimited), 0 or more",
        ));
    }
    if cfg.enable_dcr {
        validate_dcr_options(&cfg.dcr_options, "dcr_options")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Catalogue
// ---------------------------------------------------------------------------------------------

/// Per-entry settings of a catalogue entry (Tyk: `catalogue.apis[].config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogueConfig {
    /// Use this entry's `enable_dcr` / `dcr_options` instead of the global ones (JSON `override`).
    #[serde(rename = "override")]
    pub override_global: bool,
    /// DCR for this entry (only with `override`).
    pub enable_dcr: bool,
    /// DCR settings for this entry (only with `override`).
    pub dcr_options: DcrOptions,
}

/// An API offered in the portal catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogueEntry {
    /// Identifier (generated when absent).
    pub id: String,
    /// Name shown to developers.
    pub name: String,
    /// One-line description.
    pub short_description: String,
    /// Long description (Markdown).
    pub long_description: String,
    /// The API this entry documents (optional).
    pub api_id: String,
    /// The policy a developer's client gets (sent to the IdP, e.g. as a `pol` claim value).
    pub policy_id: String,
    /// Listed in the portal.
    pub show: bool,
    /// DCR override.
    pub config: CatalogueConfig,
}

impl Default for CatalogueEntry {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            short_description: String::new(),
            long_description: String::new(),
            api_id: String::new(),
            policy_id: String::new(),
            show: true,
            config: CatalogueConfig::default(),
        }
    }
}

const MAX_CATALOGUE_NAME_CHARS: usize = 200;
const MAX_SHORT_DESCRIPTION_CHARS: usize = 1_000;
const MAX_LONG_DESCRIPTION_CHARS: usize = 100_000;

impl CatalogueEntry {
    /// Parse → write-only merge with `stored` (if any) → validate. `path_id` is the id from
    /// the URL of an update; it must match the body's `id` when both are given.
    pub fn from_input(
        input: Value,
        path_id: Option<&str>,
        stored: Option<&CatalogueEntry>,
    ) -> Result<CatalogueEntry, ValidationError> {
        let mut entry = parse_catalogue_entry(input, path_id)?;
        if let Some(stored) = stored {
            entry.config.dcr_options = merge_write_only(
                &stored.config.dcr_options,
                entry.config.dcr_options,
                "config.dcr_options",
            )?;
        }
        validate_catalogue_entry(&entry)?;
        Ok(entry)
    }

    /// The JSON kept in storage (with the real initial access token).
    pub fn to_storage_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(config) = v.get_mut("config").and_then(Value::as_object_mut) {
            config.insert(
                "dcr_options".to_owned(),
                self.config.dcr_options.to_storage_json(),
            );
        }
        v
    }

    /// Reads what [`CatalogueEntry::to_storage_json`] wrote.
    pub fn from_stored(raw: &Value) -> Result<Self, ValidationError> {
        serde_path_to_error::deserialize(raw.clone()).map_err(|e| ValidationError::from_serde(&e))
    }
}

/// Reads a catalogue entry (fields named on error), settles its id (the path id, the body id,
/// or a new one), trims its text and normalizes its DCR options.
pub fn parse_catalogue_entry(
    input: Value,
    path_id: Option<&str>,
) -> Result<CatalogueEntry, ValidationError> {
    if !input.is_object() {
        return Err(ValidationError::new(
            "",
            "a catalogue entry must be a JSON object",
        ));
    }
    let mut entry: CatalogueEntry =
        serde_path_to_error::deserialize(input).map_err(|e| ValidationError::from_serde(&e))?;
    entry.id = entry.id.trim().to_owned();
    match path_id {
        Some(p) if !entry.id.is_empty() && entry.id != p => {
            return Err(ValidationError::new(
                "id",
                format!("id '{}' does not match the id in the path '{p}'", entry.id),
            ));
        }
        Some(p) => entry.id = p.to_owned(),
        None if entry.id.is_empty() => entry.id = ids::new_id(),
        None => {}
    }
    entry.name = entry.name.trim().to_owned();
    entry.api_id = entry.api_id.trim().to_owned();
    entry.policy_id = entry.policy_id.trim().to_owned();
    entry.config.dcr_options = entry.config.dcr_options.normalized();
    Ok(entry)
}

/// Validates a (parsed, merged) catalogue entry: id, name, policy id (required), api id
/// (optional), description lengths, and complete DCR settings when the entry overrides the
/// global ones with DCR on.
pub fn validate_catalogue_entry(entry: &CatalogueEntry) -> Result<(), ValidationError> {
    if !ids::is_valid_id(&entry.id) {
        return Err(ValidationError::new(
            "id",
            "id must be 1-128 characters from A-Z a-z 0-9 . _ ~ -",
        ));
    }
    if entry.name.is_empty() {
        return Err(ValidationError::new("name", "name is required"));
    }
    if entry.name.chars().count() > MAX_CATALOGUE_NAME_CHARS {
        return Err(ValidationError::new(
            "name",
            format!("name must be at most {MAX_CATALOGUE_NAME_CHARS} characters"),
        ));
    }
    if entry.short_description.chars().count() > MAX_SHORT_DESCRIPTION_CHARS {
        return Err(ValidationError::new(
            "short_description",
            format!("short_description must be at most {MAX_SHORT_DESCRIPTION_CHARS} characters"),
        ));
    }
    if entry.long_description.chars().count() > MAX_LONG_DESCRIPTION_CHARS {
        return Err(ValidationError::new(
            "long_description",
            format!("long_description must be at most {MAX_LONG_DESCRIPTION_CHARS} characters"),
        ));
    }
    if entry.policy_id.is_empty() {
        return Err(ValidationError::new(
            "policy_id",
            "policy_id is required: the policy developers' clients get for this API",
        ));
    }
    if !ids::is_valid_id(&entry.policy_id) {
        return Err(ValidationError::new(
            "policy_id",
            "policy_id must be 1-128 characters from A-Z a-z 0-9 . _ ~ -",
        ));
    }
    if !entry.api_id.is_empty() && !ids::is_valid_id(&entry.api_id) {
        return Err(ValidationError::new(
            "api_id",
            "api_id must be 1-128 characters from A-Z a-z 0-9 . _ ~ -",
        ));
    }
    if entry.config.override_global && entry.config.enable_dcr {
        validate_dcr_options(&entry.config.dcr_options, "config.dcr_options")?;
    }
    Ok(())
}

/// The DCR settings that apply to clients of `entry`, or `None` when DCR is off for it.
///
/// With `config.override` the entry's own `enable_dcr` / `dcr_options` apply (nothing is
/// inherited from the global settings, the token included); otherwise the global ones.
/// The result is [normalized](DcrOptions::normalized).
pub fn effective_dcr(global: &PortalConfig, entry: &CatalogueEntry) -> Option<DcrOptions> {
    let (enabled, opts) = if entry.config.override_global {
        (entry.config.enable_dcr, &entry.config.dcr_options)
    } else {
        (global.enable_dcr, &global.dcr_options)
    };
    enabled.then(|| opts.clone().normalized())
}

// ---------------------------------------------------------------------------------------------
// Redirect URIs
// ---------------------------------------------------------------------------------------------

/// Redirect URIs as typed: one string joined with a separator (Tyk), or an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RedirectUris {
    /// `"https://a/cb;https://b/cb"`.
    Joined(String),
    /// `["https://a/cb", "https://b/cb"]`.
    List(Vec<String>),
}

impl Default for RedirectUris {
    fn default() -> Self {
        RedirectUris::List(Vec::new())
    }
}

/// Splits redirect URIs: a string on `separator` (empty separator: `;`), an array as given.
/// Trims each, drops empties and repeats, and checks each is an absolute URL without a
/// fragment; `http(s)` URLs need a host; `javascript:`, `data:`, `vbscript:` and `file:` are
/// refused; at most [`MAX_REDIRECT_URIS`]. Errors name `redirect_uris` (`redirect_uris.N` for
/// an array element).
pub fn split_redirect_uris(
    input: RedirectUris,
    separator: &str,
) -> Result<Vec<String>, ValidationError> {
    let separator = if separator.is_empty() {
        DEFAULT_REDIRECT_URI_SEPARATOR
    } else {
        separator
    };
    let items: Vec<(String, String)> = match input {
        RedirectUris::Joined(s) => s
            .split(separator)
            .map(|p| ("redirect_uris".to_owned(), p.to_owned()))
            .collect(),
        RedirectUris::List(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("redirect_uris.{i}"), p))
            .collect(),
    };
    let mut out: Vec<String> = Vec::new();
    for (field, raw) in items {
        let uri = raw.trim();
        if uri.is_empty() || out.iter().any(|o| o == uri) {
            continue;
        }
        validate_redirect_uri(uri).map_err(|m| ValidationError::new(field, m))?;
        out.push(uri.to_owned());
    }
    if out.len() > MAX_REDIRECT_URIS {
        return Err(ValidationError::new(
            "redirect_uris",
            format!("at most {MAX_REDIRECT_URIS} redirect URIs are allowed"),
        ));
    }
    Ok(out)
}

fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > 2_000 {
        return Err("a redirect URI must be at most 2000 characters".to_owned());
    }
    if uri.contains(char::is_whitespace) || uri.contains(char::is_control) {
        return Err(format!("redirect URI '{uri}' must not contain spaces"));
    }
    let u = url::Url::parse(uri)
        .map_err(|e| format!("redirect URI '{uri}' is not an absolute URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("redirect URI '{uri}' must not have a #fragment"));
    }
    match u.scheme() {
        "javascript" | "data" | "vbscript" | "file" => {
            Err(format!("redirect URI '{uri}' uses a forbidden scheme"))
        }
        "http" | "https" if u.host_str().is_none_or(str::is_empty) => {
            Err(format!("redirect URI '{uri}' has no host"))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Developers
// ---------------------------------------------------------------------------------------------

/// A developer account of the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Developer {
    /// Identifier.
    pub id: String,
    /// Email address, [normalized](normalize_email); unique.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name (may be empty).
    #[serde(default)]
    pub last_name: String,
    /// An inactive developer cannot sign in or create clients.
    #[serde(default)]
    pub inactive: bool,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A sign-up (or admin-created developer) request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeveloperSignup {
    /// Email address.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name (optional).
    pub last_name: String,
    /// Password (write-only).
    pub password: Secret,
}

impl DeveloperSignup {
    /// Validates the request and returns the new developer (with `id` and `created_at` as
    /// given) and the password to hash.
    pub fn validate(
        self,
        id: String,
        created_at: i64,
    ) -> Result<(Developer, Secret), ValidationError> {
        let email = validate_email(&self.email)?;
        let first_name = validate_person_name("first_name", &self.first_name, true)?;
        let last_name = validate_person_name("last_name", &self.last_name, false)?;
        validate_password(self.password.expose(), Some(&email))?;
        Ok((
            Developer {
                id,
                email,
                first_name,
                last_name,
                inactive: false,
                created_at,
            },
            self.password,
        ))
    }
}

/// Trims and lowercases an email address (the form stored and compared).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks the shape of an email address and returns it [normalized](normalize_email).
///
/// Shape: at most 254 characters; one `@` with a local part of 1-64 characters (no spaces,
/// quotes, brackets, commas, semicolons or colons, no leading/trailing/double dot) and a domain
/// of at least two dot-separated labels of letters, digits and inner hyphens. Whether the
/// address receives mail is not checked here.
pub fn validate_email(email: &str) -> Result<String, ValidationError> {
    let email = normalize_email(email);
    let bad = |why: &str| ValidationError::new("email", format!("email: {why}"));
    if email.is_empty() {
        return Err(bad("an email address is required"));
    }
    if email.chars().count() > 254 {
        return Err(bad("at most 254 characters"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(bad("'@' is missing"));
    };
    if local.is_empty() || local.chars().count() > 64 {
        return Err(bad("the part before '@' must be 1-64 characters"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(bad("misplaced '.' before '@'"));
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"(),:;<>@[\\]".contains(c))
    {
        return Err(bad("the part before '@' has a character not allowed here"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("the domain needs a dot, e.g. example.com"));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.chars().count() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !ok {
            return Err(bad("the domain is not valid"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad("the domain is not valid"));
    }
    Ok(email)
}

/// Checks a person's name: trimmed, at most [`MAX_NAME_CHARS`] characters, no control
/// characters; required names must not be empty. Returns the trimmed name.
pub fn validate_person_name(
    field: &str,
    value: &str,
    required: bool,
) -> Result<String, ValidationError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(ValidationError::new(field, format!("{field} is required")));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            field,
            format!("{field} must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Passwords too common to allow even when long enough (lower case; compared case-insensitively).
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "0123456789",
    "0987654321",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "abcdefghij",
    "administrator",
    "changeme123",
    "iloveyou123",
    "letmein123",
    "password12",
    "password123",
    "password1234",
    "password!!",
    "passw0rd123",
    "qwerty1234",
    "qwerty12345",
    "qwertyuiop",
    "welcome123",
    "asdfghjkl1",
    "zaq12wsxcde",
];

/// Password rules: at least [`MIN_PASSWORD_CHARS`] and at most [`MAX_PASSWORD_CHARS`]
/// characters, not only spaces, not one character repeated, not a well-known password, and not
/// the email address (or its part before `@`).
/// Errors name `password` and never repeat the password.
pub fn validate_password(password: &str, email: Option<&str>) -> Result<(), ValidationError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("password must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if password.trim().is_empty() {
        return Err(ValidationError::new(
            "password",
            "password must not be only spaces",
        ));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(ValidationError::new(
            "password",
            "password must not be one character repeated",
        ));
    }
    if COMMON_PASSWORDS.contains(&password.to_lowercase().as_str()) {
        return Err(ValidationError::new(
            "password",
            "password is too common: choose one that is not on lists of leaked passwords",
        ));
    }
    if let Some(email) = email {
        let email = normalize_email(email);
        let lowered = password.to_lowercase();
        let local = email.split('@').next().unwrap_or_default();
        if lowered == email || (!local.is_empty() && lowered == local) {
            return Err(ValidationError::new(
                "password",
                "password must not be your email address",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn okta() -> DcrOptions {
        DcrOptions {
            provider: Provider::Okta,
            idp_host: "https://acme.okta.com".into(),
            access_token: Secret::new("00abcSSWS"),
            ..Default::default()
        }
        .normalized()
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Secret::default()), "Secret(<empty>)");
        let opts = okta();
        let dbg = format!("{opts:?}");
        assert!(!dbg.contains("00abcSSWS"), "{dbg}");
        let signup: DeveloperSignup = serde_json::from_value(
            json!({"email": "a@b.io", "first_name": "A", "password": "pa55word-long"}),
        )
        .unwrap();
        assert!(!format!("{signup:?}").contains("pa55word-long"));
    }

    #[test]
    fn provider_names() {
        for (raw, p) in [
            ("okta", Provider::Okta),
            (" Keycloak ", Provider::Keycloak),
            ("gluu", Provider::Gluu),
            ("janssen", Provider::Gluu),
            ("", Provider::Other),
            ("other", Provider::Other),
        ] {
            assert_eq!(Provider::parse(raw), Some(p), "{raw}");
        }
        assert_eq!(Provider::parse("auth0"), None);
        let o: DcrOptions = serde_json::from_value(json!({"provider": null})).unwrap();
        assert_eq!(o.provider, Provider::Other);
        let o: DcrOptions = serde_json::from_value(json!({})).unwrap();
        assert_eq!(o.provider, Provider::Other);
        let e = parse_portal_config(json!({"dcr_options": {"provider": "auth0"}})).unwrap_err();
        assert_eq!(e.field, "dcr_options.provider");
        assert!(
            e.message.contains("unknown provider 'auth0'"),
            "{}",
            e.message
        );
        assert_eq!(
            serde_json::to_value(Provider::Keycloak).unwrap(),
            json!("keycloak")
        );
        assert_eq!(Provider::Other.display_name(), "the identity provider");
    }

    #[test]
    fn access_token_is_write_only() {
        let o: DcrOptions = serde_json::from_value(json!({
            "provider": "keycloak",
            "registration_endpoint": "https://kc/realms/r/clients-registrations/openid-connect",
            "access_token": "iat-123",
            "dcr_ssl_insecure_skip_verify": true,
        }))
        .unwrap();
        assert_eq!(o.access_token.expose(), "iat-123");
        assert!(o.ssl_insecure_skip_verify);
        let out = serde_json::to_value(&o).unwrap();
        assert_eq!(out["access_token_set"], json!(true));
        assert!(out.get("access_token").is_none());
        assert!(out.get("clear_access_token").is_none());
        assert!(!out.to_string().contains("iat-123"));
        let none = serde_json::to_value(DcrOptions::default()).unwrap();
        assert_eq!(none["access_token_set"], json!(false));

        // Storage keeps it and reads it back.
        let stored = o.to_storage_json();
        assert_eq!(stored["access_token"], json!("iat-123"));
        assert!(stored.get("access_token_set").is_none());
        assert_eq!(DcrOptions::from_stored(&stored).unwrap(), o);
    }

    #[test]
    fn normalization_fills_defaults() {
        let o = DcrOptions {
            grant_types: vec![
                " ".into(),
                "client_credentials".into(),
                "client_credentials".into(),
            ],
            scopes: "  read   write ".into(),
            access_token: Secret::new(" tok "),
            ..Default::default()
        }
        .normalized();
        assert_eq!(o.grant_types, vec!["client_credentials"]);
        assert_eq!(o.token_endpoint_auth_method, "client_secret_basic");
        assert_eq!(o.scopes, "read write");
        assert_eq!(o.access_token.expose(), "tok");
        let empty = DcrOptions::default().normalized();
        assert_eq!(empty.grant_types, vec!["client_credentials"]);
        assert!(empty.client_credentials_only());
    }

    #[test]
    fn complete_settings_validate() {
        validate_dcr_options(&okta(), "dcr_options").unwrap();
        assert_eq!(
            okta().registration_url().as_deref(),
            Some("https://acme.okta.com/oauth2/v1/clients")
        );
        let kc = DcrOptions {
            provider: Provider::Keycloak,
            registration_endpoint:
                "https://kc.example/realms/r/clients-registrations/openid-connect".into(),
            grant_types: vec!["client_credentials".into(), "refresh_token".into()],
            response_types: vec!["code id_token".into()],
            token_endpoint_auth_method: "client_secret_post".into(),
            scopes: "read api:write".into(),
            token_endpoint: "https://kc.example/realms/r/protocol/openid-connect/token".into(),
            ..Default::default()
        }
        .normalized();
        validate_dcr_options(&kc, "dcr_options").unwrap();
        // Gluu may have no token at all.
        let gluu = DcrOptions {
            provider: Provider::Gluu,
            registration_endpoint: "https://gluu.example/oxauth/restv1/register".into(),
            ..Default::default()
        }
        .normalized();
        validate_dcr_options(&gluu, "").unwrap();
        let urn = DcrOptions {
            grant_types: vec!["urn:ietf:params:oauth:grant-type:device_code".into()],
            ..gluu.clone()
        };
        validate_dcr_options(&urn, "").unwrap();
    }

    #[test]
    fn incomplete_settings_name_the_field() {
        let field = |o: DcrOptions| {
            validate_dcr_options(&o.normalized(), "dcr_options")
                .unwrap_err()
                .field
        };
        let base = DcrOptions {
            provider: Provider::Other,
            registration_endpoint: "https://idp.example/reg".into(),
            ..Default::default()
        };
        assert_eq!(
            field(DcrOptions {
                registration_endpoint: String::new(),
                ..base.clone()
            }),
            "dcr_options.registration_endpoint"
        );
        assert_eq!(
            field(DcrOptions {
                registration_endpoint: "ftp://x/reg".into(),
                ..base.clone()
            }),
            "dcr_options.registration_endpoint"
        );
        assert_eq!(
            field(DcrOptions {
                registration_endpoint: "not a url".into(),
                ..base.clone()
            }),
            "dcr_options.registration_endpoint"
        );
        assert_eq!(
            field(DcrOptions {
                grant_types: vec!["magic".into()],
                ..base.clone()
            }),
            "dcr_options.grant_types.0"
        );
        assert_eq!(
            field(DcrOptions {
                response_types: vec!["code".into(), "banana".into()],
                ..base.clone()
            }),
            "dcr_options.response_types.1"
        );
        assert_eq!(
            field(DcrOptions {
                response_types: vec!["none code".into()],
                ..base.clone()
            }),
            "dcr_options.response_types.0"
        );
        assert_eq!(
            field(DcrOptions {
                token_endpoint_auth_method: "mtls-magic".into(),
                ..base.clone()
            }),
            "dcr_options.token_endpoint_auth_method"
        );
        assert_eq!(
            field(DcrOptions {
                scopes: "read \"write\"".into(),
                ..base.clone()
            }),
            "dcr_options.scopes"
        );
        assert_eq!(
            field(DcrOptions {
                jwks_uri: "jwks".into(),
                ..base.clone()
            }),
            "dcr_options.jwks_uri"
        );
        assert_eq!(
            field(DcrOptions {
                idp_host: "acme.okta.com".into(),
                ..base.clone()
            }),
            "dcr_options.idp_host"
        );
        for bad in [
            "auth.example.com",
            "ftp://auth.example.com",
            "https://auth.example.com/realms/x",
            "https://auth.example.com/?a=b",
            "https://user:pw@auth.example.com",
        ] {
            assert_eq!(
                field(DcrOptions {
                    registration_client_uri_origins: vec!["https://ok.example".into(), bad.into()],
                    ..base.clone()
                }),
                "dcr_options.registration_client_uri_origins.1",
                "{bad}"
            );
        }
        let o = DcrOptions {
            registration_client_uri_origins: vec![
                " https://auth.example.com/ ".into(),
                "http://127.0.0.1:8080".into(),
                String::new(),
            ],
            ..base.clone()
        }
        .normalized();
        validate_dcr_options(&o, "dcr_options").unwrap();
        assert_eq!(
            o.registration_client_uri_origins,
            vec!["https://auth.example.com/", "http://127.0.0.1:8080"]
        );
        assert_eq!(
            field(DcrOptions {
                access_token: Secret::new("a b"),
                ..base.clone()
            }),
            "dcr_options.access_token"
        );
        // Okta without a token, and without any endpoint.
        let e = validate_dcr_options(
            &DcrOptions {
                access_token: Secret::default(),
                ..okta()
            },
            "dcr_options",
        )
        .unwrap_err();
        assert_eq!(e.field, "dcr_options.access_token");
        assert!(e.message.contains("SSWS"), "{}", e.message);
        let e = validate_dcr_options(
            &DcrOptions {
                idp_host: String::new(),
                ..okta()
            },
            "dcr_options",
        )
        .unwrap_err();
        assert_eq!(e.field, "dcr_options.registration_endpoint");
        assert!(e.message.contains("idp_host"), "{}", e.message);
    }

    #[test]
    fn portal_config_validates_dcr_only_when_enabled() {
        let cfg = PortalConfig::from_input(json!({"signup_enabled": true}), None).unwrap();
        assert!(!cfg.enable_dcr && cfg.signup_enabled);
        assert_eq!(cfg.max_clients_per_developer, -1);
        assert!(cfg.allows_another_client(1_000));
        let e = PortalConfig::from_input(json!({"enable_dcr": true}), None).unwrap_err();
        assert_eq!(e.field, "dcr_options.registration_endpoint");
        let e = PortalConfig::from_input(json!({"oauth_usage_limit": -5}), None).unwrap_err();
        assert_eq!(e.field, "max_clients_per_developer");
        let e = PortalConfig::from_input(json!({"enable_dcr": "yes"}), None).unwrap_err();
        assert_eq!(e.field, "enable_dcr");
        let e = PortalConfig::from_input(json!([]), None).unwrap_err();
        assert_eq!(e.field, "");
        let cfg = PortalConfig::from_input(json!({"oauth_usage_limit": 2}), None).unwrap();
        assert!(cfg.allows_another_client(1));
        assert!(!cfg.allows_another_client(2));
        let zero = PortalConfig {
            max_clients_per_developer: 0,
            ..Default::default()
        };
        assert!(!zero.allows_another_client(0));
    }

    #[test]
    fn write_only_merge_keeps_the_stored_token() {
        let stored = PortalConfig::from_input(
            json!({"enable_dcr": true, "dcr_options": {
                "provider": "okta", "idp_host": "https://acme.okta.com", "access_token": "ssws-1"
            }}),
            None,
        )
        .unwrap();
        // Edit another field without the token: kept.
        let updated = PortalConfig::from_input(
            json!({"enable_dcr": true, "dcr_options": {
                "provider": "okta", "idp_host": "https://acme.okta.com", "scopes": "gh",
                "access_token": ""
            }}),
            Some(&stored),
        )
        .unwrap();
        assert_eq!(updated.dcr_options.access_token.expose(), "ssws-1");
        assert_eq!(updated.dcr_options.scopes, "gh");
        // A new token replaces it.
        let replaced = PortalConfig::from_input(
            json!({"enable_dcr": true, "dcr_options": {
                "provider": "okta", "idp_host": "https://acme.okta.com", "access_token": "ssws-2"
            }}),
            Some(&stored),
        )
        .unwrap();
        assert_eq!(replaced.dcr_options.access_token.expose(), "ssws-2");
        // A new place needs the token typed again.
        let e = PortalConfig::from_input(
            json!({"enable_dcr": true, "dcr_options": {
                "provider": "okta", "idp_host": "https://evil.example"
            }}),
            Some(&stored),
        )
        .unwrap_err();
        assert_eq!(e.field, "dcr_options.access_token");
        // Clearing it: then Okta's rule applies.
        let e = PortalConfig::from_input(
            json!({"enable_dcr": true, "dcr_options": {
                "provider": "okta", "idp_host": "https://acme.okta.com", "clear_access_token": true
            }}),
            Some(&stored),
        )
        .unwrap_err();
        assert_eq!(e.field, "dcr_options.access_token");
        let cleared = merge_write_only(
            &stored.dcr_options,
            DcrOptions {
                clear_access_token: true,
                ..stored.dcr_options.clone()
            },
            "dcr_options",
        )
        .unwrap();
        assert!(cleared.access_token.is_empty() && !cleared.clear_access_token);

        // Storage round trip of the whole configuration.
        let raw = stored.to_storage_json();
        assert_eq!(raw["dcr_options"]["access_token"], json!("ssws-1"));
        assert_eq!(PortalConfig::from_stored(&raw).unwrap(), stored);
        let public = serde_json::to_value(&stored).unwrap();
        assert!(!public.to_string().contains("ssws-1"));
        assert_eq!(public["dcr_options"]["access_token_set"], json!(true));
    }

    fn entry(extra: Value) -> Value {
        let mut v = json!({"name": " Payments ", "policy_id": "gold", "api_id": "pay"});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }

    #[test]
    fn catalogue_entries() {
        let e = CatalogueEntry::from_input(entry(json!({})), None, None).unwrap();
        assert_eq!(e.name, "Payments");
        assert!(e.show);
        assert_eq!(e.id.len(), 32);
        let e = CatalogueEntry::from_input(entry(json!({"id": "x"})), Some("x"), None).unwrap();
        assert_eq!(e.id, "x");
        let err =
            CatalogueEntry::from_input(entry(json!({"id": "x"})), Some("y"), None).unwrap_err();
        assert_eq!(err.field, "id");
        let err = CatalogueEntry::from_input(json!({"policy_id": "gold"}), None, None).unwrap_err();
        assert_eq!(err.field, "name");
        let err = CatalogueEntry::from_input(json!({"name": "n"}), None, None).unwrap_err();
        assert_eq!(err.field, "policy_id");
        let err =
            CatalogueEntry::from_input(entry(json!({"api_id": "a/b"})), None, None).unwrap_err();
        assert_eq!(err.field, "api_id");
        let err = CatalogueEntry::from_input(
            entry(json!({"config": {"override": true, "enable_dcr": true,
                "dcr_options": {"provider": "keycloak"}}})),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(err.field, "config.dcr_options.registration_endpoint");
        // Without override the entry's DCR settings are not checked.
        CatalogueEntry::from_input(
            entry(json!({"config": {"enable_dcr": true, "dcr_options": {"provider": "keycloak"}}})),
            None,
            None,
        )
        .unwrap();
        let err = CatalogueEntry::from_input(
            entry(json!({"short_description": "x".repeat(1_001)})),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(err.field, "short_description");
    }

    #[test]
    fn catalogue_write_only_merge_and_storage() {
        let body = entry(
            json!({"id": "pay", "config": {"override": true, "enable_dcr": true,
            "dcr_options": {"provider": "keycloak", "access_token": "kc-iat",
                "registration_endpoint": "https://kc/realms/r/clients-registrations/openid-connect"}}}),
        );
        let stored = CatalogueEntry::from_input(body, Some("pay"), None).unwrap();
        let public = serde_json::to_value(&stored).unwrap();
        assert_eq!(public["config"]["override"], json!(true));
        assert!(!public.to_string().contains("kc-iat"));
        let raw = stored.to_storage_json();
        assert_eq!(
            raw["config"]["dcr_options"]["access_token"],
            json!("kc-iat")
        );
        assert_eq!(CatalogueEntry::from_stored(&raw).unwrap(), stored);

        let edit = entry(
            json!({"name": "Payments v2", "config": {"override": true, "enable_dcr": true,
            "dcr_options": {"provider": "keycloak",
                "registration_endpoint": "https://kc/realms/r/clients-registrations/openid-connect"}}}),
        );
        let updated = CatalogueEntry::from_input(edit, Some("pay"), Some(&stored)).unwrap();
        assert_eq!(updated.config.dcr_options.access_token.expose(), "kc-iat");
        assert_eq!(updated.name, "Payments v2");
    }

    #[test]
    fn effective_dcr_follows_override() {
        let global = PortalConfig {
            enable_dcr: true,
            dcr_options: okta(),
            ..Default::default()
        };
        let mut e = CatalogueEntry {
            policy_id: "gold".into(),
            ..Default::default()
        };
        assert_eq!(effective_dcr(&global, &e).unwrap().provider, Provider::Okta);
        // Entry DCR settings are ignored without override.
        e.config.enable_dcr = false;
        e.config.dcr_options.provider = Provider::Gluu;
        assert_eq!(effective_dcr(&global, &e).unwrap().provider, Provider::Okta);
        // Override on: the entry's own settings, or none.
        e.config.override_global = true;
        assert_eq!(effective_dcr(&global, &e), None);
        e.config.enable_dcr = true;
        let eff = effective_dcr(&global, &e).unwrap();
        assert_eq!(eff.provider, Provider::Gluu);
        assert!(eff.access_token.is_empty(), "nothing is inherited");
        assert_eq!(eff.grant_types, vec!["client_credentials"], "normalized");
        // Global off, no override: none.
        let off = PortalConfig::default();
        e.config.override_global = false;
        assert_eq!(effective_dcr(&off, &e), None);
    }

    #[test]
    fn redirect_uris_split_and_check() {
        let v = split_redirect_uris(
            RedirectUris::Joined(
                " https://a.example/cb ;; https://b.example/cb;https://a.example/cb ".into(),
            ),
            "",
        )
        .unwrap();
        assert_eq!(v, vec!["https://a.example/cb", "https://b.example/cb"]);
        let v = split_redirect_uris(
            RedirectUris::Joined("https://a.example/cb,com.example.app:/oauth".into()),
            ",",
        )
        .unwrap();
        assert_eq!(v, vec!["https://a.example/cb", "com.example.app:/oauth"]);
        let v = split_redirect_uris(
            RedirectUris::List(vec!["https://a.example/cb".into(), " ".into()]),
            ";",
        )
        .unwrap();
        assert_eq!(v, vec!["https://a.example/cb"]);
        assert!(
            split_redirect_uris(RedirectUris::Joined(String::new()), ";")
                .unwrap()
                .is_empty()
        );
        assert!(
            split_redirect_uris(RedirectUris::default(), ";")
                .unwrap()
                .is_empty()
        );

        let e = split_redirect_uris(RedirectUris::Joined("/relative/cb".into()), ";").unwrap_err();
        assert_eq!(e.field, "redirect_uris");
        let e = split_redirect_uris(
            RedirectUris::List(vec![
                "https://ok.example/cb".into(),
                "https://x.example/cb#frag".into(),
            ]),
            ";",
        )
        .unwrap_err();
        assert_eq!(e.field, "redirect_uris.1");
        let e = split_redirect_uris(RedirectUris::Joined("javascript:alert(1)".into()), ";")
            .unwrap_err();
        assert!(e.message.contains("forbidden scheme"), "{}", e.message);
        let many = (0..21)
            .map(|i| format!("https://h{i}.example/cb"))
            .collect::<Vec<_>>()
            .join(";");
        let e = split_redirect_uris(RedirectUris::Joined(many), ";").unwrap_err();
        assert_eq!(e.field, "redirect_uris");
        // Both JSON shapes deserialize.
        let s: RedirectUris = serde_json::from_value(json!("https://a/cb")).unwrap();
        assert_eq!(s, RedirectUris::Joined("https://a/cb".into()));
        let l: RedirectUris = serde_json::from_value(json!(["https://a/cb"])).unwrap();
        assert_eq!(l, RedirectUris::List(vec!["https://a/cb".into()]));
    }

    #[test]
    fn emails() {
        assert_eq!(
            validate_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            validate_email("a.b+tag@sub.example.io").unwrap(),
            "a.b+tag@sub.example.io"
        );
        assert_eq!(
            validate_email("jürgen@bücher.de").unwrap(),
            "jürgen@bücher.de"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@exa mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a@x..com",
            "a@1.2.3.4",
            "a<b>@example.com",
        ] {
            let e = validate_email(bad).unwrap_err();
            assert_eq!(e.field, "email", "{bad}");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn names_and_passwords() {
        assert_eq!(
            validate_person_name("first_name", " Ada ", true).unwrap(),
            "Ada"
        );
        assert_eq!(validate_person_name("last_name", "", false).unwrap(), "");
        assert_eq!(
            validate_person_name("first_name", " ", true)
                .unwrap_err()
                .field,
            "first_name"
        );
        assert_eq!(
            validate_person_name("last_name", &"x".repeat(101), false)
                .unwrap_err()
                .field,
            "last_name"
        );
        assert!(validate_person_name("first_name", "a\u{7}b", true).is_err());

        validate_password("correct horse", None).unwrap();
        let e = validate_password("short-pw", None).unwrap_err();
        assert_eq!(e.field, "password");
        assert!(!e.message.contains("short-pw"));
        assert!(validate_password("          ", None).is_err());
        assert!(validate_password(&"x".repeat(257), None).is_err());
        assert!(validate_password("ada.lovelace", Some("Ada.Lovelace@example.com")).is_err());
        assert!(
            validate_password("ada.lovelace@example.com", Some("ada.lovelace@example.com"))
                .is_err()
        );
        // Ten characters counted as characters, not bytes.
        validate_password("éèéèéèéèéèé", None).unwrap();
        assert!(validate_password("éèéèéè", None).is_err());
        // One character repeated, and well-known passwords, in any case.
        let e = validate_password("ééééééééééé", None).unwrap_err();
        assert!(e.message.contains("repeated"), "{}", e.message);
        let e = validate_password("Password123", None).unwrap_err();
        assert!(e.message.contains("too common"), "{}", e.message);
        assert!(validate_password("QWERTYUIOP", None).is_err());
    }

    #[test]
    fn signup_builds_a_developer() {
        let signup: DeveloperSignup = serde_json::from_value(json!({
            "email": "Dev@Example.com", "first_name": " Grace ", "last_name": "Hopper",
            "password": "a long enough password"
        }))
        .unwrap();
        let (dev, pw) = signup.validate("d1".into(), 1_700_000_000).unwrap();
        assert_eq!(dev.email, "dev@example.com");
        assert_eq!(dev.first_name, "Grace");
        assert!(!dev.inactive);
        assert_eq!(pw.expose(), "a long enough password");
        let v = serde_json::to_value(&dev).unwrap();
        assert_eq!(v["created_at"], json!(1_700_000_000));
        let bad: DeveloperSignup = serde_json::from_value(
            json!({"email": "x@y.io", "first_name": "X", "password": "short"}),
        )
        .unwrap();
        assert_eq!(bad.validate("d".into(), 0).unwrap_err().field, "password");
    }
}
