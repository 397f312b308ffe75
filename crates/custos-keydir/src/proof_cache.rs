//! Lookup proofs already generated for the latest epoch, kept so that the
//! next device asking for the same account gets them without `akd`
//! generating them again (three VRF proofs and three tree paths each).
//!
//! # Security
//! A lookup proof depends only on the directory at its epoch: `akd`'s VRF
//! proofs are deterministic and the tree paths are the epoch's. A kept
//! proof is therefore byte for byte the one `akd` would make again, and the
//! device verifies it the same way. The cache never answers for an epoch
//! other than the one it was filled at: a publish empties it, and a proof
//! generated at an older epoch than the cache's is not kept.
//!
//! After a publish the directory can make the new epoch's proofs of the
//! accounts asked for at the epoch before, ahead of the devices that will
//! ask again ([`crate::KeyDirectory::renew_proofs`]): the same work those
//! lookups would do, done off their path and in batches, the accounts
//! asked for most recently first (they are the likeliest to be asked for
//! again soon).
//!
//! Only a directory one process owns keeps proofs
//! ([`crate::KeyDirectory::open`]); one shared by several servers cannot
//! know when another server published, and keeps none.

use std::collections::HashMap;
use std::sync::Mutex;

use custos_verify::keydir::EpochRoot;

/// At most this many accounts' proofs are kept (about 4 KiB each at a
/// million accounts: ~32 MiB).
pub(crate) const MAX_KEPT: usize = 8192;

/// The proofs of one epoch, by account.
#[derive(Debug, Default)]
pub(crate) struct ProofCache {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The epoch every kept proof is for (`None`: nothing kept yet).
    root: Option<EpochRoot>,
    /// Each account's proof, and when a device last asked for it (a count
    /// of `asks`, not a time; 0: made by the renewal and not asked for
    /// since).
    by_account: HashMap<String, (Vec<u8>, u64)>,
    /// How many times a device asked for a proof (kept or answered).
    asks: u64,
    /// Accounts asked for at the epoch before `root` (see
    /// [`ProofCache::clear`]).
    to_renew: Vec<String>,
}

impl ProofCache {
    /// The kept proof of `account` and its epoch root, if any.
    /// Answering counts as asking for it (see [`ProofCache::clear`]).
    pub(crate) fn get(&self, account: &str) -> Option<(Vec<u8>, EpochRoot)> {
        let mut kept = self.kept.lock().ok()?;
        let root = kept.root?;
        let ask = kept.asks.wrapping_add(1);
        let (proof, asked) = kept.by_account.get_mut(account)?;
        *asked = ask;
        let proof = proof.clone();
        kept.asks = ask;
        Some((proof, root))
    }

    /// Keeps `proof` of `account` at `root`, unless the cache already holds
    /// a later epoch; an earlier epoch's proofs are dropped first. `asked`:
    /// a device asked for it (not the renewal, whose proofs are renewed
    /// again only if a device asks for them meanwhile).
    pub(crate) fn keep(&self, account: &str, proof: &[u8], root: EpochRoot, asked: bool) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        match kept.root {
            Some(r) if r.epoch > root.epoch => return,
            Some(r) if r == root => {}
            _ => {
                kept.by_account.clear();
                kept.root = Some(root);
            }
        }
        let before = kept.by_account.get(account).map(|(_, ask)| *ask);
        if kept.by_account.len() < MAX_KEPT || before.is_some() {
            let ask = if asked {
                kept.asks = kept.asks.wrapping_add(1);
                kept.asks
            } else {
                before.unwrap_or(0)
            };
            kept.by_account
                .insert(account.to_owned(), (proof.to_vec(), ask));
        }
    }

    /// Forgets every proof: the directory has moved to a new epoch. The
    /// accounts whose proofs devices asked for are remembered (at most
    /// [`MAX_KEPT`]), the most recently asked for first, for
    /// [`ProofCache::take_to_renew`]; those only the renewal made are not,
    /// so that no proof is renewed epoch after epoch for nobody.
    pub(crate) fn clear(&self, new_root: EpochRoot) {
        if let Ok(mut kept) = self.kept.lock() {
            let mut asked: Vec<(String, u64)> = kept
                .by_account
                .drain()
                .filter(|(_, (_, ask))| *ask > 0)
                .map(|(account, (_, ask))| (account, ask))
                .collect();
            asked.sort_unstable_by_key(|(_, ask)| std::cmp::Reverse(*ask));
            kept.to_renew = asked.into_iter().map(|(account, _)| account).collect();
            kept.root = Some(new_root);
        }
    }

    /// The accounts whose proofs were asked for at the epoch before the
    /// latest one (each once, the most recently asked for first), emptying
    /// the list.
    pub(crate) fn take_to_renew(&self) -> Vec<String> {
        self.kept
            .lock()
            .map(|mut kept| std::mem::take(&mut kept.to_renew))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(epoch: u64) -> EpochRoot {
        EpochRoot {
            epoch,
            root_hash: [epoch as u8; 32],
        }
    }

    #[test]
    fn answers_only_for_the_epoch_it_was_filled_at() {
        let c = ProofCache::default();
        assert!(c.get("a").is_none());
        c.keep("a", b"p1", root(1), true);
        assert_eq!(c.get("a"), Some((b"p1".to_vec(), root(1))));
        // A publish empties it; a proof generated before it is not kept.
        c.clear(root(2));
        assert!(c.get("a").is_none());
        c.keep("a", b"stale", root(1), true);
        assert!(c.get("a").is_none());
        c.keep("a", b"p2", root(2), true);
        assert_eq!(c.get("a"), Some((b"p2".to_vec(), root(2))));
        // A later epoch's proof replaces the whole epoch.
        c.keep("b", b"p3", root(3), true);
        assert!(c.get("a").is_none());
        assert_eq!(c.get("b"), Some((b"p3".to_vec(), root(3))));
    }

    #[test]
    fn a_publish_remembers_once_which_accounts_were_asked_for() {
        let c = ProofCache::default();
        c.keep("a", b"p1", root(1), true);
        c.keep("b", b"p1", root(1), true);
        assert!(c.take_to_renew().is_empty());
        c.clear(root(2));
        assert_eq!(c.take_to_renew(), ["b", "a"], "the latest asked first");
        assert!(c.take_to_renew().is_empty());
        // Nothing asked at epoch 2: nothing to renew at epoch 3.
        c.clear(root(3));
        assert!(c.take_to_renew().is_empty());
    }

    #[test]
    fn renewal_takes_the_most_recently_asked_for_first() {
        let c = ProofCache::default();
        for a in ["a", "b", "c", "d"] {
            c.keep(a, b"p", root(1), true);
        }
        // Answering `b` and then `a` again counts as asking for them.
        assert!(c.get("b").is_some());
        assert!(c.get("a").is_some());
        // A miss changes nothing.
        assert!(c.get("e").is_none());
        c.clear(root(2));
        assert_eq!(c.take_to_renew(), ["a", "b", "d", "c"]);
    }

    #[test]
    fn a_proof_only_the_renewal_made_is_not_renewed_again() {
        let c = ProofCache::default();
        c.keep("a", b"p1", root(1), true);
        c.keep("b", b"p1", root(1), true);
        c.clear(root(2));
        assert_eq!(c.take_to_renew(), ["b", "a"]);
        // The renewal keeps both at epoch 2; a device asks for `a` only.
        c.keep("b", b"p2", root(2), false);
        c.keep("a", b"p2", root(2), false);
        assert!(c.get("a").is_some());
        c.clear(root(3));
        assert_eq!(c.take_to_renew(), ["a"]);
        // A renewal keeping a proof a device asked for does not forget the ask.
        c.keep("a", b"p3", root(3), true);
        c.keep("a", b"p3", root(3), false);
        c.clear(root(4));
        assert_eq!(c.take_to_renew(), ["a"]);
    }

    #[test]
    fn keeps_at_most_max_kept_accounts() {
        let c = ProofCache::default();
        for i in 0..MAX_KEPT + 10 {
            c.keep(&format!("u{i}"), b"p", root(1), true);
        }
        assert!(c.get("u0").is_some());
        assert!(c.get(&format!("u{}", MAX_KEPT + 5)).is_none());
    }
}
