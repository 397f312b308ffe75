//! Picture decoding and PDQ (custos-media): hostile bytes never panic and
//! never exceed the decoder's bounds; whatever decodes is within bounds and
//! hashes to a quality of at most 100.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(picture) = custos_media::decode(data) {
        assert!(picture.width() >= custos_media::MIN_SIDE);
        assert!(picture.height() >= custos_media::MIN_SIDE);
        assert!(
            u64::from(picture.width()) * u64::from(picture.height()) <= custos_media::MAX_PIXELS
        );
        let hashed = custos_media::hash(&picture);
        assert!(hashed.quality.value() <= 100);
        assert_eq!(hashed.hash.distance(&hashed.hash), 0);
    }
});
