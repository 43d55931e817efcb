//! The refresh half of the rotation race: server-held sessions, and exactly one Cognito refresh
//! per session at a time across every server that shares a store.

mod memory;
mod store;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

pub use memory::MemoryRefreshStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresRefreshStore;
#[cfg(feature = "redis")]
pub use redis::RedisRefreshStore;
pub use store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
