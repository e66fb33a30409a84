//! Request-path normalisation: the one canonical path the gateway routes, checks and forwards.
//!
//! A gateway that routes and checks access on the raw path but forwards it unchanged can be walked
//! past: `/public/../internal/secret` routes to the API on `/public/`, and an upstream that
//! normalises (nginx, most frameworks) serves `/internal/secret`. So the gateway normalises the
//! path **once, before routing**, and forwards exactly the normalised path. The rules (RFC 3986
//! §6.2.2 plus the policies the major proxies apply; see SECURITY.md, "Path handling"):
//!
//! 1. Percent-encoded **unreserved** characters (`A-Z a-z 0-9 - . _ ~`) are decoded (`%2e` → `.`,
//!    `%7E` → `~`); every other percent-encoding is kept, with upper-case hex digits (`%2f` →
//!    `%2F`). Decoding is done once: `%252e` stays `%252e` (a literal `%2e` to the upstream).
//! 2. **Encoded separators** `%2F` (`/`) and `%5C` (`\`), and a raw `\`: refused (400) by default,
//!    because upstreams disagree about them (nginx decodes `%2F` before it resolves `..`);
//!    [`EncodedSeparators::Decode`] turns all three into `/` instead (they then split segments and
//!    take part in rule 4).
//! 3. **Duplicate slashes** (`//`) are merged into one by default (as nginx's `merge_slashes`);
//!    with `merge_slashes: false` empty segments are kept as they are.
//! 4. **Dot segments** (`.` and `..`, also when written `%2e`, `.%2E`, …) are resolved (RFC 3986
//!    §5.2.4); a path that climbs above the root is refused (400). A segment whose part before a
//!    `;` is a dot segment (`..;x`, Tomcat's path parameters) is refused.
//! 5. Control characters (raw or encoded, `%00`–`%1F`, `%7F`), malformed percent-encodings (`%zz`,
//!    a lone `%`), and encoded bytes that are not valid UTF-8 (overlong forms such as `%C0%AE`)
//!    are refused. Raw non-ASCII characters are percent-encoded.
//!
//! The trailing slash is kept (`/a/b/` stays `/a/b/`); a path that resolves to nothing is `/`.
//! The common case (no `%`, `\`, `//`, `/.` or `;`) is returned borrowed without allocating.

use std::borrow::Cow;

/// What to do with `%2F`, `%5C` and raw `\` in a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodedSeparators {
    /// Refuse the request (400): the safe default.
    #[default]
    Reject,
    /// Treat them as `/` (decoded, so they separate segments and dot segments around them are
    /// resolved).
    Decode,
}

impl EncodedSeparators {
    /// Parses a setting value: `reject` or `decode`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reject" => Some(Self::Reject),
            "decode" => Some(Self::Decode),
            _ => None,
        }
    }
}

/// The path policy of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// `%2F`, `%5C` and `\`.
    pub encoded_separators: EncodedSeparators,
    /// Merge `//` into `/`.
    pub merge_slashes: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        Self {
            encoded_separators: EncodedSeparators::Reject,
            merge_slashes: true,
        }
    }
}

/// Why a request path was refused (the gateway answers 400 with [`PathError::message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the request path must start with '/'")]
    NotAbsolute,
    /// `..` would climb above the root.
    #[error("the request path climbs above the root with '..'")]
    AboveRoot,
    /// `%2F`, `%5C` or `\` under [`EncodedSeparators::Reject`].
    #[error(
        "the request path contains an encoded '/' or '\\' (%2F, %5C) or a '\\', which this gateway refuses"
    )]
    EncodedSeparator,
    /// A dot segment with `;` parameters (`..;x`).
    #[error("the request path contains a dot segment with ';' parameters")]
    DotSegmentParameters,
    /// A control character, raw or percent-encoded.
    #[error("the request path contains a control character")]
    ControlCharacter,
    /// `%` not followed by two hex digits.
    #[error("the request path contains a malformed percent-encoding")]
    MalformedEncoding,
    /// Percent-encoded bytes that are not valid UTF-8 (overlong forms included).
    #[error("the request path contains percent-encoded bytes that are not valid UTF-8")]
    InvalidUtf8,
}

impl PathError {
    /// The public message.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Whether `path` certainly needs no work: no `%`, `\`, `;`, control or non-ASCII byte, no `//`
/// and no segment starting with `.`.
fn is_plain(path: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in path {
        match b {
            b'%' | b'\\' | b';' | 0..=0x1f | 0x7f..=0xff => return false,
            b'/' | b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// One byte of a path after decoding, remembering whether it is a separator.
#[derive(Clone, Copy)]
enum Unit {
    /// A literal byte of a segment, written as is.
    Raw(u8),
    /// A byte that stays percent-encoded in the output.
    Encoded(u8),
    /// A segment separator.
    Slash,
}

/// Normalises a request path (without its query string) under `policy`; see the module docs.
pub fn normalize_path(path: &str, policy: PathPolicy) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes) {
        return Ok(Cow::Borrowed(path));
    }

    // Pass 1: decode into units, checking encodings.
    let mut units: Vec<Unit> = Vec::with_capacity(bytes.len());
    let mut encoded_run: Vec<u8> = Vec::new(); // consecutive encoded bytes >= 0x80, for UTF-8
    let flush_run = |run: &mut Vec<u8>| -> Result<(), PathError> {
        if !run.is_empty() {
            std::str::from_utf8(run).map_err(|_| PathError::InvalidUtf8)?;
            run.clear();
        }
        Ok(())
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(PathError::MalformedEncoding);
            };
            let v = h << 4 | l;
            i += 3;
            if v >= 0x80 {
                encoded_run.push(v);
                units.push(Unit::Encoded(v));
                continue;
            }
            flush_run(&mut encoded_run)?;
            match v {
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                b'/' | b'\\' => match policy.encoded_separators {
                    EncodedSeparators::Reject => return Err(PathError::EncodedSeparator),
                    EncodedSeparators::Decode => units.push(Unit::Slash),
                },
                v if is_unreserved(v) => units.push(Unit::Raw(v)),
                v => units.push(Unit::Encoded(v)),
            }
            continue;
        }
        flush_run(&mut encoded_run)?;
        match b {
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            b'/' => units.push(Unit::Slash),
            b'\\' => match policy.encoded_separators {
                EncodedSeparators::Reject => return Err(PathError::EncodedSeparator),
                EncodedSeparators::Decode => units.push(Unit::Slash),
            },
            // Raw non-ASCII (the input is a &str, so valid UTF-8): percent-encode it.
            0x80..=0xff => units.push(Unit::Encoded(b)),
            _ => units.push(Unit::Raw(b)),
        }
        i += 1;
    }
    flush_run(&mut encoded_run)?;

    // Pass 2: split into segments, resolve dot segments, write.
    let mut segments: Vec<&[Unit]> = Vec::new();
    let trailing_slash = matches!(units.last(), Some(Unit::Slash));
    // units[0] is the leading slash.
    let body = &units[1..];
    let parts: Vec<&[Unit]> = body.split(|u| matches!(u, Unit::Slash)).collect();
    let last = parts.len().saturating_sub(1);
    for (n, seg) in parts.into_iter().enumerate() {
        match classify(seg) {
            Segment::Dot => {}
            Segment::DotDot => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            Segment::DotParams => return Err(PathError::DotSegmentParameters),
            Segment::Empty => {
                // The empty segment after a trailing slash is the trailing slash itself.
                if !policy.merge_slashes && n != last {
                    segments.push(seg);
                }
            }
            Segment::Normal => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &segments {
        out.push('/');
        for u in *seg {
            match *u {
                Unit::Raw(b) => out.push(b as char),
                Unit::Encoded(b) => {
                    out.push('%');
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 15) as usize] as char);
                }
                Unit::Slash => unreachable!("segments hold no separators"),
            }
        }
    }
    // A trailing slash (or a final dot segment, which names a directory) is kept.
    let ends_in_dir = trailing_slash
        || body
            .rsplit(|u| matches!(u, Unit::Slash))
            .next()
            .is_some_and(|s| matches!(classify(s), Segment::Dot | Segment::DotDot));
    if out.is_empty() || ends_in_dir {
        out.push('/');
    }
    if out == path {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(out))
}

enum Segment {
    Empty,
    Dot,
    DotDot,
    DotParams,
    Normal,
}

fn classify(seg: &[Unit]) -> Segment {
    let literal = |u: &Unit| match u {
        Unit::Raw(b) => Some(*b),
        _ => None,
    };
    let before_params = seg
        .iter()
        .position(|u| matches!(u, Unit::Raw(b';')))
        .map_or(seg, |p| &seg[..p]);
    let is_dots = |s: &[Unit]| match s {
        [a] => literal(a) == Some(b'.'),
        [a, b] => literal(a) == Some(b'.') && literal(b) == Some(b'.'),
        _ => false,
    };
    if seg.is_empty() {
        Segment::Empty
    } else if before_params.len() != seg.len() && is_dots(before_params) {
        Segment::DotParams
    } else if is_dots(seg) {
        if seg.len() == 1 {
            Segment::Dot
        } else {
            Segment::DotDot
        }
    } else {
        Segment::Normal
    }
}

/// Whether a listen path (as stored, with its leading `/`) is already in normal form under the
/// default policy: no `//`, no dot segments, no encoded separators. Listen paths that are not are
/// refused when saved, because no normalised request path could ever match them.
pub fn is_normal_listen_path(listen_path: &str) -> bool {
    matches!(
        normalize_path(listen_path, PathPolicy::default()),
        Ok(Cow::Borrowed(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p, PathPolicy::default()).map(Cow::into_owned)
    }

    fn decode_seps(p: &str) -> Result<String, PathError> {
        normalize_path(
            p,
            PathPolicy {
                encoded_separators: EncodedSeparators::Decode,
                merge_slashes: true,
            },
        )
        .map(Cow::into_owned)
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for p in ["/", "/a", "/a/b/", "/a.b/c..d/e.", "/x-y_z~1"] {
            assert!(
                matches!(
                    normalize_path(p, PathPolicy::default()),
                    Ok(Cow::Borrowed(_))
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(
            norm("/public/../internal/secret").unwrap(),
            "/internal/secret"
        );
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/a/..").unwrap(), "/");
        assert_eq!(norm("/.").unwrap(), "/");
        assert_eq!(
            norm("/payments/charges/../admin").unwrap(),
            "/payments/admin"
        );
        assert_eq!(norm("/.well-known/x").unwrap(), "/.well-known/x");
        assert_eq!(norm("/a/...").unwrap(), "/a/...");
    }

    #[test]
    fn encoded_dots_are_dots() {
        for p in [
            "/public/%2e%2e/internal/secret",
            "/public/%2E%2e/internal/secret",
            "/public/.%2e/internal/secret",
            "/public/%2e./internal/secret",
        ] {
            assert_eq!(norm(p).unwrap(), "/internal/secret", "{p}");
        }
        assert_eq!(norm("/a/%2e/b").unwrap(), "/a/b");
    }

    #[test]
    fn double_encoding_is_decoded_once() {
        assert_eq!(
            norm("/public/%252e%252e/internal").unwrap(),
            "/public/%252e%252e/internal"
        );
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(norm("/%2e%2e/etc/passwd"), Err(PathError::AboveRoot));
    }

    #[test]
    fn duplicate_slashes_are_merged_or_kept() {
        assert_eq!(norm("//a//b///").unwrap(), "/a/b/");
        assert_eq!(norm("/a//../b").unwrap(), "/b");
        let keep = PathPolicy {
            merge_slashes: false,
            ..PathPolicy::default()
        };
        assert_eq!(normalize_path("/a//b", keep).unwrap(), "/a//b");
        assert_eq!(normalize_path("/a//b/", keep).unwrap(), "/a//b/");
    }

    #[test]
    fn separators_are_refused_or_decoded() {
        for p in [
            "/a%2Fb",
            "/a%2fb",
            "/a%5Cb",
            "/a%5cb",
            "/a\\b",
            "/public\\..\\internal",
        ] {
            assert_eq!(norm(p), Err(PathError::EncodedSeparator), "{p}");
        }
        assert_eq!(decode_seps("/a%2Fb").unwrap(), "/a/b");
        assert_eq!(
            decode_seps("/public/..%2Finternal/x").unwrap(),
            "/internal/x"
        );
        assert_eq!(decode_seps("/public\\..\\internal").unwrap(), "/internal");
        assert_eq!(decode_seps("/public%5C..%5Cinternal").unwrap(), "/internal");
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        assert_eq!(
            norm("/public/..;/internal"),
            Err(PathError::DotSegmentParameters)
        );
        assert_eq!(
            norm("/public/.;x/internal"),
            Err(PathError::DotSegmentParameters)
        );
        assert_eq!(norm("/a;v=1/b").unwrap(), "/a;v=1/b");
        assert_eq!(norm("/a/..b;x").unwrap(), "/a/..b;x");
    }

    #[test]
    fn control_characters_and_bad_encodings_are_refused() {
        assert_eq!(norm("/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%0A/b"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%7f"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%zz"), Err(PathError::MalformedEncoding));
        assert_eq!(norm("/a%"), Err(PathError::MalformedEncoding));
        assert_eq!(norm("/a%2"), Err(PathError::MalformedEncoding));
        assert_eq!(norm("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
    }

    #[test]
    fn overlong_and_invalid_utf8_is_refused() {
        assert_eq!(norm("/a/%C0%AE%C0%AE/b"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/a/%E0%80%AE"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/a/%FF"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/a/%C3"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/a/%C3x"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(norm("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(norm("/café").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn other_encodings_are_kept_with_upper_case_hex() {
        assert_eq!(norm("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(norm("/%7euser/%41").unwrap(), "/~user/A");
        assert_eq!(norm("/a%20b").unwrap(), "/a%20b");
    }

    #[test]
    fn normalising_is_idempotent() {
        for p in [
            "/public/../internal/secret",
            "/a//b/./c/",
            "/caf%c3%a9/%7e",
            "/a;x/..b",
            "/%252e",
        ] {
            let once = norm(p).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{p}");
        }
    }

    #[test]
    fn listen_paths_in_normal_form() {
        assert!(is_normal_listen_path("/pay/"));
        assert!(is_normal_listen_path("/"));
        assert!(!is_normal_listen_path("/a//b/"));
        assert!(!is_normal_listen_path("/a/../b/"));
        assert!(!is_normal_listen_path("/a/%2e/"));
        assert!(!is_normal_listen_path("/a%2Fb/"));
    }
}
