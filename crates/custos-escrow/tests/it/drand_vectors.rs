//! Interoperability: real drand tlock ciphertexts open with published beacon
//! signatures through this crate's IBE code path (see `vectors/drand/README.md`
//! for the source of every value).
//!
//! A tlock file is an age file whose single `tlock` stanza body is a FullIdent
//! ciphertext `U (96) || V (16) || W (16)` of the 16-byte age file key, to the
//! identity `SHA-256(round as u64 big-endian)`. The test recovers the file key
//! with [`Suite::decrypt`], then checks the age header MAC and decrypts the
//! payload, which must equal the published plaintext. The Fujisaki–Okamoto
//! check makes this decisive: H1, H2 (with the target-group serialisation),
//! H3 and H4 must all match drand's byte for byte for the check to pass.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test and benchmark code: a panic is a failed test, not a service crash"
)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use blstrs::{Bls12, G1Affine, G2Affine, G2Prepared};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use custos_escrow::ibe::{Ciphertext, DRAND_FASTNET, DRAND_QUICKNET, Suite};
use custos_escrow::point::{decode_g1, decode_g2};
use custos_escrow::{DecodeError, OpenError};
use group::prime::PrimeCurveAffine;
use hmac::{Hmac, Mac};
use pairing::{MillerLoopResult, MultiMillerLoop};
use sha2::{Digest, Sha256};

// Sources: see vectors/drand/README.md.
const FASTNET_PK: &str = "a0b862a7527fee3a731bcb59280ab6abd62d5c0b6ea03dc4ddf6612fdfc9d01f01c31542541771903475eb1ec6615f8d0df0b8b6dce385811d6dcf8cbefb8759e5e616a3dfd054c928940766d9a5b9db91e3b697e5d70a975181e007f87fca5e";
const FASTNET_ROUND_2_SIG: &str = "a050676d1a1b6ceedb5fb3281cdfe88695199971426ff003c0862460b3a72811328a07ecd53b7d57fc82bb67f35efaf1";
const FASTNET_ROUND_1000_SIG: &str = "b09eacd45767c4d58306b98901ad0d6086e2663766f3a4ec71d00cf26f0f49eaf248abc7151c60cf419c4e8b37e80412";
const QUICKNET_PK: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
const QUICKNET_ROUND_1000_SIG: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";
const QUICKNET_T_PK: &str = "b15b65b46fb29104f6a4b5d1e11a8da6344463973d423661bb0804846a0ecd1ef93c25057f1c0baab2ac53e56c662b66072f6d84ee791a3382bfb055afab1e6a375538d8ffc451104ac971d2dc9b168e2d3246b0be2015969cbaac298f6502da";
const QUICKNET_T_ROUND_5423142_SIG: &str = "96fce8e2f70e2784577c8f2d8bd36af7a4b0dfd73dd91469d8556b36d2973a4f84681a45b1af2ce0511e5a32dd72508f";

const QUICKNET_T_FILE: &str = include_str!("../vectors/drand/quicknet-t-lorem.tle");
const QUICKNET_T_PLAINTEXT: &[u8] = include_bytes!("../vectors/drand/lorem.txt");
const FASTNET_FILE: &str = include_str!("../vectors/drand/fastnet-hello.tle");

fn g1(hex_str: &str) -> G1Affine {
    decode_g1(&hex::decode(hex_str).unwrap(), "signature").unwrap()
}

fn g2(hex_str: &str) -> G2Affine {
    decode_g2(&hex::decode(hex_str).unwrap(), "public key").unwrap()
}

fn round_identity(round: u64) -> [u8; 32] {
    Sha256::digest(round.to_be_bytes()).into()
}

/// The BLS check of a beacon: e(sig, G2) == e(H1(id), pk).
fn beacon_verifies(suite: &Suite<16>, pk: &G2Affine, round: u64, sig: &G1Affine) -> bool {
    let q = suite.hash_identity(&round_identity(round));
    let neg_g2 = G2Prepared::from(-G2Affine::generator());
    let pk = G2Prepared::from(*pk);
    bool::from(group::Group::is_identity(
        &Bls12::multi_miller_loop(&[(sig, &neg_g2), (&q, &pk)]).final_exponentiation(),
    ))
}

/// The parts of a tlock age file that the test needs.
struct TlockFile {
    round: u64,
    chain_hash: String,
    body: Vec<u8>,
    header_for_mac: Vec<u8>,
    mac: Vec<u8>,
    payload: Vec<u8>,
}

fn parse_tlock_file(armored: &str) -> TlockFile {
    let b64: String = armored
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let bin = STANDARD.decode(b64).unwrap();
    let mac_line_start = bin.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let mac_line_end = mac_line_start
        + bin[mac_line_start..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap();
    let header_text = std::str::from_utf8(&bin[..mac_line_start]).unwrap();
    let mut lines = header_text.lines();
    assert_eq!(lines.next(), Some("age-encryption.org/v1"));
    let stanza: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(&stanza[..2], &["->", "tlock"]);
    let body_b64: String = lines.collect();
    TlockFile {
        round: stanza[2].parse().unwrap(),
        chain_hash: stanza[3].to_string(),
        body: STANDARD_NO_PAD.decode(body_b64).unwrap(),
        header_for_mac: bin[..mac_line_start + 3].to_vec(),
        mac: STANDARD_NO_PAD
            .decode(&bin[mac_line_start + 4..mac_line_end])
            .unwrap(),
        payload: bin[mac_line_end + 1..].to_vec(),
    }
}

fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .unwrap();
    out
}

/// Checks the age header MAC and decrypts a one-chunk payload.
fn open_age(file: &TlockFile, file_key: &[u8; 16]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&hkdf(file_key, b"", b"header")).unwrap();
    mac.update(&file.header_for_mac);
    mac.verify_slice(&file.mac)
        .expect("age header MAC must verify with the recovered file key");
    let (nonce, chunks) = file.payload.split_at(16);
    let key = hkdf(file_key, nonce, b"payload");
    let aead = ChaCha20Poly1305::new(Key::from_slice(&key));
    let mut chunk_nonce = [0u8; 12];
    chunk_nonce[11] = 1; // counter 0, last chunk
    aead.decrypt(Nonce::from_slice(&chunk_nonce), chunks)
        .expect("age payload must decrypt")
}

fn decrypt_stanza(
    suite: &Suite<16>,
    file: &TlockFile,
    sig: &G1Affine,
) -> Result<[u8; 16], OpenError> {
    let ct = Ciphertext::<16>::from_bytes(&file.body).unwrap();
    suite.decrypt(sig, &ct).map(|k| *k)
}

#[test]
fn quicknet_t_ciphertext_from_go_tle_decrypts_to_published_plaintext() {
    let file = parse_tlock_file(QUICKNET_T_FILE);
    assert_eq!(file.round, 5_423_142);
    assert_eq!(
        file.chain_hash,
        "cc9c398442737cbd141526600919edd69f1d6f9b4adb67e4d912fbc64341a9a5"
    );
    assert_eq!(file.body.len(), 128);
    let pk = g2(QUICKNET_T_PK);
    let sig = g1(QUICKNET_T_ROUND_5423142_SIG);
    assert!(beacon_verifies(&DRAND_QUICKNET, &pk, file.round, &sig));
    let file_key = decrypt_stanza(&DRAND_QUICKNET, &file, &sig).unwrap();
    assert_eq!(open_age(&file, &file_key), QUICKNET_T_PLAINTEXT);
}

#[test]
fn fastnet_ciphertext_from_go_decrypts_to_published_plaintext() {
    let file = parse_tlock_file(FASTNET_FILE);
    assert_eq!(file.round, 2);
    assert_eq!(
        file.chain_hash,
        "dbd506d6ef76e5f386f41c651dcb808c5bcbd75471cc4eafa3f4df7ad4e4c493"
    );
    let pk = g2(FASTNET_PK);
    let sig = g1(FASTNET_ROUND_2_SIG);
    assert!(beacon_verifies(&DRAND_FASTNET, &pk, file.round, &sig));
    let file_key = decrypt_stanza(&DRAND_FASTNET, &file, &sig).unwrap();
    assert_eq!(open_age(&file, &file_key), b"Hello drand World\n");
}

#[test]
fn published_beacons_are_identity_keys_of_their_rounds() {
    // Identity-key extraction is a BLS signature: mainnet beacons verify
    // under this crate's H1 with each network's tag, and not for another round.
    let quicknet = g2(QUICKNET_PK);
    let q1000 = g1(QUICKNET_ROUND_1000_SIG);
    assert!(beacon_verifies(&DRAND_QUICKNET, &quicknet, 1000, &q1000));
    assert!(!beacon_verifies(&DRAND_QUICKNET, &quicknet, 1001, &q1000));
    assert!(!beacon_verifies(&DRAND_FASTNET, &quicknet, 1000, &q1000));
    let fastnet = g2(FASTNET_PK);
    let f1000 = g1(FASTNET_ROUND_1000_SIG);
    assert!(beacon_verifies(&DRAND_FASTNET, &fastnet, 1000, &f1000));
    assert!(!beacon_verifies(&DRAND_QUICKNET, &fastnet, 1000, &f1000));
}

#[test]
fn drand_ciphertexts_reject_wrong_keys_and_tampering() {
    let file = parse_tlock_file(QUICKNET_T_FILE);
    let right = g1(QUICKNET_T_ROUND_5423142_SIG);
    // Another round's beacon, and the right beacon under the wrong suite.
    assert_eq!(
        decrypt_stanza(&DRAND_QUICKNET, &file, &g1(QUICKNET_ROUND_1000_SIG)),
        Err(OpenError::FoCheckFailed)
    );
    let ct = Ciphertext::<16>::from_bytes(&file.body).unwrap();
    let mut tampered = ct;
    tampered.w[0] ^= 1;
    assert_eq!(
        DRAND_QUICKNET.decrypt(&right, &tampered).map(|k| *k),
        Err(OpenError::FoCheckFailed)
    );
    let mut tampered = ct;
    tampered.v[15] ^= 0x40;
    assert_eq!(
        DRAND_QUICKNET.decrypt(&right, &tampered).map(|k| *k),
        Err(OpenError::FoCheckFailed)
    );
    // A truncated stanza body is a decoding error, not a panic.
    assert!(matches!(
        Ciphertext::<16>::from_bytes(&file.body[..127]),
        Err(DecodeError::WrongLength {
            expected: 128,
            found: 127,
            ..
        })
    ));
}
