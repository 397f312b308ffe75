//! A registered device: its identity, MLS state, store and session.

use std::path::{Path, PathBuf};

use custos_clock::SharedClock;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use crate::api::{Api, ApiError};
use crate::home_lock::{DEFAULT_LOCK_WAIT, HomeLock};
use crate::identity::Identity;
use crate::mls::{CIPHERSUITE, Provider, ProviderError};
use crate::store::{Store, StoreError};

/// KeyPackages uploaded at registration and kept topped up.
pub const KEY_PACKAGE_BATCH: usize = 20;

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The delivery service refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Known-content detection: the service's table was refused (not in the
    /// log, one-source entry, not the manifest's organisations or policy).
    #[error("hash table refused: {0}")]
    Matching(#[from] crate::matching::MatchingError),
    /// A file could not be sealed as an attachment.
    #[error("attachment: {0}")]
    Attachment(crate::attachment::AttachmentError),
    /// More files than one message may carry.
    #[error("a message carries at most {max} attachments")]
    TooManyAttachments {
        /// The most allowed.
        max: usize,
    },
    /// The device store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The MLS state could not be opened.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// An MLS operation failed.
    #[error(transparent)]
    Mls(#[from] MlsError),
    /// Escrow could not seal this chain (no day key for today, for one):
    /// nothing was sent.
    #[error("cannot send: {0}")]
    Escrow(#[from] crate::escrow::EscrowError),
    /// A file in the home directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// There is no account in this home directory.
    #[error("no account in {0}; run `custos register` first")]
    NotRegistered(PathBuf),
    /// There is already an account in this home directory.
    #[error("{0} already holds an account; use another --home")]
    AlreadyRegistered(PathBuf),
    /// This device is not in that conversation.
    #[error("unknown conversation {0}; `custos conversation list` shows yours")]
    UnknownConversation(String),
    /// A named account is not a member of the conversation.
    #[error("{0} is not a member of this conversation")]
    NotAMember(String),
    /// A wire encoding failed.
    #[error(transparent)]
    Wire(#[from] custos_wire::WireError),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// No stored message has that id in that conversation.
    #[error("unknown message {0}; `custos receive` lists message ids")]
    UnknownMessage(String),
    /// This device has left the conversation.
    #[error("this device has left conversation {0}")]
    Left(String),
    /// Another process holds this home directory.
    #[error(transparent)]
    HomeLock(#[from] crate::home_lock::HomeLockError),
    /// A commit kept losing races against other members' commits.
    #[error("the conversation is changing too fast; try again")]
    CommitContention,
    /// The log of the pinned manifest could not be followed.
    #[error(transparent)]
    Follow(#[from] crate::follower::FollowError),
    /// A contact the user verified now has another key: sending to it is
    /// blocked until the user checks and accepts the new key.
    #[error(
        "WARNING: the key of `{contact}` changed since you verified it ({verified} -> {now}); sending to `{contact}` is blocked until you compare safety codes again and run `custos verify {contact} --accept`"
    )]
    ContactKeyChanged {
        /// The contact.
        contact: String,
        /// The key the user verified (hex).
        verified: String,
        /// The key now (hex).
        now: String,
    },
    /// The pinned manifest names no key directory.
    #[error(
        "the deployment runs no key directory (the manifest names none); keys cannot be proven"
    )]
    NoKeyDirectory,
    /// The key directory did not prove a key (see [`crate::keydir`]).
    #[error(transparent)]
    KeyDirectory(#[from] crate::keydir::KeyDirRefusal),
    /// The manifest could not be pinned or loaded.
    #[error(transparent)]
    Pin(#[from] crate::pin::PinError),
    /// The service presented a franking key that the pinned manifest's
    /// provider has not published in the log: its delivery tags could not
    /// be checked against anything public, so the device refuses to pin it.
    #[error(
        "the service's franking key {key} is not published in the log by the manifest's provider; \
         refusing to trust it"
    )]
    FrankingKeyNotLogged {
        /// The key the service presented (hex).
        key: String,
    },
}

/// Which local MLS operation failed. openmls reports its own errors as
/// many generic types; the variant says what this device was doing, the
/// text what openmls said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MlsError {
    /// Creating a conversation's group failed.
    #[error("cannot create the MLS group: {0}")]
    CreateGroup(String),
    /// Loading a group from the MLS store failed.
    #[error("cannot load the MLS group: {0}")]
    LoadGroup(String),
    /// Building a commit (add, remove, update, pending proposals) failed.
    #[error("cannot build a commit: {0}")]
    Commit(String),
    /// Merging or clearing a commit or proposal failed.
    #[error("cannot merge or clear MLS state: {0}")]
    Merge(String),
    /// Encoding an MLS message failed.
    #[error("cannot encode an MLS message: {0}")]
    Encode(String),
    /// Encrypting an application message failed.
    #[error("cannot encrypt an MLS application message: {0}")]
    CreateMessage(String),
    /// Building a KeyPackage failed.
    #[error("cannot build a KeyPackage: {0}")]
    KeyPackage(String),
    /// Proposing to leave failed.
    #[error("cannot propose leaving: {0}")]
    Leave(String),
    /// The KeyPackage the service served for an account is not valid for it.
    #[error("the service's KeyPackage for {account} is not valid: {reason}")]
    BadKeyPackage {
        /// The account asked for.
        account: String,
        /// What is wrong.
        reason: String,
    },
}

/// Maps an openmls error to the [`MlsError`] variant `kind` of the
/// operation that failed.
pub(crate) fn mls<E: std::fmt::Display>(kind: fn(String) -> MlsError) -> impl Fn(E) -> DeviceError {
    move |e| DeviceError::Mls(kind(e.to_string()))
}

/// One device of one account.
pub struct Device {
    pub(crate) home: PathBuf,
    pub(crate) name: String,
    pub(crate) identity: Identity,
    pub(crate) provider: Provider,
    pub(crate) store: Store,
    pub(crate) api: Api,
    pub(crate) clock: SharedClock,
    pub(crate) escrow: Option<std::sync::Arc<dyn crate::escrow::EscrowPolicy>>,
    /// The pinned manifest and its log, if the device has one.
    pub(crate) pin: Option<crate::pin::ManifestPin>,
    /// The day keys accepted from the log (escrow on).
    pub(crate) day_keys: Option<std::sync::Arc<crate::daykeys::DayKeys>>,
    /// Items refused since [`Device::take_refusals`] was last called.
    pub(crate) refused: Vec<crate::refusal::RefusedItem>,
    /// Delivery-tag batch roots whose signature verified (in memory).
    pub(crate) tag_roots: custos_wire::tag::VerifiedRoots,
    /// The franking key pinned at registration, decoded once.
    pub(crate) pinned_franking: crate::report::PinnedFranking,
    /// Roster keys of senders, decoded once (weak keys refused).
    pub(crate) sender_keys: custos_verify::sender_signature::SenderKeyCache,
    /// Test door ([`Device::dangerous_force_synthetic`]): `Some(b)` makes
    /// every voucher synthetic (`true`) or real (`false`).
    pub(crate) psi_force_synthetic: Option<bool>,
    /// The service's table as this device last checked it (by root), and
    /// how many times it downloaded and checked one ([`crate::matching`]).
    pub(crate) psi_cache: Option<custos_psi::CheckedTable>,
    pub(crate) psi_downloads: u64,
    /// How often a listening device checks its own key history
    /// ([`Device::set_own_keys_check_interval`]).
    pub(crate) own_keys_check_interval: std::time::Duration,
    /// Member keys proven by the key directory in the last
    /// [`crate::keydir::VERIFIED_KEY_TTL`] (in memory).
    pub(crate) verified_keys: crate::keydir::VerifiedKeys,
    /// A second connection to the device store, read by a poll of the log
    /// on another task ([`Device::prefetch_for`]); opened on first use.
    pub(crate) log_store: Option<Store>,
    /// Held for the device's lifetime: no other process advances its chains.
    _home_lock: HomeLock,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("home", &self.home)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

const IDENTITY_FILE: &str = "identity.key";

/// The device store's file in the device's home.
pub(crate) const STORE_FILE: &str = "device.db";

/// How long `register` waits for its key to appear in a logged epoch of
/// the key directory (the provider publishes one every 10 s by default).
const OWN_KEY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Rounds of following the log for a franking key the service presents
/// before it is refused (half a second apart).
const FRANKING_KEY_FOLLOWS: u32 = 6;

/// Pins the service's franking key: from now on every envelope must carry
/// a delivery tag that verifies under it. A device with a pinned manifest
/// pins only a key that the manifest's provider published in the log
/// (following the log once more if the key is new), so a service cannot
/// swap in a key nobody can audit.
async fn pin_franking_key(
    api: &Api,
    store: &mut Store,
    home: &Path,
    pin: Option<&crate::pin::ManifestPin>,
    day_keys: Option<&crate::daykeys::DayKeys>,
) -> Result<(), DeviceError> {
    let Some(key) = api.franking_key().await? else {
        return Ok(());
    };
    if let Some(pin) = pin {
        // A service that has just started may still be waiting for its key's
        // witnessed inclusion: follow the log a few times before refusing.
        let mut attempts = 0;
        while !crate::logsync::franking_key_logged(store, &key)? {
            if attempts == FRANKING_KEY_FOLLOWS {
                return Err(DeviceError::FrankingKeyNotLogged {
                    key: hex::encode(key),
                });
            }
            if attempts > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            crate::logsync::follow(home, store, pin, day_keys).await?;
            attempts += 1;
        }
    }
    store.set(crate::report::PINNED_FRANKING_KEY, &key)?;
    Ok(())
}

impl Device {
    /// Creates an account `name` on the service at `server`, with a fresh
    /// identity kept in `home`, and uploads KeyPackages. Without a pinned
    /// manifest the device follows no log and uses no escrow: for
    /// deployments without lawful access and for development;
    /// [`Device::register_pinned`] is the normal way.
    pub async fn register(
        home: &Path,
        server: &str,
        name: &str,
        clock: SharedClock,
    ) -> Result<Self, DeviceError> {
        Self::register_inner(home, server, name, clock, None).await
    }

    /// Creates an account like [`Device::register`], and pins `pin`'s
    /// manifest as this device's trust root: the log must hold a witnessed
    /// publication of its hash, and the device then follows that log for
    /// day keys. In a deployment with custodians, every chain this device
    /// sends carries an escrow capsule and every chain it receives must.
    pub async fn register_pinned(
        home: &Path,
        server: &str,
        name: &str,
        clock: SharedClock,
        pin: crate::pin::ManifestPin,
    ) -> Result<Self, DeviceError> {
        Self::register_inner(home, server, name, clock, Some(pin)).await
    }

    async fn register_inner(
        home: &Path,
        server: &str,
        name: &str,
        clock: SharedClock,
        pin: Option<crate::pin::ManifestPin>,
    ) -> Result<Self, DeviceError> {
        custos_wire::ids::validate_account_name(name)?;
        let key_path = home.join(IDENTITY_FILE);
        if key_path.exists() {
            return Err(DeviceError::AlreadyRegistered(home.to_owned()));
        }
        create_private_dir(home)?;
        let home_lock = HomeLock::acquire(home, DEFAULT_LOCK_WAIT).await?;
        if key_path.exists() {
            return Err(DeviceError::AlreadyRegistered(home.to_owned()));
        }
        // The manifest is checked against the log before anything else.
        let mut day_keys = None;
        if let Some(pin) = &pin {
            let mut store = Store::open(&home.join(STORE_FILE))?;
            let keys = crate::daykeys::DayKeys::for_manifest(pin.manifest());
            let sync = crate::logsync::follow(home, &mut store, pin, keys.as_ref()).await?;
            if !sync.manifest_published {
                let hash = pin.manifest().hash().map_err(crate::pin::PinError::from)?;
                return Err(crate::pin::PinError::NotPublished {
                    hash: hex::encode(hash),
                }
                .into());
            }
            pin.save(home)?;
            store.set("log_url", pin.log_url().as_bytes())?;
            day_keys = keys.map(std::sync::Arc::new);
        }
        let identity = Identity::generate();
        let mut api = Api::new(server);
        api.register(name, &identity.public_bytes()).await?;
        identity.save(&key_path).map_err(|source| DeviceError::Io {
            path: key_path.clone(),
            source,
        })?;
        let mut store = Store::open(&home.join(STORE_FILE))?;
        store.set("name", name.as_bytes())?;
        store.set("server", server.as_bytes())?;
        let provider = Provider::open(&home.join("mls.db"))?;
        let (token, expires) = api.login(name, &identity).await?;
        store.set("token", token.as_bytes())?;
        store.set("token_expires", &expires.to_be_bytes())?;
        pin_franking_key(&api, &mut store, home, pin.as_ref(), day_keys.as_deref()).await?;
        let pinned_franking = crate::report::PinnedFranking::from_stored(
            store.get(crate::report::PINNED_FRANKING_KEY)?,
        );
        let mut device = Self {
            home: home.to_owned(),
            name: name.to_owned(),
            identity,
            provider,
            store,
            api,
            clock,
            escrow: escrow_of(day_keys.as_ref()),
            pin,
            day_keys,
            refused: Vec::new(),
            tag_roots: custos_wire::tag::VerifiedRoots::new(),
            sender_keys: custos_verify::sender_signature::SenderKeyCache::new(),
            pinned_franking,
            psi_force_synthetic: None,
            psi_cache: None,
            psi_downloads: 0,
            own_keys_check_interval: crate::keydir::OWN_KEYS_CHECK_INTERVAL,
            verified_keys: crate::keydir::VerifiedKeys::default(),
            log_store: None,
            _home_lock: home_lock,
        };
        device.upload_key_packages(KEY_PACKAGE_BATCH, true).await?;
        // With a key directory: the account's key must appear in a logged
        // epoch, and be this device's key.
        device.await_own_key(OWN_KEY_PATIENCE).await?;
        Ok(device)
    }

    /// Opens the account in `home` and makes sure it has a valid session.
    pub async fn open(home: &Path, clock: SharedClock) -> Result<Self, DeviceError> {
        let key_path = home.join(IDENTITY_FILE);
        if !key_path.exists() {
            return Err(DeviceError::NotRegistered(home.to_owned()));
        }
        let home_lock = HomeLock::acquire(home, DEFAULT_LOCK_WAIT).await?;
        let identity = Identity::load(&key_path).map_err(|source| DeviceError::Io {
            path: key_path.clone(),
            source,
        })?;
        let mut store = Store::open(&home.join(STORE_FILE))?;
        let name = store
            .get_str("name")?
            .ok_or_else(|| DeviceError::NotRegistered(home.to_owned()))?;
        let server = store
            .get_str("server")?
            .ok_or_else(|| DeviceError::NotRegistered(home.to_owned()))?;
        let provider = Provider::open(&home.join("mls.db"))?;
        let (pin, day_keys) = crate::logsync::load_pin(home, &store)?;
        let mut api = Api::new(&server);
        let expires = store
            .get("token_expires")?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        // Renew a minute early so a request never races the expiry.
        if let Some(token) = store
            .get_str("token")?
            .filter(|_| expires > clock.now_millis() + 60_000)
        {
            api.set_token(token);
        } else {
            let (token, expires) = api.login(&name, &identity).await?;
            store.set("token", token.as_bytes())?;
            store.set("token_expires", &expires.to_be_bytes())?;
            pin_franking_key(&api, &mut store, home, pin.as_ref(), day_keys.as_deref()).await?;
        }
        let pinned_franking = crate::report::PinnedFranking::from_stored(
            store.get(crate::report::PINNED_FRANKING_KEY)?,
        );
        Ok(Self {
            home: home.to_owned(),
            name,
            identity,
            provider,
            store,
            api,
            clock,
            escrow: escrow_of(day_keys.as_ref()),
            pin,
            day_keys,
            refused: Vec::new(),
            tag_roots: custos_wire::tag::VerifiedRoots::new(),
            sender_keys: custos_verify::sender_signature::SenderKeyCache::new(),
            pinned_franking,
            psi_force_synthetic: None,
            psi_cache: None,
            psi_downloads: 0,
            own_keys_check_interval: crate::keydir::OWN_KEYS_CHECK_INTERVAL,
            verified_keys: crate::keydir::VerifiedKeys::default(),
            log_store: None,
            _home_lock: home_lock,
        })
    }

    /// Replaces the escrow policy: from now on, chains carry its capsules
    /// and incoming chains are checked by it. The pinned manifest sets the
    /// policy on its own; this door is for tests (a modified sender) and
    /// for embedding applications with their own policy.
    pub fn set_escrow(&mut self, policy: std::sync::Arc<dyn crate::escrow::EscrowPolicy>) {
        self.escrow = Some(policy);
    }

    /// This device's account name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The delivery service session.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The device's public identity key.
    pub fn identity_key(&self) -> [u8; 32] {
        self.identity.public_bytes()
    }

    pub(crate) fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.name.as_bytes().to_vec()).into(),
            signature_key: self.identity.public_bytes().to_vec().into(),
        }
    }

    /// Generates `n` KeyPackages (and a last-resort one if asked) and uploads them.
    pub async fn upload_key_packages(
        &mut self,
        n: usize,
        last_resort: bool,
    ) -> Result<(), DeviceError> {
        let mut packages = Vec::with_capacity(n);
        for _ in 0..n {
            packages.push(self.key_package(false)?);
        }
        let lr = if last_resort {
            Some(self.key_package(true)?)
        } else {
            None
        };
        self.api
            .upload_key_packages(&packages, lr.as_deref())
            .await?;
        Ok(())
    }

    /// Tops up KeyPackages when the service runs low.
    pub async fn replenish_key_packages(&mut self) -> Result<(), DeviceError> {
        if self.api.key_package_count().await? < (KEY_PACKAGE_BATCH / 2) as u64 {
            self.upload_key_packages(KEY_PACKAGE_BATCH, false).await?;
        }
        Ok(())
    }

    fn key_package(&self, last_resort: bool) -> Result<Vec<u8>, DeviceError> {
        let mut builder = KeyPackage::builder();
        if last_resort {
            // The leaf must announce support for the extension it carries,
            // or every adder refuses the package (RFC 9420 §12.1, and the
            // last-resort extension of the MLS extensions draft).
            builder = builder
                .mark_as_last_resort()
                .leaf_node_capabilities(Capabilities::new(
                    None,
                    None,
                    Some(&[ExtensionType::LastResort]),
                    None,
                    None,
                ));
        }
        let bundle = builder
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.identity,
                self.credential(),
            )
            .map_err(mls(MlsError::KeyPackage))?;
        MlsMessageOut::from(bundle.key_package().clone())
            .tls_serialize_detached()
            .map_err(mls(MlsError::Encode))
    }
}

/// The escrow policy of a deployment: day keys from the log, or none when
/// the manifest names no custodians (or no manifest is pinned).
fn escrow_of(
    keys: Option<&std::sync::Arc<crate::daykeys::DayKeys>>,
) -> Option<std::sync::Arc<dyn crate::escrow::EscrowPolicy>> {
    keys.map(|k| {
        std::sync::Arc::new(crate::daykeys::DayKeyEscrow::new(std::sync::Arc::clone(k)))
            as std::sync::Arc<dyn crate::escrow::EscrowPolicy>
    })
}

fn create_private_dir(dir: &Path) -> Result<(), DeviceError> {
    let io = |source| DeviceError::Io {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}
