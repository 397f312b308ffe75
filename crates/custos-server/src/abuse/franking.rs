//! [`FrankingPolicy`]: delivery tags signed with the service's franking key,
//! and admission that refuses suspended accounts (DESIGN.md §5).
//!
//! # Security meaning
//! The franking key is the service's signing key for delivery tags
//! (`custos_wire::tag`). Whoever holds it can vouch that an account sent an
//! envelope, so it is kept in `franking.key` in the data directory, created
//! with mode 0600, held in memory only inside an `ed25519_dalek::SigningKey`
//! (zeroized on drop) and never logged. Its public half is served at
//! `GET /v1/franking-key` and published in the transparency log
//! ([`crate::abuse::franking_log`]), so that a recipient, a clearinghouse or a
//! court can check tags without trusting the service's word about its key.
//! The policy holds the key's current log proof
//! ([`FrankingPolicy::log_proof`]), which escalation packages carry.
//!
//! Tags are v2 (`custos_wire::tag`): the writer hands each batch of accepted
//! envelopes to [`DeliveryPolicy::tag_batch`], which splits it into tag
//! batches of at most `MAX_TAG_BATCH` leaves, builds one Merkle tree per tag
//! batch and makes one Ed25519 signature over its root; each envelope's tag
//! carries its leaf's path. The measurements behind this choice are in
//! `docs/design/0005-abuse-reporting.md`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use custos_clock::SharedClock;
use custos_wire::frames::ItemKind;
use custos_wire::tag::{DeliveryTag, DeliveryTagV2, MAX_TAG_BATCH, TagFields, build_batch};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::abuse::policy::{AdmitRefusal, DeliveryPolicy, Sender, TagInput};
use custos_verify::package::FrankingKeyLogProof;

/// File name of the franking key inside the data directory.
pub const FRANKING_KEY_FILE: &str = "franking.key";

/// Why the franking key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrankingKeyError {
    /// The key file could not be read or written.
    #[error("franking key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte Ed25519 seed.
    #[error(
        "franking key {0} is not a 32-byte key; restore it from backup (tags signed with it stay verifiable only with its public key)"
    )]
    Malformed(PathBuf),
}

/// A suspension: until when (Unix ms on the service clock), or permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspension {
    /// Sends are refused until this time (exclusive), then allowed again.
    Until(u64),
    /// Sends are refused until a moderator lifts it.
    Permanent,
}

/// The delivery policy that signs delivery tags and enforces suspensions.
///
/// Contract (see [`DeliveryPolicy`]): both methods take only in-memory
/// state: the key, and the suspension table that moderation keeps in step
/// with the database (loaded at start by `serve`).
pub struct FrankingPolicy {
    key: SigningKey,
    clock: SharedClock,
    suspended: RwLock<HashMap<String, Suspension>>,
    log_proof: RwLock<FrankingKeyLogProof>,
    created_at: u64,
    /// Number of the next tag batch. Starts at the service clock in
    /// microseconds when the policy is made, so that successive runs do not
    /// reuse numbers while the clock moves forward and fewer than a million
    /// tag batches are signed per second. Uniqueness helps people refer to a
    /// batch; no check depends on it (the signature binds id, size and root).
    next_batch: AtomicU64,
}

impl std::fmt::Debug for FrankingPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrankingPolicy")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl FrankingPolicy {
    /// Loads the franking key from `data_dir/franking.key`, creating it
    /// (mode 0600, fresh from the OS generator) if missing. Suspensions end
    /// on `clock`.
    pub fn open(data_dir: &Path, clock: SharedClock) -> Result<Self, FrankingKeyError> {
        let path = data_dir.join(FRANKING_KEY_FILE);
        let io = |source| FrankingKeyError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut raw = Zeroizing::new(Vec::with_capacity(33));
                Read::by_ref(&mut f)
                    .take(33)
                    .read_to_end(&mut raw)
                    .map_err(io)?;
                if raw.len() != 32 {
                    return Err(FrankingKeyError::Malformed(path));
                }
                seed.copy_from_slice(&raw);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
                // Never overwrites a key that appeared meanwhile; a crash
                // before the commit point of `write_new` leaves no file, and
                // then no tag signed by it was ever answered (the service
                // starts only after this returns).
                custos_durable::write_new(&path, seed.as_ref()).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        // The key signs tags from the time its file was written (never
        // rewritten); this is the `valid_from` published in the log.
        let created_at = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(clock.now_millis() / 1000, |d| d.as_secs());
        let mut policy = Self::from_seed(&seed, clock);
        policy.created_at = created_at;
        Ok(policy)
    }

    /// A policy with the given key seed (tests and benchmarks); its key is
    /// taken to sign tags from the clock's current second.
    pub fn from_seed(seed: &[u8; 32], clock: SharedClock) -> Self {
        let created_at = clock.now_millis() / 1000;
        let next_batch = AtomicU64::new(clock.now_millis().saturating_mul(1000));
        Self {
            key: SigningKey::from_bytes(seed),
            clock,
            suspended: RwLock::new(HashMap::new()),
            log_proof: RwLock::new(FrankingKeyLogProof::NoLog),
            created_at,
            next_batch,
        }
    }

    /// From when this key signs tags, Unix seconds (the `valid_from` of its
    /// log statement).
    pub fn valid_from(&self) -> u64 {
        self.created_at
    }

    /// What the service can show about its key in the transparency log:
    /// [`FrankingKeyLogProof::NoLog`] unless a log is configured.
    pub fn log_proof(&self) -> FrankingKeyLogProof {
        self.log_proof
            .read()
            .map(|p| p.clone())
            .unwrap_or(FrankingKeyLogProof::Pending)
    }

    /// Records the key's log proof (or that it is pending). Called by
    /// [`crate::abuse::franking_log`]; a proof set here is shown to every package
    /// verifier, who checks it independently.
    pub fn set_log_proof(&self, proof: FrankingKeyLogProof) {
        if let Ok(mut p) = self.log_proof.write() {
            *p = proof;
        }
    }

    /// The public franking key that verifies every tag this policy signs.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public franking key as a dalek key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs v2 delivery tags over `fields`, in order: the list is split
    /// into as few tag batches of at most `MAX_TAG_BATCH` leaves as
    /// possible, of even sizes, each with a fresh batch number, one Merkle
    /// tree and one Ed25519 signature over its root. Fails only if a field is
    /// out of its wire bounds (an invalid account name).
    pub fn sign_batch(
        &self,
        fields: Vec<TagFields>,
    ) -> Result<Vec<DeliveryTagV2>, custos_wire::WireError> {
        let n = fields.len();
        let cap = usize::from(MAX_TAG_BATCH);
        let chunks = n.div_ceil(cap).max(1);
        let per = n.div_ceil(chunks).max(1);
        let mut out = Vec::with_capacity(n);
        let mut rest = fields.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<TagFields> = rest.by_ref().take(per).collect();
            let batch_id = self.next_batch.fetch_add(1, Ordering::Relaxed);
            out.extend(build_batch(batch_id, chunk, |msg| {
                self.key.sign(msg).to_bytes()
            })?);
        }
        Ok(out)
    }

    /// Records a suspension in memory (moderation persists it first).
    pub fn suspend(&self, account: &str, s: Suspension) {
        if let Ok(mut m) = self.suspended.write() {
            m.insert(account.to_owned(), s);
        }
    }

    /// Lifts a suspension in memory.
    pub fn lift(&self, account: &str) {
        if let Ok(mut m) = self.suspended.write() {
            m.remove(account);
        }
    }

    /// The account's suspension in force now, if any.
    pub fn suspension(&self, account: &str) -> Option<Suspension> {
        let now = self.clock.now_millis();
        let s = *self.suspended.read().ok()?.get(account)?;
        match s {
            Suspension::Until(t) if t <= now => None,
            s => Some(s),
        }
    }
}

impl DeliveryPolicy for FrankingPolicy {
    fn admit(&self, sender: &Sender<'_>) -> Result<(), AdmitRefusal> {
        let until = match self.suspension(sender.name) {
            None => return Ok(()),
            Some(Suspension::Permanent) => None,
            Some(Suspension::Until(t)) => Some(t),
        };
        Err(AdmitRefusal::Suspended {
            account: sender.name.to_owned(),
            until,
        })
    }

    fn tag_batch(&self, inputs: &[TagInput<'_>]) -> Vec<Vec<u8>> {
        let mut out = vec![Vec::new(); inputs.len()];
        let mut slots = Vec::with_capacity(inputs.len());
        let mut fields = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            // Only envelopes carry a franking commitment to vouch for.
            let (ItemKind::Envelope, Some(commitment)) = (input.kind, input.franking_commitment)
            else {
                continue;
            };
            slots.push(i);
            fields.push(TagFields {
                franking_commitment: *commitment,
                conversation: input.conversation,
                sender: input.sender.to_owned(),
                server_time: input.server_time,
                envelope_hash: *input.item_hash,
            });
        }
        if fields.is_empty() {
            return out;
        }
        // An authenticated account name always encodes; an empty tag would be
        // refused by every recipient that pinned the key, not silently trusted.
        let tags = match self.sign_batch(fields) {
            Ok(tags) => tags,
            Err(e) => {
                tracing::error!(%e, "delivery tags could not be signed");
                return out;
            }
        };
        for (slot, tag) in slots.into_iter().zip(tags) {
            match DeliveryTag::V2(tag).encode() {
                Ok(bytes) => {
                    if let Some(o) = out.get_mut(slot) {
                        *o = bytes;
                    }
                }
                Err(e) => tracing::error!(%e, "delivery tag could not be encoded"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let clock = custos_clock::system();
        let a = FrankingPolicy::open(dir.path(), clock.clone()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FRANKING_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = FrankingPolicy::open(dir.path(), clock.clone()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::write(dir.path().join(FRANKING_KEY_FILE), [1u8; 31]).unwrap();
        assert!(matches!(
            FrankingPolicy::open(dir.path(), clock),
            Err(FrankingKeyError::Malformed(_))
        ));
    }

    /// A writer batch of 1,100 envelopes becomes three tag batches of even
    /// size (≤ 512), three signatures, fresh batch ids; every tag verifies
    /// with the shared verifier; items that are not envelopes get no tag.
    #[test]
    fn tag_batch_splits_signs_once_per_tag_batch_and_skips_non_envelopes() {
        use custos_wire::ConversationId;
        use custos_wire::tag::{Received, verify_tag};
        let p = FrankingPolicy::from_seed(&[7; 32], custos_clock::system());
        let hashes: Vec<[u8; 32]> = (0..1102u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_be_bytes());
                h
            })
            .collect();
        let commitment = [5u8; 32];
        let inputs: Vec<TagInput<'_>> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| TagInput {
                // Two announcements in the middle: no commitment, no tag.
                kind: if i == 10 || i == 700 {
                    ItemKind::Announcement
                } else {
                    ItemKind::Envelope
                },
                conversation: ConversationId([1; 16]),
                sender: "alice",
                server_time: 1_000 + i as u64,
                item_hash: h,
                franking_commitment: (i != 10 && i != 700).then_some(&commitment),
            })
            .collect();
        let tags = p.tag_batch(&inputs);
        assert_eq!(tags.len(), inputs.len());
        let mut sizes = std::collections::BTreeMap::new();
        for (input, tag) in inputs.iter().zip(&tags) {
            if input.kind != ItemKind::Envelope {
                assert!(tag.is_empty());
                continue;
            }
            // The inputs' hashes are not of real envelopes: check the root
            // signature directly (the shared verifier is used below).
            let DeliveryTag::V2(t) = DeliveryTag::decode(tag).unwrap() else {
                panic!("v2 expected")
            };
            assert_eq!(&t.fields.envelope_hash, input.item_hash);
            let root = t.root().unwrap().unwrap();
            let msg = custos_wire::tag::root_signed_bytes(t.batch_id, t.batch_size, &root);
            custos_wire::signature::verify_strict(
                &p.verifying_key(),
                &msg,
                &ed25519_dalek::Signature::from_bytes(&t.signature),
            )
            .unwrap();
            let n = sizes.entry(t.batch_id).or_insert(0u16);
            *n += 1;
            assert!(*n <= t.batch_size);
        }
        // 1,100 envelopes: three batches of 367, 367 and 366.
        assert_eq!(
            sizes.values().copied().collect::<Vec<_>>(),
            vec![367, 367, 366]
        );
        // And one tag through the shared verifier, with a real envelope.
        let envelope = b"an envelope".to_vec();
        let h: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&envelope).into();
        let one = p.tag_batch(&[TagInput {
            kind: ItemKind::Envelope,
            conversation: ConversationId([1; 16]),
            sender: "bob",
            server_time: 9,
            item_hash: &h,
            franking_commitment: Some(&commitment),
        }]);
        let received = Received {
            conversation: ConversationId([1; 16]),
            sender: "bob",
            server_time: 9,
            franking_commitment: &commitment,
            envelope: &envelope,
        };
        let v = verify_tag(&p.verifying_key(), &one[0], &received).unwrap();
        assert_eq!(v.batch.map(|b| b.batch_size), Some(1));
    }

    #[test]
    fn suspension_ends_on_the_injected_clock() {
        let sim = custos_clock::dangerous::simulated(1_000_000);
        let p = FrankingPolicy::from_seed(&[7; 32], sim.shared());
        let s = Sender {
            account_id: 1,
            name: "mallory",
            device_id: 1,
        };
        assert!(p.admit(&s).is_ok());
        p.suspend("mallory", Suspension::Until(1_000_500));
        assert_eq!(
            p.admit(&s).unwrap_err(),
            AdmitRefusal::Suspended {
                account: "mallory".into(),
                until: Some(1_000_500)
            }
        );
        sim.advance_millis(500);
        assert!(p.admit(&s).is_ok());
        p.suspend("mallory", Suspension::Permanent);
        sim.advance_days(10_000);
        assert!(p.admit(&s).is_err());
        p.lift("mallory");
        assert!(p.admit(&s).is_ok());
    }
}
