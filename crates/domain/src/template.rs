//! Tyk's variables in header values and rewrite targets (`$tyk_context.*`, `$tyk_meta.*`), parsed
//! once when a definition is compiled and filled in per request from a [`TransformContext`] the
//! gateway implements.
//!
//! # What Tyk substitutes, and what Gatehouse does
//! Tyk's `ReplaceTykVariables` replaces, in this order, `$secret_conf.*`, `$secret_env.*`,
//! `$secret_vault.*`, `$secret_consul.*`, `$tyk_context.<key>` (the request's context data) and
//! `$tyk_meta.<key>` (the session's `meta_data`); a key is `[A-Za-z0-9_.-]+`, and a key with no
//! value becomes the empty string. The context data exists only when the API has
//! `enable_context_vars: true` (Tyk's `MiddlewareContextVars`); URL rewrite triggers add their
//! captures to it in any case.
//!
//! | variable | Gatehouse |
//! |---|---|
//! | `$tyk_context.request_id` | the request id ([`TransformContext::request_id`]) |
//! | `$tyk_context.remote_addr` | the client's IP address |
//! | `$tyk_context.path` | the request path (`r.URL.Path`) |
//! | `$tyk_context.path_parts` | the path's segments joined by `,` (Tyk: `/a/b` → `a,b`) |
//! | `$tyk_context.headers_<Name>` | a request header by canonical name with `-` written `_` (`headers_X_Request_Id`), all values joined by `,` |
//! | `$tyk_context.jwt_claims_<claim>` | a claim of the verified JWT, rendered as Tyk renders it ([`tyk_value_string`]) |
//! | `$tyk_context.trigger-<n>-…` | URL rewrites only: a trigger's capture ([`crate::rewrite`]) |
//! | `$tyk_meta.<key>` | the session's `meta_data` (from the policies) |
//! | `$tyk_context.request_data`, `.token`, `.cookies_*`, any other key, every `$secret_*` | **refused** when the definition is saved |
//!
//! The refused ones are refused rather than left in place: Gatehouse never sends a literal
//! `$secret_…` or `$tyk_…` text upstream, nor quietly sends an empty value where a secret was
//! meant. One deliberate difference: Tyk replaces the variables one kind after the other over the
//! whole string, so a client-controlled value (a header) that itself contains `$tyk_meta.x` is
//! expanded by the next pass and can reveal session metadata; Gatehouse fills each variable once
//! and never looks into what it inserted.

use serde_json::Value;

use crate::error::ValidationError;

/// What the gateway knows about a request, for filling in variables. Implemented by the gateway
/// over its request context; every method is cheap and called only for the variables a template
/// uses.
pub trait TransformContext {
    /// The request id the gateway assigned or accepted (`$tyk_context.request_id`).
    fn request_id(&self) -> Option<&str>;
    /// The client's IP address, as the gateway determined it (`$tyk_context.remote_addr`).
    fn remote_addr(&self) -> Option<&str>;
    /// The request path as Tyk holds it in `r.URL.Path` (decoded, with the listen path)
    /// (`$tyk_context.path`, `path_parts`, and path-part triggers).
    fn path(&self) -> &str;
    /// Every value of a request header, case-insensitively, in order (empty when absent).
    /// `name` is in canonical form (`X-Request-Id`).
    fn header_values(&self, name: &str) -> Vec<&str>;
    /// The raw query string, without `?` (URL rewrite query triggers).
    fn query(&self) -> Option<&str>;
    /// A claim of the verified JWT by its top-level name; `None` for keyless requests.
    fn jwt_claim(&self, name: &str) -> Option<&Value>;
    /// A session `meta_data` entry; `None` for keyless requests.
    fn session_meta(&self, key: &str) -> Option<&Value>;
}

/// A `$tyk_context` variable Gatehouse fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextVar {
    /// `request_id`.
    RequestId,
    /// `remote_addr`.
    RemoteAddr,
    /// `path`.
    Path,
    /// `path_parts`.
    PathParts,
    /// `headers_<Name>`: the canonical header name (`X-Request-Id`).
    Header(String),
    /// `jwt_claims_<claim>`.
    JwtClaim(String),
    /// `trigger-…`: a URL rewrite trigger capture, by its full key.
    Trigger(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Context(ContextVar),
    Meta(String),
}

/// A header value or rewrite target with Tyk variables, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueTemplate {
    pieces: Vec<Piece>,
}

/// Captures of URL rewrite triggers, by key (`trigger-0-X-Tenant-0`).
pub type Captures = std::collections::BTreeMap<String, String>;

impl ValueTemplate {
    /// A template of literal text only.
    pub fn literal(s: &str) -> Self {
        Self {
            pieces: vec![Piece::Literal(s.to_owned())],
        }
    }

    /// Parses `s`. `field` names the value in errors; `triggers` allows `$tyk_context.trigger-*`
    /// (URL rewrites: Tyk transforms headers before it rewrites, so trigger captures are always
    /// empty in headers).
    pub fn parse(s: &str, field: &str, triggers: bool) -> Result<Self, ValidationError> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let at = &rest[i..];
            let (piece, used) = parse_variable(at, field, triggers)?;
            match piece {
                None => lit.push('$'),
                Some(p) => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(p);
                }
            }
            rest = &at[used..];
        }
        lit.push_str(rest);
        if !lit.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Self { pieces })
    }

    /// The text when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Whether any `$tyk_context` variable other than a trigger capture is used (those are empty
    /// without `enable_context_vars`).
    pub fn uses_context_vars(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Context(var) if !matches!(var, ContextVar::Trigger(_))))
    }

    /// Fills the variables in. `context_vars` is the API's `enable_context_vars` (without it every
    /// `$tyk_context` variable but trigger captures is empty, as in Tyk); `captures` are the URL
    /// rewrite trigger captures; `escape` query-escapes inserted values that do not start with
    /// `http` (Tyk does so in rewrite targets, not in headers).
    pub fn render(
        &self,
        ctx: &dyn TransformContext,
        context_vars: bool,
        captures: Option<&Captures>,
        escape: bool,
    ) -> String {
        self.render_mapped(ctx, context_vars, captures, escape, &|s| s.to_owned())
    }

    /// [`render`](Self::render), with the literal text passed through `literal` first (URL
    /// rewrites put the regex groups there, before the variables are filled in).
    pub(crate) fn render_mapped(
        &self,
        ctx: &dyn TransformContext,
        context_vars: bool,
        captures: Option<&Captures>,
        escape: bool,
        literal: &dyn Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            let value = match p {
                Piece::Literal(s) => {
                    out.push_str(&literal(s));
                    continue;
                }
                Piece::Context(ContextVar::Trigger(k)) => {
                    captures.and_then(|c| c.get(k)).cloned().unwrap_or_default()
                }
                Piece::Context(_) if !context_vars => String::new(),
                Piece::Context(var) => context_value(var, ctx).unwrap_or_default(),
                Piece::Meta(k) => ctx
                    .session_meta(k)
                    .map(tyk_value_string)
                    .unwrap_or_default(),
            };
            if escape && !value.starts_with("http") {
                out.push_str(&query_escape(&value));
            } else {
                out.push_str(&value);
            }
        }
        out
    }
}

fn context_value(var: &ContextVar, ctx: &dyn TransformContext) -> Option<String> {
    match var {
        ContextVar::RequestId => ctx.request_id().map(str::to_owned),
        ContextVar::RemoteAddr => ctx.remote_addr().map(str::to_owned),
        ContextVar::Path => Some(ctx.path().to_owned()),
        ContextVar::PathParts => Some(
            ctx.path()
                .split('/')
                .collect::<Vec<_>>()
                .join(",")
                .trim_start_matches(',')
                .to_owned(),
        ),
        ContextVar::Header(name) => {
            let values = ctx.header_values(name);
            (!values.is_empty()).then(|| values.join(","))
        }
        ContextVar::JwtClaim(name) => ctx.jwt_claim(name).map(tyk_value_string),
        ContextVar::Trigger(_) => None,
    }
}

const SECRET_LABELS: &[&str] = &[
    "$secret_conf.",
    "$secret_env.",
    "$secret_vault.",
    "$secret_consul.",
];

/// Parses the variable at the start of `s` (which starts with `$`): `(None, 1)` for a plain `$`.
fn parse_variable(
    s: &str,
    field: &str,
    triggers: bool,
) -> Result<(Option<Piece>, usize), ValidationError> {
    let refuse = |what: &str, why: &str| {
        Err(ValidationError::new(
            field,
            format!("{field}: {what} {why}"),
        ))
    };
    if let Some(label) = SECRET_LABELS.iter().find(|l| s.starts_with(**l)) {
        let name = key_at(&s[label.len()..]);
        return refuse(
            &format!("'{label}{name}'"),
            "is a Tyk secret reference; Gatehouse has no secret store to read it from and will \
             not send the reference itself: write the value, or remove the header",
        );
    }
    for (label, meta) in [("$tyk_context.", false), ("$tyk_meta.", true)] {
        let Some(after) = s.strip_prefix(label) else {
            continue;
        };
        let key = key_at(after);
        if key.is_empty() {
            return refuse(
                &format!("'{label}'"),
                "is not followed by a variable name, so Tyk would send it as it is: write \
                 e.g. $tyk_context.request_id",
            );
        }
        let text = format!("{label}{key}");
        let piece = if meta {
            Piece::Meta(key.to_owned())
        } else {
            Piece::Context(context_var(key, &text, field, triggers)?)
        };
        return Ok((Some(piece), text.len()));
    }
    if s.starts_with("$tyk_") || s.starts_with("$secret_") {
        let word: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "$_.-".contains(*c))
            .collect();
        return refuse(
            &format!("'{word}'"),
            "looks like a Tyk variable but is none Gatehouse knows: Gatehouse would send it as \
             it is; use $tyk_context.<name> or $tyk_meta.<key>",
        );
    }
    Ok((None, 1))
}

fn key_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .unwrap_or(s.len());
    &s[..end]
}

fn context_var(
    key: &str,
    text: &str,
    field: &str,
    triggers: bool,
) -> Result<ContextVar, ValidationError> {
    let var = match key {
        "request_id" => ContextVar::RequestId,
        "remote_addr" => ContextVar::RemoteAddr,
        "path" => ContextVar::Path,
        "path_parts" => ContextVar::PathParts,
        k if k.starts_with("headers_") && k.len() > 8 => {
            ContextVar::Header(canonical_header_name(&k[8..].replace('_', "-")))
        }
        k if k.starts_with("jwt_claims_") && k.len() > 11 => ContextVar::JwtClaim(k[11..].into()),
        k if k.starts_with("trigger-") && triggers => ContextVar::Trigger(k.to_owned()),
        k if k.starts_with("trigger-") => {
            return Err(ValidationError::new(
                field,
                format!(
                    "{field}: '{text}' is a URL rewrite capture, but Tyk transforms headers \
                     before it rewrites the URL, so it is always empty here: remove it"
                ),
            ));
        }
        _ => {
            return Err(ValidationError::new(
                field,
                format!(
                    "{field}: '{text}' is not a context variable Gatehouse fills in (it does \
                     request_id, remote_addr, path, path_parts, headers_<Name> and \
                     jwt_claims_<claim>), so it would be sent empty: remove it or use one of those"
                ),
            ));
        }
    };
    Ok(var)
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: the first letter and every letter after a `-` in upper
/// case, the others in lower case; a name with a byte that is not a header token character is
/// returned unchanged.
pub fn canonical_header_name(name: &str) -> String {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if !name.bytes().all(token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.bytes()
        .map(|b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            c as char
        })
        .collect()
}

/// How Tyk turns a context or metadata value into text (`valToStr`): a string as is; a number in
/// the shortest decimal form (no exponent); a list as its non-empty items, each query-escaped,
/// joined by `,`; anything else (`true`, objects, `null`) as the empty string.
pub fn tyk_value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format!("{f}"),
            _ => String::new(),
        },
        Value::Array(items) => items
            .iter()
            .map(tyk_value_string)
            .filter(|s| !s.is_empty())
            .map(|s| query_escape(&s))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every other byte
/// `%XX` in upper case.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A request for tests.
    #[derive(Default)]
    pub(crate) struct Req {
        pub path: String,
        pub query: Option<String>,
        pub headers: Vec<(String, String)>,
        pub claims: serde_json::Map<String, Value>,
        pub meta: serde_json::Map<String, Value>,
    }

    impl TransformContext for Req {
        fn request_id(&self) -> Option<&str> {
            Some("req-1")
        }
        fn remote_addr(&self) -> Option<&str> {
            Some("192.0.2.7")
        }
        fn path(&self) -> &str {
            &self.path
        }
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        }
        fn query(&self) -> Option<&str> {
            self.query.as_deref()
        }
        fn jwt_claim(&self, name: &str) -> Option<&Value> {
            self.claims.get(name)
        }
        fn session_meta(&self, key: &str) -> Option<&Value> {
            self.meta.get(key)
        }
    }

    fn req() -> Req {
        Req {
            path: "/api/users/7".into(),
            headers: vec![
                ("x-tenant".into(), "acme".into()),
                ("X-Tenant".into(), "beta".into()),
            ],
            claims: json!({"email": "a@b.c", "n": 5, "groups": ["a b", "c"], "ok": true})
                .as_object()
                .unwrap()
                .clone(),
            meta: json!({"tier": "gold"}).as_object().unwrap().clone(),
            ..Req::default()
        }
    }

    fn render(s: &str, vars: bool) -> String {
        ValueTemplate::parse(s, "f", false)
            .unwrap()
            .render(&req(), vars, None, false)
    }

    #[test]
    fn literals_stay_literal() {
        let t = ValueTemplate::parse("a $5 b$", "f", false).unwrap();
        assert_eq!(t.as_literal(), Some("a $5 b$"));
        assert_eq!(render("", true), "");
        assert!(!t.uses_context_vars());
    }

    #[test]
    fn context_variables_are_filled_in_when_enabled() {
        assert_eq!(
            render(
                "id=$tyk_context.request_id ip=$tyk_context.remote_addr",
                true
            ),
            "id=req-1 ip=192.0.2.7"
        );
        assert_eq!(render("$tyk_context.path", true), "/api/users/7");
        assert_eq!(render("$tyk_context.path_parts", true), "api,users,7");
        assert_eq!(render("$tyk_context.headers_X_Tenant", true), "acme,beta");
        assert_eq!(render("<$tyk_context.jwt_claims_email>", true), "<a@b.c>");
        assert_eq!(render("$tyk_context.jwt_claims_n", true), "5");
        assert_eq!(render("$tyk_context.jwt_claims_groups", true), "a+b,c");
        assert_eq!(render("$tyk_context.jwt_claims_ok", true), "");
        assert_eq!(render("$tyk_context.jwt_claims_missing", true), "");
        // Without enable_context_vars, Tyk has no context data: every variable is empty.
        assert_eq!(render("x$tyk_context.request_id", false), "x");
        // Session metadata does not depend on it.
        assert_eq!(render("$tyk_meta.tier/$tyk_meta.none", false), "gold/");
    }

    #[test]
    fn secrets_and_unknown_variables_are_refused() {
        for (v, word) in [
            ("Bearer $secret_env.TOKEN", "$secret_env.TOKEN"),
            ("$secret_conf.key", "$secret_conf.key"),
            ("$secret_vault.a/b", "$secret_vault.a"),
            ("$tyk_context.token", "$tyk_context.token"),
            ("$tyk_context.request_data", "request_data"),
            ("$tyk_context.cookies_session", "cookies_session"),
            ("$tyk_context.", "$tyk_context."),
            ("$tyk_contextX", "$tyk_contextX"),
            ("$secret_other.x", "$secret_other.x"),
        ] {
            let e = ValueTemplate::parse(v, "global_headers.X", false).unwrap_err();
            assert_eq!(e.field, "global_headers.X");
            assert!(e.message.contains(word), "{v}: {}", e.message);
        }
        let e = ValueTemplate::parse("$tyk_context.trigger-0-X-0", "f", false).unwrap_err();
        assert!(e.message.contains("before it rewrites"), "{}", e.message);
        assert!(ValueTemplate::parse("$tyk_context.trigger-0-X-0", "f", true).is_ok());
    }

    #[test]
    fn inserted_values_are_not_expanded_again() {
        let mut r = req();
        r.headers = vec![("X-Evil".into(), "$tyk_meta.tier".into())];
        let t = ValueTemplate::parse("$tyk_context.headers_X_Evil", "f", false).unwrap();
        assert_eq!(t.render(&r, true, None, false), "$tyk_meta.tier");
    }

    #[test]
    fn rewrite_values_are_escaped_unless_urls() {
        let mut caps = Captures::new();
        caps.insert("trigger-0-X-0".into(), "a b/c".into());
        caps.insert("trigger-0-U".into(), "http://x/y z".into());
        let t = ValueTemplate::parse("/p/$tyk_context.trigger-0-X-0", "f", true).unwrap();
        assert_eq!(t.render(&req(), false, Some(&caps), true), "/p/a+b%2Fc");
        let t = ValueTemplate::parse("$tyk_context.trigger-0-U", "f", true).unwrap();
        assert_eq!(t.render(&req(), false, Some(&caps), true), "http://x/y z");
        assert!(!t.uses_context_vars());
    }

    #[test]
    fn canonical_names_and_values_as_go() {
        assert_eq!(canonical_header_name("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header_name("CONTENT-TYPE"), "Content-Type");
        assert_eq!(canonical_header_name("bad name"), "bad name");
        assert_eq!(tyk_value_string(&json!(1.5)), "1.5");
        assert_eq!(tyk_value_string(&json!(1e21)), "1000000000000000000000");
        assert_eq!(tyk_value_string(&json!(["", "x&y"])), "x%26y");
        assert_eq!(tyk_value_string(&json!({"a": 1})), "");
        assert_eq!(query_escape("a b~*"), "a+b~%2A");
    }
}
