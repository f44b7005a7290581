//! The Plausible Events API: acceptance, durability, bad input, back-pressure, privacy.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{eventually, spawn_app, spawn_app_with};

fn pageview(domain: &str, url: &str) -> Value {
    json!({"name": "pageview", "url": url, "domain": domain, "referrer": "https://news.example/item?id=1"})
}

fn hits_of(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "HitRecorded")
        .collect()
}

#[actix_web::test]
async fn a_pageview_is_acked_with_202_and_is_in_the_log() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "Europe/Berlin").await;
    let res = app
        .post_event(
            &pageview(
                "shop.example",
                "https://shop.example/products/1?utm_source=x",
            ),
            &[],
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.text, "ok");

    // 202 means durable: the event is in the log now, no waiting.
    let events = app
        .stream(&format!("hits-{}", p["id"].as_str().unwrap()))
        .await;
    assert_eq!(events.len(), 1);
    let hit = &events[0]["data"];
    assert_eq!(events[0]["type"], "HitRecorded");
    assert_eq!(events[0]["schema_version"], 2, "the binary encoding");
    assert_eq!(hit["property_id"], p["id"]);
    assert_eq!(hit["name"], "pageview");
    assert_eq!(hit["url"], "https://shop.example/products/1?utm_source=x");
    assert_eq!(hit["referrer"], "https://news.example/item?id=1");
    assert_eq!(
        hit["user_agent"],
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
    );
    assert_eq!(hit["interactive"], true);
    assert_eq!(hit["protocol"], "plausible");
    assert_eq!(hit["visitor_key"].as_str().unwrap().len(), 16);
    assert!(
        uuid::Uuid::parse_str(events[0]["id"].as_str().unwrap())
            .unwrap()
            .get_version_num()
            == 7
    );
}

#[actix_web::test]
async fn short_field_names_props_and_revenue_are_recorded() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let body = json!({
        "n": "Purchase", "u": "https://shop.example/checkout#done", "d": "shop.example", "r": null,
        "p": "{\"plan\":\"pro\",\"seats\":3}", "$": "{\"currency\":\"usd\",\"amount\":\"19.90\"}",
        "h": 1, "i": false
    });
    let res = app
        .post_event(&body, &[("Content-Type", "application/json")])
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let events = app
        .stream(&format!("hits-{}", p["id"].as_str().unwrap()))
        .await;
    let hit = &events[0]["data"];
    assert_eq!(hit["name"], "Purchase");
    assert_eq!(hit["props"], json!([["plan", "pro"], ["seats", "3"]]));
    assert_eq!(
        hit["revenue"],
        json!({"currency": "USD", "amount": "19.90"})
    );
    assert_eq!(hit["hash_mode"], true);
    assert_eq!(hit["interactive"], false);
    assert!(hit.get("referrer").is_none());
}

#[actix_web::test]
async fn several_domains_record_the_hit_for_each_known_one_that_allows_the_page() {
    let app = spawn_app().await;
    let a = app.register("a.example", "UTC").await;
    let b = app.register("b.example", "UTC").await;
    let c = app.register("c.example", "UTC").await;
    // b.example rolls up a.example's pages; c.example does not accept them.
    let res = app
        .request(
            "PUT",
            &format!(
                "/api/admin/properties/{}/hostnames",
                b["id"].as_str().unwrap()
            ),
            Some(crate::helpers::ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(br#"{"hostnames":["a.example"]}"#.to_vec()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app
        .post_event(
            &pageview(
                "a.example, b.example,c.example,unknown.example",
                "https://a.example/",
            ),
            &[],
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    for (p, expected) in [(&a, 1), (&b, 1), (&c, 0)] {
        let events = app
            .stream(&format!("hits-{}", p["id"].as_str().unwrap()))
            .await;
        assert_eq!(events.len(), expected, "{}", p["domain"]);
    }
}

#[actix_web::test]
async fn bad_input_gets_a_4xx_code_and_appends_nothing() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    let before = app.log_events().await;
    let url = "https://shop.example/";
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = pageview("shop.example", url);
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("invalid json", b"{\"name\":".to_vec(), 400, "invalid_json"),
        ("not an object", b"[]".to_vec(), 400, "invalid_json"),
        ("empty body", Vec::new(), 400, "invalid_json"),
        (
            "name is a number",
            with(&|v| v["name"] = json!(1)),
            400,
            "invalid_field",
        ),
        (
            "url is an object",
            with(&|v| v["url"] = json!({})),
            400,
            "invalid_field",
        ),
        (
            "props is a list",
            with(&|v| v["props"] = json!([1])),
            400,
            "invalid_field",
        ),
        (
            "missing name",
            with(&|v| {
                v.as_object_mut().unwrap().remove("name");
            }),
            400,
            "missing_field",
        ),
        (
            "missing url",
            with(&|v| {
                v.as_object_mut().unwrap().remove("url");
            }),
            400,
            "missing_field",
        ),
        (
            "missing domain",
            with(&|v| {
                v.as_object_mut().unwrap().remove("domain");
            }),
            400,
            "missing_field",
        ),
        (
            "name of 121 chars",
            with(&|v| v["name"] = json!("n".repeat(121))),
            400,
            "name_too_long",
        ),
        (
            "url of 2001 chars",
            with(&|v| v["url"] = json!(format!("{url}{}", "a".repeat(2001 - url.len())))),
            400,
            "url_too_long",
        ),
        (
            "javascript url",
            with(&|v| v["url"] = json!("javascript:alert(1)")),
            400,
            "invalid_url",
        ),
        (
            "ftp url",
            with(&|v| v["url"] = json!("ftp://shop.example/file")),
            400,
            "invalid_url",
        ),
        (
            "31 props",
            with(&|v| {
                v["props"] = (0..31)
                    .map(|i| (format!("k{i}"), json!("v")))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            }),
            400,
            "too_many_props",
        ),
        (
            "nested prop",
            with(&|v| v["props"] = json!({"a": {"b": 1}})),
            400,
            "invalid_props",
        ),
        (
            "bad revenue",
            with(&|v| v["revenue"] = json!({"currency": "EURO", "amount": 1})),
            400,
            "invalid_revenue",
        ),
        (
            "unknown domain",
            with(&|v| v["domain"] = json!("other.example")),
            400,
            "unknown_domain",
        ),
        (
            "body over 64 KiB",
            with(&|v| v["props"] = json!({"big": "x".repeat(70 * 1024)})),
            413,
            "payload_too_large",
        ),
    ];
    for (what, body, status, code) in cases {
        let res = app
            .request(
                "POST",
                "/api/event",
                None,
                &[("Content-Type", "text/plain")],
                Some(body),
            )
            .await;
        assert_eq!(
            (res.status, res.code()),
            (status, code),
            "{what}: {}",
            res.text
        );
        assert!(
            res.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    // The limits themselves are accepted.
    let ok = with(&|v| {
        v["name"] = json!("n".repeat(120));
        v["props"] = (0..30)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    });
    let res = app.request("POST", "/api/event", None, &[], Some(ok)).await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(
        app.log_events().await,
        before + 1,
        "only the valid hit may be appended"
    );
}

#[actix_web::test]
async fn cors_preflight_and_headers_let_any_origin_post() {
    let app = spawn_app().await;
    let res = app
        .request(
            "OPTIONS",
            "/api/event",
            None,
            &[
                ("Origin", "https://shop.example"),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(res.status, 204);
    assert_eq!(res.headers.get("access-control-allow-origin").unwrap(), "*");
    assert!(res
        .headers
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("POST"));
    let res = app
        .post_event(
            &pageview("nope.example", "https://nope.example/"),
            &[("Origin", "https://x.example")],
        )
        .await;
    assert_eq!(res.headers.get("access-control-allow-origin").unwrap(), "*");
}

#[actix_web::test]
async fn visitor_keys_use_forwarded_ips_only_from_trusted_proxies_and_no_ip_is_stored() {
    let trusted = spawn_app_with(&[("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let untrusted = spawn_app().await;
    for app in [&trusted, &untrusted] {
        app.register("shop.example", "UTC").await;
        for ip in ["203.0.113.7", "203.0.113.7", "198.51.100.23"] {
            let res = app
                .post_event(
                    &pageview("shop.example", "https://shop.example/"),
                    &[("X-Forwarded-For", ip)],
                )
                .await;
            assert_eq!(res.status, 202);
        }
    }
    async fn keys(app: &crate::helpers::TestApp) -> Vec<String> {
        app.log_hits()
            .await
            .into_iter()
            .map(|h| String::from(h.visitor_key))
            .collect()
    }
    let t = keys(&trusted).await;
    assert_eq!(t[0], t[1], "same IP and user agent: same visitor");
    assert_ne!(t[0], t[2], "another forwarded IP: another visitor");
    let u = keys(&untrusted).await;
    assert!(
        u[0] == u[1] && u[1] == u[2],
        "an untrusted X-Forwarded-For is ignored"
    );

    // Privacy: no raw IP anywhere in the log, neither in the stored bytes (as text or as the
    // address's own bytes) nor in what the events decode to.
    let ips: [std::net::IpAddr; 3] = [
        "203.0.113.7".parse().unwrap(),
        "198.51.100.23".parse().unwrap(),
        "127.0.0.1".parse().unwrap(),
    ];
    for app in [&trusted, &untrusted] {
        for ip in ips {
            let std::net::IpAddr::V4(v4) = ip else {
                unreachable!()
            };
            let leaked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM event_batches \
                 WHERE position(convert_to($1, 'UTF8') IN records) > 0 OR position($2 IN records) > 0",
            )
            .bind(ip.to_string())
            .bind(v4.octets().to_vec())
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(leaked, 0, "{ip} in the stored log");
        }
        for hit in app.log_hits().await {
            let json = serde_json::to_string(&hit).unwrap();
            assert!(
                ips.iter().all(|ip| !json.contains(&ip.to_string())),
                "{json}"
            );
        }
    }
}

#[actix_web::test]
async fn a_thousand_concurrent_posts_are_all_acked_and_logged_exactly_once() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let posts = (0..1000).map(|i| {
        let body = pageview("shop.example", &format!("https://shop.example/page?i={i}"));
        let app = &app;
        async move { app.post_event(&body, &[]).await.status }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(
        statuses.iter().all(|s| *s == 202),
        "{:?}",
        statuses.iter().filter(|s| **s != 202).collect::<Vec<_>>()
    );

    let events = app
        .stream(&format!("hits-{}", p["id"].as_str().unwrap()))
        .await;
    let hits = hits_of(&events);
    assert_eq!(hits.len(), 1000);
    let mut per_url: HashMap<&str, usize> = HashMap::new();
    for h in &hits {
        *per_url
            .entry(h["data"]["url"].as_str().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_url.len(), 1000);
    assert!(per_url.values().all(|n| *n == 1));
    let revisions: Vec<u64> = hits
        .iter()
        .map(|h| h["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, (0..1000).collect::<Vec<_>>());
}

/// Holds the log's append lock from outside, so the appender's batch blocks and its queue fills.
#[actix_web::test]
async fn a_full_queue_answers_503_with_retry_after_and_loses_no_acked_hit() {
    let app = spawn_app_with(&[
        ("FOOTFALL_APPEND_QUEUE", "2"),
        ("FOOTFALL_APPEND_MAX_BATCH", "1"),
    ])
    .await;
    let p = app.register("shop.example", "UTC").await;
    let mut blocker = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let mut tx = blocker.begin().await.unwrap();
    sqlx::query("SELECT position FROM event_log_head FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();

    let refusals = Cell::new(0);
    let posts = (0..40).map(|i| {
        let body = pageview("shop.example", &format!("https://shop.example/?i={i}"));
        let (app, refusals) = (&app, &refusals);
        async move {
            let res = app.post_event(&body, &[]).await;
            if res.status == 503 {
                refusals.set(refusals.get() + 1);
            }
            res
        }
    });
    let release = async {
        eventually(
            Duration::from_secs(20),
            "a request refused for a full queue",
            || {
                let refused = refusals.get() > 0;
                async move { refused.then_some(()) }
            },
        )
        .await;
        tx.rollback().await.unwrap();
    };
    let (responses, ()) = tokio::join!(futures_util::future::join_all(posts), release);

    let accepted: Vec<_> = responses.iter().filter(|r| r.status == 202).collect();
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        accepted.len() + refused.len(),
        40,
        "only 202 or 503 are expected"
    );
    assert!(!refused.is_empty() && !accepted.is_empty());
    for r in &refused {
        assert_eq!(r.code(), "overloaded", "{}", r.text);
        assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    }
    // Exactly the acked hits are in the log.
    let events = app
        .stream(&format!("hits-{}", p["id"].as_str().unwrap()))
        .await;
    assert_eq!(hits_of(&events).len(), accepted.len());
}

/// The database refuses connections for a while: collection answers 503 within its timeout, never
/// hangs, and recovers by itself when the database is back.
#[actix_web::test]
async fn a_database_outage_answers_503_in_time_and_recovers() {
    let app = spawn_app_with(&[
        ("FOOTFALL_DB_TIMEOUT_MS", "500"),
        ("FOOTFALL_APPEND_TIMEOUT_MS", "2000"),
    ])
    .await;
    let p = app.register("shop.example", "UTC").await;
    assert_eq!(
        app.post_event(&pageview("shop.example", "https://shop.example/1"), &[])
            .await
            .status,
        202
    );

    let db = app.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin =
        sqlx::PgConnection::connect(&format!("{}/postgres", crate::helpers::server_url()))
            .await
            .unwrap();
    let set_allowed =
        |allowed: bool| format!(r#"ALTER DATABASE "{db}" ALLOW_CONNECTIONS {allowed}"#);
    sqlx::query(&set_allowed(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db)
        .execute(&mut admin)
        .await
        .unwrap();

    for i in 0..3 {
        let started = Instant::now();
        let res = app
            .post_event(
                &pageview("shop.example", &format!("https://shop.example/down{i}")),
                &[],
            )
            .await;
        assert_eq!(
            (res.status, res.code()),
            (503, "unavailable"),
            "{}",
            res.text
        );
        assert!(res.headers.get("retry-after").is_some());
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
    }

    sqlx::query(&set_allowed(true))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut attempts = 0;
    eventually(Duration::from_secs(20), "collection to recover", || {
        attempts += 1;
        let body = pageview(
            "shop.example",
            &format!("https://shop.example/up{attempts}"),
        );
        let app = &app;
        async move { (app.post_event(&body, &[]).await.status == 202).then_some(()) }
    })
    .await;
    let events = app
        .stream(&format!("hits-{}", p["id"].as_str().unwrap()))
        .await;
    let urls: Vec<&str> = hits_of(&events)
        .iter()
        .map(|h| h["data"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.first(), Some(&"https://shop.example/1"));
    assert_eq!(
        urls.last()
            .map(|u| u.starts_with("https://shop.example/up")),
        Some(true)
    );
    assert!(
        !urls.iter().any(|u| u.contains("/down")),
        "a refused hit must not be written"
    );
}
