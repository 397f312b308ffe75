//! `GET /v1/key-directory/...`: lookup, key-history and audit proofs, and
//! the list of logged epochs. Proofs are public (a VRF hides which
//! accounts other proofs are about); no session is needed.

use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::error::HttpRefusal;
use crate::refusal::KeyDirectoryRefusal;
use crate::state::{AppState, UrlParam, UrlQuery};

use super::DirectoryService;

/// A proof and the epoch root it is for.
#[derive(Debug, Serialize)]
pub(crate) struct ProofBody {
    epoch: u64,
    root_hash: String,
    proof: String,
}

fn service(state: &AppState) -> Result<&DirectoryService, KeyDirectoryRefusal> {
    state
        .directory
        .as_deref()
        .ok_or(KeyDirectoryRefusal::NoKeyDirectory)
}

fn refusal(account: &str, e: custos_keydir::KeyDirectoryError) -> KeyDirectoryRefusal {
    match e {
        custos_keydir::KeyDirectoryError::NotFound(_) => {
            KeyDirectoryRefusal::NotInDirectory(account.to_owned())
        }
        other => KeyDirectoryRefusal::Unavailable(other.to_string()),
    }
}

fn body(p: custos_keydir::Proven) -> axum::Json<ProofBody> {
    axum::Json(ProofBody {
        epoch: p.root.epoch,
        root_hash: hex::encode(p.root.root_hash),
        proof: B64.encode(&p.proof),
    })
}

/// Which proof of one account's keys is asked for.
enum AccountProof {
    /// Its current key (a lookup proof).
    Lookup,
    /// Every key it ever had (a history proof).
    History,
}

/// Checks the account name, then proves `kind` for it under the read lock.
async fn prove(
    state: &AppState,
    account: &str,
    kind: AccountProof,
) -> Result<axum::Json<ProofBody>, HttpRefusal> {
    custos_wire::ids::validate_account_name(account)
        .map_err(|e| crate::refusal::RequestRefusal::BadPath(e.to_string()))?;
    let svc = service(state)?;
    let _guard = svc.lock.read().await;
    let proven = match kind {
        AccountProof::Lookup => svc.dir.lookup(account).await,
        AccountProof::History => svc.dir.history(account).await,
    }
    .map_err(|e| refusal(account, e))?;
    Ok(body(proven))
}

/// `GET /v1/key-directory/lookup/{account}`.
pub(crate) async fn lookup(
    State(state): State<AppState>,
    UrlParam(account): UrlParam<String>,
) -> Result<axum::Json<ProofBody>, HttpRefusal> {
    prove(&state, &account, AccountProof::Lookup).await
}

/// `GET /v1/key-directory/history/{account}`.
pub(crate) async fn history(
    State(state): State<AppState>,
    UrlParam(account): UrlParam<String>,
) -> Result<axum::Json<ProofBody>, HttpRefusal> {
    prove(&state, &account, AccountProof::History).await
}

/// Query of `GET /v1/key-directory/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    from: u64,
    to: u64,
}

/// Answer of `GET /v1/key-directory/audit`.
#[derive(Debug, Serialize)]
pub(crate) struct AuditBody {
    from: u64,
    to: u64,
    proof: String,
}

/// `GET /v1/key-directory/audit?from=A&to=B`: the append-only proof from
/// epoch A to epoch B.
pub(crate) async fn audit(
    State(state): State<AppState>,
    UrlQuery(q): UrlQuery<AuditQuery>,
) -> Result<axum::Json<AuditBody>, HttpRefusal> {
    let svc = service(&state)?;
    let _guard = svc.lock.read().await;
    let latest = svc
        .dir
        .current()
        .await
        .map_err(|e| KeyDirectoryRefusal::Unavailable(e.to_string()))?
        .epoch;
    if q.from == 0 || q.from >= q.to || q.to > latest {
        return Err(KeyDirectoryRefusal::BadRange {
            from: q.from,
            to: q.to,
            latest,
        }
        .into());
    }
    let proof = svc
        .dir
        .audit(q.from, q.to)
        .await
        .map_err(|e| KeyDirectoryRefusal::Unavailable(e.to_string()))?;
    Ok(axum::Json(AuditBody {
        from: q.from,
        to: q.to,
        proof: B64.encode(proof),
    }))
}

/// Most accounts one batch lookup may name.
pub const MAX_BATCH_LOOKUP: usize = 64;

/// Body of `POST /v1/key-directory/lookups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchLookup {
    accounts: Vec<String>,
}

/// One account's proof in a batch answer.
#[derive(Debug, Serialize)]
pub(crate) struct AccountProofBody {
    account: String,
    proof: String,
}

/// Answer of `POST /v1/key-directory/lookups`: every proof is for the same
/// epoch.
#[derive(Debug, Serialize)]
pub(crate) struct BatchProofBody {
    epoch: u64,
    root_hash: String,
    proofs: Vec<AccountProofBody>,
}

/// `POST /v1/key-directory/lookups {"accounts": [..]}`: lookup proofs of up
/// to [`MAX_BATCH_LOOKUP`] distinct accounts at one epoch, in the order
/// asked (what a device joining a group checks: every member at once).
/// Each proof is the one `GET /v1/key-directory/lookup/{account}` gives;
/// an account without a key refuses the batch, naming it.
pub(crate) async fn lookup_many(
    State(state): State<AppState>,
    crate::state::JsonBody(body): crate::state::JsonBody<BatchLookup>,
) -> Result<axum::Json<BatchProofBody>, HttpRefusal> {
    let asked = body.accounts.len();
    let distinct: std::collections::BTreeSet<&str> =
        body.accounts.iter().map(String::as_str).collect();
    if asked == 0 || asked > MAX_BATCH_LOOKUP || distinct.len() != asked {
        return Err(KeyDirectoryRefusal::BadBatch {
            asked,
            max: MAX_BATCH_LOOKUP,
        }
        .into());
    }
    for account in &body.accounts {
        custos_wire::ids::validate_account_name(account)
            .map_err(|e| crate::refusal::RequestRefusal::BadJson(format!("`accounts`: {e}")))?;
    }
    let svc = service(&state)?;
    let _guard = svc.lock.read().await;
    let (proofs, root) = svc
        .dir
        .lookup_many(&body.accounts)
        .await
        .map_err(|e| match e {
            custos_keydir::KeyDirectoryError::NotFound(account) => {
                KeyDirectoryRefusal::NotInDirectory(account)
            }
            other => KeyDirectoryRefusal::Unavailable(other.to_string()),
        })?;
    Ok(axum::Json(BatchProofBody {
        epoch: root.epoch,
        root_hash: hex::encode(root.root_hash),
        proofs: body
            .accounts
            .into_iter()
            .zip(proofs)
            .map(|(account, proof)| AccountProofBody {
                account,
                proof: B64.encode(proof),
            })
            .collect(),
    }))
}
