//! Login challenges that cost the service nothing to hand out.
//!
//! # Security meaning
//! - A challenge is `expires_at (u64 BE) ‖ nonce (8 random bytes) ‖ tag`,
//!   where `tag` is the first 16 bytes of HMAC-SHA256 under a key the
//!   service draws from the OS at start, over `"custos/v1/login-challenge" ‖
//!   u8(len(name)) ‖ name ‖ expires_at ‖ nonce`. It is bound to one account
//!   name and one expiry, and the service keeps nothing when it issues one,
//!   so no number of requests can fill a table and lock anyone else out.
//! - Single use: an answer is remembered under its account until the
//!   challenge expires, and a second answer to it is refused. A challenge
//!   that was answered with a valid signature can never be answered again;
//!   one answered wrongly is remembered too, but an account's own list is
//!   bounded and wrong answers are the first forgotten, so requests made in
//!   another account's name cannot lock that account out.
//! - After a restart the key is new and outstanding challenges are refused:
//!   the client asks for another. On PostgreSQL every server uses the
//!   deployment's shared key ([`Challenges::with_key`]), and a correct
//!   answer is also spent in the database, so it is refused on every other
//!   server too (`store::pg_challenges`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Label of the challenge tag's MAC input.
const CHALLENGE_TAG_LABEL: &[u8] = b"custos/v1/login-challenge";
/// Bytes of a challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Answers remembered per account while their challenges are live.
const REMEMBERED_PER_ACCOUNT: usize = 64;

/// Why a challenge is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ChallengeRefusal {
    /// Not issued by this service for this account, or altered.
    #[error("challenge not issued for this account")]
    Unknown,
    /// Past its expiry.
    #[error("challenge expired")]
    Expired,
    /// Already answered.
    #[error("challenge already used")]
    Used,
    /// The account has answered more live challenges correctly than it may
    /// keep: it must wait for the oldest to expire.
    #[error("too many logins in a short time")]
    TooManyLogins,
}

#[derive(Debug)]
struct Answered {
    tag: [u8; 16],
    expires_at: u64,
    signed: bool,
}

/// Issues and redeems login challenges.
pub(crate) struct Challenges {
    key: Zeroizing<[u8; 64]>,
    answered: Mutex<HashMap<String, VecDeque<Answered>>>,
    /// Accounts with remembered answers past which expired ones are swept.
    sweep_at: usize,
}

impl Challenges {
    /// A fresh key from the OS; `sweep_at` accounts with remembered answers
    /// trigger a sweep of expired ones.
    pub fn new(sweep_at: usize) -> Self {
        let mut key = Zeroizing::new([0u8; 64]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self {
            key,
            answered: Mutex::new(HashMap::new()),
            sweep_at,
        }
    }

    /// Challenges keyed with `key`, which every server of a deployment on
    /// PostgreSQL shares (so a challenge one issues, another accepts);
    /// `sweep_at` as in [`Challenges::new`].
    pub fn with_key(key: Zeroizing<[u8; 64]>, sweep_at: usize) -> Self {
        Self {
            key,
            answered: Mutex::new(HashMap::new()),
            sweep_at,
        }
    }

    fn tag(&self, name: &str, expires_at: u64, nonce: &[u8]) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new(self.key.as_ref().into());
        mac.update(CHALLENGE_TAG_LABEL);
        mac.update(&[u8::try_from(name.len()).unwrap_or(u8::MAX)]);
        mac.update(name.as_bytes());
        mac.update(&expires_at.to_be_bytes());
        mac.update(nonce);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(full.get(..16).unwrap_or(&[0; 16]));
        tag
    }

    /// A challenge for `name` that expires at `expires_at` (Unix ms).
    pub fn issue(&self, name: &str, expires_at: u64) -> [u8; CHALLENGE_LEN] {
        let mut nonce = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut c = [0u8; CHALLENGE_LEN];
        let (head, tag) = c.split_at_mut(16);
        let (when, n) = head.split_at_mut(8);
        when.copy_from_slice(&expires_at.to_be_bytes());
        n.copy_from_slice(&nonce);
        tag.copy_from_slice(&self.tag(name, expires_at, &nonce));
        c
    }

    /// Checks that `challenge` was issued for `name` and is live at `now`;
    /// returns its expiry. Keeps nothing.
    pub fn check(
        &self,
        name: &str,
        challenge: &[u8; CHALLENGE_LEN],
        now: u64,
    ) -> Result<u64, ChallengeRefusal> {
        let (head, tag) = challenge.split_at(16);
        let (when, nonce) = head.split_at(8);
        let mut at = [0u8; 8];
        at.copy_from_slice(when);
        let expires_at = u64::from_be_bytes(at);
        if !bool::from(self.tag(name, expires_at, nonce).ct_eq(tag)) {
            return Err(ChallengeRefusal::Unknown);
        }
        if expires_at <= now {
            return Err(ChallengeRefusal::Expired);
        }
        Ok(expires_at)
    }

    /// Records the answer to a checked `challenge` of `name`: `signed` says
    /// whether its signature verified. Refuses a challenge answered before.
    pub fn answer(
        &self,
        name: &str,
        challenge: &[u8; CHALLENGE_LEN],
        expires_at: u64,
        signed: bool,
        now: u64,
    ) -> Result<(), ChallengeRefusal> {
        let mut tag = [0u8; 16];
        tag.copy_from_slice(challenge.get(16..).unwrap_or(&[0; 16]));
        let mut all = self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if all.len() >= self.sweep_at {
            all.retain(|_, list| {
                list.retain(|a| a.expires_at > now);
                !list.is_empty()
            });
        }
        let list = all.entry(name.to_owned()).or_default();
        list.retain(|a| a.expires_at > now);
        if list.iter().any(|a| bool::from(a.tag.ct_eq(&tag))) {
            return Err(ChallengeRefusal::Used);
        }
        if list.len() >= REMEMBERED_PER_ACCOUNT {
            match list.iter().position(|a| !a.signed) {
                Some(i) => {
                    list.remove(i);
                }
                None => return Err(ChallengeRefusal::TooManyLogins),
            }
        }
        list.push_back(Answered {
            tag,
            expires_at,
            signed,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_challenge_is_bound_to_its_name_expiry_and_key() {
        let c = Challenges::new(10);
        let ch = c.issue("alice", 1_000);
        assert_eq!(c.check("alice", &ch, 999), Ok(1_000));
        assert_eq!(c.check("alice", &ch, 1_000), Err(ChallengeRefusal::Expired));
        assert_eq!(c.check("bob", &ch, 0), Err(ChallengeRefusal::Unknown));
        let mut later = ch;
        later[7] ^= 1;
        assert_eq!(c.check("alice", &later, 0), Err(ChallengeRefusal::Unknown));
        let other = Challenges::new(10);
        assert_eq!(other.check("alice", &ch, 0), Err(ChallengeRefusal::Unknown));
    }

    #[test]
    fn answers_are_single_use_and_wrong_ones_cannot_lock_an_account_out() {
        let c = Challenges::new(10);
        let good = c.issue("alice", 1_000);
        c.answer("alice", &good, 1_000, true, 0).unwrap();
        assert_eq!(
            c.answer("alice", &good, 1_000, true, 0),
            Err(ChallengeRefusal::Used)
        );
        // Many wrong answers in alice's name: her next login still works,
        // and the signed answer is still remembered.
        for _ in 0..10 * REMEMBERED_PER_ACCOUNT {
            let ch = c.issue("alice", 1_000);
            c.answer("alice", &ch, 1_000, false, 0).unwrap();
        }
        let next = c.issue("alice", 1_000);
        c.answer("alice", &next, 1_000, true, 0).unwrap();
        assert_eq!(
            c.answer("alice", &good, 1_000, true, 0),
            Err(ChallengeRefusal::Used)
        );
        // Expired answers are forgotten.
        let fresh = c.issue("alice", 2_000);
        c.answer("alice", &fresh, 2_000, true, 1_500).unwrap();
    }

    #[test]
    fn only_the_account_itself_can_exhaust_its_logins() {
        let c = Challenges::new(10);
        for _ in 0..REMEMBERED_PER_ACCOUNT {
            let ch = c.issue("alice", 1_000);
            c.answer("alice", &ch, 1_000, true, 0).unwrap();
        }
        let ch = c.issue("alice", 1_000);
        assert_eq!(
            c.answer("alice", &ch, 1_000, true, 0),
            Err(ChallengeRefusal::TooManyLogins)
        );
        let bob = c.issue("bob", 1_000);
        c.answer("bob", &bob, 1_000, true, 0).unwrap();
        // Once alice's answers expire she can log in again.
        let ch = c.issue("alice", 3_000);
        c.answer("alice", &ch, 3_000, true, 1_000).unwrap();
    }
}
