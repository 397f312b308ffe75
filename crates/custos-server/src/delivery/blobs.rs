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
//! - A body is on disk (its own fsynced file, [`crate::delivery::blob_files`])
//!   before the row that names it commits, and `201` follows the commit.
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
use crate::store::{BlobStored, NewBlob};

/// Length of a locator in hex digits.
pub const LOCATOR_HEX_LEN: usize = 64;

/// `POST /v1/blobs`: the body is the encrypted blob; answers
/// `201 {"locator": "<64 hex digits>"}`.
///
/// The store makes the row and its body durable together (on SQLite the
/// body is its own fsynced file written before the row commits,
/// [`crate::delivery::blob_files`]; on PostgreSQL it is in the row); `201`
/// follows the commit.
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
    // A read-only look first, so that an account over its quota costs no
    // write; the check that counts is repeated in the store's transaction.
    let quota = limits.blob_quota;
    let over = BlobRefusal::BlobQuota {
        items: quota.items,
        bytes: quota.bytes,
    };
    if (quota.items > 0 || quota.bytes > 0)
        && !crate::store::blob_fits(quota, state.store.blob_usage(auth.account_id).await?, len)
    {
        return Err(over.into());
    }
    let mut id = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut id);
    let locator = hex::encode(id);
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let retention = i64::try_from(state.config.retention.as_millis()).unwrap_or(i64::MAX);
    let blob = NewBlob {
        locator: &locator,
        owner: auth.account_id,
        body,
        created_at: now,
        expires_at: now.saturating_add(retention),
    };
    match state.store.store_blob(blob, quota).await? {
        BlobStored::Stored => {}
        BlobStored::OverQuota => return Err(over.into()),
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "locator": locator })),
    ))
}

/// The stored (encrypted) body of blob `locator`, or `None` when there is no
/// such blob or, with `unexpired_at` (Unix ms), when it has expired by then.
pub(crate) async fn stored_body(
    state: &AppState,
    locator: &str,
    unexpired_at: Option<i64>,
) -> Result<Option<Vec<u8>>, HttpRefusal> {
    Ok(state.store.blob_body(locator, unexpired_at).await?)
}

/// `GET /v1/blobs/{locator}`: the blob's bytes, or `404 unknown_blob`.
pub(crate) async fn download(
    State(state): State<AppState>,
    _auth: Authed,
    UrlParam(locator): UrlParam<String>,
) -> Result<impl IntoResponse, HttpRefusal> {
    if !is_locator(&locator) {
        return Err(BlobRefusal::BadLocator.into());
    }
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let body = stored_body(&state, &locator, Some(now))
        .await?
        .ok_or(BlobRefusal::UnknownBlob)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body))
}

/// Whether `s` has the shape of a locator: 64 lower-case hex digits (so it
/// is also a safe file name).
pub(crate) fn is_locator(s: &str) -> bool {
    s.len() == LOCATOR_HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
