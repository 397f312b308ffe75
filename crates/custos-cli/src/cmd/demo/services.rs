//! The demo's deployment (`custos-deploy`): a transparency log that
//! publishes the manifest, two witnesses (quorum 2), five custodians
//! (threshold 3) generating day keys by DKG, and the delivery service,
//! whose franking key the provider publishes in the log.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};

use super::{Demo, Narrator};

/// Steps "transparency log", "custodians" and "delivery service": the
/// whole deployment, started on loopback in `dir`.
///
/// Every service runs on one simulated clock, started at the current time,
/// which the story moves forward where time must pass (a suspension, an
/// embargo).
pub(super) async fn deployment(
    n: &mut Narrator,
    dir: &Path,
) -> Result<(Deployment, custos_clock::SimulatedClock)> {
    let simulated = custos_clock::dangerous::simulated(custos_clock::system().now_millis());
    let clock = simulated.shared();
    let spec = DeploymentSpec::new("demo.custos", clock.clone())
        .custodians(5, 3, CustodianMode::services(1))
        .with_key_directory(std::time::Duration::from_millis(200))
        .with_server(ServerSpec::unlimited())
        .with_matching(custos_deploy::matching::MatchingSpec {
            threshold: custos_wire::manifest::DEFAULT_MATCH_THRESHOLD,
            synthetic_rate_ppm: custos_wire::manifest::DEFAULT_SYNTHETIC_RATE_PPM,
            listed: super::matching::listed()?,
            fault: custos_deploy::matching::TableFault::None,
        });
    let d = Deployment::start(dir, spec).await?;
    let m = d.manifest();
    n.step(
        "transparency log",
        true,
        format!(
            "log {} on {} with two witnesses (quorum 2); the manifest (SHA-256 {}...) is its \
             first entry",
            m.log().map(|l| l.name.as_str()).unwrap_or("?"),
            d.log_url(),
            &hex::encode(m.hash()?)[..16],
        ),
    )?;
    let today = u32::try_from(clock.now_millis() / custos_clock::MILLIS_PER_DAY)?;
    let started = Instant::now();
    let keys = d.wait_day_keys(today..=today + 1).await?;
    n.step(
        "custodians",
        keys.len() == 2,
        format!(
            "5 custodians in 5 jurisdictions ran the DKG over HTTP for today and tomorrow in \
             {} ms; each day's key is in the log, published by all 5 (devices need 3)",
            started.elapsed().as_millis()
        ),
    )?;
    n.step(
        "delivery service",
        true,
        format!("listening on {}, SQLite in WAL mode", d.server_url()?),
    )?;
    Ok((d, simulated))
}

impl Demo<'_> {
    /// The running delivery service.
    pub(super) fn server(&self) -> Result<&custos_deploy::DeliveryService> {
        self.d
            .server()
            .ok_or_else(|| anyhow::anyhow!("the demo runs a delivery service"))
    }

    /// Step "franking key in the log": the provider's statement for its
    /// franking key is in a checkpoint cosigned by both witnesses.
    pub(super) async fn franking_key_logged(&mut self) -> Result<()> {
        let franking = &self.server()?.franking;
        let started = Instant::now();
        let proof = loop {
            if let custos_verify::package::FrankingKeyLogProof::Logged(p) = franking.log_proof() {
                break Some(p);
            }
            if started.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let policy = custos_tlog::TrustPolicy::from_manifest(self.d.manifest())?;
        let logged = proof.as_ref().map(|p| p.verify(&policy)).transpose()?;
        let public_key = franking.public_key();
        self.n.step(
            "franking key in the log",
            logged.as_ref().is_some_and(|k| k.public_key == public_key),
            match &logged {
                Some(k) => format!(
                    "the provider signed a provider_franking_key statement for key {}...; it is \
                     entry {} of a checkpoint of size {} cosigned by {}",
                    &hex::encode(k.public_key)[..16],
                    k.index,
                    k.tree_size,
                    k.witnesses.join(" and ")
                ),
                None => "the key was not logged within 30 s".into(),
            },
        )
    }
}
