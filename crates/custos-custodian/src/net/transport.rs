//! The escrow crate's DKG [`Transport`] over HTTP between custodian services.
//!
//! `send` seals and signs one envelope and posts it to the recipient's
//! `POST /v1/dkg/message`; `broadcast` signs a clear envelope and posts it
//! to every other custodian, and files it in this custodian's own inbox.
//! Posts run in the background: a custodian that is down costs nothing but
//! its missing messages. `collect` waits in the [`Inbox`] until every
//! expected message of the phase arrived or the phase deadline passed.
//!
//! Broadcast consistency rests on every custodian posting its log to every
//! other one within the phase; custodians then compare the transcript hash
//! implicitly, because devices accept a day key only when `t` custodians
//! published the same bytes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use custos_escrow::dkg::{DkgConfig, Phase, Transport};

use super::envelope;
use super::inbox::Inbox;
use crate::keys::CustodianKey;

/// Path of the DKG message endpoint.
pub const DKG_PATH: &str = "/v1/dkg/message";

/// A peer custodian this one can reach.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Base URL of its service.
    pub endpoint: String,
    /// Its X25519 HPKE public key, from the log.
    pub hpke: [u8; 32],
}

/// Why the transport failed (only on internal errors: unreachable peers
/// are not errors, their messages are simply missing).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

/// One custodian's transport for the DKG of one day.
pub struct HttpTransport<'a> {
    /// This custodian's keys.
    pub key: &'a CustodianKey,
    /// The DKG's configuration (custodian numbering).
    pub config: &'a DkgConfig,
    /// Reachable peers, by Ed25519 key.
    pub peers: &'a HashMap<[u8; 32], Peer>,
    /// Where received messages wait.
    pub inbox: &'a Inbox,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Runtime on which posts run.
    pub runtime: tokio::runtime::Handle,
    /// How long a phase waits for missing messages.
    pub phase_timeout: Duration,
}

impl HttpTransport<'_> {
    fn post(&self, endpoint: &str, body: Vec<u8>) {
        let url = format!("{}{DKG_PATH}", endpoint.trim_end_matches('/'));
        let http = self.http.clone();
        let timeout = self.phase_timeout;
        self.runtime.spawn(async move {
            let sent = http.post(&url).timeout(timeout).body(body).send().await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::debug!(%url, status = %r.status(), "DKG message refused"),
                Err(e) => tracing::debug!(%url, error = %e, "DKG message not delivered"),
            }
        });
    }

    fn key_of(&self, index: u32) -> Result<[u8; 32], TransportError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.config.custodians().get(i))
            .copied()
            .ok_or_else(|| TransportError(format!("no custodian {index}")))
    }
}

impl Transport for HttpTransport<'_> {
    type Error = TransportError;

    fn send(&mut self, to: u32, bytes: Vec<u8>) -> Result<(), TransportError> {
        let pk = self.key_of(to)?;
        // The escrow crate's frame: version, kind (1 dealing, 2 ack), payload.
        let phase = match bytes.get(1) {
            Some(1) => Phase::Deal,
            Some(2) => Phase::Ack,
            _ => return Err(TransportError("unexpected private message kind".into())),
        };
        let Some(peer) = self.peers.get(&pk) else {
            tracing::warn!(to, "no HPKE key or endpoint for custodian; message dropped");
            return Ok(());
        };
        let env = envelope::seal(self.key, self.config.day(), phase, &pk, &peer.hpke, &bytes)
            .map_err(|e| TransportError(e.to_string()))?;
        self.post(&peer.endpoint, env);
        Ok(())
    }

    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        let env = envelope::broadcast(self.key, self.config.day(), &bytes)
            .map_err(|e| TransportError(e.to_string()))?;
        let me = self.key.public_key();
        for (pk, peer) in self.peers {
            if *pk != me {
                self.post(&peer.endpoint, env.clone());
            }
        }
        self.inbox.push(
            self.config.day(),
            Phase::Log,
            me,
            zeroize::Zeroizing::new(bytes),
        );
        Ok(())
    }

    fn collect(&mut self, phase: Phase) -> Result<Vec<(u32, Vec<u8>)>, TransportError> {
        let n = self.config.n();
        let expected = match phase {
            Phase::Deal | Phase::Ack => n.saturating_sub(1),
            Phase::Log => n,
        };
        let deadline = Instant::now() + self.phase_timeout;
        let got = self
            .inbox
            .collect(self.config.day(), phase, expected, deadline);
        Ok(got
            .into_iter()
            .filter_map(|(pk, bytes)| {
                self.config
                    .index_of(&pk)
                    .map(|i| (i, bytes.as_slice().to_vec()))
            })
            .collect())
    }
}
