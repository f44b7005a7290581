//! Property registration and the admin views of the log.

use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_TOKEN};

#[actix_web::test]
async fn healthz_and_readyz_answer_200() {
    let app = spawn_app().await;
    assert_eq!(
        app.request("GET", "/healthz", None, &[], None).await.status,
        200
    );
    assert_eq!(
        app.request("GET", "/readyz", None, &[], None).await.status,
        200
    );
    let res = app.request("GET", "/nope", None, &[], None).await;
    assert_eq!((res.status, res.code()), (404, "not_found"));
}

#[actix_web::test]
async fn registering_a_property_returns_it_with_credentials() {
    let app = spawn_app().await;
    let res = app
        .admin_post(
            "/api/admin/properties",
            &json!({"domain": "Shop.Example", "timezone": "Europe/Berlin", "name": "Shop"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let p = &res.body;
    assert_eq!(p["domain"], "shop.example");
    assert_eq!(p["timezone"], "Europe/Berlin");
    assert_eq!(p["name"], "Shop");
    assert!(uuid::Uuid::parse_str(p["id"].as_str().unwrap()).is_ok());
    let mid = p["measurement_id"].as_str().unwrap();
    assert!(mid.starts_with("G-") && mid.len() == 12, "{mid}");
    assert_eq!(p["api_secret"].as_str().unwrap().len(), 22);
    assert_eq!(p["read_key"].as_str().unwrap().len(), 32);

    // Listed right away (read-your-writes through the projection).
    let list = app.admin_get("/api/admin/properties").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["properties"][0]["id"], p["id"]);

    // Event-sourced: the aggregate's stream and the domain claim.
    let id = p["id"].as_str().unwrap();
    let events = app.stream(&format!("property-{id}")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "PropertyRegistered");
    assert_eq!(events[0]["data"]["domain"], "shop.example");
    let claims = app.stream("domain-shop.example").await;
    assert_eq!(claims[0]["type"], "DomainClaimed");
    assert_eq!(claims[0]["data"]["property_id"], p["id"]);
}

#[actix_web::test]
async fn a_taken_domain_is_refused_even_under_concurrency() {
    let app = spawn_app().await;
    let body = json!({"domain": "race.example", "timezone": "UTC"});
    let attempts = (0..8).map(|_| app.admin_post("/api/admin/properties", &body));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == 409 && r.code() == "domain_taken")
        .count();
    assert_eq!((created, conflicts), (1, 7));
    let again = app
        .admin_post("/api/admin/properties", &json!({"domain": "RACE.example."}))
        .await;
    assert_eq!((again.status, again.code()), (409, "domain_taken"));
    assert_eq!(
        app.admin_get("/api/admin/properties").await.body["properties"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[actix_web::test]
async fn invalid_registrations_get_400_with_codes() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"domain": "shop.example", "timezone": "Mars/Olympus"}),
            "invalid_timezone",
        ),
        (
            json!({"domain": "http://shop.example/x", "timezone": "UTC"}),
            "invalid_domain",
        ),
        (json!({"domain": "", "timezone": "UTC"}), "invalid_domain"),
        (
            json!({"domain": "shop.example", "name": "x".repeat(121)}),
            "invalid_name",
        ),
        (json!({"domain": 5}), "invalid_json"),
        (json!({"timezone": "UTC"}), "invalid_json"),
    ];
    for (body, code) in cases {
        let res = app.admin_post("/api/admin/properties", &body).await;
        assert_eq!(
            (res.status, res.code()),
            (400, code),
            "{body}: {}",
            res.text
        );
    }
    let res = app
        .request(
            "POST",
            "/api/admin/properties",
            Some(ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(b"{".to_vec()),
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_json"));
    assert_eq!(
        app.log_events().await,
        0,
        "nothing may be appended for bad input"
    );
}

#[actix_web::test]
async fn the_admin_api_needs_the_admin_token() {
    let app = spawn_app().await;
    let body = Some(br#"{"domain":"shop.example"}"#.to_vec());
    let json = [("Content-Type", "application/json")];
    for token in [None, Some("wrong"), Some("")] {
        let res = app
            .request("POST", "/api/admin/properties", token, &json, body.clone())
            .await;
        assert_eq!((res.status, res.code()), (401, "unauthorized"));
        for path in [
            "/api/admin/properties",
            "/api/admin/log",
            "/api/admin/streams/x",
        ] {
            let res = app.request("GET", path, token, &[], None).await;
            assert_eq!((res.status, res.code()), (401, "unauthorized"), "{path}");
        }
    }
    assert_eq!(app.log_events().await, 0);
}

#[actix_web::test]
async fn the_log_endpoints_page_through_streams() {
    let app = spawn_app().await;
    app.register("a.example", "UTC").await;
    let head = app.admin_get("/api/admin/log").await;
    assert_eq!(head.body, json!({"head": 2, "events": 2}));
    let res = app
        .admin_get("/api/admin/streams/domain-a.example?from=0&limit=1")
        .await;
    assert_eq!(res.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(res.body["events"][0]["revision"], 0);
    assert_eq!(res.body["events"][0]["position"], 1);
    assert_eq!(res.body["next_from"], 1);
    let res = app.admin_get("/api/admin/streams/nothing-here").await;
    assert_eq!((res.status, res.code()), (404, "stream_not_found"));
    let res = app
        .admin_get("/api/admin/streams/domain-a.example?limit=0")
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_limit"));
    let res = app
        .admin_get("/api/admin/streams/domain-a.example?from=-1")
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_query"));
}

#[actix_web::test]
async fn the_cli_registers_properties_with_the_same_json() {
    let app = spawn_app().await;
    // Off the test's thread: that thread also runs the server's actors.
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let url = app.database_url.clone();
        actix_web::rt::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_footfall"))
                .args(&args)
                .env("DATABASE_URL", url)
                .env("RUST_LOG", "error")
                .output()
                .unwrap()
        })
    };
    let out = run(&[
        "property",
        "add",
        "--domain",
        "cli.example",
        "--timezone",
        "Asia/Kolkata",
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["domain"], "cli.example");
    assert_eq!(printed["timezone"], "Asia/Kolkata");
    // The server sees it, with identical fields.
    let listed = app.admin_get("/api/admin/properties").await.body["properties"][0].clone();
    for field in [
        "id",
        "domain",
        "timezone",
        "name",
        "measurement_id",
        "api_secret",
        "read_key",
    ] {
        assert_eq!(listed[field], printed[field], "{field}");
    }
    let again = run(&["property", "add", "--domain", "cli.example"])
        .await
        .unwrap();
    assert!(!again.status.success());
    let absent = run(&["property", "add", "--domain", "cli.example", "--if-absent"])
        .await
        .unwrap();
    assert!(absent.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&absent.stdout).unwrap()["id"],
        printed["id"]
    );
    let bad = run(&[
        "property",
        "add",
        "--domain",
        "x.example",
        "--timezone",
        "Nowhere/Here",
    ])
    .await
    .unwrap();
    assert!(!bad.status.success());
}

/// A burst of lookups of a property that a node has not cached (a dashboard's reports, on a node
/// just started) reads the read model once: the others wait for that read and take its answer
/// from the cache. An unknown domain too.
#[actix_web::test]
async fn a_burst_of_lookups_of_an_uncached_property_reads_it_once() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    use footfall::domain::Domain;
    use footfall::eventlog::postgres::PgEventLog;
    use footfall::services::Properties;
    use sqlx::postgres::PgPoolOptions;

    let app = spawn_app().await;
    app.register("burst.example", "UTC").await;
    // A node of its own: an empty cache, and a pool that counts the connections it hands out.
    let taken = Arc::new(AtomicUsize::new(0));
    let (on_connect, on_acquire) = (taken.clone(), taken.clone());
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .after_connect(move |_, _| {
            on_connect.fetch_add(1, SeqCst);
            Box::pin(async { Ok(()) })
        })
        .before_acquire(move |_, _| {
            on_acquire.fetch_add(1, SeqCst);
            Box::pin(async { Ok(true) })
        })
        .connect_lazy(&app.database_url)
        .unwrap();
    let properties = Properties::new(Arc::new(PgEventLog::new(pool.clone())), pool, 1 << 20);
    for (domain, known) in [("burst.example", true), ("unknown.example", false)] {
        let before = taken.load(SeqCst);
        let domain = Domain::parse(domain).unwrap();
        let found =
            futures_util::future::join_all((0..50).map(|_| properties.by_domain(&domain))).await;
        let statements = taken.load(SeqCst) - before;
        eprintln!("{domain}: 50 lookups at once took {statements} connection(s)");
        for f in found {
            assert_eq!(f.unwrap().is_some(), known, "{domain}");
        }
        assert_eq!(statements, 1, "{domain}");
    }
}
