//! Dashboard admin users: a JSON list in the settings under `dashboard_admins`, each with an
//! argon2id password hash (PHC string). No table of its own: the store's settings suffice for the
//! handful of admins a dashboard has.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

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
}

impl std::error::Error for AdminError {}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Invalid(v) => f.write_str(&v.message),
            AdminError::Store(e) => write!(f, "the database is unavailable: {e}"),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
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

/// Adds an admin. With `only_if_none`, does nothing (returns `false`) when an admin exists
/// already: this is how `/setup` and the environment bootstrap stay one-time.
pub async fn add(
    store: &dyn Store,
    email: &str,
    password: &str,
    only_if_none: bool,
) -> Result<bool, AdminError> {
    let email = validate(email, password).map_err(AdminError::Invalid)?;
    let mut all = list(store).await?;
    if only_if_none && !all.is_empty() {
        return Ok(false);
    }
    if all.iter().any(|a| a.email == email) {
        return Err(AdminError::Invalid(ValidationError::new(
            "email",
            "an admin with this email exists already",
        )));
    }
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| {
            AdminError::Store(StoreError::Database(format!(
                "cannot hash the password: {e}"
            )))
        })?
        .to_string();
    all.push(AdminUser {
        email,
        password_hash: hash,
        created_at: unix_now(),
    });
    let text = serde_json::to_string(&all).unwrap_or_else(|_| "[]".to_owned());
    store.put_setting(ADMINS_SETTING, &text).await?;
    Ok(true)
}

/// The admin with this email and password, if they match. Spends a hash's time on an unknown
/// email too, so timing does not tell which emails exist.
pub async fn verify(
    store: &dyn Store,
    email: &str,
    password: &str,
) -> Result<Option<AdminUser>, StoreError> {
    let email = email.trim().to_ascii_lowercase();
    let all = list(store).await?;
    let argon = Argon2::default();
    let Some(user) = all.into_iter().find(|a| a.email == email) else {
        let _ = argon.hash_password(password.as_bytes());
        return Ok(None);
    };
    let ok = match argon2::password_hash::phc::PasswordHash::new(&user.password_hash) {
        Ok(h) => argon.verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    };
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
