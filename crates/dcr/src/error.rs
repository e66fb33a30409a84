//! [`IdpError`]: what went wrong talking to an identity provider, with a message that is safe to
//! show and the HTTP status Gatehouse's API answers with.

use std::fmt;

use gatehouse_domain::portal::Provider;

use crate::wire::Registration;

/// Which call to the IdP failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Client registration (RFC 7591 / Okta `POST /oauth2/v1/clients`).
    Register,
    /// Reading a client (RFC 7592 GET).
    Read,
    /// Updating a client (RFC 7592 PUT), as part of a secret rotation.
    Update,
    /// Rotating the client secret.
    RotateSecret,
    /// Deleting a client.
    Delete,
    /// Reading the discovery document.
    Discover,
}

impl Action {
    /// The noun used in messages: `registration`, `read`, `update`, `secret rotation`,
    /// `deletion`, `discovery request`.
    pub fn noun(self) -> &'static str {
        match self {
            Action::Register => "registration",
            Action::Read => "read",
            Action::Update => "update",
            Action::RotateSecret => "secret rotation",
            Action::Delete => "deletion",
            Action::Discover => "discovery request",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// A failed call to an identity provider.
///
/// No variant ever holds a token or a secret: descriptions quoted from the IdP have the
/// credential that was sent replaced by `[redacted]`.
///
/// | variant | when | [`http_status`](IdpError::http_status) |
/// |---|---|---|
/// | `Refused` (IdP status 400, 422) | bad metadata: redirect URI, grant, scope… | 400 |
/// | `Refused` (409) | conflict at the IdP | 409 |
/// | `Refused` (401, 403, other 4xx) | Gatehouse's token refused, an IdP policy said no, wrong endpoint | 502 |
/// | `NameTaken` | Okta: `client_name` must be unique in the org | 409 |
/// | `Unreachable` | connect error, timeout, 5xx | 502 |
/// | `InvalidResponse` | not 201 on registration, no `client_id`, not JSON, a redirect | 502 |
/// | `NotSupported` | the IdP cannot do this (no RAT, no secret rotation through RFC 7592) | 422 |
/// | `AfterRotation` | one of the above, after the IdP already issued new credentials | that of `source` |
///
/// A read or delete of a client the IdP no longer knows is a `Refused` (502); check
/// [`IdpError::client_gone`] to treat "already deleted" as done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdpError {
    /// The IdP answered 4xx: it said no. `description` is its explanation in plain words.
    #[error("{} refused the {action}: {description}", provider.display_name())]
    Refused {
        /// The IdP's driver.
        provider: Provider,
        /// The call that was refused.
        action: Action,
        /// The HTTP status the IdP answered.
        status: u16,
        /// The IdP's error code (`invalid_client_metadata`, Okta's `E0000001`…), if any.
        error: Option<String>,
        /// What the IdP said (HTML pages: first 200 characters, tags stripped).
        description: String,
    },
    /// The IdP refused a registration because a client with this name exists (Okta).
    #[error("an OAuth client named '{name}' already exists at {}; choose another name", provider.display_name())]
    NameTaken {
        /// The IdP's driver.
        provider: Provider,
        /// The name asked for.
        name: String,
        /// What the IdP said.
        description: String,
    },
    /// The IdP could not be reached: connection failure, timeout, or a 5xx answer.
    #[error("the identity provider could not be reached: {0}")]
    Unreachable(String),
    /// The IdP answered something Gatehouse cannot use.
    #[error("the identity provider sent an unexpected response: {0}")]
    InvalidResponse(String),
    /// The IdP (or what Gatehouse knows about the client) does not allow this operation.
    #[error("{0}")]
    NotSupported(String),
    /// The call failed, but the IdP had already issued new credentials (a rotated registration
    /// access token, and possibly a new secret) on the way: store `latest`, then report `source`.
    #[error("{source}")]
    AfterRotation {
        /// The newest registration state the IdP gave (store its RAT and secret).
        latest: Box<Registration>,
        /// The failure.
        source: Box<IdpError>,
    },
}

impl IdpError {
    /// The failure itself (looks through [`IdpError::AfterRotation`]).
    pub fn root(&self) -> &IdpError {
        match self {
            IdpError::AfterRotation { source, .. } => source.root(),
            other => other,
        }
    }

    /// New credentials issued during the failed call, to be stored by the caller.
    pub fn latest_registration(&self) -> Option<&Registration> {
        match self {
            IdpError::AfterRotation { latest, .. } => Some(latest),
            _ => None,
        }
    }

    /// A sentence safe to show to a developer or an administrator: it says who refused what and
    /// why, and never contains tokens or secrets.
    pub fn public_message(&self) -> String {
        let text = self.root().to_string();
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        }
    }

    /// The HTTP status Gatehouse's API should answer with (see the table on [`IdpError`]).
    pub fn http_status(&self) -> u16 {
        match self.root() {
            IdpError::Refused { status, .. } => match status {
                400 | 422 => 400,
                409 => 409,
                _ => 502,
            },
            IdpError::NameTaken { .. } => 409,
            IdpError::Unreachable(_) | IdpError::InvalidResponse(_) => 502,
            IdpError::NotSupported(_) => 422,
            IdpError::AfterRotation { .. } => 502,
        }
    }

    /// The HTTP status the IdP answered, when it answered with a refusal.
    pub fn idp_status(&self) -> Option<u16> {
        match self.root() {
            IdpError::Refused { status, .. } => Some(*status),
            IdpError::NameTaken { .. } => Some(400),
            _ => None,
        }
    }

    /// The IdP's error code, when it gave one.
    pub fn idp_error_code(&self) -> Option<&str> {
        match self.root() {
            IdpError::Refused { error, .. } => error.as_deref(),
            _ => None,
        }
    }

    /// Whether the IdP said no (as opposed to not being reachable or answering nonsense).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.root(),
            IdpError::Refused { .. } | IdpError::NameTaken { .. }
        )
    }

    /// Whether the IdP says the client does not exist (any more): a `404`, or Okta's
    /// `401 invalid_client` for an unknown client id, on a read, rotation or deletion. RFC 7592
    /// servers answer `401 invalid_token` for both "unknown client" and "bad registration
    /// access token", so that case is **not** reported as gone.
    pub fn client_gone(&self) -> bool {
        match self.root() {
            IdpError::Refused {
                action: Action::Read | Action::Update | Action::RotateSecret | Action::Delete,
                status,
                error,
                ..
            } => *status == 404 || (*status == 401 && error.as_deref() == Some("invalid_client")),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> IdpError {
        IdpError::Refused {
            provider: Provider::Keycloak,
            action: Action::Register,
            status,
            error: Some("insufficient_scope".into()),
            description: "Policy 'Trusted Hosts' rejected request to client-registration service. Details: Host not trusted.".into(),
        }
    }

    #[test]
    fn messages_and_statuses() {
        let e = refused(403);
        assert_eq!(
            e.public_message(),
            "Keycloak refused the registration: Policy 'Trusted Hosts' rejected request to \
             client-registration service. Details: Host not trusted."
        );
        assert_eq!(e.http_status(), 502);
        assert_eq!(refused(400).http_status(), 400);
        assert_eq!(refused(422).http_status(), 400);
        assert_eq!(refused(409).http_status(), 409);
        assert_eq!(refused(401).http_status(), 502);
        assert!(e.is_refusal());
        assert_eq!(e.idp_status(), Some(403));
        assert_eq!(e.idp_error_code(), Some("insufficient_scope"));

        let other = IdpError::Refused {
            provider: Provider::Other,
            action: Action::Delete,
            status: 400,
            error: None,
            description: "nope".into(),
        };
        assert_eq!(
            other.public_message(),
            "The identity provider refused the deletion: nope"
        );

        let taken = IdpError::NameTaken {
            provider: Provider::Okta,
            name: "x".into(),
            description: "client_name: An object with this field already exists".into(),
        };
        assert_eq!(
            taken.public_message(),
            "An OAuth client named 'x' already exists at Okta; choose another name"
        );
        assert_eq!(taken.http_status(), 409);

        let down = IdpError::Unreachable("connection refused".into());
        assert_eq!(down.http_status(), 502);
        assert!(
            down.public_message()
                .starts_with("The identity provider could not be reached")
        );
        assert!(!down.is_refusal());
        assert_eq!(IdpError::InvalidResponse("x".into()).http_status(), 502);
        assert_eq!(IdpError::NotSupported("x".into()).http_status(), 422);
    }

    #[test]
    fn after_rotation_reports_its_source() {
        let latest = Registration {
            client_id: "c".into(),
            client_secret: None,
            client_secret_expires_at: None,
            registration_access_token: Some("rat-2".into()),
            registration_client_uri: None,
            metadata: serde_json::Value::Null,
        };
        let e = IdpError::AfterRotation {
            latest: Box::new(latest),
            source: Box::new(refused(400)),
        };
        assert_eq!(e.http_status(), 400);
        assert!(e.is_refusal());
        assert!(e.public_message().starts_with("Keycloak refused"));
        assert_eq!(
            e.latest_registration()
                .and_then(|r| r.registration_access_token.as_ref())
                .map(|s| s.expose()),
            Some("rat-2")
        );
        assert!(!format!("{e:?}").contains("rat-2"));
    }

    #[test]
    fn gone_clients() {
        let gone = |action, status, error: Option<&str>| IdpError::Refused {
            provider: Provider::Okta,
            action,
            status,
            error: error.map(str::to_owned),
            description: String::new(),
        };
        assert!(gone(Action::Read, 401, Some("invalid_client")).client_gone());
        assert!(gone(Action::RotateSecret, 404, Some("E0000007")).client_gone());
        assert!(!gone(Action::Delete, 401, Some("invalid_token")).client_gone());
        assert!(!gone(Action::Register, 404, None).client_gone());
    }
}
