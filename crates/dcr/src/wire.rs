//! RFC 7591 / RFC 7592 wire types: what Gatehouse asks for ([`ClientRequest`]), what the IdP
//! answers ([`ClientInformation`]), what callers keep ([`Registration`], [`ClientHandle`]).

use gatehouse_domain::portal::{DcrOptions, Secret};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::IdpError;

/// Client metadata Gatehouse asks the IdP to register (RFC 7591 §2).
///
/// `extra` carries any further metadata, flattened into the request body: vendor fields or
/// Gatehouse's own, e.g. `{"pol": "<policy id>"}` so the IdP can put the policy into the client's
/// tokens. Core fields win over `extra` keys of the same name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// Human-readable name (Okta: unique in the org).
    pub client_name: String,
    /// Redirect URIs (empty for client-credentials clients).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Response types (empty: each driver sends what its IdP expects).
    #[serde(default)]
    pub response_types: Vec<String>,
    /// Token endpoint auth method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Further metadata, flattened into the body.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ClientRequest {
    /// A request with just a name; everything else empty.
    pub fn new(client_name: impl Into<String>) -> Self {
        Self {
            client_name: client_name.into(),
            ..Self::default()
        }
    }

    /// A request for a developer's client under `options` (grant types, response types, auth
    /// method and scopes come from the settings, defaults applied).
    pub fn from_options(
        client_name: impl Into<String>,
        redirect_uris: Vec<String>,
        options: &DcrOptions,
    ) -> Self {
        let opts = options.clone().normalized();
        Self {
            client_name: client_name.into(),
            redirect_uris,
            grant_types: opts.grant_types,
            response_types: opts.response_types,
            token_endpoint_auth_method: Some(opts.token_endpoint_auth_method),
            scope: (!opts.scopes.is_empty()).then_some(opts.scopes),
            extra: Map::new(),
        }
    }

    /// Adds one `extra` field (e.g. `("pol", json!("gold"))`).
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// Whether the only grant is `client_credentials`.
    pub fn client_credentials_only(&self) -> bool {
        !self.grant_types.is_empty() && self.grant_types.iter().all(|g| g == "client_credentials")
    }

    /// The standard RFC 7591 body: `extra` first, then the core fields over it. Empty
    /// `redirect_uris` are left out; empty `response_types` become `[]` for a
    /// client-credentials-only client (no authorization endpoint use) and are otherwise left
    /// out (the IdP's default, `code`).
    pub(crate) fn rfc7591_body(&self) -> Map<String, Value> {
        let mut body = self.extra.clone();
        body.insert("client_name".into(), Value::from(self.client_name.clone()));
        if !self.redirect_uris.is_empty() {
            body.insert(
                "redirect_uris".into(),
                Value::from(self.redirect_uris.clone()),
            );
        }
        if !self.grant_types.is_empty() {
            body.insert("grant_types".into(), Value::from(self.grant_types.clone()));
        }
        if !self.response_types.is_empty() {
            body.insert(
                "response_types".into(),
                Value::from(self.response_types.clone()),
            );
        } else if self.client_credentials_only() {
            body.insert("response_types".into(), Value::Array(Vec::new()));
        }
        if let Some(m) = &self.token_endpoint_auth_method {
            body.insert("token_endpoint_auth_method".into(), Value::from(m.clone()));
        }
        if let Some(s) = &self.scope {
            body.insert("scope".into(), Value::from(s.clone()));
        }
        body
    }
}

/// What Gatehouse needs to manage a registered client later. Store it (atomically replacing
/// the previous one) after every call: the registration access token may change each time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandle {
    /// The client id the IdP issued.
    pub client_id: String,
    /// RFC 7592 client configuration endpoint (none for Okta).
    pub registration_client_uri: Option<String>,
    /// RFC 7592 registration access token (none for Okta).
    pub registration_access_token: Option<Secret>,
}

impl ClientHandle {
    /// A handle with only a client id (enough for Okta).
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            registration_client_uri: None,
            registration_access_token: None,
        }
    }
}

/// The IdP's view of a client after a call, reduced to what callers store.
///
/// Every management call may return a new registration access token and/or a new secret: store
/// the whole value (atomically) after each call. When the IdP does not repeat the registration
/// access token or client URI, the ones from the handle used are carried over, so
/// [`Registration::handle`] is always the one to use next.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The client id.
    pub client_id: String,
    /// The client secret, when the IdP returned one (registration, rotation; some IdPs on read).
    pub client_secret: Option<Secret>,
    /// When the secret expires (Unix seconds); `None` = never (the IdP said `0` or nothing).
    pub client_secret_expires_at: Option<i64>,
    /// The newest registration access token (RFC 7592).
    pub registration_access_token: Option<Secret>,
    /// The client configuration endpoint (RFC 7592).
    pub registration_client_uri: Option<String>,
    /// Everything else the IdP said about the client (its registered metadata, `client_id`,
    /// `client_id_issued_at`, `client_secret_expires_at`, `registration_client_uri`), with the
    /// secret and the registration access token removed.
    pub metadata: Value,
}

impl Registration {
    /// The handle to use for the next management call.
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            client_id: self.client_id.clone(),
            registration_client_uri: self.registration_client_uri.clone(),
            registration_access_token: self.registration_access_token.clone(),
        }
    }

    /// Whether the secret has expired at `now` (Unix seconds). Gluu/Janssen clients expire by
    /// default; other IdPs usually say never.
    pub fn secret_expired(&self, now: i64) -> bool {
        self.client_secret_expires_at.is_some_and(|t| t <= now)
    }
}

/// An RFC 7591 §3.2.1 / RFC 7592 §3 client information response, as sent by the IdP.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientInformation {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// When the client id was issued (Unix seconds).
    #[serde(default, deserialize_with = "lenient_i64")]
    pub client_id_issued_at: Option<i64>,
    /// When the secret expires (Unix seconds; `0` = never).
    #[serde(default, deserialize_with = "lenient_i64")]
    pub client_secret_expires_at: Option<i64>,
    /// RFC 7592 registration access token.
    #[serde(default)]
    pub registration_access_token: Option<Secret>,
    /// RFC 7592 client configuration endpoint.
    #[serde(default)]
    pub registration_client_uri: Option<String>,
    /// The registered metadata and vendor fields.
    #[serde(flatten)]
    pub metadata: Map<String, Value>,
}

/// Numbers, numeric strings and `null` (some IdPs send `"0"`).
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

impl ClientInformation {
    /// Reads a client information response; `client_id` must be a non-empty string.
    pub fn from_json(body: Value) -> Result<Self, IdpError> {
        if !body.is_object() {
            return Err(IdpError::InvalidResponse(
                "the client information is not a JSON object".into(),
            ));
        }
        let info: ClientInformation = serde_json::from_value(body).map_err(|e| {
            IdpError::InvalidResponse(format!("the client information is not usable: {e}"))
        })?;
        if info.client_id.trim().is_empty() {
            return Err(IdpError::InvalidResponse(
                "the response has an empty client_id".into(),
            ));
        }
        Ok(info)
    }

    /// The response reduced to a [`Registration`]; a missing RAT or client URI is taken from
    /// `previous` (the handle the call used).
    pub fn into_registration(self, previous: Option<&ClientHandle>) -> Registration {
        let non_empty = |s: Option<Secret>| s.filter(|s| !s.is_empty());
        let registration_access_token = non_empty(self.registration_access_token)
            .or_else(|| previous.and_then(|h| h.registration_access_token.clone()));
        let registration_client_uri = self
            .registration_client_uri
            .filter(|u| !u.trim().is_empty())
            .or_else(|| previous.and_then(|h| h.registration_client_uri.clone()));
        let mut metadata = self.metadata;
        metadata.insert("client_id".into(), Value::from(self.client_id.clone()));
        if let Some(t) = self.client_id_issued_at {
            metadata.insert("client_id_issued_at".into(), Value::from(t));
        }
        if let Some(t) = self.client_secret_expires_at {
            metadata.insert("client_secret_expires_at".into(), Value::from(t));
        }
        if let Some(u) = &registration_client_uri {
            metadata.insert("registration_client_uri".into(), Value::from(u.clone()));
        }
        Registration {
            client_id: self.client_id,
            client_secret: non_empty(self.client_secret),
            client_secret_expires_at: self.client_secret_expires_at.filter(|t| *t > 0),
            registration_access_token,
            registration_client_uri,
            metadata: Value::Object(metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::portal::Provider;
    use serde_json::json;

    #[test]
    fn body_shapes() {
        let req = ClientRequest::new("svc")
            .with_extra("pol", json!("gold"))
            .with_extra("client_name", json!("ignored"));
        let req = ClientRequest {
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            scope: Some("read write".into()),
            ..req
        };
        let body = Value::Object(req.rfc7591_body());
        assert_eq!(
            body,
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "response_types": [],
                   "token_endpoint_auth_method": "client_secret_basic", "scope": "read write",
                   "pol": "gold"})
        );
        let web = ClientRequest {
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            ..ClientRequest::new("web")
        };
        let body = Value::Object(web.rfc7591_body());
        assert!(body.get("response_types").is_none());
        assert_eq!(body["redirect_uris"], json!(["https://app.example/cb"]));
        // Serde form of the request (for storage or logs) flattens extras.
        let v =
            serde_json::to_value(ClientRequest::new("n").with_extra("pol", json!("p"))).unwrap();
        assert_eq!(v["pol"], json!("p"));
    }

    #[test]
    fn from_options_uses_the_settings() {
        let opts = DcrOptions {
            provider: Provider::Keycloak,
            scopes: " read  write ".into(),
            ..Default::default()
        };
        let req = ClientRequest::from_options("c", vec![], &opts);
        assert_eq!(req.grant_types, vec!["client_credentials"]);
        assert_eq!(
            req.token_endpoint_auth_method.as_deref(),
            Some("client_secret_basic")
        );
        assert_eq!(req.scope.as_deref(), Some("read write"));
        assert!(req.client_credentials_only());
    }

    #[test]
    fn client_information_is_reduced_without_secrets() {
        let info = ClientInformation::from_json(json!({
            "client_id": "abc", "client_secret": "s3cr3t-value", "client_secret_expires_at": "0",
            "client_id_issued_at": 1_700_000_000, "registration_access_token": "rat-value",
            "registration_client_uri": "https://idp/reg/abc", "client_name": "n", "pol": "gold"
        }))
        .unwrap();
        assert!(!format!("{info:?}").contains("s3cr3t-value"));
        let reg = info.into_registration(None);
        assert_eq!(
            reg.client_secret.as_ref().map(Secret::expose),
            Some("s3cr3t-value")
        );
        assert_eq!(reg.client_secret_expires_at, None);
        assert_eq!(
            reg.registration_client_uri.as_deref(),
            Some("https://idp/reg/abc")
        );
        let text = reg.metadata.to_string();
        assert!(
            !text.contains("s3cr3t-value") && !text.contains("rat-value"),
            "{text}"
        );
        assert_eq!(reg.metadata["pol"], json!("gold"));
        assert_eq!(reg.metadata["client_id_issued_at"], json!(1_700_000_000));
        let dbg = format!("{reg:?}");
        assert!(
            !dbg.contains("s3cr3t-value") && !dbg.contains("rat-value"),
            "{dbg}"
        );
        assert!(!format!("{:?}", reg.handle()).contains("rat-value"));

        // Missing RAT / URI come from the previous handle; expiry kept when set.
        let prev = ClientHandle {
            client_id: "abc".into(),
            registration_client_uri: Some("https://idp/reg?client_id=abc".into()),
            registration_access_token: Some("old-rat".into()),
        };
        let reg = ClientInformation::from_json(
            json!({"client_id": "abc", "client_secret_expires_at": 1_900_000_000}),
        )
        .unwrap()
        .into_registration(Some(&prev));
        assert_eq!(reg.handle(), prev);
        assert_eq!(reg.client_secret_expires_at, Some(1_900_000_000));
        assert!(reg.secret_expired(1_900_000_000));
        assert!(!reg.secret_expired(1_899_999_999));

        for bad in [
            json!([]),
            json!({"client_id": ""}),
            json!({"client_name": "x"}),
            json!({"client_id": 5}),
        ] {
            assert!(matches!(
                ClientInformation::from_json(bad),
                Err(IdpError::InvalidResponse(_))
            ));
        }
    }
}
