//! Which TLS certificates the device trusts when it talks to the delivery
//! service over `https://` and `wss://`.
//!
//! # Guarantees
//! - By default, Mozilla's root set as built into the binary (webpki-roots,
//!   the set reqwest's rustls backend uses), for services with a public
//!   certificate.
//! - With a CA named in the configuration (`custos --ca FILE`, `CUSTOS_CA`,
//!   or `ca = "FILE"` in the config file), that CA *only*: a deployment with
//!   its own CA is not also open to every public CA.
//! - HTTP and the WebSocket use the same trust, through rustls with the
//!   `ring` provider. A certificate that does not chain to the trust, or
//!   does not name the host, fails the connection with
//!   [`crate::api::ApiError::Transport`] saying so.
//!
//! # Not guaranteed
//! - Plain `http://` URLs are still accepted (loopback, `custos up`, the
//!   demo); nothing here upgrades them.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;

/// The certificates a client trusts.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// Mozilla's roots, built in.
    #[default]
    BuiltIn,
    /// Only the CA certificates of this PEM bundle.
    Ca(Arc<CaBundle>),
}

/// The CA certificates of a PEM bundle (at least one).
#[derive(Debug)]
pub struct CaBundle {
    pem: Vec<u8>,
    certs: Vec<CertificateDer<'static>>,
}

/// Why a CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The file could not be read.
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No PEM certificate in it.
    #[error("the CA file holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate,
    /// A certificate that rustls or reqwest cannot take as a root.
    #[error("the CA certificate cannot be used: {0}")]
    BadCertificate(String),
}

static DEFAULT: OnceLock<(Trust, reqwest::Client)> = OnceLock::new();

/// Sets the trust of every [`crate::api::Api::new`] in this process (the
/// `custos` binary does it once, from `--ca`). Returns `Ok(false)` if a
/// default was set already (it is not changed).
pub fn set_default(trust: Trust) -> Result<bool, TrustError> {
    let client = trust.http_client()?;
    Ok(DEFAULT.set((trust, client)).is_ok())
}

/// The process's default trust ([`Trust::BuiltIn`] unless [`set_default`]).
pub fn default_trust() -> Trust {
    DEFAULT.get().map(|d| d.0.clone()).unwrap_or_default()
}

/// The default trust and an HTTP client built with it.
pub(crate) fn default_client() -> (Trust, reqwest::Client) {
    match DEFAULT.get() {
        Some((trust, client)) => (trust.clone(), client.clone()),
        None => (Trust::BuiltIn, reqwest::Client::new()),
    }
}

impl Trust {
    /// Trusts only the CA certificates in the PEM file at `path`.
    pub fn ca_file(path: &Path) -> Result<Self, TrustError> {
        let pem = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::ca_pem(&pem)
    }

    /// Trusts only the CA certificates in `pem`.
    pub fn ca_pem(pem: &[u8]) -> Result<Self, TrustError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TrustError::BadCertificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(TrustError::NoCertificate);
        }
        let bundle = CaBundle {
            pem: pem.to_vec(),
            certs,
        };
        // Checked once here, so that building clients later cannot fail on it.
        bundle.root_store()?;
        Ok(Trust::Ca(Arc::new(bundle)))
    }

    /// An HTTP client with this trust.
    pub fn http_client(&self) -> Result<reqwest::Client, TrustError> {
        let builder = reqwest::Client::builder().use_rustls_tls();
        let builder = match self {
            Trust::BuiltIn => builder,
            Trust::Ca(bundle) => {
                let mut b = builder.tls_built_in_root_certs(false);
                for cert in reqwest::Certificate::from_pem_bundle(&bundle.pem)
                    .map_err(|e| TrustError::BadCertificate(e.to_string()))?
                {
                    b = b.add_root_certificate(cert);
                }
                b
            }
        };
        builder
            .build()
            .map_err(|e| TrustError::BadCertificate(e.to_string()))
    }

    /// The rustls configuration of the WebSocket client with this trust.
    pub fn ws_connector(&self) -> Result<tokio_tungstenite::Connector, TrustError> {
        let roots = match self {
            Trust::BuiltIn => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Trust::Ca(bundle) => bundle.root_store()?,
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::BadCertificate(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
    }
}

impl CaBundle {
    fn root_store(&self) -> Result<rustls::RootCertStore, TrustError> {
        let mut store = rustls::RootCertStore::empty();
        for c in &self.certs {
            store
                .add(c.clone())
                .map_err(|e| TrustError::BadCertificate(e.to_string()))?;
        }
        Ok(store)
    }
}
