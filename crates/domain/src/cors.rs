//! Tyk's `CORS` block, decided as Tyk decides it: Tyk hands the block to `rs/cors` (v1.7, the
//! version its `go.mod` pins) and runs it on the API's router, **before** every other middleware
//! (version check, endpoint rules, authentication, limits).
//!
//! # The decision ([`CorsPolicy::decide`], the gateway's first phase after routing)
//! - **Preflight** (`OPTIONS` with `Access-Control-Request-Method`), without
//!   `options_passthrough`: answered at once with **200**, an empty body and
//!   [`CorsDecision::Preflight`]'s headers. When the origin, method or requested headers are not
//!   allowed, the answer is still 200, with only the `Vary` headers (the browser then refuses
//!   the cross-origin request); nothing reaches the upstream either way.
//! - **`options_passthrough`**: *every* `OPTIONS` request skips all of Tyk's middleware
//!   (authentication, rate limits, endpoint rules included) and goes to the upstream
//!   ([`CorsDecision::Passthrough`]); a preflight gets the CORS headers added to the upstream's
//!   answer. Tyk does exactly this; the compatibility table warns about it.
//! - **Any other request**: goes on; [`CorsDecision::Actual`]'s headers are added to the answer
//!   (`Vary: Origin`, and for an allowed origin and method `Access-Control-Allow-Origin`,
//!   `-Expose-Headers`, `-Allow-Credentials`). An `OPTIONS` request that is not a preflight gets
//!   none.
//!
//! When the gateway adds a CORS header, the upstream's header of the same name is dropped (Tyk's
//! `removeDuplicateCORSHeader`, [`CORS_HEADERS`]); `Vary` is added to the upstream's.
//!
//! # Matching (rs/cors)
//! Origins are compared case-insensitively; `*` alone allows every origin (and an empty list
//! does too); one `*` inside an origin matches any text there (`https://*.example.com`). With
//! `allow_credentials` the origin is echoed instead of `*`. Methods are compared in upper case;
//! an empty list allows `GET`, `POST`, `HEAD`; `OPTIONS` is always allowed. Requested headers are
//! parsed and canonicalised as rs/cors does and compared with the allowed ones (empty list:
//! `Origin`, `Accept`, `Content-Type`, `X-Requested-With`; `*` allows any; `Origin` is always
//! allowed). The preflight echoes the requested method and headers; `Access-Control-Max-Age`
//! only when `max_age` is above 0.

use serde::{Deserialize, Serialize};

use crate::template::canonical_header_name;
use crate::traffic::HeaderEdit;

/// The response headers Tyk takes from its CORS handling rather than from the upstream.
pub const CORS_HEADERS: &[&str] = &[
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
];

/// An API's compiled `CORS` block (only built when `CORS.enable` is true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    all_origins: bool,
    origins: Vec<String>,
    wildcard_origins: Vec<(String, String)>,
    all_headers: bool,
    headers: Vec<String>,
    methods: Vec<String>,
    exposed: Vec<String>,
    credentials: bool,
    max_age: u64,
    passthrough: bool,
}

/// What the gateway does with a request, CORS-wise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsDecision {
    /// Answer now: this status (200), these headers, no body; nothing goes upstream.
    Preflight {
        /// The status, 200 as in Tyk.
        status: u16,
        /// Response headers.
        headers: Vec<HeaderEdit>,
    },
    /// `options_passthrough`: skip every other phase (authentication and limits included, as in
    /// Tyk) and proxy; apply these headers to the upstream's answer.
    Passthrough {
        /// Response headers.
        headers: Vec<HeaderEdit>,
    },
    /// Go on as usual; apply these headers to the answer (whatever produces it).
    Actual {
        /// Response headers.
        headers: Vec<HeaderEdit>,
    },
}

/// The request facts CORS looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct CorsRequest<'a> {
    /// The request method.
    pub method: &'a str,
    /// `Origin`, if any.
    pub origin: Option<&'a str>,
    /// `Access-Control-Request-Method`, if any (non-empty marks a preflight).
    pub request_method: Option<&'a str>,
    /// `Access-Control-Request-Headers`, if any.
    pub request_headers: Option<&'a str>,
}

fn nd<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Tyk's `CORS` block as stored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct CorsConfig {
    /// `enable`.
    #[serde(deserialize_with = "nd")]
    pub enable: bool,
    /// `allowed_origins`.
    #[serde(deserialize_with = "nd")]
    pub allowed_origins: Vec<String>,
    /// `allowed_methods`.
    #[serde(deserialize_with = "nd")]
    pub allowed_methods: Vec<String>,
    /// `allowed_headers`.
    #[serde(deserialize_with = "nd")]
    pub allowed_headers: Vec<String>,
    /// `exposed_headers`.
    #[serde(deserialize_with = "nd")]
    pub exposed_headers: Vec<String>,
    /// `allow_credentials`.
    #[serde(deserialize_with = "nd")]
    pub allow_credentials: bool,
    /// `max_age` in seconds.
    #[serde(deserialize_with = "nd")]
    pub max_age: i64,
    /// `options_passthrough`.
    #[serde(deserialize_with = "nd")]
    pub options_passthrough: bool,
    /// `debug` (rs/cors logging; no effect on answers).
    #[serde(deserialize_with = "nd")]
    pub debug: bool,
}

impl CorsPolicy {
    /// Compiles the block; `None` when `enable` is false (the gateway then does nothing CORS).
    pub fn compile(c: &CorsConfig) -> Option<Self> {
        if !c.enable {
            return None;
        }
        let mut p = CorsPolicy {
            all_origins: c.allowed_origins.is_empty(),
            origins: Vec::new(),
            wildcard_origins: Vec::new(),
            all_headers: false,
            headers: Vec::new(),
            methods: Vec::new(),
            exposed: c
                .exposed_headers
                .iter()
                .map(|h| canonical_header_name(h))
                .collect(),
            credentials: c.allow_credentials,
            max_age: u64::try_from(c.max_age).unwrap_or(0),
            passthrough: c.options_passthrough,
        };
        for o in &c.allowed_origins {
            let o = o.to_lowercase();
            if o == "*" {
                p.all_origins = true;
                p.origins.clear();
                p.wildcard_origins.clear();
                break;
            } else if let Some(i) = o.find('*') {
                p.wildcard_origins
                    .push((o[..i].to_owned(), o[i + 1..].to_owned()));
            } else {
                p.origins.push(o);
            }
        }
        if c.allowed_headers.is_empty() {
            p.headers = ["Origin", "Accept", "Content-Type", "X-Requested-With"]
                .map(str::to_owned)
                .to_vec();
        } else if c.allowed_headers.iter().any(|h| h == "*") {
            p.all_headers = true;
        } else {
            p.headers = c
                .allowed_headers
                .iter()
                .map(String::as_str)
                .chain(["Origin"])
                .map(canonical_header_name)
                .collect();
        }
        p.methods = if c.allowed_methods.is_empty() {
            ["GET", "POST", "HEAD"].map(str::to_owned).to_vec()
        } else {
            c.allowed_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect()
        };
        Some(p)
    }

    /// Whether every `OPTIONS` request skips the other phases (`options_passthrough`).
    pub fn options_passthrough(&self) -> bool {
        self.passthrough
    }

    /// Decides a request (see the module docs).
    pub fn decide(&self, r: &CorsRequest<'_>) -> CorsDecision {
        let preflight = r.method == "OPTIONS" && r.request_method.is_some_and(|m| !m.is_empty());
        if preflight {
            let headers = self.preflight_headers(r);
            if self.passthrough {
                return CorsDecision::Passthrough { headers };
            }
            return CorsDecision::Preflight {
                status: 200,
                headers,
            };
        }
        let headers = self.actual_headers(r);
        if self.passthrough && r.method == "OPTIONS" {
            return CorsDecision::Passthrough { headers };
        }
        CorsDecision::Actual { headers }
    }

    fn preflight_headers(&self, r: &CorsRequest<'_>) -> Vec<HeaderEdit> {
        let mut out: Vec<HeaderEdit> = [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ]
        .iter()
        .map(|v| HeaderEdit::Append("Vary".into(), (*v).into()))
        .collect();
        let Some(origin) = r.origin.filter(|o| !o.is_empty()) else {
            return out;
        };
        let method = r.request_method.unwrap_or("");
        let requested = parse_header_list(r.request_headers.unwrap_or(""));
        if !self.origin_allowed(origin)
            || !self.method_allowed(method)
            || !self.headers_allowed(&requested)
        {
            return out;
        }
        out.push(self.allow_origin(origin));
        out.push(HeaderEdit::Set(
            "Access-Control-Allow-Methods".into(),
            method.to_ascii_uppercase(),
        ));
        if !requested.is_empty() {
            out.push(HeaderEdit::Set(
                "Access-Control-Allow-Headers".into(),
                requested.join(", "),
            ));
        }
        if self.credentials {
            out.push(HeaderEdit::Set(
                "Access-Control-Allow-Credentials".into(),
                "true".into(),
            ));
        }
        if self.max_age > 0 {
            out.push(HeaderEdit::Set(
                "Access-Control-Max-Age".into(),
                self.max_age.to_string(),
            ));
        }
        out
    }

    fn actual_headers(&self, r: &CorsRequest<'_>) -> Vec<HeaderEdit> {
        if r.method == "OPTIONS" {
            return Vec::new();
        }
        let mut out = vec![HeaderEdit::Append("Vary".into(), "Origin".into())];
        let Some(origin) = r.origin.filter(|o| !o.is_empty()) else {
            return out;
        };
        if !self.origin_allowed(origin) || !self.method_allowed(r.method) {
            return out;
        }
        out.push(self.allow_origin(origin));
        if !self.exposed.is_empty() {
            out.push(HeaderEdit::Set(
                "Access-Control-Expose-Headers".into(),
                self.exposed.join(", "),
            ));
        }
        if self.credentials {
            out.push(HeaderEdit::Set(
                "Access-Control-Allow-Credentials".into(),
                "true".into(),
            ));
        }
        out
    }

    fn allow_origin(&self, origin: &str) -> HeaderEdit {
        let value = if self.all_origins && !self.credentials {
            "*".to_owned()
        } else {
            origin.to_owned()
        };
        HeaderEdit::Set("Access-Control-Allow-Origin".into(), value)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.all_origins {
            return true;
        }
        let o = origin.to_lowercase();
        self.origins.contains(&o)
            || self.wildcard_origins.iter().any(|(pre, suf)| {
                o.len() >= pre.len() + suf.len() && o.starts_with(pre) && o.ends_with(suf)
            })
    }

    fn method_allowed(&self, method: &str) -> bool {
        if self.methods.is_empty() {
            return false;
        }
        let m = method.to_ascii_uppercase();
        m == "OPTIONS" || self.methods.contains(&m)
    }

    fn headers_allowed(&self, requested: &[String]) -> bool {
        self.all_headers
            || requested.iter().all(|h| {
                let h = canonical_header_name(h);
                self.headers.contains(&h)
            })
    }
}

/// rs/cors' `parseHeaderList`: names split on `,` and spaces; letters canonicalised (upper case
/// at the start and after `-`); `-`, `_`, `.` and digits kept; any other byte dropped.
fn parse_header_list(list: &str) -> Vec<String> {
    let bytes = list.as_bytes();
    let mut out = Vec::new();
    let mut h = String::new();
    let mut upper = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'a'..=b'z' if upper => h.push(b.to_ascii_uppercase() as char),
            b'A'..=b'Z' if !upper => h.push(b.to_ascii_lowercase() as char),
            b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' | b'.' | b'0'..=b'9' => h.push(b as char),
            _ => {}
        }
        if b == b' ' || b == b',' || i == bytes.len() - 1 {
            if !h.is_empty() {
                out.push(std::mem::take(&mut h));
                upper = true;
            }
        } else {
            upper = b == b'-';
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: serde_json::Value) -> CorsPolicy {
        let mut c: CorsConfig = serde_json::from_value(v).unwrap();
        c.enable = true;
        CorsPolicy::compile(&c).unwrap()
    }

    fn preflight<'a>(origin: &'a str, method: &'a str, headers: &'a str) -> CorsRequest<'a> {
        CorsRequest {
            method: "OPTIONS",
            origin: Some(origin),
            request_method: Some(method),
            request_headers: (!headers.is_empty()).then_some(headers),
        }
    }

    fn set(h: &[HeaderEdit], name: &str) -> Option<String> {
        h.iter().find_map(|e| match e {
            HeaderEdit::Set(n, v) if n == name => Some(v.clone()),
            _ => None,
        })
    }

    fn vary(h: &[HeaderEdit]) -> Vec<String> {
        h.iter()
            .filter_map(|e| match e {
                HeaderEdit::Append(n, v) if n == "Vary" => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn disabled_blocks_compile_to_nothing() {
        let c: CorsConfig =
            serde_json::from_value(json!({"enable": false, "allowed_origins": ["*"]})).unwrap();
        assert_eq!(CorsPolicy::compile(&c), None);
        let c: CorsConfig = serde_json::from_value(json!({"allowed_origins": null})).unwrap();
        assert!(!c.enable);
    }

    #[test]
    fn preflights_are_answered_with_200_and_echo_the_request() {
        let p = policy(json!({"allowed_origins": ["https://app.example.com"],
            "allowed_methods": ["GET", "put"], "allowed_headers": ["Authorization", "x-trace"],
            "max_age": 600}));
        let d = p.decide(&preflight(
            "https://APP.example.com",
            "put",
            "authorization, X-TRACE",
        ));
        let CorsDecision::Preflight { status, headers } = d else {
            panic!("{d:?}")
        };
        assert_eq!(status, 200);
        assert_eq!(
            vary(&headers),
            [
                "Origin",
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers"
            ]
        );
        assert_eq!(
            set(&headers, "Access-Control-Allow-Origin").as_deref(),
            Some("https://APP.example.com")
        );
        assert_eq!(
            set(&headers, "Access-Control-Allow-Methods").as_deref(),
            Some("PUT")
        );
        assert_eq!(
            set(&headers, "Access-Control-Allow-Headers").as_deref(),
            Some("Authorization, X-Trace")
        );
        assert_eq!(
            set(&headers, "Access-Control-Max-Age").as_deref(),
            Some("600")
        );
        assert_eq!(set(&headers, "Access-Control-Allow-Credentials"), None);
    }

    #[test]
    fn refused_preflights_get_only_vary_and_still_200() {
        let p = policy(json!({"allowed_origins": ["https://a.example"],
                              "allowed_headers": ["X-A"]}));
        for r in [
            preflight("https://evil.example", "GET", ""),
            preflight("https://a.example", "DELETE", ""),
            preflight("https://a.example", "GET", "X-B"),
            CorsRequest {
                origin: None,
                ..preflight("", "GET", "")
            },
        ] {
            let CorsDecision::Preflight { status, headers } = p.decide(&r) else {
                panic!()
            };
            assert_eq!(status, 200);
            assert_eq!(headers.len(), 3, "{headers:?}");
        }
        // Origin is always allowed as a requested header; defaults allow GET/POST/HEAD.
        let CorsDecision::Preflight { headers, .. } =
            p.decide(&preflight("https://a.example", "POST", "origin,x-a"))
        else {
            panic!()
        };
        assert_eq!(
            set(&headers, "Access-Control-Allow-Headers").as_deref(),
            Some("Origin, X-A")
        );
    }

    #[test]
    fn wildcards_and_credentials() {
        let p = policy(json!({"allowed_origins": ["https://*.example.com"]}));
        assert!(p.origin_allowed("https://api.example.com"));
        assert!(p.origin_allowed("https://a.b.example.com"));
        assert!(!p.origin_allowed("https://example.com"));
        assert!(!p.origin_allowed("http://api.example.com"));
        // Any origin: `*`, unless credentials are allowed, then the origin is echoed.
        let p = policy(json!({"allowed_origins": ["https://x", "*"]}));
        let CorsDecision::Actual { headers } = p.decide(&CorsRequest {
            method: "GET",
            origin: Some("https://y"),
            ..CorsRequest::default()
        }) else {
            panic!()
        };
        assert_eq!(
            set(&headers, "Access-Control-Allow-Origin").as_deref(),
            Some("*")
        );
        let p = policy(json!({"allow_credentials": true, "allowed_headers": ["*"]}));
        let CorsDecision::Preflight { headers, .. } =
            p.decide(&preflight("https://y", "GET", "X-Anything"))
        else {
            panic!()
        };
        assert_eq!(
            set(&headers, "Access-Control-Allow-Origin").as_deref(),
            Some("https://y")
        );
        assert_eq!(
            set(&headers, "Access-Control-Allow-Credentials").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn actual_requests_get_origin_exposed_and_vary() {
        let p = policy(
            json!({"allowed_origins": ["https://a"], "allowed_methods": ["GET"],
                              "exposed_headers": ["x-total-count", "ETag"]}),
        );
        let r = |m, o| CorsRequest {
            method: m,
            origin: o,
            ..CorsRequest::default()
        };
        let CorsDecision::Actual { headers } = p.decide(&r("GET", Some("https://a"))) else {
            panic!()
        };
        assert_eq!(vary(&headers), ["Origin"]);
        assert_eq!(
            set(&headers, "Access-Control-Expose-Headers").as_deref(),
            Some("X-Total-Count, Etag")
        );
        // Not allowed: only Vary. A method the list lacks: only Vary.
        let CorsDecision::Actual { headers } = p.decide(&r("GET", Some("https://b"))) else {
            panic!()
        };
        assert_eq!(headers.len(), 1);
        let CorsDecision::Actual { headers } = p.decide(&r("POST", Some("https://a"))) else {
            panic!()
        };
        assert_eq!(headers.len(), 1);
        // A non-preflight OPTIONS gets nothing.
        assert_eq!(
            p.decide(&r("OPTIONS", Some("https://a"))),
            CorsDecision::Actual { headers: vec![] }
        );
    }

    #[test]
    fn options_passthrough_sends_every_options_request_upstream() {
        let p = policy(json!({"options_passthrough": true, "allowed_origins": ["https://a"]}));
        assert!(p.options_passthrough());
        let CorsDecision::Passthrough { headers } = p.decide(&preflight("https://a", "GET", ""))
        else {
            panic!()
        };
        assert_eq!(
            set(&headers, "Access-Control-Allow-Origin").as_deref(),
            Some("https://a")
        );
        assert_eq!(
            p.decide(&CorsRequest {
                method: "OPTIONS",
                ..CorsRequest::default()
            }),
            CorsDecision::Passthrough { headers: vec![] }
        );
        assert!(matches!(
            p.decide(&CorsRequest {
                method: "GET",
                ..CorsRequest::default()
            }),
            CorsDecision::Actual { .. }
        ));
    }

    #[test]
    fn header_lists_parse_as_rs_cors() {
        assert_eq!(
            parse_header_list("x-foo,  content-TYPE ,X_Bar"),
            ["X-Foo", "Content-Type", "X_bar"]
        );
        assert_eq!(parse_header_list(""), Vec::<String>::new());
        assert_eq!(parse_header_list("a;b"), ["Ab"]);
    }
}
