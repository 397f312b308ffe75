//! Known-content detection on the service: the blinded table it serves,
//! the safety vouchers it stores and opens, the threshold, and the review
//! queue (`docs/design/0017-threshold-matching.md`).
//!
//! Routes: `GET /v1/psi/table` (public: the table devices check against the
//! log), `POST /v1/blobs/{locator}/voucher` (a device's voucher for a blob it
//! uploaded), `GET /v1/moderation/matches[/{id}]` and
//! `POST /v1/moderation/matches/{id}/resolve` (moderators), and
//! `GET /v1/moderation/matches-stats` (public figures).
//!
//! # Security meaning
//! - A voucher is parsed and checked against the current table before
//!   anything is stored; a refused one leaves no row ([`MatchingRefusal`]).
//! - Below the threshold the service stores, per voucher, the bytes and the
//!   outer-opened share or NULL. Its answer to the device, its counters and
//!   its log lines are the same whether a voucher opened or not, and an
//!   opened synthetic voucher is stored exactly like an opened real one.
//! - Once an account has `T` real shares, the service reconstructs its
//!   inner key, opens the real vouchers' inner layers (PDQ hash and 32x32
//!   derivative) and opens a case in the review queue. Only a moderator's
//!   `confirm` produces a clearinghouse package, returned to the moderator:
//!   nothing is sent anywhere automatically.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_psi::{BlindedTable, OpenedShare, ProviderSecret, ServiceTable, Voucher, VoucherError};
use custos_verify::package::LogProof;
use custos_wire::manifest::Matching;
use custos_wire::statement::{HashListRoot, MatchingPolicy, SignedStatement, Statement};
use serde::{Deserialize, Serialize};

use crate::abuse::franking_log::{FrankingLogConfig, PublishError, log_and_prove};
use crate::delivery::auth::Authed;
use crate::delivery::blobs::LOCATOR_HEX_LEN;
use crate::error::HttpRefusal;
use crate::refusal::MatchingRefusal;
use crate::state::{AppState, JsonBody, RawBody, UrlParam};
use crate::store::MatchingStore;
use crate::store::matching::CaseRow;

pub use crate::abuse::matching_figures::{DEFAULT_FIGURES_PERIOD, publish_figures};
pub use crate::abuse::threshold::{MAX_RECONSTRUCTION_TRIES, RECONSTRUCTION_PERIOD_MS};

/// Why matching could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatchingSetupError {
    /// The table file is not a valid table.
    #[error("hash table: {0}")]
    Table(#[from] custos_psi::TableError),
    /// The secret is not canonical or not the table's.
    #[error("the provider secret is not the one this table was built with")]
    Secret,
    /// The table's organisations are not the manifest's.
    #[error("the table's organisations are not the two of the manifest's [matching] section")]
    Organisations,
    /// The manifest's section is unusable.
    #[error("manifest: {0}")]
    Manifest(#[from] custos_wire::manifest::ManifestError),
}

/// The service's matching state: the table, its secret and the policy.
pub struct MatchingService {
    table_bytes: Vec<u8>,
    table: BlindedTable,
    service: ServiceTable,
    threshold: u16,
    synthetic_rate_ppm: u32,
    enabled: bool,
    published_at: u64,
    proofs: Mutex<Option<(LogProof, LogProof)>>,
}

impl std::fmt::Debug for MatchingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchingService")
            .field("root", &hex::encode(self.service.root()))
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl MatchingService {
    /// Loads a table with its secret under the manifest's `[matching]`
    /// section; `published_at` is the time the tooling logs for it.
    pub fn new(
        table_bytes: Vec<u8>,
        secret: &[u8; 32],
        matching: &Matching,
        published_at: u64,
    ) -> Result<Self, MatchingSetupError> {
        let table = BlindedTable::decode(&table_bytes)?;
        let secret = ProviderSecret::from_bytes(secret).ok_or(MatchingSetupError::Secret)?;
        let service = ServiceTable::new(secret, &table).ok_or(MatchingSetupError::Secret)?;
        if table.organisations() != matching.organisation_keys()? {
            return Err(MatchingSetupError::Organisations);
        }
        Ok(Self {
            table_bytes,
            table,
            service,
            threshold: matching.threshold,
            synthetic_rate_ppm: matching.synthetic_rate_ppm,
            enabled: matching.enabled,
            published_at,
            proofs: Mutex::new(None),
        })
    }

    /// The threshold `T` of the manifest's policy.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// The table's root.
    pub fn root(&self) -> [u8; 32] {
        *self.service.root()
    }

    /// The two statements the provider logs for this table: its root
    /// (kind 13) and the matching policy (kind 14).
    pub fn statements(&self, provider: &str) -> (HashListRoot, MatchingPolicy) {
        let logged = self.table.logged();
        (
            HashListRoot {
                provider: provider.to_owned(),
                root: logged.root,
                list_size: logged.list_size,
                slots: logged.slots,
                sample_bits: logged.sample_bits,
                org_a: logged.org_a,
                org_b: logged.org_b,
                published_at: self.published_at,
            },
            MatchingPolicy {
                provider: provider.to_owned(),
                enabled: self.enabled,
                threshold: self.threshold,
                synthetic_rate_ppm: self.synthetic_rate_ppm,
                table_root: logged.root,
            },
        )
    }

    fn proofs(&self) -> Option<(LogProof, LogProof)> {
        self.proofs.lock().ok().and_then(|p| p.clone())
    }
}

/// The provider's tooling: logs the table's root and the matching policy
/// (signed with the provider's statement key) and keeps the inclusion
/// proofs for clearinghouse packages.
pub async fn publish(
    matching: &MatchingService,
    config: &FrankingLogConfig,
) -> Result<(), PublishError> {
    use custos_tlog::{LogClient, TrustPolicy};
    let trust = TrustPolicy::from_manifest(&config.manifest)
        .map_err(|e| PublishError::Policy(e.to_string()))?;
    let (root, policy) = matching.statements(&provider_name(config)?);
    let client = LogClient::new(&config.log_url)?;
    let mut proofs = Vec::new();
    for statement in [
        Statement::HashListRoot(root),
        Statement::MatchingPolicy(policy),
    ] {
        let signed = SignedStatement::sign(&statement, &config.statement_key)?;
        let included = log_and_prove(&client, &trust, &signed, config.witness_timeout).await?;
        proofs.push(LogProof::new(
            &signed.encode()?,
            included.index,
            included.checkpoint.note(),
            &included.proof,
        ));
    }
    if let (Some(b), Some(a)) = (proofs.pop(), proofs.pop())
        && let Ok(mut p) = matching.proofs.lock()
    {
        *p = Some((a, b));
    }
    tracing::info!(root = %hex::encode(matching.root()), "hash list published in the transparency log");
    Ok(())
}

/// The manifest name of the provider whose statement key `config` holds.
pub(crate) fn provider_name(config: &FrankingLogConfig) -> Result<String, PublishError> {
    let author = hex::encode(config.statement_key.verifying_key().to_bytes());
    Ok(config
        .manifest
        .with_role(custos_wire::manifest::Role::Provider)
        .find(|p| p.public_key.eq_ignore_ascii_case(&author))
        .ok_or(PublishError::NotAProvider(author))?
        .name
        .clone())
}

/// Starts known-content detection on `store` when `config` has it: the
/// voucher writer with its threshold worker (the handle the voucher routes
/// queue to), and the figures publisher when a log and a period are set.
/// The voucher writer stores through `writer_store`: the same database,
/// on SQLite through a connection of its own. The same on both backends;
/// on PostgreSQL every server starts its own, and the store makes them act
/// as one (`store::pg_matching`).
pub(crate) fn start(
    config: &crate::ServerConfig,
    store: Arc<dyn MatchingStore>,
    writer_store: Arc<dyn MatchingStore>,
    clock: &custos_clock::SharedClock,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Option<crate::abuse::vouchers::VoucherQueue> {
    let m = config.matching.clone()?;
    let vouchers = crate::abuse::vouchers::VoucherQueue::spawn(
        m.clone(),
        store.clone(),
        writer_store,
        clock.clone(),
    );
    if let (Some(log), Some(every)) = (
        config.franking_log.clone(),
        config
            .matching_figures_every
            .or(config.publish_matching.then_some(DEFAULT_FIGURES_PERIOD)),
    ) {
        tokio::spawn(publish_figures(
            m,
            store,
            log,
            clock.clone(),
            every,
            stop.clone(),
        ));
    }
    Some(vouchers)
}

fn matching(state: &AppState) -> Result<&MatchingService, HttpRefusal> {
    state
        .config
        .matching
        .as_deref()
        .ok_or_else(|| MatchingRefusal::MatchingOff.into())
}

/// `GET /v1/psi/table`: the blinded table's bytes, with the root as its
/// entity tag; `304` without a body when `If-None-Match` names the root,
/// so that a device that checked this table already does not fetch it again.
pub(crate) async fn table(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, HttpRefusal> {
    let m = matching(&state)?;
    let etag = format!("\"{}\"", hex::encode(m.root()));
    let known = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if known == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ETAG, etag),
        ],
        m.table_bytes.clone(),
    )
        .into_response())
}

/// `POST /v1/blobs/{locator}/voucher`: the body is one voucher for the
/// account's blob. Answers `201 {}` whether or not the voucher matched,
/// once the voucher writer ([`crate::abuse::vouchers`]) has committed it.
pub(crate) async fn upload_voucher(
    State(state): State<AppState>,
    auth: Authed,
    UrlParam(locator): UrlParam<String>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, HttpRefusal> {
    let m = matching(&state)?;
    if locator.len() != LOCATOR_HEX_LEN
        || !locator
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(MatchingRefusal::UnknownBlob.into());
    }
    let share = check_voucher(m, &body)?;
    // The same line whether or not the voucher opened (issue 15, test 3).
    tracing::debug!(bytes = body.len(), "voucher checked");
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let queue = state
        .vouchers
        .as_ref()
        .ok_or_else(|| HttpRefusal::from(MatchingRefusal::MatchingOff))?;
    queue.store(auth.account_id, locator, share, now).await?;
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({}))))
}

/// Most vouchers in one batch (`POST /v1/vouchers`): a message's
/// attachments (`custos_client`'s `MAX_ATTACHMENTS`).
pub const MAX_VOUCHER_BATCH: usize = 16;

/// Largest body of `POST /v1/vouchers`.
pub const MAX_VOUCHER_BATCH_LEN: usize =
    2 + MAX_VOUCHER_BATCH * (32 + 2 + custos_psi::voucher::MAX_VOUCHER_LEN);

/// `POST /v1/vouchers`: the vouchers of several of the account's blobs in
/// one request (the attachments of one message; format in
/// `docs/spec/psi.md`, "Voucher batch"). Every voucher is checked before
/// any is queued: one malformed voucher or one made against another table
/// refuses the whole batch and nothing is stored. The vouchers then go to
/// the writer together (one transaction, as a rule); `201 {"stored": n}`
/// once all are committed, else the first voucher's refusal (unknown blob,
/// duplicate), the others being stored.
pub(crate) async fn upload_vouchers(
    State(state): State<AppState>,
    auth: Authed,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, HttpRefusal> {
    let m = matching(&state)?;
    let items = parse_batch(&body)?;
    let mut checked = Vec::with_capacity(items.len());
    for (locator, voucher) in items {
        let share = check_voucher(m, &voucher)?;
        checked.push((locator, share));
    }
    // The same line whether or not any voucher opened (issue 15, test 3).
    tracing::debug!(vouchers = checked.len(), "vouchers checked");
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let queue = state
        .vouchers
        .as_ref()
        .ok_or_else(|| HttpRefusal::from(MatchingRefusal::MatchingOff))?;
    let stored = checked.len();
    queue.store_all(auth.account_id, checked, now).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "stored": stored })),
    ))
}

/// Parses and checks one voucher against the table: its share when it
/// opened.
fn check_voucher(m: &MatchingService, body: &[u8]) -> Result<Option<OpenedShare>, HttpRefusal> {
    let voucher = Voucher::decode(body).map_err(|e| MatchingRefusal::BadVoucher(e.to_string()))?;
    let opened = m.service.open(&voucher).map_err(|e| match e {
        VoucherError::WrongTable { .. } => MatchingRefusal::WrongTable(e.to_string()),
        other => MatchingRefusal::BadVoucher(other.to_string()),
    })?;
    Ok(opened.map(|o| o.share))
}

/// A voucher batch: `u8 version (1)`, `u8 count (1 to 16)`, then `count`
/// times `[32] locator`, `u16 length`, the voucher; nothing after. Two
/// items for one locator are refused.
fn parse_batch(body: &Bytes) -> Result<Vec<(String, Bytes)>, HttpRefusal> {
    let bad = |why: &str| HttpRefusal::from(MatchingRefusal::BadVoucher(format!("batch: {why}")));
    let (Some(&version), Some(&count)) = (body.first(), body.get(1)) else {
        return Err(bad("shorter than its header"));
    };
    if version != 1 {
        return Err(bad("unknown version"));
    }
    let count = usize::from(count);
    if count == 0 || count > MAX_VOUCHER_BATCH {
        return Err(bad("1 to 16 vouchers"));
    }
    let mut items = Vec::with_capacity(count);
    let mut at = 2usize;
    for _ in 0..count {
        let locator = body
            .get(at..at + 32)
            .ok_or_else(|| bad("ends inside a locator"))?;
        let len = body
            .get(at + 32..at + 34)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_be_bytes(b)))
            .ok_or_else(|| bad("ends inside a length"))?;
        at += 34;
        if at.checked_add(len).is_none_or(|end| end > body.len()) {
            return Err(bad("ends inside a voucher"));
        }
        let locator = hex::encode(locator);
        if items.iter().any(|(l, _): &(String, Bytes)| *l == locator) {
            return Err(bad("one locator twice"));
        }
        items.push((locator, body.slice(at..at + len)));
        at += len;
    }
    if at != body.len() {
        return Err(bad("bytes after the last voucher"));
    }
    Ok(items)
}

/// `GET /v1/moderation/matches`: every case (moderators).
pub(crate) async fn list_cases(
    State(state): State<AppState>,
    auth: Authed,
) -> Result<impl IntoResponse, HttpRefusal> {
    matching(&state)?;
    crate::abuse::moderation::moderator(&state, &auth).await?;
    Ok(axum::Json(state.store.list_cases().await?))
}

/// One matched picture of a case, as a moderator sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct MatchView {
    /// The sending device's PDQ hash, hex.
    pub hash: String,
    /// The 32x32 grey derivative, base64 (row-major, one byte per pixel).
    pub derivative: String,
    /// When the voucher arrived, Unix milliseconds (service clock).
    pub received_at: i64,
    /// The blob the voucher came with.
    pub locator: String,
}

async fn case_matches(state: &AppState, id: i64) -> Result<Vec<MatchView>, HttpRefusal> {
    Ok(state
        .store
        .case_matches(id)
        .await?
        .into_iter()
        .map(|m| MatchView {
            hash: hex::encode(m.hash),
            derivative: B64.encode(m.derivative),
            received_at: m.received_at,
            locator: m.locator,
        })
        .collect())
}

async fn load_case(state: &AppState, id: i64) -> Result<CaseRow, HttpRefusal> {
    state
        .store
        .case(id)
        .await?
        .ok_or_else(|| MatchingRefusal::UnknownCase.into())
}

/// `GET /v1/moderation/matches/{id}`: a case with its derivatives.
pub(crate) async fn show_case(
    State(state): State<AppState>,
    auth: Authed,
    UrlParam(id): UrlParam<i64>,
) -> Result<impl IntoResponse, HttpRefusal> {
    matching(&state)?;
    crate::abuse::moderation::moderator(&state, &auth).await?;
    let case = load_case(&state, id).await?;
    let matches = case_matches(&state, id).await?;
    Ok(axum::Json(
        serde_json::json!({ "case": case, "matches": matches }),
    ))
}

/// Body of a decision.
#[derive(Debug, Deserialize)]
pub(crate) struct Decision {
    decision: String,
    #[serde(default)]
    note: String,
}

/// The clearinghouse package of a confirmed case (JSON): what a moderator
/// may forward by hand; the service sends it nowhere.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClearinghousePackage {
    /// `custos-clearinghouse-package/v1`.
    pub format: String,
    /// The case.
    pub case: i64,
    /// The account whose vouchers matched.
    pub account: String,
    /// When the threshold was reached (Unix milliseconds).
    pub opened_at: i64,
    /// When the moderator confirmed.
    pub confirmed_at: i64,
    /// The confirming moderator.
    pub moderator: String,
    /// The moderator's note.
    pub note: String,
    /// The matched pictures: hashes, derivatives, times.
    pub matches: Vec<MatchView>,
    /// The table's root (hex), list size, threshold and synthetic rate.
    pub hash_list: serde_json::Value,
    /// Inclusion proofs of the logged root (kind 13) and policy (kind 14),
    /// or `null` when this service has not published them.
    pub log_proofs: Option<serde_json::Value>,
}

/// `POST /v1/moderation/matches/{id}/resolve` `{"decision": "confirm"|"dismiss", "note"}`:
/// confirming answers the clearinghouse package.
pub(crate) async fn resolve_case(
    State(state): State<AppState>,
    auth: Authed,
    UrlParam(id): UrlParam<i64>,
    JsonBody(body): JsonBody<Decision>,
) -> Result<impl IntoResponse, HttpRefusal> {
    let m = matching(&state)?;
    crate::abuse::moderation::moderator(&state, &auth).await?;
    let status = match body.decision.as_str() {
        "confirm" => "confirmed",
        "dismiss" => "dismissed",
        _ => return Err(MatchingRefusal::BadDecision.into()),
    };
    let now = i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX);
    let updated = state
        .store
        .decide_case(id, status, now, &auth.name, &body.note)
        .await?;
    let case = load_case(&state, id).await?;
    if !updated {
        return Err(MatchingRefusal::CaseDecided.into());
    }
    tracing::info!(case = id, status, moderator = %auth.name, "matching case decided");
    if status == "dismissed" {
        return Ok(axum::Json(serde_json::json!({ "case": case })));
    }
    let logged = m.table.logged();
    let package = ClearinghousePackage {
        format: "custos-clearinghouse-package/v1".into(),
        case: id,
        account: case.account.clone(),
        opened_at: case.opened_at,
        confirmed_at: now,
        moderator: auth.name.to_string(),
        note: body.note,
        matches: case_matches(&state, id).await?,
        hash_list: serde_json::json!({
            "root": hex::encode(logged.root),
            "list_size": logged.list_size,
            "threshold": m.threshold,
            "synthetic_rate_ppm": m.synthetic_rate_ppm,
        }),
        log_proofs: m.proofs().map(|(root, policy)| {
            serde_json::json!({ "hash_list_root": root, "matching_policy": policy })
        }),
    };
    Ok(axum::Json(
        serde_json::json!({ "case": case, "package": package }),
    ))
}

/// `GET /v1/moderation/matches-stats`: the public figures of matching.
pub(crate) async fn stats(State(state): State<AppState>) -> Result<impl IntoResponse, HttpRefusal> {
    let m = matching(&state)?;
    let [accounts, opened, confirmed, dismissed] = state.store.matching_figures().await?;
    let pending = opened.saturating_sub(confirmed.saturating_add(dismissed));
    let logged = m.table.logged();
    Ok(axum::Json(serde_json::json!({
        "enabled": m.enabled,
        "threshold": m.threshold,
        "synthetic_rate_ppm": m.synthetic_rate_ppm,
        "list_size": logged.list_size,
        "table_root": hex::encode(logged.root),
        "accounts_matched": accounts,
        "cases_opened": opened,
        "cases_pending": pending,
        "cases_confirmed": confirmed,
        "cases_dismissed": dismissed,
    })))
}
