//! The delivery service over TLS with a certificate made in the test: a
//! client that trusts its CA registers, logs in and opens the WebSocket; a
//! client that does not is refused with an error that says why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custos_client::api::{Api, ApiError};
use custos_client::identity::Identity;
use custos_client::tls::Trust;
use tempfile::TempDir;

/// A CA and a certificate it issued for `localhost` and 127.0.0.1: the CA's
/// PEM, and the paths of the leaf's certificate and key files.
fn certificates(dir: &TempDir) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let files = custos_deploy::tls_fixture::test_certificates(dir.path());
    (files.ca_pem, files.cert, files.key)
}

fn transport_text(e: ApiError) -> String {
    match e {
        ApiError::Transport(t) => t,
        other => panic!("expected a transport error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_over_tls_is_reached_only_by_clients_that_trust_its_ca() {
    let dir = TempDir::new().unwrap();
    let (ca_pem, cert, key) = certificates(&dir);
    let mut config = custos_server::ServerConfig::new(dir.path().join("server"));
    config.limits = custos_server::Limits::relaxed();
    config.tls = Some(custos_http::tls::server_config(&cert, &key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let clock = custos_clock::dangerous::simulated(1_795_000_000_000);
    let task = tokio::spawn(custos_server::serve(
        listener,
        config,
        clock.shared(),
        async {
            let _ = stopped.await;
        },
    ));
    let base = format!("https://localhost:{port}");

    // Trusting the deployment's CA: everything works, HTTP and WebSocket.
    let trusted = Trust::ca_pem(ca_pem.as_bytes()).unwrap();
    let mut api = Api::with_trust(&base, trusted.clone()).unwrap();
    let alice = Identity::generate();
    api.register("alice", &alice.public_bytes()).await.unwrap();
    api.login("alice", &alice).await.unwrap();
    drop(api.connect_ws().await.unwrap());
    // By IP address too (the certificate names 127.0.0.1).
    let by_ip = Api::with_trust(&format!("https://127.0.0.1:{port}"), trusted).unwrap();
    by_ip
        .register("bob", &Identity::generate().public_bytes())
        .await
        .unwrap();

    // With the public roots only: refused, and the error says what to do.
    let mut untrusting = Api::with_trust(&base, Trust::BuiltIn).unwrap();
    let text = transport_text(
        untrusting
            .register("carol", &Identity::generate().public_bytes())
            .await
            .unwrap_err(),
    );
    assert!(text.contains("--ca"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    let text = transport_text(untrusting.login("alice", &alice).await.unwrap_err());
    assert!(text.contains("not trusted"), "{text}");
    untrusting.set_token("00".repeat(32));
    let text = transport_text(untrusting.connect_ws().await.unwrap_err());
    assert!(text.contains("not trusted"), "{text}");

    // Another CA is no better than none.
    let (other_ca, _, _) = certificates(&TempDir::new().unwrap());
    let wrong = Api::with_trust(&base, Trust::ca_pem(other_ca.as_bytes()).unwrap()).unwrap();
    let text = transport_text(
        wrong
            .register("dave", &Identity::generate().public_bytes())
            .await
            .unwrap_err(),
    );
    assert!(text.contains("not trusted"), "{text}");

    // Plain HTTP to the TLS port gets nowhere.
    let plain = Api::new(&format!("http://127.0.0.1:{port}"));
    assert!(
        plain
            .register("erin", &Identity::generate().public_bytes())
            .await
            .is_err()
    );

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
