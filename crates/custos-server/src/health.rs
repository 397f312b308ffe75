//! Liveness and readiness for load balancers: `GET /healthz` and
//! `GET /readyz` (and the older `GET /v1/health`).
//!
//! # Security meaning
//! None beyond availability: both answer without a session and reveal only
//! whether this process can serve. `/readyz` is `200` only when the
//! database (SQLite, or PostgreSQL through the pool) answers a query within [`READY_TIMEOUT`], the writer that
//! commits every accepted item is running, and the service is not stopping;
//! otherwise `503 unavailable`, so that a balancer routes around it.

use std::time::Duration;

use axum::extract::State;

use crate::error::HttpRefusal;
use crate::state::AppState;

/// How long `/readyz` waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz` (and `/v1/health`): the process is up and serving HTTP.
pub(crate) async fn live() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: `200 {"status": "ready"}` when the service can accept
/// writes, `503 unavailable` with the reason otherwise.
pub(crate) async fn ready(
    State(state): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, HttpRefusal> {
    if *state.shutdown.borrow() {
        return Err(not_ready("the service is stopping"));
    }
    if !state.writer.is_running() {
        return Err(not_ready("the writer has stopped"));
    }
    let answered = match &state.pg {
        Some(pg) => tokio::time::timeout(
            READY_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pg.pool()),
        )
        .await
        .map(|r| r.map(i64::from)),
        None => {
            tokio::time::timeout(
                READY_TIMEOUT,
                sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&state.pool),
            )
            .await
        }
    };
    match answered {
        Ok(Ok(1)) => Ok(axum::Json(serde_json::json!({ "status": "ready" }))),
        Ok(Ok(_)) => Err(not_ready("the database answered wrongly")),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            Err(not_ready("the database does not answer"))
        }
        Err(_) => Err(not_ready("the database does not answer in time")),
    }
}

fn not_ready(why: &str) -> HttpRefusal {
    tracing::debug!(why, "not ready");
    HttpRefusal::unavailable()
}
