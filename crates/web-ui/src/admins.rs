//! Dashboard admin users: a JSON list in the settings under `dashboard_admins`, each with an
//! argon2id password hash (PHC string). No table of its own: the store's settings suffice for the
//! handful of admins a dashboard has. Hashes and checks run on the process's bounded
//! [`PasswordPool`].
//!
//! The first admin is created with [`create_first`]: only while the list does not exist, atomically
//! across dashboard nodes ([`Store::put_setting_if_absent`]); it also ends every first-admin
//! setup token ([`crate::setup`]).

use serde::{Deserialize, Serialize};

use gatehouse_admin_api::passwords::{PasswordError, PasswordPool};
use gatehouse_domain::ValidationError;
use gatehouse_store::{Store, StoreError, unix_now};

/// The settings key of the admin list.
pub const ADMINS_SETTING: &str = "dashboard_admins";
/// Shortest admin password.
pub const MIN_PASSWORD: usize = gatehouse_domain::portal::MIN_PASSWORD_CHARS;

/// One admin user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdminUser {
    /// Sign-in name (lower case).
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Why adding an admin failed.
#[derive(Debug)]
pub enum AdminError {
    /// Bad input, naming the form field (`email`, `password`).
    Invalid(ValidationError),
    /// The store failed.
    Store(StoreError),
    /// The password pool is full (503, try again).
    Busy,
}

impl std::error::Error for AdminError {}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Invalid(v) => f.write_str(&v.message),
            AdminError::Store(e) => write!(f, "the database is unavailable: {e}"),
            AdminError::Busy => f.write_str(&PasswordError::Busy.to_string()),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<PasswordError> for AdminError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => Self::Busy,
            PasswordError::Failed(m) => Self::Store(StoreError::Database(format!(
                "cannot hash the password: {m}"
            ))),
        }
    }
}

/// All admin users (empty when none was created yet; an unreadable list counts as an error).
pub async fn list(store: &dyn Store) -> Result<Vec<AdminUser>, StoreError> {
    match store.get_setting(ADMINS_SETTING).await? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            id: ADMINS_SETTING.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Checks an email and a password for a new admin.
pub fn validate(email: &str, password: &str) -> Result<String, ValidationError> {
    let email = email.trim().to_ascii_lowercase();
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.'))
        && !email.contains(char::is_whitespace);
    if !ok {
        return Err(ValidationError::new(
            "email",
            "enter an email address such as admin@example.com",
        ));
    }
    // The same rules as developers' passwords (length, not repeated, not well known, not the
    // email), so admins are held to at least what the portal asks of developers.
    gatehouse_domain::portal::validate_password(password, Some(&email))?;
    Ok(email)
}

/// Adds another admin (the first one is made by [`create_first`]).
pub async fn add(
    store: &dyn Store,
    passwords: &PasswordPool,
    email: &str,
    password: &str,
) -> Result<(), AdminError> {
    let email = validate(email, password).map_err(AdminError::Invalid)?;
    let taken = |all: &[AdminUser]| all.iter().any(|a| a.email == email);
    if taken(&list(store).await?) {
        return Err(exists_already());
    }
    let hash = passwords.hash(password).await?;
    // Read again after the hash (which may have waited for the pool).
    let mut all = list(store).await?;
    if taken(&all) {
        return Err(exists_already());
    }
    all.push(AdminUser {
        email,
        password_hash: hash,
        created_at: unix_now(),
    });
    let text = serde_json::to_string(&all).unwrap_or_else(|_| "[]".to_owned());
    store.put_setting(ADMINS_SETTING, &text).await?;
    Ok(())
}

fn exists_already() -> AdminError {
    AdminError::Invalid(ValidationError::new(
        "email",
        "an admin with this email exists already",
    ))
}

/// Creates the first admin: `false` (nothing changed) when an admin exists already, also when
/// another request or node created one at the same moment. On success every first-admin setup
/// token is deleted.
pub async fn create_first(
    store: &dyn Store,
    passwords: &PasswordPool,
    email: &str,
    password: &str,
) -> Result<bool, AdminError> {
    let email = validate(email, password).map_err(AdminError::Invalid)?;
    if !list(store).await?.is_empty() {
        return Ok(false);
    }
    let hash = passwords.hash(password).await?;
    let first = [AdminUser {
        email,
        password_hash: hash,
        created_at: unix_now(),
    }];
    let text = serde_json::to_string(&first).unwrap_or_else(|_| "[]".to_owned());
    if !store.put_setting_if_absent(ADMINS_SETTING, &text).await? {
        return Ok(false);
    }
    store.delete_setup_tokens().await?;
    Ok(true)
}

/// The admin with this email and password, if they match. Spends a hash's time on an unknown
/// email too, so timing does not tell which emails exist.
pub async fn verify(
    store: &dyn Store,
    passwords: &PasswordPool,
    email: &str,
    password: &str,
) -> Result<Option<AdminUser>, AdminError> {
    let email = email.trim().to_ascii_lowercase();
    let all = list(store).await?;
    let Some(user) = all.into_iter().find(|a| a.email == email) else {
        passwords.hash(password).await?;
        return Ok(None);
    };
    let ok = passwords.verify(password, &user.password_hash).await?;
    Ok(ok.then_some(user))
}

/// Removes an admin and ends their sessions. An admin cannot remove themself (`me`), and the
/// last admin cannot be removed.
pub async fn remove(store: &dyn Store, email: &str, me: &str) -> Result<(), AdminError> {
    let email = email.trim().to_ascii_lowercase();
    if email == me {
        return Err(AdminError::Invalid(ValidationError::new(
            "email",
            "you cannot remove yourself; ask another admin",
        )));
    }
    let mut all = list(store).await?;
    let before = all.len();
    all.retain(|a| a.email != email);
    if all.len() == before {
        return Err(AdminError::Invalid(ValidationError::new(
            "email",
            format!("there is no admin {email}"),
        )));
    }
    if all.is_empty() {
        return Err(AdminError::Invalid(ValidationError::new(
            "email",
            "the last admin cannot be removed",
        )));
    }
    let text = serde_json::to_string(&all).unwrap_or_else(|_| "[]".to_owned());
    store.put_setting(ADMINS_SETTING, &text).await?;
    store.delete_admin_sessions_of(&email).await?;
    Ok(())
}
