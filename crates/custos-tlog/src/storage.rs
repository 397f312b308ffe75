//! Crash-safe storage of the log on local files.
//!
//! Layout of the data directory:
//! - `entries` — every entry, appended, each as `u16 length || bytes`;
//! - `checkpoint` — the latest committed, log-signed checkpoint note;
//! - `checkpoint.cosigned` — the latest checkpoint with witness cosignatures.
//!
//! # Durable steps of one batch ([`LogStore::append_batch`])
//! 1. Append the batch to `entries` and `fsync` it. A crash after this step
//!    leaves bytes past the committed size; no checkpoint covers them and no
//!    submitter was answered, so recovery truncates them.
//! 2. Extend the in-memory tree and sign the new checkpoint (memory only).
//! 3. Write `checkpoint.tmp`, `fsync` it, rename it over `checkpoint`,
//!    `fsync` the directory. **The directory fsync is the commit point.** A
//!    crash before it leaves the old checkpoint (or, if the rename reached
//!    disk, the new one, whose entries are durable since step 1): either way
//!    the state on disk is one the log signed, and nothing signed in step 2
//!    has been shown to anyone.
//! 4. Only then does the caller publish the checkpoint and answer submitters.
//!
//! Recovery ([`LogStore::open`]) reuses the same pieces: it reads
//! `checkpoint`, verifies it with the log's own key, reads exactly that many
//! entries, truncates anything after them, recomputes the tree and refuses to
//! start if the root differs. So the log never serves a checkpoint that is
//! inconsistent with one it served before a crash.
//!
//! An I/O error during a batch poisons the store: the caller stops
//! sequencing, and a restart runs recovery (fsync failures cannot be retried
//! safely).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use signed_note::VerifierList;

use crate::checkpoint::{parse_checkpoint, sign_checkpoint, verified_signers};
use crate::keys::{LogSigner, LogVerifier};
use crate::merkle::{Tree, TreeError};

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
    /// A tree computation failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// Signing or parsing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
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

/// Writes `bytes` to `path` atomically and durably: temp file, fsync,
/// rename, fsync of the directory. Returns once the new content is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let dir = path
        .parent()
        .ok_or_else(|| StorageError::Corrupt("path has no parent".into()))?;
    // The temporary name extends the whole file name: `checkpoint` and
    // `checkpoint.cosigned` are written concurrently by different tasks and
    // must never share a temporary file.
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| StorageError::Corrupt("path has no file name".into()))?
        .to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
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

/// The log's files plus its in-memory tree. Owned by the single sequencer.
pub struct LogStore {
    dir: PathBuf,
    origin: String,
    signer: LogSigner,
    entries: File,
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

impl LogStore {
    /// Opens (or creates) the data directory and recovers it; see the module docs.
    pub fn open(
        dir: &Path,
        origin: &str,
        signer: LogSigner,
        verifier: LogVerifier,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let path = dir.join("entries");
        let mut entries = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let reader = File::open(&path).map_err(io("open", &path))?;
        let cp_path = dir.join("checkpoint");
        let committed = match std::fs::read(&cp_path) {
            Ok(bytes) => {
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &cp_path)(e)),
        };
        let size = committed.as_ref().map_or(0, |c| c.0);

        // Read exactly `size` entries; anything after them was never committed.
        let mut all = Vec::new();
        entries
            .seek(SeekFrom::Start(0))
            .map_err(io("seek", &path))?;
        entries.read_to_end(&mut all).map_err(io("read", &path))?;
        let mut tree = Tree::new();
        let mut offsets = Vec::new();
        let mut pos: usize = 0;
        while tree.size() < size {
            let len = all
                .get(pos..pos + 2)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .map(|b| usize::from(u16::from_be_bytes(b)))
                .ok_or_else(|| StorageError::Corrupt("entries end before the checkpoint".into()))?;
            let entry = all
                .get(pos + 2..pos + 2 + len)
                .ok_or_else(|| StorageError::Corrupt("entries end before the checkpoint".into()))?;
            offsets.push(pos as u64);
            tree.append_entry(entry)?;
            pos += 2 + len;
        }
        let end = pos as u64;
        if (all.len() as u64) > end {
            // Uncommitted tail from a batch that crashed before its commit point.
            entries.set_len(end).map_err(io("truncate", &path))?;
            entries.sync_all().map_err(io("fsync", &path))?;
        }
        let checkpoint = match committed {
            Some((_, hash, bytes)) => {
                if tree.root(size)? != hash {
                    return Err(StorageError::Corrupt(
                        "entries do not hash to the checkpoint root".into(),
                    ));
                }
                bytes
            }
            None => {
                // A new log commits its empty checkpoint, so one always exists.
                let note = sign_checkpoint(&signer, origin, 0, tree.root(0)?)?;
                write_atomic(&dir.join("checkpoint"), &note)?;
                note
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            signer,
            entries,
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
        let path = self.dir.join("entries");
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
        self.entries.write_all(&buf).map_err(io("write", &path))?;
        self.entries.sync_data().map_err(io("fsync", &path))?;
        self.end = pos;
        // Step 2: tree and checkpoint in memory. Readers stay bounded by the
        // old `size` until step 4.
        let (size, root) = {
            let mut view = self.view.write().map_err(poisoned)?;
            for e in batch {
                view.tree.append_entry(e)?;
            }
            view.offsets.extend(offsets);
            let size = view.tree.size();
            (size, view.tree.root(size)?)
        };
        let note = Arc::new(sign_checkpoint(&self.signer, &self.origin, size, root)?);
        // Step 3: commit point.
        write_atomic(&self.dir.join("checkpoint"), &note)?;
        // Step 4: publish.
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
        &self.dir
    }

    /// A handle that reads committed entries concurrently with appends.
    pub fn entry_reader(&self) -> Result<EntryReader, StorageError> {
        let path = self.dir.join("entries");
        Ok(EntryReader {
            file: self.reader.try_clone().map_err(io("open", &path))?,
        })
    }
}

/// Reads entries by file offset (offsets come from [`LogStore::offsets`]).
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ALG_ED25519, NamedKey};

    fn open(dir: &Path) -> Result<LogStore, StorageError> {
        let k = NamedKey::from_seed("log.test", ALG_ED25519, &[3; 32]).unwrap();
        LogStore::open(
            dir,
            "log.test",
            k.log_signer().unwrap(),
            LogVerifier::new("log.test", k.verifying_key()),
        )
    }

    #[test]
    fn reopen_keeps_committed_and_drops_uncommitted_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = open(tmp.path()).unwrap();
        assert_eq!(s.size(), 0);
        let c = s.append_batch(&[b"a".to_vec(), b"bb".to_vec()]).unwrap();
        assert_eq!(c.size, 2);
        drop(s);
        // A batch that reached `entries` but crashed before its commit point.
        let mut f = OpenOptions::new()
            .append(true)
            .open(tmp.path().join("entries"))
            .unwrap();
        f.write_all(&[0, 3, b'x', b'y']).unwrap();
        drop(f);
        let s = open(tmp.path()).unwrap();
        assert_eq!(s.size(), 2);
        assert_eq!(s.checkpoint(), c.checkpoint);
        let r = s.entry_reader().unwrap();
        let off = s.view().read().unwrap().offsets[1];
        assert_eq!(r.read_record(off).unwrap(), vec![0, 2, b'b', b'b']);
        assert_eq!(
            std::fs::metadata(tmp.path().join("entries")).unwrap().len(),
            7
        );
    }

    #[test]
    fn lost_entries_or_foreign_checkpoint_refuse_to_start() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = open(tmp.path()).unwrap();
        s.append_batch(&[b"a".to_vec(), b"bb".to_vec()]).unwrap();
        drop(s);
        let f = OpenOptions::new()
            .write(true)
            .open(tmp.path().join("entries"))
            .unwrap();
        f.set_len(4).unwrap();
        assert!(matches!(open(tmp.path()), Err(StorageError::Corrupt(_))));
        let other = NamedKey::from_seed("log.test", ALG_ED25519, &[4; 32]).unwrap();
        let r = LogStore::open(
            tmp.path(),
            "log.test",
            other.log_signer().unwrap(),
            LogVerifier::new("log.test", other.verifying_key()),
        );
        assert!(matches!(r, Err(StorageError::Checkpoint(_))));
    }

    #[test]
    fn edited_entries_refuse_to_start() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = open(tmp.path()).unwrap();
        s.append_batch(&[b"a".to_vec()]).unwrap();
        drop(s);
        std::fs::write(tmp.path().join("entries"), [0, 1, b'z']).unwrap();
        assert!(matches!(open(tmp.path()), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn files_sharing_a_stem_never_share_a_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("checkpoint");
        let cosigned = tmp.path().join("checkpoint.cosigned");
        let writers: Vec<_> = [(plain.clone(), b'a'), (cosigned.clone(), b'b')]
            .into_iter()
            .map(|(path, byte)| {
                std::thread::spawn(move || {
                    for n in 0..200 {
                        write_atomic(&path, &vec![byte; 64 + n]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert!(std::fs::read(&plain).unwrap().iter().all(|b| *b == b'a'));
        assert!(std::fs::read(&cosigned).unwrap().iter().all(|b| *b == b'b'));
    }
}
