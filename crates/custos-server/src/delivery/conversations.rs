//! Conversations: registration, ordered commits with Welcome delivery, the
//! caller's list, and item submission over HTTP.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use custos_wire::ConversationId;
use custos_wire::frames::{ClientFrame, ItemKind, MAX_ITEM_BODY_LEN, ServerFrame};
use serde::Deserialize;

use crate::delivery::auth::{Authed, b64};
use crate::delivery::public_state::{GroupState, parse_handshake};
use crate::delivery::submit::{admit, expiry, prepare};
use crate::delivery::writer::{CommitReq, NewItem, Op};
use crate::error::HttpRefusal;
use crate::refusal::{ConversationRefusal, RequestRefusal, SubmitRefusal};
use crate::state::{AppState, JsonBody, MAX_SUBMIT_FRAME};
use openmls::prelude::ContentType;

fn parse_id(s: &str) -> Result<ConversationId, ConversationRefusal> {
    ConversationId::from_hex(s).map_err(|_| ConversationRefusal::BadConversation)
}

/// Body of `POST /v1/conversations`: the conversation id and the group's
/// public state at epoch 0 (base64: a GroupInfo `MlsMessage` and the ratchet
/// tree), from which the service derives the members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    conversation: String,
    group_info: String,
    ratchet_tree: String,
}

/// `POST /v1/conversations`.
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    admit(&state, &auth)?;
    let conversation = parse_id(&body.conversation)?;
    let group_info = b64("group_info", &body.group_info, MAX_ITEM_BODY_LEN)?;
    let ratchet_tree = b64("ratchet_tree", &body.ratchet_tree, MAX_ITEM_BODY_LEN)?;
    let group = Box::new(GroupState::create(
        &conversation,
        &group_info,
        &ratchet_tree,
    )?);
    let now = state.clock.now_millis();
    let account_id = auth.account_id;
    state
        .writer
        .call(|reply| Op::CreateConversation {
            conversation,
            account_id,
            state: group,
            now,
            reply,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "epoch": 0 })),
    ))
}

/// Body of `POST /v1/conversations/{id}/commits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitBody {
    epoch: u64,
    commit: String,
    #[serde(default)]
    welcome: Option<String>,
    /// What older clients claimed the members would be. Ignored: the
    /// members come from the verified commit only.
    #[serde(default, rename = "members")]
    _claimed_members: Option<serde::de::IgnoredAny>,
}

/// `POST /v1/conversations/{id}/commits`: the commit (an MLS
/// `PublicMessage`) must apply to the conversation's public state at the
/// current epoch (`400 invalid_commit` otherwise); the first commit for the
/// current epoch wins, anything else is `409 stale_epoch`.
pub(crate) async fn commit(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CommitBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    admit(&state, &auth)?;
    let conversation = parse_id(&id)?;
    let commit = b64("commit", &body.commit, MAX_ITEM_BODY_LEN)?;
    let welcome = body
        .welcome
        .as_deref()
        .map(|w| b64("welcome", w, MAX_ITEM_BODY_LEN))
        .transpose()?;
    if commit.is_empty() || welcome.as_ref().is_some_and(Vec::is_empty) {
        return Err(ConversationRefusal::Empty.into());
    }
    let handshake = parse_handshake(&commit, &conversation, ContentType::Commit)?;
    let server_time = state.clock.now_millis();
    let item = |kind: ItemKind, bytes: Vec<u8>| -> Result<NewItem, HttpRefusal> {
        // Commits and Welcomes carry no franking commitment: no tag.
        Ok(NewItem {
            kind,
            conversation,
            sender_account: auth.account_id,
            sender_device: auth.device_id,
            sender_name: auth.name.clone(),
            server_time,
            expires_at: expiry(&state, server_time),
            hash: None,
            epoch: None,
            franking_commitment: None,
            tag: Vec::new(),
            body: Bytes::from(bytes),
        })
    };
    let req = CommitReq {
        epoch: body.epoch,
        handshake,
        max_members: state.config.limits.max_members,
        commit: item(ItemKind::Commit, commit)?,
        welcome: welcome.map(|w| item(ItemKind::Welcome, w)).transpose()?,
    };
    let done = state
        .writer
        .call(|reply| Op::Commit {
            req: Box::new(req),
            reply,
        })
        .await?;
    Ok(axum::Json(
        serde_json::json!({ "epoch": done.epoch, "seq": done.item_id }),
    ))
}

/// `GET /v1/conversations`.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authed,
) -> Result<impl IntoResponse, HttpRefusal> {
    let rows: Vec<(Vec<u8>, i64, String)> = match &state.pg {
        None => {
            sqlx::query_as(
                "SELECT c.id, c.epoch, a.name FROM members mine \
                 JOIN conversations c ON c.id = mine.conversation \
                 JOIN members m ON m.conversation = c.id JOIN accounts a ON a.id = m.account_id \
                 WHERE mine.account_id = ? ORDER BY c.id, a.name",
            )
            .bind(auth.account_id)
            .fetch_all(&state.pool)
            .await?
        }
        Some(pg) => pg.conversations_of(auth.account_id).await?,
    };
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    for (id, epoch, name) in rows {
        if last.as_ref() != Some(&id) {
            out.push(serde_json::json!({
                "conversation": hex::encode(&id),
                "epoch": epoch,
                "members": [],
            }));
            last = Some(id);
        }
        if let Some(members) = out
            .last_mut()
            .and_then(|c| c.get_mut("members"))
            .and_then(|m| m.as_array_mut())
        {
            members.push(name.into());
        }
    }
    Ok(axum::Json(serde_json::json!({ "conversations": out })))
}

/// `POST /v1/conversations/{id}/items`: body is an encoded
/// `ClientFrame::Submit`; answer is an encoded `ServerFrame::Accepted`.
pub(crate) async fn submit_item(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, HttpRefusal> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RequestRefusal::TooLarge("the submission exceeds 256 KiB plus the frame header".into())
        } else {
            RequestRefusal::BadBody(e.body_text())
        }
    })?;
    let conversation = parse_id(&id)?;
    if body.len() > MAX_SUBMIT_FRAME {
        return Err(RequestRefusal::TooLarge("the item exceeds 256 KiB".into()).into());
    }
    let frame = ClientFrame::decode(&body).map_err(|e| RequestRefusal::wire("submit frame", &e))?;
    let ClientFrame::Submit {
        request_id,
        kind,
        conversation: frame_conv,
        body,
    } = frame
    else {
        return Err(SubmitRefusal::WrongFrame.into());
    };
    if frame_conv != conversation {
        return Err(SubmitRefusal::ConversationMismatch(
            "the frame's conversation differs from the path's".into(),
        )
        .into());
    }
    let item = prepare(&state, &auth, kind, conversation, body)?;
    let server_time = item.server_time;
    let tag = state
        .writer
        .call(|reply| Op::Submit { item, reply })
        .await?;
    let frame = ServerFrame::Accepted {
        request_id,
        server_time,
        tag,
    }
    .encode()
    .map_err(|e| HttpRefusal::internal("encode accepted", e))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], frame))
}
