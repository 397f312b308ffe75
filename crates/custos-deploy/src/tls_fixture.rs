//! A certificate authority and a server certificate made on the spot, for
//! tests that run services over TLS (feature `tls-fixture`).
//!
//! # Security meaning
//! None: test fixtures only. The keys are generated fresh for each call and
//! written next to the test's other files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// The files [`test_certificates`] wrote, and the CA's PEM.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate in PEM, for clients to trust.
    pub ca_pem: String,
    /// `ca.pem`: the same, as a file.
    pub ca: PathBuf,
    /// `server.pem`: the leaf certificate, issued by the CA for `localhost`
    /// and `127.0.0.1`.
    pub cert: PathBuf,
    /// `server.key`: the leaf's private key in PEM.
    pub key: PathBuf,
}

/// Makes a CA and a leaf certificate it issued for `localhost` and
/// `127.0.0.1`, and writes `ca.pem`, `server.pem` and `server.key` into `dir`.
///
/// # Panics
/// If the keys cannot be generated or the files written (a test fixture).
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test fixture")]
pub fn test_certificates(dir: &Path) -> TestCertificates {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Custos test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap();
    let files = TestCertificates {
        ca_pem: ca_cert.pem(),
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, &files.ca_pem).unwrap();
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    files
}
