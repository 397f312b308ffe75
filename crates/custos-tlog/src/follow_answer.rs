//! The log's answer to `GET /follow`: everything one round of following
//! the log needs, in one request (version 1).
//!
//! A follower used to ask for the checkpoint, then, in a second round, for a
//! consistency proof from the size it holds, the new entries and their
//! inclusion proofs. The log answers all of it at once, against the very
//! checkpoint it serves. Nothing in the answer is trusted: the follower
//! checks the checkpoint through its [`crate::Verifier`] (log signature,
//! witness quorum, consistency with what it accepted before) and every
//! entry's inclusion proof against that checkpoint, as before.
//!
//! # Encoding (big-endian, canonical, every length bounded)
//! ```text
//! u8      version = 1
//! u16     checkpoint length (<= MAX_NOTE_LEN) || the served checkpoint note
//! u8      n (<= MAX_PROOF_HASHES) || n * 32 bytes: consistency proof
//! u16     m (<= MAX_FOLLOW_ENTRIES) || m * (u16 length || entry),
//!         entry length <= MAX_SIGNED_STATEMENT_LEN
//! u8      0: no inclusion proofs; 1: one proof per entry follows:
//!         m * (u8 n (<= MAX_PROOF_HASHES) || n * 32 bytes)
//! ```
//! Trailing bytes, any other version or flag, and any length over its
//! bound are refused.

use custos_wire::WireError;
use custos_wire::codec::{Reader, Writer};
use custos_wire::statement::MAX_SIGNED_STATEMENT_LEN;

use crate::checkpoint::MAX_NOTE_LEN;
use crate::merkle::{Hash, MAX_PROOF_HASHES};

/// The version of the format this build writes and reads.
pub const FOLLOW_ANSWER_VERSION: u8 = 1;

/// Most entries one answer carries (one full entry bundle); a follower
/// reads any further entries through the log's tiles.
pub const MAX_FOLLOW_ENTRIES: usize = 256;

/// Most inclusion proofs a follower may ask for in one answer (they come
/// only when the answer holds at most this many entries).
pub const MAX_FOLLOW_PROOFS: usize = 8;

const FORMAT: &str = "log follow answer";

/// One round of following the log, as the log answered it (unverified).
#[derive(Debug, Clone, PartialEq)]
pub struct FollowAnswer {
    /// The checkpoint note the log serves (cosigned when it has witnesses).
    pub checkpoint: Vec<u8>,
    /// Consistency proof from the size the follower said it holds to the
    /// checkpoint's size (empty when none is needed).
    pub consistency: Vec<Hash>,
    /// Entries from the asked index on, at most [`MAX_FOLLOW_ENTRIES`],
    /// none beyond the checkpoint's size.
    pub entries: Vec<Vec<u8>>,
    /// The inclusion proof of each entry in the checkpoint, in order, when
    /// asked for and the entries were few enough.
    pub inclusion: Option<Vec<Vec<Hash>>>,
}

impl FollowAnswer {
    /// The canonical encoding; refuses a value its decoder would refuse.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(
            64 + self.checkpoint.len() + self.entries.iter().map(|e| e.len() + 2).sum::<usize>(),
        );
        w.u8(FOLLOW_ANSWER_VERSION);
        w.bytes16("checkpoint", &self.checkpoint, MAX_NOTE_LEN)?;
        write_proof(&mut w, "consistency proof", &self.consistency)?;
        let count = checked_count("entries", self.entries.len(), MAX_FOLLOW_ENTRIES)?;
        w.u16(count);
        for entry in &self.entries {
            w.bytes16("entry", entry, MAX_SIGNED_STATEMENT_LEN)?;
        }
        match &self.inclusion {
            None => {
                w.u8(0);
            }
            Some(proofs) => {
                if proofs.len() != self.entries.len() {
                    return Err(WireError::InvalidValue {
                        field: "inclusion proofs",
                        reason: "not one per entry",
                    });
                }
                w.u8(1);
                for proof in proofs {
                    write_proof(&mut w, "inclusion proof", proof)?;
                }
            }
        }
        Ok(w.into_bytes())
    }

    /// Decodes an answer (see the module docs); never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != FOLLOW_ANSWER_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: FORMAT,
                version,
                supported: FOLLOW_ANSWER_VERSION,
            });
        }
        let checkpoint = r.field("checkpoint").bytes16(MAX_NOTE_LEN)?.to_vec();
        let consistency = read_proof(&mut r, "consistency proof")?;
        let count = usize::from(r.field("entries").u16()?);
        if count > MAX_FOLLOW_ENTRIES {
            return Err(WireError::TooLong {
                field: "entries",
                max: MAX_FOLLOW_ENTRIES,
            });
        }
        let entries = (0..count)
            .map(|_| {
                r.field("entry")
                    .bytes16(MAX_SIGNED_STATEMENT_LEN)
                    .map(<[u8]>::to_vec)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inclusion = match r.field("inclusion proofs").u8()? {
            0 => None,
            1 => Some(
                (0..count)
                    .map(|_| read_proof(&mut r, "inclusion proof"))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => {
                return Err(WireError::InvalidValue {
                    field: "inclusion proofs",
                    reason: "the flag must be 0 or 1",
                });
            }
        };
        r.finish()?;
        Ok(Self {
            checkpoint,
            consistency,
            entries,
            inclusion,
        })
    }
}

fn checked_count(field: &'static str, len: usize, max: usize) -> Result<u16, WireError> {
    if len > max {
        return Err(WireError::TooLong { field, max });
    }
    u16::try_from(len).map_err(|_| WireError::TooLong { field, max })
}

fn write_proof(w: &mut Writer, field: &'static str, proof: &[Hash]) -> Result<(), WireError> {
    let n = checked_count(field, proof.len(), MAX_PROOF_HASHES)?;
    w.u8(u8::try_from(n).map_err(|_| WireError::TooLong {
        field,
        max: MAX_PROOF_HASHES,
    })?);
    for h in proof {
        w.raw(&h.0);
    }
    Ok(())
}

fn read_proof(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<Hash>, WireError> {
    let n = usize::from(r.field(field).u8()?);
    if n > MAX_PROOF_HASHES {
        return Err(WireError::TooLong {
            field,
            max: MAX_PROOF_HASHES,
        });
    }
    (0..n).map(|_| r.array().map(Hash)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash)
    }

    fn proof() -> impl Strategy<Value = Vec<Hash>> {
        proptest::collection::vec(hash(), 0..6)
    }

    fn answer() -> impl Strategy<Value = FollowAnswer> {
        (
            proptest::collection::vec(any::<u8>(), 0..200),
            proof(),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..6),
            any::<bool>(),
            proof(),
        )
            .prop_map(|(checkpoint, consistency, entries, proven, p)| {
                let inclusion = proven.then(|| entries.iter().map(|_| p.clone()).collect());
                FollowAnswer {
                    checkpoint,
                    consistency,
                    entries,
                    inclusion,
                }
            })
    }

    proptest! {
        #[test]
        fn an_answer_round_trips_byte_for_byte(a in answer()) {
            let bytes = a.encode().unwrap();
            let back = FollowAnswer::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        #[test]
        fn any_bytes_decode_canonically_or_fail(mut b in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(v) = b.first_mut() { *v = FOLLOW_ANSWER_VERSION; }
            if let Ok(a) = FollowAnswer::decode(&b) {
                prop_assert_eq!(a.encode().unwrap(), b);
            }
        }

        #[test]
        fn a_cut_answer_is_refused(a in answer(), cut in any::<usize>()) {
            let bytes = a.encode().unwrap();
            let at = cut % bytes.len();
            prop_assert!(FollowAnswer::decode(&bytes[..at]).is_err());
        }
    }

    #[test]
    fn proofs_that_are_not_one_per_entry_are_not_written() {
        let a = FollowAnswer {
            checkpoint: b"x".to_vec(),
            consistency: vec![],
            entries: vec![vec![1]],
            inclusion: Some(vec![]),
        };
        assert!(matches!(
            a.encode(),
            Err(WireError::InvalidValue {
                field: "inclusion proofs",
                ..
            })
        ));
    }
}
