//! History from web-server access logs: the `footfall import access-log` command (a real process)
//! and the admin API's imports, against a fixture with known pageviews, visitors, bots, assets,
//! redirects and errors, and against the real example log that Debian's `logstalgia` ships.
//! Re-importing changes nothing, and no client address reaches the log.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/access.log");
/// Real lines: a 2009 Apache log of 3,260 requests, with host names for clients.
const LOGSTALGIA: &str = "/usr/share/logstalgia/example.log";

/// Runs `footfall import access-log` against the test's database; returns its JSON lines.
fn import_cli(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args(["import", "access-log"])
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .env("FOOTFALL_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

fn counts(v: &Value) -> Vec<i64> {
    [
        "lines",
        "pageviews",
        "bots",
        "assets",
        "redirects",
        "errors",
        "other",
        "invalid",
    ]
    .iter()
    .map(|k| v[k].as_i64().unwrap())
    .collect()
}

#[actix_web::test]
async fn an_access_log_becomes_pageviews_by_their_own_time_once() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let (id, key) = (
        property["id"].as_str().unwrap(),
        property["read_key"].as_str().unwrap(),
    );
    let before = app.log_events().await;

    let printed = import_cli(&app, &["--domain", "shop.example", FIXTURE]);
    let report = &printed[0]["counts"];
    // lines, pageviews (the bot's included), bots, assets, redirects, errors, other, invalid
    assert_eq!(counts(report), vec![12, 5, 1, 2, 1, 2, 1, 1], "{report}");
    assert_eq!(app.log_events().await, before + 5);
    let status = app
        .admin_get(&format!(
            "/api/admin/properties/{id}/imports/{}",
            printed[0]["import"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status.body["state"], "done", "{}", status.text);
    assert_eq!(counts(&status.body), counts(report));

    // The same file again, gzipped, over HTTP: the same counts, nothing appended.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&std::fs::read(FIXTURE).unwrap()).unwrap();
        e.finish().unwrap()
    };
    let again = app
        .import(
            id,
            "combined",
            "upload.log",
            std::fs::read(FIXTURE).unwrap(),
        )
        .await;
    assert_eq!(counts(&again), counts(report), "{again}");
    let zipped = app.import(id, "combined", "upload.log", gz).await;
    assert_eq!(counts(&zipped), counts(report), "{zipped}");
    app.wait_projected().await;
    assert_eq!(
        app.log_events().await,
        before + 5,
        "a re-import appends nothing"
    );

    // No client address in the log.
    let stream = app.stream(&format!("hits-{id}")).await;
    let text = serde_json::to_string(&stream).unwrap();
    assert!(!text.contains("203.0.113") && !text.contains("198.51.100"));

    // Reports: by the hits' own times, offsets honoured, the bot apart.
    let q = |body: Value| {
        let app = &app;
        async move { app.query(key, &body).await.body }
    };
    let r = q(
        json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-02"],
                     "metrics": ["visitors", "pageviews"]}),
    )
    .await;
    assert_eq!(r["results"][0]["metrics"], json!([3, 4]), "{r}");
    let r = q(
        json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-01"],
                     "metrics": ["visitors"], "dimensions": ["time:hour"]}),
    )
    .await;
    assert_eq!(
        r["results"],
        json!([{"dimensions": ["2026-11-01 10:00:00"], "metrics": [2]}]),
        "11:00 +0100 is 10:00 UTC: {r}"
    );
    let r = q(
        json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-02"],
                     "metrics": ["visitors"], "dimensions": ["visit:source"]}),
    )
    .await;
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .contains(&json!({"dimensions": ["Google"], "metrics": [1]})),
        "{r}"
    );
    let bots = app
        .get(
            "/api/v1/stats/bots?site_id=shop.example&period=custom&date=2026-11-01,2026-11-02",
            key,
        )
        .await;
    assert_eq!(bots.body["total_hits"], 1, "{}", bots.text);
}

#[actix_web::test]
async fn the_real_logstalgia_example_log_imports_with_every_line_accounted_for() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "Pacific/Auckland").await;
    let key = property["read_key"].as_str().unwrap();
    let before = app.log_events().await;
    let printed = import_cli(&app, &["--domain", "shop.example", LOGSTALGIA]);
    let c = counts(&printed[0]["counts"]);
    eprintln!(
        "logstalgia: lines, pageviews, bots, assets, redirects, errors, other, invalid = {c:?}"
    );
    assert_eq!(c[0], 3260, "every line read");
    assert_eq!(c[7], 0, "every line parsed");
    assert_eq!(
        c[0],
        c[1] + c[3] + c[4] + c[5] + c[6] + c[7],
        "every line counted once"
    );
    assert!(c[1] > 0 && c[3] > 0 && c[4] > 0 && c[5] > 0);
    assert_eq!(app.log_events().await, before + c[1] as u64);
    app.wait_projected().await;
    // Reports show the non-bot pageviews on the log's day, in the property's time zone (+12:00).
    let r = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": ["2009-04-22", "2009-04-23"],
                    "metrics": ["pageviews", "visitors"]}),
        )
        .await;
    assert_eq!(
        r.body["results"][0]["metrics"][0].as_i64().unwrap(),
        c[1] - c[2],
        "{}",
        r.text
    );
    assert!(r.body["results"][0]["metrics"][1].as_i64().unwrap() > 1);
    // Again: nothing more.
    import_cli(&app, &["--domain", "shop.example", LOGSTALGIA]);
    assert_eq!(app.log_events().await, before + c[1] as u64);
}

#[actix_web::test]
async fn import_requests_are_checked() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let post = |path: String, body: &'static [u8], token: Option<&'static str>| {
        let app = &app;
        async move {
            app.request("POST", &path, token, &[], Some(body.to_vec()))
                .await
        }
    };
    let base = format!("/api/admin/properties/{id}/imports");
    let res = post(format!("{base}?format=xml"), b"x", Some(ADMIN_TOKEN)).await;
    assert_eq!((res.status, res.code()), (400, "invalid_format"));
    let res = post(base.clone(), b"", Some(ADMIN_TOKEN)).await;
    assert_eq!((res.status, res.code()), (400, "empty_body"));
    let res = post(base.clone(), b"x", None).await;
    assert_eq!(res.status, 401);
    let unknown = "/api/admin/properties/0190c7e6-5b8f-7000-8000-000000000001/imports".to_owned();
    let res = post(unknown, b"x", Some(ADMIN_TOKEN)).await;
    assert_eq!((res.status, res.code()), (404, "property_not_found"));
    let res = app
        .admin_get(&format!("{base}/0190c7e6-5b8f-7000-8000-000000000001"))
        .await;
    assert_eq!((res.status, res.code()), (404, "import_not_found"));
    let listed = app.admin_get(&base).await;
    assert_eq!(listed.body, json!({"imports": []}));
}
