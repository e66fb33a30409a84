//! Gluu (oxAuth 4.x) and Janssen (jans-auth): RFC 7591/7592 with their own habits.
//!
//! - Registration endpoint from discovery, typically `https://{host}/oxauth/restv1/register`
//!   (Gluu 4) or `https://{host}/jans-auth/restv1/register` (Janssen). Registration is often
//!   open: with no initial access token configured no `Authorization` header is sent; with one,
//!   `Bearer <token>`.
//! - The request asks for JWT access tokens (`access_token_as_jwt: true`, Janssen's default is
//!   opaque tokens the gateway cannot verify) unless `extra` sets it.
//! - `registration_client_uri` is `…/register?client_id={id}`: the client id is a query
//!   parameter, so the URI is always used exactly as given (never joined with a path). When none
//!   is stored, that form is built from the registration endpoint.
//! - Clients expire by default (`client_secret_expires_at` one day after issue on a stock
//!   Janssen): it is passed through in [`Registration`](crate::Registration) (`None` = never);
//!   check [`Registration::secret_expired`](crate::Registration::secret_expired).
//! - A client-credentials-only client is sent `response_types: []` unless the settings name
//!   some; Tyk's Gluu guide configures `token` (set `response_types` if the server wants it).
//! - Errors are `{"error","error_description"}` plus `"reason"` when the server's
//!   `errorReasonEnabled` is on; the reason is appended to the description.

use gatehouse_domain::ValidationError;
use gatehouse_domain::portal::{Provider, Secret};
use serde_json::{Map, Value};

use crate::DriverSettings;
use crate::rfc7592::{Quirks, Rfc7592Driver};

pub(crate) const QUIRKS: Quirks = Quirks {
    provider: Provider::Gluu,
    adjust_body,
    client_uri_fallback: client_uri,
    rotation_hint: "Rotate the secret in the Gluu/Janssen admin UI, or delete and re-create the \
                    client.",
};

fn adjust_body(body: &mut Map<String, Value>) {
    body.entry("access_token_as_jwt")
        .or_insert(Value::Bool(true));
}

fn client_uri(registration_endpoint: &str, client_id: &str) -> Option<String> {
    let mut url = url::Url::parse(registration_endpoint).ok()?;
    url.query_pairs_mut().append_pair("client_id", client_id);
    Some(url.into())
}

/// A Gluu/Janssen driver registering at `registration_endpoint`, with `initial_access_token`
/// when the server requires one.
pub fn driver(
    registration_endpoint: &str,
    initial_access_token: Option<Secret>,
    settings: &DriverSettings,
) -> Result<Rfc7592Driver, ValidationError> {
    crate::rfc7592_driver(
        QUIRKS,
        registration_endpoint,
        initial_access_token,
        settings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientRequest;
    use serde_json::json;

    #[test]
    fn gluu_request_shape() {
        let d = driver(
            "https://gluu.example/oxauth/restv1/register",
            None,
            &DriverSettings::default(),
        )
        .unwrap();
        let req = ClientRequest {
            grant_types: vec!["client_credentials".into()],
            token_endpoint_auth_method: Some("client_secret_post".into()),
            ..ClientRequest::new("svc")
        }
        .with_extra("pol", json!("gold"));
        assert_eq!(
            d.registration_body(&req),
            json!({"client_name": "svc", "grant_types": ["client_credentials"], "response_types": [],
                   "token_endpoint_auth_method": "client_secret_post", "pol": "gold",
                   "access_token_as_jwt": true})
        );
        let opaque = req.with_extra("access_token_as_jwt", json!(false));
        assert_eq!(
            d.registration_body(&opaque)["access_token_as_jwt"],
            json!(false)
        );
    }

    #[test]
    fn client_uri_uses_the_query() {
        assert_eq!(
            client_uri("https://jans.example/jans-auth/restv1/register", "a b&c").as_deref(),
            Some("https://jans.example/jans-auth/restv1/register?client_id=a+b%26c")
        );
    }
}
