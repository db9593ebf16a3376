//! What shiplog's tests share, so that each test says only what it is about:
//!
//! - [`TestDb`]: a PostgreSQL database of the test's own, created and migrated
//!   as `shiplog serve` does on a fresh machine, dropped when the test ends (also
//!   when it panics).
//! - [`eventually`]: awaits a condition for a bounded time that one setting,
//!   `SHIPLOG_TEST_TIME_SCALE`, stretches on a slow machine; a failure names what
//!   was awaited and what was last seen.
//! - [`events`]: the domain events tests build by hand, one builder each.
//! - [`registry`]: a real OCI registry (Debian's `docker-registry`) on a free
//!   loopback port, with pushes of small images through its HTTP API, and basic
//!   auth and push notifications when asked for.
//! - [`oidc`]: an OIDC identity provider on a free loopback port (discovery
//!   document and JWKS, rotation, outage) and the committed test keys that sign
//!   its tokens.
//! - [`throttle`]: a reverse proxy in front of a registry that counts the
//!   requests it forwards and answers `429 Too Many Requests` when told to.
//!
//! A dev-dependency only (`publish = false`). It depends on no crate that uses
//! it, so a test of `shiplog-infrastructure` or `shiplog-application` compiles
//! their code once; the in-process server (`TestApp`) needs `shiplog-api` and
//! stays with the API's tests (`tests/api/helpers.rs`).

pub mod db;
pub mod events;
pub mod oidc;
pub mod registry;
pub mod throttle;
pub mod time;

pub use db::{pg_base, TestDb};
pub use oidc::{SigningKey, TestIdp};
pub use registry::{Notify, Pushed, Registry, RegistryOptions};
pub use throttle::{Seen, ThrottleProxy};
pub use time::{eventually, eventually_within, scaled, time_scale, DEFAULT_BUDGET};
