//! Limits shared by several gateway nodes, kept in Redis (one node or a cluster), and the
//! failover that keeps a gateway answering while Redis does not. See the crate docs, "Shared
//! limits in Redis".

mod backend;
mod failover;
mod limiters;

pub use backend::{RedisBackend, RedisConfig};
pub use failover::{
    FailoverConfig, FailoverRateLimiter, FailoverSessionLimiter, FailoverStats, FailureMode,
    ParseFailureModeError,
};
pub use limiters::{RedisQuotaCounter, RedisRateLimiter, RedisSessionLimiter};
