//! Authorization after a JWT was verified: which policies apply, what they grant together, the
//! per-identity session, and the access checks, with Tyk's semantics and public error messages.
//!
//! # Per request (what the gateway does)
//!
//! 1. Verify the token (signature, `exp`/`iat`/`nbf`): not this module.
//! 2. `identity = claims::identity(&claims, &api.jwt_identity_base_field)?` (403 on error).
//! 3. `client = claims::client_id_for(&claims, api.idp_client_id_mapping_disabled)`; when it names
//!    a client registered through the developer portal, take that client's catalogue policies.
//! 4. `existing = sessions.get((api.org_id, identity))`.
//! 5. `ids = resolve_policies_for_org(ResolveInput { claims, api, policy_exists, session_exists:
//!    existing.is_some(), client_policies }, &|id| policies[id].applies_to_org(&api.org_id))?`
//!    (a policy of another organisation is refused with Tyk's answers, see
//!    [`resolve_policies_for_org`]).
//! 6. `effective = cache.get_or_try_insert(policy_set_key(&ids), || apply_policies(&policies))?`
//!    (the policies are looked up by id; cache per policy set and drop the cache when a policy
//!    changes, so policy edits reach every session on its next request, as in Tyk).
//! 7. Existing session: `session.refresh(&effective, claims::expiry(&claims), client, now)`;
//!    otherwise insert `SessionState::new(identity, &effective, claims::expiry(&claims), client,
//!    now)`. This happens before step 8, as in Tyk, where the JWT middleware stores the session
//!    before the access-rights middleware runs.
//! 8. `authorize(&effective, &session, now, api_id, version, path, method)?`.
//! 9. Rate limit and quota with `effective.limits_for(api_id)`; the counter key is
//!    `org + identity + limits.scope_key` (not the API id: in Tyk one allowance is shared by all
//!    the APIs a policy grants, unless scopes separate them). A quota renewal of `0` never renews.
//!    When `effective.endpoint_limit(api_id, path, method)` returns a limit, its rate **replaces**
//!    the API's rate for this request and is counted under a key that also holds
//!    `EndpointLimit::key`; the quota is unchanged (Tyk's `ForwardMessage`).
//!
//! # Policy resolution (Tyk `processCentralisedJWT`)
//!
//! See [`resolve_policies`]. Gatehouse re-derives the policy list from the token and the API
//! definition on every request; the only thing the existing session changes is which error a
//! token without policy and scope gets. (Tyk keeps the previous list when the token's base policy
//! is already in it, which lets scope-derived policies of an earlier token survive; Gatehouse does
//! not reproduce that retention.)
//!
//! # Combining policies (Tyk `ApplyPolicies`)
//!
//! See [`apply_policies`]: partitions (`acl`, `rate_limit`, `quota`, `complexity`), `per_api`
//! limits (`access_rights.<api>.limit`), per-endpoint rate limits (`access_rights.<api>.endpoints`),
//! unlimited values (`-1`) that win merges, quotas that never renew (`quota_renewal_rate: 0`),
//! counter scopes, and the errors for `per_api` mixed with partitions, as Tyk computes them.
//! Policies in state `draft` or `deny` (or `active: false`, `is_inactive: true`) make the session
//! inactive (403 `Key is inactive, please renew`). A policy applies only to APIs of its own
//! `org_id` ([`crate::policy::applies_to_org`], checked by [`resolve_policies_for_org`]).
//!
//! # Not supported
//!
//! GraphQL rights and depth limits, rate-limit smoothing and conditional `allowed_urls` are not
//! implemented: policy validation refuses them when set ([`crate::policy::POLICY_FIELDS`]).
//! Throttling (Tyk retrying a rate-limited request inside the gateway) and `post_expiry_action`
//! are not implemented either; they only add behaviour, so they come back as warnings.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::ApiDefinition;
use crate::claims::{self, Claims, PolicyClaim};
use crate::policy::{AccessSpec, ApiLimit, Endpoint, Policy};

/// Why a verified token may not make this request. Every variant carries Tyk's public message
/// ([`AuthzError::message`], also the `Display` text) and status ([`AuthzError::status`]); the
/// gateway answers `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// 403: the identity claim (`jwt_identity_base_field`) holds `""`.
    #[error("found an empty user ID in predefined base claim, claim: {claim}")]
    EmptyBaseClaim {
        /// The configured claim name.
        claim: String,
    },
    /// 403: the identity falls back to `sub`, which holds `""`.
    #[error("found an empty user ID in sub claim")]
    EmptySubClaim,
    /// 403: neither the identity claim nor `sub` holds a string.
    #[error("no suitable claims for user ID were found")]
    NoIdentityClaim,
    /// 403: the policy claim names an unknown policy or one of another organisation (or every
    /// policy of the token's portal-registered client is unknown, or one of them belongs to
    /// another organisation).
    #[error("key not authorized: no matching policy")]
    NoMatchingPolicy,
    /// 403: no policy can be determined (no claim, no client policies, no defaults, no scopes).
    #[error("key not authorized: no matching policy found")]
    NoMatchingPolicyFound,
    /// 403: the token has scopes, none is mapped, and there is no other base policy.
    #[error("key not authorized: no matching policy found in scope claim")]
    NoMatchingPolicyInScopeClaim,
    /// 403: an existing session's token has neither a base policy nor scopes while a scope mapping
    /// is configured (Tyk's privilege-escalation guard).
    #[error("key not authorized: no scope or policy in token")]
    NoScopeOrPolicyInToken,
    /// 500: a configured policy (default policies, scope mapping) does not exist and no other
    /// policy could be applied (Tyk: `failed to create key: policy not found: "<id>"`).
    #[error("failed to create key: policy not found: {id:?}")]
    PolicyNotFound {
        /// The first unknown policy id.
        id: String,
    },
    /// 500: the policies grant no API at all (Tyk: `key has no valid policies to be applied`).
    #[error("failed to create key: key has no valid policies to be applied")]
    NoValidPolicies,
    /// 500: a policy sets `partitions.per_api` together with another partition, which Tyk refuses
    /// to apply (validation refuses such a policy; this catches stored ones).
    #[error(
        "failed to create key: cannot apply policy {id} which has per_api and any of partitions set"
    )]
    PerApiWithPartitions {
        /// The offending policy.
        id: String,
    },
    /// 500: `per_api` policies are applied together with partitioned ones (Tyk's
    /// `ErrMixedPartitionAndPerAPIPolicies`).
    #[error(
        "failed to create key: cannot apply multiple policies when some have per_api set and some are partitioned"
    )]
    MixedPerApiAndPartitions,
    /// 500: one of the API's default policies belongs to another organisation (Tyk refuses the
    /// whole key: `failed to create key: attempting to apply policy from different organisation
    /// to key, skipping`).
    #[error(
        "failed to create key: attempting to apply policy from different organisation to key, skipping"
    )]
    ForeignOrgPolicy {
        /// The first policy of another organisation (for logs; not in the public message).
        id: String,
    },
    /// 403: a policy the token's scopes map to belongs to another organisation (Tyk: `key not
    /// authorized: could not apply several policies`).
    #[error("key not authorized: could not apply several policies")]
    CouldNotApplyScopePolicies {
        /// The first policy of another organisation (for logs; not in the public message).
        id: String,
    },
    /// 401: the session expired (`key_expires_in` elapsed and no later token `exp`).
    #[error("Key has expired, please renew")]
    KeyExpired,
    /// 403: one of the applied policies is inactive.
    #[error("Key is inactive, please renew")]
    KeyInactive,
    /// 403: the policies do not grant this API, or not this version of it.
    #[error("Access to this API has been disallowed")]
    ApiDisallowed,
    /// 403: the API's `allowed_urls` do not allow this path and method.
    #[error("Access to this resource has been disallowed")]
    ResourceDisallowed,
}

impl AuthzError {
    /// The HTTP status Tyk answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::KeyExpired => 401,
            Self::PolicyNotFound { .. }
            | Self::NoValidPolicies
            | Self::PerApiWithPartitions { .. }
            | Self::MixedPerApiAndPartitions
            | Self::ForeignOrgPolicy { .. } => 500,
            _ => 403,
        }
    }

    /// Tyk's public message (the body is `{"error": message}`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// What [`resolve_policies_for_org`] needs about a request.
#[derive(Clone, Copy)]
pub struct ResolveInput<'a> {
    /// The verified claims.
    pub claims: &'a Claims,
    /// The API being called (policy field name, default policies, scope mapping).
    pub api: &'a ApiDefinition,
    /// Whether a policy with this id exists.
    pub policy_exists: &'a dyn Fn(&str) -> bool,
    /// Whether the identity already has a session (for this API's organisation).
    pub session_exists: bool,
    /// Gatehouse extension: the catalogue policies of the portal-registered OAuth client the token
    /// was issued to (see [`claims::client_id`]); `None` when the client is not a portal client.
    pub client_policies: Option<&'a [String]>,
}

/// Where the base policies of a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BaseSource {
    Claim,
    Client,
    Defaults,
    Nothing,
}

/// The policy ids to apply to this token, in order (Tyk's `processCentralisedJWT`, §2.6):
///
/// 1. **Base policy.** The policy claim (`jwt_policy_field_name`, a non-empty string; see
///    [`claims::policy_claim`]). An unknown id → 403 [`AuthzError::NoMatchingPolicy`].
///    Otherwise (no claim, `""`, not a string) the **portal client's policies** (Gatehouse
///    extension, used before the defaults; unknown ids are dropped, all unknown → 403
///    [`AuthzError::NoMatchingPolicy`]). Otherwise **all** of `jwt_default_policies`.
/// 2. **Scope mapping** (when the API has one, `scopes.jwt` else the legacy fields): when the
///    token carries scopes, the result is the base policies (dropped when they are the defaults)
///    plus the mapped policies (sorted, deduplicated; unmapped scopes are ignored). An empty
///    result → 403 [`AuthzError::NoMatchingPolicyInScopeClaim`]. When the token carries no scopes,
///    has no base policy and the identity **already has a session** → 403
///    [`AuthzError::NoScopeOrPolicyInToken`] (Tyk's privilege-escalation guard).
/// 3. Nothing found → 403 [`AuthzError::NoMatchingPolicyFound`] (new session, or an existing
///    session without scope mapping; `TestJWT_TraditionalAuth_ExistingSessionNoPolicyInToken`).
/// 4. Unknown ids from the defaults or the scope mapping are dropped (Tyk skips a missing policy
///    when several are applied); when none is left → 500 [`AuthzError::PolicyNotFound`]
///    (`failed to create key: policy not found: "<id>"`, as Tyk answers for a wrong default).
///
/// Duplicates are removed, the first occurrence wins. The result is never empty.
///
/// This does **not** check organisations: the gateway calls [`resolve_policies_for_org`], which
/// is the same with Tyk's organisation check. This form is for callers without organisations
/// (tests, benchmarks) and equals `resolve_policies_for_org(input, &|_| true)`.
pub fn resolve_policies(input: ResolveInput<'_>) -> Result<Vec<String>, AuthzError> {
    resolve_policies_for_org(input, &|_| true)
}

/// [`resolve_policies`] with Tyk's organisation check: `in_api_org(id)` says whether the
/// (existing) policy `id` belongs to the organisation of the API being called; the gateway passes
/// `|id| policies[id].applies_to_org(&api.org_id)` ([`crate::policy::applies_to_org`]: equal
/// `org_id`s, an empty one matching only an empty one). A policy of another organisation is never
/// silently dropped:
///
/// - named by the policy claim → 403 [`AuthzError::NoMatchingPolicy`] (Tyk's answer, as for an
///   unknown policy);
/// - among the portal client's policies → 403 [`AuthzError::NoMatchingPolicy`];
/// - among the default policies that are applied → 500 [`AuthzError::ForeignOrgPolicy`]
///   (`failed to create key: attempting to apply policy from different organisation to key,
///   skipping`, Tyk's answer for a new session);
/// - mapped from a scope → 403 [`AuthzError::CouldNotApplyScopePolicies`] (`key not authorized:
///   could not apply several policies`).
///
/// Unknown policies are handled as in [`resolve_policies`] (the organisation check comes first,
/// as in Tyk, where a missing policy is skipped but a foreign one fails the request).
pub fn resolve_policies_for_org(
    input: ResolveInput<'_>,
    in_api_org: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, AuthzError> {
    let ResolveInput {
        claims,
        api,
        policy_exists,
        session_exists,
        client_policies,
    } = input;

    let (base, source) =
        if let PolicyClaim::Value(id) = claims::policy_claim(claims, &api.jwt_policy_field_name) {
            if !policy_exists(&id) || !in_api_org(&id) {
                return Err(AuthzError::NoMatchingPolicy);
            }
            (vec![id], BaseSource::Claim)
        } else if let Some(client) = client_policies.filter(|c| c.iter().any(|id| !id.is_empty())) {
            let known = dedup(client.iter().filter(|id| policy_exists(id)));
            if known.is_empty() || known.iter().any(|id| !in_api_org(id)) {
                return Err(AuthzError::NoMatchingPolicy);
            }
            (known, BaseSource::Client)
        } else if api.jwt_default_policies.iter().any(|id| !id.is_empty()) {
            (dedup(api.jwt_default_policies.iter()), BaseSource::Defaults)
        } else {
            (Vec::new(), BaseSource::Nothing)
        };

    let (scope_claim, mapping) = scope_mapping(api);
    let mut from_scopes: BTreeSet<&String> = BTreeSet::new();
    let mut ids = if mapping.is_empty() {
        base
    } else {
        let scopes = claims::scopes(claims, scope_claim);
        if !scopes.is_empty() {
            let mut ids = if source == BaseSource::Defaults {
                Vec::new()
            } else {
                base
            };
            let mapped: BTreeSet<&String> = scopes
                .iter()
                .filter_map(|s| mapping.get(s))
                .filter(|id| !id.is_empty())
                .collect();
            for id in mapped {
                if !ids.contains(id) {
                    ids.push(id.clone());
                    from_scopes.insert(id);
                }
            }
            if ids.is_empty() {
                return Err(AuthzError::NoMatchingPolicyInScopeClaim);
            }
            ids
        } else if base.is_empty() && session_exists {
            return Err(AuthzError::NoScopeOrPolicyInToken);
        } else {
            base
        }
    };

    if ids.is_empty() {
        return Err(AuthzError::NoMatchingPolicyFound);
    }
    if let Some(foreign) = ids.iter().find(|id| policy_exists(id) && !in_api_org(id)) {
        let id = foreign.clone();
        return Err(if from_scopes.contains(foreign) {
            AuthzError::CouldNotApplyScopePolicies { id }
        } else {
            AuthzError::ForeignOrgPolicy { id }
        });
    }
    if let Some(unknown) = ids.iter().find(|id| !policy_exists(id)).cloned() {
        ids.retain(|id| policy_exists(id));
        if ids.is_empty() {
            return Err(AuthzError::PolicyNotFound { id: unknown });
        }
    }
    Ok(ids)
}

fn dedup<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !id.is_empty() && !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// The scope claim name and mapping in force, borrowed (same rule as
/// [`ApiDefinition::scope_mapping`], which clones).
fn scope_mapping(api: &ApiDefinition) -> (&str, &BTreeMap<String, String>) {
    fn or_scope(name: &str) -> &str {
        if name.is_empty() { "scope" } else { name }
    }
    if api.scopes.jwt.scope_to_policy.is_empty() {
        (
            or_scope(&api.jwt_scope_claim_name),
            &api.jwt_scope_to_policy_mapping,
        )
    } else {
        (
            or_scope(&api.scopes.jwt.scope_claim_name),
            &api.scopes.jwt.scope_to_policy,
        )
    }
}

/// The cache key of a resolved policy list: the ids in order, joined with `,` (policy ids cannot
/// contain a comma). Order matters to [`apply_policies`] (metadata, counter scopes).
pub fn policy_set_key(ids: &[String]) -> String {
    ids.join(",")
}

/// The rate limit and quota for one API, and the scope of their counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `(rate, per)`: `rate` requests per `per` seconds; `None` = no rate limit (Tyk's `rate`
    /// or `per` of `0` or less).
    pub rate: Option<(f64, f64)>,
    /// `(max, renewal_secs)`: `max` requests per `renewal_secs`; `None` = unlimited (Tyk's
    /// `quota_max` of `0` or `-1`). `renewal_secs == 0` means the quota **never renews**: once
    /// `max` requests were admitted, every later request is refused (Tyk's `quota_renewal_rate`
    /// of `0` or less); `gatehouse_ratelimit::QuotaLimit::from_tyk(max, 0)` is such a quota.
    pub quota: Option<(i64, i64)>,
    /// Which counters to use, appended to the identity: `""` = the identity's shared counters;
    /// otherwise Tyk's `allowance_scope`: a policy id when different policies grant different
    /// APIs, and with `per_api` the API id (the API has its own limit) or the policy id (the API
    /// uses the policy-level limit), so that each allowance is counted separately.
    pub scope_key: String,
}

/// One `allowed_urls` entry after merging, with its pattern compiled once.
#[derive(Debug, Clone)]
pub struct AllowedUrl {
    /// The pattern as written in the policy.
    pub url: String,
    /// Allowed methods (exact, case-sensitive match as in Tyk); empty allows none.
    pub methods: Vec<String>,
    regex: Option<Regex>,
}

impl AllowedUrl {
    fn new(url: String, methods: Vec<String>) -> Self {
        let regex = compile_allowed_url(&url).ok();
        Self {
            url,
            methods,
            regex,
        }
    }

    /// Whether the pattern compiled; an invalid pattern never matches (Tyk skips it).
    pub fn is_valid(&self) -> bool {
        self.regex.is_some()
    }

    /// Whether this entry allows `method` on `path`: the method is listed and the pattern matches
    /// somewhere in the path (an unanchored search, as Tyk does; use `^`/`$` to anchor).
    pub fn allows(&self, path: &str, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
            && self.regex.as_ref().is_some_and(|r| r.is_match(path))
    }
}

/// Compiles an `allowed_urls` pattern the way Tyk prepares it (`httputil.PreparePathRegexp`
/// without prefix/suffix matching): when the braces balance, mux-style parameters `{name}` become
/// `([^/]+)` (note that this also rewrites a regex quantifier such as `{3}`, as Tyk does); `/*/`
/// becomes `/[^/]+/` and `/*` becomes `/.*`. The result is an unanchored regular expression.
///
/// Policy validation can use this to accept exactly the patterns the gateway can use.
pub fn compile_allowed_url(url: &str) -> Result<Regex, regex::Error> {
    Regex::new(&prepare_path_pattern(url))
}

fn prepare_path_pattern(url: &str) -> String {
    let opens = url.matches('{').count();
    let mut pattern = if opens > 0 && opens == url.matches('}').count() {
        replace_mux_params(url)
    } else {
        url.to_owned()
    };
    if pattern.contains("/*") {
        pattern = pattern.replace("/*/", "/[^/]+/").replace("/*", "/.*");
    }
    pattern
}

/// Replaces every `{…}` with at least one character inside by `([^/]+)`.
fn replace_mux_params(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if j > 0 => {
                out.push_str(&rest[..i]);
                out.push_str("([^/]+)");
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str(&rest[..=i]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What the applied policies grant on one API.
#[derive(Debug, Clone)]
pub struct ApiAccess {
    /// Allowed versions; empty allows every version.
    pub versions: Vec<String>,
    /// When non-empty, only these paths and methods are allowed.
    pub allowed_urls: Vec<AllowedUrl>,
    /// Rate limit and quota for this API (from the policies that grant it).
    pub limits: Limits,
    /// Per-endpoint rate limits, in the order they are tried ([`EffectivePolicy::endpoint_limit`]).
    pub endpoints: Vec<EndpointRule>,
}

/// One path pattern of `access_rights.<api>.endpoints` after merging, compiled once.
#[derive(Debug, Clone)]
pub struct EndpointRule {
    /// The pattern as written in the policy.
    pub path: String,
    /// The limited methods, each with its limit and counter key.
    pub methods: Vec<EndpointMethodLimit>,
    regex: Option<Regex>,
}

impl EndpointRule {
    /// Whether the pattern compiled; an invalid pattern never matches (Tyk skips it; validation
    /// refuses it).
    pub fn is_valid(&self) -> bool {
        self.regex.is_some()
    }
}

/// One method of an [`EndpointRule`].
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointMethodLimit {
    /// The method as written in the policy (matched case-insensitively).
    pub name: String,
    /// `(rate, per)`; `None` = this endpoint is not rate limited (Tyk's `rate` of `0` or `-1`).
    pub rate: Option<(f64, f64)>,
    /// The counter key fragment ([`EndpointLimit::key`]).
    pub key: String,
}

/// The rate limit of the endpoint a request falls under ([`EffectivePolicy::endpoint_limit`]).
///
/// As in Tyk (`SessionLimiter.ForwardMessage`), an endpoint limit **replaces** the API's rate
/// limit ([`Limits::rate`]) for that request and is counted in its own counter; the quota is
/// unchanged. So `rate: None` means the request is not rate limited at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointLimit<'a> {
    /// A counter key fragment, unique per endpoint pattern and method within the API and stable
    /// across reloads: `<method>:<path pattern>`, every byte other than ASCII letters, digits
    /// and `-._~/` percent-encoded (so it holds no spaces, braces or colons of its own and can be
    /// embedded in a Redis key). Append it to the API's counter key, e.g.
    /// `rate-limit-<scope>-<key>-{<identity>}`.
    pub key: &'a str,
    /// `(rate, per)` for this endpoint; `None` = not rate limited.
    pub rate: Option<(f64, f64)>,
    /// The matching pattern as written in the policy.
    pub path: &'a str,
    /// The method as written in the policy.
    pub method: &'a str,
}

/// The combination of the policies applied to a session (Tyk's `ApplyPolicies`, §3.3). Built by
/// [`apply_policies`]; the gateway caches it per policy set ([`policy_set_key`]).
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    /// The applied policy ids, in order, without duplicates.
    pub policy_ids: Vec<String>,
    /// What is granted, per API id.
    pub access_rights: BTreeMap<String, ApiAccess>,
    /// Tyk's session-level rate after applying (what an API that got no rate-limit partition
    /// inherits); `None` = none. For limiting a request use [`EffectivePolicy::limits_for`].
    pub rate: Option<(f64, f64)>,
    /// Tyk's session-level quota after applying (`renewal 0` = never renews); `None` =
    /// unlimited. Per request: [`EffectivePolicy::limits_for`].
    pub quota: Option<(i64, i64)>,
    /// Union of the policies' tags, in order of first appearance.
    pub tags: Vec<String>,
    /// The policies' metadata merged; a later policy overwrites an earlier one's keys.
    pub meta_data: Map<String, Value>,
    /// Whether any policy is inactive ([`Policy::inactive`]: `is_inactive`, `active: false`,
    /// `state` `draft` or `deny`).
    pub inactive: bool,
    /// Lifetime of a new session in seconds, `0` = never expires: `0` when any policy says never,
    /// else the largest value.
    pub key_expires_in: i64,
}

impl EffectivePolicy {
    /// The rate limit, quota and counter scope for requests to `api_id`; `None` when the policies
    /// do not grant that API.
    pub fn limits_for(&self, api_id: &str) -> Option<&Limits> {
        self.access_rights.get(api_id).map(|a| &a.limits)
    }

    /// The per-endpoint rate limit for `method` on `path` of `api_id`, as Tyk finds it
    /// (`SessionLimiter.RateLimitInfo`): the first [`EndpointRule`] (in [`ApiAccess::endpoints`]
    /// order) that lists the method (case-insensitive) and whose pattern matches somewhere in
    /// `path`. `path` is the request path relative to the listen path (`/items/1` for
    /// `/shop/items/1` under `/shop/`), without the query string, as [`authorize`] takes it.
    ///
    /// `None`: no endpoint limit applies; use [`Limits::rate`]. `Some`: use
    /// [`EndpointLimit::rate`] **instead of** the API's rate limit, counted under
    /// [`EndpointLimit::key`]; the quota still applies.
    pub fn endpoint_limit(
        &self,
        api_id: &str,
        path: &str,
        method: &str,
    ) -> Option<EndpointLimit<'_>> {
        let access = self.access_rights.get(api_id)?;
        for rule in &access.endpoints {
            let Some(m) = rule
                .methods
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(method))
            else {
                continue;
            };
            if rule.regex.as_ref().is_some_and(|r| r.is_match(path)) {
                return Some(EndpointLimit {
                    key: &m.key,
                    rate: m.rate,
                    path: &rule.path,
                    method: &m.name,
                });
            }
        }
        None
    }
}

/// Whether quota `a` is larger than quota `b`, where `-1` means unlimited (Tyk's
/// `greaterThanInt64`). Note that `0`, also "unlimited" when enforced, loses to any positive quota
/// when policies are combined, as in Tyk.
fn greater_than(a: i64, b: i64) -> bool {
    if a == -1 {
        return true;
    }
    if b == -1 {
        return false;
    }
    a > b
}

/// Tyk's `APILimit` while policies are combined: raw values with Tyk's conventions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RawLimit {
    rate: f64,
    per: f64,
    throttle_interval: f64,
    throttle_retry_limit: i64,
    max_query_depth: i64,
    quota_max: i64,
    quota_renewal_rate: i64,
    quota_renews: i64,
    quota_remaining: i64,
}

impl RawLimit {
    fn of_policy(p: &Policy) -> Self {
        Self {
            rate: p.rate,
            per: p.per,
            throttle_interval: p.throttle_interval,
            throttle_retry_limit: p.throttle_retry_limit,
            max_query_depth: p.max_query_depth,
            quota_max: p.quota_max,
            quota_renewal_rate: p.quota_renewal_rate,
            quota_renews: 0,
            quota_remaining: 0,
        }
    }

    fn of_api(l: &ApiLimit) -> Self {
        Self {
            rate: l.rate,
            per: l.per,
            throttle_interval: l.throttle_interval,
            throttle_retry_limit: l.throttle_retry_limit,
            max_query_depth: l.max_query_depth,
            quota_max: l.quota_max,
            quota_renewal_rate: l.quota_renewal_rate,
            quota_renews: l.quota_renews,
            quota_remaining: l.quota_remaining,
        }
    }

    /// Tyk's `APILimit.IsEmpty`.
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Tyk's `emptyRateLimit`: no rate set (it then takes no part in a merge).
    fn rate_is_empty(&self) -> bool {
        self.rate == 0.0 || self.per == 0.0
    }

    /// Tyk's `RateLimit.Duration`: nanoseconds between two requests, `0` when `rate` or `per` is
    /// `0` or less (so an unlimited `-1` is the "shortest" and wins every merge).
    fn duration(&self) -> i64 {
        rate_duration(self.rate, self.per)
    }

    fn rate(&self) -> Option<(f64, f64)> {
        rate_of(self.rate, self.per)
    }

    fn quota(&self) -> Option<(i64, i64)> {
        (self.quota_max > 0).then_some((self.quota_max, self.quota_renewal_rate.max(0)))
    }
}

fn rate_duration(rate: f64, per: f64) -> i64 {
    if per <= 0.0 || rate <= 0.0 {
        return 0;
    }
    // `as` saturates, like nothing in Go, but no real policy gets near it.
    (1e9 * per / rate) as i64
}

fn rate_of(rate: f64, per: f64) -> Option<(f64, f64)> {
    (rate > 0.0 && per > 0.0 && rate.is_finite() && per.is_finite()).then_some((rate, per))
}

/// Tyk's `Endpoint` (path and per-method limits) while policies are combined.
#[derive(Debug, Clone, PartialEq)]
struct RawEndpoint {
    path: String,
    methods: Vec<(String, f64, f64)>,
}

fn raw_endpoints(eps: &[Endpoint]) -> Vec<RawEndpoint> {
    eps.iter()
        .map(|e| RawEndpoint {
            path: e.path.clone(),
            methods: e
                .methods
                .iter()
                .map(|m| (m.name.clone(), m.limit.rate, m.limit.per))
                .collect(),
        })
        .collect()
}

/// Tyk's `Endpoints.Map`: `(path, method)` → `(rate, per)`; a later duplicate overwrites.
fn endpoints_map(eps: &[RawEndpoint]) -> BTreeMap<(String, String), (f64, f64)> {
    let mut out = BTreeMap::new();
    for e in eps {
        for (name, rate, per) in &e.methods {
            out.insert((e.path.clone(), name.clone()), (*rate, *per));
        }
    }
    out
}

/// Tyk's `EndpointsMap.Endpoints`: grouped by path, paths sorted, methods sorted by their
/// upper-case name.
fn map_to_endpoints(map: BTreeMap<(String, String), (f64, f64)>) -> Vec<RawEndpoint> {
    let mut out: Vec<RawEndpoint> = Vec::new();
    for ((path, name), (rate, per)) in map {
        match out.last_mut() {
            Some(last) if last.path == path => last.methods.push((name, rate, per)),
            _ => out.push(RawEndpoint {
                path,
                methods: vec![(name, rate, per)],
            }),
        }
    }
    for e in &mut out {
        e.methods
            .sort_by_key(|(name, _, _)| name.to_ascii_uppercase());
    }
    out
}

/// Tyk's `ApplyEndpointLevelLimits`: the endpoints of both, and where both limit the same path
/// and method, the higher request rate (the shorter interval; on a tie, the higher `rate`). An
/// unlimited endpoint (`rate <= 0`) wins.
fn merge_endpoints(policy: &[RawEndpoint], current: &[RawEndpoint]) -> Vec<RawEndpoint> {
    let current = endpoints_map(current);
    if current.is_empty() {
        return policy.to_vec();
    }
    let mut result = endpoints_map(policy);
    if result.is_empty() {
        return map_to_endpoints(current);
    }
    for (key, (c_rate, c_per)) in current {
        match result.get(&key).copied() {
            None => {
                result.insert(key, (c_rate, c_per));
            }
            Some((p_rate, p_per)) => {
                let (pd, cd) = (rate_duration(p_rate, p_per), rate_duration(c_rate, c_per));
                if pd > cd || (pd == cd && c_rate > p_rate) {
                    result.insert(key, (c_rate, c_per));
                }
            }
        }
    }
    map_to_endpoints(result)
}

/// What the policies grant on one API while they are combined (Tyk's `AccessDefinition`).
#[derive(Debug, Clone, Default)]
struct Right {
    versions: Vec<String>,
    urls: Vec<(String, Vec<String>)>,
    limit: RawLimit,
    /// Tyk's `Limit.SetBy`: the policy (or, with `per_api`, the scope) that last set this API.
    set_by: String,
    allowance_scope: String,
    endpoints: Vec<RawEndpoint>,
}

/// Tyk's `applyStatus`: which APIs got which partition.
#[derive(Default)]
struct ApplyState {
    did_acl: BTreeSet<String>,
    did_quota: BTreeSet<String>,
    did_rate: BTreeSet<String>,
    did_complexity: BTreeSet<String>,
    did_per_api: bool,
    did_partition: bool,
}

fn push_missing(dest: &mut Vec<String>, items: &[String]) {
    for item in items {
        if !dest.contains(item) {
            dest.push(item.clone());
        }
    }
}

/// Tyk's `MergeAllowedURLs`: per URL, in order of first appearance, methods unioned.
fn merge_allowed_urls(dest: &mut Vec<(String, Vec<String>)>, specs: &[AccessSpec]) {
    for spec in specs {
        match dest.iter_mut().find(|(url, _)| *url == spec.url) {
            Some((_, methods)) => push_missing(methods, &spec.methods),
            None => dest.push((spec.url.clone(), spec.methods.clone())),
        }
    }
}

/// Tyk's `ApplyRateLimits`: the policy's rate raises the API's and the session's when it allows
/// more (a shorter interval per request); a policy without a rate (`0`) changes nothing.
fn apply_rate_limits(session: &mut RawLimit, p: &Policy, api: &mut RawLimit) {
    let policy = RawLimit {
        rate: p.rate,
        per: p.per,
        ..RawLimit::default()
    };
    if policy.rate_is_empty() {
        return;
    }
    if api.rate_is_empty() || api.duration() > policy.duration() {
        api.rate = p.rate;
        api.per = p.per;
    }
    if session.rate_is_empty() || session.duration() > policy.duration() {
        session.rate = p.rate;
        session.per = p.per;
    }
}

/// Tyk's `applyPartitions` (also used for non-partitioned policies, which contribute every part).
fn apply_partitions(
    p: &Policy,
    session: &mut RawLimit,
    rights: &mut BTreeMap<String, Right>,
    st: &mut ApplyState,
) -> Result<(), AuthzError> {
    let parts = p.partitions;
    let partitioned = parts.enabled();
    if partitioned && st.did_per_api {
        return Err(AuthzError::MixedPerApiAndPartitions);
    }
    for (api_id, v) in &p.access_rights {
        let previous = rights.get(api_id).cloned().unwrap_or_default();
        let mut ar = previous.clone();
        if !partitioned || parts.acl {
            st.did_acl.insert(api_id.clone());
            push_missing(&mut ar.versions, &v.versions);
            merge_allowed_urls(&mut ar.urls, &v.allowed_urls);
            ar.set_by.clone_from(&p.id);
        }
        if !partitioned || parts.quota {
            st.did_quota.insert(api_id.clone());
            if greater_than(p.quota_max, ar.limit.quota_max) {
                ar.limit.quota_max = p.quota_max;
                if greater_than(p.quota_max, session.quota_max) {
                    session.quota_max = p.quota_max;
                }
            }
            if p.quota_renewal_rate > ar.limit.quota_renewal_rate {
                ar.limit.quota_renewal_rate = p.quota_renewal_rate;
                if p.quota_renewal_rate > session.quota_renewal_rate {
                    session.quota_renewal_rate = p.quota_renewal_rate;
                }
            }
        }
        if !partitioned || parts.rate_limit {
            st.did_rate.insert(api_id.clone());
            apply_rate_limits(session, p, &mut ar.limit);
            ar.endpoints = merge_endpoints(&raw_endpoints(&v.endpoints), &previous.endpoints);
            if p.throttle_retry_limit > ar.limit.throttle_retry_limit {
                ar.limit.throttle_retry_limit = p.throttle_retry_limit;
                if p.throttle_retry_limit > session.throttle_retry_limit {
                    session.throttle_retry_limit = p.throttle_retry_limit;
                }
            }
            if p.throttle_interval > ar.limit.throttle_interval {
                ar.limit.throttle_interval = p.throttle_interval;
                if p.throttle_interval > session.throttle_interval {
                    session.throttle_interval = p.throttle_interval;
                }
            }
        }
        if !partitioned || parts.complexity {
            st.did_complexity.insert(api_id.clone());
            if greater_than(p.max_query_depth, ar.limit.max_query_depth) {
                ar.limit.max_query_depth = p.max_query_depth;
                if greater_than(p.max_query_depth, session.max_query_depth) {
                    session.max_query_depth = p.max_query_depth;
                }
            }
        }
        rights.insert(api_id.clone(), ar);
    }
    // A policy without access rights (Tyk's "master policy") sets the session-level values.
    if p.access_rights.is_empty() {
        if !partitioned || parts.rate_limit {
            session.rate = p.rate;
            session.per = p.per;
            session.throttle_interval = p.throttle_interval;
            session.throttle_retry_limit = p.throttle_retry_limit;
        }
        if !partitioned || parts.complexity {
            session.max_query_depth = p.max_query_depth;
        }
        if !partitioned || parts.quota {
            session.quota_max = p.quota_max;
            session.quota_renewal_rate = p.quota_renewal_rate;
        }
    }
    st.did_partition = partitioned;
    Ok(())
}

/// Tyk's `applyPerAPI`: each API takes its own `limit` (counted under the API id) or, when that is
/// empty, the policy's values (counted under the policy id). A later `per_api` policy granting the
/// same API replaces its versions and `allowed_urls` and keeps the more permissive limits.
fn apply_per_api(
    p: &Policy,
    rights: &mut BTreeMap<String, Right>,
    st: &mut ApplyState,
) -> Result<(), AuthzError> {
    if st.did_partition {
        return Err(AuthzError::MixedPerApiAndPartitions);
    }
    for (api_id, v) in &p.access_rights {
        let (limit, scope) = if v.limit.is_empty() {
            (RawLimit::of_policy(p), p.id.clone())
        } else {
            (RawLimit::of_api(&v.limit), api_id.clone())
        };
        let mut ad = Right {
            versions: v.versions.clone(),
            urls: v
                .allowed_urls
                .iter()
                .map(|s| (s.url.clone(), s.methods.clone()))
                .collect(),
            limit,
            set_by: scope.clone(),
            allowance_scope: scope,
            endpoints: raw_endpoints(&v.endpoints),
        };
        if let Some(current) = rights.get(api_id) {
            apply_api_level_limits(&mut ad, current);
        }
        rights.insert(api_id.clone(), ad);
        st.did_acl.insert(api_id.clone());
        st.did_quota.insert(api_id.clone());
        st.did_rate.insert(api_id.clone());
        st.did_complexity.insert(api_id.clone());
    }
    if !p.access_rights.is_empty() {
        st.did_per_api = true;
    }
    Ok(())
}

/// Tyk's `applyAPILevelLimits`: `ad` (from a later `per_api` policy) keeps the more permissive
/// rate (shorter interval; an unlimited or unset rate counts as the shortest) and the higher
/// quota of `current`; when it takes either, it also takes `current`'s counter scope.
fn apply_api_level_limits(ad: &mut Right, current: &Right) {
    let mut updated = false;
    if ad.limit.duration() > current.limit.duration() {
        ad.limit.rate = current.limit.rate;
        ad.limit.per = current.limit.per;
        updated = true;
    }
    if current.limit.quota_max != ad.limit.quota_max
        && greater_than(current.limit.quota_max, ad.limit.quota_max)
    {
        ad.limit.quota_max = current.limit.quota_max;
        updated = true;
    }
    if greater_than(
        current.limit.quota_renewal_rate,
        ad.limit.quota_renewal_rate,
    ) {
        ad.limit.quota_renewal_rate = current.limit.quota_renewal_rate;
    }
    if ad.limit.quota_max == -1 {
        ad.limit.quota_renewal_rate = 0;
    }
    if updated {
        ad.set_by.clone_from(&current.set_by);
        ad.allowance_scope.clone_from(&current.allowance_scope);
    }
    ad.endpoints = merge_endpoints(&ad.endpoints, &current.endpoints);
}

/// The counter key fragment of an endpoint method ([`EndpointLimit::key`]).
fn endpoint_key(method: &str, path: &str) -> String {
    fn push_encoded(out: &mut String, s: &str) {
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let mut out = String::with_capacity(method.len() + path.len() + 8);
    push_encoded(&mut out, method);
    out.push(':');
    push_encoded(&mut out, path);
    out
}

fn compile_endpoints(eps: Vec<RawEndpoint>) -> Vec<EndpointRule> {
    eps.into_iter()
        .map(|e| EndpointRule {
            regex: compile_allowed_url(&e.path).ok(),
            methods: e
                .methods
                .into_iter()
                .map(|(name, rate, per)| EndpointMethodLimit {
                    key: endpoint_key(&name, &e.path),
                    rate: rate_of(rate, per),
                    name,
                })
                .collect(),
            path: e.path,
        })
        .collect()
}

/// Combines policies as Tyk's `ApplyPolicies` (`internal/policy/apply.go`) does for a JWT
/// session, in order.
///
/// **The session.** Tyk's JWT middleware starts the session as a copy of the base policy (the
/// first one: the token's policy claim, or the first default policy), then clears the
/// session-level rate, quota and depth of every partition an applied policy contributes (all of
/// them for a non-partitioned policy), and raises them while applying. Gatehouse computes the same
/// session-level values ([`EffectivePolicy::rate`], [`EffectivePolicy::quota`]).
///
/// **Non-partitioned and partitioned policies** (`partitions` `acl`, `rate_limit`, `quota`,
/// `complexity`; none set = all of them). For each API a policy grants:
/// - `acl`: the API is granted; versions unioned; `allowed_urls` merged per URL pattern with the
///   methods unioned (a policy without `allowed_urls` does not lift another's restriction);
/// - `quota`: the highest `quota_max` (`-1` beats everything, `0` loses to any positive value)
///   and the highest `quota_renewal_rate`;
/// - `rate_limit`: the most permissive rate (shortest `per/rate`; a negative `rate` or `per`,
///   i.e. unlimited, beats everything; `0` takes no part); the endpoint limits merged
///   (per path and method the higher request rate; an unlimited endpoint wins; a policy without
///   endpoint limits keeps the others');
/// - `complexity`: the highest `max_query_depth`.
///
/// A policy without access rights sets the session-level values of its partitions. Only APIs that
/// received the `acl` partition are granted; an API that did not receive the `rate_limit` (or
/// `quota`) partition inherits the session-level rate (or quota) and has no endpoint limits.
///
/// **`per_api` policies**: each API uses its `access_rights.<api>.limit` (its own counters,
/// scope = API id) or, when that limit is empty, the policy's values (scope = policy id); a later
/// `per_api` policy granting the same API replaces its versions and `allowed_urls` and keeps the
/// more permissive limits and merged endpoints. Without `per_api`, `access_rights.<api>.limit`
/// is ignored, as in Tyk.
///
/// **Counter scopes**: when more than one policy was the last to grant some API, each API's
/// counters are scoped by that policy's id (Tyk's `allowance_scope`); see [`Limits::scope_key`].
///
/// **Enforced limits** ([`EffectivePolicy::limits_for`]): an API whose merged limit is entirely
/// zero uses the session-level values, as Tyk's rate limiter does. Only a positive `rate` with a
/// positive `per` limits; only a positive `quota_max` is a quota; a renewal of `0` or less never
/// renews (reported as `0`).
///
/// Also: tags unioned; metadata merged (later overwrites); inactive if any policy is inactive
/// ([`Policy::inactive`], `state` included); `key_expires_in` 0 if any is 0 else the largest (Tyk
/// uses the base policy's value only; Gatehouse takes the most permissive). Patterns are compiled
/// here, once per policy set; an invalid one is kept but never matches.
///
/// Errors (500, with Tyk's messages): a policy with `per_api` and another partition
/// ([`AuthzError::PerApiWithPartitions`]); `per_api` policies mixed with partitioned ones
/// ([`AuthzError::MixedPerApiAndPartitions`]); policies that grant no API
/// ([`AuthzError::NoValidPolicies`]). No policies → 403 [`AuthzError::NoMatchingPolicyFound`].
/// A policy listed twice is applied once. Organisations are checked before, when resolving
/// ([`resolve_policies_for_org`]).
pub fn apply_policies(policies: &[&Policy]) -> Result<EffectivePolicy, AuthzError> {
    let mut seen = BTreeSet::new();
    let policies: Vec<&Policy> = policies
        .iter()
        .copied()
        .filter(|p| seen.insert(p.id.as_str()))
        .collect();
    let Some(base) = policies.first() else {
        return Err(AuthzError::NoMatchingPolicyFound);
    };

    // The JWT session starts as a copy of the base policy (`generateSessionFromPolicy`), then
    // `ClearSession` resets what the applied policies contribute.
    let mut session = RawLimit::of_policy(base);
    for p in &policies {
        let parts = p.partitions;
        let all = !parts.enabled();
        if parts.quota || all {
            session.quota_max = 0;
        }
        if parts.rate_limit || all {
            session.rate = 0.0;
            session.per = 0.0;
            session.throttle_interval = 0.0;
            session.throttle_retry_limit = 0;
        }
        if parts.complexity || all {
            session.max_query_depth = 0;
        }
    }

    let mut rights: BTreeMap<String, Right> = BTreeMap::new();
    let mut st = ApplyState::default();
    let mut tags: Vec<String> = Vec::new();
    let mut meta_data = Map::new();
    let mut inactive = false;
    let mut key_expires_in: Option<i64> = None;

    for p in &policies {
        if p.partitions.per_api && p.partitions.enabled() {
            return Err(AuthzError::PerApiWithPartitions { id: p.id.clone() });
        }
        if p.partitions.per_api {
            apply_per_api(p, &mut rights, &mut st)?;
        } else {
            apply_partitions(p, &mut session, &mut rights, &mut st)?;
        }
        inactive |= p.inactive();
        push_missing(&mut tags, &p.tags);
        for (k, v) in &p.meta_data {
            meta_data.insert(k.clone(), v.clone());
        }
        key_expires_in = Some(match key_expires_in {
            None => p.key_expires_in.max(0),
            Some(0) => 0,
            Some(_) if p.key_expires_in <= 0 => 0,
            Some(k) => k.max(p.key_expires_in),
        });
    }

    // APIs that only got some partitions inherit the rest from the session level.
    let setters: BTreeSet<String> = rights
        .values()
        .filter(|r| !r.set_by.is_empty())
        .map(|r| r.set_by.clone())
        .collect();
    rights.retain(|api_id, _| st.did_acl.contains(api_id));
    for (api_id, r) in &mut rights {
        if !st.did_rate.contains(api_id) {
            r.limit.rate = session.rate;
            r.limit.per = session.per;
            r.limit.throttle_interval = session.throttle_interval;
            r.limit.throttle_retry_limit = session.throttle_retry_limit;
            r.endpoints.clear();
        }
        if !st.did_complexity.contains(api_id) {
            r.limit.max_query_depth = session.max_query_depth;
        }
        if !st.did_quota.contains(api_id) {
            r.limit.quota_max = session.quota_max;
            r.limit.quota_renewal_rate = session.quota_renewal_rate;
            r.limit.quota_renews = 0;
        }
        if setters.len() > 1 && r.allowance_scope.is_empty() && !r.set_by.is_empty() {
            r.allowance_scope.clone_from(&r.set_by);
        }
        r.set_by.clear();
    }
    // Tyk's `updateSessionRootVars` (with one API per partition, the session takes its values;
    // Tyk iterates a Go map here, Gatehouse the APIs in id order).
    if st.did_quota.len() == 1 && st.did_rate.len() == 1 && st.did_complexity.len() == 1 {
        for r in rights.values() {
            session.rate = r.limit.rate;
            session.per = r.limit.per;
            session.quota_max = r.limit.quota_max;
            session.quota_renewal_rate = r.limit.quota_renewal_rate;
            session.max_query_depth = r.limit.max_query_depth;
        }
    }
    if rights.is_empty() {
        return Err(AuthzError::NoValidPolicies);
    }

    let access_rights = rights
        .into_iter()
        .map(|(api_id, r)| {
            // Tyk's rate limiter uses the session-level values for an API whose limit is empty
            // (`GetAccessDefinitionByAPIIDOrSession`).
            let enforced = if r.limit.is_empty() { session } else { r.limit };
            let access = ApiAccess {
                versions: r.versions,
                allowed_urls: r
                    .urls
                    .into_iter()
                    .map(|(url, methods)| AllowedUrl::new(url, methods))
                    .collect(),
                limits: Limits {
                    rate: enforced.rate(),
                    quota: enforced.quota(),
                    scope_key: r.allowance_scope,
                },
                endpoints: compile_endpoints(r.endpoints),
            };
            (api_id, access)
        })
        .collect();

    Ok(EffectivePolicy {
        policy_ids: policies.iter().map(|p| p.id.clone()).collect(),
        access_rights,
        rate: session.rate(),
        quota: session.quota(),
        tags,
        meta_data,
        inactive,
        key_expires_in: key_expires_in.unwrap_or(0),
    })
}

/// The session Gatehouse keeps per identity (per API organisation and identity, like Tyk's JWT
/// session key `generateToken(orgID, md5(identity))`): every token of one identity shares it and
/// its rate-limit and quota counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The identity ([`claims::identity`]); Tyk's `alias`.
    pub identity: String,
    /// The policies applied by the last successful request (Tyk's `apply_policies`).
    pub policy_ids: Vec<String>,
    /// Unix seconds after which the session is expired; `None` = never.
    pub expires_at: Option<i64>,
    /// The OAuth client id of the last token ([`claims::client_id_for`]); Tyk's
    /// `oauth_client_id`.
    pub oauth_client_id: Option<String>,
    /// When the session was created (unix seconds).
    pub created_at: i64,
    /// When the policies, expiry or client id last changed (unix seconds).
    pub updated_at: i64,
}

impl SessionState {
    /// A new session (Tyk's "key does not exist" branch): the effective policy's ids; expiry
    /// `now + key_expires_in` when that is positive, never otherwise; then raised to the token's
    /// `exp` when that is later ([`SessionState::raise_expiry`]).
    pub fn new(
        identity: impl Into<String>,
        effective: &EffectivePolicy,
        token_exp: Option<i64>,
        oauth_client_id: Option<String>,
        now: i64,
    ) -> Self {
        let mut s = Self {
            identity: identity.into(),
            policy_ids: effective.policy_ids.clone(),
            expires_at: (effective.key_expires_in > 0)
                .then(|| now.saturating_add(effective.key_expires_in)),
            oauth_client_id,
            created_at: now,
            updated_at: now,
        };
        s.raise_expiry(token_exp);
        s
    }

    /// Updates an existing session after a token of its identity was resolved (Tyk's "key exists"
    /// branch): the policy list is replaced when it changed (a changed claim, default list or
    /// scope set); the expiry is **not** recomputed from `key_expires_in`, only raised to the
    /// token's `exp`; the OAuth client id is set to the token's. Returns whether anything changed.
    pub fn refresh(
        &mut self,
        effective: &EffectivePolicy,
        token_exp: Option<i64>,
        oauth_client_id: Option<String>,
        now: i64,
    ) -> bool {
        let mut changed = false;
        if self.policy_ids != effective.policy_ids {
            self.policy_ids.clone_from(&effective.policy_ids);
            changed = true;
        }
        changed |= self.raise_expiry(token_exp);
        if self.oauth_client_id != oauth_client_id {
            self.oauth_client_id = oauth_client_id;
            changed = true;
        }
        if changed {
            self.updated_at = now;
        }
        changed
    }

    /// Raises the expiry to the token's `exp` when that is later (`TestJWTExpOverride`). As in
    /// Tyk, "never" counts as 0 here: a session whose policies never expire takes the token's
    /// `exp`, so a later token *without* `exp` finds it expired once that time has passed.
    /// Returns whether the expiry changed.
    pub fn raise_expiry(&mut self, token_exp: Option<i64>) -> bool {
        match token_exp {
            Some(exp) if exp > self.expires_at.unwrap_or(0) => {
                self.expires_at = Some(exp);
                true
            }
            _ => false,
        }
    }

    /// Whether the session is expired at `now` (from the expiry second on).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// The access checks after authentication, in Tyk's middleware order:
///
/// 1. a policy is inactive → 403 [`AuthzError::KeyInactive`] (Tyk's `KeyExpired` middleware checks
///    `is_inactive` before the expiry);
/// 2. the session is expired → 401 [`AuthzError::KeyExpired`];
/// 3. the API is not granted, or (for a versioned API) `version` does not allow the policies'
///    `versions` → 403 [`AuthzError::ApiDisallowed`]. Pass `version: None` for an API that is not
///    versioned (no version check, as in Tyk); for a versioned API pass
///    [`VersionSet::access_rights_version`](crate::versions::VersionSet::access_rights_version)
///    of the request. As in Tyk's `AccessRightsCheck`, an empty `versions` list grants **no**
///    version of a versioned API;
pub fn authorize(
    effective: &EffectivePolicy,
    session: &SessionState,
    now: i64,
    api_id: &str,
    version: Option<&crate::versions::VersionGrantCheck<'_>>,
    path: &str,
    method: &str,
) -> Result<(), AuthzError> {
    if effective.inactive {
        return Err(AuthzError::KeyInactive);
    }
    if session.is_expired(now) {
        return Err(AuthzError::KeyExpired);
    }
    let access = effective
        .access_rights
        .get(api_id)
        .ok_or(AuthzError::ApiDisallowed)?;
    if let Some(v) = version
        && !v.allows(&access.versions)
    {
        return Err(AuthzError::ApiDisallowed);
    }
    if !access.allowed_urls.is_empty()
        && !access.allowed_urls.iter().any(|u| u.allows(path, method))
    {
        return Err(AuthzError::ResourceDisallowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::btree_map::Entry;

    use serde_json::json;

    use super::*;
    use crate::policy::{AccessDefinition, AccessSpec};

    /// What a request got: `Ok` or `(status, message)`.
    type Outcome = Result<(), (u16, String)>;
    type Quota = Option<(i64, i64)>;
    type Rate = Option<(f64, f64)>;

    const T0: i64 = 1_700_000_000;

    fn obj(v: Value) -> Claims {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn grant(apis: &[&str]) -> BTreeMap<String, AccessDefinition> {
        apis.iter()
            .map(|a| {
                let ad = AccessDefinition {
                    api_id: (*a).to_owned(),
                    ..Default::default()
                };
                ((*a).to_owned(), ad)
            })
            .collect()
    }

    fn policy(id: &str, apis: &[&str]) -> Policy {
        Policy {
            id: id.into(),
            access_rights: grant(apis),
            ..Default::default()
        }
    }

    fn forbidden(msg: &str) -> Outcome {
        Err((403, msg.to_owned()))
    }

    const NO_MATCHING_POLICY: &str = "key not authorized: no matching policy";
    const NO_MATCHING_POLICY_FOUND: &str = "key not authorized: no matching policy found";
    const NO_POLICY_IN_SCOPE: &str = "key not authorized: no matching policy found in scope claim";
    const NO_SCOPE_OR_POLICY: &str = "key not authorized: no scope or policy in token";
    const API_DISALLOWED: &str = "Access to this API has been disallowed";

    /// A miniature gateway running the per-request flow described in the module docs, so Tyk's
    /// gateway tests can be replayed request by request.
    struct Gw {
        apis: BTreeMap<String, ApiDefinition>,
        policies: BTreeMap<String, Policy>,
        /// Portal-registered OAuth clients → their catalogue policies.
        clients: BTreeMap<String, Vec<String>>,
        sessions: BTreeMap<String, SessionState>,
        last: Option<EffectivePolicy>,
        now: i64,
    }

    impl Gw {
        fn new() -> Self {
            Self {
                apis: BTreeMap::new(),
                policies: BTreeMap::new(),
                clients: BTreeMap::new(),
                sessions: BTreeMap::new(),
                last: None,
                now: T0,
            }
        }

        /// A JWT API with identity `user_id` and policy claim `policy_id` unless `f` changes them.
        fn with_api(mut self, id: &str, f: impl FnOnce(&mut ApiDefinition)) -> Self {
            let mut api = ApiDefinition {
                api_id: id.into(),
                enable_jwt: true,
                jwt_identity_base_field: "user_id".into(),
                jwt_policy_field_name: "policy_id".into(),
                ..Default::default()
            };
            f(&mut api);
            self.apis.insert(id.into(), api);
            self
        }

        fn with_policy(mut self, p: Policy) -> Self {
            self.policies.insert(p.id.clone(), p);
            self
        }

        fn api(&mut self, id: &str) -> &mut ApiDefinition {
            self.apis.get_mut(id).expect("api")
        }

        fn call(&mut self, api_id: &str, claims: Value) -> Outcome {
            self.call_path(api_id, "/", "GET", claims)
        }

        fn call_path(&mut self, api_id: &str, path: &str, method: &str, claims: Value) -> Outcome {
            let claims = obj(claims);
            let Self {
                apis,
                policies,
                clients,
                sessions,
                last,
                now,
            } = self;
            let now = *now;
            let err = |e: AuthzError| (e.status(), e.message());
            // The JWT layer's own `exp` check (not this module).
            if claims::expiry(&claims).is_some_and(|exp| exp < now) {
                return Err((401, "Key not authorized: token has expired".into()));
            }
            let api = &apis[api_id];
            let identity = claims::identity(&claims, &api.jwt_identity_base_field).map_err(err)?;
            let client = claims::client_id_for(&claims, api.idp_client_id_mapping_disabled);
            let client_policies = client
                .as_ref()
                .and_then(|c| clients.get(c))
                .map(Vec::as_slice);
            let exists = |id: &str| policies.contains_key(id);
            let in_org = |id: &str| policies[id].applies_to_org(&api.org_id);
            let resolved = resolve_policies_for_org(
                ResolveInput {
                    claims: &claims,
                    api,
                    policy_exists: &exists,
                    session_exists: sessions.contains_key(&identity),
                    client_policies,
                },
                &in_org,
            )
            .map_err(err)?;
            let pols: Vec<&Policy> = resolved.iter().map(|id| &policies[id]).collect();
            let eff = apply_policies(&pols).map_err(err)?;
            let exp = claims::expiry(&claims);
            let session = match sessions.entry(identity.clone()) {
                Entry::Occupied(e) => {
                    let s = e.into_mut();
                    s.refresh(&eff, exp, client, now);
                    s
                }
                Entry::Vacant(e) => e.insert(SessionState::new(identity, &eff, exp, client, now)),
            };
            let result = authorize(&eff, session, now, api_id, None, path, method).map_err(err);
            *last = Some(eff);
            result
        }

        fn policies_of(&self, identity: &str) -> Vec<String> {
            self.sessions[identity].policy_ids.clone()
        }

        fn sorted_policies_of(&self, identity: &str) -> Vec<String> {
            let mut v = self.policies_of(identity);
            v.sort();
            v
        }
    }

    // ------------------------------------------------------------------------------------------
    // Errors

    #[test]
    fn errors_carry_tyk_statuses_and_messages() {
        let cases: Vec<(AuthzError, u16, &str)> = vec![
            (
                AuthzError::EmptyBaseClaim {
                    claim: "uid".into(),
                },
                403,
                "found an empty user ID in predefined base claim, claim: uid",
            ),
            (
                AuthzError::EmptySubClaim,
                403,
                "found an empty user ID in sub claim",
            ),
            (
                AuthzError::NoIdentityClaim,
                403,
                "no suitable claims for user ID were found",
            ),
            (AuthzError::NoMatchingPolicy, 403, NO_MATCHING_POLICY),
            (
                AuthzError::NoMatchingPolicyFound,
                403,
                NO_MATCHING_POLICY_FOUND,
            ),
            (
                AuthzError::NoMatchingPolicyInScopeClaim,
                403,
                NO_POLICY_IN_SCOPE,
            ),
            (AuthzError::NoScopeOrPolicyInToken, 403, NO_SCOPE_OR_POLICY),
            (
                AuthzError::PolicyNotFound { id: "p9".into() },
                500,
                "failed to create key: policy not found: \"p9\"",
            ),
            (
                AuthzError::NoValidPolicies,
                500,
                "failed to create key: key has no valid policies to be applied",
            ),
            (AuthzError::KeyExpired, 401, "Key has expired, please renew"),
            (
                AuthzError::KeyInactive,
                403,
                "Key is inactive, please renew",
            ),
            (AuthzError::ApiDisallowed, 403, API_DISALLOWED),
            (
                AuthzError::ResourceDisallowed,
                403,
                "Access to this resource has been disallowed",
            ),
        ];
        for (e, status, msg) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.message(), msg, "{e:?}");
        }
    }

    // ------------------------------------------------------------------------------------------
    // Identity through the whole flow (TestJWTRSAIdInClaimsWithBaseField & co.)

    #[test]
    fn jwt_identity_errors_stop_the_request_with_403() {
        let mut gw = Gw::new()
            .with_api("a", |_| {})
            .with_policy(policy("p", &["a"]));
        assert_eq!(
            gw.call(
                "a",
                json!({"user_id": "user123@test.com", "policy_id": "p"})
            ),
            Ok(())
        );
        assert_eq!(
            gw.call("a", json!({"user_id": "", "policy_id": "p"})),
            forbidden("found an empty user ID in predefined base claim, claim: user_id")
        );
        assert_eq!(
            gw.call("a", json!({"sub": "s@test.com", "policy_id": "p"})),
            Ok(())
        );
        assert!(gw.sessions.contains_key("s@test.com"));
        assert_eq!(
            gw.call("a", json!({"sub": "", "policy_id": "p"})),
            forbidden("found an empty user ID in sub claim")
        );
        assert_eq!(
            gw.call("a", json!({"foo": "bar", "policy_id": "p"})),
            forbidden("no suitable claims for user ID were found")
        );
    }

    #[test]
    fn jwt_rsa_id_in_claims_without_base_field() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_policy(policy("p", &["a"]));
        assert_eq!(
            gw.call("a", json!({"sub": "user123@test.com", "policy_id": "p"})),
            Ok(())
        );
        assert_eq!(
            gw.call(
                "a",
                json!({"user_id": "user123@test.com", "policy_id": "p"})
            ),
            forbidden("no suitable claims for user ID were found")
        );
    }

    #[test]
    fn jwt_nested_claims_through_the_flow() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.jwt_identity_base_field = "test.sub".into();
                a.jwt_policy_field_name = "test.policy".into();
            })
            .with_policy(policy("premium-policy", &["a"]));
        let token = json!({"test": {"sub": "123456", "policy": "premium-policy"}});
        assert_eq!(gw.call("a", token), Ok(()));
        assert_eq!(gw.policies_of("123456"), ids(&["premium-policy"]));
    }

    // ------------------------------------------------------------------------------------------
    // TestJWTDefaultPolicies

    fn default_policies_gw(policy_field: &str) -> Gw {
        let field = policy_field.to_owned();
        Gw::new()
            .with_api("testapid", |a| {
                a.jwt_policy_field_name = field;
                a.jwt_default_policies = ids(&["defPol1", "defPol2"]);
            })
            .with_policy(policy("defPol1", &["testapid"]))
            .with_policy(policy("defPol2", &["testapid"]))
            .with_policy(policy("tokenPol", &["testapid"]))
    }

    /// Runs the same token while the default list is edited; the session follows every edit.
    fn assert_session_follows_default_edits(gw: &mut Gw, token: &Value) {
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
        // Same again: stored correctly.
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
        // Remove one of the default policies.
        gw.api("testapid").jwt_default_policies = ids(&["defPol1"]);
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1"]));
        // Add a default policy.
        gw.api("testapid").jwt_default_policies = ids(&["defPol1", "defPol2"]);
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
    }

    #[test]
    fn jwt_default_policies_when_policy_field_name_is_empty() {
        // The token names a policy, but the API does not read a policy claim.
        let mut gw = default_policies_gw("");
        let token = json!({"user_id": "dummy", "policy_id": "tokenPol"});
        assert_session_follows_default_edits(&mut gw, &token);
    }

    #[test]
    fn jwt_default_policies_when_policy_claim_is_empty() {
        let mut gw = default_policies_gw("policy_id");
        let token = json!({"user_id": "dummy", "policy_id": ""});
        assert_session_follows_default_edits(&mut gw, &token);
        // A missing claim behaves the same.
        let mut gw = default_policies_gw("policy_id");
        let token = json!({"user_id": "dummy"});
        assert_session_follows_default_edits(&mut gw, &token);
    }

    #[test]
    fn jwt_default_policies_invalid_policy_id_in_claim_is_403() {
        let mut gw = default_policies_gw("policy_id");
        let token = json!({"user_id": "dummy", "policy_id": "invalid"});
        assert_eq!(
            gw.call("testapid", token.clone()),
            forbidden(NO_MATCHING_POLICY)
        );
        assert_eq!(gw.call("testapid", token), forbidden(NO_MATCHING_POLICY));
        assert!(
            gw.sessions.is_empty(),
            "a failed resolution creates no session"
        );
    }

    #[test]
    fn jwt_default_policies_default_to_claim_transition() {
        let mut gw = default_policies_gw("");
        let token = json!({"user_id": "dummy", "policy_id": "tokenPol"});
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
        gw.api("testapid").jwt_policy_field_name = "policy_id".into();
        assert_eq!(gw.call("testapid", token), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["tokenPol"]));
    }

    #[test]
    fn jwt_default_policies_claim_to_default_transition() {
        let mut gw = default_policies_gw("policy_id");
        let token = json!({"user_id": "dummy", "policy_id": "tokenPol"});
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["tokenPol"]));
        assert_eq!(gw.call("testapid", token.clone()), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["tokenPol"]));
        gw.api("testapid").jwt_policy_field_name.clear();
        assert_eq!(gw.call("testapid", token), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
    }

    #[test]
    fn jwt_default_policies_unknown_default_is_500_only_when_nothing_is_left() {
        let mut gw = default_policies_gw("policy_id");
        gw.api("testapid").jwt_default_policies = ids(&["missing"]);
        assert_eq!(
            gw.call("testapid", json!({"user_id": "dummy"})),
            Err((
                500,
                "failed to create key: policy not found: \"missing\"".to_owned()
            ))
        );
        // With a known default next to it, the unknown one is skipped (Tyk's ApplyPolicies).
        gw.api("testapid").jwt_default_policies = ids(&["missing", "defPol2"]);
        assert_eq!(gw.call("testapid", json!({"user_id": "dummy"})), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol2"]));
    }

    #[test]
    fn jwt_policy_claim_array_is_ignored_like_tyk() {
        // Tyk's getClaimValue only reads strings: an array `pol` finds no policy, defaults apply.
        let mut gw = default_policies_gw("policy_id");
        let token = json!({"user_id": "dummy", "policy_id": ["tokenPol"]});
        assert_eq!(gw.call("testapid", token), Ok(()));
        assert_eq!(gw.policies_of("dummy"), ids(&["defPol1", "defPol2"]));
        // Without defaults, nothing is found.
        let mut gw = Gw::new()
            .with_api("a", |_| {})
            .with_policy(policy("p", &["a"]));
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": ["p"]})),
            forbidden(NO_MATCHING_POLICY_FOUND)
        );
    }

    // ------------------------------------------------------------------------------------------
    // TestJWTScopeToPolicyMapping

    fn scope_mapping_gw() -> Gw {
        let configure = |a: &mut ApiDefinition| {
            a.jwt_default_policies = ids(&["default"]);
            a.scopes.jwt.scope_to_policy = [
                ("user:read".to_owned(), "p1".to_owned()),
                ("user:write".to_owned(), "p2".to_owned()),
            ]
            .into();
        };
        Gw::new()
            .with_api("base-api", configure)
            .with_api("api1", configure)
            .with_api("api2", configure)
            .with_api("api3", configure)
            .with_policy(Policy {
                rate: 111.0,
                per: 3600.0,
                ..policy("base", &["base-api"])
            })
            .with_policy(policy("default", &["base-api"]))
            .with_policy(Policy {
                rate: 100.0,
                per: 60.0,
                ..policy("p1", &["api1"])
            })
            .with_policy(Policy {
                rate: 500.0,
                per: 30.0,
                ..policy("p2", &["api2"])
            })
    }

    #[test]
    fn jwt_scope_to_policy_mapping_full_scenario() {
        let mut gw = scope_mapping_gw();
        let user1 =
            json!({"user_id": "user1", "policy_id": "base", "scope": "user:read user:write"});
        let user2 = json!({"user_id": "user2", "scope": "user:read user:write"});
        let user3 = json!({"user_id": "user3"});

        // Create JWT sessions: base + scopes; scopes without base; neither.
        assert_eq!(gw.call("base-api", user1.clone()), Ok(()));
        assert_eq!(gw.call("api1", user2), Ok(()));
        assert_eq!(gw.call("base-api", user3), Ok(()));

        // Base and scope policies together.
        assert_eq!(gw.sorted_policies_of("user1"), ids(&["base", "p1", "p2"]));
        // If scopes are present, the default policy is not used.
        assert_eq!(gw.sorted_policies_of("user2"), ids(&["p1", "p2"]));
        // Without scopes, the default policy applies.
        assert_eq!(gw.policies_of("user3"), ids(&["default"]));

        // The token issued with the base policy reaches api1 and api2 through its scopes,
        // but not api3, which nothing grants.
        assert_eq!(gw.call("api1", user1.clone()), Ok(()));
        assert_eq!(gw.call("api2", user1.clone()), Ok(()));
        assert_eq!(gw.call("api3", user1.clone()), forbidden(API_DISALLOWED));

        // Change the mapping of base-api; the existing session picks it up.
        gw = gw.with_policy(Policy {
            rate: 500.0,
            per: 30.0,
            ..policy("p3", &["api3"])
        });
        gw.api("base-api").scopes.jwt.scope_to_policy =
            [("user:read".to_owned(), "p3".to_owned())].into();
        assert_eq!(gw.call("base-api", user1.clone()), Ok(()));

        // A wrong scope, then a correct one, then the wrong one again (no caching effects).
        let wrong = json!({"user_id": "user1", "scope": "nonexisting"});
        assert_eq!(
            gw.call("base-api", wrong.clone()),
            forbidden(NO_POLICY_IN_SCOPE)
        );
        assert_eq!(gw.call("base-api", user1), Ok(()));
        assert_eq!(gw.call("base-api", wrong), forbidden(NO_POLICY_IN_SCOPE));

        // The session holds the changed list: base first, then the scope policy.
        assert_eq!(gw.policies_of("user1"), ids(&["base", "p3"]));
    }

    #[test]
    fn jwt_scope_to_policy_mapping_legacy_fields_and_okta_scp() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.jwt_policy_field_name.clear();
                a.jwt_scope_claim_name = "scp".into();
                a.jwt_scope_to_policy_mapping = [("items:read".to_owned(), "r".to_owned())].into();
            })
            .with_policy(policy("r", &["a"]));
        let token = json!({"user_id": "u", "scp": ["items:read", "openid"]});
        assert_eq!(gw.call("a", token), Ok(()));
        assert_eq!(gw.policies_of("u"), ids(&["r"]));
    }

    #[test]
    fn jwt_scope_mapping_only_no_default_policies() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.scopes.jwt.scope_to_policy = [
                    ("read".to_owned(), "p-read".to_owned()),
                    ("write".to_owned(), "p-write".to_owned()),
                ]
                .into();
            })
            .with_policy(policy("p-read", &["a"]))
            .with_policy(policy("p-write", &["a"]));
        // Valid scope → that policy.
        assert_eq!(
            gw.call("a", json!({"user_id": "u1", "scope": "read"})),
            Ok(())
        );
        assert_eq!(gw.policies_of("u1"), ids(&["p-read"]));
        // Invalid scope → 403.
        assert_eq!(
            gw.call("a", json!({"user_id": "u2", "scope": "unknown"})),
            forbidden(NO_POLICY_IN_SCOPE)
        );
        // No scope → 403.
        assert_eq!(
            gw.call("a", json!({"user_id": "u3"})),
            forbidden(NO_MATCHING_POLICY_FOUND)
        );
        // Several scopes → several policies.
        assert_eq!(
            gw.call("a", json!({"user_id": "u4", "scope": "write read"})),
            Ok(())
        );
        assert_eq!(gw.sorted_policies_of("u4"), ids(&["p-read", "p-write"]));
        assert!(!gw.sessions.contains_key("u2") && !gw.sessions.contains_key("u3"));
    }

    #[test]
    fn jwt_no_default_policies_no_scope_mapping_no_policy_claim() {
        let mut gw = Gw::new()
            .with_api("a", |_| {})
            .with_policy(policy("p", &["a"]));
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "scope": "read"})),
            forbidden(NO_MATCHING_POLICY_FOUND)
        );
    }

    #[test]
    fn jwt_scope_mapping_with_partial_match() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.scopes.jwt.scope_to_policy = [
                    ("scope:a".to_owned(), "pa".to_owned()),
                    ("scope:b".to_owned(), "pb".to_owned()),
                ]
                .into();
            })
            .with_policy(policy("pa", &["a"]))
            .with_policy(policy("pb", &["a"]));
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "scope": "scope:a scope:c"})),
            Ok(())
        );
        assert_eq!(gw.policies_of("u"), ids(&["pa"]));
    }

    #[test]
    fn jwt_security_fix_existing_session_no_scope_no_policy() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.scopes.jwt.scope_to_policy = [("read".to_owned(), "p-read".to_owned())].into();
            })
            .with_policy(policy("p-read", &["a"]));
        let scoped = json!({"user_id": "u", "scope": "read"});
        let bare = json!({"user_id": "u"});
        assert_eq!(gw.call("a", scoped.clone()), Ok(()));
        // The same identity with a token carrying neither scope nor policy: refused, and the
        // session keeps its policies.
        assert_eq!(gw.call("a", bare), forbidden(NO_SCOPE_OR_POLICY));
        assert_eq!(gw.policies_of("u"), ids(&["p-read"]));
        assert_eq!(gw.call("a", scoped), Ok(()));
        // A new identity with such a token gets the "nothing found" message instead.
        assert_eq!(
            gw.call("a", json!({"user_id": "new"})),
            forbidden(NO_MATCHING_POLICY_FOUND)
        );
    }

    #[test]
    fn jwt_traditional_auth_existing_session_no_policy_in_token() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_policy_field_name = "pol".into())
            .with_policy(policy("p", &["a"]));
        assert_eq!(gw.call("a", json!({"user_id": "u", "pol": "p"})), Ok(()));
        assert_eq!(
            gw.call("a", json!({"user_id": "u"})),
            forbidden(NO_MATCHING_POLICY_FOUND)
        );
        assert_eq!(
            gw.call("a", json!({"user_id": "other"})),
            forbidden(NO_MATCHING_POLICY_FOUND)
        );
    }

    #[test]
    fn jwt_backward_compatibility_default_policies_still_work() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.jwt_default_policies = ids(&["d"]);
                a.scopes.jwt.scope_to_policy = [("read".to_owned(), "r".to_owned())].into();
            })
            .with_policy(policy("d", &["a"]))
            .with_policy(policy("r", &["a"]));
        for _ in 0..3 {
            assert_eq!(gw.call("a", json!({"user_id": "u"})), Ok(()));
            assert_eq!(gw.policies_of("u"), ids(&["d"]));
        }
    }

    // ------------------------------------------------------------------------------------------
    // Existing sessions and the policy claim

    #[test]
    fn jwt_existing_session_policy_id_changed() {
        let mut gw = Gw::new()
            .with_api("a", |_| {})
            .with_policy(Policy {
                quota_max: 111,
                quota_renewal_rate: 3600,
                ..policy("p1", &["a"])
            })
            .with_policy(Policy {
                quota_max: 999,
                quota_renewal_rate: 3600,
                ..policy("p2", &["a"])
            });
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "p1"})),
            Ok(())
        );
        assert_eq!(gw.last.as_ref().unwrap().quota, Some((111, 3600)));
        assert_eq!(gw.policies_of("u"), ids(&["p1"]));
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "p2"})),
            Ok(())
        );
        assert_eq!(gw.last.as_ref().unwrap().quota, Some((999, 3600)));
        assert_eq!(
            gw.last.as_ref().unwrap().limits_for("a").unwrap().quota,
            Some((999, 3600))
        );
        assert_eq!(gw.policies_of("u"), ids(&["p2"]));
    }

    #[test]
    fn jwt_invalid_policy_id_new_and_existing_session() {
        let mut gw = Gw::new()
            .with_api("a", |_| {})
            .with_policy(policy("p1", &["a"]));
        assert_eq!(
            gw.call("a", json!({"user_id": "new", "policy_id": "abcxyz"})),
            forbidden(NO_MATCHING_POLICY)
        );
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "p1"})),
            Ok(())
        );
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "abcdef"})),
            forbidden(NO_MATCHING_POLICY)
        );
        assert_eq!(gw.policies_of("u"), ids(&["p1"]));
    }

    #[test]
    fn jwt_policy_claim_keeps_base_with_scopes() {
        // Base from the claim is kept next to the scope policies; the defaults are not used.
        let api = ApiDefinition {
            jwt_policy_field_name: "pol".into(),
            jwt_default_policies: ids(&["d"]),
            scopes: crate::api::Scopes {
                jwt: crate::api::ScopeMapping {
                    scope_claim_name: String::new(),
                    scope_to_policy: [
                        ("x".to_owned(), "px".to_owned()),
                        ("y".to_owned(), "py".to_owned()),
                        ("z".to_owned(), "base".to_owned()),
                    ]
                    .into(),
                },
            },
            ..Default::default()
        };
        let exists = |_: &str| true;
        let resolve = |claims: Value| {
            resolve_policies(ResolveInput {
                claims: &obj(claims),
                api: &api,
                policy_exists: &exists,
                session_exists: false,
                client_policies: None,
            })
        };
        // Mapped policies are sorted and deduplicated, the base comes first, once.
        assert_eq!(
            resolve(json!({"pol": "base", "scope": "y z x y"})),
            Ok(ids(&["base", "px", "py"]))
        );
        assert_eq!(
            resolve(json!({"pol": "base", "scope": "nope"})),
            Ok(ids(&["base"]))
        );
        assert_eq!(resolve(json!({"scope": "y"})), Ok(ids(&["py"])));
        assert_eq!(resolve(json!({})), Ok(ids(&["d"])));
    }

    #[test]
    fn scope_mapping_in_force_matches_the_api_definition_rule() {
        let mut api = ApiDefinition::default();
        let check = |api: &ApiDefinition| {
            let owned = api.scope_mapping();
            let (name, map) = scope_mapping(api);
            assert_eq!(name, owned.scope_claim_name);
            assert_eq!(map, &owned.scope_to_policy);
        };
        check(&api);
        api.jwt_scope_claim_name = "scp".into();
        api.jwt_scope_to_policy_mapping
            .insert("a".into(), "p1".into());
        check(&api);
        api.scopes
            .jwt
            .scope_to_policy
            .insert("b".into(), "p2".into());
        check(&api);
        api.scopes.jwt.scope_claim_name = "roles".into();
        check(&api);
    }

    // ------------------------------------------------------------------------------------------
    // Gatehouse extension: policies of a portal-registered OAuth client

    fn client_gw() -> Gw {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.jwt_identity_base_field.clear();
                a.jwt_policy_field_name = "pol".into();
                a.jwt_default_policies = ids(&["d"]);
            })
            .with_policy(policy("d", &["a"]))
            .with_policy(policy("cat", &["a"]))
            .with_policy(policy("claimed", &["a"]))
            .with_policy(policy("r", &["a"]));
        gw.clients.insert("dcr-client".into(), ids(&["cat"]));
        gw
    }

    #[test]
    fn client_policies_are_used_before_the_defaults() {
        let mut gw = client_gw();
        assert_eq!(
            gw.call("a", json!({"sub": "dcr-client", "cid": "dcr-client"})),
            Ok(())
        );
        assert_eq!(gw.policies_of("dcr-client"), ids(&["cat"]));
        assert_eq!(
            gw.sessions["dcr-client"].oauth_client_id.as_deref(),
            Some("dcr-client")
        );
        // A client that is not a portal client gets the defaults.
        assert_eq!(
            gw.call("a", json!({"sub": "other", "cid": "other"})),
            Ok(())
        );
        assert_eq!(gw.policies_of("other"), ids(&["d"]));
    }

    #[test]
    fn client_policies_lose_to_a_policy_claim() {
        let mut gw = client_gw();
        let token = json!({"sub": "dcr-client", "cid": "dcr-client", "pol": "claimed"});
        assert_eq!(gw.call("a", token), Ok(()));
        assert_eq!(gw.policies_of("dcr-client"), ids(&["claimed"]));
    }

    #[test]
    fn client_policies_are_a_base_and_survive_scopes() {
        let mut gw = client_gw();
        gw.api("a").scopes.jwt.scope_to_policy = [("read".to_owned(), "r".to_owned())].into();
        let token = json!({"sub": "dcr-client", "cid": "dcr-client", "scope": "read"});
        assert_eq!(gw.call("a", token), Ok(()));
        assert_eq!(gw.policies_of("dcr-client"), ids(&["cat", "r"]));
        // Defaults, in contrast, are dropped when scopes are present.
        let token = json!({"sub": "other", "scope": "read"});
        assert_eq!(gw.call("a", token), Ok(()));
        assert_eq!(gw.policies_of("other"), ids(&["r"]));
    }

    #[test]
    fn client_policies_that_are_unknown() {
        let mut gw = client_gw();
        gw.clients.insert("gone".into(), ids(&["deleted"]));
        gw.clients.insert("half".into(), ids(&["deleted", "cat"]));
        assert_eq!(
            gw.call("a", json!({"sub": "gone", "cid": "gone"})),
            forbidden(NO_MATCHING_POLICY)
        );
        assert_eq!(gw.call("a", json!({"sub": "half", "cid": "half"})), Ok(()));
        assert_eq!(gw.policies_of("half"), ids(&["cat"]));
    }

    // ------------------------------------------------------------------------------------------
    // TestJWT_ExtractOAuthClientIDForDCR

    #[test]
    fn jwt_extract_oauth_client_id_for_dcr() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_api("b", |a| {
                a.jwt_identity_base_field.clear();
                a.idp_client_id_mapping_disabled = true;
            })
            .with_policy(policy("p", &["a", "b"]));
        let token = json!({"sub": "s1", "policy_id": "p", "cid": "okta-client"});
        assert_eq!(gw.call("a", token), Ok(()));
        assert_eq!(
            gw.sessions["s1"].oauth_client_id.as_deref(),
            Some("okta-client")
        );
        let token = json!({"sub": "s2", "policy_id": "p", "cid": "okta-client"});
        assert_eq!(gw.call("b", token), Ok(()));
        assert_eq!(gw.sessions["s2"].oauth_client_id, None);
        // A later token without a client id clears it (Tyk sets the session's value each time).
        assert_eq!(gw.call("a", json!({"sub": "s1", "policy_id": "p"})), Ok(()));
        assert_eq!(gw.sessions["s1"].oauth_client_id, None);
    }

    // ------------------------------------------------------------------------------------------
    // TestJWTExpOverride and session expiry

    #[test]
    fn jwt_exp_override_jwt_expiration_bigger_than_policy() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_policy(Policy {
                key_expires_in: 1,
                ..policy("p", &["a"])
            });
        let token = json!({"sub": "u", "policy_id": "p", "exp": T0 + 72});
        assert_eq!(gw.call("a", token.clone()), Ok(()));
        assert_eq!(gw.sessions["u"].expires_at, Some(T0 + 72));
        gw.now += 2; // 1.1 s in Tyk's test
        assert_eq!(gw.call("a", token), Ok(()));
    }

    #[test]
    fn jwt_exp_override_expired_jwt_is_refused() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_policy(Policy {
                key_expires_in: 5,
                ..policy("p", &["a"])
            });
        let token = json!({"sub": "u", "policy_id": "p", "exp": T0 - 1});
        assert_eq!(gw.call("a", token).unwrap_err().0, 401);
    }

    #[test]
    fn jwt_exp_override_expired_but_renewed_policy_without_expiration() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_policy(policy("p", &["a"]));
        let token = json!({"sub": "u", "policy_id": "p", "exp": T0 + 1});
        let new_token = json!({"sub": "u", "policy_id": "p", "exp": T0 + 5});
        assert_eq!(gw.call("a", token.clone()), Ok(()));
        // Tyk: "never" counts as 0, so the session takes the token's exp.
        assert_eq!(gw.sessions["u"].expires_at, Some(T0 + 1));
        gw.now += 2;
        assert_eq!(gw.call("a", token).unwrap_err().0, 401);
        assert_eq!(gw.call("a", new_token), Ok(()));
        assert_eq!(gw.sessions["u"].expires_at, Some(T0 + 5));
    }

    #[test]
    fn session_expires_without_a_later_token_exp() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_policy(Policy {
                key_expires_in: 10,
                ..policy("p", &["a"])
            });
        let token = json!({"sub": "u", "policy_id": "p"});
        assert_eq!(gw.call("a", token.clone()), Ok(()));
        assert_eq!(gw.sessions["u"].expires_at, Some(T0 + 10));
        gw.now += 9;
        assert_eq!(gw.call("a", token.clone()), Ok(()));
        gw.now += 1;
        assert_eq!(
            gw.call("a", token),
            Err((401, "Key has expired, please renew".to_owned()))
        );
        // A token with a later exp revives the session.
        let renewed = json!({"sub": "u", "policy_id": "p", "exp": T0 + 100});
        assert_eq!(gw.call("a", renewed), Ok(()));
    }

    #[test]
    fn session_expiry_is_not_recomputed_when_policies_change() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.jwt_identity_base_field.clear())
            .with_policy(Policy {
                key_expires_in: 10,
                ..policy("short", &["a"])
            })
            .with_policy(policy("forever", &["a"]));
        assert_eq!(
            gw.call("a", json!({"sub": "u", "policy_id": "short"})),
            Ok(())
        );
        assert_eq!(
            gw.call("a", json!({"sub": "u", "policy_id": "forever"})),
            Ok(())
        );
        assert_eq!(gw.sessions["u"].expires_at, Some(T0 + 10));
        assert_eq!(gw.policies_of("u"), ids(&["forever"]));
    }

    #[test]
    fn session_new_and_refresh() {
        let eff = apply_policies(&[&Policy {
            key_expires_in: 60,
            ..policy("p", &["a"])
        }])
        .unwrap();
        let mut s = SessionState::new("id", &eff, Some(T0 + 30), None, T0);
        assert_eq!(
            s.expires_at,
            Some(T0 + 60),
            "a sooner exp does not shorten it"
        );
        assert_eq!(s.policy_ids, ids(&["p"]));
        assert!(!s.is_expired(T0 + 59));
        assert!(s.is_expired(T0 + 60));
        assert!(
            !s.refresh(&eff, Some(T0 + 10), None, T0 + 1),
            "nothing changed"
        );
        assert_eq!(s.updated_at, T0);
        let other = apply_policies(&[&policy("q", &["a"])]).unwrap();
        assert!(s.refresh(&other, None, Some("c".into()), T0 + 2));
        assert_eq!(s.policy_ids, ids(&["q"]));
        assert_eq!(s.oauth_client_id.as_deref(), Some("c"));
        assert_eq!((s.created_at, s.updated_at), (T0, T0 + 2));
        assert!(s.refresh(&other, Some(T0 + 90), Some("c".into()), T0 + 3));
        assert_eq!(s.expires_at, Some(T0 + 90));

        let never = apply_policies(&[&policy("n", &["a"])]).unwrap();
        let s = SessionState::new("id", &never, None, None, T0);
        assert_eq!(s.expires_at, None);
        assert!(!s.is_expired(i64::MAX));
    }

    // ------------------------------------------------------------------------------------------
    // apply_policies: combining policies

    fn api_access(eff: &EffectivePolicy, api: &str) -> ApiAccess {
        eff.access_rights[api].clone()
    }

    #[test]
    fn policies_union_access_rights() {
        let a = policy("a", &["api1", "api2"]);
        let b = policy("b", &["api2", "api3"]);
        let eff = apply_policies(&[&a, &b]).unwrap();
        assert_eq!(
            eff.access_rights.keys().collect::<Vec<_>>(),
            ["api1", "api2", "api3"]
        );
        assert_eq!(eff.policy_ids, ids(&["a", "b"]));
    }

    #[test]
    fn policies_union_versions_as_tyk_does() {
        let mut a = policy("a", &["x", "y"]);
        let mut b = policy("b", &["x", "y"]);
        a.access_rights.get_mut("x").unwrap().versions = ids(&["v1", "v2"]);
        b.access_rights.get_mut("x").unwrap().versions = ids(&["v2", "v3"]);
        a.access_rights.get_mut("y").unwrap().versions = ids(&["v1"]);
        // b lists no version of y: Tyk's appendIfMissing unions the lists, so y keeps [v1] (an
        // empty list does not widen another policy's versions).
        for pols in [[&a, &b], [&b, &a]] {
            let eff = apply_policies(&pols).unwrap();
            let mut x = api_access(&eff, "x").versions;
            x.sort();
            assert_eq!(x, ids(&["v1", "v2", "v3"]));
            assert_eq!(api_access(&eff, "y").versions, ids(&["v1"]));
        }
    }

    #[test]
    fn policies_merge_allowed_urls_per_url_with_methods_unioned() {
        let spec = |url: &str, methods: &[&str]| AccessSpec {
            url: url.into(),
            methods: ids(methods),
        };
        let mut a = policy("a", &["x"]);
        let mut b = policy("b", &["x"]);
        let c = policy("c", &["x"]);
        a.access_rights.get_mut("x").unwrap().allowed_urls =
            vec![spec("^/items", &["GET"]), spec("^/orders", &["GET"])];
        b.access_rights.get_mut("x").unwrap().allowed_urls =
            vec![spec("^/items", &["POST", "GET"]), spec("^/users", &["GET"])];
        // c has no restriction on x; as in Tyk, it does not lift a's and b's.
        let eff = apply_policies(&[&a, &b, &c]).unwrap();
        let urls = api_access(&eff, "x").allowed_urls;
        let got: Vec<(&str, Vec<String>)> = urls
            .iter()
            .map(|u| (u.url.as_str(), u.methods.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("^/items", ids(&["GET", "POST"])),
                ("^/orders", ids(&["GET"])),
                ("^/users", ids(&["GET"])),
            ]
        );
    }

    #[test]
    fn policies_highest_quota_wins_and_minus_one_beats_all() {
        let q = |id: &str, max: i64, renew: i64| Policy {
            quota_max: max,
            quota_renewal_rate: renew,
            ..policy(id, &["x"])
        };
        let cases: Vec<(Vec<Policy>, Quota)> = vec![
            (
                vec![q("a", 100, 60), q("b", 1000, 3600)],
                Some((1000, 3600)),
            ),
            (
                vec![q("a", 1000, 60), q("b", 100, 3600)],
                Some((1000, 3600)),
            ),
            (vec![q("a", 100, 60), q("b", -1, 0)], None),
            (vec![q("a", -1, 0), q("b", 100, 60)], None),
            // 0 loses to a positive quota when combined (Tyk's greaterThanInt64).
            (vec![q("a", 0, 0), q("b", 100, 60)], Some((100, 60))),
            (vec![q("a", 0, 0)], None),
        ];
        for (pols, want) in cases {
            let refs: Vec<&Policy> = pols.iter().collect();
            let eff = apply_policies(&refs).unwrap();
            assert_eq!(eff.quota, want, "{pols:?}");
            assert_eq!(eff.limits_for("x").unwrap().quota, want, "{pols:?}");
        }
    }

    #[test]
    fn policies_most_permissive_rate_wins() {
        let r = |id: &str, rate: f64, per: f64| Policy {
            rate,
            per,
            ..policy(id, &["x"])
        };
        let cases: Vec<(Vec<Policy>, Rate)> = vec![
            // 10/s beats 100/min.
            (
                vec![r("a", 100.0, 60.0), r("b", 10.0, 1.0)],
                Some((10.0, 1.0)),
            ),
            (
                vec![r("a", 10.0, 1.0), r("b", 100.0, 60.0)],
                Some((10.0, 1.0)),
            ),
            // A policy without a rate limit is ignored (Tyk's emptyRateLimit).
            (vec![r("a", 0.0, 0.0), r("b", 5.0, 1.0)], Some((5.0, 1.0))),
            (vec![r("a", 0.0, 0.0)], None),
            // Ties keep the first.
            (vec![r("a", 1.0, 1.0), r("b", 60.0, 60.0)], Some((1.0, 1.0))),
        ];
        for (pols, want) in cases {
            let refs: Vec<&Policy> = pols.iter().collect();
            let eff = apply_policies(&refs).unwrap();
            assert_eq!(eff.rate, want, "{pols:?}");
            assert_eq!(eff.limits_for("x").unwrap().rate, want, "{pols:?}");
        }
    }

    #[test]
    fn policies_per_api_limits_come_from_the_granting_policies() {
        let p1 = Policy {
            rate: 10.0,
            per: 1.0,
            quota_max: 100,
            quota_renewal_rate: 60,
            ..policy("p1", &["api1"])
        };
        let p2 = Policy {
            rate: 500.0,
            per: 1.0,
            quota_max: -1,
            ..policy("p2", &["api2"])
        };
        let eff = apply_policies(&[&p1, &p2]).unwrap();
        let l1 = eff.limits_for("api1").unwrap();
        let l2 = eff.limits_for("api2").unwrap();
        assert_eq!((l1.rate, l1.quota), (Some((10.0, 1.0)), Some((100, 60))));
        assert_eq!((l2.rate, l2.quota), (Some((500.0, 1.0)), None));
        // Different policies grant different APIs: separate counters per policy.
        assert_eq!((l1.scope_key.as_str(), l2.scope_key.as_str()), ("p1", "p2"));
        // Session-level values are the most permissive over everything.
        assert_eq!((eff.rate, eff.quota), (Some((500.0, 1.0)), None));
        assert!(eff.limits_for("api3").is_none());
    }

    #[test]
    fn policies_share_counters_when_one_policy_sets_every_api() {
        // p2 is the last policy granting both APIs: one setter, shared counters (scope "").
        let p1 = policy("p1", &["api1"]);
        let p2 = policy("p2", &["api1", "api2"]);
        let eff = apply_policies(&[&p1, &p2]).unwrap();
        assert!(
            eff.access_rights
                .values()
                .all(|a| a.limits.scope_key.is_empty())
        );
        // A single policy never scopes its counters.
        let eff = apply_policies(&[&policy("p", &["api1", "api2"])]).unwrap();
        assert!(
            eff.access_rights
                .values()
                .all(|a| a.limits.scope_key.is_empty())
        );
    }

    #[test]
    fn policies_tags_metadata_inactive_and_expiry() {
        let mut a = Policy {
            tags: ids(&["t1", "t2"]),
            key_expires_in: 60,
            ..policy("a", &["x"])
        };
        a.meta_data.insert("k".into(), json!("from-a"));
        a.meta_data.insert("only-a".into(), json!(1));
        let mut b = Policy {
            tags: ids(&["t2", "t3"]),
            key_expires_in: 3600,
            ..policy("b", &["x"])
        };
        b.meta_data.insert("k".into(), json!("from-b"));
        let eff = apply_policies(&[&a, &b]).unwrap();
        assert_eq!(eff.tags, ids(&["t1", "t2", "t3"]));
        assert_eq!(eff.meta_data["k"], json!("from-b"));
        assert_eq!(eff.meta_data["only-a"], json!(1));
        assert!(!eff.inactive);
        assert_eq!(eff.key_expires_in, 3600, "the largest lifetime");

        let never = policy("never", &["x"]);
        let eff = apply_policies(&[&a, &never, &b]).unwrap();
        assert_eq!(eff.key_expires_in, 0, "never expiring wins");

        for inactive in [
            Policy {
                is_inactive: true,
                ..policy("i", &["x"])
            },
            Policy {
                active: false,
                ..policy("i", &["x"])
            },
        ] {
            let eff = apply_policies(&[&a, &inactive]).unwrap();
            assert!(
                eff.inactive,
                "any inactive policy makes the session inactive"
            );
        }
    }

    #[test]
    fn policies_without_access_rights_or_duplicates() {
        assert_eq!(
            apply_policies(&[]).unwrap_err(),
            AuthzError::NoMatchingPolicyFound
        );
        let master = policy("m", &[]);
        assert_eq!(
            apply_policies(&[&master]).unwrap_err(),
            AuthzError::NoValidPolicies
        );
        let a = policy("a", &["x"]);
        let eff = apply_policies(&[&a, &master, &a]).unwrap();
        assert_eq!(eff.policy_ids, ids(&["a", "m"]));
        assert_eq!(policy_set_key(&eff.policy_ids), "a,m");
    }

    // ------------------------------------------------------------------------------------------
    // authorize

    fn session_at(expires_at: Option<i64>) -> SessionState {
        SessionState {
            identity: "u".into(),
            policy_ids: ids(&["p"]),
            expires_at,
            oauth_client_id: None,
            created_at: T0,
            updated_at: T0,
        }
    }

    #[test]
    fn authorize_checks_in_tyk_order() {
        let mut p = policy("p", &["api"]);
        p.access_rights.get_mut("api").unwrap().versions = ids(&["v1"]);
        p.access_rights.get_mut("api").unwrap().allowed_urls = vec![AccessSpec {
            url: "^/items".into(),
            methods: ids(&["GET"]),
        }];
        let live = session_at(Some(T0 + 10));
        let expired = session_at(Some(T0));
        let eff = apply_policies(&[&p]).unwrap();
        let inactive = apply_policies(&[&Policy {
            is_inactive: true,
            ..p.clone()
        }])
        .unwrap();
        let check = |eff: &EffectivePolicy,
                     s: &SessionState,
                     api: &str,
                     v: Option<&str>,
                     path: &str,
                     m: &str| {
            let grant = v.map(|target| crate::versions::VersionGrantCheck {
                target,
                or_default: None,
            });
            authorize(eff, s, T0, api, grant.as_ref(), path, m)
        };
        // Inactive comes first (Tyk's KeyExpired middleware checks is_inactive before expiry).
        assert_eq!(
            check(&inactive, &expired, "other", None, "/x", "PUT"),
            Err(AuthzError::KeyInactive)
        );
        assert_eq!(
            check(&eff, &expired, "other", None, "/x", "PUT"),
            Err(AuthzError::KeyExpired)
        );
        assert_eq!(
            check(&eff, &live, "other", None, "/x", "PUT"),
            Err(AuthzError::ApiDisallowed)
        );
        assert_eq!(
            check(&eff, &live, "api", Some("v2"), "/x", "PUT"),
            Err(AuthzError::ApiDisallowed)
        );
        assert_eq!(
            check(&eff, &live, "api", Some("v1"), "/x", "PUT"),
            Err(AuthzError::ResourceDisallowed)
        );
        assert_eq!(
            check(&eff, &live, "api", Some("v1"), "/items", "PUT"),
            Err(AuthzError::ResourceDisallowed)
        );
        assert_eq!(
            check(&eff, &live, "api", Some("v1"), "/items/1", "GET"),
            Ok(())
        );
        // Not versioned: no version check.
        assert_eq!(check(&eff, &live, "api", None, "/items", "GET"), Ok(()));
        assert_eq!(
            check(&eff, &session_at(None), "api", None, "/items", "GET"),
            Ok(())
        );
    }

    #[test]
    fn authorize_empty_versions_grant_no_version_of_a_versioned_api() {
        // Tyk's AccessRightsCheck: on a versioned API the requested version must be listed.
        let eff = apply_policies(&[&policy("p", &["api"])]).unwrap();
        let s = session_at(None);
        let v9 = crate::versions::VersionGrantCheck {
            target: "v9",
            or_default: None,
        };
        assert_eq!(
            authorize(&eff, &s, T0, "api", Some(&v9), "/", "GET"),
            Err(AuthzError::ApiDisallowed)
        );
        // Not versioned: no version check at all.
        assert_eq!(authorize(&eff, &s, T0, "api", None, "/", "GET"), Ok(()));
    }

    #[test]
    fn authorize_allowed_urls_table() {
        let spec = |url: &str, methods: &[&str]| AccessSpec {
            url: url.into(),
            methods: ids(methods),
        };
        let mut p = policy("p", &["api"]);
        p.access_rights.get_mut("api").unwrap().allowed_urls = vec![
            spec("^/items$", &["GET"]),
            spec("/users/{id}/orders", &["GET", "POST"]),
            spec("^/files/*", &["GET"]),
            spec("/admin", &[]),
            spec("(", &["GET"]),
            spec("health", &["GET"]),
        ];
        let eff = apply_policies(&[&p]).unwrap();
        let s = session_at(None);
        let cases: Vec<(&str, &str, bool)> = vec![
            ("/items", "GET", true),
            ("/items", "POST", false),
            ("/items/1", "GET", false),
            ("/users/42/orders", "POST", true),
            ("/users/42/orders/7", "GET", true),
            ("/users/42/x/orders", "GET", false),
            ("/files/a/b.txt", "GET", true),
            ("/files", "GET", false),
            ("/admin", "GET", false),
            ("/admin", "DELETE", false),
            ("/v1/health", "GET", true),
            ("/v1/health", "get", false),
            ("/other", "GET", false),
        ];
        for (path, method, allowed) in cases {
            let got = authorize(&eff, &s, T0, "api", None, path, method);
            let want = if allowed {
                Ok(())
            } else {
                Err(AuthzError::ResourceDisallowed)
            };
            assert_eq!(got, want, "{method} {path}");
        }
        let urls = &eff.access_rights["api"].allowed_urls;
        assert!(urls.iter().filter(|u| !u.is_valid()).all(|u| u.url == "("));
    }

    #[test]
    fn allowed_url_patterns_are_prepared_like_tyk() {
        let cases: Vec<(&str, &str)> = vec![
            ("/users/{id}", "/users/([^/]+)"),
            ("/a/{x}/b/{y}", "/a/([^/]+)/b/([^/]+)"),
            ("/a/{}/b", "/a/{}/b"),
            ("/a/{x", "/a/{x"),
            ("/items/*", "/items/.*"),
            ("/items/*/detail", "/items/[^/]+/detail"),
            ("^/items$", "^/items$"),
            // Tyk rewrites a balanced quantifier too.
            ("/n/[0-9]{3}", "/n/[0-9]([^/]+)"),
        ];
        for (input, want) in cases {
            assert_eq!(prepare_path_pattern(input), want, "{input}");
        }
        assert!(compile_allowed_url("/users/{id}").is_ok());
        assert!(compile_allowed_url("(").is_err());
        // A plain regex compile rejects Tyk's mux-style patterns, so validation should use
        // compile_allowed_url.
        let mux_pattern = String::from("/users/{id}");
        assert!(Regex::new(&mux_pattern).is_err());
    }

    // ------------------------------------------------------------------------------------------
    // Tyk's ApplyPolicies, case by case (internal/policy/apply_test.go and its test data: the
    // policies below are written after the shapes used there, the expectations are Tyk's).

    fn pol(v: Value) -> Policy {
        Policy::from_stored(&v).unwrap()
    }

    fn apply(pols: &[&Policy]) -> Result<EffectivePolicy, AuthzError> {
        apply_policies(pols)
    }

    fn limits(eff: &EffectivePolicy, api: &str) -> (Rate, Quota, String) {
        let l = eff
            .limits_for(api)
            .unwrap_or_else(|| panic!("{api} not granted"));
        (l.rate, l.quota, l.scope_key.clone())
    }

    fn granted(eff: &EffectivePolicy) -> Vec<&str> {
        eff.access_rights.keys().map(String::as_str).collect()
    }

    /// Runs `check` on the policies in the given order and reversed.
    fn both_orders(pols: &[&Policy], check: impl Fn(&EffectivePolicy)) {
        check(&apply(pols).unwrap());
        let mut rev = pols.to_vec();
        rev.reverse();
        check(&apply(&rev).unwrap());
    }

    #[test]
    fn unlimited_rate_wins_over_limited_policies_in_any_order() {
        let limited =
            pol(json!({"id": "limited", "rate": 10, "per": 1, "access_rights": {"a": {}}}));
        for unlimited in [
            json!({"id": "u", "rate": -1, "per": -1, "access_rights": {"a": {}}}),
            json!({"id": "u", "rate": -1, "per": 60, "access_rights": {"a": {}}}),
            json!({"id": "u", "rate": 10, "per": -1, "access_rights": {"a": {}}}),
        ] {
            let unlimited = pol(unlimited);
            both_orders(&[&limited, &unlimited], |eff| {
                assert_eq!(eff.limits_for("a").unwrap().rate, None);
                assert_eq!(eff.rate, None, "session level too");
            });
        }
        // A policy without a rate (0) takes no part: the limited one applies.
        let unset = pol(json!({"id": "unset", "rate": 0, "per": 0, "access_rights": {"a": {}}}));
        both_orders(&[&limited, &unset], |eff| {
            assert_eq!(eff.limits_for("a").unwrap().rate, Some((10.0, 1.0)));
        });
        // Tyk's "RatePart with unlimited": a rate partition with rate -1.
        let acl =
            pol(json!({"id": "acl", "partitions": {"acl": true}, "access_rights": {"a": {}}}));
        let unlimited_part = pol(json!({"id": "ur", "rate": -1,
            "partitions": {"rate_limit": true}, "access_rights": {"a": {}}}));
        assert_eq!(
            apply(&[&acl, &unlimited_part])
                .unwrap()
                .limits_for("a")
                .unwrap()
                .rate,
            None
        );
    }

    #[test]
    fn unlimited_quota_wins_and_zero_loses() {
        let q = |id: &str, max: i64, renew: i64| {
            pol(
                json!({"id": id, "quota_max": max, "quota_renewal_rate": renew,
                "access_rights": {"a": {}}}),
            )
        };
        let cases: Vec<(Policy, Policy, Quota)> = vec![
            (q("a", 100, 60), q("b", -1, 0), None),
            (q("a", 0, 0), q("b", 100, 60), Some((100, 60))),
            // A missing quota_max is Tyk's zero value: it loses too.
            (
                pol(json!({"id": "a", "access_rights": {"a": {}}})),
                q("b", 100, 60),
                Some((100, 60)),
            ),
            // The longest renewal period wins, independently of the quota.
            (q("a", 100, 60), q("b", 50, 3600), Some((100, 3600))),
        ];
        for (x, y, want) in cases {
            both_orders(&[&x, &y], |eff| {
                assert_eq!(eff.limits_for("a").unwrap().quota, want, "{x:?} {y:?}");
            });
        }
    }

    #[test]
    fn a_quota_that_never_renews() {
        // quota_renewal_rate 0 (or Tyk's -1): the quota is used once and never renews.
        for renew in [0, -1] {
            let p = pol(
                json!({"id": "p", "quota_max": 5, "quota_renewal_rate": renew,
                "access_rights": {"a": {}}}),
            );
            let eff = apply(&[&p]).unwrap();
            assert_eq!(
                eff.limits_for("a").unwrap().quota,
                Some((5, 0)),
                "renew {renew}"
            );
            assert_eq!(eff.quota, Some((5, 0)));
        }
        // Combined with a renewing quota, the renewal period wins (the most permissive).
        let never = pol(json!({"id": "n", "quota_max": 5, "access_rights": {"a": {}}}));
        let hourly = pol(
            json!({"id": "h", "quota_max": 5, "quota_renewal_rate": 3600,
            "access_rights": {"a": {}}}),
        );
        both_orders(&[&never, &hourly], |eff| {
            assert_eq!(eff.limits_for("a").unwrap().quota, Some((5, 3600)));
        });
    }

    #[test]
    fn acl_partitions_grant_only_their_apis() {
        let acl_a =
            pol(json!({"id": "acl1", "partitions": {"acl": true}, "access_rights": {"a": {}}}));
        let acl_b =
            pol(json!({"id": "acl2", "partitions": {"acl": true}, "access_rights": {"b": {}}}));
        let rate_ab = pol(json!({"id": "rate-ab", "rate": 4, "per": 1,
            "partitions": {"rate_limit": true}, "access_rights": {"a": {}, "b": {}}}));
        // "AclPart": both APIs, no limits.
        let eff = apply(&[&acl_a, &acl_b]).unwrap();
        assert_eq!(granted(&eff), ["a", "b"]);
        // "Acl for a and rate for a,b": b only got a rate partition, so it is not granted.
        both_orders(&[&acl_a, &rate_ab], |eff| {
            assert_eq!(granted(eff), ["a"]);
            assert_eq!(eff.limits_for("a").unwrap().rate, Some((4.0, 1.0)));
        });
        // "Acl for a,b and individual rate for a,b".
        let acl_ab = pol(json!({"id": "acl-ab", "partitions": {"acl": true},
            "access_rights": {"a": {}, "b": {}}}));
        let rate_a = pol(json!({"id": "rate-a", "rate": 4, "per": 1,
            "partitions": {"rate_limit": true}, "access_rights": {"a": {}}}));
        let rate_b = pol(json!({"id": "rate-b", "rate": 2, "per": 1,
            "partitions": {"rate_limit": true}, "access_rights": {"b": {}}}));
        let eff = apply(&[&acl_ab, &rate_a, &rate_b]).unwrap();
        assert_eq!(limits(&eff, "a").0, Some((4.0, 1.0)));
        assert_eq!(limits(&eff, "b").0, Some((2.0, 1.0)));
        // Policies with only a quota or rate partition grant nothing on their own.
        assert_eq!(apply(&[&rate_ab]).unwrap_err(), AuthzError::NoValidPolicies);
    }

    #[test]
    fn apis_with_only_an_acl_partition_inherit_the_session_level_limits() {
        let acl = pol(json!({"id": "acl", "partitions": {"acl": true},
            "access_rights": {"a": {}, "b": {}}}));
        // Partitioned policies without access rights set the session-level quota and rate.
        let quota = pol(
            json!({"id": "quota", "quota_max": 2, "quota_renewal_rate": 60,
            "partitions": {"quota": true}}),
        );
        let rate = pol(json!({"id": "rate", "rate": 4, "per": 4,
            "partitions": {"rate_limit": true}}));
        for pols in [[&acl, &quota, &rate], [&acl, &rate, &quota]] {
            let eff = apply(&pols).unwrap();
            for api in ["a", "b"] {
                assert_eq!(
                    limits(&eff, api),
                    (Some((4.0, 4.0)), Some((2, 60)), String::new()),
                    "{api}"
                );
            }
            assert_eq!((eff.rate, eff.quota), (Some((4.0, 4.0)), Some((2, 60))));
        }
        // A rate partition on some APIs raises the session level that ACL-only APIs inherit.
        let rate_a = pol(json!({"id": "rate-a", "rate": 10, "per": 1,
            "partitions": {"rate_limit": true}, "access_rights": {"a": {}}}));
        let eff = apply(&[&acl, &rate_a]).unwrap();
        assert_eq!(limits(&eff, "a").0, Some((10.0, 1.0)));
        assert_eq!(limits(&eff, "b").0, Some((10.0, 1.0)));
    }

    #[test]
    fn an_acl_only_base_policy_keeps_its_own_limits() {
        // Tyk's JWT session starts as a copy of the base policy, and only the partitions that
        // are applied clear it: an ACL-only policy alone keeps its own rate and quota.
        let acl = pol(
            json!({"id": "acl", "rate": 100, "per": 60, "quota_max": 1000,
            "quota_renewal_rate": 3600, "partitions": {"acl": true}, "access_rights": {"a": {}}}),
        );
        let eff = apply(&[&acl]).unwrap();
        assert_eq!(
            limits(&eff, "a"),
            (Some((100.0, 60.0)), Some((1000, 3600)), String::new())
        );
        // With a quota partition applied too, the quota comes from that one, the rate stays.
        let quota = pol(json!({"id": "q", "quota_max": 5, "quota_renewal_rate": 60,
            "partitions": {"quota": true}}));
        let eff = apply(&[&acl, &quota]).unwrap();
        assert_eq!(
            limits(&eff, "a"),
            (Some((100.0, 60.0)), Some((5, 60)), String::new())
        );
    }

    #[test]
    fn quota_partition_apis_are_not_granted_and_empty_limits_use_the_session() {
        // Tyk's "QuotaPart with access rights in multi-policy": b only got the quota partition
        // (not granted); a has an all-zero limit, so Tyk's rate limiter uses the session-level
        // quota (3, raised by the quota partition), counted in a's policy scope.
        let quota_b = pol(json!({"id": "quota4", "quota_max": 3,
            "partitions": {"quota": true}, "access_rights": {"b": {}}}));
        let plain_a = pol(json!({"id": "p1", "access_rights": {"a": {}}}));
        let eff = apply(&[&quota_b, &plain_a]).unwrap();
        assert_eq!(granted(&eff), ["a"]);
        assert_eq!(limits(&eff, "a").1, Some((3, 0)));
        // The same quirk across non-partitioned policies: an API whose policies set no limit at
        // all is limited by the session level, which another policy raised.
        let free = pol(json!({"id": "free", "access_rights": {"a": {}}}));
        let limited = pol(json!({"id": "lim", "rate": 10, "per": 1, "access_rights": {"b": {}}}));
        let eff = apply(&[&free, &limited]).unwrap();
        assert_eq!(
            limits(&eff, "a"),
            (Some((10.0, 1.0)), None, "free".to_owned())
        );
        assert_eq!(
            limits(&eff, "b"),
            (Some((10.0, 1.0)), None, "lim".to_owned())
        );
        // A quota of -1 is not "all zero": that API stays unlimited.
        let free = pol(json!({"id": "free", "quota_max": -1, "access_rights": {"a": {}}}));
        let eff = apply(&[&free, &limited]).unwrap();
        assert_eq!(limits(&eff, "a").0, None);
    }

    #[test]
    fn per_api_limits_come_from_each_api() {
        let per_api = pol(json!({"id": "per_api", "partitions": {"per_api": true},
        "access_rights": {
            "c": {"limit": {"rate": 2000, "per": 60, "quota_max": -1}},
            "d": {"limit": {"rate": 20, "per": 1, "quota_max": 1000, "quota_renewal_rate": 3600}}
        }}));
        let eff = apply(&[&per_api]).unwrap();
        assert_eq!(
            limits(&eff, "c"),
            (Some((2000.0, 60.0)), None, "c".to_owned())
        );
        assert_eq!(
            limits(&eff, "d"),
            (Some((20.0, 1.0)), Some((1000, 3600)), "d".to_owned())
        );

        // An API without its own limit takes the policy's, counted under the policy id.
        let from_policy = pol(
            json!({"id": "from_policy", "rate": 300, "per": 1, "quota_max": -1,
            "partitions": {"per_api": true},
            "access_rights": {
                "d": {"limit": {"rate": 200, "per": 10, "quota_max": 5000, "quota_renewal_rate": 3600}},
                "e": {}
            }}),
        );
        let eff = apply(&[&from_policy]).unwrap();
        assert_eq!(
            limits(&eff, "d"),
            (Some((200.0, 10.0)), Some((5000, 3600)), "d".to_owned())
        );
        assert_eq!(
            limits(&eff, "e"),
            (Some((300.0, 1.0)), None, "from_policy".to_owned())
        );

        // "Per API with limits override": a later policy with a less permissive rate on d keeps
        // the earlier, more permissive one.
        let api_d = pol(json!({"id": "api_d", "partitions": {"per_api": true},
            "access_rights": {"d": {"limit": {"rate": 200, "per": 10, "quota_max": 5000,
                "quota_renewal_rate": 3600}}}}));
        let slower_d = pol(json!({"id": "slower_d", "partitions": {"per_api": true},
            "access_rights": {"d": {"limit": {"rate": 400, "per": 25, "quota_max": 5000,
                "quota_renewal_rate": 3600}}}}));
        let eff = apply(&[&from_policy, &api_d, &slower_d]).unwrap();
        assert_eq!(
            limits(&eff, "d"),
            (Some((200.0, 10.0)), Some((5000, 3600)), "d".to_owned())
        );
        assert_eq!(
            limits(&eff, "e"),
            (Some((300.0, 1.0)), None, "from_policy".to_owned())
        );

        // "several policies with per_api set specifying limits for the same APIs".
        let api_c = pol(json!({"id": "api_c", "partitions": {"per_api": true},
            "access_rights": {"c": {"limit": {"rate": 3000, "per": 10, "quota_max": 6000,
                "quota_renewal_rate": 3600}}}}));
        let eff = apply(&[&per_api, &api_d, &api_c]).unwrap();
        assert_eq!(
            limits(&eff, "c"),
            (Some((3000.0, 10.0)), None, "c".to_owned())
        );
        assert_eq!(
            limits(&eff, "d"),
            (Some((200.0, 10.0)), Some((5000, 3600)), "d".to_owned())
        );
    }

    #[test]
    fn per_api_later_policy_replaces_the_acl_of_an_api() {
        // With per_api, Tyk keeps the later policy's versions and allowed_urls for an API it
        // grants too (only the limits are merged).
        let first = pol(json!({"id": "first", "partitions": {"per_api": true},
            "access_rights": {"a": {"versions": ["v1"],
                "allowed_urls": [{"url": "^/x", "methods": ["GET"]}]}}}));
        let second = pol(json!({"id": "second", "partitions": {"per_api": true},
            "access_rights": {"a": {"versions": ["v2"],
                "allowed_urls": [{"url": "^/y", "methods": ["GET"]}]}}}));
        let eff = apply(&[&first, &second]).unwrap();
        assert_eq!(eff.access_rights["a"].versions, ids(&["v2"]));
        let urls: Vec<&str> = eff.access_rights["a"]
            .allowed_urls
            .iter()
            .map(|u| u.url.as_str())
            .collect();
        assert_eq!(urls, ["^/y"]);
    }

    #[test]
    fn per_api_and_partitions_do_not_mix() {
        let both = pol(
            json!({"id": "both", "partitions": {"per_api": true, "rate_limit": true},
            "access_rights": {"d": {}}}),
        );
        let e = apply(&[&both]).unwrap_err();
        assert_eq!(e, AuthzError::PerApiWithPartitions { id: "both".into() });
        assert_eq!(
            (e.status(), e.message().as_str()),
            (
                500,
                "failed to create key: cannot apply policy both which has per_api and any of partitions set"
            )
        );
        let per_api = pol(json!({"id": "pa", "partitions": {"per_api": true},
            "access_rights": {"d": {"limit": {"rate": 1, "per": 1}}}}));
        let quota = pol(json!({"id": "quota1", "quota_max": 2, "partitions": {"quota": true}}));
        let rate = pol(json!({"id": "rate1", "rate": 3, "partitions": {"rate_limit": true}}));
        for pols in [[&per_api, &quota], [&rate, &per_api]] {
            let e = apply(&pols).unwrap_err();
            assert_eq!(e, AuthzError::MixedPerApiAndPartitions);
            assert_eq!(
                (e.status(), e.message().as_str()),
                (
                    500,
                    "failed to create key: cannot apply multiple policies when some have per_api set and some are partitioned"
                )
            );
        }
        // A non-partitioned policy after a per_api one is allowed (Tyk only refuses partitioned).
        let plain = pol(json!({"id": "plain", "rate": 5, "per": 1, "access_rights": {"e": {}}}));
        let eff = apply(&[&per_api, &plain]).unwrap();
        assert_eq!(granted(&eff), ["d", "e"]);
        // Without per_api, access_rights.<api>.limit is ignored, as in Tyk.
        let ignored = pol(json!({"id": "ignored", "rate": 5, "per": 1,
            "access_rights": {"a": {"limit": {"rate": 1000, "per": 1}}}}));
        assert_eq!(
            apply(&[&ignored]).unwrap().limits_for("a").unwrap().rate,
            Some((5.0, 1.0))
        );
    }

    fn endpoints_of(eff: &EffectivePolicy, api: &str) -> Vec<(String, String, Rate)> {
        eff.access_rights[api]
            .endpoints
            .iter()
            .flat_map(|e| {
                e.methods
                    .iter()
                    .map(|m| (e.path.clone(), m.name.clone(), m.rate))
            })
            .collect()
    }

    fn sorted(mut v: Vec<(String, String, Rate)>) -> Vec<(String, String, Rate)> {
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }

    fn ep(path: &str, method: &str, rate: Rate) -> (String, String, Rate) {
        (path.to_owned(), method.to_owned(), rate)
    }

    #[test]
    fn per_api_and_endpoint_limits() {
        // Tyk's "Per API and per endpoint policies" and "Endpoint level limits overlapping".
        let from_policy = pol(
            json!({"id": "from_policy", "rate": 300, "per": 1, "quota_max": -1,
            "partitions": {"per_api": true},
            "access_rights": {
                "d": {"limit": {"rate": 200, "per": 10, "quota_max": 5000, "quota_renewal_rate": 3600}},
                "e": {}
            }}),
        );
        let endpoints = json!([
            {"path": "/get", "methods": [{"name": "GET", "limit": {"rate": -1}}]},
            {"path": "/post", "methods": [{"name": "POST", "limit": {"rate": 300, "per": 10}}]}
        ]);
        let with_endpoints = pol(json!({"id": "with_endpoints", "rate": 500, "per": 1,
        "quota_max": -1, "partitions": {"per_api": true},
        "access_rights": {
            "d": {"limit": {"rate": 100, "per": 10}, "endpoints": endpoints},
            "e": {"endpoints": endpoints}
        }}));
        let want_eps = vec![
            ep("/get", "GET", None),
            ep("/post", "POST", Some((300.0, 10.0))),
        ];
        both_orders(&[&from_policy, &with_endpoints], |eff| {
            assert_eq!(
                limits(eff, "e"),
                (Some((500.0, 1.0)), None, "with_endpoints".to_owned())
            );
            assert_eq!(
                limits(eff, "d"),
                (Some((200.0, 10.0)), Some((5000, 3600)), "d".to_owned())
            );
            assert_eq!(sorted(endpoints_of(eff, "d")), want_eps);
            assert_eq!(sorted(endpoints_of(eff, "e")), want_eps);
        });
        let different_d = pol(
            json!({"id": "different_d", "rate": 500, "per": 1, "quota_max": -1,
            "partitions": {"per_api": true},
            "access_rights": {"d": {"limit": {"rate": 100, "per": 10}, "endpoints": [
                {"path": "/get", "methods": [{"name": "GET", "limit": {"rate": -1}}]},
                {"path": "/post", "methods": [{"name": "POST", "limit": {"rate": 400, "per": 11}}]},
                {"path": "/anything", "methods": [{"name": "PUT", "limit": {"rate": 500, "per": 10}}]}
            ]}}}),
        );
        both_orders(&[&from_policy, &with_endpoints, &different_d], |eff| {
            assert_eq!(
                sorted(endpoints_of(eff, "d")),
                vec![
                    ep("/anything", "PUT", Some((500.0, 10.0))),
                    ep("/get", "GET", None),
                    ep("/post", "POST", Some((400.0, 11.0))),
                ]
            );
            assert_eq!(sorted(endpoints_of(eff, "e")), want_eps);
            assert_eq!(limits(eff, "e").0, Some((500.0, 1.0)));
            assert_eq!(limits(eff, "d").1, Some((5000, 3600)));
        });
    }

    #[test]
    fn endpoint_limits_need_the_rate_limit_partition() {
        let acl_only = pol(
            json!({"id": "acl_only", "rate": 500, "per": 1, "quota_max": -1,
            "partitions": {"acl": true}, "access_rights": {"d": {"endpoints": [
                {"path": "/get", "methods": [{"name": "GET", "limit": {"rate": -1}}]}]}}}),
        );
        let quota_only = pol(json!({"id": "quota_only", "quota_max": 1000,
            "partitions": {"quota": true}}));
        assert!(endpoints_of(&apply(&[&acl_only]).unwrap(), "d").is_empty());
        both_orders(&[&acl_only, &quota_only], |eff| {
            assert!(endpoints_of(eff, "d").is_empty());
        });
    }

    #[test]
    fn endpoint_limits_of_non_partitioned_policies_merge_to_the_highest_rate() {
        let get = |id: &str, rate: Value| {
            pol(json!({"id": id, "rate": 500, "per": 1, "quota_max": -1,
                "partitions": {"acl": true, "rate_limit": true, "quota": true},
                "access_rights": {"d": {"endpoints": [
                    {"path": "/get", "methods": [{"name": "GET", "limit": rate}]}]}}}))
        };
        let rl1 = get("rl1", json!({"rate": 10, "per": 60}));
        let rl2 = get("rl2", json!({"rate": 20, "per": 60}));
        let rl3 = get("rl3", json!({"rate": -1}));
        let post = pol(json!({"id": "post", "rate": 500, "per": 1, "quota_max": -1,
            "partitions": {"acl": true, "rate_limit": true, "quota": true},
            "access_rights": {"d": {"endpoints": [
                {"path": "/post", "methods": [{"name": "POST", "limit": {"rate": 20, "per": 60}}]}]}}}));
        let e_get = pol(
            json!({"id": "e_get", "rate": 500, "per": 1, "quota_max": -1,
            "partitions": {"acl": true, "rate_limit": true, "quota": true},
            "access_rights": {"e": {"endpoints": [
                {"path": "/get", "methods": [{"name": "GET", "limit": {"rate": 100, "per": 60}}]}]}}}),
        );
        both_orders(&[&rl1, &rl2], |eff| {
            assert_eq!(
                endpoints_of(eff, "d"),
                vec![ep("/get", "GET", Some((20.0, 60.0)))]
            );
        });
        both_orders(&[&rl1, &rl2, &rl3], |eff| {
            assert_eq!(endpoints_of(eff, "d"), vec![ep("/get", "GET", None)]);
        });
        both_orders(&[&rl1, &rl2, &rl3, &post, &e_get], |eff| {
            assert_eq!(
                sorted(endpoints_of(eff, "d")),
                vec![
                    ep("/get", "GET", None),
                    ep("/post", "POST", Some((20.0, 60.0)))
                ]
            );
            assert_eq!(
                endpoints_of(eff, "e"),
                vec![ep("/get", "GET", Some((100.0, 60.0)))]
            );
        });
        // A policy without endpoint limits on the API keeps the other policy's.
        let plain = pol(json!({"id": "plain", "rate": 500, "per": 1, "access_rights": {"d": {}}}));
        both_orders(&[&rl1, &plain], |eff| {
            assert_eq!(
                endpoints_of(eff, "d"),
                vec![ep("/get", "GET", Some((10.0, 60.0)))]
            );
        });
    }

    #[test]
    fn endpoint_merge_cases() {
        // Tyk's testdata/apply_endpoint_rl.json, case by case.
        let raw = |path: &str, name: &str, rate: f64, per: f64| RawEndpoint {
            path: path.into(),
            methods: vec![(name.into(), rate, per)],
        };
        let user_10_60 = raw("/user", "GET", 10.0, 60.0);
        let user_5_30 = raw("/user", "GET", 5.0, 30.0);
        let admin = raw("/admin", "POST", 5.0, 30.0);
        let cases: Vec<(Vec<RawEndpoint>, Vec<RawEndpoint>, Vec<RawEndpoint>)> = vec![
            (vec![], vec![], vec![]),
            (vec![], vec![user_10_60.clone()], vec![user_10_60.clone()]),
            (vec![user_10_60.clone()], vec![], vec![user_10_60.clone()]),
            (
                vec![user_10_60.clone()],
                vec![admin.clone()],
                vec![admin.clone(), user_10_60.clone()],
            ),
            // Same interval (6 s per request): the higher rate wins, either way round.
            (
                vec![user_10_60.clone()],
                vec![user_5_30.clone()],
                vec![user_10_60.clone()],
            ),
            (
                vec![user_5_30.clone()],
                vec![user_10_60.clone()],
                vec![user_10_60.clone()],
            ),
            (
                vec![user_10_60.clone()],
                vec![user_10_60.clone()],
                vec![user_10_60.clone()],
            ),
            // A shorter interval wins; unlimited (-1) wins over everything.
            (
                vec![raw("/user", "GET", 1.0, 60.0)],
                vec![user_10_60.clone()],
                vec![user_10_60.clone()],
            ),
            (
                vec![user_10_60.clone()],
                vec![raw("/user", "GET", -1.0, 0.0)],
                vec![raw("/user", "GET", -1.0, 0.0)],
            ),
        ];
        for (policy, current, want) in cases {
            assert_eq!(
                merge_endpoints(&policy, &current),
                want,
                "{policy:?} + {current:?}"
            );
        }
    }

    #[test]
    fn endpoint_limit_finds_the_first_matching_endpoint() {
        let p = pol(
            json!({"id": "p", "rate": 100, "per": 1, "access_rights": {"a": {"endpoints": [
                {"path": "/items/{id}", "methods": [
                    {"name": "GET", "limit": {"rate": 10, "per": 60}},
                    {"name": "delete", "limit": {"rate": 1, "per": 60}}]},
                {"path": "/items", "methods": [{"name": "GET", "limit": {"rate": 50, "per": 60}}]},
                {"path": "^/free$", "methods": [{"name": "GET", "limit": {"rate": -1}}]},
                {"path": "/files/*", "methods": [{"name": "PUT", "limit": {"rate": 2, "per": 1}}]}
            ]}}}),
        );
        let eff = apply(&[&p]).unwrap();
        let rate_of = |path: &str, method: &str| {
            eff.endpoint_limit("a", path, method)
                .map(|l| (l.path.to_owned(), l.rate))
        };
        type Found<'a> = Option<(&'a str, Rate)>;
        let cases: Vec<(&str, &str, Found<'_>)> = vec![
            ("/items/1", "GET", Some(("/items/{id}", Some((10.0, 60.0))))),
            // Methods match case-insensitively, both ways.
            ("/items/1", "get", Some(("/items/{id}", Some((10.0, 60.0))))),
            (
                "/items/1",
                "DELETE",
                Some(("/items/{id}", Some((1.0, 60.0)))),
            ),
            // The first entry does not match /items; the second does.
            ("/items", "GET", Some(("/items", Some((50.0, 60.0))))),
            // Patterns are searched unanchored, as allowed_urls are.
            ("/v2/items", "GET", Some(("/items", Some((50.0, 60.0))))),
            ("/items/1", "POST", None),
            // An unlimited endpoint: found, with no rate (it replaces the API's limit).
            ("/free", "GET", Some(("^/free$", None))),
            ("/free/x", "GET", None),
            ("/files/a/b", "PUT", Some(("/files/*", Some((2.0, 1.0))))),
            ("/other", "GET", None),
        ];
        for (path, method, want) in cases {
            assert_eq!(
                rate_of(path, method),
                want.map(|(p, r)| (p.to_owned(), r)),
                "{method} {path}"
            );
        }
        assert!(eff.endpoint_limit("nope", "/items", "GET").is_none());
    }

    #[test]
    fn endpoint_counter_keys_are_distinct_and_safe() {
        let p = pol(json!({"id": "p", "access_rights": {"a": {"endpoints": [
            {"path": "/items/{id}", "methods": [
                {"name": "GET", "limit": {"rate": 1, "per": 1}},
                {"name": "POST", "limit": {"rate": 1, "per": 1}}]},
            {"path": "/items/{id} x:y", "methods": [{"name": "GET", "limit": {"rate": 1, "per": 1}}]},
            {"path": "/a:b", "methods": [{"name": "GET", "limit": {"rate": 1, "per": 1}}]},
            {"path": "/a", "methods": [{"name": "GET:", "limit": {"rate": 1, "per": 1}}]}
        ]}}}));
        let eff = apply(&[&p]).unwrap();
        let keys: Vec<&str> = eff.access_rights["a"]
            .endpoints
            .iter()
            .flat_map(|e| e.methods.iter().map(|m| m.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                "GET:/items/%7Bid%7D",
                "POST:/items/%7Bid%7D",
                "GET:/items/%7Bid%7D%20x%3Ay",
                "GET:/a%3Ab",
                "GET%3A:/a"
            ]
        );
        let unique: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len());
        for k in keys {
            assert!(
                !k.contains([' ', '{', '}', '\n']),
                "{k} is not safe in a Redis key"
            );
        }
        assert_eq!(
            eff.endpoint_limit("a", "/items/7", "POST").map(|l| l.key),
            Some("POST:/items/%7Bid%7D")
        );
    }

    #[test]
    fn tyk_merges_allowed_urls_per_path() {
        // Tyk's "Merge per path rules for the same API".
        let per_path1 = pol(json!({"id": "pp1", "access_rights": {
            "a": {"allowed_urls": [{"url": "/user", "methods": ["GET", "POST"]}]},
            "b": {"allowed_urls": [{"url": "/", "methods": ["PUT"]}]}}}));
        let per_path2 = pol(json!({"id": "pp2", "access_rights": {
            "a": {"allowed_urls": [{"url": "/user", "methods": ["GET"]},
                {"url": "/companies", "methods": ["GET", "POST"]}]}}}));
        let eff = apply(&[&per_path2, &per_path1]).unwrap();
        let urls = |api: &str| -> Vec<(String, Vec<String>)> {
            eff.access_rights[api]
                .allowed_urls
                .iter()
                .map(|u| (u.url.clone(), u.methods.clone()))
                .collect()
        };
        assert_eq!(
            urls("a"),
            vec![
                ("/user".to_owned(), ids(&["GET", "POST"])),
                ("/companies".to_owned(), ids(&["GET", "POST"]))
            ]
        );
        assert_eq!(urls("b"), vec![("/".to_owned(), ids(&["PUT"]))]);
        // The policies themselves are untouched.
        assert_eq!(
            per_path2.access_rights["a"].allowed_urls[0].methods,
            ids(&["GET"])
        );
    }

    #[test]
    fn inactive_policies_and_states_make_the_session_inactive() {
        let tags = pol(json!({"id": "tags1", "tags": ["tagA"], "access_rights": {"a": {}}}));
        for inactive in [
            json!({"id": "x", "is_inactive": true, "partitions": {"rate_limit": true}}),
            json!({"id": "x", "state": "deny", "access_rights": {"a": {}}}),
            json!({"id": "x", "state": "draft", "access_rights": {"a": {}}}),
            json!({"id": "x", "active": false, "access_rights": {"a": {}}}),
        ] {
            let inactive = pol(inactive);
            both_orders(&[&tags, &inactive], |eff| {
                assert!(eff.inactive, "{inactive:?}");
                let s = SessionState::new("u", eff, None, None, T0);
                assert_eq!(
                    authorize(eff, &s, T0, "a", None, "/", "GET"),
                    Err(AuthzError::KeyInactive)
                );
            });
        }
        let acl =
            pol(json!({"id": "acl", "partitions": {"acl": true}, "access_rights": {"a": {}}}));
        assert!(!apply(&[&tags, &acl]).unwrap().inactive);
    }

    #[test]
    fn a_stored_deny_policy_grants_nothing() {
        // The gateway reads stored documents; `state` must be honoured there (issue 11).
        let mut gw = Gw::new().with_api("a", |_| {});
        for (state, want) in [
            ("active", Ok(())),
            ("deny", forbidden("Key is inactive, please renew")),
            ("draft", forbidden("Key is inactive, please renew")),
        ] {
            gw = gw.with_policy(pol(
                json!({"id": "p", "state": state, "access_rights": {"a": {}}}),
            ));
            assert_eq!(
                gw.call("a", json!({"user_id": "u", "policy_id": "p"})),
                want,
                "{state}"
            );
        }
    }

    // ------------------------------------------------------------------------------------------
    // Organisations

    fn org_policy(id: &str, org: &str) -> Policy {
        pol(json!({"id": id, "org_id": org, "access_rights": {"a": {}}}))
    }

    #[test]
    fn a_policy_claim_of_another_org_is_no_matching_policy() {
        let mut gw = Gw::new()
            .with_api("a", |a| a.org_id = "org1".into())
            .with_policy(org_policy("mine", "org1"))
            .with_policy(org_policy("theirs", "org2"))
            .with_policy(org_policy("none", ""));
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "mine"})),
            Ok(())
        );
        for id in ["theirs", "none"] {
            assert_eq!(
                gw.call("a", json!({"user_id": "u", "policy_id": id})),
                forbidden(NO_MATCHING_POLICY),
                "{id}"
            );
        }
        // The common case: neither the API nor the policy has an org_id.
        let mut gw = Gw::new()
            .with_api("a", |_| {})
            .with_policy(org_policy("p", ""))
            .with_policy(org_policy("q", "org1"));
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "p"})),
            Ok(())
        );
        assert_eq!(
            gw.call("a", json!({"user_id": "u", "policy_id": "q"})),
            forbidden(NO_MATCHING_POLICY)
        );
    }

    #[test]
    fn default_and_scope_policies_of_another_org_fail_the_request() {
        let mut gw = Gw::new()
            .with_api("a", |a| {
                a.org_id = "org1".into();
                a.jwt_policy_field_name.clear();
                a.jwt_default_policies = ids(&["mine", "theirs"]);
            })
            .with_policy(org_policy("mine", "org1"))
            .with_policy(org_policy("theirs", "org2"));
        let e = gw.call("a", json!({"user_id": "u"})).unwrap_err();
        assert_eq!(
            e,
            (
                500,
                "failed to create key: attempting to apply policy from different organisation \
                 to key, skipping"
                    .to_owned()
            )
        );
        // Not skipped like an unknown policy: an unknown one is dropped, a foreign one fails.
        gw.api("a").jwt_default_policies = ids(&["mine", "unknown"]);
        assert_eq!(gw.call("a", json!({"user_id": "u"})), Ok(()));

        gw.api("a").jwt_scope_to_policy_mapping = [("read", "mine"), ("write", "theirs")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            gw.call("a", json!({"user_id": "v", "scope": "read"})),
            Ok(())
        );
        assert_eq!(
            gw.call("a", json!({"user_id": "v", "scope": "read write"})),
            forbidden("key not authorized: could not apply several policies")
        );
    }

    #[test]
    fn resolve_for_org_errors() {
        let api = ApiDefinition {
            jwt_policy_field_name: "pol".into(),
            ..Default::default()
        };
        let exists = |id: &str| id != "unknown";
        let in_org = |id: &str| !id.starts_with("foreign");
        let run = |claims: Value, client: Option<&[String]>| {
            resolve_policies_for_org(
                ResolveInput {
                    claims: &obj(claims),
                    api: &api,
                    policy_exists: &exists,
                    session_exists: false,
                    client_policies: client,
                },
                &in_org,
            )
        };
        assert_eq!(run(json!({"pol": "p"}), None), Ok(ids(&["p"])));
        assert_eq!(
            run(json!({"pol": "foreign"}), None),
            Err(AuthzError::NoMatchingPolicy)
        );
        let client = ids(&["p", "foreign-c"]);
        assert_eq!(
            run(json!({}), Some(&client)),
            Err(AuthzError::NoMatchingPolicy)
        );
        let client = ids(&["p", "unknown"]);
        assert_eq!(run(json!({}), Some(&client)), Ok(ids(&["p"])));
        // The plain form does not check organisations.
        let plain = resolve_policies(ResolveInput {
            claims: &obj(json!({"pol": "foreign"})),
            api: &api,
            policy_exists: &exists,
            session_exists: false,
            client_policies: None,
        });
        assert_eq!(plain, Ok(ids(&["foreign"])));
        for (e, status) in [
            (AuthzError::ForeignOrgPolicy { id: "x".into() }, 500),
            (
                AuthzError::CouldNotApplyScopePolicies { id: "x".into() },
                403,
            ),
            (AuthzError::MixedPerApiAndPartitions, 500),
            (AuthzError::PerApiWithPartitions { id: "x".into() }, 500),
        ] {
            assert_eq!(e.status(), status, "{e:?}");
            assert!(
                !e.message().contains("\"x\""),
                "ids stay out of public messages: {e}"
            );
        }
    }
}
