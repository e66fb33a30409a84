//! The Redis connection (one node or a cluster), key names, and the one Lua script.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::Slot;
use ::redis::{Client, RedisError, Script};

use crate::{Decision, Limit, LimitError, QuotaLimit, ns_to_duration};

/// The decision script (see `decide.lua`). `Script` sends `EVALSHA` and, on `NOSCRIPT` (a
/// restarted or new Redis), loads the script and sends `EVALSHA` again.
static DECIDE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("decide.lua")));

/// Members of the rate log must be unique per admitted request across all gateway nodes: a random
/// per-process prefix and a per-process sequence number.
static NODE_ID: LazyLock<u64> = LazyLock::new(|| {
    std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        std::time::SystemTime::now(),
        std::thread::current().id(),
    ))
});
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Largest number handed to the script: Lua numbers are doubles, exact up to 2^53.
const LUA_MAX: u64 = 1 << 52;

/// Settings of a [`RedisBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Deadline of every call to Redis (a decision, a peek, a reset, a ping), waiting for a
    /// connection included. A call that misses it fails with [`LimitError::Backend`]. Default
    /// 250 ms: a gateway must not hang on Redis.
    pub timeout: Duration,
    /// Deadline of one connection attempt (TCP, TLS, `AUTH`). An attempt that outlives a call's
    /// `timeout` goes on in the background, so a slow handshake still ends in a connection.
    /// Default 1 s.
    pub connect_timeout: Duration,
    /// Prefix of every key, e.g. `gatehouse:` gives `gatehouse:{<key>}:rl`. Must not contain `{`
    /// or `}` (that would put every key in one cluster slot). Default `gatehouse:`.
    pub key_prefix: String,
    /// Limits with `rate` up to this use the exact sliding log (a sorted set, one member per
    /// admitted request in the window: roughly 80-100 bytes each in Redis); above it, counter mode
    /// (a hash of at most 61 sub-window counters while `per` is unchanged). As
    /// [`crate::RateLimiterConfig::exact_log_max`]. Default 1024.
    pub exact_log_max: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            key_prefix: "gatehouse:".to_owned(),
            exact_log_max: 1024,
        }
    }
}

impl RedisConfig {
    fn validate(&self) -> Result<(), LimitError> {
        if self.key_prefix.contains(['{', '}']) {
            return Err(LimitError::Backend(
                "redis key_prefix must not contain '{' or '}'".into(),
            ));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(LimitError::Backend(
                "redis timeouts must not be zero".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A connection to Redis shared by the Redis limiters: one node through
/// [`ConnectionManager`] (multiplexed, reconnects by itself) or a Redis Cluster through
/// [`ClusterConnection`]. Cheap to clone; clones share the connection.
///
/// Constructors never touch the network: the first call connects, so a gateway starts even while
/// Redis is down (see [`crate::FailoverSessionLimiter`]). They must run inside a tokio runtime.
#[derive(Clone)]
pub struct RedisBackend {
    conn: Conn,
    cfg: Arc<RedisConfig>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field(
                "conn",
                &match self.conn {
                    Conn::Single(_) => "single",
                    Conn::Cluster(_) => "cluster",
                },
            )
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl RedisBackend {
    /// One Redis node: `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS (the
    /// process needs a rustls crypto provider, as the gateway's own TLS has), or
    /// `redis+unix:///path`. Does not connect yet.
    pub fn from_url(url: &str, cfg: RedisConfig) -> Result<Self, LimitError> {
        cfg.validate()?;
        let client = Client::open(url).map_err(backend)?;
        let mgr_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.timeout))
            // Few, short reconnection retries: each call has its own deadline anyway, and a failed
            // round starts again on the next call, so Redis coming back is noticed quickly.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mgr = ConnectionManager::new_lazy_with_config(client, mgr_cfg).map_err(backend)?;
        Self::from_connection_manager(mgr, cfg)
    }

    /// A Redis Cluster, from the URLs of some of its nodes (the rest are discovered). Does not
    /// connect yet.
    pub fn cluster<I, S>(nodes: I, cfg: RedisConfig) -> Result<Self, LimitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        cfg.validate()?;
        let nodes: Vec<String> = nodes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if nodes.is_empty() {
            return Err(LimitError::Backend(
                "a redis cluster needs at least one node URL".into(),
            ));
        }
        let client = ClusterClient::builder(nodes)
            .connection_timeout(cfg.connect_timeout)
            .response_timeout(cfg.timeout)
            .retries(2)
            .build()
            .map_err(backend)?;
        let conn = client.get_pending_async_connection_with_config(
            ClusterConfig::new()
                .set_connection_timeout(cfg.connect_timeout)
                .set_response_timeout(cfg.timeout),
        );
        Self::from_cluster_connection(conn, cfg)
    }

    /// Over an existing single-node connection manager (its own settings are kept; `cfg.timeout`
    /// still bounds every call).
    pub fn from_connection_manager(
        conn: ConnectionManager,
        cfg: RedisConfig,
    ) -> Result<Self, LimitError> {
        cfg.validate()?;
        Ok(Self {
            conn: Conn::Single(conn),
            cfg: Arc::new(cfg),
        })
    }

    /// Over an existing cluster connection.
    pub fn from_cluster_connection(
        conn: ClusterConnection,
        cfg: RedisConfig,
    ) -> Result<Self, LimitError> {
        cfg.validate()?;
        Ok(Self {
            conn: Conn::Cluster(conn),
            cfg: Arc::new(cfg),
        })
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.cfg
    }

    /// The Redis key of `key`'s rate log (a sorted set): `<prefix>{<key>}:rl`, or
    /// `<prefix><key>:rl` when `key` already holds a hash tag (`rate-limit-gold-{5f2b}`).
    pub fn rate_log_key(&self, key: &str) -> String {
        redis_key(&self.cfg.key_prefix, key, "rl")
    }

    /// The Redis key of `key`'s counter-mode counters (a hash): `<prefix>{<key>}:rlc`.
    pub fn rate_counters_key(&self, key: &str) -> String {
        redis_key(&self.cfg.key_prefix, key, "rlc")
    }

    /// The Redis key of `key`'s quota counter (a string with a TTL): `<prefix>{<key>}:quota`.
    pub fn quota_key(&self, key: &str) -> String {
        redis_key(&self.cfg.key_prefix, key, "quota")
    }

    /// Round trip to Redis (`PING`), within the call deadline. For health checks.
    pub async fn ping(&self) -> Result<(), LimitError> {
        let _: String = self.query(&::redis::cmd("PING")).await?;
        Ok(())
    }

    /// Whether two Redis keys may be used by one script: always on one node; in a cluster, only
    /// when they hash to the same slot.
    pub(crate) fn same_slot(&self, a: &str, b: &str) -> bool {
        match self.conn {
            Conn::Single(_) => true,
            Conn::Cluster(_) => Slot::for_key(a) == Slot::for_key(b),
        }
    }

    /// One rate-limit decision ("r"); an admitted request is logged as `member`.
    pub(crate) async fn rate(
        &self,
        key: &str,
        limit: Limit,
        member: &str,
    ) -> Result<RateReply, LimitError> {
        let (kl, kc) = (self.rate_log_key(key), self.rate_counters_key(key));
        let mut inv = DECIDE.prepare_invoke();
        inv.key(&kl).key(&kc).arg("r");
        self.rate_args(&mut inv, limit, member);
        let r = self.run(&inv).await?;
        Ok(RateReply {
            decision: r.rate(limit)?,
            field: r.field(),
        })
    }

    /// Undoes one recorded rate request ("rx"): `member` in log mode, one count of `field` in
    /// counter mode.
    pub(crate) async fn rate_release(
        &self,
        key: &str,
        member: &str,
        field: i64,
    ) -> Result<(), LimitError> {
        let (kl, kc) = (self.rate_log_key(key), self.rate_counters_key(key));
        let mut inv = DECIDE.prepare_invoke();
        inv.key(&kl).key(&kc).arg("rx").arg(member).arg(field);
        self.run(&inv).await.map(drop)
    }

    /// One quota decision: consume ("q") or peek ("qp").
    pub(crate) async fn quota(
        &self,
        key: &str,
        q: QuotaLimit,
        consume: bool,
    ) -> Result<Decision, LimitError> {
        let kq = self.quota_key(key);
        let mut inv = DECIDE.prepare_invoke();
        inv.key(&kq)
            .arg(if consume { "q" } else { "qp" })
            .arg(q.max.min(LUA_MAX))
            .arg(q.window_secs().min(LUA_MAX));
        self.run(&inv).await?.quota(q)
    }

    /// Rate limit then quota in one script ("rq"). The caller checks [`Self::same_slot`].
    pub(crate) async fn session(
        &self,
        rkey: &str,
        limit: Limit,
        qkey: &str,
        q: QuotaLimit,
    ) -> Result<(Decision, Decision), LimitError> {
        let (kl, kc, kq) = (
            self.rate_log_key(rkey),
            self.rate_counters_key(rkey),
            self.quota_key(qkey),
        );
        let mut inv = DECIDE.prepare_invoke();
        inv.key(&kl).key(&kc).key(&kq).arg("rq");
        self.rate_args(&mut inv, limit, &Self::new_member());
        inv.arg(q.max.min(LUA_MAX))
            .arg(q.window_secs().min(LUA_MAX));
        let r = self.run(&inv).await?;
        Ok((r.rate(limit)?, r.quota(q)?))
    }

    /// Deletes a quota window (Tyk's quota reset).
    pub(crate) async fn quota_reset(&self, key: &str) -> Result<(), LimitError> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(self.quota_key(key));
        let _: i64 = self.query(&cmd).await?;
        Ok(())
    }

    /// A fresh member for the rate log.
    pub(crate) fn new_member() -> String {
        format!("{:016x}{:x}", *NODE_ID, SEQ.fetch_add(1, Ordering::Relaxed))
    }

    fn rate_args(&self, inv: &mut ::redis::ScriptInvocation<'_>, limit: Limit, member: &str) {
        let per_us = u64::try_from(limit.per.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
        inv.arg(limit.rate.min(LUA_MAX))
            .arg(per_us.min(LUA_MAX))
            .arg(self.cfg.exact_log_max.min(LUA_MAX))
            .arg(member);
    }

    async fn run(&self, inv: &::redis::ScriptInvocation<'_>) -> Result<Reply, LimitError> {
        let fut = async {
            match self.conn.clone() {
                Conn::Single(mut c) => inv.invoke_async::<Vec<i64>>(&mut c).await,
                Conn::Cluster(mut c) => inv.invoke_async::<Vec<i64>>(&mut c).await,
            }
        };
        let v = self.deadline(fut).await?;
        Reply::parse(v)
    }

    async fn query<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> Result<T, LimitError> {
        let fut = async {
            match self.conn.clone() {
                Conn::Single(mut c) => cmd.query_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async::<T>(&mut c).await,
            }
        };
        self.deadline(fut).await
    }

    async fn deadline<T>(
        &self,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, LimitError> {
        match tokio::time::timeout(self.cfg.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LimitError::Backend(Box::new(TimedOut(self.cfg.timeout)))),
        }
    }
}

/// A Redis call that missed its deadline.
#[derive(Debug, thiserror::Error)]
#[error("redis call timed out after {0:?}")]
struct TimedOut(Duration);

/// The script's reply did not have the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from the limiter script: {0:?}")]
struct BadReply(Vec<i64>);

fn backend(e: RedisError) -> LimitError {
    LimitError::Backend(Box::new(e))
}

/// A rate decision and the counter field it recorded into (0 in log mode).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateReply {
    pub(crate) decision: Decision,
    pub(crate) field: i64,
}

/// `{ r_allowed, r_used, r_reset_us, q_allowed, q_used, q_reset_us, r_field }`.
struct Reply([i64; 7]);

impl Reply {
    fn parse(v: Vec<i64>) -> Result<Self, LimitError> {
        match <[i64; 7]>::try_from(v) {
            Ok(a) => Ok(Self(a)),
            Err(v) => Err(LimitError::Backend(Box::new(BadReply(v)))),
        }
    }

    fn part(&self, at: usize, limit: u64) -> Result<Decision, LimitError> {
        let (allowed, used, reset) = (self.0[at], self.0[at + 1], self.0[at + 2]);
        if !(0..=1).contains(&allowed) || used < 0 || reset < 0 {
            return Err(LimitError::Backend(Box::new(BadReply(self.0.to_vec()))));
        }
        let reset = ns_to_duration((reset as u64).saturating_mul(1000));
        Ok(if allowed == 1 {
            Decision::allowed(limit, limit.saturating_sub(used as u64), reset)
        } else {
            Decision::refused(limit, reset)
        })
    }

    fn rate(&self, limit: Limit) -> Result<Decision, LimitError> {
        self.part(0, limit.rate)
    }

    fn quota(&self, q: QuotaLimit) -> Result<Decision, LimitError> {
        self.part(3, q.max)
    }

    fn field(&self) -> i64 {
        self.0[6]
    }
}

/// `<prefix><key>:<suffix>` when `key` holds a Redis hash tag (a non-empty `{…}`), else
/// `<prefix>{<key>}:<suffix>`: either way every key derived from one caller key shares a cluster
/// slot, and keys that share a tag share it too.
pub(crate) fn redis_key(prefix: &str, key: &str, suffix: &str) -> String {
    if has_hash_tag(key) {
        format!("{prefix}{key}:{suffix}")
    } else {
        format!("{prefix}{{{key}}}:{suffix}")
    }
}

/// Redis Cluster's rule: the first `{`, then the first `}` after it, with something between.
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_keep_or_add_a_hash_tag() {
        assert_eq!(
            redis_key("gatehouse:", "quota-gold-5f2b", "quota"),
            "gatehouse:{quota-gold-5f2b}:quota"
        );
        assert_eq!(
            redis_key("gatehouse:", "rate-limit-gold-{5f2b}", "rl"),
            "gatehouse:rate-limit-gold-{5f2b}:rl"
        );
        // An empty tag is no tag.
        assert_eq!(redis_key("p:", "a{}b", "rl"), "p:{a{}b}:rl");
        let a = redis_key("p:", "rate-limit-gold-{5f2b}", "rl");
        let b = redis_key("p:", "quota-gold-{5f2b}", "quota");
        assert_eq!(Slot::for_key(&a), Slot::for_key(&b));
        let c = redis_key("p:", "quota-gold-5f2b", "quota");
        let d = redis_key("p:", "quota-gold-5f2b", "rl");
        assert_eq!(Slot::for_key(&c), Slot::for_key(&d));
    }

    #[test]
    fn members_are_unique() {
        let a = RedisBackend::new_member();
        let b = RedisBackend::new_member();
        assert_ne!(a, b);
        assert!(a.len() >= 17);
    }

    #[test]
    fn config_is_validated() {
        let bad = RedisConfig {
            key_prefix: "x{y}:".into(),
            ..RedisConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(RedisConfig::default().validate().is_ok());
    }
}
