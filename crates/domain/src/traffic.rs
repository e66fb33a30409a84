//! A version's traffic settings, compiled once per snapshot into [`TrafficRules`]: header
//! transforms (`global_headers*`, `global_response_headers*`, `extended_paths.transform_headers`
//! and `transform_response_headers`), `url_rewrites`, `hard_timeouts`, `circuit_breakers` and
//! `method_transforms`.
//!
//! # Which entry applies
//! Like Tyk's `CheckSpecMatchesStatus`, the **first** entry of a list whose path pattern matches
//! and whose `method` equals the request's exactly applies (an entry without a method never
//! does); `disabled` entries do not exist. The path is the one [`crate::endpoints`] documents (the
//! request path with the listen path, decoded and cleaned, version segment stripped), taken
//! **before** any URL rewrite; patterns match as there (listen path removed for the lookup).
//!
//! # Contracts for the gateway (phase by phase)
//! - **request transforms** (before the upstream call), in Tyk's order:
//!   1. [`TrafficRules::request_header_edits`]: the version's `global_headers_remove`, then
//!      `global_headers`, then the matching `transform_headers` entry's `delete_headers`, then
//!      its `add_headers` (Tyk's `TransformHeaders`); applied to every request of the version,
//!      ignored paths included;
//!   2. [`TrafficRules::url_rewrite`] (Tyk's `URLRewriteMiddleware`), see [`crate::rewrite`];
//!   3. [`TrafficRules::method_transform`]: the method sent upstream (Tyk's `TransformMethod`).
//!      The request's own method is what every earlier check saw.
//! - **upstream**: [`TrafficRules::hard_timeout`] (504 `Upstream service reached hard timeout.`
//!   when the upstream's response head does not arrive in time) and
//!   [`TrafficRules::circuit_breaker`] (see [`crate::breaker`]); Tyk looks both up in its proxy,
//!   so with the method *after* `method_transforms`.
//! - **response transforms**: [`TrafficRules::response_header_edits`]: the matching
//!   `transform_response_headers` entry, then `global_response_headers_remove` and
//!   `global_response_headers` (Tyk's header injector). Tyk Classic runs it only when
//!   `response_processors` names `header_injector`; Gatehouse always does, which only ever removes
//!   or adds headers the definition asks for.
//!
//! Header names are applied case-insensitively; a `Set` replaces every value of the header.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::endpoints::{PathContext, check_method, nested_serde_error, pattern};
use crate::error::ValidationError;
use crate::pathmatch::MatchOptions;
use crate::rewrite::{RewriteError, Rewritten, UrlRewrite, UrlRewriteMeta};
use crate::template::{Captures, TransformContext, ValueTemplate};
use crate::versions::check_header_name;

/// One change to a header list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Remove every value of the header.
    Remove(String),
    /// Replace every value of the header by this one.
    Set(String, String),
    /// Add a value, keeping the others (`Vary`).
    Append(String, String),
}

/// A rendered header value the gateway cannot send (a variable filled in a control character).
/// The gateway answers 500; it must never drop the header silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeaderValue {
    /// The header.
    pub name: String,
}

/// Removals and additions of one transform.
#[derive(Debug, Clone, Default)]
pub struct HeaderTransform {
    remove: Vec<String>,
    set: Vec<(String, ValueTemplate)>,
}

impl HeaderTransform {
    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    fn edits(
        &self,
        ctx: &dyn TransformContext,
        context_vars: bool,
        out: &mut Vec<HeaderEdit>,
    ) -> Result<(), InvalidHeaderValue> {
        out.extend(self.remove.iter().map(|n| HeaderEdit::Remove(n.clone())));
        for (name, t) in &self.set {
            let v = t.render(ctx, context_vars, None, false);
            if v.chars().any(|c| c.is_control() && c != '\t') {
                return Err(InvalidHeaderValue { name: name.clone() });
            }
            out.push(HeaderEdit::Set(name.clone(), v));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Entry<T> {
    regex: Regex,
    method: String,
    value: T,
}

/// Settings of one `circuit_breakers` entry; the state lives in a [`crate::breaker::CircuitBreaker`]
/// the gateway keeps per [`BreakerId`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// `threshold_percent`: the failure ratio (0 < r ≤ 1) that trips the breaker.
    pub threshold: f64,
    /// `samples`: the least number of requests in the window before it can trip.
    pub samples: u64,
    /// `return_to_service_after`: closed again this long after tripping.
    pub return_to_service_after: Duration,
    /// Not `disable_half_open_state`: single probes are let through while open.
    pub half_open: bool,
}

/// Identifies one breaker: the version's name and the entry's index in `circuit_breakers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BreakerId {
    /// The version.
    pub version: String,
    /// The entry's index.
    pub index: usize,
}

/// A version's compiled traffic settings.
#[derive(Debug, Clone, Default)]
pub struct TrafficRules {
    ctx: Arc<PathContext>,
    version: String,
    context_vars: bool,
    global_request: HeaderTransform,
    global_response: HeaderTransform,
    request: Vec<Entry<HeaderTransform>>,
    response: Vec<Entry<HeaderTransform>>,
    rewrites: Vec<Entry<UrlRewrite>>,
    timeouts: Vec<Entry<Option<Duration>>>,
    breakers: Vec<Entry<(usize, BreakerSettings)>>,
    methods: Vec<Entry<String>>,
}

impl TrafficRules {
    /// Whether nothing here can change a request (the phases can then be skipped).
    pub fn is_empty(&self) -> bool {
        self.global_request.is_empty()
            && self.global_response.is_empty()
            && self.request.is_empty()
            && self.response.is_empty()
            && self.rewrites.is_empty()
            && self.timeouts.is_empty()
            && self.breakers.is_empty()
            && self.methods.is_empty()
    }

    fn find<'a, T>(&self, list: &'a [Entry<T>], path: &str, method: &str) -> Option<&'a T> {
        if list.is_empty() {
            return None;
        }
        let lp = self.ctx.limit_path(path);
        list.iter()
            .find(|e| e.method == method && self.ctx.matches(&e.regex, &lp))
            .map(|e| &e.value)
    }

    /// Request header edits, in order (module docs, request transforms step 1).
    pub fn request_header_edits(
        &self,
        path: &str,
        method: &str,
        ctx: &dyn TransformContext,
    ) -> Result<Vec<HeaderEdit>, InvalidHeaderValue> {
        let mut out = Vec::new();
        self.global_request
            .edits(ctx, self.context_vars, &mut out)?;
        if let Some(t) = self.find(&self.request, path, method) {
            t.edits(ctx, self.context_vars, &mut out)?;
        }
        Ok(out)
    }

    /// Response header edits, in order (module docs, response transforms). `path` and `method`
    /// are the request's, as for [`request_header_edits`](Self::request_header_edits).
    pub fn response_header_edits(
        &self,
        path: &str,
        method: &str,
        ctx: &dyn TransformContext,
    ) -> Result<Vec<HeaderEdit>, InvalidHeaderValue> {
        let mut out = Vec::new();
        if let Some(t) = self.find(&self.response, path, method) {
            t.edits(ctx, self.context_vars, &mut out)?;
        }
        self.global_response
            .edits(ctx, self.context_vars, &mut out)?;
        Ok(out)
    }

    /// The URL rewrite for a request, if an entry matches: `url` is Tyk's `r.URL.String()` (the
    /// path with the listen path, `?query` when there is one). `Err` is Tyk's 500.
    pub fn url_rewrite(
        &self,
        path: &str,
        method: &str,
        url: &str,
        ctx: &dyn TransformContext,
    ) -> Option<Result<(Rewritten, Captures), RewriteError>> {
        self.find(&self.rewrites, path, method)
            .map(|r| r.apply(url, ctx, self.context_vars))
    }

    /// The method to send upstream instead of the request's (`method_transforms`).
    pub fn method_transform(&self, path: &str, method: &str) -> Option<&str> {
        self.find(&self.methods, path, method).map(String::as_str)
    }

    /// The hard timeout for a request (`hard_timeouts`); `None`: the gateway's
    /// `upstream_response_timeout`. An entry with `timeout: 0` gives `None` too.
    pub fn hard_timeout(&self, path: &str, method: &str) -> Option<Duration> {
        self.find(&self.timeouts, path, method).copied().flatten()
    }

    /// The circuit breaker guarding a request, if any.
    pub fn circuit_breaker(
        &self,
        path: &str,
        method: &str,
    ) -> Option<(BreakerId, BreakerSettings)> {
        self.find(&self.breakers, path, method).map(|(index, s)| {
            (
                BreakerId {
                    version: self.version.clone(),
                    index: *index,
                },
                *s,
            )
        })
    }

    /// Every breaker of the version, for the gateway to create their state up front.
    pub fn breakers(&self) -> impl Iterator<Item = (BreakerId, BreakerSettings)> + '_ {
        self.breakers.iter().map(|e| {
            (
                BreakerId {
                    version: self.version.clone(),
                    index: e.value.0,
                },
                e.value.1,
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The wire shape.

fn nd<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VersionView {
    #[serde(deserialize_with = "nd")]
    use_extended_paths: bool,
    #[serde(deserialize_with = "nd")]
    ignore_endpoint_case: bool,
    #[serde(deserialize_with = "nd")]
    global_headers: std::collections::BTreeMap<String, String>,
    #[serde(deserialize_with = "nd")]
    global_headers_remove: Vec<String>,
    #[serde(deserialize_with = "nd")]
    global_headers_disabled: bool,
    #[serde(deserialize_with = "nd")]
    global_response_headers: std::collections::BTreeMap<String, String>,
    #[serde(deserialize_with = "nd")]
    global_response_headers_remove: Vec<String>,
    #[serde(deserialize_with = "nd")]
    global_response_headers_disabled: bool,
    #[serde(deserialize_with = "nd")]
    extended_paths: ExtendedView,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExtendedView {
    #[serde(deserialize_with = "nd")]
    transform_headers: Vec<Meta<HeaderMeta>>,
    #[serde(deserialize_with = "nd")]
    transform_response_headers: Vec<Meta<HeaderMeta>>,
    #[serde(deserialize_with = "nd")]
    url_rewrites: Vec<Meta<UrlRewriteMeta>>,
    #[serde(deserialize_with = "nd")]
    hard_timeouts: Vec<Meta<TimeoutMeta>>,
    #[serde(deserialize_with = "nd")]
    circuit_breakers: Vec<Meta<BreakerMeta>>,
    #[serde(deserialize_with = "nd")]
    method_transforms: Vec<Meta<MethodMeta>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta<T> {
    #[serde(deserialize_with = "nd")]
    disabled: bool,
    #[serde(deserialize_with = "nd")]
    path: String,
    #[serde(deserialize_with = "nd")]
    method: String,
    #[serde(flatten)]
    inner: T,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HeaderMeta {
    #[serde(deserialize_with = "nd")]
    delete_headers: Vec<String>,
    #[serde(deserialize_with = "nd")]
    add_headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TimeoutMeta {
    #[serde(deserialize_with = "nd")]
    timeout: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BreakerMeta {
    #[serde(deserialize_with = "nd")]
    threshold_percent: f64,
    #[serde(deserialize_with = "nd")]
    samples: i64,
    #[serde(deserialize_with = "nd")]
    return_to_service_after: i64,
    #[serde(deserialize_with = "nd")]
    disable_half_open_state: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MethodMeta {
    #[serde(deserialize_with = "nd")]
    to_method: String,
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// Compiles the traffic settings of the version `name` (JSON `version`, dotted `field`).
/// `context_vars` is the API's `enable_context_vars`.
pub(crate) fn compile_traffic(
    name: &str,
    version: &Value,
    field: &str,
    ctx: Arc<PathContext>,
    opts: MatchOptions,
    context_vars: bool,
) -> Result<TrafficRules, ValidationError> {
    let v: VersionView = serde_path_to_error::deserialize(version.clone())
        .map_err(|e| nested_serde_error(field, &e))?;
    let mut out = TrafficRules {
        ctx,
        version: name.to_owned(),
        context_vars,
        ..TrafficRules::default()
    };
    if !v.global_headers_disabled {
        out.global_request = header_transform(
            &v.global_headers_remove,
            &v.global_headers,
            &format!("{field}.global_headers_remove"),
            &format!("{field}.global_headers"),
        )?;
    }
    if !v.global_response_headers_disabled {
        out.global_response = header_transform(
            &v.global_response_headers_remove,
            &v.global_response_headers,
            &format!("{field}.global_response_headers_remove"),
            &format!("{field}.global_response_headers"),
        )?;
    }
    if !v.use_extended_paths {
        return Ok(out);
    }
    let ext = &v.extended_paths;
    let base = format!("{field}.extended_paths");
    let case = v.ignore_endpoint_case;
    out.request = entries(
        &ext.transform_headers,
        &base,
        "transform_headers",
        case,
        opts,
        |m, f| {
            header_transform(
                &m.delete_headers,
                &m.add_headers,
                &format!("{f}.delete_headers"),
                &format!("{f}.add_headers"),
            )
        },
    )?;
    out.response = entries(
        &ext.transform_response_headers,
        &base,
        "transform_response_headers",
        case,
        opts,
        |m, f| {
            header_transform(
                &m.delete_headers,
                &m.add_headers,
                &format!("{f}.delete_headers"),
                &format!("{f}.add_headers"),
            )
        },
    )?;
    out.rewrites = entries(
        &ext.url_rewrites,
        &base,
        "url_rewrites",
        case,
        opts,
        |m, f| m.compile(f),
    )?;
    out.timeouts = entries(
        &ext.hard_timeouts,
        &base,
        "hard_timeouts",
        case,
        opts,
        |m, f| {
            let secs = u64::try_from(m.timeout).map_err(|_| {
                ValidationError::new(
                    format!("{f}.timeout"),
                    format!("{f}.timeout must be a number of seconds, not negative"),
                )
            })?;
            Ok((secs > 0).then(|| Duration::from_secs(secs)))
        },
    )?;
    let mut index = 0;
    out.breakers = entries(
        &ext.circuit_breakers,
        &base,
        "circuit_breakers",
        case,
        opts,
        |m, f| {
            if !(m.threshold_percent > 0.0 && m.threshold_percent <= 1.0) {
                return Err(ValidationError::new(
                    format!("{f}.threshold_percent"),
                    format!(
                        "{f}.threshold_percent is {}: it is the failure ratio that trips the breaker, \
                     above 0 and at most 1 (0.5 = half the requests fail)",
                        m.threshold_percent
                    ),
                ));
            }
            let samples = u64::try_from(m.samples)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    ValidationError::new(
                        format!("{f}.samples"),
                        format!("{f}.samples must be a positive number of requests"),
                    )
                })?;
            let back = u64::try_from(m.return_to_service_after).map_err(|_| {
                ValidationError::new(
                    format!("{f}.return_to_service_after"),
                    format!(
                        "{f}.return_to_service_after must be a number of seconds, not negative"
                    ),
                )
            })?;
            let s = BreakerSettings {
                threshold: m.threshold_percent,
                samples,
                return_to_service_after: Duration::from_secs(back),
                half_open: !m.disable_half_open_state,
            };
            index += 1;
            Ok((index - 1, s))
        },
    )?;
    out.methods = entries(
        &ext.method_transforms,
        &base,
        "method_transforms",
        case,
        opts,
        |m, f| {
            let to = m.to_method.to_ascii_uppercase();
            if !METHODS.contains(&to.as_str()) {
                return Err(ValidationError::new(
                    format!("{f}.to_method"),
                    format!(
                        "{f}.to_method is '{}': write one of {}",
                        m.to_method,
                        METHODS.join(", ")
                    ),
                ));
            }
            Ok(to)
        },
    )?;
    Ok(out)
}

fn entries<M, T>(
    list: &[Meta<M>],
    base: &str,
    kind: &str,
    ignore_case: bool,
    opts: MatchOptions,
    mut value: impl FnMut(&M, &str) -> Result<T, ValidationError>,
) -> Result<Vec<Entry<T>>, ValidationError> {
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if e.disabled {
            continue;
        }
        let f = format!("{base}.{kind}.{i}");
        check_method(&e.method, &format!("{f}.method"))?;
        let regex = pattern(&e.path, ignore_case, opts, &format!("{f}.path"))?;
        out.push(Entry {
            regex,
            method: e.method.clone(),
            value: value(&e.inner, &f)?,
        });
    }
    Ok(out)
}

fn header_transform(
    remove: &[String],
    set: &std::collections::BTreeMap<String, String>,
    remove_field: &str,
    set_field: &str,
) -> Result<HeaderTransform, ValidationError> {
    for (i, n) in remove.iter().enumerate() {
        check_header_name(n, &format!("{remove_field}.{i}"))?;
    }
    let mut out = HeaderTransform {
        remove: remove.to_vec(),
        set: Vec::with_capacity(set.len()),
    };
    for (name, value) in set {
        let f = format!("{set_field}.{name}");
        check_header_name(name, &f)?;
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ValidationError::new(
                f.clone(),
                format!("{f}: a header value must not contain control characters"),
            ));
        }
        out.set
            .push((name.clone(), ValueTemplate::parse(value, &f, false)?));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
