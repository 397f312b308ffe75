//! The reporting steps: a message reported and verified, a forged report
//! refused, the sender suspended, the report escalated as a package that
//! verifies against the log alone, and the suspension ending.

use anyhow::{Context as _, Result};
use custos_client::Device;
use custos_verify::package::{PackageError, ReportPackage, verify_package};
use custos_wire::ConversationId;
use custos_wire::moderation::{Action, ReportStatus};

use super::Demo;
use super::messaging::Users;

/// The message bob reported and the id the service gave the report.
pub(super) struct Reported {
    message_id: String,
    report_id: i64,
}

impl Demo<'_> {
    /// Step "report verified": alice sends an abusive message, bob reports
    /// it with one context message, the service verifies and queues it.
    pub(super) async fn report_verified(
        &mut self,
        u: &mut Users,
        dm: &ConversationId,
    ) -> Result<Reported> {
        u.alice
            .send_text(dm, "Pay me 500 or your photos go public.")
            .await?;
        let got = u.bob.receive(None).await?;
        let abusive = got
            .iter()
            .find(|m| m.text.starts_with("Pay me"))
            .context("bob did not receive the message")?;
        let report_id = u.bob.report(dm, &abusive.id, "extortion", 1).await?;
        self.n.step(
            "report verified",
            report_id > 0,
            format!(
                "bob reported alice's message with one context message; the service checked the \
                 franking commitment and its own delivery tag (key {}...) and queued report {report_id}",
                &hex::encode(self.server()?.franking.public_key())[..16]
            ),
        )?;
        Ok(Reported {
            message_id: abusive.id.clone(),
            report_id,
        })
    }

    /// Step "forged report refused": the same report with one character of
    /// the revealed text changed.
    pub(super) async fn forged_report_refused(
        &mut self,
        u: &Users,
        dm: &ConversationId,
        reported: &Reported,
    ) -> Result<()> {
        let mut forged = u.bob.build_report(dm, &reported.message_id, "forged", 0)?;
        let last = forged.message.payload.len().saturating_sub(2);
        if let Some(b) = forged.message.payload.get_mut(last) {
            *b ^= 0x20;
        }
        let refusal = u.bob.api().submit_report(&forged.encode()?).await;
        let expected = custos_verify::report::ReportRefusal::FrankingMismatch.code();
        let refused_ok = matches!(&refusal, Err(custos_client::api::ApiError::Refused { code, .. }) if code == expected);
        self.n.step(
            "forged report refused",
            refused_ok,
            "bob changed one character of the revealed text; the service refused: franking_mismatch",
        )
    }

    /// Registers the moderator `mod` and grants it the role.
    pub(super) async fn moderator(&mut self) -> Result<Device> {
        let moderator = self.d.register("mod").await?;
        self.d.add_moderator("mod").await?;
        Ok(moderator)
    }

    /// Step "sender suspended": the moderator suspends alice for 2 s and her
    /// next send is refused.
    pub(super) async fn sender_suspended(
        &mut self,
        moderator: &Device,
        u: &mut Users,
        dm: &ConversationId,
        reported: &Reported,
    ) -> Result<()> {
        let r = moderator
            .api()
            .moderation_resolve(
                reported.report_id,
                Action::Suspend,
                "extortion, 2 s for the demo",
                Some(2),
            )
            .await?;
        let refused = u.alice.send_text(dm, "hello?").await;
        let suspended = matches!(
            &refused,
            Err(custos_client::DeviceError::Api(custos_client::api::ApiError::Refused { code, .. }))
                if code == "suspended"
        );
        self.n.step(
            "sender suspended",
            r.status == ReportStatus::Suspended && suspended,
            format!(
                "moderator mod suspended alice; her next send was refused: {}",
                refused.err().map(|e| e.to_string()).unwrap_or_default()
            ),
        )
    }

    /// Step "package verifies publicly": the report is escalated and the
    /// package verifies with only itself and the log's trust policy, as a
    /// clearinghouse checks it. Returns the package's JSON.
    pub(super) async fn package_verifies(
        &mut self,
        moderator: &Device,
        reported: &Reported,
    ) -> Result<String> {
        let esc = moderator
            .api()
            .moderation_resolve(
                reported.report_id,
                Action::Escalate,
                "for the clearinghouse",
                None,
            )
            .await?;
        let package = serde_json::to_string_pretty(
            &esc.package
                .context("the escalation answer carries no package")?,
        )?;
        let package_file = self.dir.join("report-package.json");
        std::fs::write(&package_file, &package)?;
        // What a clearinghouse does: the package plus the log's public trust
        // policy (log key, witness keys, quorum), nothing from the service.
        let policy = custos_tlog::TrustPolicy::from_manifest(self.d.manifest())?;
        let verified = verify_package(&package, &policy)?;
        let key = verified.require_logged()?;
        self.n.step(
            "package verifies publicly",
            verified.message.sender == "alice"
                && key.public_key == self.server()?.franking.public_key(),
            format!(
                "{} verified with only the package and the log's trust policy: alice sent {:?}; \
                 the tags' key is entry {} of log {}, published by {}, cosigned by {} witnesses",
                package_file.display(),
                verified.message.text,
                key.index,
                key.origin,
                key.provider,
                key.witnesses.len()
            ),
        )?;
        Ok(package)
    }

    /// Step "package with another key refused": the same package claiming
    /// another franking key than the one the log publishes.
    pub(super) fn package_with_another_key_refused(&mut self, package: &str) -> Result<()> {
        let policy = custos_tlog::TrustPolicy::from_manifest(self.d.manifest())?;
        let mut forged: ReportPackage = serde_json::from_str(package)?;
        forged.franking_public_key = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode([0x42; 32])
        };
        let refused = verify_package(&serde_json::to_string(&forged)?, &policy);
        self.n.step(
            "package with another key refused",
            matches!(refused, Err(PackageError::UnpublishedKey)),
            "the same package claiming another franking key is refused: the log publishes another key",
        )
    }

    /// Step "suspension ended": 2 s later alice sends again, and the
    /// published figures count one verified and one refused report.
    pub(super) async fn suspension_ended(
        &mut self,
        moderator: &Device,
        u: &mut Users,
        dm: &ConversationId,
    ) -> Result<()> {
        self.clock.advance_millis(2_100);
        u.alice.send_text(dm, "Sorry.").await?;
        let stats = moderator.api().moderation_stats().await?;
        self.n.step(
            "suspension ended",
            stats.reports_verified == 1 && stats.reports_refused == 1,
            format!(
                "after 2 s alice could send again; published figures: {} received, {} verified, \
                 {} refused, actions {}",
                stats.reports_received,
                stats.reports_verified,
                stats.reports_refused,
                serde_json::to_string(&stats.actions)?
            ),
        )
    }
}
