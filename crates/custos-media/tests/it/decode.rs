//! Bounded decoding: JPEG and PNG in, every hostile or unsupported file
//! refused with a typed error before its pixels are allocated.

use crate::reference::image;
use custos_media::{DecodeError, MAX_SIDE, MatchRule, Picture, decode, hash, hash_bytes};
use image::{ImageEncoder, codecs::jpeg::JpegEncoder, codecs::png::PngEncoder, imageops};

pub(crate) fn to_png(p: &Picture) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            p.rgb_bytes(),
            p.width(),
            p.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn to_jpeg(p: &Picture, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            p.rgb_bytes(),
            p.width(),
            p.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// A PNG whose header declares `width x height`, with a correct CRC, and
/// only a few bytes of pixel data.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = to_png(&Picture::from_rgb(8, 8, vec![7; 8 * 8 * 3]).unwrap());
    // Signature (8) + length (4) + "IHDR" (4), then width and height.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn png_and_jpeg_of_the_same_pixels() {
    let jpeg = image("bridge-1-original.jpg");
    let picture = decode(&jpeg).unwrap();
    let png = to_png(&picture);
    let again = decode(&png).unwrap();
    assert_eq!(again, picture, "PNG is lossless");
    assert_eq!(hash(&again), hash(&picture));
}

#[test]
fn modified_picture_still_matches_and_unrelated_does_not() {
    let picture = decode(&image("bridge-1-original.jpg")).unwrap();
    let listed = hash(&picture);
    let rule = MatchRule::default();
    let rgb = image::RgbImage::from_raw(
        picture.width(),
        picture.height(),
        picture.rgb_bytes().to_vec(),
    )
    .unwrap();
    // Brighter, slightly blurred, smaller, and re-encoded at JPEG quality 60.
    let modified = imageops::resize(
        &imageops::blur(&imageops::brighten(&rgb, 20), 1.5),
        picture.width() / 2,
        picture.height() / 2,
        imageops::FilterType::Triangle,
    );
    let modified =
        Picture::from_rgb(modified.width(), modified.height(), modified.into_raw()).unwrap();
    let h = hash_bytes(&to_jpeg(&modified, 60)).unwrap();
    let distance = h.hash.distance(&listed.hash);
    assert!(
        rule.matches(&h, &listed.hash),
        "modified picture at {distance} bits"
    );
    for other in ["wee.jpg", "q0291.jpg", "q2821.jpg"] {
        let o = hash_bytes(&image(other)).unwrap();
        assert!(!rule.matches(&o, &listed.hash), "{other} must not match");
    }
}

#[test]
fn huge_declared_dimensions_are_refused_before_allocation() {
    // 16384 x 16384 is within the side bound but 268 megapixels.
    assert_eq!(
        decode(&png_declaring(MAX_SIDE, MAX_SIDE)),
        Err(DecodeError::TooLarge {
            width: MAX_SIDE,
            height: MAX_SIDE
        })
    );
    assert!(matches!(
        decode(&png_declaring(u32::MAX >> 1, 10)),
        Err(DecodeError::TooLarge { .. })
    ));
    // A JPEG declaring 60000 x 60000 in its frame header.
    let mut jpeg = image("small.jpg");
    let sof = jpeg
        .windows(2)
        .position(|w| w[0] == 0xff && matches!(w[1], 0xc0..=0xc2))
        .unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
    assert!(matches!(decode(&jpeg), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn decoded_size_is_bounded_too() {
    // 4000 x 4000 is 16 megapixels (within bounds), but as 16-bit RGBA it
    // would decode to 128 MB: refused before allocation.
    let mut png = png_declaring(4000, 4000);
    png[24] = 16; // bit depth
    png[25] = 6; // colour type: RGBA
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(decode(&png), Err(DecodeError::OverMemoryLimit));
}

#[test]
fn bad_files_are_refused() {
    assert_eq!(decode(b""), Err(DecodeError::UnsupportedFormat));
    assert_eq!(
        decode(b"GIF89a\x01\x00\x01\x00"),
        Err(DecodeError::UnsupportedFormat)
    );
    assert_eq!(decode(b"hello, world"), Err(DecodeError::UnsupportedFormat));
    let jpeg = image("wee.jpg");
    assert!(matches!(
        decode(&jpeg[..jpeg.len() / 3]),
        Err(DecodeError::Malformed(_))
    ));
    let png = to_png(&decode(&jpeg).unwrap());
    assert!(matches!(
        decode(&png[..png.len() / 2]),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(
        decode(&png_declaring(4, 100)),
        Err(DecodeError::TooSmall {
            width: 4,
            height: 100
        })
    );
}
