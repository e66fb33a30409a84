//! Request-path normalisation (`gatehouse_domain::path::normalize_path`, the defence against
//! `..` walking past authentication): arbitrary paths under both separator policies and both
//! slash policies. Invariants: no panic; a normalised path starts with `/`, is a fixed point
//! (normalising it again changes nothing), holds no `.` or `..` segment (also not encoded), no
//! `%2F`/`%5C`/`\`, no control character, only upper-case `%XX` escapes of reserved bytes, and
//! (when slashes are merged) no `//`.
#![no_main]

use gatehouse_domain::path::{EncodedSeparators, PathPolicy, normalize_path};
use libfuzzer_sys::fuzz_target;

fn check(path: &str, policy: PathPolicy) {
    let Ok(out) = normalize_path(path, policy) else {
        return;
    };
    assert!(out.starts_with('/'), "{path:?} -> {out:?}");
    let again = normalize_path(&out, policy).expect("a normalised path normalises");
    assert_eq!(again.as_ref(), out.as_ref(), "not a fixed point: {path:?}");
    for seg in out.split('/') {
        assert!(seg != "." && seg != "..", "dot segment in {out:?} from {path:?}");
    }
    assert!(!out.contains('\\'), "{out:?}");
    let bytes = out.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        assert!(b >= 0x20 && b != 0x7f && b < 0x80, "raw byte {b:#x} in {out:?}");
        if b == b'%' {
            let hex = &out[i + 1..i + 3];
            assert!(
                hex.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
                "{out:?}"
            );
            let v = u8::from_str_radix(hex, 16).unwrap();
            assert!(v != b'/' && v != b'\\' && v >= 0x20 && v != 0x7f, "{out:?}");
            assert!(
                !(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')),
                "unreserved still encoded in {out:?}"
            );
            i += 3;
            continue;
        }
        i += 1;
    }
    if policy.merge_slashes {
        assert!(!out.contains("//"), "{out:?} from {path:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = if text.starts_with('/') {
        text.to_owned()
    } else {
        format!("/{text}")
    };
    for encoded_separators in [EncodedSeparators::Reject, EncodedSeparators::Decode] {
        for merge_slashes in [true, false] {
            check(
                &path,
                PathPolicy {
                    encoded_separators,
                    merge_slashes,
                },
            );
        }
    }
});
