//! The provider's blinded hash table and its two-source list entries.
//!
//! Wire format (`docs/spec/psi.md`), every integer big-endian:
//!
//! ```text
//! version      u8  = 1
//! slots        u8  (1..=16)      samples per hash (crate::sample)
//! sample_bits  u8  (16..=128)    bits per sample
//! seed         [32]              public seed of the samples and positions
//! public       [32]              L = alpha * G (ristretto255, canonical)
//! org_a, org_b [32], [32]        the two organisations' Ed25519 keys (distinct)
//! list_size    u32 (1..=MAX_LIST_SIZE)
//! entries      list_size * (commitment [32], sig_a [64], sig_b [64]),
//!              strictly ascending by commitment
//! buckets      u32 (16..=MAX_BUCKETS), then buckets * [32] canonical points
//! ```
//!
//! # Security meaning
//! - The table's root ([`BlindedTable::root`]) is what the provider logs
//!   (statement kind 13); a device uses a table only through
//!   [`BlindedTable::check`], which demands that root, the list size and the
//!   two organisations' keys all equal the logged ones, and that every entry
//!   carries valid signatures of both organisations. A table that is not in
//!   the log, or an entry with one source only, is refused.
//! - Buckets hold `alpha * H(element)` for listed elements and random points
//!   elsewhere: without `alpha` the two are indistinguishable (DDH), so the
//!   table says nothing about which hashes are listed.
//! - Not checkable on a device: that the buckets were built from exactly the
//!   signed entries (the commitments are salted and the points blinded).
//!   The organisations can audit it with the provider's key; see
//!   `docs/design/0017-threshold-matching.md`.

use curve25519_dalek_5::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek_5::scalar::Scalar;
use custos_wire::WireError;
use custos_wire::codec::{Reader, Writer};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::sample::Sampler;

/// Version byte of the table encoding.
pub const TABLE_VERSION: u8 = 1;
/// Most listed hashes in one table.
pub const MAX_LIST_SIZE: u32 = 1 << 20;
/// Most buckets in one table (256 MiB of points).
pub const MAX_BUCKETS: u32 = 1 << 23;
/// Fewest buckets.
pub const MIN_BUCKETS: u32 = 16;
/// Most samples (slots) per hash.
pub const MAX_SLOTS: u8 = 16;
/// Fewest and most bits per sample.
pub const SAMPLE_BITS_RANGE: std::ops::RangeInclusive<u8> = 16..=128;
/// Label of an organisation's signature on a list entry.
pub const ENTRY_SIGNING_LABEL: &[u8] = b"custos/v1/psi/list-entry";

/// Bytes of one encoded entry.
const ENTRY_LEN: usize = 32 + 64 + 64;
/// Header bytes before the entries.
const HEADER_LEN: usize = 1 + 1 + 1 + 32 + 32 + 32 + 32 + 4;

/// Why a table was refused. Nothing of a refused table is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Not a canonical table encoding (truncated, trailing bytes, bad version).
    #[error("malformed hash table: {0}")]
    Wire(#[from] WireError),
    /// A header number is outside its bounds.
    #[error("hash table field `{field}` is out of bounds: {reason}")]
    OutOfBounds {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A point is not a canonical ristretto255 encoding.
    #[error("hash table field `{field}` is not a canonical ristretto255 point")]
    BadPoint {
        /// Which field.
        field: &'static str,
    },
    /// Entries are not strictly ascending by commitment.
    #[error("hash table entries are not strictly ascending (entry {0})")]
    NotSorted(usize),
    /// The table's root is not the one in the log.
    #[error(
        "hash table root {found} is not the logged root {logged}: the service offers a list that is not in the log"
    )]
    NotLogged {
        /// Root of the offered table.
        found: String,
        /// Root the log holds.
        logged: String,
    },
    /// The table's size, samples or organisations differ from the logged ones.
    #[error("hash table {0} differs from the logged statement")]
    LoggedMismatch(&'static str),
    /// The organisations named in the table are not the manifest's.
    #[error(
        "the hash table's organisations are not the two named in the manifest's [matching] section"
    )]
    WrongOrganisations,
    /// An entry lacks a valid signature of one organisation.
    #[error(
        "list entry {index} is not signed by organisation {organisation}: every entry needs both sources"
    )]
    OneSource {
        /// Entry index.
        index: usize,
        /// `a` or `b`.
        organisation: char,
    },
    /// The builder could not place every element (retry with more buckets).
    #[error("cannot place {0} elements in the cuckoo table")]
    Placement(usize),
    /// The builder was given an entry whose commitment is not of its hash.
    #[error("list entry {0}: commitment does not match the hash and salt")]
    Commitment(usize),
}

/// One list entry: a salted commitment to a listed PDQ hash, signed by both
/// organisations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// `SHA-256("custos/v1/psi/entry" || salt || hash)`; the salt is the
    /// organisations' and the provider's, so devices cannot test membership.
    pub commitment: [u8; 32],
    /// Organisation A's Ed25519 signature over `ENTRY_SIGNING_LABEL || commitment`.
    pub sig_a: [u8; 64],
    /// Organisation B's signature, same message.
    pub sig_b: [u8; 64],
}

/// The salted commitment to a listed hash.
pub fn entry_commitment(salt: &[u8; 32], hash: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custos/v1/psi/entry");
    h.update(salt);
    h.update(hash);
    h.finalize().into()
}

/// What an organisation signs for an entry.
pub fn entry_signing_message(commitment: &[u8; 32]) -> Vec<u8> {
    [ENTRY_SIGNING_LABEL, commitment.as_slice()].concat()
}

/// An organisation's signature on an entry (its list tooling).
pub fn sign_entry(key: &SigningKey, commitment: &[u8; 32]) -> [u8; 64] {
    use ed25519_dalek::Signer as _;
    key.sign(&entry_signing_message(commitment)).to_bytes()
}

/// What the log says of a table (statement kind 13), as a device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedList {
    /// The logged root.
    pub root: [u8; 32],
    /// The logged list size.
    pub list_size: u32,
    /// Logged samples per hash.
    pub slots: u8,
    /// Logged bits per sample.
    pub sample_bits: u8,
    /// Logged organisation keys.
    pub org_a: [u8; 32],
    /// Logged organisation keys.
    pub org_b: [u8; 32],
}

/// A parsed, canonical blinded table. Holding one does not mean it is
/// trusted: devices use [`CheckedTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindedTable {
    slots: u8,
    sample_bits: u8,
    seed: [u8; 32],
    public: RistrettoPoint,
    org_a: [u8; 32],
    org_b: [u8; 32],
    entries: Vec<ListEntry>,
    buckets: Vec<RistrettoPoint>,
}

impl BlindedTable {
    /// Decodes a table, refusing any non-canonical or out-of-bounds byte
    /// before allocating for it.
    pub fn decode(bytes: &[u8]) -> Result<Self, TableError> {
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != TABLE_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "psi table",
                version,
                supported: TABLE_VERSION,
            }
            .into());
        }
        let slots = r.field("slots").u8()?;
        let sample_bits = r.field("sample_bits").u8()?;
        check_params(slots, sample_bits)?;
        let seed = r.field("seed").array::<32>()?;
        let public = point(&r.field("public").array::<32>()?, "public")?;
        let org_a = r.field("org_a").array::<32>()?;
        let org_b = r.field("org_b").array::<32>()?;
        if org_a == org_b {
            return Err(TableError::OutOfBounds {
                field: "org_b",
                reason: "the two organisations must be distinct",
            });
        }
        let list_size = r.field("list_size").u32()?;
        if list_size == 0 || list_size > MAX_LIST_SIZE {
            return Err(TableError::OutOfBounds {
                field: "list_size",
                reason: "must be 1 to 2^20",
            });
        }
        let n = usize::try_from(list_size).map_err(|_| TableError::OutOfBounds {
            field: "list_size",
            reason: "too large for this machine",
        })?;
        if r.remaining() < n.saturating_mul(ENTRY_LEN) {
            return Err(WireError::Truncated { field: "entries" }.into());
        }
        let mut entries: Vec<ListEntry> = Vec::with_capacity(n);
        for i in 0..n {
            let e = ListEntry {
                commitment: r.field("commitment").array()?,
                sig_a: r.field("sig_a").array()?,
                sig_b: r.field("sig_b").array()?,
            };
            if let Some(prev) = entries.last()
                && prev.commitment >= e.commitment
            {
                return Err(TableError::NotSorted(i));
            }
            entries.push(e);
        }
        let m = r.field("buckets").u32()?;
        if !(MIN_BUCKETS..=MAX_BUCKETS).contains(&m) {
            return Err(TableError::OutOfBounds {
                field: "buckets",
                reason: "must be 16 to 2^23",
            });
        }
        let m = usize::try_from(m).map_err(|_| TableError::OutOfBounds {
            field: "buckets",
            reason: "too large for this machine",
        })?;
        if r.remaining() != m.saturating_mul(32) {
            return Err(if r.remaining() < m.saturating_mul(32) {
                WireError::Truncated { field: "bucket" }.into()
            } else {
                WireError::TrailingBytes {
                    count: r.remaining() - m.saturating_mul(32),
                }
                .into()
            });
        }
        let mut buckets = Vec::with_capacity(m);
        for _ in 0..m {
            buckets.push(point(&r.field("bucket").array::<32>()?, "bucket")?);
        }
        r.finish()?;
        Ok(Self {
            slots,
            sample_bits,
            seed,
            public,
            org_a,
            org_b,
            entries,
            buckets,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            HEADER_LEN + self.entries.len() * ENTRY_LEN + 4 + self.buckets.len() * 32,
        );
        w.u8(TABLE_VERSION)
            .u8(self.slots)
            .u8(self.sample_bits)
            .raw(&self.seed)
            .raw(self.public.compress().as_bytes())
            .raw(&self.org_a)
            .raw(&self.org_b)
            .u32(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        for e in &self.entries {
            w.raw(&e.commitment).raw(&e.sig_a).raw(&e.sig_b);
        }
        w.u32(u32::try_from(self.buckets.len()).unwrap_or(u32::MAX));
        for b in &self.buckets {
            w.raw(b.compress().as_bytes());
        }
        w.into_bytes()
    }

    /// The root the provider logs: `SHA-256("custos/v1/psi/table" || encoding)`.
    pub fn root(&self) -> [u8; 32] {
        root_of(&self.encode())
    }

    /// Number of listed hashes (public).
    pub fn list_size(&self) -> u32 {
        u32::try_from(self.entries.len()).unwrap_or(u32::MAX)
    }

    /// Samples per hash.
    pub fn slots(&self) -> u8 {
        self.slots
    }

    /// Bits per sample.
    pub fn sample_bits(&self) -> u8 {
        self.sample_bits
    }

    /// The organisations' keys (A, B).
    pub fn organisations(&self) -> ([u8; 32], [u8; 32]) {
        (self.org_a, self.org_b)
    }

    /// The list entries.
    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }

    /// What the provider logs for this table.
    pub fn logged(&self) -> LoggedList {
        LoggedList {
            root: self.root(),
            list_size: self.list_size(),
            slots: self.slots,
            sample_bits: self.sample_bits,
            org_a: self.org_a,
            org_b: self.org_b,
        }
    }

    /// The device's check: the root, size and samples are the logged ones,
    /// the organisations are the manifest's and the logged ones, and every
    /// entry is signed by both. Only a [`CheckedTable`] makes vouchers.
    pub fn check(
        self,
        logged: &LoggedList,
        manifest_orgs: (&[u8; 32], &[u8; 32]),
    ) -> Result<CheckedTable, TableError> {
        let root = self.check_logged(logged, manifest_orgs)?;
        check_sources(&self.org_a, &self.org_b, &self.entries)?;
        Ok(CheckedTable::new(self, root))
    }

    /// [`BlindedTable::check`] for a table whose bytes this device kept in
    /// its own store after `check` passed on them: the same checks against
    /// the log's statement and the manifest, but not the entries'
    /// signatures again. The root is SHA-256 of the bytes, so bytes with
    /// the root `check` accepted carry the very signatures it verified; a
    /// table from anywhere else must go through `check`.
    ///
    /// # Security meaning
    /// The log's statement for the root is still required (a kept table
    /// whose root is not logged is refused as [`TableError::NotLogged`]),
    /// so keeping a table never lets a device scan against a list the log
    /// does not show; what it trusts is its own store.
    pub fn check_kept(
        self,
        logged: &LoggedList,
        manifest_orgs: (&[u8; 32], &[u8; 32]),
    ) -> Result<CheckedTable, TableError> {
        let root = self.check_logged(logged, manifest_orgs)?;
        Ok(CheckedTable::new(self, root))
    }

    /// The checks against the logged statement and the manifest; the root.
    fn check_logged(
        &self,
        logged: &LoggedList,
        manifest_orgs: (&[u8; 32], &[u8; 32]),
    ) -> Result<[u8; 32], TableError> {
        let root = self.root();
        if root != logged.root {
            return Err(TableError::NotLogged {
                found: hex::encode(root),
                logged: hex::encode(logged.root),
            });
        }
        if self.list_size() != logged.list_size {
            return Err(TableError::LoggedMismatch("list size"));
        }
        if self.slots != logged.slots || self.sample_bits != logged.sample_bits {
            return Err(TableError::LoggedMismatch("samples"));
        }
        if (&self.org_a, &self.org_b) != manifest_orgs
            || (self.org_a, self.org_b) != (logged.org_a, logged.org_b)
        {
            return Err(TableError::WrongOrganisations);
        }
        Ok(root)
    }

    pub(crate) fn bucket(&self, index: usize) -> Option<&RistrettoPoint> {
        self.buckets.get(index)
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub(crate) fn public(&self) -> &RistrettoPoint {
        &self.public
    }
}

/// A table a device has checked against the log and the manifest
/// ([`BlindedTable::check`]); the only kind vouchers are made against.
#[derive(Debug, Clone)]
pub struct CheckedTable {
    table: BlindedTable,
    root: [u8; 32],
    pub(crate) sampler: Sampler,
    /// Multiples of the table's public point `L`, so that the device's
    /// `gamma*L` (one per slot) is a fixed-base multiplication.
    pub(crate) public_table: PublicPointTable,
}

/// Precomputed multiples of a table's public point `L` (public data).
#[derive(Clone)]
pub(crate) struct PublicPointTable(std::sync::Arc<RistrettoBasepointTable>);

impl std::fmt::Debug for PublicPointTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicPointTable")
    }
}

impl PublicPointTable {
    /// `scalar * L`, constant time in `scalar`.
    pub(crate) fn mul(&self, scalar: &Scalar) -> RistrettoPoint {
        &*self.0 * scalar
    }
}

impl CheckedTable {
    fn new(table: BlindedTable, root: [u8; 32]) -> Self {
        let sampler = Sampler::new(&table.seed, table.slots, table.sample_bits);
        let public_table = PublicPointTable(std::sync::Arc::new(RistrettoBasepointTable::create(
            table.public(),
        )));
        Self {
            table,
            root,
            sampler,
            public_table,
        }
    }

    /// The table.
    pub fn table(&self) -> &BlindedTable {
        &self.table
    }

    /// Its root.
    pub fn root(&self) -> &[u8; 32] {
        &self.root
    }
}

/// The provider's blinding secret `alpha`. Zeroized on drop; never logged.
pub struct ProviderSecret(Scalar);

impl Drop for ProviderSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderSecret(..)")
    }
}

impl ProviderSecret {
    /// A fresh secret from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(crate::curve::random_scalar(rng))
    }

    /// The secret's 32 bytes, for the provider's key file only.
    pub fn expose_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A secret from its bytes; `None` unless canonical and non-zero.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let s: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
        s.filter(|s| *s != Scalar::ZERO).map(Self)
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.0
    }
}

/// One listed hash as the provider's tooling receives it.
#[derive(Debug, Clone)]
pub struct ListedHash {
    /// The PDQ hash (each dihedral variant is its own listed hash).
    pub hash: [u8; 32],
    /// Its entry, signed by both organisations.
    pub entry: ListEntry,
}

/// Parameters of a new table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableParams {
    /// Samples per hash.
    pub slots: u8,
    /// Bits per sample.
    pub sample_bits: u8,
}

impl Default for TableParams {
    /// The parameters chosen in `docs/design/0017-threshold-matching.md`.
    fn default() -> Self {
        Self {
            slots: crate::DEFAULT_SLOTS,
            sample_bits: crate::DEFAULT_SAMPLE_BITS,
        }
    }
}

/// The provider's tooling: builds the blinded table from listed hashes whose
/// entries both organisations signed (an entry with one source is refused,
/// as is a commitment that is not of its hash under `salt`).
pub fn build_table<R: RngCore + CryptoRng>(
    secret: &ProviderSecret,
    params: TableParams,
    orgs: (&[u8; 32], &[u8; 32]),
    salt: &[u8; 32],
    listed: &[ListedHash],
    rng: &mut R,
) -> Result<BlindedTable, TableError> {
    check_params(params.slots, params.sample_bits)?;
    if orgs.0 == orgs.1 {
        return Err(TableError::WrongOrganisations);
    }
    if listed.is_empty() || listed.len() > MAX_LIST_SIZE as usize {
        return Err(TableError::OutOfBounds {
            field: "list_size",
            reason: "must be 1 to 2^20",
        });
    }
    for (i, l) in listed.iter().enumerate() {
        if entry_commitment(salt, &l.hash) != l.entry.commitment {
            return Err(TableError::Commitment(i));
        }
    }
    let mut entries: Vec<ListEntry> = listed.iter().map(|l| l.entry.clone()).collect();
    entries.sort_by_key(|e| e.commitment);
    entries.dedup_by(|a, b| a.commitment == b.commitment);
    check_sources(orgs.0, orgs.1, &entries)?;
    for _attempt in 0..16 {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let sampler = Sampler::new(&seed, params.slots, params.sample_bits);
        let mut elements: Vec<Vec<u8>> = listed
            .iter()
            .flat_map(|l| (0..sampler.slots()).filter_map(|s| sampler.element(s, &l.hash)))
            .collect();
        elements.sort();
        elements.dedup();
        let m = (elements.len().saturating_mul(3) + 16).max(MIN_BUCKETS as usize);
        if m > MAX_BUCKETS as usize {
            return Err(TableError::OutOfBounds {
                field: "buckets",
                reason: "list too large for the table bound",
            });
        }
        if let Some(placed) = cuckoo(&seed, &elements, m) {
            let mut buckets = Vec::with_capacity(m);
            for slot in placed {
                buckets.push(match slot.and_then(|i| elements.get(i)) {
                    Some(e) => secret.scalar() * hash_to_group(&seed, e),
                    None => crate::curve::random_point(rng),
                });
            }
            return Ok(BlindedTable {
                slots: params.slots,
                sample_bits: params.sample_bits,
                seed,
                public: RistrettoPoint::mul_base(secret.scalar()),
                org_a: *orgs.0,
                org_b: *orgs.1,
                entries,
                buckets,
            });
        }
    }
    Err(TableError::Placement(listed.len()))
}

/// `SHA-256("custos/v1/psi/table" || bytes)`.
pub fn root_of(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custos/v1/psi/table");
    h.update(bytes);
    h.finalize().into()
}

/// `H(element)`: ristretto255 hash-to-group (SHA-512, Elligator twice) of
/// `custos/v1/psi/element || seed || element`.
pub(crate) fn hash_to_group(seed: &[u8; 32], element: &[u8]) -> RistrettoPoint {
    crate::curve::hash_to_group(&[b"custos/v1/psi/element", seed, element])
}

/// The two cuckoo positions of an element in a table of `m` buckets
/// (distinct, so a match opens exactly one wrap).
pub(crate) fn positions(seed: &[u8; 32], element: &[u8], m: usize) -> [usize; 2] {
    let draw = |j: u8| {
        let mut h = Sha256::new();
        h.update(b"custos/v1/psi/position");
        h.update(seed);
        h.update([j]);
        h.update(element);
        let d: [u8; 32] = h.finalize().into();
        let mut b = [0u8; 8];
        b.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
        u64::from_be_bytes(b)
    };
    let m64 = m.max(2) as u64;
    let p0 = draw(0) % m64;
    let p1 = (p0 + 1 + draw(1) % (m64 - 1)) % m64;
    [p0 as usize, p1 as usize]
}

fn cuckoo(seed: &[u8; 32], elements: &[Vec<u8>], m: usize) -> Option<Vec<Option<usize>>> {
    let mut slots: Vec<Option<usize>> = vec![None; m];
    let pos: Vec<[usize; 2]> = elements.iter().map(|e| positions(seed, e, m)).collect();
    for start in 0..elements.len() {
        let mut current = start;
        let mut which = 0usize;
        let mut placed = false;
        for _kick in 0..500 {
            let p = *pos.get(current)?.get(which)?;
            match slots.get_mut(p)?.replace(current) {
                None => {
                    placed = true;
                    break;
                }
                Some(evicted) => {
                    let ep = pos.get(evicted)?;
                    which = usize::from(ep[0] == p);
                    current = evicted;
                }
            }
        }
        if !placed {
            return None;
        }
    }
    Some(slots)
}

fn check_sources(
    org_a: &[u8; 32],
    org_b: &[u8; 32],
    entries: &[ListEntry],
) -> Result<(), TableError> {
    let a = VerifyingKey::from_bytes(org_a).map_err(|_| TableError::WrongOrganisations)?;
    let b = VerifyingKey::from_bytes(org_b).map_err(|_| TableError::WrongOrganisations)?;
    for (index, e) in entries.iter().enumerate() {
        let msg = entry_signing_message(&e.commitment);
        if custos_wire::signature::verify_strict(&a, &msg, &Signature::from_bytes(&e.sig_a))
            .is_err()
        {
            return Err(TableError::OneSource {
                index,
                organisation: 'a',
            });
        }
        if custos_wire::signature::verify_strict(&b, &msg, &Signature::from_bytes(&e.sig_b))
            .is_err()
        {
            return Err(TableError::OneSource {
                index,
                organisation: 'b',
            });
        }
    }
    Ok(())
}

fn check_params(slots: u8, sample_bits: u8) -> Result<(), TableError> {
    if slots == 0 || slots > MAX_SLOTS {
        return Err(TableError::OutOfBounds {
            field: "slots",
            reason: "must be 1 to 16",
        });
    }
    if !SAMPLE_BITS_RANGE.contains(&sample_bits) {
        return Err(TableError::OutOfBounds {
            field: "sample_bits",
            reason: "must be 16 to 128",
        });
    }
    Ok(())
}

pub(crate) fn point(bytes: &[u8; 32], field: &'static str) -> Result<RistrettoPoint, TableError> {
    CompressedRistretto(*bytes)
        .decompress()
        .ok_or(TableError::BadPoint { field })
}
