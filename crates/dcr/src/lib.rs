//! OpenID Connect Dynamic Client Registration (RFC 7591) and its management protocol
//! (RFC 7592) against Okta, Keycloak, Gluu/Janssen and any standard IdP.
//!
//! A developer creates an OAuth client in Gatehouse's portal; the portal asks the company's IdP
//! to register it with an initial access token, then keeps what it needs to read, rotate and
//! delete that client later.
//!
//! # Tour
//! - **Settings** come from the domain crate: [`gatehouse_domain::portal::DcrOptions`] (Tyk's
//!   names, write-only initial access token) and [`gatehouse_domain::portal::effective_dcr`].
//! - **The seam** is [`IdpDriver`]: `register`, `read`, `rotate_secret`, `delete`.
//!   [`driver_for`] validates the settings and picks the driver.
//! - **Wire types** ([`wire`]): [`ClientRequest`] (what we ask for; `extra` carries vendor or
//!   Gatehouse metadata such as `{"pol": "<policy id>"}`), [`ClientInformation`] (what the IdP
//!   answers), [`Registration`] (what callers store) and [`ClientHandle`] (what a management
//!   call needs). Secrets are [`Secret`]s: redacted in `Debug`, never serialized.
//! - **Errors** ([`IdpError`]): `Refused` (the IdP said no, with its description),
//!   `NameTaken`, `Unreachable`, `InvalidResponse`, `NotSupported`, and `AfterRotation` (a
//!   failure after the IdP already issued new credentials, which must still be stored).
//!   [`IdpError::public_message`] is safe to show; [`IdpError::http_status`] is what our API
//!   answers.
//! - **Discovery** ([`discover`]) and the **connection test** ([`test_connection`]).
//!
//! # Providers
//! | | auth | register | manage | secret rotation |
//! |---|---|---|---|---|
//! | [`okta`] | `SSWS <API token>` always | `/oauth2/v1/clients`, `application_type` `service` for client credentials | `/oauth2/v1/clients/{id}` with the API token (no RAT) | `POST …/{id}/lifecycle/newSecret` |
//! | [`keycloak`] | `Bearer <IAT>` | `…/clients-registrations/openid-connect` | RFC 7592; RAT rotates on every use | RFC 7592 PUT (needs a `secret-rotation` client policy) |
//! | [`gluu`] | `Bearer <token>` or none | `…/restv1/register`, `access_token_as_jwt: true` | RFC 7592 on `…/register?client_id=…` as given | RFC 7592 PUT (usually not rotated → clear error) |
//! | [`other`] | `Bearer <token>` if set | RFC 7591 | RFC 7592; RAT/secret may rotate on any call | RFC 7592 PUT without `client_secret` |
//!
//! Every call has a timeout (default [`DEFAULT_TIMEOUT`], 10 s), TLS verification is on unless
//! `ssl_insecure_skip_verify`, redirects are not followed, registration needs `201` and a
//! `client_id`, any 4xx is a refusal, and non-JSON error bodies (HTML pages) are quoted briefly
//! with tags stripped.
//!
//! # What the IdP hands back is checked
//! A new client's id must pass [`check_client_id`] (at most 255 characters, RFC 3986 `pchar`
//! characters, no dot segment) and every `registration_client_uri`, in any answer and when a
//! stored one is used, must be an http(s) URL on the registration endpoint's origin or on one of
//! `dcr_options.registration_client_uri_origins` (the registration access token goes there).
//! A registration whose answer fails these checks is an [`IdpError::InvalidResponse`], and the
//! client the IdP created is deleted there again when that can be done safely (by the client URI
//! if its origin is fine, else by the provider's own URI form; the `other` driver has none and
//! then says so); client ids are percent-encoded wherever they go into a URL.
//!
//! # Storing what comes back
//! Every management call may return a new registration access token and/or secret. Replace the
//! stored [`Registration`] atomically after every call (also from
//! [`IdpError::latest_registration`] on failure), and serialise calls per client: a Keycloak
//! RAT is dead once used.

#![warn(missing_docs)]

use std::time::Duration;

use gatehouse_domain::ValidationError;
use gatehouse_domain::portal::{DcrOptions, Provider, validate_dcr_options};

mod checks;
mod connection;
mod discovery;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gluu;
mod http;
pub mod keycloak;
pub mod okta;
pub mod other;
mod rfc7592;
pub mod wire;

pub use checks::{MAX_CLIENT_ID_LEN, check_client_id};
pub use connection::{TEST_CLIENT_PREFIX, TestReport, TestStep, test_connection};
pub use discovery::{Discovery, discover};
pub use error::{Action, IdpError};
pub use gatehouse_domain::portal::Secret;
pub use okta::OktaDriver;
pub use rfc7592::Rfc7592Driver;
pub use wire::{ClientHandle, ClientInformation, ClientRequest, Registration};

/// Timeout of each call to an IdP unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a driver talks HTTP, and where it may manage clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSettings {
    /// Timeout of each call (connect included).
    pub timeout: Duration,
    /// Skip TLS certificate verification (lab IdPs with self-signed certificates only).
    pub insecure_skip_verify: bool,
    /// Origins besides the registration endpoint's that a `registration_client_uri` may be on
    /// (`dcr_options.registration_client_uri_origins`).
    pub registration_client_uri_origins: Vec<String>,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            insecure_skip_verify: false,
            registration_client_uri_origins: Vec::new(),
        }
    }
}

/// One identity provider's client registration API.
///
/// Each call returns the newest registration state; callers store it (atomically) and use
/// [`Registration::handle`] for the next call.
#[async_trait::async_trait]
pub trait IdpDriver: Send + Sync {
    /// Which provider this driver speaks to.
    fn provider(&self) -> Provider;
    /// Registers a client; the answer holds its id and (usually) its secret.
    async fn register(&self, req: &ClientRequest) -> Result<Registration, IdpError>;
    /// Reads a client (may rotate its registration access token, and on some IdPs its secret).
    async fn read(&self, h: &ClientHandle) -> Result<Registration, IdpError>;
    /// Issues a new client secret; the old one stops working.
    async fn rotate_secret(&self, h: &ClientHandle) -> Result<Registration, IdpError>;
    /// Deletes a client at the IdP.
    async fn delete(&self, h: &ClientHandle) -> Result<(), IdpError>;
}

fn settings_error(e: String) -> ValidationError {
    ValidationError::new("dcr_options", e)
}

pub(crate) fn rfc7592_driver(
    quirks: rfc7592::Quirks,
    registration_endpoint: &str,
    initial_access_token: Option<Secret>,
    settings: &DriverSettings,
) -> Result<Rfc7592Driver, ValidationError> {
    let http = http::Http::new(
        quirks.provider,
        settings.timeout,
        settings.insecure_skip_verify,
    )
    .map_err(settings_error)?;
    Ok(Rfc7592Driver::new(
        http,
        quirks,
        registration_endpoint.to_owned(),
        initial_access_token,
        checks::ManagementOrigins::new(
            registration_endpoint,
            &settings.registration_client_uri_origins,
        ),
    ))
}

/// The driver for `options` (normalized and checked with
/// [`validate_dcr_options`] first; errors
/// name the field under `dcr_options`), with `timeout` on every call.
pub fn driver_for(
    options: &DcrOptions,
    timeout: Duration,
) -> Result<Box<dyn IdpDriver>, ValidationError> {
    let opts = options.clone().normalized();
    validate_dcr_options(&opts, "dcr_options")?;
    let url = opts.registration_url().ok_or_else(|| {
        ValidationError::new(
            "dcr_options.registration_endpoint",
            "dcr_options.registration_endpoint is required",
        )
    })?;
    let settings = DriverSettings {
        timeout,
        insecure_skip_verify: opts.ssl_insecure_skip_verify,
        registration_client_uri_origins: opts.registration_client_uri_origins.clone(),
    };
    if settings.insecure_skip_verify {
        tracing::warn!(provider = %opts.provider, registration_endpoint = %url,
            "TLS certificate verification towards the IdP is OFF (ssl_insecure_skip_verify)");
    }
    let token = opts.initial_access_token().cloned();
    Ok(match opts.provider {
        Provider::Okta => {
            let http = http::Http::new(Provider::Okta, timeout, settings.insecure_skip_verify)
                .map_err(settings_error)?;
            let token = token.ok_or_else(|| {
                ValidationError::new("dcr_options.access_token", "Okta needs an API token")
            })?;
            Box::new(
                OktaDriver::new(http, &url, token)
                    .map_err(|e| ValidationError::new("dcr_options.registration_endpoint", e))?,
            )
        }
        Provider::Keycloak => Box::new(keycloak::driver(&url, token, &settings)?),
        Provider::Gluu => Box::new(gluu::driver(&url, token, &settings)?),
        Provider::Other => Box::new(other::driver(&url, token, &settings)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::portal::Secret;

    #[test]
    fn driver_for_checks_settings_and_picks_the_driver() {
        let okta = DcrOptions {
            provider: Provider::Okta,
            idp_host: "https://acme.okta.com/".into(),
            access_token: Secret::new("ssws"),
            ..Default::default()
        };
        assert_eq!(
            driver_for(&okta, DEFAULT_TIMEOUT).unwrap().provider(),
            Provider::Okta
        );
        let e = driver_for(
            &DcrOptions {
                access_token: Secret::default(),
                ..okta.clone()
            },
            DEFAULT_TIMEOUT,
        )
        .err()
        .unwrap();
        assert_eq!(e.field, "dcr_options.access_token");
        for provider in [Provider::Keycloak, Provider::Gluu, Provider::Other] {
            let o = DcrOptions {
                provider,
                registration_endpoint: "https://idp.example/reg".into(),
                ssl_insecure_skip_verify: true,
                ..Default::default()
            };
            assert_eq!(
                driver_for(&o, DEFAULT_TIMEOUT).unwrap().provider(),
                provider
            );
        }
        let e = driver_for(&DcrOptions::default(), DEFAULT_TIMEOUT)
            .err()
            .unwrap();
        assert_eq!(e.field, "dcr_options.registration_endpoint");
    }
}
