//! The checks every submitted item passes before it reaches the writer,
//! shared by the HTTP endpoint and the WebSocket.

use axum::body::Bytes;
use custos_wire::ConversationId;
use custos_wire::announcement::{
    ChainAnnouncement, MAX_ANNOUNCEMENT_MLS_LEN, MAX_ESCROW_CAPSULE_LEN,
};
use custos_wire::envelope::{Envelope, MAX_ENVELOPE_LEN};
use custos_wire::frames::ItemKind;
use openmls::prelude::ContentType;
use sha2::{Digest, Sha256};

use crate::delivery::auth::Authed;
use crate::delivery::public_state::parse_handshake;
use crate::delivery::writer::NewItem;
use crate::error::HttpRefusal;
use crate::refusal::{RequestRefusal, SubmitRefusal};
use crate::state::AppState;

/// Largest encoded chain announcement: header, escrow capsule and MLS message
/// at their bounds.
pub(crate) const MAX_ANNOUNCEMENT_LEN: usize =
    1 + 16 + 20 + 1 + 2 + MAX_ESCROW_CAPSULE_LEN + 4 + MAX_ANNOUNCEMENT_MLS_LEN;

/// Refuses the sender if the policy says so (403 with the policy's code).
pub(crate) fn admit(state: &AppState, auth: &Authed) -> Result<(), SubmitRefusal> {
    state
        .config
        .policy
        .admit(&auth.sender())
        .map_err(SubmitRefusal::Policy)
}

/// Checks a submission and builds the item to store:
/// - the sender is admitted by the policy;
/// - the body decodes as an Envelope (kind 1), a ChainAnnouncement
///   (kind 2) or an MLS proposal `PublicMessage` (kind 5); commits and
///   Welcomes must use the commit endpoint;
/// - its conversation is the one it is submitted to;
/// - its chain's day is today or yesterday on the service clock.
///
/// Membership, replays and a proposal's epoch (it must be the
/// conversation's current one, else `409 stale_epoch`) are checked by the
/// writer, in order with commits.
pub(crate) fn prepare(
    state: &AppState,
    auth: &Authed,
    kind: ItemKind,
    conversation: ConversationId,
    body: Vec<u8>,
) -> Result<NewItem, HttpRefusal> {
    admit(state, auth)?;
    let max = match kind {
        ItemKind::Announcement => MAX_ANNOUNCEMENT_LEN,
        _ => MAX_ENVELOPE_LEN,
    };
    if body.len() > max {
        return Err(RequestRefusal::TooLarge(format!(
            "the item is {} bytes; the limit is {max}",
            body.len()
        ))
        .into());
    }
    let mut epoch = None;
    let (inner_conv, day, franking) = match kind {
        ItemKind::Envelope => {
            let env = Envelope::decode(&body).map_err(|e| RequestRefusal::wire("envelope", &e))?;
            (
                env.header.conversation,
                env.header.chain.day,
                Some(env.header.franking_commitment),
            )
        }
        ItemKind::Announcement => {
            let a = ChainAnnouncement::decode(&body)
                .map_err(|e| RequestRefusal::wire("chain announcement", &e))?;
            (a.conversation, a.chain.day, None)
        }
        ItemKind::Proposal => {
            // Verified against the group's public state by the writer, in
            // order with commits; here only its form, group and epoch.
            let h = parse_handshake(&body, &conversation, ContentType::Proposal)?;
            epoch = Some(h.epoch);
            (conversation, state.clock.today(), None)
        }
        ItemKind::Commit | ItemKind::Welcome => {
            return Err(SubmitRefusal::WrongKind(
                "commits and Welcomes go to POST /v1/conversations/{id}/commits",
            )
            .into());
        }
    };
    if inner_conv != conversation {
        return Err(SubmitRefusal::ConversationMismatch(format!(
            "the item belongs to conversation {inner_conv}, not {conversation}"
        ))
        .into());
    }
    // The acceptance time the delivery tag will bind; the writer issues the
    // tag itself, with the rest of its batch.
    let server_time = state.clock.now_millis();
    if !day_accepted(day, server_time, state.config.day_grace) {
        let today = u32::try_from(server_time / MILLIS_PER_DAY).unwrap_or(u32::MAX);
        return Err(SubmitRefusal::WrongDay { day, today }.into());
    }
    let hash: [u8; 32] = Sha256::digest(&body).into();
    Ok(NewItem {
        kind,
        conversation,
        sender_account: auth.account_id,
        sender_device: auth.device_id,
        sender_name: auth.name.clone(),
        server_time,
        expires_at: expiry(state, server_time),
        hash: Some(hash),
        epoch,
        franking_commitment: franking,
        tag: Vec::new(),
        body: Bytes::from(body),
    })
}

/// When an item accepted at `server_time` expires.
const MILLIS_PER_DAY: u64 = 86_400_000;

/// One day key opens one day: a chain of `day` is accepted at `now_ms` only
/// on that day, or on the next day within `grace` after midnight.
pub(crate) fn day_accepted(day: u32, now_ms: u64, grace: std::time::Duration) -> bool {
    let today = now_ms / MILLIS_PER_DAY;
    let since_midnight = now_ms % MILLIS_PER_DAY;
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let day = u64::from(day);
    day == today || (day.saturating_add(1) == today && since_midnight < grace_ms)
}

pub(crate) fn expiry(state: &AppState, server_time: u64) -> u64 {
    let ttl = u64::try_from(state.config.retention.as_millis()).unwrap_or(u64::MAX);
    server_time.saturating_add(ttl)
}

#[cfg(test)]
mod day_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn yesterday_only_within_the_grace() {
        let grace = Duration::from_secs(600);
        let d = 20_000u32;
        let midnight = u64::from(d + 1) * MILLIS_PER_DAY;
        assert!(day_accepted(d, midnight - 1, grace));
        assert!(day_accepted(d, midnight, grace));
        assert!(day_accepted(d, midnight + 599_999, grace));
        assert!(!day_accepted(d, midnight + 600_000, grace));
        assert!(!day_accepted(d, midnight + MILLIS_PER_DAY - 1, grace));
        assert!(day_accepted(d + 1, midnight + 600_000, grace));
        assert!(!day_accepted(d + 2, midnight, grace));
        assert!(!day_accepted(d, midnight + MILLIS_PER_DAY, grace));
        assert!(!day_accepted(d, midnight, Duration::ZERO));
    }
}
