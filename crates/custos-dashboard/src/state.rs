//! What the dashboard serves: one snapshot, replaced whole by the follower
//! after each poll, read by the handlers. Both import this module (the
//! handlers never reach into the follower).

use std::sync::{Arc, RwLock};

use custos_verify::figures::{AuditFigures, Figures};
use custos_wire::manifest::Role;

use crate::api::{Evidence, ManifestKeys, Moderation, NamedKey, ParticipantKey, Status};
use crate::{DashboardConfig, DashboardError};

/// Everything one poll produced, served as it is.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub status: Status,
    pub figures: AuditFigures,
    pub evidence: Evidence,
    pub moderation: Moderation,
}

/// The snapshot shared between the follower and the handlers, and the
/// manifest keys (fixed for the dashboard's life).
#[derive(Debug, Clone)]
pub struct Shared {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    keys: Arc<ManifestKeys>,
    log: custos_tlog::LogClient,
}

impl Shared {
    pub(crate) fn new(
        config: &DashboardConfig,
        client: custos_tlog::LogClient,
    ) -> Result<Self, DashboardError> {
        let m = &config.manifest;
        let log = m
            .log()
            .ok_or_else(|| DashboardError::Manifest("no log participant".into()))?;
        let manifest_hash = hex::encode(
            m.hash()
                .map_err(|e| DashboardError::Manifest(e.to_string()))?,
        );
        let keys = ManifestKeys {
            origin: log.name.clone(),
            log_key: log.public_key.clone(),
            witnesses: m
                .with_role(Role::Witness)
                .map(|p| NamedKey {
                    name: p.name.clone(),
                    key: p.public_key.clone(),
                })
                .collect(),
            witness_quorum: m.witness_quorum,
            participants: m
                .participants
                .iter()
                .map(|p| ParticipantKey {
                    name: p.name.clone(),
                    role: serde_json::to_value(p.role)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    key: p.public_key.clone(),
                })
                .collect(),
            max_embargo_days: m.policy.max_embargo_days,
            erasure_grace_days: m.policy.erasure_grace_days,
            manifest_hash: manifest_hash.clone(),
        };
        let figures = Figures::new(m, config.options).finish(config.clock.now_millis() / 1000);
        let snapshot = Snapshot {
            status: Status::empty(&log.name, m.witness_quorum, manifest_hash),
            figures,
            evidence: Evidence::default(),
            moderation: Moderation::default(),
        };
        Ok(Self {
            snapshot: Arc::new(RwLock::new(Arc::new(snapshot))),
            keys: Arc::new(keys),
            log: client,
        })
    }

    /// The latest snapshot.
    pub(crate) fn get(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, s: Snapshot) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(s);
    }

    pub(crate) fn keys(&self) -> &ManifestKeys {
        &self.keys
    }

    /// The log the dashboard follows (consistency proofs are passed on
    /// from it: the page checks them).
    pub(crate) fn log(&self) -> &custos_tlog::LogClient {
        &self.log
    }

    /// The status the API serves now.
    pub fn status(&self) -> Status {
        self.get().status.clone()
    }

    /// The figures the API serves now.
    pub fn figures(&self) -> AuditFigures {
        self.get().figures.clone()
    }
}
