//! The custodian's HTTP API: health, JSON errors, the mounted release path.

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_json_and_release_is_mounted() {
    let cluster = Cluster::start(&[0], 0, fast_timing()).await;
    let base = format!("http://{}", cluster.addrs[0]);
    let http = reqwest::Client::new();

    let health: serde_json::Value = http
        .get(format!("{base}/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["name"], custodian_name(0).as_str());
    assert_eq!(health["public_key"], hex::encode(cluster.public_key(0)));
    assert_eq!(health["today"], cluster.clock.shared().today());

    let check = |status: u16, code: &'static str| {
        move |r: (u16, serde_json::Value)| {
            assert_eq!(r.0, status, "{}", r.1);
            assert_eq!(r.1["error"], code, "{}", r.1);
            assert!(r.1["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    };
    let call = |req: reqwest::RequestBuilder| async move {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().await.unwrap())
    };
    check(404, "not_found")(call(http.get(format!("{base}/v1/nothing"))).await);
    check(400, "bad_envelope")(
        call(
            http.post(format!("{base}/v1/dkg/message"))
                .body(vec![1, 2, 3]),
        )
        .await,
    );
    // The release path is mounted and refuses a malformed request in JSON.
    let (status, body) = call(http.post(format!("{base}/v1/release")).body(vec![9; 10])).await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body["error"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
}
