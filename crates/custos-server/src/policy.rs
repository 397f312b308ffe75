//! The seam where acceptance policy plugs in: account suspension (moderation)
//! and delivery tags (message franking, DESIGN.md §5).
//!
//! The service calls [`DeliveryPolicy::admit`] before it accepts anything an
//! account sends (items and commits), and [`DeliveryPolicy::tag`] once per
//! accepted item, before the item is stored. The tag is stored with the item,
//! returned in `Accepted` and pushed in every `Delivery` of it.

use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;

/// Who is sending, as the service authenticated them.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// Account row id.
    pub account_id: i64,
    /// Account name.
    pub name: &'a str,
    /// Device row id.
    pub device_id: i64,
}

/// What a delivery tag may bind, fixed before the item is stored.
#[derive(Debug, Clone, Copy)]
pub struct TagInput<'a> {
    /// What the item is.
    pub kind: ItemKind,
    /// Conversation it is delivered in.
    pub conversation: ConversationId,
    /// Authenticated sender account.
    pub sender: &'a str,
    /// Acceptance time (Unix ms, service clock), as delivered.
    pub server_time: u64,
    /// SHA-256 of the item body exactly as received.
    pub item_hash: &'a [u8; 32],
    /// The envelope's franking commitment (envelopes only).
    pub franking_commitment: Option<&'a [u8; 32]>,
}

/// A refusal from [`DeliveryPolicy::admit`]; answered as `403 {code}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable code, e.g. `suspended`.
    pub code: &'static str,
    /// What the user is told.
    pub message: String,
}

/// Admission and tagging hook.
///
/// Contract: both methods are called on the request path of every submission,
/// so they must be fast and must not block (keep an in-memory view of
/// suspensions and sign with an in-memory key). They must not panic. A tag
/// longer than `custos_wire::frames::MAX_TAG_LEN` makes the submission fail
/// with a 500 rather than store something undeliverable.
pub trait DeliveryPolicy: Send + Sync + std::fmt::Debug + 'static {
    /// May `sender` send now? `Err` refuses the item or commit with 403.
    fn admit(&self, sender: &Sender<'_>) -> Result<(), Refusal>;

    /// The delivery tag of an accepted item (empty for none).
    fn tag(&self, input: &TagInput<'_>) -> Vec<u8>;
}

/// The default policy: everyone may send, no tags. Used until moderation and
/// franking land.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenPolicy;

impl DeliveryPolicy for OpenPolicy {
    fn admit(&self, _sender: &Sender<'_>) -> Result<(), Refusal> {
        Ok(())
    }

    fn tag(&self, _input: &TagInput<'_>) -> Vec<u8> {
        Vec::new()
    }
}
