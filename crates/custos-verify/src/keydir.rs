//! Key-directory proofs: what a device checks before it trusts that a key
//! belongs to an account (docs/design/0016-key-transparency.md, wire format
//! in docs/spec/key-directory.md).
//!
//! The provider keeps every account's identity key in an auditable key
//! directory (`akd`, in `custos-keydir`), publishes one root hash per epoch,
//! and logs each root in the transparency log as a `key_directory_epoch`
//! statement. Here are the label and value encodings both sides share, the
//! proofs' wire form, and the checks: a lookup proof for one account, a
//! key-history proof, each against an [`EpochRoot`] that the caller took
//! from the log.
//!
//! # Guarantees
//! - **No I/O and no storage**: only `akd_core`'s verifier runs here.
//! - **A verified key is proof**: [`VerifiedKey`] is built only by
//!   [`verify_lookup`]; it names the account, the key and the epoch root it
//!   was proven against.
//! - Proof bytes are bounded, versioned, and canonical: a proof that does
//!   not re-encode to the same bytes is refused before it is checked.
//!
//! # Not guaranteed
//! - That the [`EpochRoot`] is the one everybody sees: the caller must take
//!   it from a witnessed log checkpoint (the device's log follower does).
//! - That the key is the only one the account ever had: that is the key
//!   history's job ([`verify_history`]) and the owner's self-monitoring.

use akd_core::configuration::DomainLabel;
use akd_core::proto::specs::types as pb;
use akd_core::verify::HistoryVerificationParams;
use akd_core::verify::history::HistoryParams;
use akd_core::{AkdLabel, AkdValue, ExperimentalConfiguration, MembershipProof, NodeLabel};
use protobuf::Message;

pub use akd_core::{AppendOnlyProof, HistoryProof, LookupProof};

/// Domain-separation label of every hash in the Custos key directory.
pub const DOMAIN_LABEL: &[u8] = b"custos/v1/key-directory";

/// The domain label of the Custos directory, as `akd` takes it.
#[derive(Debug, Clone, Copy)]
pub struct CustosDirectory;

impl DomainLabel for CustosDirectory {
    fn domain_label() -> &'static [u8] {
        DOMAIN_LABEL
    }
}

/// The `akd` configuration (hash, commitments) of the Custos directory. The
/// provider and every verifier must use this one type.
pub type DirectoryConfig = ExperimentalConfiguration<CustosDirectory>;

/// Version byte in front of every proof on the wire.
pub const PROOF_VERSION: u8 = 1;
/// Largest encoded lookup proof (a lookup is three Merkle paths of at most
/// 256 levels; a million accounts need about 20).
pub const MAX_LOOKUP_PROOF_LEN: usize = 64 * 1024;
/// Largest encoded key-history proof.
pub const MAX_HISTORY_PROOF_LEN: usize = 4 * 1024 * 1024;
/// Largest encoded append-only (audit) proof.
pub const MAX_AUDIT_PROOF_LEN: usize = 64 * 1024 * 1024;

/// Version byte of a directory value: an Ed25519 identity key follows.
pub const IDENTITY_VALUE_V1: u8 = 1;

/// The directory label of an account: its name's bytes (the configuration's
/// domain label separates them from any other use).
pub fn account_label(account: &str) -> AkdLabel {
    AkdLabel(account.as_bytes().to_vec())
}

/// The directory value of an identity key: a version byte and the 32-byte
/// Ed25519 public key.
pub fn identity_value(key: &[u8; 32]) -> AkdValue {
    let mut v = Vec::with_capacity(33);
    v.push(IDENTITY_VALUE_V1);
    v.extend_from_slice(key);
    AkdValue(v)
}

/// The identity key in a directory value, if the value is one.
pub fn parse_identity_value(value: &[u8]) -> Option<[u8; 32]> {
    match value.split_first() {
        Some((&IDENTITY_VALUE_V1, key)) => key.try_into().ok(),
        _ => None,
    }
}

/// One epoch's root hash, as the transparency log carries it. Only a root
/// taken from a witnessed checkpoint gives a verified lookup any meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochRoot {
    /// The directory epoch.
    pub epoch: u64,
    /// Its root hash.
    #[serde(with = "hex32")]
    pub root_hash: [u8; 32],
}

/// Why a key-directory proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDirError {
    /// The proof's version byte is not one this build reads.
    #[error("{what} version {version} is not supported; this build reads version {PROOF_VERSION}")]
    UnsupportedVersion {
        /// Which proof.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// The proof is larger than its bound.
    #[error("{what} is longer than {max} bytes")]
    TooLong {
        /// Which proof.
        what: &'static str,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a proof of this kind, or not in canonical form.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// Which proof.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The proof does not verify against the epoch root.
    #[error("the key directory's proof for `{account}` does not verify at epoch {epoch}: {reason}")]
    Invalid {
        /// The account looked up.
        account: String,
        /// The epoch whose root it was checked against.
        epoch: u64,
        /// What `akd` found wrong.
        reason: String,
    },
    /// The directory holds something else than an identity key.
    #[error("the key directory's value for `{0}` is not an identity key")]
    NotAnIdentityKey(String),
}

/// An account's identity key proven to be in the directory at an epoch.
/// Only [`verify_lookup`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    account: String,
    key: [u8; 32],
    version: u64,
    set_at: u64,
    root: EpochRoot,
}

impl VerifiedKey {
    /// The account.
    pub fn account(&self) -> &str {
        &self.account
    }
    /// Its current identity key.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }
    /// The key's version (1 for the first key of the account).
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The epoch in which this key was published.
    pub fn set_at(&self) -> u64 {
        self.set_at
    }
    /// The epoch root it was proven against.
    pub fn root(&self) -> EpochRoot {
        self.root
    }
}

/// One key an account had, from a verified history (newest first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyVersion {
    /// Version number (1 = first key).
    pub version: u64,
    /// Epoch in which it was published.
    pub epoch: u64,
    /// The identity key (hex).
    pub key: String,
}

/// Encodes a lookup proof: version byte, then its protobuf form.
pub fn encode_lookup_proof(proof: &LookupProof) -> Result<Vec<u8>, KeyDirError> {
    encode::<pb::LookupProof>(&pb::LookupProof::from(proof), "lookup proof")
}

/// Decodes a lookup proof, refusing other versions, oversize and
/// non-canonical input.
pub fn decode_lookup_proof(bytes: &[u8]) -> Result<LookupProof, KeyDirError> {
    let m: pb::LookupProof = decode(bytes, "lookup proof", MAX_LOOKUP_PROOF_LEN)?;
    let p = LookupProof::try_from(&m).map_err(|e| malformed("lookup proof", e))?;
    for mp in [
        &p.existence_proof,
        &p.marker_proof,
        &p.freshness_proof.longest_prefix_membership_proof,
    ] {
        root_label_bound(mp, "lookup proof")?;
    }
    Ok(p)
}

/// `akd_core` 0.13 hashes every sibling proof's parent label into the path
/// except the topmost one (the root's), which it reads and never uses: a
/// proof with any other label there verifies too. One form only: the
/// topmost parent must be the root label.
fn root_label_bound(p: &MembershipProof, what: &'static str) -> Result<(), KeyDirError> {
    match p.sibling_proofs.first() {
        Some(top) if top.label != NodeLabel::root() => Err(KeyDirError::Malformed {
            what,
            reason: "the topmost parent label is not the root's".into(),
        }),
        _ => Ok(()),
    }
}

/// Encodes a key-history proof.
pub fn encode_history_proof(proof: &HistoryProof) -> Result<Vec<u8>, KeyDirError> {
    encode::<pb::HistoryProof>(&pb::HistoryProof::from(proof), "history proof")
}

/// Decodes a key-history proof (see [`decode_lookup_proof`]).
pub fn decode_history_proof(bytes: &[u8]) -> Result<HistoryProof, KeyDirError> {
    let m: pb::HistoryProof = decode(bytes, "history proof", MAX_HISTORY_PROOF_LEN)?;
    let p = HistoryProof::try_from(&m).map_err(|e| malformed("history proof", e))?;
    for u in &p.update_proofs {
        root_label_bound(&u.existence_proof, "history proof")?;
        if let Some(prev) = &u.previous_version_proof {
            root_label_bound(prev, "history proof")?;
        }
    }
    for mp in &p.existence_of_past_marker_proofs {
        root_label_bound(mp, "history proof")?;
    }
    for nm in &p.non_existence_of_future_marker_proofs {
        root_label_bound(&nm.longest_prefix_membership_proof, "history proof")?;
    }
    Ok(p)
}

/// Encodes an append-only (audit) proof.
pub fn encode_audit_proof(proof: &AppendOnlyProof) -> Result<Vec<u8>, KeyDirError> {
    encode::<pb::AppendOnlyProof>(&pb::AppendOnlyProof::from(proof), "audit proof")
}

/// Decodes an append-only (audit) proof (see [`decode_lookup_proof`]).
pub fn decode_audit_proof(bytes: &[u8]) -> Result<AppendOnlyProof, KeyDirError> {
    let m: pb::AppendOnlyProof = decode(bytes, "audit proof", MAX_AUDIT_PROOF_LEN)?;
    AppendOnlyProof::try_from(&m).map_err(|e| malformed("audit proof", e))
}

/// Checks a lookup proof for `account` against a logged epoch root with the
/// directory's VRF key (from the manifest), and returns the proven key.
pub fn verify_lookup(
    vrf_public_key: &[u8; 32],
    root: &EpochRoot,
    account: &str,
    proof: &[u8],
) -> Result<VerifiedKey, KeyDirError> {
    let proof = decode_lookup_proof(proof)?;
    let result = akd_core::verify::lookup_verify::<DirectoryConfig>(
        vrf_public_key,
        root.root_hash,
        root.epoch,
        account_label(account),
        proof,
    )
    .map_err(|e| KeyDirError::Invalid {
        account: account.to_owned(),
        epoch: root.epoch,
        reason: e.to_string(),
    })?;
    if result.epoch > root.epoch {
        return Err(KeyDirError::Invalid {
            account: account.to_owned(),
            epoch: root.epoch,
            reason: format!("the key is dated epoch {}, after the root", result.epoch),
        });
    }
    let key = parse_identity_value(&result.value.0)
        .ok_or_else(|| KeyDirError::NotAnIdentityKey(account.to_owned()))?;
    Ok(VerifiedKey {
        account: account.to_owned(),
        key,
        version: result.version,
        set_at: result.epoch,
        root: *root,
    })
}

/// Checks the complete key history of `account` against a logged epoch root
/// and returns every key it had, newest first.
pub fn verify_history(
    vrf_public_key: &[u8; 32],
    root: &EpochRoot,
    account: &str,
    proof: &[u8],
) -> Result<Vec<KeyVersion>, KeyDirError> {
    let proof = decode_history_proof(proof)?;
    let results = akd_core::verify::key_history_verify::<DirectoryConfig>(
        vrf_public_key,
        root.root_hash,
        root.epoch,
        account_label(account),
        proof,
        HistoryVerificationParams::Default {
            history_params: HistoryParams::Complete,
        },
    )
    .map_err(|e| KeyDirError::Invalid {
        account: account.to_owned(),
        epoch: root.epoch,
        reason: e.to_string(),
    })?;
    results
        .into_iter()
        .map(|r| {
            let key = parse_identity_value(&r.value.0)
                .ok_or_else(|| KeyDirError::NotAnIdentityKey(account.to_owned()))?;
            Ok(KeyVersion {
                version: r.version,
                epoch: r.epoch,
                key: hex::encode(key),
            })
        })
        .collect()
}

fn encode<M: Message>(m: &M, what: &'static str) -> Result<Vec<u8>, KeyDirError> {
    let body = m.write_to_bytes().map_err(|e| malformed(what, e))?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(PROOF_VERSION);
    out.extend_from_slice(&body);
    Ok(out)
}

fn decode<M: Message>(bytes: &[u8], what: &'static str, max: usize) -> Result<M, KeyDirError> {
    if bytes.len() > max {
        return Err(KeyDirError::TooLong { what, max });
    }
    let (&version, body) = bytes.split_first().ok_or_else(|| KeyDirError::Malformed {
        what,
        reason: "empty".into(),
    })?;
    if version != PROOF_VERSION {
        return Err(KeyDirError::UnsupportedVersion { what, version });
    }
    let m = M::parse_from_bytes(body).map_err(|e| malformed(what, e))?;
    // One form only: unknown fields, repeated scalars, non-minimal varints
    // and reordered fields all fail to re-encode to the same bytes.
    let again = m.write_to_bytes().map_err(|e| malformed(what, e))?;
    if again != body {
        return Err(KeyDirError::Malformed {
            what,
            reason: "not in canonical form".into(),
        });
    }
    Ok(m)
}

fn malformed(what: &'static str, e: impl std::fmt::Display) -> KeyDirError {
    KeyDirError::Malformed {
        what,
        reason: e.to_string(),
    }
}

mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_round_trip_and_refuse_others() {
        let k = [7u8; 32];
        assert_eq!(parse_identity_value(&identity_value(&k).0), Some(k));
        assert_eq!(parse_identity_value(&[2; 33]), None);
        assert_eq!(parse_identity_value(&[1; 32]), None);
    }

    #[test]
    fn proofs_refuse_bad_versions_sizes_and_noncanonical_bytes() {
        assert!(matches!(
            decode_lookup_proof(&[2, 0]),
            Err(KeyDirError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(matches!(
            decode_lookup_proof(&vec![1; MAX_LOOKUP_PROOF_LEN + 1]),
            Err(KeyDirError::TooLong { .. })
        ));
        assert!(matches!(
            decode_lookup_proof(&[]),
            Err(KeyDirError::Malformed { .. })
        ));
        // Field 1 (epoch) as a two-byte varint for 1: valid protobuf, not canonical.
        assert!(matches!(
            decode_lookup_proof(&[1, 0x08, 0x81, 0x00]),
            Err(KeyDirError::Malformed { .. })
        ));
    }
}
