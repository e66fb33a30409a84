//! Any standard RFC 7591 / RFC 7592 server (Tyk: provider left empty).
//!
//! Plain RFC 7591 registration (`Bearer <token>` only when a token is configured; nothing
//! vendor-specific added) and RFC 7592 management on the `registration_client_uri` the server
//! gave, with its registration access token. The server may rotate the registration access
//! token or the secret on any management call (Curity rotates both on GET and PUT): the newest
//! values are always returned. Secret rotation is an RFC 7592 update without `client_secret`;
//! a server that keeps the secret makes it fail with a clear error.

use gatehouse_domain::ValidationError;
use gatehouse_domain::portal::{Provider, Secret};
use serde_json::{Map, Value};

use crate::DriverSettings;
use crate::rfc7592::{Quirks, Rfc7592Driver};

pub(crate) const QUIRKS: Quirks = Quirks {
    provider: Provider::Other,
    adjust_body,
    client_uri_fallback: client_uri,
    rotation_hint: "Rotate the secret in the identity provider's console, or delete and re-create \
                    the client.",
};

fn adjust_body(_body: &mut Map<String, Value>) {}

fn client_uri(_registration_endpoint: &str, _client_id: &str) -> Option<String> {
    None
}

/// A standard RFC 7591/7592 driver registering at `registration_endpoint`.
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
