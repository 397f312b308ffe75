//! The participant names of a deployment, under one domain suffix
//! (`log.<domain>`, `witness-1.<domain>`, `custodian-1.<domain>`, ...).

/// Participant names under `domain`; every name is a valid manifest name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    domain: String,
}

impl Names {
    /// Names under `domain`, e.g. `demo.custos` or `test`.
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_owned(),
        }
    }

    /// The log's origin (its key name and manifest name).
    pub fn log(&self) -> String {
        format!("log.{}", self.domain)
    }

    /// Witness `i` (counted from 0, named from 1).
    pub fn witness(&self, i: usize) -> String {
        format!("witness-{}.{}", i + 1, self.domain)
    }

    /// Custodian `i` (counted from 0, named from 1).
    pub fn custodian(&self, i: usize) -> String {
        format!("custodian-{}.{}", i + 1, self.domain)
    }

    /// The provider (delivery service operator).
    pub fn provider(&self) -> String {
        format!("provider.{}", self.domain)
    }

    /// The court that signs warrants.
    pub fn court(&self) -> String {
        format!("court.{}", self.domain)
    }

    /// The authority that submits warrants and collects keys.
    pub fn authority(&self) -> String {
        format!("police.{}", self.domain)
    }
}
