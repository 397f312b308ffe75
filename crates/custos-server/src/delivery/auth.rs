//! Accounts and sessions: registration with an Ed25519 identity key, a
//! signed single-use challenge, then a bearer token of which only the
//! SHA-256 is stored.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::ids::validate_account_name;
use ed25519_dalek::{Signature, VerifyingKey};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::delivery::challenge::ChallengeRefusal;
use crate::delivery::session_cache::CachedSession;
use crate::error::HttpRefusal;
use crate::limits::ClientIp;
use crate::refusal::{AccountRefusal, RequestRefusal};
use crate::state::{AppState, JsonBody};
use crate::store::Registered;

/// Label that starts the bytes a challenge signature covers.
pub const AUTH_CHALLENGE_LABEL: &[u8] = b"custos/v1/auth-challenge";
/// How long a challenge may be answered, in ms.
pub const CHALLENGE_TTL_MS: u64 = 5 * 60 * 1000;
/// How long a session token lasts, in ms.
pub const SESSION_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The bytes a client signs to answer `challenge` as `name`:
/// `"custos/v1/auth-challenge" || u8(len(name)) || name || challenge`.
pub fn challenge_message(name: &str, challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_CHALLENGE_LABEL.len() + 1 + name.len() + 32);
    m.extend_from_slice(AUTH_CHALLENGE_LABEL);
    m.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(challenge);
    m
}

/// An authenticated request's device and account.
#[derive(Debug, Clone)]
pub(crate) struct Authed {
    pub account_id: i64,
    pub device_id: i64,
    pub name: Arc<str>,
}

impl Authed {
    pub fn sender(&self) -> crate::abuse::policy::Sender<'_> {
        crate::abuse::policy::Sender {
            account_id: self.account_id,
            name: &self.name,
            device_id: self.device_id,
        }
    }
}

/// Decodes standard base64 of at most `max` decoded bytes.
pub(crate) fn b64(field: &'static str, s: &str, max: usize) -> Result<Vec<u8>, HttpRefusal> {
    if s.len() > max.saturating_add(2) / 3 * 4 {
        return Err(
            RequestRefusal::TooLarge(format!("`{field}` is longer than {max} bytes")).into(),
        );
    }
    B64.decode(s)
        .map_err(|_| RequestRefusal::BadBase64 { field }.into())
}

fn check_name(name: &str) -> Result<(), AccountRefusal> {
    validate_account_name(name).map_err(|_| AccountRefusal::BadName)
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = HttpRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpRefusal> {
        let token = bearer(parts).ok_or(RequestRefusal::Unauthorized(
            "missing token: send `Authorization: Bearer <token>`",
        ))?;
        let authed = lookup(state, &token).await?;
        state
            .account_limiter
            .check(authed.account_id)
            .map_err(|retry_after| RequestRefusal::RateLimited { retry_after })?;
        Ok(authed)
    }
}

fn bearer(parts: &Parts) -> Option<String> {
    // The header only: a token in a URL ends up in proxies' logs.
    let v = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let v = v.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

async fn lookup(state: &AppState, token: &str) -> Result<Authed, HttpRefusal> {
    let bad = || RequestRefusal::Unauthorized("unknown or expired token; authenticate again");
    // One canonical form: 64 lower-case hex digits, as the service issues it.
    if token.len() != 64
        || !token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad().into());
    }
    let mut raw = [0u8; 32];
    hex::decode_to_slice(token, &mut raw).map_err(|_| bad())?;
    let hash: [u8; 32] = Sha256::digest(raw).into();
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    // A session read before and unexpired: the row the store would return
    // (`session_cache`: rows never change and leave only once expired).
    if let Some(s) = state.sessions.get(&hash, now) {
        return Ok(Authed {
            account_id: s.account_id,
            device_id: s.device_id,
            name: s.name,
        });
    }
    let row = state.store.session(&hash).await?;
    let crate::store::SessionRow {
        token_hash: stored,
        expires_at,
        device_id,
        account_id,
        name,
    } = row.ok_or_else(bad)?;
    if !bool::from(stored.as_slice().ct_eq(hash.as_slice())) {
        return Err(bad().into());
    }
    if expires_at <= now {
        return Err(bad().into());
    }
    let name: Arc<str> = name.into();
    state.sessions.put(
        hash,
        CachedSession {
            expires_at,
            device_id,
            account_id,
            name: name.clone(),
        },
        now,
    );
    Ok(Authed {
        account_id,
        device_id,
        name,
    })
}

/// Body of `POST /v1/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    name: String,
    identity_key: String,
}

/// `POST /v1/accounts`.
pub(crate) async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    check_name(&body.name)?;
    let key = b64("identity_key", &body.identity_key, 32)?;
    let key: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| AccountRefusal::BadKey("must be a 32-byte Ed25519 public key"))?;
    let verifying = VerifyingKey::from_bytes(&key)
        .map_err(|_| AccountRefusal::BadKey("is not a valid Ed25519 public key"))?;
    // A small-order key (the identity point among them) verifies
    // signatures that anyone can make: it proves nobody's possession.
    if verifying.is_weak() {
        return Err(AccountRefusal::BadKey("is a weak (small-order) Ed25519 key").into());
    }
    // Every well-formed attempt counts, taken or not: names cost nothing
    // to try, and the limit is on what one network can make the service do.
    state.guards.registration(ip)?;
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let registered = state
        .store
        .register(&body.name, &key, now, state.directory.is_some())
        .await?;
    if registered == Registered::NameTaken {
        return Err(AccountRefusal::NameTaken(body.name).into());
    }
    tracing::info!(name = %body.name, "account registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "name": body.name })),
    ))
}

/// Body of `POST /v1/auth/challenge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeBody {
    name: String,
}

/// `POST /v1/auth/challenge`.
pub(crate) async fn challenge(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ChallengeBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    check_name(&body.name)?;
    if state.store.account_id(&body.name).await?.is_none() {
        return Err(AccountRefusal::UnknownAccount(body.name).into());
    }
    let expires_at = state.clock.now_millis().saturating_add(CHALLENGE_TTL_MS);
    let challenge = state.challenges.issue(&body.name, expires_at);
    Ok(axum::Json(serde_json::json!({
        "challenge": B64.encode(challenge),
        "expires_at": expires_at,
    })))
}

/// Body of `POST /v1/auth/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionBody {
    name: String,
    challenge: String,
    signature: String,
}

/// `POST /v1/auth/session`.
pub(crate) async fn session(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SessionBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    let refused = || {
        RequestRefusal::Unauthorized(
            "challenge unknown, expired, already used or not signed by this account's \
             identity key; request a new challenge",
        )
    };
    check_name(&body.name)?;
    let challenge: [u8; 32] = b64("challenge", &body.challenge, 32)?
        .as_slice()
        .try_into()
        .map_err(|_| AccountRefusal::BadChallenge)?;
    let signature: [u8; 64] = b64("signature", &body.signature, 64)?
        .as_slice()
        .try_into()
        .map_err(|_| AccountRefusal::BadSignature)?;
    let now = state.clock.now_millis();
    let name = body.name;
    let expires_at = state
        .challenges
        .check(&name, &challenge, now)
        .map_err(|_| refused())?;
    let row = state.store.login_key(&name).await?;
    let (key, device_id) = row.ok_or_else(refused)?;
    let key: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| HttpRefusal::internal("stored identity key", "wrong length"))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| HttpRefusal::internal("stored identity key", "invalid"))?;
    let signed = custos_wire::signature::verify_strict(
        &key,
        &challenge_message(&name, &challenge),
        &Signature::from_bytes(&signature),
    )
    .is_ok();
    // Single use: the challenge is spent by any answer, right or wrong.
    match state
        .challenges
        .answer(&name, &challenge, expires_at, signed, now)
    {
        Ok(()) if signed => {}
        Err(ChallengeRefusal::TooManyLogins) => {
            return Err(RequestRefusal::RateLimited { retry_after: 60 }.into());
        }
        Ok(()) | Err(_) => return Err(refused().into()),
    }
    // On PostgreSQL the answer is spent for every server: the same answer
    // presented to another server (a replayed login) is refused there.
    if let Some(pg) = &state.pg {
        use crate::store::pg_challenges::Spent;
        let account = state.store.account_id(&name).await?.ok_or_else(refused)?;
        let mut tag = [0u8; 16];
        tag.copy_from_slice(challenge.get(16..).unwrap_or(&[0; 16]));
        let now_ms = i64::try_from(now).unwrap_or(i64::MAX);
        let until = i64::try_from(expires_at).unwrap_or(i64::MAX);
        match pg.spend_challenge(account, &tag, until, now_ms).await? {
            Spent::Fresh => {}
            Spent::Used => return Err(refused().into()),
            Spent::TooManyLogins => {
                return Err(RequestRefusal::RateLimited { retry_after: 60 }.into());
            }
        }
    }
    let mut token = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let hash: [u8; 32] = Sha256::digest(token).into();
    let expires_at = now.saturating_add(SESSION_TTL_MS);
    state
        .store
        .open_session(
            &hash,
            device_id,
            i64::try_from(expires_at).unwrap_or(i64::MAX),
        )
        .await?;
    tracing::info!(%name, "session opened");
    Ok(axum::Json(serde_json::json!({
        "token": hex::encode(token),
        "expires_at": expires_at,
    })))
}
