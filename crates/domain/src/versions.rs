//! API versions as Tyk's `VersionCheck` resolves them: `version_data` (`not_versioned`,
//! `default_version`, `versions`) and `definition` (where a request names its version), compiled
//! once per configuration snapshot into a [`VersionSet`].
//!
//! # Resolving a request (the gateway's "version" phase)
//! 1. [`VersionSet::requested`]: the version the request names (header, query parameter or the
//!    first path segment after the listen path), and what to strip from the request;
//! 2. [`VersionSet::select`]: the version that serves it, or Tyk's 403:
//!    - not versioned (`not_versioned: true`): the only version, else the one named `Default`,
//!      `default` or `""` (a definition where that is missing or ambiguous is refused when saved;
//!      a definition without any version gets an empty `Default`); the API-level `expiration` is
//!      checked → [`VersionError::ApiExpired`];
//!    - versioned: the named version, else `default_version`; none → [`VersionError::NotFound`];
//!      unknown → [`VersionError::DoesNotExist`] (or the default version with
//!      `definition.fallback_to_default`); then the version's `expires` →
//!      [`VersionError::Expired`]. The API-level `expiration` is **not** checked for a versioned
//!      API, and a version's `expires` not for a non-versioned one: Tyk checks exactly one of them.
//! 3. the selected [`ApiVersion`]'s [`endpoints`](ApiVersion::endpoints) decide the path (see
//!    [`crate::endpoints`]);
//! 4. after authentication, the policy's `access_rights[api].versions` is checked with
//!    [`VersionSet::access_rights_version`] (Tyk compares the *requested* name, not the resolved
//!    one).
//!
//! All version errors are 403 with Tyk's messages. Dates use Tyk's layout `2006-01-02 15:04`
//! (UTC); `""` and `"-1"` mean never. Tyk treats any other unparseable date as already expired;
//! Gatehouse refuses such a definition when it is saved, naming the field.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::api::ApiDefinition;
use crate::endpoints::{EndpointRules, PathContext, compile_version_rules, nested_serde_error};
use crate::error::ValidationError;
use crate::pathmatch::{MatchOptions, first_query_value, go_regex, strip_listen_path};
use crate::traffic::{TrafficRules, compile_traffic};

/// Tyk's message when a versioned API's request names no version and there is no default.
pub const VERSION_NOT_FOUND: &str = "Version information not found";
/// Tyk's message for a version the API does not have.
pub const VERSION_DOES_NOT_EXIST: &str = "This API version does not seem to exist";
/// Tyk's message for a version past its `expires`.
pub const VERSION_EXPIRED: &str =
    "Api Version has expired, please check documentation or contact administrator";
/// Tyk's message for a non-versioned API past its `expiration`.
pub const API_EXPIRED: &str =
    "API has expired, please check documentation or contact administrator";

/// Why a request has no version to be served by. Always 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionError {
    /// [`VERSION_NOT_FOUND`].
    NotFound,
    /// [`VERSION_DOES_NOT_EXIST`].
    DoesNotExist,
    /// [`VERSION_EXPIRED`].
    Expired,
    /// [`API_EXPIRED`].
    ApiExpired,
}

impl VersionError {
    /// The HTTP status: 403, as in Tyk.
    pub fn status(&self) -> u16 {
        403
    }

    /// Tyk's public message.
    pub fn message(&self) -> &'static str {
        match self {
            Self::NotFound => VERSION_NOT_FOUND,
            Self::DoesNotExist => VERSION_DOES_NOT_EXIST,
            Self::Expired => VERSION_EXPIRED,
            Self::ApiExpired => API_EXPIRED,
        }
    }
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for VersionError {}

/// Where a versioned API reads the version (`definition.location` and `definition.key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionLocation {
    /// `not_versioned: true`: the request is not looked at.
    NotVersioned,
    /// `header`: the first value of this header.
    Header(String),
    /// `url-param`: the first value of this query parameter.
    QueryParam(String),
    /// `url`: the first path segment after the listen path (and after `/<slug>`).
    Url,
    /// Any other location, or a header/parameter without a name: no request names a version
    /// (the default version serves it, if there is one).
    Nowhere,
}

/// What a request names and what must be stripped from it before it goes on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested<'s> {
    /// The version the request names; `None` when it names none (an empty value counts as none).
    pub name: Option<String>,
    /// For `url` versioning with `strip_versioning_data`/`strip_path`: the request path without
    /// the version segment. Use it from here on, for the endpoint rules and the upstream.
    pub path: Option<String>,
    /// `strip_versioning_data` with `header` versioning: remove this header before proxying.
    pub remove_header: Option<&'s str>,
    /// `strip_versioning_data` with `url-param` versioning: remove this query parameter before
    /// proxying (Tyk re-encodes the query with its keys sorted).
    pub remove_query_param: Option<&'s str>,
}

/// What a policy's `access_rights[api].versions` must contain for a versioned API (Tyk's
/// `AccessRightsCheck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionGrantCheck<'a> {
    /// The requested version name, else `default_version`.
    pub target: &'a str,
    /// With `fallback_to_default`, granting the default version also grants any other name.
    pub or_default: Option<&'a str>,
}

impl VersionGrantCheck<'_> {
    /// Whether a policy granting `granted` allows the request. As in Tyk, an empty list grants
    /// nothing on a versioned API.
    pub fn allows(&self, granted: &[String]) -> bool {
        granted.iter().any(|g| g == self.target)
            || self
                .or_default
                .is_some_and(|d| granted.iter().any(|g| g == d))
    }
}

/// One version of an API, compiled.
#[derive(Debug, Clone, Default)]
pub struct ApiVersion {
    name: String,
    expires_at: Option<i64>,
    override_target: Option<String>,
    global_size_limit: Option<u64>,
    headers_set: Vec<(String, String)>,
    headers_remove: Vec<String>,
    endpoints: EndpointRules,
    traffic: TrafficRules,
}

impl ApiVersion {
    /// The version's name (its key in `version_data.versions`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `expires` as Unix seconds; `None` never expires.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// `override_target`: send this version's requests to this URL instead of
    /// `proxy.target_url`.
    pub fn override_target(&self) -> Option<&str> {
        self.override_target.as_deref()
    }

    /// `global_size_limit` in bytes (`None` when 0 or `global_size_limit_disabled`).
    pub fn global_size_limit(&self) -> Option<u64> {
        self.global_size_limit
    }

    /// The body limit for a request: the smaller of `global_size_limit` and the first matching
    /// `extended_paths.size_limits` entry (Tyk checks both). Path as for
    /// [`EndpointRules::check`].
    pub fn request_size_limit(&self, path: &str, method: &str) -> Option<u64> {
        match (
            self.global_size_limit,
            self.endpoints.size_limit(path, method),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `global_headers` to set on the request before proxying (after removing
    /// [`request_headers_to_remove`](Self::request_headers_to_remove)); empty with
    /// `global_headers_disabled`. Applied to every request of the version, ignored paths included.
    pub fn request_headers_to_set(&self) -> &[(String, String)] {
        &self.headers_set
    }

    /// `global_headers_remove`: headers to delete from the request before proxying.
    pub fn request_headers_to_remove(&self) -> &[String] {
        &self.headers_remove
    }

    /// The version's endpoint rules.
    pub fn endpoints(&self) -> &EndpointRules {
        &self.endpoints
    }

    /// The version's traffic settings: header transforms, URL rewrites, hard timeouts, circuit
    /// breakers and method transforms ([`crate::traffic`]).
    pub fn traffic(&self) -> &TrafficRules {
        &self.traffic
    }
}

/// An API's versions and how requests name them, compiled from its definition.
#[derive(Debug, Clone)]
pub struct VersionSet {
    not_versioned: bool,
    versions: BTreeMap<String, ApiVersion>,
    default_version: String,
    unversioned: String,
    location: VersionLocation,
    fallback_to_default: bool,
    strip_versioning_data: bool,
    slug: String,
    ctx: Arc<PathContext>,
    api_expires_at: Option<i64>,
}

fn nd<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VersionInfoView {
    #[serde(deserialize_with = "nd")]
    name: String,
    #[serde(deserialize_with = "nd")]
    expires: String,
    #[serde(deserialize_with = "nd")]
    override_target: String,
    #[serde(deserialize_with = "nd")]
    global_size_limit: i64,
    #[serde(deserialize_with = "nd")]
    global_size_limit_disabled: bool,
    #[serde(deserialize_with = "nd")]
    global_headers: BTreeMap<String, String>,
    #[serde(deserialize_with = "nd")]
    global_headers_remove: Vec<String>,
    #[serde(deserialize_with = "nd")]
    global_headers_disabled: bool,
}

impl VersionSet {
    /// Compiles the versions of `def` (and their endpoint rules, with the gateway's matching
    /// `opts`). Everything [`validate_api`](crate::api::validate_api) accepts compiles; an error
    /// here on a stored definition means it predates a rule, and the gateway must refuse to serve
    /// the API rather than serve it without its restrictions.
    pub fn compile(def: &ApiDefinition, opts: MatchOptions) -> Result<Self, ValidationError> {
        let vd = &def.version_data;
        let dd = &def.definition;
        let pattern = if dd.url_versioning_pattern.is_empty() {
            None
        } else {
            Some(go_regex(&dd.url_versioning_pattern).map_err(|e| {
                ValidationError::new(
                    "definition.url_versioning_pattern",
                    format!(
                        "definition.url_versioning_pattern: '{}' is not a valid regular \
                         expression: {e}",
                        dd.url_versioning_pattern
                    ),
                )
            })?)
        };
        let ctx = Arc::new(PathContext {
            listen_path: def.proxy.listen_path.clone(),
            strip_version: dd.strip_versioning_data || dd.strip_path,
            url_versioning_pattern: pattern,
        });
        let api_expires_at = parse_expiry(&def.expiration)
            .map_err(|m| ValidationError::new("expiration", format!("expiration: {m}")))?;

        let mut versions = BTreeMap::new();
        let mut unnamed_with_rules = Vec::new();
        let mut unnamed = 0;
        for (key, raw) in &vd.versions {
            let field = format!("version_data.versions.{key}");
            let view: VersionInfoView = serde_path_to_error::deserialize(raw.clone())
                .map_err(|e| nested_serde_error(&field, &e))?;
            let mut version = compile_version(key, &field, &view, raw, ctx.clone(), opts)?;
            version.traffic =
                compile_traffic(key, raw, &field, ctx.clone(), opts, def.enable_context_vars)?;
            if view.name.is_empty() {
                unnamed += 1;
                if !version.endpoints.is_empty() {
                    unnamed_with_rules.push(field.clone());
                }
            } else if view.name != *key {
                return Err(ValidationError::new(
                    format!("{field}.name"),
                    format!(
                        "{field}.name is '{}' but the version's key is '{key}': Tyk looks the \
                         endpoint rules up by name, so they must be equal",
                        view.name
                    ),
                ));
            }
            versions.insert(key.clone(), version);
        }
        if unnamed > 1 && !unnamed_with_rules.is_empty() {
            let f = format!("{}.name", unnamed_with_rules[0]);
            return Err(ValidationError::new(
                f.clone(),
                format!(
                    "{f} is empty while other versions have no name either: Tyk would apply the \
                     endpoint rules of one of them to all; set each name to its key"
                ),
            ));
        }

        let mut unversioned = String::new();
        if vd.not_versioned {
            if versions.is_empty() {
                versions.insert(
                    "Default".to_owned(),
                    ApiVersion {
                        name: "Default".to_owned(),
                        endpoints: EndpointRules::default(),
                        ..ApiVersion::default()
                    },
                );
                unversioned = "Default".to_owned();
            } else if versions.len() == 1 {
                unversioned = versions.keys().next().cloned().unwrap_or_default();
            } else {
                let defaults: Vec<&str> = ["Default", "default", ""]
                    .into_iter()
                    .filter(|k| versions.contains_key(*k))
                    .collect();
                match defaults.as_slice() {
                    [one] => unversioned = (*one).to_owned(),
                    [] => {
                        return Err(ValidationError::new(
                            "version_data.versions",
                            "version_data.not_versioned is true and there are several versions, \
                             none named Default: Tyk answers every request with 403 \"No default \
                             API version for this non-versioned API found\"; keep one version or \
                             name one Default",
                        ));
                    }
                    _ => {
                        return Err(ValidationError::new(
                            "version_data.versions",
                            "version_data.not_versioned is true and more than one version is \
                             named Default, default or \"\": Tyk answers every request with 403 \
                             \"Ambiguous default API version for this non-versioned API\"; keep \
                             one",
                        ));
                    }
                }
            }
        }

        let location = if vd.not_versioned {
            VersionLocation::NotVersioned
        } else {
            match (dd.location.as_str(), dd.key.is_empty()) {
                ("header", false) => VersionLocation::Header(dd.key.clone()),
                ("url-param", false) => VersionLocation::QueryParam(dd.key.clone()),
                ("url", _) => VersionLocation::Url,
                _ => VersionLocation::Nowhere,
            }
        };

        Ok(Self {
            not_versioned: vd.not_versioned,
            versions,
            default_version: vd.default_version.clone(),
            unversioned,
            location,
            fallback_to_default: dd.fallback_to_default,
            strip_versioning_data: dd.strip_versioning_data,
            slug: def.slug.clone(),
            ctx,
            api_expires_at,
        })
    }

    /// Whether requests name a version (`not_versioned` is false). Pass the version to the
    /// policy check only then.
    pub fn is_versioned(&self) -> bool {
        !self.not_versioned
    }

    /// Where requests name the version.
    pub fn location(&self) -> &VersionLocation {
        &self.location
    }

    /// The version by name.
    pub fn get(&self, name: &str) -> Option<&ApiVersion> {
        self.versions.get(name)
    }

    /// All versions, by name.
    pub fn versions(&self) -> impl Iterator<Item = &ApiVersion> {
        self.versions.values()
    }

    /// The version that serves every request of a non-versioned API (`None` for a versioned
    /// one). [`select`](Self::select) also checks the API's `expiration`; this does not.
    pub fn unversioned(&self) -> Option<&ApiVersion> {
        if self.not_versioned {
            self.versions.get(&self.unversioned)
        } else {
            None
        }
    }

    /// The API-level `expiration` as Unix seconds (checked only for non-versioned APIs).
    pub fn api_expires_at(&self) -> Option<i64> {
        self.api_expires_at
    }

    /// What the request names and what to strip from it (step 1). `path` is the decoded, cleaned
    /// request path including the listen path; `query` the raw query string; `header` looks a
    /// request header up by name (first value). A non-versioned API names nothing.
    pub fn requested<'h>(
        &self,
        path: &str,
        query: Option<&str>,
        header: impl FnOnce(&str) -> Option<&'h str>,
    ) -> Requested<'_> {
        let non_empty = |s: Option<String>| s.filter(|v| !v.is_empty());
        match &self.location {
            VersionLocation::NotVersioned | VersionLocation::Nowhere => Requested::default(),
            VersionLocation::Header(key) => Requested {
                name: non_empty(header(key).map(str::to_owned)),
                remove_header: self.strip_versioning_data.then_some(key.as_str()),
                ..Requested::default()
            },
            VersionLocation::QueryParam(key) => Requested {
                name: non_empty(query.and_then(|q| first_query_value(q, key))),
                remove_query_param: self.strip_versioning_data.then_some(key.as_str()),
                ..Requested::default()
            },
            VersionLocation::Url => match self.url_version(path) {
                Some(u) => Requested {
                    name: Some(u.name),
                    path: u.path,
                    ..Requested::default()
                },
                None => Requested::default(),
            },
        }
    }

    /// For `url` versioning: the first non-empty segment after the listen path and after
    /// `/<slug>` (Tyk's quirk: a literal prefix, so a slug `abc` also trims `/abcdef`), and, when
    /// `strip_versioning_data` or `strip_path` is on and the segment matches
    /// `url_versioning_pattern` (if set), the path without it. Tyk removes the first occurrence of
    /// `<segment>/` anywhere in the path; a version segment with no `/` after it (`/api/v1`) is
    /// not removed.
    pub fn url_version(&self, path: &str) -> Option<UrlVersion> {
        if self.location != VersionLocation::Url {
            return None;
        }
        let stripped = strip_listen_path(&self.ctx.listen_path, path);
        let slug_prefix = format!("/{}", self.slug);
        let rest = stripped
            .strip_prefix(slug_prefix.as_str())
            .unwrap_or(&stripped);
        let part = rest.split('/').find(|p| !p.is_empty())?;
        let matches = self
            .ctx
            .url_versioning_pattern
            .as_ref()
            .is_none_or(|re| re.is_match(part));
        let new_path = (self.ctx.strip_version && matches)
            .then(|| path.replacen(&format!("{part}/"), "", 1))
            .filter(|p| p != path);
        Some(UrlVersion {
            name: part.to_owned(),
            path: new_path,
        })
    }

    /// The version that serves a request naming `named` at `now_unix` (step 2).
    pub fn select(&self, named: Option<&str>, now_unix: i64) -> Result<&ApiVersion, VersionError> {
        if self.not_versioned {
            let v = self
                .versions
                .get(&self.unversioned)
                .ok_or(VersionError::DoesNotExist)?;
            if self.api_expires_at.is_some_and(|t| now_unix >= t) {
                return Err(VersionError::ApiExpired);
            }
            return Ok(v);
        }
        let name = match named.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None if self.default_version.is_empty() => return Err(VersionError::NotFound),
            None => self.default_version.as_str(),
        };
        let version = match self.versions.get(name) {
            Some(v) => v,
            None if self.fallback_to_default => self
                .versions
                .get(&self.default_version)
                .ok_or(VersionError::DoesNotExist)?,
            None => return Err(VersionError::DoesNotExist),
        };
        if version.expires_at.is_some_and(|t| now_unix >= t) {
            return Err(VersionError::Expired);
        }
        Ok(version)
    }

    /// What the policy must grant (step 4): `None` for a non-versioned API (no version check).
    pub fn access_rights_version<'a>(
        &'a self,
        requested: Option<&'a str>,
    ) -> Option<VersionGrantCheck<'a>> {
        if self.not_versioned {
            return None;
        }
        let target = requested
            .filter(|n| !n.is_empty())
            .unwrap_or(self.default_version.as_str());
        let or_default = (self.fallback_to_default && target != self.default_version)
            .then_some(self.default_version.as_str());
        Some(VersionGrantCheck { target, or_default })
    }

    /// Tyk's `x-tyk-api-expires` response header for a served version: the API's `expiration`
    /// if set, else the version's `expires`, in RFC 1123 format (`Mon, 02 Jan 2006 15:04:05
    /// UTC`).
    pub fn expires_header(&self, version: &ApiVersion) -> Option<String> {
        self.api_expires_at
            .or(version.expires_at)
            .map(format_rfc1123)
    }
}

/// A version read from the path ([`VersionSet::url_version`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlVersion {
    /// The version segment.
    pub name: String,
    /// The path without it, when it is stripped.
    pub path: Option<String>,
}

fn compile_version(
    key: &str,
    field: &str,
    view: &VersionInfoView,
    raw: &Value,
    ctx: Arc<PathContext>,
    opts: MatchOptions,
) -> Result<ApiVersion, ValidationError> {
    let expires_at = parse_expiry(&view.expires).map_err(|m| {
        ValidationError::new(format!("{field}.expires"), format!("{field}.expires: {m}"))
    })?;
    let override_target = if view.override_target.is_empty() {
        None
    } else {
        crate::api::validate_target_url(&view.override_target).map_err(|m| {
            ValidationError::new(
                format!("{field}.override_target"),
                format!("{field}.override_target: {m}"),
            )
        })?;
        Some(view.override_target.clone())
    };
    let global_size_limit = u64::try_from(view.global_size_limit).map_err(|_| {
        ValidationError::new(
            format!("{field}.global_size_limit"),
            format!("{field}.global_size_limit must be a number of bytes (0 for no limit)"),
        )
    })?;
    let (headers_set, headers_remove) = if view.global_headers_disabled {
        (Vec::new(), Vec::new())
    } else {
        for (name, value) in &view.global_headers {
            let f = format!("{field}.global_headers.{name}");
            check_header_name(name, &f)?;
            if value.contains("$tyk_") || value.contains("$secret_") {
                return Err(ValidationError::new(
                    f.clone(),
                    format!(
                        "{f}: Tyk replaces $tyk_context, $tyk_meta and $secret_ variables in \
                         header values; Gatehouse does not, so the header would carry the \
                         placeholder: use a literal value"
                    ),
                ));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(ValidationError::new(
                    f.clone(),
                    format!("{f}: a header value must not contain control characters"),
                ));
            }
        }
        for (i, name) in view.global_headers_remove.iter().enumerate() {
            check_header_name(name, &format!("{field}.global_headers_remove.{i}"))?;
        }
        (
            view.global_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            view.global_headers_remove.clone(),
        )
    };
    let endpoints = compile_version_rules(raw, field, ctx, opts)?;
    Ok(ApiVersion {
        name: key.to_owned(),
        expires_at,
        override_target,
        global_size_limit: (global_size_limit > 0 && !view.global_size_limit_disabled)
            .then_some(global_size_limit),
        headers_set,
        headers_remove,
        endpoints,
        traffic: TrafficRules::default(),
    })
}

pub(crate) fn check_header_name(name: &str, field: &str) -> Result<(), ValidationError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(ValidationError::new(
            field,
            format!("{field}: '{name}' is not a valid header name"),
        ));
    }
    Ok(())
}

/// Reads a Tyk expiry (`expires`, `expiration`): `""` and `"-1"` never expire, anything else
/// must be `YYYY-MM-DD HH:MM` in UTC ([`parse_tyk_time`]).
pub fn parse_expiry(s: &str) -> Result<Option<i64>, String> {
    if s.is_empty() || s == "-1" {
        return Ok(None);
    }
    parse_tyk_time(s).map(Some).ok_or_else(|| {
        format!(
            "'{s}' is not a date in Tyk's format \"2006-01-02 15:04\" (UTC); Tyk treats it as \
             already expired: write e.g. \"2030-12-31 23:59\", or \"\" for never"
        )
    })
}

/// Parses Go's layout `2006-01-02 15:04` exactly as `time.Parse` does: a four-digit year, two-digit
/// month, day and minute, a one- or two-digit hour, nothing before or after, day within its month.
/// Returns Unix seconds (UTC).
pub fn parse_tyk_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 15 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let (hour, rest) = if b.get(12) == Some(&b':') {
        (num(11..12)?, 13)
    } else if b.get(13) == Some(&b':') {
        (num(11..13)?, 14)
    } else {
        return None;
    };
    if b.len() != rest + 2 {
        return None;
    }
    let minute = num(rest..rest + 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats Unix seconds as Go's `time.RFC1123` in UTC: `Mon, 02 Jan 2006 15:04:05 UTC`.
pub fn format_rfc1123(ts: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0)];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::endpoints::EndpointVerdict;

    fn def(extra: Value) -> ApiDefinition {
        let mut base = json!({
            "name": "A", "api_id": "a",
            "proxy": {"listen_path": "/api/", "target_url": "http://127.0.0.1:9"}
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        ApiDefinition::from_stored(&base).unwrap()
    }

    fn set(extra: Value) -> VersionSet {
        VersionSet::compile(&def(extra), MatchOptions::default())
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn compile_err(extra: Value) -> ValidationError {
        VersionSet::compile(&def(extra), MatchOptions::default()).unwrap_err()
    }

    const T2030: i64 = 1_924_991_940; // 2030-12-31 23:59 UTC

    fn versioned(location: &str, key: &str) -> Value {
        json!({
            "definition": {"location": location, "key": key},
            "version_data": {"not_versioned": false, "default_version": "", "versions": {
                "v1": {"name": "v1", "expires": ""},
                "v2": {"name": "v2", "expires": "2030-12-31 23:59"}
            }}
        })
    }

    #[test]
    fn tyk_time_layout_exactly() {
        assert_eq!(parse_tyk_time("2030-12-31 23:59"), Some(T2030));
        assert_eq!(parse_tyk_time("1970-01-01 00:00"), Some(0));
        assert_eq!(parse_tyk_time("2024-02-29 5:07"), Some(1_709_183_220));
        for bad in [
            "2030-12-31",
            "2030-12-31 23:59:00",
            "2030-12-31T23:59",
            "2030-1-31 23:59",
            "2030-12-31 24:00",
            "2030-12-31 23:60",
            "2023-02-29 10:00",
            "2030-13-01 00:00",
            " 2030-12-31 23:59",
            "2030-12-31 23:5",
            "2030-12-31 123:59",
            "31/12/2030 23:59",
            "+030-12-31 23:59",
        ] {
            assert_eq!(parse_tyk_time(bad), None, "{bad}");
        }
        assert_eq!(parse_expiry(""), Ok(None));
        assert_eq!(parse_expiry("-1"), Ok(None));
        assert!(
            parse_expiry("soon")
                .unwrap_err()
                .contains("2006-01-02 15:04")
        );
    }

    #[test]
    fn rfc1123_like_go() {
        assert_eq!(format_rfc1123(0), "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!(format_rfc1123(T2030), "Tue, 31 Dec 2030 23:59:00 UTC");
        assert_eq!(
            format_rfc1123(1_709_183_220),
            "Thu, 29 Feb 2024 05:07:00 UTC"
        );
    }

    #[test]
    fn not_versioned_without_versions_gets_an_empty_default() {
        let s = set(json!({}));
        assert!(!s.is_versioned());
        let v = s.select(None, 0).unwrap();
        assert_eq!(v.name(), "Default");
        assert!(v.endpoints().is_empty());
        assert_eq!(
            s.requested("/api/v9/x", None, |_| Some("v9")),
            Requested::default()
        );
        assert!(s.access_rights_version(Some("v9")).is_none());
    }

    #[test]
    fn not_versioned_picks_the_only_or_the_default_version() {
        let s = set(json!({"version_data": {"not_versioned": true, "versions": {
            "Live": {"name": "Live"}}}}));
        assert_eq!(s.select(Some("other"), 0).unwrap().name(), "Live");
        let s = set(
            json!({"version_data": {"not_versioned": true, "default_version": "v1",
            "versions": {"v1": {"name": "v1"}, "Default": {"name": "Default"}}}}),
        );
        assert_eq!(
            s.select(None, 0).unwrap().name(),
            "Default",
            "default_version is not used"
        );
        let e = compile_err(json!({"version_data": {"not_versioned": true, "versions": {
            "v1": {"name": "v1"}, "v2": {"name": "v2"}}}}));
        assert_eq!(e.field, "version_data.versions");
        assert!(
            e.message.contains("No default API version"),
            "{}",
            e.message
        );
        let e = compile_err(json!({"version_data": {"not_versioned": true, "versions": {
            "Default": {"name": "Default"}, "default": {"name": "default"}}}}));
        assert!(e.message.contains("Ambiguous"), "{}", e.message);
    }

    #[test]
    fn api_expiration_applies_to_non_versioned_apis_only() {
        let s = set(json!({"expiration": "2030-12-31 23:59"}));
        assert!(s.select(None, T2030 - 1).is_ok());
        assert_eq!(s.select(None, T2030).unwrap_err(), VersionError::ApiExpired);
        assert_eq!(VersionError::ApiExpired.message(), API_EXPIRED);
        assert_eq!(VersionError::ApiExpired.status(), 403);
        let v = s.select(None, 0).unwrap();
        assert_eq!(
            s.expires_header(v).as_deref(),
            Some("Tue, 31 Dec 2030 23:59:00 UTC")
        );
        // The API's expiration wins for the header, as in Tyk.
        let both = set(json!({"expiration": "2030-12-31 23:59", "version_data": {
            "not_versioned": true, "versions": {"Default": {"expires": "2029-01-01 00:00"}}}}));
        let v = both.select(None, 0).unwrap();
        assert_eq!(
            both.expires_header(v).as_deref(),
            Some("Tue, 31 Dec 2030 23:59:00 UTC")
        );
        // A version's `expires` is not checked on a non-versioned API.
        let s = set(json!({"version_data": {"not_versioned": true, "versions": {
            "Default": {"name": "Default", "expires": "2000-01-01 00:00"}}}}));
        assert!(s.select(None, T2030).is_ok());
        // And the API's `expiration` not on a versioned one.
        let mut d = versioned("header", "x-version");
        d["expiration"] = json!("2000-01-01 00:00");
        let s = set(d);
        assert!(s.select(Some("v1"), T2030).is_ok());
        assert_eq!(s.api_expires_at(), Some(946_684_800));
    }

    #[test]
    fn versioned_by_header() {
        let s = set(versioned("header", "x-api-version"));
        assert!(s.is_versioned());
        assert_eq!(
            s.location(),
            &VersionLocation::Header("x-api-version".into())
        );
        let r = s.requested("/api/x", None, |k| (k == "x-api-version").then_some("v1"));
        assert_eq!(r.name.as_deref(), Some("v1"));
        assert_eq!(r.remove_header, None);
        assert_eq!(s.select(r.name.as_deref(), 0).unwrap().name(), "v1");
        assert_eq!(s.select(None, 0).unwrap_err(), VersionError::NotFound);
        assert_eq!(s.select(Some(""), 0).unwrap_err(), VersionError::NotFound);
        assert_eq!(
            s.select(Some("v3"), 0).unwrap_err(),
            VersionError::DoesNotExist
        );
        assert_eq!(s.select(Some("v2"), T2030 - 60).unwrap().name(), "v2");
        assert_eq!(
            s.select(Some("v2"), T2030).unwrap_err(),
            VersionError::Expired
        );
        assert_eq!(
            VersionError::NotFound.message(),
            "Version information not found"
        );
        assert_eq!(
            VersionError::DoesNotExist.to_string(),
            "This API version does not seem to exist"
        );
        assert_eq!(
            VersionError::Expired.message(),
            "Api Version has expired, please check documentation or contact administrator"
        );
        let v2 = s.get("v2").unwrap();
        assert_eq!(
            s.expires_header(v2).as_deref(),
            Some("Tue, 31 Dec 2030 23:59:00 UTC")
        );
        assert_eq!(s.expires_header(s.get("v1").unwrap()), None);
    }

    #[test]
    fn default_version_and_fallback() {
        let mut d = versioned("header", "v");
        d["version_data"]["default_version"] = json!("v1");
        let s = set(d.clone());
        assert_eq!(s.select(None, 0).unwrap().name(), "v1");
        assert_eq!(
            s.select(Some("v9"), 0).unwrap_err(),
            VersionError::DoesNotExist
        );
        d["definition"]["fallback_to_default"] = json!(true);
        let s = set(d.clone());
        assert_eq!(s.select(Some("v9"), 0).unwrap().name(), "v1");
        // A default that does not exist.
        d["version_data"]["default_version"] = json!("gone");
        let s = set(d);
        assert_eq!(s.select(None, 0).unwrap_err(), VersionError::DoesNotExist);
        assert_eq!(
            s.select(Some("v9"), 0).unwrap_err(),
            VersionError::DoesNotExist
        );
    }

    #[test]
    fn policy_version_check_uses_the_requested_name() {
        let mut d = versioned("header", "v");
        d["version_data"]["default_version"] = json!("v1");
        let s = set(d.clone());
        let grant = |g: &[&str]| g.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let c = s.access_rights_version(Some("v2")).unwrap();
        assert!(c.allows(&grant(&["v2"])));
        assert!(!c.allows(&grant(&["v1"])));
        assert!(
            !c.allows(&[]),
            "an empty list grants nothing on a versioned API"
        );
        let c = s.access_rights_version(None).unwrap();
        assert_eq!(c.target, "v1");
        d["definition"]["fallback_to_default"] = json!(true);
        let s = set(d);
        let c = s.access_rights_version(Some("v2")).unwrap();
        assert!(
            c.allows(&grant(&["v1"])),
            "Tyk: granting the default grants all"
        );
        let c = s.access_rights_version(Some("v1")).unwrap();
        assert_eq!(c.or_default, None);
    }

    #[test]
    fn versioned_by_query_parameter() {
        let mut d = versioned("url-param", "version");
        d["definition"]["strip_versioning_data"] = json!(true);
        let s = set(d);
        let r = s.requested("/api/x", Some("a=1&version=v2&version=v1"), |_| None);
        assert_eq!(r.name.as_deref(), Some("v2"));
        assert_eq!(r.remove_query_param, Some("version"));
        assert_eq!(s.requested("/api/x", None, |_| None).name, None);
        assert_eq!(s.requested("/api/x", Some("version="), |_| None).name, None);
    }

    #[test]
    fn versioned_by_url_with_and_without_stripping() {
        let s = set(versioned("url", ""));
        let r = s.requested("/api/v1/users", None, |_| None);
        assert_eq!(r.name.as_deref(), Some("v1"));
        assert_eq!(r.path, None);
        assert_eq!(s.requested("/api/", None, |_| None).name, None);
        // The bare listen path without its slash: Tyk takes "api" as the version.
        assert_eq!(
            s.requested("/api", None, |_| None).name.as_deref(),
            Some("api")
        );

        let mut d = versioned("url", "");
        d["definition"]["strip_path"] = json!(true);
        let s = set(d.clone());
        let r = s.requested("/api/v1/users", None, |_| None);
        assert_eq!(r.path.as_deref(), Some("/api/users"));
        // No slash after the segment: Tyk removes nothing.
        assert_eq!(s.requested("/api/v1", None, |_| None).path, None);

        d["definition"]["strip_path"] = json!(false);
        d["definition"]["strip_versioning_data"] = json!(true);
        d["definition"]["url_versioning_pattern"] = json!("^v\\d+$");
        let s = set(d.clone());
        assert_eq!(
            s.requested("/api/v2/users", None, |_| None).path.as_deref(),
            Some("/api/users")
        );
        let r = s.requested("/api/users/7", None, |_| None);
        assert_eq!(
            r.name.as_deref(),
            Some("users"),
            "the segment is the version anyway"
        );
        assert_eq!(r.path, None, "but it is not stripped");

        d["slug"] = json!("shop");
        d["definition"]["url_versioning_pattern"] = json!("");
        let s = set(d);
        let r = s.requested("/api/shop/v1/items", None, |_| None);
        assert_eq!(r.name.as_deref(), Some("v1"));
        assert_eq!(r.path.as_deref(), Some("/api/shop/items"));
    }

    #[test]
    fn endpoint_rules_see_the_stripped_path() {
        let mut d = versioned("url", "");
        d["definition"]["strip_versioning_data"] = json!(true);
        d["version_data"]["versions"]["v1"]["use_extended_paths"] = json!(true);
        d["version_data"]["versions"]["v1"]["extended_paths"] =
            json!({"black_list": [{"path": "^/admin"}]});
        let s = set(d);
        let r = s.requested("/api/v1/admin", None, |_| None);
        let v = s.select(r.name.as_deref(), 0).unwrap();
        let path = r.path.as_deref().unwrap_or("/api/v1/admin");
        assert_eq!(v.endpoints().check(path, "GET"), EndpointVerdict::Forbidden);
        assert_eq!(
            v.endpoints().check("/api/users", "GET"),
            EndpointVerdict::Pass
        );
        // v2 has no rules.
        assert!(s.get("v2").unwrap().endpoints().is_empty());
    }

    #[test]
    fn unknown_locations_name_nothing() {
        let s = set(versioned("cookie", "v"));
        assert_eq!(s.location(), &VersionLocation::Nowhere);
        assert_eq!(
            s.requested("/api/v1", Some("v=v1"), |_| Some("v1")).name,
            None
        );
        let s = set(versioned("header", ""));
        assert_eq!(s.location(), &VersionLocation::Nowhere);
    }

    #[test]
    fn per_version_settings() {
        let s = set(
            json!({"version_data": {"not_versioned": true, "versions": {"Default": {
                "name": "Default",
                "override_target": "http://127.0.0.1:7000/v2",
                "global_size_limit": 100,
                "global_headers": {"X-Env": "prod", "X-Team": "a b"},
                "global_headers_remove": ["Cookie"],
                "use_extended_paths": true,
                "extended_paths": {"size_limits": [{"path": "/up", "method": "POST",
                                                    "size_limit": 10}]}
            }}}}),
        );
        let v = s.select(None, 0).unwrap();
        assert_eq!(v.override_target(), Some("http://127.0.0.1:7000/v2"));
        assert_eq!(v.global_size_limit(), Some(100));
        assert_eq!(v.request_size_limit("/api/up", "POST"), Some(10));
        assert_eq!(v.request_size_limit("/api/other", "POST"), Some(100));
        assert_eq!(
            v.request_headers_to_set(),
            &[
                ("X-Env".to_owned(), "prod".to_owned()),
                ("X-Team".to_owned(), "a b".to_owned())
            ]
        );
        assert_eq!(v.request_headers_to_remove(), &["Cookie".to_owned()]);

        let s = set(
            json!({"version_data": {"not_versioned": true, "versions": {"Default": {
                "global_size_limit": 100, "global_size_limit_disabled": true,
                "global_headers": {"X-A": "1"}, "global_headers_disabled": true
            }}}}),
        );
        let v = s.select(None, 0).unwrap();
        assert_eq!(v.global_size_limit(), None);
        assert!(v.request_headers_to_set().is_empty());
    }

    #[test]
    fn bad_versions_are_refused_naming_the_field() {
        let v = |x: Value| {
            json!({"version_data": {"not_versioned": true,
            "versions": {"Default": x}}})
        };
        let cases = [
            (
                v(json!({"expires": "tomorrow"})),
                "version_data.versions.Default.expires",
            ),
            (
                v(json!({"override_target": "ftp://x"})),
                "version_data.versions.Default.override_target",
            ),
            (
                v(json!({"global_size_limit": -1})),
                "version_data.versions.Default.global_size_limit",
            ),
            (
                v(json!({"global_size_limit": "1 KB"})),
                "version_data.versions.Default.global_size_limit",
            ),
            (
                v(json!({"global_headers": {"X-User": "$tyk_meta.user"}})),
                "version_data.versions.Default.global_headers.X-User",
            ),
            (
                v(json!({"global_headers": {"Bad Name": "1"}})),
                "version_data.versions.Default.global_headers.Bad Name",
            ),
            (
                v(json!({"global_headers": {"X-A": "a\r\nb"}})),
                "version_data.versions.Default.global_headers.X-A",
            ),
            (
                v(json!({"name": "Other"})),
                "version_data.versions.Default.name",
            ),
            (json!({"expiration": "2030-12-31"}), "expiration"),
            (
                json!({"definition": {"url_versioning_pattern": "("}}),
                "definition.url_versioning_pattern",
            ),
        ];
        for (extra, field) in cases {
            let e = compile_err(extra);
            assert_eq!(e.field, field, "{e:?}");
            assert!(e.message.starts_with(field), "{e:?}");
        }
    }

    #[test]
    fn unnamed_versions_are_fine_unless_their_rules_would_mix() {
        let d = json!({"version_data": {"not_versioned": false, "default_version": "v2",
            "versions": {"v1": {"global_size_limit": 10}, "v2": {"global_size_limit": 20}}}});
        let s = set(d);
        assert_eq!(s.select(None, 0).unwrap().global_size_limit(), Some(20));
        let e = compile_err(
            json!({"version_data": {"not_versioned": false, "versions": {
            "v1": {}, "v2": {"use_extended_paths": true,
                              "extended_paths": {"black_list": [{"path": "/x"}]}}}}}),
        );
        assert_eq!(e.field, "version_data.versions.v2.name");
    }
}
