//! Load balancing (`proxy.enable_load_balancing`, `proxy.target_list`) and host health
//! (`uptime_tests`, `proxy.check_host_against_uptime_tests`), as Tyk's reverse proxy and host
//! checker do it, with time passed in.
//!
//! # Picking a target ([`TargetSet::pick`], the gateway's upstream phase)
//! Round robin over `target_list` as written: a target listed twice gets twice the requests
//! (Tyk's weights). With `check_host_against_uptime_tests`, a target whose host the uptime checks
//! found down is skipped, trying the next ones in order; all down → 503 `all hosts are down`
//! ([`ALL_HOSTS_DOWN`]), as Tyk. Without it, health is not looked at, as in Tyk.
//!
//! Gatehouse adds **passive ejection**: a target the gateway could not connect to
//! ([`HostHealth::connect_failed`]) is skipped for [`EJECT_FOR`]; it is only a preference, so when
//! every remaining target is ejected the round-robin one is used anyway (an API is never made
//! unavailable by ejection alone).
//!
//! # Uptime checks ([`HealthPlan`], a gateway task)
//! Each `uptime_tests.check_list` entry is requested every [`HealthPlan::interval`] (Tyk's
//! `uptime_tests.config.time_wait` gateway setting, 10 s by default) with its method (default
//! `GET`), headers and body; a check fails on a connection error, a timeout (the entry's
//! `timeout`, a Go duration in nanoseconds; 0: the checker's default) or any status but 200.
//! [`HostHealth::check_result`] counts as Tyk's checker: a host is **down** after 3 failed checks
//! (failures are not reset by successes before that), and up again after as many successful
//! ones as failures were counted. A host is identified by `host[:port]` of the URL, as Tyk keys
//! it; a target is down when a check of the same host is.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::error::ValidationError;

/// Tyk's answer when every target is down (status 503).
pub const ALL_HOSTS_DOWN: &str = "all hosts are down";
/// How long a target that refused a connection is skipped.
pub const EJECT_FOR: Duration = Duration::from_secs(10);
/// Failed checks that make a host down (Tyk's `failure_trigger_sample_size` default).
pub const FAILURES_TO_DOWN: u32 = 3;

/// The key Tyk identifies a host by: `host[:port]` of the URL (as written), lower case.
pub fn host_key(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let scheme_default = matches!(
        (u.scheme(), u.port()),
        ("http" | "ws" | "h2c", Some(80)) | ("https" | "wss", Some(443))
    );
    Some(match u.port() {
        Some(p) if !scheme_default => format!("{host}:{p}"),
        _ => host.to_owned(),
    })
}

/// An API's upstream targets.
#[derive(Debug)]
pub struct TargetSet {
    targets: Vec<(String, String)>,
    check_health: bool,
    next: AtomicUsize,
}

/// Why no target can be used: 503 [`ALL_HOSTS_DOWN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllHostsDown;

impl TargetSet {
    /// The targets of a definition: `target_list` when `enable_load_balancing` is on and the list
    /// is not empty, else `target_url` alone. Every entry must be a target URL
    /// ([`crate::api::validate_target_url`]); the error names `proxy.target_list.<i>`.
    pub fn from_definition(raw_proxy: &Value, target_url: &str) -> Result<Self, ValidationError> {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct View {
            enable_load_balancing: Option<bool>,
            target_list: Option<Vec<String>>,
            check_host_against_uptime_tests: Option<bool>,
        }
        let v: View = serde_json::from_value(raw_proxy.clone()).map_err(|e| {
            ValidationError::new("proxy.target_list", format!("proxy.target_list: {e}"))
        })?;
        let list = v.target_list.unwrap_or_default();
        let urls = if v.enable_load_balancing.unwrap_or(false) && !list.is_empty() {
            list
        } else {
            vec![target_url.to_owned()]
        };
        let mut targets = Vec::with_capacity(urls.len());
        for (i, u) in urls.into_iter().enumerate() {
            let f = format!("proxy.target_list.{i}");
            crate::api::validate_target_url(&u).map_err(|m| ValidationError::new(&f, m))?;
            let key = host_key(&u).unwrap_or_default();
            targets.push((u, key));
        }
        Ok(Self {
            targets,
            check_health: v.check_host_against_uptime_tests.unwrap_or(false),
            next: AtomicUsize::new(0),
        })
    }

    /// The targets, in order (repeats included).
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|(u, _)| u.as_str())
    }

    /// The next target for a request (module docs).
    pub fn pick(&self, health: &HostHealth, now: Instant) -> Result<&str, AllHostsDown> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut fallback = None;
        for k in 0..n {
            let (url, key) = &self.targets[(start + k) % n];
            if self.check_health && health.is_down(key) {
                continue;
            }
            if health.is_ejected(key, now) {
                fallback.get_or_insert(url.as_str());
                continue;
            }
            return Ok(url);
        }
        fallback.ok_or(AllHostsDown)
    }
}

#[derive(Debug, Clone, Default)]
struct HostState {
    failures: u32,
    down: bool,
    ejected_until: Option<Instant>,
}

/// What the gateway knows about its upstream hosts: uptime check results and connect failures.
/// Shared by the APIs of a gateway (the gateway keeps it behind a lock).
#[derive(Debug, Clone, Default)]
pub struct HostHealth {
    hosts: HashMap<String, HostState>,
}

impl HostHealth {
    /// Records an uptime check of `host` (a [`host_key`]): `ok` is a 200 answer in time.
    pub fn check_result(&mut self, host: &str, ok: bool) {
        let s = self.hosts.entry(host.to_owned()).or_default();
        if ok {
            if s.down {
                s.failures = s.failures.saturating_sub(1);
                if s.failures == 0 {
                    s.down = false;
                }
            }
        } else {
            s.failures += 1;
            if s.failures >= FAILURES_TO_DOWN {
                s.down = true;
            }
        }
    }

    /// Records that a connection to `host` failed at `now` (passive ejection).
    pub fn connect_failed(&mut self, host: &str, now: Instant) {
        self.hosts.entry(host.to_owned()).or_default().ejected_until = Some(now + EJECT_FOR);
    }

    /// Records that a request to `host` got an answer (ends an ejection early).
    pub fn connected(&mut self, host: &str) {
        if let Some(s) = self.hosts.get_mut(host) {
            s.ejected_until = None;
        }
    }

    /// Whether the uptime checks found `host` down.
    pub fn is_down(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|s| s.down)
    }

    /// Whether `host` is ejected at `now`.
    pub fn is_ejected(&self, host: &str, now: Instant) -> bool {
        self.hosts
            .get(host)
            .and_then(|s| s.ejected_until)
            .is_some_and(|t| now < t)
    }
}

/// One uptime check to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The URL to request.
    pub url: String,
    /// Its [`host_key`].
    pub host: String,
    /// The method (`GET` by default).
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: String,
    /// The check's timeout; `None`: the checker's default.
    pub timeout: Option<Duration>,
}

/// An API's uptime checks (`uptime_tests.check_list`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthPlan {
    /// The checks.
    pub checks: Vec<HealthCheck>,
}

impl HealthPlan {
    /// The default interval between two rounds of checks (Tyk's `time_wait`).
    pub const fn interval() -> Duration {
        Duration::from_secs(10)
    }

    /// Compiles `uptime_tests` (the raw block). Refused: a URL that is not http(s), and
    /// `protocol` `tcp`/`tls` checks (Tyk's TCP checks, which Gatehouse does not run).
    pub fn compile(uptime_tests: &Value) -> Result<Self, ValidationError> {
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Check {
            url: Option<String>,
            protocol: Option<String>,
            timeout: Option<i64>,
            method: Option<String>,
            headers: Option<BTreeMap<String, String>>,
            body: Option<String>,
        }
        let list = uptime_tests
            .get("check_list")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        let checks: Vec<Check> = serde_json::from_value(list).map_err(|e| {
            ValidationError::new(
                "uptime_tests.check_list",
                format!("uptime_tests.check_list: {e}"),
            )
        })?;
        let mut out = Vec::with_capacity(checks.len());
        for (i, c) in checks.into_iter().enumerate() {
            let f = format!("uptime_tests.check_list.{i}");
            if let Some(p) = c
                .protocol
                .as_deref()
                .filter(|p| matches!(*p, "tcp" | "tls"))
            {
                return Err(ValidationError::new(
                    format!("{f}.protocol"),
                    format!("{f}.protocol: {p} checks are not implemented; use an http(s) check"),
                ));
            }
            let url = c.url.unwrap_or_default();
            crate::api::validate_http_url(&url)
                .map_err(|m| ValidationError::new(format!("{f}.url"), format!("{f}.url: {m}")))?;
            let timeout = match c.timeout.unwrap_or(0) {
                0 => None,
                n if n < 0 => {
                    return Err(ValidationError::new(
                        format!("{f}.timeout"),
                        format!("{f}.timeout must not be negative (a Go duration in nanoseconds)"),
                    ));
                }
                n => Some(Duration::from_nanos(n.unsigned_abs())),
            };
            out.push(HealthCheck {
                host: host_key(&url).unwrap_or_default(),
                url,
                method: c
                    .method
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "GET".to_owned()),
                headers: c.headers.unwrap_or_default().into_iter().collect(),
                body: c.body.unwrap_or_default(),
                timeout,
            });
        }
        Ok(Self { checks: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(proxy: Value) -> TargetSet {
        TargetSet::from_definition(&proxy, "http://main:80").unwrap()
    }

    fn picks(s: &TargetSet, h: &HostHealth, now: Instant, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                s.pick(h, now)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| "DOWN".into())
            })
            .collect()
    }

    #[test]
    fn round_robin_with_weights_by_repeats() {
        let s = set(json!({"enable_load_balancing": true,
            "target_list": ["http://a:1", "http://b:2", "http://a:1"]}));
        let h = HostHealth::default();
        let now = Instant::now();
        assert_eq!(
            picks(&s, &h, now, 6),
            [
                "http://a:1",
                "http://b:2",
                "http://a:1",
                "http://a:1",
                "http://b:2",
                "http://a:1"
            ]
        );
        // Load balancing off, or an empty list: target_url.
        let s = set(json!({"enable_load_balancing": false, "target_list": ["http://a:1"]}));
        assert_eq!(s.targets().collect::<Vec<_>>(), ["http://main:80"]);
        let s = set(json!({"enable_load_balancing": true, "target_list": null}));
        assert_eq!(s.targets().collect::<Vec<_>>(), ["http://main:80"]);
    }

    #[test]
    fn uptime_checks_take_hosts_out_only_when_asked() {
        let lb =
            json!({"enable_load_balancing": true, "target_list": ["http://a:1", "http://b:2"]});
        let mut h = HostHealth::default();
        for _ in 0..FAILURES_TO_DOWN {
            h.check_result("a:1", false);
        }
        assert!(h.is_down("a:1"));
        let now = Instant::now();
        // Without check_host_against_uptime_tests, Tyk does not look.
        assert_eq!(
            picks(&set(lb.clone()), &h, now, 2),
            ["http://a:1", "http://b:2"]
        );
        let mut checked = lb.clone();
        checked["check_host_against_uptime_tests"] = json!(true);
        let s = set(checked);
        assert_eq!(
            picks(&s, &h, now, 3),
            ["http://b:2", "http://b:2", "http://b:2"]
        );
        for _ in 0..FAILURES_TO_DOWN {
            h.check_result("b:2", false);
        }
        assert_eq!(s.pick(&h, now), Err(AllHostsDown));
        // Back up after as many good checks as failures were counted.
        h.check_result("a:1", true);
        h.check_result("a:1", true);
        assert!(h.is_down("a:1"));
        h.check_result("a:1", true);
        assert!(!h.is_down("a:1"));
    }

    #[test]
    fn failures_below_the_limit_are_not_forgotten() {
        let mut h = HostHealth::default();
        h.check_result("a", false);
        h.check_result("a", false);
        h.check_result("a", true);
        assert!(!h.is_down("a"));
        h.check_result("a", false);
        assert!(h.is_down("a"), "Tyk keeps counting across a success");
    }

    #[test]
    fn connect_failures_eject_for_a_while_but_never_take_the_last_target() {
        let s = set(json!({"enable_load_balancing": true,
            "target_list": ["http://a:1", "http://b:2"]}));
        let mut h = HostHealth::default();
        let t0 = Instant::now();
        h.connect_failed("a:1", t0);
        assert_eq!(picks(&s, &h, t0, 2), ["http://b:2", "http://b:2"]);
        // Later on it is back.
        assert_eq!(
            picks(&s, &h, t0 + EJECT_FOR, 2),
            ["http://a:1", "http://b:2"]
        );
        h.connect_failed("b:2", t0);
        assert!(s.pick(&h, t0).is_ok(), "all ejected: round robin anyway");
        h.connected("b:2");
        assert!(!h.is_ejected("b:2", t0));
    }

    #[test]
    fn host_keys_as_tyk() {
        assert_eq!(
            host_key("http://Api.Example:8080/x").as_deref(),
            Some("api.example:8080")
        );
        assert_eq!(
            host_key("https://a.example:443/").as_deref(),
            Some("a.example")
        );
        assert_eq!(host_key("ws://a:80").as_deref(), Some("a"));
        assert_eq!(host_key("nope"), None);
    }

    #[test]
    fn target_lists_are_checked() {
        let e = TargetSet::from_definition(
            &json!({"enable_load_balancing": true, "target_list": ["http://a", "tcp://b:1"]}),
            "http://a",
        )
        .unwrap_err();
        assert_eq!(e.field, "proxy.target_list.1");
    }

    #[test]
    fn health_plans_from_uptime_tests() {
        let p = HealthPlan::compile(&json!({"check_list": [
            {"url": "http://a:1/health", "timeout": 2_000_000_000i64, "headers": {"X": "1"}},
            {"url": "https://b/ping", "method": "HEAD", "body": ""}
        ], "config": {"recheck_wait": 5}}))
        .unwrap();
        assert_eq!(p.checks.len(), 2);
        assert_eq!(p.checks[0].host, "a:1");
        assert_eq!(p.checks[0].method, "GET");
        assert_eq!(p.checks[0].timeout, Some(Duration::from_secs(2)));
        assert_eq!(p.checks[0].headers, [("X".to_owned(), "1".to_owned())]);
        assert_eq!(p.checks[1].method, "HEAD");
        assert_eq!(p.checks[1].timeout, None);
        assert_eq!(HealthPlan::interval(), Duration::from_secs(10));
        assert!(
            HealthPlan::compile(&json!({"check_list": null}))
                .unwrap()
                .checks
                .is_empty()
        );
        let e = HealthPlan::compile(&json!({"check_list": [{"url": "a:1", "protocol": "tcp"}]}))
            .unwrap_err();
        assert_eq!(e.field, "uptime_tests.check_list.0.protocol");
        let e = HealthPlan::compile(&json!({"check_list": [{"url": "ftp://a"}]})).unwrap_err();
        assert_eq!(e.field, "uptime_tests.check_list.0.url");
    }
}
