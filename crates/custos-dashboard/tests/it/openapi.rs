//! The JSON API matches its OpenAPI description: every path of the
//! description is served, and each answer of a dashboard following a real
//! log (with a warrant in it) validates against the response schema the
//! description names (JSON Schema 2020-12, as OpenAPI 3.1 uses).

use std::time::Duration;

use custos_dashboard::api::ApiDoc;
use custos_dashboard::{DashboardConfig, spawn_dashboard};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_wire::ConversationId;
use serde_json::Value;
use utoipa::OpenApi as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_openapi_description() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DeploymentSpec::new(
        "api.test",
        custos_clock::dangerous::simulated(1_773_000_000_000).shared(),
    )
    .custodians(3, 2, CustodianMode::KeysOnly)
    .without_server();
    let d = Deployment::start(dir.path(), spec).await.unwrap();
    let warrant = d.sign_warrant(&[ConversationId([1; 16])], 1, 1).unwrap();
    let submitted = d.submit_warrant(&warrant).await.unwrap();
    let size = d.wait_witnessed(submitted.index + 1).await.unwrap();

    let mut config = DashboardConfig::new(d.log_url(), d.manifest().clone());
    config.poll_interval = Duration::from_millis(50);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = spawn_dashboard(listener, config).await.unwrap();
    for _ in 0..400 {
        if h.shared.status().tree_size >= size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        h.shared.status().tree_size >= size,
        "the dashboard caught up"
    );
    // More entries: the next polls fetch only those (each entry once).
    let second = d
        .submit_warrant(&d.sign_warrant(&[ConversationId([2; 16])], 1, 1).unwrap())
        .await
        .unwrap();
    let size = d.wait_witnessed(second.index + 1).await.unwrap();
    for _ in 0..400 {
        if h.shared.status().tree_size >= size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = h.shared.status();
    assert_eq!(status.tree_size, size);
    assert_eq!(
        status.entries_fetched, size,
        "each entry is fetched once, not the whole log on each poll"
    );
    assert_eq!(h.shared.figures().totals.warrants, 2);

    let http = reqwest::Client::new();
    let base = format!("http://{}", h.addr);
    let served: Value = http
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    assert_eq!(served, doc, "the served description is the generated one");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 7);
    for (path, item) in paths {
        let schema_ref =
            item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: no response schema"));
        let mut schema = doc.clone();
        schema["$ref"] = Value::String(schema_ref.to_owned());
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let query = if path == "/api/v1/consistency" {
            format!("?old=1&size={size}")
        } else {
            String::new()
        };
        let resp = http
            .get(format!("{base}{path}{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let answer: Value = resp.json().await.unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&answer)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:?}\n{answer:#}");
        // A schema that accepts anything would prove nothing.
        assert!(
            !validator.is_valid(&Value::String("not an answer".into())),
            "{path}: the schema accepts a string"
        );
    }
    let evidence: Value = http
        .get(format!("{base}/api/v1/evidence"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(evidence["entries"][0]["kind"], "warrant_commitment");
    assert_eq!(evidence["entries"][0]["index"], submitted.index);
    let page = http.get(&base).send().await.unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"),
        "the page may load nothing from elsewhere"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    d.shutdown().await.unwrap();
}
