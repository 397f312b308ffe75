//! Properties: the distance is a metric; turning pictures composes as the
//! dihedral group says.

use custos_media::{Dihedral, PdqHash, Picture};
use proptest::prelude::*;

fn dihedral() -> impl Strategy<Value = Dihedral> {
    (0usize..8).prop_map(|i| Dihedral::ALL[i])
}

fn picture() -> impl Strategy<Value = Picture> {
    (5u32..9, 5u32..9).prop_flat_map(|(w, h)| {
        proptest::collection::vec(any::<u8>(), (w * h * 3) as usize)
            .prop_map(move |px| Picture::from_rgb(w, h, px).unwrap())
    })
}

fn pdq() -> impl Strategy<Value = PdqHash> {
    any::<[u8; 32]>().prop_map(PdqHash::from_bytes)
}

proptest! {
    #[test]
    fn distance_is_a_metric(a in pdq(), b in pdq(), c in pdq()) {
        prop_assert_eq!(a.distance(&a), 0);
        prop_assert_eq!(a.distance(&b), b.distance(&a));
        prop_assert!(a.distance(&b) <= 256);
        prop_assert_eq!(a.distance(&b) == 0, a == b);
        prop_assert!(a.distance(&c) <= a.distance(&b) + b.distance(&c));
        prop_assert_eq!(PdqHash::from_hex(&a.to_hex()), Some(a));
    }

    #[test]
    fn turning_twice_is_turning_once_by_the_composite(p in picture(), a in dihedral(), b in dihedral()) {
        prop_assert_eq!(p.transformed(a).transformed(b), p.transformed(a.then(b)));
        prop_assert_eq!(p.transformed(a).transformed(a.inverse()), p.clone());
        prop_assert_eq!(a.then(a.inverse()), Dihedral::Original);
    }

    #[test]
    fn composition_is_associative(a in dihedral(), b in dihedral(), c in dihedral()) {
        prop_assert_eq!(a.then(b).then(c), a.then(b.then(c)));
    }
}
