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
    /// The device store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The MLS state could not be opened.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// An MLS operation failed.
    #[error("MLS: {0}")]
    Mls(String),
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
}

pub(crate) fn mls_err(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Mls(e.to_string())
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

impl Device {
    /// Creates an account `name` on the service at `server`, with a fresh
    /// identity kept in `home`, and uploads KeyPackages.
    pub async fn register(
        home: &Path,
        server: &str,
        name: &str,
        clock: SharedClock,
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
        let identity = Identity::generate();
        let mut api = Api::new(server);
        api.register(name, &identity.public_bytes()).await?;
        identity.save(&key_path).map_err(|source| DeviceError::Io {
            path: key_path.clone(),
            source,
        })?;
        let store = Store::open(&home.join("device.db"))?;
        store.set("name", name.as_bytes())?;
        store.set("server", server.as_bytes())?;
        let provider = Provider::open(&home.join("mls.db"))?;
        let (token, expires) = api.login(name, &identity).await?;
        store.set("token", token.as_bytes())?;
        store.set("token_expires", &expires.to_be_bytes())?;
        // Pin the service's franking key: from now on every envelope must
        // carry a delivery tag that verifies under it.
        if let Some(key) = api.franking_key().await? {
            store.set(crate::report::PINNED_FRANKING_KEY, &key)?;
        }
        let mut device = Self {
            home: home.to_owned(),
            name: name.to_owned(),
            identity,
            provider,
            store,
            api,
            clock,
            escrow: None,
            _home_lock: home_lock,
        };
        device.upload_key_packages(KEY_PACKAGE_BATCH, true).await?;
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
        let store = Store::open(&home.join("device.db"))?;
        let name = store
            .get_str("name")?
            .ok_or_else(|| DeviceError::NotRegistered(home.to_owned()))?;
        let server = store
            .get_str("server")?
            .ok_or_else(|| DeviceError::NotRegistered(home.to_owned()))?;
        let provider = Provider::open(&home.join("mls.db"))?;
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
            // Pin the service's franking key: from now on every envelope must
            // carry a delivery tag that verifies under it.
            if let Some(key) = api.franking_key().await? {
                store.set(crate::report::PINNED_FRANKING_KEY, &key)?;
            }
        }
        Ok(Self {
            home: home.to_owned(),
            name,
            identity,
            provider,
            store,
            api,
            clock,
            escrow: None,
            _home_lock: home_lock,
        })
    }

    /// Sets the escrow policy: from now on, chains carry capsules and
    /// incoming chains without a valid capsule are refused.
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
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.identity,
                self.credential(),
            )
            .map_err(mls_err)?;
        MlsMessageOut::from(bundle.key_package().clone())
            .tls_serialize_detached()
            .map_err(mls_err)
    }
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
