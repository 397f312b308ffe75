//! KeyPackages: upload, claim one at a time, and a last-resort package that
//! is handed out (and kept) only when no ordinary package is left.
//!
//! The service stores them opaquely (it does not parse MLS); clients check
//! them, and later key transparency binds them to identities.

use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::ids::validate_account_name;
use serde::Deserialize;

use crate::delivery::auth::{Authed, b64};
use crate::error::HttpRefusal;
use crate::refusal::KeyPackageRefusal;
use crate::state::{AppState, JsonBody};

/// Body of `POST /v1/key-packages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadBody {
    key_packages: Vec<String>,
    #[serde(default)]
    last_resort: Option<String>,
}

/// `POST /v1/key-packages`.
pub(crate) async fn upload(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<UploadBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    let limits = &state.config.limits;
    if body.key_packages.len() > limits.max_key_packages_per_call {
        return Err(KeyPackageRefusal::TooMany(limits.max_key_packages_per_call).into());
    }
    if body.key_packages.is_empty() && body.last_resort.is_none() {
        return Err(KeyPackageRefusal::Empty(
            "send at least one KeyPackage or a last-resort package",
        )
        .into());
    }
    let decode = |s: &str| -> Result<Vec<u8>, HttpRefusal> {
        let kp = b64("key_package", s, limits.max_key_package_len)?;
        if kp.is_empty() {
            return Err(KeyPackageRefusal::Empty("a KeyPackage is empty").into());
        }
        Ok(kp)
    };
    let packages = body
        .key_packages
        .iter()
        .map(|s| decode(s))
        .collect::<Result<Vec<_>, _>>()?;
    let last_resort = body.last_resort.as_deref().map(decode).transpose()?;

    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM key_packages WHERE account_id = ? AND last_resort = 0",
    )
    .bind(auth.account_id)
    .fetch_one(&mut *tx)
    .await?;
    let after = u64::try_from(stored)
        .unwrap_or(0)
        .saturating_add(u64::try_from(packages.len()).unwrap_or(u64::MAX));
    if after > limits.max_stored_key_packages {
        return Err(KeyPackageRefusal::KeyPackageQuota {
            max: limits.max_stored_key_packages,
            stored,
        }
        .into());
    }
    for kp in &packages {
        sqlx::query("INSERT INTO key_packages (account_id, last_resort, data) VALUES (?, 0, ?)")
            .bind(auth.account_id)
            .bind(kp.as_slice())
            .execute(&mut *tx)
            .await?;
    }
    if let Some(lr) = &last_resort {
        sqlx::query("DELETE FROM key_packages WHERE account_id = ? AND last_resort = 1")
            .bind(auth.account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO key_packages (account_id, last_resort, data) VALUES (?, 1, ?)")
            .bind(auth.account_id)
            .bind(lr.as_slice())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(axum::Json(
        serde_json::json!({ "stored": packages.len() + usize::from(last_resort.is_some()) }),
    ))
}

/// Body of `POST /v1/key-packages/claim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    account: String,
}

/// `POST /v1/key-packages/claim`: the oldest ordinary package (deleted as it
/// is handed out), else the last-resort one (kept).
pub(crate) async fn claim(
    State(state): State<AppState>,
    _auth: Authed,
    JsonBody(body): JsonBody<ClaimBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    validate_account_name(&body.account).map_err(|_| KeyPackageRefusal::BadName)?;
    // One statement: atomic even with concurrent claimers.
    let ordinary: Option<Vec<u8>> = sqlx::query_scalar(
        "DELETE FROM key_packages WHERE id = (SELECT k.id FROM key_packages k \
         JOIN accounts a ON a.id = k.account_id WHERE a.name = ? AND k.last_resort = 0 \
         ORDER BY k.id LIMIT 1) RETURNING data",
    )
    .bind(&body.account)
    .fetch_optional(&state.pool)
    .await?;
    let (data, last_resort) = match ordinary {
        Some(d) => (d, false),
        None => {
            let lr: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT k.data FROM key_packages k JOIN accounts a ON a.id = k.account_id \
                 WHERE a.name = ? AND k.last_resort = 1",
            )
            .bind(&body.account)
            .fetch_optional(&state.pool)
            .await?;
            let d = lr.ok_or_else(|| KeyPackageRefusal::NoKeyPackage(body.account.clone()))?;
            (d, true)
        }
    };
    Ok(axum::Json(serde_json::json!({
        "key_package": B64.encode(data),
        "last_resort": last_resort,
    })))
}

/// `GET /v1/key-packages/count`: the caller's unclaimed ordinary packages.
pub(crate) async fn count(
    State(state): State<AppState>,
    auth: Authed,
) -> Result<impl IntoResponse, HttpRefusal> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM key_packages WHERE account_id = ? AND last_resort = 0",
    )
    .bind(auth.account_id)
    .fetch_one(&state.pool)
    .await?;
    Ok(axum::Json(serde_json::json!({ "remaining": n })))
}
