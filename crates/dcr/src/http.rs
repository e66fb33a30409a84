//! HTTP plumbing shared by the drivers: one client per driver (timeout, TLS settings, no
//! redirects), bounded body reads, and turning non-success answers into [`IdpError`]s.

use std::time::Duration;

use gatehouse_domain::portal::{Provider, Secret};
use reqwest::Method;
use serde_json::Value;

use crate::error::{Action, IdpError};

/// Largest IdP answer read (bigger ones are an invalid response).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How much of a non-JSON error body is quoted.
const MAX_QUOTED_CHARS: usize = 200;

/// How a request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// No `Authorization` header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a Secret),
    /// `Authorization: SSWS <token>` (Okta API token).
    Ssws(&'a Secret),
}

impl<'a> Auth<'a> {
    /// `Bearer` when a non-empty token is given, otherwise none.
    pub(crate) fn bearer_if(token: Option<&'a Secret>) -> Self {
        match token {
            Some(t) if !t.is_empty() => Auth::Bearer(t),
            _ => Auth::None,
        }
    }

    fn secret(self) -> Option<&'a Secret> {
        match self {
            Auth::None => None,
            Auth::Bearer(s) | Auth::Ssws(s) => Some(s),
        }
    }
}

/// A driver's HTTP client.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    provider: Provider,
    timeout: Duration,
}

/// An answer from the IdP, read completely.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) text: String,
    pub(crate) json: Option<Value>,
    location: Option<String>,
    /// The credential that was sent, redacted from quoted error text.
    sent: Option<Secret>,
}

impl Http {
    /// A client with a per-request `timeout`, TLS verification unless `insecure_skip_verify`,
    /// and no redirects followed.
    pub(crate) fn new(
        provider: Provider,
        timeout: Duration,
        insecure_skip_verify: bool,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(insecure_skip_verify)
            .user_agent(concat!("gatehouse-dcr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the IdP: {e}"))?;
        Ok(Self {
            client,
            provider,
            timeout,
        })
    }

    /// Sends one request and reads the answer. Transport failures (connect, TLS, timeout) are
    /// [`IdpError::Unreachable`]; every HTTP status comes back as a [`Reply`].
    pub(crate) async fn call(
        &self,
        action: Action,
        method: Method,
        url: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Result<Reply, IdpError> {
        let mut req = self
            .client
            .request(method.clone(), url)
            .header(reqwest::header::ACCEPT, "application/json");
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.header("authorization", format!("Bearer {}", t.expose())),
            Auth::Ssws(t) => req = req.header("authorization", format!("SSWS {}", t.expose())),
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let mut resp = req.send().await.map_err(|e| {
            let why = transport_error(&e, self.timeout);
            tracing::warn!(provider = %self.provider, action = %action, %method, url, error = %why, "IdP unreachable");
            IdpError::Unreachable(format!("{method} {url}: {why}"))
        })?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(IdpError::InvalidResponse(format!(
                            "{method} {url}: the answer is larger than {MAX_BODY_BYTES} bytes"
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let why = transport_error(&e, self.timeout);
                    return Err(IdpError::Unreachable(format!(
                        "{method} {url}: reading the answer failed: {why}"
                    )));
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str::<Value>(&text).ok();
        tracing::debug!(provider = %self.provider, action = %action, %method, url, status, "IdP answered");
        Ok(Reply {
            status,
            text,
            json,
            location,
            sent: auth.secret().cloned(),
        })
    }
}

fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    // The chain of sources says what failed (connection refused, DNS, TLS certificate…).
    let mut out = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cur = err.source();
    }
    out
}

impl Reply {
    /// An answer read from bytes, as [`Http::call`] builds it (for the fuzz targets).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn from_bytes(status: u16, body: &[u8], sent: Option<Secret>) -> Self {
        let text = String::from_utf8_lossy(body).into_owned();
        Self {
            status,
            json: serde_json::from_str::<Value>(&text).ok(),
            text,
            location: None,
            sent,
        }
    }

    /// Whether the status is one of `ok`.
    pub(crate) fn is(&self, ok: &[u16]) -> bool {
        ok.contains(&self.status)
    }

    /// The body as a JSON value, or an invalid-response error naming `what`.
    pub(crate) fn json_body(&self, what: &str) -> Result<Value, IdpError> {
        self.json.clone().ok_or_else(|| {
            IdpError::InvalidResponse(format!(
                "{what}: the answer ({}) is not JSON: {}",
                self.status,
                quote(&self.text)
            ))
        })
    }

    /// The error for an answer that is not the expected success: 4xx → refused, 5xx →
    /// unreachable, 3xx and other 2xx → invalid response.
    pub(crate) fn failure(&self, provider: Provider, action: Action, expected: &str) -> IdpError {
        let (error, description) = self.describe();
        match self.status {
            400..=499 => {
                tracing::info!(provider = %provider, action = %action, status = self.status,
                    error = error.as_deref().unwrap_or(""), description = %description, "IdP refused");
                IdpError::Refused {
                    provider,
                    action,
                    status: self.status,
                    error,
                    description,
                }
            }
            500..=599 => IdpError::Unreachable(format!(
                "{} answered {} to the {action}: {description}",
                provider.display_name(),
                self.status
            )),
            300..=399 => IdpError::InvalidResponse(format!(
                "the {action} was answered with a redirect ({}) to {}; check the configured URL",
                self.status,
                self.location.as_deref().unwrap_or("nowhere")
            )),
            _ => IdpError::InvalidResponse(format!(
                "the {action} was answered with {}, expected {expected}: {description}",
                self.status
            )),
        }
    }

    /// The IdP's error code and description, from any of the known error shapes:
    /// RFC 6749/7591 `{error, error_description}` (plus Gluu's `reason`), Okta's
    /// `{errorCode, errorSummary, errorCauses[].errorSummary}`, `{message}` / `{detail}` /
    /// `{errorMessage}`; otherwise the text (HTML tags stripped), first 200 characters.
    /// The credential that was sent is replaced by `[redacted]`.
    pub(crate) fn describe(&self) -> (Option<String>, String) {
        let (error, description) = match &self.json {
            Some(Value::Object(m)) => describe_object(m, &self.text),
            _ => (None, quote(&self.text)),
        };
        let description = if description.is_empty() {
            format!("HTTP {} with no explanation", self.status)
        } else {
            description
        };
        (error.map(|e| self.redact(&e)), self.redact(&description))
    }

    fn redact(&self, text: &str) -> String {
        match &self.sent {
            Some(s) if s.expose().len() >= 4 => text.replace(s.expose(), "[redacted]"),
            _ => text.to_owned(),
        }
    }
}

fn str_field<'a>(m: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn describe_object(m: &serde_json::Map<String, Value>, raw: &str) -> (Option<String>, String) {
    // Okta core API errors.
    if let Some(summary) = str_field(m, "errorSummary") {
        let causes: Vec<&str> = m
            .get("errorCauses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("errorSummary").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let description = if causes.is_empty() {
            summary.to_owned()
        } else {
            format!("{summary} ({})", causes.join("; "))
        };
        return (str_field(m, "errorCode").map(str::to_owned), description);
    }
    let error = str_field(m, "error").map(str::to_owned);
    let mut description = str_field(m, "error_description")
        .or_else(|| str_field(m, "message"))
        .or_else(|| str_field(m, "detail"))
        .or_else(|| str_field(m, "errorMessage"))
        .or_else(|| str_field(m, "title"))
        .map(str::to_owned)
        .or_else(|| error.clone())
        .unwrap_or_else(|| quote(raw));
    if let Some(reason) = str_field(m, "reason")
        && !description.contains(reason)
    {
        description = format!("{description} ({reason})");
    }
    (error, description)
}

/// Up to 200 characters of a body, HTML tags stripped and whitespace collapsed.
pub(crate) fn quote(text: &str) -> String {
    let looks_html = text.trim_start().starts_with('<');
    let plain = if looks_html {
        strip_tags(text)
    } else {
        text.to_owned()
    };
    let collapsed = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(MAX_QUOTED_CHARS).collect();
    if collapsed.chars().count() > MAX_QUOTED_CHARS {
        out.push('…');
    }
    out
}

/// Removes tags, `<script>`/`<style>` contents and comments, and decodes the common entities.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with("<script") || rest.starts_with("<style") {
            let close = if rest.starts_with("<script") {
                "</script>"
            } else {
                "</style>"
            };
            i += rest.find(close).map_or(rest.len(), |e| e + close.len());
            continue;
        }
        if rest.starts_with('<') {
            i += rest.find('>').map_or(rest.len(), |e| e + 1);
            out.push(' ');
            continue;
        }
        let next = rest.find('<').unwrap_or(rest.len());
        out.push_str(&html[i..i + next]);
        i += next;
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, text: &str, sent: Option<&str>) -> Reply {
        Reply {
            status,
            text: text.to_owned(),
            json: serde_json::from_str(text).ok(),
            location: None,
            sent: sent.map(Secret::new),
        }
    }

    #[test]
    fn error_shapes() {
        let r = reply(
            400,
            r#"{"error":"invalid_client_metadata","error_description":"client_name: The field cannot be left blank"}"#,
            None,
        );
        assert_eq!(
            r.describe(),
            (
                Some("invalid_client_metadata".into()),
                "client_name: The field cannot be left blank".into()
            )
        );
        let okta = json!({"errorCode":"E0000001","errorSummary":"Api validation failed: client_name",
            "errorLink":"E0000001","errorId":"oae1","errorCauses":[{"errorSummary":"client_name: An object with this field already exists in the current organization"}]});
        let r = reply(400, &okta.to_string(), None);
        assert_eq!(
            r.describe(),
            (
                Some("E0000001".into()),
                "Api validation failed: client_name (client_name: An object with this field \
                 already exists in the current organization)"
                    .into()
            )
        );
        let r = reply(
            401,
            r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorCauses":[]}"#,
            None,
        );
        assert_eq!(r.describe().1, "Invalid token provided");
        let gluu = reply(
            400,
            r#"{"error":"invalid_client_metadata","error_description":"The value of one of the Client Metadata fields is invalid.","reason":"redirect_uris are required"}"#,
            None,
        );
        assert!(gluu.describe().1.ends_with("(redirect_uris are required)"));
        assert_eq!(
            reply(403, r#"{"error":"forbidden"}"#, None).describe().1,
            "forbidden"
        );
        assert_eq!(
            reply(404, "", None).describe().1,
            "HTTP 404 with no explanation"
        );
        assert_eq!(
            reply(400, r#"{"message":"bad"}"#, None).describe(),
            (None, "bad".into())
        );
    }

    #[test]
    fn html_pages_are_quoted_briefly() {
        let page = format!(
            "<!DOCTYPE html><html><head><title>400 Bad Request</title><style>p {{color: red}}</style>\
             <script>var t = 1;</script></head><body><!-- x --><h1>Bad&nbsp;Request</h1><p>{}</p></body></html>",
            "word ".repeat(100)
        );
        let (error, d) = reply(400, &page, None).describe();
        assert_eq!(error, None);
        assert!(
            d.starts_with("400 Bad Request Bad Request word word"),
            "{d}"
        );
        assert!(
            !d.contains('<') && !d.contains("color") && !d.contains("var t"),
            "{d}"
        );
        assert!(d.chars().count() <= 201, "{}", d.chars().count());
        assert!(d.ends_with('…'));
        assert_eq!(quote("plain text\n  error"), "plain text error");
    }

    #[test]
    fn the_sent_credential_is_redacted() {
        let r = reply(
            401,
            r#"{"error":"invalid_token","error_description":"token iat-SECRET-123 is unknown"}"#,
            Some("iat-SECRET-123"),
        );
        let (_, d) = r.describe();
        assert_eq!(d, "token [redacted] is unknown");
        let e = r.failure(Provider::Other, Action::Register, "201");
        assert!(!format!("{e:?}").contains("iat-SECRET-123"));
    }

    #[test]
    fn statuses_map_to_kinds() {
        let e = reply(503, "<html><body>Service Unavailable</body></html>", None).failure(
            Provider::Keycloak,
            Action::Register,
            "201",
        );
        match e {
            IdpError::Unreachable(m) => assert!(
                m.contains("503") && m.contains("Service Unavailable"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        let e = reply(302, "", None).failure(Provider::Okta, Action::Register, "201");
        assert!(matches!(e, IdpError::InvalidResponse(_)));
        let e = reply(200, "{}", None).failure(Provider::Other, Action::Register, "201 Created");
        match e {
            IdpError::InvalidResponse(m) => assert!(m.contains("expected 201 Created"), "{m}"),
            other => panic!("{other:?}"),
        }
        let e = reply(403, r#"{"error":"insufficient_scope","error_description":"Policy 'Max Clients Limit' rejected request"}"#, None)
            .failure(Provider::Keycloak, Action::Register, "201");
        assert!(matches!(e, IdpError::Refused { status: 403, .. }));
    }
}
