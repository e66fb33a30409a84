//! `X-Request-Id`: the client's when it is sane, a new UUIDv7 otherwise.

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;

/// The header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client.
pub const MAX_LEN: usize = 128;

/// Whether a client's id can be kept: 1 to [`MAX_LEN`] bytes of visible ASCII (no spaces or
/// control characters, so it is safe in logs and headers alike).
pub fn is_acceptable(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new id: a UUIDv7 (time-ordered) with the random bits from the thread's generator (no
/// system call, no lock).
pub fn generate() -> HeaderValue {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).expect("a UUID is a valid header value")
}

/// The request's id: the first `X-Request-Id` when acceptable, else a new one. The headers are
/// left with exactly that one value (forwarded upstream as is).
pub fn take_or_generate(headers: &mut HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    let first = values.next();
    let several = values.next().is_some();
    match first {
        Some(v) if is_acceptable(v.as_bytes()) => {
            let v = v.clone();
            if several {
                headers.insert(X_REQUEST_ID, v.clone());
            }
            v
        }
        _ => {
            let v = generate();
            headers.insert(X_REQUEST_ID, v.clone());
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptable_ids() {
        assert!(is_acceptable(b"abc-123_ok:/+="));
        assert!(is_acceptable(&[b'a'; 128]));
        assert!(!is_acceptable(&[b'a'; 129]));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"has space"));
        assert!(!is_acceptable(b"tab\there"));
        assert!(!is_acceptable("é".as_bytes()));
    }

    #[test]
    fn generated_ids_are_uuid_v7_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert!(is_acceptable(a.as_bytes()));
    }

    #[test]
    fn kept_replaced_and_deduplicated() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("client-1"));
        assert_eq!(take_or_generate(&mut h), "client-1");
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);

        h.append(X_REQUEST_ID, HeaderValue::from_static("client-2"));
        assert_eq!(take_or_generate(&mut h), "client-1");
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);

        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("bad id"));
        let id = take_or_generate(&mut h);
        assert_ne!(id, "bad id");
        assert_eq!(h[&X_REQUEST_ID], id);

        let mut h = HeaderMap::new();
        let id = take_or_generate(&mut h);
        assert_eq!(h[&X_REQUEST_ID], id);
    }
}
