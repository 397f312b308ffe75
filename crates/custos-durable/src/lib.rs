//! Durable writes of small secret and state files, in one place.
//!
//! Every file that Custos must find intact after a crash (keys, checkpoints,
//! the log's signed-size record, a verifier's last checkpoint, the franking
//! key) is written through this crate, so the rename-and-fsync steps are
//! written down once, here.
//!
//! # Guarantees
//! - [`write_atomic`] replaces a file so that after a crash at any point the
//!   path holds either the whole old content or the whole new content, and the
//!   new content is durable when the call returns.
//! - [`write_new`] creates a file that did not exist, with the same all or
//!   nothing property, and never replaces an existing file.
//! - [`erase_file`] overwrites a file with zeros and removes it, durably.
//! - New files are created with mode `0600` on Unix.
//!
//! # Not guaranteed
//! Overwriting with zeros does not reach copies that the file system or the
//! disk keeps elsewhere (journals, copy-on-write blocks, SSD remapping); it
//! removes the secret from the file and the directory, not from the medium.
//! Concurrent writers of the same path are each atomic, and the last rename
//! wins.
//!
//! # Durable steps of [`write_atomic`] and what a crash at each means
//! 1. Create a temporary file with a unique name in the same directory
//!    (`.NAME.tmp.PID.N`), write the bytes. A crash leaves a stray temporary
//!    file and the old content at the path.
//! 2. `fsync` the temporary file. Until this returns the data may not be on
//!    disk; a crash still leaves the old content at the path.
//! 3. `rename` the temporary file over the path. The rename is atomic: a
//!    reader sees the old or the new file, never a mix. A crash after it may
//!    still find the old name if the directory entry was not written.
//! 4. `fsync` the directory. **This is the commit point**: once it returns
//!    the path names the new content across a crash. A caller must not act on
//!    the new content (answer a client, publish a checkpoint) before it.
//!
//! [`write_new`] takes the same steps with a hard link in place of the rename
//! (the link fails if the path exists), then removes the temporary name.
#![forbid(unsafe_code)]

pub mod seam;

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use seam::{Fault, FaultPlan, FaultyStorage, OsStorage, Step, Storage};

/// Counter that makes temporary names unique within the process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The directory that holds `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary path beside `path` that no other writer uses: the whole file
/// name, the process id and a per-process counter. Files sharing a stem
/// (`checkpoint`, `checkpoint.cosigned`) never share a temporary file.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(tmp))
}

/// Creates `tmp` (which must not exist) with mode 0600, writes `bytes` and
/// fsyncs it (steps 1 and 2 of the module docs).
fn write_temp(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Fsyncs the directory `dir`, so that renames, links and unlinks in it are
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically and durably; see the module docs
/// for each step. On error the path holds the old or the new content, and no
/// temporary file is left behind unless the process died.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let result = write_temp(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // Commit point.
    sync_dir(parent(path))
}

/// Creates `path` with `bytes`, durably, failing with
/// [`io::ErrorKind::AlreadyExists`] if it exists: a key file is never
/// overwritten. A crash leaves either no file or the whole file at `path`.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let result = write_temp(&tmp, bytes).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    result?;
    // Commit point.
    sync_dir(parent(path))
}

/// Overwrites `path` with zeros, fsyncs it, removes it and fsyncs its
/// directory. A missing file is not an error (erasing is idempotent, so a
/// retry after a crash completes it). See the crate docs for what zeroing
/// does not reach.
pub fn erase_file(path: &Path) -> io::Result<()> {
    let mut f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let zeros = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        f.write_all(zeros.get(..n).unwrap_or(&zeros))?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)?;
    sync_dir(parent(path))
}

/// Reads `path`, answering `None` if it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("state");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("key");
        write_new(&p, b"secret").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn write_new_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("key");
        write_new(&p, b"first").unwrap();
        let e = write_new(&p, b"second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn erase_removes_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("share");
        write_atomic(&p, &[7u8; 10_000]).unwrap();
        erase_file(&p).unwrap();
        assert!(!p.exists());
        erase_file(&p).unwrap();
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

    #[test]
    fn one_path_written_concurrently_is_always_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("state");
        let writers: Vec<_> = [b'a', b'b']
            .into_iter()
            .map(|byte| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        write_atomic(&p, &[byte; 300]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 300);
        assert!(got.iter().all(|b| *b == got[0]));
    }
}
