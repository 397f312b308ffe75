//! Configuration of a delivery service instance.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::abuse::franking::FrankingPolicy;
use crate::abuse::franking_log::FrankingLogConfig;
use crate::abuse::policy::{DeliveryPolicy, OpenPolicy};

/// One day, the unit of `--retention-days`.
pub const DAY: Duration = Duration::from_secs(86_400);

/// Everything [`crate::serve`] needs besides the listener, the clock and the
/// shutdown signal.
#[derive(Clone)]
pub struct ServerConfig {
    /// Directory of the database (`custos-server.db` and its WAL). Created if
    /// missing. Only one running service may use it at a time (a lock file
    /// enforces this).
    pub data_dir: PathBuf,
    /// How long an item is kept when not every recipient acknowledged it
    /// (default 30 days), measured on the injected clock.
    pub retention: Duration,
    /// How often (real time) the retention sweeper runs. Each run uses the
    /// injected clock's current time to decide what has expired.
    pub sweep_interval: Duration,
    /// Size, rate and batch limits.
    pub limits: Limits,
    /// Admission (suspension) and delivery-tag hook; see [`DeliveryPolicy`].
    pub policy: Arc<dyn DeliveryPolicy>,
    /// Franking (delivery tags, reports, moderation). `None` disables
    /// `GET /v1/franking-key`, reports and moderation; set it with
    /// [`ServerConfig::with_franking`].
    pub franking: Option<Arc<FrankingPolicy>>,
    /// Where the franking key is published ([`crate::abuse::franking_log`]).
    /// `None`: in no log, and every report package says so.
    pub franking_log: Option<Arc<FrankingLogConfig>>,
    /// How long after midnight (UTC, injected clock) chains of the day
    /// before are still accepted (default [`DEFAULT_DAY_GRACE`]). After it,
    /// only today's chains are: a day's escrow key then covers what was
    /// accepted on that day plus this grace, and no more. Set it to the
    /// manifest's `policy.day_grace_secs`, which recipients enforce.
    pub day_grace: Duration,
}

/// Default grace after midnight for chains of the day before: 10 minutes.
pub const DEFAULT_DAY_GRACE: Duration = Duration::from_secs(600);

impl ServerConfig {
    /// A configuration with the defaults of the API spec, storing in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            retention: DAY.saturating_mul(30),
            sweep_interval: Duration::from_secs(60),
            limits: Limits::default(),
            policy: Arc::new(OpenPolicy),
            franking: None,
            franking_log: None,
            day_grace: DEFAULT_DAY_GRACE,
        }
    }

    /// Switches franking on: `policy` signs delivery tags and refuses
    /// suspended accounts, and reports and moderation are served.
    pub fn with_franking(mut self, policy: Arc<FrankingPolicy>) -> Self {
        self.policy = policy.clone();
        self.franking = Some(policy);
        self
    }

    /// Publishes the franking key in a transparency log: `serve` keeps
    /// trying in the background until the key's inclusion is proven.
    /// Meaningful only with [`ServerConfig::with_franking`].
    pub fn with_franking_log(mut self, log: FrankingLogConfig) -> Self {
        self.franking_log = Some(Arc::new(log));
        self
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("retention", &self.retention)
            .field("sweep_interval", &self.sweep_interval)
            .field("limits", &self.limits)
            .field("policy", &self.policy)
            .finish()
    }
}

/// A token bucket: `per_second` tokens are added each second up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate, in requests per second. 0 disables the limit.
    pub per_second: u32,
    /// Largest burst.
    pub burst: u32,
}

impl RateLimit {
    /// No limit at all (for benchmarks and tests that are not about limits).
    pub const UNLIMITED: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };
}

/// Size, rate and batching limits. The envelope size limit (256 KiB) is not
/// here: it is fixed by the wire format (`custos_wire::envelope::MAX_ENVELOPE_LEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON request body (default 1 MiB).
    pub max_json_body: usize,
    /// Requests per client IP address, all routes (a WebSocket counts once).
    pub ip_rate: RateLimit,
    /// Authenticated requests plus WebSocket submissions, per account.
    pub account_rate: RateLimit,
    /// KeyPackages per upload call (default 100).
    pub max_key_packages_per_call: usize,
    /// Largest KeyPackage, decoded (default 64 KiB).
    pub max_key_package_len: usize,
    /// Ordinary KeyPackages stored per account (default 1,000).
    pub max_stored_key_packages: u64,
    /// Members of one conversation (default 1,000).
    pub max_members: usize,
    /// Submissions a WebSocket may have waiting for their commit (default 256).
    pub ws_max_in_flight: usize,
    /// Operations the writer folds into one transaction (default 4,096).
    pub max_batch: usize,
    /// Accounts whose recent login answers are remembered before expired
    /// ones are swept (default 100,000). Issuing a challenge keeps nothing.
    pub max_challenges: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_body: 1024 * 1024,
            ip_rate: RateLimit {
                per_second: 100,
                burst: 200,
            },
            account_rate: RateLimit {
                per_second: 500,
                burst: 1000,
            },
            max_key_packages_per_call: 100,
            max_key_package_len: 64 * 1024,
            max_stored_key_packages: 1000,
            max_members: 1000,
            ws_max_in_flight: 256,
            max_batch: 4096,
            max_challenges: 100_000,
        }
    }
}
