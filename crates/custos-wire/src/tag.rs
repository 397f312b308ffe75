//! Delivery tags: the service's signed statement that it accepted an
//! envelope from an account, in a conversation, at a time.
//!
//! Two versions exist. The service issues **v2** only; **v1** stays
//! decodable and verifiable, so that reports and escalation packages made
//! from v1 tags still verify.
//!
//! ```text
//! struct TagFields {                 // what a tag binds
//!     opaque franking_commitment[32]; // copied from the envelope header
//!     opaque conversation[16];
//!     opaque sender<1..64>;           // u8 length; authenticated account name
//!     u64    server_time;             // acceptance time, Unix ms (service clock)
//!     opaque envelope_hash[32];       // SHA-256 of the envelope exactly as received
//! }
//!
//! struct DeliveryTagV1 {
//!     u8        version = 1;
//!     TagFields fields;
//!     opaque    signature[64];        // Ed25519 by the service's franking key
//! }
//!
//! struct DeliveryTagV2 {
//!     u8        version = 2;
//!     TagFields fields;
//!     u64       batch_id;             // the service's tag-batch number
//!     u16       batch_size;           // 1..=512 leaves in the signed tree
//!     u16       leaf_index;           // < batch_size
//!     opaque    path[n][32];          // n = path length of (leaf_index, batch_size)
//!     opaque    signature[64];        // Ed25519 over the batch root
//! }
//! ```
//! - v1 signature: over [`TAG_SIGNATURE_LABEL`] followed by every byte of the
//!   encoding before the signature ([`DeliveryTagV1::signed_bytes`]).
//! - v2 leaf: `SHA-256(0x00 || "custos/v2/delivery-tag" || TagFields)`;
//!   interior nodes `SHA-256(0x01 || left || right)` over the RFC 6962 tree
//!   of the batch ([`merkle`]); the prefixes keep a leaf from posing as a
//!   node. The path is the RFC 9162 inclusion proof of the leaf, so its
//!   length `n` (at most [`MAX_TAG_PATH`]) follows from index and size and is
//!   not encoded. The signature covers [`TAG_V2_ROOT_LABEL`] `|| u64 batch_id
//!   || u16 batch_size || root` ([`root_signed_bytes`]).
//!
//! # Security meaning
//! A valid tag (either version) proves that the holder of the franking key
//! (the service) received, from the authenticated account `sender`, the
//! envelope whose SHA-256 is `envelope_hash` and whose header commits to a
//! payload with `franking_commitment`. For v2 the service signed a Merkle
//! root over a batch of such statements; the path proves that this one is
//! in the batch, and says nothing about the other leaves. Together with the
//! payload and its franking key a tag lets anyone with the service's public
//! key check who sent what, and nobody without the service's signing key can
//! make one. Decoding checks form only; [`verify_tag`] checks meaning.

use sha2::{Digest, Sha256};

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::ids::{ConversationId, MAX_ACCOUNT_NAME, read_account, write_account};

pub mod merkle;
mod verify;

pub use verify::{
    BatchPosition, Received, TagRefusal, VerifiedRoots, VerifiedTag, verify_tag,
    verify_tag_remembering,
};

/// Version byte of delivery tag v1 (single signature per envelope).
pub const TAG_V1: u8 = 1;
/// Version byte of delivery tag v2 (Merkle root signed per batch).
pub const TAG_V2: u8 = 2;
/// The version the service issues.
pub const TAG_VERSION: u8 = TAG_V2;
/// Domain-separation label prefixed to the bytes a v1 tag signature covers.
pub const TAG_SIGNATURE_LABEL: &[u8] = b"custos/v1/delivery-tag";
/// Domain-separation label of a v2 leaf hash (after the 0x00 leaf prefix).
pub const TAG_V2_LEAF_LABEL: &[u8] = b"custos/v2/delivery-tag";
/// Domain-separation label prefixed to the bytes a v2 root signature covers.
pub const TAG_V2_ROOT_LABEL: &[u8] = b"custos/v2/delivery-tag-root";
/// Most leaves in one signed tag batch; a larger writer batch is split.
pub const MAX_TAG_BATCH: u16 = 512;
/// Longest v2 path: `ceil(log2(MAX_TAG_BATCH))` hashes.
pub const MAX_TAG_PATH: usize = 9;
/// Largest encoding of the fields.
const MAX_FIELDS_LEN: usize = 32 + 16 + 1 + MAX_ACCOUNT_NAME + 8 + 32;
/// Largest encoded v1 tag.
pub const MAX_DELIVERY_TAG_V1_LEN: usize = 1 + MAX_FIELDS_LEN + 64;
/// Largest encoded v2 tag.
pub const MAX_DELIVERY_TAG_V2_LEN: usize = 1 + MAX_FIELDS_LEN + 8 + 2 + 2 + 32 * MAX_TAG_PATH + 64;
/// Largest encoded tag of any version.
pub const MAX_DELIVERY_TAG_LEN: usize = MAX_DELIVERY_TAG_V2_LEN;

/// The fields a delivery tag binds (everything but the signature and, for
/// v2, the tree position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFields {
    /// The envelope header's franking commitment.
    pub franking_commitment: [u8; 32],
    /// The conversation the envelope was submitted to.
    pub conversation: ConversationId,
    /// The authenticated sender account.
    pub sender: String,
    /// Acceptance time, Unix ms on the service clock.
    pub server_time: u64,
    /// SHA-256 of the envelope exactly as received.
    pub envelope_hash: [u8; 32],
}

/// A decoded v1 tag: one Ed25519 signature over its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTagV1 {
    /// What the tag binds.
    pub fields: TagFields,
    /// Ed25519 signature over [`DeliveryTagV1::signed_bytes`].
    pub signature: [u8; 64],
}

/// A decoded v2 tag: a leaf, its place in a signed batch, the path to the
/// root, and the root's signature. Decoding guarantees `batch_size` in
/// `1..=MAX_TAG_BATCH`, `leaf_index < batch_size` and a path of exactly the
/// RFC 9162 length for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTagV2 {
    /// What the tag binds (the leaf).
    pub fields: TagFields,
    /// The service's number of the signed batch.
    pub batch_id: u64,
    /// Number of leaves in the signed batch.
    pub batch_size: u16,
    /// Position of this leaf in the batch.
    pub leaf_index: u16,
    /// Inclusion path, leaf to root.
    pub path: Vec<[u8; 32]>,
    /// Ed25519 signature over [`root_signed_bytes`] of the batch.
    pub signature: [u8; 64],
}

/// A decoded delivery tag of either version. Decoding checks form only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryTag {
    /// Version 1 (read and verified, no longer issued).
    V1(DeliveryTagV1),
    /// Version 2 (issued).
    V2(DeliveryTagV2),
}

impl TagFields {
    fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.franking_commitment).raw(&self.conversation.0);
        write_account(w, &self.sender)?;
        w.u64(self.server_time).raw(&self.envelope_hash);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let franking_commitment = r.field("franking_commitment").array()?;
        let conversation = ConversationId(r.field("conversation").array()?);
        let sender = read_account(r)?.to_owned();
        let server_time = r.field("server_time").u64()?;
        let envelope_hash = r.field("envelope_hash").array()?;
        Ok(Self {
            franking_commitment,
            conversation,
            sender,
            server_time,
            envelope_hash,
        })
    }

    /// The bytes a v1 signature covers: [`TAG_SIGNATURE_LABEL`], the
    /// version byte 1, then these fields.
    pub fn signed_bytes_v1(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(TAG_SIGNATURE_LABEL.len() + MAX_DELIVERY_TAG_V1_LEN);
        w.raw(TAG_SIGNATURE_LABEL).u8(TAG_V1);
        self.write(&mut w)?;
        Ok(w.into_bytes())
    }

    /// The v2 leaf hash: `SHA-256(0x00 || TAG_V2_LEAF_LABEL || fields)`.
    /// Fails only if the sender is not a valid account name.
    pub fn leaf_hash(&self) -> Result<[u8; 32], WireError> {
        let mut w = Writer::with_capacity(1 + TAG_V2_LEAF_LABEL.len() + MAX_FIELDS_LEN);
        w.u8(merkle::LEAF_PREFIX).raw(TAG_V2_LEAF_LABEL);
        self.write(&mut w)?;
        Ok(Sha256::digest(w.as_slice()).into())
    }
}

/// The bytes a v2 root signature covers:
/// `TAG_V2_ROOT_LABEL || u64 batch_id || u16 batch_size || root`.
pub fn root_signed_bytes(batch_id: u64, batch_size: u16, root: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::with_capacity(TAG_V2_ROOT_LABEL.len() + 8 + 2 + 32);
    w.raw(TAG_V2_ROOT_LABEL)
        .u64(batch_id)
        .u16(batch_size)
        .raw(root);
    w.into_bytes()
}

/// Builds the v2 tags of one batch: the leaf hash of each entry of
/// `fields`, their tree, one signature by `sign` over
/// [`root_signed_bytes`]`(batch_id, size, root)`, and the path of each leaf.
/// The tags come back in the order of `fields`. Refuses an empty batch, one
/// of more than [`MAX_TAG_BATCH`] leaves, and an invalid sender name.
pub fn build_batch(
    batch_id: u64,
    fields: Vec<TagFields>,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Result<Vec<DeliveryTagV2>, WireError> {
    let batch_size = u16::try_from(fields.len())
        .ok()
        .filter(|n| (1..=MAX_TAG_BATCH).contains(n))
        .ok_or(WireError::InvalidValue {
            field: "batch_size",
            reason: "a tag batch holds 1 to 512 leaves",
        })?;
    let leaves = fields
        .iter()
        .map(TagFields::leaf_hash)
        .collect::<Result<Vec<_>, _>>()?;
    let tree = merkle::MerkleBatch::new(leaves).ok_or(WireError::InvalidValue {
        field: "batch_size",
        reason: "a tag batch holds 1 to 512 leaves",
    })?;
    let signature = sign(&root_signed_bytes(batch_id, batch_size, &tree.root()));
    Ok(fields
        .into_iter()
        .zip(0u16..)
        .map(|(fields, leaf_index)| DeliveryTagV2 {
            fields,
            batch_id,
            batch_size,
            leaf_index,
            path: tree.path(usize::from(leaf_index)),
            signature,
        })
        .collect())
}

impl DeliveryTagV1 {
    /// The bytes the signature covers; see [`TagFields::signed_bytes_v1`].
    pub fn signed_bytes(&self) -> Result<Vec<u8>, WireError> {
        self.fields.signed_bytes_v1()
    }
}

impl DeliveryTagV2 {
    /// The root this tag's leaf, index and path lead to. `None` only if the
    /// position is impossible (never for a decoded tag).
    pub fn root(&self) -> Result<Option<[u8; 32]>, WireError> {
        let leaf = self.fields.leaf_hash()?;
        Ok(merkle::root_from_path(
            u64::from(self.leaf_index),
            u64::from(self.batch_size),
            &leaf,
            &self.path,
        ))
    }
}

impl DeliveryTag {
    /// Decodes a canonical tag of version 1 or 2, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_DELIVERY_TAG_LEN {
            return Err(WireError::TooLong {
                field: "delivery_tag",
                max: MAX_DELIVERY_TAG_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let tag = match r.field("version").u8()? {
            TAG_V1 => {
                let fields = TagFields::read(&mut r)?;
                let signature = r.field("signature").array()?;
                Self::V1(DeliveryTagV1 { fields, signature })
            }
            TAG_V2 => Self::V2(read_v2(&mut r)?),
            version => {
                return Err(WireError::UnsupportedVersion {
                    format: "delivery tag",
                    version,
                    supported: TAG_VERSION,
                });
            }
        };
        r.finish()?;
        Ok(tag)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(MAX_DELIVERY_TAG_LEN);
        match self {
            Self::V1(t) => {
                w.u8(TAG_V1);
                t.fields.write(&mut w)?;
                w.raw(&t.signature);
            }
            Self::V2(t) => {
                check_position(t.leaf_index, t.batch_size, t.path.len())?;
                w.u8(TAG_V2);
                t.fields.write(&mut w)?;
                w.u64(t.batch_id).u16(t.batch_size).u16(t.leaf_index);
                for h in &t.path {
                    w.raw(h);
                }
                w.raw(&t.signature);
            }
        }
        Ok(w.into_bytes())
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        match self {
            Self::V1(_) => TAG_V1,
            Self::V2(_) => TAG_V2,
        }
    }

    /// What the tag binds.
    pub fn fields(&self) -> &TagFields {
        match self {
            Self::V1(t) => &t.fields,
            Self::V2(t) => &t.fields,
        }
    }
}

fn read_v2(r: &mut Reader<'_>) -> Result<DeliveryTagV2, WireError> {
    let fields = TagFields::read(r)?;
    let batch_id = r.field("batch_id").u64()?;
    let batch_size = r.field("batch_size").u16()?;
    let leaf_index = r.field("leaf_index").u16()?;
    let n = check_position(leaf_index, batch_size, None)?;
    let mut path = Vec::with_capacity(n);
    for _ in 0..n {
        path.push(r.field("path").array()?);
    }
    let signature = r.field("signature").array()?;
    Ok(DeliveryTagV2 {
        fields,
        batch_id,
        batch_size,
        leaf_index,
        path,
        signature,
    })
}

/// Checks a v2 position and returns its path length; with `path` given,
/// also checks that the path has that length.
fn check_position(
    leaf_index: u16,
    batch_size: u16,
    path: impl Into<Option<usize>>,
) -> Result<usize, WireError> {
    if batch_size == 0 || batch_size > MAX_TAG_BATCH {
        return Err(WireError::InvalidValue {
            field: "batch_size",
            reason: "a tag batch holds 1 to 512 leaves",
        });
    }
    let n = merkle::path_len(u64::from(leaf_index), u64::from(batch_size)).ok_or(
        WireError::InvalidValue {
            field: "leaf_index",
            reason: "the leaf index must be below the batch size",
        },
    )?;
    if path.into().is_some_and(|p| p != n) {
        return Err(WireError::InvalidValue {
            field: "path",
            reason: "the path length is fixed by the leaf index and the batch size",
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
