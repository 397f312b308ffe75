//! Keys: log checkpoint keys (signed-note Ed25519, type `0x01`) and witness
//! cosignature keys (C2SP `cosignature/v1`, type `0x04`), their key files,
//! and the `signed_note` [`Signer`]/[`Verifier`] for cosignatures, which the
//! `signed_note` crate lacks.
//!
//! # Security meaning
//! A log key signs checkpoints; whoever holds it can sign a split view, which
//! witnesses exist to catch. A witness key asserts "this is the largest tree
//! I have seen for this log, and it is consistent with everything before";
//! it must only sign through the witness's check-and-store step.
//!
//! Key files hold one line, `PRIVATE+KEY+<name>+<key id>+<base64(type || seed)>`,
//! the Go `note` private key format. They are read from files only, never
//! from the command line, and the seed is zeroized on drop.

use std::path::Path;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use custos_clock::SharedClock;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use signed_note::{Signer, Verifier};
use zeroize::Zeroizing;

/// Signature type byte of signed-note Ed25519 signatures (log checkpoints).
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of C2SP timestamped Ed25519 cosignatures.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Why a key could not be read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The key text is not in the expected format.
    #[error("malformed key: {0}; generate one with `custos log keygen` or `custos witness keygen`")]
    Format(&'static str),
    /// The key is of another type than required.
    #[error("key has signature type {found:#04x}, expected {expected:#04x}")]
    WrongType {
        /// Type in the file.
        found: u8,
        /// Type required.
        expected: u8,
    },
}

/// A named Ed25519 private key of one signature type, as read from a key file.
pub struct NamedKey {
    name: String,
    alg: u8,
    key: SigningKey,
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedKey")
            .field("name", &self.name)
            .field("alg", &self.alg)
            .field("public", &hex::encode(self.key.verifying_key().to_bytes()))
            .finish_non_exhaustive()
    }
}

impl NamedKey {
    /// A fresh random key.
    pub fn generate(name: &str, alg: u8) -> Result<Self, KeyError> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, seed.as_mut());
        Ok(Self {
            name: name.to_owned(),
            alg,
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A key from a 32-byte seed (tests and deterministic setups).
    pub fn from_seed(name: &str, alg: u8, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            alg,
            key: SigningKey::from_bytes(seed),
        })
    }

    /// Parses the private key format; checks the key id against the key.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim_end_matches('\n');
        let mut parts = text.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(b64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(KeyError::Format("expected PRIVATE+KEY+name+id+key"));
        };
        check_name(name)?;
        let raw = Zeroizing::new(
            BASE64_STANDARD
                .decode(b64)
                .map_err(|_| KeyError::Format("key is not base64"))?,
        );
        let (&alg, seed) = raw.split_first().ok_or(KeyError::Format("key is empty"))?;
        let seed: &[u8; 32] = seed
            .try_into()
            .map_err(|_| KeyError::Format("seed is not 32 bytes"))?;
        let key = Self {
            name: name.to_owned(),
            alg,
            key: SigningKey::from_bytes(seed),
        };
        if id.len() != 8 || format!("{:08x}", key.key_id()) != id {
            return Err(KeyError::Format("key id does not match the key"));
        }
        Ok(key)
    }

    /// Reads a key file and requires signature type `alg`.
    pub fn read_file(path: &Path, alg: u8) -> Result<Self, KeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        let key = Self::parse(&text)?;
        if key.alg != alg {
            return Err(KeyError::WrongType {
                found: key.alg,
                expected: alg,
            });
        }
        Ok(key)
    }

    /// Writes the key file with mode 0600, refusing to overwrite, durably
    /// ([`custos_durable::write_new`]: a crash leaves no file or the whole key).
    pub fn write_file(&self, path: &Path) -> Result<(), KeyError> {
        custos_durable::write_new(path, self.private_text().as_bytes()).map_err(|source| {
            KeyError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }

    /// The private key text (secret).
    pub fn private_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![self.alg]);
        raw.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}\n",
            self.name,
            self.key_id(),
            BASE64_STANDARD.encode(&*raw)
        ))
    }

    /// The public verifier key, `<name>+<key id>+<base64(type || public key)>`.
    pub fn vkey(&self) -> String {
        vkey(&self.name, self.alg, &self.key.verifying_key())
    }

    /// The key name (log origin or witness name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The signed-note key id: `SHA-256(name || "\n" || type || public key)[:4]`.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.alg, &self.key.verifying_key())
    }

    /// The Ed25519 signing key itself (secret): for a participant that signs
    /// log statements with a key kept in this file format.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The signature type byte.
    pub fn alg(&self) -> u8 {
        self.alg
    }

    /// A checkpoint signer, if this is a type-`0x01` key.
    pub fn log_signer(&self) -> Result<LogSigner, KeyError> {
        self.require(ALG_ED25519)?;
        Ok(LogSigner {
            name: self.name.clone(),
            id: self.key_id(),
            key: self.key.clone(),
        })
    }

    /// A cosigner that timestamps with `clock`, if this is a type-`0x04` key.
    pub fn cosigner(&self, clock: SharedClock) -> Result<CosignatureSigner, KeyError> {
        self.require(ALG_COSIGNATURE_V1)?;
        Ok(CosignatureSigner {
            name: self.name.clone(),
            id: self.key_id(),
            key: self.key.clone(),
            clock,
        })
    }

    fn require(&self, alg: u8) -> Result<(), KeyError> {
        if self.alg == alg {
            Ok(())
        } else {
            Err(KeyError::WrongType {
                found: self.alg,
                expected: alg,
            })
        }
    }
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if signed_note::is_key_name_valid(name) {
        Ok(())
    } else {
        Err(KeyError::Format(
            "key name must be non-empty, without spaces or '+'",
        ))
    }
}

/// The signed-note key id of an Ed25519 key of signature type `alg`.
pub fn key_id(name: &str, alg: u8, key: &VerifyingKey) -> u32 {
    let mut material = vec![alg];
    material.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &material)
}

/// The verifier key string of an Ed25519 key of signature type `alg`.
pub fn vkey(name: &str, alg: u8, key: &VerifyingKey) -> String {
    let mut material = vec![alg];
    material.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{:08x}+{}",
        key_id(name, alg, key),
        BASE64_STANDARD.encode(material)
    )
}

/// Parses a verifier key string of type `alg` into (name, key).
pub fn parse_vkey(text: &str, alg: u8) -> Result<(String, VerifyingKey), KeyError> {
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Format("expected name+id+key"));
    };
    check_name(name)?;
    let raw = BASE64_STANDARD
        .decode(b64)
        .map_err(|_| KeyError::Format("key is not base64"))?;
    let (&found, key) = raw.split_first().ok_or(KeyError::Format("key is empty"))?;
    if found != alg {
        return Err(KeyError::WrongType {
            found,
            expected: alg,
        });
    }
    let key: &[u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Format("public key is not 32 bytes"))?;
    let key = VerifyingKey::from_bytes(key).map_err(|_| KeyError::Format("not an Ed25519 key"))?;
    if id.len() != 8 || format!("{:08x}", key_id(name, alg, &key)) != id {
        return Err(KeyError::Format("key id does not match the key"));
    }
    Ok((name.to_owned(), key))
}

/// Signs checkpoints as signed-note Ed25519 (type `0x01`) signatures.
#[derive(Clone)]
pub struct LogSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl Signer for LogSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// Verifies signed-note Ed25519 (type `0x01`) signatures, strictly.
#[derive(Clone, Debug)]
pub struct LogVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl LogVerifier {
    /// The verifier for the log `origin` with public key `key`.
    pub fn new(origin: &str, key: VerifyingKey) -> Self {
        Self {
            name: origin.to_owned(),
            id: key_id(origin, ALG_ED25519, &key),
            key,
        }
    }
}

impl Verifier for LogVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        custos_wire::signature::verify_strict(&self.key, msg, &Signature::from_bytes(&sig)).is_ok()
    }
}

/// The message a `cosignature/v1` signs: header, time line, checkpoint text.
pub fn cosigned_message(timestamp: u64, checkpoint_text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(checkpoint_text);
    m
}

/// Produces C2SP `cosignature/v1` signatures: `u64 timestamp || Ed25519 sig`.
#[derive(Clone)]
pub struct CosignatureSigner {
    name: String,
    id: u32,
    key: SigningKey,
    clock: SharedClock,
}

impl Signer for CosignatureSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let ts = self.clock.now_secs().min(i64::MAX as u64);
        let mut out = ts.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&cosigned_message(ts, msg)).to_bytes());
        Ok(out)
    }
}

/// Verifies C2SP `cosignature/v1` signatures from one witness.
#[derive(Clone, Debug)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// The verifier for witness `name` with public key `key`.
    pub fn new(name: &str, key: VerifyingKey) -> Self {
        Self {
            name: name.to_owned(),
            id: key_id(name, ALG_COSIGNATURE_V1, &key),
            key,
        }
    }

    /// The timestamp of a cosignature, if well formed (72 bytes, ≤ 2^63-1).
    pub fn timestamp(sig: &[u8]) -> Option<u64> {
        if sig.len() != 72 {
            return None;
        }
        let ts = u64::from_be_bytes(sig.get(..8)?.try_into().ok()?);
        (ts <= i64::MAX as u64).then_some(ts)
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some(ts) = Self::timestamp(sig) else {
            return false;
        };
        let Some(Ok(sig)) = sig.get(8..).map(<[u8; 64]>::try_from) else {
            return false;
        };
        custos_wire::signature::verify_strict(
            &self.key,
            &cosigned_message(ts, msg),
            &Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_check_ids() {
        let k = NamedKey::from_seed("log.example", ALG_ED25519, &[1; 32]).unwrap();
        let back = NamedKey::parse(&k.private_text()).unwrap();
        assert_eq!(back.vkey(), k.vkey());
        let (name, vk) = parse_vkey(&k.vkey(), ALG_ED25519).unwrap();
        assert_eq!(name, "log.example");
        assert_eq!(vk, k.verifying_key());
        assert!(parse_vkey(&k.vkey(), ALG_COSIGNATURE_V1).is_err());
        let bad_id = k
            .private_text()
            .replacen("+KEY+log.example+", "+KEY+log.examplf+", 1);
        assert!(NamedKey::parse(&bad_id).is_err());
        assert!(k.cosigner(custos_clock::system()).is_err());
    }

    #[test]
    fn cosignatures_verify_and_bind_time_and_text() {
        let clock = custos_clock::dangerous::simulated(1_679_315_147_000);
        let k = NamedKey::from_seed("w1.example", ALG_COSIGNATURE_V1, &[2; 32]).unwrap();
        let signer = k.cosigner(clock.shared()).unwrap();
        let verifier = CosignatureVerifier::new("w1.example", k.verifying_key());
        assert_eq!(signer.key_id(), verifier.key_id());
        let text = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let sig = signer.sign(text).unwrap();
        assert_eq!(CosignatureVerifier::timestamp(&sig), Some(1_679_315_147));
        assert!(verifier.verify(text, &sig));
        let mut later = sig.clone();
        later[7] ^= 1;
        assert!(!verifier.verify(text, &later));
        assert!(!verifier.verify(b"other\n", &sig));
        assert!(!verifier.verify(text, &sig[..71]));
    }
}
