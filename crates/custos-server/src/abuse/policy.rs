//! The seam where acceptance policy plugs in: account suspension (moderation)
//! and delivery tags (message franking, DESIGN.md §5).
//!
//! The service calls [`DeliveryPolicy::admit`] on the request path before it
//! accepts anything an account sends (items and commits). The single writer
//! calls [`DeliveryPolicy::tag_batch`] once per batch, with the submissions
//! of the batch that passed the membership and replay checks, before it
//! stores them: the tag is stored with the item in the same transaction,
//! returned in `Accepted` (after the commit, like every answer of the writer)
//! and pushed in every `Delivery` of it. Commits and Welcomes get no tag.

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

/// A refusal from [`DeliveryPolicy::admit`]; answered as `403` with the
/// code [`AdmitRefusal::code`] (the variant's name in snake case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum AdmitRefusal {
    /// A moderator suspended the account: until `until` (Unix ms), or for
    /// good when `None`.
    #[error("{}", suspended_message(account, *until))]
    Suspended {
        /// The account.
        account: String,
        /// End of the suspension, Unix ms; `None` is permanent.
        until: Option<u64>,
    },
}

impl AdmitRefusal {
    /// The wire code, e.g. `suspended`.
    pub fn code(&self) -> &'static str {
        self.into()
    }
}

fn suspended_message(account: &str, until: Option<u64>) -> String {
    match until {
        None => format!(
            "account {account} is suspended permanently for violating the terms of service; \
             it cannot send"
        ),
        Some(t) => format!(
            "account {account} is suspended until {t} (Unix ms) for violating the terms of \
             service; it can send again after that"
        ),
    }
}

/// Admission and tagging hook.
///
/// Contract: `admit` runs on the request path of every submission and
/// `tag_batch` inside the single writer, once per batch, so both must be fast
/// and must not block (keep an in-memory view of suspensions and sign with
/// an in-memory key); a slow `tag_batch` delays every submission of the
/// batch. Neither may panic. `tag_batch` returns exactly one tag per input,
/// in input order (empty for an item that gets none); an answer of another
/// length fails every submission of the call with a 500, and a tag longer
/// than `custos_wire::frames::MAX_TAG_LEN` fails its submission with a 500,
/// rather than store something undeliverable.
pub trait DeliveryPolicy: Send + Sync + std::fmt::Debug + 'static {
    /// May `sender` send now? `Err` refuses the item or commit with 403.
    fn admit(&self, sender: &Sender<'_>) -> Result<(), AdmitRefusal>;

    /// The delivery tags of a batch of accepted items (one per input, empty
    /// for none).
    fn tag_batch(&self, inputs: &[TagInput<'_>]) -> Vec<Vec<u8>>;
}

/// The default policy: everyone may send, no tags. A service without a
/// franking key runs it (it then takes no reports); `custos server` installs
/// the [`FrankingPolicy`](crate::FrankingPolicy) instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenPolicy;

impl DeliveryPolicy for OpenPolicy {
    fn admit(&self, _sender: &Sender<'_>) -> Result<(), AdmitRefusal> {
        Ok(())
    }

    fn tag_batch(&self, inputs: &[TagInput<'_>]) -> Vec<Vec<u8>> {
        vec![Vec::new(); inputs.len()]
    }
}
