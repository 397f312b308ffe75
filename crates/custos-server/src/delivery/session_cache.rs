//! Sessions this process has already read from its store, kept in memory
//! so that an authenticated request does not read the database again for
//! a token it has seen (the session lookup was one SQLite or PostgreSQL
//! round trip per request, the largest cost of a small request after the
//! HTTP parsing itself).
//!
//! # Security meaning
//! - A session row never changes once written: no route edits or revokes
//!   one, and it leaves the database only once expired (the retention
//!   sweep deletes `expires_at <= now`). A cached entry is therefore the
//!   row the store would return, and [`SessionCache::get`] refuses it from
//!   its expiry on, by the same clock and the same comparison as the read
//!   path: the verdict on every token is the one a database read gives.
//!   A route that revokes sessions before their expiry would have to
//!   remove them here too (and, on PostgreSQL, on every server).
//! - Only sessions found and unexpired are kept: a token the store does
//!   not know is looked up again on every request (on PostgreSQL another
//!   server may have opened it since), and an unknown token cannot fill
//!   the cache.
//! - Keyed by the token's SHA-256, as the store keys it: the cache holds no
//!   token.
//! - Bounded: at most [`MAX_ENTRIES`]; a full shard first drops its expired
//!   entries, then everything (the next request of each session reads the
//!   store again).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// Most sessions kept (about 100 bytes each).
pub(crate) const MAX_ENTRIES: usize = 64 * 1024;
const SHARDS: usize = 16;
const PER_SHARD: usize = MAX_ENTRIES / SHARDS;

/// A session as the store returned it.
#[derive(Debug, Clone)]
pub(crate) struct CachedSession {
    /// Expiry in ms on the service's clock.
    pub expires_at: i64,
    pub device_id: i64,
    pub account_id: i64,
    pub name: Arc<str>,
}

/// The sessions of this process, by token hash.
#[derive(Debug)]
pub(crate) struct SessionCache {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<[u8; 32], CachedSession>>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl SessionCache {
    fn shard(&self, token_hash: &[u8; 32]) -> Option<&Mutex<HashMap<[u8; 32], CachedSession>>> {
        let i = usize::try_from(self.hasher.hash_one(token_hash) % SHARDS as u64).unwrap_or(0);
        self.shards.get(i)
    }

    /// The session of `token_hash` if it is kept and unexpired at `now`
    /// (ms, the service's clock); an expired one is dropped.
    pub(crate) fn get(&self, token_hash: &[u8; 32], now: i64) -> Option<CachedSession> {
        let mut map = self.shard(token_hash)?.lock().ok()?;
        let session = map.get(token_hash)?;
        if session.expires_at <= now {
            map.remove(token_hash);
            return None;
        }
        Some(session.clone())
    }

    /// Keeps `session`, which the store has just returned for
    /// `token_hash` and the caller found unexpired at `now`.
    pub(crate) fn put(&self, token_hash: [u8; 32], session: CachedSession, now: i64) {
        let Some(shard) = self.shard(&token_hash) else {
            return;
        };
        let Ok(mut map) = shard.lock() else {
            return;
        };
        if map.len() >= PER_SHARD && !map.contains_key(&token_hash) {
            map.retain(|_, s| s.expires_at > now);
            if map.len() >= PER_SHARD {
                map.clear();
            }
        }
        map.insert(token_hash, session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_at: i64) -> CachedSession {
        CachedSession {
            expires_at,
            device_id: 7,
            account_id: 3,
            name: "alice".into(),
        }
    }

    #[test]
    fn a_kept_session_is_refused_from_its_expiry_on_and_dropped() {
        let cache = SessionCache::default();
        cache.put([1; 32], session(1_000), 0);
        assert_eq!(cache.get(&[1; 32], 999).map(|s| s.account_id), Some(3));
        assert!(
            cache.get(&[1; 32], 1_000).is_none(),
            "expired at its expiry"
        );
        assert!(
            cache.get(&[1; 32], 0).is_none(),
            "an expired session is dropped, not kept for a clock that goes back"
        );
        assert!(cache.get(&[2; 32], 0).is_none(), "never put");
    }

    #[test]
    fn a_full_cache_stays_within_its_bound() {
        let cache = SessionCache::default();
        for i in 0..(MAX_ENTRIES as u32 + 5_000) {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            cache.put(h, session(10), 0);
        }
        let kept: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= MAX_ENTRIES, "{kept} kept");
        assert!(kept > 0);
        // Expired entries go first when a shard is full.
        let cache = SessionCache::default();
        for i in 0..(MAX_ENTRIES as u32) {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            cache.put(h, session(5), 0);
        }
        let fresh = [0xff; 32];
        cache.put(fresh, session(100), 50);
        assert!(cache.get(&fresh, 60).is_some());
    }
}
