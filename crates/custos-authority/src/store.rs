//! The identity keys an authority collected, stored encrypted to its own
//! HPKE key (info `custos/v1/identity-keys`).

use std::collections::BTreeMap;

use custos_escrow::IdentityKey;
use custos_wire::ConversationId;
use custos_wire::release::ConversationDay;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::AuthorityError;
use crate::keys::HpkeKeyPair;

/// HPKE `info` of the identity-key file.
pub const KEYS_HPKE_INFO: &[u8] = b"custos/v1/identity-keys";
const KEYS_VERSION: u8 = 1;
const ITEM_LEN: usize = 16 + 4 + IdentityKey::LEN;

fn bad(what: &str) -> AuthorityError {
    AuthorityError::File(format!("identity-key file: {what}"))
}

/// Encrypts `keys` to the authority's own HPKE key: `version || enc || ciphertext`.
pub fn seal_keys(
    keys: &BTreeMap<ConversationDay, IdentityKey>,
    hpke: &HpkeKeyPair,
) -> Result<Vec<u8>, AuthorityError> {
    let mut plain = Zeroizing::new(Vec::with_capacity(keys.len() * ITEM_LEN));
    for (cd, k) in keys {
        plain.extend_from_slice(&cd.conversation.0);
        plain.extend_from_slice(&cd.day.to_be_bytes());
        plain.extend_from_slice(&k.to_bytes());
    }
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&hpke.public_key())
        .map_err(|_| bad("public key"))?;
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        KEYS_HPKE_INFO,
        &plain,
        &[KEYS_VERSION],
        &mut OsRng,
    )
    .map_err(|_| bad("sealing failed"))?;
    let mut out = vec![KEYS_VERSION];
    out.extend_from_slice(enc.to_bytes().as_slice());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts a file written by [`seal_keys`].
pub fn open_keys(
    bytes: &[u8],
    hpke: &HpkeKeyPair,
) -> Result<BTreeMap<ConversationDay, IdentityKey>, AuthorityError> {
    let (version, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
    if *version != KEYS_VERSION {
        return Err(bad("unknown version"));
    }
    let (enc, ct) = rest.split_at_checked(32).ok_or_else(|| bad("truncated"))?;
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc)
        .map_err(|_| bad("encapsulated key"))?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &hpke.private_key(),
            &enc,
            KEYS_HPKE_INFO,
            ct,
            &[KEYS_VERSION],
        )
        .map_err(|_| bad("does not open with this authority's key"))?,
    );
    let mut out = BTreeMap::new();
    for item in plain.chunks(ITEM_LEN) {
        let (conv, rest) = item.split_at_checked(16).ok_or_else(|| bad("truncated"))?;
        let (day, key) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let conversation = ConversationId(conv.try_into().map_err(|_| bad("conversation"))?);
        let day = u32::from_be_bytes(day.try_into().map_err(|_| bad("day"))?);
        let key = IdentityKey::from_bytes(key).map_err(|_| bad("identity key"))?;
        out.insert(ConversationDay { conversation, day }, key);
    }
    Ok(out)
}
