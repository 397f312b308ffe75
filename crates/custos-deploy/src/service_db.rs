//! The delivery service's own storage, edited the way a malicious or
//! careless provider could edit it: for tests of what devices detect (a
//! substituted KeyPackage, a key published behind an account's back). The
//! same statement runs on either backend, so those tests run on PostgreSQL
//! with several servers as well as on SQLite.

use std::time::Duration;

use sqlx::{ConnectOptions as _, Connection as _};

use crate::Deployment;
use crate::error::DeployError;

fn database(e: sqlx::Error) -> DeployError {
    DeployError::Database(e.to_string())
}

/// Runs `sql` with `blobs` bound in order on the connection `conn` (of
/// either backend), closes it, and answers the rows changed.
macro_rules! run_once {
    ($conn:expr, $sql:expr, $blobs:expr) => {{
        let mut conn = $conn;
        let mut query = sqlx::query(sqlx::AssertSqlSafe($sql.to_owned()));
        for b in $blobs {
            query = query.bind(*b);
        }
        let changed = query
            .execute(&mut conn)
            .await
            .map_err(database)?
            .rows_affected();
        conn.close().await.map_err(database)?;
        Ok(changed)
    }};
}

impl Deployment {
    /// Runs the one statement `sql` on the delivery service's storage,
    /// binding `blobs` in order to `$1`, `$2`, … (written so, it is valid
    /// SQL for both backends), and answers how many rows it changed. On
    /// SQLite that is the first server's database file, written beside the
    /// running service (which waits for the lock); on PostgreSQL the
    /// database every server shares, so each sees the edit at once.
    ///
    /// # Errors
    /// When the deployment has no service, or the statement fails.
    pub async fn edit_service_database(
        &self,
        sql: &str,
        blobs: &[&[u8]],
    ) -> Result<u64, DeployError> {
        if let Some(pg) = &self.postgres {
            let conn = sqlx::PgConnection::connect(&pg.url())
                .await
                .map_err(database)?;
            return run_once!(conn, sql, blobs);
        }
        let server = self.server().ok_or_else(crate::server::no_service)?;
        let conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(server.data.join(custos_server::db::DB_FILE))
            .busy_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(database)?;
        run_once!(conn, sql, blobs)
    }
}
