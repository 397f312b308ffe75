//! A test harness: a real service on 127.0.0.1:0 with a simulated clock,
//! and a small HTTP/WebSocket client.
#![allow(dead_code, missing_docs)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

pub mod mls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_clock::{MILLIS_PER_DAY, SimulatedClock, dangerous};
use custos_server::{DeliveryServiceError, Limits, ServerConfig};
use custos_wire::envelope::{Envelope, EnvelopeHeader};
use custos_wire::frames::{ClientFrame, Delivery, ItemKind, ServerFrame, decode_delivery_batch};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Day 20,418 (2025-11-26) at noon.
pub const START_MS: u64 = 20_418 * MILLIS_PER_DAY + MILLIS_PER_DAY / 2;

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub clock: SimulatedClock,
    pub dir: PathBuf,
    /// The PostgreSQL cluster of a server started by [`TestServer::start`]
    /// under `CUSTOS_TEST_BACKEND=postgres`.
    _pg: Option<Arc<custos_deploy::postgres::TestPostgres>>,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), DeliveryServiceError>>,
}

pub fn test_config(dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(dir);
    c.sweep_interval = Duration::from_millis(50);
    c.limits = Limits::relaxed();
    c
}

impl TestServer {
    /// A server on SQLite in a temporary folder; with
    /// `CUSTOS_TEST_BACKEND=postgres`, on a PostgreSQL cluster of its own
    /// instead (to run the API suites against that backend).
    pub async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut config = test_config(&dir);
        let mut pg = None;
        if std::env::var("CUSTOS_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
            let cluster = custos_deploy::postgres::TestPostgres::start(&dir.join("pg"))
                .unwrap()
                .expect("CUSTOS_TEST_BACKEND=postgres needs PostgreSQL installed");
            config = config.with_database(cluster.url());
            pg = Some(Arc::new(cluster));
        }
        let mut s = Self::start_with(config, dangerous::simulated(START_MS)).await;
        s._tmp = Some(tmp);
        s._pg = pg;
        s
    }

    /// Starts on `config.data_dir`, retrying while a previous instance still
    /// holds the directory lock.
    pub async fn start_with(config: ServerConfig, clock: SimulatedClock) -> Self {
        for _ in 0..200 {
            match Self::try_start(config.clone(), clock.clone()).await {
                Ok(s) => return s,
                Err(DeliveryServiceError::DataDirLocked(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("server failed to start: {e}"),
            }
        }
        panic!("data directory still locked after 10 s");
    }

    async fn try_start(
        config: ServerConfig,
        clock: SimulatedClock,
    ) -> Result<Self, DeliveryServiceError> {
        let dir = config.data_dir.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = clock.shared();
        let mut task = tokio::spawn(custos_server::serve(listener, config, shared, async move {
            let _ = rx.await;
        }));
        let url = format!("http://{addr}");
        let http = reqwest::Client::new();
        loop {
            if task.is_finished() {
                return Err((&mut task).await.unwrap().unwrap_err());
            }
            if let Ok(r) = http.get(format!("{url}/v1/health")).send().await
                && r.status() == StatusCode::OK
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self {
            addr,
            url,
            clock,
            dir,
            _pg: None,
            _tmp: None,
            stop: Some(tx),
            task,
        })
    }

    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
        self._tmp.take()
    }

    /// Drops the server task without a graceful stop. Returns the temp dir.
    pub async fn abort(mut self) -> Option<tempfile::TempDir> {
        self.task.abort();
        let _ = (&mut self.task).await;
        self._tmp.take()
    }

    /// The PostgreSQL URL when this server runs on PostgreSQL.
    pub fn database_url(&self) -> Option<String> {
        self._pg.as_ref().map(|pg| pg.url())
    }

    pub async fn health(&self) -> bool {
        reqwest::get(format!("{}/v1/health", self.url))
            .await
            .map(|r| r.status() == StatusCode::OK)
            .unwrap_or(false)
    }
}

pub struct User {
    pub name: String,
    pub key: SigningKey,
    pub token: String,
    pub base: String,
    pub http: reqwest::Client,
    /// The user's MLS groups (signed with `key`, as the real client does).
    pub mls: Arc<mls::Mls>,
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl User {
    pub async fn register(server: &TestServer, name: &str) -> User {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let mut u = User {
            name: name.to_owned(),
            mls: Arc::new(mls::Mls::new(name, &key)),
            key,
            token: String::new(),
            base: server.url.clone(),
            http: reqwest::Client::new(),
        };
        let (st, body) = u
            .post_json(
                "/v1/accounts",
                json!({"name": name, "identity_key": B64.encode(u.key.verifying_key().as_bytes())}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        u.login().await;
        u
    }

    pub async fn login(&mut self) {
        let (st, ch) = self
            .post_json("/v1/auth/challenge", json!({"name": self.name}))
            .await;
        assert_eq!(st, StatusCode::OK, "{ch}");
        let challenge: [u8; 32] = B64
            .decode(ch["challenge"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let sig = self
            .key
            .sign(&custos_server::challenge_message(&self.name, &challenge));
        let (st, s) = self
            .post_json(
                "/v1/auth/session",
                json!({"name": self.name, "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{s}");
        self.token = s["token"].as_str().unwrap().to_owned();
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let st = r.status();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let st = r.status();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_conversation(&self) -> ConversationId {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let conv = ConversationId(id);
        let (group_info, tree) = self.mls.create(&conv);
        let (st, body) = self.create_raw(&conv, &group_info, &tree).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        assert_eq!(body["epoch"], 0);
        conv
    }

    /// `POST /v1/conversations` with the given public state.
    pub async fn create_raw(
        &self,
        conv: &ConversationId,
        group_info: &[u8],
        tree: &[u8],
    ) -> (StatusCode, Value) {
        self.post_json(
            "/v1/conversations",
            json!({"conversation": conv.to_hex(), "group_info": B64.encode(group_info),
                   "ratchet_tree": B64.encode(tree)}),
        )
        .await
    }

    /// Posts a commit as given (any bytes).
    pub async fn commit_raw(
        &self,
        conv: &ConversationId,
        epoch: u64,
        commit: &[u8],
        welcome: Option<&[u8]>,
    ) -> (StatusCode, Value) {
        self.post_json(
            &format!("/v1/conversations/{conv}/commits"),
            json!({
                "epoch": epoch,
                "commit": B64.encode(commit),
                "welcome": welcome.map(|w| B64.encode(w)),
            }),
        )
        .await
    }

    /// Posts a staged MLS commit.
    pub async fn commit(&self, conv: &ConversationId, staged: &mls::Staged) -> (StatusCode, Value) {
        self.commit_raw(
            conv,
            staged.epoch,
            &staged.commit,
            staged.welcome.as_deref(),
        )
        .await
    }

    /// Commits a change (adds `add`, removes the names in `remove`; a
    /// self-update if both are empty). If the service accepts it, the
    /// committer merges it and `others` (members and added users) follow;
    /// else the committer drops it.
    pub async fn change(
        &self,
        conv: &ConversationId,
        add: &[&User],
        remove: &[&str],
        others: &[&User],
    ) -> (StatusCode, Value, mls::Staged) {
        let adds: Vec<&mls::Mls> = add.iter().map(|u| u.mls.as_ref()).collect();
        let staged = self.mls.stage(conv, &adds, remove);
        let (st, body) = self.commit(conv, &staged).await;
        self.mls.settle_own(conv, st == StatusCode::OK);
        if st == StatusCode::OK {
            for u in others.iter().chain(add) {
                u.mls.follow(conv, &staged);
            }
        }
        (st, body, staged)
    }

    /// A conversation with `others` added at epoch 0 -> 1.
    pub async fn group_with(&self, others: &[&User]) -> ConversationId {
        let conv = self.create_conversation().await;
        let (st, body, _) = self.change(&conv, others, &[], &[]).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        conv
    }

    pub async fn submit_raw(&self, conv: &ConversationId, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/conversations/{conv}/items", self.base))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Submits an item; Ok(Accepted frame) or Err((status, json)).
    pub async fn submit(
        &self,
        conv: &ConversationId,
        kind: ItemKind,
        body: Vec<u8>,
    ) -> Result<ServerFrame, (StatusCode, Value)> {
        let frame = ClientFrame::Submit {
            request_id: 7,
            kind,
            conversation: *conv,
            body,
        }
        .encode()
        .unwrap();
        let r = self.submit_raw(conv, frame).await;
        let st = r.status();
        if st == StatusCode::OK {
            Ok(ServerFrame::decode(&r.bytes().await.unwrap()).unwrap())
        } else {
            Err((st, r.json().await.unwrap()))
        }
    }

    pub async fn fetch(&self, after: u64) -> Vec<Delivery> {
        let r = self
            .http
            .get(format!("{}/v1/mailbox?after={after}&limit=1000", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        decode_delivery_batch(&r.bytes().await.unwrap()).unwrap()
    }

    pub async fn ack(&self, seqs: &[u64]) -> u64 {
        let (st, body) = self
            .post_json("/v1/mailbox/ack", json!({"seqs": seqs}))
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        body["acked"].as_u64().unwrap()
    }

    pub async fn ws(&self) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(ws_request(&self.base, &self.token))
            .await
            .unwrap();
        ws
    }
}

/// The WebSocket upgrade request of `base`, with `token` in the
/// `Authorization` header.
pub fn ws_request(
    base: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/v1/ws", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// Next server frame from a WebSocket, within 5 s.
pub async fn next_frame(ws: &mut Ws) -> ServerFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no frame within 5 s")
            .expect("socket closed")
            .expect("socket error");
        match msg {
            Message::Binary(b) => return ServerFrame::decode(&b).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

pub async fn next_delivery(ws: &mut Ws) -> Delivery {
    match next_frame(ws).await {
        ServerFrame::Delivery(d) => d,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

pub async fn send_frame(ws: &mut Ws, frame: &ClientFrame) {
    ws.send(Message::Binary(frame.encode().unwrap().into()))
        .await
        .unwrap();
}

/// A well-formed envelope for `conv` on `day` with the given ciphertext (the
/// signature is random: the service does not check it).
pub fn envelope(conv: &ConversationId, day: u32, ciphertext: &[u8]) -> Vec<u8> {
    let mut sig = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut sig);
    Envelope {
        header: EnvelopeHeader {
            conversation: *conv,
            chain: ChainId {
                epoch: 1,
                sender_leaf: 0,
                day,
                seq: 0,
            },
            generation: 0,
            franking_commitment: [9; 32],
        },
        ciphertext: ciphertext.to_vec(),
        signature: sig,
    }
    .encode()
    .unwrap()
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

pub fn today() -> u32 {
    u32::try_from(START_MS / MILLIS_PER_DAY).unwrap()
}
