//! Where the connection that writes a batch keeps its statement journals,
//! for the length of the write.
//!
//! Each multi-row `INSERT OR REPLACE` of [`super::SqliteDirectory`]'s
//! `batch_set` runs inside the epoch's transaction, so SQLite keeps a
//! statement journal for it (the original of every page it changes, so
//! that a failing statement can be undone alone). Past 64 KiB SQLite moves
//! that journal to a temporary file unless `temp_store` is `MEMORY`, and
//! at ten tree nodes per change every statement passes it: the journal's
//! writes were a sixth of an epoch's CPU time. The write therefore runs
//! with `temp_store = MEMORY` (a statement's journal is at most the pages
//! of its 500 rows) and the connection gets its own setting back before it
//! returns to the pool. The setting changes neither what is written nor
//! when it is durable: the commit is the same `BEGIN IMMEDIATE` … `COMMIT`.

use akd::errors::StorageError;
use sqlx::SqliteConnection;

use super::db_err;

/// `PRAGMA temp_store` value for memory.
const TEMP_STORE_MEMORY: i64 = 2;

/// The connection's own setting, to restore: `None` when it was already
/// `MEMORY` (as on the delivery service's pool) and nothing was changed.
pub(super) struct Saved(Option<i64>);

/// Moves `conn`'s temporary storage to memory; returns what to restore.
pub(super) async fn in_memory(conn: &mut SqliteConnection) -> Result<Saved, StorageError> {
    let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if temp_store == TEMP_STORE_MEMORY {
        return Ok(Saved(None));
    }
    sqlx::raw_sql("PRAGMA temp_store = MEMORY")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(Saved(Some(temp_store)))
}

/// Gives `conn` back the setting [`in_memory`] found.
pub(super) async fn restore(conn: &mut SqliteConnection, saved: Saved) -> Result<(), StorageError> {
    let Saved(Some(temp_store)) = saved else {
        return Ok(());
    };
    // Only the integer read from the connection is formatted in (pragmas
    // take no bound parameters).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA temp_store = {temp_store}"
    )))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn temp_store(conn: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_connection_gets_its_own_setting_back() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("PRAGMA temp_store = FILE")
            .execute(&mut conn)
            .await
            .unwrap();
        let saved = in_memory(&mut conn).await.unwrap();
        assert_eq!(temp_store(&mut conn).await, TEMP_STORE_MEMORY);
        restore(&mut conn, saved).await.unwrap();
        assert_eq!(temp_store(&mut conn).await, 1);

        // Already in memory (the delivery service's pool): left as it is.
        sqlx::raw_sql("PRAGMA temp_store = MEMORY")
            .execute(&mut conn)
            .await
            .unwrap();
        let saved = in_memory(&mut conn).await.unwrap();
        assert!(saved.0.is_none());
        restore(&mut conn, saved).await.unwrap();
        assert_eq!(temp_store(&mut conn).await, TEMP_STORE_MEMORY);
    }
}
