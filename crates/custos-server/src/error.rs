//! Errors: [`ServerError`] for starting and running the service, [`ApiError`]
//! for what a client is told.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custos_wire::WireError;

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
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
}

/// An error answered to a client: a status and the JSON body
/// `{"error": code, "message": text}` (plus `current_epoch` for a stale
/// commit). Over the WebSocket it becomes a `Refused` frame with the same
/// status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (4xx client fault, 5xx service fault).
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `stale_epoch`.
    pub code: &'static str,
    /// Human-readable explanation, saying how to fix it where possible.
    pub message: String,
    /// For `stale_epoch`: the conversation's current epoch.
    pub current_epoch: Option<u64>,
    /// For `rate_limited`: seconds to wait (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            current_epoch: None,
            retry_after: None,
        }
    }

    /// 400 with code `bad_request`-like `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: missing, unknown or expired token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 409 `stale_epoch` carrying the current epoch.
    pub fn stale_epoch(sent: u64, current: u64) -> Self {
        Self {
            current_epoch: Some(current),
            ..Self::conflict(
                "stale_epoch",
                format!(
                    "commit for epoch {sent} refused: the conversation is at epoch {current}; \
                     fetch and apply the winning commit, then retry"
                ),
            )
        }
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 429 with a `Retry-After` of `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry after {secs} s"),
            )
        }
    }

    /// 500: a fault of the service. The detail is logged, not sent.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed; try again later",
        )
    }

    /// 503: the service is shutting down.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is shutting down; retry shortly",
        )
    }

    /// A malformed, non-canonical or out-of-bounds encoding (400). Callers
    /// check the actual size first, so that 413 means the input really is too
    /// large rather than that a length field claims so.
    pub fn wire(what: &str, err: &WireError) -> Self {
        Self::bad_request("malformed", format!("{what} does not decode: {err}"))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal("database error", err)
    }
}

impl IntoResponse for ApiError {
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
