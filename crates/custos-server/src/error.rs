//! Errors: [`DeliveryServiceError`] for starting and running the service,
//! [`HttpRefusal`] for what a client is told (built from the typed refusals
//! of [`crate::refusal`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::refusal::{Refusal, RequestRefusal};

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryServiceError {
    /// The data directory could not be created or opened.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another service instance holds the data directory.
    #[error(
        "data directory {0} is in use by another custos server; stop it or choose another --data"
    )]
    DataDirLocked(std::path::PathBuf),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database was written by a newer version of the service.
    #[error(
        "database schema version {found} is newer than this build's {supported}; upgrade custos"
    )]
    SchemaTooNew {
        /// Version found.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// Serving HTTP failed.
    #[error("HTTP server error: {0}")]
    Io(#[from] std::io::Error),
    /// The key directory could not be opened.
    #[error("key directory: {0}")]
    KeyDirectory(String),
}

/// A refusal as the client receives it: a status and the JSON body
/// `{"error": code, "message": text}` (plus `current_epoch` for a stale
/// commit). Over the WebSocket it becomes a `Refused` frame with the same
/// status. Built from any [`Refusal`] with `?` or `.into()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRefusal {
    /// HTTP status (4xx client fault, 5xx service fault).
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `stale_epoch` ([`Refusal::code`]).
    pub code: &'static str,
    /// Human-readable explanation, saying how to fix it where possible.
    pub message: String,
    /// For `stale_epoch`: the conversation's current epoch.
    pub current_epoch: Option<u64>,
    /// For `rate_limited`: seconds to wait (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl<R: Refusal> From<R> for HttpRefusal {
    fn from(r: R) -> Self {
        Self {
            status: r.status(),
            code: r.code(),
            message: r.to_string(),
            current_epoch: r.current_epoch(),
            retry_after: r.retry_after(),
        }
    }
}

impl HttpRefusal {
    /// 500: a fault of the service. The detail is logged, not sent.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "{context}");
        RequestRefusal::Internal.into()
    }

    /// 503: the service is shutting down.
    pub fn unavailable() -> Self {
        RequestRefusal::Unavailable.into()
    }
}

impl From<sqlx::Error> for HttpRefusal {
    /// A database that cannot be reached (connection refused or lost, pool
    /// exhausted or closed, PostgreSQL shutting down) is `503
    /// database_unavailable`, which a client retries; any other database
    /// error is a `500` whose detail is logged.
    fn from(err: sqlx::Error) -> Self {
        if database_unreachable(&err) {
            tracing::warn!(%err, "the database does not answer");
            return RequestRefusal::DatabaseUnavailable.into();
        }
        Self::internal("database error", err)
    }
}

/// Whether `err` says the database could not be reached, rather than that
/// it refused the statement.
pub(crate) fn database_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        // SQLSTATE classes 08 (connection exception) and 57P (operator
        // intervention: admin shutdown, crash shutdown, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

impl IntoResponse for HttpRefusal {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let (Some(epoch), Some(obj)) = (self.current_epoch, body.as_object_mut()) {
            obj.insert("current_epoch".into(), epoch.into());
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
