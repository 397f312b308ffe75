//! The authority at the provider: presenting a logged warrant to start an
//! interception, and fetching what the provider keeps under it, each fetch
//! signed with the authority's manifest key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_tlog::{LogClient, VerifiedCheckpoint, Verifier};
use custos_verify::intercepted::KeptItem;
use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;
use custos_wire::interception::{
    InterceptionRequest, InterceptionRequestFields, LoggedWarrant, fetch_message,
};
use custos_wire::manifest::{Manifest, Role};
use ed25519_dalek::{Signer as _, SigningKey};

use crate::submit::{SubmittedWarrant, unhex};
use crate::{AuthorityError, InterceptError};

/// The header the provider reads a fetch signature from.
pub const FETCH_SIGNATURE_HEADER: &str = "custos-authority-signature";

/// A started interception, as the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The warrant's commitment (hex).
    pub commitment: String,
    /// Index of the provider's `Interception` statement in the log.
    pub log_index: u64,
    /// Items already stored that the provider now keeps.
    pub kept: u64,
}

/// The submitted warrant with a fresh witnessed checkpoint that includes
/// its commitment, and the inclusion proof: what a custodian or the
/// provider checks. Also returns that checkpoint, verified.
pub async fn logged_warrant(
    log: &LogClient,
    verifier: &mut Verifier,
    submitted: &SubmittedWarrant,
) -> Result<(LoggedWarrant, VerifiedCheckpoint), AuthorityError> {
    let entry = unhex(&submitted.entry)?;
    let (cp, _) = log
        .prove_included(verifier, submitted.index, &entry)
        .await?;
    let proof = log
        .inclusion_proof(submitted.index, cp.size())
        .await?
        .into_iter()
        .map(|h| h.0)
        .collect();
    let logged = LoggedWarrant {
        warrant: unhex(&submitted.warrant)?,
        salt: unhex(&submitted.salt)?
            .try_into()
            .map_err(|_| AuthorityError::File("salt".into()))?,
        commitment_entry: entry,
        commitment_index: submitted.index,
        checkpoint: cp.note().to_vec(),
        inclusion_proof: proof,
    };
    Ok((logged, cp))
}

/// Presents the submitted warrant to the manifest's provider at
/// `server_url` and returns its answer; a refusal carries the provider's code.
pub async fn intercept(
    manifest: &Manifest,
    log: &LogClient,
    verifier: &mut Verifier,
    submitted: &SubmittedWarrant,
    signing: &SigningKey,
    server_url: &str,
    now: u64,
) -> Result<Started, InterceptError> {
    let provider = manifest
        .with_role(Role::Provider)
        .next()
        .ok_or_else(|| AuthorityError::Manifest("the manifest names no provider".into()))?
        .name
        .clone();
    let request = InterceptionRequest::sign(
        InterceptionRequestFields {
            logged: logged_warrant(log, verifier, submitted).await?.0,
            provider,
            requested_at: now,
        },
        signing,
    )
    .map_err(AuthorityError::from)?;
    let body = request.encode().map_err(AuthorityError::from)?;
    let url = format!("{}/v1/interceptions", server_url.trim_end_matches('/'));
    let http = custos_tlog::client::http_client_builder()
        .build()
        .map_err(|e| InterceptError::Unreachable(e.to_string()))?;
    let answer = answer(http.post(url).body(body).send().await).await?;
    let field = |k: &str| answer.get(k).cloned();
    Ok(Started {
        commitment: field("commitment")
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| InterceptError::BadAnswer("no commitment".into()))?,
        log_index: field("log_index")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| InterceptError::BadAnswer("no log_index".into()))?,
        kept: field("kept").and_then(|v| v.as_u64()).unwrap_or(0),
    })
}

async fn answer(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<serde_json::Value, InterceptError> {
    let resp = sent.map_err(|e| InterceptError::Unreachable(e.to_string()))?;
    let status = resp.status();
    let value: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| InterceptError::BadAnswer(e.to_string()))?;
    if !status.is_success() {
        let s = |k: &str| {
            value
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        return Err(InterceptError::Refused {
            code: s("error"),
            message: s("message"),
        });
    }
    Ok(value)
}

/// Fetches every item the provider keeps under the warrant with
/// `commitment`, page by page, each request signed at `now()`.
pub async fn fetch_kept(
    server_url: &str,
    commitment: &[u8; 32],
    signing: &SigningKey,
    now: impl Fn() -> u64,
) -> Result<Vec<KeptItem>, InterceptError> {
    // The process's HTTPS trust (`custos --ca`) for the provider.
    let http = custos_tlog::client::http_client_builder()
        .build()
        .map_err(|e| InterceptError::Unreachable(e.to_string()))?;
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let at = now();
        let signature = signing.sign(&fetch_message(commitment, after, at));
        let url = format!(
            "{}/v1/interceptions/{}/items?after={after}",
            server_url.trim_end_matches('/'),
            hex::encode(commitment)
        );
        let page = answer(
            http.get(url)
                .header(
                    FETCH_SIGNATURE_HEADER,
                    format!("{at}:{}", hex::encode(signature.to_bytes())),
                )
                .send()
                .await,
        )
        .await?;
        let items = page
            .get("items")
            .and_then(|v| v.as_array())
            .ok_or_else(|| InterceptError::BadAnswer("no items".into()))?;
        if items.is_empty() {
            return Ok(out);
        }
        for v in items {
            let item = kept_item(v).ok_or_else(|| InterceptError::BadAnswer(v.to_string()))?;
            after = after.max(item.id);
            out.push(item);
        }
    }
}

fn kept_item(v: &serde_json::Value) -> Option<KeptItem> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64());
    let arr = |k: &str| -> Option<Vec<u8>> { hex::decode(s(k)?).ok() };
    Some(KeptItem {
        id: n("id")?,
        kind: ItemKind::from_byte(u8::try_from(n("kind")?).ok()?).ok()?,
        conversation: ConversationId(arr("conversation")?.try_into().ok()?),
        day: u32::try_from(n("day")?).ok()?,
        sender: s("sender")?.to_owned(),
        sender_key: arr("sender_key")?.try_into().ok()?,
        server_time: n("server_time")?,
        tag: B64.decode(s("tag")?).ok()?,
        body: B64.decode(s("body")?).ok()?,
    })
}

/// The provider's franking key as the log publishes it: the last
/// `provider_franking_key` statement by a manifest provider among the first
/// `size` entries.
pub async fn franking_key_from_log(
    manifest: &Manifest,
    log: &LogClient,
    size: u64,
) -> Result<ed25519_dalek::VerifyingKey, AuthorityError> {
    use custos_wire::statement::{SignedStatement, Statement, StatementKind};
    let mut found = None;
    for entry in log.entries(0, size).await? {
        let Ok(signed) = SignedStatement::decode(&entry) else {
            continue;
        };
        if signed.statement_bytes().get(1) != Some(&StatementKind::ProviderFrankingKey.tag()) {
            continue;
        }
        let by_provider = manifest
            .participant_by_key(signed.author())
            .is_some_and(|p| p.role == Role::Provider);
        if let (true, Ok(Statement::ProviderFrankingKey(k))) = (by_provider, signed.verify()) {
            found = Some(k.public_key);
        }
    }
    let key = found
        .ok_or_else(|| AuthorityError::Manifest("no provider franking key is in the log".into()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| AuthorityError::Manifest("the logged franking key is invalid".into()))
}
