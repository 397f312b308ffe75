//! The one source of time for every Custos service.
//!
//! Every service reads time through a [`Clock`], never from the system
//! directly, so that tests and the demo can make days pass, keys be erased and
//! embargoes end within seconds, through the same code paths a real deployment
//! uses.
//!
//! # Security meaning
//! Time decides which escrow day a chain belongs to, which day keys are erased
//! and when a warrant's embargo ends. Production must use [`SystemClock`]. The
//! simulated clock can only be built through [`dangerous::simulated`], so that
//! its use is visible in review.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one UTC day.
pub const MILLIS_PER_DAY: u64 = 86_400_000;

/// A source of wall-clock time, in milliseconds since the Unix epoch (UTC).
///
/// Implementations must be cheap to call and safe to share between threads.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Current time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Current time in whole seconds since the Unix epoch.
    fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }

    /// Current UTC day number: `unix_seconds / 86400`.
    fn today(&self) -> u32 {
        day_of_millis(self.now_millis())
    }
}

/// A shareable clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The UTC day number that contains `millis` (saturating at `u32::MAX`).
pub fn day_of_millis(millis: u64) -> u32 {
    u32::try_from(millis / MILLIS_PER_DAY).unwrap_or(u32::MAX)
}

/// The operating system's clock. The only clock for production use.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// Returns the system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to. Build it with [`dangerous::simulated`].
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    millis: Arc<AtomicU64>,
}

impl SimulatedClock {
    /// Moves time forward by `millis`.
    pub fn advance_millis(&self, millis: u64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Moves time forward by whole days.
    pub fn advance_days(&self, days: u64) {
        self.advance_millis(days.saturating_mul(MILLIS_PER_DAY));
    }

    /// Sets the time. Moving it backwards is allowed, to test that services
    /// refuse to act on a clock that went back.
    pub fn set_millis(&self, millis: u64) {
        self.millis.store(millis, Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`] (sharing the same time).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for SimulatedClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

/// Risky switches. Nothing here belongs in a production deployment.
pub mod dangerous {
    use super::*;

    /// A simulated clock starting at `start_millis`, for tests and the demo.
    pub fn simulated(start_millis: u64) -> SimulatedClock {
        SimulatedClock {
            millis: Arc::new(AtomicU64::new(start_millis)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_days() {
        let clock = dangerous::simulated(MILLIS_PER_DAY * 20_000 + 5);
        let shared = clock.shared();
        assert_eq!(shared.today(), 20_000);
        clock.advance_days(2);
        assert_eq!(shared.today(), 20_002);
        assert_eq!(shared.now_millis(), MILLIS_PER_DAY * 20_002 + 5);
    }

    #[test]
    fn system_clock_is_after_2025() {
        assert!(SystemClock.today() > 20_000);
    }
}
