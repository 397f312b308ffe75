//! The HTTP face of the release path: `POST /v1/release`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{Releaser, ShareSource, refusal_body};

/// Largest request body accepted (a request with every field at its bound).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// A router with `POST /v1/release` served by `releaser`; the custodian
/// service merges it into its own router.
pub fn router<S: ShareSource + 'static>(releaser: Arc<Releaser<S>>) -> Router {
    Router::new()
        .route("/v1/release", post(handle::<S>))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(releaser)
}

/// The handler: the encoded response with 200, or the refusal's status and
/// JSON body.
pub async fn handle<S: ShareSource + 'static>(
    State(releaser): State<Arc<Releaser<S>>>,
    body: Bytes,
) -> Response {
    match releaser.release(&body).await {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(refusal) => {
            let status =
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                refusal_body(&refusal),
            )
                .into_response()
        }
    }
}
