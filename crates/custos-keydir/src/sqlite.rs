//! `akd`'s [`Database`] on the provider's SQLite.
//!
//! Two tables ([`SCHEMA`]): `kd_records` holds the aZKS record and the
//! tree nodes, under `akd`'s binary ids with a tree node's label length
//! moved after its value (`row_key`: the tree in pre-order), and
//! `kd_values` holds every account's value states by (label, epoch). The
//! service keeps them in a file of their own ([`open_file`]).
//!
//! # Durability
//! [`Database::batch_set`] writes all its records in one `BEGIN IMMEDIATE`
//! transaction (in key order, with its statement journals in memory:
//! `statement_journal`). `akd` commits a publication as one batch (its storage
//! manager buffers the epoch's records and writes the aZKS record, which
//! names the latest epoch, with them), so with the pool's
//! `synchronous = FULL` and WAL a crash leaves the directory at the old
//! epoch or the new one, never between: SQLite drops WAL frames without a
//! commit frame when it reopens the file.

use std::collections::HashMap;

use akd::errors::StorageError;
use akd::storage::types::{
    DbRecord, KeyData, StorageType, ValueState, ValueStateKey, ValueStateRetrievalFlag,
};
use akd::storage::{Database, DbSetState, Storable};
use akd::tree_node::{TreeNode, TreeNodeType};
use akd::{AkdLabel, AkdValue, NodeLabel};
use async_trait::async_trait;
use sqlx::{Row, SqlitePool};

mod file;
mod row_key;
mod statement_journal;

pub use file::{open_file, options};
pub use row_key::ROW_KEY_OF_AKD_ID;
use row_key::row_key;

/// The directory's tables. [`open_file`] applies them to the directory's
/// own file (where the service keeps them since its schema 9; its schema 6
/// created them in its own database); [`SqliteDirectory::create_schema`]
/// applies them to any database.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kd_records (
    key BLOB PRIMARY KEY,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kd_values (
    label BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    version INTEGER NOT NULL,
    node_label BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (label, epoch)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kd_values_version ON kd_values(label, version);
"#;

/// `akd` storage on a SQLite pool (see the module docs).
#[derive(Debug, Clone)]
pub struct SqliteDirectory {
    pool: SqlitePool,
}

impl SqliteDirectory {
    /// Storage on `pool`, whose database already has [`SCHEMA`].
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Applies [`SCHEMA`] (idempotent).
    pub async fn create_schema(pool: &SqlitePool) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(SCHEMA).execute(pool).await?;
        Ok(())
    }

    /// Copies the write-ahead log into the database file and starts it
    /// over (`wal_checkpoint(RESTART)`, waiting up to the connection's busy
    /// timeout for readers of older snapshots). Returns whether every frame
    /// was copied; one that was not is copied by the next call. Durability
    /// does not depend on it (see [`open_file`]); the size of the WAL and the
    /// speed of reads do.
    pub async fn checkpoint(&self) -> Result<bool, sqlx::Error> {
        let row = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&self.pool)
            .await?;
        let busy: i64 = row.try_get(0)?;
        Ok(busy == 0)
    }

    /// Bytes the directory's rows take in the database (payload only).
    pub async fn stored_bytes(&self) -> Result<u64, sqlx::Error> {
        let a: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(LENGTH(key) + LENGTH(record)), 0) FROM kd_records",
        )
        .fetch_one(&self.pool)
        .await?;
        let b: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(LENGTH(label) + LENGTH(node_label) + LENGTH(value) + 16), 0) \
             FROM kd_values",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(a.saturating_add(b)).unwrap_or(0))
    }
}

/// Rows per multi-row statement: 5 parameters a row stay well under
/// SQLite's bound of 32,766 parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

pub(crate) fn db_err(e: sqlx::Error) -> StorageError {
    StorageError::Connection(e.to_string())
}

pub(crate) fn bad(what: &str) -> StorageError {
    StorageError::Other(format!("corrupt key-directory row: {what}"))
}

pub(crate) fn i64_of(v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::Other("epoch or version beyond i64".into()))
}

pub(crate) fn u64_of(v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| bad("negative epoch or version"))
}

pub(crate) fn label_bytes(l: &NodeLabel) -> [u8; 36] {
    let mut out = [0u8; 36];
    out[..32].copy_from_slice(&l.label_val);
    out[32..].copy_from_slice(&l.label_len.to_be_bytes());
    out
}

pub(crate) fn label_from(b: &[u8]) -> Result<NodeLabel, StorageError> {
    let val: [u8; 32] = b
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("label"))?;
    let len: [u8; 4] = b
        .get(32..36)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("label"))?;
    Ok(NodeLabel::new(val, u32::from_be_bytes(len)))
}

fn node_type_tag(t: TreeNodeType) -> u8 {
    match t {
        TreeNodeType::Leaf => 1,
        TreeNodeType::Root => 2,
        TreeNodeType::Interior => 3,
    }
}

/// A tree node's fields: epochs, parent, type, children, hash.
fn put_node(out: &mut Vec<u8>, n: &TreeNode) {
    out.extend_from_slice(&n.last_epoch.to_be_bytes());
    out.extend_from_slice(&n.min_descendant_epoch.to_be_bytes());
    out.extend_from_slice(&label_bytes(&n.parent));
    out.push(node_type_tag(n.node_type));
    for child in [&n.left_child, &n.right_child] {
        match child {
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&label_bytes(c));
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&n.hash.0);
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.0.len() < n {
            return Err(bad("tree node"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, StorageError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| bad("u64"))?;
        Ok(u64::from_be_bytes(b))
    }
    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(*self.take(1)?.first().ok_or_else(|| bad("u8"))?)
    }
    fn label(&mut self) -> Result<NodeLabel, StorageError> {
        label_from(self.take(36)?)
    }
    fn opt_label(&mut self) -> Result<Option<NodeLabel>, StorageError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.label()?)),
            _ => Err(bad("child flag")),
        }
    }
    fn digest(&mut self) -> Result<[u8; 32], StorageError> {
        self.take(32)?.try_into().map_err(|_| bad("digest"))
    }
}

struct NodeFields {
    last_epoch: u64,
    min_descendant_epoch: u64,
    parent: NodeLabel,
    node_type: u8,
    left: Option<NodeLabel>,
    right: Option<NodeLabel>,
    hash: [u8; 32],
}

fn read_node(c: &mut Cursor<'_>) -> Result<NodeFields, StorageError> {
    Ok(NodeFields {
        last_epoch: c.u64()?,
        min_descendant_epoch: c.u64()?,
        parent: c.label()?,
        node_type: c.u8()?,
        left: c.opt_label()?,
        right: c.opt_label()?,
        hash: c.digest()?,
    })
}

/// Record encodings in `kd_records`: tag 1 = aZKS (latest epoch, node count),
/// tag 2 = tree node (label, latest node, optional previous node).
pub(crate) fn encode_record(record: &DbRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    match record {
        DbRecord::Azks(a) => {
            out.push(1);
            out.extend_from_slice(&a.latest_epoch.to_be_bytes());
            out.extend_from_slice(&a.num_nodes.to_be_bytes());
        }
        DbRecord::TreeNode(n) => {
            out.push(2);
            out.extend_from_slice(&label_bytes(&n.label));
            put_node(&mut out, &n.latest_node);
            match &n.previous_node {
                Some(p) => {
                    out.push(1);
                    put_node(&mut out, p);
                }
                None => out.push(0),
            }
        }
        // Value states live in `kd_values`.
        DbRecord::ValueState(_) => {}
    }
    out
}

pub(crate) fn decode_record(bytes: &[u8]) -> Result<DbRecord, StorageError> {
    let mut c = Cursor(bytes);
    let record = match c.u8()? {
        1 => DbRecord::Azks(DbRecord::build_azks(c.u64()?, c.u64()?)),
        2 => {
            let label = c.label()?;
            let latest = read_node(&mut c)?;
            let previous = match c.u8()? {
                0 => None,
                1 => Some(read_node(&mut c)?),
                _ => return Err(bad("previous flag")),
            };
            DbRecord::TreeNode(DbRecord::build_tree_node_with_previous_value(
                label.label_val,
                label.label_len,
                latest.last_epoch,
                latest.min_descendant_epoch,
                latest.parent.label_val,
                latest.parent.label_len,
                latest.node_type,
                latest.left,
                latest.right,
                latest.hash,
                previous.as_ref().map(|p| p.last_epoch),
                previous.as_ref().map(|p| p.min_descendant_epoch),
                previous.as_ref().map(|p| p.parent.label_val),
                previous.as_ref().map(|p| p.parent.label_len),
                previous.as_ref().map(|p| p.node_type),
                previous.as_ref().and_then(|p| p.left),
                previous.as_ref().and_then(|p| p.right),
                previous.as_ref().map(|p| p.hash),
            ))
        }
        _ => return Err(bad("record tag")),
    };
    if !c.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(record)
}

fn value_state(row: &sqlx::sqlite::SqliteRow) -> Result<ValueState, StorageError> {
    let label: Vec<u8> = row.try_get("label").map_err(db_err)?;
    let epoch: i64 = row.try_get("epoch").map_err(db_err)?;
    let version: i64 = row.try_get("version").map_err(db_err)?;
    let node_label: Vec<u8> = row.try_get("node_label").map_err(db_err)?;
    let value: Vec<u8> = row.try_get("value").map_err(db_err)?;
    let nl = label_from(&node_label)?;
    Ok(DbRecord::build_user_state(
        label,
        value,
        u64_of(version)?,
        nl.label_len,
        nl.label_val,
        u64_of(epoch)?,
    ))
}

/// A value state's row as [`Database::batch_set`] writes it.
type ValueRow<'a> = (&'a [u8], i64, i64, [u8; 36], &'a [u8]);

/// Writes one batch in one `BEGIN IMMEDIATE` transaction on `conn`.
async fn write_rows(
    conn: &mut sqlx::SqliteConnection,
    values: &[ValueRow<'_>],
    nodes: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), StorageError> {
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(db_err)?;
    for chunk in values.chunks(ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT OR REPLACE INTO kd_values (label, epoch, version, node_label, value) ",
        );
        q.push_values(chunk, |mut row, v| {
            row.push_bind(v.0)
                .push_bind(v.1)
                .push_bind(v.2)
                .push_bind(v.3.as_slice())
                .push_bind(v.4);
        });
        q.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT OR REPLACE INTO kd_records (key, record) ",
        );
        q.push_values(chunk, |mut row, n| {
            row.push_bind(n.0.as_slice()).push_bind(n.1.as_slice());
        });
        q.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    // The commit point: every record of the batch or none.
    tx.commit().await.map_err(db_err)
}

#[async_trait]
impl Database for SqliteDirectory {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(
        &self,
        records: Vec<DbRecord>,
        _state: DbSetState,
    ) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        // Encoded before the transaction opens, so that it is held only for
        // the writes; rows go in multi-row statements (a statement per row
        // was most of an epoch's SQLite time).
        let mut values = Vec::new();
        let mut nodes = Vec::new();
        for record in &records {
            match record {
                DbRecord::ValueState(v) => values.push((
                    v.username.0.as_slice(),
                    i64_of(v.epoch)?,
                    i64_of(v.version)?,
                    label_bytes(&v.label),
                    v.value.0.as_slice(),
                )),
                other => nodes.push((row_key(other.get_full_binary_id()), encode_record(other))),
            }
        }
        // In key order, so that the B-tree is walked once from left to
        // right and each page is changed in one visit (`akd` hands the
        // records over in hash-map order). The sorts are stable: of two
        // writes of one key, the later still lands last and wins.
        values.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let saved = statement_journal::in_memory(&mut conn).await?;
        let written = write_rows(&mut conn, &values, &nodes).await;
        // Restored whether or not the write went through: the connection
        // goes back to the pool.
        let restored = statement_journal::restore(&mut conn, saved).await;
        written.and(restored)
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let key = row_key(St::get_full_binary_key_id(id));
        if St::data_type() == StorageType::ValueState {
            let ValueStateKey(label, epoch) =
                ValueState::key_from_full_binary(&key).map_err(StorageError::Other)?;
            let row = sqlx::query(
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = ? AND epoch = ?",
            )
            .bind(label)
            .bind(i64_of(epoch)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StorageError::NotFound(format!("ValueState {id:?}")))?;
            return value_state(&row).map(DbRecord::ValueState);
        }
        let record: Vec<u8> = sqlx::query_scalar("SELECT record FROM kd_records WHERE key = ?")
            .bind(&key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StorageError::NotFound(format!("{:?} {id:?}", St::data_type())))?;
        decode_record(&record)
    }

    async fn batch_get<St: Storable>(
        &self,
        ids: &[St::StorageKey],
    ) -> Result<Vec<DbRecord>, StorageError> {
        let mut out = Vec::with_capacity(ids.len());
        if St::data_type() == StorageType::ValueState {
            let mut keys = Vec::with_capacity(ids.len());
            for id in ids {
                let ValueStateKey(label, epoch) =
                    ValueState::key_from_full_binary(&St::get_full_binary_key_id(id))
                        .map_err(StorageError::Other)?;
                keys.push((label, i64_of(epoch)?));
            }
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT label, epoch, version, node_label, value FROM kd_values \
                     WHERE (label, epoch) IN (VALUES ",
                );
                let mut sep = q.separated(", ");
                for (label, epoch) in chunk {
                    sep.push("(")
                        .push_bind_unseparated(label.as_slice())
                        .push_unseparated(", ")
                        .push_bind_unseparated(*epoch)
                        .push_unseparated(")");
                }
                q.push(")");
                for row in q.build().fetch_all(&self.pool).await.map_err(db_err)? {
                    out.push(DbRecord::ValueState(value_state(&row)?));
                }
            }
            return Ok(out);
        }
        // Tree nodes in chunks of one query each (SQLite's bound on
        // parameters is 32,766).
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT record FROM kd_records WHERE key IN ({marks})");
            // Only `?` marks are formatted in; every value is bound.
            let mut q = sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(row_key(St::get_full_binary_key_id(id)));
            }
            for record in q.fetch_all(&self.pool).await.map_err(db_err)? {
                out.push(decode_record(&record)?);
            }
        }
        Ok(out)
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let rows = sqlx::query(
            "SELECT label, epoch, version, node_label, value FROM kd_values \
             WHERE label = ? ORDER BY epoch",
        )
        .bind(username.0.as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        if rows.is_empty() {
            return Err(StorageError::NotFound(format!("ValueState {username:?}")));
        }
        let states = rows.iter().map(value_state).collect::<Result<_, _>>()?;
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        let (sql, arg): (&'static str, Option<u64>) = match flag {
            ValueStateRetrievalFlag::SpecificVersion(v) => (
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = ? AND version = ? LIMIT 1",
                Some(v),
            ),
            ValueStateRetrievalFlag::SpecificEpoch(e) => (
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = ? AND epoch = ? LIMIT 1",
                Some(e),
            ),
            ValueStateRetrievalFlag::LeqEpoch(e) => (
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = ? AND epoch <= ? ORDER BY epoch DESC LIMIT 1",
                Some(e),
            ),
            ValueStateRetrievalFlag::MaxEpoch => (
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = ? ORDER BY epoch DESC LIMIT 1",
                None,
            ),
            ValueStateRetrievalFlag::MinEpoch => (
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = ? ORDER BY epoch ASC LIMIT 1",
                None,
            ),
        };
        let mut q = sqlx::query(sql).bind(username.0.as_slice());
        if let Some(a) = arg {
            q = q.bind(i64_of(a)?);
        }
        let row = q
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StorageError::NotFound(format!("ValueState {username:?}")))?;
        value_state(&row)
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        // One statement per chunk of labels (this runs for every label of
        // an epoch before it is published). With a single MIN or MAX
        // aggregate, SQLite takes the other columns from the row that has
        // the extreme value (documented "bare column" behaviour).
        let (extreme, filter): (&str, Option<(&str, u64)>) = match flag {
            ValueStateRetrievalFlag::SpecificVersion(v) => ("MIN", Some(("version = ", v))),
            ValueStateRetrievalFlag::SpecificEpoch(e) => ("MIN", Some(("epoch = ", e))),
            ValueStateRetrievalFlag::LeqEpoch(e) => ("MAX", Some(("epoch <= ", e))),
            ValueStateRetrievalFlag::MaxEpoch => ("MAX", None),
            ValueStateRetrievalFlag::MinEpoch => ("MIN", None),
        };
        let mut out = HashMap::with_capacity(usernames.len());
        for chunk in usernames.chunks(ROWS_PER_STATEMENT) {
            // Only fixed SQL text is pushed; every value is bound.
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "SELECT label, {extreme}(epoch), version, value FROM kd_values WHERE "
            ));
            if let Some((condition, arg)) = filter {
                q.push(condition).push_bind(i64_of(arg)?).push(" AND ");
            }
            q.push("label IN ").push_tuples(chunk, |mut t, u| {
                t.push_bind(u.0.as_slice());
            });
            q.push(" GROUP BY label");
            let rows = q.build().fetch_all(&self.pool).await.map_err(db_err)?;
            for row in rows {
                let label: Vec<u8> = row.try_get(0).map_err(db_err)?;
                let version: i64 = row.try_get(2).map_err(db_err)?;
                let value: Vec<u8> = row.try_get(3).map_err(db_err)?;
                out.insert(AkdLabel(label), (u64_of(version)?, AkdValue(value)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_nodes_round_trip() {
        let n = DbRecord::build_tree_node_with_previous_value(
            [1; 32],
            7,
            3,
            1,
            [2; 32],
            3,
            3,
            Some(NodeLabel::new([3; 32], 8)),
            None,
            [9; 32],
            Some(2),
            Some(1),
            Some([2; 32]),
            Some(3),
            Some(1),
            None,
            Some(NodeLabel::new([4; 32], 8)),
            Some([8; 32]),
        );
        let r = DbRecord::TreeNode(n);
        assert_eq!(decode_record(&encode_record(&r)).unwrap(), r);
        let a = DbRecord::Azks(DbRecord::build_azks(5, 11));
        assert_eq!(decode_record(&encode_record(&a)).unwrap(), a);
        assert!(decode_record(&[2, 0]).is_err());
    }

    fn leaf(label: [u8; 32], hash: u8) -> DbRecord {
        DbRecord::TreeNode(DbRecord::build_tree_node_with_previous_value(
            label, 256, 1, 1, [0; 32], 0, 1, None, None, [hash; 32], None, None, None, None, None,
            None, None, None,
        ))
    }

    /// `batch_set` sorts its rows by key; of two writes of one key in a
    /// batch the later must still win, as row-by-row writes would have it.
    #[tokio::test]
    async fn the_later_of_two_writes_of_a_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("kd.db"))
                .create_if_missing(true),
        )
        .await
        .unwrap();
        SqliteDirectory::create_schema(&pool).await.unwrap();
        let db = SqliteDirectory::new(pool);
        let twice = [0x80; 32];
        let mut batch = vec![leaf(twice, 1)];
        for i in (0..=u8::MAX).filter(|i| *i != 0x80) {
            batch.push(leaf([i; 32], i));
        }
        batch.push(leaf(twice, 2));
        db.batch_set(batch, DbSetState::General).await.unwrap();
        let key = akd::tree_node::NodeKey(NodeLabel::new(twice, 256));
        let got = db
            .get::<akd::tree_node::TreeNodeWithPreviousValue>(&key)
            .await
            .unwrap();
        assert_eq!(got, leaf(twice, 2));
    }
}
