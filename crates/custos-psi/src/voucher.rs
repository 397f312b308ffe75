//! Safety vouchers: made on the device for every picture sent, opened by the
//! service only for listed hashes.
//!
//! Wire format (`docs/spec/psi.md`), fixed length for a given slot count:
//!
//! ```text
//! version  u8 = 1
//! root     [32]   the table the voucher was made against
//! slots    u8     (1..=16, the table's)
//! slots * (Q [32] canonical ristretto255 point, wrap0 [48], wrap1 [48])
//! outer    [OUTER_CT_LEN]  AES-256-GCM(K_outer, zero nonce, x || y || inner,
//!                          aad = every byte before `outer`)
//! ```
//!
//! For slot `i` with element `e = sample_i(y)`, the device picks `beta`,
//! `gamma` and sends `Q = beta*H(e) + gamma*G`; for each of `e`'s two cuckoo
//! positions `p_j` it wraps `K_outer` under `HKDF(beta*T[p_j] + gamma*L)`.
//! The service computes `alpha*Q`, which equals `beta*T[p_j] + gamma*L`
//! exactly when `T[p_j] = alpha*H(e)`, i.e. when `e` is listed.
//!
//! # Security meaning
//! - A voucher whose elements are not listed opens for nobody (the wrap keys
//!   are `beta*(T[p] - alpha*H(e))` away from what the service can compute,
//!   uniformly random to it).
//! - A synthetic voucher opens its outer layer on purpose (`Q = r*G`,
//!   `S = r*L`), carries a random share and random inner bytes, and is
//!   indistinguishable from a real match to the service below `T` (DDH, and
//!   Shamir's privacy).
//! - What the service learns from an opened voucher below `T`: that it opened,
//!   and which slots opened. Synthetic vouchers open a number of slots drawn
//!   from [`synthetic_open_count`] to hide the latter only approximately
//!   (`docs/design/0017-threshold-matching.md`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek_5::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek_5::scalar::Scalar;
use curve25519_dalek_5::traits::Identity;
use custos_wire::WireError;
use custos_wire::codec::{Reader, Writer};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::table::{BlindedTable, CheckedTable, ProviderSecret, hash_to_group, positions};
use crate::threshold::{AccountKey, OpenedShare, nonzero};
use crate::{INNER_CT_LEN, InnerPayload, OUTER_CT_LEN, OUTER_PLAIN_LEN};

/// Version byte of the voucher encoding.
pub const VOUCHER_VERSION: u8 = 1;
/// Bytes of one slot: `Q` and two wraps.
pub const SLOT_LEN: usize = 32 + 48 + 48;
/// Bytes before the slots.
const HEADER_LEN: usize = 1 + 32 + 1;

/// Length of a voucher with `slots` slots.
pub fn voucher_len(slots: u8) -> usize {
    HEADER_LEN + usize::from(slots) * SLOT_LEN + OUTER_CT_LEN
}

/// Largest voucher (16 slots).
pub const MAX_VOUCHER_LEN: usize = HEADER_LEN + 16 * SLOT_LEN + OUTER_CT_LEN;

/// Why a voucher was refused. A refused voucher is not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VoucherError {
    /// Not a canonical voucher encoding.
    #[error("malformed voucher: {0}")]
    Wire(#[from] WireError),
    /// The slot count is out of bounds, or the length does not fit it.
    #[error("voucher of {len} bytes does not fit its slot count {slots}")]
    Length {
        /// Bytes received.
        len: usize,
        /// Slots declared.
        slots: u8,
    },
    /// A `Q` is not a canonical ristretto255 point.
    #[error("voucher slot {0}: Q is not a canonical ristretto255 point")]
    BadPoint(usize),
    /// The voucher was made against another table.
    #[error(
        "voucher made against table {found}, but the current table is {current}: fetch the current table"
    )]
    WrongTable {
        /// The voucher's root.
        found: String,
        /// The service's root.
        current: String,
    },
    /// The slot count is not the table's.
    #[error("voucher has {found} slots, the table {expected}")]
    WrongSlots {
        /// In the voucher.
        found: u8,
        /// In the table.
        expected: u8,
    },
}

/// One slot of a voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    q: [u8; 32],
    /// `q` decompressed once, at decoding (the service multiplies it).
    point: RistrettoPoint,
    wraps: [[u8; 48]; 2],
}

/// A parsed, canonical voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    root: [u8; 32],
    slots: Vec<Slot>,
    outer: Vec<u8>,
}

impl Voucher {
    /// Decodes a voucher: fixed length for its slot count, every `Q` a
    /// canonical point.
    pub fn decode(bytes: &[u8]) -> Result<Self, VoucherError> {
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != VOUCHER_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "voucher",
                version,
                supported: VOUCHER_VERSION,
            }
            .into());
        }
        let root = r.field("root").array::<32>()?;
        let n = r.field("slots").u8()?;
        if n == 0 || n > crate::table::MAX_SLOTS || bytes.len() != voucher_len(n) {
            return Err(VoucherError::Length {
                len: bytes.len(),
                slots: n,
            });
        }
        let mut slots = Vec::with_capacity(usize::from(n));
        for i in 0..usize::from(n) {
            let q = r.field("q").array::<32>()?;
            let Some(point) = CompressedRistretto(q).decompress() else {
                return Err(VoucherError::BadPoint(i));
            };
            let w0 = r.field("wrap").array::<48>()?;
            let w1 = r.field("wrap").array::<48>()?;
            slots.push(Slot {
                q,
                point,
                wraps: [w0, w1],
            });
        }
        let outer = r.field("outer").take(OUTER_CT_LEN)?.to_vec();
        r.finish()?;
        Ok(Self { root, slots, outer })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAX_VOUCHER_LEN);
        self.write_header(&mut w);
        w.raw(&self.outer);
        w.into_bytes()
    }

    /// The table root the voucher was made against.
    pub fn root(&self) -> &[u8; 32] {
        &self.root
    }

    fn write_header(&self, w: &mut Writer) {
        w.u8(VOUCHER_VERSION)
            .raw(&self.root)
            .u8(u8::try_from(self.slots.len()).unwrap_or(u8::MAX));
        for s in &self.slots {
            w.raw(&s.q).raw(&s.wraps[0]).raw(&s.wraps[1]);
        }
    }

    fn aad(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAX_VOUCHER_LEN);
        self.write_header(&mut w);
        w.into_bytes()
    }
}

/// Whether the device makes this picture's voucher synthetic: true with
/// probability `rate_ppm` parts per million.
pub fn choose_synthetic<R: RngCore>(rate_ppm: u32, rng: &mut R) -> bool {
    (rng.next_u32() % 1_000_000) < rate_ppm.min(1_000_000)
}

/// How many slots a synthetic voucher opens: all of them half of the time
/// (as an exact copy of a listed picture does), otherwise 1 to `slots - 1`
/// uniformly (as modified pictures do).
pub fn synthetic_open_count<R: RngCore>(slots: u8, rng: &mut R) -> u8 {
    if slots <= 1 || rng.next_u32().is_multiple_of(2) {
        return slots.max(1);
    }
    1 + (rng.next_u32() % u32::from(slots - 1)) as u8
}

/// The device: a voucher for a picture with PDQ hash `payload.hash`, real
/// (a share of `account`, the inner layer sealed under the account's inner
/// key) or synthetic (opens for the service, carries nothing).
pub fn make_voucher<R: RngCore + CryptoRng>(
    table: &CheckedTable,
    account: &AccountKey,
    payload: &InnerPayload,
    synthetic: bool,
    rng: &mut R,
) -> Voucher {
    let t = table.table();
    let root = *table.root();
    let mut k_outer = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(k_outer.as_mut());
    let n = t.slots();
    let mut slots = Vec::with_capacity(usize::from(n));
    let open_synthetic = if synthetic {
        let k = synthetic_open_count(n, rng);
        let mut order: Vec<u8> = (0..n).collect();
        for i in 0..order.len() {
            let j = i + (rng.next_u32() as usize) % (order.len() - i);
            order.swap(i, j);
        }
        order.truncate(usize::from(k));
        order
    } else {
        Vec::new()
    };
    for i in 0..usize::from(n) {
        let slot_byte = u8::try_from(i).unwrap_or(u8::MAX);
        if synthetic {
            let mut wraps = [[0u8; 48]; 2];
            rng.fill_bytes(&mut wraps[0]);
            rng.fill_bytes(&mut wraps[1]);
            let (point, q) = if open_synthetic.contains(&slot_byte) {
                let r = nonzero(rng);
                let point = RistrettoPoint::mul_base(&r);
                let q = point.compress();
                let s = table.public_table.mul(&r).compress();
                let j = (rng.next_u32() % 2) as usize;
                if let Some(w) = wraps.get_mut(j) {
                    *w = wrap(&s, &root, slot_byte, j as u8, &q.0, &k_outer);
                }
                (point, q)
            } else {
                let point = crate::curve::random_point(rng);
                (point, point.compress())
            };
            slots.push(Slot {
                q: q.0,
                point,
                wraps,
            });
            continue;
        }
        let Some(element) = table.sampler.element(i, &payload.hash) else {
            continue;
        };
        let beta = nonzero(rng);
        let gamma = nonzero(rng);
        let h = hash_to_group(t.seed(), &element);
        let point = beta * h + RistrettoPoint::mul_base(&gamma);
        let q = point.compress();
        let gl = table.public_table.mul(&gamma);
        let pos = positions(t.seed(), &element, t.bucket_count());
        let mut wraps = [[0u8; 48]; 2];
        for (j, p) in pos.iter().enumerate() {
            let bucket = t.bucket(*p).copied().unwrap_or_default();
            let s = (beta * bucket + gl).compress();
            if let Some(w) = wraps.get_mut(j) {
                *w = wrap(&s, &root, slot_byte, j as u8, &q.0, &k_outer);
            }
        }
        slots.push(Slot {
            q: q.0,
            point,
            wraps,
        });
    }
    let (x, y, inner) = if synthetic {
        let mut inner = [0u8; INNER_CT_LEN];
        rng.fill_bytes(&mut inner);
        (nonzero(rng), crate::curve::random_scalar(rng), inner)
    } else {
        let (x, y) = account.share(rng);
        let inner = account.inner_key().seal(&x, payload, rng);
        (x, y, inner)
    };
    let mut voucher = Voucher {
        root,
        slots,
        outer: Vec::new(),
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(OUTER_PLAIN_LEN));
    plain.extend_from_slice(x.as_bytes());
    plain.extend_from_slice(y.as_bytes());
    plain.extend_from_slice(&inner);
    let aad = voucher.aad();
    voucher.outer = Aes256Gcm::new(&(*k_outer).into())
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: plain.as_slice(),
                aad: &aad,
            },
        )
        .unwrap_or_default();
    voucher
}

/// The service's side of a table: its secret and the table's root.
pub struct ServiceTable {
    /// `alpha / 2`: the service multiplies each `Q` by it and compresses
    /// the doubles of all slots in one batch (one field inversion per
    /// voucher instead of one per slot), which gives `alpha*Q` encoded.
    half_secret: Scalar,
    root: [u8; 32],
    slots: u8,
}

impl Drop for ServiceTable {
    fn drop(&mut self) {
        self.half_secret.zeroize();
    }
}

impl std::fmt::Debug for ServiceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceTable(root {})", hex::encode(self.root))
    }
}

/// What the service got from one voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The share and inner layer.
    pub share: OpenedShare,
    /// How many slots opened (see the module's security note).
    pub slots_opened: u8,
}

impl ServiceTable {
    /// The service's side of `table`, built with `secret`; `None` if the
    /// secret is not the table's (`L != alpha*G`).
    pub fn new(secret: ProviderSecret, table: &BlindedTable) -> Option<Self> {
        if RistrettoPoint::mul_base(secret.scalar()) != *table.public() {
            return None;
        }
        let half_secret = secret.scalar() * Scalar::from(2u8).invert();
        Some(Self {
            root: table.root(),
            slots: table.slots(),
            half_secret,
        })
    }

    /// The table's root.
    pub fn root(&self) -> &[u8; 32] {
        &self.root
    }

    /// Checks a voucher against this table and opens its outer layer if any
    /// slot's element is listed (or the voucher is synthetic). `Ok(None)`:
    /// not a match, and nothing is learnt from it.
    pub fn open(&self, voucher: &Voucher) -> Result<Option<Opened>, VoucherError> {
        if voucher.root != self.root {
            return Err(VoucherError::WrongTable {
                found: hex::encode(voucher.root),
                current: hex::encode(self.root),
            });
        }
        let n = u8::try_from(voucher.slots.len()).unwrap_or(u8::MAX);
        if n != self.slots {
            return Err(VoucherError::WrongSlots {
                found: n,
                expected: self.slots,
            });
        }
        let mut k_outer: Option<Zeroizing<[u8; 32]>> = None;
        let mut slots_opened = 0u8;
        // Every slot costs the same whether or not it opens: one scalar
        // multiplication, its share of one batched encoding, and the HKDF
        // and AES-GCM tag check of each wrap until one opens.
        let halves: Vec<RistrettoPoint> = voucher
            .slots
            .iter()
            .map(|slot| self.half_secret * slot.point)
            .collect();
        let shared = shared_encodings(&halves);
        for (i, (slot, s)) in voucher.slots.iter().zip(shared.iter()).enumerate() {
            let slot_byte = u8::try_from(i).unwrap_or(u8::MAX);
            let hk = Hkdf::<Sha256>::new(None, s.as_bytes());
            for (j, w) in slot.wraps.iter().enumerate() {
                if let Some(k) = unwrap(&hk, &self.root, slot_byte, j as u8, &slot.q, w) {
                    slots_opened += 1;
                    k_outer.get_or_insert(k);
                    break;
                }
            }
        }
        let Some(k) = k_outer else {
            return Ok(None);
        };
        let aad = voucher.aad();
        let Ok(plain) = Aes256Gcm::new(&(*k).into()).decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: &voucher.outer,
                aad: &aad,
            },
        ) else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        Ok(OpenedShare::from_bytes(&plain).map(|share| Opened {
            share,
            slots_opened,
        }))
    }
}

/// The encodings of `2*P` for every `P` of `halves` (one field inversion
/// for the batch). The identity has no batched encoding (its
/// denominator is zero), so a batch holding it is encoded point by point;
/// only a voucher that sends the identity as `Q` takes that path.
fn shared_encodings(halves: &[RistrettoPoint]) -> Vec<CompressedRistretto> {
    if halves.iter().any(|p| *p == RistrettoPoint::identity()) {
        return halves.iter().map(|p| (p + p).compress()).collect();
    }
    RistrettoPoint::double_and_compress_batch(halves)
}

fn wrap_key(
    hk: &Hkdf<Sha256>,
    root: &[u8; 32],
    slot: u8,
    j: u8,
    q: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand_multi_info(
        &[b"custos/v1/psi/wrap".as_slice(), root, &[slot, j], q],
        k.as_mut(),
    );
    k
}

fn wrap(
    s: &CompressedRistretto,
    root: &[u8; 32],
    slot: u8,
    j: u8,
    q: &[u8; 32],
    k_outer: &[u8; 32],
) -> [u8; 48] {
    let key = wrap_key(&Hkdf::<Sha256>::new(None, s.as_bytes()), root, slot, j, q);
    let ct = Aes256Gcm::new(&(*key).into())
        .encrypt(Nonce::from_slice(&[0u8; 12]), k_outer.as_slice())
        .unwrap_or_default();
    let mut out = [0u8; 48];
    for (o, b) in out.iter_mut().zip(ct.iter()) {
        *o = *b;
    }
    out
}

fn unwrap(
    hk: &Hkdf<Sha256>,
    root: &[u8; 32],
    slot: u8,
    j: u8,
    q: &[u8; 32],
    w: &[u8; 48],
) -> Option<Zeroizing<[u8; 32]>> {
    let key = wrap_key(hk, root, slot, j, q);
    let plain = Zeroizing::new(
        Aes256Gcm::new(&(*key).into())
            .decrypt(Nonce::from_slice(&[0u8; 12]), w.as_slice())
            .ok()?,
    );
    let mut k = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return None;
    }
    k.copy_from_slice(&plain);
    Some(k)
}

#[cfg(test)]
mod batch_tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]
    use super::*;

    /// The batched encoding of `2 * (alpha/2) * Q` is the encoding of
    /// `alpha * Q`, the identity included.
    #[test]
    fn batched_shared_points_equal_single_ones() {
        let mut rng = rand_core::OsRng;
        let alpha = crate::curve::random_scalar(&mut rng);
        let half = alpha * Scalar::from(2u8).invert();
        for with_identity in [false, true] {
            let mut qs: Vec<RistrettoPoint> = (0..6)
                .map(|_| crate::curve::random_point(&mut rng))
                .collect();
            if with_identity {
                qs[2] = RistrettoPoint::identity();
            }
            let halves: Vec<RistrettoPoint> = qs.iter().map(|q| half * q).collect();
            let single: Vec<CompressedRistretto> =
                qs.iter().map(|q| (alpha * q).compress()).collect();
            assert_eq!(shared_encodings(&halves), single);
        }
    }
}
