//! The one-time token of the first-admin setup link.
//!
//! On a fresh database nobody may claim the dashboard's `/setup` page just by reaching it first.
//! So every dashboard process that starts while no admin exists makes a token (32 random bytes,
//! base64url), records only its SHA-256 in the store ([`Store::add_setup_token`]) and prints the
//! link `<dashboard>/setup?token=<token>` on its console ([`issue_token`]); `/setup` works only
//! with a recorded token ([`is_valid`]).
//!
//! Why hashes in the store rather than the token in the process's memory: with several
//! `gatehouse dashboard` nodes behind a load balancer, the link printed by any node must work on
//! whichever node the browser reaches, and a restart must not strand a half-done setup. Each
//! node's token stays its own secret (a copy of the database holds no usable token), and all of
//! them end together when the first admin is created ([`crate::admins::create_first`] deletes
//! them in the store) or, at the next start, when an admin exists.

use subtle::ConstantTimeEq;

use gatehouse_store::{Store, StoreError};

use crate::admins;
use crate::security::{random_token, sha256_hex};

/// When no admin exists: a new setup token, recorded as its hash, to print in the setup link.
/// When an admin exists: `None`, and setup tokens left from earlier starts are deleted.
pub async fn issue_token(store: &dyn Store) -> Result<Option<String>, StoreError> {
    if !admins::list(store).await?.is_empty() {
        store.delete_setup_tokens().await?;
        return Ok(None);
    }
    let token = random_token();
    store.add_setup_token(&sha256_hex(&token)).await?;
    Ok(Some(token))
}

/// Whether `given` is a recorded setup token. Its hash is compared with every recorded hash in
/// constant time (no early exit), so timing tells nothing about the recorded tokens.
pub async fn is_valid(store: &dyn Store, given: &str) -> Result<bool, StoreError> {
    if given.is_empty() || given.len() > 256 {
        return Ok(false);
    }
    let recorded = store.setup_tokens().await?;
    Ok(matches_any(&sha256_hex(given), &recorded))
}

/// Constant-time membership of `hash` in `recorded` (every entry is compared).
fn matches_any(hash: &str, recorded: &[String]) -> bool {
    let mut found = subtle::Choice::from(0);
    for r in recorded {
        found |= r.as_bytes().ct_eq(hash.as_bytes());
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_compares_hashes_exactly() {
        let a = sha256_hex("token-a");
        let b = sha256_hex("token-b");
        let recorded = vec![a.clone(), b.clone()];
        assert!(matches_any(&a, &recorded));
        assert!(matches_any(&b, &recorded));
        assert!(!matches_any(&sha256_hex("token-c"), &recorded));
        assert!(!matches_any(&a[..63], &recorded));
        assert!(!matches_any(&a, &[]));
        assert!(!matches_any("", &recorded));
    }

    #[tokio::test]
    async fn tokens_are_issued_only_without_admins_and_end_with_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = gatehouse_store::SqliteStore::open(dir.path())
            .await
            .unwrap();
        let one = issue_token(&store).await.unwrap().unwrap();
        let two = issue_token(&store).await.unwrap().unwrap();
        assert_ne!(one, two);
        // 32 random bytes: at least 128 bits, base64url without padding.
        assert_eq!(one.len(), 43);
        // Only hashes are stored.
        let recorded = store.setup_tokens().await.unwrap();
        assert_eq!(recorded.len(), 2);
        assert!(!recorded.contains(&one) && recorded.contains(&sha256_hex(&one)));
        // The link of either node works.
        assert!(is_valid(&store, &one).await.unwrap());
        assert!(is_valid(&store, &two).await.unwrap());
        assert!(!is_valid(&store, "not-a-token").await.unwrap());
        assert!(!is_valid(&store, "").await.unwrap());
        assert!(!is_valid(&store, &"x".repeat(10_000)).await.unwrap());

        let pool = gatehouse_admin_api::passwords::PasswordPool::new(1, 4);
        let first = admins::create_first(&store, &pool, "root@example.com", "a long passphrase")
            .await
            .unwrap();
        assert!(first);
        assert!(!is_valid(&store, &one).await.unwrap());
        assert!(!is_valid(&store, &two).await.unwrap());
        // A second "first" admin is refused, and with an admin no token is issued.
        let again = admins::create_first(&store, &pool, "other@example.com", "a long passphrase")
            .await
            .unwrap();
        assert!(!again);
        assert_eq!(issue_token(&store).await.unwrap(), None);
    }
}
