//! Listen-path routing: a table built from arbitrary listen paths (raw and as the admin API
//! normalises them), then arbitrary request paths looked up. Invariants: a match is one of the
//! table's keys, it is a prefix of the path on a segment boundary, and no longer key would match.
#![no_main]

use arbitrary::Arbitrary;
use gatehouse_domain::api::normalize_listen_path;
use gatehouse_domain::routing::{RouteTable, route_key, upstream_path};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    listen_paths: Vec<String>,
    requests: Vec<String>,
    normalise: bool,
    strip: bool,
}

/// Whether the table key `key` serves `path`: the root key (`""`, from `/`) serves every path;
/// any other key is the path itself or a prefix followed by `/`.
fn matches_on_boundary(key: &str, path: &str) -> bool {
    if key.is_empty() {
        return true;
    }
    let path = path.trim_end_matches('/');
    path == key || (path.starts_with(key) && path[key.len()..].starts_with('/'))
}

fuzz_target!(|input: Input| {
    let mut paths: Vec<String> = input.listen_paths.into_iter().take(64).collect();
    if input.normalise {
        paths = paths
            .iter()
            .filter_map(|p| normalize_listen_path(p).ok())
            .collect();
    }
    let keys: Vec<String> = paths.iter().map(|p| route_key(p).to_owned()).collect();
    let table = RouteTable::new(paths.iter().cloned().enumerate().map(|(i, p)| (p, i)));
    for req in input.requests.iter().take(16) {
        match table.lookup(req) {
            Some(m) => {
                assert!(
                    keys.iter().any(|k| k == m.prefix),
                    "{:?} is not a key",
                    m.prefix
                );
                assert!(
                    matches_on_boundary(m.prefix, req),
                    "{:?} for {req:?}",
                    m.prefix
                );
                assert!(
                    !keys
                        .iter()
                        .any(|k| k.len() > m.prefix.len() && matches_on_boundary(k, req)),
                    "a longer listen path matches {req:?}"
                );
                assert_eq!(route_key(&paths[*m.value]), m.prefix);
                let up = upstream_path("http://upstream/base", req, m.prefix, input.strip);
                assert!(up.starts_with("http://upstream/base"), "{up}");
            }
            None => assert!(
                !keys.iter().any(|k| matches_on_boundary(k, req)),
                "no match for {req:?} though a key fits"
            ),
        }
    }
});
