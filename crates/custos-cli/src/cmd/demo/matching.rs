//! Known-content detection in the demo: pictures the project draws itself
//! (`custos_media::synthetic`), whose hashes are on the demo's test list.
//! No real abuse material is used, anywhere.

use anyhow::{Context as _, Result};
use custos_client::Device;
use custos_media::synthetic::{self, Modification};

use super::Demo;

/// The demo's test list: pictures drawn from these seeds.
pub(super) const LISTED_SEEDS: std::ops::RangeInclusive<u64> = 1..=10;

/// PDQ hashes of the listed pictures (for the deployment's test list).
pub(super) fn listed() -> Result<Vec<[u8; 32]>> {
    LISTED_SEEDS
        .map(|s| {
            let p = synthetic::picture(s, 128, 128)?;
            Ok(*custos_media::hash(&p).hash.as_bytes())
        })
        .collect()
}

fn png(seed: u64) -> Result<Vec<u8>> {
    Ok(synthetic::png(&synthetic::picture(seed, 128, 128)?)?)
}

impl Demo<'_> {
    /// Steps "pictures below the threshold", "threshold reached" and
    /// "clearinghouse package".
    pub(super) async fn known_content(&mut self, moderator: &Device) -> Result<()> {
        let t = self
            .d
            .manifest()
            .matching
            .as_ref()
            .map(|m| m.threshold)
            .context("the demo's manifest matches pictures")?;
        let mut dave = self.d.register("dave").await?;
        let mut erin = self.d.register("erin").await?;
        let to_erin = dave.create_conversation(&["erin".into()]).await?;
        let to_dave = erin.create_conversation(&["dave".into()]).await?;
        // Dave's vouchers are real, erin's synthetic (the test door; in use
        // a device draws synthetic ones at the manifest's rate).
        dave.dangerous_force_synthetic(Some(false));
        erin.dangerous_force_synthetic(Some(true));
        let seeds: Vec<u64> = LISTED_SEEDS.collect();
        for (i, seed) in seeds.iter().take(usize::from(t) - 1).enumerate() {
            dave.send_with_attachments(&to_erin, "a picture", &[png(*seed)?])
                .await?;
            erin.send_with_attachments(&to_dave, "a picture", &[png(1000 + i as u64)?])
                .await?;
        }
        let stats = moderator.api().matching_stats().await?;
        let cases = moderator.api().matching_cases().await?;
        self.n.checked(
            "pictures below the threshold",
            &[
                (
                    "no account past the threshold",
                    at(&stats, "/accounts_matched") == 0,
                ),
                (
                    "the review queue is empty",
                    cases.as_array().is_some_and(|c| c.is_empty()),
                ),
            ],
            format!(
                "dave sent {} listed pictures (real vouchers), erin {} others (synthetic \
                 vouchers): both open for the service, which cannot tell them apart nor open \
                 any below T = {t}",
                t - 1,
                t - 1
            ),
        )?;
        // The T-th listed picture, re-encoded as JPEG: a modified copy.
        let last = synthetic::picture(*seeds.last().context("a listed seed")?, 128, 128)?;
        let jpeg = synthetic::jpeg(&Modification::Jpeg(80).apply(&last)?, 90)?;
        dave.send_with_attachments(&to_erin, "one more", &[jpeg])
            .await?;
        // The service takes the threshold step shortly after the voucher's
        // answer (beside its voucher writer): wait for the case, 10 s at most.
        let mut cases = moderator.api().matching_cases().await?;
        for _ in 0..200 {
            if cases.as_array().is_some_and(|c| !c.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            cases = moderator.api().matching_cases().await?;
        }
        let case = cases.get(0).cloned().unwrap_or_default();
        let id = at(&case, "/id").as_i64().unwrap_or(0);
        let shown = moderator.api().matching_case(id).await?;
        let matches = at(&shown, "/matches").as_array().map(Vec::len).unwrap_or(0);
        self.n.checked(
            "threshold reached: human review",
            &[
                ("one case, dave's", at(&case, "/account") == "dave"),
                (
                    "exactly the T real matches opened",
                    matches == usize::from(t),
                ),
                (
                    "erin's synthetic vouchers opened nothing",
                    cases.as_array().map(Vec::len) == Some(1),
                ),
            ],
            format!(
                "at T = {t} the service opened dave's {matches} matches (PDQ hash and 32x32 \
                 derivative each, the last one a re-encoded copy) for a moderator"
            ),
        )?;
        let decided = moderator
            .api()
            .resolve_matching_case(id, "confirm", "demo: synthetic test pictures")
            .await?;
        let package = at(&decided, "/package");
        self.n.checked(
            "clearinghouse package",
            &[
                (
                    "confirmed by the moderator",
                    at(&decided, "/case/status") == "confirmed",
                ),
                (
                    "package lists the matches",
                    at(package, "/matches").as_array().map(Vec::len) == Some(usize::from(t)),
                ),
                (
                    "the hash list's root is proven in the log",
                    at(package, "/log_proofs/hash_list_root/index").is_u64(),
                ),
            ],
            "the moderator confirmed; the package (hashes, derivatives, account, times, log \
             proofs of the list and policy) is handed to the moderator, sent nowhere",
        )?;
        Ok(())
    }
}

/// The JSON value at `pointer`, or null.
fn at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a serde_json::Value {
    v.pointer(pointer).unwrap_or(&serde_json::Value::Null)
}
