//! PDQ hashes, their quality and their Hamming distance.

use image::RgbImage;

/// Bytes in a PDQ hash (256 bits).
pub const HASH_LEN: usize = 32;

/// A 256-bit PDQ hash, in the reference's byte order (its 64-digit hex form
/// is the one Meta's tools print and hash lists carry).
///
/// Similar pictures have hashes a small Hamming distance apart; the hash
/// reveals a coarse outline of the picture, so it is as sensitive as a
/// thumbnail and must not leave the device in the clear.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PdqHash([u8; HASH_LEN]);

impl PdqHash {
    /// A hash from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// The hash's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// A hash from its 64 hex digits (either case); `None` if malformed.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }

    /// The 64 lower-case hex digits of the hash.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Hamming distance: the number of bits in which two hashes differ
    /// (0 to 256). The reference calls two pictures the same at 31 or less.
    pub fn distance(&self, other: &PdqHash) -> u32 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }
}

impl std::fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PdqHash({})", self.to_hex())
    }
}

/// PDQ quality, 0 to 100: how much gradient the picture has. Hashes of
/// quality below [`crate::MIN_QUALITY`] (flat, featureless pictures) match
/// too easily and are not used for matching.
///
/// `pdqhash` sums the gradients without the reference's truncation of each
/// term to a whole percent, so for pictures with faint gradients this value
/// can be a little higher than the reference's; both reach 100 on ordinary
/// photographs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quality(u8);

impl Quality {
    /// The quality, 0 to 100.
    pub const fn value(&self) -> u8 {
        self.0
    }
}

/// A picture's PDQ hash with its quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashed {
    /// The 256-bit hash.
    pub hash: PdqHash,
    /// Its quality.
    pub quality: Quality,
}

/// PDQ of a bounded RGB picture, by `pdqhash`'s full-size path (the one
/// that is bit-exact with the Java reference; its downscaling path is not).
pub(crate) fn pdq(rgb: &RgbImage) -> Hashed {
    let (width, height) = rgb.dimensions();
    // `pdqhash` takes the `image` 0.23 type; same layout, one copy.
    let old = pdqhash::image::RgbImage::from_raw(width, height, rgb.as_raw().clone());
    let (bytes, quality) = match old {
        Some(img) => pdqhash::generate_pdq_full_size(&pdqhash::image::DynamicImage::ImageRgb8(img)),
        // Unreachable: the buffer is exactly width x height x 3 bytes.
        None => ([0u8; HASH_LEN], 0.0),
    };
    // The reference reports quality as an integer percentage.
    let percent = (quality.clamp(0.0, 1.0) * 100.0) as u8;
    Hashed {
        hash: PdqHash(bytes),
        quality: Quality(percent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_distance() {
        let a = PdqHash::from_hex(&"f0".repeat(32)).unwrap();
        let b = PdqHash::from_hex(&"0f".repeat(32)).unwrap();
        assert_eq!(a.to_hex(), "f0".repeat(32));
        assert_eq!(a.distance(&b), 256);
        assert_eq!(a.distance(&a), 0);
        assert!(PdqHash::from_hex("f0").is_none());
        assert!(PdqHash::from_hex(&"zz".repeat(32)).is_none());
    }
}
