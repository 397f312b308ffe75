//! Locality-sensitive bit sampling: how a 256-bit PDQ hash becomes the exact
//! elements that the private set intersection compares.
//!
//! PSI matches exactly, PDQ matches by Hamming distance. Each table fixes
//! `slots` public samples of `sample_bits` bit positions each (derived from
//! the table's seed); a hash's element for slot `i` is the slot number and
//! the hash's bits at those positions. Two hashes share slot `i`'s element
//! iff they agree on all of its positions, which for hashes `d` bits apart
//! happens with probability about `(1 - d/256)^sample_bits`; an image
//! matches when any one slot does. The measured rates are in
//! `docs/design/0017-threshold-matching.md`.

use sha2::{Digest, Sha256};

/// Bits in a PDQ hash.
pub const HASH_BITS: usize = 256;

/// The public bit samples of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampler {
    positions: Vec<Vec<u8>>,
    sample_bits: u8,
}

impl Sampler {
    /// The samples of a table with `seed`: for each of `slots`, `sample_bits`
    /// distinct bit positions, drawn by a Fisher-Yates shuffle driven by
    /// SHA-256 of `custos/v1/psi/sample || seed || slot || counter`.
    pub fn new(seed: &[u8; 32], slots: u8, sample_bits: u8) -> Self {
        let positions = (0..slots)
            .map(|slot| shuffle_prefix(seed, slot, usize::from(sample_bits)))
            .collect();
        Self {
            positions,
            sample_bits,
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.positions.len()
    }

    /// The element of `hash` for `slot`: the slot byte, then the sampled bits
    /// packed most significant first (zero-padded to a whole byte). `None`
    /// for a slot the table does not have.
    pub fn element(&self, slot: usize, hash: &[u8; 32]) -> Option<Vec<u8>> {
        let positions = self.positions.get(slot)?;
        let mut out = vec![0u8; 1 + usize::from(self.sample_bits).div_ceil(8)];
        if let Some(first) = out.first_mut() {
            *first = u8::try_from(slot).ok()?;
        }
        for (k, &p) in positions.iter().enumerate() {
            let p = usize::from(p);
            let bit = hash.get(p / 8).map(|b| (b >> (7 - p % 8)) & 1)?;
            if bit == 1
                && let Some(b) = out.get_mut(1 + k / 8)
            {
                *b |= 1 << (7 - k % 8);
            }
        }
        Some(out)
    }
}

/// The first `n` entries of a keyed shuffle of 0..=255.
fn shuffle_prefix(seed: &[u8; 32], slot: u8, n: usize) -> Vec<u8> {
    let mut all: Vec<u8> = (0..=255u8).collect();
    let mut stream = Stream::new(seed, slot);
    for k in 0..n.min(HASH_BITS) {
        // Uniform in k..256 by rejection sampling on one byte.
        let range = HASH_BITS - k;
        let j = loop {
            let v = usize::from(stream.next());
            let limit = 256 - 256 % range;
            if v < limit {
                break k + v % range;
            }
        };
        all.swap(k, j);
    }
    all.truncate(n.min(HASH_BITS));
    all
}

struct Stream {
    seed: [u8; 32],
    slot: u8,
    counter: u32,
    block: [u8; 32],
    used: usize,
}

impl Stream {
    fn new(seed: &[u8; 32], slot: u8) -> Self {
        Self {
            seed: *seed,
            slot,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn next(&mut self) -> u8 {
        if self.used >= self.block.len() {
            let mut h = Sha256::new();
            h.update(b"custos/v1/psi/sample");
            h.update(self.seed);
            h.update([self.slot]);
            h.update(self.counter.to_be_bytes());
            self.block = h.finalize().into();
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let b = self.block.get(self.used).copied().unwrap_or(0);
        self.used += 1;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_and_deterministic() {
        let s = Sampler::new(&[7; 32], 4, 48);
        assert_eq!(s, Sampler::new(&[7; 32], 4, 48));
        assert_ne!(s, Sampler::new(&[8; 32], 4, 48));
        for p in &s.positions {
            let mut q = p.clone();
            q.sort_unstable();
            q.dedup();
            assert_eq!(q.len(), 48);
        }
    }

    #[test]
    fn element_depends_only_on_sampled_bits() {
        let s = Sampler::new(&[1; 32], 2, 40);
        let h = [0xa5; 32];
        let e = s.element(0, &h).unwrap();
        assert_eq!(e.len(), 1 + 5);
        assert_eq!(e[0], 0);
        // Flip a bit that slot 0 does not sample: same element.
        let unsampled = (0..=255u8).find(|b| !s.positions[0].contains(b)).unwrap();
        let mut h2 = h;
        h2[usize::from(unsampled) / 8] ^= 1 << (7 - unsampled % 8);
        assert_eq!(s.element(0, &h2).unwrap(), e);
        // Flip a sampled bit: different element.
        let sampled = s.positions[0][0];
        let mut h3 = h;
        h3[usize::from(sampled) / 8] ^= 1 << (7 - sampled % 8);
        assert_ne!(s.element(0, &h3).unwrap(), e);
        assert!(s.element(2, &h).is_none());
    }
}
