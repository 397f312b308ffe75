//! `POST /v1/interceptions` (an authority presents a logged warrant) and
//! `GET /v1/interceptions/{commitment}/items` (it fetches what is kept).
//!
//! # Security meaning
//! Before keeping anything the provider checks the warrant on its own, as a
//! custodian would ([`custos_verify::warrant`]): court signature, the
//! commitment opened and signed by the warrant's authority, in a checkpoint
//! with the witness quorum, within policy, signed request, not past
//! not-after, no revocation by its court in the log. It then logs its own
//! `Interception` statement and waits for a witnessed checkpoint that
//! includes it: an interception the public cannot see never starts. A
//! refused request changes nothing. Kept items are served only to requests
//! signed by the warrant's authority key within [`FETCH_WINDOW_SECS`] of
//! the provider's clock.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_tlog::{LogClient, TrustPolicy};
use custos_verify::warrant::{WarrantRefusal, check_not_expired, verify_logged_warrant};
use custos_wire::interception::{InterceptionRequest, fetch_message};
use custos_wire::manifest::Role;
use custos_wire::statement::{Interception, SignedStatement, Statement, StatementKind};
use serde::Deserialize;

use crate::abuse::franking_log::{FrankingLogConfig, log_and_prove};
use crate::delivery::writer::Op;
use crate::error::HttpRefusal;
use crate::lawful::holds::{Hold, NewInterception};
use crate::lawful::recover;
use crate::refusal::Refusal;
use crate::state::AppState;

/// How long after a warrant's not-after its kept items stay, so that an
/// authority that fetched late can still finish: 7 days.
pub const KEEP_GRACE_SECS: u64 = 7 * 86_400;
/// How far a fetch signature's time may be from the provider's clock.
pub const FETCH_WINDOW_SECS: u64 = 300;
/// The header carrying a fetch signature: `SIGNED_AT:SIGNATURE_HEX`.
pub const FETCH_SIGNATURE_HEADER: &str = "custos-authority-signature";
/// Most kept items per fetch.
pub const MAX_FETCH: u32 = 1_000;

/// Why an interception or a fetch of kept items is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterceptionRefusal {
    /// The service runs without a log and a provider key.
    #[error("this service has no transparency log configured; interception is unavailable")]
    Unavailable,
    /// The request does not decode.
    #[error("the interception request does not decode: {0}")]
    Malformed(String),
    /// The request is addressed to another provider.
    #[error("the request is addressed to `{0}`, not to this provider")]
    WrongProvider(String),
    /// A check of the warrant failed.
    #[error("{0}")]
    Warrant(#[from] WarrantRefusal),
    /// The log could not be read or did not include the provider's statement.
    #[error("the transparency log: {0}")]
    Log(String),
    /// No valid signature of the warrant's authority on the fetch.
    #[error("not authorised: {0}")]
    NotAuthorised(&'static str),
    /// A query parameter is out of range.
    #[error("bad query: {0}")]
    BadQuery(&'static str),
}

impl Refusal for InterceptionRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable | Self::Log(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Malformed(_) | Self::BadQuery(_) => StatusCode::BAD_REQUEST,
            Self::WrongProvider(_) | Self::Warrant(_) | Self::NotAuthorised(_) => {
                StatusCode::FORBIDDEN
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable => "interception_unavailable",
            Self::Malformed(_) => "malformed",
            Self::WrongProvider(_) => "wrong_provider",
            Self::Warrant(w) => w.code(),
            Self::Log(_) => "log_unavailable",
            Self::NotAuthorised(_) => "not_authorised",
            Self::BadQuery(_) => "bad_query",
        }
    }
}

fn log_config(state: &AppState) -> Result<&FrankingLogConfig, InterceptionRefusal> {
    state
        .config
        .franking_log
        .as_deref()
        .ok_or(InterceptionRefusal::Unavailable)
}

/// The provider's manifest name: the provider participant whose key is the
/// service's statement key.
fn provider_name(config: &FrankingLogConfig) -> Result<String, InterceptionRefusal> {
    let key = hex::encode(config.statement_key.verifying_key().to_bytes());
    config
        .manifest
        .with_role(Role::Provider)
        .find(|p| p.public_key.eq_ignore_ascii_case(&key))
        .map(|p| p.name.clone())
        .ok_or(InterceptionRefusal::Unavailable)
}

/// `POST /v1/interceptions`: checks, logs and starts an interception.
pub(crate) async fn intercept(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, HttpRefusal> {
    let config = log_config(&state)?;
    let request = InterceptionRequest::decode(&body)
        .map_err(|e| InterceptionRefusal::Malformed(e.to_string()))?;
    let provider = provider_name(config)?;
    if request.fields().provider != provider {
        return Err(InterceptionRefusal::WrongProvider(request.fields().provider.clone()).into());
    }
    let trust = TrustPolicy::from_manifest(&config.manifest)
        .map_err(|e| InterceptionRefusal::Log(e.to_string()))?;
    let verified = verify_logged_warrant(&config.manifest, &trust, &request.fields().logged)
        .map_err(InterceptionRefusal::from)?;
    request
        .verify(verified.authority_key())
        .map_err(|_| InterceptionRefusal::Warrant(WarrantRefusal::BadRequestSignature))?;
    let now_secs = state.clock.now_millis() / 1000;
    check_not_expired(verified.warrant(), now_secs).map_err(InterceptionRefusal::from)?;
    let commitment = *verified.commitment();

    // Already intercepting under this warrant: the same answer again.
    if let Some(index) = state.store.interception_log_index(&commitment).await? {
        return Ok(Json(serde_json::json!({
            "commitment": hex::encode(commitment),
            "log_index": index,
            "kept": 0,
        })));
    }

    let client =
        LogClient::new(&config.log_url).map_err(|e| InterceptionRefusal::Log(e.to_string()))?;
    if revoked(&client, &trust, &config.manifest, &verified).await? {
        return Err(InterceptionRefusal::Warrant(WarrantRefusal::Revoked).into());
    }
    let w = verified.warrant().fields();
    let recovery = recover::seal(
        &config.statement_key,
        &commitment,
        w.first_day,
        w.last_day,
        &recover::Recovery {
            not_after: w.not_after,
            targets: w.targets.clone(),
        },
    )
    .ok_or_else(|| InterceptionRefusal::Log("the recovery record does not seal".into()))?;
    let statement = SignedStatement::sign(
        &Statement::Interception(Interception {
            warrant: commitment,
            provider,
            conversations: u16::try_from(w.targets.len()).unwrap_or(u16::MAX),
            first_day: w.first_day,
            last_day: w.last_day,
            started_at: now_secs,
            recovery,
        }),
        &config.statement_key,
    )
    .map_err(|e| InterceptionRefusal::Log(e.to_string()))?;
    let included = log_and_prove(&client, &trust, &statement, config.witness_timeout)
        .await
        .map_err(|e| InterceptionRefusal::Log(e.to_string()))?;
    let keep_until = w
        .not_after
        .saturating_add(KEEP_GRACE_SECS)
        .saturating_mul(1000);
    let kept = state
        .writer
        .call(|reply| Op::Intercept {
            new: Box::new(NewInterception {
                hold: Hold {
                    commitment,
                    first_day: w.first_day,
                    last_day: w.last_day,
                    keep_until,
                },
                authority: w.authority.clone(),
                authority_key: verified.authority_key().to_bytes(),
                targets: w.targets.clone(),
                not_after: w.not_after,
                log_index: included.index,
                started_at: now_secs,
            }),
            reply,
        })
        .await?;
    tracing::info!(
        log_index = included.index,
        conversations = w.targets.len(),
        "interception started under a logged warrant"
    );
    Ok(Json(serde_json::json!({
        "commitment": hex::encode(commitment),
        "log_index": included.index,
        "kept": kept,
    })))
}

/// Whether the warrant's court revoked it in the log, read up to a
/// checkpoint with the witness quorum.
async fn revoked(
    client: &LogClient,
    trust: &TrustPolicy,
    manifest: &custos_wire::manifest::Manifest,
    verified: &custos_verify::warrant::VerifiedWarrant,
) -> Result<bool, InterceptionRefusal> {
    let log = |e: &dyn std::fmt::Display| InterceptionRefusal::Log(e.to_string());
    let note = client.checkpoint().await.map_err(|e| log(&e))?;
    let cp = trust.verify_checkpoint(&note).map_err(|e| log(&e))?;
    let court = &verified.warrant().fields().court;
    let court_key = manifest
        .participant(court)
        .and_then(|p| p.verifying_key().ok());
    let entries = client.entries(0, cp.size()).await.map_err(|e| log(&e))?;
    for (index, entry) in entries.iter().enumerate() {
        let Ok(signed) = SignedStatement::decode(entry) else {
            continue;
        };
        if signed.statement_bytes().get(1) != Some(&StatementKind::WarrantRevocation.tag()) {
            continue;
        }
        let Ok(Statement::WarrantRevocation(r)) = signed.verify() else {
            continue;
        };
        let by_court = court_key.is_some_and(|k| k.as_bytes() == signed.author());
        if r.warrant == *verified.commitment() && by_court {
            // Act on a revocation only once the log proves it is there.
            let proof = client
                .inclusion_proof(index as u64, cp.size())
                .await
                .map_err(|e| log(&e))?;
            if custos_tlog::verify_inclusion(&cp, index as u64, entry, &proof).is_ok() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Query of `GET /v1/interceptions/{commitment}/items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FetchQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

/// `GET /v1/interceptions/{commitment}/items`: the kept items, to the
/// warrant's authority only.
pub(crate) async fn fetch(
    State(state): State<AppState>,
    Path(commitment): Path<String>,
    Query(q): Query<FetchQuery>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, HttpRefusal> {
    use InterceptionRefusal::NotAuthorised as No;
    let limit = q.limit.unwrap_or(MAX_FETCH);
    if limit == 0 || limit > MAX_FETCH {
        return Err(InterceptionRefusal::BadQuery("limit must be 1 to 1000").into());
    }
    let commitment: [u8; 32] = hex::decode(&commitment)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(No("unknown interception"))?;
    let (signed_at, signature) = headers
        .get(FETCH_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .and_then(|(t, s)| {
            let sig: [u8; 64] = hex::decode(s).ok()?.try_into().ok()?;
            Some((t.parse::<u64>().ok()?, sig))
        })
        .ok_or(No("no valid custos-authority-signature header"))?;
    let now = state.clock.now_millis() / 1000;
    if now.abs_diff(signed_at) > FETCH_WINDOW_SECS {
        return Err(No("the signature's time is too far from the provider's clock").into());
    }
    // Unknown interception and wrong key get the same answer.
    let key: Vec<u8> = state
        .store
        .interception_authority_key(&commitment)
        .await?
        .ok_or(No("unknown interception or wrong key"))?;
    let key = <[u8; 32]>::try_from(key.as_slice())
        .ok()
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .ok_or(No("unknown interception or wrong key"))?;
    custos_wire::signature::verify_strict(
        &key,
        &fetch_message(&commitment, q.after, signed_at),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .map_err(|_| No("unknown interception or wrong key"))?;
    let rows = state
        .store
        .kept_items(
            &commitment,
            i64::try_from(q.after).unwrap_or(i64::MAX),
            i64::from(limit),
        )
        .await?;
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|row| {
            serde_json::json!({
                "id": row.id,
                "kind": row.kind,
                "conversation": hex::encode(row.conversation),
                "day": row.day,
                "sender": row.sender,
                "sender_key": hex::encode(row.sender_key),
                "server_time": row.server_time,
                "tag": B64.encode(row.tag),
                "body": B64.encode(row.body),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}
