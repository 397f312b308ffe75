//! A storage seam: the few durable file operations a store makes, behind a
//! trait, so that tests can make each one fail.
//!
//! [`OsStorage`] is the real implementation. [`FaultyStorage`] wraps it and
//! fails one chosen step in one of two ways ([`Fault`]): the step failed and
//! nothing reached the disk, or the step reached the disk and then reported
//! an error (as an `fsync` that fails after writing back, or a lost reply).
//! A store must survive both: after a reopen, nothing it acknowledged is
//! lost and nothing it never committed is served.
//!
//! # Contract of every [`Storage`] method
//! Each call is durable when it returns `Ok`. On `Err` the step may or may not
//! have reached the disk, and the caller must stop using the files until it
//! reopens them (an `fsync` error cannot be retried safely).

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Mutex;

/// The durable file operations of a store.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Reads a whole file; `None` if it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// Appends `bytes` to `path` (created if missing) and `fsync`s the data.
    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Cuts `path` to `len` bytes and `fsync`s it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Replaces `path` atomically and durably ([`crate::write_atomic`]).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

impl Storage for OsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        crate::read_optional(path)
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(bytes)?;
        f.sync_data()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        crate::write_atomic(path, bytes)
    }
}

/// A durable step that [`FaultyStorage`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// [`Storage::create_dir_all`].
    CreateDir,
    /// [`Storage::append`].
    Append,
    /// [`Storage::truncate`].
    Truncate,
    /// [`Storage::write_atomic`].
    WriteAtomic,
}

/// How an injected failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The step fails and nothing of it reaches the disk.
    NotPersisted,
    /// The step reaches the disk, then reports an error.
    Persisted,
}

/// One armed failure: the `skip`-th next call (0 = the next one) of `step` on
/// a file named `file` fails with `fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The step to fail.
    pub step: Step,
    /// The file name (last path component) it must touch.
    pub file: String,
    /// Matching calls to let through first.
    pub skip: u32,
    /// How it fails.
    pub fault: Fault,
}

/// [`OsStorage`] with one armed, one-shot failure. For tests.
#[derive(Debug, Default)]
pub struct FaultyStorage {
    plan: Mutex<Option<FaultPlan>>,
    fired: Mutex<Option<FaultPlan>>,
}

impl FaultyStorage {
    /// A storage with no failure armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms one failure, replacing any armed one.
    pub fn arm(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.plan.lock() {
            *p = Some(plan);
        }
    }

    /// The failure that fired, if any (and disarms nothing: it is one-shot).
    pub fn fired(&self) -> Option<FaultPlan> {
        self.fired.lock().ok().and_then(|f| f.clone())
    }

    /// Whether this call fails, and how.
    fn check(&self, step: Step, path: &Path) -> Option<Fault> {
        let mut plan = self.plan.lock().ok()?;
        let p = plan.as_mut()?;
        let name = path.file_name()?.to_str()?;
        if p.step != step || p.file != name {
            return None;
        }
        if p.skip > 0 {
            p.skip -= 1;
            return None;
        }
        let fired = plan.take()?;
        let fault = fired.fault;
        if let Ok(mut f) = self.fired.lock() {
            *f = Some(fired);
        }
        Some(fault)
    }

    fn run(&self, step: Step, path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        match self.check(step, path) {
            None => op(),
            Some(Fault::NotPersisted) => Err(injected(step, path)),
            Some(Fault::Persisted) => op().and(Err(injected(step, path))),
        }
    }
}

fn injected(step: Step, path: &Path) -> io::Error {
    io::Error::other(format!("injected fault: {step:?} {}", path.display()))
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.run(Step::CreateDir, dir, || OsStorage.create_dir_all(dir))
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        OsStorage.read(path)
    }

    fn append(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.run(Step::Append, path, || OsStorage.append(path, bytes))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.run(Step::Truncate, path, || OsStorage.truncate(path, len))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.run(Step::WriteAtomic, path, || {
            OsStorage.write_atomic(path, bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_once_on_the_chosen_call_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("entries");
        let s = FaultyStorage::new();
        s.arm(FaultPlan {
            step: Step::Append,
            file: "entries".into(),
            skip: 1,
            fault: Fault::NotPersisted,
        });
        s.append(&p, b"a").unwrap();
        assert!(s.append(&p, b"b").is_err());
        s.append(&p, b"c").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"ac");
        s.arm(FaultPlan {
            step: Step::Append,
            file: "entries".into(),
            skip: 0,
            fault: Fault::Persisted,
        });
        assert!(s.append(&p, b"d").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"acd");
        assert_eq!(s.fired().unwrap().fault, Fault::Persisted);
    }
}
