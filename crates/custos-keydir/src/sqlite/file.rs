//! The directory's own SQLite file, and when its write-ahead log is copied
//! into it.
//!
//! An epoch of 10,000 changes on a directory of a million accounts rewrites
//! some 90,000 tree nodes spread over most of the node table's pages: about
//! 230 MB of WAL. By default SQLite copies the WAL into the database file
//! (a checkpoint) in whichever connection commits past 1,000 pages of WAL,
//! so the epoch's own commit paid for it: about 0.7 s of a 3 s publication
//! (BENCHMARKS.md, session 13). In the directory's file automatic
//! checkpoints are off ([`options`]) and its publisher runs
//! [`super::SqliteDirectory::checkpoint`] once the epoch is published and
//! logged, when no device waits on it.
//!
//! The directory therefore has a file of its own, apart from the delivery
//! service's: with automatic checkpoints on there, any delivery commit
//! after an epoch would run the epoch's checkpoint, and every delivery
//! commit would share a WAL with the tree's pages.
//!
//! # Durability
//! Unchanged by when checkpoints run: a commit is durable once its WAL
//! frames are synced (`synchronous = FULL`), and SQLite replays committed
//! frames from the WAL when it opens the file after a crash. A checkpoint
//! moves committed pages into the main file and nothing else.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

use super::{ROW_KEY_OF_AKD_ID, SqliteDirectory};

/// The file's layout (`PRAGMA user_version`): 1, tree-node rows under their
/// row keys (the tree in pre-order, `row_key`); 0, under `akd`'s ids, as
/// files were written before.
const FILE_VERSION: i64 = 1;

/// Connections to the directory's file at `path`: WAL, every commit synced,
/// temporary storage in memory, no automatic checkpoints (module docs).
pub fn options(path: &Path) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", "0")
        .disable_statement_logging())
}

/// Opens (creating if needed) the directory's database file at `path`
/// with [`super::SCHEMA`], and copies into it whatever WAL an earlier
/// process left uncopied.
///
/// A damaged file is refused with a message naming it: one SQLite finds
/// corrupt, and one shorter than its pages (cut short by a bad copy or a
/// full disk), which SQLite itself would notice only when a lookup reads a
/// missing page.
pub async fn open_file(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options(path)?)
        .await
        .map_err(|e| damaged_or(path, e))?;
    SqliteDirectory::create_schema(&pool)
        .await
        .map_err(|e| damaged_or(path, e))?;
    upgrade(&pool).await.map_err(|e| damaged_or(path, e))?;
    let copied_in = SqliteDirectory::new(pool.clone())
        .checkpoint()
        .await
        .map_err(|e| damaged_or(path, e))?;
    if copied_in {
        check_length(&pool, path).await?;
    }
    Ok(pool)
}

/// With the WAL copied in, the file must hold every page SQLite counts.
async fn check_length(pool: &SqlitePool, path: &Path) -> Result<(), sqlx::Error> {
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(pool)
        .await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(pool)
        .await?;
    let needed = u64::try_from(pages.saturating_mul(page_size)).unwrap_or(u64::MAX);
    let held = std::fs::metadata(path).map_err(sqlx::Error::Io)?.len();
    if held < needed {
        return Err(damaged(
            path,
            &format!("truncated: it holds {held} bytes of its {needed}"),
        ));
    }
    Ok(())
}

/// `e`, or, when SQLite found the file corrupt or not a database, a
/// refusal that names the file.
fn damaged_or(path: &Path, e: sqlx::Error) -> sqlx::Error {
    // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), with extended codes.
    let corrupt = e
        .as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 11 | 26));
    if corrupt {
        damaged(path, &e.to_string())
    } else {
        e
    }
}

fn damaged(path: &Path, detail: &str) -> sqlx::Error {
    sqlx::Error::Configuration(
        format!(
            "the key directory file {} is damaged ({detail}); restore it from a backup \
             (devices refuse a directory older than the one they verified)",
            path.display()
        )
        .into(),
    )
}

/// Moves a version-0 file's tree-node rows to their row keys, in one
/// transaction with the new version: a crash leaves the file at version 0
/// or 1, never between. A file of a newer layout is refused.
async fn upgrade(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await?;
    if version > FILE_VERSION {
        return Err(sqlx::Error::Configuration(
            format!(
                "the key directory file has layout {version}; this build reads up to {FILE_VERSION}"
            )
            .into(),
        ));
    }
    if version == FILE_VERSION {
        return Ok(());
    }
    // Only the constant expression and version are formatted in.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE kd_records_in_row_order (key BLOB PRIMARY KEY, record BLOB NOT NULL) \
             WITHOUT ROWID;
         INSERT INTO kd_records_in_row_order (key, record) \
             SELECT {ROW_KEY_OF_AKD_ID}, record FROM kd_records ORDER BY 1;
         DROP TABLE kd_records;
         ALTER TABLE kd_records_in_row_order RENAME TO kd_records;
         PRAGMA user_version = {FILE_VERSION};"
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
