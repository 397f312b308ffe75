//! HPKE sealing of released partial keys to the warrant's authority key.

use custos_wire::release::{RELEASE_HPKE_INFO, ReleasedShares};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeS, Serializable as _};

use super::ReleaseRefusal;
use super::checks::WarrantChecked;

/// Seals `shares` with HPKE (RFC 9180 base mode, DHKEM(X25519,
/// HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to `authority_key`, with
/// info `custos/v1/release` and the request hash as associated data.
///
/// Takes `&WarrantChecked`: shares are sealed only after every check passed.
/// Returns the encapsulated key and the ciphertext.
pub fn seal(
    _checked: &WarrantChecked,
    authority_key: &[u8; 32],
    request_hash: &[u8; 32],
    shares: &ReleasedShares,
) -> Result<([u8; 32], Vec<u8>), ReleaseRefusal> {
    let internal = |what: &str| ReleaseRefusal::Internal(format!("HPKE: {what}"));
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(authority_key)
        .map_err(|_| internal("the warrant's authority key is not an X25519 key"))?;
    let plaintext = zeroize::Zeroizing::new(
        shares
            .encode()
            .map_err(|e| ReleaseRefusal::Internal(e.to_string()))?,
    );
    let mut rng = rand_core::OsRng;
    let (enc, ciphertext) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
            &OpModeS::Base,
            &pk,
            RELEASE_HPKE_INFO,
            &plaintext,
            request_hash,
            &mut rng,
        )
        .map_err(|_| internal("sealing failed"))?;
    let enc_bytes: [u8; 32] = enc
        .to_bytes()
        .as_slice()
        .try_into()
        .map_err(|_| internal("encapsulated key length"))?;
    let _ = X25519HkdfSha256::KEM_ID;
    Ok((enc_bytes, ciphertext))
}
