//! Property tests of the read side's inputs that the dashboard added: shared-link creation (an
//! event-sourced command, so an accepted link must reach its read model and open its dashboard),
//! the v2 query's comparisons, realtime range and minute buckets, and the prop-keys listing.
//! Arbitrary Unicode and shapes; the invariant is a 2xx that is true, or a 4xx with a JSON error
//! code, and never a 5xx or a dropped connection. Cases are drawn with a fixed seed (see
//! `FOOTFALL_PROPTEST_SEED`) and every failure prints its input.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

use super::strategies::{json_text, json_value, nasty, query_text};
use crate::helpers::{hit_event, spawn_app, Seed, TestApp, ADMIN_TOKEN};

pub(super) fn runner(name: &str) -> TestRunner {
    let seed: u64 = std::env::var("FOOTFALL_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00f0_0f0a_11ca_5e5e);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in name.bytes().take(24).enumerate() {
        bytes[8 + i] = b;
    }
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

fn cases(default: usize) -> usize {
    std::env::var("FOOTFALL_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(default, |n| n.min(default))
}

/// A 4xx must say why, with a stable code.
fn check_refusal(status: u16, body: &Value, input: &str) {
    assert!((400..500).contains(&status), "{status} for {input}: {body}");
    assert!(
        body["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{status} without a JSON error code for {input}: {body}"
    );
}

#[actix_web::test]
async fn proptest_shared_link_creation() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let path = format!("/api/admin/properties/{id}/shared-links");
    let body = prop_oneof![
        3 => nasty().prop_map(|n| json_text(&json!({ "name": n }))),
        1 => json_value().prop_map(|v| json_text(&v)),
        1 => nasty(),
    ];
    let mut runner = runner("shared-links");
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..cases(60) {
        let input = body.new_tree(&mut runner).unwrap().current();
        let res = app
            .request(
                "POST",
                &path,
                Some(ADMIN_TOKEN),
                &[("Content-Type", "application/json")],
                Some(input.clone().into_bytes()),
            )
            .await;
        let listed = app.admin_get(&path).await;
        let links = listed.body["shared_links"].as_array().unwrap().clone();
        if res.status == 201 {
            accepted += 1;
            // In the read model with its name, and its token opens this dashboard.
            assert!(
                links
                    .iter()
                    .any(|l| l["id"] == res.body["id"] && l["name"] == res.body["name"]),
                "created but not listed for {input:?}: {}",
                res.text
            );
            let token = res.body["token"].as_str().unwrap();
            let q =
                json!({"site_id": "shop.example", "date_range": "day", "metrics": ["visitors"]});
            assert_eq!(app.query(token, &q).await.status, 200, "{input:?}");
        } else {
            refused += 1;
            check_refusal(res.status, &res.body, &format!("{input:?}"));
            assert_eq!(links.len(), accepted, "a refusal created a link: {input:?}");
        }
    }
    eprintln!("shared links: {accepted} accepted, {refused} refused");
    assert!(accepted > 0 && refused > 0, "{accepted} / {refused}");
}

/// A v2 query around the dashboard's additions: named and arbitrary ranges, minute buckets,
/// comparisons, filters with arbitrary values, and arbitrary shapes in each place.
fn report_query() -> BoxedStrategy<Value> {
    let range = prop_oneof![
        4 => select(&["realtime", "last_month", "day", "7d", "30d", "month", "12mo", "all"][..])
            .prop_map(|s| json!(s)),
        2 => (nasty(), nasty()).prop_map(|(a, b)| json!([a, b])),
        1 => Just(json!(["2026-11-01", "2026-11-30T12:00:00+05:30"])),
        1 => json_value(),
    ];
    let metrics = prop_oneof![
        4 => vec(select(&["visitors", "visits", "pageviews", "bounce_rate", "visit_duration",
                          "views_per_visit", "events", "total_revenue", "percentage"][..]), 1..4)
            .prop_map(|m| json!(m)),
        1 => json_value(),
    ];
    let dimensions = prop_oneof![
        4 => vec(select(&["time:minute", "time", "time:day", "event:page", "visit:country",
                          "event:props:plan", "event:goal"][..]), 0..3)
            .prop_map(|d| json!(d)),
        1 => json_value(),
    ];
    let include = prop_oneof![
        2 => Just(Value::Null),
        3 => Just(json!({"comparisons": {"mode": "previous_period"}, "time_labels": true})),
        2 => Just(json!({"imports": true, "comparisons": {"mode": "previous_period"}})),
        1 => json_value().prop_map(|v| json!({ "comparisons": v })),
        1 => json_value(),
    ];
    let filters = prop_oneof![
        2 => Just(json!([])),
        3 => (select(&["is", "contains", "matches", "is_not"][..]),
              select(&["event:page", "visit:country", "visit:source", "event:props:plan"][..]),
              nasty())
            .prop_map(|(op, dim, v)| json!([[op, dim, [v]]])),
        1 => json_value(),
    ];
    (range, metrics, dimensions, include, filters)
        .prop_map(|(date_range, metrics, dimensions, include, filters)| {
            json!({"site_id": "shop.example", "date_range": date_range, "metrics": metrics,
                   "dimensions": dimensions, "include": include, "filters": filters})
        })
        .boxed()
}

async fn seeded_shop(app: &TestApp) -> String {
    let property = app.register("shop.example", "UTC").await;
    let now = chrono::Utc::now();
    let hits = (0..6)
        .map(|i| {
            let at = (now - chrono::Duration::minutes(i * 7)).to_rfc3339();
            hit_event(
                &property,
                &Seed {
                    visitor: i as u64 % 3,
                    at: &at,
                    name: "pageview",
                    url: &format!("https://shop.example/p{}", i % 2),
                    props: &[("plan", "pro")],
                },
            )
        })
        .collect();
    app.seed(hits).await;
    app.wait_projected().await;
    property["read_key"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn proptest_report_queries_and_prop_keys() {
    let app = spawn_app().await;
    let key = seeded_shop(&app).await;
    let mut runner = runner("report-queries");
    let (mut answered, mut refused) = (0, 0);
    let strategy = report_query();
    for _ in 0..cases(200) {
        let q = strategy.new_tree(&mut runner).unwrap().current();
        let text = json_text(&q);
        let res = app
            .request(
                "POST",
                "/api/v2/query",
                Some(&key),
                &[("Content-Type", "application/json")],
                Some(text.clone().into_bytes()),
            )
            .await;
        if res.status == 200 {
            answered += 1;
            let rows = res.body["results"].as_array();
            assert!(rows.is_some(), "no results for {text}: {}", res.text);
            if q["include"]["comparisons"]["mode"] == "previous_period" {
                assert!(
                    rows.unwrap()
                        .iter()
                        .all(|r| r["comparison"]["change"].is_array()),
                    "a row without its comparison for {text}: {}",
                    res.text
                );
            }
        } else {
            refused += 1;
            check_refusal(res.status, &res.body, &text);
        }
    }
    eprintln!("v2 queries: {answered} answered, {refused} refused");
    assert!(answered > 0 && refused > 0, "{answered} / {refused}");

    let params = (
        prop_oneof![3 => Just("shop.example".to_owned()), 1 => nasty()],
        prop_oneof![
            1 => select(&["realtime", "30d", "last_month"][..]).prop_map(str::to_owned),
            2 => (nasty(), nasty()).prop_map(|(a, b)| format!("{a},{b}")),
            1 => nasty(),
        ],
    );
    let (mut listed, mut refused) = (0, 0);
    for _ in 0..cases(100) {
        let (site, range) = params.new_tree(&mut runner).unwrap().current();
        let path = format!(
            "/api/v2/prop-keys?site_id={}&date_range={}",
            query_text(&site),
            query_text(&range)
        );
        let res = app.get(&path, &key).await;
        if res.status == 200 {
            listed += 1;
            assert!(res.body["prop_keys"].is_array(), "{path}: {}", res.text);
        } else {
            refused += 1;
            check_refusal(res.status, &res.body, &path);
        }
    }
    eprintln!("prop keys: {listed} listed, {refused} refused");
    assert!(listed > 0 && refused > 0, "{listed} / {refused}");

    // Exports: any period and dates; an answer is a zip of the ten tables.
    let params = (
        prop_oneof![3 => Just("shop.example".to_owned()), 1 => nasty()],
        prop_oneof![
            2 => select(&["all", "30d", "day", "custom"][..]).prop_map(str::to_owned),
            1 => nasty(),
        ],
        prop_oneof![
            1 => Just("2026-11-01,2026-11-30".to_owned()),
            1 => (nasty(), nasty()).prop_map(|(a, b)| format!("{a},{b}")),
            1 => nasty(),
        ],
    );
    let (mut exported, mut refused) = (0, 0);
    for _ in 0..cases(40) {
        let (site, period, date) = params.new_tree(&mut runner).unwrap().current();
        let path = format!(
            "/api/v1/export?site_id={}&period={}&date={}",
            query_text(&site),
            query_text(&period),
            query_text(&date)
        );
        let res = app.get(&path, &key).await;
        if res.status == 200 {
            exported += 1;
            let files = footfall::import::zip::read(&res.bytes, 1 << 24);
            assert_eq!(files.map(|f| f.len()).ok(), Some(10), "{path}");
        } else {
            refused += 1;
            check_refusal(res.status, &res.body, &path);
        }
    }
    eprintln!("exports: {exported} exported, {refused} refused");
    assert!(exported > 0 && refused > 0, "{exported} / {refused}");
}

/// A GA4 Data API request: names, ranges, filter trees with any match type (by name or number)
/// and any value, metric filters, orders and paging as numbers or strings. `noisy` requests also
/// get unknown names, wrong types and arbitrary shapes in each place; the others are well formed
/// (their filter values still arbitrary), so that they reach the engine.
fn ga4_request(noisy: bool) -> BoxedStrategy<Value> {
    let noise = move |valid: BoxedStrategy<Value>| -> BoxedStrategy<Value> {
        if noisy {
            prop_oneof![10 => valid, 1 => nasty().prop_map(Value::String), 1 => json_value()]
                .boxed()
        } else {
            valid
        }
    };
    let named = move |names: &'static [&'static str]| {
        noise(select(names).prop_map(|n| json!({ "name": n })).boxed())
    };
    let dimensions = vec(
        named(&[
            "date",
            "dateHour",
            "hour",
            "pagePath",
            "eventName",
            "country",
            "deviceCategory",
            "landingPage",
            "sessionSource",
        ]),
        0..3,
    );
    // activeUsers first: the metric filter and the order use it.
    let metrics = vec(
        named(&[
            "sessions",
            "screenPageViews",
            "eventCount",
            "keyEvents",
            "totalRevenue",
        ]),
        0..3,
    )
    .prop_map(|mut m| {
        m.insert(0, json!({"name": "activeUsers"}));
        m
    });
    let day =
        move |valid: &'static [&'static str]| noise(select(valid).prop_map(|d| json!(d)).boxed());
    let ranges = vec(
        (
            day(&["yesterday", "7daysAgo", "2026-11-01", "0daysAgo"]),
            day(&["today", "today", "yesterday"]),
        ),
        1..3,
    )
    .prop_map(|r| {
        json!(r
            .into_iter()
            .map(|(a, b)| json!({"startDate": a, "endDate": b}))
            .collect::<Vec<_>>())
    });
    let match_type = noise(
        prop_oneof![
            select(
                &[
                    "EXACT",
                    "BEGINS_WITH",
                    "ENDS_WITH",
                    "CONTAINS",
                    "FULL_REGEXP",
                    "PARTIAL_REGEXP"
                ][..]
            )
            .prop_map(|m| json!(m)),
            (0i64..7).prop_map(|m| json!(m)),
        ]
        .boxed(),
    );
    let leaf = (
        select(
            &[
                "pagePath",
                "eventName",
                "deviceCategory",
                "country",
                "hostName",
            ][..],
        ),
        match_type,
        nasty(),
        any::<bool>(),
    )
        .prop_map(|(field, m, value, cs)| {
            json!({"filter": {"fieldName": field,
                   "stringFilter": {"matchType": m, "value": value, "caseSensitive": cs}}})
        });
    let filter = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|e| json!({"andGroup": {"expressions": e}})),
            vec(inner.clone(), 0..3).prop_map(|e| json!({"orGroup": {"expressions": e}})),
            inner.prop_map(|e| json!({ "notExpression": e })),
        ]
    });
    let dimension_filter = noise(prop_oneof![Just(Value::Null), filter].boxed());
    let metric_filter = noise(
        prop_oneof![
            Just(Value::Null),
            (1i64..6, any::<i32>())
                .prop_map(|(op, v)| json!({"filter": {"fieldName": "activeUsers",
                "numericFilter": {"operation": op, "value": {"int64Value": v.to_string()}}}})),
        ]
        .boxed(),
    );
    let paging = noise(
        prop_oneof![
            Just(Value::Null),
            (0i64..5).prop_map(|n| json!(n)),
            (0i64..5).prop_map(|n| json!(n.to_string())),
        ]
        .boxed(),
    );
    let order_bys = noise(
        prop_oneof![
            Just(json!([])),
            Just(json!([{"metric": {"metricName": "activeUsers"}, "desc": true}])),
        ]
        .boxed(),
    );
    let aggregations = noise(prop_oneof![Just(json!([])), Just(json!([1, "MAXIMUM", 5]))].boxed());
    (
        (dimensions, metrics, ranges),
        (dimension_filter, metric_filter),
        (
            paging.clone(),
            paging,
            order_bys,
            aggregations,
            any::<bool>(),
        ),
    )
        .prop_map(|((d, m, r), (df, mf), (limit, offset, o, a, keep))| {
            json!({"dimensions": d, "metrics": m, "dateRanges": r, "minuteRanges": [],
                   "dimensionFilter": df, "metricFilter": mf, "limit": limit, "offset": offset,
                   "orderBys": o, "metricAggregations": a, "keepEmptyRows": keep})
        })
        .boxed()
}

#[actix_web::test]
async fn proptest_ga4_data_api_reports() {
    let app = spawn_app().await;
    let key = seeded_shop(&app).await;
    let id: String = sqlx::query_scalar("SELECT id::text FROM properties")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut runner = runner("ga4-reports");
    let strategy = (
        prop_oneof![
            4 => Just("runReport"),
            1 => Just("runRealtimeReport"),
            1 => Just("batchRunReports"),
        ],
        prop_oneof![6 => ga4_request(false), 6 => ga4_request(true), 1 => json_value()],
    );
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..cases(200) {
        let (method, request) = strategy.new_tree(&mut runner).unwrap().current();
        let body = if method == "batchRunReports" {
            json!({ "requests": [request] })
        } else {
            request
        };
        let text = json_text(&body);
        let res = app
            .request(
                "POST",
                &format!("/v1beta/properties/{id}:{method}"),
                Some(&key),
                &[("Content-Type", "application/json")],
                Some(text.clone().into_bytes()),
            )
            .await;
        if res.status == 200 {
            answered += 1;
            let report = if method == "batchRunReports" {
                &res.body["reports"][0]
            } else {
                &res.body
            };
            assert!(
                report["rowCount"].as_str().is_some() && report["metricHeaders"].is_array(),
                "{method} {text}: {}",
                res.text
            );
        } else {
            refused += 1;
            // Google's envelope: the HTTP status as `code`, a status name, a message.
            let e = &res.body["error"];
            assert!(
                (400..500).contains(&res.status),
                "{} for {method} {text}: {}",
                res.status,
                res.text
            );
            assert_eq!(e["code"], res.status, "{method} {text}: {}", res.text);
            assert!(
                e["status"].as_str().is_some_and(|s| !s.is_empty()),
                "{text}: {}",
                res.text
            );
            if std::env::var_os("FOOTFALL_PROPTEST_VERBOSE").is_some() {
                eprintln!("{method} {text}: {}", res.text);
            }
        }
    }
    eprintln!("GA4 reports: {answered} answered, {refused} refused");
    assert!(answered > 0 && refused > 0, "{answered} / {refused}");
}

/// A GraphQL request: `report` with arbitrary arguments (strings escaped into the document, or
/// passed as variables), `stats` with an arbitrary JSON value as its query, arbitrary documents,
/// and arbitrary bodies.
fn graphql_request() -> BoxedStrategy<Value> {
    let metric = prop_oneof![
        12 => select(&["VISITORS", "PAGEVIEWS", "VISITS", "EVENTS", "TOTAL_REVENUE"][..]),
        1 => Just("nope"),
    ];
    let dimension = prop_oneof![
        12 => select(&["TIME_DAY", "EVENT_PAGE", "VISIT_COUNTRY", "EVENT_GOAL", "TIME_MINUTE"][..]),
        1 => Just("x"),
    ];
    let report = (
        prop_oneof![8 => Just("shop.example".to_owned()), 1 => nasty()],
        vec(metric, 1..3),
        vec(dimension, 0..2),
        nasty(),
        prop_oneof![6 => Just("30d".to_owned()), 1 => nasty()],
        prop_oneof![6 => 1i64..200, 1 => any::<i64>()],
    )
        .prop_map(|(site, metrics, dimensions, value, range, limit)| {
            let query = format!(
                "query($site: String!, $value: String!, $range: String!) {{ report(siteId: $site, \
                 metrics: [{}], dimensions: [{}], dateRange: $range, limit: {limit}, \
                 filters: [{{op: CONTAINS, dimension: EVENT_PAGE, values: [$value]}}]) \
                 {{ results {{ dimensions metrics }} meta }} }}",
                metrics.join(", "),
                dimensions.join(", ")
            );
            json!({"query": query, "variables": {"site": site, "value": value, "range": range}})
        });
    let stats = json_value().prop_map(|q| {
        json!({"query": "query($q: JSON!) { stats(query: $q) { results { metrics } } }",
               "variables": {"q": q}})
    });
    let valid_stats = report_query().prop_map(|q| {
        json!({"query": "query($q: JSON!) { stats(query: $q) { results { dimensions metrics } meta } }",
               "variables": {"q": q}})
    });
    prop_oneof![
        4 => report,
        3 => valid_stats,
        1 => stats,
        1 => nasty().prop_map(|q| json!({ "query": q })),
        1 => json_value(),
    ]
    .boxed()
}

#[actix_web::test]
async fn proptest_graphql() {
    let app = spawn_app().await;
    let key = seeded_shop(&app).await;
    let mut runner = runner("graphql");
    let strategy = graphql_request();
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..cases(200) {
        let request = strategy.new_tree(&mut runner).unwrap().current();
        let text = json_text(&request);
        let res = app
            .request(
                "POST",
                "/api/graphql",
                Some(&key),
                &[("Content-Type", "application/json")],
                Some(text.clone().into_bytes()),
            )
            .await;
        if res.status == 200 {
            answered += 1;
            assert!(res.body["data"].is_object(), "{text}: {}", res.text);
        } else {
            refused += 1;
            assert!(
                (400..500).contains(&res.status),
                "{} for {text}: {}",
                res.status,
                res.text
            );
            // A GraphQL error, or (a body that is no GraphQL request) the REST error.
            let code = res.body["errors"][0]["extensions"]["code"]
                .as_str()
                .or(res.body["error"]["code"].as_str());
            assert!(code.is_some_and(|c| !c.is_empty()), "{text}: {}", res.text);
        }
    }
    eprintln!("GraphQL: {answered} answered, {refused} refused");
    assert!(answered > 0 && refused > 0, "{answered} / {refused}");
}
