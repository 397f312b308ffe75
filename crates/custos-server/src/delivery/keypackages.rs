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
use crate::store::Uploaded;

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

    let uploaded = state
        .store
        .upload_key_packages(
            auth.account_id,
            &packages,
            last_resort.as_deref(),
            limits.max_stored_key_packages,
        )
        .await?;
    if let Uploaded::OverQuota { stored } = uploaded {
        return Err(KeyPackageRefusal::KeyPackageQuota {
            max: limits.max_stored_key_packages,
            stored,
        }
        .into());
    }
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
    let (data, last_resort) = state
        .store
        .claim_key_package(&body.account)
        .await?
        .ok_or_else(|| KeyPackageRefusal::NoKeyPackage(body.account.clone()))?;
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
    let n = state.store.count_key_packages(auth.account_id).await?;
    Ok(axum::Json(serde_json::json!({ "remaining": n })))
}
