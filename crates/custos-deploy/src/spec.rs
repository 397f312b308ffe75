//! What a deployment consists of: how many witnesses and custodians, the
//! policy, the clock, and whether custodians and the delivery service run.

use std::time::Duration;

use custos_clock::SharedClock;
use custos_custodian::Timing;
use custos_server::ServerConfig;
use custos_wire::manifest::{Participant, Policy};

/// The shape of a deployment. [`DeploymentSpec::new`] gives the reference
/// deployment of DESIGN.md: 2 witnesses (quorum 2), 5 custodians
/// (threshold 3) running the DKG one day ahead, and the delivery service
/// with its franking key in the log.
#[derive(Clone)]
pub struct DeploymentSpec {
    /// Domain suffix of every participant name.
    pub domain: String,
    /// Witnesses started and named in the manifest.
    pub witnesses: usize,
    /// Cosignatures a checkpoint needs.
    pub witness_quorum: usize,
    /// Custodians named in the manifest.
    pub custodians: usize,
    /// Custodians needed to open a conversation-day.
    pub threshold: usize,
    /// Whether and how custodians run.
    pub custodian_mode: CustodianMode,
    /// The delivery service, if it runs.
    pub server: Option<ServerSpec>,
    /// The manifest's policy.
    pub policy: Policy,
    /// Participants added to the manifest as they are (e.g. a second court).
    pub extra_participants: Vec<Participant>,
    /// The one clock of every service; a simulated clock lets days pass.
    pub clock: SharedClock,
    /// How long to wait for the witness quorum, day keys and other
    /// asynchronous effects before giving up.
    pub patience: Duration,
    /// Whether the manifest names a fault-injecting proxy
    /// ([`crate::proxy`]) as the log's endpoint instead of the log itself,
    /// so that tests can make the log misbehave towards every party that
    /// follows the manifest. The deployment's own log client
    /// ([`crate::Deployment::log`]) talks to the log directly. Such a
    /// deployment cannot be restarted from its folder.
    pub log_proxy: bool,
    /// The provider's key directory (docs/design/0016-key-transparency.md):
    /// `Some(interval)` runs one publishing an epoch every `interval`, and
    /// the manifest names its VRF key, so that devices check every member
    /// key against it.
    pub key_directory: Option<Duration>,
    /// Known-content detection with a test list ([`crate::matching`]).
    pub matching: Option<crate::matching::MatchingSpec>,
    /// How many delivery servers run on a PostgreSQL backend, all on its
    /// one database; devices that [`crate::Deployment::register`] makes
    /// are spread across them in turn. Ignored on SQLite (one server).
    pub servers: usize,
}

impl std::fmt::Debug for DeploymentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentSpec")
            .field("domain", &self.domain)
            .field("witnesses", &self.witnesses)
            .field("witness_quorum", &self.witness_quorum)
            .field("custodians", &self.custodians)
            .field("threshold", &self.threshold)
            .field("custodian_mode", &self.custodian_mode)
            .field("server", &self.server.is_some())
            .field("log_proxy", &self.log_proxy)
            .finish_non_exhaustive()
    }
}

/// Whether the manifest's custodians run as services.
#[derive(Debug, Clone)]
pub enum CustodianMode {
    /// Every custodian except those in `down` runs `custos custodian serve`
    /// (DKG over HTTP, day keys in the log, release endpoint). The others
    /// keep their manifest endpoint, where connections are refused.
    Services {
        /// Days after today whose keys are generated in advance.
        days_ahead: u32,
        /// DKG and scheduler timing.
        timing: Timing,
        /// Indices of custodians that do not start.
        down: Vec<usize>,
        /// Warrants per authority per month that each custodian serves.
        monthly_quota: u32,
    },
    /// Custodians are keys in the manifest only; their endpoint's listener
    /// is kept for the caller ([`crate::Deployment::take_custodian_listener`]),
    /// and day keys are dealt with [`crate::Deployment::publish_dealt_day`].
    KeysOnly,
}

impl CustodianMode {
    /// Services generating `days_ahead` days ahead, with timings suited to
    /// loopback.
    pub fn services(days_ahead: u32) -> Self {
        Self::Services {
            days_ahead,
            timing: loopback_timing(),
            down: Vec::new(),
            monthly_quota: custos_custodian::release::DEFAULT_MONTHLY_QUOTA,
        }
    }
}

/// DKG timings for services on one machine: short phase timeouts so a
/// custodian that is down costs seconds, not minutes.
pub fn loopback_timing() -> Timing {
    Timing {
        phase_timeout: Duration::from_secs(3),
        peer_wait: Duration::from_secs(30),
        tick: Duration::from_millis(150),
        witness_timeout: Duration::from_secs(20),
    }
}

/// Where the delivery service stores its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerBackend {
    /// SQLite in the deployment's `server/` folder (one server).
    #[default]
    Sqlite,
    /// A PostgreSQL cluster of the deployment's own
    /// ([`crate::postgres::TestPostgres`], in `postgres/`), which further
    /// servers can share ([`crate::Deployment::start_another_server`]).
    Postgres,
}

/// The variable that runs the test suites on PostgreSQL:
/// `CUSTOS_TEST_BACKEND=postgres`.
pub const TEST_BACKEND_VAR: &str = "CUSTOS_TEST_BACKEND";

impl ServerBackend {
    /// The backend the test suites run on: PostgreSQL under
    /// `CUSTOS_TEST_BACKEND=postgres` (with two servers, see
    /// [`DeploymentSpec::servers`]), SQLite otherwise.
    pub fn from_test_env() -> Self {
        match std::env::var(TEST_BACKEND_VAR) {
            Ok(b) if b == "postgres" => Self::Postgres,
            _ => Self::Sqlite,
        }
    }
}

/// How the delivery service runs.
#[derive(Clone, Copy)]
pub struct ServerSpec {
    /// Where it listens; `None` picks a free loopback port.
    pub listen: Option<std::net::SocketAddr>,
    /// Its storage backend.
    pub backend: ServerBackend,
    /// Whether the provider publishes its franking key in the log.
    pub franking_in_log: bool,
    /// Adjusts the configuration before the service starts.
    pub configure: fn(&mut ServerConfig),
}

impl ServerSpec {
    /// The service as `custos up` runs it: franking key in the log, the
    /// documented rate limits.
    pub fn production() -> Self {
        Self {
            listen: None,
            backend: ServerBackend::Sqlite,
            franking_in_log: true,
            configure: |_| {},
        }
    }

    /// For tests and the demo: no rate, registration, report, connection
    /// or storage limits (one address plays every user), fast sweeps; on
    /// the backend [`ServerBackend::from_test_env`] names.
    pub fn unlimited() -> Self {
        Self {
            listen: None,
            backend: ServerBackend::from_test_env(),
            franking_in_log: true,
            configure: |c| {
                c.limits = custos_server::Limits::relaxed();
                c.sweep_interval = Duration::from_millis(50);
                c.matching_figures_every = Some(Duration::from_millis(200));
            },
        }
    }
}

impl ServerSpec {
    /// As [`ServerSpec::unlimited`], but the service franks nothing: no
    /// delivery tags, no franking key in the log. For tests of other
    /// features that alter what the service says about a delivery (its
    /// time, its sequence number), which a tag would refuse first.
    pub fn unlimited_without_franking() -> Self {
        Self {
            listen: None,
            backend: ServerBackend::from_test_env(),
            franking_in_log: false,
            configure: |c| {
                (Self::unlimited().configure)(c);
                c.franking = None;
                c.franking_log = None;
            },
        }
    }
}

impl DeploymentSpec {
    /// The reference deployment under `domain`, on `clock`.
    pub fn new(domain: &str, clock: SharedClock) -> Self {
        Self {
            domain: domain.to_owned(),
            witnesses: 2,
            witness_quorum: 2,
            custodians: 5,
            threshold: 3,
            custodian_mode: CustodianMode::services(1),
            server: Some(ServerSpec::unlimited()),
            policy: Policy::default(),
            extra_participants: Vec::new(),
            clock,
            patience: Duration::from_secs(60),
            log_proxy: false,
            key_directory: None,
            matching: None,
            servers: match ServerBackend::from_test_env() {
                ServerBackend::Postgres => 2,
                ServerBackend::Sqlite => 1,
            },
        }
    }

    /// With `n` delivery servers on the PostgreSQL backend (see
    /// [`DeploymentSpec::servers`]).
    pub fn with_servers(mut self, n: usize) -> Self {
        self.servers = n.max(1);
        self
    }

    /// With known-content detection against a test list.
    pub fn with_matching(mut self, matching: crate::matching::MatchingSpec) -> Self {
        self.matching = Some(matching);
        self
    }

    /// `n` custodians with threshold `t`.
    pub fn custodians(mut self, n: usize, t: usize, mode: CustodianMode) -> Self {
        self.custodians = n;
        self.threshold = t;
        self.custodian_mode = mode;
        self
    }

    /// Without the delivery service.
    pub fn without_server(mut self) -> Self {
        self.server = None;
        self
    }

    /// With the provider's key directory, publishing every `interval`.
    pub fn with_key_directory(mut self, interval: Duration) -> Self {
        self.key_directory = Some(interval);
        self
    }

    /// Runs the delivery service as `spec` says.
    pub fn with_server(mut self, spec: ServerSpec) -> Self {
        self.server = Some(spec);
        self
    }

    /// With the manifest's `policy`.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// With the log behind a fault-injecting proxy (see
    /// [`DeploymentSpec::log_proxy`]).
    pub fn with_log_proxy(mut self) -> Self {
        self.log_proxy = true;
        self
    }
}
