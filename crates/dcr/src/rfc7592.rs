//! The RFC 7591 / RFC 7592 engine behind the `keycloak`, `gluu` and `other` drivers.
//!
//! - Register: `POST {registration_endpoint}` with `Bearer <initial access token>` when one is
//!   configured; `201` with a `client_id` is required.
//! - Read / update / delete: `GET` / `PUT` / `DELETE {registration_client_uri}` (used exactly as
//!   the IdP gave it: Gluu puts the client id in the query) with `Bearer <registration access
//!   token>`. Any answer may carry a new registration access token or secret; the returned
//!   [`Registration`] always holds the newest ones.
//! - The client URI must be on the registration endpoint's origin (or a configured one), in
//!   every answer and before every use; a new client's id must pass
//!   [`check_client_id`](crate::check_client_id). A registration that fails these checks deletes
//!   the client again (by its URI when the origin is fine, else by the provider's fallback URI)
//!   and fails with [`IdpError::InvalidResponse`]; a management answer that names another
//!   origin fails with [`IdpError::AfterRotation`] holding the new token and the old URI.
//! - Rotate secret: read the current metadata, then `PUT` it back without `client_secret` (and
//!   without the fields RFC 7592 §2.2 forbids). RFC 7592 lets the server issue a new secret in
//!   any response; if it returns the secret it already had (or none), the IdP does not rotate
//!   secrets this way and the call fails with [`IdpError::NotSupported`] and a per-provider
//!   hint. A failure after the read has already rotated credentials is wrapped in
//!   [`IdpError::AfterRotation`].

use gatehouse_domain::portal::{Provider, Secret};
use reqwest::Method;
use serde_json::{Map, Value};

use crate::checks::{ManagementOrigins, check_client_id, shown};
use crate::error::{Action, IdpError};
use crate::http::{Auth, Http, Reply};
use crate::wire::{ClientHandle, ClientInformation, ClientRequest, Registration};

/// Fields RFC 7592 §2.2 forbids in an update request.
const FORBIDDEN_IN_UPDATE: &[&str] = &[
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// What differs between the RFC 7592 providers.
#[derive(Clone, Copy)]
pub(crate) struct Quirks {
    /// Which provider this is.
    pub(crate) provider: Provider,
    /// Last touches to the registration body.
    pub(crate) adjust_body: fn(&mut Map<String, Value>),
    /// The client URI when the IdP did not send one (`registration endpoint`, `client id`).
    pub(crate) client_uri_fallback: fn(&str, &str) -> Option<String>,
    /// Appended to the "does not rotate secrets" error.
    pub(crate) rotation_hint: &'static str,
}

/// A driver for an IdP that speaks RFC 7591 and RFC 7592 (Keycloak, Gluu/Janssen, any other).
/// Build it with [`crate::keycloak::driver`], [`crate::gluu::driver`], [`crate::other::driver`]
/// or [`crate::driver_for`].
pub struct Rfc7592Driver {
    http: Http,
    quirks: Quirks,
    registration_endpoint: String,
    initial_access_token: Option<Secret>,
    origins: ManagementOrigins,
}

impl std::fmt::Debug for Rfc7592Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc7592Driver")
            .field("provider", &self.quirks.provider)
            .field("registration_endpoint", &self.registration_endpoint)
            .field("initial_access_token", &self.initial_access_token)
            .finish()
    }
}

impl Rfc7592Driver {
    pub(crate) fn new(
        http: Http,
        quirks: Quirks,
        registration_endpoint: String,
        initial_access_token: Option<Secret>,
        origins: ManagementOrigins,
    ) -> Self {
        Self {
            http,
            quirks,
            registration_endpoint,
            initial_access_token: initial_access_token.filter(|t| !t.is_empty()),
            origins,
        }
    }

    /// The provider this driver speaks to.
    pub fn provider(&self) -> Provider {
        self.quirks.provider
    }

    /// The registration body this driver sends for `req`.
    pub fn registration_body(&self, req: &ClientRequest) -> Value {
        let mut body = req.rfc7591_body();
        (self.quirks.adjust_body)(&mut body);
        Value::Object(body)
    }

    /// Reads a success answer. A `registration_client_uri` on another origin fails the call; on
    /// a management answer (`prev` given) the failure carries the new registration access token
    /// with the previous URI, so the caller can still store it.
    fn parse(
        &self,
        reply: &Reply,
        action: Action,
        prev: Option<&ClientHandle>,
    ) -> Result<Registration, IdpError> {
        let info = ClientInformation::from_json(reply.json_body(action.noun())?)?;
        if let Some(prev) = prev
            && info.client_id != prev.client_id
        {
            return Err(IdpError::InvalidResponse(format!(
                "the {action} of client '{}' was answered with client {}",
                prev.client_id,
                shown(&info.client_id)
            )));
        }
        let mut reg = info.into_registration(prev);
        if reg.registration_client_uri.is_none() {
            reg.registration_client_uri =
                (self.quirks.client_uri_fallback)(&self.registration_endpoint, &reg.client_id);
        }
        if let (Some(prev), Some(uri)) = (prev, &reg.registration_client_uri)
            && let Err(problem) = self.origins.check(uri)
        {
            tracing::error!(provider = %self.provider(), client_id = %prev.client_id, %action,
                "the IdP answered a registration_client_uri on another origin: {problem}");
            let mut latest = reg;
            latest.registration_client_uri = prev.registration_client_uri.clone();
            return Err(IdpError::AfterRotation {
                latest: Box::new(latest),
                source: Box::new(IdpError::InvalidResponse(format!(
                    "{problem} (client '{}', {action})",
                    prev.client_id
                ))),
            });
        }
        Ok(reg)
    }

    /// Why a newly registered client cannot be kept: its id or its client URI.
    fn unusable(&self, reg: &Registration) -> Option<String> {
        if let Err(problem) = check_client_id(&reg.client_id) {
            return Some(problem);
        }
        let uri = reg.registration_client_uri.as_deref()?;
        self.origins.check(uri).err()
    }

    /// Deletes a client that was registered but cannot be kept, without sending its
    /// registration access token anywhere but an allowed origin. Says what happened, for the
    /// error message.
    async fn remove_unusable(&self, reg: &Registration) -> String {
        let by_hand = format!(
            "delete client {} in the identity provider's console",
            shown(&reg.client_id)
        );
        let uri = reg
            .registration_client_uri
            .clone()
            .filter(|u| self.origins.check(u).is_ok())
            .or_else(|| {
                (self.quirks.client_uri_fallback)(&self.registration_endpoint, &reg.client_id)
            });
        let Some(uri) = uri else {
            return format!("Gatehouse has no safe address to delete it at: {by_hand}");
        };
        let handle = ClientHandle {
            client_id: reg.client_id.clone(),
            registration_client_uri: Some(uri),
            registration_access_token: reg.registration_access_token.clone(),
        };
        match self.delete(&handle).await {
            Ok(()) => "the client was deleted at the identity provider again".to_owned(),
            Err(e) => {
                tracing::error!(provider = %self.provider(), error = %e.public_message(),
                    "could not delete an unusable client at the IdP; delete it there by hand");
                format!(
                    "deleting it again failed ({}): {by_hand}",
                    e.public_message()
                )
            }
        }
    }

    /// Where and how to manage `h`.
    fn management<'h>(&self, h: &'h ClientHandle) -> Result<(String, &'h Secret), IdpError> {
        let uri = h
            .registration_client_uri
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| (self.quirks.client_uri_fallback)(&self.registration_endpoint, &h.client_id))
            .ok_or_else(|| {
                IdpError::NotSupported(format!(
                    "{} gave no registration_client_uri for client '{}', so Gatehouse cannot manage \
                     it there (the IdP may not support RFC 7592); change or remove it in the IdP's console",
                    self.provider().display_name(),
                    h.client_id
                ))
            })?;
        if let Err(problem) = self.origins.check(&uri) {
            return Err(IdpError::InvalidResponse(format!(
                "{problem} (client '{}')",
                h.client_id
            )));
        }
        let rat = h
            .registration_access_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                IdpError::NotSupported(format!(
                    "no registration access token is stored for client '{}', so Gatehouse cannot \
                     manage it at {}; issue a new one in the IdP's console (Keycloak: client → \
                     Credentials → Registration access token) or remove the client there",
                    h.client_id,
                    self.provider().display_name()
                ))
            })?;
        Ok((uri, rat))
    }

    /// A failed management answer, wrapped with a registration access token the IdP may have
    /// rotated in its error answer.
    fn management_failure(&self, reply: &Reply, action: Action, h: &ClientHandle) -> IdpError {
        let err = reply.failure(self.provider(), action, "a success");
        let rotated = reply
            .json
            .as_ref()
            .and_then(|j| j.get("registration_access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        match rotated {
            Some(rat) => IdpError::AfterRotation {
                latest: Box::new(Registration {
                    client_id: h.client_id.clone(),
                    client_secret: None,
                    client_secret_expires_at: None,
                    registration_access_token: Some(Secret::new(rat)),
                    registration_client_uri: h.registration_client_uri.clone(),
                    metadata: Value::Null,
                }),
                source: Box::new(err),
            },
            None => err,
        }
    }

    /// RFC 7591 registration.
    pub async fn register(&self, req: &ClientRequest) -> Result<Registration, IdpError> {
        let body = self.registration_body(req);
        let reply = self
            .http
            .call(
                Action::Register,
                Method::POST,
                &self.registration_endpoint,
                Auth::bearer_if(self.initial_access_token.as_ref()),
                Some(&body),
            )
            .await?;
        if !reply.is(&[201]) {
            return Err(reply.failure(self.provider(), Action::Register, "201 Created"));
        }
        let reg = self.parse(&reply, Action::Register, None)?;
        if let Some(problem) = self.unusable(&reg) {
            tracing::error!(provider = %self.provider(), "the IdP registered a client Gatehouse cannot keep: {problem}");
            let outcome = self.remove_unusable(&reg).await;
            return Err(IdpError::InvalidResponse(format!("{problem}; {outcome}")));
        }
        tracing::info!(provider = %self.provider(), client_id = %reg.client_id, "client registered");
        Ok(reg)
    }

    /// RFC 7592 read.
    pub async fn read(&self, h: &ClientHandle) -> Result<Registration, IdpError> {
        self.read_as(h, Action::Read).await
    }

    async fn read_as(&self, h: &ClientHandle, action: Action) -> Result<Registration, IdpError> {
        let (uri, rat) = self.management(h)?;
        let reply = self
            .http
            .call(action, Method::GET, &uri, Auth::Bearer(rat), None)
            .await?;
        if !reply.is(&[200]) {
            return Err(self.management_failure(&reply, action, h));
        }
        self.parse(&reply, action, Some(h))
    }

    /// RFC 7592 update with the client's current metadata and no `client_secret`; succeeds only
    /// if the IdP issues a different secret.
    pub async fn rotate_secret(&self, h: &ClientHandle) -> Result<Registration, IdpError> {
        let current = self.read_as(h, Action::RotateSecret).await?;
        // Whatever fails from here on, the caller must store what the read returned (a new
        // RAT, and on IdPs that rotate on read, a new secret).
        let after_read = |source: IdpError| match source {
            IdpError::AfterRotation { mut latest, source } => {
                if latest.client_secret.is_none() {
                    latest.client_secret = current.client_secret.clone();
                    latest.client_secret_expires_at = current.client_secret_expires_at;
                }
                if latest.metadata.is_null() {
                    latest.metadata = current.metadata.clone();
                }
                IdpError::AfterRotation { latest, source }
            }
            source => IdpError::AfterRotation {
                latest: Box::new(current.clone()),
                source: Box::new(source),
            },
        };

        let mut body: Map<String, Value> = match &current.metadata {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        for field in FORBIDDEN_IN_UPDATE {
            body.remove(*field);
        }
        body.remove("client_secret");
        body.retain(|_, v| !v.is_null());
        body.insert("client_id".into(), Value::from(current.client_id.clone()));

        let handle = current.handle();
        let (uri, rat) = self.management(&handle).map_err(after_read)?;
        let reply = self
            .http
            .call(
                Action::Update,
                Method::PUT,
                &uri,
                Auth::Bearer(rat),
                Some(&Value::Object(body)),
            )
            .await
            .map_err(after_read)?;
        if !reply.is(&[200]) {
            return Err(after_read(self.management_failure(
                &reply,
                Action::Update,
                &handle,
            )));
        }
        let updated = self
            .parse(&reply, Action::Update, Some(&handle))
            .map_err(after_read)?;
        let rotated = match (&current.client_secret, &updated.client_secret) {
            (_, None) => false,
            (Some(old), Some(new)) => old != new,
            (None, Some(_)) => true,
        };
        if !rotated {
            return Err(IdpError::AfterRotation {
                latest: Box::new(updated),
                source: Box::new(IdpError::NotSupported(format!(
                    "{} does not rotate client secrets through RFC 7592: it kept the same secret \
                     after an update. {}",
                    self.provider().display_name(),
                    self.quirks.rotation_hint
                ))),
            });
        }
        tracing::info!(provider = %self.provider(), client_id = %updated.client_id, "client secret rotated");
        Ok(updated)
    }

    /// RFC 7592 delete (`204`, or `200`).
    pub async fn delete(&self, h: &ClientHandle) -> Result<(), IdpError> {
        let (uri, rat) = self.management(h)?;
        let reply = self
            .http
            .call(
                Action::Delete,
                Method::DELETE,
                &uri,
                Auth::Bearer(rat),
                None,
            )
            .await?;
        if !reply.is(&[204, 200]) {
            return Err(self.management_failure(&reply, Action::Delete, h));
        }
        tracing::info!(provider = %self.provider(), client_id = %h.client_id, "client deleted");
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::IdpDriver for Rfc7592Driver {
    fn provider(&self) -> Provider {
        self.quirks.provider
    }
    async fn register(&self, req: &ClientRequest) -> Result<Registration, IdpError> {
        Rfc7592Driver::register(self, req).await
    }
    async fn read(&self, h: &ClientHandle) -> Result<Registration, IdpError> {
        Rfc7592Driver::read(self, h).await
    }
    async fn rotate_secret(&self, h: &ClientHandle) -> Result<Registration, IdpError> {
        Rfc7592Driver::rotate_secret(self, h).await
    }
    async fn delete(&self, h: &ClientHandle) -> Result<(), IdpError> {
        Rfc7592Driver::delete(self, h).await
    }
}
