//! Signed lists: what each child-protection organisation hands the provider,
//! and the two-source rule that turns two of them into the entries of a
//! table ([`crate::build_table`]).
//!
//! An organisation signs, for every PDQ hash it vouches for, the hash's
//! salted commitment (`SHA-256("custos/v1/psi/entry" || salt || hash)`,
//! the same bytes the table carries and every device checks), with the
//! Ed25519 key the manifest's `[matching]` section names for it. The salt is
//! the provider's, published with the request for lists; both lists must use
//! the same one.
//!
//! Wire format (`docs/spec/psi.md`, "Signed list"), canonical:
//!
//! ```text
//! version       u8 = 1
//! organisation  [32]  the signing organisation's Ed25519 key
//! salt          [32]
//! count         u32   1..=MAX_LIST_SIZE
//! count * (hash [32], signature [64])   hashes strictly ascending
//! ```
//!
//! # Security meaning
//! - [`combine`] keeps a hash only if both organisations' lists carry it
//!   with a valid signature by the key the manifest names (the two-source
//!   rule of issue 15 item 4): a provider cannot list a hash that one
//!   organisation alone, or neither, vouches for, without a device noticing
//!   the missing signature ([`crate::BlindedTable::check`]).
//! - A list with a bad signature, another salt or another organisation's
//!   key is refused whole, not filtered: it is not what the organisation
//!   signed.
//! - The hashes themselves are not public (only their salted commitments
//!   go into the table): a signed list is handed to the provider, not
//!   published.

use custos_wire::WireError;
use custos_wire::codec::{Reader, Writer};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::table::{
    ListEntry, ListedHash, MAX_LIST_SIZE, entry_commitment, entry_signing_message, sign_entry,
};

/// Version byte of the signed-list encoding.
pub const SIGNED_LIST_VERSION: u8 = 1;
/// Bytes of one signed hash.
const SIGNED_HASH_LEN: usize = 32 + 64;

/// Why a signed list, or a pair of them, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Not a canonical signed-list encoding.
    #[error("malformed signed list: {0}")]
    Wire(#[from] WireError),
    /// Empty, too long, or hashes not strictly ascending.
    #[error("signed list: {0}")]
    OutOfBounds(&'static str),
    /// The list is signed by another key than the manifest's organisation.
    #[error(
        "the list of organisation {which} is signed by {found}, but the manifest names {expected}: \
         ask the organisation for its list, or check the manifest's [matching] section"
    )]
    WrongOrganisation {
        /// `a` or `b`.
        which: char,
        /// The list's key, hex.
        found: String,
        /// The manifest's key, hex.
        expected: String,
    },
    /// A signature does not verify.
    #[error(
        "entry {index} of organisation {which}'s list has a bad signature: the list is refused"
    )]
    BadSignature {
        /// `a` or `b`.
        which: char,
        /// Position in the list.
        index: usize,
    },
    /// The two lists were signed over different salts.
    #[error(
        "the two lists use different salts: both organisations must sign with the provider's salt"
    )]
    SaltMismatch,
    /// No hash is signed by both organisations.
    #[error("no hash is signed by both organisations: nothing can be listed")]
    NothingInCommon,
}

/// One hash and its organisation's signature over its commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHash {
    /// The PDQ hash.
    pub hash: [u8; 32],
    /// Ed25519 over `custos/v1/psi/list-entry || commitment`.
    pub signature: [u8; 64],
}

/// One organisation's signed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedList {
    organisation: [u8; 32],
    salt: [u8; 32],
    entries: Vec<SignedHash>,
}

impl SignedList {
    /// The organisation signs `hashes` (deduplicated and sorted here) over
    /// the provider's `salt`.
    pub fn sign(key: &SigningKey, salt: &[u8; 32], hashes: &[[u8; 32]]) -> Result<Self, ListError> {
        let mut sorted = hashes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() || sorted.len() > list_max() {
            return Err(ListError::OutOfBounds("a list holds 1 to 2^20 hashes"));
        }
        let entries = sorted
            .into_iter()
            .map(|hash| SignedHash {
                hash,
                signature: sign_entry(key, &entry_commitment(salt, &hash)),
            })
            .collect();
        Ok(Self {
            organisation: key.verifying_key().to_bytes(),
            salt: *salt,
            entries,
        })
    }

    /// The signing organisation's key.
    pub fn organisation(&self) -> &[u8; 32] {
        &self.organisation
    }

    /// The salt the commitments were made with.
    pub fn salt(&self) -> &[u8; 32] {
        &self.salt
    }

    /// The signed hashes, ascending.
    pub fn entries(&self) -> &[SignedHash] {
        &self.entries
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1 + 32 + 32 + 4 + self.entries.len() * SIGNED_HASH_LEN);
        w.u8(SIGNED_LIST_VERSION)
            .raw(&self.organisation)
            .raw(&self.salt)
            .u32(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        for e in &self.entries {
            w.raw(&e.hash).raw(&e.signature);
        }
        w.into_bytes()
    }

    /// Decodes a signed list (signatures are checked by [`combine`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, ListError> {
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != SIGNED_LIST_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "psi signed list",
                version,
                supported: SIGNED_LIST_VERSION,
            }
            .into());
        }
        let organisation = r.field("organisation").array::<32>()?;
        let salt = r.field("salt").array::<32>()?;
        let count = usize::try_from(r.field("count").u32()?).unwrap_or(usize::MAX);
        if count == 0 || count > list_max() {
            return Err(ListError::OutOfBounds("a list holds 1 to 2^20 hashes"));
        }
        if r.remaining() != count.saturating_mul(SIGNED_HASH_LEN) {
            return Err(WireError::Truncated { field: "entries" }.into());
        }
        let mut entries: Vec<SignedHash> = Vec::with_capacity(count);
        for _ in 0..count {
            let e = SignedHash {
                hash: r.field("hash").array()?,
                signature: r.field("signature").array()?,
            };
            if entries.last().is_some_and(|prev| prev.hash >= e.hash) {
                return Err(ListError::OutOfBounds(
                    "hashes must be strictly ascending (sorted, no duplicates)",
                ));
            }
            entries.push(e);
        }
        r.finish()?;
        Ok(Self {
            organisation,
            salt,
            entries,
        })
    }

    /// Checks that the list is `expected`'s and that every signature
    /// verifies.
    fn verify(&self, which: char, expected: &[u8; 32]) -> Result<(), ListError> {
        if &self.organisation != expected {
            return Err(ListError::WrongOrganisation {
                which,
                found: hex::encode(self.organisation),
                expected: hex::encode(expected),
            });
        }
        let key = VerifyingKey::from_bytes(expected).map_err(|_| ListError::WrongOrganisation {
            which,
            found: hex::encode(self.organisation),
            expected: hex::encode(expected),
        })?;
        for (index, e) in self.entries.iter().enumerate() {
            let msg = entry_signing_message(&entry_commitment(&self.salt, &e.hash));
            custos_wire::signature::verify_strict(&key, &msg, &Signature::from_bytes(&e.signature))
                .map_err(|_| ListError::BadSignature { which, index })?;
        }
        Ok(())
    }
}

/// The entries of a table, from the two organisations' lists.
#[derive(Debug, Clone)]
pub struct Combined {
    /// Hashes signed by both, with both signatures: what the table lists.
    pub listed: Vec<ListedHash>,
    /// The salt of both lists (the table's).
    pub salt: [u8; 32],
    /// Hashes only organisation A signed (left out).
    pub only_a: usize,
    /// Hashes only organisation B signed (left out).
    pub only_b: usize,
}

/// The two-source rule: verifies both lists against the manifest's two
/// organisations (`orgs`, A then B) and keeps the hashes both signed.
pub fn combine(
    a: &SignedList,
    b: &SignedList,
    orgs: (&[u8; 32], &[u8; 32]),
) -> Result<Combined, ListError> {
    a.verify('a', orgs.0)?;
    b.verify('b', orgs.1)?;
    if a.salt != b.salt {
        return Err(ListError::SaltMismatch);
    }
    let mut listed = Vec::new();
    let (mut i, mut j) = (a.entries.iter().peekable(), b.entries.iter().peekable());
    let (mut only_a, mut only_b) = (0usize, 0usize);
    loop {
        match (i.peek(), j.peek()) {
            (Some(x), Some(y)) if x.hash == y.hash => {
                listed.push(ListedHash {
                    hash: x.hash,
                    entry: ListEntry {
                        commitment: entry_commitment(&a.salt, &x.hash),
                        sig_a: x.signature,
                        sig_b: y.signature,
                    },
                });
                i.next();
                j.next();
            }
            (Some(x), Some(y)) if x.hash < y.hash => {
                only_a += 1;
                i.next();
            }
            (Some(_), Some(_)) => {
                only_b += 1;
                j.next();
            }
            (Some(_), None) => {
                only_a += 1;
                i.next();
            }
            (None, Some(_)) => {
                only_b += 1;
                j.next();
            }
            (None, None) => break,
        }
    }
    if listed.is_empty() {
        return Err(ListError::NothingInCommon);
    }
    Ok(Combined {
        listed,
        salt: a.salt,
        only_a,
        only_b,
    })
}

fn list_max() -> usize {
    usize::try_from(MAX_LIST_SIZE).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]
    use super::*;

    fn keys() -> (SigningKey, SigningKey) {
        (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
        )
    }

    #[test]
    fn only_hashes_both_organisations_signed_are_kept() {
        let (a, b) = keys();
        let salt = [9; 32];
        let la = SignedList::sign(&a, &salt, &[[1; 32], [2; 32], [3; 32]]).unwrap();
        let lb = SignedList::sign(&b, &salt, &[[2; 32], [3; 32], [4; 32], [5; 32]]).unwrap();
        let la = SignedList::decode(&la.encode()).unwrap();
        let orgs = (a.verifying_key().to_bytes(), b.verifying_key().to_bytes());
        let c = combine(&la, &lb, (&orgs.0, &orgs.1)).unwrap();
        let hashes: Vec<[u8; 32]> = c.listed.iter().map(|l| l.hash).collect();
        assert_eq!(hashes, vec![[2; 32], [3; 32]]);
        assert_eq!((c.only_a, c.only_b), (1, 2));
        // Swapped organisations, another salt, a forged signature: refused.
        assert!(matches!(
            combine(&lb, &la, (&orgs.0, &orgs.1)),
            Err(ListError::WrongOrganisation { which: 'a', .. })
        ));
        let other = SignedList::sign(&b, &[8; 32], &[[2; 32]]).unwrap();
        assert_eq!(
            combine(&la, &other, (&orgs.0, &orgs.1)).unwrap_err(),
            ListError::SaltMismatch
        );
        let mut forged = la.clone();
        forged.entries[1].signature[5] ^= 1;
        assert_eq!(
            combine(&forged, &lb, (&orgs.0, &orgs.1)).unwrap_err(),
            ListError::BadSignature {
                which: 'a',
                index: 1
            }
        );
        let disjoint = SignedList::sign(&b, &salt, &[[7; 32]]).unwrap();
        assert_eq!(
            combine(&la, &disjoint, (&orgs.0, &orgs.1)).unwrap_err(),
            ListError::NothingInCommon
        );
    }

    #[test]
    fn non_canonical_lists_are_refused() {
        let (a, _) = keys();
        let l = SignedList::sign(&a, &[9; 32], &[[1; 32], [2; 32]]).unwrap();
        let bytes = l.encode();
        assert_eq!(SignedList::decode(&bytes).unwrap(), l);
        // Truncated, trailing byte, version 2, unsorted, zero entries.
        assert!(SignedList::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(SignedList::decode(&long).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(matches!(
            SignedList::decode(&v2),
            Err(ListError::Wire(WireError::UnsupportedVersion { .. }))
        ));
        let mut swapped = bytes[..69].to_vec();
        swapped.extend_from_slice(&bytes[69 + 96..]);
        swapped.extend_from_slice(&bytes[69..69 + 96]);
        assert!(matches!(
            SignedList::decode(&swapped),
            Err(ListError::OutOfBounds(_))
        ));
        let mut empty = bytes[..65].to_vec();
        empty.extend_from_slice(&0u32.to_be_bytes());
        assert!(matches!(
            SignedList::decode(&empty),
            Err(ListError::OutOfBounds(_))
        ));
    }
}
