//! `akd`'s [`Database`] on PostgreSQL, for a provider whose delivery service
//! runs on PostgreSQL (design note 0019). The same tables and record
//! encodings as [`crate::sqlite`] ([`SCHEMA`]; the delivery service applies
//! them as its migration 13).
//!
//! # Durability
//! [`Database::batch_set`] writes all its records in one transaction, and
//! `akd` commits a publication as one batch (the aZKS record naming the
//! latest epoch goes with the epoch's nodes), so a crash or a lost
//! connection leaves the directory at the old epoch or the new one.
//!
//! # One publisher
//! `akd` caches tree nodes in the publishing process. Several servers may
//! read proofs from the same tables, but only one may publish at a time;
//! the delivery service takes a session advisory lock for that.

use std::collections::HashMap;

use akd::errors::StorageError;
use akd::storage::types::{
    DbRecord, KeyData, StorageType, ValueState, ValueStateKey, ValueStateRetrievalFlag,
};
use akd::storage::{Database, DbSetState, Storable};
use akd::{AkdLabel, AkdValue};
use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Row};

use crate::sqlite::{
    ROWS_PER_STATEMENT, db_err, decode_record, encode_record, i64_of, label_bytes, label_from,
    u64_of,
};

/// The directory's tables on PostgreSQL.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kd_records (
    key BYTEA PRIMARY KEY,
    record BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS kd_values (
    label BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    version BIGINT NOT NULL,
    node_label BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (label, epoch)
);
CREATE INDEX IF NOT EXISTS kd_values_version ON kd_values(label, version);
"#;

/// `akd` storage on a PostgreSQL pool (see the module docs).
#[derive(Debug, Clone)]
pub struct PgDirectory {
    pool: PgPool,
}

impl PgDirectory {
    /// Storage on `pool`, whose database already has [`SCHEMA`].
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies [`SCHEMA`] (idempotent).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn create_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(SCHEMA).execute(pool).await?;
        Ok(())
    }

    /// Bytes the directory's rows take (payload only).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn stored_bytes(&self) -> Result<u64, sqlx::Error> {
        let total: i64 = sqlx::query_scalar(
            "SELECT (SELECT COALESCE(SUM(LENGTH(key) + LENGTH(record)), 0) FROM kd_records) \
             + (SELECT COALESCE(SUM(LENGTH(label) + LENGTH(node_label) + LENGTH(value) + 16), 0) \
             FROM kd_values)::bigint",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(total).unwrap_or(0))
    }
}

fn value_state(row: &sqlx::postgres::PgRow) -> Result<ValueState, StorageError> {
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

const COLUMNS: &str = "label, epoch, version, node_label, value";

#[async_trait]
impl Database for PgDirectory {
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
        // One row per key, the last write winning (as `INSERT OR REPLACE`
        // row by row would): one statement may not update a row twice.
        let mut values: HashMap<(Vec<u8>, i64), (i64, [u8; 36], Vec<u8>)> = HashMap::new();
        let mut nodes: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for record in &records {
            match record {
                DbRecord::ValueState(v) => {
                    values.insert(
                        (v.username.0.clone(), i64_of(v.epoch)?),
                        (i64_of(v.version)?, label_bytes(&v.label), v.value.0.clone()),
                    );
                }
                other => {
                    nodes.insert(other.get_full_binary_id(), encode_record(other));
                }
            }
        }
        // In key order: each index page is visited once from left to
        // right, and two writers would take their row locks in one order
        // (`akd` hands the records over in hash-map order).
        let mut values: Vec<_> = values.into_iter().collect();
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut nodes: Vec<_> = nodes.into_iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for chunk in values.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<Postgres>::new(
                "INSERT INTO kd_values (label, epoch, version, node_label, value) ",
            );
            q.push_values(chunk, |mut row, ((label, epoch), (version, nl, value))| {
                row.push_bind(label.as_slice())
                    .push_bind(*epoch)
                    .push_bind(*version)
                    .push_bind(nl.as_slice())
                    .push_bind(value.as_slice());
            });
            q.push(
                " ON CONFLICT (label, epoch) DO UPDATE SET version = excluded.version, \
                 node_label = excluded.node_label, value = excluded.value",
            );
            q.build().execute(&mut *tx).await.map_err(db_err)?;
        }
        for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
            let mut q =
                sqlx::QueryBuilder::<Postgres>::new("INSERT INTO kd_records (key, record) ");
            q.push_values(chunk, |mut row, (key, record)| {
                row.push_bind(key.as_slice()).push_bind(record.as_slice());
            });
            q.push(" ON CONFLICT (key) DO UPDATE SET record = excluded.record");
            q.build().execute(&mut *tx).await.map_err(db_err)?;
        }
        // The commit point: every record of the batch or none.
        tx.commit().await.map_err(db_err)
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let key = St::get_full_binary_key_id(id);
        if St::data_type() == StorageType::ValueState {
            let ValueStateKey(label, epoch) =
                ValueState::key_from_full_binary(&key).map_err(StorageError::Other)?;
            let row = sqlx::query(
                "SELECT label, epoch, version, node_label, value FROM kd_values \
                 WHERE label = $1 AND epoch = $2",
            )
            .bind(label)
            .bind(i64_of(epoch)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StorageError::NotFound(format!("ValueState {id:?}")))?;
            return value_state(&row).map(DbRecord::ValueState);
        }
        let record: Vec<u8> = sqlx::query_scalar("SELECT record FROM kd_records WHERE key = $1")
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
            let mut labels = Vec::with_capacity(ids.len());
            let mut epochs = Vec::with_capacity(ids.len());
            for id in ids {
                let ValueStateKey(label, epoch) =
                    ValueState::key_from_full_binary(&St::get_full_binary_key_id(id))
                        .map_err(StorageError::Other)?;
                labels.push(label);
                epochs.push(i64_of(epoch)?);
            }
            let rows = sqlx::query(
                "SELECT v.label, v.epoch, v.version, v.node_label, v.value FROM kd_values v \
                 JOIN UNNEST($1::bytea[], $2::bigint[]) AS k(label, epoch) \
                 ON v.label = k.label AND v.epoch = k.epoch",
            )
            .bind(&labels)
            .bind(&epochs)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            for row in rows {
                out.push(DbRecord::ValueState(value_state(&row)?));
            }
            return Ok(out);
        }
        let keys: Vec<Vec<u8>> = ids.iter().map(St::get_full_binary_key_id).collect();
        let records: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM kd_records WHERE key = ANY($1)")
                .bind(&keys)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        for record in records {
            out.push(decode_record(&record)?);
        }
        Ok(out)
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let rows = sqlx::query(
            "SELECT label, epoch, version, node_label, value FROM kd_values \
             WHERE label = $1 ORDER BY epoch",
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
        let (condition, order, arg) = retrieval(flag);
        let sql = format!(
            "SELECT {COLUMNS} FROM kd_values WHERE label = $1{condition} ORDER BY epoch {order} \
             LIMIT 1"
        );
        // Only fixed SQL text is formatted in; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(username.0.as_slice());
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
        // One statement: per label, the row `get_user_state` would answer
        // (`DISTINCT ON` keeps the first row of each label in that order).
        let (condition, order, arg) = retrieval(flag);
        let sql = format!(
            "SELECT DISTINCT ON (label) label, version, value FROM kd_values \
             WHERE label = ANY($1){condition} ORDER BY label, epoch {order}"
        );
        let labels: Vec<&[u8]> = usernames.iter().map(|u| u.0.as_slice()).collect();
        // Only fixed SQL text is formatted in; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&labels);
        if let Some(a) = arg {
            q = q.bind(i64_of(a)?);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let label: Vec<u8> = row.try_get(0).map_err(db_err)?;
            let version: i64 = row.try_get(1).map_err(db_err)?;
            let value: Vec<u8> = row.try_get(2).map_err(db_err)?;
            out.insert(AkdLabel(label), (u64_of(version)?, AkdValue(value)));
        }
        Ok(out)
    }
}

/// The condition (on `$2`), order and argument of a retrieval flag.
fn retrieval(flag: ValueStateRetrievalFlag) -> (&'static str, &'static str, Option<u64>) {
    match flag {
        ValueStateRetrievalFlag::SpecificVersion(v) => (" AND version = $2", "ASC", Some(v)),
        ValueStateRetrievalFlag::SpecificEpoch(e) => (" AND epoch = $2", "ASC", Some(e)),
        ValueStateRetrievalFlag::LeqEpoch(e) => (" AND epoch <= $2", "DESC", Some(e)),
        ValueStateRetrievalFlag::MaxEpoch => ("", "DESC", None),
        ValueStateRetrievalFlag::MinEpoch => ("", "ASC", None),
    }
}
