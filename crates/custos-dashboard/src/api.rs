//! The JSON API (version 1, under `/api/v1/`) and the static page, with
//! the OpenAPI description generated from the same types
//! (`/api/v1/openapi.json`).
//!
//! # Security meaning
//! Everything here is public. The API serves the dashboard's findings and,
//! beside them, the raw material to check them without trusting the
//! dashboard: the checkpoint note, the manifest keys, and each
//! lawful-access entry's bytes with its inclusion proof.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use custos_verify::figures::{
    AuditFigures, Counts, CustodianFigures, Flags, MatchingFigures, MissingErasure,
    OverdueUnsealing, RefusedStatement, Row, UnloggedWarrant,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::assets;
use crate::state::Shared;

/// Version of the API's JSON shapes.
pub const API_VERSION: u32 = 1;

/// The log's health as the dashboard last verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// Shape version, [`API_VERSION`].
    pub version: u32,
    /// The log's origin (its name in the manifest).
    pub origin: String,
    /// Size of the latest adopted checkpoint (0 before the first).
    pub tree_size: u64,
    /// Its root hash, base64.
    pub root_hash: String,
    /// The latest adopted checkpoint: the whole signed note, with the log's
    /// signature and the witness cosignatures (check it yourself).
    pub checkpoint: String,
    /// Each witness of the manifest.
    pub witnesses: Vec<WitnessStatus>,
    /// Cosignatures a checkpoint needs.
    pub witness_quorum: usize,
    /// Set once the log was seen to be inconsistent (a rollback, a fork, or
    /// entries that do not hash to its checkpoint): the dashboard stopped
    /// following, and the page shows this in red.
    pub inconsistency: Option<String>,
    /// The last poll's problem that is not an inconsistency (the log
    /// unreachable, a checkpoint without its witness quorum), if any.
    pub warning: Option<String>,
    /// Entries the replay refused (bad encoding, signature or role).
    pub bad_entry_count: u64,
    /// The first of them.
    pub bad_entries: Vec<BadEntryView>,
    /// Whether the dashboard still follows the log.
    pub following: bool,
    /// Entries fetched from the log since the dashboard started: each entry
    /// is fetched and checked once, so this stays at the log's size.
    pub entries_fetched: u64,
    /// When the dashboard last polled, Unix milliseconds of its clock.
    pub polled_at: Option<u64>,
    /// SHA-256 of the manifest the dashboard trusts, hex (compare out of band).
    pub manifest_hash: String,
}

impl Status {
    pub(crate) fn empty(origin: &str, witness_quorum: usize, manifest_hash: String) -> Self {
        Self {
            version: API_VERSION,
            origin: origin.to_owned(),
            tree_size: 0,
            root_hash: String::new(),
            checkpoint: String::new(),
            witnesses: Vec::new(),
            witness_quorum,
            inconsistency: None,
            warning: None,
            bad_entry_count: 0,
            bad_entries: Vec::new(),
            following: true,
            entries_fetched: 0,
            polled_at: None,
            manifest_hash,
        }
    }
}

/// One witness and when it last cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WitnessStatus {
    /// Its name in the manifest.
    pub name: String,
    /// Whether its cosignature on the latest checkpoint verified.
    pub in_latest: bool,
    /// The newest timestamp of its verified cosignatures, Unix seconds.
    pub last_cosigned: Option<u64>,
}

/// An entry the replay refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BadEntryView {
    /// Log index.
    pub index: u64,
    /// Why.
    pub reason: String,
}

/// The lawful-access entries with their inclusion proofs against one
/// checkpoint, so that a reader can recompute the warrant figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    /// Size of the checkpoint the proofs are against.
    pub tree_size: u64,
    /// That checkpoint, the whole signed note.
    pub checkpoint: String,
    /// Every valid warrant commitment, release, interception, unsealing,
    /// extension, revocation and day-key erasure, in log order.
    pub entries: Vec<EvidenceEntry>,
}

/// One log entry and its RFC 9162 inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceEntry {
    /// Log index.
    pub index: u64,
    /// Statement type (`warrant_commitment`, ...), as the server read it.
    pub kind: String,
    /// The entry's exact bytes (a signed statement), base64.
    pub entry: String,
    /// Inclusion proof against [`Evidence::checkpoint`], base64 hashes.
    pub proof: Vec<String>,
}

/// The keys of the manifest the dashboard trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ManifestKeys {
    /// The log's origin (checkpoint key name).
    pub origin: String,
    /// The log's Ed25519 key, hex.
    pub log_key: String,
    /// The witnesses' cosignature keys.
    pub witnesses: Vec<NamedKey>,
    /// Cosignatures a checkpoint needs.
    pub witness_quorum: usize,
    /// Every participant (courts, authorities, custodians, provider...).
    pub participants: Vec<ParticipantKey>,
    /// The policy's longest embargo, in days from issue.
    pub max_embargo_days: u16,
    /// The policy's grace before a day's shares must be erased, in days.
    pub erasure_grace_days: u16,
    /// SHA-256 of the manifest, hex.
    pub manifest_hash: String,
}

/// A name and an Ed25519 key, hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedKey {
    /// Name in the manifest.
    pub name: String,
    /// Ed25519 public key, hex.
    pub key: String,
}

/// A manifest participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantKey {
    /// Name in the manifest.
    pub name: String,
    /// Role (`court`, `authority`, `custodian`, ...).
    pub role: String,
    /// Ed25519 public key, hex.
    pub key: String,
}

/// The provider's moderation figures, as the provider publishes them (the
/// dashboard cannot check them: they are not in the log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Moderation {
    /// Whether the dashboard was given a provider to ask.
    pub configured: bool,
    /// The figures, if the provider answered.
    pub figures: Option<ModerationFigures>,
    /// Why not, if it did not.
    pub error: Option<String>,
}

/// `GET /v1/moderation/stats` of the delivery service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModerationFigures {
    /// Reports received (verified and refused).
    pub reports_received: i64,
    /// Reports whose franking verified.
    pub reports_verified: i64,
    /// Reports refused.
    pub reports_refused: i64,
    /// Refusals by reason code.
    #[serde(default)]
    pub refused_by_reason: BTreeMap<String, i64>,
    /// Reports not yet resolved.
    pub reports_open: i64,
    /// Actions taken, by kind.
    #[serde(default)]
    pub actions: BTreeMap<String, i64>,
    /// Median time from receipt to the first action, milliseconds.
    pub median_time_to_action_ms: Option<i64>,
}

/// Everything the page needs, from one poll (so that the figures, the
/// checkpoint and the evidence agree with each other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Everything {
    /// As `/api/v1/status`.
    pub status: Status,
    /// As `/api/v1/figures`.
    pub figures: AuditFigures,
    /// As `/api/v1/evidence`.
    pub evidence: Evidence,
    /// As `/api/v1/moderation`.
    pub moderation: Moderation,
}

/// A consistency proof between two checkpoints (RFC 9162), passed on from
/// the log: the page checks it against the checkpoints it verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older size.
    pub old: u64,
    /// The newer size (at most the adopted checkpoint's).
    pub size: u64,
    /// The proof, base64 hashes.
    pub proof: Vec<String>,
}

/// Sizes of a consistency proof request.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
pub struct ConsistencyQuery {
    /// The older size (a checkpoint the reader verified before).
    pub old: u64,
    /// The newer size (the adopted checkpoint's).
    pub size: u64,
}

/// Why an API request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The OpenAPI description of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Custos transparency dashboard",
        description = "What the transparency log proves about lawful access, and the raw material to check it."
    ),
    paths(
        everything,
        status,
        figures,
        evidence,
        manifest_keys,
        moderation,
        consistency
    ),
    components(schemas(
        Everything,
        Status,
        WitnessStatus,
        BadEntryView,
        Evidence,
        EvidenceEntry,
        ManifestKeys,
        NamedKey,
        ParticipantKey,
        Moderation,
        ModerationFigures,
        AuditFigures,
        Counts,
        Row,
        CustodianFigures,
        MatchingFigures,
        Flags,
        OverdueUnsealing,
        MissingErasure,
        UnloggedWarrant,
        RefusedStatement
    ))
)]
pub struct ApiDoc;

/// Status, figures, evidence and moderation figures of one poll.
#[utoipa::path(get, path = "/api/v1/all", responses((status = 200, body = Everything)))]
async fn everything(State(s): State<Shared>) -> impl IntoResponse {
    let snap = s.get();
    axum::Json(Everything {
        status: snap.status.clone(),
        figures: snap.figures.clone(),
        evidence: snap.evidence.clone(),
        moderation: snap.moderation.clone(),
    })
}

/// The log's health.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = Status)))]
async fn status(State(s): State<Shared>) -> impl IntoResponse {
    axum::Json(s.get().status.clone())
}

/// The lawful-access figures at the dashboard's clock.
#[utoipa::path(get, path = "/api/v1/figures", responses((status = 200, body = AuditFigures)))]
async fn figures(State(s): State<Shared>) -> impl IntoResponse {
    axum::Json(s.get().figures.clone())
}

/// The lawful-access entries with inclusion proofs.
#[utoipa::path(get, path = "/api/v1/evidence", responses((status = 200, body = Evidence)))]
async fn evidence(State(s): State<Shared>) -> impl IntoResponse {
    axum::Json(s.get().evidence.clone())
}

/// The manifest keys the dashboard trusts.
#[utoipa::path(get, path = "/api/v1/manifest", responses((status = 200, body = ManifestKeys)))]
async fn manifest_keys(State(s): State<Shared>) -> impl IntoResponse {
    axum::Json(s.keys().clone())
}

/// The provider's moderation figures.
#[utoipa::path(get, path = "/api/v1/moderation", responses((status = 200, body = Moderation)))]
async fn moderation(State(s): State<Shared>) -> impl IntoResponse {
    axum::Json(s.get().moderation.clone())
}

/// A consistency proof from an older checkpoint to the adopted one.
#[utoipa::path(
    get,
    path = "/api/v1/consistency",
    params(ConsistencyQuery),
    responses(
        (status = 200, body = ConsistencyProof),
        (status = 400, body = ApiError),
        (status = 502, body = ApiError)
    )
)]
async fn consistency(
    State(s): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<ConsistencyQuery>,
) -> axum::response::Response {
    let adopted = s.get().status.tree_size;
    let refuse = |status: StatusCode, code: &str, message: String| {
        (
            status,
            axum::Json(ApiError {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response()
    };
    if q.old == 0 || q.old > q.size || q.size > adopted {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_sizes",
            format!("need 0 < old <= size <= {adopted}"),
        );
    }
    match s.log().consistency_proof(q.old, q.size).await {
        Ok(proof) => axum::Json(ConsistencyProof {
            old: q.old,
            size: q.size,
            proof: custos_tlog::proof_json::encode_proof(&proof),
        })
        .into_response(),
        Err(e) => refuse(StatusCode::BAD_GATEWAY, "log_unavailable", e.to_string()),
    }
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// The dashboard's routes: the API, its description, and the page.
pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v1/all", get(everything))
        .route("/api/v1/status", get(status))
        .route("/api/v1/figures", get(figures))
        .route("/api/v1/evidence", get(evidence))
        .route("/api/v1/manifest", get(manifest_keys))
        .route("/api/v1/moderation", get(moderation))
        .route("/api/v1/consistency", get(consistency))
        .route("/api/v1/openapi.json", get(openapi))
        .route(
            "/",
            get(|| assets::serve(assets::INDEX_HTML, "text/html; charset=utf-8")),
        )
        .route(
            "/app.js",
            get(|| assets::serve(assets::APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/style.css",
            get(|| assets::serve(assets::STYLE_CSS, "text/css; charset=utf-8")),
        )
        .with_state(shared)
        .layer(axum::middleware::map_response(no_store))
}

/// Every answer is fresh (the figures change with each poll) and the page
/// may load nothing from elsewhere.
async fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    resp
}
