//! JSON error bodies, bounded request bodies and strict extractors of the
//! log and witness servers.
//!
//! Every refused request gets a status code and a body
//! `{"error": "<code>", "message": "<what to fix>"}`; handlers never panic on
//! request bytes.

pub mod tls;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custos_tlog::log_api::ErrorBody;

/// An HTTP error response.
#[derive(Debug)]
pub struct ApiError {
    /// Status.
    pub status: StatusCode,
    /// Code for [`ErrorBody::error`].
    pub code: &'static str,
    /// Message for [`ErrorBody::message`].
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 for server-side failures; the message is logged, not detailed to the client.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl ApiError {
    /// 500 for a poisoned lock (an earlier internal failure).
    pub fn internal_lock<T>(_: T) -> Self {
        Self::internal("state lock poisoned")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

/// Reads a request body of at most `limit` bytes; 413 (JSON) beyond it.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body is larger than {limit} bytes"),
            )
        })
}

/// Fallback for paths the server does not serve: a JSON `404`.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see docs/spec for the API")
}

/// Fallback for a served path asked with another method: a JSON `405`.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see docs/spec for the API",
    )
}

/// A query string that must parse as `T`; anything else is a JSON `400`
/// with code `bad_query`.
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for StrictQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| StrictQuery(v))
            .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
    }
}
