//! Escrow day keys taken from the log, and the device's [`EscrowPolicy`].
//!
//! # Security meaning
//! - A day key is accepted only when at least `t` distinct custodians of the
//!   pinned manifest (`t` = its `custodian_threshold`) published the same
//!   bytes in `EscrowDayKey` statements that the device saw included in
//!   witnessed checkpoints ([`crate::follower`]). One rogue custodian (or
//!   `t - 1` of them) cannot plant a key whose master secret it knows.
//! - The bytes must decode to a consistent day key for that day, with the
//!   manifest's threshold and number of custodians.
//! - An accepted day key is never replaced. If another key for the same day
//!   later also reaches `t` votes, custodians equivocated: the device keeps
//!   the first, records the day as contested ([`DayKeys::contested`]) and
//!   logs a warning.
//! - Capsules are sealed to the identity of one conversation on one day
//!   (`custos_escrow::EscrowIdentity`) and bound to the 36-byte qualified
//!   chain id, so a key released for one conversation-day opens nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use custos_escrow::{Capsule, DayKey, SealContext};
use custos_wire::announcement::EscrowKind;
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::EscrowDayKey;
use custos_wire::{ChainId, ConversationId};

use crate::escrow::{EscrowError, EscrowPolicy};

/// Votes for one day: the custodians (by name) that published each byte string.
pub type DayVotes = BTreeMap<Vec<u8>, BTreeSet<String>>;

/// What became of one published `EscrowDayKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VoteOutcome {
    /// Counted; the day has no accepted key yet.
    Counted {
        /// Distinct custodians behind these bytes so far.
        votes: usize,
        /// Votes needed.
        needed: usize,
    },
    /// This vote made the day key reach the threshold: it is accepted now.
    Accepted,
    /// The day already has this key.
    AlreadyAccepted,
    /// The day already has another key: custodians equivocated.
    Contested,
    /// The author is not a custodian of the manifest.
    NotACustodian,
    /// The bytes are not a valid day key for this deployment and day.
    Invalid(String),
}

/// The day keys of one deployment, as a device learns them from the log.
#[derive(Debug)]
pub struct DayKeys {
    threshold: usize,
    custodians: BTreeSet<String>,
    accepted: RwLock<BTreeMap<u32, DayKey>>,
    contested: RwLock<BTreeSet<u32>>,
}

impl DayKeys {
    /// Day keys for the deployment `manifest` describes; `None` when it names
    /// no custodians (escrow is then off for everyone).
    pub fn for_manifest(manifest: &Manifest) -> Option<Self> {
        let custodians: BTreeSet<String> = manifest
            .with_role(Role::Custodian)
            .map(|p| p.name.clone())
            .collect();
        if custodians.is_empty() {
            return None;
        }
        Some(Self {
            threshold: manifest.custodian_threshold,
            custodians,
            accepted: RwLock::new(BTreeMap::new()),
            contested: RwLock::new(BTreeSet::new()),
        })
    }

    /// Counts one `EscrowDayKey` published by `author` (a manifest
    /// participant name, from a verified, included statement) into `votes`
    /// (this day's stored votes, updated in place), and accepts the key once
    /// `t` custodians agree.
    pub fn vote(&self, votes: &mut DayVotes, author: &str, st: &EscrowDayKey) -> VoteOutcome {
        if !self.custodians.contains(author) {
            return VoteOutcome::NotACustodian;
        }
        let key = match self.check(st) {
            Ok(k) => k,
            Err(reason) => return VoteOutcome::Invalid(reason),
        };
        let voters = votes.entry(st.day_key.clone()).or_default();
        voters.insert(author.to_owned());
        let count = voters.len();
        if let Some(existing) = self.get(st.day) {
            return if existing == key {
                VoteOutcome::AlreadyAccepted
            } else {
                if count >= self.threshold {
                    tracing::warn!(
                        day = st.day,
                        "a second day key reached the custodian threshold: custodians equivocated"
                    );
                    if let Ok(mut c) = self.contested.write() {
                        c.insert(st.day);
                    }
                }
                VoteOutcome::Contested
            };
        }
        if count < self.threshold {
            return VoteOutcome::Counted {
                votes: count,
                needed: self.threshold,
            };
        }
        self.insert(key);
        VoteOutcome::Accepted
    }

    /// Installs a key accepted earlier (loaded from the device store).
    pub fn insert(&self, key: DayKey) {
        if let Ok(mut a) = self.accepted.write() {
            a.entry(key.day()).or_insert(key);
        }
    }

    /// The accepted key of `day`, if any.
    pub fn get(&self, day: u32) -> Option<DayKey> {
        self.accepted.read().ok()?.get(&day).cloned()
    }

    /// Days for which a second key reached the threshold.
    pub fn contested(&self) -> Vec<u32> {
        self.contested
            .read()
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Checks a published key against the manifest: it decodes, is for the
    /// day it claims, and has the manifest's threshold and custodian count.
    fn check(&self, st: &EscrowDayKey) -> Result<DayKey, String> {
        let key = DayKey::from_bytes(&st.day_key).map_err(|e| e.to_string())?;
        if key.day() != st.day {
            return Err(format!(
                "key is for day {} but published for {}",
                key.day(),
                st.day
            ));
        }
        let n = self.custodians.len();
        if key.threshold() != self.threshold
            || usize::from(st.threshold) != self.threshold
            || key.custodians() != n
            || usize::from(st.custodians) != n
        {
            return Err(format!(
                "key is {} of {}, the manifest says {} of {n}",
                key.threshold(),
                key.custodians(),
                self.threshold
            ));
        }
        Ok(key)
    }
}

/// The device's escrow policy: capsules sealed to, and checked against, the
/// day keys in a [`DayKeys`].
#[derive(Debug)]
pub struct DayKeyEscrow {
    keys: Arc<DayKeys>,
    /// Prepared identities per conversation-day (hash to G1 and the
    /// prepared master key), so a chain costs one capsule and no more.
    contexts: Mutex<HashMap<(ConversationId, u32), SealContext>>,
}

/// Most conversation-days whose seal context is kept.
const MAX_CONTEXTS: usize = 1024;

impl DayKeyEscrow {
    /// A policy over `keys`; keys accepted later are used at once.
    pub fn new(keys: Arc<DayKeys>) -> Self {
        Self {
            keys,
            contexts: Mutex::new(HashMap::new()),
        }
    }

    fn context(&self, conversation: &ConversationId, day: u32) -> Result<SealContext, EscrowError> {
        let slot = (*conversation, day);
        if let Some(ctx) = self
            .contexts
            .lock()
            .ok()
            .and_then(|c| c.get(&slot).cloned())
        {
            return Ok(ctx);
        }
        let key = self.keys.get(day).ok_or(EscrowError::NoDayKey { day })?;
        let ctx = SealContext::new(&key, &conversation.0, day)?;
        if let Ok(mut c) = self.contexts.lock() {
            if c.len() >= MAX_CONTEXTS {
                c.clear();
            }
            c.insert(slot, ctx.clone());
        }
        Ok(ctx)
    }
}

impl EscrowPolicy for DayKeyEscrow {
    fn seal(
        &self,
        conversation: &ConversationId,
        chain: &ChainId,
        ck0: &[u8; 32],
    ) -> Result<(EscrowKind, Vec<u8>), EscrowError> {
        let capsule = self
            .context(conversation, chain.day)?
            .seal(&chain.qualified(conversation), ck0)?;
        Ok((EscrowKind::BfIbeV1, capsule.to_bytes().to_vec()))
    }

    fn verify(
        &self,
        conversation: &ConversationId,
        chain: &ChainId,
        ck0: &[u8; 32],
        kind: EscrowKind,
        capsule: &[u8],
    ) -> Result<(), EscrowError> {
        match kind {
            EscrowKind::BfIbeV1 => {}
            EscrowKind::None => return Err(EscrowError::MissingCapsule),
        }
        let capsule = Capsule::from_bytes(capsule).map_err(EscrowError::MalformedCapsule)?;
        self.context(conversation, chain.day)?.verify(
            &capsule,
            &chain.qualified(conversation),
            ck0,
        )?;
        Ok(())
    }
}
