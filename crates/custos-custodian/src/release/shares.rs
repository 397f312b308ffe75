//! The seam between the release checks and the custodian's share store.

use std::future::Future;

use custos_escrow::SecretShare;
use zeroize::Zeroizing;

/// What a custodian holds for one UTC day.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShareStatus {
    /// The live share of the day key.
    Live(SecretShare),
    /// The share was erased (and the erasure logged): the day cannot be opened.
    Erased,
    /// This custodian never held a share of the day.
    Unknown,
}

/// Why the share store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("share store: {0}")]
pub struct ShareSourceError(pub String);

/// The custodian's store of day-key shares, as the release path sees it.
///
/// Contract: `share(day)` returns [`ShareStatus::Erased`] for every day whose
/// erasure has begun (never a live share of such a day), and
/// [`ShareStatus::Live`] only with this custodian's own share. It may be
/// called concurrently. It never modifies the store.
pub trait ShareSource: Send + Sync {
    /// This custodian's share of `day`.
    fn share(&self, day: u32)
    -> impl Future<Output = Result<ShareStatus, ShareSourceError>> + Send;
}

/// A share source held in memory, for tests, benchmarks and the demo.
#[derive(Debug, Default)]
pub struct MemoryShares {
    shares: std::sync::Mutex<
        std::collections::BTreeMap<u32, Option<Zeroizing<[u8; SecretShare::LEN]>>>,
    >,
}

impl MemoryShares {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds `share` for `day`.
    pub fn insert(&self, day: u32, share: &SecretShare) {
        if let Ok(mut m) = self.shares.lock() {
            m.insert(day, Some(share.to_bytes()));
        }
    }

    /// Erases the share of `day` (it stays known as erased).
    pub fn erase(&self, day: u32) {
        if let Ok(mut m) = self.shares.lock() {
            m.insert(day, None);
        }
    }
}

impl ShareSource for MemoryShares {
    async fn share(&self, day: u32) -> Result<ShareStatus, ShareSourceError> {
        let m = self
            .shares
            .lock()
            .map_err(|_| ShareSourceError("lock poisoned".into()))?;
        Ok(match m.get(&day) {
            None => ShareStatus::Unknown,
            Some(None) => ShareStatus::Erased,
            Some(Some(bytes)) => ShareStatus::Live(
                SecretShare::from_bytes(bytes.as_ref())
                    .map_err(|e| ShareSourceError(e.to_string()))?,
            ),
        })
    }
}

impl<T: ShareSource> ShareSource for std::sync::Arc<T> {
    fn share(
        &self,
        day: u32,
    ) -> impl Future<Output = Result<ShareStatus, ShareSourceError>> + Send {
        T::share(self, day)
    }
}
