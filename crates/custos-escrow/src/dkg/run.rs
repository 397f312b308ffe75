//! A driver that runs one custodian's DKG over an abstract transport.

use rand_core::{CryptoRng, RngCore};

use super::{Dealing, DkgConfig, DkgError, DkgOutput, Outgoing, Recipient};

/// The rounds of the protocol, as the transport sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Dealings travel, privately, dealer to player.
    Deal,
    /// Acknowledgements travel, privately, player to dealer.
    Ack,
    /// Signed dealer logs are broadcast.
    Log,
}

/// A bytes-in, bytes-out message transport between custodians (for
/// example HTTP between custodian services, or channels in a test).
///
/// Contract: `send` delivers privately and authenticated to one custodian;
/// `broadcast` delivers the same bytes to every custodian, the sender
/// included, and all honest custodians must end up with the same set of
/// broadcast messages;
/// `collect` blocks until `phase` is over (every expected message arrived,
/// or the phase's deadline passed) and returns the messages received in it,
/// each with the authenticated sender's index.
pub trait Transport {
    /// The transport's own error.
    type Error: std::fmt::Display;
    /// Sends `bytes` privately to custodian `to`.
    fn send(&mut self, to: u32, bytes: Vec<u8>) -> Result<(), Self::Error>;
    /// Sends `bytes` to every custodian.
    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<(), Self::Error>;
    /// Returns the messages received during `phase`, once it is over.
    fn collect(&mut self, phase: Phase) -> Result<Vec<(u32, Vec<u8>)>, Self::Error>;
}

/// Runs this custodian's side of the DKG of `config` to completion.
///
/// Invalid dealings are complained about (no acknowledgement) and invalid
/// messages are ignored: a misbehaving custodian cannot stop the others, as
/// long as at least `t` dealers behave. Returns the day key, this
/// custodian's share and the transcript hash.
pub fn run<T: Transport, R: RngCore + CryptoRng>(
    config: &DkgConfig,
    signing_key: &[u8; 32],
    transport: &mut T,
    rng: &mut R,
) -> Result<DkgOutput, DkgError> {
    let err = |e: T::Error| DkgError::Transport(e.to_string());
    let (mut dealing, outgoing) = Dealing::start(config, signing_key, rng)?;
    deliver(transport, outgoing).map_err(err)?;
    for (from, bytes) in transport.collect(Phase::Deal).map_err(err)? {
        // A bad dealing yields no acknowledgement: that is the complaint.
        if let Ok(acks) = dealing.handle(from, &bytes) {
            deliver(transport, acks).map_err(err)?;
        }
    }
    for (from, bytes) in transport.collect(Phase::Ack).map_err(err)? {
        // An invalid acknowledgement counts as none: the share is revealed.
        let _ = dealing.handle(from, &bytes);
    }
    let (mut finalizing, log) = dealing.finish();
    deliver(transport, vec![log]).map_err(err)?;
    for (from, bytes) in transport.collect(Phase::Log).map_err(err)? {
        // An invalid log excludes its dealer.
        let _ = finalizing.handle(from, &bytes);
    }
    finalizing.finalize()
}

fn deliver<T: Transport>(transport: &mut T, messages: Vec<Outgoing>) -> Result<(), T::Error> {
    for m in messages {
        match m.to {
            Recipient::Custodian(to) => transport.send(to, m.bytes)?,
            Recipient::All => transport.broadcast(m.bytes)?,
        }
    }
    Ok(())
}
