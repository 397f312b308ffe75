//! The provider's key directory: every account's identity key as a
//! label-value entry of Meta's auditable key directory (`akd`), kept in the
//! provider's own SQLite ([`sqlite::SqliteDirectory`]), published in epochs.
//!
//! The delivery service owns the publishing loop (it batches the keys of new
//! accounts, publishes an epoch and logs its root in the transparency log);
//! this crate has one job: the directory itself, its proofs, and the
//! auditor's check of its append-only proofs ([`verify_audit`]).
//!
//! # Guarantees
//! - Label, value and hash encodings are the ones devices verify against
//!   (`custos_verify::keydir`): proofs made here verify there.
//! - A publication is atomic on disk (see [`sqlite`]).
//! - The VRF secret ([`VrfSecret`]) is zeroized on drop and never logged;
//!   it hides which accounts a proof is about from those who see proofs for
//!   other accounts.
//!
//! # Not guaranteed
//! - Split views: `akd` leaves it to the deployment to make everybody see
//!   the same root. In Custos each root is a statement in the witnessed log
//!   (docs/design/0016-key-transparency.md).
#![forbid(unsafe_code)]

pub mod postgres;
pub mod sqlite;

mod proof_cache;
mod vrf_batch;
mod vrf_memo;

use akd::append_only_zks::AzksParallelismConfig;
use akd::directory::Directory;
use akd::ecvrf::{Proof, VRFKeyStorage, VRFPublicKey, VrfError};
use akd::storage::StorageManager;
use akd::{AkdLabel, Configuration, NodeLabel, VersionFreshness};
use akd::{EpochHash, HistoryParams};
use async_trait::async_trait;
use custos_verify::keydir::{
    DirectoryConfig, EpochRoot, account_label, encode_audit_proof, encode_history_proof,
    encode_lookup_proof, identity_value,
};
use zeroize::Zeroizing;

pub use postgres::PgDirectory;
pub use sqlite::{SCHEMA, SqliteDirectory};

/// How long `akd` keeps a tree node in its cache.
const CACHE_ITEM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);
/// The cache's bound: akd counts about 1 GB of tree nodes at a million
/// accounts, so the bound leaves room for twice that (measured at 1M
/// accounts: an epoch of 10,000 changes 3.1 s with it, 3.9 s at 512 MiB).
const CACHE_LIMIT_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// The directory's VRF secret: a 32-byte Ed25519 seed. Zeroized on drop,
/// with the expanded key derived from it once (`vrf_memo`).
#[derive(Clone)]
pub struct VrfSecret {
    seed: Zeroizing<[u8; 32]>,
    /// Shared by clones: the derived key and the proofs made so far.
    memo: std::sync::Arc<vrf_memo::VrfMemo>,
}

impl std::fmt::Debug for VrfSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VrfSecret(..)")
    }
}

impl VrfSecret {
    /// A fresh secret from the OS generator.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, seed.as_mut());
        Self::from_seed(seed)
    }

    fn from_seed(seed: Zeroizing<[u8; 32]>) -> Self {
        Self {
            seed,
            memo: std::sync::Arc::default(),
        }
    }

    /// The secret from its 32 bytes.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        Self::from_seed(Zeroizing::new(seed))
    }

    /// The seed, for storing it (secret).
    pub fn expose(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The VRF public key that goes in the manifest: the Ed25519 public key
    /// of the seed.
    pub fn public_key(&self) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes()
    }
}

#[async_trait]
impl VRFKeyStorage for VrfSecret {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.seed.to_vec())
    }

    async fn get_vrf_public_key(&self) -> Result<VRFPublicKey, VrfError> {
        Ok(self.memo.keys(&self.seed)?.1.clone())
    }

    /// The node label from the input's proof (`vrf_memo`): a lookup asks
    /// for the label and then for the proof of the same input.
    async fn get_node_label<TC: Configuration>(
        &self,
        label: &AkdLabel,
        freshness: VersionFreshness,
        version: u64,
    ) -> Result<NodeLabel, VrfError> {
        let proof = self
            .get_label_proof::<TC>(label, freshness, version)
            .await?;
        Ok(self.get_node_label_from_vrf_proof(proof).await)
    }

    /// An epoch's labels, on every core (`vrf_batch`), with the key
    /// derived once (`vrf_memo`).
    async fn get_node_labels<TC: Configuration>(
        &self,
        labels: &[vrf_batch::LabelInput],
    ) -> Result<Vec<(vrf_batch::LabelInput, NodeLabel)>, VrfError> {
        let (expanded, public) = self.memo.keys(&self.seed)?;
        Ok(vrf_batch::node_labels::<TC>(expanded, public, labels))
    }

    async fn get_label_proof<TC: Configuration>(
        &self,
        label: &AkdLabel,
        freshness: VersionFreshness,
        version: u64,
    ) -> Result<Proof, VrfError> {
        let hashed = TC::get_hash_from_label_input(label, freshness, version);
        self.memo
            .proof(&self.seed, label, freshness, version, &hashed)
    }
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDirectoryError {
    /// `akd` failed (storage, tree, or the account is not in the directory).
    #[error("key directory: {0}")]
    Akd(String),
    /// The account has no entry.
    #[error("`{0}` is not in the key directory (yet)")]
    NotFound(String),
    /// A proof could not be encoded.
    #[error("key directory proof: {0}")]
    Proof(#[from] custos_verify::keydir::KeyDirError),
}

fn akd_err(e: akd::errors::AkdError) -> KeyDirectoryError {
    KeyDirectoryError::Akd(e.to_string())
}

fn root(h: &EpochHash) -> EpochRoot {
    EpochRoot {
        epoch: h.0,
        root_hash: h.1,
    }
}

/// Accounts whose proofs [`KeyDirectory::renew_proofs`] makes in one batch
/// lookup, at most.
pub const RENEW_BATCH: usize = 64;

/// Accounts in [`KeyDirectory::renew_proofs`]'s first batch: the most
/// recently asked for, whose proofs are kept as soon as they are made;
/// each later batch is twice as large, up to [`RENEW_BATCH`].
pub const RENEW_FIRST_BATCH: usize = 4;

/// A proof and the epoch root it is for.
#[derive(Debug, Clone)]
pub struct Proven {
    /// The encoded proof (`custos_verify::keydir` wire form).
    pub proof: Vec<u8>,
    /// The epoch whose root it verifies against.
    pub root: EpochRoot,
}

/// The directory on its storage.
#[derive(Clone)]
pub struct KeyDirectory<D: akd::storage::Database + 'static = SqliteDirectory> {
    akd: Directory<DirectoryConfig, D, VrfSecret>,
    vrf_public: [u8; 32],
    /// Lookup proofs of the latest epoch (`proof_cache`); only on a
    /// directory this process owns.
    proofs: Option<std::sync::Arc<proof_cache::ProofCache>>,
    /// On a directory other processes share: its storage and VRF, for a
    /// directory with a node cache of its own per request
    /// ([`KeyDirectory::reader`]).
    shared: Option<(D, VrfSecret)>,
}

impl<D: akd::storage::Database + 'static> std::fmt::Debug for KeyDirectory<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDirectory")
            .field("vrf_public", &hex_key(&self.vrf_public))
            .finish_non_exhaustive()
    }
}

fn hex_key(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

impl<D: akd::storage::Database + Clone + 'static> KeyDirectory<D> {
    /// Opens the directory on `storage` (creating epoch 0 if it is empty).
    pub async fn open(storage: D, vrf: VrfSecret) -> Result<Self, KeyDirectoryError> {
        let vrf_public = vrf.public_key();
        // One process owns the database (the service's directory lock), so
        // `akd`'s cache of tree nodes cannot go stale; it is flushed at
        // every epoch.
        let akd = Directory::new(
            StorageManager::new(
                storage,
                Some(CACHE_ITEM_LIFETIME),
                Some(CACHE_LIMIT_BYTES),
                None,
            ),
            vrf,
            AzksParallelismConfig::default(),
        )
        .await
        .map_err(akd_err)?;
        Ok(Self {
            akd,
            vrf_public,
            proofs: Some(std::sync::Arc::default()),
            shared: None,
        })
    }

    /// Opens the directory on `storage` that other processes share (several
    /// servers on one PostgreSQL, one of which publishes). No node cache
    /// outlives a request, so no proof is made from nodes that another
    /// server's epoch has made stale; within one request, `akd`'s node
    /// cache holds what its preload reads in one pass (without one, `akd`
    /// reads each node of a proof with a query of its own).
    pub async fn open_shared(storage: D, vrf: VrfSecret) -> Result<Self, KeyDirectoryError> {
        let vrf_public = vrf.public_key();
        let akd = Directory::new(
            StorageManager::new_no_cache(storage.clone()),
            vrf.clone(),
            AzksParallelismConfig::default(),
        )
        .await
        .map_err(akd_err)?;
        Ok(Self {
            akd,
            vrf_public,
            proofs: None,
            shared: Some((storage, vrf)),
        })
    }

    /// The `akd` directory a read goes to: this process's own, or, on a
    /// shared directory, one with a node cache for this request alone (one
    /// more read of the tree's root record).
    async fn reader(&self) -> Result<Directory<DirectoryConfig, D, VrfSecret>, KeyDirectoryError> {
        match &self.shared {
            None => Ok(self.akd.clone()),
            Some((storage, vrf)) => Directory::new(
                StorageManager::new(
                    storage.clone(),
                    Some(CACHE_ITEM_LIFETIME),
                    Some(CACHE_LIMIT_BYTES),
                    None,
                ),
                vrf.clone(),
                AzksParallelismConfig::default(),
            )
            .await
            .map_err(akd_err),
        }
    }

    /// The VRF public key (the manifest's `key_directory.vrf_public_key`).
    pub fn vrf_public_key(&self) -> [u8; 32] {
        self.vrf_public
    }

    /// The latest epoch and its root.
    pub async fn current(&self) -> Result<EpochRoot, KeyDirectoryError> {
        Ok(root(&self.akd.get_epoch_hash().await.map_err(akd_err)?))
    }

    /// Publishes one epoch with the given (account, identity key) changes;
    /// each account at most once. Returns the new epoch's root.
    pub async fn publish(
        &self,
        changes: &[(String, [u8; 32])],
    ) -> Result<EpochRoot, KeyDirectoryError> {
        let updates = changes
            .iter()
            .map(|(a, k)| (account_label(a), identity_value(k)))
            .collect();
        let published = root(&self.akd.publish(updates).await.map_err(akd_err)?);
        if let Some(cache) = &self.proofs {
            cache.clear(published);
        }
        Ok(published)
    }

    /// A lookup proof of `account`'s current key at the latest epoch.
    /// On a directory this process owns, a proof already made at the
    /// latest epoch is answered again as it was (`proof_cache`).
    pub async fn lookup(&self, account: &str) -> Result<Proven, KeyDirectoryError> {
        self.prove(account, true).await
    }

    /// [`Self::lookup`], for a device (`asked`) or for the renewal.
    async fn prove(&self, account: &str, asked: bool) -> Result<Proven, KeyDirectoryError> {
        if let Some((proof, root)) = self.proofs.as_ref().and_then(|c| c.get(account)) {
            return Ok(Proven { proof, root });
        }
        let (proof, h) = self
            .reader()
            .await?
            .lookup(account_label(account))
            .await
            .map_err(|e| not_found_or(account, e))?;
        let proven = Proven {
            proof: encode_lookup_proof(&proof)?,
            root: root(&h),
        };
        if let Some(cache) = &self.proofs {
            cache.keep(account, &proven.proof, proven.root, asked);
        }
        Ok(proven)
    }

    /// Lookup proofs of several accounts' current keys, all at the latest
    /// epoch, in the order asked: `akd`'s batch lookup, which loads the
    /// tree nodes of every proof in one pass instead of one pass per
    /// account. Each proof is the same as [`Self::lookup`] gives. An account
    /// without an entry fails the whole batch as
    /// [`KeyDirectoryError::NotFound`] naming the first such account.
    pub async fn lookup_many(
        &self,
        accounts: &[String],
    ) -> Result<(Vec<Vec<u8>>, EpochRoot), KeyDirectoryError> {
        self.prove_many(accounts, true).await
    }

    /// [`Self::lookup_many`], for a device (`asked`) or for the renewal.
    async fn prove_many(
        &self,
        accounts: &[String],
        asked: bool,
    ) -> Result<(Vec<Vec<u8>>, EpochRoot), KeyDirectoryError> {
        if let Some(kept) = self.kept_proofs(accounts) {
            return Ok(kept);
        }
        let labels: Vec<_> = accounts.iter().map(|a| account_label(a)).collect();
        match self.reader().await?.batch_lookup(&labels).await {
            Ok((proofs, h)) => {
                let proofs = proofs
                    .iter()
                    .map(encode_lookup_proof)
                    .collect::<Result<Vec<_>, _>>()?;
                let root = root(&h);
                if let Some(cache) = &self.proofs {
                    for (account, proof) in accounts.iter().zip(&proofs) {
                        cache.keep(account, proof, root, asked);
                    }
                }
                Ok((proofs, root))
            }
            Err(akd::errors::AkdError::Storage(akd::errors::StorageError::NotFound(_))) => {
                // Rare: name the missing account (akd's error names a label,
                // not which of ours), one lookup at a time.
                for account in accounts {
                    self.prove(account, asked).await?;
                }
                Err(KeyDirectoryError::Akd(
                    "an entry vanished during a batch lookup".into(),
                ))
            }
            Err(e) => Err(akd_err(e)),
        }
    }

    /// Makes and keeps the latest epoch's lookup proofs of the accounts
    /// whose proofs were asked for at the epoch before (at most
    /// `proof_cache::MAX_KEPT`, the most recently asked for first, in
    /// batches growing from [`RENEW_FIRST_BATCH`] to [`RENEW_BATCH`]), so
    /// that devices asking again after a publish find them made. Returns
    /// how many were made. Stops early if another epoch is published
    /// meanwhile; an account gone from the directory is skipped. No-op on
    /// a shared directory (it keeps no proofs).
    ///
    /// It only reads the directory and fills the cache of proofs, so it
    /// may run while the new epoch is being logged: the service answers
    /// no lookup before that, and then answers from what this made.
    pub async fn renew_proofs(&self) -> usize {
        let Some(cache) = &self.proofs else {
            return 0;
        };
        let accounts = cache.take_to_renew();
        let Ok(start) = self.current().await else {
            return 0;
        };
        let mut made = 0;
        let mut rest = accounts.as_slice();
        let mut size = RENEW_FIRST_BATCH;
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(size.min(rest.len()));
            rest = after;
            size = size.saturating_mul(2).min(RENEW_BATCH);
            match self.prove_many(batch, false).await {
                Ok((_, root)) if root == start => made += batch.len(),
                Ok(_) => break,
                Err(_) => {
                    // One account gone: the rest of the batch one by one.
                    for account in batch {
                        if matches!(self.prove(account, false).await, Ok(p) if p.root == start) {
                            made += 1;
                        }
                    }
                }
            }
        }
        made
    }

    /// Every account's kept proof, when all are kept at one epoch.
    fn kept_proofs(&self, accounts: &[String]) -> Option<(Vec<Vec<u8>>, EpochRoot)> {
        let cache = self.proofs.as_ref()?;
        let mut proofs = Vec::with_capacity(accounts.len());
        let mut at = None;
        for account in accounts {
            let (proof, root) = cache.get(account)?;
            if *at.get_or_insert(root) != root {
                return None;
            }
            proofs.push(proof);
        }
        Some((proofs, at?))
    }

    /// The complete key-history proof of `account` at the latest epoch.
    pub async fn history(&self, account: &str) -> Result<Proven, KeyDirectoryError> {
        let (proof, h) = self
            .reader()
            .await?
            .key_history(&account_label(account), HistoryParams::Complete)
            .await
            .map_err(|e| not_found_or(account, e))?;
        Ok(Proven {
            proof: encode_history_proof(&proof)?,
            root: root(&h),
        })
    }

    /// The append-only proof from epoch `from` to `to` (`from < to`).
    pub async fn audit(&self, from: u64, to: u64) -> Result<Vec<u8>, KeyDirectoryError> {
        let proof = self
            .reader()
            .await?
            .audit(from, to)
            .await
            .map_err(akd_err)?;
        Ok(encode_audit_proof(&proof)?)
    }
}

fn not_found_or(account: &str, e: akd::errors::AkdError) -> KeyDirectoryError {
    match e {
        akd::errors::AkdError::Storage(akd::errors::StorageError::NotFound(_)) => {
            KeyDirectoryError::NotFound(account.to_owned())
        }
        other => akd_err(other),
    }
}

/// Checks an append-only proof across consecutive logged roots
/// (`roots[0]` .. `roots[n]`, epochs increasing by one): no entry was
/// changed or removed between them. For auditors (`custos audit`).
pub async fn verify_audit(
    roots: &[EpochRoot],
    proof: &[u8],
) -> Result<(), custos_verify::keydir::KeyDirError> {
    use custos_verify::keydir::KeyDirError;
    let invalid = |reason: String| KeyDirError::Invalid {
        account: "(audit)".into(),
        epoch: roots.last().map_or(0, |r| r.epoch),
        reason,
    };
    if roots.windows(2).any(|w| match w {
        [a, b] => b.epoch != a.epoch.saturating_add(1),
        _ => false,
    }) {
        return Err(invalid("the roots are not of consecutive epochs".into()));
    }
    let proof = custos_verify::keydir::decode_audit_proof(proof)?;
    let first = roots.first().map(|r| r.epoch).unwrap_or(0);
    if proof.epochs.first() != Some(&first) && !roots.is_empty() {
        return Err(invalid("the proof starts at another epoch".into()));
    }
    akd::auditor::audit_verify::<DirectoryConfig>(
        roots.iter().map(|r| r.root_hash).collect(),
        proof,
    )
    .await
    .map_err(|e| invalid(e.to_string()))
}
