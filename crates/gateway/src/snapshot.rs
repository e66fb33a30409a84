//! The gateway's view of the configuration: an immutable snapshot, rebuilt and swapped whole.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_domain::api::ApiDefinition;
use gatehouse_domain::policy::Policy;
use gatehouse_domain::routing::RouteTable;
use gatehouse_store::StoredDoc;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};

/// Where an API forwards: the parsed `proxy.target_url`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// The target URL's path, without a trailing `/` (often empty).
    pub base_path: String,
    /// The `Host` header to send when the client's is not preserved.
    pub host_header: HeaderValue,
}

impl Target {
    /// Parses a target URL (validated by the admin API, so errors here mean a corrupt store).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("target_url '{url}': {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("target_url '{url}' has no scheme"))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("target_url '{url}' has no host"))?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("target_url '{url}': {e}"))?;
        Ok(Self {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host_header,
        })
    }
}

/// Everything the request path needs about one API, prepared once per snapshot.
#[derive(Debug)]
pub struct ApiRuntime {
    /// The typed definition.
    pub def: ApiDefinition,
    /// The parsed upstream.
    pub target: Target,
}

/// An immutable configuration snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's configuration version this snapshot was built from.
    pub version: i64,
    /// Active APIs by listen path.
    pub routes: RouteTable<Arc<ApiRuntime>>,
    /// Policies by id.
    pub policies: HashMap<String, Arc<Policy>>,
}

impl Snapshot {
    /// Builds a snapshot from stored documents. A document that cannot be read is skipped and
    /// reported in the returned list of problems (it never takes the other APIs down).
    pub fn build(version: i64, apis: &[StoredDoc], policies: &[StoredDoc]) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut routes = Vec::with_capacity(apis.len());
        for doc in apis {
            let def = match ApiDefinition::from_stored(&doc.doc) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("API {}: {e}", doc.id));
                    continue;
                }
            };
            if !def.active {
                continue;
            }
            let target = match Target::parse(&def.proxy.target_url) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("API {}: {e}", doc.id));
                    continue;
                }
            };
            routes.push((
                def.proxy.listen_path.clone(),
                Arc::new(ApiRuntime { def, target }),
            ));
        }
        let mut pols = HashMap::with_capacity(policies.len());
        for doc in policies {
            match Policy::from_stored(&doc.doc) {
                Ok(p) => {
                    pols.insert(doc.id.clone(), Arc::new(p));
                }
                Err(e) => problems.push(format!("policy {}: {e}", doc.id)),
            }
        }
        (
            Self {
                version,
                routes: RouteTable::new(routes),
                policies: pols,
            },
            problems,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: &str, v: serde_json::Value) -> StoredDoc {
        StoredDoc {
            id: id.into(),
            doc: v,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn inactive_and_broken_apis_are_not_routed() {
        let apis = [
            doc(
                "a",
                json!({"api_id": "a", "name": "A", "use_keyless": true,
                       "proxy": {"listen_path": "/a/", "target_url": "http://127.0.0.1:1/base/"}}),
            ),
            doc(
                "b",
                json!({"api_id": "b", "name": "B", "active": false,
                       "proxy": {"listen_path": "/b/", "target_url": "http://127.0.0.1:1"}}),
            ),
            doc("c", json!({"api_id": "c", "proxy": {"listen_path": 5}})),
        ];
        let (s, problems) = Snapshot::build(7, &apis, &[]);
        assert_eq!(s.version, 7);
        assert_eq!(s.routes.len(), 1);
        let m = s.routes.lookup("/a/x").unwrap();
        assert_eq!(m.value.target.base_path, "/base");
        assert_eq!(m.value.target.host_header, "127.0.0.1:1");
        assert!(s.routes.lookup("/b/x").is_none());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("API c:"), "{problems:?}");
    }
}
