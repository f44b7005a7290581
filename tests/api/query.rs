//! The query APIs over the read models: exact counts, local-time buckets, filters, breakdowns,
//! both planner paths agreeing, tenant isolation and malformed queries.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, hit_event, spawn_app, Seed, TestApp, ADMIN_TOKEN};

/// Three visitors over two local days of an Asia/Kolkata (+05:30) property:
/// - visitor 1: 00:15, 00:20 and a Signup at 00:22 local on March 2nd (18:45–18:52 UTC on the 1st);
/// - visitor 2: one pageview at 23:50 local on March 1st (a bounce);
/// - visitor 3: /blog at 10:30 and again at 11:10 local on March 2nd (40 minutes apart: two visits).
async fn scenario() -> (TestApp, Value) {
    let app = spawn_app().await;
    let p = app.register("shop.example", "Asia/Kolkata").await;
    let seeds = [
        Seed {
            visitor: 1,
            at: "2026-03-01T18:45:00Z",
            name: "pageview",
            url: "https://shop.example/",
            props: &[],
        },
        Seed {
            visitor: 1,
            at: "2026-03-01T18:50:00Z",
            name: "pageview",
            url: "https://shop.example/pricing?ref=x",
            props: &[],
        },
        Seed {
            visitor: 1,
            at: "2026-03-01T18:52:00Z",
            name: "Signup",
            url: "https://shop.example/pricing",
            props: &[("plan", "pro")],
        },
        Seed {
            visitor: 2,
            at: "2026-03-01T18:20:00Z",
            name: "pageview",
            url: "https://www.shop.example/",
            props: &[],
        },
        Seed {
            visitor: 3,
            at: "2026-03-02T05:00:00Z",
            name: "pageview",
            url: "https://shop.example/blog",
            props: &[],
        },
        Seed {
            visitor: 3,
            at: "2026-03-02T05:40:00Z",
            name: "pageview",
            url: "https://shop.example/blog",
            props: &[],
        },
    ];
    app.seed(seeds.iter().map(|s| hit_event(&p, s)).collect())
        .await;
    app.wait_projected().await;
    (app, p)
}

fn key(p: &Value) -> String {
    p["read_key"].as_str().unwrap().to_owned()
}

async fn v2(app: &TestApp, p: &Value, body: Value) -> Vec<Value> {
    let mut body = body;
    body["site_id"] = json!("shop.example");
    if body.get("date_range").is_none() {
        body["date_range"] = json!(["2026-03-01", "2026-03-02"]);
    }
    let res = app.query(&key(p), &body).await;
    assert_eq!(res.status, 200, "{body}: {}", res.text);
    res.body["results"].as_array().unwrap().clone()
}

fn rows(results: &[Value]) -> Vec<(Vec<String>, Vec<f64>)> {
    results
        .iter()
        .map(|r| {
            (
                r["dimensions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap().to_owned())
                    .collect(),
                r["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_f64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

fn row(dims: &[&str], metrics: &[f64]) -> (Vec<String>, Vec<f64>) {
    (
        dims.iter().map(|d| (*d).to_owned()).collect(),
        metrics.to_vec(),
    )
}

#[actix_web::test]
async fn aggregates_and_time_series_are_exact_in_the_property_zone() {
    let (app, p) = scenario().await;
    let all = [
        "visitors",
        "visits",
        "pageviews",
        "events",
        "views_per_visit",
        "bounce_rate",
        "visit_duration",
    ];
    let totals = v2(&app, &p, json!({"metrics": all})).await;
    // 4 visits (visitor 3 has two), 3 bounces of 4, one 7-minute visit: 420 s / 4.
    assert_eq!(
        rows(&totals),
        vec![row(&[], &[3.0, 4.0, 5.0, 6.0, 1.25, 75.0, 105.0])]
    );

    let by_day = v2(
        &app,
        &p,
        json!({"metrics": ["visitors", "pageviews", "visits"], "dimensions": ["time:day"]}),
    )
    .await;
    assert_eq!(
        rows(&by_day),
        vec![
            row(&["2026-03-01"], &[1.0, 1.0, 1.0]),
            row(&["2026-03-02"], &[2.0, 4.0, 3.0])
        ],
        "visitor 1's hits fall on March 2nd in Kolkata although they are on March 1st in UTC"
    );

    let by_hour = v2(
        &app,
        &p,
        json!({"metrics": ["pageviews", "events"], "dimensions": ["time:hour"], "date_range": ["2026-03-02", "2026-03-02"]}),
    )
    .await;
    assert_eq!(
        rows(&by_hour),
        vec![
            row(&["2026-03-02 00:00:00"], &[2.0, 3.0]),
            row(&["2026-03-02 10:00:00"], &[1.0, 1.0]),
            row(&["2026-03-02 11:00:00"], &[1.0, 1.0]),
        ]
    );

    let res = app
        .query(&key(&p), &json!({"site_id": "shop.example", "metrics": ["visitors"], "date_range": ["2026-03-01", "2026-03-02"], "dimensions": ["time:day"], "include": {"time_labels": true}}))
        .await;
    assert_eq!(
        res.body["meta"]["time_labels"],
        json!(["2026-03-01", "2026-03-02"])
    );
    assert_eq!(
        res.body["query"]["date_range"],
        json!(["2026-03-01T00:00:00+05:30", "2026-03-02T23:59:59+05:30"])
    );
}

#[actix_web::test]
async fn breakdowns_and_filters_are_exact() {
    let (app, p) = scenario().await;
    let pages = v2(&app, &p, json!({"metrics": ["visitors", "pageviews", "events", "percentage"], "dimensions": ["event:page"]})).await;
    assert_eq!(
        rows(&pages),
        vec![
            row(&["/"], &[2.0, 2.0, 2.0, 66.7]),
            row(&["/blog"], &[1.0, 2.0, 2.0, 33.3]),
            row(&["/pricing"], &[1.0, 1.0, 2.0, 33.3]),
        ]
    );
    let names = v2(
        &app,
        &p,
        json!({"metrics": ["visitors", "events"], "dimensions": ["event:name"]}),
    )
    .await;
    assert_eq!(
        rows(&names),
        vec![
            row(&["pageview"], &[3.0, 5.0]),
            row(&["Signup"], &[1.0, 1.0])
        ]
    );
    let hosts = v2(
        &app,
        &p,
        json!({"metrics": ["events"], "dimensions": ["event:hostname"]}),
    )
    .await;
    assert_eq!(
        rows(&hosts),
        vec![row(&["shop.example"], &[6.0])],
        "www. is not a separate host"
    );
    let plans = v2(
        &app,
        &p,
        json!({"metrics": ["visitors", "events"], "dimensions": ["event:props:plan"]}),
    )
    .await;
    assert_eq!(rows(&plans), vec![row(&["pro"], &[1.0, 1.0])]);
    let paged = v2(&app, &p, json!({"metrics": ["pageviews"], "dimensions": ["event:page"], "order_by": [["pageviews", "asc"], ["event:page", "desc"]], "pagination": {"limit": 2, "offset": 1}})).await;
    // pageviews ascending: /pricing (1), then the ties by page descending: /blog, /.
    assert_eq!(
        rows(&paged),
        vec![row(&["/blog"], &[2.0]), row(&["/"], &[2.0])]
    );

    let cases = [
        (
            json!([["is", "event:page", ["/pricing"]]]),
            json!(["visitors", "visits", "bounce_rate"]),
            vec![1.0, 1.0, 0.0],
        ),
        (
            json!([["contains", "event:page", ["blo"]]]),
            json!(["visitors", "pageviews", "visits"]),
            vec![1.0, 2.0, 2.0],
        ),
        (
            json!([["not", ["is", "event:name", ["pageview"]]]]),
            json!(["events"]),
            vec![1.0],
        ),
        (
            json!([["matches", "event:page", ["^/p"]]]),
            json!(["events"]),
            vec![2.0],
        ),
        (
            json!([[
                "or",
                [["is", "event:page", ["/"]], ["is", "event:page", ["/blog"]]]
            ]]),
            json!(["visitors"]),
            vec![3.0],
        ),
        (
            json!([["is", "event:props:plan", ["pro"]]]),
            json!(["visitors", "events"]),
            vec![1.0, 1.0],
        ),
        (
            json!([
                ["is_not", "event:page", ["/", "/blog"]],
                ["contains_not", "event:name", ["Sign"]]
            ]),
            json!(["pageviews"]),
            vec![1.0],
        ),
        (
            json!([["matches_not", "event:page", ["^/$"]]]),
            json!(["visitors"]),
            vec![2.0],
        ),
    ];
    for (filters, metrics, expected) in cases {
        let r = v2(&app, &p, json!({"metrics": metrics, "filters": filters})).await;
        assert_eq!(rows(&r), vec![row(&[], &expected)], "{filters}");
    }
}

/// The same question answered from the rollups and from the enriched tables (a filter that
/// matches everything forces the latter) gives the same answer.
#[actix_web::test]
async fn rollups_and_enriched_tables_agree() {
    let (app, p) = scenario().await;
    let everything = json!([["contains", "event:page", [""]]]);
    for (metrics, dims) in [
        (
            json!([
                "visitors",
                "visits",
                "pageviews",
                "events",
                "bounce_rate",
                "visit_duration",
                "views_per_visit"
            ]),
            json!([]),
        ),
        (
            json!(["visitors", "visits", "pageviews", "bounce_rate"]),
            json!(["time:day"]),
        ),
        (
            json!(["visitors", "pageviews", "events"]),
            json!(["time:hour"]),
        ),
        (
            json!(["visitors", "pageviews", "events", "percentage"]),
            json!(["event:page"]),
        ),
        (
            json!(["visitors", "events"]),
            json!(["time:day", "event:name"]),
        ),
        (json!(["visitors", "events"]), json!(["event:props:plan"])),
    ] {
        let rollup = v2(&app, &p, json!({"metrics": metrics, "dimensions": dims})).await;
        let enriched = v2(
            &app,
            &p,
            json!({"metrics": metrics, "dimensions": dims, "filters": everything}),
        )
        .await;
        assert_eq!(rollup, enriched, "{metrics} by {dims}");
        assert!(!rollup.is_empty());
    }
}

/// UTM terms and contents are rolled up with the rest of a visit's acquisition: their
/// breakdowns, from the rollup, count what the visits count.
#[actix_web::test]
async fn utm_terms_and_contents_are_rolled_up() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let tagged = |term: &str, content: &str| {
        format!("https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term={term}&utm_content={content}")
    };
    let urls = [
        tagged("shoes", "banner"),
        tagged("shoes", "text"),
        tagged("red%20boots", "banner"),
        "https://shop.example/".to_owned(),
    ];
    let hits = urls
        .iter()
        .enumerate()
        .map(|(visitor, url)| {
            hit_event(
                &p,
                &Seed {
                    visitor: visitor as u64,
                    at: "2026-03-01T10:00:00Z",
                    name: "pageview",
                    url,
                    props: &[],
                },
            )
        })
        .collect();
    app.seed(hits).await;
    app.wait_projected().await;
    for (dimension, want) in [
        ("visit:utm_term", json!([["shoes", 2], ["red boots", 1]])),
        ("visit:utm_content", json!([["banner", 2], ["text", 1]])),
    ] {
        let q = json!({"metrics": ["visitors"], "dimensions": [dimension]});
        let rollup = v2(&app, &p, q.clone()).await;
        let mut filtered = q;
        filtered["filters"] = json!([["contains", dimension, [""]]]);
        assert_eq!(rollup, v2(&app, &p, filtered).await, "{dimension}");
        let got: Vec<Value> = rollup
            .iter()
            .filter(|r| r["dimensions"][0] != "")
            .map(|r| json!([r["dimensions"][0], r["metrics"][0]]))
            .collect();
        assert_eq!(Value::Array(got), want, "{dimension}");
    }
}

#[actix_web::test]
async fn the_v1_endpoints_answer_the_same_numbers() {
    let (app, p) = scenario().await;
    let k = key(&p);
    let range = "period=custom&date=2026-03-01,2026-03-02";
    let res = app
        .get(&format!("/api/v1/stats/aggregate?site_id=shop.example&{range}&metrics=visitors,pageviews,visits,bounce_rate,visit_duration"), &k)
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.body["results"],
        json!({"visitors": {"value": 3}, "pageviews": {"value": 5}, "visits": {"value": 4}, "bounce_rate": {"value": 75}, "visit_duration": {"value": 105}})
    );
    let res = app
        .get(
            &format!(
                "/api/v1/stats/aggregate?site_id=shop.example&{range}&compare=previous_period"
            ),
            &k,
        )
        .await;
    assert_eq!(
        res.body["results"],
        json!({"visitors": {"value": 3, "change": null}})
    );
    let res = app
        .get("/api/v1/stats/aggregate?site_id=shop.example&period=day&date=2026-03-03&compare=previous_period&metrics=visitors", &k)
        .await;
    assert_eq!(
        res.body["results"],
        json!({"visitors": {"value": 0, "change": -100}})
    );

    let res = app
        .get(
            &format!(
                "/api/v1/stats/timeseries?site_id=shop.example&{range}&metrics=visitors,pageviews"
            ),
            &k,
        )
        .await;
    assert_eq!(
        res.body["results"],
        json!([{"date": "2026-03-01", "visitors": 1, "pageviews": 1}, {"date": "2026-03-02", "visitors": 2, "pageviews": 4}])
    );
    let res = app
        .get(
            "/api/v1/stats/timeseries?site_id=shop.example&period=7d&date=2026-03-04",
            &k,
        )
        .await;
    let series = res.body["results"].as_array().unwrap();
    assert_eq!(
        series.len(),
        7,
        "every day is listed, empty ones with zeros"
    );
    assert_eq!(series[0], json!({"date": "2026-02-26", "visitors": 0}));

    let res = app.get(&format!("/api/v1/stats/breakdown?site_id=shop.example&{range}&property=event:page&metrics=visitors,pageviews"), &k).await;
    assert_eq!(
        res.body["results"],
        json!([{"page": "/", "visitors": 2, "pageviews": 2}, {"page": "/blog", "visitors": 1, "pageviews": 2}, {"page": "/pricing", "visitors": 1, "pageviews": 1}])
    );
    let res = app
        .get(&format!("/api/v1/stats/breakdown?site_id=shop.example&{range}&property=event:page&filters=event:page%3D%3D%2Fp**&limit=1&page=1"), &k)
        .await;
    assert_eq!(
        res.body["results"],
        json!([{"page": "/pricing", "visitors": 1}])
    );
    let res = app
        .get("/api/v1/stats/realtime/visitors?site_id=shop.example", &k)
        .await;
    assert_eq!((res.status, res.body.clone()), (200, json!(0)));
}

#[actix_web::test]
async fn fresh_hits_show_up_in_queries_within_seconds() {
    let app = spawn_app().await;
    let p = app.register("live.example", "UTC").await;
    let res = app.post_event(&json!({"name": "pageview", "url": "https://live.example/now", "domain": "live.example"}), &[]).await;
    assert_eq!(res.status, 202);
    let k = key(&p);
    let realtime = eventually(Duration::from_secs(10), "the hit to be visible", || {
        let (app, k) = (&app, k.clone());
        async move {
            let res = app
                .get("/api/v1/stats/realtime/visitors?site_id=live.example", &k)
                .await;
            (res.body == json!(1)).then_some(res)
        }
    })
    .await;
    assert_eq!(realtime.status, 200);
    let res = app.query(&k, &json!({"site_id": "live.example", "metrics": ["pageviews"], "date_range": "day", "dimensions": ["event:page"]})).await;
    assert_eq!(
        res.body["results"],
        json!([{"dimensions": ["/now"], "metrics": [1]}])
    );
}

#[actix_web::test]
async fn a_read_key_reads_only_its_own_property() {
    let (app, a) = scenario().await;
    let b = app.register("other.example", "UTC").await;
    let body = |site: &str| json!({"site_id": site, "metrics": ["visitors"], "date_range": ["2026-03-01", "2026-03-02"]});
    // B's key cannot read A, in any endpoint; A's key can.
    let res = app.query(&key(&b), &body("shop.example")).await;
    assert_eq!((res.status, res.code()), (401, "unauthorized"));
    for path in [
        "aggregate?",
        "timeseries?",
        "breakdown?property=event:page&",
        "realtime/visitors?",
    ] {
        let url = format!(
            "/api/v1/stats/{path}site_id=shop.example&period=custom&date=2026-03-01,2026-03-02"
        );
        assert_eq!(app.get(&url, &key(&b)).await.status, 401, "{path}");
        assert_eq!(app.get(&url, &key(&a)).await.status, 200, "{path}");
    }
    assert_eq!(
        app.query(&key(&a), &body("shop.example")).await.body["results"][0]["metrics"],
        json!([3])
    );
    assert_eq!(
        app.query(&key(&b), &body("other.example")).await.body["results"][0]["metrics"],
        json!([0])
    );
    // The admin token reads any property; an unknown site is 404 for it and 401 for a read key.
    assert_eq!(
        app.query(ADMIN_TOKEN, &body("shop.example")).await.status,
        200
    );
    assert_eq!(
        app.query(ADMIN_TOKEN, &body("nope.example")).await.code(),
        "site_not_found"
    );
    assert_eq!(app.query(&key(&a), &body("nope.example")).await.status, 401);
    assert_eq!(app.query("", &body("shop.example")).await.status, 401);
}

#[actix_web::test]
async fn malformed_queries_get_400_naming_the_field() {
    let (app, p) = scenario().await;
    let k = key(&p);
    let base = json!({"site_id": "shop.example", "metrics": ["visitors"], "date_range": "7d"});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases = [
        (with(json!({"metrics": null})), "metrics"),
        (with(json!({"metrics": ["visitorz"]})), "metrics[0]"),
        (with(json!({"metrics": "visitors"})), "metrics"),
        (with(json!({"date_range": "3w"})), "date_range"),
        (
            with(json!({"date_range": ["2026-03-01", "soon"]})),
            "date_range[1]",
        ),
        (
            with(json!({"date_range": ["2026-03-05", "2026-03-01"]})),
            "date_range",
        ),
        (with(json!({"dimensions": ["event:nope"]})), "dimensions[0]"),
        (
            with(json!({"filters": [["equals", "event:page", ["/"]]]})),
            "filters[0][0]",
        ),
        (
            with(json!({"filters": [["is", "event:page", "/"]]})),
            "filters[0][2]",
        ),
        (
            with(json!({"filters": [["is", "time:day", ["x"]]]})),
            "filters[0][1]",
        ),
        (
            with(json!({"filters": [["matches", "event:page", ["("]]]})),
            "filters",
        ),
        (
            with(json!({"order_by": [["visitors", "up"]]})),
            "order_by[0][1]",
        ),
        (
            with(json!({"order_by": [["pageviews", "desc"]]})),
            "order_by",
        ),
        (
            with(json!({"pagination": {"limit": -1}})),
            "pagination.limit",
        ),
        (
            with(json!({"metrics": ["bounce_rate"], "dimensions": ["event:page"]})),
            "metrics",
        ),
        (with(json!({"metrics": ["percentage"]})), "metrics"),
        (with(json!({"site_id": 5})), "site_id"),
    ];
    for (body, field) in cases {
        let res = app.query(&k, &body).await;
        assert_eq!(
            (res.status, res.code()),
            (400, "invalid_query"),
            "{body}: {}",
            res.text
        );
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{body}: expected `{field}` in {message}"
        );
    }
    let res = app
        .request("POST", "/api/v2/query", Some(&k), &[], Some(b"{".to_vec()))
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_json"));
    let res = app
        .get(
            "/api/v1/stats/aggregate?site_id=shop.example&period=custom&date=2026-03-01",
            &k,
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_query"));
    let res = app
        .get("/api/v1/stats/breakdown?site_id=shop.example&period=7d", &k)
        .await;
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("property:"));
}

/// Identical queries share one answer until the property's read models change; then the next
/// query sees the change at once.
#[actix_web::test]
async fn answers_are_shared_until_the_property_changes() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    let hits_of_cache = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("footfall_query_cache_total") && l.contains("\"hit\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let post = |page: &'static str| {
        let app = &app;
        async move {
            let res = app
                .post_event(
                    &json!({"n": "pageview", "u": format!("https://shop.example{page}"), "d": "shop.example"}),
                    &[],
                )
                .await;
            assert_eq!(res.status, 202);
            app.wait_projected().await;
        }
    };
    let pageviews = || async {
        let res = app
            .query(
                ADMIN_TOKEN,
                &json!({"site_id": "shop.example", "metrics": ["pageviews"], "date_range": "day"}),
            )
            .await;
        res.body["results"][0]["metrics"][0].as_u64().unwrap()
    };
    post("/a").await;
    assert_eq!(pageviews().await, 1);
    let before = hits_of_cache(&app.admin_get("/metrics").await.text);
    assert_eq!(pageviews().await, 1);
    let after = hits_of_cache(&app.admin_get("/metrics").await.text);
    assert!(
        after >= before + 1.0,
        "the second query was answered from the cache"
    );
    post("/b").await;
    assert_eq!(pageviews().await, 2, "a change is seen at once");
}

/// Where the values just below the top have nearly as many visitors, the first candidates cannot
/// prove the top (their last has nearly as many events as the top's last has visitors) and more
/// are ranked: the answer is still exactly the enriched table's.
#[actix_web::test]
async fn the_top_of_a_flat_breakdown_is_exact() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    // Pages 0–4 have 100 visitors, 5–19 have 97, 20–59 have 50.
    let visitors = |page: u64| match page {
        0..5 => 100,
        5..20 => 97,
        _ => 50,
    };
    seed_pages(&app, &p, 60, visitors).await;
    let q = json!({"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                   "date_range": ["2026-03-01", "2026-03-01"], "pagination": {"limit": 5}});
    let rollup = v2(&app, &p, q.clone()).await;
    let mut filtered = q;
    filtered["filters"] = json!([["contains", "event:page", [""]]]);
    assert_eq!(rollup, v2(&app, &p, filtered).await);
    let pages: Vec<&str> = rollup
        .iter()
        .map(|r| r["dimensions"][0].as_str().unwrap())
        .collect();
    assert_eq!(pages, ["/p0", "/p1", "/p2", "/p3", "/p4"]);
    assert!(rollup.iter().all(|r| r["metrics"] == json!([100, 100])));
}

/// Reports that arrive together read their properties' versions in one statement, not one each:
/// every report still gets its own property's answer, and a change is seen by every report that
/// arrives after it.
#[actix_web::test]
async fn reports_arriving_together_share_their_version_reads() {
    let app = spawn_app().await;
    let sites = ["a.example", "b.example", "c.example"];
    for site in sites {
        app.register(site, "UTC").await;
    }
    let post = |site: &'static str, page: String| {
        let app = &app;
        async move {
            let res = app
                .post_event(
                    &json!({"n": "pageview", "u": format!("https://{site}{page}"), "d": site}),
                    &[],
                )
                .await;
            assert_eq!(res.status, 202);
        }
    };
    for (i, site) in sites.iter().enumerate() {
        for n in 0..=i {
            post(site, format!("/{n}")).await;
        }
    }
    app.wait_projected().await;
    let version_reads = || async {
        let text = app.admin_get("/metrics").await.text;
        text.lines()
            .filter(|l| l.starts_with("footfall_query_version_reads_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // 20 reports of each site at once.
    let wave = |sites: &'static [&'static str]| {
        let app = &app;
        futures_util::future::join_all(sites.iter().flat_map(|site| {
            (0..20).map(move |_| async move {
                let res = app
                    .query(
                        ADMIN_TOKEN,
                        &json!({"site_id": site, "metrics": ["pageviews"], "date_range": "day"}),
                    )
                    .await;
                assert_eq!(res.status, 200, "{}", res.text);
                (
                    *site,
                    res.body["results"][0]["metrics"][0].as_u64().unwrap(),
                )
            })
        }))
    };
    let before = version_reads().await;
    let answers = wave(&["a.example", "b.example", "c.example"]).await;
    let reads = version_reads().await - before;
    for (site, pageviews) in &answers {
        let posted = 1 + sites.iter().position(|s| s == site).unwrap() as u64;
        assert_eq!(*pageviews, posted, "{site}");
    }
    eprintln!("{} reports, {reads} version reads", answers.len());
    assert!(
        reads >= 1.0 && reads < answers.len() as f64,
        "{reads} version reads for {} reports",
        answers.len()
    );
    post("b.example", "/new".into()).await;
    app.wait_projected().await;
    for (site, pageviews) in wave(&["b.example"]).await {
        assert_eq!(
            (site, pageviews),
            ("b.example", 3),
            "a change is seen at once"
        );
    }
}

/// Pages `/p0` … of property `p`, page i with `visitors(i)` visitors of one pageview each on
/// 2026-03-01, projected.
async fn seed_pages(app: &TestApp, p: &Value, pages: u64, visitors: impl Fn(u64) -> u64) {
    let mut hits = Vec::new();
    for page in 0..pages {
        for v in 0..visitors(page) {
            hits.push(hit_event(
                p,
                &Seed {
                    visitor: v,
                    at: "2026-03-01T10:00:00Z",
                    name: "pageview",
                    url: &format!("https://shop.example/p{page}"),
                    props: &[],
                },
            ));
        }
    }
    app.seed(hits).await;
    app.wait_projected().await;
}

/// The top of a breakdown over many values is found without a sketch union per value; it must
/// be exactly the top the enriched table gives, page after page.
#[actix_web::test]
async fn the_top_of_a_large_breakdown_is_exact() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    // Page i has 200 - i visitors.
    seed_pages(&app, &p, 200, |i| 200 - i).await;
    for offset in [0, 5, 40] {
        let q = json!({"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                       "date_range": ["2026-03-01", "2026-03-01"], "pagination": {"limit": 5, "offset": offset}});
        let rollup = v2(&app, &p, q.clone()).await;
        let mut filtered = q;
        filtered["filters"] = json!([["contains", "event:page", [""]]]);
        let enriched = v2(&app, &p, filtered).await;
        assert_eq!(rollup, enriched, "offset {offset}");
        assert_eq!(rollup.len(), 5);
        assert_eq!(
            rollup[0]["metrics"],
            json!([200 - offset, 200 - offset]),
            "offset {offset}"
        );
    }
}

/// Each pool's connections set what their workload needs and keep the server's other settings:
/// query connections ask the kernel for the blocks their bitmap scans will read
/// (`effective_io_concurrency`: a cold breakdown's rows lie in scattered blocks); project
/// connections commit without waiting for the disk (all they write is derived from the log, and a
/// crash that loses their last commits loses their checkpoints with them: see `tests/faults`;
/// appends set it on in their own transactions whatever the pool says).
#[actix_web::test]
async fn each_pool_sets_what_its_workload_needs_and_keeps_the_servers_other_settings() {
    let url = crate::helpers::fresh_database().await;
    let pools = footfall::startup::Pools::new(&crate::helpers::config_on(&url, &[])).unwrap();
    let show = |pool: sqlx::PgPool| async move {
        let mut settings = Vec::new();
        for setting in ["effective_io_concurrency", "synchronous_commit"] {
            let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            settings.push(value);
        }
        settings
    };
    let server = show(sqlx::PgPool::connect(&url).await.unwrap()).await;
    assert_eq!(server[1], "on", "the test server's default");
    let (read_ahead, unsynced) = (
        vec!["128".to_owned(), server[1].clone()],
        vec![server[0].clone(), "off".to_owned()],
    );
    assert_eq!(show(pools.query.clone()).await, read_ahead);
    assert_eq!(show(pools.project.clone()).await, unsynced);
    assert_eq!(show(pools.append.clone()).await, server);
    assert_eq!(show(pools.admin.clone()).await, server);
}
