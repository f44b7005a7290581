//! Funnels: definitions through the admin API (event-sourced, validated) and `POST /api/v2/funnel`
//! over scripted visits, with exact numbers: steps in order within one visit count, anything in
//! between; out-of-order steps (by the hits' own times, whatever their order in the log) and steps
//! split across visits do not.

use serde_json::{json, Value};

use crate::helpers::{hit_event, spawn_app, Seed, TestApp, ADMIN_TOKEN};

async fn shop_with_visits(app: &TestApp) -> Value {
    let property = app.register("shop.example", "UTC").await;
    // (visitor, time, event name, path, country)
    let script: &[(u64, &str, &str, &str, &str)] = &[
        // 1: all three steps in order.
        (1, "2026-11-02T10:00:00Z", "pageview", "/", "GB"),
        (1, "2026-11-02T10:01:00Z", "pageview", "/cart", "GB"),
        (1, "2026-11-02T10:02:00Z", "Purchase", "/checkout", "GB"),
        // 2: two steps, with another page in between.
        (2, "2026-11-02T11:00:00Z", "pageview", "/", "GB"),
        (2, "2026-11-02T11:01:00Z", "pageview", "/other", "GB"),
        (2, "2026-11-02T11:02:00Z", "pageview", "/cart", "GB"),
        // 3: out of order: the cart before the home page.
        (3, "2026-11-02T12:00:00Z", "pageview", "/cart", "US"),
        (3, "2026-11-02T12:01:00Z", "pageview", "/", "US"),
        // 4: the cart in a later visit (two hours on) does not continue the first one.
        (4, "2026-11-02T10:00:00Z", "pageview", "/", "US"),
        (4, "2026-11-02T12:00:00Z", "pageview", "/cart", "US"),
        // 5: a purchase alone starts nothing.
        (5, "2026-11-02T10:00:00Z", "Purchase", "/checkout", "US"),
        // 6: steps repeated on the way.
        (6, "2026-11-02T10:00:00Z", "pageview", "/", "FR"),
        (6, "2026-11-02T10:01:00Z", "pageview", "/cart", "FR"),
        (6, "2026-11-02T10:02:00Z", "pageview", "/", "FR"),
        (6, "2026-11-02T10:03:00Z", "Purchase", "/checkout", "FR"),
        // 7: the first step in two visits: one visitor.
        (7, "2026-11-02T08:00:00Z", "pageview", "/", "FR"),
        (7, "2026-11-03T08:00:00Z", "pageview", "/", "FR"),
        // 8: the home page logged first, but the cart happened earlier (a late hit).
        (8, "2026-11-02T10:10:00Z", "pageview", "/", "DE"),
        (8, "2026-11-02T10:05:00Z", "pageview", "/cart", "DE"),
    ];
    let hits = script
        .iter()
        .map(|(visitor, at, name, path, country)| {
            let mut hit = hit_event(
                &property,
                &Seed {
                    visitor: *visitor,
                    at,
                    name,
                    url: &format!("https://shop.example{path}"),
                    props: &[],
                },
            );
            hit.geo.country = Some((*country).into());
            hit
        })
        .collect();
    app.seed(hits).await;
    app.wait_projected().await;
    property
}

fn steps(res: &Value) -> Vec<(i64, f64, f64, i64)> {
    res["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["visitors"].as_i64().unwrap(),
                s["conversion_rate"].as_f64().unwrap(),
                s["conversion_rate_step"].as_f64().unwrap(),
                s["dropoff"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn funnels_count_visitors_through_steps_in_order_within_a_visit() {
    let app = spawn_app().await;
    let property = shop_with_visits(&app).await;
    let id = property["id"].as_str().unwrap();
    let key = property["read_key"].as_str().unwrap();
    let path = format!("/api/admin/properties/{id}/funnels");
    let put = |body: Value| {
        let (app, path) = (&app, path.clone());
        async move {
            app.request(
                "PUT",
                &path,
                Some(ADMIN_TOKEN),
                &[("Content-Type", "application/json")],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let checkout = json!({"name": "Checkout",
        "steps": [{"page": "/"}, {"page": "/cart"}, {"event": "Purchase"}]});
    let res = put(json!({ "funnels": [checkout] })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let shown = app.admin_get(&format!("/api/admin/properties/{id}")).await;
    assert_eq!(shown.body["funnels"], json!([checkout]), "{}", shown.text);
    for bad in [
        json!({"funnels": [{"name": "Short", "steps": [{"page": "/"}]}]}),
        json!({"funnels": [{"name": "", "steps": [{"page": "/"}, {"page": "/a"}]}]}),
        json!({"funnels": [{"name": "Both", "steps": [{"page": "/", "event": "x"}, {"page": "/a"}]}]}),
    ] {
        let res = put(bad.clone()).await;
        assert_eq!((res.status, res.code()), (400, "invalid_funnels"), "{bad}");
    }
    let unknown = app
        .request(
            "PUT",
            "/api/admin/properties/0190c7e6-5b8f-7000-8000-000000000001/funnels",
            Some(ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(serde_json::to_vec(&json!({"funnels": []})).unwrap()),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "property_not_found")
    );

    let ask = |body: Value| {
        let app = &app;
        async move {
            app.request(
                "POST",
                "/api/v2/funnel",
                Some(key),
                &[("Content-Type", "application/json")],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let week = json!(["2026-11-01", "2026-11-07"]);
    let res =
        ask(json!({"site_id": "shop.example", "funnel": "Checkout", "date_range": week})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    // Step 1: visitors 1, 2, 3, 4, 6, 7 (once), 8. Step 2: 1, 2, 6. Step 3: 1, 6.
    assert_eq!(
        steps(&res.body),
        vec![(7, 100.0, 100.0, 0), (3, 42.9, 42.9, 4), (2, 28.6, 66.7, 1)]
    );
    assert_eq!(
        res.body["steps"][2]["label"],
        json!("Purchase"),
        "{}",
        res.text
    );
    assert_eq!(res.body["steps"][1]["label"], json!("Visit /cart"));

    // Filters pick the visits.
    let res = ask(
        json!({"site_id": "shop.example", "funnel": "Checkout", "date_range": week,
                         "filters": [["is", "visit:country", ["GB"]]]}),
    )
    .await;
    assert_eq!(
        steps(&res.body),
        vec![
            (2, 100.0, 100.0, 0),
            (2, 100.0, 100.0, 0),
            (1, 50.0, 50.0, 1)
        ]
    );
    // An ad-hoc funnel, and one that skips a step.
    let res = ask(json!({"site_id": "shop.example", "date_range": week,
                         "funnel": {"steps": [{"page": "/"}, {"event": "Purchase"}]}}))
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        steps(&res.body).iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![7, 2]
    );
    // The range: only 3 November leaves visitor 7's second visit.
    let res = ask(json!({"site_id": "shop.example", "funnel": "Checkout",
                         "date_range": ["2026-11-03", "2026-11-03"]}))
    .await;
    assert_eq!(
        steps(&res.body).iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 0, 0]
    );
    // Not whole days: computed whole, over the visits that started in the hour (1, 4, 5, 6, 8).
    let res = ask(json!({"site_id": "shop.example", "funnel": "Checkout",
                         "date_range": ["2026-11-02T09:30:00Z", "2026-11-02T10:29:59Z"]}))
    .await;
    assert_eq!(
        steps(&res.body).iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![4, 2, 2],
        "{}",
        res.text
    );
    // Whole days are kept per day: a new hit changes its day's answer, and only that day is
    // computed again.
    let cached = || async {
        sqlx::query_as::<_, (chrono::NaiveDate, i64)>(
            "SELECT day, version FROM funnel_days ORDER BY day, version",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };
    let before = cached().await;
    assert!(before.len() >= 2, "{before:?}");
    app.seed(vec![hit_event(
        &property,
        &Seed {
            visitor: 2,
            at: "2026-11-02T11:03:00Z",
            name: "Purchase",
            url: "https://shop.example/checkout",
            props: &[],
        },
    )])
    .await;
    app.wait_projected().await;
    let res =
        ask(json!({"site_id": "shop.example", "funnel": "Checkout", "date_range": week})).await;
    assert_eq!(
        steps(&res.body).iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![7, 3, 3]
    );
    let after = cached().await;
    let changed: Vec<_> = after.iter().filter(|d| !before.contains(d)).collect();
    // Only 2 November, the day the visit started on.
    let days: Vec<String> = changed.iter().map(|(day, _)| day.to_string()).collect();
    assert_eq!(days, ["2026-11-02"], "{before:?} → {after:?}");

    for (bad, code) in [
        (
            json!({"site_id": "shop.example", "funnel": "Nope", "date_range": week}),
            "invalid_query",
        ),
        (
            json!({"site_id": "shop.example", "funnel": {"steps": [{"page": "/"}]}, "date_range": week}),
            "invalid_query",
        ),
        (
            json!({"site_id": "shop.example", "date_range": week}),
            "invalid_query",
        ),
        (
            json!({"site_id": "shop.example", "funnel": "Checkout"}),
            "invalid_query",
        ),
    ] {
        let res = ask(bad.clone()).await;
        assert_eq!((res.status, res.code()), (400, code), "{bad}: {}", res.text);
    }
    // The list that the dashboard's funnel card reads, for read keys.
    let listed = app.get("/api/v2/funnels?site_id=shop.example", key).await;
    assert_eq!(
        listed.body,
        json!({ "funnels": [checkout] }),
        "{}",
        listed.text
    );

    // The dashboard's funnel card shows the steps.
    let browser = crate::dashboard::webdriver::Browser::start(1280, 1800).await;
    browser
        .goto(&app.url(&format!(
            "/dashboard/shop.example?period=custom&from=2026-11-01&to=2026-11-07#key={key}"
        )))
        .await;
    let shown = browser
        .until(
            "the funnel card",
            "const p = document.querySelector('[data-panel=funnel][data-state=ready]'); \
             return p && [...p.querySelectorAll('[data-row]')] \
               .map(r => [r.dataset.value, r.querySelector('[data-visitors]').dataset.visitors]);",
        )
        .await;
    // (Visitor 2's purchase, added above, makes three.)
    assert_eq!(
        shown,
        json!([["Visit /", "7"], ["Visit /cart", "3"], ["Purchase", "3"]])
    );
    browser.quit().await;

    let other = app.register("other.example", "UTC").await;
    let res = app
        .request(
            "POST",
            "/api/v2/funnel",
            Some(other["read_key"].as_str().unwrap()),
            &[("Content-Type", "application/json")],
            Some(
                serde_json::to_vec(
                    &json!({"site_id": "shop.example", "funnel": "Checkout", "date_range": week}),
                )
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(res.status, 401);
}
