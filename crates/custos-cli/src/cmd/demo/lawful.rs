//! The lawful-access steps (DESIGN.md §4): every chain escrowed to the day's
//! key, a court's warrant committed to the log, an unlogged warrant refused
//! by every custodian, a release by three of five custodians that opens
//! exactly the warranted conversation-day, and two custodians who cannot.

use anyhow::{Context as _, Result};
use custos_authority::CollectError;
use custos_authority::collect::{Collected, CustodianAnswer};
use custos_authority::submit::SubmittedWarrant;
use custos_escrow::{Capsule, DayKey};
use custos_wire::announcement::{ChainAnnouncement, EscrowKind};
use custos_wire::frames::ItemKind;
use custos_wire::release::ConversationDay;
use custos_wire::{ChainId, ConversationId};

use super::Demo;
use super::messaging::Users;

/// A conversation whose chain was escrowed, as the provider stores it.
pub(super) struct Escrowed {
    conversation: ConversationId,
    chain: ChainId,
    capsule: Capsule,
    day_key: DayKey,
}

impl Escrowed {
    /// The escrowed (and later warranted) conversation.
    pub(super) fn conversation(&self) -> ConversationId {
        self.conversation
    }

    fn requested(&self) -> Vec<ConversationDay> {
        vec![ConversationDay {
            conversation: self.conversation,
            day: self.chain.day,
        }]
    }
}

impl Demo<'_> {
    /// Step "escrow in every chain": alice opens a conversation with carol;
    /// the chain announcement carries a capsule of its first chain key
    /// sealed to today's day key, which carol's device recomputes before it
    /// shows the message.
    pub(super) async fn escrow_in_every_chain(&mut self, u: &mut Users) -> Result<Escrowed> {
        // What carol's device refused earlier (the group she left) is not this step's.
        let _ = u.carol.take_refusals();
        let conversation = u.alice.create_conversation(&["carol".into()]).await?;
        u.alice
            .send_text(&conversation, "the meeting is at noon")
            .await?;
        let announcement = u
            .carol
            .api()
            .fetch(0, 500)
            .await?
            .into_iter()
            .filter(|i| i.kind == ItemKind::Announcement)
            .filter_map(|i| ChainAnnouncement::decode(&i.body).ok())
            .find(|a| a.conversation == conversation)
            .context("alice's chain announcement reaches carol")?;
        let got = u.carol.receive(None).await?;
        let refusals = u.carol.take_refusals();
        let shown = got.iter().any(|m| m.text == "the meeting is at noon");
        let day = announcement.chain.day;
        let day_key = self
            .d
            .wait_day_keys(day..=day)
            .await?
            .remove(&day)
            .context("today's day key")?;
        let capsule = Capsule::from_bytes(&announcement.escrow_capsule)?;
        self.n.step(
            "escrow in every chain",
            announcement.escrow_kind == EscrowKind::BfIbeV1 && shown && refusals.is_empty(),
            format!(
                "alice's chain announcement carries a {}-byte capsule of its first chain key, \
                 sealed to day {day}'s key; carol's device recomputed it before showing the \
                 message (a chain without it, or with a wrong one, is refused)",
                announcement.escrow_capsule.len()
            ),
        )?;
        Ok(Escrowed {
            conversation,
            chain: announcement.chain,
            capsule,
            day_key,
        })
    }

    /// Step "warrant logged": the court signs a warrant for that
    /// conversation on that day, and the authority commits it to the log.
    pub(super) async fn warrant_logged(&mut self, e: &Escrowed) -> Result<SubmittedWarrant> {
        let warrant = self
            .d
            .sign_warrant(&[e.conversation], e.chain.day, e.chain.day)?;
        let submitted = self.d.submit_warrant(&warrant).await?;
        self.n.step(
            "warrant logged",
            true,
            format!(
                "the court signed a warrant for 1 conversation on day {}; the authority logged \
                 its salted commitment {}... as entry {}, cosigned by both witnesses; the \
                 warrant's text stays sealed until its embargo ends",
                e.chain.day,
                &submitted.commitment[..16],
                submitted.index
            ),
        )?;
        Ok(submitted)
    }

    /// Step "unlogged warrant refused": a second, genuinely court-signed
    /// warrant presented with the first one's log proof is refused by all
    /// five custodians.
    pub(super) async fn unlogged_warrant_refused(
        &mut self,
        e: &Escrowed,
        logged: &SubmittedWarrant,
    ) -> Result<()> {
        let unlogged = self
            .d
            .sign_warrant(&[e.conversation], e.chain.day, e.chain.day)?;
        let mut presented = logged.clone();
        presented.warrant = hex::encode(unlogged.encode()?);
        let outcome = self.d.collect(&presented, e.requested()).await;
        let (ok, detail) = match outcome {
            Err(CollectError::NotEnoughShares {
                got: 0, refusals, ..
            }) => (
                true,
                format!(
                    "all 5 custodians refused a court-signed warrant that is not in the log: {refusals}"
                ),
            ),
            other => (false, format!("unexpected outcome: {other:?}")),
        };
        self.n.step("unlogged warrant refused", ok, detail)
    }

    /// Step "release by three": with two custodians offline, the other
    /// three check the warrant and the log, log their releases, and their
    /// shares combine into the conversation-day's key, which opens the
    /// capsule of alice's chain and nothing else.
    pub(super) async fn release_by_three(
        &mut self,
        e: &Escrowed,
        submitted: &SubmittedWarrant,
    ) -> Result<Collected> {
        self.d.stop_custodian(0).await?;
        self.d.stop_custodian(4).await?;
        let collected = self.d.collect(submitted, e.requested()).await?;
        let released: Vec<&String> = collected
            .answers
            .iter()
            .filter(|(_, a)| matches!(a, CustodianAnswer::Released { .. }))
            .map(|(name, _)| name)
            .collect();
        let key = collected.keys.values().next().context("one identity key")?;
        let ck0 = custos_escrow::open(&e.capsule, key)?;
        let provenance = custos_escrow::verify(
            &e.capsule,
            &e.day_key,
            &e.conversation.0,
            e.chain.day,
            &e.chain.qualified(&e.conversation),
            &ck0,
        );
        self.n.step(
            "release by three",
            released.len() == 3 && provenance.is_ok(),
            format!(
                "two custodians offline; {} each checked the warrant, its logged commitment \
                 and the witnesses, logged a KeyRelease and sealed a partial key to the \
                 authority; 3 verified partial keys combined into the key of this \
                 conversation-day, which opened the capsule of alice's chain (its chain key \
                 re-seals to the very same capsule)",
                released
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )?;
        Ok(collected)
    }

    /// Step "interception": the provider checks the logged warrant itself,
    /// logs its Interception, and keeps what alice then sends to carol.
    pub(super) async fn interception(
        &mut self,
        u: &mut Users,
        e: &Escrowed,
        submitted: &SubmittedWarrant,
    ) -> Result<()> {
        let started = self.d.intercept(submitted).await?;
        u.alice
            .send_text(&e.conversation, "bring the documents")
            .await?;
        let got = u.carol.receive(None).await?;
        self.n.step(
            "interception",
            got.iter().any(|m| m.text == "bring the documents"),
            format!(
                "the provider checked the warrant and its log proof itself, logged its \
                 Interception as entry {}, and keeps the conversation's items of that day \
                 apart from mailboxes ({} already stored); carol read alice's next message as \
                 usual",
                started.log_index, started.kept
            ),
        )
    }

    /// Step "evidence verifies": the authority opens what the provider kept
    /// and writes an evidence bundle that verifies offline, and one changed
    /// character makes it fail.
    pub(super) async fn evidence_verifies(
        &mut self,
        submitted: &SubmittedWarrant,
        collected: &Collected,
    ) -> Result<()> {
        let bundle = self.d.evidence(submitted, collected).await?;
        let hash = self.d.manifest().hash()?;
        let verified = custos_verify::evidence::verify_evidence(&bundle, Some(&hash));
        let mut altered = bundle.clone();
        if let Some(m) = altered.messages.first_mut() {
            m.text.push('!');
        }
        let refused = custos_verify::evidence::verify_evidence(&altered, Some(&hash)).err();
        let file = self.dir.join("evidence.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&bundle)?)?;
        let texts: Vec<&str> = bundle.messages.iter().map(|m| m.text.as_str()).collect();
        self.n.step(
            "evidence verifies",
            verified.is_ok() && refused.is_some() && !texts.is_empty(),
            format!(
                "the authority opened the kept chain with the released key and recovered {texts:?}, \
                 each with its sender's signature, franking, delivery tag and escrow provenance \
                 checked; {} verifies offline against the manifest alone; with one character \
                 changed it is refused: {}",
                file.display(),
                refused.map(|e| e.to_string()).unwrap_or_default()
            ),
        )
    }

    /// Step "two shares open nothing": with a third custodian offline, the
    /// two left cannot open the conversation-day.
    pub(super) async fn two_shares_open_nothing(
        &mut self,
        e: &Escrowed,
        submitted: &SubmittedWarrant,
    ) -> Result<()> {
        self.d.stop_custodian(1).await?;
        let outcome = self.d.collect(submitted, e.requested()).await;
        let (ok, detail) = match outcome {
            Err(CollectError::NotEnoughShares {
                got: 2, need: 3, ..
            }) => (
                true,
                "with three custodians offline the two left released their shares, and 2 \
                 verified partial keys open nothing: 3 are needed"
                    .to_owned(),
            ),
            other => (false, format!("unexpected outcome: {other:?}")),
        };
        self.n.step("two shares open nothing", ok, detail)
    }
}
