//! Keycloak: the `openid-connect` client registration provider
//! (`{base}/realms/{realm}/clients-registrations/openid-connect`).
//!
//! - Register with `Authorization: Bearer <initial access token>` (an IAT made under Clients →
//!   Initial access token, with an expiry and a count). The answer holds
//!   `registration_client_uri` (`…/openid-connect/{client_id}`) and a registration access token.
//! - The registration access token **rotates on every use** (reads included in the shapes we
//!   test against): every [`Registration`](crate::Registration) returned holds the newest one,
//!   and a failure after a rotation comes as [`IdpError::AfterRotation`](crate::IdpError) so the
//!   new token is not lost. Store it atomically and serialise calls per client.
//! - Client registration policies refuse with `403 insufficient_scope` and a description such
//!   as `Policy 'Trusted Hosts' rejected request to client-registration service. Details: Host
//!   not trusted.`; it is shown as "Keycloak refused the registration: Policy 'Trusted Hosts'
//!   rejected …".
//! - Secret rotation: Keycloak's admin endpoint (`POST /admin/realms/{realm}/clients/{id}/client-secret`)
//!   needs an admin token, which a DCR setup does not have. Through RFC 7592, Keycloak issues a
//!   new secret on a client update when the realm has a client policy with the
//!   `secret-rotation` executor and the update falls in its "remaining expiration time" window
//!   (Keycloak server admin guide, "Client Secret Rotation"; `ClientSecretRotationExecutor`).
//!   Without such a policy the update keeps the secret and the rotation fails with a hint.
//! - When no `registration_client_uri` is stored, `{registration endpoint}/{client_id}` is used.

use gatehouse_domain::ValidationError;
use gatehouse_domain::portal::{Provider, Secret};
use serde_json::{Map, Value};

use crate::DriverSettings;
use crate::rfc7592::{Quirks, Rfc7592Driver};

pub(crate) const QUIRKS: Quirks = Quirks {
    provider: Provider::Keycloak,
    adjust_body,
    client_uri_fallback: client_uri,
    rotation_hint: "Keycloak issues a new secret on an RFC 7592 update only when the realm has a \
                    client policy with the 'secret-rotation' executor whose 'Remaining expiration \
                    time' covers the secret's lifetime (Realm settings → Client policies); \
                    otherwise regenerate the secret in the admin console (client → Credentials).",
};

fn adjust_body(_body: &mut Map<String, Value>) {}

fn client_uri(registration_endpoint: &str, client_id: &str) -> Option<String> {
    if !crate::checks::is_path_segment(client_id) {
        return None;
    }
    let mut url = url::Url::parse(registration_endpoint).ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().push(client_id);
    Some(url.into())
}

/// A Keycloak driver registering at `registration_endpoint` with `initial_access_token`.
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

    #[test]
    fn client_uri_fallback() {
        assert_eq!(
            client_uri(
                "https://kc/realms/r/clients-registrations/openid-connect",
                "c 1"
            )
            .as_deref(),
            Some("https://kc/realms/r/clients-registrations/openid-connect/c%201")
        );
        assert_eq!(
            client_uri(
                "https://kc/realms/r/clients-registrations/openid-connect/",
                "c"
            )
            .as_deref(),
            Some("https://kc/realms/r/clients-registrations/openid-connect/c")
        );
        for dots in ["", ".", ".."] {
            assert_eq!(
                client_uri("https://kc/realms/r/reg", dots),
                None,
                "{dots:?}"
            );
        }
        assert_eq!(
            client_uri("https://kc/reg", "../a/b?c#d").as_deref(),
            Some("https://kc/reg/..%2Fa%2Fb%3Fc%23d")
        );
    }
}
