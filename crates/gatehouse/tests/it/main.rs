//! Integration tests of the `gatehouse` binary: each test starts the real binary on free loopback
//! ports with its own data directory and talks to it over HTTP.

mod analytics;
mod cluster;
mod dcr;
mod demo;
mod foundation;
mod harness;
mod hostile;
mod jwt;
mod limits;
mod observability;
mod outages;
mod paths;
mod secrets;
mod security_control;
mod tls;
mod tyk_guards;
