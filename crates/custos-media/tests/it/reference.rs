//! PDQ hashes checked against Meta's published hashes (tests/vectors/pdq):
//! the Java reference exactly, the C++ and Python references and the 8
//! rotations and flips within the tolerance each vector states.

use custos_media::{Dihedral, MATCH_THRESHOLD, MatchRule, PdqHash, decode, dihedral_hashes, hash};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/pdq")
}

pub(crate) fn image(name: &str) -> Vec<u8> {
    std::fs::read(dir().join("images").join(name)).unwrap()
}

fn transform(name: &str) -> Dihedral {
    *Dihedral::ALL
        .iter()
        .find(|d| format!("{d:?}") == name)
        .unwrap_or_else(|| panic!("unknown transform {name}"))
}

#[test]
fn published_hashes_within_tolerance() {
    let vectors = custos_vectors::read_dir(&dir()).unwrap();
    assert_eq!(vectors.len(), 15, "every vector file is read");
    let mut turned = std::collections::HashSet::new();
    for v in vectors {
        let picture = decode(&image(v.field("image").unwrap())).unwrap();
        let d = transform(v.field("transform").unwrap());
        let expected = PdqHash::from_hex(v.field("expected").unwrap()).unwrap();
        let max: u32 = v.field("max_distance").unwrap().parse().unwrap();
        let got = hash(&picture.transformed(d));
        let distance = got.hash.distance(&expected);
        assert!(
            distance <= max,
            "{}: {} is {distance} bits from {} (tolerance {max})",
            v.name,
            got.hash.to_hex(),
            expected.to_hex()
        );
        // Every tolerance is far inside the match threshold.
        assert!(max < MATCH_THRESHOLD);
        if v.name.starts_with("cpp-dihedral") {
            turned.insert(d);
        }
    }
    assert_eq!(turned.len(), 8, "all 8 rotations and flips are checked");
}

#[test]
fn dihedral_hashes_are_the_hashes_of_turned_pictures() {
    let picture = decode(&image("bridge-1-original.jpg")).unwrap();
    let all = dihedral_hashes(&picture);
    for (d, h) in all {
        assert_eq!(h, hash(&picture.transformed(d)));
    }
    // The original is the identity element and is bit-exact with Java.
    assert_eq!(
        all[0].1.hash.to_hex(),
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    );
    assert_eq!(all[0].1.quality.value(), 100);
    // Turned versions are far apart from each other (they are not matches
    // of the original unless the list carries the dihedral variants).
    for (i, (_, a)) in all.iter().enumerate() {
        for (_, b) in all.iter().skip(i + 1) {
            assert!(a.hash.distance(&b.hash) > MATCH_THRESHOLD);
        }
    }
}

#[test]
fn a_turned_file_matches_one_dihedral_variant_of_the_list() {
    // A listed picture's 8 variants; the picture sent is turned a quarter
    // and re-encoded as PNG: it matches the Rotate90 variant only.
    let listed = dihedral_hashes(&decode(&image("bridge-1-original.jpg")).unwrap());
    let sent = decode(&image("bridge-1-original.jpg"))
        .unwrap()
        .transformed(Dihedral::Rotate90);
    let png = crate::decode::to_png(&sent);
    let h = custos_media::hash_bytes(&png).unwrap();
    let rule = MatchRule::default();
    let matching: Vec<Dihedral> = listed
        .iter()
        .filter(|(_, l)| rule.matches(&h, &l.hash))
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(matching, vec![Dihedral::Rotate90]);
}

#[test]
fn match_rule_follows_the_reference() {
    let picture = hash(&decode(&image("bridge-1-original.jpg")).unwrap());
    let rule = MatchRule::default();
    assert_eq!(rule.max_distance, 31);
    assert_eq!(rule.min_quality, 50);
    let mut near = *picture.hash.as_bytes();
    // Flip 31 bits: still a match; 32: not.
    for bit in 0..31 {
        near[bit / 8] ^= 1 << (bit % 8);
    }
    assert!(rule.matches(&picture, &PdqHash::from_bytes(near)));
    near[3] ^= 0x80;
    assert_eq!(
        rule.check(&picture, &PdqHash::from_bytes(near)),
        custos_media::MatchOutcome::NoMatch { distance: 32 }
    );
    // A flat picture has quality 0 and matches nothing, not even itself.
    let flat = hash(&custos_media::Picture::from_rgb(64, 64, vec![128; 64 * 64 * 3]).unwrap());
    assert_eq!(flat.quality.value(), 0);
    assert!(!rule.matches(&flat, &flat.hash));
    // An unrelated picture does not match.
    let other = hash(&decode(&image("q2821.jpg")).unwrap());
    assert!(!rule.matches(&other, &picture.hash));
}
