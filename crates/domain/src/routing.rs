//! Listen-path routing: which API serves a request path.
//!
//! The longest listen path that is a prefix of the request path wins. A listen path matches on
//! segment boundaries: `/pay` matches `/pay`, `/pay/` and `/pay/x`, but not `/payments`; a listen
//! path ending in `/` (`/pay/`) also matches `/pay`. Lookup walks the request path's `/` boundaries
//! from the longest candidate to the shortest and probes a hash map, so its cost depends on the
//! path's depth, not on the number of APIs.

use std::collections::HashMap;

/// An immutable routing table from listen path to a value (the gateway stores its per-API runtime).
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    by_prefix: HashMap<String, T>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            by_prefix: HashMap::new(),
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

impl<T> RouteTable<T> {
    /// Builds a table from `(listen_path, value)` pairs. Two listen paths with the same key (such as
    /// `/a` and `/a/`) conflict; the later one wins here, and the admin API refuses such a pair
    /// before it reaches the table.
    pub fn new(routes: impl IntoIterator<Item = (String, T)>) -> Self {
        let by_prefix = routes
            .into_iter()
            .map(|(lp, v)| (route_key(&lp).to_owned(), v))
            .collect();
        Self { by_prefix }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// Finds the API for `path` (the request path without the query string).
    pub fn lookup<'a>(&'a self, path: &str) -> Option<RouteMatch<'a, T>> {
        if self.by_prefix.is_empty() {
            return None;
        }
        let path = path.trim_end_matches('/');
        // Candidates: the whole path, then each prefix ending just before a '/'.
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if let Some((k, v)) = self.by_prefix.get_key_value(candidate) {
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
