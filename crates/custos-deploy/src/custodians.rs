//! The custodians of a deployment: each one `custos custodian serve` on its
//! manifest endpoint, stopped and restarted on demand with its data intact.

use std::net::SocketAddr;
use std::path::PathBuf;

use custos_custodian::{CustodianConfig, CustodianHandle, CustodianKey, spawn_custodian};
use tokio::net::TcpListener;

use crate::error::DeployError;
use crate::spec::CustodianMode;
use crate::{Deployment, bind};

/// One custodian of the manifest: its address, and its service while it runs.
#[derive(Debug)]
pub struct CustodianSlot {
    index: usize,
    addr: SocketAddr,
    listener: Option<TcpListener>,
    handle: Option<CustodianHandle>,
}

impl CustodianSlot {
    pub(crate) fn new(
        index: usize,
        addr: Option<SocketAddr>,
        listener: TcpListener,
    ) -> Result<Self, DeployError> {
        let addr = match addr {
            Some(a) => a,
            None => listener
                .local_addr()
                .map_err(DeployError::io("a custodian's address"))?,
        };
        Ok(Self {
            index,
            addr,
            listener: Some(listener),
            handle: None,
        })
    }

    /// The custodian's index in the manifest's custodian list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The address of its manifest endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether its service is running.
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    pub(crate) fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

impl Deployment {
    /// Custodian `i`'s data directory.
    pub fn custodian_data(&self, i: usize) -> PathBuf {
        self.dir.join(format!("custodian-{}", i + 1))
    }

    /// Custodian `i`'s key set, read from its key file.
    pub fn custodian_key(&self, i: usize) -> Result<CustodianKey, DeployError> {
        let path = self.key_paths().custodian(i);
        CustodianKey::load(&path)
            .map_err(|e| DeployError::key(&path.display().to_string())(e.to_string()))
    }

    /// The custodians, in manifest order.
    pub fn custodians(&self) -> &[CustodianSlot] {
        &self.custodians
    }

    /// Starts every custodian the spec runs.
    pub(crate) async fn start_custodians(&mut self) -> Result<(), DeployError> {
        let CustodianMode::Services { down, .. } = &self.spec.custodian_mode else {
            return Ok(());
        };
        let down = down.clone();
        for i in 0..self.custodians.len() {
            if down.contains(&i) {
                // Its listener closes: connections to its endpoint are refused.
                if let Some(slot) = self.custodians.get_mut(i) {
                    slot.listener = None;
                }
            } else {
                self.start_custodian(i).await?;
            }
        }
        Ok(())
    }

    /// Starts (or restarts) custodian `i` on its manifest endpoint with its
    /// data and keys as they are on disk.
    pub async fn start_custodian(&mut self, i: usize) -> Result<(), DeployError> {
        let CustodianMode::Services {
            days_ahead,
            timing,
            monthly_quota,
            ..
        } = self.spec.custodian_mode.clone()
        else {
            return Err(DeployError::Usage(
                "custodians run only in CustodianMode::Services".into(),
            ));
        };
        self.stop_custodian(i).await?;
        let key = self.custodian_key(i)?;
        let data = self.custodian_data(i);
        let slot = self.slot(i)?;
        let listener = match slot.listener.take() {
            Some(l) => l,
            None => bind(slot.addr).await?,
        };
        let name = key.name().to_owned();
        let handle = spawn_custodian(
            listener,
            CustodianConfig {
                data,
                key,
                manifest: self.manifest.clone(),
                clock: self.spec.clock.clone(),
                days_ahead,
                timing,
                monthly_quota,
            },
        )
        .await
        .map_err(|e| DeployError::start(&name)(e.to_string()))?;
        self.slot(i)?.handle = Some(handle);
        Ok(())
    }

    /// Stops custodian `i`'s service; its data stays. Connections to its
    /// endpoint are refused until it starts again.
    pub async fn stop_custodian(&mut self, i: usize) -> Result<(), DeployError> {
        let slot = self.slot(i)?;
        let was_running = slot.is_running();
        slot.stop();
        if was_running {
            // Let the aborted tasks release the port.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The listener on custodian `i`'s endpoint, for a caller that serves
    /// it itself ([`CustodianMode::KeysOnly`]). `None` once taken.
    pub fn take_custodian_listener(&mut self, i: usize) -> Option<TcpListener> {
        self.custodians.get_mut(i).and_then(|s| s.listener.take())
    }

    fn slot(&mut self, i: usize) -> Result<&mut CustodianSlot, DeployError> {
        self.custodians
            .get_mut(i)
            .ok_or_else(|| DeployError::Usage(format!("no custodian {i}")))
    }
}
