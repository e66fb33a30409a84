//! The endpoint rules of one API version, as Tyk's `VersionCheck` applies them: the legacy
//! `paths{ignored, white_list, black_list}` string lists, or (with `use_extended_paths`) the
//! `extended_paths` lists `ignored`, `white_list`, `black_list`, `mock_response` and `internal`,
//! plus the per-endpoint `size_limits` and `rate_limit` that later phases look up.
//!
//! # The check ([`EndpointRules::check`])
//! Tyk flattens a version's lists into one ordered list, `mock_response`, `ignored`, `black_list`,
//! `white_list` (legacy: `ignored`, `black_list`, `white_list`), and the **first entry whose path
//! and method match decides**:
//!
//! - `ignored` → [`EndpointVerdict::Ignored`]: no authentication; authorisation and the session's
//!   rate limit and quota are skipped too. The API's own `global_rate_limit` (or the per-endpoint
//!   `rate_limit`) and size limits still apply, as in Tyk;
//! - `black_list` → [`EndpointVerdict::Forbidden`]: 403 `Requested endpoint is forbidden`;
//! - `white_list` → [`EndpointVerdict::Pass`];
//! - a `method_actions` entry with `"action": "reply"`, or a `mock_response` entry →
//!   [`EndpointVerdict::Reply`]: the mock answer is sent at once, before authentication and
//!   without the upstream (Tyk answers it in `VersionCheck`, the first middleware);
//! - a `method_actions` entry with any action other than `no_action`/`reply` → forbidden (Tyk
//!   logs "URL Method Action was not set to NoAction, blocking.").
//!
//! No entry matched: forbidden when the version has at least one (enabled) `white_list` entry
//! ("white list mode"), else [`EndpointVerdict::Pass`]. Before all of this, an `internal` entry
//! whose path matches and whose `method` equals the request's makes the request forbidden: such
//! endpoints are only reachable through Tyk's internal looping, which Gatehouse does not have.
//!
//! Consequences worth knowing (all as in Tyk): a path listed in both `ignored` and `black_list` is
//! ignored (ignored comes first); a path in both `black_list` and `white_list` is forbidden; in
//! white list mode an `ignored` path is reachable (without authentication). A method is matched
//! exactly (`GET`, not `get`). An entry with `method` matches only that method, an entry with
//! `method_actions` only the methods listed there, an entry with neither matches every method.
//! Entries with `"disabled": true` do not exist.
//!
//! # Which path to pass
//! [`EndpointRules::check`] takes the request path **as Tyk holds it in `r.URL.Path`**: including
//! the listen path, percent-decoded ([`decode_path`](crate::pathmatch::decode_path)), cleaned
//! ([`clean_path`](crate::pathmatch::clean_path); Tyk answers 301 to an unclean path, never match
//! an unclean one), without the query string, and, for an API versioned by URL whose version
//! segment is stripped, with that segment already removed
//! ([`UrlVersion::path`](crate::versions::UrlVersion)). Like Tyk's `matchesPath`, each pattern is
//! tried against three forms of it: the path without the listen path and without a version
//! segment (only when `strip_versioning_data`/`strip_path` removes one), the path without the
//! listen path, and the path as given.
//!
//! # Matching and its holes
//! A pattern is prepared as Tyk's `PreparePathRegexp` does (`{id}` → `([^/]+)`, `/*` → `/.*`) and,
//! with Tyk's default options (no prefix or suffix matching, see
//! [`MatchOptions`]), **searched anywhere** in the path. That is
//! how Tyk behaves, and it leaves holes a definition author may not expect:
//!
//! - a `white_list` entry `/allowed` also allows `/admin/x/allowed` and `/allowed-not`;
//! - an `ignored` entry `/health` also skips authentication for `/admin/health` and
//!   `/healthcheck/secrets`;
//! - a `black_list` entry `^/admin` does not block `/api/v1/admin` on an API whose listen path is
//!   `/api/` and whose version is not stripped (the listen-path-less form is `/v1/admin`).
//!
//! Gatehouse matches exactly like Tyk, so a definition is never more open than there; write
//! anchored patterns (`^/allowed$`) or turn on prefix and suffix matching to close these holes.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ValidationError;
use crate::pathmatch::{MatchOptions, compile_path_pattern, strip_listen_path};

/// Tyk's message for a black-listed, not white-listed or internal endpoint (status 403).
pub const ENDPOINT_FORBIDDEN: &str = "Requested endpoint is forbidden";

/// What a version's endpoint rules decide for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointVerdict<'a> {
    /// Go on: authenticate, authorise, limit and proxy as usual.
    Pass,
    /// Skip authentication, authorisation and the session's rate limit and quota; the API-level
    /// rate limit, size limits and transforms still apply.
    Ignored,
    /// 403 [`ENDPOINT_FORBIDDEN`].
    Forbidden,
    /// Answer with this mock response now, before authentication, without the upstream.
    Reply(&'a MockReply),
}

impl EndpointVerdict<'_> {
    /// The HTTP status Tyk answers with when the request stops here (`None` to go on).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Pass | Self::Ignored => None,
            Self::Forbidden => Some(403),
            Self::Reply(r) => Some(r.code),
        }
    }
}

/// A mock answer (`method_actions.<METHOD>` with `"action": "reply"`, or a `mock_response` entry).
/// Tyk writes the headers as given (Go adds a sniffed `Content-Type` when none is set and the body
/// is not empty) and the body as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockReply {
    /// Status code, 100–599.
    pub code: u16,
    /// Response body.
    pub body: String,
    /// Response headers, in the definition's order (sorted by name).
    pub headers: Vec<(String, String)>,
}

/// A per-endpoint API rate limit (`extended_paths.rate_limit`): it **replaces** the API's
/// `global_rate_limit` for matching requests (Tyk's `RateLimitForAPI`), counted under its own key.
/// Not applied when the API has `disable_rate_limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRateLimit {
    /// Requests per window.
    pub rate: f64,
    /// Window in seconds.
    pub per: f64,
    /// `METHOD:path` of the entry, to keep the counter apart from the API-wide one (Tyk hashes
    /// the same string into the key).
    pub key: String,
}

/// How Tyk finds the version segment of a URL-versioned path, needed to build the path forms a
/// pattern is tried against. Shared by the versions of one API.
#[derive(Debug, Clone, Default)]
pub struct PathContext {
    /// The API's listen path, as stored (`/pay/`).
    pub listen_path: String,
    /// `definition.strip_versioning_data || definition.strip_path`.
    pub strip_version: bool,
    /// `definition.url_versioning_pattern`, compiled.
    pub url_versioning_pattern: Option<Regex>,
}

impl PathContext {
    /// Tyk's `StripVersionPath` on a listen-path-less path: the first segment is removed when
    /// stripping is on and the segment matches `url_versioning_pattern` (if any). Whatever the
    /// version location, as in Tyk.
    pub fn strip_version_segment<'p>(&self, clean: &'p str) -> std::borrow::Cow<'p, str> {
        if !self.strip_version {
            return clean.into();
        }
        let part = clean.trim_matches('/').split('/').next().unwrap_or("");
        if self
            .url_versioning_pattern
            .as_ref()
            .is_some_and(|re| !re.is_match(part))
        {
            return clean.into();
        }
        let needle = format!("/{part}/");
        if clean.contains(&needle) {
            clean.replacen(&needle, "/", 1).into()
        } else {
            clean.into()
        }
    }

    /// Tyk's `matchesPath`: does `re` match the path without listen path and version, the path
    /// without listen path, or the path as given?
    pub(crate) fn matches(&self, re: &Regex, path: &str) -> bool {
        let clean = strip_listen_path(&self.listen_path, path);
        let no_version = self.strip_version_segment(&clean);
        (no_version != clean && re.is_match(&no_version))
            || re.is_match(&clean)
            || re.is_match(path)
    }

    /// The path Tyk's limit lookups (`FindSpecMatchesStatus`) start from: the listen path removed
    /// once more unless it is `/` (then `matches` removes it again, as Tyk does).
    pub(crate) fn limit_path<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        if self.listen_path == "/" {
            path.into()
        } else {
            strip_listen_path(&self.listen_path, path)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Mock,
    Ignored,
    BlackList,
    WhiteList,
}

#[derive(Debug, Clone)]
enum Action {
    Proceed,
    Reply(MockReply),
    Block,
}

#[derive(Debug, Clone)]
enum Methods {
    /// Neither `method` nor `method_actions`: every method.
    Any,
    /// `method` (or a `mock_response` entry's method; empty never matches).
    One(String),
    /// `method_actions`: only the listed methods, each with its action.
    Actions(BTreeMap<String, Action>),
}

#[derive(Debug, Clone)]
struct Rule {
    kind: ListKind,
    regex: Regex,
    methods: Methods,
    mock: Option<MockReply>,
}

#[derive(Debug, Clone)]
struct MethodRule {
    regex: Regex,
    method: String,
}

#[derive(Debug, Clone)]
struct SizeRule {
    rule: MethodRule,
    limit: u64,
}

#[derive(Debug, Clone)]
struct RateRule {
    rule: MethodRule,
    limit: Option<EndpointRateLimit>,
}

/// A version's compiled endpoint rules. Built once per configuration snapshot by
/// [`VersionSet::compile`](crate::versions::VersionSet::compile); checking costs nothing when the
/// version has no rules.
#[derive(Debug, Clone, Default)]
pub struct EndpointRules {
    ctx: Arc<PathContext>,
    internal: Vec<MethodRule>,
    rules: Vec<Rule>,
    white_list: bool,
    size_limits: Vec<SizeRule>,
    rate_limits: Vec<RateRule>,
}

impl EndpointRules {
    /// Whether any rule can affect a request (checks can be skipped otherwise).
    pub fn is_empty(&self) -> bool {
        self.internal.is_empty()
            && self.rules.is_empty()
            && self.size_limits.is_empty()
            && self.rate_limits.is_empty()
    }

    /// Whether the version is in white list mode (anything not listed is forbidden).
    pub fn white_list_mode(&self) -> bool {
        self.white_list
    }

    /// Decides a request. `path` is the request path as described in the module docs (with the
    /// listen path, decoded, cleaned, version segment removed when stripped); `method` as sent.
    pub fn check(&self, path: &str, method: &str) -> EndpointVerdict<'_> {
        if self.internal.is_empty() && self.rules.is_empty() {
            return EndpointVerdict::Pass;
        }
        for r in &self.internal {
            if r.method == method && self.ctx.matches(&r.regex, path) {
                return EndpointVerdict::Forbidden;
            }
        }
        for r in &self.rules {
            if !self.ctx.matches(&r.regex, path) {
                continue;
            }
            match &r.methods {
                Methods::Actions(actions) => match actions.get(method) {
                    None => continue,
                    Some(Action::Proceed) => return r.verdict(),
                    Some(Action::Reply(reply)) => return EndpointVerdict::Reply(reply),
                    Some(Action::Block) => return EndpointVerdict::Forbidden,
                },
                Methods::One(m) if m != method => continue,
                Methods::One(_) | Methods::Any => return r.verdict(),
            }
        }
        if self.white_list {
            EndpointVerdict::Forbidden
        } else {
            EndpointVerdict::Pass
        }
    }

    /// The per-endpoint body limit in bytes (`extended_paths.size_limits`, first entry whose path
    /// and exact method match). The version's `global_size_limit` applies as well; the smaller
    /// wins. Same path as [`check`](Self::check).
    pub fn size_limit(&self, path: &str, method: &str) -> Option<u64> {
        if self.size_limits.is_empty() {
            return None;
        }
        let lp = self.ctx.limit_path(path);
        self.size_limits
            .iter()
            .find(|s| s.rule.method == method && self.ctx.matches(&s.rule.regex, &lp))
            .map(|s| s.limit)
    }

    /// The per-endpoint API rate limit (`extended_paths.rate_limit`) for a request: the first
    /// entry whose path and exact method match. `None`: the API's `global_rate_limit` applies
    /// (also when the matching entry is not valid in Tyk's sense: `per <= 0` or `rate == 0`).
    pub fn rate_limit(&self, path: &str, method: &str) -> Option<&EndpointRateLimit> {
        if self.rate_limits.is_empty() {
            return None;
        }
        let lp = self.ctx.limit_path(path);
        self.rate_limits
            .iter()
            .find(|r| r.rule.method == method && self.ctx.matches(&r.rule.regex, &lp))
            .and_then(|r| r.limit.as_ref())
    }

    /// Whether the version has per-endpoint rate limits (Tyk then runs its API rate limiter even
    /// without a `global_rate_limit`).
    pub fn has_rate_limits(&self) -> bool {
        self.rate_limits.iter().any(|r| r.limit.is_some())
    }
}

impl Rule {
    fn verdict(&self) -> EndpointVerdict<'_> {
        match self.kind {
            ListKind::Ignored => EndpointVerdict::Ignored,
            ListKind::BlackList => EndpointVerdict::Forbidden,
            ListKind::WhiteList => EndpointVerdict::Pass,
            ListKind::Mock => match &self.mock {
                Some(m) => EndpointVerdict::Reply(m),
                None => EndpointVerdict::Forbidden,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The wire shape (Tyk's apidef structs). Go's JSON decoder takes `null` for the zero value.

fn nd<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VersionPathsView {
    #[serde(deserialize_with = "nd")]
    use_extended_paths: bool,
    #[serde(deserialize_with = "nd")]
    ignore_endpoint_case: bool,
    #[serde(deserialize_with = "nd")]
    paths: LegacyPaths,
    #[serde(deserialize_with = "nd")]
    extended_paths: ExtendedPaths,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LegacyPaths {
    #[serde(deserialize_with = "nd")]
    ignored: Vec<String>,
    #[serde(deserialize_with = "nd")]
    white_list: Vec<String>,
    #[serde(deserialize_with = "nd")]
    black_list: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExtendedPaths {
    #[serde(deserialize_with = "nd")]
    ignored: Vec<EndPointMeta>,
    #[serde(deserialize_with = "nd")]
    white_list: Vec<EndPointMeta>,
    #[serde(deserialize_with = "nd")]
    black_list: Vec<EndPointMeta>,
    #[serde(deserialize_with = "nd")]
    mock_response: Vec<MockResponseMeta>,
    #[serde(deserialize_with = "nd")]
    internal: Vec<MethodPathMeta>,
    #[serde(deserialize_with = "nd")]
    size_limits: Vec<SizeLimitMeta>,
    #[serde(deserialize_with = "nd")]
    rate_limit: Vec<RateLimitMeta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndPointMeta {
    #[serde(deserialize_with = "nd")]
    disabled: bool,
    #[serde(deserialize_with = "nd")]
    path: String,
    #[serde(deserialize_with = "nd")]
    method: String,
    #[serde(deserialize_with = "nd")]
    ignore_case: bool,
    method_actions: Option<BTreeMap<String, EndpointMethodMeta>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndpointMethodMeta {
    #[serde(deserialize_with = "nd")]
    action: String,
    #[serde(deserialize_with = "nd")]
    code: i64,
    #[serde(deserialize_with = "nd")]
    data: String,
    #[serde(deserialize_with = "nd")]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MockResponseMeta {
    #[serde(deserialize_with = "nd")]
    disabled: bool,
    #[serde(deserialize_with = "nd")]
    path: String,
    #[serde(deserialize_with = "nd")]
    method: String,
    #[serde(deserialize_with = "nd")]
    ignore_case: bool,
    #[serde(deserialize_with = "nd")]
    code: i64,
    #[serde(deserialize_with = "nd")]
    body: String,
    #[serde(deserialize_with = "nd")]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MethodPathMeta {
    #[serde(deserialize_with = "nd")]
    disabled: bool,
    #[serde(deserialize_with = "nd")]
    path: String,
    #[serde(deserialize_with = "nd")]
    method: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SizeLimitMeta {
    #[serde(deserialize_with = "nd")]
    disabled: bool,
    #[serde(deserialize_with = "nd")]
    path: String,
    #[serde(deserialize_with = "nd")]
    method: String,
    #[serde(deserialize_with = "nd")]
    size_limit: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RateLimitMeta {
    #[serde(deserialize_with = "nd")]
    disabled: bool,
    #[serde(deserialize_with = "nd")]
    path: String,
    #[serde(deserialize_with = "nd")]
    method: String,
    #[serde(deserialize_with = "nd")]
    rate: f64,
    #[serde(deserialize_with = "nd")]
    per: f64,
}

// ---------------------------------------------------------------------------------------------
// Compilation.

/// Compiles the endpoint rules of one version. `version` is the version's JSON object and
/// `field` its dotted path (`version_data.versions.v1`), used to name the offending field in
/// errors. Refused (400): a pattern Go would not compile; an empty `path`; a method in lower case
/// (Tyk compares methods exactly, so `get` would never match and a black list entry would never
/// block); an entry with both `method` and `method_actions` (Tyk versions disagree on which wins);
/// an entry whose `method_actions` is an empty object (Tyk versions disagree on whether it matches
/// every method or none); a reply code outside 100–599; a negative size or rate limit; rules in
/// the list kind Tyk ignores for this version (`extended_paths` without `use_extended_paths`, or
/// `paths` with it), since which one Tyk applies would then hinge on a flag the author may not
/// have meant.
pub(crate) fn compile_version_rules(
    version: &Value,
    field: &str,
    ctx: Arc<PathContext>,
    opts: MatchOptions,
) -> Result<EndpointRules, ValidationError> {
    let view: VersionPathsView = serde_path_to_error::deserialize(version.clone())
        .map_err(|e| nested_serde_error(field, &e))?;
    let obj = version.as_object();
    let raw_ext = obj.and_then(|o| o.get("extended_paths"));
    let raw_paths = obj.and_then(|o| o.get("paths"));
    let mut rules = EndpointRules {
        ctx,
        ..EndpointRules::default()
    };
    if view.use_extended_paths {
        if raw_paths.is_some_and(crate::compat::has_active_value) {
            return Err(ValidationError::new(
                format!("{field}.paths"),
                format!(
                    "{field}.paths has rules but use_extended_paths is true, so Tyk ignores them: \
                     move them to extended_paths or remove them"
                ),
            ));
        }
        compile_extended(&view, field, opts, &mut rules)?;
    } else {
        if raw_ext.is_some_and(crate::compat::has_active_value) {
            return Err(ValidationError::new(
                format!("{field}.use_extended_paths"),
                format!(
                    "{field}.extended_paths has entries but use_extended_paths is false, so Tyk \
                     ignores them: set use_extended_paths to true or remove extended_paths"
                ),
            ));
        }
        compile_legacy(&view.paths, field, opts, &mut rules)?;
    }
    Ok(rules)
}

/// A deserialisation error inside the object at `field`, naming the nested field the way the
/// rest of Gatehouse does (`a.b.0.c`, not serde's `a.b[0].c`).
pub(crate) fn nested_serde_error(
    field: &str,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> ValidationError {
    let inner = ValidationError::from_serde(e);
    let msg = inner
        .message
        .strip_prefix(&format!("{}: ", inner.field))
        .unwrap_or(&inner.message);
    let mut nested = String::with_capacity(inner.field.len());
    for c in inner.field.chars() {
        match c {
            '[' => nested.push('.'),
            ']' => {}
            c => nested.push(c),
        }
    }
    let f = if nested.is_empty() {
        field.to_owned()
    } else {
        format!("{field}.{}", nested.trim_start_matches('.'))
    };
    ValidationError::new(f.clone(), format!("{f}: {msg}"))
}

fn compile_legacy(
    p: &LegacyPaths,
    field: &str,
    opts: MatchOptions,
    out: &mut EndpointRules,
) -> Result<(), ValidationError> {
    for (list, kind, entries) in [
        ("ignored", ListKind::Ignored, &p.ignored),
        ("black_list", ListKind::BlackList, &p.black_list),
        ("white_list", ListKind::WhiteList, &p.white_list),
    ] {
        for (i, path) in entries.iter().enumerate() {
            let f = format!("{field}.paths.{list}.{i}");
            let regex = pattern(path, false, opts, &f)?;
            out.rules.push(Rule {
                kind,
                regex,
                methods: Methods::Any,
                mock: None,
            });
            if kind == ListKind::WhiteList {
                out.white_list = true;
            }
        }
    }
    Ok(())
}

fn compile_extended(
    v: &VersionPathsView,
    field: &str,
    opts: MatchOptions,
    out: &mut EndpointRules,
) -> Result<(), ValidationError> {
    let ext = &v.extended_paths;
    let base = format!("{field}.extended_paths");
    let vcase = v.ignore_endpoint_case;

    for (i, m) in ext.mock_response.iter().enumerate() {
        if m.disabled {
            continue;
        }
        let f = format!("{base}.mock_response.{i}");
        let regex = pattern(&m.path, m.ignore_case || vcase, opts, &format!("{f}.path"))?;
        check_method(&m.method, &format!("{f}.method"))?;
        let reply = mock_reply(m.code, &m.body, &m.headers, &format!("{f}.code"))?;
        out.rules.push(Rule {
            kind: ListKind::Mock,
            regex,
            methods: Methods::One(m.method.clone()),
            mock: Some(reply),
        });
    }
    for (list, kind, entries) in [
        ("ignored", ListKind::Ignored, &ext.ignored),
        ("black_list", ListKind::BlackList, &ext.black_list),
        ("white_list", ListKind::WhiteList, &ext.white_list),
    ] {
        for (i, e) in entries.iter().enumerate() {
            if e.disabled {
                continue;
            }
            let f = format!("{base}.{list}.{i}");
            let regex = pattern(&e.path, e.ignore_case || vcase, opts, &format!("{f}.path"))?;
            let methods = entry_methods(e, &f)?;
            out.rules.push(Rule {
                kind,
                regex,
                methods,
                mock: None,
            });
            if kind == ListKind::WhiteList {
                out.white_list = true;
            }
        }
    }
    for (i, e) in ext.internal.iter().enumerate() {
        if e.disabled {
            continue;
        }
        let f = format!("{base}.internal.{i}");
        check_method(&e.method, &format!("{f}.method"))?;
        out.internal.push(MethodRule {
            regex: pattern(&e.path, false, opts, &format!("{f}.path"))?,
            method: e.method.clone(),
        });
    }
    for (i, e) in ext.size_limits.iter().enumerate() {
        if e.disabled {
            continue;
        }
        let f = format!("{base}.size_limits.{i}");
        check_method(&e.method, &format!("{f}.method"))?;
        let limit = u64::try_from(e.size_limit).map_err(|_| {
            ValidationError::new(
                format!("{f}.size_limit"),
                format!("{f}.size_limit must be a number of bytes, not negative"),
            )
        })?;
        out.size_limits.push(SizeRule {
            rule: MethodRule {
                regex: pattern(&e.path, false, opts, &format!("{f}.path"))?,
                method: e.method.clone(),
            },
            limit,
        });
    }
    for (i, e) in ext.rate_limit.iter().enumerate() {
        if e.disabled {
            continue;
        }
        let f = format!("{base}.rate_limit.{i}");
        check_method(&e.method, &format!("{f}.method"))?;
        if !e.rate.is_finite() || !e.per.is_finite() || e.rate < 0.0 || e.per < 0.0 {
            return Err(ValidationError::new(
                format!("{f}.rate"),
                format!("{f}.rate: rate and per must not be negative"),
            ));
        }
        // Tyk's RateLimitMeta.Valid: per > 0 and rate != 0, else the API-wide limit applies.
        let limit = (e.per > 0.0 && e.rate != 0.0).then(|| EndpointRateLimit {
            rate: e.rate,
            per: e.per,
            key: format!("{}:{}", e.method, e.path),
        });
        out.rate_limits.push(RateRule {
            rule: MethodRule {
                regex: pattern(&e.path, false, opts, &format!("{f}.path"))?,
                method: e.method.clone(),
            },
            limit,
        });
    }
    Ok(())
}

pub(crate) fn pattern(
    path: &str,
    ignore_case: bool,
    opts: MatchOptions,
    field: &str,
) -> Result<Regex, ValidationError> {
    if path.is_empty() {
        return Err(ValidationError::new(
            field,
            format!("{field} is empty; Tyk would match every path with it: write the path"),
        ));
    }
    compile_path_pattern(path, ignore_case, opts).map_err(|e| {
        ValidationError::new(
            field,
            format!("{field}: '{path}' is not a valid Tyk path pattern (Go regexp syntax): {e}"),
        )
    })
}

pub(crate) fn check_method(method: &str, field: &str) -> Result<(), ValidationError> {
    if method.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(ValidationError::new(
            field,
            format!(
                "{field}: methods are compared exactly, so '{method}' would never match a request: \
                 write '{}'",
                method.to_ascii_uppercase()
            ),
        ));
    }
    if method.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            field,
            format!("{field}: '{method}' is not an HTTP method"),
        ));
    }
    Ok(())
}

fn entry_methods(e: &EndPointMeta, f: &str) -> Result<Methods, ValidationError> {
    match &e.method_actions {
        Some(actions) if actions.is_empty() => Err(ValidationError::new(
            format!("{f}.method_actions"),
            format!(
                "{f}.method_actions is empty; Tyk versions disagree on whether that matches every \
                 method or none: list the methods or remove method_actions"
            ),
        )),
        Some(_) if !e.method.is_empty() => Err(ValidationError::new(
            format!("{f}.method"),
            format!(
                "{f}.method is set together with method_actions; Tyk versions disagree on which \
                 wins: keep one"
            ),
        )),
        Some(actions) => {
            let mut out = BTreeMap::new();
            for (m, meta) in actions {
                let mf = format!("{f}.method_actions.{m}");
                check_method(m, &mf)?;
                let action = match meta.action.as_str() {
                    "no_action" => Action::Proceed,
                    "reply" => Action::Reply(mock_reply(
                        meta.code,
                        &meta.data,
                        &meta.headers,
                        &format!("{mf}.code"),
                    )?),
                    _ => Action::Block,
                };
                out.insert(m.clone(), action);
            }
            Ok(Methods::Actions(out))
        }
        None => {
            check_method(&e.method, &format!("{f}.method"))?;
            Ok(if e.method.is_empty() {
                Methods::Any
            } else {
                Methods::One(e.method.clone())
            })
        }
    }
}

fn mock_reply(
    code: i64,
    body: &str,
    headers: &BTreeMap<String, String>,
    field: &str,
) -> Result<MockReply, ValidationError> {
    let code = u16::try_from(code)
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| {
            ValidationError::new(
                field,
                format!("{field}: {code} is not an HTTP status code (100-599)"),
            )
        })?;
    Ok(MockReply {
        code,
        body: body.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(listen_path: &str) -> Arc<PathContext> {
        Arc::new(PathContext {
            listen_path: listen_path.to_owned(),
            ..PathContext::default()
        })
    }

    fn rules(version: Value) -> EndpointRules {
        compile_version_rules(&version, "v", ctx("/api/"), MatchOptions::default())
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn ext(extended: Value) -> EndpointRules {
        rules(json!({"use_extended_paths": true, "extended_paths": extended}))
    }

    fn err(version: Value) -> ValidationError {
        compile_version_rules(&version, "v", ctx("/api/"), MatchOptions::default()).unwrap_err()
    }

    fn ma(methods: &[&str]) -> Value {
        let mut m = serde_json::Map::new();
        for x in methods {
            m.insert(
                (*x).to_owned(),
                json!({"action": "no_action", "code": 200, "data": "", "headers": {}}),
            );
        }
        Value::Object(m)
    }

    use EndpointVerdict::{Forbidden, Ignored, Pass};

    #[test]
    fn no_rules_pass_everything() {
        let r = rules(json!({"use_extended_paths": true}));
        assert!(r.is_empty());
        assert_eq!(r.check("/api/anything", "DELETE"), Pass);
    }

    #[test]
    fn black_list_forbids_listed_methods_only() {
        let r = ext(json!({"black_list": [{"path": "/admin", "method_actions": ma(&["GET"])}]}));
        assert_eq!(r.check("/api/admin", "GET"), Forbidden);
        assert_eq!(r.check("/api/admin", "POST"), Pass);
        assert_eq!(r.check("/api/users", "GET"), Pass);
        assert_eq!(Forbidden.status(), Some(403));
        // Unanchored, as Tyk's default: the pattern is found anywhere.
        assert_eq!(r.check("/api/v1/admin/x", "GET"), Forbidden);
        assert_eq!(r.check("/api/administrators", "GET"), Forbidden);
    }

    #[test]
    fn new_style_method_and_no_method() {
        let r = ext(json!({"black_list": [
            {"path": "/a", "method": "DELETE"},
            {"path": "/b"}
        ]}));
        assert_eq!(r.check("/api/a", "DELETE"), Forbidden);
        assert_eq!(r.check("/api/a", "GET"), Pass);
        assert_eq!(r.check("/api/b", "PATCH"), Forbidden);
    }

    #[test]
    fn white_list_mode_forbids_everything_unlisted() {
        let r = ext(json!({"white_list": [
            {"path": "/users/{id}", "method_actions": ma(&["GET"])}
        ]}));
        assert!(r.white_list_mode());
        assert_eq!(r.check("/api/users/7", "GET"), Pass);
        assert_eq!(r.check("/api/users/7", "DELETE"), Forbidden);
        assert_eq!(r.check("/api/orders", "GET"), Forbidden);
        // The documented hole: unanchored, so a longer path containing the pattern passes.
        assert_eq!(r.check("/api/admin/users/7", "GET"), Pass);
    }

    #[test]
    fn anchored_options_close_the_hole() {
        let opts = MatchOptions {
            prefix: true,
            suffix: true,
            ignore_case: false,
        };
        let v = json!({"use_extended_paths": true, "extended_paths": {"white_list": [
            {"path": "/users/{id}", "method": "GET"}
        ]}});
        let r = compile_version_rules(&v, "v", ctx("/api/"), opts).unwrap();
        assert_eq!(r.check("/api/users/7", "GET"), Pass);
        assert_eq!(r.check("/api/admin/users/7", "GET"), Forbidden);
        assert_eq!(r.check("/api/users/7/x", "GET"), Forbidden);
    }

    #[test]
    fn disabled_entries_do_not_exist() {
        let r = ext(json!({"white_list": [{"path": "/x", "disabled": true}],
            "black_list": [{"path": "/y", "disabled": true}]}));
        assert!(!r.white_list_mode());
        assert_eq!(r.check("/api/y", "GET"), Pass);
        assert_eq!(r.check("/api/z", "GET"), Pass);
    }

    #[test]
    fn first_match_wins_in_tyk_order() {
        // ignored before black_list before white_list.
        let r = ext(json!({
            "ignored": [{"path": "/both"}],
            "black_list": [{"path": "/both"}, {"path": "/bw"}],
            "white_list": [{"path": "/bw"}, {"path": "/open"}]
        }));
        assert_eq!(r.check("/api/both", "GET"), Ignored);
        assert_eq!(r.check("/api/bw", "GET"), Forbidden);
        assert_eq!(r.check("/api/open", "GET"), Pass);
        assert_eq!(r.check("/api/other", "GET"), Forbidden);
    }

    #[test]
    fn ignored_paths_in_white_list_mode_are_reachable() {
        let r = ext(json!({
            "ignored": [{"path": "^/health$", "method_actions": ma(&["GET"])}],
            "white_list": [{"path": "^/items$"}]
        }));
        assert_eq!(r.check("/api/health", "GET"), Ignored);
        assert_eq!(r.check("/api/health", "POST"), Forbidden);
        assert_eq!(r.check("/api/items", "GET"), Pass);
    }

    #[test]
    fn method_action_reply_and_unknown_actions() {
        let r = ext(json!({"white_list": [{"path": "/mock", "method_actions": {
            "GET": {"action": "reply", "code": 418, "data": "{\"tea\":1}",
                    "headers": {"X-A": "1", "Content-Type": "application/json"}},
            "POST": {"action": "teleport", "code": 200, "data": "", "headers": {}}
        }}]}));
        let EndpointVerdict::Reply(reply) = r.check("/api/mock", "GET") else {
            panic!("expected a reply")
        };
        assert_eq!(reply.code, 418);
        assert_eq!(reply.body, "{\"tea\":1}");
        assert_eq!(
            reply.headers,
            vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-A".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(r.check("/api/mock", "GET").status(), Some(418));
        assert_eq!(r.check("/api/mock", "POST"), Forbidden);
        assert_eq!(r.check("/api/mock", "PUT"), Forbidden, "white list mode");
    }

    #[test]
    fn mock_response_comes_first_and_needs_its_method() {
        let r = ext(json!({
            "mock_response": [{"path": "/m", "method": "GET", "code": 200, "body": "hi",
                               "headers": {}}],
            "black_list": [{"path": "/m"}]
        }));
        assert!(matches!(r.check("/api/m", "GET"), EndpointVerdict::Reply(m) if m.body == "hi"));
        assert_eq!(r.check("/api/m", "POST"), Forbidden);
    }

    #[test]
    fn internal_endpoints_are_forbidden_from_outside() {
        let r = ext(json!({"internal": [{"path": "/private", "method": "GET"},
                                        {"path": "/nomethod", "method": ""}],
                           "ignored": [{"path": "/private"}]}));
        assert_eq!(r.check("/api/private", "GET"), Forbidden, "before ignored");
        assert_eq!(r.check("/api/private", "POST"), Ignored);
        // An internal entry without a method never matches in Tyk either.
        assert_eq!(r.check("/api/nomethod", "GET"), Pass);
    }

    #[test]
    fn ignore_case_from_entry_version_or_gateway() {
        let r = ext(json!({"black_list": [{"path": "/Admin", "ignore_case": true}]}));
        assert_eq!(r.check("/api/ADMIN", "GET"), Forbidden);
        let r = rules(
            json!({"use_extended_paths": true, "ignore_endpoint_case": true,
            "extended_paths": {"black_list": [{"path": "/Admin"}]}}),
        );
        assert_eq!(r.check("/api/admin", "GET"), Forbidden);
        let r = ext(json!({"black_list": [{"path": "/Admin"}]}));
        assert_eq!(
            r.check("/api/admin", "GET"),
            Pass,
            "case-sensitive by default"
        );
        let v = json!({"use_extended_paths": true,
            "extended_paths": {"black_list": [{"path": "/Admin"}]}});
        let gw = MatchOptions {
            ignore_case: true,
            ..MatchOptions::default()
        };
        let r = compile_version_rules(&v, "v", ctx("/api/"), gw).unwrap();
        assert_eq!(r.check("/api/admin", "GET"), Forbidden);
    }

    #[test]
    fn patterns_see_three_forms_of_the_path() {
        // Anchored pattern: matches the listen-path-less form.
        let r = ext(json!({"black_list": [{"path": "^/admin"}]}));
        assert_eq!(r.check("/api/admin", "GET"), Forbidden);
        // ... and the full path (a pattern written with the listen path).
        let r = ext(json!({"black_list": [{"path": "^/api/secret"}]}));
        assert_eq!(r.check("/api/secret", "GET"), Forbidden);
        // The documented hole: a version segment that is not stripped stays in the path.
        let r = ext(json!({"black_list": [{"path": "^/admin"}]}));
        assert_eq!(r.check("/api/v1/admin", "GET"), Pass);
        // With stripping on, the version-less form is tried too.
        let strip = Arc::new(PathContext {
            listen_path: "/api/".to_owned(),
            strip_version: true,
            url_versioning_pattern: None,
        });
        let v = json!({"use_extended_paths": true,
            "extended_paths": {"black_list": [{"path": "^/admin"}]}});
        let r = compile_version_rules(&v, "v", strip, MatchOptions::default()).unwrap();
        assert_eq!(r.check("/api/v1/admin", "GET"), Forbidden);
    }

    #[test]
    fn url_versioning_pattern_limits_which_segment_is_stripped() {
        let c = PathContext {
            listen_path: "/api/".to_owned(),
            strip_version: true,
            url_versioning_pattern: Some(Regex::new("^v[0-9]+$").unwrap()),
        };
        assert_eq!(c.strip_version_segment("/v2/users"), "/users");
        assert_eq!(c.strip_version_segment("/users/v2"), "/users/v2");
        assert_eq!(c.strip_version_segment("/v2"), "/v2", "no trailing segment");
    }

    #[test]
    fn legacy_paths_lists() {
        let r = rules(json!({"use_extended_paths": false, "paths": {
            "ignored": ["/health"], "black_list": ["/health", "/admin"], "white_list": ["/items"]
        }}));
        assert_eq!(r.check("/api/health", "GET"), Ignored);
        assert_eq!(r.check("/api/admin", "POST"), Forbidden);
        assert_eq!(r.check("/api/items/1", "PUT"), Pass);
        assert_eq!(r.check("/api/other", "GET"), Forbidden);
    }

    #[test]
    fn the_other_kind_of_list_is_refused_not_ignored() {
        let e = err(json!({"use_extended_paths": false,
            "extended_paths": {"black_list": [{"path": "/x"}]}}));
        assert_eq!(e.field, "v.use_extended_paths");
        let e = err(json!({"use_extended_paths": true, "paths": {"black_list": ["/x"]}}));
        assert_eq!(e.field, "v.paths");
        // Empty defaults, as in every Tyk export, are fine.
        rules(json!({"use_extended_paths": true,
            "paths": {"ignored": [], "white_list": [], "black_list": []}}));
        rules(json!({"use_extended_paths": false, "paths": null,
            "extended_paths": {"black_list": [{"path": "/x", "disabled": true}]}}));
    }

    #[test]
    fn bad_entries_are_refused_naming_the_field() {
        let cases = [
            (
                json!({"black_list": [{"path": "("}]}),
                "v.extended_paths.black_list.0.path",
            ),
            (
                json!({"white_list": [{"path": ""}]}),
                "v.extended_paths.white_list.0.path",
            ),
            (
                json!({"black_list": [{"path": "/a", "method": "get"}]}),
                "v.extended_paths.black_list.0.method",
            ),
            (
                json!({"black_list": [{"path": "/a", "method_actions": ma(&["get"])}]}),
                "v.extended_paths.black_list.0.method_actions.get",
            ),
            (
                json!({"black_list": [{"path": "/a", "method": "GET",
                                        "method_actions": ma(&["GET"])}]}),
                "v.extended_paths.black_list.0.method",
            ),
            (
                json!({"black_list": [{"path": "/a", "method_actions": {}}]}),
                "v.extended_paths.black_list.0.method_actions",
            ),
            (
                json!({"black_list": [{"path": "/a", "method": "GET", "method_actions": {}}]}),
                "v.extended_paths.black_list.0.method_actions",
            ),
            (
                json!({"internal": [{"path": "/a", "method": "Get"}]}),
                "v.extended_paths.internal.0.method",
            ),
            (
                json!({"white_list": [{"path": "/a", "method_actions": {"GET":
                    {"action": "reply", "code": 0, "data": "", "headers": {}}}}]}),
                "v.extended_paths.white_list.0.method_actions.GET.code",
            ),
            (
                json!({"mock_response": [{"path": "/a", "method": "GET", "code": 1000}]}),
                "v.extended_paths.mock_response.0.code",
            ),
            (
                json!({"size_limits": [{"path": "/a", "method": "POST", "size_limit": -1}]}),
                "v.extended_paths.size_limits.0.size_limit",
            ),
            (
                json!({"rate_limit": [{"path": "/a", "method": "POST", "rate": -1, "per": 1}]}),
                "v.extended_paths.rate_limit.0.rate",
            ),
            (
                json!({"black_list": [{"path": 5}]}),
                "v.extended_paths.black_list.0.path",
            ),
        ];
        for (extended, field) in cases {
            let e = err(json!({"use_extended_paths": true, "extended_paths": extended}));
            assert_eq!(e.field, field, "{e:?}");
            assert!(e.message.starts_with(field), "{e:?}");
        }
    }

    #[test]
    fn nulls_are_go_zero_values() {
        let r = ext(
            json!({"black_list": [{"path": "/x", "method": null, "method_actions": null,
                                            "ignore_case": null}],
                           "white_list": null}),
        );
        assert_eq!(r.check("/api/x", "GET"), Forbidden);
    }

    #[test]
    fn size_and_rate_limits_per_endpoint() {
        let r = ext(json!({
            "size_limits": [{"path": "/upload", "method": "POST", "size_limit": 1024},
                            {"path": "/upload", "method": "PUT", "size_limit": 0}],
            "rate_limit": [{"path": "/search", "method": "GET", "rate": 5, "per": 60},
                           {"path": "/bad", "method": "GET", "rate": 0, "per": 60}]
        }));
        assert_eq!(r.size_limit("/api/upload", "POST"), Some(1024));
        assert_eq!(r.size_limit("/api/upload", "PUT"), Some(0));
        assert_eq!(r.size_limit("/api/upload", "GET"), None);
        let rl = r.rate_limit("/api/search", "GET").unwrap();
        assert_eq!(
            (rl.rate, rl.per, rl.key.as_str()),
            (5.0, 60.0, "GET:/search")
        );
        assert!(r.rate_limit("/api/search", "POST").is_none());
        assert!(
            r.rate_limit("/api/bad", "GET").is_none(),
            "invalid entry: global applies"
        );
        assert!(r.has_rate_limits());
        // Limits are not endpoint verdicts.
        assert_eq!(r.check("/api/upload", "POST"), Pass);
    }

    #[test]
    fn limit_lookups_strip_the_listen_path_twice_as_tyk() {
        // Tyk's FindSpecMatchesStatus strips the listen path, then matchesPath strips it again.
        let r = ext(json!({"size_limits": [{"path": "^/x$", "method": "POST",
                                            "size_limit": 1}]}));
        assert_eq!(r.size_limit("/api/api/x", "POST"), Some(1));
        assert_eq!(r.size_limit("/api/x", "POST"), Some(1));
    }
}
