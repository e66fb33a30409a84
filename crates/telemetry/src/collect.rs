//! Scrape-time collectors: each reads its source when `/metrics` is scraped and encodes it with
//! the definitions of [`crate::names`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use crate::access_log::LogCounters;
use crate::names::{self, Kind, MetricDef};
use crate::outcome::{AuthOutcome, ErrorSource, LimitKind, StatusClass};
use crate::series::SeriesTable;
use crate::sources::{JwksUrlReport, LimiterReport};

/// Starts a metric family: its `# HELP` and `# TYPE` lines.
fn family<'a>(
    enc: &'a mut DescriptorEncoder<'_>,
    def: &'a MetricDef,
) -> Result<MetricEncoder<'a>, fmt::Error> {
    let t = match def.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    enc.encode_descriptor(def.name, def.help, None, t)
}

fn counter(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, v: u64) -> fmt::Result {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn gauge(
    m: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    v: &impl EncodeGaugeValue,
) -> fmt::Result {
    m.encode_family(labels)?.encode_gauge(v)
}

/// The request metrics of every API.
#[derive(Debug)]
pub(crate) struct RequestsCollector(pub(crate) Arc<SeriesTable>);

impl Collector for RequestsCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let used = self.0.used();
        {
            let mut m = family(&mut enc, &names::REQUESTS)?;
            for s in &used {
                for class in StatusClass::ALL {
                    for outcome in AuthOutcome::ALL {
                        let n = s.requests(*class, *outcome);
                        if n > 0 {
                            let labels = [
                                ("api", s.api_id()),
                                ("status_class", class.as_str()),
                                ("auth", outcome.as_str()),
                            ];
                            counter(&mut m, &labels, n)?;
                        }
                    }
                }
            }
        }
        for (def, upstream) in [
            (&names::REQUEST_DURATION, false),
            (&names::UPSTREAM_DURATION, true),
        ] {
            let mut m = family(&mut enc, def)?;
            for s in &used {
                let h = if upstream { &s.upstream } else { &s.duration };
                let (sum, count, buckets) = h.snapshot();
                if count == 0 {
                    continue;
                }
                let labels = [("api", s.api_id())];
                m.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        for (def, inbound) in [
            (&names::REQUEST_BYTES, true),
            (&names::RESPONSE_BYTES, false),
        ] {
            let mut m = family(&mut enc, def)?;
            for s in &used {
                let (i, o) = s.bytes();
                counter(&mut m, &[("api", s.api_id())], if inbound { i } else { o })?;
            }
        }
        {
            let mut m = family(&mut enc, &names::LIMIT_REJECTIONS)?;
            for s in &used {
                for kind in LimitKind::ALL {
                    let n = s.rejections(*kind);
                    if n > 0 {
                        counter(&mut m, &[("api", s.api_id()), ("limit", kind.as_str())], n)?;
                    }
                }
            }
        }
        let mut m = family(&mut enc, &names::ERRORS)?;
        for s in &used {
            for source in ErrorSource::ALL {
                let n = s.errors(*source);
                if n > 0 {
                    counter(
                        &mut m,
                        &[("api", s.api_id()), ("source", source.as_str())],
                        n,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// The access log's counters.
#[derive(Debug)]
pub(crate) struct LogCollector(pub(crate) Arc<LogCounters>);

impl Collector for LogCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let c = &self.0;
        family(&mut enc, &names::ACCESS_LOG_LINES)?
            .encode_counter::<NoLabelSet, u64, u64>(&c.lines.load(Relaxed), None)?;
        let mut m = family(&mut enc, &names::ACCESS_LOG_DROPPED)?;
        counter(
            &mut m,
            &[("reason", "queue_full")],
            c.queue_full.load(Relaxed),
        )?;
        counter(
            &mut m,
            &[("reason", "write_error")],
            c.write_errors.load(Relaxed),
        )
    }
}

/// The analytics recorder's statistics.
#[derive(Debug)]
pub(crate) struct AnalyticsCollector(pub(crate) Arc<crate::analytics::AnalyticsRecorder>);

impl Collector for AnalyticsCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let a = &self.0;
        family(&mut enc, &names::ANALYTICS_DROPPED)?
            .encode_counter::<NoLabelSet, u64, u64>(&a.dropped(), None)?;
        family(&mut enc, &names::ANALYTICS_FLUSH_FAILURES)?
            .encode_counter::<NoLabelSet, u64, u64>(&a.flush_failures(), None)?;
        family(&mut enc, &names::ANALYTICS_PENDING_KEYS)?.encode_gauge(&(a.pending_keys() as i64))
    }
}

/// A JWKS URL as a label: without user info, query or fragment (they may hold credentials).
pub fn url_label(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}{host}{path}")
}

/// Where JWKS statistics come from at scrape time.
pub(crate) type JwksSource = Box<dyn Fn() -> Vec<JwksUrlReport> + Send + Sync>;

/// Where a failover limiter's statistics come from at scrape time.
pub(crate) type FailoverSource = Box<dyn Fn() -> LimiterReport + Send + Sync>;

/// Reads the JWKS cache's statistics.
pub(crate) struct JwksCollector(pub(crate) JwksSource);

impl fmt::Debug for JwksCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwksCollector")
    }
}

#[derive(Default)]
struct UrlAgg {
    fetches: u64,
    failures: u64,
    unknown_kid: u64,
    suppressed: u64,
    changes: u64,
    age: Option<f64>,
    keys: u64,
    usable: bool,
    stale: bool,
}

impl Collector for JwksCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let urls = (self.0)();
        // Two URLs differing only in what the label leaves out are added up.
        let mut by_label: BTreeMap<String, UrlAgg> = BTreeMap::new();
        for u in &urls {
            let a = by_label.entry(url_label(&u.url)).or_insert_with(|| UrlAgg {
                usable: true,
                ..UrlAgg::default()
            });
            a.fetches += u.fetches;
            a.failures += u.fetch_failures;
            a.unknown_kid += u.unknown_kid_refetches;
            a.suppressed += u.refetches_suppressed;
            a.changes += u.key_set_changes;
            a.keys += u.keys as u64;
            a.usable &= u.usable;
            a.stale |= u.stale;
            if let Some(age) = u.age {
                let s = age.as_secs_f64();
                a.age = Some(a.age.map_or(s, |prev: f64| prev.max(s)));
            }
        }
        type Get = fn(&UrlAgg) -> u64;
        let counters: [(&MetricDef, Get); 5] = [
            (&names::JWKS_FETCHES, |a| a.fetches),
            (&names::JWKS_FETCH_FAILURES, |a| a.failures),
            (&names::JWKS_UNKNOWN_KID_REFETCHES, |a| a.unknown_kid),
            (&names::JWKS_REFETCHES_SUPPRESSED, |a| a.suppressed),
            (&names::JWKS_KEY_SET_CHANGES, |a| a.changes),
        ];
        for (def, get) in counters {
            let mut m = family(&mut enc, def)?;
            for (url, a) in &by_label {
                counter(&mut m, &[("url", url.as_str())], get(a))?;
            }
        }
        {
            let mut m = family(&mut enc, &names::JWKS_CACHE_AGE)?;
            for (url, a) in &by_label {
                if let Some(age) = a.age {
                    gauge(&mut m, &[("url", url.as_str())], &age)?;
                }
            }
        }
        let gauges: [(&MetricDef, Get); 3] = [
            (&names::JWKS_KEYS, |a| a.keys),
            (&names::JWKS_USABLE, |a| u64::from(a.usable)),
            (&names::JWKS_STALE, |a| u64::from(a.stale)),
        ];
        for (def, get) in gauges {
            let mut m = family(&mut enc, def)?;
            for (url, a) in &by_label {
                gauge(&mut m, &[("url", url.as_str())], &get(a))?;
            }
        }
        Ok(())
    }
}

/// Reads failover limiters' statistics.
pub(crate) struct FailoverCollector(pub(crate) Vec<(&'static str, FailoverSource)>);

impl fmt::Debug for FailoverCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Collector for FailoverCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let stats: Vec<(&str, LimiterReport)> = self.0.iter().map(|(n, f)| (*n, f())).collect();
        type Get = fn(&LimiterReport) -> u64;
        let counters: [(&MetricDef, Get); 4] = [
            (&names::LIMITER_BACKEND_ERRORS, |s| s.backend_errors),
            (&names::LIMITER_FALLBACKS, |s| s.fallbacks),
            (&names::LIMITER_UNAVAILABLE, |s| s.unavailable),
            (&names::LIMITER_RECOVERIES, |s| s.recoveries),
        ];
        for (def, get) in counters {
            let mut m = family(&mut enc, def)?;
            for (name, s) in &stats {
                counter(&mut m, &[("limiter", *name)], get(s))?;
            }
        }
        let mut m = family(&mut enc, &names::LIMITER_BACKEND_UP)?;
        for (name, s) in &stats {
            gauge(&mut m, &[("limiter", *name)], &u64::from(s.backend_up))?;
        }
        Ok(())
    }
}

/// Version and start time.
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    pub(crate) started_unix: f64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        gauge(
            &mut family(&mut enc, &names::BUILD_INFO)?,
            &[("version", env!("CARGO_PKG_VERSION"))],
            &1u64,
        )?;
        family(&mut enc, &names::START_TIME)?.encode_gauge(&self.started_unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_labels_lose_credentials() {
        assert_eq!(
            url_label("https://u:p@idp.example/.well-known/jwks.json?key=secret#x"),
            "https://idp.example/.well-known/jwks.json"
        );
        assert_eq!(
            url_label("http://127.0.0.1:9/jwks"),
            "http://127.0.0.1:9/jwks"
        );
        assert_eq!(url_label("https://idp?x=1"), "https://idp");
    }
}
