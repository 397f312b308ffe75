//! Key transparency on the device (docs/design/0016-key-transparency.md).
//!
//! When the pinned manifest names a key directory, the device trusts a key
//! for an account only once a lookup proof shows it in the directory at an
//! epoch whose root the provider logged in the witnessed transparency log:
//! - before it adds a member ([`Device::add_members`]): the KeyPackage's
//!   signature key must be the account's key in the directory;
//! - before it joins through a Welcome: every other member of the roster;
//!   before it applies an incoming commit: every member the commit adds
//!   and every new key it gives a member (see [`crate::receive`]); a
//!   refused Welcome or commit is not applied and names the account;
//! - at `register`: its own key must appear;
//! - on every `receive`, and every [`OWN_KEYS_CHECK_INTERVAL`] while it
//!   keeps listening: its own key history must hold no key it did not make
//!   ([`Device::check_own_keys`]).
//!
//! It keeps the highest epoch it verified (`keydir/last_epoch`) and refuses
//! proofs for older epochs. Epoch roots come only from the log
//! ([`crate::logsync`] keeps them under `keydir/root/<epoch>`); a second,
//! different root for a logged epoch is a split view, recorded under
//! `keydir/conflict/<epoch>`, and every proof for that epoch is refused.
//!
//! A refusal changes nothing in the device's state: the last epoch is
//! written only after a proof verified.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_verify::keydir::{EpochRoot, KeyDirError, KeyVersion, VerifiedKey};

use crate::api::{Api, ApiError, DirectoryProof};
use crate::device::{Device, DeviceError};
use crate::store::Store;

const LAST_EPOCH: &str = "keydir/last_epoch";
/// When this device last checked its own key history (Unix ms).
const OWN_KEYS_CHECKED_AT: &str = "keydir/own_keys_checked_at";

/// How often a device that keeps listening ([`Device::listen`], `custos
/// receive --wait N`) checks its own key history, besides the check at
/// every `receive`: a key added behind the user's back is reported within
/// this time while the device runs.
pub const OWN_KEYS_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
const ALERTS: &str = "keydir/alerts";

/// How long a member key the directory proved is taken as proven again
/// without a new lookup, when the same account shows the same key (a
/// Welcome and the commits of one `receive`, several conversations with the
/// same people). A key that differs is always looked up. The bound is what
/// a key replaced in the directory can still be accepted for by a device
/// that proved the old one just before.
pub const VERIFIED_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Member keys proven recently: account -> (key, when, device clock ms).
/// In memory only.
#[derive(Debug)]
pub(crate) struct VerifiedKeys {
    keys: std::collections::HashMap<String, (Vec<u8>, u64)>,
    ttl_ms: u64,
}

impl Default for VerifiedKeys {
    fn default() -> Self {
        Self::with_ttl(VERIFIED_KEY_TTL)
    }
}

impl VerifiedKeys {
    fn with_ttl(ttl: std::time::Duration) -> Self {
        Self {
            keys: Default::default(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// `account`'s key proven within the TTL before `now`, if any (a clock
    /// that went back counts as expired).
    fn proven(&self, account: &str, now: u64) -> Option<&[u8]> {
        self.keys
            .get(account)
            .filter(|(_, at)| now >= *at && now - at < self.ttl_ms)
            .map(|(k, _)| k.as_slice())
    }

    /// Whether `account`'s `key` was proven within the TTL before `now`.
    fn holds(&self, account: &str, key: &[u8], now: u64) -> bool {
        self.proven(account, now) == Some(key)
    }

    fn insert(&mut self, account: &str, key: &[u8], now: u64) {
        if self.ttl_ms == 0 {
            return;
        }
        // Bounded: expired entries go when the map grows large.
        if self.keys.len() >= 10_000 {
            let ttl = self.ttl_ms;
            self.keys.retain(|_, (_, at)| now >= *at && now - *at < ttl);
        }
        self.keys.insert(account.to_owned(), (key.to_vec(), now));
    }
}

/// The store key of a logged epoch root.
pub(crate) fn root_key(epoch: u64) -> String {
    format!("keydir/root/{epoch:020}")
}

/// The store key of a split-view record for an epoch.
pub(crate) fn conflict_key(epoch: u64) -> String {
    format!("keydir/conflict/{epoch:020}")
}

/// Why the device refused a key from the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDirRefusal {
    /// The directory has no key for the account.
    #[error("`{0}` has no key in the provider's key directory; it appears with the next epoch")]
    NotInDirectory(String),
    /// The proof is for an epoch whose root is not in the log.
    #[error(
        "the key directory's proof for `{account}` is for epoch {epoch}, whose root is not in the log"
    )]
    EpochNotLogged {
        /// The account.
        account: String,
        /// The epoch.
        epoch: u64,
    },
    /// The service's root for the epoch differs from the logged one.
    #[error(
        "the service's root for key-directory epoch {epoch} (proof for `{account}`) differs from the logged root"
    )]
    RootMismatch {
        /// The account.
        account: String,
        /// The epoch.
        epoch: u64,
    },
    /// An older epoch than one this device already verified.
    #[error(
        "the key directory's proof for `{account}` is for epoch {epoch}, older than epoch {last} already verified (rollback)"
    )]
    Rollback {
        /// The account.
        account: String,
        /// The epoch offered.
        epoch: u64,
        /// The last epoch verified.
        last: u64,
    },
    /// The log holds two roots for the epoch.
    #[error(
        "the log holds two roots for key-directory epoch {epoch} (split view); `{account}` cannot be checked"
    )]
    SplitView {
        /// The account.
        account: String,
        /// The epoch.
        epoch: u64,
    },
    /// The proof does not verify, or does not decode.
    #[error("the key directory's proof for `{account}` is refused: {reason}")]
    BadProof {
        /// The account.
        account: String,
        /// Why (from the verifier).
        reason: KeyDirError,
    },
    /// The KeyPackage the service served is signed by another key than the
    /// account's key in the directory.
    #[error(
        "the service's KeyPackage for `{account}` carries key {served}, but the key directory holds {directory} for `{account}`"
    )]
    KeyMismatch {
        /// The account.
        account: String,
        /// The key in the KeyPackage (hex).
        served: String,
        /// The key in the directory (hex).
        directory: String,
    },
    /// A batch lookup answered for other accounts than those asked, or in
    /// another order.
    #[error("the key directory's batch lookup answered for other accounts than those asked")]
    BadBatch,
    /// A Welcome's roster or an incoming commit names the account with
    /// another key than the account's key in the directory: a ghost member.
    #[error(
        "the conversation's roster gives `{account}` key {leaf}, but the key directory holds {directory} for `{account}` (a key `{account}` never published: a ghost member)"
    )]
    MemberKeyMismatch {
        /// The account.
        account: String,
        /// The key in the roster (hex).
        leaf: String,
        /// The key in the directory (hex).
        directory: String,
    },
}

/// What `custos verify CONTACT` shows: the pair's safety code and the
/// contact's key as the directory proves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContactCheck {
    /// The contact.
    pub contact: String,
    /// The contact's identity key (hex), proven by the key directory.
    pub key: String,
    /// The key-directory epoch it was proven at.
    pub epoch: u64,
    /// 60 digits in 12 groups of 5, the same on both devices.
    pub safety_code: String,
    /// The key marked verified before, if it was another one (accepted now).
    pub replaced: Option<String>,
}

/// The safety code of two accounts' keys: SHA-256 over
/// `custos/v1/safety-code` and both (name, key) pairs in name order, read
/// as 12 groups of 5 decimal digits. Both sides compute the same code.
pub fn safety_code(a: (&str, &[u8; 32]), b: (&str, &[u8; 32])) -> String {
    use sha2::Digest as _;
    let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    let mut h = sha2::Sha256::new();
    h.update(b"custos/v1/safety-code");
    for (name, key) in [first, second] {
        h.update([u8::try_from(name.len()).unwrap_or(u8::MAX)]);
        h.update(name.as_bytes());
        h.update(key);
    }
    let digest = h.finalize();
    digest
        .chunks_exact(2)
        .take(12)
        .map(|c| {
            let v = c.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
            format!("{:05}", v % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn verified_key(contact: &str) -> String {
    format!("contacts/verified/{contact}")
}

/// An alert from self-monitoring: a key for this account that this device
/// did not make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyAlert {
    /// The account (this device's).
    pub account: String,
    /// The foreign key (hex).
    pub key: String,
    /// Its version in the directory.
    pub version: u64,
    /// The epoch in which it was published.
    pub epoch: u64,
}

impl std::fmt::Display for KeyAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ALERT: the key directory holds key {} (version {}, epoch {}) for your account `{}`, and this device did not make it",
            self.key, self.version, self.epoch, self.account
        )
    }
}

impl Device {
    /// The directory's VRF key, if the pinned manifest names a directory.
    pub(crate) fn key_directory_vrf(&self) -> Result<Option<[u8; 32]>, DeviceError> {
        let Some(pin) = &self.pin else {
            return Ok(None);
        };
        match &pin.manifest().key_directory {
            Some(kd) => Ok(Some(kd.vrf_key().map_err(crate::pin::PinError::from)?)),
            None => Ok(None),
        }
    }

    /// The highest key-directory epoch this device verified (0: none).
    pub fn key_directory_epoch(&self) -> Result<u64, DeviceError> {
        Ok(get_u64(&self.store, LAST_EPOCH)?)
    }

    /// Looks `account` up in the key directory and verifies the proof
    /// against the logged root (see the module docs). `Ok(None)`: the
    /// manifest names no key directory.
    pub async fn verify_account_key(
        &mut self,
        account: &str,
    ) -> Result<Option<VerifiedKey>, DeviceError> {
        if self.key_directory_vrf()?.is_none() {
            return Ok(None);
        }
        let served = self.look_up(account).await?;
        self.verify_served(account, &served).await
    }

    /// The service's lookup proof for `account` (unverified).
    pub(crate) async fn look_up(&self, account: &str) -> Result<DirectoryProof, DeviceError> {
        match self.api.key_directory_lookup(account).await {
            Ok(p) => Ok(p),
            Err(ApiError::Refused { status: 404, .. }) => {
                Err(KeyDirRefusal::NotInDirectory(account.to_owned()).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether adding `account` will need a lookup: there is a directory
    /// and no key of the account was proven within the TTL.
    pub(crate) fn needs_lookup(&self, account: &str) -> Result<bool, DeviceError> {
        Ok(self.key_directory_vrf()?.is_some()
            && self
                .verified_keys
                .proven(account, self.clock.now_millis())
                .is_none())
    }

    /// Verifies a lookup proof `served` for `account` (as the service
    /// answered it) against the logged root of its epoch; on success
    /// records the epoch as verified. `Ok(None)`: no key directory.
    pub async fn verify_served(
        &mut self,
        account: &str,
        served: &DirectoryProof,
    ) -> Result<Option<VerifiedKey>, DeviceError> {
        let Some(vrf) = self.key_directory_vrf()? else {
            return Ok(None);
        };
        Ok(self.verify_all(vrf, &[(account, served)]).await?.pop())
    }

    /// Verifies lookup proofs `(account, served)`, each against the logged
    /// root of its epoch; the keys in order, or the first refusal (the
    /// root, split-view, rollback and encoding checks of every proof come
    /// before the proof checks). On success records the newest epoch as
    /// verified; a refusal writes nothing.
    ///
    /// A root the device holds and the service agrees with needs no round
    /// to the log. Otherwise the device follows the log (a second root for
    /// an epoch is recorded there as a split view) while other threads
    /// verify the proofs against the roots the service named; a proof is
    /// accepted only if that root is then the logged one.
    async fn verify_all(
        &mut self,
        vrf: [u8; 32],
        served: &[(&str, &DirectoryProof)],
    ) -> Result<Vec<VerifiedKey>, DeviceError> {
        let checks = named_root_checks(served);
        let verified = if self.holds_named_roots(served)? {
            verify_in_parallel(&vrf, &checks)
        } else {
            let task = tokio::task::spawn_blocking(move || verify_in_parallel(&vrf, &checks));
            self.follow_log().await?;
            task.await.unwrap_or_else(|_| {
                served
                    .iter()
                    .map(|(a, _)| Err(verifier_failed(a)))
                    .collect()
            })
        };
        self.accept_verified(served, verified)
    }

    /// Whether the device holds, as logged, every root the service named
    /// for `served` (then no round to the log is needed).
    fn holds_named_roots(&self, served: &[(&str, &DirectoryProof)]) -> Result<bool, DeviceError> {
        holds_roots(&self.store, served.iter().map(|(_, s)| *s))
    }

    /// Follows the log once if the device does not hold, as logged, every
    /// root the service named for `served` (a new epoch).
    async fn follow_unless_held(
        &mut self,
        served: &[(&str, &DirectoryProof)],
    ) -> Result<(), DeviceError> {
        if !self.holds_named_roots(served)? {
            self.follow_log().await?;
        }
        Ok(())
    }

    /// Accepts the results `verified` of checking `served` against the
    /// roots the service named: each named root must be the logged root of
    /// its epoch, with no split view recorded and no rollback, before any
    /// proof counts. The keys in order, or the first refusal; on success
    /// the newest epoch is recorded as verified, and a refusal writes
    /// nothing.
    fn accept_verified(
        &self,
        served: &[(&str, &DirectoryProof)],
        verified: Vec<Result<VerifiedKey, KeyDirRefusal>>,
    ) -> Result<Vec<VerifiedKey>, DeviceError> {
        let mut newest = 0;
        for (account, s) in served {
            let root = stored_root(&self.store, s.epoch)?.ok_or_else(|| {
                KeyDirRefusal::EpochNotLogged {
                    account: (*account).to_owned(),
                    epoch: s.epoch,
                }
            })?;
            decode_checked(&self.store, &root, account, s)?;
            newest = newest.max(root.epoch);
        }
        if verified.len() != served.len() {
            return Err(KeyDirRefusal::BadBatch.into());
        }
        let keys = verified.into_iter().collect::<Result<Vec<_>, _>>()?;
        set_last_epoch(&self.store, newest)?;
        Ok(keys)
    }

    /// The logged root of the proof's epoch, following the log once if the
    /// device does not hold the root the service named.
    async fn logged_root(
        &mut self,
        account: &str,
        served: &DirectoryProof,
    ) -> Result<EpochRoot, DeviceError> {
        if stored_root(&self.store, served.epoch)? != served_root(served) {
            self.follow_log().await?;
        }
        stored_root(&self.store, served.epoch)?.ok_or_else(|| {
            KeyDirRefusal::EpochNotLogged {
                account: account.to_owned(),
                epoch: served.epoch,
            }
            .into()
        })
    }

    /// Checks that the KeyPackage key `served` is `account`'s key in the
    /// directory (no-op without a directory in the manifest).
    pub(crate) async fn check_member_key(
        &mut self,
        account: &str,
        served: &[u8],
    ) -> Result<(), DeviceError> {
        if self.key_directory_vrf()?.is_none()
            || self
                .verified_keys
                .holds(account, served, self.clock.now_millis())
        {
            return Ok(());
        }
        let proof = self.look_up(account).await?;
        let verified = self.verify_member_key(account, &proof).await?;
        check_key(account, served, verified.as_deref())
    }

    /// `account`'s key as the lookup proof `proof` shows it, verified
    /// against the logged root and kept as proven (`None`: no directory).
    pub(crate) async fn verify_member_key(
        &mut self,
        account: &str,
        proof: &DirectoryProof,
    ) -> Result<Option<Vec<u8>>, DeviceError> {
        let Some(verified) = self.verify_served(account, proof).await? else {
            return Ok(None);
        };
        self.verified_keys
            .insert(account, verified.key(), self.clock.now_millis());
        Ok(Some(verified.key().to_vec()))
    }

    /// Checks, before a Welcome or an incoming commit is applied, that every
    /// `(account, key)` a roster gains is that account's key in the key
    /// directory (no-op without a directory in the manifest). Each account
    /// is looked up once; the first refusal names its account. Writes only
    /// the last verified epoch, and only after proofs verified.
    pub(crate) async fn check_roster_keys(
        &mut self,
        members: &[(String, Vec<u8>)],
    ) -> Result<(), DeviceError> {
        let accounts = self.roster_to_look_up(members)?;
        let served = look_up_roster(&self.api, &accounts).await?;
        self.verify_roster(members, &accounts, &served).await
    }

    /// The accounts of `members` whose keys [`Device::check_roster_keys`]
    /// must look up, each once: none without a directory, and none proven
    /// within the TTL with the very key the roster holds. A name no account
    /// can have is refused here, as having no key in the directory.
    pub(crate) fn roster_to_look_up(
        &self,
        members: &[(String, Vec<u8>)],
    ) -> Result<Vec<String>, DeviceError> {
        let mut accounts: Vec<String> = Vec::new();
        if members.is_empty() || self.key_directory_vrf()?.is_none() {
            return Ok(accounts);
        }
        for (account, key) in members {
            if custos_wire::ids::validate_account_name(account).is_err() {
                return Err(KeyDirRefusal::NotInDirectory(account.clone()).into());
            }
            if !accounts.contains(account)
                && !self
                    .verified_keys
                    .holds(account, key, self.clock.now_millis())
            {
                accounts.push(account.clone());
            }
        }
        Ok(accounts)
    }

    /// Verifies the lookup proofs `served` of `accounts` (from
    /// [`look_up_roster`]) and checks that each of `members` holds its
    /// account's proven key. Writes only the last verified epoch, and only
    /// after the proofs verified.
    pub(crate) async fn verify_roster(
        &mut self,
        members: &[(String, Vec<u8>)],
        accounts: &[String],
        served: &[DirectoryProof],
    ) -> Result<(), DeviceError> {
        if accounts.is_empty() {
            return Ok(());
        }
        // One proof per account asked, none missing and none extra.
        if served.len() != accounts.len() {
            return Err(KeyDirRefusal::BadBatch.into());
        }
        let Some(vrf) = self.key_directory_vrf()? else {
            return Ok(());
        };
        let verified = self.verify_all(vrf, &paired(accounts, served)).await?;
        let proven = self.keep_proven(accounts, verified);
        members_hold(members, &proven)
    }

    /// Looks `accounts` up and checks their proofs on a task of its own
    /// ([`look_up_and_check_roster`]).
    pub(crate) fn spawn_roster_check(&self, vrf: [u8; 32], accounts: Vec<String>) -> RosterCheck {
        let api = self.api.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        RosterCheck {
            task: tokio::spawn(async move {
                look_up_and_check_roster(&api, vrf, &accounts, answer).await
            }),
            answered: Some(answered),
        }
    }

    /// Accepts a roster checked by [`look_up_and_check_roster`] against
    /// the roots the service named ([`Device::accept_checked`]), and checks
    /// that each of `members` holds its account's proven key. Writes only
    /// the last verified epoch, and only after every check passed.
    pub(crate) async fn accept_roster(
        &mut self,
        members: &[(String, Vec<u8>)],
        accounts: &[String],
        roster: CheckedRoster,
    ) -> Result<(), DeviceError> {
        let proven = self.accept_checked(accounts, roster).await?;
        members_hold(members, &proven)
    }

    /// Accepts the lookup proofs of `accounts` that [`look_up_and_check_roster`]
    /// checked against the roots the service named: each named root must be
    /// the logged one (the log is followed first if the device does not
    /// hold it), with no split view and no rollback. The proven key of each
    /// account, also kept as proven ([`VERIFIED_KEY_TTL`]); empty without
    /// a directory. Writes only the last verified epoch, and only after
    /// every check passed.
    pub(crate) async fn accept_checked(
        &mut self,
        accounts: &[String],
        roster: CheckedRoster,
    ) -> Result<std::collections::BTreeMap<String, Vec<u8>>, DeviceError> {
        if accounts.is_empty() || self.key_directory_vrf()?.is_none() {
            return Ok(Default::default());
        }
        if roster.served.len() != accounts.len() {
            return Err(KeyDirRefusal::BadBatch.into());
        }
        let pairs = paired(accounts, &roster.served);
        self.follow_unless_held(&pairs).await?;
        let verified = self.accept_verified(&pairs, roster.verified)?;
        Ok(self.keep_proven(accounts, verified))
    }

    /// Keeps `verified` (the proven keys of `accounts`, in order) as proven;
    /// each account's proven key.
    fn keep_proven(
        &mut self,
        accounts: &[String],
        verified: Vec<VerifiedKey>,
    ) -> std::collections::BTreeMap<String, Vec<u8>> {
        let now = self.clock.now_millis();
        let mut proven = std::collections::BTreeMap::new();
        for (account, v) in accounts.iter().zip(verified) {
            self.verified_keys.insert(account, v.key(), now);
            proven.insert(account.clone(), v.key().to_vec());
        }
        proven
    }

    /// This account's verified key history (newest first). `Ok(None)`: the
    /// manifest names no key directory.
    pub async fn key_history(&mut self) -> Result<Option<Vec<KeyVersion>>, DeviceError> {
        let Some(vrf) = self.key_directory_vrf()? else {
            return Ok(None);
        };
        let account = self.name.clone();
        let served = match self.api.key_directory_history(&account).await {
            Ok(p) => p,
            Err(ApiError::Refused { status: 404, .. }) => {
                return Err(KeyDirRefusal::NotInDirectory(account).into());
            }
            Err(e) => return Err(e.into()),
        };
        let root = self.logged_root(&account, &served).await?;
        check_fresh(&self.store, &root, &account, &served)?;
        let proof = B64
            .decode(&served.proof)
            .map_err(|_| KeyDirRefusal::BadProof {
                account: account.clone(),
                reason: KeyDirError::Malformed {
                    what: "history proof",
                    reason: "not base64".into(),
                },
            })?;
        let versions = custos_verify::keydir::verify_history(&vrf, &root, &account, &proof)
            .map_err(|reason| KeyDirRefusal::BadProof {
                account: account.clone(),
                reason,
            })?;
        set_last_epoch(&self.store, root.epoch)?;
        Ok(Some(versions))
    }

    /// Sets how often a listening device checks its own key history
    /// (default [`OWN_KEYS_CHECK_INTERVAL`]; an embedding application that
    /// keeps the device open picks its own).
    pub fn set_own_keys_check_interval(&mut self, every: std::time::Duration) {
        self.own_keys_check_interval = every;
    }

    /// Sets how long a member key the directory proved is taken as proven
    /// again without a lookup (default [`VERIFIED_KEY_TTL`]; zero: every
    /// check looks the key up). Forgets the keys proven so far.
    pub fn set_verified_key_ttl(&mut self, ttl: std::time::Duration) {
        self.verified_keys = VerifiedKeys::with_ttl(ttl);
    }

    /// When this device last checked its own key history (Unix ms, device
    /// clock), if ever.
    pub fn own_keys_checked_at(&self) -> Result<Option<u64>, DeviceError> {
        Ok(Some(get_u64(&self.store, OWN_KEYS_CHECKED_AT)?).filter(|&t| t > 0))
    }

    /// Self-monitoring: checks this account's key history and records an
    /// alert for every key this device did not make. Returns the new alerts.
    pub async fn check_own_keys(&mut self) -> Result<Vec<KeyAlert>, DeviceError> {
        let checked = self.check_own_keys_inner().await;
        if checked.is_ok() {
            self.store
                .set(OWN_KEYS_CHECKED_AT, &self.clock.now_millis().to_be_bytes())?;
        }
        checked
    }

    async fn check_own_keys_inner(&mut self) -> Result<Vec<KeyAlert>, DeviceError> {
        let versions = match self.key_history().await {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Vec::new()),
            // Not published yet (a fresh account): nothing to check.
            Err(DeviceError::KeyDirectory(KeyDirRefusal::NotInDirectory(_))) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let own = hex::encode(self.identity.public_bytes());
        let mut known = self.key_alerts()?;
        let mut new = Vec::new();
        for v in versions.into_iter().filter(|v| v.key != own) {
            let alert = KeyAlert {
                account: self.name.clone(),
                key: v.key,
                version: v.version,
                epoch: v.epoch,
            };
            if !known.contains(&alert) {
                tracing::error!(%alert, "foreign key for this account");
                known.push(alert.clone());
                new.push(alert);
            }
        }
        if !new.is_empty() {
            let bytes = serde_json::to_vec(&known).map_err(|e| DeviceError::Io {
                path: "key alerts".into(),
                source: std::io::Error::other(e),
            })?;
            self.store.set(ALERTS, &bytes)?;
        }
        Ok(new)
    }

    /// `custos verify CONTACT`: proves the contact's key through the key
    /// directory, returns the pair's safety code and marks the contact
    /// verified with that key. If the contact was verified with another key,
    /// this is refused unless `accept` (the user compared the new code).
    pub async fn verify_contact(
        &mut self,
        contact: &str,
        accept: bool,
    ) -> Result<ContactCheck, DeviceError> {
        custos_wire::ids::validate_account_name(contact)?;
        let verified = self
            .verify_account_key(contact)
            .await?
            .ok_or(DeviceError::NoKeyDirectory)?;
        let key = hex::encode(verified.key());
        let before = self.store.get_str(&verified_key(contact))?;
        let replaced = before.filter(|k| *k != key);
        if let Some(old) = &replaced
            && !accept
        {
            return Err(DeviceError::ContactKeyChanged {
                contact: contact.to_owned(),
                verified: old.clone(),
                now: key,
            });
        }
        self.store.set(&verified_key(contact), key.as_bytes())?;
        Ok(ContactCheck {
            contact: contact.to_owned(),
            safety_code: safety_code(
                (&self.name, &self.identity.public_bytes()),
                (contact, verified.key()),
            ),
            key,
            epoch: verified.root().epoch,
            replaced,
        })
    }

    /// Refuses to send to a conversation where a verified contact's key
    /// (its MLS leaf key) is no longer the key the user verified.
    pub(crate) fn check_verified_contacts(
        &self,
        group: &openmls::prelude::MlsGroup,
    ) -> Result<(), DeviceError> {
        for m in group.members() {
            let Some(name) = crate::mls::credential_name(&m.credential) else {
                continue;
            };
            if let Some(verified) = self.store.get_str(&verified_key(&name))? {
                let now = hex::encode(&m.signature_key);
                if now != verified {
                    return Err(DeviceError::ContactKeyChanged {
                        contact: name,
                        verified,
                        now,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every self-monitoring alert recorded so far.
    pub fn key_alerts(&self) -> Result<Vec<KeyAlert>, DeviceError> {
        Ok(self
            .store
            .get(ALERTS)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// At registration: waits (at most `patience`) until this account's
    /// key is in a logged epoch of the directory, and checks that it is
    /// this device's key.
    pub(crate) async fn await_own_key(
        &mut self,
        patience: std::time::Duration,
    ) -> Result<(), DeviceError> {
        let started = std::time::Instant::now();
        let own = self.identity.public_bytes();
        let account = self.name.clone();
        loop {
            match self.check_member_key(&account, &own).await {
                Ok(()) => return Ok(()),
                Err(DeviceError::KeyDirectory(
                    KeyDirRefusal::NotInDirectory(_) | KeyDirRefusal::EpochNotLogged { .. },
                )) if started.elapsed() < patience => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Refuses `served` as `account`'s key unless it is the key the directory
/// proved (`None`: no directory, nothing to compare).
/// Checks that each of `members` holds its account's key in `proven`; the
/// first that does not is refused, naming its account. A member whose
/// account is not in `proven` was not looked up: its key was proven within
/// the TTL, this very key.
fn members_hold(
    members: &[(String, Vec<u8>)],
    proven: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<(), DeviceError> {
    for (account, key) in members {
        if let Some(directory) = proven.get(account)
            && directory != key
        {
            return Err(KeyDirRefusal::MemberKeyMismatch {
                account: account.clone(),
                leaf: hex::encode(key),
                directory: hex::encode(directory),
            }
            .into());
        }
    }
    Ok(())
}

/// Refuses `served`, the key of a KeyPackage claimed for `account`, unless
/// it is `directory`, the account's proven key in the key directory
/// (`None`: the manifest names no directory).
pub(crate) fn check_key(
    account: &str,
    served: &[u8],
    directory: Option<&[u8]>,
) -> Result<(), DeviceError> {
    match directory {
        Some(key) if key != served => Err(KeyDirRefusal::KeyMismatch {
            account: account.to_owned(),
            served: hex::encode(served),
            directory: hex::encode(key),
        }
        .into()),
        _ => Ok(()),
    }
}

fn check_fresh(
    store: &Store,
    root: &EpochRoot,
    account: &str,
    served: &DirectoryProof,
) -> Result<(), DeviceError> {
    if store.get(&conflict_key(root.epoch))?.is_some() {
        return Err(KeyDirRefusal::SplitView {
            account: account.to_owned(),
            epoch: root.epoch,
        }
        .into());
    }
    if hex::decode(&served.root_hash).ok().as_deref() != Some(root.root_hash.as_slice()) {
        return Err(KeyDirRefusal::RootMismatch {
            account: account.to_owned(),
            epoch: root.epoch,
        }
        .into());
    }
    let last = get_u64(store, LAST_EPOCH)?;
    if root.epoch < last {
        return Err(KeyDirRefusal::Rollback {
            account: account.to_owned(),
            epoch: root.epoch,
            last,
        }
        .into());
    }
    Ok(())
}

/// The freshness checks of [`check_fresh`], then the proof's bytes.
fn decode_checked(
    store: &Store,
    root: &EpochRoot,
    account: &str,
    served: &DirectoryProof,
) -> Result<Vec<u8>, DeviceError> {
    check_fresh(store, root, account, served)?;
    Ok(B64
        .decode(&served.proof)
        .map_err(|_| KeyDirRefusal::BadProof {
            account: account.to_owned(),
            reason: KeyDirError::Malformed {
                what: "lookup proof",
                reason: "not base64".into(),
            },
        })?)
}

/// Verifies one decoded lookup proof of `account` against `root`.
fn verify_decoded(
    vrf: &[u8; 32],
    root: &EpochRoot,
    account: &str,
    proof: &[u8],
) -> Result<VerifiedKey, KeyDirRefusal> {
    custos_verify::keydir::verify_lookup(vrf, root, account, proof).map_err(|reason| {
        KeyDirRefusal::BadProof {
            account: account.to_owned(),
            reason,
        }
    })
}

/// A served proof's root (`None`: not a 32-byte hex hash).
fn served_root(served: &DirectoryProof) -> Option<EpochRoot> {
    let root_hash = <[u8; 32]>::try_from(hex::decode(&served.root_hash).ok()?).ok()?;
    Some(EpochRoot {
        epoch: served.epoch,
        root_hash,
    })
}

/// The refusal of a proof whose verifier failed (it proves nothing).
fn verifier_failed(account: &str) -> KeyDirRefusal {
    KeyDirRefusal::BadProof {
        account: account.to_owned(),
        reason: KeyDirError::Malformed {
            what: "lookup proof",
            reason: "the verifier failed".into(),
        },
    }
}

/// The service's lookup proofs for `accounts`, in order: one batch lookup
/// per 64 accounts (the service loads the tree nodes of every proof in one
/// pass). It needs only the service's API, not the device, so that a
/// caller can run it on a task of its own beside other work.
pub(crate) async fn look_up_roster(
    api: &Api,
    accounts: &[String],
) -> Result<Vec<DirectoryProof>, DeviceError> {
    let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let mut served = Vec::with_capacity(accounts.len());
    for chunk in accounts.chunks(crate::api::MAX_BATCH_LOOKUP) {
        let batch = match api.key_directory_lookups(chunk).await {
            Ok(b) => b,
            Err(ApiError::Refused {
                status: 404,
                ref code,
                ref message,
                ..
            }) if code == "not_in_directory" => {
                // The refusal names the account (in backquotes).
                let missing = chunk
                    .iter()
                    .find(|a| message.contains(&format!("`{a}`")))
                    .or(chunk.first())
                    .map_or_else(String::new, |a| (*a).to_owned());
                return Err(KeyDirRefusal::NotInDirectory(missing).into());
            }
            Err(e) => return Err(e.into()),
        };
        // The answer must be for exactly the accounts asked, in order.
        if batch.len() != chunk.len()
            || batch
                .iter()
                .zip(chunk)
                .any(|((got, _), asked)| got != asked)
        {
            return Err(KeyDirRefusal::BadBatch.into());
        }
        served.extend(batch.into_iter().map(|(_, p)| p));
    }
    Ok(served)
}

/// A roster's lookup proofs as the service served them, each already
/// checked against the root the service named for it. It proves nothing
/// until [`Device::accept_roster`] finds those roots logged.
#[derive(Debug)]
pub(crate) struct CheckedRoster {
    served: Vec<DirectoryProof>,
    verified: Vec<Result<VerifiedKey, KeyDirRefusal>>,
}

/// A roster's lookups and proof checks under way on a task of their own
/// ([`Device::spawn_roster_check`]). Dropped before it is finished, the
/// task is aborted: it writes nothing, and its answer proves nothing
/// until [`Device::accept_checked`].
#[derive(Debug)]
pub(crate) struct RosterCheck {
    task: tokio::task::JoinHandle<Result<CheckedRoster, DeviceError>>,
    answered: Option<tokio::sync::oneshot::Receiver<Vec<DirectoryProof>>>,
}

impl RosterCheck {
    /// The receiver of the service's answer, sent as soon as it is in,
    /// before its proofs are checked (`None`: taken before). Unverified:
    /// only for knowing early whether its roots are new.
    pub(crate) fn take_answer(
        &mut self,
    ) -> Option<tokio::sync::oneshot::Receiver<Vec<DirectoryProof>>> {
        self.answered.take()
    }

    /// Waits for the lookups and the checks.
    pub(crate) async fn finish(mut self) -> Result<CheckedRoster, DeviceError> {
        // Awaited in place: the abort on drop then finds the task finished.
        (&mut self.task).await.map_err(|e| DeviceError::Io {
            path: "key directory lookups".into(),
            source: std::io::Error::other(e),
        })?
    }
}

impl Drop for RosterCheck {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Looks `accounts` up ([`look_up_roster`]) and checks each proof against
/// the root the service named for it, on other threads; the answer, before
/// its checks, also goes to `answered`. Like the lookup, it needs no
/// device: a joiner runs it on a task of its own while it writes the group,
/// and [`Device::accept_roster`] then checks the roots.
async fn look_up_and_check_roster(
    api: &Api,
    vrf: [u8; 32],
    accounts: &[String],
    answered: tokio::sync::oneshot::Sender<Vec<DirectoryProof>>,
) -> Result<CheckedRoster, DeviceError> {
    let served = look_up_roster(api, accounts).await?;
    // The receiver may be gone (nobody asked): nothing to do then.
    let _ = answered.send(served.clone());
    let checks = named_root_checks(&paired(accounts, &served));
    let verified =
        match tokio::task::spawn_blocking(move || verify_in_parallel(&vrf, &checks)).await {
            Ok(v) => v,
            Err(_) => accounts.iter().map(|a| Err(verifier_failed(a))).collect(),
        };
    Ok(CheckedRoster { served, verified })
}

/// Whether `store` holds, as logged, the root the service named in each
/// of `served`.
fn holds_roots<'a>(
    store: &Store,
    served: impl IntoIterator<Item = &'a DirectoryProof>,
) -> Result<bool, DeviceError> {
    for s in served {
        if stored_root(store, s.epoch)?.as_ref() != served_root(s).as_ref() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `store` holds, as logged, every root the service's answer
/// `served` (for `accounts`, in order) names; an answer for another
/// number of accounts holds nothing (it is refused later, by name).
pub(crate) fn answer_roots_held(
    store: &Store,
    accounts: &[String],
    served: &[DirectoryProof],
) -> Result<bool, DeviceError> {
    Ok(served.len() == accounts.len() && holds_roots(store, served)?)
}

/// Pairs each of `accounts` with the service's proof for it (in order, as
/// a batch lookup answered them).
fn paired<'a>(
    accounts: &'a [String],
    served: &'a [DirectoryProof],
) -> Vec<(&'a str, &'a DirectoryProof)> {
    accounts.iter().map(String::as_str).zip(served).collect()
}

/// The checks of `served` against the roots the service named: `(account,
/// named root, decoded proof)`. A root that is not a 32-byte hash, or a
/// proof that is not base64, is checked as the empty proof against a zero
/// root, which fails; [`Device::accept_verified`] refuses it by name.
fn named_root_checks(served: &[(&str, &DirectoryProof)]) -> Vec<(String, EpochRoot, Vec<u8>)> {
    served
        .iter()
        .map(|(account, s)| {
            (
                (*account).to_owned(),
                served_root(s).unwrap_or(EpochRoot {
                    epoch: s.epoch,
                    root_hash: [0; 32],
                }),
                B64.decode(&s.proof).unwrap_or_default(),
            )
        })
        .collect()
}

/// Verifies `(account, root, proof)` lookup proofs on up to every core
/// (a joiner checks a whole roster at once); each result, in order.
fn verify_in_parallel(
    vrf: &[u8; 32],
    checks: &[(String, EpochRoot, Vec<u8>)],
) -> Vec<Result<VerifiedKey, KeyDirRefusal>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(checks.len());
    type Checks = [(String, EpochRoot, Vec<u8>)];
    let verify = |part: &Checks| -> Vec<Result<VerifiedKey, KeyDirRefusal>> {
        part.iter()
            .map(|(account, root, proof)| verify_decoded(vrf, root, account, proof))
            .collect()
    };
    if threads <= 1 {
        return verify(checks);
    }
    let per_thread = checks.len().div_ceil(threads);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = checks
            .chunks(per_thread)
            .map(|part| (part, scope.spawn(move || verify(part))))
            .collect();
        handles
            .into_iter()
            .map(|(part, h)| {
                // A verifier that panicked proves nothing: refuse its proofs.
                h.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|(account, ..)| Err(verifier_failed(account)))
                        .collect()
                })
            })
            .collect()
    });
    results.into_iter().flatten().collect()
}

fn stored_root(store: &Store, epoch: u64) -> Result<Option<EpochRoot>, DeviceError> {
    Ok(store
        .get(&root_key(epoch))?
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .map(|root_hash| EpochRoot { epoch, root_hash }))
}

/// Raises the last verified epoch to `epoch`. Unsynced (as what the device
/// followed of the log, whose roots it is checked against): a power loss
/// that undoes it undoes the roots of the newer epochs with it.
fn set_last_epoch(store: &Store, epoch: u64) -> Result<(), DeviceError> {
    if epoch > get_u64(store, LAST_EPOCH)? {
        let tx = store.unsynced_transaction()?;
        store.set(LAST_EPOCH, &epoch.to_be_bytes())?;
        tx.commit()?;
    }
    Ok(())
}

fn get_u64(store: &Store, key: &str) -> Result<u64, crate::store::StoreError> {
    Ok(store
        .get(key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// A logged `key_directory_epoch` by the manifest's provider: keeps its
/// root, or records a split view if the epoch already has another root.
pub(crate) fn take_logged_root(
    store: &Store,
    epoch: u64,
    root_hash: &[u8; 32],
) -> Result<(), DeviceError> {
    match store.get(&root_key(epoch))? {
        None => store.set(&root_key(epoch), root_hash)?,
        Some(known) if known.as_slice() == root_hash => {}
        Some(_) => {
            tracing::error!(epoch, "the log holds two roots for one key-directory epoch");
            store.set(&conflict_key(epoch), root_hash)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::VerifiedKeys;
    use std::time::Duration;

    #[test]
    fn a_proven_key_is_reused_only_for_the_same_key_within_the_ttl() {
        let mut v = VerifiedKeys::with_ttl(Duration::from_secs(60));
        v.insert("bob", &[1; 32], 1_000);
        assert!(v.holds("bob", &[1; 32], 1_000));
        assert!(v.holds("bob", &[1; 32], 60_999));
        assert!(!v.holds("bob", &[1; 32], 61_000));
        assert!(!v.holds("bob", &[2; 32], 2_000));
        assert!(!v.holds("carol", &[1; 32], 2_000));
        // A clock that went back does not extend it.
        assert!(!v.holds("bob", &[1; 32], 999));
        let mut never = VerifiedKeys::with_ttl(Duration::ZERO);
        never.insert("bob", &[1; 32], 1_000);
        assert!(!never.holds("bob", &[1; 32], 1_000));
    }
}
