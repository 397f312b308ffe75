//! Why a deployment could not be started or driven.

/// Why a deployment step failed. Each variant names the part that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key could not be generated, written or read.
    #[error("key {name}: {reason}")]
    Key {
        /// Which key.
        name: String,
        /// Why.
        reason: String,
    },
    /// The manifest is invalid or does not fit the keys on disk.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A service did not start.
    #[error("{service} did not start: {reason}")]
    Start {
        /// Which service.
        service: String,
        /// Why.
        reason: String,
    },
    /// The log refused or could not be reached.
    #[error("log: {0}")]
    Log(String),
    /// A device could not be registered.
    #[error("device {name}: {reason}")]
    Device {
        /// The account name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        secs: u64,
    },
    /// The delivery service's database refused or could not be reached.
    #[error("the service's database: {0}")]
    Database(String),
    /// A request does not fit this deployment (e.g. an index out of range).
    #[error("{0}")]
    Usage(String),
}

impl DeployError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    pub(crate) fn key(name: &str) -> impl FnOnce(String) -> Self {
        let name = name.to_owned();
        move |reason| Self::Key { name, reason }
    }

    pub(crate) fn start(service: &str) -> impl FnOnce(String) -> Self {
        let service = service.to_owned();
        move |reason| Self::Start { service, reason }
    }
}
