//! The device's MLS state in SQLite, one transaction per MLS operation.
//!
//! `openmls_sqlite_storage` writes every item with a statement of its own,
//! each its own transaction, and keeps its connection to itself. A device
//! killed part-way through joining from a Welcome or merging a commit would
//! then keep part of the new epoch's state beside the old one: a group it
//! can neither use nor join again (the Welcome's KeyPackage is already
//! deleted when its group is written). [`MlsStorage`] owns the connection
//! instead and hands `openmls_sqlite_storage` a borrow of it for each
//! call, so that the device can put the writes of one operation in one
//! transaction ([`MlsStorage::begin`], [`MlsTransaction::commit`]): on disk
//! there is the state before the operation or the state after it, never a
//! mix, and an operation refused part-way (a roster key the directory does
//! not prove) is rolled back whole. One transaction is also one sync of
//! the file instead of one per item.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openmls_sqlite_storage::{Connection, SqliteStorageProvider};
use openmls_traits::storage::{CURRENT_VERSION, StorageProvider, traits};

use crate::mls::{JsonCodec, ProviderError};

/// openmls storage on a SQLite connection the device keeps, with
/// transactions spanning an MLS operation. Its methods are those of
/// `openmls_sqlite_storage` (same schema, same encoding), called on that
/// connection.
pub struct MlsStorage {
    conn: Connection,
    /// Whether the open transaction's [`MlsTransaction`] still exists.
    transaction_alive: Arc<AtomicBool>,
}

impl std::fmt::Debug for MlsStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MlsStorage")
    }
}

/// The transaction of one MLS operation ([`MlsStorage::begin`]). Dropped
/// without [`MlsTransaction::commit`] (a refusal, an error, or the
/// operation's future dropped at an `await`), everything written since
/// `begin` is rolled back before the storage is next used, so nothing
/// later can commit it by accident.
#[must_use = "an MLS transaction not committed is rolled back"]
#[derive(Debug)]
pub(crate) struct MlsTransaction {
    alive: Arc<AtomicBool>,
}

impl MlsTransaction {
    /// Commits the operation's writes, in one synced SQLite transaction.
    pub(crate) fn commit(self, storage: &MlsStorage) -> Result<(), rusqlite::Error> {
        storage.conn.execute_batch("COMMIT")
    }
}

impl Drop for MlsTransaction {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

/// Rolls back a transaction whose [`MlsTransaction`] is gone without a
/// commit (an SQLite transaction is open, but no operation owns it).
fn roll_back_abandoned(conn: &Connection, alive: &AtomicBool) -> Result<(), rusqlite::Error> {
    if !conn.is_autocommit() && !alive.load(Ordering::SeqCst) {
        conn.execute_batch("ROLLBACK")?;
    }
    Ok(())
}

impl MlsStorage {
    /// Wraps `conn`, whose schema `openmls_sqlite_storage`'s migrations
    /// have made current.
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            conn,
            transaction_alive: Arc::new(AtomicBool::new(false)),
        }
    }

    /// `openmls_sqlite_storage` on the kept connection, after rolling back
    /// an abandoned transaction.
    fn sqlite(&self) -> Result<SqliteStorageProvider<JsonCodec, &Connection>, rusqlite::Error> {
        roll_back_abandoned(&self.conn, &self.transaction_alive)?;
        Ok(SqliteStorageProvider::new(&self.conn))
    }

    /// Starts the transaction of one MLS operation: nothing openmls writes
    /// from now on is on disk before [`MlsTransaction::commit`], and
    /// dropping the transaction (or a killed process) undoes all of it.
    /// One operation at a time: a second `begin` while a transaction is
    /// owned is refused.
    pub(crate) fn begin(&self) -> Result<MlsTransaction, rusqlite::Error> {
        roll_back_abandoned(&self.conn, &self.transaction_alive)?;
        if !self.conn.is_autocommit() {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
                Some("an MLS transaction is already open".to_owned()),
            ));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.transaction_alive.store(true, Ordering::SeqCst);
        Ok(MlsTransaction {
            alive: Arc::clone(&self.transaction_alive),
        })
    }

    /// Runs `operation` in one transaction: committed if it returns `Ok`,
    /// rolled back otherwise.
    pub(crate) fn atomically<T, E: From<ProviderError>>(
        &self,
        operation: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let transaction = self.begin().map_err(ProviderError::from)?;
        let value = operation()?;
        transaction.commit(self).map_err(ProviderError::from)?;
        Ok(value)
    }
}

// Every method passes through to `openmls_sqlite_storage` on the kept
// connection; the trait has no provided methods but `version`, so the
// compiler checks that none is missed.
impl StorageProvider<CURRENT_VERSION> for MlsStorage {
    type Error = rusqlite::Error;

    fn write_mls_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        config: &MlsGroupJoinConfig,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.write_mls_join_config(group_id, config)
    }

    fn append_own_leaf_node<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        leaf_node: &LeafNode,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.append_own_leaf_node(group_id, leaf_node)
    }

    fn queue_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
        proposal: &QueuedProposal,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .queue_proposal(group_id, proposal_ref, proposal)
    }

    fn write_tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        tree: &TreeSync,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.write_tree(group_id, tree)
    }

    fn write_interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        interim_transcript_hash: &InterimTranscriptHash,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_interim_transcript_hash(group_id, interim_transcript_hash)
    }

    fn write_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_context: &GroupContext,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.write_context(group_id, group_context)
    }

    fn write_confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        confirmation_tag: &ConfirmationTag,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_confirmation_tag(group_id, confirmation_tag)
    }

    fn write_group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_state: &GroupState,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.write_group_state(group_id, group_state)
    }

    fn write_message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        message_secrets: &MessageSecrets,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_message_secrets(group_id, message_secrets)
    }

    fn write_resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        resumption_psk_store: &ResumptionPskStore,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_resumption_psk_store(group_id, resumption_psk_store)
    }

    fn write_own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        own_leaf_index: &LeafNodeIndex,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_own_leaf_index(group_id, own_leaf_index)
    }

    fn write_group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_epoch_secrets: &GroupEpochSecrets,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_group_epoch_secrets(group_id, group_epoch_secrets)
    }

    fn write_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
        signature_key_pair: &SignatureKeyPair,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_signature_key_pair(public_key, signature_key_pair)
    }

    fn write_encryption_key_pair<
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
        key_pair: &HpkeKeyPair,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_encryption_key_pair(public_key, key_pair)
    }

    fn write_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
        key_pairs: &[HpkeKeyPair],
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .write_encryption_epoch_key_pairs(group_id, epoch, leaf_index, key_pairs)
    }

    fn write_key_package<
        HashReference: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &HashReference,
        key_package: &KeyPackage,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.write_key_package(hash_ref, key_package)
    }

    fn write_psk<
        PskId: traits::PskId<CURRENT_VERSION>,
        PskBundle: traits::PskBundle<CURRENT_VERSION>,
    >(
        &self,
        psk_id: &PskId,
        psk: &PskBundle,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.write_psk(psk_id, psk)
    }

    fn mls_group_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MlsGroupJoinConfig>, Self::Error> {
        self.sqlite()?.mls_group_join_config(group_id)
    }

    fn own_leaf_nodes<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<LeafNode>, Self::Error> {
        self.sqlite()?.own_leaf_nodes(group_id)
    }

    fn queued_proposal_refs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<ProposalRef>, Self::Error> {
        self.sqlite()?.queued_proposal_refs(group_id)
    }

    fn queued_proposals<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<(ProposalRef, QueuedProposal)>, Self::Error> {
        self.sqlite()?.queued_proposals(group_id)
    }

    fn tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<TreeSync>, Self::Error> {
        self.sqlite()?.tree(group_id)
    }

    fn group_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupContext>, Self::Error> {
        self.sqlite()?.group_context(group_id)
    }

    fn interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<InterimTranscriptHash>, Self::Error> {
        self.sqlite()?.interim_transcript_hash(group_id)
    }

    fn confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ConfirmationTag>, Self::Error> {
        self.sqlite()?.confirmation_tag(group_id)
    }

    fn group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupState>, Self::Error> {
        self.sqlite()?.group_state(group_id)
    }

    fn message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MessageSecrets>, Self::Error> {
        self.sqlite()?.message_secrets(group_id)
    }

    fn resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ResumptionPskStore>, Self::Error> {
        self.sqlite()?.resumption_psk_store(group_id)
    }

    fn own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<LeafNodeIndex>, Self::Error> {
        self.sqlite()?.own_leaf_index(group_id)
    }

    fn group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupEpochSecrets>, Self::Error> {
        self.sqlite()?.group_epoch_secrets(group_id)
    }

    fn signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<Option<SignatureKeyPair>, Self::Error> {
        self.sqlite()?.signature_key_pair(public_key)
    }

    fn encryption_key_pair<
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<Option<HpkeKeyPair>, Self::Error> {
        self.sqlite()?.encryption_key_pair(public_key)
    }

    fn encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<Vec<HpkeKeyPair>, Self::Error> {
        self.sqlite()?
            .encryption_epoch_key_pairs(group_id, epoch, leaf_index)
    }

    fn key_package<
        KeyPackageRef: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<Option<KeyPackage>, Self::Error> {
        self.sqlite()?.key_package(hash_ref)
    }

    fn psk<PskBundle: traits::PskBundle<CURRENT_VERSION>, PskId: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskId,
    ) -> Result<Option<PskBundle>, Self::Error> {
        self.sqlite()?.psk(psk_id)
    }

    fn remove_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.remove_proposal(group_id, proposal_ref)
    }

    fn delete_own_leaf_nodes<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_own_leaf_nodes(group_id)
    }

    fn delete_group_config<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_group_config(group_id)
    }

    fn delete_tree<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_tree(group_id)
    }

    fn delete_confirmation_tag<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_confirmation_tag(group_id)
    }

    fn delete_group_state<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_group_state(group_id)
    }

    fn delete_context<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_context(group_id)
    }

    fn delete_interim_transcript_hash<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_interim_transcript_hash(group_id)
    }

    fn delete_message_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_message_secrets(group_id)
    }

    fn delete_all_resumption_psk_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_all_resumption_psk_secrets(group_id)
    }

    fn delete_own_leaf_index<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_own_leaf_index(group_id)
    }

    fn delete_group_epoch_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_group_epoch_secrets(group_id)
    }

    fn clear_proposal_queue<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .clear_proposal_queue::<GroupId, ProposalRef>(group_id)
    }

    fn delete_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_signature_key_pair(public_key)
    }

    fn delete_encryption_key_pair<EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_encryption_key_pair(public_key)
    }

    fn delete_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<(), Self::Error> {
        self.sqlite()?
            .delete_encryption_epoch_key_pairs(group_id, epoch, leaf_index)
    }

    fn delete_key_package<KeyPackageRef: traits::HashReference<CURRENT_VERSION>>(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_key_package(hash_ref)
    }

    fn delete_psk<PskKey: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskKey,
    ) -> Result<(), Self::Error> {
        self.sqlite()?.delete_psk(psk_id)
    }
}

#[cfg(test)]
mod tests {
    use openmls::group::{GroupId, MlsGroupJoinConfig};
    use openmls_traits::OpenMlsProvider as _;
    use openmls_traits::storage::StorageProvider as _;

    use crate::mls::{Provider, ProviderError, join_config};

    fn stored(p: &Provider, group: &GroupId) -> Option<MlsGroupJoinConfig> {
        p.storage().mls_group_join_config(group).unwrap()
    }

    fn write(p: &Provider, group: &GroupId) {
        p.storage()
            .write_mls_join_config(group, &join_config())
            .unwrap();
    }

    #[test]
    fn a_committed_transaction_is_kept_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mls.db");
        let (kept, dropped) = (
            GroupId::from_slice(b"kept"),
            GroupId::from_slice(b"dropped"),
        );
        let p = Provider::open(&path).unwrap();
        let transaction = p.storage().begin().unwrap();
        write(&p, &kept);
        transaction.commit(p.storage()).unwrap();
        let transaction = p.storage().begin().unwrap();
        write(&p, &dropped);
        // Visible inside its own transaction, gone once it is dropped.
        assert!(stored(&p, &dropped).is_some());
        drop(transaction);
        assert!(stored(&p, &dropped).is_none());
        assert!(stored(&p, &kept).is_some());
        drop(p);
        let p = Provider::open(&path).unwrap();
        assert!(stored(&p, &kept).is_some());
        assert!(stored(&p, &dropped).is_none());
    }

    #[test]
    fn an_abandoned_transaction_is_rolled_back_before_the_next_write_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mls.db");
        let (abandoned, later) = (
            GroupId::from_slice(b"abandoned"),
            GroupId::from_slice(b"later"),
        );
        let p = Provider::open(&path).unwrap();
        let transaction = p.storage().begin().unwrap();
        write(&p, &abandoned);
        drop(transaction);
        // A write outside any transaction commits on its own, and must not
        // carry the abandoned operation's writes with it.
        write(&p, &later);
        drop(p);
        let p = Provider::open(&path).unwrap();
        assert!(stored(&p, &abandoned).is_none());
        assert!(stored(&p, &later).is_some());
    }

    /// One step of the property test below.
    #[derive(Debug, Clone)]
    enum Step {
        /// Write group `g` in a transaction, then commit it.
        Commit(u8),
        /// Write group `g` in a transaction, then drop the transaction.
        Abandon(u8),
        /// Write group `g` outside any transaction.
        Write(u8),
        /// Close the store and open it again.
        Reopen,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..6).prop_map(Step::Commit),
            (0u8..6).prop_map(Step::Abandon),
            (0u8..6).prop_map(Step::Write),
            Just(Step::Reopen),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever the order of committed, abandoned and plain writes and
        /// reopenings, the store holds exactly the committed and the plain
        /// writes, never an abandoned one.
        #[test]
        fn only_committed_and_plain_writes_are_kept(steps in proptest::collection::vec(step(), 1..24)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("mls.db");
            let mut p = Provider::open(&path).unwrap();
            let mut kept = std::collections::BTreeSet::new();
            let group = |g: u8| GroupId::from_slice(&[g]);
            for s in &steps {
                match *s {
                    Step::Commit(g) => {
                        let t = p.storage().begin().unwrap();
                        write(&p, &group(g));
                        t.commit(p.storage()).unwrap();
                        kept.insert(g);
                    }
                    Step::Abandon(g) => {
                        let t = p.storage().begin().unwrap();
                        write(&p, &group(g));
                        drop(t);
                    }
                    Step::Write(g) => {
                        write(&p, &group(g));
                        kept.insert(g);
                    }
                    Step::Reopen => {
                        drop(p);
                        p = Provider::open(&path).unwrap();
                    }
                }
                for g in 0u8..6 {
                    proptest::prop_assert_eq!(stored(&p, &group(g)).is_some(), kept.contains(&g));
                }
            }
        }
    }

    #[test]
    fn one_transaction_at_a_time_and_a_failed_operation_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = Provider::open(&dir.path().join("mls.db")).unwrap();
        let open = p.storage().begin().unwrap();
        assert!(p.storage().begin().is_err());
        drop(open);
        let group = GroupId::from_slice(b"failed");
        let result: Result<(), ProviderError> = p.storage().atomically(|| {
            write(&p, &group);
            Err(ProviderError::Migration("the operation failed".to_owned()))
        });
        assert!(result.is_err());
        assert!(stored(&p, &group).is_none());
        p.storage()
            .atomically(|| {
                write(&p, &group);
                Ok::<_, ProviderError>(())
            })
            .unwrap();
        assert!(stored(&p, &group).is_some());
    }
}
