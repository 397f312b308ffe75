//! The provider check: the key that logged a franking key belongs to the
//! provider the deployment manifest names.
//!
//! # Security meaning
//! The log admits a `provider_franking_key` statement only from a manifest
//! participant allowed to publish franking keys, but a verifier that holds
//! the manifest checks it again itself: the statement's author key must be
//! the public key of a participant with the role `provider` and the name
//! the statement gives. Otherwise a package could attribute tags to a
//! provider by a key the manifest does not give it.

use custos_wire::manifest::{Manifest, Role};

use crate::package::LoggedKey;

/// Why a logged franking key is not the manifest's provider's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No provider of that name with that key in the manifest.
    #[error(
        "the franking key was logged by {author}, which the manifest does not name as provider {provider}; \
         check that the manifest is the deployment's"
    )]
    NotNamed {
        /// The statement's author key, hex.
        author: String,
        /// The provider the statement names.
        provider: String,
    },
}

/// Checks that `key`'s statement author is the public key of the manifest
/// participant with role provider and the statement's provider name.
pub fn check_provider(manifest: &Manifest, key: &LoggedKey) -> Result<(), ProviderError> {
    let author = hex::encode(key.author);
    let named = manifest
        .with_role(Role::Provider)
        .any(|p| p.name == key.provider && p.public_key.eq_ignore_ascii_case(&author));
    if named {
        Ok(())
    } else {
        Err(ProviderError::NotNamed {
            author,
            provider: key.provider.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use custos_wire::manifest::{Manifest, Participant, Policy, Role};

    use super::{ProviderError, check_provider};
    use crate::package::LoggedKey;

    /// A valid Ed25519 public key, made from a seed byte.
    fn key(seed: u8) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes()
    }

    fn manifest(provider_key: [u8; 32]) -> Manifest {
        let p = |name: &str, role, key: [u8; 32]| Participant {
            name: name.into(),
            role,
            jurisdiction: "EU".into(),
            endpoint: None,
            public_key: hex::encode(key),
        };
        Manifest::new(
            1,
            0,
            Policy::default(),
            vec![
                p("log.test", Role::Log, key(1)),
                p("witness.test", Role::Witness, key(2)),
                p("provider.test", Role::Provider, provider_key),
            ],
        )
        .unwrap()
    }

    fn logged(author: [u8; 32], provider: &str) -> LoggedKey {
        LoggedKey {
            public_key: [9; 32],
            provider: provider.into(),
            author,
            valid_from: 0,
            origin: "log.test".into(),
            index: 0,
            tree_size: 1,
            witnesses: vec![],
        }
    }

    #[test]
    fn the_named_provider_passes_others_are_refused() {
        let m = manifest(key(7));
        assert_eq!(check_provider(&m, &logged(key(7), "provider.test")), Ok(()));
        assert!(matches!(
            check_provider(&m, &logged(key(8), "provider.test")),
            Err(ProviderError::NotNamed { .. })
        ));
        assert!(matches!(
            check_provider(&m, &logged(key(7), "other.test")),
            Err(ProviderError::NotNamed { .. })
        ));
        // The log's key is in the manifest, but not as the provider.
        assert!(matches!(
            check_provider(&m, &logged(key(1), "log.test")),
            Err(ProviderError::NotNamed { .. })
        ));
    }
}
