//! [`PgStore`]: the store on PostgreSQL, shared by any number of
//! `custos server` processes (design note 0019).
//!
//! # How the guarantees hold across servers
//! - One account per name: the `UNIQUE` constraint on `accounts.name`,
//!   taken with `ON CONFLICT DO NOTHING` (the loser sees no row back).
//! - The KeyPackage quota: an upload locks its account's row
//!   (`SELECT … FOR UPDATE`) before counting, so two uploads of one account
//!   (on two servers) run one after the other.
//! - A KeyPackage handed out once: the claim deletes the row it returns, and
//!   picks it with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take
//!   different packages instead of waiting on one another.
//! - Durable on return: every write is a transaction that has committed
//!   (`synchronous_commit` on, PostgreSQL's default) before the call returns.
//!
//! # Schema
//! Versioned migrations in `migrations/postgres/` (applied by [`PgStore::connect`]
//! with `sqlx::migrate!`; concurrent starts are serialised by the migrator's
//! advisory lock, and a database written by a newer build is refused).
//!
//! # Not yet here
//! The key directory runs on SQLite only: registration with
//! `queue_directory` is refused on this backend.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{AccountStore, KeyPackageStore, Registered, SessionRow, Uploaded};

/// The migrations this build applies, in order.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies the migrations this build
    /// knows, and refuses a database migrated by a newer build.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached, a migration fails, or the database
    /// holds migrations this build does not know.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // Short: while PostgreSQL is down, requests are refused (503
            // database_unavailable) within seconds instead of piling up.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        // `ignore_missing` is off: a migration in the database that this
        // build lacks (a newer build ran) is an error, not silently skipped.
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for readiness probes and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn register(
        &self,
        name: &str,
        identity_key: &[u8; 32],
        now: i64,
        queue_directory: bool,
    ) -> Result<Registered, sqlx::Error> {
        if queue_directory {
            return Err(sqlx::Error::Configuration(
                "the key directory runs on SQLite only; start the server without it on PostgreSQL"
                    .into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let account_id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO accounts (name, identity_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(identity_key.as_slice())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(account_id) = account_id else {
            return Ok(Registered::NameTaken);
        };
        let device_id: i64 = sqlx::query_scalar(
            "INSERT INTO devices (account_id, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(account_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Registered::Created {
            account_id,
            device_id,
        })
    }

    async fn account_id(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
    }

    async fn login_key(&self, name: &str) -> Result<Option<(Vec<u8>, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.identity_key, d.id FROM accounts a JOIN devices d ON d.account_id = a.id \
             WHERE a.name = $1 ORDER BY d.id LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
    }

    async fn open_session(
        &self,
        token_hash: &[u8; 32],
        device_id: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO sessions (token_hash, device_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash.as_slice())
            .bind(device_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRow>, sqlx::Error> {
        let row: Option<(Vec<u8>, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT s.token_hash, s.expires_at, d.id, a.id, a.name FROM sessions s \
             JOIN devices d ON d.id = s.device_id JOIN accounts a ON a.id = d.account_id \
             WHERE s.token_hash = $1",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(token_hash, expires_at, device_id, account_id, name)| SessionRow {
                token_hash,
                expires_at,
                device_id,
                account_id,
                name,
            },
        ))
    }
}

#[async_trait]
impl KeyPackageStore for PgStore {
    async fn upload_key_packages(
        &self,
        account_id: i64,
        packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
        max_stored: u64,
    ) -> Result<Uploaded, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The account's row lock serialises uploads of one account across
        // servers: the count below cannot be overtaken by another upload.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        let stored: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM key_packages WHERE account_id = $1 AND NOT last_resort",
        )
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
        let after = u64::try_from(stored)
            .unwrap_or(0)
            .saturating_add(u64::try_from(packages.len()).unwrap_or(u64::MAX));
        if after > max_stored {
            return Ok(Uploaded::OverQuota { stored });
        }
        if !packages.is_empty() {
            sqlx::query(
                "INSERT INTO key_packages (account_id, last_resort, data) \
                 SELECT $1, false, d FROM UNNEST($2::bytea[]) WITH ORDINALITY AS t(d, n) ORDER BY n",
            )
            .bind(account_id)
            .bind(packages)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(lr) = last_resort {
            sqlx::query("DELETE FROM key_packages WHERE account_id = $1 AND last_resort")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO key_packages (account_id, last_resort, data) VALUES ($1, true, $2)",
            )
            .bind(account_id)
            .bind(lr)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Uploaded::Stored)
    }

    async fn claim_key_package(
        &self,
        account: &str,
    ) -> Result<Option<(Vec<u8>, bool)>, sqlx::Error> {
        // One statement (its own transaction): the row is locked, skipped by
        // concurrent claimers, and deleted as it is returned.
        let ordinary: Option<Vec<u8>> = sqlx::query_scalar(
            "DELETE FROM key_packages WHERE id = (SELECT k.id FROM key_packages k \
             JOIN accounts a ON a.id = k.account_id WHERE a.name = $1 AND NOT k.last_resort \
             ORDER BY k.id LIMIT 1 FOR UPDATE OF k SKIP LOCKED) RETURNING data",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(d) = ordinary {
            return Ok(Some((d, false)));
        }
        let lr: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT k.data FROM key_packages k JOIN accounts a ON a.id = k.account_id \
             WHERE a.name = $1 AND k.last_resort",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        Ok(lr.map(|d| (d, true)))
    }

    async fn count_key_packages(&self, account_id: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM key_packages WHERE account_id = $1 AND NOT last_resort",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await
    }
}
