//! What several test modules start the same way: a deployment on the
//! system clock without custodians, and users registered on it.
#![allow(clippy::unwrap_used)]

use custos_client::Device;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use tempfile::TempDir;

/// The test kit's deployment (a log with two witnesses, no custodians) on
/// the system clock, with `server`.
pub async fn deployment(dir: &TempDir, server: ServerSpec) -> Deployment {
    let spec = DeploymentSpec::new("test", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(server);
    Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap()
}

/// A user `name` registered on `d`'s service, at home under `dir` (with
/// several servers on PostgreSQL, on each in turn).
pub async fn user(dir: &TempDir, d: &Deployment, name: &str) -> Device {
    Device::register(
        &dir.path().join(name),
        d.next_server_url().unwrap(),
        name,
        custos_clock::system(),
    )
    .await
    .unwrap()
}
