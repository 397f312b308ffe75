//! The RFC 9162 (RFC 6962) Merkle tree, held as `tlog_tiles` stored hashes,
//! and the C2SP tlog-tiles coordinates served from it.
//!
//! Hashing and proofs come from `tlog_tiles`; this module only stores the
//! hashes and checks every index against the tree size first, so that no
//! request can reach an internal assertion of the library.

use tlog_tiles::{
    HashReader, node_hash, prove_record, prove_tree, record_hash, stored_hash_count,
    stored_hash_index, stored_hashes_for_record_hash, tree_hash,
};

pub use tlog_tiles::{EMPTY_HASH, HASH_SIZE, Hash};

/// Hashes per full tile (C2SP tlog-tiles: height 8).
pub const TILE_WIDTH: u64 = 256;

/// Most hashes any proof over a `u64`-sized tree can hold; longer proofs are
/// refused before they reach the verifier.
pub const MAX_PROOF_HASHES: usize = 64;

/// Why a tree operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// An index or size beyond the tree.
    #[error("index {index} is not in a tree of size {size}")]
    OutOfRange {
        /// Requested index or size.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The proof library refused the inputs (an internal error).
    #[error("tree computation failed: {0}")]
    Tlog(#[from] tlog_tiles::Error),
}

/// An append-only Merkle tree of entry hashes, kept in memory.
///
/// Holds every stored hash (about two per entry), so proofs and tiles for any
/// size up to [`Tree::size`] can be produced without touching disk.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    hashes: Vec<Hash>,
    size: u64,
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.hashes.get(i))
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one entry (its bytes, hashed as an RFC 6962 leaf).
    pub fn append_entry(&mut self, entry: &[u8]) -> Result<u64, TreeError> {
        self.append_leaf(record_hash(entry))
    }

    /// Appends one leaf hash; returns its index.
    pub fn append_leaf(&mut self, leaf: Hash) -> Result<u64, TreeError> {
        let index = self.size;
        let new = stored_hashes_for_record_hash(index, leaf, self)?;
        self.hashes.extend(new);
        self.size += 1;
        Ok(index)
    }

    /// The leaf hash of entry `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(stored_hash_index(0, index)).ok()?;
        self.hashes.get(i).copied()
    }

    /// Drops every entry from `size` on (used to undo an append that was not committed).
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let keep = usize::try_from(stored_hash_count(size)).unwrap_or(usize::MAX);
            self.hashes.truncate(keep);
            self.size = size;
        }
    }

    /// Root hash of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        self.check(size, size)?;
        Ok(tree_hash(size, self)?)
    }

    /// Inclusion proof for entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check(size, size)?;
        if index >= size {
            return Err(TreeError::OutOfRange { index, size });
        }
        Ok(prove_record(size, index, self)?)
    }

    /// Consistency proof from the tree of `old` entries to the tree of `size`
    /// entries (empty when `old` is 0 or equal to `size`).
    pub fn consistency_proof(&self, old: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check(size, size)?;
        if old > size {
            return Err(TreeError::OutOfRange { index: old, size });
        }
        if old == 0 || old == size {
            return Ok(Vec::new());
        }
        Ok(prove_tree(size, old, self)?)
    }

    /// Data of the C2SP tile at `level`, index `n`, `width` hashes wide, if
    /// every hash in it is covered by the first `size` entries.
    pub fn tile(&self, level: u8, n: u64, width: u64, size: u64) -> Option<Vec<u8>> {
        if size > self.size || width == 0 || width > TILE_WIDTH || level > 63 {
            return None;
        }
        let span = 1u64.checked_shl(8 * u32::from(level))?;
        let start = n.checked_mul(TILE_WIDTH)?;
        let end = start.checked_add(width)?;
        if end.checked_mul(span)? > size {
            return None;
        }
        let mut out = Vec::with_capacity(usize::try_from(width).ok()? * HASH_SIZE);
        for i in start..end {
            let idx = usize::try_from(stored_hash_index(8 * level, i)).ok()?;
            out.extend_from_slice(&self.hashes.get(idx)?.0);
        }
        Some(out)
    }

    fn check(&self, size: u64, index: u64) -> Result<(), TreeError> {
        if size > self.size {
            return Err(TreeError::OutOfRange {
                index,
                size: self.size,
            });
        }
        Ok(())
    }
}

/// The RFC 9162 root of entries seen one at a time, in memory logarithmic
/// in their number: the roots of the complete subtrees so far (one per set
/// bit of the size), merged as entries arrive. For replaying a whole log
/// without keeping its hashes (an audit); use [`Tree`] for proofs.
#[derive(Debug, Clone, Default)]
pub struct StreamingRoot {
    /// Roots of the complete subtrees, largest (leftmost) first.
    stack: Vec<Hash>,
    size: u64,
}

impl StreamingRoot {
    /// No entries yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries seen.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds one entry (its bytes, hashed as an RFC 6962 leaf).
    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push_leaf(record_hash(entry));
    }

    /// Adds one leaf hash.
    pub fn push_leaf(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut n = self.size;
        // Each trailing set bit of the old size is a complete subtree of the
        // same height as the one being built: merge them.
        while n & 1 == 1 {
            let Some(left) = self.stack.pop() else { break };
            hash = node_hash(left, hash);
            n >>= 1;
        }
        self.stack.push(hash);
        self.size += 1;
    }

    /// The root of the entries seen so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&last) = it.next() else {
            return EMPTY_HASH;
        };
        it.fold(last, |right, &left| node_hash(left, right))
    }
}

/// A parsed C2SP tlog-tiles resource path (the part after `tile/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    /// `None` for an entry bundle, else the tile level (0..=63).
    pub level: Option<u8>,
    /// Tile index within its level.
    pub n: u64,
    /// Width: 1..=255 for partial tiles, 256 for full ones.
    pub width: u64,
}

impl TilePath {
    /// Parses `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, accepting only the
    /// canonical encoding (it must re-encode to the same string).
    pub fn parse(path: &str) -> Option<Self> {
        if path.len() > 64 {
            return None;
        }
        let mut segs: Vec<&str> = path.split('/').collect();
        let first = *segs.first()?;
        let level = if first == "entries" {
            None
        } else {
            let l: u8 = first.parse().ok()?;
            if l > 63 {
                return None;
            }
            Some(l)
        };
        let mut width = TILE_WIDTH;
        if segs.len() >= 3 {
            let last_n = segs.len().checked_sub(2)?;
            if let Some(stripped) = segs.get(last_n)?.strip_suffix(".p") {
                width = segs.last()?.parse().ok()?;
                if width == 0 || width >= TILE_WIDTH {
                    return None;
                }
                *segs.get_mut(last_n)? = stripped;
                segs.pop();
            }
        }
        let mut n: u64 = 0;
        let groups = segs.get(1..)?;
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x')?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let d: u64 = digits.parse().ok()?;
            n = n.checked_mul(1000)?.checked_add(d)?;
        }
        let parsed = Self { level, n, width };
        (parsed.to_path() == path).then_some(parsed)
    }

    /// The canonical path, without the leading `tile/`.
    pub fn to_path(&self) -> String {
        let mut groups = vec![format!("{:03}", self.n % 1000)];
        let mut rest = self.n / 1000;
        while rest > 0 {
            groups.push(format!("x{:03}", rest % 1000));
            rest /= 1000;
        }
        groups.reverse();
        let head = match self.level {
            None => "entries".to_string(),
            Some(l) => l.to_string(),
        };
        let mut s = format!("{head}/{}", groups.join("/"));
        if self.width != TILE_WIDTH {
            s.push_str(&format!(".p/{}", self.width));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog_tiles::{check_record, check_tree};

    #[test]
    fn proofs_verify_for_every_pair_in_a_small_tree() {
        let mut t = Tree::new();
        for i in 0..40u32 {
            t.append_entry(&i.to_be_bytes()).unwrap();
        }
        for size in 1..=40u64 {
            let root = t.root(size).unwrap();
            for i in 0..size {
                let p = t.inclusion_proof(i, size).unwrap();
                let leaf = record_hash(&u32::try_from(i).unwrap().to_be_bytes());
                check_record(&p, size, root, i, leaf).unwrap();
            }
            for old in 1..=size {
                let p = t.consistency_proof(old, size).unwrap();
                check_tree(&p, size, root, old, t.root(old).unwrap()).unwrap();
            }
        }
        assert!(t.inclusion_proof(40, 40).is_err());
        assert!(t.root(41).is_err());
    }

    #[test]
    fn rfc6962_reference_roots() {
        // Empty tree and one-leaf tree, from RFC 6962 section 2.1.
        let t = Tree::new();
        assert_eq!(t.root(0).unwrap(), EMPTY_HASH);
        let mut t = Tree::new();
        t.append_entry(b"").unwrap();
        assert_eq!(
            hex::encode(t.root(1).unwrap().0),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn streaming_root_equals_the_tree_root_at_every_size() {
        let mut t = Tree::new();
        let mut s = StreamingRoot::new();
        assert_eq!(s.root(), EMPTY_HASH);
        for i in 0..600u32 {
            t.append_entry(&i.to_be_bytes()).unwrap();
            s.push_entry(&i.to_be_bytes());
            assert_eq!(s.size(), t.size());
            assert_eq!(s.root(), t.root(t.size()).unwrap(), "size {}", t.size());
        }
    }

    #[test]
    fn truncate_undoes_appends() {
        let mut t = Tree::new();
        for i in 0..10u8 {
            t.append_entry(&[i]).unwrap();
        }
        let root7 = t.root(7).unwrap();
        t.truncate(7);
        assert_eq!(t.size(), 7);
        assert_eq!(t.root(7).unwrap(), root7);
        t.append_entry(&[7]).unwrap();
        assert_eq!(t.size(), 8);
    }

    #[test]
    fn tile_paths_are_canonical() {
        let p = TilePath::parse("0/x001/x234/067.p/8").unwrap();
        assert_eq!(
            p,
            TilePath {
                level: Some(0),
                n: 1_234_067,
                width: 8
            }
        );
        assert_eq!(
            TilePath::parse("entries/005").unwrap(),
            TilePath {
                level: None,
                n: 5,
                width: 256
            }
        );
        for bad in [
            "0/5",
            "0/x000/005",
            "64/000",
            "00/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "entries/000/",
            "",
            "0",
            "0/x18446744073709551616/000",
            "1/x018/x446/x744/x073/x709/x551/616",
        ] {
            assert!(TilePath::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tiles_hash_to_the_tree() {
        let mut t = Tree::new();
        for i in 0..600u32 {
            t.append_entry(&i.to_be_bytes()).unwrap();
        }
        let full = t.tile(0, 0, 256, 600).unwrap();
        assert_eq!(full.len(), 256 * 32);
        assert_eq!(&full[..32], &record_hash(&0u32.to_be_bytes()).0);
        assert!(t.tile(0, 2, 256, 600).is_none());
        assert_eq!(t.tile(0, 2, 88, 600).unwrap().len(), 88 * 32);
        let level1 = t.tile(1, 0, 2, 600).unwrap();
        assert_eq!(&level1[..32], &t.root(256).unwrap().0);
        assert!(t.tile(1, 0, 3, 600).is_none());
        assert!(t.tile(9, 0, 1, 600).is_none());
    }

    proptest::proptest! {
        #[test]
        fn prop_tile_paths_round_trip(level in proptest::option::of(0u8..=63), n in proptest::prelude::any::<u64>(), width in 1u64..=256) {
            let p = TilePath { level, n, width };
            proptest::prop_assert_eq!(TilePath::parse(&p.to_path()), Some(p));
        }

        #[test]
        fn prop_proofs_verify(size in 1u64..300, seed in proptest::prelude::any::<u64>()) {
            let mut t = Tree::new();
            for i in 0..size {
                t.append_entry(&(i ^ seed).to_be_bytes()).unwrap();
            }
            let index = seed % size;
            let old = 1 + seed % size;
            let root = t.root(size).unwrap();
            let p = t.inclusion_proof(index, size).unwrap();
            tlog_tiles::check_record(&p, size, root, index, record_hash(&(index ^ seed).to_be_bytes())).unwrap();
            let c = t.consistency_proof(old, size).unwrap();
            proptest::prop_assert!(crate::verifier::verify_consistency(old, t.root(old).unwrap(), size, root, &c));
        }
    }
}
