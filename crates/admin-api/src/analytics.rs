//! Analytics reports over the `analytics_minutes` rows: the query parameters (shared by the admin
//! API, the dashboard's Activity page and the portal's usage page), time series per API, top
//! developers / clients / APIs, and the CSV export. No HTTP here.
//!
//! Errors are the requests of status classes 4xx and 5xx. Latency percentiles are merged from the
//! rows' histograms (see `gatehouse_telemetry::analytics`): each is the upper bound of the
//! histogram bucket holding it.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use gatehouse_store::{AnalyticsFilter, AnalyticsRow, Store, StoreError};
use gatehouse_telemetry::analytics::{BUCKETS, Counters};

/// Rows read for one report at most; beyond it the report says `truncated`.
pub const MAX_ROWS: u32 = 1_000_000;
/// Buckets one series may have at most.
pub const MAX_BUCKETS: i64 = 5_000;
/// The longest range, in days.
pub const MAX_RANGE_DAYS: i64 = 400;

/// Time series resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One point per minute.
    Minute,
    /// One point per hour.
    Hour,
    /// One point per day (UTC).
    Day,
}

impl Granularity {
    /// Seconds per bucket.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }

    /// `minute`, `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The finest resolution that keeps a range readable: minutes up to 3 hours, hours up to 7
    /// days, days beyond.
    pub fn auto(range_secs: i64) -> Self {
        if range_secs <= 3 * 3600 {
            Self::Minute
        } else if range_secs <= 7 * 86_400 {
            Self::Hour
        } else {
            Self::Day
        }
    }
}

/// A bad query parameter: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    /// The parameter's name.
    pub param: &'static str,
    /// A sentence naming it and saying what is accepted.
    pub message: String,
}

fn bad(param: &'static str, message: impl Into<String>) -> BadParam {
    BadParam {
        param,
        message: message.into(),
    }
}

/// The preset ranges of the pickers.
pub const RANGES: &[(&str, i64)] = &[
    ("1h", 3600),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
];

/// A parsed analytics query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsQuery {
    /// Start, unix seconds (inclusive; rounded down to a minute).
    pub from: i64,
    /// End, unix seconds (exclusive; rounded up to a minute).
    pub to: i64,
    /// The preset used, if any (`1h`, `24h`, `7d`, `30d`).
    pub range: Option<&'static str>,
    /// Only this API.
    pub api_id: Option<String>,
    /// Only this developer.
    pub developer_id: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
    /// Series resolution.
    pub granularity: Granularity,
}

/// Parses a time: unix seconds, or `YYYY-MM-DDTHH:MM[:SS][Z]` / `YYYY-MM-DD` (UTC; what an HTML
/// `datetime-local` input sends).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (s, "00:00"),
    };
    let num = |p: &str, len: usize| -> Option<i64> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut t = time.split(':');
    let (hh, mm) = (num(t.next()?, 2)?, num(t.next()?, 2)?);
    let ss = match t.next() {
        Some(x) => num(x, 2)?,
        None => 0,
    };
    if t.next().is_some() || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` of unix seconds.
pub fn iso(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn id_param(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<String>, BadParam> {
    match get(name) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) if v.len() > 256 || v.chars().any(char::is_control) => Err(bad(
            name,
            format!("{name} must be an id of at most 256 characters without control characters"),
        )),
        Some(v) => Ok(Some(v.trim().to_owned())),
    }
}

impl AnalyticsQuery {
    /// From query parameters (`get(name)`): `range` (`1h`, `24h`, `7d`, `30d`; default `24h`),
    /// `from` and `to` (unix seconds or `YYYY-MM-DDTHH:MM`, UTC; they override `range`),
    /// `api_id`, `developer_id`, `client_id`, `granularity` (`minute`, `hour`, `day`; default:
    /// by range).
    pub fn parse(get: impl Fn(&str) -> Option<String>, now: i64) -> Result<Self, BadParam> {
        let get = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        let range = match get("range") {
            None => None,
            Some(r) => Some(
                RANGES
                    .iter()
                    .find(|(name, _)| *name == r.trim())
                    .ok_or_else(|| {
                        bad(
                            "range",
                            format!("range must be 1h, 24h, 7d or 30d, not '{r}'"),
                        )
                    })?,
            ),
        };
        let time = |name: &'static str| -> Result<Option<i64>, BadParam> {
            get(name)
                .map(|v| {
                    parse_time(&v).ok_or_else(|| {
                        bad(
                            name,
                            format!(
                                "{name} must be unix seconds or a UTC time such as \
                                 2026-01-31T13:45, not '{v}'"
                            ),
                        )
                    })
                })
                .transpose()
        };
        let (from_p, to_p) = (time("from")?, time("to")?);
        let span = range.map_or(86_400, |(_, s)| *s);
        let to = to_p.unwrap_or(now);
        let from = from_p.unwrap_or(to - span);
        let from = from.div_euclid(60) * 60;
        let to = (to + 59).div_euclid(60) * 60;
        if from >= to {
            return Err(bad("from", "from must be before to"));
        }
        if to - from > MAX_RANGE_DAYS * 86_400 {
            return Err(bad(
                "from",
                format!("the range from..to must be at most {MAX_RANGE_DAYS} days"),
            ));
        }
        let granularity = match get("granularity").as_deref().map(str::trim) {
            None | Some("auto") => Granularity::auto(to - from),
            Some("minute") => Granularity::Minute,
            Some("hour") => Granularity::Hour,
            Some("day") => Granularity::Day,
            Some(g) => {
                return Err(bad(
                    "granularity",
                    format!("granularity must be minute, hour or day, not '{g}'"),
                ));
            }
        };
        if (to - from) / granularity.seconds() > MAX_BUCKETS {
            return Err(bad(
                "granularity",
                format!(
                    "granularity {} gives more than {MAX_BUCKETS} points over this range; \
                     choose a coarser one or a shorter range",
                    granularity.as_str()
                ),
            ));
        }
        Ok(Self {
            from,
            to,
            range: if from_p.is_none() && to_p.is_none() {
                Some(range.map_or("24h", |(n, _)| n))
            } else {
                None
            },
            api_id: id_param(&get, "api_id")?,
            developer_id: id_param(&get, "developer_id")?,
            client_id: id_param(&get, "client_id")?,
            granularity,
        })
    }

    /// The store filter.
    pub fn filter(&self) -> AnalyticsFilter {
        AnalyticsFilter {
            from_minute: self.from.div_euclid(60),
            to_minute: self.to.div_euclid(60),
            api_id: self.api_id.clone(),
            developer_id: self.developer_id.clone(),
            client_id: self.client_id.clone(),
            limit: Some(MAX_ROWS),
        }
    }

    /// Reads the rows; `true` when [`MAX_ROWS`] cut them short.
    pub async fn rows(&self, store: &dyn Store) -> Result<(Vec<AnalyticsRow>, bool), StoreError> {
        let rows = store.query_analytics(&self.filter()).await?;
        let truncated = rows.len() >= MAX_ROWS as usize;
        Ok((rows, truncated))
    }
}

/// Counters of any group of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agg {
    /// Requests, bytes, latency histogram.
    pub c: Counters,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Agg {
    /// Adds a row.
    pub fn add(&mut self, r: &AnalyticsRow) {
        let mut hist = [0u64; BUCKETS];
        for (h, v) in hist.iter_mut().zip(r.latency_hist.iter()) {
            *h = u(*v);
        }
        self.c.merge(&Counters {
            requests: u(r.requests),
            bytes_in: u(r.bytes_in),
            bytes_out: u(r.bytes_out),
            latency_us_sum: u(r.latency_us_sum),
            latency_hist: hist,
        });
        match r.status_class {
            4 => self.client_errors += u(r.requests),
            5 => self.server_errors += u(r.requests),
            _ => {}
        }
    }

    /// 4xx plus 5xx.
    pub fn errors(&self) -> u64 {
        self.client_errors + self.server_errors
    }

    /// The summary.
    pub fn totals(&self) -> Totals {
        Totals {
            requests: self.c.requests,
            errors: self.errors(),
            client_errors: self.client_errors,
            server_errors: self.server_errors,
            bytes_in: self.c.bytes_in,
            bytes_out: self.c.bytes_out,
            mean_ms: self.c.mean_ms().map(round3),
            p50_ms: self.c.percentile_ms(0.50),
            p95_ms: self.c.percentile_ms(0.95),
            p99_ms: self.c.percentile_ms(0.99),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Totals over a group of requests.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Answers with status 400 or above.
    pub errors: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Mean latency, ms (`null` without requests).
    pub mean_ms: Option<f64>,
    /// Median latency, ms: the upper bound of its histogram bucket.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

/// One time bucket of a series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Point {
    /// Bucket start, unix seconds.
    pub start: i64,
    /// Requests.
    pub requests: u64,
    /// Answers with status 400 or above.
    pub errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

/// The series of one API.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApiSeries {
    /// The API id (`""`: requests that matched no API).
    pub api_id: String,
    /// Its totals over the range.
    pub totals: Totals,
    /// Buckets with requests, in time order.
    pub points: Vec<Point>,
}

/// `GET /api/analytics/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SeriesReport {
    /// Start, unix seconds.
    pub from: i64,
    /// End (exclusive), unix seconds.
    pub to: i64,
    /// The resolution.
    pub granularity: Granularity,
    /// Seconds per bucket.
    pub bucket_seconds: i64,
    /// Over everything.
    pub totals: Totals,
    /// All APIs together, buckets with requests.
    pub overall: Vec<Point>,
    /// Per API, most requests first.
    pub apis: Vec<ApiSeries>,
    /// More rows matched than one report reads ([`MAX_ROWS`]); narrow the range.
    pub truncated: bool,
}

fn points(buckets: &BTreeMap<i64, Agg>) -> Vec<Point> {
    buckets
        .iter()
        .map(|(start, a)| Point {
            start: *start,
            requests: a.c.requests,
            errors: a.errors(),
            server_errors: a.server_errors,
            p50_ms: a.c.percentile_ms(0.50),
            p95_ms: a.c.percentile_ms(0.95),
            p99_ms: a.c.percentile_ms(0.99),
        })
        .collect()
}

/// Time series per API and overall.
pub fn series(q: &AnalyticsQuery, rows: &[AnalyticsRow], truncated: bool) -> SeriesReport {
    let step = q.granularity.seconds();
    let mut total = Agg::default();
    let mut overall: BTreeMap<i64, Agg> = BTreeMap::new();
    let mut per_api: BTreeMap<&str, (Agg, BTreeMap<i64, Agg>)> = BTreeMap::new();
    for r in rows {
        let start = (r.minute * 60).div_euclid(step) * step;
        total.add(r);
        overall.entry(start).or_default().add(r);
        let e = per_api.entry(r.api_id.as_str()).or_default();
        e.0.add(r);
        e.1.entry(start).or_default().add(r);
    }
    let mut apis: Vec<ApiSeries> = per_api
        .into_iter()
        .map(|(api, (a, b))| ApiSeries {
            api_id: api.to_owned(),
            totals: a.totals(),
            points: points(&b),
        })
        .collect();
    apis.sort_by(|a, b| {
        b.totals
            .requests
            .cmp(&a.totals.requests)
            .then_with(|| a.api_id.cmp(&b.api_id))
    });
    SeriesReport {
        from: q.from,
        to: q.to,
        granularity: q.granularity,
        bucket_seconds: step,
        totals: total.totals(),
        overall: points(&overall),
        apis,
        truncated,
    }
}

/// What `top` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TopBy {
    /// Developers (requests without a developer are left out).
    Developer,
    /// OAuth clients (requests without a client are left out).
    Client,
    /// APIs.
    Api,
}

impl TopBy {
    /// From the `by` parameter.
    pub fn parse(v: Option<&str>) -> Result<Self, BadParam> {
        match v.map(str::trim) {
            None | Some("") | Some("developer") => Ok(Self::Developer),
            Some("client") => Ok(Self::Client),
            Some("api") => Ok(Self::Api),
            Some(o) => Err(bad(
                "by",
                format!("by must be developer, client or api, not '{o}'"),
            )),
        }
    }
}

/// One entry of a top list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopEntry {
    /// The developer, client or API id.
    pub id: String,
    /// The developer of a client (for `by=client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub developer_id: Option<String>,
    /// Its totals.
    pub totals: Totals,
}

/// `GET /api/analytics/top`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopReport {
    /// Start, unix seconds.
    pub from: i64,
    /// End (exclusive), unix seconds.
    pub to: i64,
    /// What was grouped by.
    pub by: TopBy,
    /// Most requests first (ties by id).
    pub entries: Vec<TopEntry>,
    /// See [`SeriesReport::truncated`].
    pub truncated: bool,
}

/// The `limit` ids with most requests.
pub fn top(
    q: &AnalyticsQuery,
    rows: &[AnalyticsRow],
    by: TopBy,
    limit: usize,
    truncated: bool,
) -> TopReport {
    let mut groups: BTreeMap<&str, (Agg, &str)> = BTreeMap::new();
    for r in rows {
        let id = match by {
            TopBy::Developer => r.developer_id.as_str(),
            TopBy::Client => r.client_id.as_str(),
            TopBy::Api => r.api_id.as_str(),
        };
        if id.is_empty() && by != TopBy::Api {
            continue;
        }
        let e = groups
            .entry(id)
            .or_insert((Agg::default(), &r.developer_id));
        e.0.add(r);
    }
    let mut entries: Vec<TopEntry> = groups
        .into_iter()
        .map(|(id, (a, dev))| TopEntry {
            id: id.to_owned(),
            developer_id: (by == TopBy::Client && !dev.is_empty()).then(|| dev.to_owned()),
            totals: a.totals(),
        })
        .collect();
    entries.sort_by(|a, b| {
        b.totals
            .requests
            .cmp(&a.totals.requests)
            .then_with(|| a.id.cmp(&b.id))
    });
    entries.truncate(limit);
    TopReport {
        from: q.from,
        to: q.to,
        by,
        entries,
        truncated,
    }
}

/// One CSV field: quoted when needed; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet does not run it as a formula.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The CSV header.
pub const CSV_HEADER: &str = "minute_utc,api_id,developer_id,client_id,status_class,requests,\
                              errors,bytes_in,bytes_out,mean_ms,p50_ms,p95_ms,p99_ms";

/// The rows as CSV (one line per minute, API, developer, client and status class).
pub fn csv(rows: &[AnalyticsRow]) -> String {
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut out = String::with_capacity(64 + rows.len() * 96);
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for r in rows {
        let mut a = Agg::default();
        a.add(r);
        let t = a.totals();
        out.push_str(&format!(
            "{},{},{},{},{}xx,{},{},{},{},{},{},{},{}\r\n",
            iso(r.minute * 60),
            csv_field(&r.api_id),
            csv_field(&r.developer_id),
            csv_field(&r.client_id),
            r.status_class,
            t.requests,
            t.errors,
            t.bytes_in,
            t.bytes_out,
            opt(t.mean_ms),
            opt(t.p50_ms),
            opt(t.p95_ms),
            opt(t.p99_ms),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    fn q(pairs: &[(&str, &str)]) -> Result<AnalyticsQuery, BadParam> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AnalyticsQuery::parse(|k| m.get(k).cloned(), NOW)
    }

    fn row(
        minute: i64,
        api: &str,
        client: &str,
        class: i64,
        n: i64,
        bucket: usize,
    ) -> AnalyticsRow {
        let mut latency_hist = [0; gatehouse_store::ANALYTICS_BUCKETS];
        latency_hist[bucket] = n;
        AnalyticsRow {
            minute,
            api_id: api.into(),
            developer_id: if client.is_empty() {
                String::new()
            } else {
                format!("d-{client}")
            },
            client_id: client.into(),
            status_class: class,
            requests: n,
            bytes_in: n,
            bytes_out: 10 * n,
            latency_us_sum: n * 1000,
            latency_hist,
        }
    }

    #[test]
    fn times_parse_and_format() {
        assert_eq!(parse_time("1800000000"), Some(NOW));
        assert_eq!(iso(NOW), "2027-01-15T08:00:00Z");
        assert_eq!(parse_time("2027-01-15T08:00"), Some(NOW));
        assert_eq!(parse_time("2027-01-15T08:00:00Z"), Some(NOW));
        assert_eq!(parse_time("2027-01-15"), Some(NOW - 8 * 3600));
        assert_eq!(parse_time("2000-02-29T00:00"), Some(951_782_400));
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "x",
            "2027-13-01",
            "2027-01-15T25:00",
            "2027-1-15",
            "-5",
            "2027-01-15T08",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn parameters_default_validate_and_name_themselves() {
        let d = q(&[]).unwrap();
        assert_eq!((d.from, d.to, d.range), (NOW - 86_400, NOW, Some("24h")));
        assert_eq!(d.granularity, Granularity::Hour);
        let h = q(&[("range", "1h"), ("api_id", " pay ")]).unwrap();
        assert_eq!((h.to - h.from, h.granularity), (3600, Granularity::Minute));
        assert_eq!(h.api_id.as_deref(), Some("pay"));
        assert_eq!(
            q(&[("range", "30d")]).unwrap().granularity,
            Granularity::Day
        );
        let c = q(&[("from", "2027-01-15T07:00:30"), ("to", "1800000001")]).unwrap();
        assert_eq!((c.from, c.to, c.range), (NOW - 3600, NOW + 60, None));
        assert_eq!(
            q(&[("filter_me", "x"), ("api_id", "")]).unwrap().api_id,
            None,
            "empty means no filter"
        );
        for (pairs, param) in [
            (vec![("range", "2h")], "range"),
            (vec![("from", "yesterday")], "from"),
            (vec![("to", "2027-02-30T00:61")], "to"),
            (vec![("from", "1800000000"), ("to", "1700000000")], "from"),
            (vec![("granularity", "week")], "granularity"),
            (
                vec![("range", "30d"), ("granularity", "minute")],
                "granularity",
            ),
            (vec![("from", "0")], "from"),
            (vec![("client_id", "a\nb")], "client_id"),
        ] {
            let e = q(&pairs).unwrap_err();
            assert_eq!(e.param, param, "{pairs:?}: {e:?}");
            assert!(e.message.contains(param), "{e:?}");
        }
        let f = q(&[("range", "1h"), ("developer_id", "d1")])
            .unwrap()
            .filter();
        assert_eq!(
            (f.from_minute, f.to_minute, f.developer_id.as_deref()),
            (NOW / 60 - 60, NOW / 60, Some("d1"))
        );
    }

    #[test]
    fn series_group_by_bucket_and_api_with_errors_and_percentiles() {
        let m0 = NOW / 60 - 120; // two hours ago, on an hour boundary
        let rows = vec![
            row(m0, "a", "c1", 2, 7, 1),
            row(m0, "a", "c1", 4, 3, 0),
            row(m0 + 1, "a", "", 5, 1, 8),
            row(m0 + 61, "b", "c2", 2, 4, 5),
        ];
        let query = q(&[("range", "24h")]).unwrap();
        let r = series(&query, &rows, false);
        assert_eq!(r.bucket_seconds, 3600);
        assert_eq!(r.totals.requests, 15);
        assert_eq!(
            (
                r.totals.errors,
                r.totals.client_errors,
                r.totals.server_errors
            ),
            (4, 3, 1)
        );
        assert_eq!((r.totals.bytes_in, r.totals.bytes_out), (15, 150));
        assert_eq!(r.totals.mean_ms, Some(1.0));
        assert_eq!(
            r.overall
                .iter()
                .map(|p| (p.start, p.requests, p.errors))
                .collect::<Vec<_>>(),
            [(m0 * 60, 11, 4), (m0 * 60 + 3600, 4, 0)]
        );
        assert_eq!(r.apis[0].api_id, "a");
        assert_eq!(r.apis[0].totals.requests, 11);
        // a: 3 at <=0.5 ms, 7 at <=1 ms, 1 at <=250 ms.
        assert_eq!(r.apis[0].totals.p50_ms, Some(1.0));
        assert_eq!(r.apis[0].totals.p95_ms, Some(250.0));
        assert_eq!(r.apis[0].points.len(), 1);
        assert_eq!(r.apis[1].points[0].p99_ms, Some(25.0));
        let by_minute = series(&q(&[("range", "1h")]).unwrap(), &rows, false);
        assert_eq!(by_minute.overall.len(), 3);
    }

    #[test]
    fn top_lists_leave_out_the_anonymous_and_sort_by_requests() {
        let rows = vec![
            row(1, "a", "c1", 2, 2, 0),
            row(1, "a", "c2", 2, 5, 0),
            row(2, "b", "c1", 5, 4, 0),
            row(2, "b", "", 2, 100, 0),
        ];
        let query = q(&[]).unwrap();
        let t = top(&query, &rows, TopBy::Client, 10, false);
        let got: Vec<(&str, u64, u64)> = t
            .entries
            .iter()
            .map(|e| (e.id.as_str(), e.totals.requests, e.totals.errors))
            .collect();
        assert_eq!(got, [("c1", 6, 4), ("c2", 5, 0)]);
        assert_eq!(t.entries[0].developer_id.as_deref(), Some("d-c1"));
        let t = top(&query, &rows, TopBy::Api, 1, false);
        assert_eq!((t.entries[0].id.as_str(), t.entries.len()), ("b", 1));
        assert_eq!(TopBy::parse(Some("team")).unwrap_err().param, "by");
    }

    #[test]
    fn csv_is_escaped_against_injection() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
        let text = csv(&[row(NOW / 60, "=cmd", "c,1", 4, 2, 1)]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "2027-01-15T08:00:00Z,'=cmd,\"d-c,1\",\"c,1\",4xx,2,2,2,20,1,1,1,1"
        );
        assert_eq!(lines[2], "");
    }
}
