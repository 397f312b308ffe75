//! Encrypted attachment blobs: `POST /v1/blobs` stores one and answers its
//! locator, `GET /v1/blobs/{locator}` returns it.
//!
//! # Security meaning
//! - A blob is ciphertext sealed on the sender's device under a key that
//!   only the (franked) message payload carries; the service stores and
//!   serves bytes it cannot read.
//! - The locator is 32 bytes from the operating system's generator (64 hex
//!   digits): unguessable, so only someone who was given it (a recipient of
//!   the message) can ask for the blob. Fetching also needs a session.
//! - Size ([`crate::Limits::max_blob_len`], `413 blob_too_large`) and
//!   per-account storage ([`crate::Limits::blob_quota`], `429 blob_quota`)
//!   are limited; the quota check and the insert are one write transaction,
//!   so two uploads at once cannot both pass it.
//! - Blobs are deleted when the item retention ([`crate::ServerConfig::retention`])
//!   has passed since the upload, by the same sweep that deletes items.
//!
//! # Not guaranteed
//! A blob is not tied to one message or conversation: the service does not
//! know which envelope refers to it. Kept items under a warrant do not keep
//! their blobs past the retention.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use rand_core::RngCore as _;

use crate::delivery::auth::Authed;
use crate::error::HttpRefusal;
use crate::refusal::BlobRefusal;
use crate::state::{AppState, RawBody, UrlParam};

/// Length of a locator in hex digits.
pub const LOCATOR_HEX_LEN: usize = 64;

/// `POST /v1/blobs`: the body is the encrypted blob; answers
/// `201 {"locator": "<64 hex digits>"}`.
pub(crate) async fn upload(
    State(state): State<AppState>,
    auth: Authed,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, HttpRefusal> {
    let limits = &state.config.limits;
    let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
    if body.is_empty() {
        return Err(BlobRefusal::Empty.into());
    }
    if len > limits.max_blob_len {
        return Err(BlobRefusal::BlobTooLarge(limits.max_blob_len).into());
    }
    let mut id = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut id);
    let locator = hex::encode(id);
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let retention = i64::try_from(state.config.retention.as_millis()).unwrap_or(i64::MAX);
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let quota = limits.blob_quota;
    if quota.items > 0 || quota.bytes > 0 {
        let (count, bytes): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs WHERE owner = ?")
                .bind(auth.account_id)
                .fetch_one(&mut *tx)
                .await?;
        let (count, bytes) = (
            u64::try_from(count).unwrap_or(0),
            u64::try_from(bytes).unwrap_or(0),
        );
        if (quota.items > 0 && count.saturating_add(1) > quota.items)
            || (quota.bytes > 0 && bytes.saturating_add(len) > quota.bytes)
        {
            return Err(BlobRefusal::BlobQuota {
                items: quota.items,
                bytes: quota.bytes,
            }
            .into());
        }
    }
    sqlx::query(
        "INSERT INTO blobs (locator, owner, size, created_at, expires_at, body) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&locator)
    .bind(auth.account_id)
    .bind(i64::try_from(len).unwrap_or(i64::MAX))
    .bind(now)
    .bind(now.saturating_add(retention))
    .bind(body.as_ref())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "locator": locator })),
    ))
}

/// `GET /v1/blobs/{locator}`: the blob's bytes, or `404 unknown_blob`.
pub(crate) async fn download(
    State(state): State<AppState>,
    _auth: Authed,
    UrlParam(locator): UrlParam<String>,
) -> Result<impl IntoResponse, HttpRefusal> {
    if locator.len() != LOCATOR_HEX_LEN
        || !locator
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(BlobRefusal::BadLocator.into());
    }
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let body: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM blobs WHERE locator = ? AND expires_at > ?")
            .bind(&locator)
            .bind(now)
            .fetch_optional(&state.pool)
            .await?;
    let body = body.ok_or(BlobRefusal::UnknownBlob)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body))
}
