//! HTTP and WebSocket client of the delivery service (`docs/spec/delivery-api.md`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::ConversationId;
use custos_wire::frames::{ClientFrame, Delivery, ItemKind, ServerFrame, decode_delivery_batch};
use serde::Deserialize;
use serde_json::json;

use crate::identity::Identity;

/// Domain-separation label of the login challenge signature.
pub const AUTH_LABEL: &[u8] = b"custos/v1/auth-challenge";

/// A failed call to the delivery service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The service refused the request.
    #[error("server refused ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Machine-readable error code.
        code: String,
        /// Human-readable reason.
        message: String,
        /// For a stale commit, the conversation's current epoch.
        current_epoch: Option<u64>,
    },
    /// The service could not be reached or the connection failed.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The service answered with something this client cannot read.
    #[error("unexpected answer from the server: {0}")]
    BadResponse(String),
}

impl ApiError {
    /// The HTTP status, if the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
    #[serde(default)]
    current_epoch: Option<u64>,
}

/// A session with the delivery service.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    pub(crate) http: reqwest::Client,
    token: Option<String>,
    /// The certificates trusted for `https://` and `wss://`.
    trust: crate::tls::Trust,
}

/// A key-directory proof as the service serves it: what it claims (epoch,
/// root) and the proof bytes. Nothing here is trusted before
/// [`crate::keydir`] checks it against the log.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct DirectoryProof {
    /// The epoch the proof is for.
    pub epoch: u64,
    /// The root the service claims for it (hex); the device uses the
    /// logged root instead and refuses if they differ.
    pub root_hash: String,
    /// The proof (base64 of the versioned encoding).
    pub proof: String,
}

/// Most accounts in one batch lookup (the service's bound).
pub const MAX_BATCH_LOOKUP: usize = 64;

/// A conversation as the service sees it (routing information only).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ServerConversation {
    /// Conversation id, hex.
    pub conversation: String,
    /// Current epoch.
    pub epoch: u64,
    /// Member accounts.
    pub members: Vec<String>,
}

impl Api {
    /// A client of the service at `base` (e.g. `http://127.0.0.1:7000`),
    /// trusting the process's default certificates
    /// ([`crate::tls::default_trust`]).
    pub fn new(base: &str) -> Self {
        let (trust, http) = crate::tls::default_client();
        Self::with_http(base, http, trust)
    }

    /// A client of the service at `base` that trusts exactly `trust` for
    /// `https://` and `wss://`.
    pub fn with_trust(
        base: &str,
        trust: crate::tls::Trust,
    ) -> Result<Self, crate::tls::TrustError> {
        let http = trust.http_client()?;
        Ok(Self::with_http(base, http, trust))
    }

    fn with_http(base: &str, http: reqwest::Client, trust: crate::tls::Trust) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token: None,
            trust,
        }
    }

    /// Opens the mailbox WebSocket with the session token in the header,
    /// verifying the service's certificate under this client's trust for
    /// `wss://`.
    pub async fn connect_ws(
        &self,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        ApiError,
    > {
        let req = self.ws_request()?;
        let connector = self
            .trust
            .ws_connector()
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
                .await
                .map_err(|e| ApiError::Transport(explain(&e)))?;
        Ok(ws)
    }

    /// The service's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Uses an existing session token.
    pub fn set_token(&mut self, token: String) {
        self.token = Some(token);
    }

    /// Creates an account.
    pub async fn register(&self, name: &str, identity_key: &[u8; 32]) -> Result<(), ApiError> {
        self.post_json(
            "/v1/accounts",
            &json!({"name": name, "identity_key": B64.encode(identity_key)}),
        )
        .await
        .map(|_| ())
    }

    /// Logs in with a signed challenge; returns the token and its expiry (ms).
    pub async fn login(
        &mut self,
        name: &str,
        identity: &Identity,
    ) -> Result<(String, u64), ApiError> {
        #[derive(Deserialize)]
        struct Challenge {
            challenge: String,
        }
        #[derive(Deserialize)]
        struct Session {
            token: String,
            expires_at: u64,
        }
        let c: Challenge = parse(
            self.post_json("/v1/auth/challenge", &json!({"name": name}))
                .await?,
        )?;
        let challenge = B64
            .decode(&c.challenge)
            .map_err(|_| ApiError::BadResponse("challenge is not base64".into()))?;
        let mut msg = Vec::with_capacity(AUTH_LABEL.len() + 1 + name.len() + challenge.len());
        msg.extend_from_slice(AUTH_LABEL);
        msg.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        msg.extend_from_slice(name.as_bytes());
        msg.extend_from_slice(&challenge);
        let sig = identity.sign(&msg);
        let s: Session = parse(
            self.post_json(
                "/v1/auth/session",
                &json!({"name": name, "challenge": c.challenge, "signature": B64.encode(sig)}),
            )
            .await?,
        )?;
        self.token = Some(s.token.clone());
        Ok((s.token, s.expires_at))
    }

    /// Uploads KeyPackages (serialized `MlsMessageOut`) and optionally a last-resort one.
    pub async fn upload_key_packages(
        &self,
        packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        let kps: Vec<String> = packages.iter().map(|p| B64.encode(p)).collect();
        self.post_json(
            "/v1/key-packages",
            &json!({"key_packages": kps, "last_resort": last_resort.map(|b| B64.encode(b))}),
        )
        .await
        .map(|_| ())
    }

    /// How many ordinary KeyPackages the service still holds for this account.
    pub async fn key_package_count(&self) -> Result<u64, ApiError> {
        #[derive(Deserialize)]
        struct Count {
            remaining: u64,
        }
        let c: Count = parse(self.get("/v1/key-packages/count").await?)?;
        Ok(c.remaining)
    }

    /// Claims one KeyPackage of `account`.
    pub async fn claim_key_package(&self, account: &str) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Claimed {
            key_package: String,
        }
        let c: Claimed = parse(
            self.post_json("/v1/key-packages/claim", &json!({"account": account}))
                .await?,
        )?;
        B64.decode(c.key_package)
            .map_err(|_| ApiError::BadResponse("key package is not base64".into()))
    }

    /// The key directory's lookup proof for `account` at its latest epoch
    /// (unverified: [`crate::keydir`] checks it).
    pub async fn key_directory_lookup(&self, account: &str) -> Result<DirectoryProof, ApiError> {
        parse(
            self.get(&format!("/v1/key-directory/lookup/{account}"))
                .await?,
        )
    }

    /// The key directory's lookup proofs for several accounts (at most
    /// [`MAX_BATCH_LOOKUP`], distinct) at one epoch, in the order asked:
    /// each as `(account, proof)` with the batch's epoch and root.
    pub async fn key_directory_lookups(
        &self,
        accounts: &[&str],
    ) -> Result<Vec<(String, DirectoryProof)>, ApiError> {
        #[derive(Deserialize)]
        struct One {
            account: String,
            proof: String,
        }
        #[derive(Deserialize)]
        struct Batch {
            epoch: u64,
            root_hash: String,
            proofs: Vec<One>,
        }
        let b: Batch = parse(
            self.post_json(
                "/v1/key-directory/lookups",
                &json!({ "accounts": accounts }),
            )
            .await?,
        )?;
        Ok(b.proofs
            .into_iter()
            .map(|p| {
                let proof = DirectoryProof {
                    epoch: b.epoch,
                    root_hash: b.root_hash.clone(),
                    proof: p.proof,
                };
                (p.account, proof)
            })
            .collect())
    }

    /// The key directory's complete key-history proof for `account`.
    pub async fn key_directory_history(&self, account: &str) -> Result<DirectoryProof, ApiError> {
        parse(
            self.get(&format!("/v1/key-directory/history/{account}"))
                .await?,
        )
    }

    /// The key directory's append-only proof from epoch `from` to `to`
    /// (base64 in the answer's `proof`).
    pub async fn key_directory_audit(&self, from: u64, to: u64) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Audit {
            proof: String,
        }
        let a: Audit = parse(
            self.get(&format!("/v1/key-directory/audit?from={from}&to={to}"))
                .await?,
        )?;
        B64.decode(a.proof)
            .map_err(|_| ApiError::BadResponse("audit proof is not base64".into()))
    }

    /// Registers a new conversation (a group of one at epoch 0) with its
    /// public MLS state: a GroupInfo `MlsMessage` and the ratchet tree. The
    /// service verifies them and derives the members from them.
    pub async fn create_conversation(
        &self,
        id: &ConversationId,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<(), ApiError> {
        self.post_json(
            "/v1/conversations",
            &json!({"conversation": id.to_hex(), "group_info": B64.encode(group_info),
                    "ratchet_tree": B64.encode(ratchet_tree)}),
        )
        .await
        .map(|_| ())
    }

    /// Submits the commit (an MLS `PublicMessage`) for `epoch`. The service
    /// verifies it against the group's public state and derives the members
    /// from it; one that does not apply is `Refused` with 400
    /// `invalid_commit`, a stale epoch with 409 and `current_epoch`.
    pub async fn submit_commit(
        &self,
        id: &ConversationId,
        epoch: u64,
        commit: &[u8],
        welcome: Option<&[u8]>,
    ) -> Result<(), ApiError> {
        self.post_json(
            &format!("/v1/conversations/{}/commits", id.to_hex()),
            &json!({"epoch": epoch, "commit": B64.encode(commit),
                    "welcome": welcome.map(|w| B64.encode(w))}),
        )
        .await
        .map(|_| ())
    }

    /// The caller's conversations as the service routes them.
    pub async fn conversations(&self) -> Result<Vec<ServerConversation>, ApiError> {
        #[derive(Deserialize)]
        struct List {
            conversations: Vec<ServerConversation>,
        }
        let l: List = parse(self.get("/v1/conversations").await?)?;
        Ok(l.conversations)
    }

    /// Submits an envelope or announcement; returns the acceptance time and
    /// delivery tag once the service has stored it durably.
    pub async fn submit(
        &self,
        conv: &ConversationId,
        kind: ItemKind,
        body: Vec<u8>,
    ) -> Result<(u64, Vec<u8>), ApiError> {
        let frame = ClientFrame::Submit {
            request_id: 1,
            kind,
            conversation: *conv,
            body,
        }
        .encode()
        .map_err(|e| ApiError::BadResponse(e.to_string()))?;
        let resp = self
            .auth(self.http.post(format!(
                "{}/v1/conversations/{}/items",
                self.base,
                conv.to_hex()
            )))
            .header("content-type", "application/octet-stream")
            .body(frame)
            .send()
            .await
            .map_err(transport)?;
        let bytes = check(resp).await?;
        match ServerFrame::decode(&bytes).map_err(|e| ApiError::BadResponse(e.to_string()))? {
            ServerFrame::Accepted {
                server_time, tag, ..
            } => Ok((server_time, tag)),
            ServerFrame::Refused { status, reason, .. } => Err(ApiError::Refused {
                status,
                code: "refused".into(),
                message: reason,
                current_epoch: None,
            }),
            ServerFrame::Delivery(_) => {
                Err(ApiError::BadResponse("delivery in reply to submit".into()))
            }
        }
    }

    /// Stores an encrypted attachment blob; returns its locator.
    pub async fn upload_blob(&self, blob: Vec<u8>) -> Result<String, ApiError> {
        let resp = self
            .auth(self.http.post(format!("{}/v1/blobs", self.base)))
            .header("content-type", "application/octet-stream")
            .body(blob)
            .send()
            .await
            .map_err(transport)?;
        #[derive(serde::Deserialize)]
        struct Stored {
            locator: String,
        }
        let stored: Stored = parse(check(resp).await?)?;
        Ok(stored.locator)
    }

    /// Sends the safety vouchers of several uploaded blobs (a message's
    /// attachments) in one request, `POST /v1/vouchers` (at most 16;
    /// `docs/spec/psi.md`, "Voucher batch").
    pub async fn upload_vouchers(&self, vouchers: &[(String, Vec<u8>)]) -> Result<(), ApiError> {
        let count = u8::try_from(vouchers.len())
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| ApiError::BadResponse("a voucher batch holds 1 to 16".into()))?;
        let mut body = vec![1u8, count];
        for (locator, voucher) in vouchers {
            let raw = hex::decode(locator)
                .ok()
                .filter(|l| l.len() == 32)
                .ok_or_else(|| ApiError::BadResponse("a blob locator is 64 hex digits".into()))?;
            let len = u16::try_from(voucher.len())
                .map_err(|_| ApiError::BadResponse("voucher too long".into()))?;
            body.extend_from_slice(&raw);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(voucher);
        }
        let resp = self
            .auth(self.http.post(format!("{}/v1/vouchers", self.base)))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        check(resp).await.map(|_| ())
    }

    /// Sends the safety voucher of an uploaded blob
    /// ([`crate::matching`]); the answer is the same whether it matched.
    pub async fn upload_voucher(&self, locator: &str, voucher: Vec<u8>) -> Result<(), ApiError> {
        if locator.is_empty() || !locator.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadResponse("a blob locator is hex digits".into()));
        }
        let resp = self
            .auth(
                self.http
                    .post(format!("{}/v1/blobs/{locator}/voucher", self.base)),
            )
            .header("content-type", "application/octet-stream")
            .body(voucher)
            .send()
            .await
            .map_err(transport)?;
        check(resp).await.map(|_| ())
    }

    /// The service's blinded hash table (checked by [`crate::matching`]).
    pub async fn psi_table(&self) -> Result<Vec<u8>, ApiError> {
        self.get("/v1/psi/table").await
    }

    /// The service's table, unless it is still the one whose root is
    /// `known` (the service answers `304`): `None` then.
    pub async fn psi_table_unless(
        &self,
        known: Option<&[u8; 32]>,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let mut req = self.auth(self.http.get(format!("{}/v1/psi/table", self.base)));
        if let Some(root) = known {
            req = req.header("if-none-match", format!("\"{}\"", hex::encode(root)));
        }
        let resp = req.send().await.map_err(transport)?;
        if known.is_some() && resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        check(resp).await.map(Some)
    }

    /// Fetches an encrypted attachment blob by its locator.
    pub async fn download_blob(&self, locator: &str) -> Result<Vec<u8>, ApiError> {
        if locator.is_empty() || !locator.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadResponse("a blob locator is hex digits".into()));
        }
        self.get(&format!("/v1/blobs/{locator}")).await
    }

    /// Fetches mailbox items after `after`, oldest first.
    pub async fn fetch(&self, after: u64, limit: u32) -> Result<Vec<Delivery>, ApiError> {
        let resp = self
            .auth(self.http.get(format!(
                "{}/v1/mailbox?after={after}&limit={limit}",
                self.base
            )))
            .send()
            .await
            .map_err(transport)?;
        let bytes = check(resp).await?;
        decode_delivery_batch(&bytes).map_err(|e| ApiError::BadResponse(e.to_string()))
    }

    /// Acknowledges mailbox items; the service may delete them.
    pub async fn ack(&self, seqs: &[u64]) -> Result<(), ApiError> {
        for chunk in seqs.chunks(custos_wire::frames::MAX_ACKS) {
            self.post_json("/v1/mailbox/ack", &json!({"seqs": chunk}))
                .await?;
        }
        Ok(())
    }

    /// The WebSocket URL of the mailbox, carrying the token.
    pub fn ws_url(&self) -> String {
        let base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        format!("{base}/v1/ws")
    }

    /// The WebSocket upgrade request, with the session token in the
    /// `Authorization` header (never in the URL, where proxies log it).
    pub fn ws_request(
        &self,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ApiError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = self
            .ws_url()
            .into_client_request()
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        let value = format!("Bearer {}", self.token.as_deref().unwrap_or(""))
            .parse()
            .map_err(|_| ApiError::Transport("the session token is not a header value".into()))?;
        req.headers_mut().insert("authorization", value);
        Ok(req)
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let resp = self
            .auth(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .map_err(transport)?;
        check(resp).await
    }

    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, ApiError> {
        let resp = self
            .auth(self.http.post(format!("{}{path}", self.base)))
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        check(resp).await
    }

    pub(crate) fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }
}

pub(crate) fn transport(e: reqwest::Error) -> ApiError {
    ApiError::Transport(explain(&e))
}

/// An error with its causes (reqwest's own text hides them), and a hint
/// when the cause is an untrusted certificate.
fn explain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.contains("certificate") || text.contains("UnknownIssuer") {
        text.push_str(
            "; the service's TLS certificate is not trusted: name its CA with \
             `custos --ca FILE` (or CUSTOS_CA, or `ca` in the config file)",
        );
    }
    text
}

pub(crate) async fn check(resp: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(transport)?.to_vec();
    if (200..300).contains(&status) {
        return Ok(bytes);
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(e) => Err(ApiError::Refused {
            status,
            code: e.error,
            message: e.message,
            current_epoch: e.current_epoch,
        }),
        Err(_) => Err(ApiError::Refused {
            status,
            code: "unknown".into(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            current_epoch: None,
        }),
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: Vec<u8>) -> Result<T, ApiError> {
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadResponse(e.to_string()))
}
