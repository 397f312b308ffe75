//! PDQ on the device (goal: at most 20 ms for a 1-megapixel
//! picture), against a baseline measured in the same run (BENCHMARKS.md):
//! - `pdq_1mp/decode_only`: decoding the JPEG alone ([`custos_media::decode`]),
//!   the floor of any hashing path.
//! - `pdq_1mp/decode_and_hash`: [`custos_media::hash_bytes`], what a device
//!   does for a picture it sends.
//! - `pdq_1mp/hash_decoded`: [`custos_media::hash`] of the decoded picture.
//! - `pdq_1mp/dihedral_8`: the 8 rotations and flips hashed, what building a
//!   list of hashes costs per picture.
//!
//! The picture is Meta's `bridge-1-original.jpg` scaled to 1224 x 817
//! (1.0 megapixel) and re-encoded at JPEG quality 90, in memory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use custos_bench::CpuTime;
use image::{ImageEncoder, codecs::jpeg::JpegEncoder, imageops};

fn one_megapixel_jpeg() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/pdq/images/bridge-1-original.jpg"
    );
    let picture = custos_media::decode(&std::fs::read(path).unwrap()).unwrap();
    let rgb = image::RgbImage::from_raw(
        picture.width(),
        picture.height(),
        picture.rgb_bytes().to_vec(),
    )
    .unwrap();
    let scaled = imageops::resize(&rgb, 1224, 817, imageops::FilterType::Triangle);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(&scaled, 1224, 817, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn bench(c: &mut Criterion<CpuTime>) {
    let jpeg = one_megapixel_jpeg();
    let decoded = custos_media::decode(&jpeg).unwrap();
    let mut g = c.benchmark_group("pdq_1mp");
    g.bench_function("decode_only", |b| {
        b.iter(|| custos_media::decode(&jpeg).unwrap())
    });
    g.bench_function("decode_and_hash", |b| {
        b.iter(|| custos_media::hash_bytes(&jpeg).unwrap())
    });
    g.bench_function("hash_decoded", |b| b.iter(|| custos_media::hash(&decoded)));
    g.sample_size(10);
    g.bench_function("dihedral_8", |b| {
        b.iter(|| custos_media::dihedral_hashes(&decoded))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
