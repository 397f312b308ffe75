//! Durable writes and secure erasure of the custodian's files.
//!
//! `write_atomic`: write a temporary file (mode 0600) in the same directory,
//! fsync it, rename it over the target, fsync the directory. A crash before
//! the rename leaves the old file (and a stray temporary, removed at the next
//! write); after the directory fsync the new content is durable.
//!
//! `erase_file`: overwrite the file's bytes in place with zeros, fsync,
//! unlink, fsync the directory. After it returns, the bytes are gone from the
//! file system's view of the directory and the name is gone durably.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably, with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // Commit point 1: the new content is on disk under the temporary name.
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Commit point 2: the rename is durable; readers see the new content.
    sync_dir(dir)
}

/// Overwrites `path` with zeros, fsyncs, unlinks it and fsyncs its
/// directory. A missing file is already erased.
pub fn erase_file(path: &Path) -> io::Result<()> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
        f.write_all(&zeros)?;
        f.sync_all()?;
    }
    std::fs::remove_file(path)?;
    sync_dir(parent(path)?)
}

fn parent(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no parent directory",
        )),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_erase() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        erase_file(&p).unwrap();
        assert!(!p.exists());
        erase_file(&p).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
