//! The OpenAPI document against real responses: Schemathesis (PyPI) reads `/api/openapi.json`
//! from a real server, generates requests for every operation (valid ones, boundary values and
//! arbitrary ones) and checks every response: never a 5xx, only documented statuses and content
//! types, and bodies that match the documented schemas.

use serde_json::{json, Value};

use crate::helpers::{hit_event, spawn_app, Seed, ADMIN_TOKEN};

#[actix_web::test]
async fn real_responses_match_the_openapi_document() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    app.set_goals(&property, json!([{"event": "Signup"}])).await;
    let now = chrono::Utc::now().to_rfc3339();
    let hits = (0..5)
        .map(|i| {
            hit_event(
                &property,
                &Seed {
                    visitor: i % 2,
                    at: &now,
                    name: if i == 4 { "Signup" } else { "pageview" },
                    url: &format!("https://shop.example/p{i}"),
                    props: &[("plan", "pro")],
                },
            )
        })
        .collect();
    app.seed(hits).await;
    app.wait_projected().await;

    let doc: Value = app.get("/api/openapi.json", "").await.body;
    assert_eq!(doc["openapi"], "3.1.0");

    // Real identifiers, so that operations get past `404` to their logic.
    let dir = std::env::temp_dir().join(format!("footfall-schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.id\" = \"{}\"\n\"query.site_id\" = \"shop.example\"\n",
            property["id"].as_str().unwrap()
        ),
    )
    .unwrap();
    let url = app.url("/api/openapi.json");
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .current_dir(&dir)
            .args(["--config-file", config.to_str().unwrap(), "run", &url])
            .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "10",
                "--seed",
                "1",
                "--workers",
                "1",
            ])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis must be installed (scripts/test installs it from PyPI)");
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("Selected") || l.contains("Tested"))
        .collect();
    eprintln!("schemathesis: {}", summary.join(" | "));
    assert!(
        out.status.success(),
        "schemathesis found responses that do not match the document:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested: 45"), "{report}");
}
