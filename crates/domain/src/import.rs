//! Reading a Tyk gateway's file-based configuration.
//!
//! A Tyk gateway keeps API definitions as `apps/*.json` (one definition per file) and policies as
//! `policies/*.json` or a single `policies.json` that maps policy ids to policies. This module turns
//! those documents into individual definitions; the caller validates and stores each one and reports
//! what happened per item.

use serde_json::Value;

/// Fields whose presence marks an object as one policy rather than a map of policies by id.
const POLICY_MARKERS: &[&str] = &[
    "access_rights",
    "rate",
    "per",
    "quota_max",
    "quota_renewal_rate",
    "name",
    "org_id",
    "key_expires_in",
    "active",
    "is_inactive",
    "tags",
];

/// Splits a policy document into `(id or "", policy)` pairs. A document is either one policy
/// object or, like Tyk's `policies.json`, an object mapping policy ids to policies; a JSON array of
/// policies is accepted too. A keyed policy without an `id` field takes its key as id.
pub fn split_policies(doc: Value) -> Result<Vec<Value>, String> {
    match doc {
        Value::Array(items) => Ok(items),
        // The Dashboard's policy list (`GET /api/portal/policies`): {"Data": [...], "Pages": n}.
        Value::Object(mut obj) if matches!(obj.get("Data"), Some(Value::Array(_))) => {
            match obj.remove("Data") {
                Some(Value::Array(items)) => Ok(items),
                _ => Ok(Vec::new()),
            }
        }
        Value::Object(obj) => {
            let is_single = POLICY_MARKERS.iter().any(|k| {
                obj.get(*k)
                    .is_some_and(|v| !v.is_object() || *k == "access_rights")
            });
            if is_single {
                return Ok(vec![Value::Object(obj)]);
            }
            let mut out = Vec::with_capacity(obj.len());
            for (id, v) in obj {
                let Value::Object(mut p) = v else {
                    return Err(format!(
                        "policy '{id}' is not a JSON object; expected {{\"<policy id>\": {{...}}}}"
                    ));
                };
                if p.get("id")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    p.insert("id".to_owned(), Value::String(id));
                }
                out.push(Value::Object(p));
            }
            Ok(out)
        }
        _ => Err("a policy file must hold a JSON object or array".to_owned()),
    }
}

/// Unwraps an `apps/*.json` document: a bare definition, a dashboard wrapper
/// (`{"api_definition": {...}}`) or a dashboard list export (`{"apis": [wrapper, ...]}`).
pub fn split_apis(doc: Value) -> Vec<Value> {
    match doc {
        Value::Array(items) => items,
        Value::Object(mut obj) => {
            if !obj.contains_key("proxy") {
                for key in ["apis", "Data"] {
                    if let Some(Value::Array(list)) = obj.remove(key) {
                        return list;
                    }
                }
            }
            vec![Value::Object(obj)]
        }
        other => vec![other],
    }
}

/// What happened to one imported item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportItem {
    /// `api` or `policy`.
    pub kind: String,
    /// Where it came from (a file name, or `body[3]`).
    pub source: String,
    /// The id it was stored under, when it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name, when the document had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `imported`, `updated` or `failed`.
    pub status: String,
    /// Fields kept without effect.
    pub warnings: Vec<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The name field of a document, if any.
pub fn name_of(doc: &Value) -> Option<String> {
    doc.get("name").and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyed_policies_take_their_key_as_id() {
        let ps = split_policies(json!({
            "gold": {"rate": 10, "per": 1, "access_rights": {}},
            "silver": {"id": "silver-2", "rate": 5, "per": 1}
        }))
        .unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0]["id"], json!("gold"));
        assert_eq!(ps[1]["id"], json!("silver-2"));
    }

    #[test]
    fn a_single_policy_stays_whole() {
        let ps =
            split_policies(json!({"id": "p", "rate": 1, "per": 1, "access_rights": {"a": {}}}))
                .unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0]["id"], json!("p"));
        let ps = split_policies(json!({"access_rights": {"a": {"api_id": "a"}}})).unwrap();
        assert_eq!(ps.len(), 1);
    }

    #[test]
    fn junk_is_refused_with_a_reason() {
        assert!(split_policies(json!({"p": 3})).unwrap_err().contains("'p'"));
        assert!(split_policies(json!("x")).is_err());
    }

    #[test]
    fn dashboard_policy_exports_unwrap() {
        let ps = split_policies(json!({"Data": [{"id": "a", "rate": 1}, {"id": "b"}],
                                       "Pages": 3}))
        .unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1]["id"], json!("b"));
        let doc: Value =
            serde_json::from_str(include_str!("../testdata/tyk/dashboard-policies.json")).unwrap();
        let ps = split_policies(doc).unwrap();
        assert_eq!(ps.len(), 2);
        for p in ps {
            crate::policy::validate_policy(p, None).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let doc: Value =
            serde_json::from_str(include_str!("../testdata/tyk/policies.json")).unwrap();
        let ps = split_policies(doc).unwrap();
        assert_eq!(ps[0]["id"], json!("gold"));
        for p in ps {
            crate::policy::validate_policy(p, None).unwrap_or_else(|e| panic!("{e:?}"));
        }
    }

    #[test]
    fn api_documents_unwrap() {
        assert_eq!(
            split_apis(json!({"Data": [{}, {}, {}], "Pages": 1})).len(),
            3
        );
        let doc: Value =
            serde_json::from_str(include_str!("../testdata/tyk/dashboard-apis-page.json")).unwrap();
        let apis = split_apis(doc);
        assert_eq!(apis.len(), 2);
        for a in apis {
            crate::api::validate_api(a, None).unwrap_or_else(|e| panic!("{e:?}"));
        }
        assert_eq!(split_apis(json!({"name": "a", "proxy": {}})).len(), 1);
        assert_eq!(
            split_apis(json!({"apis": [{"api_definition": {}}, {}], "pages": 1})).len(),
            2
        );
    }
}
