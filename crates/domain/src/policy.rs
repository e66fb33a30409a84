//! The Tyk policy: access rights, rate limit, quota, partitions, per-API and per-endpoint limits,
//! key expiry, state and organisation.
//!
//! [`Policy`] is the typed view every reader uses ([`Policy::from_stored`] for stored documents,
//! [`validate_policy`] for operator input). How several policies combine into what a session may
//! do is [`crate::session::apply_policies`]. Which Tyk policy fields Gatehouse enforces, keeps,
//! warns about or refuses is the table [`POLICY_FIELDS`], which [`validate_policy`] applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::api::has_value;
use crate::error::ValidationError;
use crate::ids;

/// A Tyk policy, with Tyk's field names. Unknown fields are kept by the store (the raw document is
/// stored); this is the typed view the gateway acts on. Missing fields take Tyk's zero values
/// (`quota_max: 0`, `rate: 0`), except `active`, which defaults to `true`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Policy {
    /// The policy id used in `pol` claims, scope maps and catalogue entries.
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    /// Label.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Owning organisation: the policy applies only to APIs with the same `org_id`
    /// ([`applies_to_org`]).
    #[serde(deserialize_with = "null_default")]
    pub org_id: String,
    /// Requests allowed per `per` seconds. `0` (or `per: 0`) sets no rate limit and is ignored
    /// when policies are combined; a negative `rate` or `per` (Tyk's `-1`) means unlimited and
    /// wins over any limited policy when combined.
    #[serde(deserialize_with = "null_default")]
    pub rate: f64,
    /// Rate window in seconds.
    #[serde(deserialize_with = "null_default")]
    pub per: f64,
    /// Requests per quota period. `-1` is unlimited and wins when policies are combined; `0` is
    /// unlimited on its own but loses to any positive quota when combined (Tyk's rules).
    #[serde(deserialize_with = "null_default")]
    pub quota_max: i64,
    /// Quota period in seconds; `0` (or less) means the quota never renews.
    #[serde(deserialize_with = "null_default")]
    pub quota_renewal_rate: i64,
    /// Tyk retries a rate-limited request inside the gateway after this many seconds. Not
    /// implemented (Gatehouse answers 429 at once); kept because it takes part in Tyk's merge
    /// rules.
    #[serde(deserialize_with = "null_default")]
    pub throttle_interval: f64,
    /// How often Tyk retries a rate-limited request (see `throttle_interval`). Not implemented.
    #[serde(deserialize_with = "null_default")]
    pub throttle_retry_limit: i64,
    /// GraphQL query depth (`-1` or `0`: unlimited). Gatehouse serves no GraphQL API; validation
    /// refuses a positive value. Kept because it takes part in Tyk's merge rules.
    #[serde(deserialize_with = "null_default")]
    pub max_query_depth: i64,
    /// Which APIs (and versions, URLs, limits) the policy grants.
    #[serde(deserialize_with = "null_default")]
    pub access_rights: BTreeMap<String, AccessDefinition>,
    /// Which parts this policy contributes when combined with others.
    #[serde(deserialize_with = "null_default")]
    pub partitions: Partitions,
    /// A session created from this policy expires after this many seconds; `0` = never.
    #[serde(deserialize_with = "null_default")]
    pub key_expires_in: i64,
    /// Tags copied to the session.
    #[serde(deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Metadata copied to the session.
    #[serde(deserialize_with = "null_default")]
    pub meta_data: Map<String, Value>,
    /// Dashboard flag: `false` makes the policy's sessions inactive (Tyk does not even load it).
    #[serde(deserialize_with = "null_or_true")]
    pub active: bool,
    /// Gateway flag: the policy makes its sessions inactive.
    #[serde(deserialize_with = "null_default")]
    pub is_inactive: bool,
    /// Dashboard state (`active`, `draft`, `deny`); only `active` (or no state) grants anything.
    pub state: PolicyState,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            org_id: String::new(),
            rate: 0.0,
            per: 0.0,
            quota_max: 0,
            quota_renewal_rate: 0,
            throttle_interval: 0.0,
            throttle_retry_limit: 0,
            max_query_depth: 0,
            access_rights: BTreeMap::new(),
            partitions: Partitions::default(),
            key_expires_in: 0,
            tags: Vec::new(),
            meta_data: Map::new(),
            active: true,
            is_inactive: false,
            state: PolicyState::Active,
        }
    }
}

/// The Tyk Dashboard's policy `state`.
///
/// - [`PolicyState::Active`] (also an absent, `null` or `""` state): the policy grants what it
///   says.
/// - [`PolicyState::Deny`] ("Access Denied" in the Dashboard): sessions under the policy are
///   inactive, every request gets 403 `Key is inactive, please renew` (the Dashboard sets
///   `is_inactive` for this state).
/// - [`PolicyState::Draft`]: the Dashboard does not hand a draft policy to its gateways at all, so
///   in Tyk a token naming it gets 403 `key not authorized: no matching policy`, and a draft among
///   several policies is skipped. Gatehouse keeps drafts stored and treats them like `deny`: every
///   request of a session that applies a draft gets 403 `Key is inactive, please renew`. That is
///   stricter than Tyk when a draft is combined with other policies, never more open.
/// - [`PolicyState::Unknown`]: any other value. Validation refuses it; a stored document with one
///   (written before this check) is treated like `deny` (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Option<String>", into = "String")]
pub enum PolicyState {
    /// Grants access.
    #[default]
    Active,
    /// Not published: grants nothing.
    Draft,
    /// Access denied: grants nothing.
    Deny,
    /// A value Gatehouse does not know: grants nothing.
    Unknown(String),
}

impl PolicyState {
    /// Whether the state lets the policy grant access.
    pub fn grants_access(&self) -> bool {
        *self == Self::Active
    }

    /// The Dashboard's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Draft => "draft",
            Self::Deny => "deny",
            Self::Unknown(s) => s,
        }
    }
}

impl From<Option<String>> for PolicyState {
    fn from(s: Option<String>) -> Self {
        match s.as_deref() {
            None | Some("" | "active") => Self::Active,
            Some("draft") => Self::Draft,
            Some("deny") => Self::Deny,
            Some(other) => Self::Unknown(other.to_owned()),
        }
    }
}

impl From<PolicyState> for String {
    fn from(s: PolicyState) -> Self {
        s.as_str().to_owned()
    }
}

/// Tyk's policy partitions: which parts of a policy it contributes when several are applied.
/// None set: the policy contributes everything (a "non-partitioned" policy).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Partitions {
    /// Contributes `quota_max` / `quota_renewal_rate`.
    #[serde(deserialize_with = "null_default")]
    pub quota: bool,
    /// Contributes `rate` / `per` and the endpoint limits.
    #[serde(deserialize_with = "null_default")]
    pub rate_limit: bool,
    /// Contributes `max_query_depth` (GraphQL; Gatehouse refuses a positive depth, so this
    /// contributes nothing that Gatehouse enforces).
    #[serde(deserialize_with = "null_default")]
    pub complexity: bool,
    /// Contributes the APIs, versions and `allowed_urls`.
    #[serde(deserialize_with = "null_default")]
    pub acl: bool,
    /// Limits live per API in `access_rights.<api>.limit`. Cannot be combined with the others.
    #[serde(deserialize_with = "null_default")]
    pub per_api: bool,
}

impl Partitions {
    /// Whether the policy is partitioned (Tyk's `Enabled`: any of quota, rate limit, ACL,
    /// complexity; `per_api` does not count).
    pub fn enabled(&self) -> bool {
        self.quota || self.rate_limit || self.acl || self.complexity
    }
}

/// What a policy grants on one API (`access_rights.<api_id>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccessDefinition {
    /// The API id (repeated from the key).
    #[serde(deserialize_with = "null_default")]
    pub api_id: String,
    /// The API name (informational).
    #[serde(deserialize_with = "null_default")]
    pub api_name: String,
    /// Versions allowed.
    #[serde(deserialize_with = "null_default")]
    pub versions: Vec<String>,
    /// When non-empty, only these paths (regexes) and methods are allowed.
    #[serde(deserialize_with = "null_default")]
    pub allowed_urls: Vec<AccessSpec>,
    /// Per-API rate limit and quota; used only when the policy sets `partitions.per_api` (as in
    /// Tyk, it is ignored otherwise).
    #[serde(deserialize_with = "null_default")]
    pub limit: ApiLimit,
    /// Per-endpoint rate limits.
    #[serde(deserialize_with = "null_default")]
    pub endpoints: Vec<Endpoint>,
}

/// One `allowed_urls` entry: a path regex and the methods allowed on it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AccessSpec {
    /// A regular expression matched against the request path (after the listen path is removed).
    #[serde(deserialize_with = "null_default")]
    pub url: String,
    /// Allowed methods; empty allows none (Tyk's rule).
    #[serde(deserialize_with = "null_default")]
    pub methods: Vec<String>,
}

/// Tyk's `APILimit`: the per-API limits of `access_rights.<api>.limit`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ApiLimit {
    /// Requests per `per` seconds (same conventions as [`Policy::rate`]).
    #[serde(deserialize_with = "null_default")]
    pub rate: f64,
    /// Rate window in seconds.
    #[serde(deserialize_with = "null_default")]
    pub per: f64,
    /// Not implemented (see [`Policy::throttle_interval`]).
    #[serde(deserialize_with = "null_default")]
    pub throttle_interval: f64,
    /// Not implemented (see [`Policy::throttle_retry_limit`]).
    #[serde(deserialize_with = "null_default")]
    pub throttle_retry_limit: i64,
    /// GraphQL depth; a positive value is refused by validation.
    #[serde(deserialize_with = "null_default")]
    pub max_query_depth: i64,
    /// Requests per quota period (same conventions as [`Policy::quota_max`]).
    #[serde(deserialize_with = "null_default")]
    pub quota_max: i64,
    /// Tyk's runtime renewal time; ignored (Gatehouse keeps its own counters).
    #[serde(deserialize_with = "null_default")]
    pub quota_renews: i64,
    /// Tyk's runtime remaining count; ignored.
    #[serde(deserialize_with = "null_default")]
    pub quota_remaining: i64,
    /// Quota period in seconds; `0` or less never renews.
    #[serde(deserialize_with = "null_default")]
    pub quota_renewal_rate: i64,
}

impl ApiLimit {
    /// Tyk's `APILimit.IsEmpty`: every field is zero. An empty per-API limit means "use the
    /// session-level (policy-level) values".
    pub fn is_empty(&self) -> bool {
        self.rate == 0.0
            && self.per == 0.0
            && self.throttle_interval == 0.0
            && self.throttle_retry_limit == 0
            && self.max_query_depth == 0
            && self.quota_max == 0
            && self.quota_renews == 0
            && self.quota_remaining == 0
            && self.quota_renewal_rate == 0
    }
}

/// One `access_rights.<api>.endpoints` entry: per-method rate limits for a path pattern.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Endpoint {
    /// A path pattern, prepared like `allowed_urls` patterns
    /// ([`crate::session::compile_allowed_url`]) and searched in the request path relative to
    /// the listen path.
    #[serde(deserialize_with = "null_default")]
    pub path: String,
    /// The limited methods.
    #[serde(deserialize_with = "null_default")]
    pub methods: Vec<EndpointMethod>,
}

/// One method of an [`Endpoint`] and its rate limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EndpointMethod {
    /// The HTTP method (matched case-insensitively, as Tyk does).
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// The rate limit for requests to this path and method.
    #[serde(deserialize_with = "null_default")]
    pub limit: RateLimit,
}

/// A rate limit: `rate` requests per `per` seconds (same conventions as [`Policy::rate`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RateLimit {
    /// Requests per `per` seconds; `0` or a negative value: no limit.
    #[serde(deserialize_with = "null_default")]
    pub rate: f64,
    /// Window in seconds.
    #[serde(deserialize_with = "null_default")]
    pub per: f64,
}

/// `null` reads as the type's default (Tyk exports write `"limit": null`, `"allowed_urls": null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn null_or_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

impl Policy {
    /// Whether sessions under this policy are inactive: `is_inactive`, `active: false`, or a
    /// `state` other than `active` ([`PolicyState`]).
    pub fn inactive(&self) -> bool {
        self.is_inactive || !self.active || !self.state.grants_access()
    }

    /// Reads a stored document without validating it again. The typed view honours every field
    /// that restricts access (`state` included), so every reader gets the same answer.
    pub fn from_stored(raw: &Value) -> Result<Self, ValidationError> {
        serde_path_to_error::deserialize(raw.clone()).map_err(|e| ValidationError::from_serde(&e))
    }

    /// Whether this policy applies to an API of organisation `api_org` ([`applies_to_org`]).
    pub fn applies_to_org(&self, api_org: &str) -> bool {
        applies_to_org(&self.org_id, api_org)
    }
}

/// Whether a policy of organisation `policy_org` may be applied to a request for an API of
/// organisation `api_org`: only when they are equal, as in Tyk (`policy.OrgID != spec.OrgID` is
/// refused). An empty `org_id` is a value like any other: a policy without one applies only to
/// APIs without one (the common single-organisation case, where neither sets it), and a policy
/// without one never applies to an API that has one, nor the other way round (fail closed).
///
/// The gateway calls this while resolving a token's policies
/// ([`crate::session::resolve_policies_for_org`]).
pub fn applies_to_org(policy_org: &str, api_org: &str) -> bool {
    policy_org == api_org
}

/// A policy that passed validation, with the document to store and its warnings.
#[derive(Debug, Clone)]
pub struct ValidatedPolicy {
    /// Typed view.
    pub policy: Policy,
    /// Document as stored (input with `id` filled in).
    pub raw: Value,
    /// Fields kept without effect, each naming the consequence.
    pub warnings: Vec<String>,
}

/// What Gatehouse does with a Tyk policy field ([`POLICY_FIELDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldSupport {
    /// Acted on, with Tyk's semantics (differences named in the note).
    Enforced,
    /// Stored and returned, with nothing to act on (labels, ids, Tyk's runtime counters, values
    /// Tyk itself recomputes).
    Kept,
    /// Stored, not acted on, and it only adds behaviour: a value makes the policy come back with
    /// a warning naming the consequence.
    Warned,
    /// Restricts access and is not implemented: a value makes the policy refused (400 naming the
    /// field). Defaults (`null`, `false`, `0`, `""`, `[]`, `{}`, and for depths `-1`, for
    /// smoothing `enabled: false`) are accepted. The same defaults do not warn for
    /// [`FieldSupport::Warned`] fields (throttling: `-1`).
    Refused,
}

/// Every Tyk policy field Gatehouse knows, with what it does with it and a one-line note; the
/// source of the compatibility table (`docs/tyk-compatibility.md`). Paths are dotted; `*` stands
/// for an API id or a list index. [`validate_policy`] applies it: a refused field with a value is
/// a 400, a warned one a warning. A field not in the table is warned about at the top level
/// ("kept but has no effect") and refused inside `access_rights` (where an unknown field most
/// likely narrows a grant).
pub const POLICY_FIELDS: &[(&str, FieldSupport, &str)] = &[
    (
        "_id",
        FieldSupport::Kept,
        "Tyk Dashboard's database id; Gatehouse uses `id`",
    ),
    (
        "id",
        FieldSupport::Enforced,
        "the id used in `pol` claims, scope mappings and catalogue entries",
    ),
    ("name", FieldSupport::Kept, "label"),
    (
        "org_id",
        FieldSupport::Enforced,
        "applied only to APIs with the same org_id (exact match; empty matches only empty)",
    ),
    (
        "rate",
        FieldSupport::Enforced,
        "requests per `per` seconds; 0 = not set; -1 = unlimited, which wins over limited policies when combined",
    ),
    (
        "per",
        FieldSupport::Enforced,
        "rate window in seconds; -1 = unlimited; 0 is refused when `rate` is positive",
    ),
    (
        "quota_max",
        FieldSupport::Enforced,
        "requests per renewal period; -1 = unlimited (wins when combined); 0 = unlimited (loses when combined)",
    ),
    (
        "quota_renewal_rate",
        FieldSupport::Enforced,
        "quota period in seconds; 0 = the quota never renews",
    ),
    (
        "throttle_interval",
        FieldSupport::Warned,
        "Tyk retries a rate-limited request inside the gateway; Gatehouse answers 429 at once and the client retries",
    ),
    (
        "throttle_retry_limit",
        FieldSupport::Warned,
        "Tyk retries a rate-limited request inside the gateway; Gatehouse answers 429 at once and the client retries",
    ),
    (
        "max_query_depth",
        FieldSupport::Refused,
        "GraphQL query depth limit; -1 and 0 (unlimited) are accepted",
    ),
    (
        "access_rights",
        FieldSupport::Enforced,
        "the APIs the policy grants, merged with other policies as Tyk merges them",
    ),
    (
        "access_rights.*",
        FieldSupport::Enforced,
        "what the policy grants on one API",
    ),
    (
        "access_rights.*.api_id",
        FieldSupport::Enforced,
        "must equal its key",
    ),
    ("access_rights.*.api_name", FieldSupport::Kept, "label"),
    (
        "access_rights.*.versions",
        FieldSupport::Enforced,
        "versions granted; unioned with other policies",
    ),
    (
        "access_rights.*.allowed_urls",
        FieldSupport::Enforced,
        "path patterns and methods allowed (403 `Access to this resource has been disallowed`); merged per pattern",
    ),
    (
        "access_rights.*.allowed_urls.*",
        FieldSupport::Enforced,
        "one path pattern and its methods",
    ),
    (
        "access_rights.*.allowed_urls.*.url",
        FieldSupport::Enforced,
        "path pattern, Tyk's syntax (`{id}`, `/*`, regex), unanchored",
    ),
    (
        "access_rights.*.allowed_urls.*.methods",
        FieldSupport::Enforced,
        "methods allowed on the pattern; empty allows none",
    ),
    (
        "access_rights.*.allowed_urls.*.conditions",
        FieldSupport::Refused,
        "conditional grants (header/query matches) are not implemented",
    ),
    (
        "access_rights.*.limit",
        FieldSupport::Enforced,
        "per-API rate and quota, used when `partitions.per_api` is set (ignored otherwise, as in Tyk)",
    ),
    (
        "access_rights.*.limit.rate",
        FieldSupport::Enforced,
        "as `rate`, for this API",
    ),
    (
        "access_rights.*.limit.per",
        FieldSupport::Enforced,
        "as `per`, for this API",
    ),
    (
        "access_rights.*.limit.quota_max",
        FieldSupport::Enforced,
        "as `quota_max`, for this API; counted per API",
    ),
    (
        "access_rights.*.limit.quota_renewal_rate",
        FieldSupport::Enforced,
        "as `quota_renewal_rate`, for this API",
    ),
    (
        "access_rights.*.limit.throttle_interval",
        FieldSupport::Warned,
        "as `throttle_interval`: not implemented",
    ),
    (
        "access_rights.*.limit.throttle_retry_limit",
        FieldSupport::Warned,
        "as `throttle_retry_limit`: not implemented",
    ),
    (
        "access_rights.*.limit.max_query_depth",
        FieldSupport::Refused,
        "GraphQL query depth limit; -1 and 0 (unlimited) are accepted",
    ),
    (
        "access_rights.*.limit.quota_remaining",
        FieldSupport::Kept,
        "Tyk's runtime counter; Gatehouse keeps its own",
    ),
    (
        "access_rights.*.limit.quota_renews",
        FieldSupport::Kept,
        "Tyk's runtime renewal time; Gatehouse keeps its own",
    ),
    (
        "access_rights.*.limit.set_by_policy",
        FieldSupport::Kept,
        "a Dashboard form flag; Tyk's gateway ignores it too",
    ),
    (
        "access_rights.*.limit.smoothing",
        FieldSupport::Refused,
        "rate-limit smoothing lowers the allowance under load; not implemented (`enabled: false` is accepted)",
    ),
    (
        "access_rights.*.allowance_scope",
        FieldSupport::Kept,
        "Tyk recomputes it when policies are applied and ignores the stored value; so does Gatehouse",
    ),
    (
        "access_rights.*.endpoints",
        FieldSupport::Enforced,
        "per-endpoint rate limits; replace the API's rate limit for matching requests, as in Tyk",
    ),
    (
        "access_rights.*.endpoints.*",
        FieldSupport::Enforced,
        "one path pattern and its per-method limits",
    ),
    (
        "access_rights.*.endpoints.*.path",
        FieldSupport::Enforced,
        "path pattern, same syntax as `allowed_urls`; the first matching entry wins",
    ),
    (
        "access_rights.*.endpoints.*.methods",
        FieldSupport::Enforced,
        "the limited methods",
    ),
    (
        "access_rights.*.endpoints.*.methods.*",
        FieldSupport::Enforced,
        "one method and its limit",
    ),
    (
        "access_rights.*.endpoints.*.methods.*.name",
        FieldSupport::Enforced,
        "HTTP method, matched case-insensitively",
    ),
    (
        "access_rights.*.endpoints.*.methods.*.limit",
        FieldSupport::Enforced,
        "the endpoint's rate limit",
    ),
    (
        "access_rights.*.endpoints.*.methods.*.limit.rate",
        FieldSupport::Enforced,
        "as `rate`; -1 or 0 = this endpoint is not rate limited",
    ),
    (
        "access_rights.*.endpoints.*.methods.*.limit.per",
        FieldSupport::Enforced,
        "as `per`",
    ),
    (
        "access_rights.*.endpoints.*.methods.*.limit.smoothing",
        FieldSupport::Refused,
        "rate-limit smoothing; not implemented (`enabled: false` is accepted)",
    ),
    (
        "access_rights.*.restricted_types",
        FieldSupport::Refused,
        "GraphQL field restrictions; not implemented",
    ),
    (
        "access_rights.*.allowed_types",
        FieldSupport::Refused,
        "GraphQL field allow-list; not implemented",
    ),
    (
        "access_rights.*.field_access_rights",
        FieldSupport::Refused,
        "GraphQL per-field depth limits; not implemented",
    ),
    (
        "access_rights.*.disable_introspection",
        FieldSupport::Refused,
        "GraphQL introspection switch; not implemented",
    ),
    (
        "partitions",
        FieldSupport::Enforced,
        "which parts the policy contributes when combined (Tyk's ApplyPolicies)",
    ),
    (
        "partitions.acl",
        FieldSupport::Enforced,
        "contributes the APIs, versions and allowed_urls",
    ),
    (
        "partitions.rate_limit",
        FieldSupport::Enforced,
        "contributes the rate and the endpoint limits",
    ),
    (
        "partitions.quota",
        FieldSupport::Enforced,
        "contributes the quota",
    ),
    (
        "partitions.complexity",
        FieldSupport::Enforced,
        "contributes only max_query_depth (GraphQL), which Gatehouse refuses above 0",
    ),
    (
        "partitions.per_api",
        FieldSupport::Enforced,
        "limits per API from access_rights.*.limit; cannot be combined with the other partitions or with partitioned policies",
    ),
    (
        "key_expires_in",
        FieldSupport::Enforced,
        "a new session expires after this many seconds (0 = never), raised to the token's exp",
    ),
    (
        "tags",
        FieldSupport::Enforced,
        "copied to the session (unioned)",
    ),
    (
        "meta_data",
        FieldSupport::Enforced,
        "copied to the session (later policies overwrite)",
    ),
    (
        "active",
        FieldSupport::Enforced,
        "false: 403 `Key is inactive, please renew`",
    ),
    (
        "is_inactive",
        FieldSupport::Enforced,
        "true: 403 `Key is inactive, please renew`",
    ),
    (
        "state",
        FieldSupport::Enforced,
        "`draft` and `deny`: 403 `Key is inactive, please renew` (Tyk does not load drafts at all)",
    ),
    ("last_updated", FieldSupport::Kept, "bookkeeping"),
    (
        "hmac_enabled",
        FieldSupport::Warned,
        "request signing is checked only on HMAC-signed APIs, which Gatehouse does not serve",
    ),
    (
        "enable_http_signature_validation",
        FieldSupport::Warned,
        "request signing is checked only on HMAC-signed APIs, which Gatehouse does not serve",
    ),
    (
        "post_expiry_action",
        FieldSupport::Warned,
        "Tyk's retention of expired keys is not implemented; access is unaffected (an expired session is refused)",
    ),
    (
        "post_expiry_grace_period",
        FieldSupport::Warned,
        "Tyk's retention of expired keys is not implemented; access is unaffected (an expired session is refused)",
    ),
    (
        "smoothing",
        FieldSupport::Refused,
        "rate-limit smoothing lowers the allowance under load; not implemented (`enabled: false` is accepted)",
    ),
    (
        "graphql_access_rights",
        FieldSupport::Refused,
        "GraphQL access rights; not implemented",
    ),
];

/// What [`POLICY_FIELDS`] says about `path` (dotted, `*` for API ids and list indices).
pub fn policy_field_support(path: &str) -> Option<(FieldSupport, &'static str)> {
    POLICY_FIELDS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, s, note)| (*s, *note))
}

/// Validates a policy sent by an operator. `path_id` is the id from the URL on a replace.
///
/// Refuses (400 naming the field): malformed values; an unknown `state`; `rate > 0` with
/// `per: 0`; `quota_max` below `-1`; `partitions.per_api` together with another partition (Tyk
/// refuses to apply such a policy); patterns that do not compile; and every field that
/// [`POLICY_FIELDS`] marks [`FieldSupport::Refused`] when it carries a value. Warns about fields
/// marked [`FieldSupport::Warned`], unknown top-level fields, `access_rights.*.limit` values that
/// are ignored because `per_api` is off, and endpoint limits that are ignored because the policy
/// does not contribute the rate-limit partition.
pub fn validate_policy(
    input: Value,
    path_id: Option<&str>,
) -> Result<ValidatedPolicy, ValidationError> {
    let Value::Object(mut obj) = input else {
        return Err(ValidationError::new(
            "",
            "the body must be a JSON object (a Tyk policy)",
        ));
    };
    // Tyk's dashboard calls the custom id `id` and also sends a Mongo `_id`; we use `id`.
    let mut policy: Policy = serde_path_to_error::deserialize(Value::Object(obj.clone()))
        .map_err(|e| ValidationError::from_serde(&e))?;
    match (path_id, policy.id.is_empty()) {
        (Some(id), true) => policy.id = id.to_owned(),
        (Some(id), false) if policy.id != id => {
            return Err(ValidationError::new(
                "id",
                format!(
                    "id '{}' in the body does not match '{id}' in the URL",
                    policy.id
                ),
            ));
        }
        (None, true) => policy.id = ids::new_id(),
        _ => {}
    }
    if !ids::is_valid_id(&policy.id) {
        return Err(ValidationError::new(
            "id",
            "id must be 1-128 characters of letters, digits, '.', '_', '~' or '-'",
        ));
    }
    obj.insert("id".to_owned(), Value::String(policy.id.clone()));
    if policy.name.len() > 200 {
        return Err(ValidationError::new(
            "name",
            "name must be at most 200 characters",
        ));
    }
    if let PolicyState::Unknown(s) = &policy.state {
        return Err(ValidationError::new(
            "state",
            format!("state '{s}' is not one of active, draft, deny"),
        ));
    }
    check_rate("", policy.rate, policy.per)?;
    check_quota("", policy.quota_max)?;
    if policy.key_expires_in < 0 {
        return Err(ValidationError::new(
            "key_expires_in",
            "key_expires_in must be 0 (never) or a number of seconds",
        ));
    }
    if policy.partitions.per_api && policy.partitions.enabled() {
        return Err(ValidationError::new(
            "partitions.per_api",
            "partitions.per_api cannot be combined with acl, rate_limit, quota or complexity \
             (Tyk refuses to apply such a policy); use per_api alone or the other partitions",
        ));
    }
    let mut warnings = check_fields(&obj)?;
    let parts = policy.partitions;
    let own = ApiLimit {
        rate: policy.rate,
        per: policy.per,
        quota_max: policy.quota_max,
        quota_renewal_rate: policy.quota_renewal_rate,
        ..ApiLimit::default()
    };
    for (api_id, ad) in &mut policy.access_rights {
        if !ad.api_id.is_empty() && &ad.api_id != api_id {
            return Err(ValidationError::new(
                format!("access_rights.{api_id}.api_id"),
                format!("access_rights.{api_id}.api_id must equal its key '{api_id}'"),
            ));
        }
        ad.api_id.clone_from(api_id);
        for (i, spec) in ad.allowed_urls.iter().enumerate() {
            if let Err(e) = crate::session::compile_allowed_url(&spec.url) {
                return Err(ValidationError::new(
                    format!("access_rights.{api_id}.allowed_urls.{i}.url"),
                    format!("'{}' is not a valid regular expression: {e}", spec.url),
                ));
            }
        }
        let at = format!("access_rights.{api_id}.limit.");
        check_rate(&at, ad.limit.rate, ad.limit.per)?;
        check_quota(&at, ad.limit.quota_max)?;
        for (i, ep) in ad.endpoints.iter().enumerate() {
            let at = format!("access_rights.{api_id}.endpoints.{i}");
            if ep.path.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("{at}.path"),
                    format!("{at}.path must be a path pattern such as \"/items/{{id}}\""),
                ));
            }
            if let Err(e) = crate::session::compile_allowed_url(&ep.path) {
                return Err(ValidationError::new(
                    format!("{at}.path"),
                    format!("'{}' is not a valid path pattern: {e}", ep.path),
                ));
            }
            for (j, m) in ep.methods.iter().enumerate() {
                let at = format!("{at}.methods.{j}");
                if m.name.trim().is_empty() {
                    return Err(ValidationError::new(
                        format!("{at}.name"),
                        format!("{at}.name must be an HTTP method such as GET"),
                    ));
                }
                check_rate(&format!("{at}.limit."), m.limit.rate, m.limit.per)?;
            }
        }
        if !parts.per_api && limit_differs(&own, &ad.limit) {
            warnings.push(format!(
                "access_rights.{api_id}.limit: ignored because partitions.per_api is off (as in \
                 Tyk); the policy's own rate and quota apply to this API"
            ));
        }
        if parts.enabled() && !parts.rate_limit && !ad.endpoints.is_empty() {
            warnings.push(format!(
                "access_rights.{api_id}.endpoints: ignored because this policy does not \
                 contribute the rate_limit partition (as in Tyk)"
            ));
        }
    }
    Ok(ValidatedPolicy {
        policy,
        raw: Value::Object(obj),
        warnings,
    })
}

/// `rate`/`per` at `prefix` (e.g. `access_rights.a.limit.`): finite numbers, and a positive
/// `rate` needs a non-zero `per` (`-1` for unlimited).
fn check_rate(prefix: &str, rate: f64, per: f64) -> Result<(), ValidationError> {
    if !rate.is_finite() {
        return Err(ValidationError::new(
            format!("{prefix}rate"),
            format!("{prefix}rate must be a number of requests (-1 for unlimited)"),
        ));
    }
    if !per.is_finite() {
        return Err(ValidationError::new(
            format!("{prefix}per"),
            format!("{prefix}per must be a number of seconds (-1 for unlimited)"),
        ));
    }
    if rate > 0.0 && per == 0.0 {
        return Err(ValidationError::new(
            format!("{prefix}per"),
            format!(
                "{prefix}per must be a positive number of seconds when {prefix}rate is set \
                 (or -1 for no rate limit)"
            ),
        ));
    }
    Ok(())
}

fn check_quota(prefix: &str, quota_max: i64) -> Result<(), ValidationError> {
    if quota_max < -1 {
        return Err(ValidationError::new(
            format!("{prefix}quota_max"),
            format!(
                "{prefix}quota_max must be -1 (unlimited), 0 (unlimited) or a number of requests"
            ),
        ));
    }
    Ok(())
}

/// Whether a per-API `limit` (ignored without `per_api`) says something else than the policy's
/// own values, so that ignoring it is worth a warning. Tyk's Dashboard copies the policy's values
/// into every `limit`, which is not worth one.
fn limit_differs(p: &ApiLimit, l: &ApiLimit) -> bool {
    let rate_set = l.rate != 0.0 || l.per != 0.0;
    let quota_set = l.quota_max != 0 || l.quota_renewal_rate != 0;
    (rate_set && (l.rate != p.rate || l.per != p.per))
        || (quota_set
            && (l.quota_max != p.quota_max || l.quota_renewal_rate != p.quota_renewal_rate))
}

/// Applies [`POLICY_FIELDS`] to the document: refusals as errors, warnings collected.
fn check_fields(obj: &Map<String, Value>) -> Result<Vec<String>, ValidationError> {
    let mut warnings = Vec::new();
    for (k, v) in obj {
        check_field(k, k, v, true, &mut warnings)?;
    }
    Ok(warnings)
}

fn check_field(
    pattern: &str,
    path: &str,
    v: &Value,
    top: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ValidationError> {
    match policy_field_support(pattern) {
        None => {
            if has_value(v) {
                if top {
                    warnings.push(format!("{path}: kept but has no effect in Gatehouse"));
                } else {
                    return Err(ValidationError::new(
                        path,
                        format!(
                            "{path} is not supported by Gatehouse (an unknown access-rights \
                             field could narrow the grant, so it is not ignored); remove it"
                        ),
                    ));
                }
            }
            return Ok(());
        }
        Some((FieldSupport::Refused, note)) if carries_value(pattern, v) => {
            return Err(ValidationError::new(
                path,
                format!("{path} is not supported by Gatehouse ({note}); remove it"),
            ));
        }
        Some((FieldSupport::Warned, note)) if carries_value(pattern, v) => {
            warnings.push(format!("{path}: {note}"));
        }
        Some(_) => {}
    }
    let wildcard = format!("{pattern}.*");
    if POLICY_FIELDS.iter().any(|(p, _, _)| *p == wildcard) {
        match v {
            Value::Object(m) => {
                for (k, cv) in m {
                    check_field(&wildcard, &format!("{path}.{k}"), cv, false, warnings)?;
                }
            }
            Value::Array(items) => {
                for (i, cv) in items.iter().enumerate() {
                    check_field(&wildcard, &format!("{path}.{i}"), cv, false, warnings)?;
                }
            }
            _ => {}
        }
    } else if let Value::Object(m) = v {
        let prefix = format!("{pattern}.");
        if POLICY_FIELDS.iter().any(|(p, _, _)| p.starts_with(&prefix)) {
            for (k, cv) in m {
                check_field(
                    &format!("{pattern}.{k}"),
                    &format!("{path}.{k}"),
                    cv,
                    false,
                    warnings,
                )?;
            }
        }
    }
    Ok(())
}

/// Whether a refused or warned field's value does something in Tyk. Depths and throttling act
/// only above 0 (Tyk's `-1` and `0` mean off), smoothing only when enabled; anything else when it
/// carries a value ([`has_value`]).
fn carries_value(pattern: &str, v: &Value) -> bool {
    let name = pattern.rsplit('.').next().unwrap_or(pattern);
    match name {
        "max_query_depth" | "throttle_interval" | "throttle_retry_limit" => {
            v.as_f64().is_some_and(|d| d > 0.0)
        }
        "smoothing" => v.get("enabled").and_then(Value::as_bool) == Some(true),
        _ => has_value(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tyk_policy_validates_and_keeps_its_fields() {
        let v = validate_policy(
            json!({
                "name": "Gold", "rate": 100, "per": 60, "quota_max": 1000, "quota_renewal_rate": 3600,
                "access_rights": {"a1": {"api_id": "a1", "api_name": "A", "versions": ["Default"],
                    "allowed_urls": [{"url": "^/items", "methods": ["GET"]}]}},
                "throttle_interval": 10
            }),
            None,
        )
        .unwrap();
        assert_eq!(v.policy.rate, 100.0);
        assert_eq!(
            v.policy.access_rights["a1"].allowed_urls[0].methods,
            vec!["GET"]
        );
        assert_eq!(v.raw["throttle_interval"], json!(10));
        assert_eq!(v.raw["id"], json!(v.policy.id));
        assert_eq!(
            v.warnings,
            vec![
                "throttle_interval: Tyk retries a rate-limited request inside the gateway; \
                 Gatehouse answers 429 at once and the client retries"
            ]
        );
        assert!(!v.policy.inactive());
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"rate": "fast"}), "rate"),
            (json!({"rate": 5, "per": 0}), "per"),
            (json!({"quota_max": -2}), "quota_max"),
            (json!({"state": "archived"}), "state"),
            (
                json!({"access_rights": {"a": {"allowed_urls": [{"url": "(", "methods": []}]}}}),
                "access_rights.a.allowed_urls.0.url",
            ),
            (
                json!({"access_rights": {"a": {"api_id": "b"}}}),
                "access_rights.a.api_id",
            ),
            (
                json!({"access_rights": {"a": {"limit": {"rate": 5, "per": 0}}}}),
                "access_rights.a.limit.per",
            ),
            (
                json!({"access_rights": {"a": {"limit": {"quota_max": -3}}}}),
                "access_rights.a.limit.quota_max",
            ),
            (
                json!({"access_rights": {"a": {"endpoints": [{"path": "(", "methods": []}]}}}),
                "access_rights.a.endpoints.0.path",
            ),
            (
                json!({"access_rights": {"a": {"endpoints": [{"path": "", "methods": []}]}}}),
                "access_rights.a.endpoints.0.path",
            ),
            (
                json!({"access_rights": {"a": {"endpoints": [{"path": "/x",
                    "methods": [{"name": "", "limit": {"rate": 1, "per": 1}}]}]}}}),
                "access_rights.a.endpoints.0.methods.0.name",
            ),
            (
                json!({"access_rights": {"a": {"endpoints": [{"path": "/x",
                    "methods": [{"name": "GET", "limit": {"rate": 1, "per": 0}}]}]}}}),
                "access_rights.a.endpoints.0.methods.0.limit.per",
            ),
            (
                json!({"partitions": {"per_api": true, "acl": true}}),
                "partitions.per_api",
            ),
        ];
        for (input, field) in cases {
            let e = validate_policy(input.clone(), None).unwrap_err();
            assert_eq!(e.field, field, "{input}");
        }
    }

    #[test]
    fn never_renewing_quotas_and_unlimited_values_are_accepted() {
        // quota_renewal_rate 0 with a quota: a quota that never renews (used to be refused).
        let v = validate_policy(json!({"quota_max": 5, "quota_renewal_rate": 0}), None).unwrap();
        assert_eq!((v.policy.quota_max, v.policy.quota_renewal_rate), (5, 0));
        for input in [
            json!({"rate": -1, "per": -1, "quota_max": -1}),
            json!({"rate": -1, "per": 60}),
            json!({"rate": 10, "per": -1}),
            json!({"rate": 0, "per": 0}),
            json!({"access_rights": {"a": {"limit": {"rate": -1, "quota_max": -1}}}}),
        ] {
            assert!(validate_policy(input.clone(), None).is_ok(), "{input}");
        }
    }

    #[test]
    fn restricting_fields_without_support_are_refused_when_set() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"max_query_depth": 3}), "max_query_depth"),
            (
                json!({"smoothing": {"enabled": true, "threshold": 500}}),
                "smoothing",
            ),
            (
                json!({"graphql_access_rights": {"a": {"x": 1}}}),
                "graphql_access_rights",
            ),
            (
                json!({"access_rights": {"a": {"restricted_types": [{"name": "Dog", "fields": ["x"]}]}}}),
                "access_rights.a.restricted_types",
            ),
            (
                json!({"access_rights": {"a": {"allowed_types": [{"name": "Dog", "fields": ["x"]}]}}}),
                "access_rights.a.allowed_types",
            ),
            (
                json!({"access_rights": {"a": {"field_access_rights": [{"type_name": "Query"}]}}}),
                "access_rights.a.field_access_rights",
            ),
            (
                json!({"access_rights": {"a": {"disable_introspection": true}}}),
                "access_rights.a.disable_introspection",
            ),
            (
                json!({"access_rights": {"a": {"limit": {"max_query_depth": 4}}}}),
                "access_rights.a.limit.max_query_depth",
            ),
            (
                json!({"access_rights": {"a": {"limit": {"smoothing": {"enabled": true}}}}}),
                "access_rights.a.limit.smoothing",
            ),
            (
                json!({"access_rights": {"a": {"allowed_urls": [{"url": "/x", "methods": ["GET"],
                    "conditions": [{"on": "all"}]}]}}}),
                "access_rights.a.allowed_urls.0.conditions",
            ),
            (
                json!({"access_rights": {"a": {"endpoints": [{"path": "/x", "methods": [{"name": "GET",
                    "limit": {"rate": 1, "per": 1, "smoothing": {"enabled": true}}}]}]}}}),
                "access_rights.a.endpoints.0.methods.0.limit.smoothing",
            ),
            // Unknown fields inside access rights could narrow the grant: refused.
            (
                json!({"access_rights": {"a": {"json_rpc_methods": ["x"]}}}),
                "access_rights.a.json_rpc_methods",
            ),
        ];
        for (input, field) in cases {
            let e = validate_policy(input.clone(), None).unwrap_err();
            assert_eq!(e.field, field, "{input}");
            assert!(
                e.message
                    .starts_with(&format!("{field} is not supported by Gatehouse")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn tyk_export_defaults_are_accepted_without_warnings() {
        // What Tyk's Dashboard exports for a plain policy: defaults everywhere.
        let limit = json!({"rate": 100, "per": 60, "throttle_interval": -1,
            "throttle_retry_limit": -1, "max_query_depth": -1, "quota_max": -1,
            "quota_renews": 1700000000, "quota_remaining": 0, "quota_renewal_rate": -1,
            "smoothing": null, "set_by_policy": true});
        let access = json!({
            "api_id": "a1", "api_name": "A", "versions": ["Default"],
            "allowed_urls": [], "restricted_types": [], "allowed_types": [],
            "field_access_rights": [], "disable_introspection": false,
            "allowance_scope": "", "endpoints": null, "limit": limit
        });
        let partitions = json!({"quota": false, "rate_limit": false, "complexity": false,
            "acl": false, "per_api": false});
        let v = validate_policy(
            json!({
                "_id": "5e9d...", "id": "gold", "name": "Gold", "org_id": "org1",
                "rate": 100, "per": 60, "quota_max": -1, "quota_renewal_rate": -1,
                "throttle_interval": -1, "throttle_retry_limit": -1, "max_query_depth": -1,
                "hmac_enabled": false, "enable_http_signature_validation": false,
                "active": true, "is_inactive": false, "state": "active", "key_expires_in": 0,
                "tags": [], "meta_data": {}, "last_updated": "1700000000",
                "smoothing": {"enabled": false, "threshold": 0},
                "graphql_access_rights": {},
                "partitions": partitions,
                "access_rights": {"a1": access}
            }),
            None,
        )
        .unwrap();
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.policy.org_id, "org1");
        assert_eq!(v.policy.access_rights["a1"].limit.rate, 100.0);
        assert!(v.policy.access_rights["a1"].endpoints.is_empty());
    }

    #[test]
    fn warnings_name_the_consequence() {
        let v = validate_policy(
            json!({
                "rate": 10, "per": 1,
                "hmac_enabled": true, "post_expiry_action": "retain", "something_new": 1,
                "access_rights": {"a": {"limit": {"rate": 1000, "per": 1}}}
            }),
            None,
        )
        .unwrap();
        let w = v.warnings.join("\n");
        assert!(w.contains("hmac_enabled: request signing is checked only on HMAC-signed APIs"));
        assert!(w.contains("post_expiry_action: Tyk's retention of expired keys"));
        assert!(w.contains("something_new: kept but has no effect in Gatehouse"));
        assert!(w.contains("access_rights.a.limit: ignored because partitions.per_api is off"));
        // The same limit with per_api is used, not warned about.
        let v = validate_policy(
            json!({"partitions": {"per_api": true},
                   "access_rights": {"a": {"limit": {"rate": 1000, "per": 1}}}}),
            None,
        )
        .unwrap();
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        // Endpoint limits on a policy without the rate_limit partition do nothing in Tyk.
        let v = validate_policy(
            json!({"partitions": {"acl": true},
                   "access_rights": {"a": {"endpoints": [{"path": "/x",
                       "methods": [{"name": "GET", "limit": {"rate": 1, "per": 1}}]}]}}}),
            None,
        )
        .unwrap();
        assert_eq!(
            v.warnings,
            [
                "access_rights.a.endpoints: ignored because this policy does not contribute the \
              rate_limit partition (as in Tyk)"
            ]
        );
    }

    #[test]
    fn every_table_entry_is_reachable_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (path, _, note) in POLICY_FIELDS {
            assert!(seen.insert(*path), "duplicate entry {path}");
            assert!(!note.is_empty(), "{path} has no note");
            // Every nested entry hangs under an entry of its parent.
            if let Some((parent, _)) = path.rsplit_once('.') {
                assert!(
                    policy_field_support(parent).is_some(),
                    "{path}: parent {parent} is missing"
                );
            }
        }
        assert_eq!(
            policy_field_support("access_rights.*.endpoints"),
            Some((
                FieldSupport::Enforced,
                "per-endpoint rate limits; replace the API's rate limit for matching requests, \
                 as in Tyk"
            ))
        );
    }

    #[test]
    fn state_and_inactive_flags() {
        let cases: Vec<(Value, PolicyState, bool)> = vec![
            (json!({}), PolicyState::Active, false),
            (json!({"state": null}), PolicyState::Active, false),
            (json!({"state": ""}), PolicyState::Active, false),
            (json!({"state": "active"}), PolicyState::Active, false),
            (json!({"state": "draft"}), PolicyState::Draft, true),
            (json!({"state": "deny"}), PolicyState::Deny, true),
            (json!({"is_inactive": true}), PolicyState::Active, true),
            (json!({"active": false}), PolicyState::Active, true),
            (json!({"active": null}), PolicyState::Active, false),
            (
                json!({"state": "active", "is_inactive": true}),
                PolicyState::Active,
                true,
            ),
        ];
        for (input, state, inactive) in cases {
            let v = validate_policy(input.clone(), None).unwrap();
            assert_eq!(v.policy.state, state, "{input}");
            assert_eq!(v.policy.inactive(), inactive, "{input}");
        }
    }

    #[test]
    fn a_stored_policy_honours_its_state() {
        // The gateway reads stored documents with from_stored: `state` must count there too.
        for (state, inactive) in [
            ("deny", true),
            ("draft", true),
            ("archived", true),
            ("active", false),
        ] {
            let p = Policy::from_stored(&json!({"id": "p", "state": state})).unwrap();
            assert_eq!(p.inactive(), inactive, "{state}");
        }
        // The typed view writes the state back.
        let p = Policy::from_stored(&json!({"id": "p", "state": "deny"})).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap()["state"], json!("deny"));
    }

    #[test]
    fn tyk_zero_values_are_the_defaults() {
        // A policy document without quota_max has Tyk's zero value: unlimited alone, but it
        // loses to any positive quota when combined (see session::apply_policies).
        let v = validate_policy(json!({"id": "p"}), Some("p")).unwrap();
        assert_eq!(
            (v.policy.quota_max, v.policy.rate, v.policy.per),
            (0, 0.0, 0.0)
        );
        assert!(v.policy.active);
        // Nulls, as Tyk exports write them, read as defaults.
        let p = Policy::from_stored(&json!({"id": "p", "access_rights": {"a": {
            "versions": null, "allowed_urls": null, "limit": null, "endpoints": null}},
            "partitions": null, "tags": null, "meta_data": null}))
        .unwrap();
        assert!(p.access_rights["a"].limit.is_empty());
        assert_eq!(p.partitions, Partitions::default());
    }

    #[test]
    fn api_limit_emptiness_is_tyks() {
        assert!(ApiLimit::default().is_empty());
        for l in [
            ApiLimit {
                rate: -1.0,
                ..Default::default()
            },
            ApiLimit {
                quota_max: -1,
                ..Default::default()
            },
            ApiLimit {
                max_query_depth: -1,
                ..Default::default()
            },
            ApiLimit {
                quota_renews: 5,
                ..Default::default()
            },
        ] {
            assert!(!l.is_empty(), "{l:?}");
        }
    }

    #[test]
    fn organisations_match_exactly() {
        assert!(applies_to_org("", ""));
        assert!(applies_to_org("org1", "org1"));
        assert!(!applies_to_org("org1", "org2"));
        assert!(!applies_to_org("", "org1"));
        assert!(!applies_to_org("org1", ""));
        assert!(!applies_to_org("Org1", "org1"));
        let p = Policy {
            org_id: "o".into(),
            ..Default::default()
        };
        assert!(p.applies_to_org("o") && !p.applies_to_org(""));
    }
}
