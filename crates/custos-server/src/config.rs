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
    /// TLS: when set, the service speaks only HTTPS and WSS with this
    /// certificate ([`custos_http::tls::server_config`] reads one from PEM
    /// files). `None`: plain HTTP, for loopback and for a TLS-terminating
    /// proxy in front.
    pub tls: Option<Arc<custos_http::tls::rustls::ServerConfig>>,
    /// The key directory ([`crate::directory`]): `None` runs none. Its
    /// epochs are logged in the franking log's transparency log, as the
    /// same provider; set both.
    pub key_directory: Option<crate::directory::KeyDirectoryConfig>,
    /// Known-content detection: the blinded table, the provider's secret
    /// and the manifest's threshold ([`crate::abuse::matching`]). `None`:
    /// the service serves no table and refuses vouchers (`matching_off`).
    pub matching: Option<Arc<crate::abuse::matching::MatchingService>>,
    /// Whether `serve` logs the table's root and the matching policy (with
    /// [`ServerConfig::franking_log`]'s log and key), retrying until it
    /// succeeds; `custos server --matching-table` sets it. The test kit
    /// publishes them itself.
    pub publish_matching: bool,
    /// How often `serve` logs the matching figures (statement kind 15,
    /// [`crate::abuse::matching::publish_figures`]) when they changed,
    /// with [`ServerConfig::franking_log`]'s log and key. `None`: a day
    /// when `publish_matching` is set, else never.
    pub matching_figures_every: Option<Duration>,
    /// The storage backend: `None` keeps SQLite in [`ServerConfig::data_dir`]
    /// (one server per directory); `Some(url)` (`postgres://…`) stores
    /// accounts, conversations, items and mailboxes in that PostgreSQL
    /// database, which any number of servers may share (design note 0019).
    /// On PostgreSQL `data_dir` holds only the franking key (and its log
    /// proof); nothing is ever written to a local database.
    pub database: Option<String>,
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
            tls: None,
            key_directory: None,
            matching: None,
            publish_matching: false,
            matching_figures_every: None,
            database: None,
        }
    }

    /// Switches franking on: `policy` signs delivery tags and refuses
    /// suspended accounts, and reports and moderation are served.
    pub fn with_franking(mut self, policy: Arc<FrankingPolicy>) -> Self {
        self.policy = policy.clone();
        self.franking = Some(policy);
        self
    }

    /// Runs a key directory (see [`crate::directory`]).
    pub fn with_key_directory(mut self, config: crate::directory::KeyDirectoryConfig) -> Self {
        self.key_directory = Some(config);
        self
    }

    /// Switches known-content detection on.
    pub fn with_matching(mut self, matching: crate::abuse::matching::MatchingService) -> Self {
        self.matching = Some(Arc::new(matching));
        self
    }

    /// Stores in the PostgreSQL database at `url` instead of SQLite (see
    /// [`ServerConfig::database`]).
    pub fn with_database(mut self, url: impl Into<String>) -> Self {
        self.database = Some(url.into());
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
            .field("postgres", &self.database.is_some())
            .field("retention", &self.retention)
            .field("sweep_interval", &self.sweep_interval)
            .field("limits", &self.limits)
            .field("policy", &self.policy)
            .field("tls", &self.tls.is_some())
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
    /// Storage held for one device's mailbox: unacknowledged items waiting
    /// for it, whoever sent them (default 50,000 items or 1 GiB). A
    /// submission that would take a recipient past it is refused with
    /// `429 mailbox_full`, never stored for the others and dropped for it.
    pub mailbox_quota: Quota,
    /// Storage held for what one account sent: its stored items that some
    /// recipient has not acknowledged yet (default 10,000 items or
    /// 256 MiB), refused with `429 sender_quota`. Smaller than the mailbox
    /// quota, so that one sender cannot fill anyone's mailbox alone.
    pub sender_quota: Quota,
    /// Registrations from one network prefix (/24 for IPv4, /56 for IPv6),
    /// default 20 per hour; `429 registration_limited`.
    pub registrations_per_prefix: WindowLimit,
    /// Registrations service-wide, default 1,000 per hour.
    pub registrations_global: WindowLimit,
    /// Reports filed by one account, default 30 per hour; `429 report_limited`.
    pub reports_per_account: WindowLimit,
    /// Reports filed from one network prefix, default 100 per hour.
    pub reports_per_prefix: WindowLimit,
    /// WebSocket connections one account may hold open (default 8; 0: no
    /// cap); `429 too_many_connections`.
    pub ws_max_per_account: usize,
    /// WebSocket connections open service-wide (default 10,000; 0: no cap).
    pub ws_max_total: usize,
    /// How often the service pings an open WebSocket (default 30 s). A
    /// connection that sends nothing (not even the pong its WebSocket
    /// library answers automatically) between two pings is closed, so a
    /// dead peer holds its slot for at most two intervals. Zero: no pings.
    pub ws_ping_interval: Duration,
    /// Largest attachment blob (default 16 MiB); `413 blob_too_large`.
    pub max_blob_len: u64,
    /// Blobs one account may have stored (default 1,000 blobs or 512 MiB);
    /// `429 blob_quota`. They are deleted after the item retention.
    pub blob_quota: Quota,
}

/// A storage quota: at most `items` items and `bytes` bytes (bodies). A
/// zero field is no limit on that measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Items.
    pub items: u64,
    /// Bytes of item bodies.
    pub bytes: u64,
}

impl Quota {
    /// No quota.
    pub const UNLIMITED: Quota = Quota { items: 0, bytes: 0 };
}

/// At most `max` events per `window` (fixed windows, real elapsed time,
/// in memory: a restart forgets them). `max` 0 disables the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    /// Events allowed per window.
    pub max: u32,
    /// Length of a window.
    pub window: Duration,
}

impl WindowLimit {
    /// No limit.
    pub const UNLIMITED: WindowLimit = WindowLimit {
        max: 0,
        window: Duration::from_secs(1),
    };

    /// At most `max` per hour.
    pub const fn per_hour(max: u32) -> Self {
        Self {
            max,
            window: Duration::from_secs(3600),
        }
    }
}

impl Limits {
    /// The documented sizes, with every rate, registration, report,
    /// connection and storage limit off: for tests, benchmarks and the demo,
    /// where one address plays every user and mailboxes are filled on
    /// purpose. Pings stay on.
    pub fn relaxed() -> Self {
        Self {
            ip_rate: RateLimit::UNLIMITED,
            account_rate: RateLimit::UNLIMITED,
            mailbox_quota: Quota::UNLIMITED,
            sender_quota: Quota::UNLIMITED,
            registrations_per_prefix: WindowLimit::UNLIMITED,
            registrations_global: WindowLimit::UNLIMITED,
            reports_per_account: WindowLimit::UNLIMITED,
            reports_per_prefix: WindowLimit::UNLIMITED,
            ws_max_per_account: 0,
            ws_max_total: 0,
            blob_quota: Quota::UNLIMITED,
            ..Self::default()
        }
    }
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
            mailbox_quota: Quota {
                items: 50_000,
                bytes: 1 << 30,
            },
            sender_quota: Quota {
                items: 10_000,
                bytes: 256 << 20,
            },
            registrations_per_prefix: WindowLimit::per_hour(20),
            registrations_global: WindowLimit::per_hour(1000),
            reports_per_account: WindowLimit::per_hour(30),
            reports_per_prefix: WindowLimit::per_hour(100),
            ws_max_per_account: 8,
            ws_max_total: 10_000,
            ws_ping_interval: Duration::from_secs(30),
            max_blob_len: 16 << 20,
            blob_quota: Quota {
                items: 1000,
                bytes: 512 << 20,
            },
        }
    }
}
