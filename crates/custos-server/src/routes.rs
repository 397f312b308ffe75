//! The HTTP surface: shared state, the JSON body extractor, and the router.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::routing::{get, post};
use custos_clock::SharedClock;
use custos_wire::frames::MAX_ITEM_BODY_LEN;
use serde::de::DeserializeOwned;
use sqlx::SqlitePool;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::limits::RateLimiter;
use crate::mailbox::Hub;
use crate::writer::WriterHandle;
use crate::{auth, conversations, keypackages, limits, mailbox, moderation, ws};

/// Everything a request handler may use.
pub(crate) struct Inner {
    pub pool: SqlitePool,
    pub clock: SharedClock,
    pub config: ServerConfig,
    pub writer: WriterHandle,
    pub hub: Arc<Hub>,
    /// Outstanding challenges: challenge -> (account name, expiry ms).
    pub challenges: Mutex<HashMap<[u8; 32], (String, u64)>>,
    pub ip_limiter: RateLimiter<IpAddr>,
    pub account_limiter: RateLimiter<i64>,
    pub shutdown: watch::Receiver<bool>,
}

/// Shared state of the router.
pub(crate) type AppState = Arc<Inner>;

/// Largest valid Submit frame: its header (version, kind, request id, item
/// kind, conversation, body length) around a 256 KiB item.
pub(crate) const MAX_SUBMIT_FRAME: usize = 1 + 1 + 8 + 1 + 16 + 4 + MAX_ITEM_BODY_LEN;
/// Body limit of the item endpoint (a little over the largest frame, so that
/// a frame just too large is answered by the frame check).
pub(crate) const MAX_SUBMIT_BODY: usize = MAX_SUBMIT_FRAME + 1024;

/// A JSON request body: at most the configured size (413), valid JSON
/// with exactly the expected fields (400 otherwise). The content type is not
/// checked.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!(
                    "the body exceeds {} bytes",
                    state.config.limits.max_json_body
                ))
            } else {
                ApiError::bad_request("bad_body", e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("bad_json", format!("invalid JSON body: {e}")))
    }
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no_route",
        "no such endpoint; see docs/spec/delivery-api.md",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see docs/spec/delivery-api.md",
    )
}

/// The whole API of docs/spec/delivery-api.md.
pub(crate) fn router(state: AppState) -> Router {
    let json_limit = state.config.limits.max_json_body;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/accounts", post(auth::register))
        .route("/v1/auth/challenge", post(auth::challenge))
        .route("/v1/auth/session", post(auth::session))
        .route("/v1/key-packages", post(keypackages::upload))
        .route("/v1/key-packages/claim", post(keypackages::claim))
        .route("/v1/key-packages/count", get(keypackages::count))
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/v1/conversations/{id}/commits",
            post(conversations::commit),
        )
        .route(
            "/v1/conversations/{id}/items",
            post(conversations::submit_item).layer(DefaultBodyLimit::max(MAX_SUBMIT_BODY)),
        )
        .route("/v1/mailbox", get(mailbox::get_mailbox))
        .route("/v1/mailbox/ack", post(mailbox::post_ack))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/franking-key", get(moderation::franking_key))
        .route(
            "/v1/reports",
            post(moderation::submit_report).layer(DefaultBodyLimit::max(
                custos_wire::report::MAX_REPORT_LEN + 1024,
            )),
        )
        .route("/v1/moderation/reports", get(moderation::list))
        .route("/v1/moderation/reports/{id}", get(moderation::show))
        .route(
            "/v1/moderation/reports/{id}/resolve",
            post(moderation::resolve),
        )
        .route("/v1/moderation/stats", get(moderation::stats))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::per_ip,
        ))
        .with_state(state)
}
