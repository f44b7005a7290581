//! A tiny run of the load generator, so it cannot rot: every hit it sends is acked, in both modes,
//! and the log holds exactly the acked hits.

use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, ADMIN_TOKEN};

async fn loadgen(app: &TestApp, extra: &[&str]) -> Value {
    let mut args: Vec<String> = [
        "loadgen",
        "--url",
        &app.address,
        "--admin-token",
        ADMIN_TOKEN,
        "--properties",
        "20",
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_footfall"))
            .args(&args)
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn hits_in_log(app: &TestApp) -> u64 {
    let n: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(last_position - first_position + 1), 0)::bigint FROM event_batches WHERE category = 'hits'",
    )
        .fetch_one(&app.pool)
        .await
        .unwrap();
    n as u64
}

#[actix_web::test]
async fn a_small_load_is_fully_acked_and_logged_exactly_once() {
    // The generator gives every visitor an address through X-Forwarded-For.
    let app = spawn_app_with(&[("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let closed = loadgen(
        &app,
        &["--concurrency", "8", "--hits", "300", "--duration", "120"],
    )
    .await;
    assert_eq!(closed["sent"], 300, "{closed}");
    assert_eq!(closed["acked"], 300, "{closed}");
    let statuses: Vec<&String> = closed["by_status"].as_object().unwrap().keys().collect();
    assert!(
        statuses
            .iter()
            .all(|s| ["200", "202", "204"].contains(&s.as_str())),
        "{statuses:?}"
    );
    assert!(closed["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(hits_in_log(&app).await, 300);

    // Open loop, reusing the registered properties.
    let open = loadgen(&app, &["--rate", "200", "--duration", "1"]).await;
    let sent = open["sent"].as_u64().unwrap();
    assert!((150..=200).contains(&sent), "{open}");
    assert_eq!(open["acked"], sent, "{open}");
    assert_eq!(hits_in_log(&app).await, 300 + sent);
    let properties = app.admin_get("/api/admin/properties?limit=1000").await;
    assert_eq!(
        properties.body["properties"].as_array().unwrap().len(),
        20,
        "properties are reused, not registered twice"
    );
}
