//! The developer portal's use cases: portal configuration, catalogue, developers, sign-in, and
//! OAuth clients registered at the IdP (Dynamic Client Registration). No HTTP here; the admin API
//! ([`crate::portal_admin`]) and the portal's JSON API ([`crate::portal_api`]) call these.
//!
//! Consistency rules:
//! - the IdP refuses a registration → nothing is stored, the developer sees the IdP's reason;
//! - the IdP cannot be reached → 502, nothing stored;
//! - storing fails after the IdP said yes → the client is deleted at the IdP again;
//! - deleting a client deletes it at the IdP first (already gone there is fine), then leaves a
//!   tombstone so the gateway refuses its tokens; deleting or deactivating a developer does that
//!   for each of their clients;
//! - management calls on one client are serialised (Keycloak rotates the registration access
//!   token on every use; the newest one is stored after each call, also after a failed call);
//! - client secrets, registration access tokens and initial access tokens are sealed with the
//!   [`SecretBox`] before they are stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use gatehouse_dcr::{ClientHandle, ClientRequest, IdpError, Registration, driver_for};
use gatehouse_domain::ValidationError;
use gatehouse_domain::ids;
use gatehouse_domain::portal::{
    CatalogueEntry, DcrOptions, DeveloperSignup, PortalConfig, RedirectUris, Secret, effective_dcr,
    split_redirect_uris, validate_email, validate_password, validate_person_name,
};
use gatehouse_domain::throttle::{LoginThrottle, ThrottleRules};
use gatehouse_store::{
    ClientRow, DeveloperRow, SecretBox, SlotReservation, Store, StoreError, WriteMode,
    WriteOutcome, unix_now,
};

use crate::control::ChangeHook;
use crate::passwords::{PasswordError, PasswordPool};

/// The settings key of the portal configuration.
const CONFIG_KEY: &str = "portal_configuration";
/// Portal sessions last 12 hours.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// The answer to every accepted sign-up, whether the email was new or registered already, so the
/// sign-up form does not tell which addresses have accounts.
pub const SIGNUP_ACCEPTED: &str = "If this email address was not registered yet, your account \
     has been created: sign in with it now. If it was registered already, sign in with its \
     existing password.";
/// How long an OAuth client slot is held at most (a registration that takes longer, or a process
/// that died during one, gives it back then).
const CLIENT_SLOT_SECONDS: i64 = 300;

/// Sign-ups per address and per email: every sign-up that passes validation counts, whether the
/// email was new or not. 10 per address within 15 minutes, then the address waits; after 3 for
/// one email, each further one waits a doubling delay.
fn signup_rules() -> ThrottleRules {
    ThrottleRules {
        account_free: 3,
        address_max: 10,
        ..ThrottleRules::default()
    }
}

/// Why a portal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// Bad input: 400 naming the field.
    #[error("{0}")]
    Invalid(ValidationError),
    /// A uniqueness rule: 409.
    #[error("{message}")]
    Conflict {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// Unknown id: 404.
    #[error("{0}")]
    NotFound(String),
    /// Not signed in or wrong password: 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Not allowed: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The IdP said no or could not be reached: the driver's status and message.
    #[error("{message}")]
    Idp {
        /// HTTP status for our answer.
        status: u16,
        /// Safe to show.
        message: String,
    },
    /// The store failed: 503.
    #[error("the database is unavailable: {0}")]
    Store(String),
    /// Too many failed sign-ins: 429 with `Retry-After`.
    #[error("{message}")]
    Throttled {
        /// Safe to show.
        message: String,
        /// Seconds until the next attempt is allowed.
        retry_after: i64,
    },
    /// The password pool is full: 503 with `Retry-After`.
    #[error("the server is busy checking passwords; try again in a second")]
    Busy,
}

impl From<PasswordError> for PortalError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => Self::Busy,
            PasswordError::Failed(m) => Self::Store(format!("cannot hash the password: {m}")),
        }
    }
}

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field, message } => Self::Conflict {
                field: field.to_owned(),
                message,
            },
            StoreError::NotFound => Self::NotFound("not found".to_owned()),
            other => Self::Store(other.to_string()),
        }
    }
}

impl From<ValidationError> for PortalError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e)
    }
}

fn idp_error(e: &IdpError) -> PortalError {
    tracing::warn!(error = %e.public_message(), status = e.http_status(), "identity provider call failed");
    PortalError::Idp {
        status: e.http_status(),
        message: e.public_message(),
    }
}

/// A signed-in developer.
#[derive(Debug, Clone)]
pub struct DeveloperSession {
    /// The developer.
    pub developer: DeveloperRow,
}

/// The portal service.
pub struct Portal {
    store: Arc<dyn Store>,
    secrets: Arc<SecretBox>,
    on_change: ChangeHook,
    separator: String,
    dcr_timeout: Duration,
    client_locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    passwords: Arc<PasswordPool>,
    throttle: parking_lot::Mutex<LoginThrottle>,
    signup_throttle: parking_lot::Mutex<LoginThrottle>,
}

impl Portal {
    /// The portal over `store`; `separator` splits redirect URIs typed as one string.
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<SecretBox>,
        on_change: ChangeHook,
        separator: impl Into<String>,
        dcr_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            secrets,
            on_change,
            separator: separator.into(),
            dcr_timeout,
            client_locks: parking_lot::Mutex::new(HashMap::new()),
            passwords: Arc::new(PasswordPool::default()),
            throttle: parking_lot::Mutex::new(LoginThrottle::default()),
            signup_throttle: parking_lot::Mutex::new(LoginThrottle::new(signup_rules())),
        })
    }

    /// The bounded pool that hashes and checks passwords; the dashboard's admin sign-in shares
    /// it, so one limit holds for the whole process.
    pub fn passwords(&self) -> &Arc<PasswordPool> {
        &self.passwords
    }

    // ----- sealing --------------------------------------------------------------------------

    fn seal_options(&self, v: &mut Value) {
        if let Some(t) = v.get_mut("access_token")
            && let Some(s) = t.as_str()
            && !s.is_empty()
            && !SecretBox::is_sealed(s)
        {
            *t = Value::String(self.secrets.seal(s));
        }
    }

    fn open_options(&self, v: &mut Value) -> Result<(), PortalError> {
        if let Some(t) = v.get_mut("access_token")
            && let Some(s) = t.as_str()
            && SecretBox::is_sealed(s)
        {
            *t = Value::String(self.secrets.open(s)?);
        }
        Ok(())
    }

    /// Re-seals every stored secret (the portal's and catalogue entries' initial access tokens,
    /// client secrets, registration access tokens) with the current key of this portal's
    /// [`SecretBox`]; values sealed with it already are left alone. Used after a key rotation.
    /// Returns (re-sealed, already current).
    pub async fn reseal_secrets(&self) -> Result<(usize, usize), PortalError> {
        let (mut moved, mut current) = (0, 0);
        let mut one = |v: &mut Value| -> Result<bool, PortalError> {
            match v.as_str().filter(|s| SecretBox::is_sealed(s)) {
                None => Ok(false),
                Some(s) => match self.secrets.reseal(s)? {
                    Some(n) => {
                        *v = Value::String(n);
                        moved += 1;
                        Ok(true)
                    }
                    None => {
                        current += 1;
                        Ok(false)
                    }
                },
            }
        };
        if let Some(text) = self.store.get_setting(CONFIG_KEY).await? {
            let mut v: Value = serde_json::from_str(&text)
                .map_err(|e| PortalError::Store(format!("corrupt portal configuration: {e}")))?;
            if let Some(t) = v.pointer_mut("/dcr_options/access_token")
                && one(t)?
            {
                self.store.put_setting(CONFIG_KEY, &v.to_string()).await?;
            }
        }
        for mut e in self.store.list_catalogue().await? {
            if let Some(t) = e.doc.pointer_mut("/config/dcr_options/access_token")
                && one(t)?
            {
                self.store
                    .put_catalogue(&e.id, &e.doc, WriteMode::Replace)
                    .await?;
            }
        }
        for c in self.store.list_clients(None, true).await? {
            let mut secret = c.secret_sealed.clone().map(Value::String);
            let mut rat = c.rat_sealed.clone().map(Value::String);
            let a = match &mut secret {
                Some(v) => one(v)?,
                None => false,
            };
            let b = match &mut rat {
                Some(v) => one(v)?,
                None => false,
            };
            if a || b {
                self.store
                    .update_client_credentials(
                        &c.client_id,
                        secret.as_ref().and_then(Value::as_str),
                        rat.as_ref().and_then(Value::as_str),
                    )
                    .await?;
            }
        }
        Ok((moved, current))
    }

    // ----- configuration --------------------------------------------------------------------

    /// The stored portal configuration (defaults when none was saved).
    pub async fn config(&self) -> Result<PortalConfig, PortalError> {
        let Some(text) = self.store.get_setting(CONFIG_KEY).await? else {
            return Ok(PortalConfig::default());
        };
        let mut v: Value = serde_json::from_str(&text)
            .map_err(|e| PortalError::Store(format!("corrupt portal configuration: {e}")))?;
        if let Some(o) = v.get_mut("dcr_options") {
            self.open_options(o)?;
        }
        Ok(PortalConfig::from_stored(&v)?)
    }

    /// Replaces the portal configuration; an absent `access_token` keeps the stored one.
    pub async fn put_config(&self, input: Value) -> Result<PortalConfig, PortalError> {
        let stored = self.config().await?;
        let cfg = PortalConfig::from_input(input, Some(&stored))?;
        let mut v = cfg.to_storage_json();
        if let Some(o) = v.get_mut("dcr_options") {
            self.seal_options(o);
        }
        self.store.put_setting(CONFIG_KEY, &v.to_string()).await?;
        Ok(cfg)
    }

    // ----- catalogue ------------------------------------------------------------------------

    fn entry_from_stored(&self, mut doc: Value) -> Result<CatalogueEntry, PortalError> {
        if let Some(o) = doc.pointer_mut("/config/dcr_options") {
            self.open_options(o)?;
        }
        Ok(CatalogueEntry::from_stored(&doc)?)
    }

    /// All catalogue entries.
    pub async fn catalogue(&self) -> Result<Vec<CatalogueEntry>, PortalError> {
        let docs = self.store.list_catalogue().await?;
        docs.into_iter()
            .map(|d| self.entry_from_stored(d.doc))
            .collect()
    }

    /// One catalogue entry.
    pub async fn catalogue_entry(&self, id: &str) -> Result<CatalogueEntry, PortalError> {
        let doc =
            self.store.get_catalogue(id).await?.ok_or_else(|| {
                PortalError::NotFound(format!("no catalogue entry with id '{id}'"))
            })?;
        self.entry_from_stored(doc.doc)
    }

    /// Creates or replaces a catalogue entry. The API and the policy must exist and the policy
    /// must grant the API; with DCR on, the settings in force must be complete.
    pub async fn put_catalogue(
        &self,
        input: Value,
        path_id: Option<&str>,
        mode: WriteMode,
    ) -> Result<(CatalogueEntry, WriteOutcome), PortalError> {
        let stored = match path_id {
            Some(id) => Some(self.catalogue_entry(id).await?),
            None => None,
        };
        let mut entry = CatalogueEntry::from_input(input, path_id, stored.as_ref())?;
        if entry.id.is_empty() {
            entry.id = ids::new_id();
        }
        let policy = self
            .store
            .get_policy(&entry.policy_id)
            .await?
            .ok_or_else(|| {
                ValidationError::new(
                    "policy_id",
                    format!("no policy with id '{}'", entry.policy_id),
                )
            })?;
        if !entry.api_id.is_empty() {
            if self.store.get_api(&entry.api_id).await?.is_none() {
                return Err(ValidationError::new(
                    "api_id",
                    format!("no API with api_id '{}'", entry.api_id),
                )
                .into());
            }
            let grants = policy
                .doc
                .get("access_rights")
                .and_then(|a| a.get(&entry.api_id))
                .is_some();
            if !grants {
                return Err(ValidationError::new(
                    "policy_id",
                    format!(
                        "policy '{}' does not grant API '{}': add it to the policy's access_rights",
                        entry.policy_id, entry.api_id
                    ),
                )
                .into());
            }
        }
        let global = self.config().await?;
        if !entry.config.override_global && entry.show && !global.enable_dcr {
            tracing::info!(entry = %entry.id, "catalogue entry without DCR: the portal cannot create clients for it");
        }
        let mut doc = entry.to_storage_json();
        if let Some(o) = doc.pointer_mut("/config/dcr_options") {
            self.seal_options(o);
        }
        let outcome = self
            .store
            .put_catalogue(&entry.id, &doc, mode)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    PortalError::NotFound(format!("no catalogue entry with id '{}'", entry.id))
                }
                other => other.into(),
            })?;
        Ok((entry, outcome))
    }

    /// Deletes a catalogue entry (existing clients keep their policies).
    pub async fn delete_catalogue(&self, id: &str) -> Result<(), PortalError> {
        if !self.store.delete_catalogue(id).await? {
            return Err(PortalError::NotFound(format!(
                "no catalogue entry with id '{id}'"
            )));
        }
        Ok(())
    }

    /// The DCR settings in force: the entry's (with `override`) or the global ones.
    pub async fn dcr_settings(
        &self,
        catalogue_id: Option<&str>,
    ) -> Result<DcrOptions, PortalError> {
        let global = self.config().await?;
        let options = match catalogue_id {
            Some(id) => effective_dcr(&global, &self.catalogue_entry(id).await?),
            None => global.enable_dcr.then(|| global.dcr_options.clone()),
        };
        options.ok_or_else(|| {
            PortalError::Invalid(ValidationError::new(
                "enable_dcr",
                "Dynamic Client Registration is not enabled for this entry or globally",
            ))
        })
    }

    // ----- developers -----------------------------------------------------------------------

    async fn hash_password(&self, password: &Secret) -> Result<String, PortalError> {
        Ok(self.passwords.hash(password.expose()).await?)
    }

    /// All developers.
    pub async fn developers(&self) -> Result<Vec<DeveloperRow>, PortalError> {
        Ok(self.store.list_developers().await?)
    }

    /// One developer.
    pub async fn developer(&self, id: &str) -> Result<DeveloperRow, PortalError> {
        self.store
            .get_developer(id)
            .await?
            .ok_or_else(|| PortalError::NotFound(format!("no developer with id '{id}'")))
    }

    /// Creates a developer (by an admin). A taken email is a conflict (409), found before any
    /// password is hashed.
    pub async fn create_developer(&self, input: Value) -> Result<DeveloperRow, PortalError> {
        let (dev, password) = parse_developer(input)?;
        if self
            .store
            .get_developer_by_email(&dev.email)
            .await?
            .is_some()
        {
            return Err(PortalError::Conflict {
                field: "email".to_owned(),
                message: format!("a developer with the email '{}' already exists", dev.email),
            });
        }
        let row = self.new_developer_row(dev, &password).await?;
        self.store.put_developer(&row, WriteMode::Create).await?;
        Ok(row)
    }

    async fn new_developer_row(
        &self,
        dev: gatehouse_domain::portal::Developer,
        password: &Secret,
    ) -> Result<DeveloperRow, PortalError> {
        Ok(DeveloperRow {
            id: dev.id,
            email: dev.email,
            first_name: dev.first_name,
            last_name: dev.last_name,
            password_hash: self.hash_password(password).await?,
            inactive: false,
            created_at: dev.created_at,
            updated_at: dev.created_at,
        })
    }

    /// Updates a developer: names, email, `password` (write-only), `inactive`. Deactivating a
    /// developer deletes their clients at the IdP and ends their sessions.
    pub async fn update_developer(
        &self,
        id: &str,
        input: Value,
    ) -> Result<DeveloperRow, PortalError> {
        let mut row = self.developer(id).await?;
        let Value::Object(obj) = input else {
            return Err(ValidationError::new("", "send a JSON object").into());
        };
        let text = |k: &str| -> Result<Option<String>, PortalError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ValidationError::new(k, format!("{k} must be a string")).into()),
            }
        };
        if let Some(e) = text("email")? {
            row.email = validate_email(&e)?;
        }
        if let Some(n) = text("first_name")? {
            row.first_name = validate_person_name("first_name", &n, true)?;
        }
        if let Some(n) = text("last_name")? {
            row.last_name = validate_person_name("last_name", &n, false)?;
        }
        if let Some(p) = text("password")? {
            validate_password(&p, Some(&row.email))?;
            row.password_hash = self.hash_password(&Secret::new(p)).await?;
            self.store.delete_developer_sessions(id).await?;
        }
        let deactivate = match obj.get("inactive") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => {
                let turning_off = *b && !row.inactive;
                row.inactive = *b;
                turning_off
            }
            Some(_) => {
                return Err(
                    ValidationError::new("inactive", "inactive must be true or false").into(),
                );
            }
        };
        if deactivate {
            self.delete_all_clients(id).await?;
            self.store.delete_developer_sessions(id).await?;
        }
        self.store.put_developer(&row, WriteMode::Replace).await?;
        Ok(row)
    }

    /// Deletes a developer after deleting each of their clients at the IdP.
    pub async fn delete_developer(&self, id: &str) -> Result<(), PortalError> {
        self.developer(id).await?;
        self.delete_all_clients(id).await?;
        self.store.delete_developer(id).await?;
        Ok(())
    }

    async fn delete_all_clients(&self, developer_id: &str) -> Result<(), PortalError> {
        for c in self.store.list_clients(Some(developer_id), false).await? {
            self.delete_client_row(&c).await?;
        }
        Ok(())
    }

    // ----- sign-in --------------------------------------------------------------------------

    /// Checks email and password; returns a new session token (to put in a cookie) and the
    /// developer. The same answer for an unknown email and a wrong password. Failed attempts
    /// are throttled per account and per client `address` ([`LoginThrottle`]): 429 then.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        address: &str,
    ) -> Result<(String, DeveloperRow), PortalError> {
        let email = gatehouse_domain::portal::normalize_email(email);
        let now = unix_now();
        if let Err(t) = self.throttle.lock().check(&email, address, now) {
            tracing::warn!(
                address,
                by_address = t.by_address,
                "portal sign-in throttled"
            );
            return Err(PortalError::Throttled {
                message: format!(
                    "too many failed sign-ins {}; try again in {} s",
                    if t.by_address {
                        "from this address"
                    } else {
                        "for this account"
                    },
                    t.retry_after
                ),
                retry_after: t.retry_after,
            });
        }
        let refused = || {
            self.throttle.lock().failure(&email, address, now);
            PortalError::Unauthorized("wrong email or password".to_owned())
        };
        let Some(dev) = self.store.get_developer_by_email(&email).await? else {
            // Spend the same time as a real check, so timing does not reveal accounts.
            self.passwords.hash(password).await?;
            return Err(refused());
        };
        if !self.passwords.verify(password, &dev.password_hash).await? {
            return Err(refused());
        }
        self.throttle.lock().success(&email);
        if dev.inactive {
            return Err(PortalError::Forbidden(
                "this developer account is deactivated; contact the API provider".to_owned(),
            ));
        }
        let token = random_token();
        self.store
            .create_session(&sha256_hex(&token), &dev.id, unix_now() + SESSION_SECONDS)
            .await?;
        Ok((token, dev))
    }

    /// Self sign-up, when the portal allows it. The answer is the same whether the email was new
    /// (the account is created) or registered already (nothing changes): `Ok(())`, to be shown
    /// as [`SIGNUP_ACCEPTED`]; the developer then signs in. A registered email costs no hash but
    /// waits about as long as one ([`PasswordPool::spend_a_hash_time`]). Sign-ups are throttled
    /// per address and per email, counted whether the email was new or not.
    pub async fn signup(&self, input: Value, address: &str) -> Result<(), PortalError> {
        if !self.config().await?.signup_enabled {
            return Err(PortalError::Forbidden(
                "sign-up is disabled on this portal; ask the API provider for an account"
                    .to_owned(),
            ));
        }
        let (dev, password) = parse_developer(input)?;
        let now = unix_now();
        {
            let mut throttle = self.signup_throttle.lock();
            if let Err(t) = throttle.check(&dev.email, address, now) {
                tracing::warn!(
                    address,
                    by_address = t.by_address,
                    "portal sign-up throttled"
                );
                return Err(PortalError::Throttled {
                    message: format!(
                        "too many sign-ups {}; try again in {} s",
                        if t.by_address {
                            "from this address"
                        } else {
                            "for this email address"
                        },
                        t.retry_after
                    ),
                    retry_after: t.retry_after,
                });
            }
            throttle.failure(&dev.email, address, now);
        }
        if self
            .store
            .get_developer_by_email(&dev.email)
            .await?
            .is_some()
        {
            tracing::info!(
                address,
                "portal sign-up for a registered email: nothing changed"
            );
            self.passwords.spend_a_hash_time(password.expose()).await?;
            return Ok(());
        }
        let row = self.new_developer_row(dev, &password).await?;
        match self.store.put_developer(&row, WriteMode::Create).await {
            Ok(_) => Ok(()),
            // Registered by a sign-up that ran at the same time: the same answer.
            Err(StoreError::Conflict { field: "email", .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), PortalError> {
        Ok(self.store.delete_session(&sha256_hex(token)).await?)
    }

    /// The developer of a session token.
    pub async fn session(&self, token: &str) -> Result<DeveloperSession, PortalError> {
        let unauthorized =
            || PortalError::Unauthorized("sign in first (POST /api/login)".to_owned());
        let id = self
            .store
            .session_developer(&sha256_hex(token), unix_now())
            .await?
            .ok_or_else(unauthorized)?;
        let developer = self
            .store
            .get_developer(&id)
            .await?
            .ok_or_else(unauthorized)?;
        if developer.inactive {
            return Err(unauthorized());
        }
        Ok(DeveloperSession { developer })
    }

    // ----- OAuth clients --------------------------------------------------------------------

    fn lock_for(&self, client_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.client_locks.lock();
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(locks.entry(client_id.to_owned()).or_default())
    }

    fn seal_opt(&self, s: Option<&Secret>) -> Option<String> {
        s.filter(|s| !s.is_empty())
            .map(|s| self.secrets.seal(s.expose()))
    }

    /// Registers a client for a developer at the IdP and stores it; returns the client view with
    /// its secret (shown to its owner).
    pub async fn create_client(
        &self,
        dev: &DeveloperRow,
        input: Value,
    ) -> Result<Value, PortalError> {
        let Value::Object(obj) = input else {
            return Err(ValidationError::new("", "send a JSON object").into());
        };
        let catalogue_ids: Vec<String> = match obj.get("catalogue_ids") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ValidationError::new("catalogue_ids", "catalogue_ids must be strings")
                })?,
            _ => {
                return Err(ValidationError::new(
                    "catalogue_ids",
                    "choose at least one API from the catalogue (catalogue_ids)",
                )
                .into());
            }
        };
        let client_name = obj
            .get("client_name")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if client_name.is_empty() || client_name.len() > 100 {
            return Err(ValidationError::new(
                "client_name",
                "client_name is required (at most 100 characters)",
            )
            .into());
        }
        let redirect_uris = match obj.get("redirect_uris") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => {
                let input: RedirectUris = serde_json::from_value(v.clone()).map_err(|_| {
                    ValidationError::new(
                        "redirect_uris",
                        "redirect_uris must be a string or an array of strings",
                    )
                })?;
                split_redirect_uris(input, &self.separator)?
            }
        };

        let global = self.config().await?;
        let count = self.store.list_clients(Some(&dev.id), false).await?.len();
        if !global.allows_another_client(count) {
            return Err(too_many_clients(count));
        }
        let mut entries = Vec::new();
        for id in &catalogue_ids {
            let entry = match self.catalogue_entry(id).await {
                Ok(e) if e.show => e,
                _ => {
                    return Err(ValidationError::new(
                        "catalogue_ids",
                        format!("'{id}' is not in the catalogue"),
                    )
                    .into());
                }
            };
            entries.push(entry);
        }
        let mut options: Option<DcrOptions> = None;
        for e in &entries {
            let Some(o) = effective_dcr(&global, e) else {
                return Err(ValidationError::new(
                    "catalogue_ids",
                    format!(
                        "'{}' does not offer OAuth clients (DCR is off for it)",
                        e.name
                    ),
                )
                .into());
            };
            if let Some(first) = &options
                && !same_idp(first, &o)
            {
                return Err(ValidationError::new(
                    "catalogue_ids",
                    "the chosen APIs are registered at different identity providers; \
                     create one client per provider",
                )
                .into());
            }
            options.get_or_insert(o);
        }
        let options = options.expect("at least one entry");
        let mut policy_ids: Vec<String> = Vec::new();
        for e in &entries {
            if !policy_ids.contains(&e.policy_id) {
                policy_ids.push(e.policy_id.clone());
            }
        }

        let driver = driver_for(&options, self.dcr_timeout)?;
        let mut request =
            ClientRequest::from_options(client_name.clone(), redirect_uris.clone(), &options);
        for (k, v) in &options.registration_metadata {
            request.extra.insert(
                k.clone(),
                substitute(v, &policy_ids[0], &entries[0].id, &dev.id),
            );
        }
        // The limit is checked again, atomically, by holding one of the developer's client slots
        // from before the IdP call until the client is stored: parallel creations (on any node)
        // cannot all pass the check above and register more clients at the IdP than allowed.
        let slot = self.reserve_client_slot(&global, &dev.id).await?;
        let registered = driver.register(&request).await;
        let reg = match registered {
            Ok(r) => r,
            Err(e) => {
                self.release_client_slot(slot.as_deref()).await;
                return Err(idp_error(&e));
            }
        };

        let now = unix_now();
        let apis: Vec<Value> = entries
            .iter()
            .map(|e| json!({"catalogue_id": e.id, "name": e.name, "api_id": e.api_id, "policy_id": e.policy_id}))
            .collect();
        let doc = json!({
            "client_id": reg.client_id,
            "client_name": client_name,
            "developer_id": dev.id,
            "catalogue_ids": catalogue_ids,
            "policy_ids": policy_ids,
            "apis": apis,
            "provider": options.provider.as_str(),
            "registration_endpoint": options.registration_url(),
            "token_endpoint": options.token_endpoint,
            "registration_client_uri": reg.registration_client_uri,
            "redirect_uris": redirect_uris,
            "grant_types": options.grant_types,
            "scopes": options.scopes,
            "client_secret_expires_at": reg.client_secret_expires_at,
        });
        let row = ClientRow {
            client_id: reg.client_id.clone(),
            developer_id: dev.id.clone(),
            doc,
            secret_sealed: self.seal_opt(reg.client_secret.as_ref()),
            rat_sealed: self.seal_opt(reg.registration_access_token.as_ref()),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let inserted = self.store.insert_client(&row).await;
        self.release_client_slot(slot.as_deref()).await;
        if let Err(e) = inserted {
            tracing::error!(error = %e, client_id = %reg.client_id, "storing a registered client failed; deleting it at the IdP");
            if let Err(d) = driver.delete(&reg.handle()).await {
                tracing::error!(error = %d.public_message(), client_id = %reg.client_id, "could not delete the client at the IdP; delete it there by hand");
            }
            return Err(PortalError::Store(
                "the client could not be saved, so it was removed from the identity provider again; try again".to_owned(),
            ));
        }
        (self.on_change)().await;
        Ok(client_view(
            &row,
            reg.client_secret.as_ref().map(Secret::expose),
        ))
    }

    /// Holds one of the developer's client slots ([`Store::reserve_client_slot`]); `None` when
    /// the portal sets no limit.
    async fn reserve_client_slot(
        &self,
        global: &PortalConfig,
        developer_id: &str,
    ) -> Result<Option<String>, PortalError> {
        let Ok(limit) = u64::try_from(global.max_clients_per_developer) else {
            return Ok(None);
        };
        let slot = random_token();
        let now = unix_now();
        match self
            .store
            .reserve_client_slot(developer_id, &slot, limit, now, now + CLIENT_SLOT_SECONDS)
            .await?
        {
            SlotReservation::Reserved => Ok(Some(slot)),
            SlotReservation::Full(used) => Err(too_many_clients(
                usize::try_from(used).unwrap_or(usize::MAX),
            )),
        }
    }

    /// Gives a slot back; a failure only logs (the slot expires by itself).
    async fn release_client_slot(&self, slot: Option<&str>) {
        if let Some(slot) = slot
            && let Err(e) = self.store.release_client_slot(slot).await
        {
            tracing::warn!(error = %e, "could not give back an OAuth client slot; it expires within 5 minutes");
        }
    }

    /// The developer's clients (no secrets).
    pub async fn clients_of(&self, developer_id: &str) -> Result<Vec<Value>, PortalError> {
        Ok(self
            .store
            .list_clients(Some(developer_id), false)
            .await?
            .iter()
            .map(|r| client_view(r, None))
            .collect())
    }

    /// Every client (admin view, no secrets).
    pub async fn all_clients(&self) -> Result<Vec<Value>, PortalError> {
        Ok(self
            .store
            .list_clients(None, false)
            .await?
            .iter()
            .map(|r| client_view(r, None))
            .collect())
    }

    async fn owned_client(&self, dev_id: &str, client_id: &str) -> Result<ClientRow, PortalError> {
        match self.store.get_client(client_id).await? {
            Some(r) if r.developer_id == dev_id && r.deleted_at.is_none() => Ok(r),
            _ => Err(PortalError::NotFound(format!(
                "you have no client '{client_id}'"
            ))),
        }
    }

    /// One of the developer's clients, with its secret (the owner's detail view).
    pub async fn client_detail(&self, dev_id: &str, client_id: &str) -> Result<Value, PortalError> {
        let row = self.owned_client(dev_id, client_id).await?;
        let secret = row
            .secret_sealed
            .as_deref()
            .map(|s| self.secrets.open(s))
            .transpose()?;
        Ok(client_view(&row, secret.as_deref()))
    }

    fn handle_of(&self, row: &ClientRow) -> Result<ClientHandle, PortalError> {
        let mut h = ClientHandle::new(row.client_id.clone());
        h.registration_client_uri = row
            .doc
            .get("registration_client_uri")
            .and_then(Value::as_str)
            .map(str::to_owned);
        h.registration_access_token = row
            .rat_sealed
            .as_deref()
            .map(|s| self.secrets.open(s).map(Secret::new))
            .transpose()?;
        Ok(h)
    }

    async fn options_of(&self, row: &ClientRow) -> Result<DcrOptions, PortalError> {
        let first = row
            .doc
            .get("catalogue_ids")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_owned);
        let global = self.config().await?;
        let from_entry = match &first {
            Some(id) => match self.catalogue_entry(id).await {
                Ok(e) => effective_dcr(&global, &e),
                Err(_) => None,
            },
            None => None,
        };
        from_entry
            .or_else(|| global.enable_dcr.then(|| global.dcr_options.clone()))
            .ok_or_else(|| PortalError::Idp {
                status: 409,
                message: "the DCR settings this client was created with are gone; \
                          manage it at the identity provider"
                    .to_owned(),
            })
    }

    /// Stores the newest credentials a management call returned.
    async fn store_latest(&self, row: &ClientRow, reg: &Registration) -> Result<(), PortalError> {
        let secret = match reg.client_secret.as_ref().filter(|s| !s.is_empty()) {
            Some(s) => Some(self.secrets.seal(s.expose())),
            None => row.secret_sealed.clone(),
        };
        let rat = match reg
            .registration_access_token
            .as_ref()
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(self.secrets.seal(s.expose())),
            None => row.rat_sealed.clone(),
        };
        self.store
            .update_client_credentials(&row.client_id, secret.as_deref(), rat.as_deref())
            .await?;
        Ok(())
    }

    /// Rotates a client's secret at the IdP; returns the client with its new secret.
    pub async fn rotate_secret(&self, dev_id: &str, client_id: &str) -> Result<Value, PortalError> {
        let lock = self.lock_for(client_id);
        let _g = lock.lock().await;
        let row = self.owned_client(dev_id, client_id).await?;
        let driver = driver_for(&self.options_of(&row).await?, self.dcr_timeout)?;
        match driver.rotate_secret(&self.handle_of(&row)?).await {
            Ok(reg) => {
                self.store_latest(&row, &reg).await?;
                self.client_detail(dev_id, client_id).await
            }
            Err(e) => {
                if let Some(latest) = e.latest_registration() {
                    self.store_latest(&row, latest).await?;
                }
                Err(idp_error(&e))
            }
        }
    }

    /// Deletes one of the developer's clients (at the IdP first).
    pub async fn delete_client(&self, dev_id: &str, client_id: &str) -> Result<(), PortalError> {
        let row = self.owned_client(dev_id, client_id).await?;
        self.delete_client_row(&row).await
    }

    /// Deletes any client (admin).
    pub async fn admin_delete_client(&self, client_id: &str) -> Result<(), PortalError> {
        match self.store.get_client(client_id).await? {
            Some(r) if r.deleted_at.is_none() => self.delete_client_row(&r).await,
            _ => Err(PortalError::NotFound(format!("no client '{client_id}'"))),
        }
    }

    async fn delete_client_row(&self, row: &ClientRow) -> Result<(), PortalError> {
        let lock = self.lock_for(&row.client_id);
        let _g = lock.lock().await;
        match self.options_of(row).await {
            Ok(options) => {
                let driver = driver_for(&options, self.dcr_timeout)?;
                match driver.delete(&self.handle_of(row)?).await {
                    Ok(()) => {}
                    Err(e) if e.client_gone() => {
                        tracing::info!(client_id = %row.client_id, "client already gone at the IdP");
                    }
                    Err(e) => {
                        if let Some(latest) = e.latest_registration() {
                            self.store_latest(row, latest).await?;
                        }
                        return Err(idp_error(&e));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(client_id = %row.client_id, error = %e, "deleting a client without IdP settings: only locally");
            }
        }
        self.store.mark_client_deleted(&row.client_id).await?;
        (self.on_change)().await;
        Ok(())
    }
}

/// Whether two DCR settings register at the same IdP with the same credentials.
fn same_idp(a: &DcrOptions, b: &DcrOptions) -> bool {
    a.provider == b.provider
        && a.registration_url() == b.registration_url()
        && a.access_token.expose() == b.access_token.expose()
        && a.grant_types == b.grant_types
        && a.token_endpoint_auth_method == b.token_endpoint_auth_method
}

/// Replaces `{policy_id}`, `{catalogue_id}` and `{developer_id}` in string values.
fn substitute(v: &Value, policy_id: &str, catalogue_id: &str, developer_id: &str) -> Value {
    match v {
        Value::String(s) => Value::String(
            s.replace("{policy_id}", policy_id)
                .replace("{catalogue_id}", catalogue_id)
                .replace("{developer_id}", developer_id),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, policy_id, catalogue_id, developer_id))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    (
                        k.clone(),
                        substitute(x, policy_id, catalogue_id, developer_id),
                    )
                })
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// The client as shown: its document plus timestamps, and the secret only when given.
fn client_view(row: &ClientRow, secret: Option<&str>) -> Value {
    let mut v = row.doc.clone();
    if let Value::Object(o) = &mut v {
        o.insert("created_at".to_owned(), json!(row.created_at));
        o.insert("updated_at".to_owned(), json!(row.updated_at));
        if let Some(s) = secret {
            o.insert("client_secret".to_owned(), Value::String(s.to_owned()));
        }
    }
    v
}

fn too_many_clients(count: usize) -> PortalError {
    PortalError::Forbidden(format!(
        "you already have {count} OAuth clients (or creations in progress), the most this portal \
         allows; delete one first"
    ))
}

/// A developer's sign-up or creation input, parsed and validated.
fn parse_developer(
    input: Value,
) -> Result<(gatehouse_domain::portal::Developer, Secret), PortalError> {
    let signup: DeveloperSignup =
        serde_path_to_error::deserialize(input).map_err(|e| ValidationError::from_serde(&e))?;
    Ok(signup.validate(ids::new_id(), unix_now())?)
}

/// A developer as shown (never the password hash).
pub fn developer_view(d: &DeveloperRow) -> Value {
    json!({
        "id": d.id, "email": d.email, "first_name": d.first_name, "last_name": d.last_name,
        "inactive": d.inactive, "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 in hex.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
