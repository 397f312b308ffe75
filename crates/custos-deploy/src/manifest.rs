//! The deployment manifest: every party's public key and endpoint, the
//! thresholds and the policy, generated from the keys and the addresses
//! the services listen on, or read back from `DIR/manifest.toml`.

use std::net::SocketAddr;
use std::path::Path;

use custos_wire::manifest::{Manifest, Participant, Role};

use crate::error::DeployError;
use crate::keys::DeploymentKeys;
use crate::names::Names;
use crate::spec::DeploymentSpec;

/// The address of every service that the manifest names an endpoint for.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub log: SocketAddr,
    pub witnesses: Vec<SocketAddr>,
    pub custodians: Vec<SocketAddr>,
}

fn participant(name: &str, role: Role, key: [u8; 32], addr: Option<SocketAddr>) -> Participant {
    Participant {
        name: name.into(),
        role,
        // Each custodian in its own jurisdiction, as DESIGN.md asks.
        jurisdiction: match role {
            Role::Custodian => format!("J-{name}"),
            _ => "EU".into(),
        },
        endpoint: addr.map(|a| format!("http://{a}")),
        public_key: hex::encode(key),
    }
}

/// Builds the manifest of `spec` from `keys` and `endpoints`.
pub(crate) fn build(
    spec: &DeploymentSpec,
    names: &Names,
    keys: &DeploymentKeys,
    endpoints: &Endpoints,
) -> Result<Manifest, DeployError> {
    let mut ps = vec![
        participant(
            keys.log.name(),
            Role::Log,
            keys.log.verifying_key().to_bytes(),
            Some(endpoints.log),
        ),
        participant(
            keys.provider.name(),
            Role::Provider,
            keys.provider.verifying_key().to_bytes(),
            None,
        ),
        participant(
            &names.court(),
            Role::Court,
            keys.court.verifying_key().to_bytes(),
            None,
        ),
        participant(
            &names.authority(),
            Role::Authority,
            keys.authority.verifying_key().to_bytes(),
            None,
        ),
    ];
    for (w, addr) in keys.witnesses.iter().zip(&endpoints.witnesses) {
        ps.push(participant(
            w.name(),
            Role::Witness,
            w.verifying_key().to_bytes(),
            Some(*addr),
        ));
    }
    for (c, addr) in keys.custodians.iter().zip(&endpoints.custodians) {
        ps.push(participant(
            c.name(),
            Role::Custodian,
            c.public_key(),
            Some(*addr),
        ));
    }
    ps.extend(spec.extra_participants.iter().cloned());
    Manifest::new(spec.witness_quorum, spec.threshold, spec.policy.clone(), ps)
        .map_err(|e| DeployError::Manifest(e.to_string()))
}

/// Reads `path` and the endpoints it names.
pub(crate) fn read(path: &Path) -> Result<(Manifest, Endpoints), DeployError> {
    let text = std::fs::read_to_string(path)
        .map_err(DeployError::io(format!("reading {}", path.display())))?;
    let manifest = Manifest::from_toml(&text).map_err(|e| DeployError::Manifest(e.to_string()))?;
    let addr = |p: &Participant| -> Result<SocketAddr, DeployError> {
        p.endpoint
            .as_deref()
            .and_then(|e| e.strip_prefix("http://"))
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                DeployError::Manifest(format!("{} has no loopback http endpoint", p.name))
            })
    };
    let log = manifest
        .log()
        .ok_or_else(|| DeployError::Manifest("no log".into()))
        .and_then(addr)?;
    let all = |role| {
        manifest
            .with_role(role)
            .map(addr)
            .collect::<Result<Vec<_>, _>>()
    };
    let endpoints = Endpoints {
        log,
        witnesses: all(Role::Witness)?,
        custodians: all(Role::Custodian)?,
    };
    Ok((manifest, endpoints))
}
