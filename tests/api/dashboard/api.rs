//! What the dashboard needs from the server, over plain HTTP: its embedded files with caching,
//! and the query API's comparisons, realtime range, minute buckets and prop keys.

use serde_json::json;

use crate::helpers::{hit_event, spawn_app, Seed, ADMIN_TOKEN};

#[actix_web::test]
async fn the_page_and_its_files_are_served_with_etags_gzip_and_immutable_urls() {
    let app = spawn_app().await;
    let res = awc::Client::builder()
        .disable_redirects()
        .finish()
        .get(app.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers().get("location").unwrap(), "/dashboard");

    for path in [
        "/dashboard",
        "/dashboard/shop.example",
        "/share/shop.example?auth=x",
        "/admin",
    ] {
        let res = app.request("GET", path, None, &[], None).await;
        assert_eq!(res.status, 200, "{path}");
        assert!(res.text.contains("<main id=\"app\""), "{path}");
        assert!(res.headers.get("content-security-policy").is_some());
        assert_eq!(res.headers.get("referrer-policy").unwrap(), "no-referrer");
    }
    let shell = app.request("GET", "/dashboard", None, &[], None).await;
    let etag = shell
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let again = app
        .request("GET", "/dashboard", None, &[("If-None-Match", &etag)], None)
        .await;
    assert_eq!(again.status, 304);

    let end = shell.text.find("/app.js").unwrap() + "/app.js".len();
    let start = shell.text[..end].rfind("/dashboard/assets/").unwrap();
    let script = &shell.text[start..end];
    let res = app.request("GET", script, None, &[], None).await;
    assert_eq!(res.status, 200, "{script}");
    assert!(res.text.contains("import"), "{}", &res.text[..100]);
    assert_eq!(
        res.headers.get("cache-control").unwrap(),
        "public, max-age=31536000, immutable"
    );
    assert!(res
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let etag = res
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let again = app
        .request("GET", script, None, &[("If-None-Match", &etag)], None)
        .await;
    assert_eq!(again.status, 304);
    // awc asks for gzip and decodes it; the header shows it came compressed.
    let zipped = app
        .request("GET", script, None, &[("Accept-Encoding", "gzip")], None)
        .await;
    assert_eq!(zipped.headers.get("content-encoding").unwrap(), "gzip");

    let missing = app
        .request("GET", "/dashboard/assets/0/nope.js", None, &[], None)
        .await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
}

#[actix_web::test]
async fn comparisons_realtime_minutes_and_prop_keys() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let key = property["read_key"].as_str().unwrap();
    let now = chrono::Utc::now();
    let two_minutes_ago = (now - chrono::Duration::minutes(2)).to_rfc3339();
    let seeds = [
        (1, "2026-11-01T10:00:00Z", "/a", &[("plan", "pro")][..]),
        (2, "2026-11-02T10:00:00Z", "/a", &[][..]),
        (
            3,
            "2026-11-08T10:00:00Z",
            "/a",
            &[("plan", "free"), ("author", "kim")][..],
        ),
        (4, "2026-11-08T11:00:00Z", "/b", &[("plan", "pro")][..]),
        (5, "2026-11-09T10:00:00Z", "/a", &[][..]),
        (6, "2026-11-09T10:00:00Z", "/a", &[][..]),
        (7, two_minutes_ago.as_str(), "/now", &[][..]),
    ];
    let hits = seeds
        .iter()
        .map(|(visitor, at, path, props)| {
            hit_event(
                &property,
                &Seed {
                    visitor: *visitor,
                    at,
                    name: "pageview",
                    url: &format!("https://shop.example{path}"),
                    props,
                },
            )
        })
        .collect();
    app.seed(hits).await;
    app.wait_projected().await;

    // Week of 8 November against the week before: by day, bucket i beside bucket i.
    let res = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": ["2026-11-08", "2026-11-14"],
                    "metrics": ["visitors"], "dimensions": ["time:day"],
                    "include": {"comparisons": {"mode": "previous_period"}}}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.body["meta"]["comparison_date_range"][0]
            .as_str()
            .unwrap()
            .get(..10),
        Some("2026-11-01")
    );
    let rows = res.body["results"].as_array().unwrap();
    assert_eq!(rows[0]["dimensions"], json!(["2026-11-08"]));
    assert_eq!(
        rows[0]["comparison"],
        json!({"dimensions": ["2026-11-01"], "metrics": [1], "change": [100]})
    );
    assert_eq!(
        rows[1]["comparison"],
        json!({"dimensions": ["2026-11-02"], "metrics": [1], "change": [100]})
    );

    // A breakdown pairs by value, whatever the other period's order.
    let res = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": ["2026-11-08", "2026-11-14"],
                    "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                    "order_by": [["visitors", "desc"]],
                    "include": {"comparisons": {"mode": "previous_period"}}}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let rows = res.body["results"].as_array().unwrap();
    assert_eq!(rows[0]["dimensions"], json!(["/a"]));
    assert_eq!(rows[0]["comparison"]["metrics"][0], json!(2));
    assert_eq!(rows[0]["comparison"]["change"][0], json!(50));
    assert_eq!(rows[1]["dimensions"], json!(["/b"]));
    assert_eq!(rows[1]["comparison"]["metrics"][0], json!(0));
    let bad = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": "7d", "metrics": ["visitors"],
                    "include": {"comparisons": {"mode": "year_over_year"}}}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_query"));

    // The last 30 minutes, by minute: thirty buckets, the hit in the one of its minute.
    let res = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": "realtime",
                    "metrics": ["visitors"], "dimensions": ["time:minute"],
                    "include": {"time_labels": true}}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let labels = res.body["meta"]["time_labels"].as_array().unwrap();
    assert_eq!(labels.len(), 30, "{labels:?}");
    let minute = (now - chrono::Duration::minutes(2))
        .format("%Y-%m-%d %H:%M:00")
        .to_string();
    assert!(labels.contains(&json!(minute)), "{minute} in {labels:?}");
    assert_eq!(
        res.body["results"],
        json!([{"dimensions": [minute], "metrics": [1]}])
    );
    let res = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": "last_month", "metrics": ["visitors"]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);

    // Prop keys, most used first, within the range.
    let res = app
        .get(
            "/api/v2/prop-keys?site_id=shop.example&date_range=2026-11-01,2026-11-14",
            key,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body, json!({"prop_keys": ["plan", "author"]}));
    let res = app
        .get(
            "/api/v2/prop-keys?site_id=shop.example&date_range=2026-11-02,2026-11-07",
            key,
        )
        .await;
    assert_eq!(res.body, json!({"prop_keys": []}));
    let res = app
        .get("/api/v2/prop-keys?site_id=shop.example", "wrong")
        .await;
    assert_eq!(res.status, 401);
}

#[actix_web::test]
async fn shared_link_requests_are_checked() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let path = format!("/api/admin/properties/{id}/shared-links");
    let send = |method: &'static str, path: String, body: &'static [u8]| {
        let app = &app;
        async move {
            app.request(
                method,
                &path,
                Some(ADMIN_TOKEN),
                &[("Content-Type", "application/json")],
                Some(body.to_vec()),
            )
            .await
        }
    };
    let res = send("POST", path.clone(), b"").await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.body["name"], "Shared link");
    let res = send("POST", path.clone(), b"{\"name\": 5}").await;
    assert_eq!((res.status, res.code()), (400, "invalid_json"));
    let res = send("POST", path.clone(), b"{\"name\": \"\"}").await;
    assert_eq!((res.status, res.code()), (400, "invalid_name"));
    let unknown = "/api/admin/properties/0190c7e6-5b8f-7000-8000-000000000001/shared-links";
    let res = send("POST", unknown.into(), b"{}").await;
    assert_eq!((res.status, res.code()), (404, "property_not_found"));
    let res = app.admin_get(unknown).await;
    assert_eq!((res.status, res.code()), (404, "property_not_found"));
    let res = send("DELETE", format!("{path}/not-a-uuid"), b"").await;
    assert_eq!((res.status, res.code()), (404, "shared_link_not_found"));
    let listed = app.admin_get(&path).await;
    assert_eq!(listed.body["shared_links"].as_array().unwrap().len(), 1);
    let res = app
        .request("POST", &path, None, &[], Some(b"{}".to_vec()))
        .await;
    assert_eq!(res.status, 401);
}

#[actix_web::test]
async fn goals_break_down_by_revenue_in_order() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    app.set_goals(
        &property,
        json!([{"event": "Small"}, {"event": "Big"}, {"event": "Free"}]),
    )
    .await;
    let sale = |visitor: u64, name: &'static str, amount: Option<&str>| {
        let mut hit = hit_event(
            &property,
            &Seed {
                visitor,
                at: "2026-11-02T10:00:00Z",
                name,
                url: "https://shop.example/checkout",
                props: &[],
            },
        );
        hit.revenue = amount.map(|a| footfall::domain::Revenue::parse("EUR", a).unwrap());
        hit
    };
    app.seed(vec![
        sale(1, "Small", Some("5")),
        sale(2, "Small", Some("5")),
        sale(3, "Big", Some("90")),
        sale(4, "Free", None),
    ])
    .await;
    app.wait_projected().await;
    // The goals panel's query: ordered by the first metric, revenue (an object), in SQL.
    let res = app
        .query(
            property["read_key"].as_str().unwrap(),
            &json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-07"],
                    "metrics": ["total_revenue", "visitors", "conversion_rate"],
                    "dimensions": ["event:goal"]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let goals: Vec<&str> = res.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dimensions"][0].as_str().unwrap())
        .collect();
    assert_eq!(goals, ["Big", "Small", "Free"]);
    assert_eq!(
        res.body["results"][0]["metrics"],
        json!([{"value": 90.0, "currency": "EUR"}, 1, 25.0])
    );
}
