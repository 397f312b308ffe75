//! The end of the lawful-access story (DESIGN.md §4 step 7 and §9): the
//! embargo ends on the simulated clock, the custodians unseal the warrant
//! without the authority, every member of the target conversation sees the
//! notice, and the audit's figures show what happened, flagging a warrant
//! kept sealed past its embargo.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use custos_authority::submit::SubmittedWarrant;
use custos_verify::figures::{FigureOptions, Figures};
use custos_wire::ConversationId;
use custos_wire::manifest::Role;
use custos_wire::statement::{SignedStatement, Statement};

use super::Demo;
use super::messaging::Users;

/// Days the clock moves so that the demo warrants' embargo (30 days from
/// issue) and the audit's unsealing grace (1 day) have both passed.
const DAYS_TO_EMBARGO_END: u64 = 32;

impl Demo<'_> {
    /// Step "warrant kept sealed": the authority logs a second warrant (on
    /// the group) and never presents it, so no custodian learns its text.
    pub(super) async fn warrant_kept_sealed(
        &mut self,
        group: &ConversationId,
    ) -> Result<SubmittedWarrant> {
        let day = u32::try_from(self.d.now_secs() / 86_400)?;
        let warrant = self.d.sign_warrant(&[*group], day, day)?;
        let submitted = self.d.submit_warrant(&warrant).await?;
        self.n.step(
            "second warrant logged, never presented",
            true,
            format!(
                "the court signed a warrant for the group and the authority logged its \
                 commitment {}... as entry {}, but presented it to no one: no custodian knows \
                 its text, so nobody can unseal it when its embargo ends",
                &submitted.commitment[..16],
                submitted.index
            ),
        )?;
        Ok(submitted)
    }

    /// Step "embargo ends, custodians unseal": the clock moves past the
    /// embargo, and one of the custodians still running (they learnt the
    /// warrant from the authority's release requests) publishes it, salt and
    /// text, in the log without the authority.
    pub(super) async fn embargo_ends(
        &mut self,
        opened: &SubmittedWarrant,
        sealed: &SubmittedWarrant,
    ) -> Result<()> {
        self.clock.advance_days(DAYS_TO_EMBARGO_END);
        let commitment = hex_commitment(opened)?;
        let started = Instant::now();
        let unsealed = loop {
            let found = self.unsealings(&commitment).await?;
            if !found.is_empty() || started.elapsed() > Duration::from_secs(20) {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let other = self.unsealings(&hex_commitment(sealed)?).await?;
        let by: Vec<String> = unsealed.iter().map(|(_, name)| name.clone()).collect();
        let checks = [
            ("unsealed in the log", !unsealed.is_empty()),
            (
                "by custodians, not the authority",
                !by.is_empty() && by.iter().all(|n| n.starts_with("custodian")),
            ),
            ("the never presented warrant stays sealed", other.is_empty()),
        ];
        self.n.checked(
            "embargo ends, custodians unseal",
            &checks,
            format!(
                "{DAYS_TO_EMBARGO_END} days later (simulated clock) the 30-day embargo is over: \
                 {} published the warrant and its salt as entry {} (they open the logged \
                 commitment); the authority did nothing; the second warrant stays sealed",
                by.join(", "),
                unsealed.first().map_or(0, |(i, _)| *i)
            ),
        )
    }

    /// Step "members see the notice": the devices follow the log; alice and
    /// carol, the target conversation's members, get the notice once; bob,
    /// who is not in it, gets none.
    pub(super) async fn notices_seen(
        &mut self,
        u: &mut Users,
        target: &ConversationId,
    ) -> Result<()> {
        let mut lines = Vec::new();
        let mut seen = Vec::new();
        for (name, device) in [
            ("alice", &mut u.alice),
            ("carol", &mut u.carol),
            ("bob", &mut u.bob),
        ] {
            device.follow_log().await?;
            let new = device.take_new_notices()?;
            let again = device.take_new_notices()?;
            let covers = new
                .iter()
                .any(|n| n.conversations.contains(&target.to_hex()));
            seen.push((name, new.len(), covers, again.is_empty()));
            if let Some(n) = new.first() {
                lines.push(format!("{name}: {}", n.line()));
            }
        }
        let count = |who: &str| seen.iter().find(|s| s.0 == who);
        let checks = [
            (
                "alice sees it",
                count("alice").is_some_and(|s| s.1 == 1 && s.2),
            ),
            (
                "carol sees it",
                count("carol").is_some_and(|s| s.1 == 1 && s.2),
            ),
            (
                "bob, not a member, does not",
                count("bob").is_some_and(|s| s.1 == 0),
            ),
            ("shown once", seen.iter().all(|s| s.3)),
        ];
        self.n
            .checked("members see the notice", &checks, lines.join("; "))
    }

    /// Step "audit figures": the audit replays the whole log, checks every
    /// statement and proof, and reports the figures; the warrant kept
    /// sealed past its embargo is flagged.
    pub(super) async fn audit_figures(
        &mut self,
        opened: &SubmittedWarrant,
        sealed: &SubmittedWarrant,
    ) -> Result<()> {
        let manifest = self.d.manifest().clone();
        let mut figures = Figures::new(&manifest, FigureOptions::default());
        let report =
            custos_tlog::audit::audit_streaming(self.d.log(), &manifest, &mut figures, |_, _| {})
                .await?;
        let f = figures.finish(self.d.now_secs());
        let t = &f.totals;
        let overdue: Vec<&str> = f
            .flags
            .overdue_unsealings
            .iter()
            .map(|o| o.warrant.as_str())
            .collect();
        let checks = [
            ("log replayed and witnessed", report.ok()),
            ("2 warrants", t.warrants == 2),
            ("releases logged", t.releases >= 3),
            ("1 interception", t.interceptions == 1),
            ("1 unsealing", t.unsealings == 1),
            (
                "the sealed warrant is flagged overdue",
                overdue.contains(&sealed.commitment.as_str()),
            ),
            (
                "the unsealed one is not",
                !overdue.contains(&opened.commitment.as_str()),
            ),
            (
                "no refused statement",
                f.flags.refused_statements.is_empty(),
            ),
        ];
        self.n.checked(
            "audit figures",
            &checks,
            format!(
                "{} statements replayed and verified against a witnessed checkpoint: {} \
                 warrants ({} targets, {} days), {} key releases, {} interception, {} unsealing, \
                 {} erasures; flagged: {} warrant still sealed past its embargo ({}...)",
                f.statements,
                t.warrants,
                t.targets,
                t.days,
                t.releases,
                t.interceptions,
                t.unsealings,
                t.day_key_erasures,
                overdue.len(),
                overdue.first().map_or("", |w| w.get(..16).unwrap_or(w))
            ),
        )
    }

    /// The valid unsealings of `commitment` in the log: (index, author's name).
    async fn unsealings(&self, commitment: &[u8; 32]) -> Result<Vec<(u64, String)>> {
        let size = self.d.wait_witnessed(1).await?;
        let entries = self.d.log().entries(0, size).await?;
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let Ok(signed) = SignedStatement::decode(e) else {
                continue;
            };
            if let Ok(Statement::WarrantUnsealing(u)) = signed.verify()
                && u.warrant == *commitment
                && u.opens_commitment()
            {
                let name = self
                    .d
                    .manifest()
                    .participant_by_key(signed.author())
                    .filter(|p| p.role == Role::Custodian)
                    .map_or_else(|| "someone else".to_owned(), |p| p.name.clone());
                out.push((i as u64, name));
            }
        }
        Ok(out)
    }
}

fn hex_commitment(s: &SubmittedWarrant) -> Result<[u8; 32]> {
    hex::decode(&s.commitment)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("a warrant commitment")
}
