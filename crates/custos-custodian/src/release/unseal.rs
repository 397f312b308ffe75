//! Unsealing (DESIGN.md §4 step 7): when a warrant's embargo ends, the
//! custodians publish `WarrantUnsealing` (salt and warrant) themselves, so
//! the authority cannot keep it sealed.
//!
//! # Rules
//! - A custodian knows a warrant only from a release request whose
//!   commitment it found in the log; it keeps it in its release state.
//! - The embargo is the warrant's own `embargo_until`, moved by court
//!   extensions ([`effective_embargo`]). An `EmbargoExtension` counts only
//!   if the warrant's court signed it (manifest key), it is in the log before
//!   any valid unsealing of the warrant, it was issued before the embargo it
//!   extends ended, it moves the end later, and the total stays within the
//!   policy's `max_embargo_days` from the warrant's issue. Extensions are
//!   taken in log order; the others are counted as refused.
//! - One publication is enough: a custodian publishes nothing for a
//!   commitment that a valid unsealing (opening the commitment, by a
//!   custodian or court of the manifest) in the verified log already opened.
//!   Custodians take turns, [`UNSEAL_STAGGER_SECS`] of clock time apart, in
//!   an order that the commitment determines, so normally exactly one
//!   publishes; a repeat would be harmless.
//!
//! # Not guaranteed
//! A court can backdate an extension's `issued_at`; the log order still
//! decides, so an extension logged after an unsealing never counts.

use custos_wire::statement::{EmbargoExtension, SignedStatement, Statement, WarrantUnsealing};
use custos_wire::warrant::{Warrant, WarrantFields};
use sha2::{Digest as _, Sha256};

use super::{ReleaseRefusal, Releaser, ShareSource, internal, log_down};

/// Clock seconds between one custodian's turn to unseal a warrant and the
/// next one's.
pub const UNSEAL_STAGGER_SECS: u64 = 600;
const ORDER_LABEL: &[u8] = b"custos/v1/unseal-order";

/// A warrant's embargo once the court's logged extensions are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embargo {
    /// The end of the embargo, Unix seconds.
    pub until: u64,
    /// Extensions honoured.
    pub extensions: u32,
    /// Extensions refused (wrong court, too late, not later, over the policy).
    pub refused: u32,
}

/// Applies `extensions` (court-signed, in log order) to the warrant's
/// embargo, honouring only those that follow the rules of the module docs.
pub fn effective_embargo(
    warrant: &WarrantFields,
    extensions: &[EmbargoExtension],
    max_embargo_days: u16,
) -> Embargo {
    let max_until = warrant
        .issued_at
        .saturating_add(u64::from(max_embargo_days).saturating_mul(86_400));
    let mut e = Embargo {
        until: warrant.embargo_until,
        extensions: 0,
        refused: 0,
    };
    for x in extensions {
        let ok = x.court == warrant.court
            && x.issued_at < e.until
            && x.embargo_until > e.until
            && x.embargo_until <= max_until;
        if ok {
            e.until = x.embargo_until;
            e.extensions = e.extensions.saturating_add(1);
        } else {
            e.refused = e.refused.saturating_add(1);
        }
    }
    e
}

impl<S: ShareSource> Releaser<S> {
    /// The embargo of a warrant this custodian knows, from the verified log.
    pub async fn embargo(&self, commitment: &[u8; 32]) -> Result<Option<Embargo>, ReleaseRefusal> {
        let mut inner = self.inner.lock().await;
        self.scan_log(&mut inner).await?;
        let Some(known) = inner.state.get().warrants.get(&hex::encode(commitment)) else {
            return Ok(None);
        };
        let warrant = decode_warrant(&known.warrant)?;
        let ext = inner
            .facts
            .as_ref()
            .and_then(|f| f.extensions.get(commitment))
            .map_or(&[][..], Vec::as_slice);
        Ok(Some(effective_embargo(
            warrant.fields(),
            ext,
            self.config.manifest.policy.max_embargo_days,
        )))
    }

    /// Publishes a `WarrantUnsealing` for every known warrant whose embargo
    /// ended, whose turn has come for this custodian, and that no valid
    /// unsealing in the log opened yet; waits for each to be witnessed.
    /// Returns the log indices of what it published.
    pub async fn unseal_due(&self) -> Result<Vec<u64>, ReleaseRefusal> {
        let cfg = &self.config;
        let mut inner = self.inner.lock().await;
        self.scan_log(&mut inner).await?;
        let now = cfg.clock.now_secs();
        let me = cfg.signing_key.verifying_key().to_bytes();
        let custodians: Vec<[u8; 32]> = cfg
            .manifest
            .with_role(custos_wire::manifest::Role::Custodian)
            .filter_map(|p| p.verifying_key().ok().map(|k| k.to_bytes()))
            .collect();
        let mut due = Vec::new();
        for (hex_c, known) in &inner.state.get().warrants {
            let commitment = super::hex_array(hex_c)?;
            let facts = inner.facts.as_ref();
            if facts.is_some_and(|f| f.unsealed.contains(&commitment)) {
                continue;
            }
            let warrant = decode_warrant(&known.warrant)?;
            let ext = facts
                .and_then(|f| f.extensions.get(&commitment))
                .map_or(&[][..], Vec::as_slice);
            let embargo =
                effective_embargo(warrant.fields(), ext, cfg.manifest.policy.max_embargo_days);
            let turn = turn_of(&commitment, &me, &custodians);
            if now
                >= embargo
                    .until
                    .saturating_add(turn.saturating_mul(UNSEAL_STAGGER_SECS))
            {
                let salt = super::hex_array(&known.salt)?;
                due.push((commitment, salt, known.warrant.clone()));
            }
        }
        let mut published = Vec::new();
        for (commitment, salt, warrant_hex) in due {
            let bytes = match inner.unsealings.get(&commitment) {
                Some(b) => b.clone(),
                None => {
                    let st = Statement::WarrantUnsealing(WarrantUnsealing {
                        warrant: commitment,
                        salt,
                        warrant_bytes: hex::decode(&warrant_hex).map_err(internal)?,
                        unsealed_at: now,
                    });
                    let signed = SignedStatement::sign(&st, &cfg.signing_key).map_err(internal)?;
                    let b = signed.encode().map_err(internal)?;
                    // The same bytes are resubmitted until witnessed, so a
                    // retry is answered with the existing entry.
                    inner.unsealings.insert(commitment, b.clone());
                    b
                }
            };
            let signed = SignedStatement::decode(&bytes).map_err(internal)?;
            let index = cfg.log.submit(&signed).await.map_err(log_down)?.index;
            self.wait_witnessed(&mut inner, index, &bytes).await?;
            tracing::info!(
                custodian = %cfg.name,
                commitment = %hex::encode(commitment),
                index,
                "warrant unsealed"
            );
            published.push(index);
        }
        if !published.is_empty() {
            self.scan_log(&mut inner).await?;
        }
        Ok(published)
    }
}

/// This custodian's place in the order in which custodians unseal the
/// warrant with `commitment` (0 goes first).
fn turn_of(commitment: &[u8; 32], me: &[u8; 32], custodians: &[[u8; 32]]) -> u64 {
    let rank = |k: &[u8; 32]| -> [u8; 32] {
        Sha256::new()
            .chain_update(ORDER_LABEL)
            .chain_update(commitment)
            .chain_update(k)
            .finalize()
            .into()
    };
    let mine = rank(me);
    custodians.iter().filter(|k| rank(k) < mine).count() as u64
}

fn decode_warrant(hex_warrant: &str) -> Result<Warrant, ReleaseRefusal> {
    let bytes = hex::decode(hex_warrant).map_err(internal)?;
    Warrant::decode(&bytes).map_err(internal)
}
