//! The directory's VRF work, done once: the expanded VRF key is derived
//! once per process instead of once per call, and each VRF proof the
//! directory has made is kept, so that a node label and the proof for the
//! same (account, freshness, version) come from one evaluation.
//!
//! `akd` asks its VRF for a lookup's three node labels and, a moment later,
//! for the three proofs of the same inputs, deriving the expanded key and
//! the public key again for each (a SHA-512 and a base-point
//! multiplication) and evaluating the VRF twice per input. The inputs of an
//! account's proofs change only when its key does (a new version), so the
//! same proofs are asked for again at every epoch.
//!
//! # Security
//! ECVRF proofs are deterministic (RFC 9381: the nonce is derived from the
//! secret and the input), so a kept proof is byte for byte the one `akd`
//! would make again, and a node label taken from a kept proof is the one a
//! fresh evaluation gives (`akd`'s own `get_node_label_from_vrf_proof`).
//! Proofs are public: every lookup proof carries them. The expanded key is
//! secret; it is zeroized when the last clone of the directory's
//! [`crate::VrfSecret`] is dropped (`akd` zeroizes it on drop) and is never
//! logged.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use akd::ecvrf::{Proof, VRFExpandedPrivateKey, VRFPrivateKey, VRFPublicKey, VrfError};
use akd::{AkdLabel, VersionFreshness};

/// At most this many proofs are kept, in two generations of half as many
/// (about 300 bytes each with the key: ~20 MiB). Three per account looked up.
pub(crate) const MAX_KEPT_PROOFS: usize = 65_536;

/// What a proof is of: the account's label, freshness and version.
type Input = (Vec<u8>, VersionFreshness, u64);

/// The VRF's derived key and the proofs it has made.
#[derive(Default)]
pub(crate) struct VrfMemo {
    keys: OnceLock<(VRFExpandedPrivateKey, VRFPublicKey)>,
    proofs: Mutex<Generations>,
}

/// Two generations: a proof asked for again moves to the newer one, and
/// when the newer one is full the older is dropped, so the proofs asked
/// for most recently stay and memory is bounded.
#[derive(Default)]
struct Generations {
    newer: HashMap<Input, Proof>,
    older: HashMap<Input, Proof>,
}

impl Generations {
    fn get(&mut self, input: &Input) -> Option<Proof> {
        if let Some(p) = self.newer.get(input) {
            return Some(*p);
        }
        let p = self.older.remove(input)?;
        self.insert(input.clone(), p);
        Some(p)
    }

    fn insert(&mut self, input: Input, proof: Proof) {
        if self.newer.len() >= MAX_KEPT_PROOFS / 2 {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(input, proof);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

impl VrfMemo {
    /// The expanded key and the public key of `seed`, derived once.
    pub(crate) fn keys(
        &self,
        seed: &[u8; 32],
    ) -> Result<&(VRFExpandedPrivateKey, VRFPublicKey), VrfError> {
        if let Some(k) = self.keys.get() {
            return Ok(k);
        }
        let key = VRFPrivateKey::try_from(seed.as_slice())?;
        let derived = (VRFExpandedPrivateKey::from(&key), VRFPublicKey::from(&key));
        Ok(self.keys.get_or_init(|| derived))
    }

    /// The proof for `hashed_input` (`akd`'s hash of label, freshness and
    /// version), made once and then kept.
    pub(crate) fn proof(
        &self,
        seed: &[u8; 32],
        label: &AkdLabel,
        freshness: VersionFreshness,
        version: u64,
        hashed_input: &[u8],
    ) -> Result<Proof, VrfError> {
        let input = (label.0.clone(), freshness, version);
        if let Some(p) = self.proofs.lock().ok().and_then(|mut g| g.get(&input)) {
            return Ok(p);
        }
        let (expanded, public) = self.keys(seed)?;
        let proof = expanded.prove(public, hashed_input);
        if let Ok(mut g) = self.proofs.lock() {
            g.insert(input, proof);
        }
        Ok(proof)
    }

    /// How many proofs are kept (for tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.proofs.lock().map_or(0, |g| g.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof_bytes(p: &Proof) -> Vec<u8> {
        p.to_bytes().to_vec()
    }

    #[test]
    fn a_kept_proof_is_the_one_the_key_makes_again() {
        let seed = [7u8; 32];
        let memo = VrfMemo::default();
        let label = AkdLabel(b"alice".to_vec());
        let input = b"hashed input";
        let first = memo
            .proof(&seed, &label, VersionFreshness::Fresh, 1, input)
            .unwrap();
        let again = memo
            .proof(&seed, &label, VersionFreshness::Fresh, 1, input)
            .unwrap();
        let fresh = VRFPrivateKey::try_from(seed.as_slice())
            .unwrap()
            .prove(input);
        assert_eq!(proof_bytes(&first), proof_bytes(&fresh));
        assert_eq!(proof_bytes(&again), proof_bytes(&fresh));
        assert_eq!(memo.kept(), 1);
        // Another freshness or version is another proof.
        let stale = memo
            .proof(&seed, &label, VersionFreshness::Stale, 1, b"other input")
            .unwrap();
        assert_ne!(proof_bytes(&stale), proof_bytes(&first));
        assert_eq!(memo.kept(), 2);
    }

    #[test]
    fn memory_stays_bounded_and_recent_proofs_stay() {
        let seed = [9u8; 32];
        let memo = VrfMemo::default();
        let hot = AkdLabel(b"hot".to_vec());
        memo.proof(&seed, &hot, VersionFreshness::Fresh, 1, b"hot")
            .unwrap();
        let mut g = Generations::default();
        let p = memo
            .proof(&seed, &hot, VersionFreshness::Fresh, 1, b"hot")
            .unwrap();
        for i in 0..(MAX_KEPT_PROOFS as u64 * 2) {
            g.insert((b"cold".to_vec(), VersionFreshness::Fresh, i), p);
            if i % 1000 == 0 {
                // Asked for again now and then: never dropped.
                assert!(
                    g.get(&(b"cold".to_vec(), VersionFreshness::Fresh, 0))
                        .is_some()
                );
            }
            assert!(g.len() <= MAX_KEPT_PROOFS);
        }
        assert!(
            g.get(&(b"cold".to_vec(), VersionFreshness::Fresh, 1))
                .is_none()
        );
    }

    /// The directory's VRF answers exactly as `akd`'s own implementation of
    /// the trait does for the same secret, first time and again.
    #[tokio::test]
    async fn labels_and_proofs_equal_akds_own() {
        use akd::ecvrf::VRFKeyStorage;
        use custos_verify::keydir::DirectoryConfig;

        #[derive(Clone)]
        struct Plain([u8; 32]);
        #[async_trait::async_trait]
        impl VRFKeyStorage for Plain {
            async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
                Ok(self.0.to_vec())
            }
        }
        let seed = [42u8; 32];
        let ours = crate::VrfSecret::from_bytes(seed);
        let plain = Plain(seed);
        assert_eq!(
            ours.get_vrf_public_key().await.unwrap(),
            plain.get_vrf_public_key().await.unwrap()
        );
        for round in 0..2 {
            for (name, freshness, version) in [
                ("alice", VersionFreshness::Fresh, 1),
                ("alice", VersionFreshness::Stale, 1),
                ("alice", VersionFreshness::Fresh, 2),
                ("bob", VersionFreshness::Fresh, 1),
            ] {
                let label = AkdLabel(name.as_bytes().to_vec());
                // Label first, then proof, as a lookup asks, and the other
                // way round in the second round.
                let (a, b) = if round == 0 {
                    let l = ours
                        .get_node_label::<DirectoryConfig>(&label, freshness, version)
                        .await
                        .unwrap();
                    let p = ours
                        .get_label_proof::<DirectoryConfig>(&label, freshness, version)
                        .await
                        .unwrap();
                    (l, p)
                } else {
                    let p = ours
                        .get_label_proof::<DirectoryConfig>(&label, freshness, version)
                        .await
                        .unwrap();
                    let l = ours
                        .get_node_label::<DirectoryConfig>(&label, freshness, version)
                        .await
                        .unwrap();
                    (l, p)
                };
                let expected_label = plain
                    .get_node_label::<DirectoryConfig>(&label, freshness, version)
                    .await
                    .unwrap();
                let expected_proof = plain
                    .get_label_proof::<DirectoryConfig>(&label, freshness, version)
                    .await
                    .unwrap();
                assert_eq!(a, expected_label, "{name} {freshness:?} {version}");
                assert_eq!(proof_bytes(&b), proof_bytes(&expected_proof));
            }
        }
        assert_eq!(ours.memo.kept(), 4);
    }
}
