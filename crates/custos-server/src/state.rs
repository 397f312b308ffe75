//! The state every handler shares, and the JSON body extractor. Both the
//! router ([`crate::routes`]) and the handlers import it; it imports
//! neither.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use custos_clock::SharedClock;
use custos_wire::frames::MAX_ITEM_BODY_LEN;
use serde::de::DeserializeOwned;
use sqlx::SqlitePool;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::delivery::challenge::Challenges;
use crate::delivery::mailbox::Hub;
use crate::delivery::writer::WriterHandle;
use crate::error::HttpRefusal;
use crate::limits::RateLimiter;
use crate::refusal::RequestRefusal;

/// Everything a request handler may use.
pub(crate) struct Inner {
    pub pool: SqlitePool,
    /// Accounts, sessions and KeyPackages, on the configured backend.
    pub store: Arc<dyn crate::store::Store>,
    /// The PostgreSQL store when the service runs on PostgreSQL
    /// ([`crate::ServerConfig::database`]); `None` on SQLite. On
    /// PostgreSQL, [`Inner::pool`] is closed: every query on it fails (no
    /// route uses it there; each concern has its store on both backends).
    pub pg: Option<crate::store::postgres::PgStore>,
    pub clock: SharedClock,
    pub config: ServerConfig,
    pub writer: WriterHandle,
    pub hub: Arc<Hub>,
    /// Login challenges: issued statelessly, answers remembered per account.
    pub challenges: Challenges,
    pub ip_limiter: RateLimiter<IpAddr>,
    pub account_limiter: RateLimiter<i64>,
    /// Sessions already read from the store
    /// ([`crate::delivery::session_cache`]).
    pub sessions: crate::delivery::session_cache::SessionCache,
    /// Registration, report and WebSocket connection limits.
    pub guards: crate::limits::Guards,
    pub shutdown: watch::Receiver<bool>,
    /// The voucher writer, when the service matches known content.
    pub vouchers: Option<crate::abuse::vouchers::VoucherQueue>,
    /// The key directory, when the service runs one.
    pub directory: Option<Arc<crate::directory::DirectoryService>>,
}

/// Shared state of the router.
pub(crate) type AppState = Arc<Inner>;

/// Largest valid Submit frame: its header (version, kind, request id, item
/// kind, conversation, body length) around a 256 KiB item.
pub(crate) const MAX_SUBMIT_FRAME: usize = 1 + 1 + 8 + 1 + 16 + 4 + MAX_ITEM_BODY_LEN;
/// Body limit of the item endpoint (a little over the largest frame, so that
/// a frame just too large is answered by the frame check).
pub(crate) const MAX_SUBMIT_BODY: usize = MAX_SUBMIT_FRAME + 1024;

/// A JSON request body: at most the configured size (413), valid JSON
/// with exactly the expected fields (400 otherwise). The content type is not
/// checked.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = HttpRefusal;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, HttpRefusal> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                RequestRefusal::TooLarge(format!(
                    "the body exceeds {} bytes",
                    state.config.limits.max_json_body
                ))
            } else {
                RequestRefusal::BadBody(e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| RequestRefusal::BadJson(e.to_string()).into())
    }
}

/// A raw request body: at most the route's limit (`413` in JSON), read
/// completely (`400` in JSON otherwise).
pub(crate) struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = HttpRefusal;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, HttpRefusal> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    RequestRefusal::TooLarge("the body exceeds this endpoint's limit".into())
                } else {
                    RequestRefusal::BadBody(e.body_text())
                }
                .into()
            })
    }
}

/// A path parameter that must parse as `T`: anything else is a JSON `400`.
pub(crate) struct UrlParam<T>(pub T);

impl<T> axum::extract::FromRequestParts<AppState> for UrlParam<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = HttpRefusal;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, HttpRefusal> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| UrlParam(v))
            .map_err(|e| RequestRefusal::BadPath(e.body_text()).into())
    }
}

/// A query string that must parse as `T`: anything else is a JSON `400`.
pub(crate) struct UrlQuery<T>(pub T);

impl<T> axum::extract::FromRequestParts<AppState> for UrlQuery<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = HttpRefusal;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, HttpRefusal> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| UrlQuery(v))
            .map_err(|e| RequestRefusal::BadQuery(e.body_text()).into())
    }
}
