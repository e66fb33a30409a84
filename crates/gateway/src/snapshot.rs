//! The gateway's view of the configuration: an immutable snapshot, rebuilt and swapped whole.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_domain::api::{ApiDefinition, AuthMode};
use gatehouse_domain::policy::Policy;
use gatehouse_domain::routing::RouteTable;
use gatehouse_domain::session::EffectivePolicy;
use gatehouse_jwt::{JwksCache, JwtValidator, VerifiedTokenCache};
use gatehouse_store::{ClientRow, StoredDoc};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Uri};
use parking_lot::RwLock;

use crate::auth::TokenLocation;

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

/// How an API authenticates, prepared once per snapshot.
#[derive(Debug)]
pub enum ApiAuth {
    /// No authentication.
    Keyless,
    /// JWT: the validator and where the token is read.
    Jwt {
        /// Verifies tokens (shares the process's JWKS and verified-token caches).
        validator: Arc<JwtValidator>,
        /// Where the token is.
        location: TokenLocation,
    },
    /// The JWT settings could not be used (logged when the snapshot was built): requests get 500.
    Misconfigured(String),
    /// A Tyk auth method Gatehouse does not implement: requests get 401.
    Unsupported,
}

/// Everything the request path needs about one API, prepared once per snapshot.
#[derive(Debug)]
pub struct ApiRuntime {
    /// The typed definition.
    pub def: ApiDefinition,
    /// The parsed upstream.
    pub target: Target,
    /// Authentication.
    pub auth: ApiAuth,
    /// The API's own request body limit (Tyk's `global_size_limit`), read once per snapshot.
    pub body_limit: Option<u64>,
}

/// The shared caches a snapshot's JWT validators use.
#[derive(Clone)]
pub struct AuthDeps {
    /// JWKS by URL, shared by all APIs and kept across snapshots.
    pub jwks: Arc<JwksCache>,
    /// Verified tokens.
    pub tokens: Arc<VerifiedTokenCache>,
}

/// An OAuth client registered through the developer portal, as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalClient {
    /// The catalogue policies of the client (used when a token names no policy).
    pub policies: Vec<String>,
    /// The developer who owns it.
    pub developer_id: String,
    /// Deleted: its tokens are refused.
    pub deleted: bool,
}

/// An immutable configuration snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's configuration version this snapshot was built from.
    pub version: i64,
    /// Active APIs by listen path.
    pub routes: RouteTable<Arc<ApiRuntime>>,
    /// Active APIs by id.
    pub by_id: HashMap<String, Arc<ApiRuntime>>,
    /// Policies by id.
    pub policies: HashMap<String, Arc<Policy>>,
    /// Portal-registered OAuth clients by client id (tombstones included).
    pub clients: HashMap<String, PortalClient>,
    /// Effective policies by policy-set key, filled on demand.
    pub(crate) effective: RwLock<HashMap<String, Arc<EffectivePolicy>>>,
}

impl Snapshot {
    /// Builds a snapshot from stored documents. A document that cannot be read is skipped and
    /// reported in the returned list of problems (it never takes the other APIs down).
    pub fn build(
        version: i64,
        apis: &[StoredDoc],
        policies: &[StoredDoc],
        clients: &[ClientRow],
        deps: Option<&AuthDeps>,
    ) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut routes = Vec::with_capacity(apis.len());
        let mut by_id = HashMap::with_capacity(apis.len());
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
            let auth = match def.auth_mode() {
                AuthMode::Keyless => ApiAuth::Keyless,
                AuthMode::Unsupported => ApiAuth::Unsupported,
                AuthMode::Jwt => match deps {
                    None => ApiAuth::Misconfigured("JWT is not available here".to_owned()),
                    Some(d) => match JwtValidator::from_api(
                        &def,
                        Arc::clone(&d.jwks),
                        Arc::clone(&d.tokens),
                    ) {
                        Ok(v) => ApiAuth::Jwt {
                            validator: Arc::new(v),
                            location: TokenLocation::from_config(&def.jwt_auth_config()),
                        },
                        Err(e) => {
                            problems.push(format!("API {}: JWT settings: {e}", doc.id));
                            ApiAuth::Misconfigured(e.to_string())
                        }
                    },
                },
            };
            let body_limit = def.request_size_limit();
            let rt = Arc::new(ApiRuntime {
                def,
                target,
                auth,
                body_limit,
            });
            by_id.insert(doc.id.clone(), Arc::clone(&rt));
            routes.push((rt.def.proxy.listen_path.clone(), rt));
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
        let clients = clients
            .iter()
            .map(|c| {
                let policies = c
                    .doc
                    .get("policy_ids")
                    .and_then(serde_json::Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    c.client_id.clone(),
                    PortalClient {
                        policies,
                        developer_id: c.developer_id.clone(),
                        deleted: c.deleted_at.is_some(),
                    },
                )
            })
            .collect();
        (
            Self {
                version,
                routes: RouteTable::new(routes),
                by_id,
                policies: pols,
                clients,
                effective: RwLock::new(HashMap::new()),
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
        let (s, problems) = Snapshot::build(7, &apis, &[], &[], None);
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
