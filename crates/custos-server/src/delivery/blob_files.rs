//! Blob bodies as files of their own, beside the database (`<data>/blobs/<locator>`).
//!
//! # Security meaning
//! - **Durable before acknowledged.** A body is written to `<locator>.tmp`,
//!   fsynced, renamed to `<locator>` and the directory fsynced, all before the
//!   database row that names it commits; the upload is answered only after
//!   that commit. A process killed at any point leaves either no row (the
//!   upload was never acknowledged, and the file, if any, is an orphan) or a
//!   row whose file is complete on disk.
//! - **Written once.** Unlike a body stored in the database's write-ahead log
//!   and copied again by its checkpoint, a file body is written once.
//! - **Orphans are removed.** Files without a row (an upload killed between
//!   the rename and the commit, a `.tmp` of an interrupted write, or a blob
//!   whose row the retention sweep deleted before the process stopped) are
//!   deleted when the service starts ([`BlobFiles::remove_orphans`]).
//! - Only locator-shaped names (64 lower-case hex digits, checked by the
//!   callers before any path is built) are ever opened, so a request cannot
//!   name a path outside the directory.
//!
//! A row stores its body here when its `body` column is empty (blobs are
//! never empty: `POST /v1/blobs` refuses an empty body); rows from before
//! this store keep their body in the column and are served from there.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use sqlx::SqlitePool;

use crate::delivery::blobs::LOCATOR_HEX_LEN;

/// Name of the directory under the data directory.
const DIR_NAME: &str = "blobs";
/// Suffix of a body being written.
const TMP_SUFFIX: &str = ".tmp";

/// The directory of blob bodies.
#[derive(Debug, Clone)]
pub(crate) struct BlobFiles {
    dir: PathBuf,
}

impl BlobFiles {
    /// Opens (creating it if needed) the blob directory under `data_dir`.
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join(DIR_NAME);
        std::fs::create_dir_all(&dir)?;
        sync_dir(data_dir)?;
        Ok(Self { dir })
    }

    /// Writes `body` durably as the blob `locator` (see the module doc).
    pub(crate) async fn write(&self, locator: &str, body: Bytes) -> std::io::Result<()> {
        let dir = self.dir.clone();
        let locator = locator.to_owned();
        blocking(move || {
            let tmp = dir.join(format!("{locator}{TMP_SUFFIX}"));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.write_all(&body)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, dir.join(&locator))?;
            sync_dir(&dir)
        })
        .await
    }

    /// The body of blob `locator`, or `None` when there is no such file.
    pub(crate) async fn read(&self, locator: &str) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.dir.join(locator)).await {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the bodies of `locators` (missing files are not an error).
    pub(crate) async fn remove(&self, locators: Vec<String>) {
        if locators.is_empty() {
            return;
        }
        let dir = self.dir.clone();
        let removed = blocking(move || {
            for locator in &locators {
                remove_if_present(&dir.join(locator))?;
            }
            Ok(locators.len())
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "blob store: expired bodies not deleted (removed at the next start)");
        }
    }

    /// Deletes every file that no row names: interrupted writes and bodies
    /// whose rows are gone. Call before serving, so no upload is in flight.
    pub(crate) async fn remove_orphans(&self, pool: &SqlitePool) -> Result<usize, sqlx::Error> {
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT locator FROM blobs WHERE length(body) = 0")
                .fetch_all(pool)
                .await?;
        let stored: HashSet<String> = stored.into_iter().collect();
        let dir = self.dir.clone();
        blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let keep = name
                    .to_str()
                    .is_some_and(|n| n.len() == LOCATOR_HEX_LEN && stored.contains(n));
                if !keep && entry.file_type()?.is_file() {
                    remove_if_present(&entry.path())?;
                    removed += 1;
                }
            }
            if removed > 0 {
                sync_dir(&dir)?;
            }
            Ok(removed)
        })
        .await
        .map_err(sqlx::Error::Io)
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a rename or a new entry in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
