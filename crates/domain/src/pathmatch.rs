//! Matching request paths the way Tyk does: the path string Tyk looks at, how a Tyk path pattern
//! becomes a regular expression, and Go's regular-expression dialect.
//!
//! Tyk (Go) sees `r.URL.Path`: the request path percent-decoded and cleaned by its router
//! (gorilla/mux answers `301` to the clean form of a path with `.`/`..` segments or `//`). Endpoint
//! patterns are prepared by `httputil.PreparePathRegexp` and compiled by Go's `regexp` (RE2 syntax).
//! This module does the same so that a pattern matches here exactly what it matches in Tyk:
//!
//! - [`decode_path`] and [`clean_path`] give the path Tyk matches;
//! - [`prepare_path_regexp`] rewrites mux parameters (`{id}` → `([^/]+)`) and wildcards
//!   (`/*/`, `/*`) and, with the gateway's prefix/suffix matching options, anchors the pattern;
//! - [`go_regex`] translates Go's RE2 dialect to the `regex` crate's: Go's `\d`, `\w`, `\s` and `\b`
//!   are ASCII-only (the `regex` crate's are Unicode-aware, which would let a white-listed
//!   `^/users/\d+$` accept `/users/٣`), `[` inside a class is a literal in Go, and syntax the
//!   `regex` crate accepts but Go does not (`\<`, `(?x)`, class set operations such as `[a&&b]`) is
//!   refused, because Go would refuse the pattern and Tyk would then never match it.

use std::borrow::Cow;

use regex::{Regex, RegexBuilder};

/// Gateway-wide path-matching settings, Tyk's `http_server_options.enable_path_prefix_matching`,
/// `http_server_options.enable_path_suffix_matching` and `ignore_endpoint_case`. All are off by
/// default in Tyk, and so here: a pattern is then searched anywhere in the path (`/admin` also
/// matches `/v1/admin/x` and `/x/admin`), which Tyk's documentation recommends turning off by
/// enabling both options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// A pattern starting with `/` must match at the start of the path (`^` is added).
    pub prefix: bool,
    /// A pattern must match at the end of the path (`$` is added).
    pub suffix: bool,
    /// Every endpoint pattern matches case-insensitively (Tyk's gateway-level
    /// `ignore_endpoint_case`).
    pub ignore_case: bool,
}

/// Tyk's `httputil.PreparePathRegexp`: when the braces balance, every `{…}` becomes `([^/]+)`
/// (note that this also rewrites a regex quantifier such as `{3}`, as Tyk does); `/*/` becomes
/// `/[^/]+/` and `/*` becomes `/.*`; with `prefix` a pattern starting with `/` gets `^`; with
/// `suffix` a pattern not ending in `$` gets `$`.
pub fn prepare_path_regexp(pattern: &str, prefix: bool, suffix: bool) -> String {
    let opens = pattern.matches('{').count();
    let mut out = if opens > 0 && opens == pattern.matches('}').count() {
        replace_mux_params(pattern)
    } else {
        pattern.to_owned()
    };
    if out.contains("/*") {
        out = out.replace("/*/", "/[^/]+/").replace("/*", "/.*");
    }
    if prefix && out.starts_with('/') {
        out.insert(0, '^');
    }
    if suffix && !out.ends_with('$') {
        out.push('$');
    }
    out
}

/// Replaces every `{…}` with at least one character inside by `([^/]+)` (Go's `{([^}]+)}`).
fn replace_mux_params(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if j > 0 => {
                out.push_str(&rest[..i]);
                out.push_str("([^/]+)");
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str(&rest[..=i]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Compiles a Tyk endpoint path pattern: [`prepare_path_regexp`] with the options' anchoring,
/// `(?i)` when `ignore_case` (the entry's, the version's or the gateway's), then [`go_regex`].
pub fn compile_path_pattern(
    pattern: &str,
    ignore_case: bool,
    opts: MatchOptions,
) -> Result<Regex, String> {
    let mut prepared = prepare_path_regexp(pattern, opts.prefix, opts.suffix);
    if ignore_case || opts.ignore_case {
        prepared.insert_str(0, "(?i)");
    }
    go_regex(&prepared)
}

/// Compiles a Go (RE2) regular expression so that it matches what Go's `regexp` matches; an error
/// for patterns Go would refuse, or whose meaning differs and cannot be translated.
pub fn go_regex(pattern: &str) -> Result<Regex, String> {
    let translated = translate_go_syntax(pattern)?;
    RegexBuilder::new(&translated)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => s.lines().last().unwrap_or("invalid").trim().to_owned(),
            other => other.to_string(),
        })
}

const GO_DIGIT: &str = "0-9";
const GO_WORD: &str = "0-9A-Za-z_";
const GO_SPACE: &str = r"\t\n\x0C\r ";

/// Rewrites Go regexp syntax into equivalent `regex` crate syntax (see the module docs).
fn translate_go_syntax(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    // Inside a character class: the index where its items start (after `[` and `^`).
    let mut class_start: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        match (c, class_start) {
            ('\\', _) => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("trailing backslash at end of expression".to_owned());
                };
                let inside = class_start.is_some();
                match n {
                    'd' | 'w' | 's' => {
                        let set = perl_set(n);
                        if inside {
                            out.push_str(set);
                        } else {
                            out.push('[');
                            out.push_str(set);
                            out.push(']');
                        }
                    }
                    'D' | 'W' | 'S' => {
                        out.push_str("[^");
                        out.push_str(perl_set(n.to_ascii_lowercase()));
                        out.push(']');
                    }
                    'b' | 'B' if !inside => {
                        out.push_str("(?-u:\\");
                        out.push(n);
                        out.push(')');
                    }
                    '<' | '>' => {
                        return Err(format!("invalid escape sequence: \\{n}"));
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
            }
            ('[', None) => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after `[` or `[^` is a literal in both dialects.
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                class_start = Some(i);
            }
            ('[', Some(_)) => {
                if chars.get(i + 1) == Some(&':') {
                    // A POSIX class such as [:alpha:]: the same in both dialects.
                    let rest: String = chars[i..].iter().collect();
                    let Some(end) = rest.find(":]") else {
                        return Err("missing closing ]".to_owned());
                    };
                    out.push_str(&rest[..end + 2]);
                    i += rest[..end + 2].chars().count();
                } else {
                    // Go: a literal `[`; the regex crate would open a nested class.
                    out.push_str("\\[");
                    i += 1;
                }
            }
            (']', Some(_)) => {
                out.push(']');
                class_start = None;
                i += 1;
            }
            ('&' | '~', Some(_)) => {
                // Literals in Go; `&&` and `~~` are set operations in the regex crate.
                out.push('\\');
                out.push(c);
                i += 1;
            }
            ('-', Some(_)) if chars.get(i + 1) == Some(&'-') => {
                return Err(
                    "'--' inside a character class means different things in Go and \
                            here; write the range explicitly"
                        .to_owned(),
                );
            }
            ('(', None) if chars.get(i + 1) == Some(&'?') => {
                // Flag groups: Go knows i, m, s and U.
                let mut j = i + 2;
                let named = matches!(chars.get(j), Some('P' | '<'));
                while !named && j < chars.len() && chars[j] != ')' && chars[j] != ':' {
                    if !matches!(chars[j], 'i' | 'm' | 's' | 'U' | '-') {
                        return Err(format!(
                            "invalid or unsupported Perl syntax: (?{}",
                            chars[j]
                        ));
                    }
                    j += 1;
                }
                out.push_str("(?");
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    if class_start.is_some() {
        return Err("missing closing ]".to_owned());
    }
    Ok(out)
}

fn perl_set(c: char) -> &'static str {
    match c {
        'd' => GO_DIGIT,
        'w' => GO_WORD,
        _ => GO_SPACE,
    }
}

/// Percent-decodes a request path as Go's `url.Parse` does for `r.URL.Path`: every `%XX` is
/// decoded (`%2F` becomes `/`), `+` stays `+`. `None` when a `%` is not followed by two hex digits
/// (Go's HTTP server answers 400 then). Bytes that are not UTF-8 become U+FFFD, which is also how
/// Go's `regexp` sees them.
pub fn decode_path(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The clean form of a path, as gorilla/mux computes it before Tyk routes a request: Go's
/// `path.Clean` (no empty or `.` segments, `..` removes the previous segment, never above the
/// root) with a trailing `/` kept. Tyk answers `301` with the clean path as `Location` when the two
/// differ; endpoint rules must only ever be matched against a clean path.
pub fn clean_path(p: &str) -> Cow<'_, str> {
    if p.starts_with('/') && !needs_cleaning(p) {
        return Cow::Borrowed(p);
    }
    let mut segs: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    } else if p.ends_with('/') {
        // mux puts back the trailing slash that `path.Clean` removes.
        out.push('/');
    }
    Cow::Owned(out)
}

fn needs_cleaning(p: &str) -> bool {
    p.contains("//") || p.split('/').any(|s| s == "." || s == "..")
}

/// Tyk's `httputil.StripListenPath`: the path with a leading `listen_path` removed (a literal
/// prefix, so `/pay/` is not removed from `/pay`), always starting with `/`.
pub fn strip_listen_path<'a>(listen_path: &str, path: &'a str) -> Cow<'a, str> {
    let rest = path.strip_prefix(listen_path).unwrap_or(path);
    if rest.starts_with('/') {
        Cow::Borrowed(rest)
    } else {
        Cow::Owned(format!("/{rest}"))
    }
}

/// The first value of the query parameter `key`, as Go's `r.URL.Query().Get(key)`: pairs are
/// split on `&`, pairs containing `;` or a bad `%` escape are skipped, `+` is a space. `None` when
/// the parameter is absent; an empty value is `Some("")`.
pub fn first_query_value(query: &str, key: &str) -> Option<String> {
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) else {
            continue;
        };
        if k == key {
            return Some(v);
        }
    }
    None
}

/// Every value of a query parameter, in order, decoded as Go's `url.ParseQuery` does (pairs that
/// do not decode, or hold `;`, are skipped).
pub fn query_values(query: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v))
            && k == key
        {
            out.push(v);
        }
    }
    out
}

fn query_unescape(s: &str) -> Option<String> {
    let replaced = s.replace('+', " ");
    decode_path(&replaced).map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> Regex {
        go_regex(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn prepares_patterns_as_tyk() {
        assert_eq!(
            prepare_path_regexp("/users/{id}", false, false),
            "/users/([^/]+)"
        );
        assert_eq!(
            prepare_path_regexp("/users/{id}/x/{y}", true, true),
            "^/users/([^/]+)/x/([^/]+)$"
        );
        // Unbalanced braces are left alone (a regex quantifier is rewritten when they balance).
        assert_eq!(prepare_path_regexp("/a{2", false, false), "/a{2");
        assert_eq!(prepare_path_regexp("/a{2}", false, false), "/a([^/]+)");
        assert_eq!(
            prepare_path_regexp("/a/*/b/*", false, false),
            "/a/[^/]+/b/.*"
        );
        assert_eq!(prepare_path_regexp("^/x$", true, true), "^/x$");
        assert_eq!(prepare_path_regexp("x", true, false), "x");
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        let d = re(r"^/u/\d+$");
        assert!(d.is_match("/u/123"));
        assert!(
            !d.is_match("/u/١٢٣"),
            "Arabic-Indic digits are not \\d in Go"
        );
        let w = re(r"^\w+$");
        assert!(w.is_match("abc_1"));
        assert!(!w.is_match("é"));
        let s = re(r"^a\sb$");
        assert!(s.is_match("a b"));
        assert!(!s.is_match("a\u{a0}b"));
        let nd = re(r"^\D$");
        assert!(nd.is_match("a") && !nd.is_match("1"));
        let class = re(r"^[\d\s]+$");
        assert!(class.is_match("1 2") && !class.is_match("١"));
        let neg = re(r"^[^\D]$");
        assert!(neg.is_match("7") && !neg.is_match("x"));
        // Go's \b only knows ASCII word characters: "é" is not one, so "éend" has a boundary.
        let b = re(r"\bend\b");
        assert!(b.is_match("the end") && b.is_match("éend") && !b.is_match("weekend"));
    }

    #[test]
    fn go_literals_and_refusals() {
        // `[` inside a class is a literal in Go.
        let r = re(r"^[a[]$");
        assert!(r.is_match("[") && r.is_match("a"));
        assert!(re(r"^[a&&b]$").is_match("&"));
        assert!(re(r"^[]a]$").is_match("]"));
        assert!(re(r"^[[:alpha:]]+$").is_match("abc"));
        assert!(re(r"^\/x$").is_match("/x"));
        assert!(re(r"(?i)^/X$").is_match("/x"));
        assert!(re(r"(?P<id>\d+)").is_match("7"));
        for bad in [r"\<a", r"(?x)a", r"[a--b]", "(", r"a\", "[a", r"\Qa\E"] {
            assert!(go_regex(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn compiled_patterns_follow_the_options() {
        let loose = compile_path_pattern("/admin", false, MatchOptions::default()).unwrap();
        assert!(loose.is_match("/v1/admin/x"));
        let anchored = MatchOptions {
            prefix: true,
            suffix: true,
            ignore_case: false,
        };
        let exact = compile_path_pattern("/admin", false, anchored).unwrap();
        assert!(exact.is_match("/admin") && !exact.is_match("/admin/x"));
        let ci = compile_path_pattern("/Admin", true, MatchOptions::default()).unwrap();
        assert!(ci.is_match("/ADMIN"));
        let gw_ci = MatchOptions {
            ignore_case: true,
            ..MatchOptions::default()
        };
        assert!(
            compile_path_pattern("/a", false, gw_ci)
                .unwrap()
                .is_match("/A")
        );
    }

    #[test]
    fn paths_are_decoded_and_cleaned_as_go_does() {
        assert_eq!(decode_path("/a%2Fb%20c+d").unwrap(), "/a/b c+d");
        assert_eq!(decode_path("/plain").unwrap(), "/plain");
        assert!(decode_path("/bad%2").is_none());
        assert!(decode_path("/bad%zz").is_none());
        assert_eq!(decode_path("/%FF").unwrap(), "/\u{FFFD}");
        for (p, c) in [
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/a/b/", "/a/b/"),
            ("/a/b/..", "/a"),
            ("/a/b/../", "/a/"),
            ("", "/"),
            ("a", "/a"),
            ("/", "/"),
            ("//", "/"),
        ] {
            assert_eq!(clean_path(p), c, "{p}");
        }
    }

    #[test]
    fn listen_path_stripping_is_a_literal_prefix() {
        assert_eq!(strip_listen_path("/pay/", "/pay/v1/x"), "/v1/x");
        assert_eq!(strip_listen_path("/pay/", "/pay"), "/pay");
        assert_eq!(strip_listen_path("/", "/x"), "/x");
        assert_eq!(strip_listen_path("/pay", "/payments"), "/ments");
    }

    #[test]
    fn query_values_as_go() {
        assert_eq!(first_query_value("a=1&v=2&v=3", "v").as_deref(), Some("2"));
        assert_eq!(first_query_value("v=a+b%21", "v").as_deref(), Some("a b!"));
        assert_eq!(first_query_value("v", "v").as_deref(), Some(""));
        assert_eq!(first_query_value("v=1;x=2&v=3", "v").as_deref(), Some("3"));
        assert_eq!(first_query_value("v=%zz&v=ok", "v").as_deref(), Some("ok"));
        assert_eq!(first_query_value("x=1", "v"), None);
    }
}
