//! Collection protocols besides Plausible's: GA4 Measurement Protocol, gtag.js, Umami, and our
//! tracker script, plus the hostname allow-list and cross-protocol equivalence.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, TestApp, ADMIN_TOKEN};

fn hits(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "HitRecorded")
        .map(|e| e["data"].clone())
        .collect()
}

async fn recorded(app: &TestApp, p: &Value) -> Vec<Value> {
    hits(
        &app.stream(&format!("hits-{}", p["id"].as_str().unwrap()))
            .await,
    )
}

fn mp_path(p: &Value, debug: bool, secret: Option<&str>) -> String {
    format!(
        "{}/mp/collect?measurement_id={}&api_secret={}",
        if debug { "/debug" } else { "" },
        p["measurement_id"].as_str().unwrap(),
        secret.unwrap_or_else(|| p["api_secret"].as_str().unwrap())
    )
}

async fn post_json(app: &TestApp, path: &str, body: &Value) -> crate::helpers::Response {
    app.request(
        "POST",
        path,
        None,
        &[("Content-Type", "application/json")],
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

/// The shape of Google's documentation example, with a page view and a purchase.
fn mp_body() -> Value {
    let now = chrono::Utc::now().timestamp_micros();
    json!({
        "client_id": "123456.7654321",
        "user_id": "user-42",
        "timestamp_micros": now - 60_000_000,
        "user_properties": {"customer_tier": {"value": "premium"}},
        "events": [
            {"name": "page_view", "params": {"page_location": "https://shop.example/cart", "page_title": "Cart",
             "page_referrer": "https://google.com/", "session_id": "1700000000", "engagement_time_msec": 1200}},
            {"name": "purchase", "params": {"currency": "EUR", "value": 30.03, "transaction_id": "T_12345",
             "session_id": "1700000000", "items": [{"item_id": "SKU_1", "price": 10.01, "quantity": 3}]}}
        ]
    })
}

#[actix_web::test]
async fn the_measurement_protocol_records_valid_events() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let res = post_json(&app, &mp_path(&p, false, None), &mp_body()).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let h = recorded(&app, &p).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["name"], "pageview");
    assert_eq!(h[0]["url"], "https://shop.example/cart");
    assert_eq!(h[0]["title"], "Cart");
    assert_eq!(h[0]["session_id"], "1700000000");
    assert_eq!(h[0]["engagement_ms"], 1200);
    assert_eq!(h[0]["client_id"], "123456.7654321");
    assert_eq!(h[0]["protocol"], "ga4");
    // Backdated by timestamp_micros (a minute).
    let at: chrono::DateTime<chrono::Utc> = h[0]["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now() - at).num_seconds() >= 59);
    assert_eq!(h[1]["name"], "purchase");
    assert_eq!(
        h[1]["revenue"],
        json!({"currency": "EUR", "amount": "30.03"})
    );
    assert_eq!(
        h[1]["url"], "https://shop.example/",
        "server-side events without a page get the site's root"
    );
    assert_eq!(h[1]["props"], json!([["transaction_id", "T_12345"]]));
    assert_eq!(
        h[0]["visitor_key"], h[1]["visitor_key"],
        "the client id identifies the visitor"
    );
}

#[actix_web::test]
async fn the_measurement_protocol_drops_what_is_invalid_and_the_wrong_secret_records_nothing() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let before = app.log_events().await;
    assert_eq!(
        post_json(&app, &mp_path(&p, false, Some("wrong")), &mp_body())
            .await
            .status,
        204
    );
    let unknown = format!(
        "/mp/collect?measurement_id=G-NOPE&api_secret={}",
        p["api_secret"].as_str().unwrap()
    );
    assert_eq!(post_json(&app, &unknown, &mp_body()).await.status, 204);
    assert_eq!(
        app.log_events().await,
        before,
        "nothing recorded without the right secret"
    );

    // One valid and one reserved event: the valid one is recorded.
    let mixed = json!({"client_id": "c", "events": [{"name": "signup"}, {"name": "first_visit"}]});
    assert_eq!(
        post_json(&app, &mp_path(&p, false, None), &mixed)
            .await
            .status,
        204
    );
    let h = recorded(&app, &p).await;
    assert_eq!(
        h.iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["signup"]
    );

    // Older than 72 hours: dropped. Not JSON: dropped. Still 2xx.
    let old = json!({"client_id": "c", "timestamp_micros": chrono::Utc::now().timestamp_micros() - 80 * 3_600_000_000i64, "events": [{"name": "late"}]});
    assert_eq!(
        post_json(&app, &mp_path(&p, false, None), &old)
            .await
            .status,
        204
    );
    let res = app
        .request(
            "POST",
            &mp_path(&p, false, None),
            None,
            &[],
            Some(b"{nope".to_vec()),
        )
        .await;
    assert_eq!(res.status, 204);
    assert_eq!(recorded(&app, &p).await.len(), 1);
    // Too big: 413.
    let big =
        json!({"client_id": "c", "events": [{"name": "e", "params": {"p": "x".repeat(131_000)}}]});
    assert_eq!(
        post_json(&app, &mp_path(&p, false, None), &big)
            .await
            .status,
        413
    );
}

#[actix_web::test]
async fn the_debug_endpoint_reports_validation_codes_and_records_nothing() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let before = app.log_events().await;
    let codes = |res: &crate::helpers::Response| -> Vec<(String, String)> {
        res.body["validationMessages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["fieldPath"].as_str().unwrap().to_owned(),
                    m["validationCode"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let valid = post_json(&app, &mp_path(&p, true, None), &mp_body()).await;
    assert_eq!((valid.status, codes(&valid)), (200, vec![]));
    let many: Vec<Value> = (0..26).map(|_| json!({"name": "e"})).collect();
    let params: serde_json::Map<String, Value> =
        (0..26).map(|i| (format!("p{i}"), json!(i))).collect();
    let cases = [
        (
            json!({"events": [{"name": "e"}]}),
            ("client_id", "VALUE_REQUIRED"),
        ),
        (json!({"client_id": "c"}), ("events", "VALUE_REQUIRED")),
        (
            json!({"client_id": "c", "events": many}),
            ("events", "EXCEEDED_MAX_ENTITIES"),
        ),
        (
            json!({"client_id": "c", "events": [{"name": "session_start"}]}),
            ("events[0].name", "NAME_RESERVED"),
        ),
        (
            json!({"client_id": "c", "events": [{"name": "bad-name"}]}),
            ("events[0].name", "NAME_INVALID"),
        ),
        (
            json!({"client_id": "c", "events": [{"name": "e", "params": {"p": "v".repeat(101)}}]}),
            ("events[0].params.p", "VALUE_OUT_OF_BOUNDS"),
        ),
        (
            json!({"client_id": "c", "events": [{"name": "e", "params": params}]}),
            ("events[0].params", "EXCEEDED_MAX_ENTITIES"),
        ),
        (
            json!({"client_id": "c", "events": [{"name": "e", "params": {"_p": 1}}]}),
            ("events[0].params._p", "NAME_INVALID"),
        ),
        (
            json!({"client_id": "c", "events": [{"name": "e", "params": {"google_x": 1}}]}),
            ("events[0].params.google_x", "NAME_RESERVED"),
        ),
        (
            json!({"client_id": "c", "user_properties": {"tier": {"value": "x".repeat(37)}}, "events": [{"name": "e"}]}),
            ("user_properties.tier", "VALUE_OUT_OF_BOUNDS"),
        ),
    ];
    for (body, expected) in cases {
        let res = post_json(&app, &mp_path(&p, true, None), &body).await;
        assert_eq!(res.status, 200);
        assert!(
            codes(&res).contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{body}: {:?}",
            codes(&res)
        );
    }
    let dup = br#"{"client_id":"c","events":[{"name":"e","params":{"a":1,"a":2}}]}"#.to_vec();
    let res = app
        .request("POST", &mp_path(&p, true, None), None, &[], Some(dup))
        .await;
    assert_eq!(
        codes(&res),
        vec![(
            "events[0].params.a".to_owned(),
            "NAME_DUPLICATED".to_owned()
        )]
    );
    let res = post_json(&app, &mp_path(&p, true, Some("wrong")), &mp_body()).await;
    assert_eq!(
        codes(&res),
        vec![("api_secret".to_owned(), "VALUE_INVALID".to_owned())]
    );
    assert_eq!(
        app.log_events().await,
        before,
        "the debug endpoint records nothing"
    );
}

#[actix_web::test]
async fn gtag_hits_are_recorded_from_get_and_batched_posts() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let tid = p["measurement_id"].as_str().unwrap();
    let query = format!(
        "/g/collect?v=2&tid={tid}&gtm=45je&_p=1&cid=555.666&ul=en-us&sr=1920x1080&sid=1700000001&sct=1&seg=1\
         &dl=https%3A%2F%2Fshop.example%2Fproducts%3Fid%3D1&dr=https%3A%2F%2Fwww.google.com%2F&dt=Products&en=page_view&_et=1500"
    );
    let res = app
        .request("GET", &query, None, &[("User-Agent", "Mozilla/5.0")], None)
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    // A POST carries more hits, one per line, over the URL's shared parameters.
    let shared = format!("/g/collect?v=2&tid={tid}&cid=555.666&sid=1700000001&dl=https%3A%2F%2Fshop.example%2Fcheckout&dt=Checkout");
    let body = "en=add_to_cart&ep.plan=pro&epn.qty=2\nen=begin_checkout&_et=300"
        .as_bytes()
        .to_vec();
    let res = app
        .request(
            "POST",
            &shared,
            None,
            &[("Content-Type", "text/plain")],
            Some(body),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    let h = recorded(&app, &p).await;
    assert_eq!(
        h.iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["pageview", "add_to_cart", "begin_checkout"]
    );
    assert_eq!(h[0]["url"], "https://shop.example/products?id=1");
    assert_eq!(h[0]["referrer"], "https://www.google.com/");
    assert_eq!(
        (h[0]["language"].clone(), h[0]["screen"].clone()),
        (json!("en-us"), json!("1920x1080"))
    );
    assert_eq!(h[0]["engagement_ms"], 1500);
    assert_eq!(h[1]["props"], json!([["plan", "pro"], ["qty", "2"]]));
    assert_eq!(h[1]["url"], "https://shop.example/checkout");
    assert!(h
        .iter()
        .all(|x| x["visitor_key"] == h[0]["visitor_key"] && x["session_id"] == "1700000001"));

    let res = app
        .request(
            "GET",
            "/g/collect?v=2&tid=G-NOPE&cid=1&en=page_view&dl=https%3A%2F%2Fshop.example%2F",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "unknown_measurement_id"));
    let res = app
        .request(
            "GET",
            &format!(
                "/g/collect?v=2&tid={tid}&cid=1&en=page_view&dl=https%3A%2F%2Fevil.example%2F"
            ),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "hostname_not_allowed"));
    let res = app
        .request(
            "GET",
            &format!("/g/collect?v=2&tid={tid}&cid=1&en=bad-name&dl=https%3A%2F%2Fshop.example%2F"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_event"));
    assert_eq!(recorded(&app, &p).await.len(), 3);
}

#[actix_web::test]
async fn umami_events_are_recorded_and_answered_as_umami_does() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let send = |payload: Value, kind: &str| {
        let body = json!({"type": kind, "payload": payload});
        let app = &app;
        async move { post_json(app, "/api/send", &body).await }
    };
    let id = p["id"].as_str().unwrap();
    let res = send(json!({"website": id, "hostname": "shop.example", "screen": "1920x1080", "language": "en-US",
                          "title": "Shop", "url": "/pricing?plan=pro", "referrer": "https://news.example/"}), "event").await;
    assert_eq!((res.status, res.body.clone()), (200, json!({"cache": ""})));
    let res = send(json!({"website": id, "hostname": "shop.example", "url": "/pricing", "name": "signup", "data": {"plan": "pro", "seats": 3}}), "event").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        send(json!({"website": id, "data": {"a": 1}}), "identify")
            .await
            .status,
        200
    );
    let h = recorded(&app, &p).await;
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0]["name"].clone(), h[0]["url"].clone()),
        (
            json!("pageview"),
            json!("https://shop.example/pricing?plan=pro")
        )
    );
    assert_eq!(h[0]["protocol"], "umami");
    assert_eq!(h[1]["props"], json!([["plan", "pro"], ["seats", "3"]]));

    let res = send(json!({"website": "00000000-0000-0000-0000-000000000000", "hostname": "shop.example", "url": "/"}), "event").await;
    assert_eq!((res.status, res.code()), (400, "unknown_website"));
    let res = send(
        json!({"website": id, "hostname": "evil.example", "url": "/"}),
        "event",
    )
    .await;
    assert_eq!((res.status, res.code()), (400, "hostname_not_allowed"));
    let res = send(
        json!({"website": id, "hostname": "shop.example", "url": 5}),
        "event",
    )
    .await;
    assert_eq!((res.status, res.code()), (400, "invalid_field"));
    assert_eq!(
        post_json(&app, "/api/send", &json!({"type": "event"}))
            .await
            .code(),
        "missing_field"
    );
    assert_eq!(recorded(&app, &p).await.len(), 2);
}

#[actix_web::test]
async fn the_hostname_allow_list_gates_browser_hits() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let id = p["id"].as_str().unwrap();
    let hit = |url: &str| json!({"n": "pageview", "u": url, "d": "shop.example"});
    assert_eq!(
        app.post_event(&hit("https://blog.shop.example/"), &[])
            .await
            .status,
        202,
        "subdomains are allowed"
    );
    let res = app.post_event(&hit("https://mirror.example/"), &[]).await;
    assert_eq!((res.status, res.code()), (400, "hostname_not_allowed"));

    let put = |body: Value, id: String| {
        let app = &app;
        async move {
            app.request(
                "PUT",
                &format!("/api/admin/properties/{id}/hostnames"),
                Some(ADMIN_TOKEN),
                &[("Content-Type", "application/json")],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let res = put(
        json!({"hostnames": ["mirror.example", "*.cdn.example"]}),
        id.to_owned(),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.body["hostnames"],
        json!(["mirror.example", "*.cdn.example"])
    );
    assert_eq!(
        app.post_event(&hit("https://mirror.example/"), &[])
            .await
            .status,
        202
    );
    assert_eq!(
        app.post_event(&hit("https://a.cdn.example/"), &[])
            .await
            .status,
        202
    );
    assert_eq!(
        put(json!({"hostnames": ["not a host"]}), id.to_owned())
            .await
            .code(),
        "invalid_hostnames"
    );
    let res = put(
        json!({"hostnames": []}),
        "0190c7e6-5b8f-7000-8000-000000000001".into(),
    )
    .await;
    assert_eq!((res.status, res.code()), (404, "property_not_found"));
    // Event-sourced: the change is in the aggregate's stream.
    let events = app.stream(&format!("property-{id}")).await;
    assert_eq!(events.last().unwrap()["type"], "HostnamesAllowed");
    assert_eq!(recorded(&app, &p).await.len(), 3);
}

/// GA4 engagement (`user_engagement`) extends the visit without counting as an event.
#[actix_web::test]
async fn engagement_pings_extend_visits_without_counting_as_events() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let now = chrono::Utc::now().timestamp_micros();
    let body = json!({"client_id": "c1", "events": [
        {"name": "page_view", "params": {"page_location": "https://shop.example/", "timestamp_micros": now - 90_000_000}},
        {"name": "user_engagement", "params": {"page_location": "https://shop.example/", "engagement_time_msec": 90000}}
    ]});
    // user_engagement is reserved for servers: gtag sends it from browsers.
    let tid = p["measurement_id"].as_str().unwrap();
    assert_eq!(post_json(&app, &mp_path(&p, false, None), &json!({"client_id": "c1", "timestamp_micros": now - 90_000_000, "events": [body["events"][0]]})).await.status, 204);
    let res = app.request("GET", &format!("/g/collect?v=2&tid={tid}&cid=c1&en=user_engagement&_et=90000&dl=https%3A%2F%2Fshop.example%2F"), None, &[], None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    app.wait_projected().await;
    let res = app
        .query(ADMIN_TOKEN, &json!({"site_id": "shop.example", "metrics": ["visits", "events", "pageviews", "visit_duration", "bounce_rate"], "date_range": "day"}))
        .await;
    let m = res.body["results"][0]["metrics"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        (m[0].clone(), m[1].clone(), m[2].clone()),
        (json!(1), json!(1), json!(1)),
        "{}",
        res.text
    );
    assert!(
        m[3].as_i64().unwrap() >= 89,
        "the engagement extends the visit: {}",
        res.text
    );
}

/// The same visit, sent through Plausible, Umami and gtag to three properties, gives the same
/// read models.
#[actix_web::test]
async fn the_same_visit_through_any_protocol_gives_the_same_answers() {
    let app = spawn_app_trusting_proxy().await;
    let _a = app.register("a.example", "UTC").await;
    let b = app.register("b.example", "UTC").await;
    let c = app.register("c.example", "UTC").await;
    let ua = [
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
        ),
        ("X-Forwarded-For", "198.51.100.7"),
    ];
    for (path, name, props) in [
        ("/", "pageview", json!({})),
        ("/pricing", "pageview", json!({})),
        ("/pricing", "Signup", json!({"plan": "pro"})),
    ] {
        let res = app.post_event(&json!({"n": name, "u": format!("https://a.example{path}"), "d": "a.example", "p": props}), &ua).await;
        assert_eq!(res.status, 202);
        let payload = json!({"website": b["id"], "hostname": "b.example", "url": path, "data": props,
                             "name": if name == "pageview" { Value::Null } else { json!(name) }});
        let res = app
            .request(
                "POST",
                "/api/send",
                None,
                &ua,
                Some(serde_json::to_vec(&json!({"type": "event", "payload": payload})).unwrap()),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        let en = if name == "pageview" {
            "page_view"
        } else {
            name
        };
        let dl = format!("https%3A%2F%2Fc.example{}", path.replace('/', "%2F"));
        let ep = if name == "Signup" { "&ep.plan=pro" } else { "" };
        let gtag = format!(
            "/g/collect?v=2&tid={}&cid=1.2&en={en}&dl={dl}{ep}",
            c["measurement_id"].as_str().unwrap()
        );
        assert_eq!(app.request("GET", &gtag, None, &ua, None).await.status, 204);
    }
    app.wait_projected().await;
    let answers = |site: &str| {
        let app = &app;
        let site = site.to_owned();
        async move {
            let mut out = Vec::new();
            for (metrics, dims) in [
                (
                    json!([
                        "visitors",
                        "visits",
                        "pageviews",
                        "events",
                        "bounce_rate",
                        "views_per_visit"
                    ]),
                    json!([]),
                ),
                (
                    json!(["visitors", "pageviews", "events"]),
                    json!(["event:page"]),
                ),
                (json!(["visitors", "events"]), json!(["event:name"])),
                (json!(["events"]), json!(["event:props:plan"])),
            ] {
                let res = app.query(ADMIN_TOKEN, &json!({"site_id": site, "metrics": metrics, "dimensions": dims, "date_range": "day"})).await;
                out.push(res.body["results"].clone());
            }
            out
        }
    };
    let (ra, rb, rc) = (
        answers("a.example").await,
        answers("b.example").await,
        answers("c.example").await,
    );
    assert_eq!(
        ra[0],
        json!([{"dimensions": [], "metrics": [1, 1, 2, 3, 0, 2.0]}])
    );
    assert_eq!(ra, rb, "Plausible and Umami");
    assert_eq!(ra, rc, "Plausible and gtag");
}

async fn spawn_app_trusting_proxy() -> TestApp {
    crate::helpers::spawn_app_with(&[("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1")]).await
}

#[actix_web::test]
async fn the_tracker_script_is_served_small_and_cacheable() {
    let app = spawn_app().await;
    let res = app.request("GET", "/js/footfall.js", None, &[], None).await;
    assert_eq!(res.status, 200);
    assert!(res
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    assert!(res
        .headers
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("max-age"));
    assert!(res.text.contains("sendBeacon") && !res.text.contains("document.cookie"));
    let gz = {
        use std::io::Write;
        let mut child = std::process::Command::new("gzip")
            .arg("-9c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(res.text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().stdout.len()
    };
    assert!(gz <= 2048, "{gz} bytes gzipped");
    let etag = res
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let again = app
        .request(
            "GET",
            "/js/footfall.js",
            None,
            &[("If-None-Match", &etag)],
            None,
        )
        .await;
    assert_eq!(again.status, 304);
}

/// A real browser: headless Chromium loads a page with the script tag, navigates within the SPA,
/// sends a custom event and clicks an outbound link; footfall records all four.
#[actix_web::test]
async fn the_tracker_works_in_a_real_browser() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let res = app
        .request(
            "PUT",
            &format!(
                "/api/admin/properties/{}/hostnames",
                p["id"].as_str().unwrap()
            ),
            Some(ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(br#"{"hostnames":["127.0.0.1"]}"#.to_vec()),
        )
        .await;
    assert_eq!(res.status, 200);

    // The merchant's site, on another origin.
    let footfall = app.address.clone();
    let site = actix_web::HttpServer::new(move || {
        let footfall = footfall.clone();
        actix_web::App::new()
            .route("/away", actix_web::web::get().to(|| async { actix_web::HttpResponse::Ok().body("away") }))
            .default_service(actix_web::web::to(move |req: actix_web::HttpRequest| {
                let port = req.app_config().host().split(':').nth(1).unwrap_or("80").to_owned();
                let html = format!(
                    r#"<!doctype html><html><head><title>Shop</title>
<script>window.footfall = window.footfall || function () {{ (window.footfall.q = window.footfall.q || []).push(arguments) }};</script>
<script defer data-domain="shop.example" data-allow-localhost data-outbound-links src="{footfall}/js/footfall.js"></script>
</head><body><a id="out" href="http://localhost:{port}/away">elsewhere</a>
<script>
window.addEventListener('load', function () {{
  setTimeout(function () {{
    history.pushState({{}}, '', '/page/spa');
    footfall('Signup', {{props: {{plan: 'pro'}}}});
    setTimeout(function () {{ document.getElementById('out').click(); }}, 300);
  }}, 300);
}});
</script></body></html>"#
                );
                async move { actix_web::HttpResponse::Ok().content_type("text/html").body(html) }
            }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = site.addrs()[0].port();
    actix_web::rt::spawn(site.run());

    let profile = std::env::temp_dir().join(format!("footfall-chromium-{}", uuid::Uuid::new_v4()));
    let url = format!("http://127.0.0.1:{port}/page");
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                &format!("--user-data-dir={}", profile.display()),
                "--virtual-time-budget=5000",
                "--dump-dom",
                &url,
            ])
            .output()
    })
    .await
    .unwrap()
    .expect("chromium must be installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let found = eventually(Duration::from_secs(30), "the browser's four hits", || {
        let (app, p) = (&app, &p);
        async move {
            let h = recorded(app, p).await;
            (h.len() >= 4).then_some(h)
        }
    })
    .await;
    let summary: Vec<(String, String)> = found
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["url"]
                    .as_str()
                    .unwrap()
                    .replace(&format!("127.0.0.1:{port}"), "site"),
            )
        })
        .collect();
    assert!(
        summary.contains(&("pageview".into(), "http://site/page".into())),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("pageview".into(), "http://site/page/spa".into())),
        "{summary:?}"
    );
    let signup = found
        .iter()
        .find(|h| h["name"] == "Signup")
        .expect("the custom event");
    assert_eq!(signup["props"], json!([["plan", "pro"]]));
    let outbound = found
        .iter()
        .find(|h| h["name"] == "Outbound Link: Click")
        .expect("the outbound click");
    assert_eq!(
        outbound["props"],
        json!([["url", format!("http://localhost:{port}/away")]])
    );
    assert!(found
        .iter()
        .all(|h| h["user_agent"].as_str().unwrap_or("").contains("Chrome")));
}
