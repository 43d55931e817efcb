//! The session-window rules written once more, from the specification and independently of
//! `src/session/window.rs`: the oracle every store is compared with.

use std::collections::HashMap;

use tower_cognito::session::{SessionEntry, SessionVerdict, WindowLimits};

/// Sessions by key: the N newest distinct `iat`s (ascending), a revoked flag, an expiry.
#[derive(Debug, Clone, Default)]
pub struct WindowModel {
    entries: HashMap<String, SessionEntry>,
}

impl WindowModel {
    /// The entry of `key` as of `now`: `None` once expired, as if never seen.
    pub fn live(&self, key: &str, now: i64) -> Option<SessionEntry> {
        self.entries
            .get(key)
            .filter(|e| e.expires_at > now)
            .cloned()
    }

    /// Revoked refuses; older than the `size` newest kept values is superseded; otherwise a new
    /// value enters (the `size` newest stay), a known one changes nothing but the expiry.
    pub fn check(&mut self, key: &str, iat: i64, now: i64, limits: WindowLimits) -> SessionVerdict {
        let mut entry = self
            .live(key, now)
            .unwrap_or(SessionEntry::new(Vec::new(), false, 0));
        if entry.revoked {
            return SessionVerdict::Revoked;
        }
        let len = entry.iats.len();
        if len >= limits.size && iat < entry.iats[len - limits.size] {
            return SessionVerdict::Superseded;
        }
        if !entry.iats.contains(&iat) {
            entry.iats.push(iat);
            entry.iats.sort_unstable();
            while entry.iats.len() > limits.size {
                entry.iats.remove(0);
            }
        }
        entry.expires_at = now.saturating_add(limits.ttl_secs);
        self.entries.insert(key.to_owned(), entry);
        SessionVerdict::Accepted
    }

    /// Keeps the live window, revoked until `now + ttl`.
    pub fn revoke(&mut self, key: &str, now: i64, limits: WindowLimits) {
        let iats = self.live(key, now).map(|e| e.iats).unwrap_or_default();
        self.entries.insert(
            key.to_owned(),
            SessionEntry::new(iats, true, now.saturating_add(limits.ttl_secs)),
        );
    }
}

/// xorshift64*: deterministic pseudo-random numbers for the model tests, so a failing sequence
/// can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next number, below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
