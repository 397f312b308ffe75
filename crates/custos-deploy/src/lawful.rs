//! The court's and the authority's side of lawful access, played with the
//! deployment's keys through `custos-authority`: sign a warrant, commit it
//! to the log, collect partial keys from the custodians.

use custos_authority::collect::{AuthorityKeys, Collected, collect};
use custos_authority::court::{WarrantOrder, sign_warrant};
use custos_authority::submit::{SubmittedWarrant, submit};
use custos_tlog::Verifier;
use custos_wire::ConversationId;
use custos_wire::release::ConversationDay;
use custos_wire::warrant::Warrant;

use crate::error::DeployError;
use crate::{Deployment, Names};

/// Seconds in a day.
const DAY_SECS: u64 = 86_400;

impl Deployment {
    /// The current time of the deployment's clock, in seconds.
    pub fn now_secs(&self) -> u64 {
        self.spec.clock.now_millis() / 1000
    }

    /// A warrant of the deployment's court for its authority, on `targets`
    /// for days `first..=last`, valid 7 days and sealed 30.
    pub fn sign_warrant(
        &self,
        targets: &[ConversationId],
        first: u32,
        last: u32,
    ) -> Result<Warrant, DeployError> {
        let names = Names::new(&self.spec.domain);
        let now = self.now_secs();
        sign_warrant(
            WarrantOrder {
                court: names.court(),
                authority: names.authority(),
                authority_hpke_key: self.keys.authority_hpke.public_key(),
                legal_basis: "investigation of a serious crime (test order)".into(),
                targets: targets.to_vec(),
                days: (first, last),
                issued_at: now,
                not_after: now + 7 * DAY_SECS,
                embargo_until: now + 30 * DAY_SECS,
            },
            &self.keys.court,
        )
        .map_err(|e| DeployError::Usage(e.to_string()))
    }

    /// A log verifier for party `name`, remembering its last checkpoint in
    /// the deployment's folder.
    pub fn verifier(&self, name: &str) -> Result<Verifier, DeployError> {
        let dir = self.dir.join("verifiers");
        std::fs::create_dir_all(&dir).map_err(DeployError::io("creating verifiers/"))?;
        Verifier::open(self.trust_policy()?, &dir.join(name))
            .map_err(|e| DeployError::Log(e.to_string()))
    }

    /// The authority commits `warrant` to the log and waits for the witness
    /// quorum.
    pub async fn submit_warrant(&self, warrant: &Warrant) -> Result<SubmittedWarrant, DeployError> {
        let mut verifier = self.verifier("authority")?;
        submit(&self.log, &mut verifier, warrant, &self.keys.authority)
            .await
            .map_err(|e| DeployError::Log(e.to_string()))
    }

    /// The authority asks every custodian for `requested` under `submitted`
    /// and combines `t` verified partial keys per conversation-day. The
    /// error says which custodians refused and why.
    pub async fn collect(
        &self,
        submitted: &SubmittedWarrant,
        requested: Vec<ConversationDay>,
    ) -> Result<Collected, custos_authority::CollectError> {
        let mut verifier = self
            .verifier("authority")
            .map_err(|e| custos_authority::AuthorityError::Manifest(e.to_string()))?;
        collect(
            &self.manifest,
            &self.log,
            &mut verifier,
            submitted,
            AuthorityKeys {
                signing: &self.keys.authority,
                hpke: &self.keys.authority_hpke,
            },
            requested,
            self.now_secs(),
        )
        .await
    }
}

impl Deployment {
    /// The authority presents `submitted` to the delivery service, which
    /// checks it, logs its `Interception` and keeps the warranted items.
    pub async fn intercept(
        &self,
        submitted: &SubmittedWarrant,
    ) -> Result<custos_authority::intercept::Started, custos_authority::InterceptError> {
        let mut verifier = self
            .verifier("authority")
            .map_err(|e| custos_authority::AuthorityError::Manifest(e.to_string()))?;
        let server = self
            .server_url()
            .map_err(|e| custos_authority::AuthorityError::Manifest(e.to_string()))?;
        custos_authority::intercept::intercept(
            &self.manifest,
            &self.log,
            &mut verifier,
            submitted,
            &self.keys.authority,
            server,
            self.now_secs(),
        )
        .await
    }

    /// The authority fetches what the provider keeps under `submitted` and
    /// opens it with the identity keys it `collected`, checking each
    /// message against the day keys and the franking key in the log.
    pub async fn decrypt(
        &self,
        submitted: &SubmittedWarrant,
        collected: &Collected,
    ) -> Result<
        (
            Vec<custos_verify::intercepted::KeptItem>,
            custos_verify::intercepted::Opened,
        ),
        custos_authority::InterceptError,
    > {
        use custos_authority::AuthorityError;
        let commitment: [u8; 32] = hex::decode(&submitted.commitment)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AuthorityError::File("commitment".into()))?;
        let server = self
            .server_url()
            .map_err(|e| AuthorityError::Manifest(e.to_string()))?;
        let clock = self.spec.clock.clone();
        let items = custos_authority::intercept::fetch_kept(
            server,
            &commitment,
            &self.keys.authority,
            move || clock.now_millis() / 1000,
        )
        .await?;
        let warrant = submitted.warrant()?;
        let size = self
            .wait_witnessed(1)
            .await
            .map_err(|e| AuthorityError::Manifest(e.to_string()))?;
        let mut days: Vec<u32> = items.iter().map(|i| i.day).collect();
        days.sort_unstable();
        days.dedup();
        days.retain(|d| (warrant.fields().first_day..=warrant.fields().last_day).contains(d));
        let day_keys =
            custos_authority::collect::day_keys_from_log(&self.manifest, &self.log, size, &days)
                .await
                .map_err(|e| AuthorityError::Manifest(e.to_string()))?;
        let franking =
            custos_authority::intercept::franking_key_from_log(&self.manifest, &self.log, size)
                .await?;
        let keys = collected
            .keys
            .iter()
            .map(|(cd, k)| ((cd.conversation, cd.day), *k))
            .collect();
        let opened =
            custos_verify::intercepted::open_kept(&warrant, &items, &keys, &day_keys, &franking);
        Ok((items, opened))
    }

    /// The authority's evidence bundle of what it recovered: verifiable
    /// offline with `custos_verify::evidence::verify_evidence`.
    pub async fn evidence(
        &self,
        submitted: &SubmittedWarrant,
        collected: &Collected,
    ) -> Result<custos_verify::evidence::EvidenceBundle, custos_authority::InterceptError> {
        let (items, opened) = self.decrypt(submitted, collected).await?;
        let mut verifier = self
            .verifier("authority")
            .map_err(|e| custos_authority::AuthorityError::Manifest(e.to_string()))?;
        Ok(custos_authority::evidence::build(
            &self.manifest,
            &self.log,
            &mut verifier,
            submitted,
            &collected.keys,
            &items,
            &opened,
        )
        .await?)
    }
}
