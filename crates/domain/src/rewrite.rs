//! Tyk's URL rewrites (`extended_paths.url_rewrites`), as `URLRewriteMiddleware` applies them.
//!
//! An entry applies to the requests its `path` and `method` match (like the other per-endpoint
//! entries, see [`crate::traffic`]). Then, as Tyk's `urlRewrite` does:
//!
//! 1. **Triggers**, in order: each trigger checks its options (`header_matches`,
//!    `query_val_matches`, `path_part_matches`, `session_meta_matches`; each value is searched with
//!    the option's `match_rx`, `reverse` inverts it). With `"on": "any"` the first option kind that
//!    matches picks the trigger; with `"on": "all"` every option kind that has entries must match
//!    (and, as in Tyk, a kind "matches" once it has at least as many matching *values* as it has
//!    entries). The first trigger picked replaces `rewrite_to` by its own. Matches are stored as
//!    captures, keyed as Tyk keys them: `trigger-<n>-<Header-Name>-<i>` (i: the value's index),
//!    `trigger-<n>-<param>-<i>`, `trigger-<n>-<name>-<k>` (path parts, k counting matches),
//!    `trigger-<n>-<meta key>`; each regex group `g` adds `-<g>` (from 0). Captures of triggers
//!    that were checked but not picked are kept too, as in Tyk.
//! 2. **The match**: `match_pattern` (Go regexp, not a Tyk path pattern) is searched in the
//!    request URL as Tyk's `r.URL.String()` gives it: the path *with* the listen path, then `?`
//!    and the raw query when there is one. No match and the URL holds `%`: it is tried again
//!    percent-decoded. Still no match: the URL stays as it was.
//! 3. **The result**: `rewrite_to` (or the trigger's) with `$0`…`$n` replaced by the groups of the
//!    first match (Tyk replaces each `$n` token found, in order, everywhere; an unknown group is
//!    empty), then the variables of [`crate::template`] filled in, query-escaped unless they start
//!    with `http` (`$tyk_context.trigger-…` captures are always available, other context
//!    variables only with `enable_context_vars`).
//!
//! The result replaces the whole URL, query included (Tyk does not keep the original query unless
//! the pattern captured it). A result with a scheme (`http://other/x`) sends the request to that
//! host instead of the target; a relative one replaces the path and query, and the listen path is
//! then stripped (with `strip_listen_path`) and the target joined as for any request.
//!
//! Refused when saved: `request_context_matches` and `payload_matches` (Gatehouse would have to
//! read the body or Tyk's plugin context), `tyk://` targets (looping to other APIs), any other
//! scheme than http or https, an `on` other than `any`/`all`, and patterns Go would not compile.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use crate::error::ValidationError;
use crate::pathmatch::{decode_path, go_regex, query_values};
use crate::template::{Captures, TransformContext, ValueTemplate, canonical_header_name};

/// One compiled `url_rewrites` entry (without its path and method, which [`crate::traffic`]
/// matches).
#[derive(Debug, Clone)]
pub struct UrlRewrite {
    match_pattern: Regex,
    rewrite_to: Target,
    triggers: Vec<Trigger>,
}

#[derive(Debug, Clone)]
struct Target {
    template: ValueTemplate,
    /// The `$n` tokens of the raw text, in order.
    groups: Vec<String>,
}

#[derive(Debug, Clone)]
struct Matcher {
    re: Regex,
    reverse: bool,
}

impl Matcher {
    /// Tyk's `StringRegexMap.FindStringSubmatch`: `(matched, groups)`; with `reverse` it matched
    /// when the regex did not (and there are no groups).
    fn find(&self, value: &str) -> (bool, Vec<String>) {
        let groups: Vec<String> = self
            .re
            .captures(value)
            .map(|c| {
                c.iter()
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        (groups.is_empty() == self.reverse, groups)
    }
}

#[derive(Debug, Clone)]
struct Trigger {
    any: bool,
    headers: Vec<(String, Matcher)>,
    query: Vec<(String, Matcher)>,
    path_parts: Vec<(String, Matcher)>,
    session_meta: Vec<(String, Matcher)>,
    rewrite_to: Target,
}

/// A rewritten URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The new URL: absolute (`https://host/path?q`) or a path with an optional query.
    pub url: String,
    /// Whether `url` has a scheme: the request then goes to that host, not to the target. The
    /// gateway must refuse (500) a scheme other than http or https, which a variable could
    /// produce at run time.
    pub absolute: bool,
}

/// Why a rewrite could not be made (Tyk answers 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteError(pub String);

impl UrlRewrite {
    /// Rewrites `url` (the request's `r.URL.String()`: path with the listen path, and `?query`
    /// when there is one). `context_vars` is the API's `enable_context_vars`. Returns the new URL
    /// and the trigger captures (which later variables may use).
    pub fn apply(
        &self,
        url: &str,
        ctx: &dyn TransformContext,
        context_vars: bool,
    ) -> Result<(Rewritten, Captures), RewriteError> {
        let mut captures = Captures::new();
        let mut target = &self.rewrite_to;
        for (n, t) in self.triggers.iter().enumerate() {
            if t.check(n, ctx, &mut captures) {
                target = &t.rewrite_to;
                break;
            }
        }
        let mut groups = self.first_match(url);
        if groups.is_none() && url.contains('%') {
            let decoded = decode_path(url)
                .ok_or_else(|| RewriteError(format!("failed to decode URL path: {url}")))?;
            groups = self.first_match(&decoded);
        }
        let new = match groups {
            Some(groups) => {
                let replace = |lit: &str| {
                    let mut s = lit.to_owned();
                    for token in &target.groups {
                        let idx: usize = token[1..].parse().unwrap_or(usize::MAX);
                        let value = groups.get(idx).map_or("", String::as_str);
                        s = s.replace(token.as_str(), value);
                    }
                    s
                };
                target
                    .template
                    .render_mapped(ctx, context_vars, Some(&captures), true, &replace)
            }
            None => url.to_owned(),
        };
        let absolute = has_scheme(&new);
        Ok((Rewritten { url: new, absolute }, captures))
    }

    fn first_match(&self, s: &str) -> Option<Vec<String>> {
        self.match_pattern.captures(s).map(|c| {
            c.iter()
                .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
                .collect()
        })
    }
}

impl Trigger {
    fn check(&self, n: usize, ctx: &dyn TransformContext, caps: &mut Captures) -> bool {
        let mut set = 0;
        let mut total = 0;
        let mut kinds: Vec<bool> = Vec::with_capacity(4);
        if !self.headers.is_empty() {
            total += 1;
            kinds.push(self.check_headers(n, ctx, caps));
            if self.any && kinds[kinds.len() - 1] {
                return true;
            }
        }
        if !self.query.is_empty() {
            total += 1;
            kinds.push(self.check_query(n, ctx, caps));
            if self.any && kinds[kinds.len() - 1] {
                return true;
            }
        }
        if !self.path_parts.is_empty() {
            total += 1;
            kinds.push(self.check_path_parts(n, ctx, caps));
            if self.any && kinds[kinds.len() - 1] {
                return true;
            }
        }
        if !self.session_meta.is_empty() {
            total += 1;
            kinds.push(self.check_meta(n, ctx, caps));
            if self.any && kinds[kinds.len() - 1] {
                return true;
            }
        }
        set += kinds.iter().filter(|k| **k).count();
        !self.any && set == total
    }

    /// Tyk's result of one option kind: any match with `any`, else at least as many matching
    /// values as entries.
    fn outcome(&self, found: usize, entries: usize) -> bool {
        found > 0 && (self.any || entries <= found)
    }

    fn check_headers(&self, n: usize, ctx: &dyn TransformContext, caps: &mut Captures) -> bool {
        let mut found = 0;
        for (name, m) in &self.headers {
            for (i, v) in ctx.header_values(name).iter().enumerate() {
                let (hit, groups) = m.find(v);
                if hit {
                    add_capture(caps, &format!("trigger-{n}-{name}-{i}"), &groups);
                    found += 1;
                }
            }
        }
        self.outcome(found, self.headers.len())
    }

    fn check_query(&self, n: usize, ctx: &dyn TransformContext, caps: &mut Captures) -> bool {
        let mut found = 0;
        let query = ctx.query().unwrap_or("");
        for (name, m) in &self.query {
            for (i, v) in query_values(query, name).iter().enumerate() {
                let (hit, groups) = m.find(v);
                if hit {
                    add_capture(caps, &format!("trigger-{n}-{name}-{i}"), &groups);
                    found += 1;
                }
            }
        }
        self.outcome(found, self.query.len())
    }

    fn check_path_parts(&self, n: usize, ctx: &dyn TransformContext, caps: &mut Captures) -> bool {
        let mut found = 0;
        for (name, m) in &self.path_parts {
            for part in ctx.path().split('/') {
                let (hit, groups) = m.find(part);
                if hit {
                    add_capture(caps, &format!("trigger-{n}-{name}-{found}"), &groups);
                    found += 1;
                }
            }
        }
        self.outcome(found, self.path_parts.len())
    }

    fn check_meta(&self, n: usize, ctx: &dyn TransformContext, caps: &mut Captures) -> bool {
        let mut found = 0;
        for (key, m) in &self.session_meta {
            if let Some(serde_json::Value::String(v)) = ctx.session_meta(key) {
                let (hit, groups) = m.find(v);
                if hit {
                    add_capture(caps, &format!("trigger-{n}-{key}"), &groups);
                    found += 1;
                }
            }
        }
        self.outcome(found, self.session_meta.len())
    }
}

/// Tyk's `addMatchToContextData`: the whole match under the key, each group under `key-<g>`.
fn add_capture(caps: &mut Captures, key: &str, groups: &[String]) {
    let Some((whole, rest)) = groups.split_first() else {
        return;
    };
    caps.insert(key.to_owned(), whole.clone());
    for (g, v) in rest.iter().enumerate() {
        caps.insert(format!("{key}-{g}"), v.clone());
    }
}

fn has_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
    })
}

// ---------------------------------------------------------------------------------------------
// The wire shape.

fn nd<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `url_rewrites` entry fields other than `path`, `method` and `disabled`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UrlRewriteMeta {
    #[serde(deserialize_with = "nd")]
    match_pattern: String,
    #[serde(deserialize_with = "nd")]
    rewrite_to: String,
    #[serde(deserialize_with = "nd")]
    triggers: Vec<TriggerMeta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TriggerMeta {
    #[serde(deserialize_with = "nd")]
    on: String,
    #[serde(deserialize_with = "nd")]
    options: TriggerOptions,
    #[serde(deserialize_with = "nd")]
    rewrite_to: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TriggerOptions {
    #[serde(deserialize_with = "nd")]
    header_matches: BTreeMap<String, RegexMap>,
    #[serde(deserialize_with = "nd")]
    query_val_matches: BTreeMap<String, RegexMap>,
    #[serde(deserialize_with = "nd")]
    path_part_matches: BTreeMap<String, RegexMap>,
    #[serde(deserialize_with = "nd")]
    session_meta_matches: BTreeMap<String, RegexMap>,
    #[serde(deserialize_with = "nd")]
    request_context_matches: BTreeMap<String, RegexMap>,
    #[serde(deserialize_with = "nd")]
    payload_matches: RegexMap,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RegexMap {
    #[serde(deserialize_with = "nd")]
    match_rx: String,
    #[serde(deserialize_with = "nd")]
    reverse: bool,
}

impl UrlRewriteMeta {
    /// Compiles the entry at `field` (see the module docs for what is refused).
    pub(crate) fn compile(&self, field: &str) -> Result<UrlRewrite, ValidationError> {
        let match_pattern = regex_at(&self.match_pattern, &format!("{field}.match_pattern"))?;
        let rewrite_to = target(&self.rewrite_to, &format!("{field}.rewrite_to"))?;
        let mut triggers = Vec::with_capacity(self.triggers.len());
        for (i, t) in self.triggers.iter().enumerate() {
            let f = format!("{field}.triggers.{i}");
            let any = match t.on.as_str() {
                "any" => true,
                "all" => false,
                other => {
                    return Err(ValidationError::new(
                        format!("{f}.on"),
                        format!("{f}.on is '{other}': write \"any\" or \"all\""),
                    ));
                }
            };
            let o = &t.options;
            let fo = format!("{f}.options");
            if !o.request_context_matches.is_empty() {
                return Err(refused(
                    &fo,
                    "request_context_matches",
                    "Tyk's plugin context",
                ));
            }
            if !o.payload_matches.match_rx.is_empty() || o.payload_matches.reverse {
                return Err(refused(&fo, "payload_matches", "the request body"));
            }
            let list = |m: &BTreeMap<String, RegexMap>, kind: &str, canon: bool| {
                m.iter()
                    .map(|(k, v)| {
                        let key = if canon {
                            canonical_header_name(k)
                        } else {
                            k.clone()
                        };
                        let re = regex_at(&v.match_rx, &format!("{fo}.{kind}.{k}.match_rx"))?;
                        Ok((
                            key,
                            Matcher {
                                re,
                                reverse: v.reverse,
                            },
                        ))
                    })
                    .collect::<Result<Vec<_>, ValidationError>>()
            };
            triggers.push(Trigger {
                any,
                headers: list(&o.header_matches, "header_matches", true)?,
                query: list(&o.query_val_matches, "query_val_matches", false)?,
                path_parts: list(&o.path_part_matches, "path_part_matches", false)?,
                session_meta: list(&o.session_meta_matches, "session_meta_matches", false)?,
                rewrite_to: target(&t.rewrite_to, &format!("{f}.rewrite_to"))?,
            });
        }
        Ok(UrlRewrite {
            match_pattern,
            rewrite_to,
            triggers,
        })
    }
}

fn refused(field: &str, kind: &str, what: &str) -> ValidationError {
    let f = format!("{field}.{kind}");
    ValidationError::new(
        f.clone(),
        format!(
            "{f}: triggers on {what} are not implemented, so the rewrite would never be picked \
             by it: remove it or trigger on headers, query parameters, path parts or session \
             metadata"
        ),
    )
}

fn regex_at(p: &str, field: &str) -> Result<Regex, ValidationError> {
    go_regex(p).map_err(|e| {
        ValidationError::new(
            field,
            format!("{field}: '{p}' is not a valid regular expression (Go syntax): {e}"),
        )
    })
}

fn target(raw: &str, field: &str) -> Result<Target, ValidationError> {
    if raw.starts_with("tyk://") {
        return Err(ValidationError::new(
            field,
            format!(
                "{field}: '{raw}' loops to another API (tyk://), which Gatehouse does not do: \
                 rewrite to a path or an http(s) URL"
            ),
        ));
    }
    if has_scheme(raw) && !raw.starts_with("http://") && !raw.starts_with("https://") {
        return Err(ValidationError::new(
            field,
            format!("{field}: '{raw}' must be a path or an http:// or https:// URL"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    let groups = raw
        .match_indices('$')
        .filter_map(|(i, _)| {
            let digits: String = raw[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then(|| format!("${digits}"))
        })
        .collect();
    Ok(Target {
        template: ValueTemplate::parse(raw, field, true)?,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::Req;
    use serde_json::{Value, json};

    fn rw(v: Value) -> UrlRewrite {
        let m: UrlRewriteMeta = serde_json::from_value(v).unwrap();
        m.compile("r").unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn err(v: Value) -> ValidationError {
        let m: UrlRewriteMeta = serde_json::from_value(v).unwrap();
        m.compile("r").unwrap_err()
    }

    fn req(path: &str) -> Req {
        Req {
            path: path.into(),
            ..Req::default()
        }
    }

    fn apply(r: &UrlRewrite, url: &str, ctx: &Req) -> String {
        r.apply(url, ctx, false).unwrap().0.url
    }

    #[test]
    fn groups_replace_dollar_tokens() {
        let r = rw(json!({"match_pattern": "/api/users/(\\w+)/(\\w+)",
                          "rewrite_to": "/v2/$2/of/$1?full=$0"}));
        assert_eq!(
            apply(&r, "/api/users/7/posts", &req("/api/users/7/posts")),
            "/v2/posts/of/7?full=/api/users/7/posts"
        );
        // No match: the URL stays.
        assert_eq!(apply(&r, "/api/other", &req("/api/other")), "/api/other");
        // An unknown group is empty; Tyk replaces `$1` inside `$10` too.
        let r = rw(json!({"match_pattern": "/a/(x)", "rewrite_to": "/b/$1/$3/$10"}));
        assert_eq!(apply(&r, "/a/x", &req("/a/x")), "/b/x//x0");
        // The whole URL is replaced, the query included, unless it is captured.
        let r = rw(json!({"match_pattern": "^/a/(.*)", "rewrite_to": "/b/$1"}));
        assert_eq!(apply(&r, "/a/x?q=1", &req("/a/x")), "/b/x?q=1");
        let r = rw(json!({"match_pattern": "^/a/([^?]*)", "rewrite_to": "/b/$1"}));
        assert_eq!(apply(&r, "/a/x?q=1", &req("/a/x")), "/b/x");
    }

    #[test]
    fn escaped_urls_are_retried_decoded() {
        let r = rw(json!({"match_pattern": "/files/(a b)", "rewrite_to": "/f/$1"}));
        assert_eq!(apply(&r, "/files/a%20b", &req("/files/a b")), "/f/a b");
        assert!(r.apply("/files/%zz", &req("/"), false).is_err());
    }

    #[test]
    fn absolute_targets_change_the_host() {
        let r = rw(json!({"match_pattern": ".*", "rewrite_to": "https://other.example/x"}));
        let (out, _) = r.apply("/a", &req("/a"), false).unwrap();
        assert_eq!(
            out,
            Rewritten {
                url: "https://other.example/x".into(),
                absolute: true
            }
        );
    }

    #[test]
    fn header_triggers_any_and_their_captures() {
        let r = rw(
            json!({"match_pattern": "/api/(.*)", "rewrite_to": "/default/$1",
            "triggers": [{"on": "any", "options": {"header_matches": {
                "x-tenant": {"match_rx": "^(\\w+)-(\\d+)$"}}},
                "rewrite_to": "/tenants/$tyk_context.trigger-0-X-Tenant-0-0/$1"}]}),
        );
        let mut ctx = req("/api/items");
        ctx.headers = vec![("X-Tenant".into(), "acme-42".into())];
        let (out, caps) = r.apply("/api/items", &ctx, false).unwrap();
        assert_eq!(out.url, "/tenants/acme/items");
        assert_eq!(caps["trigger-0-X-Tenant-0"], "acme-42");
        assert_eq!(caps["trigger-0-X-Tenant-0-1"], "42");
        // No header: the entry's own rewrite_to.
        assert_eq!(
            apply(&r, "/api/items", &req("/api/items")),
            "/default/items"
        );
    }

    #[test]
    fn all_needs_every_kind_and_reverse_inverts() {
        let r = rw(json!({"match_pattern": ".*", "rewrite_to": "/plain",
        "triggers": [
            {"on": "all", "options": {
                "query_val_matches": {"beta": {"match_rx": "^1$"}},
                "path_part_matches": {"num": {"match_rx": "^\\d+$"}}},
             "rewrite_to": "/beta/$tyk_context.trigger-0-num-0"},
            {"on": "any", "options": {
                "header_matches": {"X-Internal": {"match_rx": "yes", "reverse": true}}},
             "rewrite_to": "/public"}
        ]}));
        let mut ctx = req("/api/7");
        ctx.query = Some("beta=1".into());
        assert_eq!(apply(&r, "/api/7?beta=1", &ctx), "/beta/7");
        ctx.query = Some("beta=2".into());
        // The first trigger fails (query), the second picks: the header is absent... and absent
        // means no value to match, so reverse has nothing to invert either.
        assert_eq!(apply(&r, "/api/7?beta=2", &ctx), "/plain");
        ctx.headers = vec![("x-internal".into(), "no".into())];
        assert_eq!(apply(&r, "/api/7?beta=2", &ctx), "/public");
        ctx.headers = vec![("x-internal".into(), "yes".into())];
        assert_eq!(apply(&r, "/api/7?beta=2", &ctx), "/plain");
    }

    #[test]
    fn session_meta_triggers_and_escaping() {
        let r = rw(json!({"match_pattern": ".*", "rewrite_to": "/x",
            "triggers": [{"on": "any", "options": {"session_meta_matches": {
                "region": {"match_rx": ".+"}}},
                "rewrite_to": "/r/$tyk_context.trigger-0-region?m=$tyk_meta.note"}]}));
        let mut ctx = req("/a");
        ctx.meta = json!({"region": "eu west", "note": "a&b"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(apply(&r, "/a", &ctx), "/r/eu+west?m=a%26b");
        // Keyless (no session): the trigger cannot match.
        assert_eq!(apply(&r, "/a", &req("/a")), "/x");
    }

    #[test]
    fn an_all_trigger_without_options_always_picks() {
        let r = rw(json!({"match_pattern": ".*", "rewrite_to": "/x",
            "triggers": [{"on": "all", "options": {}, "rewrite_to": "/y"}]}));
        assert_eq!(apply(&r, "/a", &req("/a")), "/y");
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        let cases = [
            (
                json!({"match_pattern": "(", "rewrite_to": "/"}),
                "r.match_pattern",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "tyk://other/x"}),
                "r.rewrite_to",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "ftp://x/"}),
                "r.rewrite_to",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "/$secret_env.X"}),
                "r.rewrite_to",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "/", "triggers": [{"on": "some",
                    "options": {}, "rewrite_to": "/"}]}),
                "r.triggers.0.on",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "/", "triggers": [{"on": "any",
                    "options": {"payload_matches": {"match_rx": "x"}}, "rewrite_to": "/"}]}),
                "r.triggers.0.options.payload_matches",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "/", "triggers": [{"on": "any",
                    "options": {"request_context_matches": {"k": {"match_rx": "x"}}},
                    "rewrite_to": "/"}]}),
                "r.triggers.0.options.request_context_matches",
            ),
            (
                json!({"match_pattern": ".*", "rewrite_to": "/", "triggers": [{"on": "any",
                    "options": {"header_matches": {"X": {"match_rx": "("}}},
                    "rewrite_to": "/"}]}),
                "r.triggers.0.options.header_matches.X.match_rx",
            ),
        ];
        for (v, field) in cases {
            let e = err(v);
            assert_eq!(e.field, field, "{e:?}");
        }
        // Empty payload_matches, as Tyk exports it, is fine.
        rw(
            json!({"match_pattern": ".*", "rewrite_to": "/", "triggers": [{"on": "any",
            "options": {"payload_matches": {"match_rx": ""}, "request_context_matches": {}},
            "rewrite_to": "/"}]}),
        );
    }
}
