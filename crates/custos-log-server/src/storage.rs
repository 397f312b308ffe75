//! Crash-safe storage of the log on local files.
//!
//! Layout of the data directory:
//! - `entries` — every entry, appended, each as `u16 length || bytes`;
//! - `checkpoint` — the latest committed, log-signed checkpoint note;
//! - `checkpoint.cosigned` — the latest checkpoint with witness cosignatures.
//!
//! Outside the data directory, beside the log's key, the **signed-size
//! record** ([`SignedSize`]) holds the largest size the log has ever signed
//! and its root. Restoring or deleting files in the data directory cannot
//! roll it back, so the log never signs a smaller size again: it never
//! shrinks and never forks.
//!
//! All file operations go through a [`Storage`] seam, so tests can fail each
//! durable step ([`custos_durable::FaultyStorage`]).
//!
//! # Durable steps of one batch ([`LogStore::append_batch`])
//! 1. Append the batch to `entries` and `fsync` it. A crash after this step
//!    leaves bytes past the committed size that nobody was answered for.
//! 2. Extend the in-memory tree and sign the new checkpoint (memory only).
//! 3. Replace the signed-size record with the new size and root
//!    ([`custos_durable::write_atomic`]). A crash after it and before step 4
//!    leaves a record ahead of `checkpoint`; recovery re-signs the
//!    checkpoint at the recorded size from `entries`, which hold it since
//!    step 1.
//! 4. Replace `checkpoint` with the new note. **Its directory fsync is the
//!    commit point.** A crash before it leaves the old checkpoint (or the new
//!    one, if the rename reached disk), both covered by durable entries.
//! 5. Only then does the caller publish the checkpoint and answer submitters.
//!
//! # Recovery ([`LogStore::open`])
//! It reads the signed-size record and `checkpoint` (verified with the log's
//! own key), and takes the larger of the two sizes as the log's size. It
//! reads exactly that many entries, checks that they hash to both roots,
//! re-signs the checkpoint if `checkpoint` is behind or missing, and cuts
//! `entries` after them (bytes no checkpoint ever covered). It **refuses to
//! start** if `entries` hold fewer entries than the log has signed, if a
//! root differs, or if `entries` hold data while neither a checkpoint nor a
//! signed-size record exists: a public log is restored from a backup, never
//! reset.
//!
//! An I/O error during a batch poisons the store: the caller stops
//! sequencing, and a restart runs recovery (fsync failures cannot be retried
//! safely).

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use custos_durable::{OsStorage, Storage};
use custos_tlog::checkpoint::{parse_checkpoint, sign_checkpoint, verified_signers};
use custos_tlog::keys::{LogSigner, LogVerifier};
use custos_tlog::merkle::{Hash, Tree, TreeError};
use custos_tlog::signed_size::{SignedSize, SignedSizeError};
use signed_note::VerifierList;

/// Longest entry: the u16 bound of C2SP entry bundles.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Why storage failed. Every variant except `Entry` means the log must stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// Operation.
        what: &'static str,
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The files contradict each other (lost or edited data).
    #[error("data directory is corrupt: {0}; restore it from a backup, never reset a public log")]
    Corrupt(String),
    /// `entries` hold fewer entries than the log has signed: starting would
    /// shrink (and then fork) the public log.
    #[error(
        "the log has signed size {signed} but `entries` hold {found} entries; restore the data directory from a backup, never reset a public log"
    )]
    BehindSigned {
        /// Largest size the log signed.
        signed: u64,
        /// Entries found.
        found: u64,
    },
    /// The signed-size record is unreadable or belongs to another log.
    #[error(transparent)]
    SignedSize(#[from] SignedSizeError),
    /// A tree computation failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Signing or parsing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] custos_tlog::checkpoint::CheckpointError),
    /// An entry is empty or too long.
    #[error("entry of {0} bytes is outside 1..=65535")]
    Entry(usize),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// What readers may see: the tree (which may run ahead of `size` while a
/// batch is being committed), entry offsets, and the committed size and
/// checkpoint. Readers must bound every access by `size`.
#[derive(Debug)]
pub struct Published {
    /// The tree; entries at `size` and beyond are not committed yet.
    pub tree: Tree,
    /// File offset of every entry in the tree.
    pub offsets: Vec<u64>,
    /// Committed size.
    pub size: u64,
    /// Committed, log-signed checkpoint note of `size`.
    pub checkpoint: Arc<Vec<u8>>,
}

/// Shared handle on [`Published`].
pub type SharedView = Arc<RwLock<Published>>;

/// Where a log's files are.
#[derive(Debug, Clone)]
pub struct StorePaths {
    /// The data directory.
    pub data: PathBuf,
    /// The signed-size record, beside the key and outside `data`
    /// ([`custos_tlog::signed_size::signed_size_path`]).
    pub signed_size: PathBuf,
}

/// The log's files plus its in-memory tree. Owned by the single sequencer.
pub struct LogStore {
    storage: Arc<dyn Storage>,
    paths: StorePaths,
    origin: String,
    signer: LogSigner,
    reader: File,
    end: u64,
    view: SharedView,
}

fn poisoned<T>(_: T) -> StorageError {
    StorageError::Corrupt("in-memory state lock poisoned by an earlier failure".into())
}

/// What one committed batch produced.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Size of the tree after the batch.
    pub size: u64,
    /// The new checkpoint note (durable).
    pub checkpoint: Vec<u8>,
}

/// The complete records at the start of `all`: (offset, entry) of each, up
/// to a torn or zero-length record.
fn records(all: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut rest = all;
    let mut pos = 0u64;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        let Some((entry, tail)) = tail.split_at_checked(len) else {
            break;
        };
        if len == 0 {
            break;
        }
        out.push((pos, entry));
        pos += 2 + len as u64;
        rest = tail;
    }
    out
}

impl LogStore {
    /// Opens (or creates) the log on the real file system and recovers it;
    /// see the module docs.
    pub fn open(
        paths: &StorePaths,
        origin: &str,
        signer: LogSigner,
        verifier: LogVerifier,
    ) -> Result<Self, StorageError> {
        Self::open_with(Arc::new(OsStorage), paths, origin, signer, verifier)
    }

    /// [`LogStore::open`] through the given storage seam.
    pub fn open_with(
        storage: Arc<dyn Storage>,
        paths: &StorePaths,
        origin: &str,
        signer: LogSigner,
        verifier: LogVerifier,
    ) -> Result<Self, StorageError> {
        let dir = &paths.data;
        storage
            .create_dir_all(dir)
            .map_err(io("create directory", dir))?;
        let record_path = &paths.signed_size;
        let record = storage
            .read(record_path)
            .map_err(io("read", record_path))?
            .map(|b| SignedSize::decode(&b, origin))
            .transpose()?;
        let cp_path = dir.join("checkpoint");
        let committed = match storage.read(&cp_path).map_err(io("read", &cp_path))? {
            Some(bytes) => {
                let parsed = parse_checkpoint(&bytes)?;
                verified_signers(&parsed.note, VerifierList::new(vec![Box::new(verifier)]))?;
                if parsed.checkpoint.origin() != origin {
                    return Err(StorageError::Corrupt(format!(
                        "checkpoint origin is {}, expected {origin}",
                        parsed.checkpoint.origin()
                    )));
                }
                Some((parsed.checkpoint.size(), *parsed.checkpoint.hash(), bytes))
            }
            None => None,
        };
        let path = dir.join("entries");
        let all = storage
            .read(&path)
            .map_err(io("read", &path))?
            .unwrap_or_default();
        let found = records(&all);
        if committed.is_none() && record.is_none() && !found.is_empty() {
            return Err(StorageError::Corrupt(format!(
                "`entries` hold {} entries but there is neither a checkpoint nor a signed-size record",
                found.len()
            )));
        }
        // The log's size: the largest it has signed.
        let size = committed
            .as_ref()
            .map_or(0, |c| c.0)
            .max(record.map_or(0, |r| r.size));
        let count = usize::try_from(size).map_err(|_| StorageError::BehindSigned {
            signed: size,
            found: found.len() as u64,
        })?;
        let kept = found.get(..count).ok_or(StorageError::BehindSigned {
            signed: size,
            found: found.len() as u64,
        })?;
        let mut tree = Tree::new();
        let mut offsets = Vec::with_capacity(kept.len());
        for (offset, entry) in kept {
            offsets.push(*offset);
            tree.append_entry(entry)?;
        }
        let end = kept
            .last()
            .map_or(0, |(offset, entry)| offset + 2 + entry.len() as u64);
        let root = tree.root(size)?;
        let check = |at: u64, hash: Hash, what: &str| -> Result<(), StorageError> {
            if tree.root(at)? == hash {
                Ok(())
            } else {
                Err(StorageError::Corrupt(format!(
                    "entries do not hash to the root of the {what} (size {at})"
                )))
            }
        };
        if let Some((c, hash, _)) = &committed {
            check(*c, *hash, "checkpoint")?;
        }
        if let Some(r) = record {
            check(r.size, r.root, "signed-size record")?;
        }
        if (all.len() as u64) > end {
            // Bytes after the log's size were never covered by a signature.
            storage
                .truncate(&path, end)
                .map_err(io("truncate", &path))?;
        } else if all.is_empty() {
            storage.append(&path, &[]).map_err(io("create", &path))?;
        }
        let reader = File::open(&path).map_err(io("open", &path))?;
        // The signed-size record first (a new log, a record lost with the
        // key's directory, or a checkpoint ahead of it after a crash).
        if record.is_none_or(|r| r.size < size) {
            let r = SignedSize { size, root };
            storage
                .write_atomic(record_path, &r.encode(origin))
                .map_err(io("write", record_path))?;
        }
        let checkpoint = match committed {
            Some((c, _, bytes)) if c == size => bytes,
            _ => {
                // Missing or behind the signed size: sign the log's size again.
                let note = sign_checkpoint(&signer, origin, size, root)?;
                storage
                    .write_atomic(&cp_path, &note)
                    .map_err(io("write", &cp_path))?;
                note
            }
        };
        Ok(Self {
            storage,
            paths: paths.clone(),
            origin: origin.to_owned(),
            signer,
            reader,
            end,
            view: Arc::new(RwLock::new(Published {
                tree,
                offsets,
                size,
                checkpoint: Arc::new(checkpoint),
            })),
        })
    }

    /// Appends `batch` durably and commits a checkpoint covering it; see the
    /// module docs for each step. On error the store must not be used again.
    pub fn append_batch(&mut self, batch: &[Vec<u8>]) -> Result<Committed, StorageError> {
        let path = self.paths.data.join("entries");
        let mut buf = Vec::with_capacity(batch.iter().map(|e| e.len() + 2).sum());
        let mut offsets = Vec::with_capacity(batch.len());
        let mut pos = self.end;
        for e in batch {
            let len = u16::try_from(e.len()).map_err(|_| StorageError::Entry(e.len()))?;
            if len == 0 {
                return Err(StorageError::Entry(0));
            }
            offsets.push(pos);
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(e);
            pos += 2 + u64::from(len);
        }
        // Step 1: entries durable.
        self.storage
            .append(&path, &buf)
            .map_err(io("append", &path))?;
        self.end = pos;
        // Step 2: tree and checkpoint in memory. Readers stay bounded by the
        // old `size` until step 5.
        let (old, size, root) = {
            let mut view = self.view.write().map_err(poisoned)?;
            for e in batch {
                view.tree.append_entry(e)?;
            }
            view.offsets.extend(offsets);
            let size = view.tree.size();
            (view.size, size, view.tree.root(size)?)
        };
        if size <= old {
            return Err(StorageError::Corrupt(format!(
                "refusing to sign size {size} after size {old}"
            )));
        }
        let note = Arc::new(sign_checkpoint(&self.signer, &self.origin, size, root)?);
        // Step 3: the signed size, beside the key.
        let record = &self.paths.signed_size;
        self.storage
            .write_atomic(record, &SignedSize { size, root }.encode(&self.origin))
            .map_err(io("write", record))?;
        // Step 4: commit point.
        let cp_path = self.paths.data.join("checkpoint");
        self.storage
            .write_atomic(&cp_path, &note)
            .map_err(io("write", &cp_path))?;
        // Step 5: publish.
        let mut view = self.view.write().map_err(poisoned)?;
        view.size = size;
        view.checkpoint = Arc::clone(&note);
        Ok(Committed {
            size,
            checkpoint: note.to_vec(),
        })
    }

    /// The view shared with readers.
    pub fn view(&self) -> SharedView {
        Arc::clone(&self.view)
    }

    /// The latest committed checkpoint note.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.view
            .read()
            .map(|v| v.checkpoint.to_vec())
            .unwrap_or_default()
    }

    /// The committed size.
    pub fn size(&self) -> u64 {
        self.view.read().map(|v| v.size).unwrap_or(0)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.paths.data
    }

    /// The storage seam the store writes through.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// A handle that reads committed entries concurrently with appends.
    pub fn entry_reader(&self) -> Result<EntryReader, StorageError> {
        let path = self.paths.data.join("entries");
        Ok(EntryReader {
            file: self.reader.try_clone().map_err(io("open", &path))?,
        })
    }
}

/// Reads entries by file offset (offsets come from [`Published::offsets`]).
#[derive(Debug)]
pub struct EntryReader {
    file: File,
}

impl EntryReader {
    /// Reads the length-prefixed record at `offset`, prefix included.
    pub fn read_record(&self, offset: u64) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 2];
        self.file.read_exact_at(&mut len, offset)?;
        let n = usize::from(u16::from_be_bytes(len));
        let mut out = vec![0u8; n + 2];
        self.file.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    /// Reads the length-prefixed records at `offsets`, prefixes included,
    /// in one read: consecutive entries lie one after another in the file
    /// (an entry bundle is one read, not two per entry). Refuses with
    /// `InvalidData`, reading nothing more, unless the records found start
    /// at exactly `offsets` and end where the last one ends.
    pub fn read_records(&self, offsets: &[u64]) -> std::io::Result<Vec<u8>> {
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(Vec::new());
        };
        let invalid =
            || std::io::Error::new(std::io::ErrorKind::InvalidData, "entries not consecutive");
        let mut len = [0u8; 2];
        self.file.read_exact_at(&mut len, last)?;
        let end = last
            .checked_add(2 + u64::from(u16::from_be_bytes(len)))
            .ok_or_else(invalid)?;
        let total = end
            .checked_sub(first)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or_else(invalid)?;
        // At most as many bytes as the records could hold.
        if total > offsets.len().saturating_mul(2 + usize::from(u16::MAX)) {
            return Err(invalid());
        }
        let mut out = vec![0u8; total];
        self.file.read_exact_at(&mut out, first)?;
        let mut pos = 0usize;
        for &offset in offsets {
            if offset.checked_sub(first) != u64::try_from(pos).ok() {
                return Err(invalid());
            }
            let prefix = out
                .get(pos..pos + 2)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .ok_or_else(invalid)?;
            pos += 2 + usize::from(u16::from_be_bytes(prefix));
        }
        if pos != total {
            return Err(invalid());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
