//! Pictures on the device: bounded decoding and Meta's PDQ perceptual hash.
//!
//! What this crate guarantees:
//! - [`decode`] reads JPEG and PNG only (no other codec is compiled in), and
//!   refuses, with a typed [`DecodeError`], any file whose declared dimensions
//!   exceed [`MAX_SIDE`] or [`MAX_PIXELS`], or whose decoding would allocate
//!   more than [`MAX_DECODE_ALLOC`] bytes, before the pixels are allocated: a
//!   hostile file cannot exhaust the device's memory. A [`Picture`] can only be
//!   built by a checking function, so every hashed picture is within bounds.
//! - [`hash`] computes the 256-bit PDQ hash and its quality as Meta's Java
//!   reference does (bit-exact on Meta's published vector; see
//!   `docs/design/0015-perceptual-hashing.md` for the crate chosen and the
//!   measured distance to the C++ reference).
//! - [`dihedral_hashes`] hashes the 8 rotations and flips of a picture, so a
//!   listed picture is found however it was turned.
//! - [`MatchRule`] is the reference match rule: Hamming distance at most
//!   [`MATCH_THRESHOLD`] (31 bits) and quality at least [`MIN_QUALITY`].
//!
//! What it does not do: it reads no file and sends nothing; it does not apply
//! EXIF orientation (the hash is of the stored pixel grid; the dihedral
//! variants cover turned pictures); and a perceptual hash is not a
//! cryptographic one: different pictures can be made to collide on purpose
//! (see `docs/threat-model.md`), so a match is a reason for human review,
//! never a verdict.
#![forbid(unsafe_code)]

mod dihedral;
mod hash;
pub mod synthetic;

pub use dihedral::Dihedral;
pub use hash::{HASH_LEN, Hashed, PdqHash, Quality};

use image::{ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// Largest width or height accepted, in pixels: larger pictures are refused
/// before their pixels are allocated.
pub const MAX_SIDE: u32 = 16_384;
/// Largest number of pixels accepted (24 megapixels). Hashing needs about
/// 14 bytes per pixel at its peak (the RGB pixels, one copy of them for the
/// hasher, two `f32` luma planes), so this bounds the memory a picture can
/// take to about 340 MB.
pub const MAX_PIXELS: u64 = 24_000_000;
/// Most bytes the decoder may allocate for one picture (4 bytes per pixel of
/// the largest accepted picture): 16-bit or RGBA pictures near the pixel bound
/// are refused rather than decoded.
pub const MAX_DECODE_ALLOC: u64 = 4 * MAX_PIXELS;
/// Smallest width or height accepted, as in the reference (`MIN_HASHABLE_DIM`):
/// a smaller picture has no meaningful hash.
pub const MIN_SIDE: u32 = 5;
/// The reference's match threshold: two hashes at most this many bits apart
/// are the same picture for matching purposes.
pub const MATCH_THRESHOLD: u32 = 31;
/// The reference's recommended minimum quality (it discards hashes of
/// quality 49 or less): flat or featureless pictures give hashes that match
/// too much to be trusted.
pub const MIN_QUALITY: u8 = 50;

/// Why picture bytes were refused. Nothing is kept from a refused file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a JPEG or PNG file (by their signature).
    #[error("not a JPEG or PNG picture: send it as a file instead")]
    UnsupportedFormat,
    /// The picture declares dimensions beyond [`MAX_SIDE`] or [`MAX_PIXELS`].
    #[error(
        "picture of {width}x{height} pixels is too large (at most {MAX_SIDE} per side and {MAX_PIXELS} pixels): scale it down"
    )]
    TooLarge {
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
    },
    /// The picture is narrower or lower than [`MIN_SIDE`] pixels.
    #[error(
        "picture of {width}x{height} pixels is too small to hash (at least {MIN_SIDE} per side)"
    )]
    TooSmall {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Decoding would allocate more than [`MAX_DECODE_ALLOC`] bytes.
    #[error("decoding the picture would need more than {MAX_DECODE_ALLOC} bytes of memory")]
    OverMemoryLimit,
    /// The file is truncated or malformed.
    #[error("malformed picture: {0}")]
    Malformed(String),
    /// Raw pixels given to [`Picture::from_rgb`] do not fill `width x height`.
    #[error("pixel buffer of {len} bytes does not match {width}x{height} RGB")]
    PixelCount {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Bytes given.
        len: usize,
    },
}

/// A decoded picture within the bounds of this crate, as 8-bit RGB.
///
/// Only [`decode`] and [`Picture::from_rgb`] build one, both after checking
/// the bounds, so code that takes a `&Picture` never sees a hostile size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    rgb: RgbImage,
}

impl Picture {
    /// A picture from raw 8-bit RGB pixels (row-major, 3 bytes per pixel),
    /// refused when the sizes are out of bounds or the buffer does not match.
    pub fn from_rgb(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, DecodeError> {
        check_dimensions(width, height)?;
        let len = pixels.len();
        let expected = u64::from(width) * u64::from(height) * 3;
        if u64::try_from(len).ok() != Some(expected) {
            return Err(DecodeError::PixelCount { width, height, len });
        }
        let rgb = RgbImage::from_raw(width, height, pixels).ok_or(DecodeError::PixelCount {
            width,
            height,
            len,
        })?;
        Ok(Self { rgb })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.rgb.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.rgb.height()
    }

    /// The RGB pixels, row-major, 3 bytes per pixel.
    pub fn rgb_bytes(&self) -> &[u8] {
        self.rgb.as_raw()
    }

    /// The picture turned by `d` (a new picture of the same pixel count).
    pub fn transformed(&self, d: Dihedral) -> Picture {
        Picture {
            rgb: d.apply(&self.rgb),
        }
    }
}

/// Decodes a JPEG or PNG file into a bounded [`Picture`].
///
/// The format is recognised by its signature, never by a name; dimensions
/// are checked from the header before the pixels are allocated, and the
/// decoder's allocations are capped at [`MAX_DECODE_ALLOC`].
pub fn decode(bytes: &[u8]) -> Result<Picture, DecodeError> {
    use image::{DynamicImage, ImageDecoder};
    let mut reader = ImageReader::with_format(Cursor::new(bytes), guessed(bytes)?);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, 0, 0))?;
    let (width, height) = decoder.dimensions();
    // The header's dimensions and the decoded size, checked before any pixel
    // is allocated.
    check_dimensions(width, height)?;
    if decoder.total_bytes() > MAX_DECODE_ALLOC {
        return Err(DecodeError::OverMemoryLimit);
    }
    let decoded =
        DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, width, height))?;
    let rgb = decoded.into_rgb8();
    check_dimensions(rgb.width(), rgb.height())?;
    Ok(Picture { rgb })
}

/// Decodes and hashes a picture file: [`decode`] then [`hash`].
pub fn hash_bytes(bytes: &[u8]) -> Result<Hashed, DecodeError> {
    Ok(hash(&decode(bytes)?))
}

/// The PDQ hash and quality of a picture.
pub fn hash(picture: &Picture) -> Hashed {
    hash::pdq(&picture.rgb)
}

/// The PDQ hashes of the 8 rotations and flips of a picture, in the order of
/// [`Dihedral::ALL`]. Costs 8 hashes: meant for building a list of hashes,
/// not for every picture sent.
pub fn dihedral_hashes(picture: &Picture) -> [(Dihedral, Hashed); 8] {
    Dihedral::ALL.map(|d| (d, hash::pdq(&d.apply(&picture.rgb))))
}

/// When a picture's hash counts as a listed hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchRule {
    /// Largest Hamming distance that is a match.
    pub max_distance: u32,
    /// Smallest quality of the picture's hash that may match at all.
    pub min_quality: u8,
}

impl Default for MatchRule {
    /// The reference rule: distance at most 31, quality at least 50.
    fn default() -> Self {
        Self {
            max_distance: MATCH_THRESHOLD,
            min_quality: MIN_QUALITY,
        }
    }
}

/// The outcome of comparing a picture's hash with a listed hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Within the distance and of sufficient quality.
    Match {
        /// Hamming distance in bits.
        distance: u32,
    },
    /// Farther than the rule allows.
    NoMatch {
        /// Hamming distance in bits.
        distance: u32,
    },
    /// The picture's hash is of too low a quality to match anything.
    LowQuality {
        /// The hash's quality.
        quality: Quality,
    },
}

impl MatchRule {
    /// Compares a picture's hash with one listed hash.
    pub fn check(&self, picture: &Hashed, listed: &PdqHash) -> MatchOutcome {
        if picture.quality.value() < self.min_quality {
            return MatchOutcome::LowQuality {
                quality: picture.quality,
            };
        }
        let distance = picture.hash.distance(listed);
        if distance <= self.max_distance {
            MatchOutcome::Match { distance }
        } else {
            MatchOutcome::NoMatch { distance }
        }
    }

    /// Whether [`MatchRule::check`] is a match.
    pub fn matches(&self, picture: &Hashed, listed: &PdqHash) -> bool {
        matches!(self.check(picture, listed), MatchOutcome::Match { .. })
    }
}

fn guessed(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => Ok(f),
        _ => Err(DecodeError::UnsupportedFormat),
    }
}

fn check_dimensions(width: u32, height: u32) -> Result<(), DecodeError> {
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeError::TooLarge { width, height });
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(DecodeError::TooSmall { width, height });
    }
    Ok(())
}

fn map_image_error(e: image::ImageError, width: u32, height: u32) -> DecodeError {
    use image::error::{ImageError, LimitErrorKind};
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => DecodeError::TooLarge { width, height },
            _ => DecodeError::OverMemoryLimit,
        },
        ImageError::Unsupported(_) => DecodeError::UnsupportedFormat,
        other => DecodeError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(matches!(
            check_dimensions(MAX_SIDE + 1, 10),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            check_dimensions(6000, 4001),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(check_dimensions(6000, 4000).is_ok());
        assert!(matches!(
            check_dimensions(4, 100),
            Err(DecodeError::TooSmall { .. })
        ));
    }

    #[test]
    fn from_rgb_checks_length() {
        assert!(matches!(
            Picture::from_rgb(10, 10, vec![0; 299]),
            Err(DecodeError::PixelCount { .. })
        ));
        assert!(matches!(
            Picture::from_rgb(10, 10, vec![0; 301]),
            Err(DecodeError::PixelCount { .. })
        ));
        assert!(Picture::from_rgb(10, 10, vec![0; 300]).is_ok());
    }
}
