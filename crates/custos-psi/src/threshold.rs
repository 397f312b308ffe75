//! The account's inner key, its Shamir shares, and the service's
//! reconstruction once it holds enough real shares.
//!
//! Sharing is over the ristretto255 scalar field: a polynomial `p` of degree
//! `T - 1` with `p(0) = a0`, the account's secret; a real voucher carries the
//! share `(x, p(x))` at a fresh random `x`, a synthetic one a random pair.
//! Interpolation at zero is Lagrange's formula on `curve25519_dalek_5::Scalar`
//! (constant-time field arithmetic from the curve crate; see the design note
//! for why no secret-sharing crate is used).
//!
//! # Security meaning
//! - Fewer than `T` real shares say nothing about `a0` (Shamir), and a
//!   synthetic share is a uniformly random pair, as is a real one to anyone
//!   without `T - 1` other real shares: below `T` the service cannot tell
//!   them apart nor count the real ones.
//! - The inner layer is AES-256-GCM under `HKDF(a0, "custos/v1/psi/inner")`,
//!   bound to the share's `x`: once the service has reconstructed `a0` it
//!   opens every real voucher of the account (and tells synthetic ones apart,
//!   since their inner layer does not open), including later ones. This is
//!   what the service learns at and after the threshold.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek_5::scalar::Scalar;
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::{DERIVATIVE_LEN, INNER_CT_LEN, INNER_PLAIN_LEN, InnerPayload};

/// Most threshold a table may require.
pub const MAX_THRESHOLD: u16 = 1000;

/// The account's sharing polynomial; held by the device only. Zeroized on drop.
pub struct AccountKey {
    coefficients: Vec<Scalar>,
}

impl Drop for AccountKey {
    fn drop(&mut self) {
        self.coefficients.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountKey(threshold {})", self.coefficients.len())
    }
}

/// Why an account key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountKeyError {
    /// Length is not a whole number of scalars, or the threshold is out of bounds.
    #[error("account key file has a bad length or threshold")]
    Length,
    /// A coefficient is not a canonical scalar.
    #[error("account key file holds a non-canonical scalar")]
    Scalar,
}

impl AccountKey {
    /// A fresh polynomial for `threshold` (1 to [`MAX_THRESHOLD`]).
    pub fn generate<R: RngCore + CryptoRng>(threshold: u16, rng: &mut R) -> Option<Self> {
        if threshold == 0 || threshold > MAX_THRESHOLD {
            return None;
        }
        Some(Self {
            coefficients: (0..threshold)
                .map(|_| crate::curve::random_scalar(rng))
                .collect(),
        })
    }

    /// The threshold `T` this key was made for.
    pub fn threshold(&self) -> u16 {
        u16::try_from(self.coefficients.len()).unwrap_or(u16::MAX)
    }

    /// The coefficients' bytes, for the device's own key file.
    pub fn expose_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            self.coefficients
                .iter()
                .flat_map(|c| c.to_bytes())
                .collect(),
        )
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccountKeyError> {
        if bytes.is_empty()
            || !bytes.len().is_multiple_of(32)
            || bytes.len() / 32 > MAX_THRESHOLD as usize
        {
            return Err(AccountKeyError::Length);
        }
        let mut coefficients = Vec::with_capacity(bytes.len() / 32);
        for chunk in bytes.chunks_exact(32) {
            let mut b = [0u8; 32];
            b.copy_from_slice(chunk);
            let s: Option<Scalar> = Scalar::from_canonical_bytes(b).into();
            coefficients.push(s.ok_or(AccountKeyError::Scalar)?);
        }
        Ok(Self { coefficients })
    }

    /// A real share at a fresh random point.
    pub(crate) fn share<R: RngCore + CryptoRng>(&self, rng: &mut R) -> (Scalar, Scalar) {
        let x = nonzero(rng);
        let y = self
            .coefficients
            .iter()
            .rev()
            .fold(Scalar::ZERO, |acc, c| acc * x + c);
        (x, y)
    }

    /// The inner key.
    pub(crate) fn inner_key(&self) -> InnerKey {
        InnerKey::from_secret(self.coefficients.first().copied().unwrap_or(Scalar::ZERO))
    }
}

/// The key of an account's inner layers: known to the device, and to the
/// service once it has `T` real shares. Zeroized on drop.
pub struct InnerKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for InnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InnerKey(..)")
    }
}

impl InnerKey {
    fn from_secret(mut a0: Scalar) -> Self {
        let hk = Hkdf::<Sha256>::new(None, a0.as_bytes());
        a0.zeroize();
        let mut k = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(b"custos/v1/psi/inner", k.as_mut());
        Self(k)
    }

    /// The key's bytes, for the service's store of reconstructed keys.
    pub fn expose_bytes(&self) -> [u8; 32] {
        *self.0
    }

    /// A key from stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn seal<R: RngCore + CryptoRng>(
        &self,
        x: &Scalar,
        payload: &InnerPayload,
        rng: &mut R,
    ) -> [u8; INNER_CT_LEN] {
        let mut plain = Zeroizing::new(Vec::with_capacity(INNER_PLAIN_LEN));
        plain.push(crate::INNER_VERSION);
        plain.extend_from_slice(&payload.hash);
        plain.extend_from_slice(&payload.derivative);
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let ct = Aes256Gcm::new(&(*self.0).into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_slice(),
                    aad: x.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = [0u8; INNER_CT_LEN];
        for (o, b) in out.iter_mut().zip(nonce.iter().chain(ct.iter())) {
            *o = *b;
        }
        out
    }

    /// Opens an inner layer; `None` for a synthetic voucher (or a wrong key).
    pub fn open(&self, share: &OpenedShare) -> Option<InnerPayload> {
        let (nonce, ct) = share.inner.split_at(12);
        let plain = Zeroizing::new(
            Aes256Gcm::new(&(*self.0).into())
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: &share.x,
                    },
                )
                .ok()?,
        );
        if plain.len() != INNER_PLAIN_LEN || plain.first() != Some(&crate::INNER_VERSION) {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(plain.get(1..33)?);
        let mut derivative = [0u8; DERIVATIVE_LEN];
        derivative.copy_from_slice(plain.get(33..)?);
        Some(InnerPayload { hash, derivative })
    }
}

/// What opening a voucher's outer layer gives the service: a share and the
/// sealed inner layer. Real and synthetic ones look alike below `T`.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedShare {
    /// The share's point `x` (canonical scalar bytes).
    pub x: [u8; 32],
    /// The share's value `y`.
    pub y: [u8; 32],
    /// The inner layer.
    pub inner: [u8; INNER_CT_LEN],
}

impl std::fmt::Debug for OpenedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenedShare(x = {})", hex::encode(self.x))
    }
}

impl OpenedShare {
    /// The stored form: `x || y || inner`.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.x.as_slice(), &self.y, &self.inner].concat()
    }

    /// From the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 64 + INNER_CT_LEN {
            return None;
        }
        let mut s = Self {
            x: [0; 32],
            y: [0; 32],
            inner: [0; INNER_CT_LEN],
        };
        s.x.copy_from_slice(bytes.get(..32)?);
        s.y.copy_from_slice(bytes.get(32..64)?);
        s.inner.copy_from_slice(bytes.get(64..)?);
        Some(s)
    }
}

/// The service's attempt at the threshold: with at least `threshold` opened
/// shares, tries subsets of `threshold` of them (at most `max_tries`, chosen
/// by `rng`; every subset when there are few enough) and returns the inner key
/// when one subset interpolates to a key that opens the inner layer of one of
/// its shares. `None` means fewer than `threshold` real shares (or bad luck
/// within `max_tries` when synthetic shares are many; a later attempt with
/// more shares tries again).
pub fn reconstruct<R: RngCore>(
    shares: &[OpenedShare],
    threshold: u16,
    max_tries: u32,
    rng: &mut R,
) -> Option<InnerKey> {
    let t = usize::from(threshold);
    if t == 0 || shares.len() < t {
        return None;
    }
    let points: Vec<(Scalar, Scalar)> = shares
        .iter()
        .filter_map(|s| {
            let x: Option<Scalar> = Scalar::from_canonical_bytes(s.x).into();
            let y: Option<Scalar> = Scalar::from_canonical_bytes(s.y).into();
            Some((x?, y?))
        })
        .collect();
    if points.len() != shares.len() {
        return None;
    }
    let try_subset = |idx: &[usize]| -> Option<InnerKey> {
        let subset: Vec<(Scalar, Scalar)> =
            idx.iter().filter_map(|&i| points.get(i).copied()).collect();
        let a0 = interpolate_at_zero(&subset)?;
        let key = InnerKey::from_secret(a0);
        let first = shares.get(*idx.first()?)?;
        key.open(first).map(|_| key)
    };
    let n = shares.len();
    if binomial_at_most(n, t, u64::from(max_tries)) {
        // Every subset, in lexicographic order.
        let mut idx: Vec<usize> = (0..t).collect();
        loop {
            if let Some(k) = try_subset(&idx) {
                return Some(k);
            }
            let mut i = t;
            loop {
                if i == 0 {
                    return None;
                }
                i -= 1;
                if idx.get(i).copied()? < n - t + i {
                    break;
                }
            }
            let base = idx.get(i).copied()? + 1;
            for (k, v) in idx.iter_mut().enumerate().skip(i) {
                *v = base + (k - i);
            }
        }
    }
    for _ in 0..max_tries {
        // A random subset (partial Fisher-Yates).
        let mut all: Vec<usize> = (0..n).collect();
        for k in 0..t {
            let j = k + (rng.next_u64() % (n - k) as u64) as usize;
            all.swap(k, j);
        }
        if let Some(k) = try_subset(all.get(..t)?) {
            return Some(k);
        }
    }
    None
}

fn interpolate_at_zero(points: &[(Scalar, Scalar)]) -> Option<Scalar> {
    let mut acc = Scalar::ZERO;
    for (i, (xi, yi)) in points.iter().enumerate() {
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, (xj, _)) in points.iter().enumerate() {
            if i != j {
                if xi == xj {
                    return None;
                }
                num *= xj;
                den *= xj - xi;
            }
        }
        acc += yi * num * den.invert();
    }
    Some(acc)
}

fn binomial_at_most(n: usize, k: usize, limit: u64) -> bool {
    let mut c: u128 = 1;
    for i in 0..k.min(n - k) {
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > u128::from(limit) {
            return false;
        }
    }
    true
}

pub(crate) fn nonzero<R: RngCore + CryptoRng>(rng: &mut R) -> Scalar {
    loop {
        let s = crate::curve::random_scalar(rng);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn threshold_shares_interpolate() {
        let key = AccountKey::generate(5, &mut OsRng).unwrap();
        let shares: Vec<(Scalar, Scalar)> = (0..5).map(|_| key.share(&mut OsRng)).collect();
        assert_eq!(interpolate_at_zero(&shares).unwrap(), key.coefficients[0]);
        assert_ne!(
            interpolate_at_zero(&shares[..4]).unwrap(),
            key.coefficients[0]
        );
        let back = AccountKey::from_bytes(&key.expose_bytes()).unwrap();
        assert_eq!(back.coefficients, key.coefficients);
    }

    #[test]
    fn binomial_bound() {
        assert!(binomial_at_most(10, 10, 1));
        assert!(binomial_at_most(12, 10, 66));
        assert!(!binomial_at_most(12, 10, 65));
        assert!(!binomial_at_most(100, 10, 1_000_000));
    }
}
