//! The log and a witness over TLS with certificates of a CA made in the
//! test: the log cosigns through its HTTPS witness and a client reads it
//! over HTTPS, both trusting the CA (`set_https_ca`, what `custos --ca`
//! does); a client with the public roots only is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::time::Duration;

use custos_log_server::LogConfig;
use custos_tlog::{LogClient, TrustPolicy};
use custos_witness_server::WitnessConfig;

use crate::common::*;

#[tokio::test]
async fn log_and_witness_serve_tls_to_clients_that_trust_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = custos_deploy::tls_fixture::test_certificates(dir);
    let tls = || Some(custos_http::tls::server_config(&certs.cert, &certs.key).unwrap());
    // Only https:// URLs are affected, so the other tests of this binary
    // (plain HTTP) do not notice.
    custos_tlog::client::set_https_ca(certs.ca_pem.as_bytes()).unwrap();

    let d = Deployment::new(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let witness = custos_witness_server::start_witness_tls(
        listener,
        WitnessConfig {
            data: dir.join("witness-0"),
            key: d.witness_key(0),
            logs: vec![(ORIGIN.to_owned(), d.log_key().verifying_key())],
            clock: custos_clock::system(),
        },
        tls(),
    )
    .await
    .unwrap();
    let manifest = d.manifest(&[format!("https://localhost:{}", witness.addr.port())], 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let log = custos_log_server::spawn_log_tls(
        listener,
        LogConfig {
            data: dir.join("log"),
            signed_size: dir.join("log.signed-size"),
            key: d.log_key(),
            manifest: manifest.clone(),
            clock: custos_clock::system(),
            max_batch: 256,
        },
        tls(),
    )
    .await
    .unwrap();
    let url = format!("https://localhost:{}", log.addr.port());

    let client = LogClient::new(&url).unwrap();
    client.submit(&release(&d.custodian, 1)).await.unwrap();
    // Cosigned by the HTTPS witness: the log reached it under the CA.
    let policy = TrustPolicy::from_manifest(&manifest).unwrap();
    let mut cosigned = false;
    for _ in 0..200 {
        let note = client.checkpoint().await.unwrap();
        if policy
            .verify_checkpoint(&note)
            .is_ok_and(|cp| cp.size() >= 1)
        {
            cosigned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        cosigned,
        "the log never got the HTTPS witness's cosignature"
    );

    // The public roots only: refused.
    let err = reqwest::Client::new()
        .get(format!("{url}/checkpoint"))
        .send()
        .await
        .unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    log.abort();
    witness.abort();
}
