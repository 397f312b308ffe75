//! The custodian's HTTP API. Every error is JSON:
//! `{"error": "<code>", "message": "<what to do>"}`.
//!
//! - `POST /v1/dkg/message`: a DKG envelope from another custodian
//!   (`docs/spec/custodian-dkg.md`); `202` when filed.
//! - `GET /v1/health`: liveness and the state of every known day.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use super::Shared;
use crate::net::envelope::{self, EnvelopeError, MAX_ENVELOPE};
use crate::net::transport::DKG_PATH;
use crate::store::DayStatus;

/// An API error: HTTP status, stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route(DKG_PATH, post(dkg_message))
        .route("/v1/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_ENVELOPE))
        .with_state(shared)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/spec/custodian-dkg.md",
    )
}

async fn dkg_message(State(s): State<Arc<Shared>>, body: Bytes) -> Result<StatusCode, ApiError> {
    let opened =
        envelope::open(&s.key, &body, |pk| s.custodians.contains_key(pk)).map_err(|e| match e {
            EnvelopeError::UnknownSender | EnvelopeError::BadSignature => {
                ApiError::new(StatusCode::FORBIDDEN, "not_a_custodian", e.to_string())
            }
            EnvelopeError::NotForMe => {
                ApiError::new(StatusCode::MISDIRECTED_REQUEST, "not_for_me", e.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_envelope", e.to_string()),
        })?;
    let day = opened.day;
    let today = s.clock.today();
    if day < today || day > today.saturating_add(s.days_ahead) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "day_out_of_window",
            format!(
                "day {day} is outside this custodian's generation window {today}..={}",
                today.saturating_add(s.days_ahead)
            ),
        ));
    }
    let status = s
        .store
        .status(day)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?;
    if let Some(status) = status {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "day_done",
            format!("day {day} is already {} here", status.name()),
        ));
    }
    if !s.inbox.push(day, opened.phase, opened.from, opened.payload) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_or_cooling",
            "a message of this phase from this custodian is already filed, or the day's last attempt just failed; retry later",
        ));
    }
    if !s.inbox.is_active(day) {
        // A peer started this day's DKG: join it now rather than at the
        // next tick. A full queue means the scheduler is already awake.
        let _ = s.wake.try_send(day);
    }
    Ok(StatusCode::ACCEPTED)
}

#[derive(Serialize)]
struct DayView {
    day: u32,
    #[serde(flatten)]
    status: DayStatus,
    transcript: String,
}

async fn health(State(s): State<Arc<Shared>>) -> Result<Json<serde_json::Value>, ApiError> {
    let days = s
        .store
        .days()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()))?
        .into_iter()
        .map(|(day, status, transcript)| DayView {
            day,
            status,
            transcript,
        })
        .collect::<Vec<_>>();
    Ok(Json(json!({
        "status": "ok",
        "name": s.key.name(),
        "public_key": hex::encode(s.key.public_key()),
        "hpke_public_key": hex::encode(s.key.hpke_public_key()),
        "today": s.clock.today(),
        "days": days,
    })))
}
