//! Synthetic pictures that the project makes itself, for tests, benchmarks
//! and `custos demo`: smooth colour fields with random shapes, drawn from a
//! seed, and the modifications a sender might apply (re-encoding, resizing,
//! brightness shifts, crops).
//!
//! # Security meaning
//! None: these pictures exist so that no real abuse material is ever needed
//! anywhere in the project. Tests put their hashes on a test list.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ImageEncoder, RgbImage, imageops};

use crate::{DecodeError, Picture};

/// A synthetic `width x height` picture drawn from `seed`: three random
/// low-frequency waves per channel plus a few random rectangles and discs.
pub fn picture(seed: u64, width: u32, height: u32) -> Result<Picture, DecodeError> {
    let mut rng = SplitMix(seed);
    let waves: Vec<[f32; 4]> = (0..9)
        .map(|_| {
            [
                rng.unit() * 6.0 + 0.5,
                rng.unit() * 6.0 + 0.5,
                rng.unit() * 6.3,
                rng.unit() * 60.0 + 20.0,
            ]
        })
        .collect();
    let shapes: Vec<[f32; 8]> = (0..8)
        .map(|_| {
            [
                rng.unit(),
                rng.unit(),
                rng.unit() * 0.3 + 0.05,
                rng.unit() * 0.3 + 0.05,
                rng.unit() * 255.0,
                rng.unit() * 255.0,
                rng.unit() * 255.0,
                rng.unit(),
            ]
        })
        .collect();
    let (w, h) = (width as f32, height as f32);
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / w, y as f32 / h);
            let mut rgb = [128.0f32; 3];
            for (c, channel) in rgb.iter_mut().enumerate() {
                for wave in waves.iter().skip(c * 3).take(3) {
                    *channel += wave[3] * (wave[0] * u * 6.3 + wave[1] * v * 6.3 + wave[2]).sin();
                }
            }
            for s in &shapes {
                let inside = if s[7] < 0.5 {
                    (u - s[0]).abs() < s[2] && (v - s[1]).abs() < s[3]
                } else {
                    (u - s[0]).powi(2) + (v - s[1]).powi(2) < s[2] * s[2]
                };
                if inside {
                    rgb = [s[4], s[5], s[6]];
                }
            }
            pixels.extend(rgb.map(|c| c.clamp(0.0, 255.0) as u8));
        }
    }
    Picture::from_rgb(width, height, pixels)
}

/// A modification of a picture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Modification {
    /// JPEG at this quality, decoded again.
    Jpeg(u8),
    /// Resized by this factor (Lanczos), both sides.
    Resize(f32),
    /// Every channel shifted by this amount (clamped).
    Brightness(i16),
    /// This fraction cut from each side.
    Crop(f32),
}

impl Modification {
    /// The modified picture.
    pub fn apply(self, p: &Picture) -> Result<Picture, DecodeError> {
        match self {
            Self::Jpeg(q) => crate::decode(&jpeg(p, q)?),
            Self::Resize(f) => {
                let (w, h) = (
                    ((p.width() as f32) * f).round() as u32,
                    ((p.height() as f32) * f).round() as u32,
                );
                let out = imageops::resize(&p.rgb, w, h, imageops::FilterType::Lanczos3);
                Picture::from_rgb(w, h, out.into_raw())
            }
            Self::Brightness(d) => {
                let px = p
                    .rgb_bytes()
                    .iter()
                    .map(|&c| (i16::from(c) + d).clamp(0, 255) as u8)
                    .collect();
                Picture::from_rgb(p.width(), p.height(), px)
            }
            Self::Crop(f) => {
                let (dx, dy) = (
                    ((p.width() as f32) * f) as u32,
                    ((p.height() as f32) * f) as u32,
                );
                let (w, h) = (p.width() - 2 * dx, p.height() - 2 * dy);
                let out: RgbImage = imageops::crop_imm(&p.rgb, dx, dy, w, h).to_image();
                Picture::from_rgb(w, h, out.into_raw())
            }
        }
    }
}

/// The picture as a PNG file.
pub fn png(p: &Picture) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            p.rgb_bytes(),
            p.width(),
            p.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(out)
}

/// The picture as a JPEG file at `quality`.
pub fn jpeg(p: &Picture, quality: u8) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            p.rgb_bytes(),
            p.width(),
            p.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(out)
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}
