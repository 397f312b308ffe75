//! Collecting partial keys from every custodian, verifying them against
//! the day keys in the log, and combining `t` per conversation-day.

use std::collections::BTreeMap;

use custos_escrow::{
    DayKey, EscrowIdentity, IdentityKey, PartialCheck, PartialKey, VerifiedPartial,
};
use custos_tlog::{LogClient, Verifier};
use custos_wire::manifest::{Manifest, Role};
use custos_wire::release::{
    ConversationDay, RELEASE_HPKE_INFO, ReleaseRequest, ReleaseRequestFields, ReleaseResponse,
    ReleasedShares,
};
use custos_wire::statement::{SignedStatement, Statement, StatementKind};
use ed25519_dalek::SigningKey;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, OpModeR};
use rand_core::OsRng;

use crate::keys::HpkeKeyPair;
use crate::submit::SubmittedWarrant;
use crate::{AuthorityError, CollectError};

/// One custodian's answer.
#[derive(Debug)]
pub enum CustodianAnswer {
    /// Its partial keys (not yet verified) and the log index of its `KeyRelease`.
    Released {
        /// Log index of the custodian's `KeyRelease`.
        key_release_index: u64,
        /// Partial keys per conversation-day.
        shares: Vec<(ConversationDay, PartialKey)>,
    },
    /// It refused, with its code and message, or could not be reached.
    Refused(String),
}

/// The outcome of a collection.
#[derive(Debug)]
pub struct Collected {
    /// One identity key per requested conversation-day.
    pub keys: BTreeMap<ConversationDay, IdentityKey>,
    /// Every custodian's answer, by name.
    pub answers: BTreeMap<String, CustodianAnswer>,
}

/// The authority's two keys: the manifest signing key (signs requests) and
/// the HPKE key named in the warrant (opens the sealed shares).
#[derive(Debug, Clone, Copy)]
pub struct AuthorityKeys<'a> {
    /// Ed25519 manifest key.
    pub signing: &'a SigningKey,
    /// HPKE key pair.
    pub hpke: &'a HpkeKeyPair,
}

/// Asks every manifest custodian for its partial keys of `requested` under
/// the submitted warrant, verifies every partial key with one batched
/// check against the day keys that at least `t` custodians published in the
/// log, and combines `t` per conversation-day.
pub async fn collect(
    manifest: &Manifest,
    log: &LogClient,
    verifier: &mut Verifier,
    submitted: &SubmittedWarrant,
    keys: AuthorityKeys<'_>,
    requested: Vec<ConversationDay>,
    now: u64,
) -> Result<Collected, CollectError> {
    let (logged, cp) = crate::intercept::logged_warrant(log, verifier, submitted).await?;
    // The process's HTTPS trust (`custos --ca`) for the custodians.
    let http = custos_tlog::client::http_client_builder()
        .build()
        .map_err(|e| AuthorityError::from(custos_tlog::ClientError::from(e)))?;
    let mut answers = BTreeMap::new();
    for c in manifest.with_role(Role::Custodian) {
        let Some(endpoint) = &c.endpoint else {
            answers.insert(
                c.name.clone(),
                CustodianAnswer::Refused("no endpoint".into()),
            );
            continue;
        };
        let request = ReleaseRequest::sign(
            ReleaseRequestFields {
                warrant: logged.warrant.clone(),
                salt: logged.salt,
                commitment_entry: logged.commitment_entry.clone(),
                commitment_index: logged.commitment_index,
                checkpoint: logged.checkpoint.clone(),
                inclusion_proof: logged.inclusion_proof.clone(),
                custodian: c.name.clone(),
                requested_at: now,
                requested: requested.clone(),
            },
            keys.signing,
        )
        .map_err(AuthorityError::from)?;
        let answer = ask(&http, endpoint, &request, &c.name, keys.hpke).await;
        answers.insert(c.name.clone(), answer);
    }
    let days: Vec<u32> = requested.iter().map(|cd| cd.day).collect();
    let day_keys = day_keys_from_log(manifest, log, cp.size(), &days).await?;
    let keys = verify_and_combine(&day_keys, &answers, &requested)?;
    Ok(Collected { keys, answers })
}

async fn ask(
    http: &reqwest::Client,
    endpoint: &str,
    request: &ReleaseRequest,
    name: &str,
    hpke: &HpkeKeyPair,
) -> CustodianAnswer {
    let refused = |s: String| CustodianAnswer::Refused(s);
    let Ok(body) = request.encode() else {
        return refused("cannot encode the request".into());
    };
    let url = format!("{}/v1/release", endpoint.trim_end_matches('/'));
    let resp = match http.post(url).body(body).send().await {
        Ok(r) => r,
        Err(e) => return refused(format!("unreachable: {e}")),
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return refused(format!("unreadable answer: {e}")),
    };
    if !status.is_success() {
        let text = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        return refused(text);
    }
    match open_response(&bytes, request, name, hpke) {
        Ok(a) => a,
        Err(e) => refused(e),
    }
}

/// Opens one custodian's response to `request`: checks that it answers
/// this request from this custodian, HPKE-opens it, and decodes the shares.
pub fn open_response(
    bytes: &[u8],
    request: &ReleaseRequest,
    name: &str,
    hpke: &HpkeKeyPair,
) -> Result<CustodianAnswer, String> {
    let resp = ReleaseResponse::decode(bytes).map_err(|e| format!("malformed response: {e}"))?;
    let hash = request.hash().map_err(|e| e.to_string())?;
    if resp.custodian != name || resp.request_hash != hash {
        return Err("the response answers another request or custodian".into());
    }
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&resp.enc)
        .map_err(|_| "bad encapsulated key".to_string())?;
    let plain = zeroize::Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &hpke.private_key(),
            &enc,
            RELEASE_HPKE_INFO,
            &resp.sealed,
            &hash,
        )
        .map_err(|_| "the sealed shares do not open with this authority's key".to_string())?,
    );
    let shares = ReleasedShares::decode(&plain).map_err(|e| format!("malformed shares: {e}"))?;
    let mut out = Vec::with_capacity(shares.shares.len());
    for (cd, key) in shares.shares {
        let p = PartialKey::from_bytes(&key).map_err(|e| format!("malformed partial key: {e}"))?;
        out.push((cd, p));
    }
    Ok(CustodianAnswer::Released {
        key_release_index: resp.key_release_index,
        shares: out,
    })
}

/// The day keys of `days` that at least the manifest's threshold of
/// custodians published, byte for byte, in the first `size` log entries.
pub async fn day_keys_from_log(
    manifest: &Manifest,
    log: &LogClient,
    size: u64,
    days: &[u32],
) -> Result<BTreeMap<u32, DayKey>, CollectError> {
    let entries = log.entries(0, size).await.map_err(AuthorityError::from)?;
    let mut votes: BTreeMap<(u32, Vec<u8>), std::collections::BTreeSet<[u8; 32]>> = BTreeMap::new();
    for entry in entries {
        let Ok(signed) = SignedStatement::decode(&entry) else {
            continue;
        };
        if signed.statement_bytes().get(1) != Some(&StatementKind::EscrowDayKey.tag()) {
            continue;
        }
        let Ok(Statement::EscrowDayKey(k)) = signed.verify() else {
            continue;
        };
        let by_custodian = manifest
            .participant_by_key(signed.author())
            .is_some_and(|p| p.role == Role::Custodian);
        if by_custodian && days.contains(&k.day) {
            votes
                .entry((k.day, k.day_key))
                .or_default()
                .insert(*signed.author());
        }
    }
    let t = manifest.custodian_threshold;
    let mut out = BTreeMap::new();
    for ((day, bytes), who) in votes {
        if who.len() >= t
            && !out.contains_key(&day)
            && let Ok(k) = DayKey::from_bytes(&bytes)
            && k.day() == day
        {
            out.insert(day, k);
        }
    }
    for d in days {
        if !out.contains_key(d) {
            return Err(CollectError::NoDayKey(*d));
        }
    }
    Ok(out)
}

/// Verifies every received partial key in one batch (dropping the ones that
/// fail), then combines `t` with distinct indices per conversation-day.
pub fn verify_and_combine(
    day_keys: &BTreeMap<u32, DayKey>,
    answers: &BTreeMap<String, CustodianAnswer>,
    requested: &[ConversationDay],
) -> Result<BTreeMap<ConversationDay, IdentityKey>, CollectError> {
    let identities: BTreeMap<ConversationDay, EscrowIdentity> = requested
        .iter()
        .map(|cd| (*cd, EscrowIdentity::new(&cd.conversation.0, cd.day)))
        .collect();
    let mut items: Vec<(ConversationDay, PartialKey)> = Vec::new();
    for a in answers.values() {
        if let CustodianAnswer::Released { shares, .. } = a {
            items.extend(
                shares
                    .iter()
                    .filter(|(cd, _)| identities.contains_key(cd))
                    .copied(),
            );
        }
    }
    // Every partial key is verified against its day key (one batched pairing
    // check; on failure, one by one to drop only the bad ones). Only verified
    // partials can be combined: `DayKey::combine` takes nothing else.
    let mut checks = Vec::with_capacity(items.len());
    let mut check_cds = Vec::with_capacity(items.len());
    for (cd, p) in &items {
        if let (Some(day_key), Some(identity)) = (day_keys.get(&cd.day), identities.get(cd)) {
            checks.push(PartialCheck {
                day_key,
                identity,
                partial: p,
            });
            check_cds.push(*cd);
        }
    }
    let verified: Vec<(ConversationDay, VerifiedPartial)> = if checks.is_empty() {
        Vec::new()
    } else {
        let mut rng = OsRng;
        match custos_escrow::verify_partials_batch(&checks, &mut rng) {
            Ok(all) => check_cds.iter().copied().zip(all).collect(),
            Err(_) => checks
                .iter()
                .zip(&check_cds)
                .filter_map(|(c, cd)| {
                    c.day_key
                        .verify_partial(c.identity, c.partial)
                        .ok()
                        .map(|v| (*cd, v))
                })
                .collect(),
        }
    };
    let mut per_cd: BTreeMap<ConversationDay, Vec<VerifiedPartial>> = BTreeMap::new();
    for (cd, v) in verified {
        let list = per_cd.entry(cd).or_default();
        if !list.iter().any(|q| q.index() == v.index()) {
            list.push(v);
        }
    }
    let refusals = answers
        .iter()
        .filter_map(|(n, a)| match a {
            CustodianAnswer::Refused(r) => Some(format!("{n}: {r}")),
            CustodianAnswer::Released { .. } => None,
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut keys = BTreeMap::new();
    for cd in requested {
        let day_key = day_keys
            .get(&cd.day)
            .ok_or(CollectError::NoDayKey(cd.day))?;
        let list = per_cd.get(cd).map(Vec::as_slice).unwrap_or_default();
        let t = day_key.threshold();
        let chosen = list.get(..t).ok_or_else(|| CollectError::NotEnoughShares {
            conversation: cd.conversation.to_hex(),
            day: cd.day,
            got: list.len(),
            need: t,
            refusals: refusals.clone(),
        })?;
        let identity = identities.get(cd).ok_or(CollectError::NoDayKey(cd.day))?;
        let key = day_key
            .combine(identity, chosen)
            .map_err(|e| CollectError::Combine(e.to_string()))?;
        keys.insert(*cd, key);
    }
    Ok(keys)
}
