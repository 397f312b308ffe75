//! Conversations: create, add, remove, self-update, list. Every membership
//! change is an MLS commit, ordered by the delivery service (one per epoch,
//! first wins); a commit that loses the race is discarded, the winner is
//! processed, and the change is tried again on the new epoch.

use custos_wire::ConversationId;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;

use crate::api::ApiError;
use crate::device::{Device, DeviceError, MlsError, mls};
use crate::keydir::{RosterCheck, check_key};
use crate::mls::{CIPHERSUITE, MAX_PAST_EPOCHS, WIRE_FORMAT_POLICY, credential_name};

/// How many times a commit is retried after losing a race.
pub(crate) const COMMIT_ATTEMPTS: usize = 8;
/// Members commit a self-update at least this often (post-compromise security).
pub const SELF_UPDATE_INTERVAL_MS: u64 = 24 * 3600 * 1000;

/// A conversation as this device sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConversationInfo {
    /// Conversation id (hex).
    pub conversation: String,
    /// Current MLS epoch.
    pub epoch: u64,
    /// Members in the MLS roster (account names).
    pub members: Vec<String>,
    /// This device has left and waits for a member to commit its removal.
    pub leaving: bool,
}

enum Change {
    Add(Vec<KeyPackage>),
    Remove(Vec<String>),
    SelfUpdate,
    /// Commit the proposals already received (members leaving).
    Pending,
}

impl Device {
    /// Creates a conversation with `members` (account names) and returns its id.
    pub async fn create_conversation(
        &mut self,
        members: &[String],
    ) -> Result<ConversationId, DeviceError> {
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let conv = ConversationId(id);
        // The new group's state is written whole or not at all.
        let group = self.provider.storage().atomically(|| {
            MlsGroup::builder()
                .with_group_id(GroupId::from_slice(&conv.0))
                .ciphersuite(CIPHERSUITE)
                .use_ratchet_tree_extension(true)
                .max_past_epochs(MAX_PAST_EPOCHS)
                .with_wire_format_policy(WIRE_FORMAT_POLICY)
                .build(&self.provider, &self.identity, self.credential())
                .map_err(mls(MlsError::CreateGroup))
        })?;
        // The service keeps the group's public state from here on and
        // derives the members from it and from the commits it verifies.
        let group_info = group
            .export_group_info(
                openmls_traits::OpenMlsProvider::crypto(&self.provider),
                &self.identity,
                false,
            )
            .map_err(mls(MlsError::CreateGroup))?
            .tls_serialize_detached()
            .map_err(mls(MlsError::Encode))?;
        let ratchet_tree = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .map_err(mls(MlsError::Encode))?;
        self.api
            .create_conversation(&conv, &group_info, &ratchet_tree)
            .await?;
        self.store
            .add_conversation(&conv, self.clock.now_millis())?;
        if !members.is_empty() {
            self.add_members(&conv, members).await?;
        }
        Ok(conv)
    }

    /// Adds accounts to a conversation (one commit; each gets a Welcome).
    ///
    /// Each KeyPackage's key must be its account's key in the key
    /// directory, checked before any commit or Welcome is built for it.
    /// The lookups that will be needed go out in one batch beside the
    /// claims, their proofs are checked on other threads against the roots
    /// the service named, and, if the answer names an epoch the device does
    /// not hold, the log is followed meanwhile; a proof counts only once
    /// its root is the logged one.
    pub async fn add_members(
        &mut self,
        conv: &ConversationId,
        members: &[String],
    ) -> Result<(), DeviceError> {
        let mut to_look_up: Vec<String> = Vec::new();
        for m in members {
            custos_wire::ids::validate_account_name(m)?;
            if self.needs_lookup(m)? && !to_look_up.contains(m) {
                to_look_up.push(m.clone());
            }
        }
        let vrf = self.key_directory_vrf()?.filter(|_| !to_look_up.is_empty());
        let mut checking = vrf.map(|vrf| self.spawn_roster_check(vrf, to_look_up.clone()));
        // The log is followed beside the claims once the answer is in, and
        // only if it names an epoch the device does not hold.
        let answered = checking.as_mut().and_then(RosterCheck::take_answer);
        let prefetch = match answered {
            Some(answered) => self.prefetch_for(to_look_up.clone(), answered)?,
            None => None,
        };
        let claimed = self.claim_key_packages(members).await;
        // Always waited for, so that the round never writes beside later
        // work, also when a claim failed.
        if let Some(prefetch) = prefetch {
            self.take_prefetched(prefetch).await;
        }
        let claimed = claimed?;
        let proven = match checking {
            Some(check) => {
                let roster = check.finish().await?;
                self.accept_checked(&to_look_up, roster).await?
            }
            None => Default::default(),
        };
        let mut packages = Vec::with_capacity(members.len());
        for (m, bytes) in members.iter().zip(claimed) {
            let kp = self.validate_key_package(m, &bytes)?;
            let key = kp.leaf_node().signature_key().as_slice();
            match proven.get(m) {
                Some(directory) => check_key(m, key, Some(directory))?,
                // Proven within the TTL, or no directory: looked up again
                // if this KeyPackage shows another key.
                None => self.check_member_key(m, key).await?,
            }
            packages.push(kp);
        }
        self.commit_change(conv, Change::Add(packages)).await
    }

    /// Claims one KeyPackage for each of `members`, all at once.
    async fn claim_key_packages(&self, members: &[String]) -> Result<Vec<Vec<u8>>, DeviceError> {
        let claims = members.iter().map(|m| self.api.claim_key_package(m));
        Ok(futures_util::future::try_join_all(claims).await?)
    }

    /// Removes accounts from a conversation.
    pub async fn remove_members(
        &mut self,
        conv: &ConversationId,
        members: &[String],
    ) -> Result<(), DeviceError> {
        self.commit_change(conv, Change::Remove(members.to_vec()))
            .await
    }

    /// Commits a self-update (fresh leaf key material) for post-compromise security.
    pub async fn self_update(&mut self, conv: &ConversationId) -> Result<(), DeviceError> {
        self.commit_change(conv, Change::SelfUpdate).await
    }

    /// Commits the proposals this device holds (members' removals of
    /// themselves). Nothing is sent if another member committed them first.
    pub async fn commit_pending_proposals(
        &mut self,
        conv: &ConversationId,
    ) -> Result<(), DeviceError> {
        self.commit_change(conv, Change::Pending).await
    }

    /// Commits a self-update if the last one is older than a day.
    pub async fn self_update_if_due(&mut self, conv: &ConversationId) -> Result<(), DeviceError> {
        let last = self.store.last_update(conv)?.unwrap_or(0);
        if self.clock.now_millis().saturating_sub(last) >= SELF_UPDATE_INTERVAL_MS {
            self.self_update(conv).await?;
        }
        Ok(())
    }

    /// The conversations this device is in, with their MLS rosters.
    pub fn conversations(&self) -> Result<Vec<ConversationInfo>, DeviceError> {
        let mut out = Vec::new();
        for conv in self.store.conversations()? {
            if let Some(group) = self.load_group(&conv)? {
                out.push(ConversationInfo {
                    conversation: conv.to_hex(),
                    epoch: group.epoch().as_u64(),
                    members: roster(&group),
                    leaving: self.is_leaving(&conv)?,
                });
            }
        }
        Ok(out)
    }

    pub(crate) fn load_group(
        &self,
        conv: &ConversationId,
    ) -> Result<Option<MlsGroup>, DeviceError> {
        MlsGroup::load(
            openmls_traits::OpenMlsProvider::storage(&self.provider),
            &GroupId::from_slice(&conv.0),
        )
        .map_err(mls(MlsError::LoadGroup))
    }

    pub(crate) fn group(&self, conv: &ConversationId) -> Result<MlsGroup, DeviceError> {
        match self.load_group(conv)? {
            Some(g) if g.is_active() => Ok(g),
            _ => Err(DeviceError::UnknownConversation(conv.to_hex())),
        }
    }

    async fn commit_change(
        &mut self,
        conv: &ConversationId,
        change: Change,
    ) -> Result<(), DeviceError> {
        for _ in 0..COMMIT_ATTEMPTS {
            let mut group = self.group(conv)?;
            let epoch = group.epoch().as_u64();
            if matches!(change, Change::Pending) && !group.has_pending_proposals() {
                return Ok(());
            }
            // The commit's state is written whole or not at all.
            let (commit, welcome) = self
                .provider
                .storage()
                .atomically(|| self.build_commit(&mut group, &change))?;
            let commit_bytes = commit
                .tls_serialize_detached()
                .map_err(mls(MlsError::Encode))?;
            let welcome_bytes = welcome
                .map(|w| w.tls_serialize_detached())
                .transpose()
                .map_err(mls(MlsError::Encode))?;
            match self
                .api
                .submit_commit(conv, epoch, &commit_bytes, welcome_bytes.as_deref())
                .await
            {
                Ok(()) => {
                    self.provider.storage().atomically(|| {
                        group
                            .merge_pending_commit(&self.provider)
                            .map_err(mls(MlsError::Merge))
                    })?;
                    self.store.set_last_update(conv, self.clock.now_millis())?;
                    self.after_epoch_change(conv, &group)?;
                    return Ok(());
                }
                Err(ApiError::Refused { status: 409, .. }) => {
                    // Another member's commit won this epoch: drop ours, catch
                    // up (which processes the winner), and try again.
                    group
                        .clear_pending_commit(openmls_traits::OpenMlsProvider::storage(
                            &self.provider,
                        ))
                        .map_err(mls(MlsError::Merge))?;
                    self.sync().await?;
                }
                Err(e) => {
                    group
                        .clear_pending_commit(openmls_traits::OpenMlsProvider::storage(
                            &self.provider,
                        ))
                        .map_err(mls(MlsError::Merge))?;
                    return Err(e.into());
                }
            }
        }
        Err(DeviceError::CommitContention)
    }

    /// Builds the commit (and the Welcome, if it adds anyone) for `change`
    /// on `group`; openmls writes the pending commit to the MLS store.
    fn build_commit(
        &self,
        group: &mut MlsGroup,
        change: &Change,
    ) -> Result<(MlsMessageOut, Option<MlsMessageOut>), DeviceError> {
        Ok(match change {
            Change::Add(kps) => {
                let (c, w, _) = group
                    .add_members(&self.provider, &self.identity, kps)
                    .map_err(mls(MlsError::Commit))?;
                (c, Some(w))
            }
            Change::Remove(names) => {
                let mut leaves = Vec::new();
                for n in names {
                    let leaf = group
                        .members()
                        .find(|m| credential_name(&m.credential).as_deref() == Some(n.as_str()))
                        .ok_or_else(|| DeviceError::NotAMember(n.clone()))?;
                    leaves.push(leaf.index);
                }
                let (c, w, _) = group
                    .remove_members(&self.provider, &self.identity, &leaves)
                    .map_err(mls(MlsError::Commit))?;
                (c, w)
            }
            Change::SelfUpdate => {
                let bundle = group
                    .self_update(
                        &self.provider,
                        &self.identity,
                        LeafNodeParameters::default(),
                    )
                    .map_err(mls(MlsError::Commit))?;
                let (c, w, _) = bundle.into_messages();
                (c, w)
            }
            Change::Pending => {
                let (c, w, _) = group
                    .commit_to_pending_proposals(&self.provider, &self.identity)
                    .map_err(mls(MlsError::Commit))?;
                (c, w)
            }
        })
    }

    fn validate_key_package(&self, account: &str, bytes: &[u8]) -> Result<KeyPackage, DeviceError> {
        let bad = |reason: String| MlsError::BadKeyPackage {
            account: account.to_owned(),
            reason,
        };
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| bad(e.to_string()))?;
        let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else {
            return Err(bad("not a KeyPackage".into()).into());
        };
        let kp = kp
            .validate(
                openmls_traits::OpenMlsProvider::crypto(&self.provider),
                ProtocolVersion::Mls10,
            )
            .map_err(|e| bad(e.to_string()))?;
        // The KeyPackage must name the account we asked for.
        if credential_name(kp.leaf_node().credential()).as_deref() != Some(account) {
            return Err(bad("it names someone else".into()).into());
        }
        Ok(kp)
    }
}

/// The account names in a group's roster.
pub(crate) fn roster(group: &MlsGroup) -> Vec<String> {
    group
        .members()
        .filter_map(|m| credential_name(&m.credential))
        .collect()
}
