//! AES-GCM's pieces by hand (NIST SP 800-38D): GF(2^128) arithmetic,
//! GHASH, the block cipher and counter blocks. The reports tests use them to
//! build a real AES-256-GCM key collision (one blob that opens under two
//! keys), which no AEAD library exposes.
#![allow(clippy::indexing_slicing, reason = "test helpers: fixed-size blocks")]

/// GF(2^128) as GCM uses it: a block is a big-endian u128 whose most
/// significant bit is the coefficient of x^0 (NIST SP 800-38D, §6.3).
pub fn gf_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xE1 << 120;
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}

pub fn gf_pow(x: u128, mut e: u128) -> u128 {
    let (mut acc, mut base) = (1u128 << 127, x);
    while e > 0 {
        if e & 1 == 1 {
            acc = gf_mul(acc, base);
        }
        base = gf_mul(base, base);
        e >>= 1;
    }
    acc
}

/// Inverse by Fermat: x^(2^128 - 2).
pub fn gf_inv(x: u128) -> u128 {
    gf_pow(x, u128::MAX - 1)
}

pub fn aes_block(key: &[u8; 32], block: [u8; 16]) -> u128 {
    use aes_gcm::aes::cipher::{BlockEncrypt, KeyInit};
    let mut b = block.into();
    aes_gcm::aes::Aes256::new(key.into()).encrypt_block(&mut b);
    u128::from_be_bytes(b.into())
}

pub fn counter_block(nonce: &[u8; 12], counter: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(nonce);
    b[12..].copy_from_slice(&counter.to_be_bytes());
    b
}

/// GHASH_H over the AAD and ciphertext blocks (both whole or padded) and the length block.
pub fn ghash(h: u128, aad: &[u8], ct: &[u128]) -> u128 {
    let mut x = 0u128;
    for chunk in aad.chunks(16) {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        x = gf_mul(x ^ u128::from_be_bytes(b), h);
    }
    for c in ct {
        x = gf_mul(x ^ c, h);
    }
    let len = (((aad.len() as u128) * 8) << 64) | ((ct.len() as u128) * 128);
    gf_mul(x ^ len, h)
}
