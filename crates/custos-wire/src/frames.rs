//! Delivery-service frames v1: what flows over the mailbox WebSocket and the
//! binary HTTP endpoints.
//!
//! ```text
//! struct ClientFrame {                // client -> service
//!     u8 version = 1;
//!     u8 kind;                        // 1 = submit, 2 = ack
//!     select (kind) {
//!       case submit: u64 request_id; u8 item_kind; opaque conversation[16];
//!                    opaque body<0..2^32-1>;          // u32 length, <= MAX_ITEM_BODY_LEN
//!       case ack:    u64 seqs<1..1024>;               // u16 count
//!     }
//! }
//! struct ServerFrame {                // service -> client
//!     u8 version = 1;
//!     u8 kind;                        // 1 = delivery, 2 = accepted, 3 = refused
//!     select (kind) {
//!       case delivery: Delivery;
//!       case accepted: u64 request_id; u64 server_time; opaque tag<0..2048>;  // u16 length
//!       case refused:  u64 request_id; u16 status; opaque reason<0..1024>;    // u16 length, UTF-8
//!     }
//! }
//! struct Delivery {
//!     u64    seq;                     // position in the recipient's mailbox
//!     u8     item_kind;               // 1 envelope, 2 chain announcement, 3 commit, 4 welcome
//!     opaque conversation[16];
//!     opaque sender<1..64>;           // u8 length; account name
//!     u64    server_time;             // Unix milliseconds, service clock
//!     opaque body<0..2^32-1>;         // u32 length, <= MAX_ITEM_BODY_LEN
//!     opaque tag<0..2048>;            // u16 length; delivery tag, empty if none
//! }
//! ```

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::envelope::MAX_ENVELOPE_LEN;
use crate::ids::{ConversationId, read_account, read_version, write_account};

/// Current frame version.
pub const FRAME_VERSION: u8 = 1;
/// Largest item body: an envelope, or an MLS commit or Welcome.
pub const MAX_ITEM_BODY_LEN: usize = MAX_ENVELOPE_LEN;
/// Largest delivery tag.
pub const MAX_TAG_LEN: usize = 2048;
/// Most sequence numbers acknowledged in one frame.
pub const MAX_ACKS: usize = 1024;
/// Largest refusal reason.
pub const MAX_REASON_LEN: usize = 1024;

/// What a mailbox item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// An [`crate::envelope::Envelope`].
    Envelope,
    /// A [`crate::announcement::ChainAnnouncement`].
    Announcement,
    /// An MLS commit (serialized `MlsMessageOut`).
    Commit,
    /// An MLS Welcome (serialized `MlsMessageOut`).
    Welcome,
    /// An MLS proposal (a `PrivateMessage`): for now only a member's own
    /// removal, which another member then commits (leaving a conversation).
    Proposal,
}

impl ItemKind {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            ItemKind::Envelope => 1,
            ItemKind::Announcement => 2,
            ItemKind::Commit => 3,
            ItemKind::Welcome => 4,
            ItemKind::Proposal => 5,
        }
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Result<Self, WireError> {
        match b {
            1 => Ok(ItemKind::Envelope),
            2 => Ok(ItemKind::Announcement),
            3 => Ok(ItemKind::Commit),
            4 => Ok(ItemKind::Welcome),
            5 => Ok(ItemKind::Proposal),
            _ => Err(WireError::InvalidValue {
                field: "item_kind",
                reason: "unknown item kind",
            }),
        }
    }
}

/// One item in a recipient's mailbox, as pushed or fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Position in the recipient's mailbox; acked by this number.
    pub seq: u64,
    /// What `body` holds.
    pub kind: ItemKind,
    /// Conversation it belongs to.
    pub conversation: ConversationId,
    /// Authenticated account that submitted it (the service vouches for this).
    pub sender: String,
    /// Service time of acceptance, Unix milliseconds.
    pub server_time: u64,
    /// The item.
    pub body: Vec<u8>,
    /// The service's delivery tag, empty if none.
    pub tag: Vec<u8>,
}

impl Delivery {
    fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.u64(self.seq)
            .u8(self.kind.to_byte())
            .raw(&self.conversation.0);
        write_account(w, &self.sender)?;
        w.u64(self.server_time);
        w.bytes32("body", &self.body, MAX_ITEM_BODY_LEN)?;
        w.bytes16("tag", &self.tag, MAX_TAG_LEN)?;
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            seq: r.field("seq").u64()?,
            kind: ItemKind::from_byte(r.field("item_kind").u8()?)?,
            conversation: ConversationId(r.field("conversation").array()?),
            sender: read_account(r)?.to_owned(),
            server_time: r.field("server_time").u64()?,
            body: r.field("body").bytes32(MAX_ITEM_BODY_LEN)?.to_vec(),
            tag: r.field("tag").bytes16(MAX_TAG_LEN)?.to_vec(),
        })
    }
}

/// A frame from a client to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Submit an envelope or chain announcement for delivery.
    Submit {
        /// Chosen by the client; echoed in the reply.
        request_id: u64,
        /// Envelope or announcement (commits and Welcomes go over HTTP).
        kind: ItemKind,
        /// Conversation to deliver to.
        conversation: ConversationId,
        /// The encoded item.
        body: Vec<u8>,
    },
    /// Acknowledge mailbox items; the service may then delete them.
    Ack {
        /// Mailbox sequence numbers (1 to 1024).
        seqs: Vec<u64>,
    },
}

impl ClientFrame {
    /// Decodes a canonical client frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        read_version(&mut r, "client frame", FRAME_VERSION)?;
        let frame = match r.field("kind").u8()? {
            1 => ClientFrame::Submit {
                request_id: r.field("request_id").u64()?,
                kind: ItemKind::from_byte(r.field("item_kind").u8()?)?,
                conversation: ConversationId(r.field("conversation").array()?),
                body: r.field("body").bytes32(MAX_ITEM_BODY_LEN)?.to_vec(),
            },
            2 => {
                let count = usize::from(r.field("seqs").u16()?);
                if count == 0 || count > MAX_ACKS {
                    return Err(WireError::InvalidValue {
                        field: "seqs",
                        reason: "between 1 and 1024 sequence numbers per ack",
                    });
                }
                let mut seqs = Vec::with_capacity(count);
                for _ in 0..count {
                    seqs.push(r.field("seq").u64()?);
                }
                ClientFrame::Ack { seqs }
            }
            _ => {
                return Err(WireError::InvalidValue {
                    field: "kind",
                    reason: "unknown client frame kind",
                });
            }
        };
        r.finish()?;
        Ok(frame)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::new();
        w.u8(FRAME_VERSION);
        match self {
            ClientFrame::Submit {
                request_id,
                kind,
                conversation,
                body,
            } => {
                w.u8(1)
                    .u64(*request_id)
                    .u8(kind.to_byte())
                    .raw(&conversation.0);
                w.bytes32("body", body, MAX_ITEM_BODY_LEN)?;
            }
            ClientFrame::Ack { seqs } => {
                if seqs.is_empty() || seqs.len() > MAX_ACKS {
                    return Err(WireError::InvalidValue {
                        field: "seqs",
                        reason: "between 1 and 1024 sequence numbers per ack",
                    });
                }
                // Bounded by MAX_ACKS above.
                w.u8(2)
                    .u16(u16::try_from(seqs.len()).map_err(|_| WireError::TooLong {
                        field: "seqs",
                        max: MAX_ACKS,
                    })?);
                for s in seqs {
                    w.u64(*s);
                }
            }
        }
        Ok(w.into_bytes())
    }
}

/// A frame from the service to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// A mailbox item.
    Delivery(Delivery),
    /// A submission is durably stored and will be delivered.
    Accepted {
        /// The client's request id.
        request_id: u64,
        /// Service time of acceptance, Unix milliseconds.
        server_time: u64,
        /// The delivery tag issued for it, empty if none.
        tag: Vec<u8>,
    },
    /// A submission was refused and nothing was stored.
    Refused {
        /// The client's request id.
        request_id: u64,
        /// An HTTP-style status code (4xx: the client's fault, 5xx: the service's).
        status: u16,
        /// Why, in words.
        reason: String,
    },
}

impl ServerFrame {
    /// Decodes a canonical server frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        read_version(&mut r, "server frame", FRAME_VERSION)?;
        let frame = match r.field("kind").u8()? {
            1 => ServerFrame::Delivery(Delivery::read(&mut r)?),
            2 => ServerFrame::Accepted {
                request_id: r.field("request_id").u64()?,
                server_time: r.field("server_time").u64()?,
                tag: r.field("tag").bytes16(MAX_TAG_LEN)?.to_vec(),
            },
            3 => ServerFrame::Refused {
                request_id: r.field("request_id").u64()?,
                status: r.field("status").u16()?,
                reason: r.field("reason").str16(MAX_REASON_LEN)?.to_owned(),
            },
            _ => {
                return Err(WireError::InvalidValue {
                    field: "kind",
                    reason: "unknown server frame kind",
                });
            }
        };
        r.finish()?;
        Ok(frame)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::new();
        w.u8(FRAME_VERSION);
        match self {
            ServerFrame::Delivery(d) => {
                w.u8(1);
                d.write(&mut w)?;
            }
            ServerFrame::Accepted {
                request_id,
                server_time,
                tag,
            } => {
                w.u8(2).u64(*request_id).u64(*server_time);
                w.bytes16("tag", tag, MAX_TAG_LEN)?;
            }
            ServerFrame::Refused {
                request_id,
                status,
                reason,
            } => {
                w.u8(3).u64(*request_id).u16(*status);
                w.bytes16("reason", reason.as_bytes(), MAX_REASON_LEN)?;
            }
        }
        Ok(w.into_bytes())
    }
}

/// Encodes a list of deliveries for the HTTP fetch endpoint: a u32 count then
/// each delivery as a server frame with a u32 length prefix.
pub fn encode_delivery_batch(items: &[Delivery]) -> Result<Vec<u8>, WireError> {
    let mut w = Writer::new();
    w.u32(u32::try_from(items.len()).map_err(|_| WireError::TooLong {
        field: "deliveries",
        max: MAX_BATCH,
    })?);
    for d in items {
        let frame = ServerFrame::Delivery(d.clone()).encode()?;
        w.bytes32("delivery", &frame, MAX_ITEM_BODY_LEN + 4096)?;
    }
    Ok(w.into_bytes())
}

/// Most deliveries in one fetch response.
pub const MAX_BATCH: usize = 4096;

/// Decodes the output of [`encode_delivery_batch`].
pub fn decode_delivery_batch(bytes: &[u8]) -> Result<Vec<Delivery>, WireError> {
    let mut r = Reader::new(bytes);
    let count = usize::try_from(r.field("deliveries").u32()?).unwrap_or(usize::MAX);
    if count > MAX_BATCH {
        return Err(WireError::TooLong {
            field: "deliveries",
            max: MAX_BATCH,
        });
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let frame = r.field("delivery").bytes32(MAX_ITEM_BODY_LEN + 4096)?;
        match ServerFrame::decode(frame)? {
            ServerFrame::Delivery(d) => out.push(d),
            _ => {
                return Err(WireError::InvalidValue {
                    field: "delivery",
                    reason: "batch holds a frame that is not a delivery",
                });
            }
        }
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            seq: 42,
            kind: ItemKind::Envelope,
            conversation: ConversationId([5; 16]),
            sender: "alice".into(),
            server_time: 1_800_000_000_000,
            body: vec![1, 2, 3],
            tag: vec![],
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            ServerFrame::Delivery(delivery()),
            ServerFrame::Accepted {
                request_id: 7,
                server_time: 9,
                tag: vec![1; 100],
            },
            ServerFrame::Refused {
                request_id: 7,
                status: 413,
                reason: "too large".into(),
            },
        ];
        for f in frames {
            assert_eq!(ServerFrame::decode(&f.encode().unwrap()).unwrap(), f);
        }
        let c = ClientFrame::Ack {
            seqs: vec![1, 2, 3],
        };
        assert_eq!(ClientFrame::decode(&c.encode().unwrap()).unwrap(), c);
        assert!(ClientFrame::Ack { seqs: vec![] }.encode().is_err());
        let batch = vec![delivery(), delivery()];
        assert_eq!(
            decode_delivery_batch(&encode_delivery_batch(&batch).unwrap()).unwrap(),
            batch
        );
    }

    #[test]
    fn bad_sender_name_is_refused() {
        let mut d = delivery();
        d.sender = "Alice".into();
        assert!(ServerFrame::Delivery(d).encode().is_err());
    }
}
