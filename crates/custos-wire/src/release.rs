//! The release request an authority sends to each custodian, the response,
//! and the plaintext of the sealed shares (DESIGN.md §4 step 3).
//!
//! # Security meaning
//! A request carries everything a custodian needs to check on its own: the
//! court-signed warrant, the salt that opens its commitment, the
//! authority-signed commitment entry with its log index, a witnessed
//! checkpoint and the inclusion proof, and the conversation-days asked for.
//! The authority signs the whole request (Ed25519 over
//! `custos/v1/release-request || the request before the signature`) with its
//! manifest key, and names the one custodian it is for.
//!
//! The response carries the index of the custodian's `KeyRelease` in the log
//! and the partial keys, HPKE-sealed (RFC 9180) to the warrant's authority
//! key with the info string [`RELEASE_HPKE_INFO`] and the request hash as
//! associated data. This crate only frames the bytes; sealing and checking
//! happen in `custos-custodian` and `custos-authority`.
//!
//! Wire format: `docs/spec/release.md`.

use crate::WireError;
use crate::authority_signed::AuthorityFields;
pub use crate::authority_signed::AuthoritySigned;
use crate::codec::{Reader, Writer};
use crate::ids::ConversationId;
use crate::interception::{LoggedWarrant, LoggedWarrantRef};
use crate::statement::MAX_NAME_LEN;
use crate::warrant::{MAX_DAYS, MAX_TARGETS};

/// Version byte of the request, response and shares encodings.
pub const RELEASE_VERSION: u8 = 1;
/// Label the authority's request signature is made over.
pub const REQUEST_SIGNING_LABEL: &[u8] = b"custos/v1/release-request";
/// HPKE `info` of the sealed shares.
pub const RELEASE_HPKE_INFO: &[u8] = b"custos/v1/release";
/// Largest signed commitment entry carried in a request.
pub const MAX_COMMITMENT_ENTRY_LEN: usize = 1_024;
/// Largest checkpoint note carried in a request.
pub const MAX_CHECKPOINT_LEN: usize = 4_096;
/// Most hashes in an inclusion proof.
pub const MAX_PROOF_LEN: usize = 64;
/// Most conversation-days in one request: every day of every target.
pub const MAX_CONVERSATION_DAYS: usize = MAX_TARGETS * MAX_DAYS as usize;
/// Length of an encoded partial key (index and compressed G1 point).
pub const PARTIAL_KEY_LEN: usize = 52;
/// Largest HPKE ciphertext of the shares (plaintext plus the AEAD tag).
pub const MAX_SEALED_LEN: usize = 3 + MAX_CONVERSATION_DAYS * (16 + 4 + PARTIAL_KEY_LEN) + 16;

/// One conversation on one UTC day: the unit a key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationDay {
    /// The conversation.
    pub conversation: ConversationId,
    /// The UTC day.
    pub day: u32,
}

/// The fields an authority signs in a release request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequestFields {
    /// The encoded, court-signed warrant.
    pub warrant: Vec<u8>,
    /// The salt of the warrant's commitment.
    pub salt: [u8; 32],
    /// The authority's signed `WarrantCommitment` statement, as logged.
    pub commitment_entry: Vec<u8>,
    /// Its index in the log.
    pub commitment_index: u64,
    /// A checkpoint note (log-signed, witness-cosigned) that includes it.
    pub checkpoint: Vec<u8>,
    /// The inclusion proof of the entry in that checkpoint.
    pub inclusion_proof: Vec<[u8; 32]>,
    /// The custodian (manifest name) this request is addressed to.
    pub custodian: String,
    /// When the authority made the request, Unix seconds.
    pub requested_at: u64,
    /// The conversation-days asked for, strictly ascending, at least one.
    pub requested: Vec<ConversationDay>,
}

/// An authority-signed release request. Holding one says nothing about its
/// signature: check it with [`AuthoritySigned::verify`].
pub type ReleaseRequest = AuthoritySigned<ReleaseRequestFields>;

impl AuthorityFields for ReleaseRequestFields {
    const SIGNING_LABEL: &'static [u8] = REQUEST_SIGNING_LABEL;

    fn write(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(1024 + self.requested.len() * 20);
        w.u8(RELEASE_VERSION);
        LoggedWarrantRef {
            warrant: &self.warrant,
            salt: &self.salt,
            commitment_entry: &self.commitment_entry,
            commitment_index: self.commitment_index,
            checkpoint: &self.checkpoint,
            inclusion_proof: &self.inclusion_proof,
        }
        .write(&mut w)?;
        put_name(&mut w, "custodian", &self.custodian)?;
        w.u64(self.requested_at);
        check_requested(&self.requested)?;
        let n = u16::try_from(self.requested.len()).map_err(|_| WireError::TooLong {
            field: "requested",
            max: MAX_CONVERSATION_DAYS,
        })?;
        w.u16(n);
        for cd in &self.requested {
            w.raw(&cd.conversation.0).u32(cd.day);
        }
        Ok(w.into_bytes())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.field("version").u8()?;
        if version != RELEASE_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "release request",
                version,
                supported: RELEASE_VERSION,
            });
        }
        let LoggedWarrant {
            warrant,
            salt,
            commitment_entry,
            commitment_index,
            checkpoint,
            inclusion_proof,
        } = LoggedWarrant::read(r)?;
        let custodian = name(r, "custodian")?;
        let requested_at = r.field("requested_at").u64()?;
        let requested = read_conversation_days(r)?;
        Ok(Self {
            warrant,
            salt,
            commitment_entry,
            commitment_index,
            checkpoint,
            inclusion_proof,
            custodian,
            requested_at,
            requested,
        })
    }
}

/// A custodian's answer: where its `KeyRelease` is in the log, and the
/// HPKE-sealed shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseResponse {
    /// The releasing custodian.
    pub custodian: String,
    /// SHA-256 of the request answered (the HPKE associated data).
    pub request_hash: [u8; 32],
    /// Index of the custodian's `KeyRelease` statement in the log.
    pub key_release_index: u64,
    /// The HPKE encapsulated key (X25519).
    pub enc: [u8; 32],
    /// The HPKE ciphertext of the [`ReleasedShares`] encoding.
    pub sealed: Vec<u8>,
}

impl ReleaseResponse {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(self.sealed.len() + 256);
        w.u8(RELEASE_VERSION);
        put_name(&mut w, "custodian", &self.custodian)?;
        w.raw(&self.request_hash)
            .u64(self.key_release_index)
            .raw(&self.enc);
        w.bytes32("sealed", &self.sealed, MAX_SEALED_LEN)?;
        Ok(w.into_bytes())
    }

    /// Decodes one response, refusing any non-canonical input.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != RELEASE_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "release response",
                version,
                supported: RELEASE_VERSION,
            });
        }
        let out = Self {
            custodian: name(&mut r, "custodian")?,
            request_hash: r.field("request_hash").array()?,
            key_release_index: r.field("key_release_index").u64()?,
            enc: r.field("enc").array()?,
            sealed: r.field("sealed").bytes32(MAX_SEALED_LEN)?.to_vec(),
        };
        r.finish()?;
        Ok(out)
    }
}

/// The plaintext inside [`ReleaseResponse::sealed`]: one partial key per
/// conversation-day, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedShares {
    /// `(conversation-day, encoded partial key)`, strictly ascending.
    pub shares: Vec<(ConversationDay, [u8; PARTIAL_KEY_LEN])>,
}

impl ReleasedShares {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let days: Vec<ConversationDay> = self.shares.iter().map(|(cd, _)| *cd).collect();
        check_requested(&days)?;
        let mut w = Writer::with_capacity(3 + self.shares.len() * 72);
        w.u8(RELEASE_VERSION);
        let n = u16::try_from(self.shares.len()).map_err(|_| WireError::TooLong {
            field: "shares",
            max: MAX_CONVERSATION_DAYS,
        })?;
        w.u16(n);
        for (cd, key) in &self.shares {
            w.raw(&cd.conversation.0).u32(cd.day).raw(key);
        }
        Ok(w.into_bytes())
    }

    /// Decodes the plaintext, refusing any non-canonical input.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != RELEASE_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "released shares",
                version,
                supported: RELEASE_VERSION,
            });
        }
        let n = usize::from(r.field("shares").u16()?);
        if n > MAX_CONVERSATION_DAYS {
            return Err(WireError::TooLong {
                field: "shares",
                max: MAX_CONVERSATION_DAYS,
            });
        }
        let mut shares = Vec::with_capacity(n);
        for _ in 0..n {
            let cd = ConversationDay {
                conversation: ConversationId(r.field("conversation").array()?),
                day: r.field("day").u32()?,
            };
            shares.push((cd, r.field("partial_key").array()?));
        }
        r.finish()?;
        let days: Vec<ConversationDay> = shares.iter().map(|(cd, _)| *cd).collect();
        check_requested(&days)?;
        Ok(Self { shares })
    }
}

fn check_requested(requested: &[ConversationDay]) -> Result<(), WireError> {
    if requested.is_empty() {
        return Err(WireError::InvalidValue {
            field: "requested",
            reason: "at least one conversation-day",
        });
    }
    if requested.len() > MAX_CONVERSATION_DAYS {
        return Err(WireError::TooLong {
            field: "requested",
            max: MAX_CONVERSATION_DAYS,
        });
    }
    if requested.windows(2).any(|w| w.first() >= w.get(1)) {
        return Err(WireError::InvalidValue {
            field: "requested",
            reason: "must be strictly ascending",
        });
    }
    Ok(())
}

fn read_conversation_days(r: &mut Reader<'_>) -> Result<Vec<ConversationDay>, WireError> {
    let n = usize::from(r.field("requested").u16()?);
    if n > MAX_CONVERSATION_DAYS {
        return Err(WireError::TooLong {
            field: "requested",
            max: MAX_CONVERSATION_DAYS,
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(ConversationDay {
            conversation: ConversationId(r.field("conversation").array()?),
            day: r.field("day").u32()?,
        });
    }
    check_requested(&out)?;
    Ok(out)
}

fn name(r: &mut Reader<'_>, field: &'static str) -> Result<String, WireError> {
    let s = r.field(field).str8(MAX_NAME_LEN)?;
    if s.is_empty() {
        return Err(WireError::InvalidValue {
            field,
            reason: "must not be empty",
        });
    }
    Ok(s.to_owned())
}

fn put_name(w: &mut Writer, field: &'static str, s: &str) -> Result<(), WireError> {
    if s.is_empty() {
        return Err(WireError::InvalidValue {
            field,
            reason: "must not be empty",
        });
    }
    w.bytes8(field, s.as_bytes(), MAX_NAME_LEN)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn fields() -> ReleaseRequestFields {
        ReleaseRequestFields {
            warrant: vec![1; 300],
            salt: [2; 32],
            commitment_entry: vec![3; 400],
            commitment_index: 17,
            checkpoint: b"log.test\n18\nAAAA\n\n".to_vec(),
            inclusion_proof: vec![[4; 32], [5; 32]],
            custodian: "custodian-1.test".into(),
            requested_at: 1_728_000_000,
            requested: vec![
                ConversationDay {
                    conversation: ConversationId([1; 16]),
                    day: 20_000,
                },
                ConversationDay {
                    conversation: ConversationId([1; 16]),
                    day: 20_001,
                },
            ],
        }
    }

    #[test]
    fn request_round_trips_and_is_signed() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let req = ReleaseRequest::sign(fields(), &key).unwrap();
        let bytes = req.encode().unwrap();
        let again = ReleaseRequest::decode(&bytes).unwrap();
        assert_eq!(again, req);
        again.verify(&key.verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[5; 32]).verifying_key();
        assert!(again.verify(&other).is_err());
        let mut bad = bytes.clone();
        let last = bad.len() - 70;
        bad[last] ^= 1;
        if let Ok(b) = ReleaseRequest::decode(&bad) {
            assert!(b.verify(&key.verifying_key()).is_err());
        }
        for cut in 0..bytes.len() {
            assert!(ReleaseRequest::decode(&bytes[..cut]).is_err());
        }
        let mut f = fields();
        f.requested.reverse();
        assert!(ReleaseRequest::sign(f, &key).is_err());
    }

    #[test]
    fn response_and_shares_round_trip() {
        let resp = ReleaseResponse {
            custodian: "custodian-1.test".into(),
            request_hash: [1; 32],
            key_release_index: 9,
            enc: [2; 32],
            sealed: vec![3; 100],
        };
        let bytes = resp.encode().unwrap();
        assert_eq!(ReleaseResponse::decode(&bytes).unwrap(), resp);
        let shares = ReleasedShares {
            shares: fields()
                .requested
                .into_iter()
                .map(|cd| (cd, [7; PARTIAL_KEY_LEN]))
                .collect(),
        };
        let bytes = shares.encode().unwrap();
        assert_eq!(ReleasedShares::decode(&bytes).unwrap(), shares);
        assert!(ReleasedShares::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
