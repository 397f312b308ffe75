//! Request rate limits: token buckets per client IP and per account.
//!
//! Buckets measure elapsed time on the monotonic clock
//! (`tokio::time::Instant`), not on the injected wall clock: a rate is a
//! property of real elapsed time, and a simulated clock that jumps a day
//! forward must not refill every bucket (nor freeze them when it stands still).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custos_http::tls::PeerAddr;
use tokio::time::Instant;

use crate::config::{Limits, RateLimit, WindowLimit};
use crate::error::HttpRefusal;
use crate::refusal::{LimitRefusal, RequestRefusal};
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

/// Counts events per key in fixed windows of real elapsed time: at most
/// `max` per window, then refused until the window ends. Kept in memory and
/// bounded: when a shard grows past a bound, windows that ended are dropped.
#[derive(Debug)]
pub(crate) struct WindowLimiter<K> {
    limit: WindowLimit,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, (Instant, u32)>>>,
}

impl<K: Hash + Eq + Copy> WindowLimiter<K> {
    pub fn new(limit: WindowLimit) -> Self {
        Self {
            limit,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Counts one event for `key`, or says how many seconds remain in the
    /// window that is full.
    pub fn check(&self, key: K) -> Result<(), u64> {
        if self.limit.max == 0 {
            return Ok(());
        }
        let shard = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(m) = self.shards.get(shard) else {
            return Ok(());
        };
        let Ok(mut map) = m.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let window = self.limit.window;
        if map.len() >= PRUNE_AT {
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = map.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit.max {
            let left = window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The network prefix an address is counted under: its /24 for IPv4
/// (IPv4-mapped IPv6 included), its /56 for IPv6, the usual allocation to
/// one customer, so that one subscriber's addresses share one count.
pub(crate) fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => v4_prefix(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_prefix(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 72) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

fn v4_prefix(v4: std::net::Ipv4Addr) -> IpAddr {
    IpAddr::V4((u32::from(v4) & 0xffff_ff00).into())
}

/// The per-window limits of registrations and reports, and the WebSocket
/// connection counts: everything of item 9 that lives outside the writer.
#[derive(Debug)]
pub(crate) struct Guards {
    pub registrations_per_prefix: WindowLimiter<IpAddr>,
    pub registrations_global: WindowLimiter<()>,
    pub reports_per_account: WindowLimiter<i64>,
    pub reports_per_prefix: WindowLimiter<IpAddr>,
    pub connections: Arc<Connections>,
}

impl Guards {
    pub fn new(limits: &Limits) -> Self {
        Self {
            registrations_per_prefix: WindowLimiter::new(limits.registrations_per_prefix),
            registrations_global: WindowLimiter::new(limits.registrations_global),
            reports_per_account: WindowLimiter::new(limits.reports_per_account),
            reports_per_prefix: WindowLimiter::new(limits.reports_per_prefix),
            connections: Arc::new(Connections::new(
                limits.ws_max_per_account,
                limits.ws_max_total,
            )),
        }
    }

    /// Counts a registration from `ip`: its prefix first, then the service.
    pub fn registration(&self, ip: Option<IpAddr>) -> Result<(), LimitRefusal> {
        if let Some(ip) = ip {
            self.registrations_per_prefix
                .check(prefix(ip))
                .map_err(|retry_after| LimitRefusal::RegistrationLimited {
                    scope: "from your network",
                    retry_after,
                })?;
        }
        self.registrations_global.check(()).map_err(|retry_after| {
            LimitRefusal::RegistrationLimited {
                scope: "on this service",
                retry_after,
            }
        })
    }

    /// Counts a report by `account` from `ip`.
    pub fn report(&self, account: i64, ip: Option<IpAddr>) -> Result<(), LimitRefusal> {
        self.reports_per_account
            .check(account)
            .map_err(|retry_after| LimitRefusal::ReportLimited {
                scope: "from your account",
                retry_after,
            })?;
        if let Some(ip) = ip {
            self.reports_per_prefix
                .check(prefix(ip))
                .map_err(|retry_after| LimitRefusal::ReportLimited {
                    scope: "from your network",
                    retry_after,
                })?;
        }
        Ok(())
    }
}

/// Open WebSocket connections, per account and in total.
#[derive(Debug)]
pub(crate) struct Connections {
    per_account: usize,
    total_max: usize,
    open: Mutex<(HashMap<i64, usize>, usize)>,
}

impl Connections {
    fn new(per_account: usize, total_max: usize) -> Self {
        Self {
            per_account,
            total_max,
            open: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Takes a connection slot for `account`, released when the returned
    /// guard drops (the connection ends, or the upgrade never happens).
    pub fn open(self: &Arc<Self>, account: i64) -> Result<ConnectionSlot, LimitRefusal> {
        let Ok(mut open) = self.open.lock() else {
            return Err(LimitRefusal::TooManyConnections {
                scope: "on this service",
            });
        };
        let (per, total) = &mut *open;
        if self.total_max > 0 && *total >= self.total_max {
            return Err(LimitRefusal::TooManyConnections {
                scope: "on this service",
            });
        }
        let mine = per.entry(account).or_insert(0);
        if self.per_account > 0 && *mine >= self.per_account {
            return Err(LimitRefusal::TooManyConnections {
                scope: "for your account",
            });
        }
        *mine += 1;
        *total += 1;
        Ok(ConnectionSlot {
            connections: self.clone(),
            account,
        })
    }
}

/// One open connection's place in [`Connections`].
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    connections: Arc<Connections>,
    account: i64,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.connections.open.lock() {
            let (per, total) = &mut *open;
            *total = total.saturating_sub(1);
            if let Some(n) = per.get_mut(&self.account) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per.remove(&self.account);
                }
            }
        }
    }
}

/// The client's address, as the listener saw it (a reverse proxy in front
/// makes every client one address: put the limits there instead). `None`
/// when the service runs without connection info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<PeerAddr>>()
                .map(|c| c.0.0.ip()),
        ))
    }
}

/// Middleware: refuses with 429 when the client's IP is over its rate.
pub(crate) async fn per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip: Option<IpAddr> = req
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|c| c.0.0.ip());
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

    #[tokio::test(start_paused = true)]
    async fn window_counts_then_resets() {
        let w = WindowLimiter::new(WindowLimit {
            max: 2,
            window: std::time::Duration::from_secs(10),
        });
        assert!(w.check(1u8).is_ok());
        assert!(w.check(1u8).is_ok());
        assert_eq!(w.check(1u8), Err(10));
        assert!(w.check(2u8).is_ok());
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        assert!(w.check(1u8).is_ok());
    }

    #[test]
    fn prefixes() {
        let p = |s: &str| prefix(s.parse().unwrap()).to_string();
        assert_eq!(p("192.0.2.77"), "192.0.2.0");
        assert_eq!(p("::ffff:192.0.2.77"), "192.0.2.0");
        assert_eq!(p("2001:db8:1:2ff:1:2:3:4"), "2001:db8:1:200::");
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
