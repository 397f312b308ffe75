//! Report v1: what a recipient reveals to the service to report a message.
//!
//! ```text
//! struct Report {
//!     u8     version = 1;
//!     opaque reason<0..1024>;             // u16 length, UTF-8, the reporter's words
//!     ReportedMessage message;            // the reported message
//!     ReportedMessage context<0..8>;      // u8 count; surrounding messages the reporter reveals
//! }
//! struct ReportedMessage {
//!     opaque conversation[16];            // claimed conversation
//!     opaque sender<1..64>;               // u8 length; claimed sender account
//!     u64    server_time;                 // claimed acceptance time, Unix ms
//!     opaque franking_key[32];            // revealed franking key
//!     opaque envelope<0..2^18>;           // u32 length; the envelope as delivered
//!     opaque payload<0..2^18>;            // u32 length; the decrypted payload, exactly as encoded
//!     opaque tag<0..MAX_DELIVERY_TAG_LEN>;// u16 length; the service's delivery tag
//! }
//! ```
//! The whole encoding is at most [`MAX_REPORT_LEN`] bytes.
//!
//! # Security meaning
//! Nothing in a report is trusted as sent: the verifier (custos-server's
//! `report` module) checks that the claims match the delivery tag, that the
//! tag is signed by the service's franking key over this envelope, and that
//! the envelope's franking commitment opens to this payload under this key.
//! The payload and franking key are secret until reported, so the types
//! zeroize them on drop.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::envelope::MAX_ENVELOPE_LEN;
use crate::ids::{ConversationId, read_account, read_version, write_account};
use crate::tag::MAX_DELIVERY_TAG_LEN;

/// Current report version.
pub const REPORT_VERSION: u8 = 1;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Most context messages in one report.
pub const MAX_CONTEXT: usize = 8;
/// Largest revealed payload (a payload never exceeds its envelope).
pub const MAX_REPORTED_PAYLOAD_LEN: usize = MAX_ENVELOPE_LEN;
/// Largest encoded report (4 MiB).
pub const MAX_REPORT_LEN: usize = 4 * 1024 * 1024;

/// One revealed message: what the reporter claims, and the evidence.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ReportedMessage {
    /// Claimed conversation.
    #[zeroize(skip)]
    pub conversation: ConversationId,
    /// Claimed sender account.
    pub sender: String,
    /// Claimed acceptance time, Unix ms.
    pub server_time: u64,
    /// The revealed per-message franking key. Secret until reported.
    pub franking_key: [u8; 32],
    /// The envelope exactly as delivered.
    pub envelope: Vec<u8>,
    /// The decrypted payload exactly as encoded. Secret until reported.
    pub payload: Vec<u8>,
    /// The encoded delivery tag.
    pub tag: Vec<u8>,
}

impl std::fmt::Debug for ReportedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedMessage")
            .field("conversation", &self.conversation)
            .field("sender", &self.sender)
            .field("server_time", &self.server_time)
            .field("envelope_len", &self.envelope.len())
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// A decoded report. Decoding checks form only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Why the reporter reports (free text, shown to moderators).
    pub reason: String,
    /// The reported message.
    pub message: ReportedMessage,
    /// Surrounding messages of the same conversation, chosen by the reporter.
    pub context: Vec<ReportedMessage>,
}

impl ReportedMessage {
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            conversation: ConversationId(r.field("conversation").array()?),
            sender: read_account(r)?.to_owned(),
            server_time: r.field("server_time").u64()?,
            franking_key: r.field("franking_key").array()?,
            envelope: r.field("envelope").bytes32(MAX_ENVELOPE_LEN)?.to_vec(),
            payload: r
                .field("payload")
                .bytes32(MAX_REPORTED_PAYLOAD_LEN)?
                .to_vec(),
            tag: r.field("tag").bytes16(MAX_DELIVERY_TAG_LEN)?.to_vec(),
        })
    }

    fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.conversation.0);
        write_account(w, &self.sender)?;
        w.u64(self.server_time).raw(&self.franking_key);
        w.bytes32("envelope", &self.envelope, MAX_ENVELOPE_LEN)?;
        w.bytes32("payload", &self.payload, MAX_REPORTED_PAYLOAD_LEN)?;
        w.bytes16("tag", &self.tag, MAX_DELIVERY_TAG_LEN)?;
        Ok(())
    }
}

impl Report {
    /// Decodes a canonical report, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_REPORT_LEN {
            return Err(WireError::TooLong {
                field: "report",
                max: MAX_REPORT_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        read_version(&mut r, "report", REPORT_VERSION)?;
        let reason = r.field("reason").str16(MAX_REASON_LEN)?.to_owned();
        let message = ReportedMessage::read(&mut r)?;
        let count = usize::from(r.field("context").u8()?);
        if count > MAX_CONTEXT {
            return Err(WireError::TooLong {
                field: "context",
                max: MAX_CONTEXT,
            });
        }
        let mut context = Vec::with_capacity(count);
        for _ in 0..count {
            context.push(ReportedMessage::read(&mut r)?);
        }
        r.finish()?;
        Ok(Self {
            reason,
            message,
            context,
        })
    }

    /// The canonical encoding. Secret (it holds payloads): the caller
    /// zeroizes it after use.
    pub fn encode(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, WireError> {
        let count = u8::try_from(self.context.len())
            .ok()
            .filter(|n| usize::from(*n) <= MAX_CONTEXT)
            .ok_or(WireError::TooLong {
                field: "context",
                max: MAX_CONTEXT,
            })?;
        let mut w =
            Writer::with_capacity(1024 + self.message.envelope.len() + self.message.payload.len());
        w.u8(REPORT_VERSION);
        w.bytes16("reason", self.reason.as_bytes(), MAX_REASON_LEN)?;
        self.message.write(&mut w)?;
        w.u8(count);
        for m in &self.context {
            m.write(&mut w)?;
        }
        let bytes = zeroize::Zeroizing::new(w.into_bytes());
        if bytes.len() > MAX_REPORT_LEN {
            return Err(WireError::TooLong {
                field: "report",
                max: MAX_REPORT_LEN,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> ReportedMessage {
        ReportedMessage {
            conversation: ConversationId([n; 16]),
            sender: "bob".into(),
            server_time: 1_795_000_000_000 + u64::from(n),
            franking_key: [n; 32],
            envelope: vec![1, n, 3],
            payload: vec![4, 5, n],
            tag: vec![7; 10],
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let rep = Report {
            reason: "threats".into(),
            message: msg(1),
            context: vec![msg(2), msg(3)],
        };
        let bytes = rep.encode().unwrap();
        assert_eq!(Report::decode(&bytes).unwrap(), rep);
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(matches!(
            Report::decode(&trailing),
            Err(WireError::TrailingBytes { count: 1 })
        ));
        let mut v9 = bytes.to_vec();
        v9[0] = 9;
        assert!(matches!(
            Report::decode(&v9),
            Err(WireError::UnsupportedVersion { version: 9, .. })
        ));
        for n in 0..bytes.len() {
            assert!(Report::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let too_many = Report {
            reason: String::new(),
            message: msg(1),
            context: (0..=MAX_CONTEXT as u8).map(msg).collect(),
        };
        assert!(matches!(
            too_many.encode(),
            Err(WireError::TooLong {
                field: "context",
                ..
            })
        ));
        let long_reason = Report {
            reason: "x".repeat(MAX_REASON_LEN + 1),
            message: msg(1),
            context: vec![],
        };
        assert!(long_reason.encode().is_err());
    }
}
