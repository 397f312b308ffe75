//! What the device takes from the log: the publication of its pinned
//! manifest, the escrow day keys, and warrant commitments and unsealings
//! for notices ([`crate::notices`]), through a [`LogFollower`].
//!
//! State in the device store (written in one transaction with the log
//! cursor that covers it, one per poll, so a crash or a failed write
//! replays entries and never skips one; the transaction does not wait for
//! the disk, see [`crate::store::Store::unsynced_transaction`]: a power
//! loss, too, only makes the device read entries again):
//! - `log/cursor`: entries consumed;
//! - `log/checkpoint`: the last accepted checkpoint, whose successors must
//!   be consistent with it (see [`crate::follower`]);
//! - `log/manifest_published`: the index of the publication of the pinned
//!   manifest's hash;
//! - `escrow/votes/<day>`: who published which day-key bytes (JSON);
//! - `escrow/daykey/<day>` and `escrow/days`: accepted day keys;
//! - `franking/logged/<key hex>`: franking keys the manifest's provider
//!   published, which alone the device pins at login;
//! - tables `warrant_commitments` and `unsealed_warrants`: see [`crate::notices`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use custos_escrow::DayKey;
use custos_wire::manifest::Role;
use custos_wire::statement::{Statement, StatementKind};

use crate::api::DirectoryProof;
use crate::daykeys::{DayKeys, DayVotes, VoteOutcome};
use crate::device::{Device, DeviceError};
use crate::follower::{Followed, LogFollower, LoggedStatement};
use crate::pin::{ManifestPin, PinError};
use crate::store::Store;

/// File in the device's home that held the last accepted log checkpoint
/// before it moved into the device store (`log/checkpoint`); read once, by
/// a device whose store does not hold one yet.
pub const CHECKPOINT_FILE: &str = "log-checkpoint";

const CURSOR: &str = "log/cursor";
/// The last accepted checkpoint (its signed note).
const CHECKPOINT: &str = "log/checkpoint";
const MANIFEST_PUBLISHED: &str = "log/manifest_published";
const DAYS: &str = "escrow/days";

/// The statements a device follows.
const FOLLOWED: &[StatementKind] = &[
    StatementKind::EscrowDayKey,
    StatementKind::ManifestPublication,
    StatementKind::WarrantCommitment,
    StatementKind::WarrantUnsealing,
    StatementKind::ProviderFrankingKey,
    StatementKind::KeyDirectoryEpoch,
    StatementKind::HashListRoot,
    StatementKind::MatchingPolicy,
];

/// What one round of following the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogSync {
    /// Days whose key was accepted in this round.
    pub day_keys_accepted: Vec<u32>,
    /// Whether the pinned manifest's publication is known (this or an earlier round).
    pub manifest_published: bool,
    /// Hashes (hex) of other manifests the log published in this round.
    pub other_manifests: Vec<String>,
    /// Entries consumed so far.
    pub cursor: u64,
}

impl Device {
    /// Follows the log of the pinned manifest: accepts day keys that t
    /// custodians agree on and notes manifest publications. Without a pinned
    /// manifest there is nothing to follow.
    pub async fn follow_log(&mut self) -> Result<LogSync, DeviceError> {
        let Some(pin) = self.pin.clone() else {
            return Ok(LogSync::default());
        };
        let keys = self.day_keys.clone();
        follow(&self.home, &mut self.store, &pin, keys.as_deref()).await
    }

    /// The pinned manifest, if this device has one.
    pub fn pinned_manifest(&self) -> Option<&custos_wire::manifest::Manifest> {
        self.pin.as_ref().map(ManifestPin::manifest)
    }

    /// The accepted day key of `day`, if any (escrow on and key known).
    pub fn day_key(&self, day: u32) -> Option<DayKey> {
        self.day_keys.as_ref()?.get(day)
    }

    /// Makes sure today's day key is known before a chain is sealed,
    /// following the log once if it is not.
    pub(crate) async fn ensure_day_key(&mut self, day: u32) -> Result<(), DeviceError> {
        match &self.day_keys {
            Some(keys) if keys.get(day).is_none() => {
                self.follow_log().await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// One poll of the log fetched and verified on another task, not yet taken
/// into the store ([`Device::prefetch_for`]). Dropped before it is taken
/// (a Welcome refused early), the task is aborted; it wrote nothing.
#[derive(Debug)]
pub(crate) struct Prefetch {
    task: tokio::task::JoinHandle<(Store, Result<Option<Polled>, DeviceError>)>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A verified poll, and the store state it was polled from.
#[derive(Debug)]
struct Polled {
    follower: LogFollower,
    /// The cursor it read from.
    from: u64,
    /// The checkpoint it was checked to be consistent with.
    last: Option<Vec<u8>>,
    followed: Followed,
}

impl Device {
    /// The second connection to the device store (`log_store`), opened if
    /// no poll kept it.
    fn second_store(&mut self) -> Result<Store, DeviceError> {
        match self.log_store.take() {
            Some(store) => Ok(store),
            None => Ok(Store::open(&self.home.join(crate::device::STORE_FILE))?),
        }
    }

    /// Starts, on another task and a second connection to the device store
    /// (which it only reads), one poll of the log that waits for the
    /// service's lookup answer `answered` (for `accounts`) and polls only
    /// if the answer names a key-directory root the device does not hold.
    /// It fetches and verifies, and writes nothing:
    /// [`Device::take_prefetched`] takes the poll into the store on the
    /// device's own connection, so that a joiner can fetch while its own
    /// connection holds the join's writes, and an adder while it claims
    /// KeyPackages (no round to the log at all while the directory
    /// publishes nothing new). `None`: no pinned manifest.
    pub(crate) fn prefetch_for(
        &mut self,
        accounts: Vec<String>,
        answered: tokio::sync::oneshot::Receiver<Vec<DirectoryProof>>,
    ) -> Result<Option<Prefetch>, DeviceError> {
        let Some(pin) = self.pin.clone() else {
            return Ok(None);
        };
        let mut store = self.second_store()?;
        let home = self.home.clone();
        let task = tokio::spawn(async move {
            // Taken `&mut` so that the future stays `Send` (see [`follow`]).
            let reader = &mut store;
            let polled: Result<Option<Polled>, DeviceError> = async move {
                if !names_new_root(reader, &accounts, answered).await? {
                    return Ok(None);
                }
                let last = last_checkpoint(&home, reader)?;
                let mut follower = follower_from(&pin, last.as_deref())?;
                let from = get_u64(reader, CURSOR)?;
                let followed = follower.poll(from).await?;
                Ok(Some(Polled {
                    follower,
                    from,
                    last,
                    followed,
                }))
            }
            .await;
            (store, polled)
        });
        Ok(Some(Prefetch { task }))
    }

    /// Takes a poll of [`Device::prefetch_for`] into the store, in one
    /// transaction as every poll ([`take_poll`]), if the store is still
    /// where the poll started (same cursor, same checkpoint); otherwise the
    /// poll is dropped, as one the device read again anyway. A failure is
    /// logged and left to the caller's checks, which follow the log again
    /// if they still need to.
    pub(crate) async fn take_prefetched(&mut self, mut prefetch: Prefetch) {
        // Awaited in place: the abort on drop then finds the task finished.
        let polled = match (&mut prefetch.task).await {
            Ok((store, polled)) => {
                // The second connection is kept for the next poll.
                self.log_store = Some(store);
                polled
            }
            Err(e) => Err(DeviceError::Io {
                path: self.home.join(crate::device::STORE_FILE),
                source: std::io::Error::other(e),
            }),
        };
        if let Err(e) = polled.and_then(|p| self.take_polled(p)) {
            tracing::debug!(error = %e, "a prefetched poll of the log failed");
        }
    }

    fn take_polled(&mut self, polled: Option<Polled>) -> Result<(), DeviceError> {
        let (Some(polled), Some(pin)) = (polled, self.pin.clone()) else {
            return Ok(());
        };
        if get_u64(&self.store, CURSOR)? != polled.from
            || last_checkpoint(&self.home, &self.store)? != polled.last
        {
            return Ok(());
        }
        let known = polled.last.as_deref() == Some(polled.followed.checkpoint.note());
        let own_hash = pin.manifest().hash().map_err(PinError::from)?;
        let keys = self.day_keys.clone();
        take_poll(
            &self.store,
            &pin,
            keys.as_deref(),
            &own_hash,
            (polled.from, known),
            &polled.followed,
            &mut LogSync::default(),
        )?;
        pin.keep_follower(polled.follower);
        Ok(())
    }
}

/// Waits for the service's lookup answer `answered` (for `accounts`):
/// whether it names a key-directory root that `store` does not hold (a new
/// epoch). A lookup that failed names none (its error is the lookup's).
/// The store is taken `&mut` so that the future stays `Send`.
async fn names_new_root(
    store: &mut Store,
    accounts: &[String],
    answered: tokio::sync::oneshot::Receiver<Vec<DirectoryProof>>,
) -> Result<bool, DeviceError> {
    match answered.await {
        Ok(served) => Ok(!crate::keydir::answer_roots_held(store, accounts, &served)?),
        Err(_) => Ok(false),
    }
}

/// Follows the log until the newest witnessed checkpoint is consumed.
///
/// The store is taken `&mut` so that the future stays `Send` (a `Store` is
/// `Send` but not `Sync`).
pub(crate) async fn follow(
    home: &Path,
    store: &mut Store,
    pin: &ManifestPin,
    keys: Option<&DayKeys>,
) -> Result<LogSync, DeviceError> {
    let mut last = last_checkpoint(home, store)?;
    let mut follower = follower_from(pin, last.as_deref())?;
    let own_hash = pin.manifest().hash().map_err(PinError::from)?;
    let mut out = LogSync::default();
    let mut cursor = get_u64(store, CURSOR)?;
    loop {
        let followed = follower.poll(cursor).await?;
        let done = followed.next_cursor >= followed.checkpoint.size();
        let known = last.as_deref() == Some(followed.checkpoint.note());
        cursor = take_poll(
            store,
            pin,
            keys,
            &own_hash,
            (cursor, known),
            &followed,
            &mut out,
        )?;
        if !known {
            last = Some(followed.checkpoint.note().to_vec());
        }
        if done {
            break;
        }
    }
    // Kept only after a round that ended well: its last checkpoint is the
    // one the store holds.
    pin.keep_follower(follower);
    out.cursor = cursor;
    out.manifest_published = store.get(MANIFEST_PUBLISHED)?.is_some();
    Ok(out)
}

/// The last checkpoint the device accepted (its note), if any.
fn last_checkpoint(home: &Path, store: &Store) -> Result<Option<Vec<u8>>, DeviceError> {
    match store.get(CHECKPOINT)? {
        Some(note) => Ok(Some(note)),
        None => read_legacy_checkpoint(home),
    }
}

/// The follower kept from the last round if it stopped at `last`, else a
/// new one that starts from `last`.
fn follower_from(pin: &ManifestPin, last: Option<&[u8]>) -> Result<LogFollower, DeviceError> {
    match pin.kept_follower(last) {
        Some(kept) => Ok(kept),
        None => Ok(LogFollower::with_last_on(
            pin.log_client()?,
            pin.manifest(),
            last,
            FOLLOWED,
        )?),
    }
}

/// Stores what one poll's statements mean, the cursor past them and the
/// checkpoint they were proven in, in one transaction (one sync): the
/// cursor is on disk only with every effect it covers, and the checkpoint
/// only with them, so a failed write or a crash leaves all three as they
/// were and the poll's entries are read again (against a checkpoint that
/// must be consistent with the one kept). A poll that found nothing new
/// (`known`: its checkpoint is the one kept) writes nothing. Returns the
/// new cursor.
fn take_poll(
    store: &Store,
    pin: &ManifestPin,
    keys: Option<&DayKeys>,
    own_hash: &[u8; 32],
    (cursor, known): (u64, bool),
    followed: &Followed,
    out: &mut LogSync,
) -> Result<u64, DeviceError> {
    if known && followed.statements.is_empty() && followed.next_cursor == cursor {
        return Ok(cursor);
    }
    // Unsynced: a power loss that undoes it makes the device read the
    // same entries again (the cursor goes back with their effects).
    let tx = store.unsynced_transaction()?;
    for s in &followed.statements {
        take_statement(store, pin, keys, own_hash, s, out)?;
    }
    store.set(CURSOR, &followed.next_cursor.to_be_bytes())?;
    if !known {
        store.set(CHECKPOINT, followed.checkpoint.note())?;
    }
    // Commit point: the effects, the cursor and the checkpoint, together.
    tx.commit()?;
    Ok(followed.next_cursor)
}

/// The checkpoint a device kept in [`CHECKPOINT_FILE`] before it moved
/// into the store, if any.
fn read_legacy_checkpoint(home: &Path) -> Result<Option<Vec<u8>>, DeviceError> {
    let path = home.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Ok(note) => Ok(Some(note)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DeviceError::Io { path, source }),
    }
}

/// What one verified statement changes in the store (inside the poll's
/// transaction).
fn take_statement(
    store: &Store,
    pin: &ManifestPin,
    keys: Option<&DayKeys>,
    own_hash: &[u8; 32],
    s: &LoggedStatement,
    out: &mut LogSync,
) -> Result<(), DeviceError> {
    match &s.statement {
        Statement::ManifestPublication(p) => {
            if p.manifest_hash == *own_hash {
                store.set(MANIFEST_PUBLISHED, &s.index.to_be_bytes())?;
            } else {
                tracing::warn!(
                    index = s.index,
                    hash = %hex::encode(p.manifest_hash),
                    "the log published another manifest than the pinned one"
                );
                out.other_manifests.push(hex::encode(p.manifest_hash));
            }
        }
        Statement::EscrowDayKey(k) => {
            let Some(keys) = keys else { return Ok(()) };
            let mut votes = load_votes(store, k.day)?;
            let outcome = keys.vote(&mut votes, &s.author, k);
            save_votes(store, k.day, &votes)?;
            if outcome == VoteOutcome::Accepted {
                store.set(&format!("escrow/daykey/{}", k.day), &k.day_key)?;
                let mut days = store.get(DAYS)?.unwrap_or_default();
                days.extend_from_slice(&k.day.to_be_bytes());
                store.set(DAYS, &days)?;
                out.day_keys_accepted.push(k.day);
            } else if let VoteOutcome::Invalid(reason) = &outcome {
                tracing::warn!(day = k.day, author = %s.author, %reason, "day key refused");
            }
        }
        Statement::WarrantCommitment(c) => {
            crate::notices::keep_commitment(store, s.index, c)?;
        }
        Statement::WarrantUnsealing(u) => {
            crate::notices::take_unsealing(store, pin.manifest(), s.index, u)?;
        }
        Statement::ProviderFrankingKey(k) if by_provider(pin, &s.author, &k.provider) => {
            store.set(&logged_franking_key(&k.public_key), &s.index.to_be_bytes())?;
        }
        Statement::KeyDirectoryEpoch(k) if by_provider(pin, &s.author, &k.provider) => {
            crate::keydir::take_logged_root(store, k.epoch, &k.root_hash)?;
        }
        Statement::HashListRoot(l) if by_provider(pin, &s.author, &l.provider) => {
            crate::matching::keep_logged_list(store, l)?;
        }
        Statement::MatchingPolicy(p) if by_provider(pin, &s.author, &p.provider) => {
            crate::matching::keep_logged_policy(store, p)?;
        }
        _ => {}
    }
    Ok(())
}

/// Whether a statement's author is the provider it names, a provider of the
/// pinned manifest.
fn by_provider(pin: &ManifestPin, author: &str, provider: &str) -> bool {
    provider == author
        && pin
            .manifest()
            .with_role(Role::Provider)
            .any(|p| p.name == author)
}

fn logged_franking_key(key: &[u8; 32]) -> String {
    format!("franking/logged/{}", hex::encode(key))
}

/// Whether the log showed `key` published by the pinned manifest's
/// provider (as far as the device has followed it).
pub(crate) fn franking_key_logged(store: &Store, key: &[u8; 32]) -> Result<bool, DeviceError> {
    Ok(store.get(&logged_franking_key(key))?.is_some())
}

/// The day keys accepted earlier, from the store.
pub(crate) fn load_day_keys(store: &Store, keys: &DayKeys) -> Result<(), DeviceError> {
    let days = store.get(DAYS)?.unwrap_or_default();
    for chunk in days.chunks_exact(4) {
        let Ok(day) = <[u8; 4]>::try_from(chunk).map(u32::from_be_bytes) else {
            continue;
        };
        if let Some(bytes) = store.get(&format!("escrow/daykey/{day}"))?
            && let Ok(key) = DayKey::from_bytes(&bytes)
        {
            keys.insert(key);
        }
    }
    Ok(())
}

/// The pinned manifest and day keys of the device in `home`, if any.
pub(crate) fn load_pin(
    home: &Path,
    store: &Store,
) -> Result<(Option<ManifestPin>, Option<Arc<DayKeys>>), DeviceError> {
    let Some(pin) = ManifestPin::load(home, store.get_str("log_url")?)? else {
        return Ok((None, None));
    };
    let keys = DayKeys::for_manifest(pin.manifest()).map(Arc::new);
    if let Some(k) = &keys {
        load_day_keys(store, k)?;
    }
    Ok((Some(pin), keys))
}

fn get_u64(store: &Store, key: &str) -> Result<u64, DeviceError> {
    Ok(store
        .get(key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

fn load_votes(store: &Store, day: u32) -> Result<DayVotes, DeviceError> {
    let raw: BTreeMap<String, BTreeSet<String>> = store
        .get(&format!("escrow/votes/{day}"))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| Some((hex::decode(k).ok()?, v)))
        .collect())
}

fn save_votes(store: &Store, day: u32, votes: &DayVotes) -> Result<(), DeviceError> {
    let raw: BTreeMap<String, &BTreeSet<String>> =
        votes.iter().map(|(k, v)| (hex::encode(k), v)).collect();
    let bytes = serde_json::to_vec(&raw).map_err(|e| DeviceError::Io {
        path: "escrow votes".into(),
        source: std::io::Error::other(e),
    })?;
    store.set(&format!("escrow/votes/{day}"), &bytes)?;
    Ok(())
}
