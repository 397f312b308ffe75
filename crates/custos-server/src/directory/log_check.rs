//! Before this process first publishes an epoch: the directory's database
//! is not behind, and not beside, what the provider already logged.
//!
//! A database restored from an older backup holds an older epoch than the
//! log. Publishing from it would sign a second, different root for epochs
//! the log already holds for this provider: to every device and auditor a
//! split view, the very misbehaviour the log exists to expose, and the keys
//! registered since the backup would be missing from the directory. So the
//! publisher refuses until the newest database is restored, and says why.
//!
//! # Security meaning
//! The check reads the log up to its newest witnessed checkpoint, with every
//! entry checked to hash to it
//! ([`crate::abuse::franking_log::witnessed_entries`]), and takes the newest
//! `key_directory_epoch` statement signed with this provider's statement
//! key. It runs under the publisher's locks, so no epoch of this provider is
//! published meanwhile; an epoch published but not yet logged (a crash
//! between the two) leaves the database ahead of the log, which is allowed
//! when the root it recorded for the logged epoch is the logged one.

use custos_verify::keydir::EpochRoot;
use custos_wire::statement::{KeyDirectoryEpoch, SignedStatement, Statement, StatementKind};

use super::{DirectoryService, PublishEpochError};
use crate::abuse::franking_log::{FrankingLogConfig, witnessed_entries};

/// Why the directory's database does not follow on from the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectoryBehindLog {
    /// The database is at an older epoch than the log: restored from an
    /// older backup.
    #[error(
        "the key directory's database is at epoch {database} but the log holds this provider's \
         epoch {logged}: it was restored from an older backup; restore the newest one \
         (publishing from this one would sign a second root for a logged epoch)"
    )]
    Older {
        /// The database's latest epoch.
        database: u64,
        /// The newest epoch of this provider in the log.
        logged: u64,
    },
    /// The database has another root for an epoch the log holds.
    #[error(
        "the key directory's database has another root for epoch {epoch} than the log: it is \
         not this provider's directory, or not its newest state; restore the newest backup"
    )]
    Forked {
        /// The epoch whose roots differ.
        epoch: u64,
    },
}

/// The newest `key_directory_epoch` statement of `author` in `entries`.
fn newest_logged_epoch(entries: &[Vec<u8>], author: &[u8; 32]) -> Option<KeyDirectoryEpoch> {
    entries
        .iter()
        .rev()
        .filter_map(|entry| {
            let signed = SignedStatement::decode(entry).ok()?;
            if signed.author() != author
                || signed.statement_bytes().get(1) != Some(&StatementKind::KeyDirectoryEpoch.tag())
            {
                return None;
            }
            match signed.verify().ok()? {
                Statement::KeyDirectoryEpoch(e) => Some(e),
                _ => None,
            }
        })
        .next()
}

/// Whether the database's `current` epoch, with `recorded_root` its recorded
/// root of the `logged` epoch, follows on from the log.
fn follows_on(
    current: &EpochRoot,
    recorded_root: Option<&[u8]>,
    logged: &KeyDirectoryEpoch,
) -> Result<(), DirectoryBehindLog> {
    if current.epoch < logged.epoch {
        return Err(DirectoryBehindLog::Older {
            database: current.epoch,
            logged: logged.epoch,
        });
    }
    let same = if current.epoch == logged.epoch {
        current.root_hash == logged.root_hash
    } else {
        recorded_root == Some(logged.root_hash.as_slice())
    };
    if same {
        Ok(())
    } else {
        Err(DirectoryBehindLog::Forked {
            epoch: logged.epoch,
        })
    }
}

/// Checks the directory against the log (see the module docs).
pub(crate) async fn check(
    svc: &DirectoryService,
    log: &FrankingLogConfig,
) -> Result<(), PublishEpochError> {
    let entries = witnessed_entries(log).await?;
    let own = log.statement_key.verifying_key().to_bytes();
    let Some(logged) = newest_logged_epoch(&entries, &own) else {
        return Ok(());
    };
    let current = svc.dir.current().await?;
    let recorded = match i64::try_from(logged.epoch) {
        Ok(epoch) => svc.store.kd_epoch_root(epoch).await?,
        Err(_) => None,
    };
    follows_on(&current, recorded.as_deref(), &logged)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(epoch: u64, root: u8) -> KeyDirectoryEpoch {
        KeyDirectoryEpoch {
            provider: "provider.test".into(),
            epoch,
            root_hash: [root; 32],
            changes: 1,
            published_at: 0,
        }
    }

    fn at(epoch: u64, root: u8) -> EpochRoot {
        EpochRoot {
            epoch,
            root_hash: [root; 32],
        }
    }

    #[test]
    fn an_older_database_is_refused() {
        assert_eq!(
            follows_on(&at(5, 1), None, &logged(7, 2)),
            Err(DirectoryBehindLog::Older {
                database: 5,
                logged: 7
            })
        );
    }

    #[test]
    fn the_same_epoch_must_have_the_logged_root() {
        assert_eq!(follows_on(&at(7, 2), None, &logged(7, 2)), Ok(()));
        assert_eq!(
            follows_on(&at(7, 3), None, &logged(7, 2)),
            Err(DirectoryBehindLog::Forked { epoch: 7 })
        );
    }

    #[test]
    fn a_database_ahead_of_the_log_must_have_recorded_the_logged_root() {
        // Published, not yet logged: allowed when the history matches.
        assert_eq!(
            follows_on(&at(8, 9), Some([2; 32].as_slice()), &logged(7, 2)),
            Ok(())
        );
        for recorded in [None, Some([4u8; 32].as_slice())] {
            assert_eq!(
                follows_on(&at(8, 9), recorded, &logged(7, 2)),
                Err(DirectoryBehindLog::Forked { epoch: 7 })
            );
        }
    }
}
