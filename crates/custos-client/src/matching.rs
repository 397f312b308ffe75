//! Known-content detection on the device: checking the service's blinded
//! table against the log and the manifest, and a safety voucher for every
//! file sent (`docs/design/0017-threshold-matching.md`).
//!
//! # Security meaning
//! - The device makes vouchers only when its pinned manifest has an enabled
//!   `[matching]` section, and only against a table whose root, size,
//!   samples and organisations the log shows published by the manifest's
//!   provider (kind 13), whose logged policy (kind 14) is the manifest's,
//!   and whose every entry both organisations signed. Otherwise the send
//!   fails with [`MatchingError`] and nothing is uploaded for it.
//! - Every attachment gets a voucher, pictures and other files alike (a
//!   file that is not a picture gets one for a random hash), so the service
//!   cannot tell pictures from files by the vouchers.
//! - At the manifest's rate a voucher is synthetic: it opens for the
//!   service but carries a random share and nothing to review.
//! - The account's sharing polynomial stays in the device's store.
//! - The checked table's bytes are kept in the device's store, so that the
//!   next process (each `custos send` is one) neither downloads it again
//!   (the service answers `304` to its root) nor verifies its entries'
//!   signatures again; the log's statement for its root is required again
//!   on every load, and a kept table whose root the log does not show is
//!   dropped.

use custos_psi::{AccountKey, BlindedTable, CheckedTable, InnerPayload, LoggedList};
use custos_wire::statement::{HashListRoot, MatchingPolicy};
use rand_core::{OsRng, RngCore as _};

use crate::device::{Device, DeviceError};
use crate::store::{Store, StoreError};

const ACCOUNT_KEY: &str = "psi/account_key";
/// The bytes of the last table this device checked in full, kept across
/// processes (see [`Device::checked_table`]).
const KEPT_TABLE: &str = "psi/table";

/// Why the device refused the service's table or policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatchingError {
    /// The table's bytes or signatures are refused.
    #[error("{0}")]
    Table(#[from] custos_psi::TableError),
    /// The log shows no statement for this table's root.
    #[error(
        "the service's hash table (root {0}) is not in the transparency log: refusing to scan against it"
    )]
    NotLogged(String),
    /// The logged policy is missing or differs from the manifest's.
    #[error(
        "the logged matching policy for this table differs from the manifest (threshold and synthetic rate)"
    )]
    PolicyMismatch,
    /// The device's stored account key is damaged.
    #[error("the device's matching key is damaged: {0}")]
    AccountKey(#[from] custos_psi::AccountKeyError),
}

pub(crate) fn keep_logged_list(store: &Store, l: &HashListRoot) -> Result<(), StoreError> {
    let mut v = Vec::with_capacity(70);
    v.extend_from_slice(&l.list_size.to_be_bytes());
    v.push(l.slots);
    v.push(l.sample_bits);
    v.extend_from_slice(&l.org_a);
    v.extend_from_slice(&l.org_b);
    store.set(&format!("psi/list/{}", hex::encode(l.root)), &v)
}

pub(crate) fn keep_logged_policy(store: &Store, p: &MatchingPolicy) -> Result<(), StoreError> {
    let mut v = Vec::with_capacity(7);
    v.push(u8::from(p.enabled));
    v.extend_from_slice(&p.threshold.to_be_bytes());
    v.extend_from_slice(&p.synthetic_rate_ppm.to_be_bytes());
    store.set(&format!("psi/policy/{}", hex::encode(p.table_root)), &v)
}

fn logged_list(store: &Store, root: &[u8; 32]) -> Result<Option<LoggedList>, StoreError> {
    let Some(v) = store.get(&format!("psi/list/{}", hex::encode(root)))? else {
        return Ok(None);
    };
    let (Some(size), Some(&slots), Some(&bits), Some(a), Some(b)) =
        (v.get(..4), v.get(4), v.get(5), v.get(6..38), v.get(38..70))
    else {
        return Ok(None);
    };
    let arr = |s: &[u8]| {
        let mut o = [0u8; 32];
        o.copy_from_slice(s);
        o
    };
    let mut sz = [0u8; 4];
    sz.copy_from_slice(size);
    Ok(Some(LoggedList {
        root: *root,
        list_size: u32::from_be_bytes(sz),
        slots,
        sample_bits: bits,
        org_a: arr(a),
        org_b: arr(b),
    }))
}

fn logged_policy(store: &Store, root: &[u8; 32]) -> Result<Option<(bool, u16, u32)>, StoreError> {
    let Some(v) = store.get(&format!("psi/policy/{}", hex::encode(root)))? else {
        return Ok(None);
    };
    let (Some(&e), Some(t), Some(r)) = (v.first(), v.get(1..3), v.get(3..7)) else {
        return Ok(None);
    };
    let mut tb = [0u8; 2];
    tb.copy_from_slice(t);
    let mut rb = [0u8; 4];
    rb.copy_from_slice(r);
    Ok(Some((
        e == 1,
        u16::from_be_bytes(tb),
        u32::from_be_bytes(rb),
    )))
}

/// The logged policy for `root` is enabled and the manifest's.
fn policy_matches(
    store: &Store,
    root: &[u8; 32],
    m: &custos_wire::manifest::Matching,
) -> Result<(), DeviceError> {
    match logged_policy(store, root)? {
        Some((true, t, r)) if t == m.threshold && r == m.synthetic_rate_ppm => Ok(()),
        _ => Err(MatchingError::PolicyMismatch.into()),
    }
}

impl Device {
    /// Test door: makes every voucher synthetic (`Some(true)`) or real
    /// (`Some(false)`) instead of drawing at the manifest's rate. Dangerous:
    /// it breaks what synthetic vouchers hide; for tests and the demo only.
    pub fn dangerous_force_synthetic(&mut self, force: Option<bool>) {
        self.psi_force_synthetic = force;
    }

    /// The service's table, checked against the log and the manifest, with
    /// the manifest's threshold and rate; `None` when the manifest has no
    /// enabled `[matching]` section (the device then makes no vouchers).
    pub async fn checked_table(&mut self) -> Result<Option<(CheckedTable, u16, u32)>, DeviceError> {
        let Some(m) = self
            .pin
            .as_ref()
            .and_then(|p| p.manifest().matching.clone())
        else {
            return Ok(None);
        };
        if !m.enabled {
            return Ok(None);
        }
        let orgs = m
            .organisation_keys()
            .map_err(|_| MatchingError::Table(custos_psi::TableError::WrongOrganisations))?;
        if self.psi_cache.is_none() {
            // A new process: the table an earlier one checked, if the log
            // still shows its root.
            self.psi_cache = self.kept_table((&orgs.0, &orgs.1))?;
        }
        let known = self.psi_cache.as_ref().map(|t| *t.root());
        let Some(bytes) = self.api.psi_table_unless(known.as_ref()).await? else {
            // The service still serves the table this device checked: its
            // entries' signatures and its logged root need no new check;
            // the logged policy for it is read again (the log may have a
            // newer one).
            let Some(cached) = self.psi_cache.clone() else {
                return Err(MatchingError::NotLogged("(none)".into()).into());
            };
            policy_matches(&self.store, cached.root(), &m)?;
            return Ok(Some((cached, m.threshold, m.synthetic_rate_ppm)));
        };
        self.psi_downloads = self.psi_downloads.saturating_add(1);
        self.psi_cache = None;
        let table = BlindedTable::decode(&bytes).map_err(MatchingError::from)?;
        let root = table.root();
        let mut logged = logged_list(&self.store, &root)?;
        // The root (kind 13) and the policy (kind 14) are logged one after
        // the other: a device that saw only the first follows the log again.
        if logged.is_none() || logged_policy(&self.store, &root)?.is_none() {
            self.follow_log().await?;
            logged = logged_list(&self.store, &root)?;
        }
        let logged = logged.ok_or_else(|| MatchingError::NotLogged(hex::encode(root)))?;
        policy_matches(&self.store, &root, &m)?;
        let checked = table
            .check(&logged, (&orgs.0, &orgs.1))
            .map_err(MatchingError::from)?;
        // Kept for later processes only once the whole check passed.
        self.store.set(KEPT_TABLE, &bytes)?;
        self.psi_cache = Some(checked.clone());
        Ok(Some((checked, m.threshold, m.synthetic_rate_ppm)))
    }

    /// The table kept by an earlier process, checked again against the
    /// logged statement this device holds for its root and the manifest's
    /// organisations ([`BlindedTable::check_kept`]: the entries'
    /// signatures were verified before it was kept, and the root binds the
    /// bytes). A kept table that is damaged or whose root the log does not
    /// show is dropped, and the service's table is fetched and checked in
    /// full instead.
    fn kept_table(
        &self,
        orgs: (&[u8; 32], &[u8; 32]),
    ) -> Result<Option<CheckedTable>, DeviceError> {
        let Some(bytes) = self.store.get(KEPT_TABLE)? else {
            return Ok(None);
        };
        let checked = BlindedTable::decode(&bytes).ok().and_then(|table| {
            let logged = logged_list(&self.store, &table.root()).ok()??;
            table.check_kept(&logged, orgs).ok()
        });
        if checked.is_none() {
            tracing::warn!("the kept hash table is not in the log (or damaged): dropped");
            self.store.delete(KEPT_TABLE)?;
        }
        Ok(checked)
    }

    /// How many times this device (this process) downloaded and checked
    /// the service's table: once per table while the service serves the
    /// same one, and none in a process that found the table an earlier
    /// one checked (kept in the device's store, by root).
    pub fn matching_table_downloads(&self) -> u64 {
        self.psi_downloads
    }

    fn account_key(&self, threshold: u16) -> Result<AccountKey, DeviceError> {
        if let Some(bytes) = self.store.get(ACCOUNT_KEY)? {
            let key = AccountKey::from_bytes(&bytes).map_err(MatchingError::from)?;
            if key.threshold() == threshold {
                return Ok(key);
            }
        }
        let key =
            AccountKey::generate(threshold, &mut OsRng).ok_or(MatchingError::PolicyMismatch)?;
        self.store.set(ACCOUNT_KEY, &key.expose_bytes())?;
        Ok(key)
    }

    /// The vouchers of `files` (one each), or `None` when matching is off.
    pub(crate) async fn vouchers_for(
        &mut self,
        files: &[Vec<u8>],
    ) -> Result<Option<Vec<Vec<u8>>>, DeviceError> {
        if files.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let Some((table, threshold, rate)) = self.checked_table().await? else {
            return Ok(None);
        };
        let account = self.account_key(threshold)?;
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let payload = match custos_media::decode(file) {
                Ok(picture) => InnerPayload {
                    hash: *custos_media::hash(&picture).hash.as_bytes(),
                    derivative: custos_psi::derivative(
                        picture.width(),
                        picture.height(),
                        picture.rgb_bytes(),
                    )
                    .unwrap_or([0; custos_psi::DERIVATIVE_LEN]),
                },
                Err(_) => {
                    let mut hash = [0u8; 32];
                    OsRng.fill_bytes(&mut hash);
                    InnerPayload {
                        hash,
                        derivative: [0; custos_psi::DERIVATIVE_LEN],
                    }
                }
            };
            let synthetic = self
                .psi_force_synthetic
                .unwrap_or_else(|| custos_psi::choose_synthetic(rate, &mut OsRng));
            out.push(
                custos_psi::make_voucher(&table, &account, &payload, synthetic, &mut OsRng)
                    .encode(),
            );
        }
        Ok(Some(out))
    }
}

impl crate::api::Api {
    /// The matching review queue (moderators): every case, JSON as the
    /// service sends it (`GET /v1/moderation/matches`).
    pub async fn matching_cases(&self) -> Result<serde_json::Value, crate::api::ApiError> {
        json(self.get("/v1/moderation/matches").await?)
    }

    /// One case with its matched pictures' hashes and derivatives.
    pub async fn matching_case(&self, id: i64) -> Result<serde_json::Value, crate::api::ApiError> {
        json(self.get(&format!("/v1/moderation/matches/{id}")).await?)
    }

    /// A moderator's decision on a case, `confirm` or `dismiss`; a
    /// confirmation answers the clearinghouse package (under `package`).
    pub async fn resolve_matching_case(
        &self,
        id: i64,
        decision: &str,
        note: &str,
    ) -> Result<serde_json::Value, crate::api::ApiError> {
        json(
            self.post_json(
                &format!("/v1/moderation/matches/{id}/resolve"),
                &serde_json::json!({ "decision": decision, "note": note }),
            )
            .await?,
        )
    }

    /// The public figures of matching (`GET /v1/moderation/matches-stats`).
    pub async fn matching_stats(&self) -> Result<serde_json::Value, crate::api::ApiError> {
        json(self.get("/v1/moderation/matches-stats").await?)
    }
}

fn json(bytes: Vec<u8>) -> Result<serde_json::Value, crate::api::ApiError> {
    serde_json::from_slice(&bytes).map_err(|e| crate::api::ApiError::BadResponse(e.to_string()))
}
