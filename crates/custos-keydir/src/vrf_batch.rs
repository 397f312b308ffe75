//! An epoch's VRF labels, evaluated on every core.
//!
//! `akd` turns each (account, freshness, version) of an epoch into a tree
//! label with the VRF: 10,000 new keys are 10,000 evaluations (a hash to
//! the curve and a scalar multiplication each), which `akd_core` runs one
//! after the other unless its `parallel_vrf` feature is on. That feature
//! would also switch on `tokio` in the `akd_core` that devices link (Cargo
//! unifies features across the workspace), and spawns a task per label.
//! Instead [`crate::VrfSecret`] answers `akd`'s batch call with
//! [`node_labels`]: the labels are split into one contiguous run per core,
//! each run is evaluated with `akd_core`'s own per-label function on a
//! scoped thread, and the results come back in the order asked. The
//! labels are the ones `akd` computes (same function, same key); only
//! where they are computed changes.

use akd::configuration::Configuration;
use akd::ecvrf::{VRFExpandedPrivateKey, VRFKeyStorage, VRFPublicKey};
use akd::{AkdLabel, AkdValue, NodeLabel, VersionFreshness};

/// Below this many labels per thread a run is not worth a thread of its
/// own (an evaluation takes tens of microseconds, a thread's start about
/// as much as one).
const MIN_LABELS_PER_THREAD: usize = 256;

/// One label to evaluate, as `akd` asks for it.
pub(crate) type LabelInput = (AkdLabel, VersionFreshness, u64, AkdValue);

/// Every label's node label, in the order given, on every core.
pub(crate) fn node_labels<TC: Configuration>(
    key: &VRFExpandedPrivateKey,
    public: &VRFPublicKey,
    labels: &[LabelInput],
) -> Vec<(LabelInput, NodeLabel)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    evaluate_all::<TC>(key, public, labels, threads)
}

/// [`node_labels`] on up to `threads` threads (the caller's one included).
fn evaluate_all<TC: Configuration>(
    key: &VRFExpandedPrivateKey,
    public: &VRFPublicKey,
    labels: &[LabelInput],
    threads: usize,
) -> Vec<(LabelInput, NodeLabel)> {
    let evaluate = |run: &[LabelInput]| -> Vec<(LabelInput, NodeLabel)> {
        run.iter()
            .map(|input| {
                let (label, freshness, version, _) = input;
                // `akd_core`'s per-label function (a provided method of
                // its trait, the same for every implementation).
                let node = <crate::VrfSecret as VRFKeyStorage>::get_node_label_with_expanded_key::<
                    TC,
                >(key, public, label, *freshness, *version);
                (input.clone(), node)
            })
            .collect()
    };
    let threads = threads.min(labels.len() / MIN_LABELS_PER_THREAD).max(1);
    if threads == 1 {
        return evaluate(labels);
    }
    let run = labels.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut runs = labels.chunks(run);
        // The first run stays on this thread; the others get one each.
        let first = runs.next().unwrap_or_default();
        let others: Vec<_> = runs.map(|r| scope.spawn(move || evaluate(r))).collect();
        let mut out = evaluate(first);
        for handle in others {
            match handle.join() {
                Ok(part) => out.extend(part),
                // A panic in `akd_core`'s evaluation: carried on here, as
                // the serial evaluation would have.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use akd::ecvrf::HardCodedAkdVRF;
    use custos_verify::keydir::{DirectoryConfig, account_label};

    fn inputs() -> Vec<LabelInput> {
        (0..1_000u64)
            .map(|i| {
                let freshness = if i % 3 == 0 {
                    VersionFreshness::Stale
                } else {
                    VersionFreshness::Fresh
                };
                (
                    account_label(&format!("user{i}")),
                    freshness,
                    i % 5 + 1,
                    AkdValue(vec![u8::try_from(i % 256).unwrap(); 32]),
                )
            })
            .collect()
    }

    /// The parallel evaluation gives `akd_core`'s own (serial) batch
    /// labels, in the order asked, for any number of threads; and so does
    /// `VrfSecret`'s batch call for the same seed.
    #[tokio::test]
    async fn parallel_labels_are_akds_labels() {
        let inputs = inputs();
        let akds = HardCodedAkdVRF
            .get_node_labels::<DirectoryConfig>(&inputs)
            .await
            .unwrap();
        assert_eq!(akds.len(), inputs.len());
        let expected: std::collections::HashMap<_, _> = akds.into_iter().collect();
        let want: Vec<NodeLabel> = inputs.iter().map(|i| expected[i]).collect();

        let key = HardCodedAkdVRF.get_vrf_private_key().await.unwrap();
        let expanded = VRFExpandedPrivateKey::from(&key);
        let public = VRFPublicKey::from(&key);
        for threads in [1, 2, 3, 8] {
            let got = evaluate_all::<DirectoryConfig>(&expanded, &public, &inputs, threads);
            let (got_inputs, got_labels): (Vec<_>, Vec<_>) = got.into_iter().unzip();
            assert_eq!(got_inputs, inputs);
            assert_eq!(got_labels, want);
        }

        let seed: [u8; 32] = HardCodedAkdVRF
            .retrieve()
            .await
            .unwrap()
            .try_into()
            .unwrap();
        let ours = crate::VrfSecret::from_bytes(seed)
            .get_node_labels::<DirectoryConfig>(&inputs)
            .await
            .unwrap();
        assert_eq!(ours.into_iter().map(|(_, n)| n).collect::<Vec<_>>(), want);
    }
}
