//! The gateway's view of the configuration: an immutable snapshot, rebuilt and swapped whole.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gatehouse_domain::api::{ApiDefinition, AuthMode};
use gatehouse_domain::pathmatch::MatchOptions;
use gatehouse_domain::policy::Policy;
use gatehouse_domain::routing::{Route, RouteTable};
use gatehouse_domain::session::{self, AuthzError, EffectivePolicy, policy_set_key};
use gatehouse_domain::versions::VersionSet;
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
    /// Host and port (never credentials).
    pub authority: Authority,
    /// The target URL's path, without a trailing `/` (often empty).
    pub base_path: String,
    /// The `Host` header to send when the client's is not preserved.
    pub host_header: HeaderValue,
    /// `Authorization: Basic …` from credentials in the URL (`http://user:pass@host`), sent when
    /// the request carries no `Authorization` of its own (as Go's HTTP client, and so Tyk, does).
    pub basic_auth: Option<HeaderValue>,
}

impl Target {
    /// Parses a target URL (validated by the admin API, so errors here mean a corrupt store).
    /// Credentials in the URL become [`Target::basic_auth`] and never reach `Host` or the
    /// authority; error messages never repeat them.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = redact_userinfo(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("target_url '{shown}': {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("target_url '{shown}' has no scheme"))?;
        let full = uri
            .authority()
            .ok_or_else(|| format!("target_url '{shown}' has no host"))?
            .as_str();
        let (userinfo, hostport) = match full.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, full),
        };
        let authority: Authority = hostport
            .parse()
            .map_err(|e| format!("target_url '{shown}': {e}"))?;
        if authority.host().is_empty() {
            return Err(format!("target_url '{shown}' has no host"));
        }
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("target_url '{shown}': {e}"))?;
        let basic_auth = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let creds = format!("{}:{}", percent_decode(user), percent_decode(pass));
                let mut v = HeaderValue::from_str(&format!("Basic {}", BASE64.encode(creds)))
                    .map_err(|_| format!("target_url '{shown}': unusable credentials"))?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Self {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host_header,
            basic_auth,
        })
    }
}

/// The URL with any `user:pass@` replaced by `***@`, for messages and logs.
pub fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.into();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..start], &url[start + at + 1..]).into(),
        None => url.into(),
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    /// The versions, their endpoint rules, limits and headers (Tyk's `version_data`), compiled.
    pub versions: VersionSet,
    /// Parsed `override_target`s by version name.
    pub override_targets: HashMap<String, Target>,
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

/// What this gateway node serves, from its own settings.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Node segmentation (Tyk's `tags`): when non-empty, only APIs carrying one of these tags are
    /// served; a node without tags serves every API.
    pub node_tags: Vec<String>,
    /// How endpoint patterns match (Tyk's prefix/suffix matching and `ignore_endpoint_case`).
    pub match_options: MatchOptions,
}

impl SnapshotOptions {
    /// Whether this node serves `def`.
    pub fn serves(&self, def: &ApiDefinition) -> bool {
        self.node_tags.is_empty() || def.tags.iter().any(|t| self.node_tags.contains(t))
    }
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
    /// The effective policy of a policy set, built once per snapshot (a policy edit makes a new
    /// snapshot, so edits reach every session at its next request).
    pub fn effective_policy(&self, ids: &[String]) -> Result<Arc<EffectivePolicy>, AuthzError> {
        let key = policy_set_key(ids);
        if let Some(e) = self.effective.read().get(&key) {
            return Ok(Arc::clone(e));
        }
        let pols: Vec<&gatehouse_domain::policy::Policy> = ids
            .iter()
            .filter_map(|id| self.policies.get(id).map(AsRef::as_ref))
            .collect();
        let eff = Arc::new(session::apply_policies(&pols)?);
        let mut map = self.effective.write();
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(key, Arc::clone(&eff));
        Ok(eff)
    }

    /// Builds a snapshot from stored documents. A document that cannot be read is skipped and
    /// reported in the returned list of problems (it never takes the other APIs down).
    pub fn build(
        version: i64,
        apis: &[StoredDoc],
        policies: &[StoredDoc],
        clients: &[ClientRow],
        deps: Option<&AuthDeps>,
        opts: &SnapshotOptions,
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
            if !def.active || !opts.serves(&def) {
                continue;
            }
            if !gatehouse_domain::path::is_normal_listen_path(&def.proxy.listen_path) {
                problems.push(format!(
                    "API {}: listen path '{}' is not a normalised path and can never match; \
                     save the API again with a normalised listen path",
                    doc.id, def.proxy.listen_path
                ));
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
            // A stored definition whose versions or endpoint rules no longer compile is not
            // served at all: serving it without its restrictions would be more open.
            let versions = match VersionSet::compile(&def, opts.match_options) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("API {}: {e}; the API is not served", doc.id));
                    continue;
                }
            };
            let mut override_targets = HashMap::new();
            let mut bad_override = None;
            for v in versions.versions() {
                if let Some(url) = v.override_target() {
                    match Target::parse(url) {
                        Ok(t) => {
                            override_targets.insert(v.name().to_owned(), t);
                        }
                        Err(e) => bad_override = Some(e),
                    }
                }
            }
            if let Some(e) = bad_override {
                problems.push(format!(
                    "API {}: override_target {e}; the API is not served",
                    doc.id
                ));
                continue;
            }
            let rt = Arc::new(ApiRuntime {
                def,
                target,
                auth,
                versions,
                override_targets,
            });
            by_id.insert(doc.id.clone(), Arc::clone(&rt));
            // An internal API is never reachable from outside: it is not routed.
            if !rt.def.internal {
                routes.push(Route {
                    domain: rt.def.domain.clone(),
                    listen_path: rt.def.proxy.listen_path.clone(),
                    value: rt,
                });
            }
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
        let (routes, bad_domains) = RouteTable::with_domains(routes);
        for (lp, e) in bad_domains {
            problems.push(format!("API on {lp}: {e}"));
        }
        (
            Self {
                version,
                routes,
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
        let (s, problems) = Snapshot::build(7, &apis, &[], &[], None, &SnapshotOptions::default());
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
