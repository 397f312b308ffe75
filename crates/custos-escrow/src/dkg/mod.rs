//! Distributed generation of a day key among `n` custodians, threshold `t`.
//!
//! The protocol is Joint-Feldman with public complaints (GJKR99), run by the
//! maintained implementation in `commonware-cryptography`
//! (`bls12381::dkg::feldman_desmedt`, pinned exactly), whose group elements
//! are converted to this crate's types through their compressed encodings.
//! See `docs/design/0001-escrow-cryptography.md` for why it was chosen.
//!
//! # Rounds
//! 1. **Deal.** Every custodian, as dealer, draws a random polynomial of
//!    degree `t - 1`, broadcasts its Feldman commitment and sends each other
//!    custodian its evaluation, privately ([`Message`] kind `Dealing`).
//! 2. **Acknowledge.** A custodian that receives a share consistent with the
//!    commitment returns a signed acknowledgement to the dealer. Withholding
//!    the acknowledgement is the complaint.
//! 3. **Log.** Every dealer broadcasts a signed log: its commitment, and for
//!    every custodian either that custodian's acknowledgement or, answering
//!    the complaint, the share in the clear. A dealer with more than
//!    `n - t` complaints, an invalid log, or no log is excluded.
//! 4. **Finalize.** From the agreed set of logs, every custodian selects the
//!    same `t` qualified dealers, sums their polynomials, and obtains the day
//!    key, its own share, and a transcript hash that all custodians compare.
//!    No party ever holds the master secret.
//!
//! # Transport
//! Everything here is bytes in, bytes out. The state machine
//! ([`Dealing`] → [`Finalizing`] → [`DkgOutput`]) returns [`Outgoing`]
//! messages and consumes received bytes; [`run`] drives it over any
//! [`Transport`]. The transport must deliver `Recipient::Custodian` messages
//! privately and authenticated (they carry secret shares), and
//! `Recipient::All` messages so that all custodians see the same set (for
//! example through the transparency log).
//!
//! # Threshold
//! The threshold is the honest majority `t = ⌊n/2⌋ + 1` (3 of 5, as in the
//! reference design): the fault model is passed to the implementation as a
//! type, and this one is the model Custos deploys.

use std::num::NonZeroU32;

use commonware_codec::{Decode, DecodeExt, Encode};
use commonware_cryptography::Signer;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::{
    Dealer, DealerPrivMsg, DealerPubMsg, Info, Logs, Output, Player, PlayerAck, Reveal,
    SignedDealerLog,
};
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::ed25519;
use commonware_parallel::Sequential;
use commonware_utils::{Faults, Participant, ordered::Set};
use rand_chacha_cw::ChaCha20Rng;
use rand_chacha_cw::rand_core::SeedableRng;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::point::{SCALAR_LEN, decode_g2, decode_scalar};
use crate::threshold::MAX_CUSTODIANS;
use crate::{DayKey, SecretShare};

/// Namespace that binds every DKG signature and transcript to Custos escrow.
const NAMESPACE: &[u8] = b"custos/escrow/v1/dkg";
/// Domain of the transcript hash.
const TRANSCRIPT_DOMAIN: &[u8] = b"custos/escrow/v1/dkg-transcript";
/// Version byte of DKG messages.
pub const DKG_MESSAGE_VERSION: u8 = 1;

/// The honest-majority fault model: `f = ⌊(n-1)/2⌋`, quorum `t = n - f`.
struct Majority;

impl Faults for Majority {
    fn max_faults(n: impl num_traits::ToPrimitive) -> u32 {
        let n = n.to_u32().unwrap_or(1).max(1);
        (n - 1) / 2
    }
}

/// Why the DKG could not proceed or complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DkgError {
    /// The configuration is not usable; the message says how to fix it.
    #[error("invalid DKG configuration: {0}")]
    Config(&'static str),
    /// This custodian's signing key is not among the configured custodians.
    #[error("this custodian's key is not in the custodian list")]
    NotACustodian,
    /// A message names a custodian index outside `1..=n`.
    #[error("message from unknown custodian index {0}")]
    UnknownCustodian(u32),
    /// A message could not be decoded or is not expected in this round.
    #[error("malformed or unexpected DKG message from custodian {from}: {reason}")]
    Malformed {
        /// Sender index.
        from: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The dealing from this custodian does not match its commitment. No
    /// acknowledgement is sent: this is the complaint, which the dealer must
    /// answer by revealing the share in its log.
    #[error("dealing from custodian {from} is invalid; complaint filed (no acknowledgement)")]
    BadDealing {
        /// Dealer index.
        from: u32,
    },
    /// Too few dealers qualified, or the logs do not determine an output.
    #[error("DKG failed: {0}")]
    Failed(String),
    /// The transport failed.
    #[error("transport error: {0}")]
    Transport(String),
}

/// Public parameters of one day's DKG, identical at every custodian.
#[derive(Debug, Clone)]
pub struct DkgConfig {
    day: u32,
    threshold: u16,
    custodians: Vec<[u8; 32]>,
    info: Info<MinSig, ed25519::PublicKey>,
    set: Set<ed25519::PublicKey>,
}

impl DkgConfig {
    /// Configures the DKG of `day` among `custodians` (their Ed25519 public
    /// keys) with `threshold`, which must be `⌊n/2⌋ + 1`.
    ///
    /// Custodians are numbered `1..=n` in increasing order of public key;
    /// that number is their share index and their index in the day key.
    pub fn new(day: u32, threshold: u16, custodians: &[[u8; 32]]) -> Result<Self, DkgError> {
        let n = custodians.len();
        if !(2..=MAX_CUSTODIANS).contains(&n) {
            return Err(DkgError::Config(
                "the number of custodians must be in 2..=64",
            ));
        }
        if usize::from(threshold) != n / 2 + 1 {
            return Err(DkgError::Config(
                "the threshold must be the honest majority floor(n/2)+1",
            ));
        }
        let mut sorted = custodians.to_vec();
        sorted.sort_unstable();
        let mut keys = Vec::with_capacity(n);
        for pk in &sorted {
            keys.push(ed25519::PublicKey::decode(pk.to_vec()).map_err(|_| {
                DkgError::Config("a custodian public key is not a valid Ed25519 key")
            })?);
        }
        let set = Set::try_from(keys)
            .map_err(|_| DkgError::Config("custodian public keys must be distinct"))?;
        let info = Info::new::<Majority>(
            NAMESPACE,
            u64::from(day),
            None,
            Mode::NonZeroCounter,
            Reveal::V1,
            set.clone(),
            set.clone(),
        )
        .map_err(|_| DkgError::Config("the DKG round could not be set up"))?;
        Ok(Self {
            day,
            threshold,
            custodians: sorted,
            info,
            set,
        })
    }

    /// The day whose key is generated.
    pub fn day(&self) -> u32 {
        self.day
    }

    /// Number of custodians.
    pub fn n(&self) -> usize {
        self.custodians.len()
    }

    /// The threshold `t`.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// Custodian public keys, custodian 1 first.
    pub fn custodians(&self) -> &[[u8; 32]] {
        &self.custodians
    }

    /// The index (`1..=n`) of the custodian with this public key.
    pub fn index_of(&self, public_key: &[u8; 32]) -> Option<u32> {
        self.custodians
            .iter()
            .position(|c| c == public_key)
            .and_then(|p| u32::try_from(p + 1).ok())
    }

    fn key_of(&self, index: u32) -> Result<&ed25519::PublicKey, DkgError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.set.get(i))
            .ok_or(DkgError::UnknownCustodian(index))
    }

    fn max(&self) -> NonZeroU32 {
        NonZeroU32::new(u32::try_from(self.n()).unwrap_or(1)).unwrap_or(NonZeroU32::MIN)
    }
}

/// Where an outgoing message must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// One custodian, over a private and authenticated channel.
    Custodian(u32),
    /// Every custodian, over a channel on which all see the same messages.
    All,
}

/// A message the caller must deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination.
    pub to: Recipient,
    /// Encoded [`Message`].
    pub bytes: Vec<u8>,
}

/// Kinds of DKG message. Encoding: version (1), kind (1), payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Message {
    /// Commitment and private share from a dealer (private).
    Dealing = 1,
    /// A player's signed acknowledgement to a dealer (private).
    Ack = 2,
    /// A dealer's signed log (broadcast).
    Log = 3,
}

fn frame(kind: Message, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + payload.len());
    out.push(DKG_MESSAGE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(payload);
    out
}

fn unframe(from: u32, bytes: &[u8]) -> Result<(Message, &[u8]), DkgError> {
    let malformed = |reason| DkgError::Malformed { from, reason };
    match bytes {
        [DKG_MESSAGE_VERSION, 1, rest @ ..] => Ok((Message::Dealing, rest)),
        [DKG_MESSAGE_VERSION, 2, rest @ ..] => Ok((Message::Ack, rest)),
        [DKG_MESSAGE_VERSION, 3, rest @ ..] => Ok((Message::Log, rest)),
        [DKG_MESSAGE_VERSION, ..] => Err(malformed("unknown message kind")),
        [_, ..] => Err(malformed("unsupported message version")),
        [] => Err(malformed("empty message")),
    }
}

type Key = ed25519::PrivateKey;

/// Rounds 1 and 2: dealing and acknowledging.
pub struct Dealing {
    config: DkgConfig,
    me: u32,
    dealer: Dealer<MinSig, Key>,
    player: Player<MinSig, Key>,
    rng: ChaCha20Rng,
}

impl Dealing {
    /// Starts this custodian's part: returns the state and the dealings to
    /// send, one per other custodian. `signing_key` is the custodian's
    /// Ed25519 secret key (32-byte seed); `rng` must be cryptographic (the
    /// OS generator).
    pub fn start<R: RngCore + CryptoRng>(
        config: &DkgConfig,
        signing_key: &[u8; 32],
        rng: &mut R,
    ) -> Result<(Self, Vec<Outgoing>), DkgError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let mut crng = ChaCha20Rng::from_seed(*seed);
        let key = Key::decode(signing_key.to_vec())
            .map_err(|_| DkgError::Config("invalid Ed25519 signing key"))?;
        let me = config
            .index_of(&key_bytes(&key.public_key())?)
            .ok_or(DkgError::NotACustodian)?;
        let (mut dealer, pub_msg, priv_msgs) = Dealer::<MinSig, Key>::start::<Majority>(
            &mut crng,
            config.info.clone(),
            key.clone(),
            None,
        )
        .map_err(|_| DkgError::NotACustodian)?;
        let mut player = Player::<MinSig, Key>::new(config.info.clone(), key.clone())
            .map_err(|_| DkgError::NotACustodian)?;
        let pub_bytes = pub_msg.encode();
        let mut out = Vec::with_capacity(priv_msgs.len());
        for (pk, priv_msg) in priv_msgs {
            let to = config
                .index_of(&key_bytes(&pk)?)
                .ok_or(DkgError::UnknownCustodian(0))?;
            if to == me {
                // Deliver our own dealing to ourselves.
                let ack = player
                    .dealer_message::<Majority>(key.public_key(), pub_msg.clone(), priv_msg)
                    .map_err(|_| DkgError::BadDealing { from: me })?;
                if let Some(ack) = ack {
                    dealer
                        .receive_player_ack(key.public_key(), ack)
                        .map_err(|_| DkgError::Malformed {
                            from: me,
                            reason: "own acknowledgement rejected",
                        })?;
                }
                continue;
            }
            let secret = Zeroizing::new(priv_msg.encode().to_vec());
            let mut payload = Zeroizing::new(Vec::with_capacity(pub_bytes.len() + SCALAR_LEN));
            payload.extend_from_slice(&pub_bytes);
            payload.extend_from_slice(&secret);
            out.push(Outgoing {
                to: Recipient::Custodian(to),
                bytes: frame(Message::Dealing, &payload),
            });
        }
        Ok((
            Self {
                config: config.clone(),
                me,
                dealer,
                player,
                rng: crng,
            },
            out,
        ))
    }

    /// This custodian's index.
    pub fn index(&self) -> u32 {
        self.me
    }

    /// Handles a dealing (returns the acknowledgement to send back) or an
    /// acknowledgement of our dealing (returns nothing). `from` is the
    /// authenticated sender's index.
    ///
    /// [`DkgError::BadDealing`] is the complaint against `from`: no
    /// acknowledgement goes back, so the dealer must reveal the share in its
    /// log or be excluded.
    pub fn handle(&mut self, from: u32, bytes: &[u8]) -> Result<Vec<Outgoing>, DkgError> {
        let dealer_pk = self.config.key_of(from)?.clone();
        match unframe(from, bytes)? {
            (Message::Dealing, payload) => {
                let split = payload
                    .len()
                    .checked_sub(SCALAR_LEN)
                    .ok_or(DkgError::Malformed {
                        from,
                        reason: "dealing too short",
                    })?;
                let (pub_bytes, priv_bytes) = payload.split_at(split);
                let pub_msg =
                    DealerPubMsg::<MinSig>::decode_cfg(pub_bytes.to_vec(), &self.config.max())
                        .map_err(|_| DkgError::Malformed {
                            from,
                            reason: "bad commitment encoding",
                        })?;
                let priv_msg = DealerPrivMsg::decode(priv_bytes.to_vec())
                    .map_err(|_| DkgError::BadDealing { from })?;
                match self
                    .player
                    .dealer_message::<Majority>(dealer_pk, pub_msg, priv_msg)
                {
                    Ok(Some(ack)) => Ok(vec![Outgoing {
                        to: Recipient::Custodian(from),
                        bytes: frame(Message::Ack, &ack.encode()),
                    }]),
                    Ok(None) => Ok(Vec::new()),
                    Err(_) => Err(DkgError::BadDealing { from }),
                }
            }
            (Message::Ack, payload) => {
                let ack =
                    PlayerAck::<ed25519::PublicKey>::decode(payload.to_vec()).map_err(|_| {
                        DkgError::Malformed {
                            from,
                            reason: "bad acknowledgement encoding",
                        }
                    })?;
                self.dealer
                    .receive_player_ack(dealer_pk, ack)
                    .map_err(|_| DkgError::Malformed {
                        from,
                        reason: "acknowledgement does not verify",
                    })?;
                Ok(Vec::new())
            }
            (Message::Log, _) => Err(DkgError::Malformed {
                from,
                reason: "log received before the log round",
            }),
        }
    }

    /// Ends rounds 1–2 (when all acknowledgements arrived or their deadline
    /// passed): returns the next state and this dealer's signed log, to
    /// broadcast to every custodian, this one included (its own log counts
    /// only once the broadcast delivers it). Shares of custodians that did not acknowledge are revealed
    /// in the log.
    pub fn finish(self) -> (Finalizing, Outgoing) {
        let log = self.dealer.finalize::<Majority>();
        let out = Outgoing {
            to: Recipient::All,
            bytes: frame(Message::Log, &log.encode()),
        };
        // Our own log is not recorded here: it must come back through the
        // broadcast like everyone else's, so that all custodians finalize
        // over the same set of logs.
        let logs = Logs::<MinSig, ed25519::PublicKey, Majority>::new(self.config.info.clone());
        (
            Finalizing {
                config: self.config,
                me: self.me,
                player: self.player,
                logs,
                rng: self.rng,
            },
            out,
        )
    }
}

/// Rounds 3–4: collecting the dealers' logs, then finalizing.
pub struct Finalizing {
    config: DkgConfig,
    me: u32,
    player: Player<MinSig, Key>,
    logs: Logs<MinSig, ed25519::PublicKey, Majority>,
    rng: ChaCha20Rng,
}

impl Finalizing {
    /// Records a dealer's broadcast log. A log that is malformed, signed by
    /// someone else than `from`, or not for this round is refused; that
    /// dealer is then excluded.
    pub fn handle(&mut self, from: u32, bytes: &[u8]) -> Result<(), DkgError> {
        let expected = self.config.key_of(from)?.clone();
        match unframe(from, bytes)? {
            (Message::Log, payload) => {
                let signed = SignedDealerLog::<MinSig, ed25519::PublicKey>::decode_cfg(
                    payload.to_vec(),
                    &self.config.max(),
                )
                .map_err(|_| DkgError::Malformed {
                    from,
                    reason: "bad log encoding",
                })?;
                let (pk, log) = signed.check(&self.config.info).ok_or(DkgError::Malformed {
                    from,
                    reason: "log signature or round does not verify",
                })?;
                if pk != expected {
                    return Err(DkgError::Malformed {
                        from,
                        reason: "log signed by another custodian",
                    });
                }
                self.logs.record(pk, log);
                Ok(())
            }
            _ => Err(DkgError::Malformed {
                from,
                reason: "only logs are expected in this round",
            }),
        }
    }

    /// Computes the day key, this custodian's share and the transcript hash
    /// from the logs received. All honest custodians that received the same
    /// logs obtain the same day key and transcript hash.
    pub fn finalize(mut self) -> Result<DkgOutput, DkgError> {
        let (output, share) = self
            .player
            .finalize::<Majority>(&mut self.rng, self.logs, &Sequential)
            .map_err(|e| DkgError::Failed(e.to_string()))?;
        let public = convert_output(&self.config, &output)?;
        let index = share.index.get() + 1;
        if index != self.me {
            return Err(DkgError::Failed(
                "share index does not match custodian index".into(),
            ));
        }
        let scalar_bytes = Zeroizing::new(share.private.expose(|s| s.encode().to_vec()));
        let arr: Zeroizing<[u8; SCALAR_LEN]> = Zeroizing::new(
            scalar_bytes
                .as_slice()
                .try_into()
                .map_err(|_| DkgError::Failed("share encoding".into()))?,
        );
        let scalar =
            decode_scalar(&arr, "DKG share").map_err(|e| DkgError::Failed(e.to_string()))?;
        let share = SecretShare::from_scalar(index, &scalar);
        if public.day_key.verification_key(index) != Some(&share.verification_key()) {
            return Err(DkgError::Failed(
                "share does not match its verification key".into(),
            ));
        }
        Ok(DkgOutput { public, share })
    }
}

/// The public result of a DKG, identical at every honest custodian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicDkgOutput {
    /// The day key: master public key, verification keys, threshold.
    pub day_key: DayKey,
    /// SHA-256 over the domain and the encoded public output (round
    /// summary, public polynomial, qualified dealers, players, revealed
    /// shares). Custodians compare it, and log it with the day key.
    pub transcript_hash: [u8; 32],
    /// Indices of the qualified dealers whose polynomials make up the key.
    pub dealers: Vec<u32>,
    /// Indices of custodians whose share of some selected dealing was
    /// revealed in answer to a complaint.
    pub revealed: Vec<u32>,
}

/// What a custodian obtains from a successful DKG.
#[derive(Debug)]
pub struct DkgOutput {
    /// The public result.
    pub public: PublicDkgOutput,
    /// This custodian's secret share of the day's master secret.
    pub share: SecretShare,
}

fn convert_output(
    config: &DkgConfig,
    output: &Output<MinSig, ed25519::PublicKey>,
) -> Result<PublicDkgOutput, DkgError> {
    let fail = |e: crate::DecodeError| DkgError::Failed(e.to_string());
    let sharing = output.public();
    let master = decode_g2(&sharing.public().encode(), "DKG master key").map_err(fail)?;
    let mut vks = Vec::with_capacity(config.n());
    for i in 0..config.n() {
        let p = sharing
            .partial_public(Participant::new(u32::try_from(i).unwrap_or(u32::MAX)))
            .map_err(|_| DkgError::Failed("missing verification key".into()))?;
        vks.push(decode_g2(&p.encode(), "DKG verification key").map_err(fail)?);
    }
    let day_key = DayKey::new(config.day, config.threshold, master, vks).map_err(fail)?;
    let to_indices = |set: &Set<ed25519::PublicKey>| -> Vec<u32> {
        set.iter()
            .filter_map(|pk| key_bytes(pk).ok().and_then(|b| config.index_of(&b)))
            .collect()
    };
    let transcript_hash: [u8; 32] = Sha256::new()
        .chain_update(TRANSCRIPT_DOMAIN)
        .chain_update(output.encode())
        .finalize()
        .into();
    Ok(PublicDkgOutput {
        day_key,
        transcript_hash,
        dealers: to_indices(output.dealers()),
        revealed: to_indices(output.revealed()),
    })
}

fn key_bytes(pk: &ed25519::PublicKey) -> Result<[u8; 32], DkgError> {
    pk.encode()
        .as_ref()
        .try_into()
        .map_err(|_| DkgError::Config("unexpected Ed25519 public key length"))
}

mod run;
pub use run::{Phase, Transport, run};

#[cfg(test)]
mod tests;

/// The Ed25519 public key of a custodian's 32-byte signing key seed, as
/// listed in [`DkgConfig::new`].
pub fn public_key_of(signing_key: &[u8; 32]) -> Result<[u8; 32], DkgError> {
    let key = Key::decode(signing_key.to_vec())
        .map_err(|_| DkgError::Config("invalid Ed25519 signing key"))?;
    key_bytes(&key.public_key())
}
