//! The MLS provider: RustCrypto primitives and state in SQLite
//! (`openmls_sqlite_storage`), plus the group configuration Custos uses.

use std::path::Path;

use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::{Codec, Connection, SqliteStorageProvider};

/// The ciphersuite of every Custos conversation.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// How many past epochs a member keeps secrets for, so that application
/// messages (chain announcements) sent just before a commit still decrypt.
pub const MAX_PAST_EPOCHS: usize = 8;

/// JSON codec for the openmls SQLite store.
#[derive(Debug, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    type Error = serde_json::Error;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        serde_json::from_slice(slice)
    }
}

pub use crate::mls_storage::MlsStorage;

/// The openmls storage type used by Custos.
pub type Storage = MlsStorage;

/// An [`OpenMlsProvider`] backed by a SQLite file.
pub struct Provider {
    crypto: RustCrypto,
    storage: Storage,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Provider")
    }
}

/// Why the MLS store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// SQLite failed.
    #[error("MLS state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations failed.
    #[error("MLS state database migration: {0}")]
    Migration(String),
}

impl Provider {
    /// Opens (creating if needed) the MLS state at `path`.
    pub fn open(path: &Path) -> Result<Self, ProviderError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Old epochs' secrets are overwritten when openmls deletes them.
        conn.pragma_update(None, "secure_delete", "ON")?;
        SqliteStorageProvider::<JsonCodec, &mut Connection>::new(&mut conn)
            .run_migrations()
            .map_err(|e| ProviderError::Migration(e.to_string()))?;
        Ok(Self {
            crypto: RustCrypto::default(),
            storage: MlsStorage::new(conn),
        })
    }
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = Storage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

/// Handshake messages (commits, proposals) travel as MLS `PublicMessage`s,
/// signed but not encrypted, so that the delivery service can verify them
/// and derive the membership from them (no ghost members); application
/// messages are always encrypted. Members accept handshake messages only in
/// this form.
pub const WIRE_FORMAT_POLICY: WireFormatPolicy = PURE_PLAINTEXT_WIRE_FORMAT_POLICY;

/// The join configuration for groups joined through a Welcome.
pub fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .wire_format_policy(WIRE_FORMAT_POLICY)
        .build()
}

/// The account name a member's credential names, if it is a valid basic credential.
pub fn credential_name(credential: &Credential) -> Option<String> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    let name = std::str::from_utf8(basic.identity()).ok()?;
    custos_wire::ids::validate_account_name(name).ok()?;
    Some(name.to_owned())
}
