//! The window rules, once, as plain data: used by the memory store and by the tests' models.

use super::{SessionVerdict, WindowLimits};

/// The largest window a session may keep.
pub const MAX_WINDOW: usize = 8;

/// A session entry as a store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionEntry {
    /// The distinct `iat` values kept, oldest first.
    pub iats: Vec<i64>,
    /// Whether the session is revoked.
    pub revoked: bool,
    /// When the entry expires (seconds since the epoch); it counts as absent from then on.
    pub expires_at: i64,
}

impl SessionEntry {
    /// An entry with these `iat` values (oldest first), revoked or not, expiring at
    /// `expires_at` (seconds since the epoch).
    pub fn new(iats: Vec<i64>, revoked: bool, expires_at: i64) -> Self {
        Self {
            iats,
            revoked,
            expires_at,
        }
    }
}

/// A compact, `Copy` window for in-memory use: no allocation per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Oldest first; only `len` values are used.
    iats: [i64; MAX_WINDOW],
    len: u8,
    revoked: bool,
    expires_at: i64,
}

impl Window {
    pub(crate) const EMPTY: Self = Self {
        iats: [0; MAX_WINDOW],
        len: 0,
        revoked: false,
        expires_at: i64::MIN,
    };

    /// This window as seen at `now`: an expired one is empty.
    pub(crate) fn live(self, now: i64) -> Self {
        if self.expires_at <= now {
            Self::EMPTY
        } else {
            self
        }
    }

    /// Applies one check; returns the verdict and, when the entry changed, the new window.
    pub(crate) fn advance(
        self,
        iat: i64,
        now: i64,
        limits: WindowLimits,
    ) -> (SessionVerdict, Option<Self>) {
        let mut w = self.live(now);
        if w.revoked {
            return (SessionVerdict::Revoked, None);
        }
        let size = limits.size.clamp(1, MAX_WINDOW);
        let len = usize::from(w.len);
        if len >= size && iat < w.iats[len - size] {
            return (SessionVerdict::Superseded, None);
        }
        if !w.iats[..len].contains(&iat) {
            // Insert in order, then keep the `size` newest.
            let pos = w.iats[..len].partition_point(|&v| v < iat);
            let mut values = [0; MAX_WINDOW + 1];
            values[..pos].copy_from_slice(&w.iats[..pos]);
            values[pos] = iat;
            values[pos + 1..=len].copy_from_slice(&w.iats[pos..len]);
            let new_len = (len + 1).min(size);
            let start = len + 1 - new_len;
            w.iats = [0; MAX_WINDOW];
            w.iats[..new_len].copy_from_slice(&values[start..=len]);
            w.len = new_len as u8;
        }
        w.expires_at = limits.expires_at(now);
        (SessionVerdict::Accepted, Some(w))
    }

    /// This window, revoked until `now + ttl`.
    pub(crate) fn revoke(self, now: i64, limits: WindowLimits) -> Self {
        let mut w = self.live(now);
        w.revoked = true;
        w.expires_at = limits.expires_at(now);
        w
    }

    pub(crate) fn to_entry(self, now: i64) -> Option<SessionEntry> {
        let w = self.live(now);
        (w.expires_at > now).then(|| SessionEntry {
            iats: w.iats[..usize::from(w.len)].to_vec(),
            revoked: w.revoked,
            expires_at: w.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WindowLimits = WindowLimits::new(2, 100);

    fn run(ops: &[i64]) -> (Vec<SessionVerdict>, Window) {
        let mut w = Window::EMPTY;
        let verdicts = ops
            .iter()
            .map(|&iat| {
                let (v, next) = w.advance(iat, 0, LIMITS);
                if let Some(next) = next {
                    w = next;
                }
                v
            })
            .collect();
        (verdicts, w)
    }

    #[test]
    fn keeps_current_and_previous() {
        use SessionVerdict::*;
        let (v, w) = run(&[100, 200, 100, 300, 100, 200, 300]);
        assert_eq!(
            v,
            [Accepted, Accepted, Accepted, Accepted, Superseded, Accepted, Accepted]
        );
        assert_eq!(w.to_entry(0).unwrap().iats, [200, 300]);
    }

    #[test]
    fn a_late_older_token_enters_a_window_that_is_not_full() {
        let (v, w) = run(&[200, 100]);
        assert_eq!(v, [SessionVerdict::Accepted; 2]);
        assert_eq!(w.to_entry(0).unwrap().iats, [100, 200]);
    }

    #[test]
    fn revoked_and_expired() {
        let w = Window::EMPTY.revoke(0, LIMITS);
        assert_eq!(w.advance(5, 50, LIMITS).0, SessionVerdict::Revoked);
        // After the TTL the entry is as if never seen.
        assert_eq!(w.advance(5, 100, LIMITS).0, SessionVerdict::Accepted);
        assert_eq!(w.to_entry(100), None);
    }

    #[test]
    fn larger_windows_keep_the_newest() {
        let limits = WindowLimits::new(3, 10);
        let mut w = Window::EMPTY;
        for iat in [5, 1, 9, 7, 3] {
            if let (_, Some(next)) = w.advance(iat, 0, limits) {
                w = next;
            }
        }
        assert_eq!(w.to_entry(0).unwrap().iats, [5, 7, 9]);
    }
}
