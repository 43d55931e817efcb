//! The integration tests, as one binary: each file of `tests/it/` is a module, and `support` is
//! the test issuer they share (the local Cognito of `tower-cognito-testing` as their JWKS
//! endpoint, real keys, real Redis and PostgreSQL).
//!
//! One binary rather than one per file: each would link aws-lc-rs, axum and jsonwebtoken again,
//! and on two cores linking dominated the build. Run one file's tests with a filter on its
//! module, for example `cargo test --all-features --test it -- failing_deps::`.
//!
//! `tests/browser.rs` stays a binary of its own: it drives an outside browser against a spawned
//! server and times two tabs against each other, which a machine busy with these tests would
//! disturb.

mod support;

mod alb;
mod axum_router;
#[cfg(feature = "refresh")]
mod bff;
mod circuit_breaker;
mod claims_view;
mod emulator_pools;
mod failing_deps;
mod grpc;
mod hostile;
mod jwks_cache;
mod jwks_proxy;
mod lifetime;
mod m2m;
#[cfg(feature = "metrics")]
mod metrics;
mod pools;
mod postgres_connect;
mod postgres_store;
mod readiness;
mod redis_cluster;
mod redis_fast_fail;
mod redis_store;
#[cfg(feature = "refresh")]
mod refresh_store;
mod rejections;
#[cfg(feature = "axum")]
mod server_example;
mod session_behaviour;
mod session_faults;
mod session_model;
mod session_race;
mod store_outages;
mod support_selftest;
mod token_cache;
mod token_sources;
mod verify_props;
