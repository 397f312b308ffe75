//! A real PostgreSQL server for tests: a fresh cluster in a folder of the
//! test's, started from the distribution's binaries on a loopback port, and
//! stopped (or killed, or restarted) by the test.
//!
//! Tests that need PostgreSQL call [`TestPostgres::start`]. Where the
//! binaries are not installed it answers `Ok(None)` and prints why, so that
//! a developer without PostgreSQL sees a skip, never a silent pass; with
//! `CUSTOS_REQUIRE_POSTGRES=1` (set by `.ci/run`) a missing PostgreSQL is an
//! error instead.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as in CI
//! containers), the cluster's folder is given to the `postgres` account and
//! the server runs under its user and group ids.
//!
//! # Security meaning
//! None: a test fixture. The cluster trusts every local connection
//! (`--auth=trust`) and listens on 127.0.0.1 only.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::DeployError;

/// The environment variable that makes a missing PostgreSQL an error.
pub const REQUIRE_ENV: &str = "CUSTOS_REQUIRE_POSTGRES";
/// The database every test cluster has, owned by [`USER`].
pub const DATABASE: &str = "custos";
/// The cluster's superuser.
pub const USER: &str = "custos";
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL cluster of a test.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    child: Option<Child>,
}

/// Whether a test that needs PostgreSQL should be skipped: `true` (with a
/// SKIPPED message) when the binaries are missing and [`REQUIRE_ENV`] is
/// not set; `false` when they are installed, or when they are required
/// (the test then fails where it starts the cluster).
pub fn skip_without_postgres() -> bool {
    if find_binaries().is_some() || std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        return false;
    }
    eprintln!(
        "SKIPPED: PostgreSQL is not installed; install the `postgresql` package to run this test"
    );
    true
}

impl TestPostgres {
    /// Creates a cluster under `dir` (which must exist) and starts it; a
    /// cluster already under `dir` is started with its data (on a new port).
    /// `Ok(None)` when PostgreSQL is not installed and not required.
    ///
    /// # Errors
    /// When the cluster cannot be created or started, or PostgreSQL is
    /// missing and [`REQUIRE_ENV`] is set.
    pub fn start(dir: &Path) -> Result<Option<Self>, DeployError> {
        let Some(bin) = find_binaries() else {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                return Err(start_error(format!(
                    "{REQUIRE_ENV}=1 but no PostgreSQL server binaries (initdb, postgres) were found"
                )));
            }
            eprintln!(
                "SKIPPED: PostgreSQL is not installed (no initdb/postgres on PATH or under \
                 /usr/lib/postgresql); install the `postgresql` package to run this test"
            );
            return Ok(None);
        };
        let owner = if running_as_root() {
            Some(postgres_account()?)
        } else {
            None
        };
        let data = dir.join("pgdata");
        std::fs::create_dir_all(dir).map_err(DeployError::io("create the PostgreSQL folder"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(DeployError::io("give the PostgreSQL folder to postgres"))?;
        }
        // A cluster already there (a deployment started again from its
        // folder) is started as it is, with its data.
        let existing = data.join("PG_VERSION").exists();
        if !existing {
            let out = as_owner(Command::new(bin.join("initdb")), owner)
                .arg("-D")
                .arg(&data)
                .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
                .stdout(Stdio::null())
                .output()
                .map_err(DeployError::io("run initdb"))?;
            if !out.status.success() {
                return Err(start_error(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        let mut pg = Self {
            bin,
            data,
            port: free_port()?,
            owner,
            child: None,
        };
        pg.launch()?;
        if !existing {
            pg.psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
        }
        Ok(Some(pg))
    }

    /// The connection URL of the test database.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs one SQL command with `psql` on `database`; its output.
    ///
    /// # Errors
    /// When `psql` fails or the command is refused.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, DeployError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .map_err(DeployError::io("run psql"))?;
        if !out.status.success() {
            return Err(DeployError::Usage(format!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Stops the server the fast way (`SIGINT`: open transactions abort,
    /// committed ones are on disk) and waits for it.
    ///
    /// # Errors
    /// When the server cannot be signalled.
    pub fn stop(&mut self) -> Result<(), DeployError> {
        if self.child.is_none() {
            return Ok(());
        }
        let out = as_owner(Command::new(self.bin.join("pg_ctl")), self.owner)
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "fast", "-w"])
            .stdout(Stdio::null())
            .output()
            .map_err(DeployError::io("run pg_ctl stop"))?;
        if let Some(mut child) = self.child.take() {
            if !out.status.success() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        Ok(())
    }

    /// Kills the server's postmaster with `SIGKILL`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data (after
    /// [`Self::stop`] or [`Self::kill`]); it recovers from its write-ahead log.
    ///
    /// # Errors
    /// When it does not come up in time.
    pub fn restart(&mut self) -> Result<(), DeployError> {
        self.stop()?;
        self.launch()
    }

    fn launch(&mut self) -> Result<(), DeployError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = std::fs::File::create(self.data.with_extension("log"))
                .map_err(DeployError::io("create the PostgreSQL log"))?;
            let child = as_owner(Command::new(self.bin.join("postgres")), self.owner)
                .arg("-D")
                .arg(&self.data)
                .args(["-p", &self.port.to_string(), "-k", ""])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(DeployError::io("start postgres"))?;
            self.child = Some(child);
            match self.await_ready(deadline)? {
                true => return Ok(()),
                // After a kill, the old server's backends may hold the port
                // and the lock file for a moment: start again.
                false => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// `true` once the server accepts connections; `false` if it exited.
    fn await_ready(&mut self, deadline: Instant) -> Result<bool, DeployError> {
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map_err(DeployError::io("run pg_isready"))?;
            if ready.success() {
                return Ok(true);
            }
            let exited = self
                .child
                .as_mut()
                .map(|c| c.try_wait())
                .transpose()
                .map_err(DeployError::io("wait for postgres"))?
                .flatten();
            if Instant::now() > deadline {
                return Err(match exited {
                    Some(status) => start_error(format!(
                        "postgres exited ({status}); see {}",
                        self.data.with_extension("log").display()
                    )),
                    None => DeployError::Timeout {
                        what: "PostgreSQL to accept connections".into(),
                        secs: START_TIMEOUT.as_secs(),
                    },
                });
            }
            if exited.is_some() {
                self.child = None;
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn start_error(reason: String) -> DeployError {
    DeployError::Start {
        service: "PostgreSQL".into(),
        reason,
    }
}

/// The folder holding `initdb`, `postgres`, `pg_ctl`, `pg_isready` and
/// `psql`: on `PATH`, or the newest under `/usr/lib/postgresql/*/bin`.
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_ctl", "pg_isready", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.reverse();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|d| has_all(d))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The user and group ids of the `postgres` account.
fn postgres_account() -> Result<(u32, u32), DeployError> {
    let id = |flag: &str| -> Result<u32, DeployError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(DeployError::io("look up the postgres account"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                start_error(
                    "running as root, and there is no `postgres` account to run the server as"
                        .into(),
                )
            })
    };
    Ok((id("-u")?, id("-g")?))
}

fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

fn free_port() -> Result<u16, DeployError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(DeployError::io("find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(DeployError::io("find a free port"))?
        .port())
}
