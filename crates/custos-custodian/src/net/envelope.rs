//! The DKG envelope: how one custodian's DKG message travels to another
//! over HTTP (spec: `docs/spec/custodian-dkg.md`).
//!
//! ```text
//! version (1) = 1 | day (u32) | phase (u8: 1 deal, 2 ack, 3 log)
//! | from (32, Ed25519) | to (32, Ed25519; zeros for a broadcast)
//! | mode (u8: 0 clear, 1 sealed) | [enc (32), only when sealed]
//! | payload length (u32, at most 65,536) | payload
//! | signature (64)
//! ```
//!
//! - Deal and ack messages carry secret shares or bind to them: they are
//!   **sealed** with HPKE base mode (DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256, ChaCha20-Poly1305) to the recipient's published X25519 key,
//!   with info `custos/v1/dkg-private || day || phase || from || to` and the
//!   header (everything before the payload length) as associated data.
//! - Logs are broadcast **in the clear** (they are public by design).
//! - Every envelope is **signed** by the sender's manifest key over
//!   `custos/v1/dkg-envelope || every preceding byte`, so a message is bound
//!   to its sender, recipient, day and phase.
//!
//! A decoder accepts only the canonical form: known version, phase and mode,
//! phase 3 exactly when broadcast and clear, no trailing bytes.

use custos_escrow::dkg::Phase;
use custos_wire::codec::Reader;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::keys::CustodianKey;

/// Version byte of a DKG envelope.
pub const ENVELOPE_VERSION: u8 = 1;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD: usize = 65_536;
/// Largest encoded envelope, in bytes.
pub const MAX_ENVELOPE: usize = 1 + 4 + 1 + 32 + 32 + 1 + 32 + 4 + MAX_PAYLOAD + 64;
const SIGNING_LABEL: &[u8] = b"custos/v1/dkg-envelope";
const HPKE_INFO_LABEL: &[u8] = b"custos/v1/dkg-private";

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not a canonical envelope of this version.
    #[error("malformed DKG envelope: {0}")]
    Malformed(&'static str),
    /// The sender is not a custodian of the manifest.
    #[error("the sender is not a custodian of this deployment")]
    UnknownSender,
    /// The envelope is addressed to another custodian.
    #[error("the envelope is addressed to another custodian")]
    NotForMe,
    /// The signature does not verify under the sender's manifest key.
    #[error("the envelope's signature does not verify")]
    BadSignature,
    /// The sealed payload does not open with this custodian's HPKE key.
    #[error("the sealed payload does not open")]
    Unseal,
    /// Sealing failed (bad recipient key).
    #[error("cannot seal to the recipient's HPKE key")]
    Seal,
}

/// A verified, opened envelope.
#[derive(Debug)]
pub struct Opened {
    /// The day whose DKG this belongs to.
    pub day: u32,
    /// The phase.
    pub phase: Phase,
    /// The authenticated sender.
    pub from: [u8; 32],
    /// The plaintext DKG message (zeroized on drop).
    pub payload: Zeroizing<Vec<u8>>,
}

fn phase_tag(p: Phase) -> u8 {
    match p {
        Phase::Deal => 1,
        Phase::Ack => 2,
        Phase::Log => 3,
    }
}

fn header(day: u32, phase: Phase, from: &[u8; 32], to: &[u8; 32], enc: Option<&[u8]>) -> Vec<u8> {
    let mut h = Vec::with_capacity(1 + 4 + 1 + 64 + 1 + 32);
    h.push(ENVELOPE_VERSION);
    h.extend_from_slice(&day.to_be_bytes());
    h.push(phase_tag(phase));
    h.extend_from_slice(from);
    h.extend_from_slice(to);
    match enc {
        Some(enc) => {
            h.push(1);
            h.extend_from_slice(enc);
        }
        None => h.push(0),
    }
    h
}

fn info(day: u32, phase: Phase, from: &[u8; 32], to: &[u8; 32]) -> Vec<u8> {
    let mut i = Vec::with_capacity(HPKE_INFO_LABEL.len() + 69);
    i.extend_from_slice(HPKE_INFO_LABEL);
    i.extend_from_slice(&day.to_be_bytes());
    i.push(phase_tag(phase));
    i.extend_from_slice(from);
    i.extend_from_slice(to);
    i
}

fn finish(
    key: &CustodianKey,
    mut bytes: Vec<u8>,
    payload: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_PAYLOAD)
        .ok_or(EnvelopeError::Malformed("payload too long"))?;
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(payload);
    let mut signed = Vec::with_capacity(SIGNING_LABEL.len() + bytes.len());
    signed.extend_from_slice(SIGNING_LABEL);
    signed.extend_from_slice(&bytes);
    let sig = key.signing_key().sign(&signed);
    bytes.extend_from_slice(&sig.to_bytes());
    Ok(bytes)
}

/// Seals a deal or ack message to custodian `to` (Ed25519 key) whose HPKE
/// public key is `to_hpke`, and signs the envelope.
pub fn seal(
    key: &CustodianKey,
    day: u32,
    phase: Phase,
    to: &[u8; 32],
    to_hpke: &[u8; 32],
    message: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if phase == Phase::Log {
        return Err(EnvelopeError::Malformed("logs are broadcast in the clear"));
    }
    let from = key.public_key();
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(to_hpke)
        .map_err(|_| EnvelopeError::Seal)?;
    // The associated data is the header, which contains `enc`: seal with a
    // context so that `enc` is known before the ciphertext is made.
    let (enc, mut ctx) = hpke::setup_sender::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        &info(day, phase, &from, to),
        &mut OsRng,
    )
    .map_err(|_| EnvelopeError::Seal)?;
    let enc_bytes = enc.to_bytes();
    let head = header(day, phase, &from, to, Some(&enc_bytes));
    let ciphertext = ctx.seal(message, &head).map_err(|_| EnvelopeError::Seal)?;
    finish(key, head, &ciphertext)
}

/// Signs a broadcast (log) message.
pub fn broadcast(key: &CustodianKey, day: u32, message: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let head = header(day, Phase::Log, &key.public_key(), &[0; 32], None);
    finish(key, head, message)
}

/// Verifies and opens an envelope received by `key`'s custodian.
/// `custodian` says whether an Ed25519 key is a custodian of the manifest.
pub fn open(
    key: &CustodianKey,
    bytes: &[u8],
    custodian: impl Fn(&[u8; 32]) -> bool,
) -> Result<Opened, EnvelopeError> {
    let m = EnvelopeError::Malformed;
    if bytes.len() > MAX_ENVELOPE {
        return Err(m("too long"));
    }
    let (body, sig) = bytes
        .split_last_chunk::<64>()
        .ok_or(m("too short for a signature"))?;
    let mut r = Reader::new(body);
    let bad = |_| m("truncated");
    if r.field("version").u8().map_err(bad)? != ENVELOPE_VERSION {
        return Err(m("unknown version"));
    }
    let day = r.field("day").u32().map_err(bad)?;
    let phase = match r.field("phase").u8().map_err(bad)? {
        1 => Phase::Deal,
        2 => Phase::Ack,
        3 => Phase::Log,
        _ => return Err(m("unknown phase")),
    };
    let from: [u8; 32] = r.field("from").array().map_err(bad)?;
    let to: [u8; 32] = r.field("to").array().map_err(bad)?;
    let enc: Option<[u8; 32]> = match r.field("mode").u8().map_err(bad)? {
        0 => None,
        1 => Some(r.field("enc").array().map_err(bad)?),
        _ => return Err(m("unknown mode")),
    };
    let broadcast = to == [0; 32];
    if (phase == Phase::Log) != broadcast || broadcast != enc.is_none() {
        return Err(m("phase, recipient and mode do not agree"));
    }
    let payload = r.field("payload").bytes32(MAX_PAYLOAD).map_err(bad)?;
    r.finish().map_err(|_| m("trailing bytes"))?;
    if !custodian(&from) {
        return Err(EnvelopeError::UnknownSender);
    }
    if !broadcast && to != key.public_key() {
        return Err(EnvelopeError::NotForMe);
    }
    let vk = VerifyingKey::from_bytes(&from).map_err(|_| EnvelopeError::UnknownSender)?;
    let mut signed = Vec::with_capacity(SIGNING_LABEL.len() + body.len());
    signed.extend_from_slice(SIGNING_LABEL);
    signed.extend_from_slice(body);
    custos_wire::signature::verify_strict(&vk, &signed, &Signature::from_bytes(sig))
        .map_err(|_| EnvelopeError::BadSignature)?;
    let payload = match enc {
        None => Zeroizing::new(payload.to_vec()),
        Some(enc) => {
            let head = header(day, phase, &from, &to, Some(&enc));
            let encapped = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&enc)
                .map_err(|_| EnvelopeError::Unseal)?;
            let mut ctx = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &key.hpke_private_key(),
                &encapped,
                &info(day, phase, &from, &to),
            )
            .map_err(|_| EnvelopeError::Unseal)?;
            Zeroizing::new(
                ctx.open(payload, &head)
                    .map_err(|_| EnvelopeError::Unseal)?,
            )
        }
    };
    Ok(Opened {
        day,
        phase,
        from,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_and_broadcast_envelopes_round_trip_and_refuse_tampering() {
        let a = CustodianKey::generate("a").unwrap();
        let b = CustodianKey::generate("b").unwrap();
        let c = CustodianKey::generate("c").unwrap();
        let known = |pk: &[u8; 32]| *pk == a.public_key() || *pk == b.public_key();
        let env = seal(
            &a,
            9,
            Phase::Deal,
            &b.public_key(),
            &b.hpke_public_key(),
            b"secret",
        )
        .unwrap();
        let o = open(&b, &env, known).unwrap();
        assert_eq!((o.day, o.phase, o.from), (9, Phase::Deal, a.public_key()));
        assert_eq!(o.payload.as_slice(), b"secret");
        assert!(!env.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&c, &env, known).unwrap_err(), EnvelopeError::NotForMe);
        for i in [0, 3, 5, 40, 80, env.len() - 70, env.len() - 1] {
            let mut t = env.clone();
            t[i] ^= 1;
            assert!(open(&b, &t, known).is_err(), "byte {i}");
        }
        let mut longer = env.clone();
        longer.push(0);
        assert!(open(&b, &longer, known).is_err());
        let log = broadcast(&a, 9, b"log").unwrap();
        let o = open(&c, &log, known).unwrap();
        assert_eq!((o.phase, o.payload.as_slice()), (Phase::Log, &b"log"[..]));
        let from_c = broadcast(&c, 9, b"log").unwrap();
        assert_eq!(
            open(&a, &from_c, known).unwrap_err(),
            EnvelopeError::UnknownSender
        );
    }
}
