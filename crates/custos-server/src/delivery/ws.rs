//! The mailbox WebSocket: on connect, the stored backlog (seq order), then
//! live pushes; the client may submit items (answered `Accepted`/`Refused`
//! with its request id, after the commit) and ack deliveries.
//!
//! Pushes never skip an item: the connection subscribes to live pushes
//! *before* it reads the backlog, and drops live items whose seq it already
//! sent. If its push queue overflows (a slow reader), the hub drops the
//! queue and the connection catches up from the database the same way.

use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use custos_wire::frames::{ClientFrame, MAX_ITEM_BODY_LEN, MAX_REASON_LEN, ServerFrame};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::delivery::auth::Authed;
use crate::delivery::mailbox::{Hub, MAX_FETCH, Push, fetch_for};
use crate::delivery::submit::prepare;
use crate::delivery::writer::{Op, delivery_frame_of};
use crate::error::HttpRefusal;
use crate::refusal::RequestRefusal;
use crate::state::{AppState, MAX_SUBMIT_FRAME};

type Pending = Pin<Box<dyn Future<Output = ServerFrame> + Send>>;

/// How often a connection on PostgreSQL reads its mailbox although no
/// wake-up came (a lost notification then costs at most this much latency).
const PG_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Read buffer of a connection. Small, so that idle connections are cheap;
/// larger frames grow it as needed.
const READ_BUFFER: usize = 2048;

/// `GET /v1/ws`.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    auth: Authed,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return HttpRefusal::from(RequestRefusal::NotWebsocket(e.body_text())).into_response();
        }
    };
    // The slot is held by the connection, and released when it ends or if
    // the upgrade never completes.
    let slot = match state.guards.connections.open(auth.account_id) {
        Ok(slot) => slot,
        Err(e) => return HttpRefusal::from(e).into_response(),
    };
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_ITEM_BODY_LEN + 1024)
        .max_frame_size(MAX_ITEM_BODY_LEN + 1024)
        .on_upgrade(move |socket| async move {
            run(socket, state, auth).await;
            drop(slot);
        })
}

fn refused(request_id: u64, e: &HttpRefusal) -> ServerFrame {
    let mut reason = e.message.clone();
    if reason.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !reason.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        reason.truncate(cut);
    }
    ServerFrame::Refused {
        request_id,
        status: e.status.as_u16(),
        reason,
    }
}

async fn send_frame(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), ()> {
    let bytes = frame.encode().map_err(|_| ())?;
    socket
        .send(Message::Binary(bytes.into()))
        .await
        .map_err(|_| ())
}

/// Sends every stored item with seq > `last`, updating `last`.
async fn backfill(
    socket: &mut WebSocket,
    state: &AppState,
    auth: &Authed,
    last: &mut u64,
) -> Result<(), ()> {
    loop {
        let items = fetch_for(state, auth.device_id, *last, MAX_FETCH)
            .await
            .map_err(|_| ())?;
        let n = items.len();
        for d in items {
            let seq = d.seq;
            let bytes = delivery_frame_of(d).map_err(|_| ())?;
            socket.send(Message::Binary(bytes)).await.map_err(|_| ())?;
            *last = seq;
        }
        if n < usize::try_from(MAX_FETCH).unwrap_or(usize::MAX) {
            return Ok(());
        }
    }
}

/// A device's subscription to the hub, removed when dropped.
struct Subscription<'a> {
    hub: &'a Hub,
    device: i64,
    id: u64,
}

impl<'a> Subscription<'a> {
    fn new(hub: &'a Hub, device: i64) -> (Self, tokio::sync::mpsc::Receiver<Push>) {
        let (id, rx) = hub.subscribe(device);
        (Self { hub, device, id }, rx)
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.device, self.id);
    }
}

async fn run(mut socket: WebSocket, state: AppState, auth: Authed) {
    let mut shutdown = state.shutdown.clone();
    let mut last_sent = 0u64;
    let mut inflight: FuturesUnordered<Pending> = FuturesUnordered::new();
    let max_in_flight = state.config.limits.ws_max_in_flight.max(1);
    // Idle timeout: a ping every interval; a connection from which nothing
    // arrived since the previous ping (a pong is answered by any live
    // WebSocket library) is closed.
    let ping_every = state.config.limits.ws_ping_interval;
    let pinging = !ping_every.is_zero();
    let period = ping_every.max(std::time::Duration::from_millis(10));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = true;
    // PostgreSQL: a device's seqs are dense, and rows stored by another
    // server arrive only through wake-ups (hints) and this slow poll.
    let on_pg = state.pg.is_some();
    let mut poll = tokio::time::interval(PG_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'connection: loop {
        // Ends the subscription however this pass of the loop ends.
        let (_subscription, mut rx) = Subscription::new(&state.hub, auth.device_id);
        if backfill(&mut socket, &state, &auth, &mut last_sent)
            .await
            .is_err()
        {
            break 'connection;
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    let _ = socket.send(Message::Close(None)).await;
                    break 'connection;
                }
                _ = ping.tick(), if pinging => {
                    // A client whose submissions fill the window is not
                    // read meanwhile, so its silence does not count.
                    if !heard && inflight.len() < max_in_flight {
                        tracing::debug!(device = auth.device_id, "WebSocket idle: closing");
                        let _ = socket.send(Message::Close(None)).await;
                        break 'connection;
                    }
                    heard = false;
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break 'connection;
                    }
                }
                Some(frame) = inflight.next(), if !inflight.is_empty() => {
                    if send_frame(&mut socket, &frame).await.is_err() {
                        break 'connection;
                    }
                }
                _ = poll.tick(), if on_pg => {
                    if backfill(&mut socket, &state, &auth, &mut last_sent).await.is_err() {
                        break 'connection;
                    }
                }
                push = rx.recv() => match push {
                    // A wake-up, or (PostgreSQL) a push past a seq this
                    // connection has not seen, which another server stored:
                    // read from the cursor, in order.
                    Some((seq, bytes)) if bytes.is_empty() || (on_pg && seq > last_sent.saturating_add(1)) => {
                        if backfill(&mut socket, &state, &auth, &mut last_sent).await.is_err() {
                            break 'connection;
                        }
                    }
                    Some((seq, bytes)) => {
                        if seq > last_sent {
                            if socket.send(Message::Binary(bytes)).await.is_err() {
                                        break 'connection;
                            }
                            last_sent = seq;
                        }
                    }
                    // The hub dropped a lagging queue: catch up from the database.
                    None => continue 'connection,
                },
                msg = socket.recv(), if inflight.len() < max_in_flight => {
                    heard = true;
                    let keep = match msg {
                        Some(Ok(Message::Binary(b))) => on_frame(&mut socket, &state, &auth, &b, &mut inflight).await,
                        Some(Ok(Message::Text(_))) => {
                            let e = RequestRefusal::Malformed {
                                what: "a WebSocket message",
                                detail: "frames are binary".into(),
                            }
                            .into();
                            send_frame(&mut socket, &refused(0, &e)).await.is_ok()
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => true,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => false,
                    };
                    if !keep {
                        break 'connection;
                    }
                }
            }
        }
    }
}

/// Handles one client frame; false closes the connection.
async fn on_frame(
    socket: &mut WebSocket,
    state: &AppState,
    auth: &Authed,
    bytes: &[u8],
    inflight: &mut FuturesUnordered<Pending>,
) -> bool {
    let frame = match ClientFrame::decode(bytes) {
        Ok(f) => f,
        Err(e) => {
            let e = if bytes.len() > MAX_SUBMIT_FRAME {
                RequestRefusal::TooLarge("the item exceeds 256 KiB".into())
            } else {
                RequestRefusal::wire("client frame", &e)
            }
            .into();
            return send_frame(socket, &refused(0, &e)).await.is_ok();
        }
    };
    match frame {
        ClientFrame::Submit {
            request_id,
            kind,
            conversation,
            body,
        } => {
            let prepared = state
                .account_limiter
                .check(auth.account_id)
                .map_err(|retry_after| RequestRefusal::RateLimited { retry_after }.into())
                .and_then(|()| prepare(state, auth, kind, conversation, body));
            let item = match prepared {
                Ok(item) => item,
                Err(e) => return send_frame(socket, &refused(request_id, &e)).await.is_ok(),
            };
            let server_time = item.server_time;
            let (tx, rx) = tokio::sync::oneshot::channel();
            if state
                .writer
                .send(Op::Submit { item, reply: tx })
                .await
                .is_err()
            {
                return false;
            }
            inflight.push(Box::pin(async move {
                match rx.await {
                    Ok(Ok(tag)) => ServerFrame::Accepted {
                        request_id,
                        server_time,
                        tag,
                    },
                    Ok(Err(e)) => refused(request_id, &e),
                    Err(_) => refused(request_id, &HttpRefusal::unavailable()),
                }
            }));
            true
        }
        ClientFrame::Ack { seqs } => {
            let op = Op::Ack {
                device_id: auth.device_id,
                seqs,
                reply: None,
            };
            state.writer.send(op).await.is_ok()
        }
    }
}
