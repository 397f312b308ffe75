//! The SQLite database: opening, pragmas, schema.
//!
//! # Durability
//! The database runs in WAL mode. The pool's connections (accounts,
//! KeyPackages, reports) use `synchronous = FULL`: every commit appends its
//! pages to the WAL and fsyncs it before `COMMIT` returns. The writer's
//! connection uses `synchronous = NORMAL` and fsyncs the WAL file itself,
//! off its critical path, before it acknowledges anything
//! ([`crate::delivery::writer`]): the same fsync `FULL` would do, shared by every
//! batch committed meanwhile. A crash (process kill or power loss) after that
//! fsync keeps the transactions; a crash before keeps none that was
//! acknowledged (SQLite ignores WAL frames that did not reach the disk with
//! a valid checksum and commit frame).
//!
//! Recovery needs no code of ours: SQLite replays the WAL when it opens the
//! database, and the writer then reloads its counters from the `counters` row
//! that was committed with the last batch.

use std::fs::File;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::error::DeliveryServiceError;

/// Schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 9;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "custos-server.db";
/// File name of the key directory's own database inside the data
/// directory (`custos_keydir::sqlite::open_file`: its epochs' pages and
/// checkpoints kept apart from the delivery service's).
pub const KEYDIR_FILE: &str = "custos-keydir.db";
const LOCK_FILE: &str = "custos-server.lock";

const SCHEMA_V1: &str = r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    identity_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
-- One device per account for now; mailboxes, sessions and routing are keyed
-- by device so that more can be added.
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX devices_account ON devices(account_id);
-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    device_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE key_packages (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    last_resort INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX key_packages_account ON key_packages(account_id, last_resort, id);
CREATE TABLE conversations (
    id BLOB PRIMARY KEY,
    epoch INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Routing information only; the MLS roster is the security boundary.
CREATE TABLE members (
    conversation BLOB NOT NULL,
    account_id INTEGER NOT NULL,
    PRIMARY KEY (conversation, account_id)
) WITHOUT ROWID;
CREATE INDEX members_account ON members(account_id);
-- Stored items (ciphertext only), deleted once every recipient device acked
-- or at expires_at.
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    server_time INTEGER NOT NULL,
    conversation BLOB NOT NULL,
    sender TEXT NOT NULL,
    tag BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE mailbox (
    device_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX mailbox_item ON mailbox(item_id);
-- SHA-256 of every accepted envelope and announcement until its TTL, to
-- refuse replays even after the item itself was acked and deleted.
CREATE TABLE seen (
    hash BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Next mailbox seq and item id; written in the same transaction as each batch.
CREATE TABLE counters (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq INTEGER NOT NULL,
    next_item INTEGER NOT NULL
);
INSERT INTO counters (id, next_seq, next_item) VALUES (1, 1, 1);
PRAGMA user_version = 1;
"#;

/// Version 2: abuse reports, moderation actions and suspensions.
/// Reports hold revealed payloads: only what a reporter chose to reveal.
const SCHEMA_V2: &str = r#"
CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    reporter TEXT NOT NULL,
    conversation BLOB NOT NULL,
    sender TEXT NOT NULL,
    server_time INTEGER NOT NULL,
    reason TEXT NOT NULL,
    report BLOB NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX reports_status ON reports(status, id);
-- Refused reports: counted for the published figures, content not kept.
CREATE TABLE report_refusals (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    reporter TEXT NOT NULL,
    code TEXT NOT NULL
);
-- Every moderation action, with who took it and when.
CREATE TABLE moderation_actions (
    id INTEGER PRIMARY KEY,
    report_id INTEGER NOT NULL,
    moderator TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL,
    suspended_until INTEGER,
    taken_at INTEGER NOT NULL
);
CREATE INDEX moderation_actions_report ON moderation_actions(report_id);
-- Suspensions in force; until NULL means permanent.
CREATE TABLE suspensions (
    account TEXT PRIMARY KEY,
    until INTEGER,
    report_id INTEGER NOT NULL,
    since INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 2;
"#;

/// Version 3: interceptions under logged warrants and the items they keep
/// (`crate::lawful`). Kept items are copies, apart from mailboxes, so acks
/// and the TTL never touch them; they go at `keep_until`.
const SCHEMA_V3: &str = r#"
CREATE TABLE interceptions (
    commitment BLOB PRIMARY KEY,
    authority TEXT NOT NULL,
    authority_key BLOB NOT NULL,
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    keep_until INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    started_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE interception_targets (
    commitment BLOB NOT NULL,
    conversation BLOB NOT NULL,
    PRIMARY KEY (commitment, conversation)
) WITHOUT ROWID;
CREATE TABLE kept_items (
    id INTEGER PRIMARY KEY,
    commitment BLOB NOT NULL,
    item_id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    conversation BLOB NOT NULL,
    day INTEGER NOT NULL,
    sender TEXT NOT NULL,
    sender_key BLOB NOT NULL,
    server_time INTEGER NOT NULL,
    tag BLOB NOT NULL,
    body BLOB NOT NULL,
    keep_until INTEGER NOT NULL,
    UNIQUE (commitment, item_id)
);
CREATE INDEX kept_items_until ON kept_items(keep_until);
-- Every chain announcement (with its escrow capsule) until the day after its
-- chain's day ends, acked or not: an interception that starts during a day
-- can still open the chains announced earlier that day.
CREATE TABLE recent_announcements (
    item_id INTEGER PRIMARY KEY,
    conversation BLOB NOT NULL,
    day INTEGER NOT NULL,
    sender TEXT NOT NULL,
    server_time INTEGER NOT NULL,
    body BLOB NOT NULL,
    keep_until INTEGER NOT NULL
);
CREATE INDEX recent_announcements_conversation ON recent_announcements(conversation, day);
CREATE INDEX recent_announcements_until ON recent_announcements(keep_until);
PRAGMA user_version = 3;
"#;

/// Attachment blobs (`crate::delivery::blobs`).
const SCHEMA_V4: &str = r#"
CREATE TABLE blobs (
    locator TEXT PRIMARY KEY,
    owner INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX blobs_owner ON blobs(owner);
CREATE INDEX blobs_expires ON blobs(expires_at);
PRAGMA user_version = 4;
"#;

/// Lookup indexes, any schema version from 2 on.
const INDEXES: &str = r#"
-- A reporter's earlier report of the same message (one report per message).
CREATE INDEX IF NOT EXISTS reports_reporter ON reports(reporter, server_time);
"#;

/// Version 5: each conversation's public MLS state
/// ([`crate::delivery::public_state`]), written with its epoch and member
/// rows in one transaction. A conversation made before it has no row: its
/// commits are refused (`invalid_commit`) until it is created again.
const SCHEMA_V5: &str = r#"
CREATE TABLE group_states (
    conversation BLOB PRIMARY KEY,
    state BLOB NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 5;
"#;

/// Version 6: the key directory ([`crate::directory`]): `akd`'s records
/// (`custos_keydir::SCHEMA`), keys queued for the next epoch, and every
/// published epoch's root with its log index once logged.
fn schema_v6() -> String {
    format!(
        "{}
CREATE TABLE kd_pending (
    account TEXT PRIMARY KEY,
    identity_key BLOB NOT NULL,
    queued_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE kd_epochs (
    epoch INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    changes INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    log_index INTEGER
);
PRAGMA user_version = 6;
",
        custos_keydir::SCHEMA
    )
}
/// Version 7:
/// known-content detection ([`crate::abuse::matching`]). Every voucher is
/// kept with its account and blob; the outer-opened share (`share`, NULL
/// when the voucher did not open) is what the service learns below the
/// threshold. `psi_accounts` holds the inner key of accounts past the
/// threshold; `psi_cases` and `psi_matches` are the review queue.
const SCHEMA_V7: &str = r#"
CREATE TABLE IF NOT EXISTS psi_vouchers (
    id INTEGER PRIMARY KEY,
    account INTEGER NOT NULL,
    locator TEXT NOT NULL UNIQUE,
    received_at INTEGER NOT NULL,
    voucher BLOB NOT NULL,
    share BLOB
);
CREATE INDEX IF NOT EXISTS psi_vouchers_account ON psi_vouchers(account);
CREATE TABLE IF NOT EXISTS psi_accounts (
    account INTEGER PRIMARY KEY,
    inner_key BLOB NOT NULL,
    reached_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS psi_cases (
    id INTEGER PRIMARY KEY,
    account INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    decided_at INTEGER,
    moderator TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS psi_matches (
    voucher INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL,
    hash BLOB NOT NULL,
    derivative BLOB NOT NULL
);
PRAGMA user_version = 7;
"#;

/// Version 8: a voucher's bytes are no longer kept (a voucher that did not
/// open never can, and one that opened is kept as its share, which holds
/// everything the service can read of it), and the account index covers
/// opened vouchers only, the only ones the threshold step reads. Both
/// halve what the voucher route writes per voucher (design note 0017).
const SCHEMA_V8: &str = r#"
ALTER TABLE psi_vouchers DROP COLUMN voucher;
DROP INDEX IF EXISTS psi_vouchers_account;
CREATE INDEX IF NOT EXISTS psi_vouchers_opened ON psi_vouchers(account, id)
    WHERE share IS NOT NULL;
PRAGMA user_version = 8;
"#;

/// Version 9: the key directory's tables live in their own file
/// ([`KEYDIR_FILE`]); [`move_directory_out`] copies their rows there first.
const SCHEMA_V9: &str = r#"
DROP TABLE IF EXISTS kd_values;
DROP TABLE IF EXISTS kd_records;
PRAGMA user_version = 9;
"#;

/// Copies the key directory's rows from the database (schemas 6 to 8) into
/// its own file at `keydir`, in that file's own transaction. The tables are
/// dropped afterwards, with the step to schema 9: a crash in between leaves
/// them here and the next open copies them again (a copy replaces rows by
/// key, so nothing is doubled). The directory's file takes no other write
/// before this returns.
async fn move_directory_out(
    writer: &mut SqliteConnection,
    keydir: &Path,
) -> Result<(), DeliveryServiceError> {
    let has_tables: bool = sqlx::query_scalar(
        "SELECT COUNT(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'kd_records'",
    )
    .fetch_one(&mut *writer)
    .await?;
    if !has_tables {
        return Ok(());
    }
    let path = keydir
        .to_str()
        .ok_or_else(|| DeliveryServiceError::DataDir {
            path: keydir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        })?;
    sqlx::query("ATTACH DATABASE ? AS keydir")
        .bind(path)
        .execute(&mut *writer)
        .await?;
    let copied = async {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        // Under the directory file's row keys (`custos_keydir::sqlite::
        // ROW_KEY_OF_AKD_ID`, a constant expression): this database kept
        // `akd`'s ids.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT OR REPLACE INTO keydir.kd_records (key, record) \
                 SELECT {}, record FROM main.kd_records ORDER BY 1; \
             INSERT OR REPLACE INTO keydir.kd_values (label, epoch, version, node_label, value) \
                 SELECT label, epoch, version, node_label, value FROM main.kd_values;",
            custos_keydir::sqlite::ROW_KEY_OF_AKD_ID
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
    .await;
    let detached = sqlx::query("DETACH DATABASE keydir")
        .execute(&mut *writer)
        .await;
    copied?;
    detached?;
    Ok(())
}

/// An open database: the writer's own connection, a pool for reads and
/// low-rate writes, and the lock that keeps other instances out.
pub struct Database {
    /// The writer task's connection.
    pub writer: SqliteConnection,
    /// Reads, and writes outside the hot path (accounts, KeyPackages).
    pub pool: SqlitePool,
    /// The voucher writer's one connection ([`crate::abuse::vouchers`]):
    /// its page cache stays valid from one batch to the next unless another
    /// connection wrote in between, where a pool connection taken in turn
    /// would have to read the indexes' pages again for every batch.
    pub voucher_pool: SqlitePool,
    /// The key directory's own file ([`KEYDIR_FILE`]).
    pub keydir: SqlitePool,
    /// Held for as long as the service runs.
    pub lock: File,
    /// The WAL file the writer fsyncs.
    pub wal: std::path::PathBuf,
}

fn options(path: &Path) -> Result<SqliteConnectOptions, DeliveryServiceError> {
    let url = format!("sqlite://{}", path.display());
    Ok(SqliteConnectOptions::from_str(&url)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(false)
        .statement_cache_capacity(512)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-16000")
        .disable_statement_logging())
}

/// Opens (creating if needed) the database in `dir`, applies the schema, and
/// takes the directory lock.
pub async fn open(dir: &Path) -> Result<Database, DeliveryServiceError> {
    std::fs::create_dir_all(dir).map_err(|source| DeliveryServiceError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock =
        File::create(dir.join(LOCK_FILE)).map_err(|source| DeliveryServiceError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    if lock.try_lock().is_err() {
        return Err(DeliveryServiceError::DataDirLocked(dir.to_path_buf()));
    }
    let opts = options(&dir.join(DB_FILE))?;
    let mut writer = SqliteConnection::connect_with(&opts).await?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut writer)
        .await?;
    if version > SCHEMA_VERSION {
        return Err(DeliveryServiceError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // Each step runs in its own transaction together with its
    // `user_version`, so a crash leaves the schema at one version or the next.
    if version < 1 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if version < 2 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V2).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if version < 3 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V3).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if version < 4 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V4).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if version < 5 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V5).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if version < 6 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema_v6()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    if version < 7 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V7).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    if version < 8 {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V8).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    let keydir_path = dir.join(KEYDIR_FILE);
    let keydir = custos_keydir::sqlite::open_file(&keydir_path).await?;
    if version < 9 {
        move_directory_out(&mut writer, &keydir_path).await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(SCHEMA_V9).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    // Indexes that only speed up lookups: created if missing on every open,
    // outside the versioned steps, since a build that does not know them
    // reads and writes the tables unchanged.
    sqlx::raw_sql(INDEXES).execute(&mut writer).await?;
    // The writer fsyncs the WAL itself, after COMMIT and before it answers.
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut writer)
        .await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .connect_with(opts.clone())
        .await?;
    let voucher_pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .connect_with(opts)
        .await?;
    let mut wal = dir.join(DB_FILE).into_os_string();
    wal.push("-wal");
    Ok(Database {
        writer,
        pool,
        voucher_pool,
        keydir,
        lock,
        wal: wal.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new database in `dir` taken through the schema steps up to
    /// `version`, as an older build left it; its connection and options.
    async fn database_of_schema(
        dir: &Path,
        version: usize,
    ) -> (SqliteConnection, SqliteConnectOptions) {
        let opts = options(&dir.join(DB_FILE)).unwrap();
        let mut old = SqliteConnection::connect_with(&opts).await.unwrap();
        let v6 = schema_v6();
        let steps = [
            SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, &v6, SCHEMA_V7, SCHEMA_V8,
        ];
        for step in steps.iter().take(version) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(step.to_string()))
                .execute(&mut old)
                .await
                .unwrap();
        }
        (old, opts)
    }

    /// A database of schema 7 with a voucher in it becomes schema 8 on
    /// open: the row and its share stay, its bytes go, and the account
    /// index covers opened vouchers only.
    #[tokio::test]
    async fn a_schema_7_database_keeps_its_vouchers_without_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut old, _) = database_of_schema(dir.path(), 7).await;
        sqlx::query(
            "INSERT INTO psi_vouchers (account, locator, received_at, voucher, share) \
             VALUES (1, 'a', 5, x'0102', x'0304'), (1, 'b', 6, x'0506', NULL)",
        )
        .execute(&mut old)
        .await
        .unwrap();
        old.close().await.unwrap();

        let db = open(dir.path()).await.unwrap();
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('psi_vouchers') ORDER BY cid")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(
            columns,
            ["id", "account", "locator", "received_at", "share"]
        );
        let rows: Vec<(String, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT locator, share FROM psi_vouchers ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(
            rows,
            [("a".to_owned(), Some(vec![3, 4])), ("b".to_owned(), None)]
        );
        let indexes: Vec<(String, bool)> = sqlx::query_as(
            "SELECT name, partial FROM pragma_index_list('psi_vouchers') \
             WHERE origin = 'c' ORDER BY name",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(indexes, [("psi_vouchers_opened".to_owned(), true)]);
    }

    /// A database of schema 8 whose key directory holds two accounts moves
    /// the directory into its own file on open, even after a crash between
    /// the copy and the step to schema 9 (here: the copy made once by hand
    /// before): the same epoch and root, the same proof bytes, no row twice,
    /// and no directory table left in the service's database.
    #[tokio::test]
    async fn a_schema_8_database_moves_its_key_directory_into_its_own_file() {
        use custos_keydir::{KeyDirectory, SqliteDirectory, VrfSecret};
        let dir = tempfile::tempdir().unwrap();
        let (mut old, opts) = database_of_schema(dir.path(), 8).await;
        let seed = [9u8; 32];
        let old_pool = SqlitePoolOptions::new()
            .connect_with(opts.clone())
            .await
            .unwrap();
        let before = KeyDirectory::open(
            SqliteDirectory::new(old_pool.clone()),
            VrfSecret::from_bytes(seed),
        )
        .await
        .unwrap();
        before
            .publish(&[("alice".into(), [1; 32]), ("bob".into(), [2; 32])])
            .await
            .unwrap();
        let root = before.publish(&[("bob".into(), [3; 32])]).await.unwrap();
        let proof = before.lookup("bob").await.unwrap();
        let count = |pool: SqlitePool| async move {
            let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kd_records")
                .fetch_one(&pool)
                .await
                .unwrap();
            let values: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kd_values")
                .fetch_one(&pool)
                .await
                .unwrap();
            (records, values)
        };
        // This build writes row keys; a schema-8 database has `akd`'s ids
        // ([2, length, value]) as its builds wrote them.
        sqlx::raw_sql(
            "CREATE TABLE by_akd_id (key BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID; \
             INSERT INTO by_akd_id SELECT CASE WHEN length(key) = 37 AND substr(key, 1, 1) = X'02' \
                 THEN CAST(X'02' || substr(key, 34, 4) || substr(key, 2, 32) AS BLOB) \
                 ELSE key END, record FROM kd_records; \
             DELETE FROM kd_records; \
             INSERT INTO kd_records SELECT key, record FROM by_akd_id; \
             DROP TABLE by_akd_id;",
        )
        .execute(&old_pool)
        .await
        .unwrap();
        let rows = count(old_pool.clone()).await;
        drop(before);
        old_pool.close().await;
        // The copy alone, as a crash right after it would leave it.
        let keydir_path = dir.path().join(KEYDIR_FILE);
        let early = custos_keydir::sqlite::open_file(&keydir_path)
            .await
            .unwrap();
        move_directory_out(&mut old, &keydir_path).await.unwrap();
        early.close().await;
        old.close().await.unwrap();

        let db = open(dir.path()).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('kd_records', 'kd_values')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "directory tables left in the service's database");
        assert_eq!(count(db.keydir.clone()).await, rows);
        let after = KeyDirectory::open(
            SqliteDirectory::new(db.keydir.clone()),
            VrfSecret::from_bytes(seed),
        )
        .await
        .unwrap();
        assert_eq!(after.current().await.unwrap(), root);
        let again = after.lookup("bob").await.unwrap();
        assert_eq!((again.proof, again.root), (proof.proof, proof.root));
    }
}
