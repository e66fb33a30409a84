//! The Tyk policy: access rights, rate limit, quota, key expiry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::ids;

/// A Tyk policy, with Tyk's field names. Unknown fields are kept by the store (the raw document is
/// stored), this is the typed view the gateway acts on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Policy {
    /// The policy id used in `pol` claims, scope maps and catalogue entries.
    pub id: String,
    /// Label.
    pub name: String,
    /// Owning organisation (kept).
    pub org_id: String,
    /// Requests allowed per `per` seconds; `<= 0` means no rate limit.
    pub rate: f64,
    /// Rate window in seconds.
    pub per: f64,
    /// Requests per quota period; `-1` (or any value `<= 0`) means unlimited.
    pub quota_max: i64,
    /// Quota period in seconds.
    pub quota_renewal_rate: i64,
    /// Which APIs (and versions, URLs) the policy grants.
    pub access_rights: BTreeMap<String, AccessDefinition>,
    /// A session created from this policy expires after this many seconds; `0` = never.
    pub key_expires_in: i64,
    /// Tags copied to the session.
    pub tags: Vec<String>,
    /// Metadata copied to the session.
    pub meta_data: Map<String, Value>,
    /// Dashboard flag: an inactive policy makes its sessions inactive.
    pub active: bool,
    /// Gateway flag: the policy makes its sessions inactive.
    pub is_inactive: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            org_id: String::new(),
            rate: 0.0,
            per: 0.0,
            quota_max: -1,
            quota_renewal_rate: 0,
            access_rights: BTreeMap::new(),
            key_expires_in: 0,
            tags: Vec::new(),
            meta_data: Map::new(),
            active: true,
            is_inactive: false,
        }
    }
}

/// What a policy grants on one API (`access_rights.<api_id>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccessDefinition {
    /// The API id (repeated from the key).
    pub api_id: String,
    /// The API name (informational).
    pub api_name: String,
    /// Versions allowed; empty allows all.
    pub versions: Vec<String>,
    /// When non-empty, only these paths (regexes) and methods are allowed.
    pub allowed_urls: Vec<AccessSpec>,
}

/// One `allowed_urls` entry: a path regex and the methods allowed on it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AccessSpec {
    /// A regular expression matched against the request path (after the listen path is removed).
    pub url: String,
    /// Allowed methods; empty allows none (Tyk's rule).
    pub methods: Vec<String>,
}

impl Policy {
    /// Whether sessions under this policy are inactive.
    pub fn inactive(&self) -> bool {
        self.is_inactive || !self.active
    }

    /// Reads a stored document without validating it again.
    pub fn from_stored(raw: &Value) -> Result<Self, ValidationError> {
        serde_path_to_error::deserialize(raw.clone()).map_err(|e| ValidationError::from_serde(&e))
    }
}

/// A policy that passed validation, with the document to store and its warnings.
#[derive(Debug, Clone)]
pub struct ValidatedPolicy {
    /// Typed view.
    pub policy: Policy,
    /// Document as stored (input with `id` filled in).
    pub raw: Value,
    /// Fields kept without effect.
    pub warnings: Vec<String>,
}

const KNOWN: &[&str] = &[
    "id",
    "_id",
    "name",
    "org_id",
    "rate",
    "per",
    "quota_max",
    "quota_renewal_rate",
    "access_rights",
    "key_expires_in",
    "tags",
    "meta_data",
    "active",
    "is_inactive",
    "state",
    "last_updated",
    "hmac_enabled",
    "partitions",
];

/// Validates a policy sent by an operator. `path_id` is the id from the URL on a replace.
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
    if let Some(Value::String(state)) = obj.get("state")
        && (state == "draft" || state == "deny")
    {
        policy.active = false;
    }
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
    if !policy.rate.is_finite() || !policy.per.is_finite() || policy.per < 0.0 {
        return Err(ValidationError::new(
            "per",
            "per must be a non-negative number of seconds",
        ));
    }
    if policy.rate > 0.0 && policy.per <= 0.0 {
        return Err(ValidationError::new(
            "per",
            "per must be a positive number of seconds when rate is set",
        ));
    }
    if policy.quota_max > 0 && policy.quota_renewal_rate <= 0 {
        return Err(ValidationError::new(
            "quota_renewal_rate",
            "quota_renewal_rate must be a positive number of seconds when quota_max is set",
        ));
    }
    if policy.key_expires_in < 0 {
        return Err(ValidationError::new(
            "key_expires_in",
            "key_expires_in must be 0 (never) or a number of seconds",
        ));
    }
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
    }
    let mut warnings = Vec::new();
    for (k, v) in &obj {
        if !KNOWN.contains(&k.as_str()) && crate::api::has_value(v) {
            warnings.push(format!("{k}: kept but has no effect in Gatehouse"));
        }
    }
    Ok(ValidatedPolicy {
        policy,
        raw: Value::Object(obj),
        warnings,
    })
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
            vec!["throttle_interval: kept but has no effect in Gatehouse"]
        );
        assert!(!v.policy.inactive());
    }

    #[test]
    fn bad_fields_are_named() {
        let e = validate_policy(json!({"rate": "fast"}), None).unwrap_err();
        assert_eq!(e.field, "rate");
        let e = validate_policy(json!({"rate": 5, "per": 0}), None).unwrap_err();
        assert_eq!(e.field, "per");
        let e = validate_policy(json!({"quota_max": 5}), None).unwrap_err();
        assert_eq!(e.field, "quota_renewal_rate");
        let e = validate_policy(
            json!({"access_rights": {"a": {"allowed_urls": [{"url": "(", "methods": []}]}}}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "access_rights.a.allowed_urls.0.url");
        let e =
            validate_policy(json!({"access_rights": {"a": {"api_id": "b"}}}), None).unwrap_err();
        assert_eq!(e.field, "access_rights.a.api_id");
    }

    #[test]
    fn inactive_flags() {
        let v = validate_policy(json!({"is_inactive": true}), None).unwrap();
        assert!(v.policy.inactive());
        let v = validate_policy(json!({"active": false}), None).unwrap();
        assert!(v.policy.inactive());
        let v = validate_policy(json!({"state": "deny"}), None).unwrap();
        assert!(v.policy.inactive());
    }

    #[test]
    fn unlimited_quota_is_the_default() {
        let v = validate_policy(json!({"id": "p"}), Some("p")).unwrap();
        assert_eq!(v.policy.quota_max, -1);
    }
}
