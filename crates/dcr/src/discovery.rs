//! Reading an IdP's discovery document (OpenID Connect Discovery 1.0, RFC 8414).

use std::time::Duration;

use gatehouse_domain::portal::{DcrOptions, Provider};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Action, IdpError};
use crate::http::{Auth, Http};

/// What an IdP's discovery document says, as far as the portal cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// The issuer (equal to the one asked for, give or take a trailing slash).
    pub issuer: String,
    /// RFC 7591 registration endpoint, if the IdP has one.
    pub registration_endpoint: Option<String>,
    /// Token endpoint.
    pub token_endpoint: Option<String>,
    /// JWKS URI (for the gateway's JWT check).
    pub jwks_uri: Option<String>,
    /// Grant types the IdP supports.
    pub grant_types_supported: Vec<String>,
    /// Token endpoint auth methods the IdP supports.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Response types the IdP supports.
    pub response_types_supported: Vec<String>,
    /// Scopes the IdP advertises.
    pub scopes_supported: Vec<String>,
    /// Where the document was read.
    pub document_url: String,
}

impl Discovery {
    /// Fills the empty `registration_endpoint`, `token_endpoint` and `jwks_uri` of `options`
    /// from this document (set values are kept).
    pub fn fill_dcr_options(&self, options: &mut DcrOptions) {
        for (field, found) in [
            (
                &mut options.registration_endpoint,
                &self.registration_endpoint,
            ),
            (&mut options.token_endpoint, &self.token_endpoint),
            (&mut options.jwks_uri, &self.jwks_uri),
        ] {
            if field.trim().is_empty()
                && let Some(found) = found
            {
                *field = found.clone();
            }
        }
    }
}

/// The URLs tried, in order: `{issuer}/.well-known/openid-configuration`, then RFC 8414's
/// `{origin}/.well-known/oauth-authorization-server{issuer path}`, then
/// `{issuer}/.well-known/oauth-authorization-server` (where Okta serves it).
fn candidates(issuer: &url::Url) -> Vec<String> {
    let base = issuer.as_str().trim_end_matches('/');
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let mut out = vec![
        format!("{base}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{base}/.well-known/oauth-authorization-server"),
    ];
    out.dedup();
    out
}

fn strings(doc: &Value, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn string(doc: &Value, key: &str) -> Option<String> {
    doc.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads `{issuer}/.well-known/openid-configuration`, falling back to the OAuth 2.0
/// authorization server metadata (RFC 8414) when that is refused (4xx), and checks that the
/// document's `issuer` is the one asked for (a trailing slash does not matter).
///
/// Every request has `timeout`; `insecure_skip_verify` skips TLS verification (lab IdPs).
pub async fn discover(
    issuer: &str,
    timeout: Duration,
    insecure_skip_verify: bool,
) -> Result<Discovery, IdpError> {
    let parsed = url::Url::parse(issuer.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            IdpError::NotSupported(format!("the issuer '{issuer}' is not an http(s) URL"))
        })?;
    let http = Http::new(Provider::Other, timeout, insecure_skip_verify)
        .map_err(IdpError::InvalidResponse)?;

    let mut last_refusal = None;
    for url in candidates(&parsed) {
        let reply = http
            .call(Action::Discover, Method::GET, &url, Auth::None, None)
            .await?;
        if !reply.is(&[200]) {
            let err = reply.failure(Provider::Other, Action::Discover, "200");
            if err.is_refusal() {
                last_refusal = Some(err);
                continue;
            }
            return Err(err);
        }
        let doc = reply.json_body("discovery")?;
        if !doc.is_object() {
            return Err(IdpError::InvalidResponse(format!(
                "{url} is not a JSON object"
            )));
        }
        let found = string(&doc, "issuer")
            .ok_or_else(|| IdpError::InvalidResponse(format!("{url} has no issuer")))?;
        if found.trim_end_matches('/') != issuer.trim().trim_end_matches('/') {
            return Err(IdpError::InvalidResponse(format!(
                "{url} names the issuer '{found}', not '{}'; use the IdP's exact issuer",
                issuer.trim()
            )));
        }
        return Ok(Discovery {
            issuer: found,
            registration_endpoint: string(&doc, "registration_endpoint"),
            token_endpoint: string(&doc, "token_endpoint"),
            jwks_uri: string(&doc, "jwks_uri"),
            grant_types_supported: strings(&doc, "grant_types_supported"),
            token_endpoint_auth_methods_supported: strings(
                &doc,
                "token_endpoint_auth_methods_supported",
            ),
            response_types_supported: strings(&doc, "response_types_supported"),
            scopes_supported: strings(&doc, "scopes_supported"),
            document_url: url,
        });
    }
    Err(last_refusal.unwrap_or_else(|| {
        IdpError::InvalidResponse(format!("no discovery document for '{issuer}'"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_urls() {
        let u = url::Url::parse("https://acme.okta.com/oauth2/default/").unwrap();
        assert_eq!(
            candidates(&u),
            vec![
                "https://acme.okta.com/oauth2/default/.well-known/openid-configuration",
                "https://acme.okta.com/.well-known/oauth-authorization-server/oauth2/default",
                "https://acme.okta.com/oauth2/default/.well-known/oauth-authorization-server",
            ]
        );
        let root = url::Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            candidates(&root),
            vec![
                "http://127.0.0.1:8080/.well-known/openid-configuration",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn fills_only_empty_options() {
        let d = Discovery {
            issuer: "https://i".into(),
            registration_endpoint: Some("https://i/reg".into()),
            token_endpoint: Some("https://i/token".into()),
            jwks_uri: None,
            grant_types_supported: vec![],
            token_endpoint_auth_methods_supported: vec![],
            response_types_supported: vec![],
            scopes_supported: vec![],
            document_url: "https://i/.well-known/openid-configuration".into(),
        };
        let mut o = DcrOptions {
            token_endpoint: "https://mine/token".into(),
            ..Default::default()
        };
        d.fill_dcr_options(&mut o);
        assert_eq!(o.registration_endpoint, "https://i/reg");
        assert_eq!(o.token_endpoint, "https://mine/token");
        assert_eq!(o.jwks_uri, "");
    }
}
