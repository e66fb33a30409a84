//! What Gatehouse does with every Tyk Classic field: one table, in code, that
//! [`validate_api`](crate::api::validate_api) is driven by and that `docs/tyk-compatibility.md`
//! must repeat word for word (a test compares them).
//!
//! Each field has a [`Status`]:
//! - **enforced**: Gatehouse acts on it as Tyk does (or, for bookkeeping fields and switches of
//!   refused features, Tyk does nothing with it either in a definition Gatehouse accepts);
//! - **warned**: kept and returned, not acted on; it only adds behaviour (a transform, a cache,
//!   analytics), so the API is no more open without it. A definition carrying a value gets a
//!   warning: the field followed by the note, which names the consequence;
//! - **refused**: it restricts access and Gatehouse does not enforce it. A definition carrying a
//!   value is refused (400) with the field and the note.
//!
//! "Carrying a value" is [`has_active_value`]: not `null`, `false`, `0`, `""`, `[]`, `{}` or an
//! object made only of those, and not an entry with `"disabled": true`; a few fields only count
//! when their switch is on (the notes say which). Paths are dotted; `*` stands for any key (a
//! version name). A field under an object with rules for its children but none for it is not a
//! Tyk field Gatehouse knows: it is kept and warned about.

use serde_json::{Map, Value};

use crate::error::ValidationError;

/// What Gatehouse does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Acted on as in Tyk.
    Enforced,
    /// Kept, not acted on, only adds behaviour: a warning names the consequence.
    Warned,
    /// Restricts access and is not enforced: a definition carrying a value is refused.
    Refused,
}

impl Status {
    /// The word used in `docs/tyk-compatibility.md`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Enforced => "enforced",
            Self::Warned => "warned",
            Self::Refused => "refused",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRule {
    /// Dotted path; `*` for any key.
    pub path: &'static str,
    /// What Gatehouse does.
    pub status: Status,
    /// Why, and what happens; for warned and refused fields the text after `<field>: ` in the
    /// warning or error.
    pub note: &'static str,
}

const fn r(path: &'static str, status: Status, note: &'static str) -> FieldRule {
    FieldRule { path, status, note }
}

use Status::{Enforced as E, Refused as R, Warned as W};

const BOOKKEEPING: &str = "Bookkeeping, stored as given; Tyk's gateway does not act on it either.";
const NOT_CACHED: &str = "kept, not applied: responses are not cached, every request reaches the \
                          upstream";
const NOT_TRANSFORMED: &str = "kept, not applied: bodies go to the upstream and back unchanged";
const REFUSED_AUTH_ONLY: &str = "Only used by an authentication method Gatehouse refuses.";

/// Every Tyk Classic API-definition field and what Gatehouse does with it.
pub const API_FIELDS: &[FieldRule] = &[
    // Identity and bookkeeping.
    r("id", E, BOOKKEEPING),
    r("_id", E, BOOKKEEPING),
    r("api_model", E, BOOKKEEPING),
    r("created_at", E, BOOKKEEPING),
    r("last_updated", E, BOOKKEEPING),
    r("name", E, "The API's name."),
    r("api_id", E, "Identifies the API; generated when absent."),
    r(
        "org_id",
        E,
        "The owning organisation; a policy of another organisation is not applied to the API.",
    ),
    r(
        "slug",
        E,
        "Dashboard slug; like Tyk, Gatehouse skips /<slug> after the listen path when it reads \
         the version from the URL.",
    ),
    // Routing.
    r("active", E, "An inactive API is not routed (404)."),
    r(
        "internal",
        E,
        "Never routed from outside (404); Gatehouse has no internal looping, so nothing reaches it.",
    ),
    r(
        "domain",
        E,
        "Host-based routing, Tyk's wildcard forms included: requests for other hosts do not \
         reach the API.",
    ),
    r("domain_disabled", E, "Turns domain off, as in Tyk."),
    r(
        "tags",
        E,
        "Gateway segments: a gateway started with --tags serves only the APIs carrying one of them.",
    ),
    r("tags_disabled", E, "Turns tags off, as in Tyk."),
    r(
        "expiration",
        E,
        "On an API with not_versioned true: 403 \"API has expired, please check documentation or \
         contact administrator\" from this time (YYYY-MM-DD HH:MM, UTC; \"\" or -1: never). Tyk \
         ignores it on a versioned API, and so does Gatehouse (with a warning). An unparseable \
         date is refused.",
    ),
    r(
        "listen_port",
        R,
        "serves the API on a port of its own in Tyk; Gatehouse serves every API on the gateway \
         port, which would expose it where Tyk does not: remove it or set it to 0",
    ),
    r(
        "protocol",
        R,
        "(any value but http or https) selects a TCP, TLS or other non-HTTP proxy that Gatehouse \
         does not implement: use http",
    ),
    r(
        "enable_proxy_protocol",
        W,
        "kept, not applied: Gatehouse does not read a PROXY protocol header, the client address is \
         the connecting peer's",
    ),
    r(
        "json_rpc_version",
        R,
        "makes the API an MCP/JSON-RPC proxy with its own allow lists, which Gatehouse does not \
         implement: remove it",
    ),
    r(
        "application_protocol",
        R,
        "makes the API an MCP/JSON-RPC proxy with its own allow lists, which Gatehouse does not \
         implement: remove it",
    ),
    r(
        "is_oas",
        R,
        "marks a Tyk OAS API whose middleware (allow lists, validation, mocks) lives in an OpenAPI \
         document Gatehouse does not read: export the API as a Tyk Classic definition",
    ),
    r(
        "security_requirements",
        R,
        "OAS security requirements (alternative authentication methods) are not implemented: \
         remove them",
    ),
    // Authentication.
    r("use_keyless", E, "No authentication."),
    r(
        "enable_jwt",
        E,
        "JWT authentication with keys from the IdP.",
    ),
    r(
        "use_standard_auth",
        R,
        "Tyk auth tokens are not implemented; Tyk would require them (together with a JWT when \
         enable_jwt is also set): use enable_jwt or use_keyless",
    ),
    r(
        "use_oauth2",
        R,
        "Tyk's own OAuth 2.0 server is not implemented: use enable_jwt with tokens from your IdP",
    ),
    r(
        "use_basic_auth",
        R,
        "basic authentication is not implemented: use enable_jwt or use_keyless",
    ),
    r(
        "use_mutual_tls_auth",
        R,
        "client-certificate authentication is not implemented: remove it",
    ),
    r(
        "enable_signature_checking",
        R,
        "HMAC request signatures are not checked: remove it",
    ),
    r(
        "use_openid",
        R,
        "Tyk's OpenID Connect middleware is not implemented: use enable_jwt",
    ),
    r(
        "custom_plugin_auth_enabled",
        R,
        "authentication by a custom plugin is not implemented: use enable_jwt or use_keyless",
    ),
    r(
        "use_go_plugin_auth",
        R,
        "authentication by a custom plugin is not implemented: use enable_jwt or use_keyless",
    ),
    r(
        "enable_coprocess_auth",
        R,
        "authentication by a custom plugin is not implemented: use enable_jwt or use_keyless",
    ),
    r(
        "external_oauth",
        R,
        "(with external_oauth.enabled) external OAuth (token introspection) is not implemented: \
         use enable_jwt",
    ),
    r(
        "client_certificates",
        R,
        "client certificates restrict who may call the API and are not checked: remove them",
    ),
    r("base_identity_provided_by", E, REFUSED_AUTH_ONLY),
    r("basic_auth", E, REFUSED_AUTH_ONLY),
    r("oauth_meta", E, REFUSED_AUTH_ONLY),
    r("openid_options", E, REFUSED_AUTH_ONLY),
    r("hmac_allowed_clock_skew", E, REFUSED_AUTH_ONLY),
    r("hmac_allowed_algorithms", E, REFUSED_AUTH_ONLY),
    r(
        "auth",
        E,
        "Where the JWT is read when auth_configs has no jwt entry.",
    ),
    r(
        "auth_configs",
        E,
        "auth_configs.jwt says where the JWT is read; the other entries belong to refused methods.",
    ),
    r("jwt_signing_method", E, "Allowed algorithm family."),
    r("jwt_source", E, "JWKS URL or key."),
    r("jwt_jwks_uris", E, "Several JWKS URLs with cache timeouts."),
    r(
        "jwt_identity_base_field",
        E,
        "Claim holding the identity, falling back to sub.",
    ),
    r("jwt_policy_field_name", E, "Claim holding the policy id."),
    r(
        "jwt_default_policies",
        E,
        "Policies for tokens that name none.",
    ),
    r("jwt_issued_at_validation_skew", E, "Leeway for iat."),
    r("jwt_expires_at_validation_skew", E, "Leeway for exp."),
    r("jwt_not_before_validation_skew", E, "Leeway for nbf."),
    r(
        "jwt_scope_to_policy_mapping",
        E,
        "Legacy scope to policy mapping.",
    ),
    r("jwt_scope_claim_name", E, "Legacy scope claim name."),
    r(
        "scopes",
        E,
        "Scope to policy mapping (scopes.jwt); scopes.oidc belongs to use_openid.",
    ),
    r(
        "jwt_allowed_issuers",
        E,
        "Gatehouse extension (Tyk OAS allowedIssuers): accepted iss values.",
    ),
    r(
        "jwt_allowed_audiences",
        E,
        "Gatehouse extension (Tyk OAS allowedAudiences): accepted aud values.",
    ),
    r(
        "idp_client_id_mapping_disabled",
        E,
        "Do not read the OAuth client id from the token.",
    ),
    r(
        "jwt_client_base_field",
        W,
        "Tyk keys do not exist in Gatehouse, so the claim is not used to find a policy (a token \
         without one is refused); portal-registered clients get their catalogue policy instead",
    ),
    r(
        "jwt_skip_kid",
        W,
        "only meaningful in Tyk's one-to-one mode, which Gatehouse does not have; ignored",
    ),
    r(
        "strip_auth_data",
        E,
        "The credential is removed before proxying.",
    ),
    // IP access control.
    r("enable_ip_whitelisting", E, "Switches allowed_ips on."),
    r(
        "allowed_ips",
        R,
        "(with enable_ip_whitelisting, unless ip_access_control_disabled) restricts callers by \
         address, which Gatehouse does not check: remove it and restrict by network instead",
    ),
    r("enable_ip_blacklisting", E, "Switches blacklisted_ips on."),
    r(
        "blacklisted_ips",
        R,
        "(with enable_ip_blacklisting, unless ip_access_control_disabled) blocks callers by \
         address, which Gatehouse does not check: remove it and block them by network instead",
    ),
    r(
        "ip_access_control_disabled",
        E,
        "Turns allowed_ips and blacklisted_ips off.",
    ),
    // Limits.
    r(
        "global_rate_limit",
        E,
        "The API-wide rate limit (429), also on ignored paths; global_rate_limit.disabled turns \
         it off.",
    ),
    r(
        "disable_rate_limit",
        E,
        "Turns off the session rate limit and, as in Tyk, the API-wide and per-endpoint rate \
         limits.",
    ),
    r("disable_quota", E, "Turns off the session quota."),
    r(
        "dont_set_quota_on_create",
        W,
        "kept, no effect: it concerns creating Tyk keys, which Gatehouse does not have",
    ),
    // Versions.
    r("definition", E, "Where the version is read."),
    r("definition.location", E, "header, url-param or url."),
    r(
        "definition.key",
        E,
        "Header or query parameter holding the version.",
    ),
    r(
        "definition.strip_path",
        E,
        "Removes the version segment before endpoint matching and proxying (like \
         strip_versioning_data).",
    ),
    r(
        "definition.strip_versioning_data",
        E,
        "Removes the version header, query parameter or path segment before proxying.",
    ),
    r(
        "definition.url_versioning_pattern",
        E,
        "url: only a segment matching it is stripped.",
    ),
    r(
        "definition.fallback_to_default",
        E,
        "An unknown version is served by default_version; a policy granting the default version \
         then grants any name, as in Tyk.",
    ),
    r(
        "definition.enabled",
        R,
        "routes versions to separate child APIs (Tyk's newer versioning), which Gatehouse does not \
         implement: describe the versions in version_data",
    ),
    r(
        "definition.name",
        E,
        "Only used with definition.enabled (refused).",
    ),
    r(
        "definition.default",
        E,
        "Only used with definition.enabled (refused).",
    ),
    r(
        "definition.versions",
        E,
        "Only used with definition.enabled (refused).",
    ),
    r("version_data", E, "The API's versions."),
    r(
        "version_data.not_versioned",
        E,
        "One version serves every request: the only one, else the one named Default.",
    ),
    r(
        "version_data.default_version",
        E,
        "Serves requests that name no version (versioned APIs).",
    ),
    r("version_data.versions", E, "Versions by name."),
    r("version_data.versions.*", E, "One version."),
    r(
        "version_data.versions.*.name",
        E,
        "Must equal the version's key, or be empty.",
    ),
    r(
        "version_data.versions.*.expires",
        E,
        "On a versioned API: 403 \"Api Version has expired, please check documentation or contact \
         administrator\" from this time (YYYY-MM-DD HH:MM, UTC; \"\" or -1: never). Ignored on a \
         non-versioned API, as in Tyk. An unparseable date is refused.",
    ),
    r(
        "version_data.versions.*.paths",
        E,
        "Legacy ignored, white_list and black_list path lists, used when use_extended_paths is \
         false (refused when it is true).",
    ),
    r(
        "version_data.versions.*.use_extended_paths",
        E,
        "Chooses extended_paths over paths; extended_paths entries without it are refused.",
    ),
    r(
        "version_data.versions.*.ignore_endpoint_case",
        E,
        "Endpoint patterns of the version match case-insensitively.",
    ),
    r(
        "version_data.versions.*.global_headers",
        E,
        "Request headers set before proxying, on every request of the version (values with Tyk \
         $tyk_ or $secret_ variables are refused).",
    ),
    r(
        "version_data.versions.*.global_headers_remove",
        E,
        "Request headers removed before proxying.",
    ),
    r(
        "version_data.versions.*.global_headers_disabled",
        E,
        "Turns global_headers and global_headers_remove off.",
    ),
    r(
        "version_data.versions.*.global_response_headers",
        W,
        "(unless global_response_headers_disabled) kept, not applied: response headers are not \
         added",
    ),
    r(
        "version_data.versions.*.global_response_headers_remove",
        W,
        "(unless global_response_headers_disabled) kept, not applied: response headers are not \
         removed",
    ),
    r(
        "version_data.versions.*.global_response_headers_disabled",
        E,
        "Turns global_response_headers and global_response_headers_remove off.",
    ),
    r(
        "version_data.versions.*.global_size_limit",
        E,
        "Largest request body in bytes (0: none).",
    ),
    r(
        "version_data.versions.*.global_size_limit_disabled",
        E,
        "Turns global_size_limit off.",
    ),
    r(
        "version_data.versions.*.override_target",
        E,
        "The version's requests go to this URL instead of proxy.target_url.",
    ),
    r(
        "version_data.versions.*.extended_paths",
        E,
        "Per-endpoint rules, used when use_extended_paths is true.",
    ),
    r(
        "version_data.versions.*.extended_paths.ignored",
        E,
        "No authentication, authorisation, session rate limit or quota on these endpoints.",
    ),
    r(
        "version_data.versions.*.extended_paths.white_list",
        E,
        "Only these endpoints are served; anything else is 403 \"Requested endpoint is forbidden\".",
    ),
    r(
        "version_data.versions.*.extended_paths.black_list",
        E,
        "403 \"Requested endpoint is forbidden\".",
    ),
    r(
        "version_data.versions.*.extended_paths.mock_response",
        E,
        "Answered at once with the given code, body and headers, without authentication or \
         upstream.",
    ),
    r(
        "version_data.versions.*.extended_paths.internal",
        E,
        "Only reachable through Tyk's internal looping, which Gatehouse does not have: 403 \
         \"Requested endpoint is forbidden\".",
    ),
    r(
        "version_data.versions.*.extended_paths.size_limits",
        E,
        "Largest request body for these endpoints.",
    ),
    r(
        "version_data.versions.*.extended_paths.rate_limit",
        E,
        "API-wide rate limit for these endpoints, in place of global_rate_limit.",
    ),
    r(
        "version_data.versions.*.extended_paths.cache",
        W,
        NOT_CACHED,
    ),
    r(
        "version_data.versions.*.extended_paths.advance_cache_config",
        W,
        NOT_CACHED,
    ),
    r(
        "version_data.versions.*.extended_paths.transform",
        W,
        NOT_TRANSFORMED,
    ),
    r(
        "version_data.versions.*.extended_paths.transform_response",
        W,
        NOT_TRANSFORMED,
    ),
    r(
        "version_data.versions.*.extended_paths.transform_jq",
        W,
        NOT_TRANSFORMED,
    ),
    r(
        "version_data.versions.*.extended_paths.transform_jq_response",
        W,
        NOT_TRANSFORMED,
    ),
    r(
        "version_data.versions.*.extended_paths.transform_headers",
        W,
        "kept, not applied: request headers are not changed per endpoint",
    ),
    r(
        "version_data.versions.*.extended_paths.transform_response_headers",
        W,
        "kept, not applied: response headers are not changed per endpoint",
    ),
    r(
        "version_data.versions.*.extended_paths.method_transforms",
        W,
        "kept, not applied: the method is sent to the upstream unchanged",
    ),
    r(
        "version_data.versions.*.extended_paths.url_rewrites",
        W,
        "kept, not applied: requests go to the upstream path unrewritten",
    ),
    r(
        "version_data.versions.*.extended_paths.hard_timeouts",
        W,
        "kept, not applied: the gateway's upstream_response_timeout applies to every endpoint",
    ),
    r(
        "version_data.versions.*.extended_paths.circuit_breakers",
        W,
        "kept, not applied: requests keep reaching a failing upstream",
    ),
    r(
        "version_data.versions.*.extended_paths.track_endpoints",
        W,
        "kept, not applied: analytics are kept per API, not per endpoint",
    ),
    r(
        "version_data.versions.*.extended_paths.do_not_track_endpoints",
        W,
        "kept, not applied: requests to these endpoints are counted in analytics",
    ),
    r(
        "version_data.versions.*.extended_paths.persist_graphql",
        W,
        "kept, not applied: requests are not turned into GraphQL queries",
    ),
    r(
        "version_data.versions.*.extended_paths.virtual",
        R,
        "virtual endpoints run JavaScript instead of calling the upstream and may answer or \
         refuse requests themselves; Gatehouse would send the requests to the upstream: remove \
         them",
    ),
    r(
        "version_data.versions.*.extended_paths.go_plugin",
        R,
        "Go plugins may answer or refuse requests and are not run: remove them",
    ),
    r(
        "version_data.versions.*.extended_paths.validate_json",
        R,
        "request bodies are not validated against the schema, so invalid bodies would reach the \
         upstream: remove it",
    ),
    r(
        "version_data.versions.*.extended_paths.validate_request",
        R,
        "(entries with enabled true) requests are not validated, so invalid requests would reach \
         the upstream: remove it",
    ),
    // Proxy.
    r("proxy", E, "Where the API listens and forwards."),
    r(
        "proxy.listen_path",
        E,
        "Path prefix the API is served under.",
    ),
    r("proxy.target_url", E, "Upstream base URL."),
    r(
        "proxy.strip_listen_path",
        E,
        "Removes the listen path before forwarding.",
    ),
    r(
        "proxy.preserve_host_header",
        E,
        "Sends the client's Host header upstream.",
    ),
    r(
        "proxy.disable_strip_slash",
        W,
        "kept, not applied: Gatehouse always joins the target path and the request path with a \
         single slash",
    ),
    r(
        "proxy.enable_load_balancing",
        W,
        "kept, not applied: every request goes to target_url",
    ),
    r(
        "proxy.target_list",
        W,
        "kept, not applied: every request goes to target_url",
    ),
    r(
        "proxy.check_host_against_uptime_tests",
        W,
        "kept, not applied: hosts are not skipped after failed uptime tests",
    ),
    r(
        "proxy.service_discovery",
        W,
        "(with service_discovery.use_discovery_service) kept, not applied: the upstream is \
         target_url, not discovered",
    ),
    r("proxy.transport", E, "Upstream connection settings."),
    r(
        "proxy.transport.ssl_insecure_skip_verify",
        W,
        "kept, not applied: upstream certificates are always verified (add a CA with \
         upstream_ca_file)",
    ),
    r(
        "proxy.transport.ssl_ciphers",
        W,
        "kept, not applied: the upstream connection offers rustls' modern cipher suites only",
    ),
    r(
        "proxy.transport.ssl_min_version",
        R,
        "(above 771, TLS 1.2) requires TLS 1.3 to the upstream, which Gatehouse does not enforce \
         per API: remove it or set 771",
    ),
    r(
        "proxy.transport.ssl_max_version",
        W,
        "kept, not applied: TLS 1.2 and 1.3 are offered to the upstream",
    ),
    r(
        "proxy.transport.ssl_force_common_name_check",
        W,
        "kept, not applied: the upstream certificate is checked against its subject alternative \
         names",
    ),
    r(
        "proxy.transport.proxy_url",
        W,
        "kept, not applied: the upstream is called directly, not through this proxy",
    ),
    // Certificates and upstream security.
    r(
        "certificates",
        W,
        "kept, not applied: the gateway's tls_cert_file is served for every API",
    ),
    r(
        "upstream_certificates",
        W,
        "(unless upstream_certificates_disabled) kept, not applied: set upstream_client_cert_file \
         for a gateway-wide upstream client certificate; an upstream that requires this one \
         refuses the requests",
    ),
    r(
        "upstream_certificates_disabled",
        E,
        "Turns upstream_certificates off.",
    ),
    r(
        "pinned_public_keys",
        R,
        "(unless certificate_pinning_disabled) upstream public key pinning is not implemented, so \
         any certificate the trusted CAs sign would be accepted: remove it",
    ),
    r(
        "certificate_pinning_disabled",
        E,
        "Turns pinned_public_keys off.",
    ),
    r(
        "upstream_auth",
        W,
        "(with upstream_auth.enabled) kept, not applied: Gatehouse does not authenticate to the \
         upstream; an upstream that requires it refuses the requests",
    ),
    r(
        "request_signing",
        W,
        "(with request_signing.is_enabled) kept, not applied: requests to the upstream are not \
         signed; an upstream that checks signatures refuses them",
    ),
    // Plugins and middleware.
    r(
        "custom_middleware",
        R,
        "(any pre, post, post_key_auth, response or auth_check plugin) plugins may authenticate, \
         refuse or change requests and are not run: remove them",
    ),
    r(
        "custom_middleware_bundle",
        R,
        "(unless custom_middleware_bundle_disabled) a plugin bundle is not loaded, and its plugins \
         may refuse requests: remove it",
    ),
    r(
        "custom_middleware_bundle_disabled",
        E,
        "Turns custom_middleware_bundle off.",
    ),
    r(
        "auth_provider",
        R,
        "(with a name) a custom authentication provider (LDAP, RPC) is not implemented: remove it",
    ),
    r(
        "session_provider",
        R,
        "(with a name) a custom session provider (LDAP, RPC) is not implemented: remove it",
    ),
    r("graphql", E, "GraphQL settings."),
    r(
        "graphql.enabled",
        R,
        "GraphQL APIs (schema validation, field permissions, the execution engine) are not \
         implemented: set graphql.enabled to false or remove graphql",
    ),
    r("graphql.*", E, "Only used with graphql.enabled (refused)."),
    // Added behaviour.
    r(
        "CORS",
        W,
        "(with CORS.enable) kept, not applied: no CORS headers are added and preflight requests \
         reach the upstream",
    ),
    r(
        "cache_options",
        W,
        "(with cache_options.enable_cache) kept, not applied: responses are not cached, every \
         request reaches the upstream",
    ),
    r(
        "enable_context_vars",
        W,
        "kept, not applied: no context variables are made for transforms or plugins",
    ),
    r(
        "config_data",
        W,
        "(unless config_data_disabled) kept, not applied: only plugins and templates use it",
    ),
    r("config_data_disabled", E, "Turns config_data off."),
    r(
        "event_handlers",
        W,
        "kept, not applied: no webhooks or event handlers are called",
    ),
    r(
        "response_processors",
        W,
        "kept, not applied: responses are not processed",
    ),
    r(
        "enable_batch_request_support",
        W,
        "kept, not applied: there is no /tyk/batch/ endpoint; such requests go to the upstream",
    ),
    r(
        "uptime_tests",
        W,
        "(with entries in uptime_tests.check_list) kept, not applied: no uptime checks are run",
    ),
    r(
        "notifications",
        W,
        "kept, not applied: no key notifications are sent",
    ),
    r(
        "session_lifetime",
        W,
        "kept, not applied: a session lasts as long as its token and policies allow",
    ),
    r(
        "session_lifetime_respects_key_expiration",
        W,
        "kept, not applied: a session lasts as long as its token and policies allow",
    ),
    r(
        "do_not_track",
        W,
        "kept, not applied: requests to this API are counted in analytics",
    ),
    r(
        "enable_detailed_recording",
        W,
        "kept, not applied: analytics hold counts, not request and response bodies",
    ),
    r(
        "expire_analytics_after",
        W,
        "kept, not applied: analytics_retention_days applies",
    ),
    r(
        "tag_headers",
        W,
        "kept, not applied: analytics are not tagged from headers",
    ),
    r(
        "analytics_plugin",
        W,
        "(with analytics_plugin.enable) kept, not applied: no analytics plugin is run",
    ),
    r(
        "detailed_tracing",
        W,
        "kept, not applied: no tracing spans are exported",
    ),
];

/// Tyk policy fields and what Gatehouse does with them, as `docs/tyk-compatibility.md` states
/// them: derived from [`crate::policy::POLICY_FIELDS`], the table
/// [`validate_policy`](crate::policy::validate_policy) applies, so the two cannot differ. Fields
/// that are only kept (labels, ids, Tyk's runtime counters) are listed as enforced, like the API
/// definition's bookkeeping fields.
pub fn policy_fields() -> Vec<FieldRule> {
    use crate::policy::FieldSupport;
    crate::policy::POLICY_FIELDS
        .iter()
        .map(|(path, support, note)| FieldRule {
            path,
            status: match support {
                FieldSupport::Enforced | FieldSupport::Kept => Status::Enforced,
                FieldSupport::Warned => Status::Warned,
                FieldSupport::Refused => Status::Refused,
            },
            note,
        })
        .collect()
}

/// Looks a field up: the exact path, else `parent.*`.
fn lookup<'t>(table: &'t [FieldRule], parent: &str, key: &str) -> Option<&'t FieldRule> {
    let exact = join(parent, key);
    table.iter().find(|r| r.path == exact).or_else(|| {
        let any = join(parent, "*");
        table.iter().find(|r| r.path == any)
    })
}

fn has_children(table: &[FieldRule], path: &str) -> bool {
    let prefix = format!("{path}.");
    table.iter().any(|r| r.path.starts_with(&prefix))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Whether a value carries information (see the module docs): [`crate::api::has_value`], with
/// array entries marked `"disabled": true` left out.
pub fn has_active_value(v: &Value) -> bool {
    match v {
        Value::Array(a) => a
            .iter()
            .any(|e| !is_disabled(e) && crate::api::has_value(e)),
        Value::Object(o) => o.values().any(has_active_value),
        other => crate::api::has_value(other),
    }
}

fn is_disabled(e: &Value) -> bool {
    e.get("disabled").and_then(Value::as_bool) == Some(true)
}

fn flag(parent: &Map<String, Value>, key: &str) -> bool {
    parent.get(key).and_then(Value::as_bool) == Some(true)
}

/// Whether a field's value counts, for the fields whose effect depends on a switch or on the
/// value (stated at the start of their note).
fn counts(pattern: &str, v: &Value, parent: &Map<String, Value>) -> bool {
    match pattern {
        "allowed_ips" => {
            flag(parent, "enable_ip_whitelisting")
                && !flag(parent, "ip_access_control_disabled")
                && has_active_value(v)
        }
        "blacklisted_ips" => {
            flag(parent, "enable_ip_blacklisting")
                && !flag(parent, "ip_access_control_disabled")
                && has_active_value(v)
        }
        "protocol" => !matches!(v.as_str(), None | Some("" | "http" | "https")),
        "proxy.transport.ssl_min_version" => v.as_u64().is_some_and(|n| n > 771),
        "max_query_depth" => v.as_i64().is_some_and(|n| n > 0),
        "smoothing" => flag_of(v, "enabled"),
        "upstream_certificates" => {
            !flag(parent, "upstream_certificates_disabled") && has_active_value(v)
        }
        "pinned_public_keys" => {
            !flag(parent, "certificate_pinning_disabled") && has_active_value(v)
        }
        "custom_middleware_bundle" => {
            !flag(parent, "custom_middleware_bundle_disabled") && has_active_value(v)
        }
        "config_data" => !flag(parent, "config_data_disabled") && has_active_value(v),
        "version_data.versions.*.global_response_headers"
        | "version_data.versions.*.global_response_headers_remove" => {
            !flag(parent, "global_response_headers_disabled") && has_active_value(v)
        }
        "custom_middleware" => {
            ["pre", "post", "post_key_auth", "response"]
                .iter()
                .any(|k| v.get(k).is_some_and(has_active_value))
                || v.get("auth_check")
                    .and_then(|a| a.get("name"))
                    .is_some_and(crate::api::has_value)
        }
        "CORS" | "analytics_plugin" => flag_of(v, "enable"),
        "cache_options" => flag_of(v, "enable_cache"),
        "external_oauth" | "upstream_auth" => flag_of(v, "enabled"),
        "request_signing" => flag_of(v, "is_enabled"),
        "proxy.service_discovery" => flag_of(v, "use_discovery_service"),
        "uptime_tests" => v.get("check_list").is_some_and(has_active_value),
        "auth_provider" | "session_provider" => v.get("name").is_some_and(crate::api::has_value),
        "version_data.versions.*.extended_paths.validate_request" => v
            .as_array()
            .is_some_and(|a| a.iter().any(|e| flag_of(e, "enabled"))),
        _ => has_active_value(v),
    }
}

fn flag_of(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool) == Some(true)
}

/// Checks a document against a table: the first refused field carrying a value is an error
/// naming it; warned fields carrying a value and unknown fields carrying a value become warnings.
pub fn check_fields(
    table: &[FieldRule],
    doc: &Map<String, Value>,
) -> Result<Vec<String>, ValidationError> {
    let mut warnings = Vec::new();
    walk(table, doc, "", "", &mut warnings)?;
    Ok(warnings)
}

fn walk(
    table: &[FieldRule],
    obj: &Map<String, Value>,
    pattern_prefix: &str,
    field_prefix: &str,
    out: &mut Vec<String>,
) -> Result<(), ValidationError> {
    for (k, v) in obj {
        let field = join(field_prefix, k);
        let Some(rule) = lookup(table, pattern_prefix, k) else {
            if has_active_value(v) {
                out.push(format!(
                    "{field}: not a Tyk Classic field Gatehouse knows; kept, no effect"
                ));
            }
            continue;
        };
        if has_children(table, rule.path) {
            if let Value::Object(children) = v {
                walk(table, children, rule.path, &field, out)?;
            }
            continue;
        }
        if !counts(rule.path, v, obj) {
            continue;
        }
        match rule.status {
            Status::Enforced => {}
            Status::Warned => out.push(format!("{field}: {}", rule.note)),
            Status::Refused => {
                return Err(ValidationError::new(
                    field.clone(),
                    format!("{field}: {}", rule.note),
                ));
            }
        }
    }
    Ok(())
}

/// The rows of a table as `docs/tyk-compatibility.md` writes them.
pub fn markdown_rows(table: &[FieldRule]) -> Vec<String> {
    table
        .iter()
        .map(|r| format!("| `{}` | {} | {} |", r.path, r.status.as_str(), r.note))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn paths_are_unique_and_notes_fit_in_a_table() {
        for table in [API_FIELDS, &policy_fields()] {
            let mut seen = std::collections::HashSet::new();
            for r in table {
                assert!(seen.insert(r.path), "duplicate {}", r.path);
                assert!(
                    !r.note.contains('|') && !r.note.contains('\n'),
                    "{}",
                    r.path
                );
                assert!(!r.note.contains("  "), "double space in {}", r.path);
            }
        }
    }

    /// `docs/tyk-compatibility.md` must list exactly the code's tables, in order, word for word.
    #[test]
    fn the_document_matches_the_code() {
        let doc = include_str!("../../../docs/tyk-compatibility.md");
        let policies = policy_fields();
        for (heading, table) in [
            ("## API definitions", API_FIELDS),
            ("## Policies", policies.as_slice()),
        ] {
            let start = doc
                .find(heading)
                .unwrap_or_else(|| panic!("docs/tyk-compatibility.md has no '{heading}'"));
            let section = &doc[start + heading.len()..];
            let section = &section[..section.find("\n## ").unwrap_or(section.len())];
            let rows: Vec<&str> = section
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("| `"))
                .collect();
            let expected = markdown_rows(table);
            if rows != expected {
                let first = rows
                    .iter()
                    .zip(&expected)
                    .position(|(a, b)| *a != b.as_str())
                    .unwrap_or(rows.len().min(expected.len()));
                panic!(
                    "{heading} in docs/tyk-compatibility.md differs from the code table at row \
                     {first}:\n  doc:  {:?}\n  code: {:?}\nThe rows the code expects:\n{}",
                    rows.get(first),
                    expected.get(first),
                    expected.join("\n")
                );
            }
        }
    }

    #[test]
    fn refused_fields_are_refused_only_with_a_value() {
        let e = check_fields(API_FIELDS, &obj(json!({"use_basic_auth": true}))).unwrap_err();
        assert_eq!(e.field, "use_basic_auth");
        assert!(
            e.message
                .starts_with("use_basic_auth: basic authentication")
        );
        assert!(check_fields(API_FIELDS, &obj(json!({"use_basic_auth": false}))).is_ok());
        let e = check_fields(
            API_FIELDS,
            &obj(
                json!({"version_data": {"versions": {"v1": {"extended_paths":
                {"validate_json": [{"path": "/x", "method": "POST"}]}}}}}),
            ),
        )
        .unwrap_err();
        assert_eq!(
            e.field,
            "version_data.versions.v1.extended_paths.validate_json"
        );
        // Disabled entries carry nothing.
        assert!(
            check_fields(
                API_FIELDS,
                &obj(
                    json!({"version_data": {"versions": {"v1": {"extended_paths":
                {"validate_json": [{"path": "/x", "method": "POST", "disabled": true}]}}}}})
                ),
            )
            .is_ok()
        );
    }

    #[test]
    fn switches_decide_whether_a_field_counts() {
        let ok = |v: Value| check_fields(API_FIELDS, &obj(v)).is_ok();
        assert!(ok(json!({"allowed_ips": ["10.0.0.1"]})));
        assert!(!ok(
            json!({"allowed_ips": ["10.0.0.1"], "enable_ip_whitelisting": true})
        ));
        assert!(ok(
            json!({"allowed_ips": ["10.0.0.1"], "enable_ip_whitelisting": true,
                          "ip_access_control_disabled": true})
        ));
        assert!(ok(
            json!({"enable_ip_whitelisting": true, "allowed_ips": []})
        ));
        assert!(!ok(
            json!({"blacklisted_ips": ["1.2.3.4"], "enable_ip_blacklisting": true})
        ));
        assert!(ok(json!({"protocol": "http"})) && ok(json!({"protocol": ""})));
        assert!(!ok(json!({"protocol": "tcp"})));
        assert!(ok(
            json!({"proxy": {"transport": {"ssl_min_version": 771}}})
        ));
        assert!(!ok(
            json!({"proxy": {"transport": {"ssl_min_version": 772}}})
        ));
        assert!(ok(json!({"pinned_public_keys": {"*": "abc"},
                          "certificate_pinning_disabled": true})));
        assert!(!ok(json!({"pinned_public_keys": {"*": "abc"}})));
        assert!(ok(
            json!({"custom_middleware": {"pre": [], "post": [], "driver": "otto",
            "auth_check": {"name": "", "path": ""}, "id_extractor": {"extract_from": "header"}}})
        ));
        assert!(!ok(
            json!({"custom_middleware": {"pre": [{"name": "x", "path": "x.js"}]}})
        ));
        assert!(!ok(
            json!({"custom_middleware": {"auth_check": {"name": "check"}}})
        ));
        assert!(ok(
            json!({"custom_middleware": {"pre": [{"name": "x", "disabled": true}]}})
        ));
        assert!(ok(
            json!({"graphql": {"enabled": false, "execution_mode": "proxyOnly",
                                      "version": "2", "playground": {"enabled": false}}})
        ));
        assert!(!ok(json!({"graphql": {"enabled": true}})));
        assert!(ok(
            json!({"version_data": {"versions": {"v1": {"extended_paths":
            {"validate_request": [{"enabled": false, "path": "/x"}]}}}}})
        ));
        assert!(!ok(
            json!({"version_data": {"versions": {"v1": {"extended_paths":
            {"validate_request": [{"enabled": true, "path": "/x"}]}}}}})
        ));
    }

    #[test]
    fn warned_and_unknown_fields_become_warnings() {
        let w = check_fields(
            API_FIELDS,
            &obj(json!({
                "CORS": {"enable": true},
                "cache_options": {"enable_cache": false},
                "something_new": 1,
                "proxy": {"listen_path": "/a/", "target_list": ["http://b"], "mystery": true},
                "version_data": {"versions": {"Default": {
                    "global_response_headers": {"X-A": "1"},
                    "global_response_headers_disabled": true,
                    "extended_paths": {"transform": [{"path": "/x"}], "hard_timeouts": []}
                }}}
            })),
        )
        .unwrap();
        assert_eq!(
            w,
            vec![
                "CORS: (with CORS.enable) kept, not applied: no CORS headers are added and \
                 preflight requests reach the upstream"
                    .to_owned(),
                "something_new: not a Tyk Classic field Gatehouse knows; kept, no effect"
                    .to_owned(),
                "proxy.target_list: kept, not applied: every request goes to target_url".to_owned(),
                "proxy.mystery: not a Tyk Classic field Gatehouse knows; kept, no effect"
                    .to_owned(),
                format!(
                    "version_data.versions.Default.extended_paths.transform: {NOT_TRANSFORMED}"
                ),
            ]
        );
    }
}
