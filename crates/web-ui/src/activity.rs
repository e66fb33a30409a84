//! The analytics pages: the dashboard's **Activity** page (`/activity`, every API) and the
//! portal's **Usage** page (`/usage`, only the signed-in developer's clients). Both read the
//! `analytics_minutes` rows through `gatehouse_admin_api::analytics` and draw SVG charts on the
//! server ([`crate::charts`]); the time-range picker is links plus a GET form (no script).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use gatehouse_admin_api::analytics::{
    self as an, AnalyticsQuery, BadParam, Granularity, RANGES, SeriesReport, TopBy,
};
use gatehouse_store::{AnalyticsRow, QuotaRow};

use crate::charts::{self, Bar, Line};

/// At most this many API (or client) lines per chart; the rest are summed as "others".
const MAX_LINES: usize = 6;

/// A label for an x position.
pub fn x_label(g: Granularity, from: i64, to: i64) -> impl Fn(i64) -> String {
    move |x| {
        let iso = an::iso(x); // YYYY-MM-DDTHH:MM:SSZ
        match g {
            Granularity::Day => iso[5..10].to_owned(),
            _ if to - from > 86_400 => format!("{} {}", &iso[5..10], &iso[11..16]),
            _ => iso[11..16].to_owned(),
        }
    }
}

/// The bucket starts of a query's range.
pub fn buckets(q: &AnalyticsQuery) -> Vec<i64> {
    let step = q.granularity.seconds();
    let mut x = q.from.div_euclid(step) * step;
    let mut out = Vec::new();
    while x < q.to && out.len() <= an::MAX_BUCKETS as usize {
        out.push(x);
        x += step;
    }
    out
}

/// Lines of `value` per group (`group_of(row)`), over the query's buckets: the busiest
/// [`MAX_LINES`] groups, the rest as "others".
fn lines_by(
    q: &AnalyticsQuery,
    x: &[i64],
    rows: &[AnalyticsRow],
    label_of: &dyn Fn(&AnalyticsRow) -> String,
    errors_only: bool,
) -> Vec<Line> {
    let step = q.granularity.seconds();
    let index: HashMap<i64, usize> = x.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let mut groups: BTreeMap<String, (u64, Vec<f64>)> = BTreeMap::new();
    for r in rows {
        if errors_only && r.status_class < 4 {
            continue;
        }
        let start = (r.minute * 60).div_euclid(step) * step;
        let Some(i) = index.get(&start) else { continue };
        let g = groups
            .entry(label_of(r))
            .or_insert_with(|| (0, vec![0.0; x.len()]));
        let n = u64::try_from(r.requests).unwrap_or(0);
        g.0 += n;
        g.1[*i] += n as f64;
    }
    let mut v: Vec<(String, (u64, Vec<f64>))> = groups.into_iter().collect();
    v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    let mut lines: Vec<Line> = Vec::new();
    let mut others: Option<(u64, Vec<f64>)> = None;
    for (i, (label, (total, values))) in v.into_iter().enumerate() {
        if i < MAX_LINES {
            lines.push(Line {
                label: format!("{label} ({})", charts::short_number(total as f64)),
                values: values.into_iter().map(Some).collect(),
                dashed: false,
            });
        } else {
            let o = others.get_or_insert_with(|| (0, vec![0.0; x.len()]));
            o.0 += total;
            for (a, b) in o.1.iter_mut().zip(values) {
                *a += b;
            }
        }
    }
    if let Some((total, values)) = others {
        lines.push(Line {
            label: format!("others ({})", charts::short_number(total as f64)),
            values: values.into_iter().map(Some).collect(),
            dashed: true,
        });
    }
    lines
}

/// The latency percentile lines (p50, p95, p99) of all rows; gaps where there were no requests.
fn latency_lines(x: &[i64], report: &SeriesReport) -> Vec<Line> {
    let at: HashMap<i64, &an::Point> = report.overall.iter().map(|p| (p.start, p)).collect();
    let line = |label: &str, f: &dyn Fn(&an::Point) -> Option<f64>| Line {
        label: label.to_owned(),
        values: x.iter().map(|s| at.get(s).and_then(|p| f(p))).collect(),
        dashed: false,
    };
    vec![
        line("p50", &|p| p.p50_ms),
        line("p95", &|p| p.p95_ms),
        line("p99", &|p| p.p99_ms),
    ]
}

/// Milliseconds for tables.
fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{} ms", charts::short_number(v)))
        .unwrap_or_else(|| "–".to_owned())
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// The picker's context: preset links (keeping the other parameters) and the custom form values.
pub fn picker(q: &AnalyticsQuery, path: &str, keep: &[(&str, Option<&str>)]) -> Value {
    let extra: String = keep
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("&{k}={}", urlencode(v))))
        .collect();
    let presets: Vec<Value> = RANGES
        .iter()
        .map(|(name, _)| {
            json!({"label": format!("Last {name}"), "href": format!("{path}?range={name}{extra}"),
                   "current": q.range == Some(*name)})
        })
        .collect();
    let local = |t: i64| an::iso(t)[..16].to_owned();
    let mut query = format!("from={}&to={}", q.from, q.to);
    for (k, v) in keep {
        if let Some(v) = v {
            query.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    json!({"presets": presets, "from": local(q.from), "to": local(q.to),
           "custom": q.range.is_none(), "query": query,
           "from_label": an::iso(q.from).replace('T', " ").replace('Z', " UTC"),
           "to_label": an::iso(q.to).replace('T', " ").replace('Z', " UTC"),
           "granularity": q.granularity.as_str()})
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The picker with a bad parameter: the error beside its field.
pub fn bad_param_context(e: &BadParam) -> Value {
    let field = match e.param {
        "from" | "to" | "range" | "granularity" => e.param,
        _ => "general",
    };
    json!({"errors": {field: e.message}})
}

/// Names for ids in labels.
#[derive(Debug, Default)]
pub struct Names {
    /// API id → name.
    pub apis: HashMap<String, String>,
    /// Developer id → email.
    pub developers: HashMap<String, String>,
    /// Client id → name.
    pub clients: HashMap<String, String>,
}

impl Names {
    fn api(&self, id: &str) -> String {
        if id.is_empty() {
            return "(no API matched)".to_owned();
        }
        self.apis.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    fn client(&self, id: &str) -> String {
        match self.clients.get(id) {
            Some(n) if !n.is_empty() && n != id => format!("{n} ({id})"),
            _ => id.to_owned(),
        }
    }

    fn developer(&self, id: &str) -> String {
        self.developers
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }
}

/// The Activity page's content: charts (SVG strings), the per-API table and the top lists.
pub fn dashboard_view(
    q: &AnalyticsQuery,
    rows: &[AnalyticsRow],
    truncated: bool,
    names: &Names,
) -> Value {
    let report = an::series(q, rows, truncated);
    let x = buckets(q);
    let xl = x_label(q.granularity, q.from, q.to);
    let per = q.granularity.as_str();
    let by_api = |r: &AnalyticsRow| names.api(&r.api_id);
    let requests = charts::line_chart(
        &format!("Requests per {per}, per API"),
        &x,
        &lines_by(q, &x, rows, &by_api, false),
        &format!("requests / {per}"),
        &xl,
    );
    let errors = charts::line_chart(
        &format!("Errors (4xx and 5xx) per {per}, per API"),
        &x,
        &lines_by(q, &x, rows, &by_api, true),
        &format!("errors / {per}"),
        &xl,
    );
    let latency = charts::line_chart(
        "Latency percentiles (all APIs)",
        &x,
        &latency_lines(&x, &report),
        "ms",
        &xl,
    );
    let bars = |by: TopBy, label: &dyn Fn(&str) -> String| {
        let t = an::top(q, rows, by, 10, truncated);
        let list: Vec<Bar> = t
            .entries
            .iter()
            .map(|e| Bar {
                label: label(&e.id),
                value: e.totals.requests as f64,
                part: Some(e.totals.errors as f64),
            })
            .collect();
        (t, list)
    };
    let (top_devs, dev_bars) = bars(TopBy::Developer, &|id| names.developer(id));
    let (top_clients, client_bars) = bars(TopBy::Client, &|id| names.client(id));
    let apis: Vec<Value> = report
        .apis
        .iter()
        .map(|a| {
            let t = &a.totals;
            json!({"api_id": a.api_id, "name": names.api(&a.api_id), "requests": t.requests,
                   "errors": t.errors, "error_rate": pct(t.errors, t.requests),
                   "server_errors": t.server_errors,
                   "p50": ms(t.p50_ms), "p95": ms(t.p95_ms), "p99": ms(t.p99_ms),
                   "bytes_out": t.bytes_out})
        })
        .collect();
    let t = &report.totals;
    json!({
        "totals": {"requests": t.requests, "errors": t.errors, "error_rate": pct(t.errors, t.requests),
                   "p50": ms(t.p50_ms), "p95": ms(t.p95_ms), "p99": ms(t.p99_ms)},
        "charts": {
            "requests": requests, "errors": errors, "latency": latency,
            "developers": charts::bar_chart("Top developers by requests", &dev_bars, "errors"),
            "clients": charts::bar_chart("Top OAuth clients by requests", &client_bars, "errors"),
        },
        "apis": apis,
        "top_developers": top_devs.entries.len(),
        "top_clients": top_clients.entries.len(),
        "truncated": truncated,
    })
}

/// A client's quota as the usage page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaView {
    /// Requests allowed per window (`None`: unlimited, Tyk's `quota_max` of 0 or less).
    pub max: Option<i64>,
    /// Requests left in the current window, when it is known.
    pub remaining: Option<i64>,
    /// When the current window ends (unix seconds), when known.
    pub renews_at: Option<i64>,
    /// Window length, seconds.
    pub window_secs: i64,
}

/// The quota of a client from its policy's `quota_max` / `quota_renewal_rate` and the counter
/// row (if any) under the gateway's key, at `now`.
pub fn quota_view(max: i64, renewal: i64, row: Option<&QuotaRow>, now: i64) -> QuotaView {
    if max <= 0 {
        return QuotaView {
            max: None,
            remaining: None,
            renews_at: None,
            window_secs: renewal,
        };
    }
    match row {
        Some(r) if r.window_secs > 0 && now < r.window_start + r.window_secs => QuotaView {
            max: Some(max),
            remaining: Some((max - r.used).max(0)),
            renews_at: Some(r.window_start + r.window_secs),
            window_secs: renewal,
        },
        // No live window: the whole quota is left; a window starts with the next request.
        _ => QuotaView {
            max: Some(max),
            remaining: Some(max),
            renews_at: None,
            window_secs: renewal,
        },
    }
}

/// The Usage page's charts and per-client table (rows are the developer's only).
pub fn portal_view(
    q: &AnalyticsQuery,
    rows: &[AnalyticsRow],
    truncated: bool,
    names: &Names,
) -> Value {
    let x = buckets(q);
    let xl = x_label(q.granularity, q.from, q.to);
    let per = q.granularity.as_str();
    let by_client = |r: &AnalyticsRow| names.client(&r.client_id);
    let requests = charts::line_chart(
        &format!("Requests per {per}, per client"),
        &x,
        &lines_by(q, &x, rows, &by_client, false),
        &format!("requests / {per}"),
        &xl,
    );
    let errors = charts::line_chart(
        &format!("Errors (4xx and 5xx) per {per}, per client"),
        &x,
        &lines_by(q, &x, rows, &by_client, true),
        &format!("errors / {per}"),
        &xl,
    );
    let top = an::top(q, rows, TopBy::Client, 100, truncated);
    let totals: HashMap<String, Value> = top
        .entries
        .iter()
        .map(|e| {
            let t = &e.totals;
            (
                e.id.clone(),
                json!({"requests": t.requests, "errors": t.errors,
                       "error_rate": pct(t.errors, t.requests), "p95": ms(t.p95_ms)}),
            )
        })
        .collect();
    json!({"charts": {"requests": requests, "errors": errors}, "usage": totals,
           "truncated": truncated})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: i64, api: &str, client: &str, class: i64, n: i64) -> AnalyticsRow {
        let mut latency_hist = [0; gatehouse_store::ANALYTICS_BUCKETS];
        latency_hist[2] = n;
        AnalyticsRow {
            minute,
            api_id: api.into(),
            developer_id: "d1".into(),
            client_id: client.into(),
            status_class: class,
            requests: n,
            bytes_in: 0,
            bytes_out: 0,
            latency_us_sum: 2000 * n,
            latency_hist,
        }
    }

    fn query(range: &str, now: i64) -> AnalyticsQuery {
        AnalyticsQuery::parse(|k| (k == "range").then(|| range.to_owned()), now).unwrap()
    }

    #[test]
    fn buckets_cover_the_range_and_labels_fit_it() {
        let now = 1_800_000_000;
        let q = query("1h", now);
        let x = buckets(&q);
        assert_eq!(x.len(), 60);
        assert_eq!((x[0], x[59]), (now - 3600, now - 60));
        assert_eq!(x_label(q.granularity, q.from, q.to)(now), "08:00");
        let q = query("7d", now);
        assert_eq!(buckets(&q).len(), 7 * 24);
        assert_eq!(x_label(q.granularity, q.from, q.to)(now), "01-15 08:00");
        let q = query("30d", now);
        assert_eq!(x_label(q.granularity, q.from, q.to)(now), "01-15");
    }

    #[test]
    fn the_dashboard_view_has_charts_with_labels_and_a_table() {
        let now = 1_800_000_000;
        let m = now / 60 - 10;
        let rows = vec![
            row(m, "pay", "c1", 2, 7),
            row(m, "pay", "c1", 4, 3),
            row(m + 1, "<b>x</b>", "", 5, 1),
        ];
        let mut names = Names::default();
        names.apis.insert("pay".into(), "Payments".into());
        names.clients.insert("c1".into(), "App One".into());
        names
            .developers
            .insert("d1".into(), "dee@example.com".into());
        let v = dashboard_view(&query("1h", now), &rows, false, &names);
        let req = v["charts"]["requests"].as_str().unwrap();
        assert!(req.contains(">Payments (10)</text>"), "{req}");
        assert!(req.contains("&lt;b&gt;x&lt;/b&gt; (1)"), "escaped: {req}");
        assert!(!req.contains("<b>"));
        let errs = v["charts"]["errors"].as_str().unwrap();
        assert!(errs.contains(">Payments (3)</text>"), "{errs}");
        let clients = v["charts"]["clients"].as_str().unwrap();
        assert!(clients.contains(">App One (c1)</text>"), "{clients}");
        let devs = v["charts"]["developers"].as_str().unwrap();
        assert!(devs.contains(">dee@example.com</text>"), "{devs}");
        assert!(
            v["charts"]["latency"]
                .as_str()
                .unwrap()
                .contains(">p95</text>")
        );
        assert_eq!(v["apis"][0]["name"], "Payments");
        assert_eq!(v["apis"][0]["error_rate"], "30.0 %");
        assert_eq!(v["totals"]["requests"], 11);
        assert_eq!(v["totals"]["p50"], "2.50 ms");
    }

    #[test]
    fn many_groups_become_others() {
        let now = 1_800_000_000;
        let m = now / 60 - 5;
        let rows: Vec<AnalyticsRow> = (0..9)
            .map(|i| row(m, &format!("api{i}"), "", 2, 10 - i))
            .collect();
        let q = query("1h", now);
        let x = buckets(&q);
        let lines = lines_by(&q, &x, &rows, &|r| r.api_id.clone(), false);
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines[0].label, "api0 (10)");
        assert_eq!(lines[MAX_LINES].label, "others (9)");
        assert!(lines[MAX_LINES].dashed);
    }

    #[test]
    fn quotas_read_the_live_window_only() {
        let row = QuotaRow {
            key: "k".into(),
            used: 3,
            window_start: 1000,
            window_secs: 3600,
        };
        assert_eq!(
            quota_view(10, 3600, Some(&row), 2000),
            QuotaView {
                max: Some(10),
                remaining: Some(7),
                renews_at: Some(4600),
                window_secs: 3600
            }
        );
        assert_eq!(quota_view(10, 3600, Some(&row), 4600).remaining, Some(10));
        assert_eq!(quota_view(10, 3600, None, 2000).renews_at, None);
        assert_eq!(quota_view(-1, 0, Some(&row), 2000).max, None);
        let over = QuotaRow { used: 12, ..row };
        assert_eq!(quota_view(10, 3600, Some(&over), 2000).remaining, Some(0));
    }

    #[test]
    fn links_keep_filters_encoded() {
        let q = query("24h", 1_800_000_000);
        let p = picker(&q, "/activity", &[("api_id", Some("a b&c")), ("x", None)]);
        assert_eq!(
            p["presets"][0]["href"],
            "/activity?range=1h&api_id=a%20b%26c"
        );
        assert_eq!(p["presets"][1]["current"], true);
        assert_eq!(p["from"], "2027-01-14T08:00");
        assert!(p["query"].as_str().unwrap().ends_with("&api_id=a%20b%26c"));
    }
}
