//! Request rate limits: token buckets per client IP and per account.
//!
//! Buckets measure elapsed time on the monotonic clock
//! (`tokio::time::Instant`), not on the injected wall clock: a rate is a
//! property of real elapsed time, and a simulated clock that jumps a day
//! forward must not refill every bucket (nor freeze them when it stands still).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::config::RateLimit;
use crate::error::HttpRefusal;
use crate::refusal::RequestRefusal;
use crate::state::AppState;

const SHARDS: usize = 16;
const PRUNE_AT: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A set of token buckets keyed by `K`.
///
/// One bucket per key for the whole process: the shard of a key is chosen
/// with one hasher owned by the limiter, so every worker thread finds the
/// same bucket for the same key and the documented rate holds whatever the
/// number of cores.
#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    limit: RateLimit,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `key`, or says how many seconds to wait.
    pub fn check(&self, key: K) -> Result<(), u64> {
        if self.limit.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.limit.per_second);
        let burst = f64::from(self.limit.burst.max(1));
        let shard = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(m) = self.shards.get(shard) else {
            return Ok(());
        };
        let Ok(mut map) = m.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if map.len() >= PRUNE_AT {
            map.retain(|_, b| {
                let refill = now.duration_since(b.last).as_secs_f64() * rate;
                b.tokens + refill < burst
            });
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / rate).ceil();
            Err(if wait >= 1.0 { wait as u64 } else { 1 })
        }
    }
}

/// Middleware: refuses with 429 when the client's IP is over its rate.
pub(crate) async fn per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip: Option<IpAddr> = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(Err(secs)) = ip.map(|ip| state.ip_limiter.check(ip)) {
        return HttpRefusal::from(RequestRefusal::RateLimited { retry_after: secs })
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_over_time() {
        let rl = RateLimiter::new(RateLimit {
            per_second: 2,
            burst: 3,
        });
        assert!(rl.check(1u8).is_ok());
        assert!(rl.check(1u8).is_ok());
        assert!(rl.check(1u8).is_ok());
        assert_eq!(rl.check(1u8), Err(1));
        assert!(rl.check(2u8).is_ok(), "keys are independent");
        tokio::time::advance(std::time::Duration::from_millis(600)).await;
        assert!(rl.check(1u8).is_ok());
        assert!(rl.check(1u8).is_err());
    }

    /// One key gets one bucket, whichever thread serves it: with the limiter
    /// shared by eight threads (as by the worker threads of a multi-threaded
    /// runtime), the key gets its burst and no more.
    #[test]
    fn one_bucket_per_key_across_threads() {
        let rl = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 20,
        });
        let allowed: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..20).filter(|_| rl.check(7u32).is_ok()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        // 20 of burst, plus at most a token or two refilled while the test runs.
        assert!(
            (20..=22).contains(&allowed),
            "allowed {allowed} requests for one key against a burst of 20"
        );
    }
}
