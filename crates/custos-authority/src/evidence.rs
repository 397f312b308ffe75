//! Building the evidence bundle (`custos_verify::evidence`) from what the
//! authority collected and fetched, with the log entries and proofs that
//! let anyone re-check it offline, and its readable HTML report.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_tlog::{LogClient, TrustPolicy, VerifiedCheckpoint, Verifier};
use custos_verify::evidence::{
    EVIDENCE_FORMAT, EVIDENCE_VERSION, EvidenceBundle, IdentityKeyEvidence, LoggedEntry,
    WarrantEvidence, item_evidence, message_evidence,
};
use custos_verify::intercepted::{KeptItem, Opened};
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{SignedStatement, Statement, StatementKind};

use crate::AuthorityError;
use std::collections::BTreeMap;

use crate::intercept::logged_warrant;
use crate::submit::SubmittedWarrant;
use custos_escrow::IdentityKey;
use custos_wire::release::ConversationDay;

async fn logged_entry(
    log: &LogClient,
    cp: &VerifiedCheckpoint,
    index: u64,
    entry: &[u8],
) -> Result<LoggedEntry, AuthorityError> {
    let proof = log.inclusion_proof(index, cp.size()).await?;
    Ok(LoggedEntry {
        entry: B64.encode(entry),
        index,
        inclusion_proof: proof.iter().map(|h| B64.encode(h.0)).collect(),
    })
}

/// Assembles the bundle of what `opened` recovered from `items` under
/// `submitted`, with the identity `keys` the custodians released.
pub async fn build(
    manifest: &Manifest,
    log: &LogClient,
    verifier: &mut Verifier,
    submitted: &SubmittedWarrant,
    keys: &BTreeMap<ConversationDay, IdentityKey>,
    items: &[KeptItem],
    opened: &Opened,
) -> Result<EvidenceBundle, AuthorityError> {
    let (logged, cp) = logged_warrant(log, verifier, submitted).await?;
    let trust = TrustPolicy::from_manifest(manifest)
        .map_err(|e| AuthorityError::Manifest(e.to_string()))?;
    // The one checkpoint every entry below is proven in.
    let cp = trust
        .verify_checkpoint(cp.note())
        .map_err(|e| AuthorityError::Manifest(e.to_string()))?;
    let days: std::collections::BTreeSet<u32> = keys.keys().map(|cd| cd.day).collect();
    let mut day_keys = Vec::new();
    let mut franking = None;
    for (index, entry) in log.entries(0, cp.size()).await?.into_iter().enumerate() {
        let index = index as u64;
        let Ok(signed) = SignedStatement::decode(&entry) else {
            continue;
        };
        let kind = signed.statement_bytes().get(1).copied();
        let role = manifest.participant_by_key(signed.author()).map(|p| p.role);
        if kind == Some(StatementKind::EscrowDayKey.tag()) && role == Some(Role::Custodian) {
            if let Ok(Statement::EscrowDayKey(k)) = signed.verify()
                && days.contains(&k.day)
            {
                day_keys.push(logged_entry(log, &cp, index, &entry).await?);
            }
        } else if kind == Some(StatementKind::ProviderFrankingKey.tag())
            && role == Some(Role::Provider)
            && signed.verify().is_ok()
        {
            franking = Some((index, entry));
        }
    }
    let (index, entry) = franking
        .ok_or_else(|| AuthorityError::Manifest("no provider franking key in the log".into()))?;
    Ok(EvidenceBundle {
        format: EVIDENCE_FORMAT.into(),
        version: EVIDENCE_VERSION,
        manifest: manifest
            .to_toml()
            .map_err(|e| AuthorityError::Manifest(e.to_string()))?,
        checkpoint: String::from_utf8_lossy(cp.note()).into_owned(),
        warrant: WarrantEvidence {
            warrant: B64.encode(&logged.warrant),
            salt: hex::encode(logged.salt),
            commitment_entry: B64.encode(&logged.commitment_entry),
            commitment_index: logged.commitment_index,
            checkpoint: String::from_utf8_lossy(&logged.checkpoint).into_owned(),
            inclusion_proof: logged
                .inclusion_proof
                .iter()
                .map(|h| B64.encode(h))
                .collect(),
        },
        day_keys,
        franking_key: logged_entry(log, &cp, index, &entry).await?,
        identity_keys: keys
            .iter()
            .map(|(cd, k)| IdentityKeyEvidence {
                conversation: cd.conversation.to_hex(),
                day: cd.day,
                key: B64.encode(k.to_bytes()),
            })
            .collect(),
        items: items.iter().map(item_evidence).collect(),
        messages: opened.messages.iter().map(message_evidence).collect(),
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained, readable HTML report of `bundle` (no external assets,
/// every value escaped). It shows what the bundle claims; whether the
/// bundle verifies is `custos evidence verify`'s answer, stated in `verdict`.
pub fn render_html(bundle: &EvidenceBundle, verdict: &str) -> String {
    let mut rows = String::new();
    for m in &bundle.messages {
        let ok = |b: bool| if b { "✔" } else { "✘" };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&m.conversation[..8.min(m.conversation.len())]),
            escape(&m.sender),
            m.server_time,
            escape(&m.text),
            ok(m.checks.envelope_signature),
            ok(m.checks.franking_commitment),
            ok(m.checks.delivery_tag),
            ok(m.checks.escrow_provenance),
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Custos evidence</title><style>body{{font-family:sans-serif;margin:1rem;color:#111}}\
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #777;padding:.3rem;text-align:left}}\
th{{background:#eee}}</style></head><body>\n<h1>Evidence under warrant</h1>\n\
<p><strong>Verification:</strong> {}</p>\n<p>Warrant commitment entry {} in the log; {} identity keys; \
{} kept items; {} messages.</p>\n<table><caption>Recovered messages</caption><thead><tr>\
<th scope=\"col\">Conversation</th><th scope=\"col\">Sender</th><th scope=\"col\">Service time (ms)</th>\
<th scope=\"col\">Content</th><th scope=\"col\">Envelope signature</th><th scope=\"col\">Franking</th>\
<th scope=\"col\">Delivery tag</th><th scope=\"col\">Escrow provenance</th></tr></thead><tbody>\n{}</tbody></table>\n\
</body></html>\n",
        escape(verdict),
        bundle.warrant.commitment_index,
        bundle.identity_keys.len(),
        bundle.items.len(),
        bundle.messages.len(),
        rows
    )
}
