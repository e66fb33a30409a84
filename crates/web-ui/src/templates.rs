//! The page templates (minijinja), embedded in the binary.
//!
//! Every template name ends in `.html`, which turns minijinja's auto-escaping on: a developer
//! named `<script>` shows as text. Pages get a JSON context; [`render`] turns it into a response.

use std::sync::{Arc, LazyLock};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde_json::Value;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    (
        "dash_login.html",
        include_str!("../templates/dash_login.html"),
    ),
    (
        "dash_setup.html",
        include_str!("../templates/dash_setup.html"),
    ),
    ("apis.html", include_str!("../templates/apis.html")),
    ("api_form.html", include_str!("../templates/api_form.html")),
    ("policies.html", include_str!("../templates/policies.html")),
    (
        "policy_form.html",
        include_str!("../templates/policy_form.html"),
    ),
    (
        "catalogue.html",
        include_str!("../templates/catalogue.html"),
    ),
    (
        "catalogue_form.html",
        include_str!("../templates/catalogue_form.html"),
    ),
    (
        "portal_settings.html",
        include_str!("../templates/portal_settings.html"),
    ),
    (
        "developers.html",
        include_str!("../templates/developers.html"),
    ),
    (
        "developer_new.html",
        include_str!("../templates/developer_new.html"),
    ),
    (
        "developer.html",
        include_str!("../templates/developer.html"),
    ),
    ("admins.html", include_str!("../templates/admins.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("import.html", include_str!("../templates/import.html")),
    ("p_home.html", include_str!("../templates/p_home.html")),
    ("p_login.html", include_str!("../templates/p_login.html")),
    ("p_signup.html", include_str!("../templates/p_signup.html")),
    ("p_entry.html", include_str!("../templates/p_entry.html")),
    ("p_docs.html", include_str!("../templates/p_docs.html")),
    (
        "p_clients.html",
        include_str!("../templates/p_clients.html"),
    ),
    (
        "p_client_new.html",
        include_str!("../templates/p_client_new.html"),
    ),
    ("p_client.html", include_str!("../templates/p_client.html")),
    (
        "range_picker.html",
        include_str!("../templates/range_picker.html"),
    ),
    ("activity.html", include_str!("../templates/activity.html")),
    ("p_usage.html", include_str!("../templates/p_usage.html")),
];

/// The stylesheet (one small hand-written file).
pub const CSS: &str = include_str!("../static/app.css");
/// Progressive enhancement only (tabs, copy buttons); every page works without it.
pub const JS: &str = include_str!("../static/app.js");

static ENV: LazyLock<Arc<Environment<'static>>> = LazyLock::new(|| Arc::new(build()));

/// Splits text into paragraphs on blank lines (`\r\n` or `\n`), dropping empty ones.
pub fn paragraphs(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `YYYY-MM-DD` (UTC) of a Unix time in seconds.
pub fn date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn build() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_filter("date", |v: Option<i64>| v.map(date).unwrap_or_default());
    env.add_filter("paragraphs", |v: Option<String>| {
        paragraphs(v.as_deref().unwrap_or(""))
    });
    for (name, src) in TEMPLATES {
        debug_assert!(name.ends_with(".html"), "auto-escaping needs .html names");
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("template {name} does not compile: {e:#}"));
    }
    env
}

/// Renders `name` with `ctx` to a string.
pub fn render_string(name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
    ENV.get_template(name)?
        .render(minijinja::Value::from(minijinja::value::Serde(ctx)))
}

/// Renders a page with `status`; a template error becomes a plain 500 (and is logged).
pub fn render(status: StatusCode, name: &str, ctx: &Value) -> Response {
    match render_string(name, ctx) {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %format!("{e:#}"), "page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be rendered; the server log says why.",
            )
                .into_response()
        }
    }
}

/// The static files: `/static/app.css` and `/static/app.js`.
pub fn static_file(name: &str) -> Response {
    let (body, ty) = match name {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_entry_page_renders_paragraphs() {
        assert_eq!(paragraphs("a\r\n\r\nb\n\n\n c \n\n"), vec!["a", "b", "c"]);
        let html = render_string(
            "p_entry.html",
            &json!({"app": "portal", "user": "Dee", "title": "Pay", "csrf": "t",
                    "entry": {"id": "pay", "name": "Pay", "long_description": "One.\r\n\r\n<b>Two</b>",
                              "oauth_clients": true, "has_doc": true},
                    "url": "http://gw/pay/", "auth": {"summary": "JWT"}}),
        )
        .unwrap();
        assert!(html.contains("<p>One.</p>"));
        assert!(html.contains("<p>&lt;b&gt;Two&lt;&#x2f;b&gt;</p>"));
    }

    #[test]
    fn the_docs_page_renders_a_document() {
        let doc = crate::openapi::parse_document(
            "openapi: 3.0.0\ninfo: {title: T, description: \"A.\\n\\nB.\"}\npaths:\n  /x/{id}:\n    get:\n      \
             parameters: [{name: id, in: path, schema: {type: string}}]\n      responses:\n        \
             '200': {description: ok, content: {application/json: {schema: {type: object, properties: {a: {type: string}}}}}}\n",
        )
        .unwrap();
        let html = render_string(
            "p_docs.html",
            &json!({"app": "portal", "user": "Dee", "title": "Docs", "csrf": "t",
                    "entry": {"id": "pay", "name": "Pay", "oauth_clients": true},
                    "doc": crate::openapi::view(&doc), "url": "http://gw/pay/", "auth": {"summary": "JWT"}}),
        )
        .unwrap();
        assert!(html.contains("<code>&#x2f;x&#x2f;{id}</code>"), "{html}");
        assert!(html.contains("<p>B.</p>"));
        assert!(html.contains("class=\"d1\"><code>a</code>"));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_833_600), "2026-11-28");
        assert_eq!(date(-86_400), "1969-12-31");
    }

    #[test]
    fn names_are_escaped() {
        let html = render_string(
            "message.html",
            &json!({"app": "portal", "title": "<script>alert(1)</script>",
                    "message": "Hello <b>\"x\"</b> & <script>"}),
        )
        .unwrap();
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert!(html.contains("Hello &lt;b&gt;&quot;x&quot;&lt;&#x2f;b&gt; &amp; &lt;script&gt;"));
    }
}
