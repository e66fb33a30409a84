//! Routing: which API serves a request, by host (Tyk's `domain`) and listen path.
//!
//! The longest listen path that is a prefix of the request path wins. A listen path matches on
//! segment boundaries: `/pay` matches `/pay`, `/pay/` and `/pay/x`, but not `/payments`; a listen
//! path ending in `/` (`/pay/`) also matches `/pay`. Lookup walks the request path's `/` boundaries
//! from the longest candidate to the shortest and probes a hash map, so its cost depends on the
//! path's depth, not on the number of APIs.
//!
//! APIs with a `domain` are served only for requests whose host matches it, and are tried before
//! the APIs without one (as Tyk loads APIs with a custom domain first): the exact host, then the
//! host patterns in the order given, then the APIs without a domain. Several APIs may share a
//! listen path when their domains differ. Host patterns ([`HostPattern`]) take Tyk's forms: an
//! exact host (`api.example.com`, optionally with `:port`), a `*` label (`*.example.com`, one
//! label), and gorilla/mux variables (`{tenant}.example.com`, `{tenant:[a-z]+}.example.com`).

use std::collections::HashMap;

use regex::Regex;

/// A listen path table: listen path key → value.
type PathTable<T> = HashMap<String, T>;

/// An immutable routing table (the gateway stores its per-API runtime as `T`).
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    /// APIs without a domain.
    any_host: PathTable<T>,
    /// APIs with an exact domain, by lower-case host (with `:port` when the domain has one).
    hosts: HashMap<String, PathTable<T>>,
    /// APIs with a domain pattern, in the order given.
    patterns: Vec<(HostPattern, PathTable<T>)>,
    len: usize,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            any_host: HashMap::new(),
            hosts: HashMap::new(),
            patterns: Vec::new(),
            len: 0,
        }
    }
}

/// The result of a lookup: the value and the listen path (normalised, without trailing `/`) it
/// was found under.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The routed value.
    pub value: &'a T,
    /// The matched prefix, e.g. `/pay` (empty for the root listen path `/`).
    pub prefix: &'a str,
}

/// The key a listen path is stored under: without its trailing slashes (`/` becomes ``).
pub fn route_key(listen_path: &str) -> &str {
    listen_path.trim_end_matches('/')
}

/// The key that must be unique among stored APIs: the domain (lower case, as written, empty for
/// none) followed by the listen path's [`route_key`]. Two APIs may share a listen path when their
/// domains differ.
pub fn route_key_with_domain(domain: &str, listen_path: &str) -> String {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{d}{}", route_key(listen_path))
}

/// A route: the API's domain (empty for any host), listen path and value.
#[derive(Debug, Clone)]
pub struct Route<T> {
    /// Tyk's `domain`: empty serves every host.
    pub domain: String,
    /// The listen path.
    pub listen_path: String,
    /// The routed value.
    pub value: T,
}

/// A parsed `domain`: an exact host or a pattern.
#[derive(Debug, Clone)]
pub enum HostPattern {
    /// Every host (no domain).
    Any,
    /// One host, lower case; with `:port` when given.
    Exact(String),
    /// A pattern, matched against the lower-case host without its port.
    Pattern {
        /// The domain as written.
        source: String,
        /// The compiled, anchored, case-insensitive pattern.
        regex: Regex,
    },
}

impl HostPattern {
    /// Parses Tyk's `domain`: empty → [`HostPattern::Any`]; `*.example.com`, `{name}` and
    /// `{name:regex}` labels → a pattern; anything else must be a host name (letters, digits, `-`,
    /// `.`, `_`) with an optional `:port`.
    pub fn parse(domain: &str) -> Result<Self, String> {
        let d = domain.trim().trim_end_matches('.');
        if d.is_empty() {
            return Ok(Self::Any);
        }
        if d.len() > 253 + 6 {
            return Err("domain must be at most 253 characters plus an optional :port".to_owned());
        }
        if d.contains(['{', '*']) {
            let regex = Regex::new(&format!("(?i)^{}$", host_template_to_regex(d)?))
                .map_err(|e| format!("domain '{d}' is not a valid pattern: {e}"))?;
            return Ok(Self::Pattern {
                source: d.to_owned(),
                regex,
            });
        }
        let (host, port) = match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            || host.starts_with('.')
            || host.contains("..")
        {
            return Err(format!(
                "domain '{d}' must be a host name such as api.example.com (optionally :port), \
                 a wildcard such as *.example.com, or a pattern such as {{tenant}}.example.com"
            ));
        }
        if let Some(p) = port
            && p.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err(format!(
                "domain '{d}': the port must be a number from 1 to 65535"
            ));
        }
        Ok(Self::Exact(d.to_ascii_lowercase()))
    }

    /// Whether a request host (the `Host` header or `:authority`, possibly with a port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(h) => {
                let host = host.trim_end_matches('.');
                if h.contains(':') {
                    host.eq_ignore_ascii_case(h)
                } else {
                    strip_port(host).eq_ignore_ascii_case(h)
                }
            }
            Self::Pattern { regex, .. } => regex.is_match(strip_port(host)),
        }
    }
}

/// The host without its `:port` (IPv6 literals in brackets keep their colons).
pub fn strip_port(host: &str) -> &str {
    let host = host.trim_end_matches('.');
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.trim_end_matches('.'),
        _ => host,
    }
}

/// Turns a Tyk/mux host template into a regular expression (unanchored): `*` as a whole label is
/// one label, `{name}` is one label, `{name:re}` is `re`; the rest is literal.
fn host_template_to_regex(t: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("domain '{t}': '{{' without a closing '}}'"))?;
            let var = &after[..end];
            match var.split_once(':') {
                Some((_, re)) if !re.is_empty() => {
                    out.push_str("(?:");
                    out.push_str(re);
                    out.push(')');
                }
                _ => out.push_str("[^.:]+"),
            }
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('*') {
            out.push_str("[^.:]+");
            rest = after;
        } else {
            let end = rest.find(['{', '*']).unwrap_or(rest.len());
            let lit = &rest[..end];
            if !lit
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            {
                return Err(format!(
                    "domain '{t}' must contain only host name characters outside {{…}}"
                ));
            }
            out.push_str(&regex::escape(lit));
            rest = &rest[end..];
        }
    }
    Ok(out)
}

fn lookup_in<'a, T>(table: &'a PathTable<T>, path: &str) -> Option<RouteMatch<'a, T>> {
    if table.is_empty() {
        return None;
    }
    let path = path.trim_end_matches('/');
    // Candidates: the whole path, then each prefix ending just before a '/'.
    let mut end = path.len();
    loop {
        let candidate = &path[..end];
        if let Some((k, v)) = table.get_key_value(candidate) {
            return Some(RouteMatch {
                value: v,
                prefix: k.as_str(),
            });
        }
        if end == 0 {
            return None;
        }
        end = path[..end].rfind('/').unwrap_or(0);
    }
}

impl<T> RouteTable<T> {
    /// Builds a table from `(listen_path, value)` pairs for any host. Two listen paths with the
    /// same key (such as `/a` and `/a/`) conflict; the later one wins here, and the admin API
    /// refuses such a pair before it reaches the table.
    pub fn new(routes: impl IntoIterator<Item = (String, T)>) -> Self {
        let mut t = Self::default();
        for (lp, v) in routes {
            t.any_host.insert(route_key(&lp).to_owned(), v);
        }
        t.len = t.any_host.len();
        t
    }

    /// Builds a table from routes with domains. A route whose domain does not parse is returned
    /// in the error list with its message, and left out (never served for every host).
    pub fn with_domains(
        routes: impl IntoIterator<Item = Route<T>>,
    ) -> (Self, Vec<(String, String)>) {
        let mut t = Self::default();
        let mut problems = Vec::new();
        for r in routes {
            let key = route_key(&r.listen_path).to_owned();
            match HostPattern::parse(&r.domain) {
                Ok(HostPattern::Any) => {
                    t.any_host.insert(key, r.value);
                }
                Ok(HostPattern::Exact(h)) => {
                    t.hosts.entry(h).or_default().insert(key, r.value);
                }
                Ok(p @ HostPattern::Pattern { .. }) => {
                    let source = r.domain.trim().trim_end_matches('.').to_ascii_lowercase();
                    let slot = t.patterns.iter().position(|(q, _)| match q {
                        HostPattern::Pattern { source: s, .. } => s.eq_ignore_ascii_case(&source),
                        _ => false,
                    });
                    match slot {
                        Some(i) => {
                            t.patterns[i].1.insert(key, r.value);
                        }
                        None => {
                            let mut table = HashMap::new();
                            table.insert(key, r.value);
                            t.patterns.push((p, table));
                        }
                    }
                }
                Err(e) => problems.push((r.listen_path, e)),
            }
        }
        t.len = t.any_host.len()
            + t.hosts.values().map(HashMap::len).sum::<usize>()
            + t.patterns.iter().map(|(_, m)| m.len()).sum::<usize>();
        (t, problems)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some route has a domain (the request's host then matters).
    pub fn has_domains(&self) -> bool {
        !self.hosts.is_empty() || !self.patterns.is_empty()
    }

    /// Finds the API for `path` (the request path without the query string) among the APIs
    /// without a domain.
    pub fn lookup<'a>(&'a self, path: &str) -> Option<RouteMatch<'a, T>> {
        lookup_in(&self.any_host, path)
    }

    /// Finds the API for a request to `host` (the `Host` header or `:authority`; `None` when the
    /// request has none) and `path`: the APIs of the exact host, then those of matching host
    /// patterns, then those without a domain.
    pub fn lookup_host<'a>(&'a self, host: Option<&str>, path: &str) -> Option<RouteMatch<'a, T>> {
        if let Some(host) = host
            && self.has_domains()
        {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let exact = self
                .hosts
                .get(&host)
                .or_else(|| self.hosts.get(strip_port(&host)));
            if let Some(m) = exact.and_then(|t| lookup_in(t, path)) {
                return Some(m);
            }
            for (pattern, table) in &self.patterns {
                if pattern.matches(&host)
                    && let Some(m) = lookup_in(table, path)
                {
                    return Some(m);
                }
            }
        }
        lookup_in(&self.any_host, path)
    }
}

/// The path to send upstream: the request path with the listen path removed when
/// `strip_listen_path` is set (always starting with `/`), joined onto the target URL's path.
pub fn upstream_path(target_base: &str, request_path: &str, prefix: &str, strip: bool) -> String {
    let rest = if strip {
        &request_path[prefix.len().min(request_path.len())..]
    } else {
        request_path
    };
    let base = target_base.trim_end_matches('/');
    if rest.is_empty() {
        return if base.is_empty() {
            "/".to_owned()
        } else {
            format!("{base}/")
        };
    }
    if rest.starts_with('/') {
        format!("{base}{rest}")
    } else {
        format!("{base}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        RouteTable::new([
            ("/pay/".to_owned(), "pay"),
            ("/pay/v2".to_owned(), "pay-v2"),
            ("/".to_owned(), "root"),
            ("/a/b/c".to_owned(), "abc"),
        ])
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table();
        let get = |p: &str| t.lookup(p).map(|m| (*m.value, m.prefix));
        assert_eq!(get("/pay"), Some(("pay", "/pay")));
        assert_eq!(get("/pay/"), Some(("pay", "/pay")));
        assert_eq!(get("/pay/x/y"), Some(("pay", "/pay")));
        assert_eq!(get("/pay/v2"), Some(("pay-v2", "/pay/v2")));
        assert_eq!(get("/pay/v2/z"), Some(("pay-v2", "/pay/v2")));
        assert_eq!(get("/pay/v23"), Some(("pay", "/pay")));
        assert_eq!(get("/payments"), Some(("root", "")));
        assert_eq!(get("/a/b/c/d"), Some(("abc", "/a/b/c")));
        assert_eq!(get("/a/b"), Some(("root", "")));
        assert_eq!(get("/"), Some(("root", "")));
        assert_eq!(get(""), Some(("root", "")));
    }

    #[test]
    fn no_root_means_no_match() {
        let t = RouteTable::new([("/x".to_owned(), 1)]);
        assert!(t.lookup("/y").is_none());
        assert!(t.lookup("/").is_none());
        assert!(t.lookup("/xy").is_none());
        assert_eq!(*t.lookup("/x/1").unwrap().value, 1);
    }

    #[test]
    fn domains_route_by_host_before_the_rest() {
        let (t, problems) = RouteTable::with_domains([
            Route {
                domain: "api.example.com".into(),
                listen_path: "/".into(),
                value: "exact",
            },
            Route {
                domain: "API.example.com:8443".into(),
                listen_path: "/v".into(),
                value: "port",
            },
            Route {
                domain: "*.tenants.test".into(),
                listen_path: "/x/".into(),
                value: "wild",
            },
            Route {
                domain: "{t:[a-z]+}.mux.test".into(),
                listen_path: "/x/".into(),
                value: "mux",
            },
            Route {
                domain: String::new(),
                listen_path: "/x/".into(),
                value: "any",
            },
            Route {
                domain: "bad domain".into(),
                listen_path: "/b/".into(),
                value: "bad",
            },
        ]);
        assert_eq!(problems.len(), 1);
        assert_eq!(t.len(), 5);
        let get = |h: Option<&str>, p: &str| t.lookup_host(h, p).map(|m| *m.value);
        assert_eq!(get(Some("api.example.com"), "/x/1"), Some("exact"));
        assert_eq!(get(Some("API.Example.com:80"), "/x/1"), Some("exact"));
        assert_eq!(get(Some("api.example.com:8443"), "/v/1"), Some("port"));
        assert_eq!(get(Some("api.example.com:9999"), "/v/1"), Some("exact"));
        assert_eq!(get(Some("a.tenants.test"), "/x/1"), Some("wild"));
        assert_eq!(get(Some("a.b.tenants.test"), "/x/1"), Some("any"));
        assert_eq!(get(Some("abc.mux.test:8080"), "/x/1"), Some("mux"));
        assert_eq!(get(Some("ab1.mux.test"), "/x/1"), Some("any"));
        assert_eq!(get(Some("other.test"), "/x/1"), Some("any"));
        assert_eq!(get(None, "/x/1"), Some("any"));
        assert_eq!(get(Some("other.test"), "/b/1"), None);
        assert_eq!(
            get(Some("other.test"), "/v/1"),
            None,
            "a domain API is never served for other hosts"
        );
    }

    #[test]
    fn host_patterns_parse() {
        assert!(matches!(HostPattern::parse(""), Ok(HostPattern::Any)));
        assert!(matches!(HostPattern::parse("A.b.c."), Ok(HostPattern::Exact(h)) if h == "a.b.c"));
        assert!(HostPattern::parse("a.b:0").is_err());
        assert!(HostPattern::parse("a b").is_err());
        assert!(HostPattern::parse("a/b").is_err());
        assert!(HostPattern::parse("{x").is_err());
        assert!(HostPattern::parse("{x:(}.a").is_err());
        assert!(HostPattern::parse("*.a.b").is_ok());
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(route_key_with_domain("API.x.com", "/pay/"), "api.x.com/pay");
        assert_eq!(route_key_with_domain("", "/pay/"), "/pay");
    }

    #[test]
    fn upstream_paths() {
        assert_eq!(upstream_path("", "/pay/items", "/pay", true), "/items");
        assert_eq!(upstream_path("", "/pay", "/pay", true), "/");
        assert_eq!(upstream_path("", "/pay/items", "/pay", false), "/pay/items");
        assert_eq!(
            upstream_path("/base/", "/pay/items", "/pay", true),
            "/base/items"
        );
        assert_eq!(upstream_path("/base", "/pay", "/pay", true), "/base/");
        assert_eq!(upstream_path("/base", "/x", "", true), "/base/x");
    }
}
