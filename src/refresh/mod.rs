//! The refresh half of the rotation race: server-held sessions, and exactly one Cognito refresh
//! per session at a time across every server that shares a store.

mod memory;
mod store;

pub use memory::MemoryRefreshStore;
pub use store::{LockOutcome, RefreshStore, SaveOutcome, SessionRecord};
