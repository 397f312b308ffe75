//! The Merkle tree of a v2 tag batch: RFC 6962 shape and node hashing,
//! RFC 9162 inclusion paths, with Custos leaf hashes
//! ([`super::TagFields::leaf_hash`]).
//!
//! # Security meaning
//! A leaf hash starts with [`LEAF_PREFIX`] and an interior node with
//! [`NODE_PREFIX`], so no leaf can be presented as an interior node (or the
//! reverse) to make a short path. A path verifies against a root only for the
//! one `(index, size)` it was made for; the service signs `size` with the
//! root, so the index is fixed too.

use sha2::{Digest, Sha256};

/// First byte hashed for a leaf.
pub const LEAF_PREFIX: u8 = 0x00;
/// First byte hashed for an interior node.
pub const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Length of the inclusion path of leaf `index` in a tree of `size` leaves;
/// `None` if `index >= size`.
pub fn path_len(index: u64, size: u64) -> Option<usize> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut n = 0usize;
    while snode != 0 {
        if fnode & 1 == 0 && fnode == snode {
            // The node has no right sibling at this level: it is promoted.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
        n += 1;
    }
    Some(n)
}

/// The root that `path` leads to from leaf hash `leaf` at `index` in a tree
/// of `size` leaves (RFC 9162 §2.1.3.2), or `None` if the path has the wrong
/// length for that position or `index >= size`.
pub fn root_from_path(
    index: u64,
    size: u64,
    leaf: &[u8; 32],
    path: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// A built tree over one batch of leaf hashes: every level, bottom up.
#[derive(Debug, Clone)]
pub struct MerkleBatch {
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleBatch {
    /// Builds the RFC 6962 tree of `leaves` (pairs hashed left to right; an
    /// odd last node is carried up unchanged, which gives the RFC 6962
    /// shape). `None` for an empty batch.
    pub fn new(leaves: Vec<[u8; 32]>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(top) = levels.last().filter(|l| l.len() > 1) {
            let next = top
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [only] => *only,
                    _ => [0; 32], // chunks(2) yields one or two nodes
                })
                .collect();
            levels.push(next);
        }
        Some(Self { levels })
    }

    /// Number of leaves.
    pub fn size(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The root hash.
    pub fn root(&self) -> [u8; 32] {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or([0; 32])
    }

    /// The inclusion path of leaf `index`, leaf to root; empty if out of range.
    pub fn path(&self, index: usize) -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        if index >= self.size() {
            return out;
        }
        let mut i = index;
        for level in self.levels.iter().take(self.levels.len().saturating_sub(1)) {
            if let Some(sibling) = level.get(i ^ 1) {
                out.push(*sibling);
            }
            i >>= 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::needless_range_loop,
        reason = "test code"
    )]
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n as u64)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect()
    }

    /// RFC 6962 §2.1 MTH, recursively, as the reference.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let mut k = 1;
        while k * 2 < leaves.len() {
            k *= 2;
        }
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    #[test]
    fn every_path_of_every_size_verifies_and_only_there() {
        for n in 1..=70usize {
            let l = leaves(n);
            let tree = MerkleBatch::new(l.clone()).unwrap();
            assert_eq!(tree.root(), mth(&l), "root of {n}");
            for i in 0..n {
                let path = tree.path(i);
                assert_eq!(path_len(i as u64, n as u64), Some(path.len()), "{i}/{n}");
                assert!(path.len() <= 7);
                let got = root_from_path(i as u64, n as u64, &l[i], &path);
                assert_eq!(got, Some(tree.root()), "{i}/{n}");
                // Another index with the same path length leads elsewhere.
                for j in 0..n {
                    if j != i && path_len(j as u64, n as u64) == Some(path.len()) {
                        assert_ne!(
                            root_from_path(j as u64, n as u64, &l[i], &path),
                            Some(tree.root())
                        );
                    }
                }
                // A shorter or longer path is refused outright.
                if let Some((_, shorter)) = path.split_last() {
                    assert_eq!(root_from_path(i as u64, n as u64, &l[i], shorter), None);
                }
                let mut longer = path.clone();
                longer.push([0; 32]);
                assert_eq!(root_from_path(i as u64, n as u64, &l[i], &longer), None);
            }
            assert_eq!(path_len(n as u64, n as u64), None);
        }
    }

    #[test]
    fn the_largest_batch_has_nine_hash_paths() {
        let max = u64::from(crate::tag::MAX_TAG_BATCH);
        let longest = (0..max).filter_map(|i| path_len(i, max)).max();
        assert_eq!(longest, Some(crate::tag::MAX_TAG_PATH));
        let longest_any = (1..=max)
            .flat_map(|n| (0..n).filter_map(move |i| path_len(i, n)))
            .max();
        assert_eq!(longest_any, Some(crate::tag::MAX_TAG_PATH));
    }
}
