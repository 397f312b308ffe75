//! Threshold private set intersection over PDQ hashes, in the manner of the
//! Apple PSI system (Bhowmick, Boneh, Myers, Talwar, Tarbe, 2021).
//!
//! Parties and what each does here:
//! - The **provider's tooling** builds a [`BlindedTable`] from listed PDQ
//!   hashes whose entries two independent organisations signed
//!   ([`build_table`]); its root goes in the transparency log.
//! - A **device** checks the table against the log and the manifest
//!   ([`BlindedTable::check`]) and makes a [`Voucher`] for every picture it
//!   sends ([`make_voucher`]), real or, at the manifest's rate, synthetic.
//! - The **service** opens a voucher's outer layer only when one of the
//!   picture's samples is listed (or the voucher is synthetic)
//!   ([`ServiceTable::open`]); once an account has `T` real opened shares
//!   it reconstructs the account's inner key ([`reconstruct`]) and opens the
//!   real vouchers' inner layers: the picture's PDQ hash and a 32x32 grey
//!   derivative for human review ([`InnerKey::open`]).
//!
//! What this crate guarantees:
//! - Below `T` real matches, the service cannot open any inner layer, and
//!   cannot tell a real match from a synthetic voucher (DDH on ristretto255,
//!   Shamir privacy, AES-256-GCM). It does learn how many vouchers opened,
//!   and per voucher how many slots opened (see `voucher`).
//! - Every table and voucher byte is parsed by a bounded, canonical decoder
//!   with typed refusals ([`TableError`], [`VoucherError`]).
//! - A device makes vouchers only against a [`CheckedTable`]: root, size,
//!   samples and organisations as logged, every entry signed by both
//!   organisations.
//!
//! What it does not do: no I/O; it does not decide what to do with a match
//! (human review, in the service) and does not make PDQ hashes (`custos-media`).
//! Matching is by sampled bits, not by full Hamming distance: the rates are
//! measured in `docs/design/0017-threshold-matching.md`.
#![forbid(unsafe_code)]

mod curve;
pub mod list;
mod sample;
pub mod table;
pub mod threshold;
pub mod voucher;

pub use sample::Sampler;
pub use table::{
    BlindedTable, CheckedTable, ListEntry, ListedHash, LoggedList, ProviderSecret, TableError,
    TableParams, build_table, entry_commitment, sign_entry,
};
pub use threshold::{AccountKey, AccountKeyError, InnerKey, OpenedShare, reconstruct};
pub use voucher::{
    Opened, ServiceTable, Voucher, VoucherError, choose_synthetic, make_voucher, voucher_len,
};

/// Default samples per hash (the design note's measured choice).
pub const DEFAULT_SLOTS: u8 = 4;
/// Default bits per sample.
pub const DEFAULT_SAMPLE_BITS: u8 = 40;
/// Default threshold `T` (issue 15; the manifest may set another).
pub const DEFAULT_THRESHOLD: u16 = 10;

/// Side of the review derivative, in pixels.
pub const DERIVATIVE_SIDE: usize = 32;
/// Bytes of the review derivative (8-bit grey).
pub const DERIVATIVE_LEN: usize = DERIVATIVE_SIDE * DERIVATIVE_SIDE;
/// Version byte inside the inner layer.
pub const INNER_VERSION: u8 = 1;
/// Inner plaintext: version, PDQ hash, derivative.
pub const INNER_PLAIN_LEN: usize = 1 + 32 + DERIVATIVE_LEN;
/// Inner layer: nonce, ciphertext, tag.
pub const INNER_CT_LEN: usize = 12 + INNER_PLAIN_LEN + 16;
/// Outer plaintext: share `x`, `y`, inner layer.
pub const OUTER_PLAIN_LEN: usize = 64 + INNER_CT_LEN;
/// Outer layer: ciphertext and tag (zero nonce, single-use key).
pub const OUTER_CT_LEN: usize = OUTER_PLAIN_LEN + 16;

/// What the inner layer carries for review: the sending device's PDQ hash of
/// the picture and its low-resolution grey derivative.
#[derive(Clone, PartialEq, Eq)]
pub struct InnerPayload {
    /// The picture's PDQ hash, as the device computed it.
    pub hash: [u8; 32],
    /// 32x32 8-bit grey, row-major.
    pub derivative: [u8; DERIVATIVE_LEN],
}

impl std::fmt::Debug for InnerPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InnerPayload(hash {})", hex::encode(self.hash))
    }
}

/// The review derivative of an RGB picture: 32x32 grey, each pixel the mean
/// luma (BT.601 integer weights) of its box. `None` if `rgb` is not
/// `width * height * 3` bytes or a side is zero.
pub fn derivative(width: u32, height: u32, rgb: &[u8]) -> Option<[u8; DERIVATIVE_LEN]> {
    let (w, h) = (usize::try_from(width).ok()?, usize::try_from(height).ok()?);
    if w == 0 || h == 0 || rgb.len() != w.checked_mul(h)?.checked_mul(3)? {
        return None;
    }
    let mut out = [0u8; DERIVATIVE_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let (dy, dx) = (i / DERIVATIVE_SIDE, i % DERIVATIVE_SIDE);
        let (y0, y1) = (
            dy * h / DERIVATIVE_SIDE,
            ((dy + 1) * h).div_ceil(DERIVATIVE_SIDE),
        );
        let (x0, x1) = (
            dx * w / DERIVATIVE_SIDE,
            ((dx + 1) * w).div_ceil(DERIVATIVE_SIDE),
        );
        let (mut sum, mut count) = (0u64, 0u64);
        for y in y0..y1.min(h) {
            let row = rgb.get(y * w * 3..(y + 1) * w * 3)?;
            for px in row.get(x0 * 3..x1.min(w) * 3)?.chunks_exact(3) {
                let [r, g, b] = [px.first()?, px.get(1)?, px.get(2)?].map(|v| u64::from(*v));
                sum += (299 * r + 587 * g + 114 * b) / 1000;
                count += 1;
            }
        }
        *o = u8::try_from(sum / count.max(1)).unwrap_or(u8::MAX);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
