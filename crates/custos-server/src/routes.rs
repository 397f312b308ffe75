//! The HTTP surface: the router of `docs/spec/delivery-api.md`, mounting
//! the handlers of each room ([`crate::delivery`], [`crate::abuse`]) on the
//! shared [`AppState`](crate::state::AppState).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::abuse::{matching, moderation};
use crate::delivery::{auth, blobs, conversations, keypackages, mailbox, ws};
use crate::directory;
use crate::error::HttpRefusal;
use crate::health;
use crate::lawful::intercept;
use crate::limits;
use crate::refusal::RequestRefusal;
use crate::state::{AppState, MAX_SUBMIT_BODY};

async fn not_found() -> HttpRefusal {
    RequestRefusal::NoRoute.into()
}

async fn wrong_method() -> HttpRefusal {
    RequestRefusal::MethodNotAllowed.into()
}

/// The whole API of docs/spec/delivery-api.md.
pub(crate) fn router(state: AppState) -> Router {
    let json_limit = state.config.limits.max_json_body;
    let blob_limit = usize::try_from(state.config.limits.max_blob_len)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    Router::new()
        .route(
            "/v1/blobs",
            post(blobs::upload).layer(DefaultBodyLimit::max(blob_limit)),
        )
        .route("/v1/blobs/{locator}", get(blobs::download))
        .route(
            "/v1/blobs/{locator}/voucher",
            post(matching::upload_voucher).layer(DefaultBodyLimit::max(
                custos_psi::voucher::MAX_VOUCHER_LEN + 1,
            )),
        )
        .route(
            "/v1/vouchers",
            post(matching::upload_vouchers)
                .layer(DefaultBodyLimit::max(matching::MAX_VOUCHER_BATCH_LEN + 1)),
        )
        .route("/v1/psi/table", get(matching::table))
        .route("/v1/moderation/matches", get(matching::list_cases))
        .route("/v1/moderation/matches/{id}", get(matching::show_case))
        .route(
            "/v1/moderation/matches/{id}/resolve",
            post(matching::resolve_case),
        )
        .route("/v1/moderation/matches-stats", get(matching::stats))
        .route("/v1/health", get(health::live))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/v1/accounts", post(auth::register))
        .route("/v1/auth/challenge", post(auth::challenge))
        .route("/v1/auth/session", post(auth::session))
        .route("/v1/key-packages", post(keypackages::upload))
        .route("/v1/key-packages/claim", post(keypackages::claim))
        .route("/v1/key-packages/count", get(keypackages::count))
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/v1/conversations/{id}/commits",
            post(conversations::commit),
        )
        .route(
            "/v1/conversations/{id}/items",
            post(conversations::submit_item).layer(DefaultBodyLimit::max(MAX_SUBMIT_BODY)),
        )
        .route("/v1/mailbox", get(mailbox::get_mailbox))
        .route("/v1/mailbox/ack", post(mailbox::post_ack))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/franking-key", get(moderation::franking_key))
        .route(
            "/v1/key-directory/lookup/{account}",
            get(directory::handlers::lookup),
        )
        .route(
            "/v1/key-directory/history/{account}",
            get(directory::handlers::history),
        )
        .route("/v1/key-directory/audit", get(directory::handlers::audit))
        .route(
            "/v1/key-directory/lookups",
            post(directory::handlers::lookup_many),
        )
        .route(
            "/v1/reports",
            post(moderation::submit_report).layer(DefaultBodyLimit::max(
                custos_wire::report::MAX_REPORT_LEN + 1024,
            )),
        )
        .route("/v1/moderation/reports", get(moderation::list))
        .route("/v1/moderation/reports/{id}", get(moderation::show))
        .route(
            "/v1/moderation/reports/{id}/attachments/{index}",
            get(moderation::attachment),
        )
        .route(
            "/v1/moderation/reports/{id}/resolve",
            post(moderation::resolve),
        )
        .route("/v1/moderation/stats", get(moderation::stats))
        .route(
            "/v1/interceptions",
            post(intercept::intercept).layer(DefaultBodyLimit::max(64 * 1024)),
        )
        .route(
            "/v1/interceptions/{commitment}/items",
            get(intercept::fetch),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::per_ip,
        ))
        .with_state(state)
}
