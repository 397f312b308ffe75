//! Warrant v1: a court's order naming the conversations and days an
//! authority may open, signed by the court (DESIGN.md §4 step 1).
//!
//! # Security meaning
//! A warrant is the only thing that makes custodians release key shares, so
//! every field that limits access (targets, days, not-after, embargo, the
//! authority and its HPKE key) is inside the court's signature: the signature
//! is Ed25519 over `custos/v1/warrant || the encoded fields`, made with the
//! court's key from the deployment manifest. Changing any byte of the fields
//! breaks it.
//!
//! The format itself bounds what any court may order: at most
//! [`MAX_TARGETS`] conversations, at most [`MAX_DAYS`] consecutive days, an
//! embargo of at most [`MAX_EMBARGO_SECS`] after issue. A deployment's policy
//! may be stricter; custodians check that policy themselves.
//!
//! Wire format: `docs/spec/warrant.md`. Decoders reject any non-canonical
//! input (targets out of order or repeated included), so
//! `encode(decode(b)) == b` for every accepted `b`.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::ids::{CONVERSATION_ID_LEN, ConversationId};
use crate::statement::MAX_NAME_LEN;

/// Version byte of the warrant encoding.
pub const WARRANT_VERSION: u8 = 1;
/// Domain-separation label prefixed to the warrant fields before signing.
pub const WARRANT_SIGNING_LABEL: &[u8] = b"custos/v1/warrant";
/// Most target conversations in one warrant.
pub const MAX_TARGETS: usize = 16;
/// Most days one warrant covers (first to last day inclusive).
pub const MAX_DAYS: u32 = 31;
/// Longest embargo after issue, in seconds (180 days).
pub const MAX_EMBARGO_SECS: u64 = 180 * 86_400;
/// Longest legal basis text, in bytes.
pub const MAX_BASIS_LEN: usize = 2_048;
/// Largest encoded warrant, in bytes.
pub const MAX_WARRANT_ENCODED_LEN: usize = 1
    + 16
    + 2 * (1 + MAX_NAME_LEN)
    + 2
    + MAX_BASIS_LEN
    + 1
    + MAX_TARGETS * CONVERSATION_ID_LEN
    + 8
    + 3 * 8
    + 32
    + 64;

/// The fields a court signs. Build them, then [`Warrant::sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarrantFields {
    /// Random warrant id chosen by the court.
    pub id: [u8; 16],
    /// The issuing court's manifest name.
    pub court: String,
    /// The authority's manifest name: the only party the shares are for.
    pub authority: String,
    /// The legal basis, as text (sealed with the warrant until unsealing).
    pub legal_basis: String,
    /// Target conversations, strictly ascending, 1 to [`MAX_TARGETS`].
    pub targets: Vec<ConversationId>,
    /// First UTC day covered.
    pub first_day: u32,
    /// Last UTC day covered (inclusive), at most [`MAX_DAYS`] after the first.
    pub last_day: u32,
    /// When the court issued it, Unix seconds.
    pub issued_at: u64,
    /// After this time (Unix seconds) no custodian releases anything under it.
    pub not_after: u64,
    /// Until when it stays sealed, Unix seconds; at most [`MAX_EMBARGO_SECS`] after issue.
    pub embargo_until: u64,
    /// The authority's X25519 HPKE public key: shares are sealed to it alone.
    pub authority_hpke_key: [u8; 32],
}

impl WarrantFields {
    /// Number of days covered.
    pub fn days(&self) -> u32 {
        self.last_day
            .saturating_sub(self.first_day)
            .saturating_add(1)
    }

    /// Whether conversation `c` on `day` is inside this warrant.
    pub fn covers(&self, c: &ConversationId, day: u32) -> bool {
        day >= self.first_day && day <= self.last_day && self.targets.binary_search(c).is_ok()
    }

    /// Checks the format's bounds (the same checks the decoder makes).
    pub fn validate(&self) -> Result<(), WireError> {
        let bad = |field, reason| Err(WireError::InvalidValue { field, reason });
        for (field, name) in [("court", &self.court), ("authority", &self.authority)] {
            if name.is_empty() {
                return bad(field, "must not be empty");
            }
            if name.len() > MAX_NAME_LEN {
                return Err(WireError::TooLong {
                    field,
                    max: MAX_NAME_LEN,
                });
            }
        }
        if self.legal_basis.len() > MAX_BASIS_LEN {
            return Err(WireError::TooLong {
                field: "legal_basis",
                max: MAX_BASIS_LEN,
            });
        }
        if self.targets.is_empty() {
            return bad("targets", "at least one target conversation");
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(WireError::TooLong {
                field: "targets",
                max: MAX_TARGETS,
            });
        }
        if self.targets.windows(2).any(|w| w.first() >= w.get(1)) {
            return bad("targets", "must be strictly ascending");
        }
        if self.last_day < self.first_day {
            return bad("last_day", "before first_day");
        }
        if self.last_day - self.first_day >= MAX_DAYS {
            return bad("last_day", "more than 31 days");
        }
        if self.not_after <= self.issued_at {
            return bad("not_after", "must be after issued_at");
        }
        if self.embargo_until < self.issued_at {
            return bad("embargo_until", "before issued_at");
        }
        if self.embargo_until - self.issued_at > MAX_EMBARGO_SECS {
            return bad("embargo_until", "more than 180 days after issue");
        }
        Ok(())
    }

    /// The canonical encoding of the fields (what the court signs, after the label).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        self.validate()?;
        let mut w = Writer::with_capacity(256);
        w.u8(WARRANT_VERSION).raw(&self.id);
        w.bytes8("court", self.court.as_bytes(), MAX_NAME_LEN)?;
        w.bytes8("authority", self.authority.as_bytes(), MAX_NAME_LEN)?;
        w.bytes16("legal_basis", self.legal_basis.as_bytes(), MAX_BASIS_LEN)?;
        let n = u8::try_from(self.targets.len()).map_err(|_| WireError::TooLong {
            field: "targets",
            max: MAX_TARGETS,
        })?;
        w.u8(n);
        for t in &self.targets {
            w.raw(&t.0);
        }
        w.u32(self.first_day)
            .u32(self.last_day)
            .u64(self.issued_at)
            .u64(self.not_after)
            .u64(self.embargo_until)
            .raw(&self.authority_hpke_key);
        Ok(w.into_bytes())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.field("version").u8()?;
        if version != WARRANT_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "warrant",
                version,
                supported: WARRANT_VERSION,
            });
        }
        let id = r.field("id").array()?;
        let court = r.field("court").str8(MAX_NAME_LEN)?.to_owned();
        let authority = r.field("authority").str8(MAX_NAME_LEN)?.to_owned();
        let legal_basis = r.field("legal_basis").str16(MAX_BASIS_LEN)?.to_owned();
        let n = usize::from(r.field("targets").u8()?);
        if n > MAX_TARGETS {
            return Err(WireError::TooLong {
                field: "targets",
                max: MAX_TARGETS,
            });
        }
        let mut targets = Vec::with_capacity(n);
        for _ in 0..n {
            targets.push(ConversationId(r.field("target").array()?));
        }
        let fields = Self {
            id,
            court,
            authority,
            legal_basis,
            targets,
            first_day: r.field("first_day").u32()?,
            last_day: r.field("last_day").u32()?,
            issued_at: r.field("issued_at").u64()?,
            not_after: r.field("not_after").u64()?,
            embargo_until: r.field("embargo_until").u64()?,
            authority_hpke_key: r.field("authority_hpke_key").array()?,
        };
        fields.validate()?;
        Ok(fields)
    }
}

/// Why a warrant's court signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarrantSignatureError {
    /// The fields could not be encoded.
    #[error("malformed warrant: {0}")]
    Wire(#[from] WireError),
    /// The signature does not verify under the court's key.
    #[error(
        "the court signature does not verify; the warrant was altered or not signed by this court's manifest key"
    )]
    BadSignature,
}

/// A court-signed warrant. Holding one does not mean its signature is valid:
/// call [`Warrant::verify`] with the court's manifest key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warrant {
    fields: WarrantFields,
    signature: [u8; 64],
}

impl Warrant {
    /// Signs `fields` with the court's key.
    pub fn sign(fields: WarrantFields, court_key: &SigningKey) -> Result<Self, WireError> {
        let msg = signing_message(&fields.encode()?);
        let signature = court_key.sign(&msg).to_bytes();
        Ok(Self { fields, signature })
    }

    /// Assembles a warrant from parts; nothing is checked until [`Warrant::verify`].
    pub fn from_parts(fields: WarrantFields, signature: [u8; 64]) -> Self {
        Self { fields, signature }
    }

    /// The signed fields.
    pub fn fields(&self) -> &WarrantFields {
        &self.fields
    }

    /// The court's signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Checks the court signature (strict Ed25519) over the encoded fields.
    pub fn verify(&self, court_key: &VerifyingKey) -> Result<(), WarrantSignatureError> {
        let msg = signing_message(&self.fields.encode()?);
        crate::signature::verify_strict(court_key, &msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| WarrantSignatureError::BadSignature)
    }

    /// The canonical encoding: the fields, then the 64-byte signature.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut bytes = self.fields.encode()?;
        bytes.extend_from_slice(&self.signature);
        Ok(bytes)
    }

    /// Decodes one warrant, refusing any non-canonical or out-of-bounds input.
    /// Does not check the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_WARRANT_ENCODED_LEN {
            return Err(WireError::TooLong {
                field: "warrant",
                max: MAX_WARRANT_ENCODED_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let fields = WarrantFields::read(&mut r)?;
        let signature = r.field("signature").array()?;
        r.finish()?;
        Ok(Self { fields, signature })
    }
}

fn signing_message(fields: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(WARRANT_SIGNING_LABEL.len() + fields.len());
    msg.extend_from_slice(WARRANT_SIGNING_LABEL);
    msg.extend_from_slice(fields);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fields() -> WarrantFields {
        WarrantFields {
            id: [9; 16],
            court: "court.test".into(),
            authority: "police.test".into(),
            legal_basis: "s. 100a StPO".into(),
            targets: vec![ConversationId([1; 16]), ConversationId([2; 16])],
            first_day: 20_000,
            last_day: 20_001,
            issued_at: 1_728_000_000,
            not_after: 1_728_000_000 + 30 * 86_400,
            embargo_until: 1_728_000_000 + 90 * 86_400,
            authority_hpke_key: [5; 32],
        }
    }

    #[test]
    fn signs_round_trips_and_detects_changes() {
        let court = SigningKey::from_bytes(&[7; 32]);
        let w = Warrant::sign(fields(), &court).unwrap();
        let bytes = w.encode().unwrap();
        let again = Warrant::decode(&bytes).unwrap();
        assert_eq!(again, w);
        again.verify(&court.verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert_eq!(w.verify(&other), Err(WarrantSignatureError::BadSignature));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            if let Ok(b) = Warrant::decode(&bad) {
                assert!(b.verify(&court.verifying_key()).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn bounds_are_enforced() {
        let court = SigningKey::from_bytes(&[7; 32]);
        let mut f = fields();
        f.targets = (0..17u8).map(|i| ConversationId([i; 16])).collect();
        assert!(Warrant::sign(f, &court).is_err());
        let mut f = fields();
        f.targets.reverse();
        assert!(Warrant::sign(f, &court).is_err());
        let mut f = fields();
        f.last_day = f.first_day + 31;
        assert!(Warrant::sign(f, &court).is_err());
        let mut f = fields();
        f.embargo_until = f.issued_at + MAX_EMBARGO_SECS + 1;
        assert!(Warrant::sign(f, &court).is_err());
        let mut f = fields();
        f.not_after = f.issued_at;
        assert!(Warrant::sign(f, &court).is_err());
        let mut f = fields();
        f.last_day = f.first_day + 30;
        f.embargo_until = f.issued_at + MAX_EMBARGO_SECS;
        let w = Warrant::sign(f, &court).unwrap();
        assert_eq!(w.fields().days(), 31);
        assert!(w.fields().covers(&ConversationId([2; 16]), 20_030));
        assert!(!w.fields().covers(&ConversationId([3; 16]), 20_010));
        assert!(!w.fields().covers(&ConversationId([1; 16]), 20_031));
    }
}
