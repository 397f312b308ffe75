//! The C2SP tlog-witness request format, shared by the log (which sends
//! `add-checkpoint` requests) and the witness server (which parses them).
//!
//! # Security meaning
//! A request is parsed only in its canonical form (no leading zeros, canonical
//! base64, at most [`MAX_REQUEST_PROOF_LINES`] proof lines), so one request has
//! one meaning to every party.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use signed_note::{Note, VerifierList};

use crate::keys::CosignatureVerifier;
use crate::merkle::{Hash, MAX_PROOF_HASHES};

/// Most consistency proof lines in a request (C2SP tlog-witness).
pub const MAX_REQUEST_PROOF_LINES: usize = 63;

/// A decoded `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq)]
pub struct AddCheckpoint {
    /// Size of the checkpoint the witness is believed to hold.
    pub old: u64,
    /// Consistency proof from `old` to the new checkpoint.
    pub proof: Vec<Hash>,
    /// The new checkpoint note, signatures included.
    pub checkpoint: Vec<u8>,
}

impl AddCheckpoint {
    /// The request body: `old N`, proof lines, an empty line, the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old).into_bytes();
        for h in &self.proof {
            out.extend(BASE64_STANDARD.encode(h.0).into_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a request body, accepting only canonical forms (no leading
    /// zeros, canonical base64, at most 63 proof lines).
    pub fn parse(body: &[u8]) -> Option<Self> {
        let split = body.windows(2).position(|w| w == b"\n\n")?;
        let head = std::str::from_utf8(body.get(..split)?).ok()?;
        let checkpoint = body.get(split + 2..)?.to_vec();
        let mut lines = head.split('\n');
        let old_text = lines.next()?.strip_prefix("old ")?;
        let old: u64 = old_text.parse().ok()?;
        if old.to_string() != old_text {
            return None;
        }
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() >= MAX_REQUEST_PROOF_LINES.min(MAX_PROOF_HASHES) {
                return None;
            }
            let raw = BASE64_STANDARD.decode(line).ok()?;
            let h = Hash(raw.try_into().ok()?);
            if BASE64_STANDARD.encode(h.0) != line {
                return None;
            }
            proof.push(h);
        }
        Some(Self {
            old,
            proof,
            checkpoint,
        })
    }
}

/// Whether `note` carries a valid cosignature by `verifier` (helper for tests and audit).
pub fn has_cosignature(note: &[u8], verifier: &CosignatureVerifier) -> bool {
    Note::from_bytes(note)
        .ok()
        .and_then(|n| {
            n.verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
                .ok()
        })
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::parse_checkpoint;

    #[test]
    fn spec_example_request_parses_and_re_encodes() {
        // Request body example from C2SP tlog-witness, "add-checkpoint".
        let body = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
        let req = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(req.old, 20_852_014);
        assert_eq!(req.proof.len(), 4);
        assert_eq!(req.encode(), body.as_bytes());
        let cp = parse_checkpoint(&req.checkpoint).unwrap();
        assert_eq!(cp.checkpoint.size(), 20_852_163);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            "old 01\n\nx",
            "old -1\n\nx",
            "new 1\n\nx",
            "old 1\nnot-base64\n\nx",
            "old 1\nAAAA\n\nx",
            "old 1",
        ] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        let many = format!(
            "old 1\n{}\nx",
            "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64)
        );
        assert!(AddCheckpoint::parse(many.as_bytes()).is_none());
    }

    proptest::proptest! {
        #[test]
        fn prop_requests_round_trip(old in proptest::prelude::any::<u64>(), hashes in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..63), tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let req = AddCheckpoint { old, proof: hashes.into_iter().map(Hash).collect(), checkpoint: tail };
            proptest::prop_assert_eq!(AddCheckpoint::parse(&req.encode()), Some(req));
        }
    }
}
