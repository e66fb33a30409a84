//! Identifier generation.

/// A new identifier for an API or policy: 32 lowercase hex characters, like Tyk's generated ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `id` is acceptable as an API or policy id: 1-128 characters from `[A-Za-z0-9._~-]`,
/// so it can sit in a URL path segment without escaping.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 32);
        assert!(is_valid_id(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn ids_with_slashes_or_spaces_are_rejected() {
        assert!(is_valid_id("my-api.v1"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"x".repeat(129)));
    }
}
