//! Log entries that this custodian has re-hashed against a witnessed
//! checkpoint before acting on any of them.
//!
//! The log serves entries in C2SP entry bundles; nothing in a bundle is
//! trusted. [`VerifiedLog`] keeps the Merkle tree of every entry it has
//! accepted (32 bytes per leaf, about two hashes per entry), appends the
//! new entries of each checkpoint, and accepts them only if the rebuilt
//! tree's root equals the root of a checkpoint that the manifest's trust
//! policy accepted (log signature and witness quorum). A log that serves
//! other bytes than it committed to is therefore detected, not believed:
//! the new entries are dropped and the caller gets
//! [`EntriesError::RootMismatch`].
//!
//! Because every accepted checkpoint's root is recomputed from the same
//! leaves, each accepted checkpoint is also consistent with every earlier
//! one; a checkpoint smaller than what was already accepted is refused
//! ([`EntriesError::Backwards`]).

use custos_tlog::{LogClient, Tree, VerifiedCheckpoint};

/// Why new entries were not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntriesError {
    /// The log could not be read.
    #[error(transparent)]
    Client(#[from] custos_tlog::ClientError),
    /// The entries served do not hash to the checkpoint's root: the log
    /// serves other bytes than it committed to.
    #[error(
        "the log's entries {start}..{end} do not hash to its witnessed checkpoint; it serves altered entries"
    )]
    RootMismatch {
        /// First entry read.
        start: u64,
        /// End of the range read.
        end: u64,
    },
    /// The checkpoint is smaller than one already accepted.
    #[error("the log went backwards: checkpoint size {size} after size {seen}")]
    Backwards {
        /// The offered size.
        size: u64,
        /// The size already accepted.
        seen: u64,
    },
    /// The tree could not be computed (an internal bound).
    #[error("cannot rebuild the log's tree: {0}")]
    Tree(String),
}

/// The entries accepted so far, as a Merkle tree.
#[derive(Debug, Clone, Default)]
pub struct VerifiedLog {
    tree: Tree,
}

impl VerifiedLog {
    /// Nothing accepted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of accepted entries.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Whether `entry` is the accepted entry at `index`.
    pub fn holds(&self, index: u64, entry: &[u8]) -> bool {
        let mut one = Tree::new();
        if one.append_entry(entry).is_err() {
            return false;
        }
        match (one.leaf(0), self.tree.leaf(index)) {
            (Some(a), Some(b)) => bool::from(subtle::ConstantTimeEq::ct_eq(&a.0[..], &b.0[..])),
            _ => false,
        }
    }

    /// Reads the entries between the accepted size and `checkpoint`'s size
    /// and returns them, with their indices, only if the whole tree then
    /// hashes to the checkpoint's root. On any error nothing is accepted.
    pub async fn advance(
        &mut self,
        client: &LogClient,
        checkpoint: &VerifiedCheckpoint,
    ) -> Result<Vec<(u64, Vec<u8>)>, EntriesError> {
        let start = self.tree.size();
        let end = checkpoint.size();
        if end < start {
            return Err(EntriesError::Backwards {
                size: end,
                seen: start,
            });
        }
        if end == start {
            return self.check_root(checkpoint, start).map(|()| Vec::new());
        }
        let entries = client.entries(start, end).await?;
        self.accept(checkpoint, start, entries)
    }

    /// As [`Self::advance`], with the entries already read (tests, tools).
    pub fn accept(
        &mut self,
        checkpoint: &VerifiedCheckpoint,
        start: u64,
        entries: Vec<Vec<u8>>,
    ) -> Result<Vec<(u64, Vec<u8>)>, EntriesError> {
        let end = checkpoint.size();
        if start != self.tree.size() || start.saturating_add(entries.len() as u64) != end {
            return Err(EntriesError::RootMismatch { start, end });
        }
        for e in &entries {
            if let Err(err) = self.tree.append_entry(e) {
                self.tree.truncate(start);
                return Err(EntriesError::Tree(err.to_string()));
            }
        }
        if let Err(e) = self.check_root(checkpoint, start) {
            self.tree.truncate(start);
            return Err(e);
        }
        Ok((start..).zip(entries).collect())
    }

    fn check_root(&self, checkpoint: &VerifiedCheckpoint, start: u64) -> Result<(), EntriesError> {
        let end = checkpoint.size();
        let root = self
            .tree
            .root(end)
            .map_err(|e| EntriesError::Tree(e.to_string()))?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &root.0[..],
            &checkpoint.hash().0[..],
        )) {
            return Err(EntriesError::RootMismatch { start, end });
        }
        Ok(())
    }
}
