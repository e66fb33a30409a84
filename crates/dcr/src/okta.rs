//! Okta: the org-wide client API `/oauth2/v1/clients`.
//!
//! - Auth: `Authorization: SSWS <API token>` (the configured initial access token) on every
//!   call; a `Bearer` header would be refused.
//! - Register: `POST {idp_host}/oauth2/v1/clients` (or the configured registration endpoint).
//!   `application_type` is `service` when the only grant is `client_credentials` (then
//!   `response_types` is `["token"]` and no redirect URIs are sent), otherwise `web`; an
//!   `application_type` in the request's `extra` wins. `scope` is not sent: Okta's client API
//!   has no such field (scopes are granted by the authorization server's access policy).
//! - No registration access token or client URI comes back (no RFC 7592): read, rotate and
//!   delete use `GET|DELETE /oauth2/v1/clients/{id}` and
//!   `POST /oauth2/v1/clients/{id}/lifecycle/newSecret` with the same API token. `newSecret`
//!   replaces the secret at once (the old one stops working).
//! - The new client's id must pass [`check_client_id`](crate::check_client_id) (else the client
//!   is deleted again and the registration fails) and is percent-encoded in those URLs. A
//!   `registration_client_uri` in an answer (Okta sends none) is dropped: it is never used.
//! - Errors come in two shapes, both understood: `{"error","error_description"}` and
//!   `{"errorCode","errorSummary","errorCauses":[{"errorSummary"}]}`. A duplicate `client_name`
//!   (`client_name` is unique in an Okta org) becomes [`IdpError::NameTaken`].

use gatehouse_domain::portal::{Provider, Secret};
use reqwest::Method;
use serde_json::Value;

use crate::checks::{check_client_id, is_path_segment, shown};
use crate::error::{Action, IdpError};
use crate::http::{Auth, Http, Reply};
use crate::wire::{ClientHandle, ClientInformation, ClientRequest, Registration};

/// The Okta driver.
pub struct OktaDriver {
    http: Http,
    clients_url: url::Url,
    api_token: Secret,
}

impl std::fmt::Debug for OktaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaDriver")
            .field("clients_url", &self.clients_url.as_str())
            .field("api_token", &self.api_token)
            .finish()
    }
}

impl OktaDriver {
    pub(crate) fn new(http: Http, clients_url: &str, api_token: Secret) -> Result<Self, String> {
        let mut clients_url = url::Url::parse(clients_url)
            .map_err(|e| format!("'{clients_url}' is not a valid URL: {e}"))?;
        if clients_url.cannot_be_a_base() {
            return Err(format!("'{clients_url}' cannot hold a client id path"));
        }
        if let Ok(mut segments) = clients_url.path_segments_mut() {
            segments.pop_if_empty();
        }
        Ok(Self {
            http,
            clients_url,
            api_token,
        })
    }

    /// The registration body sent for `req`.
    pub fn registration_body(&self, req: &ClientRequest) -> Value {
        okta_body(req)
    }

    /// `{clients_url}/{client_id}/{suffix…}`, the id percent-encoded as one path segment.
    fn client_url(&self, client_id: &str, suffix: &[&str]) -> Result<String, IdpError> {
        if !is_path_segment(client_id) {
            return Err(IdpError::InvalidResponse(format!(
                "the client id {} cannot be put in a URL",
                shown(client_id)
            )));
        }
        let mut url = self.clients_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(client_id);
            segments.extend(suffix);
        }
        Ok(url.into())
    }

    fn parse(
        &self,
        reply: &Reply,
        action: Action,
        client_id: Option<&str>,
    ) -> Result<Registration, IdpError> {
        let info = ClientInformation::from_json(reply.json_body(action.noun())?)?;
        if let Some(id) = client_id
            && info.client_id != id
        {
            return Err(IdpError::InvalidResponse(format!(
                "the {action} of client '{id}' was answered with client '{}'",
                info.client_id
            )));
        }
        let mut reg = info.into_registration(None);
        // Okta has no RFC 7592: a client URI in an answer would never be used, so it is not kept.
        reg.registration_client_uri = None;
        if let Value::Object(m) = &mut reg.metadata {
            m.remove("registration_client_uri");
        }
        Ok(reg)
    }

    fn failure(
        &self,
        reply: &Reply,
        action: Action,
        expected: &str,
        name: Option<&str>,
    ) -> IdpError {
        let err = reply.failure(Provider::Okta, action, expected);
        if let (
            Some(name),
            IdpError::Refused {
                status: 400,
                error,
                description,
                ..
            },
        ) = (name, &err)
            && is_duplicate_name(error.as_deref(), description)
        {
            return IdpError::NameTaken {
                provider: Provider::Okta,
                name: name.to_owned(),
                description: description.clone(),
            };
        }
        err
    }

    async fn call(
        &self,
        action: Action,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, IdpError> {
        self.http
            .call(action, method, url, Auth::Ssws(&self.api_token), body)
            .await
    }
}

/// Okta's duplicate-name refusal, in either error shape.
fn is_duplicate_name(error: Option<&str>, description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    d.contains("client_name")
        && d.contains("already exists")
        && matches!(
            error,
            Some("E0000001") | Some("invalid_client_metadata") | None
        )
}

fn okta_body(req: &ClientRequest) -> Value {
    let mut body = req.extra.clone();
    let service = req.client_credentials_only();
    let application_type = body
        .get("application_type")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| if service { "service" } else { "web" }.to_owned());
    body.insert("client_name".into(), Value::from(req.client_name.clone()));
    body.insert(
        "application_type".into(),
        Value::from(application_type.clone()),
    );
    if !req.grant_types.is_empty() {
        body.insert("grant_types".into(), Value::from(req.grant_types.clone()));
    }
    if application_type == "service" {
        body.insert("response_types".into(), Value::from(vec!["token"]));
    } else {
        if !req.response_types.is_empty() {
            body.insert(
                "response_types".into(),
                Value::from(req.response_types.clone()),
            );
        }
        if !req.redirect_uris.is_empty() {
            body.insert(
                "redirect_uris".into(),
                Value::from(req.redirect_uris.clone()),
            );
        }
    }
    if let Some(m) = &req.token_endpoint_auth_method {
        body.insert("token_endpoint_auth_method".into(), Value::from(m.clone()));
    }
    Value::Object(body)
}

#[async_trait::async_trait]
impl crate::IdpDriver for OktaDriver {
    fn provider(&self) -> Provider {
        Provider::Okta
    }

    async fn register(&self, req: &ClientRequest) -> Result<Registration, IdpError> {
        let body = okta_body(req);
        let url = self.clients_url.to_string();
        let reply = self
            .call(Action::Register, Method::POST, &url, Some(&body))
            .await?;
        if !reply.is(&[201]) {
            return Err(self.failure(
                &reply,
                Action::Register,
                "201 Created",
                Some(&req.client_name),
            ));
        }
        let reg = self.parse(&reply, Action::Register, None)?;
        if let Err(problem) = check_client_id(&reg.client_id) {
            tracing::error!(
                provider = "okta",
                "Okta registered a client Gatehouse cannot keep: {problem}"
            );
            let outcome = match self.delete(&ClientHandle::new(reg.client_id.clone())).await {
                Ok(()) => "the client was deleted at Okta again".to_owned(),
                Err(e) => format!(
                    "deleting it again failed ({}): delete client {} in Okta's admin console",
                    e.public_message(),
                    shown(&reg.client_id)
                ),
            };
            return Err(IdpError::InvalidResponse(format!("{problem}; {outcome}")));
        }
        tracing::info!(provider = "okta", client_id = %reg.client_id, "client registered");
        Ok(reg)
    }

    async fn read(&self, h: &ClientHandle) -> Result<Registration, IdpError> {
        let url = self.client_url(&h.client_id, &[])?;
        let reply = self.call(Action::Read, Method::GET, &url, None).await?;
        if !reply.is(&[200]) {
            return Err(self.failure(&reply, Action::Read, "200", None));
        }
        self.parse(&reply, Action::Read, Some(&h.client_id))
    }

    async fn rotate_secret(&self, h: &ClientHandle) -> Result<Registration, IdpError> {
        let url = self.client_url(&h.client_id, &["lifecycle", "newSecret"])?;
        let reply = self
            .call(Action::RotateSecret, Method::POST, &url, None)
            .await?;
        if !reply.is(&[200, 201]) {
            return Err(self.failure(&reply, Action::RotateSecret, "200", None));
        }
        let reg = self.parse(&reply, Action::RotateSecret, Some(&h.client_id))?;
        if reg.client_secret.is_none() {
            return Err(IdpError::InvalidResponse(format!(
                "Okta's newSecret answer for client '{}' has no client_secret",
                h.client_id
            )));
        }
        tracing::info!(provider = "okta", client_id = %h.client_id, "client secret rotated");
        Ok(reg)
    }

    async fn delete(&self, h: &ClientHandle) -> Result<(), IdpError> {
        let url = self.client_url(&h.client_id, &[])?;
        let reply = self
            .call(Action::Delete, Method::DELETE, &url, None)
            .await?;
        if !reply.is(&[204, 200]) {
            return Err(self.failure(&reply, Action::Delete, "204", None));
        }
        tracing::info!(provider = "okta", client_id = %h.client_id, "client deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn driver(url: &str) -> OktaDriver {
        let http = Http::new(Provider::Okta, Duration::from_secs(1), false).unwrap();
        OktaDriver::new(http, url, Secret::new("ssws-token")).unwrap()
    }

    #[test]
    fn service_and_web_bodies() {
        let d = driver("https://acme.okta.com/oauth2/v1/clients");
        let svc = ClientRequest {
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            scope: Some("read".into()),
            redirect_uris: vec!["https://ignored.example/cb".into()],
            ..ClientRequest::new("svc")
        }
        .with_extra("pol", json!("gold"));
        assert_eq!(
            d.registration_body(&svc),
            json!({"client_name": "svc", "application_type": "service",
                   "grant_types": ["client_credentials"], "response_types": ["token"],
                   "token_endpoint_auth_method": "client_secret_basic", "pol": "gold"})
        );
        let web = ClientRequest {
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            ..ClientRequest::new("web")
        };
        let body = d.registration_body(&web);
        assert_eq!(body["application_type"], "web");
        assert_eq!(body["redirect_uris"], json!(["https://app.example/cb"]));
        assert!(body.get("response_types").is_none());
        let native = web.clone().with_extra("application_type", json!("native"));
        assert_eq!(d.registration_body(&native)["application_type"], "native");
    }

    #[test]
    fn management_urls() {
        for base in [
            "https://acme.okta.com/oauth2/v1/clients",
            "https://acme.okta.com/oauth2/v1/clients/",
        ] {
            let d = driver(base);
            assert_eq!(
                d.client_url("0oa1", &["lifecycle", "newSecret"]).unwrap(),
                "https://acme.okta.com/oauth2/v1/clients/0oa1/lifecycle/newSecret"
            );
            assert_eq!(
                d.client_url("a/b c", &[]).unwrap(),
                "https://acme.okta.com/oauth2/v1/clients/a%2Fb%20c"
            );
            assert_eq!(
                d.client_url("../x?y#z", &[]).unwrap(),
                "https://acme.okta.com/oauth2/v1/clients/..%2Fx%3Fy%23z"
            );
            for dots in ["", ".", ".."] {
                assert!(d.client_url(dots, &[]).is_err(), "{dots:?}");
            }
        }
        assert!(!format!("{:?}", driver("https://a/oauth2/v1/clients")).contains("ssws-token"));
    }

    #[test]
    fn duplicate_names_are_recognised() {
        assert!(is_duplicate_name(
            Some("E0000001"),
            "Api validation failed: client_name (client_name: An object with this field already exists in the current organization)"
        ));
        assert!(is_duplicate_name(
            Some("invalid_client_metadata"),
            "client_name: An object with this field already exists in the current organization"
        ));
        assert!(!is_duplicate_name(
            Some("E0000001"),
            "Api validation failed: redirect_uris"
        ));
    }
}
