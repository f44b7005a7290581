//! The GA4 Data API: Google's official Python client against a real server, the wire format with
//! hand-written proto3 JSON (enums as numbers, int64 as strings, Google's error envelope), and the
//! same questions through GA4, Plausible v2 and v1 giving the same numbers.

use serde_json::{json, Value};

use crate::helpers::{hit_event, spawn_app, Response, Seed, TestApp, ADMIN_TOKEN};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";

/// Four visitors over two days of November, a goal completed once, and a hit a minute ago:
///
/// | day | visitor | hits |
/// |---|---|---|
/// | 11-01 | 1 | /blog/a, /blog/b |
/// | 11-01 | 2 | / |
/// | 11-01 | 3 | /, Signup (the goal) |
/// | 11-02 | 1 | /blog/a |
/// | 11-02 | 4 (mobile) | /pricing |
async fn shop(app: &TestApp) -> Value {
    let property = app.register("shop.example", "UTC").await;
    app.set_goals(&property, json!([{"event": "Signup"}])).await;
    let a_minute_ago = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let hits = [
        (1, "2026-11-01T10:00:00Z", "pageview", "/blog/a", CHROME),
        (1, "2026-11-01T10:01:00Z", "pageview", "/blog/b", CHROME),
        (2, "2026-11-01T12:00:00Z", "pageview", "/", CHROME),
        (3, "2026-11-01T12:59:00Z", "pageview", "/", CHROME),
        (3, "2026-11-01T13:00:00Z", "Signup", "/", CHROME),
        (1, "2026-11-02T09:00:00Z", "pageview", "/blog/a", CHROME),
        (4, "2026-11-02T15:00:00Z", "pageview", "/pricing", IPHONE),
        (5, a_minute_ago.as_str(), "pageview", "/live", CHROME),
    ]
    .map(|(visitor, at, name, path, agent)| {
        let mut hit = hit_event(
            &property,
            &Seed {
                visitor,
                at,
                name,
                url: &format!("https://shop.example{path}"),
                props: &[],
            },
        );
        hit.user_agent = Some(agent.into());
        hit
    });
    app.seed(hits.to_vec()).await;
    app.wait_projected().await;
    property
}

async fn ga4(app: &TestApp, token: Option<&str>, call: &str, body: &Value) -> Response {
    app.request(
        "POST",
        &format!("/v1beta/properties/{call}?$alt=json;enum-encoding=int"),
        token,
        &[("Content-Type", "application/json")],
        Some(serde_json::to_vec(body).unwrap()),
    )
    .await
}

/// Rows as lists of strings: dimension values, then metric values.
fn rows(report: &Value) -> Vec<Vec<String>> {
    let strings = |r: &Value, key: &str| -> Vec<String> {
        r[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].as_str().unwrap().to_owned())
            .collect()
    };
    report["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| [strings(r, "dimensionValues"), strings(r, "metricValues")].concat())
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn googles_python_client_reads_exact_numbers() {
    let app = spawn_app().await;
    let property = shop(&app).await;
    let other = app.register("other.example", "UTC").await;
    let id = property["id"].as_str().unwrap().to_owned();
    let args = [
        app.address.clone(),
        id.clone(),
        property["read_key"].as_str().unwrap().to_owned(),
        other["read_key"].as_str().unwrap().to_owned(),
    ];
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/clients/ga4_data_api.py"
            ))
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "the client failed (scripts/test installs google-analytics-data): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |rows: &[&[&str]]| json!(rows);

    let by_date = &got["by_date"];
    assert_eq!(by_date["dimensions"], json!(["date"]));
    assert_eq!(
        by_date["metrics"],
        json!([
            ["activeUsers", "TYPE_INTEGER"],
            ["sessions", "TYPE_INTEGER"],
            ["screenPageViews", "TYPE_INTEGER"],
            ["eventCount", "TYPE_INTEGER"],
            ["keyEvents", "TYPE_INTEGER"]
        ])
    );
    assert_eq!(
        by_date["rows"],
        s(&[
            &["20261101", "3", "3", "4", "5", "1"],
            &["20261102", "2", "2", "2", "2", "0"],
            // keepEmptyRows
            &["20261103", "0", "0", "0", "0", "0"],
        ])
    );
    // Visitors are distinct over the range, not summed over the days.
    assert_eq!(
        by_date["totals"],
        s(&[&["RESERVED_TOTAL", "4", "5", "6", "7", "1"]])
    );
    assert_eq!(
        by_date["maximums"],
        s(&[&["RESERVED_MAX", "3", "3", "4", "5", "1"]])
    );
    assert_eq!(by_date["row_count"], 3);
    assert_eq!(by_date["time_zone"], "UTC");
    assert_eq!(by_date["kind"], "analyticsData#runReport");

    // BEGINS_WITH is case-insensitive unless caseSensitive is set.
    assert_eq!(
        got["blog"]["rows"],
        s(&[&["/blog/a", "2", "1"], &["/blog/b", "1", "1"]])
    );
    assert_eq!(
        got["events"]["rows"],
        s(&[&["Signup", "1"], &["page_view", "6"]])
    );
    assert_eq!(
        got["paged"]["rows"],
        s(&[&["/blog/a", "2"], &["/blog/b", "1"]])
    );
    assert_eq!(got["paged"]["row_count"], 4, "every matching row");

    let two = &got["two_ranges"];
    assert_eq!(two["dimensions"], json!(["deviceCategory", "dateRange"]));
    let sessions: Vec<(String, String, String)> = two["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let bounce: f64 = r[3].as_str().unwrap().parse().unwrap();
            assert!((0.0..=1.0).contains(&bounce), "{r}");
            (
                r[0].as_str().unwrap().into(),
                r[1].as_str().unwrap().into(),
                r[2].as_str().unwrap().into(),
            )
        })
        .collect();
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        sessions,
        [
            t("desktop", "first", "3"),
            t("desktop", "second", "1"),
            t("mobile", "second", "1")
        ]
    );

    assert_eq!(got["batch"][0]["rows"], s(&[&["4"]]));
    assert_eq!(got["batch"][1]["rows"], s(&[&["2"]]));
    assert_eq!(got["realtime"]["rows"], s(&[&["page_view", "1", "1"]]));

    let dimensions = got["metadata"]["dimensions"].as_array().unwrap();
    for name in [
        "date",
        "pagePath",
        "sessionDefaultChannelGroup",
        "countryId",
    ] {
        assert!(
            dimensions.contains(&json!(name)),
            "{name} in {dimensions:?}"
        );
    }
    let metrics = got["metadata"]["metrics"].as_array().unwrap();
    for pair in [
        json!(["averageSessionDuration", "TYPE_SECONDS"]),
        json!(["totalRevenue", "TYPE_CURRENCY"]),
        json!(["bounceRate", "TYPE_FLOAT"]),
    ] {
        assert!(metrics.contains(&pair), "{pair} in {metrics:?}");
    }

    let errors = &got["errors"];
    assert_eq!(errors["other_key"][0], "Forbidden", "{errors}");
    assert_eq!(errors["other_key"][1], 403);
    // A 401 makes Google's client refresh its token, as it would an expired one.
    assert_eq!(errors["unknown_key"][0], "RefreshError", "{errors}");
    assert_eq!(errors["unknown_dimension"][1], 400, "{errors}");
    assert!(
        errors["unknown_dimension"][2]
            .as_str()
            .unwrap()
            .contains("itemName"),
        "{errors}"
    );
}

#[actix_web::test]
async fn the_wire_format_is_proto3_json_with_googles_errors() {
    let app = spawn_app().await;
    let property = shop(&app).await;
    let other = app.register("other.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let key = property["read_key"].as_str().unwrap();
    let run = format!("{id}:runReport");
    let nov = json!([{"startDate": "2026-11-01", "endDate": "2026-11-02"}]);

    // Enums as numbers, int64 as strings or numbers.
    let res = ga4(
        &app,
        Some(key),
        &run,
        &json!({
            "dimensions": [{"name": "pagePath"}],
            "metrics": [{"name": "screenPageViews"}],
            "dateRanges": nov,
            "dimensionFilter": {"filter": {"fieldName": "pagePath",
                "stringFilter": {"matchType": 4, "value": "blog", "caseSensitive": true}}},
            "orderBys": [{"dimension": {"dimensionName": "pagePath", "orderType": 1}, "desc": true}],
            "metricAggregations": [1, "MINIMUM"],
            "limit": "10",
            "offset": 0
        }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(rows(&res.body), [["/blog/b", "1"], ["/blog/a", "2"]]);
    assert_eq!(res.body["rowCount"], "2", "int64 as a string");
    assert_eq!(res.body["totals"][0]["metricValues"][0]["value"], "3");
    assert_eq!(
        res.body["minimums"][0]["dimensionValues"][0]["value"],
        "RESERVED_MIN"
    );
    assert_eq!(res.body["minimums"][0]["metricValues"][0]["value"], "1");
    assert_eq!(res.body["metricHeaders"][0]["type"], "TYPE_INTEGER");

    // date and hour together: hours of each day.
    let res = ga4(
        &app,
        Some(key),
        &run,
        &json!({"dimensions": [{"name": "date"}, {"name": "hour"}, {"name": "dateHour"}],
                "metrics": [{"name": "eventCount"}], "dateRanges": nov}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        rows(&res.body),
        [
            ["20261101", "10", "2026110110", "2"],
            ["20261101", "12", "2026110112", "2"],
            ["20261101", "13", "2026110113", "1"],
            ["20261102", "09", "2026110209", "1"],
            ["20261102", "15", "2026110215", "1"],
        ]
    );

    // `hour` alone: the hours of the day over both days, visitors counted once per hour.
    let res = ga4(
        &app,
        Some(key),
        &run,
        &json!({"dimensions": [{"name": "hour"}],
                "metrics": [{"name": "activeUsers"}, {"name": "eventCount"}], "dateRanges": nov,
                "keepEmptyRows": true}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let by_hour = rows(&res.body);
    assert_eq!(
        by_hour.len(),
        24,
        "keepEmptyRows gives every hour: {by_hour:?}"
    );
    let active: Vec<Vec<String>> = by_hour.into_iter().filter(|r| r[2] != "0").collect();
    assert_eq!(
        active,
        [
            ["09", "1", "1"],
            ["10", "1", "2"],
            ["12", "2", "2"],
            ["13", "1", "1"],
            ["15", "1", "1"],
        ]
    );

    // Refusals, each with Google's envelope and a message naming the field.
    // (token, call, body, status, Google's status, a word of the message)
    type Refusal<'a> = (Option<&'a str>, String, Value, u16, &'a str, &'a str);
    let refusals: Vec<Refusal> = vec![
        (
            None,
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": nov}),
            401,
            "UNAUTHENTICATED",
            "bearer",
        ),
        (
            Some("wrong"),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": nov}),
            401,
            "UNAUTHENTICATED",
            "bearer",
        ),
        (
            other["read_key"].as_str(),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": nov}),
            403,
            "PERMISSION_DENIED",
            id,
        ),
        (
            Some(ADMIN_TOKEN),
            format!("{}:runReport", uuid::Uuid::new_v4()),
            json!({}),
            404,
            "NOT_FOUND",
            "does not exist",
        ),
        (
            Some(key),
            format!("{id}:runPivotReport"),
            json!({}),
            404,
            "NOT_FOUND",
            "runPivotReport",
        ),
        (
            Some(key),
            run.clone(),
            json!({"metrics": [{"name": "itemRevenue"}], "dateRanges": nov}),
            400,
            "INVALID_ARGUMENT",
            "itemRevenue",
        ),
        (
            Some(key),
            run.clone(),
            json!({"dimensions": [{"name": "pagePath"}], "metrics": [{"name": "bounceRate"}], "dateRanges": nov}),
            400,
            "INVALID_ARGUMENT",
            "bounceRate",
        ),
        (
            Some(key),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": [{"startDate": "2026-11-05", "endDate": "2026-11-01"}]}),
            400,
            "INVALID_ARGUMENT",
            "before",
        ),
        (
            Some(key),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": [{"startDate": "last week", "endDate": "today"}]}),
            400,
            "INVALID_ARGUMENT",
            "last week",
        ),
        (
            Some(key),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": nov, "metricFilter": {"filter": {"fieldName": "sessions", "stringFilter": {"value": "1"}}}}),
            400,
            "INVALID_ARGUMENT",
            "stringFilter",
        ),
        (
            Some(key),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": nov, "dimensionFilter": {"filter": {"fieldName": "pagePath", "stringFilter": {"matchType": 5, "value": "("}}}}),
            400,
            "INVALID_ARGUMENT",
            "regular expression",
        ),
        (
            Some(key),
            run.clone(),
            json!({"metrics": [{"name": "sessions"}], "dateRanges": nov, "orderBys": [{"metric": {"metricName": "activeUsers"}}]}),
            400,
            "INVALID_ARGUMENT",
            "activeUsers",
        ),
        (
            Some(key),
            format!("{id}:batchRunReports"),
            json!({"requests": vec![json!({"metrics": [{"name": "sessions"}], "dateRanges": nov}); 6]}),
            400,
            "INVALID_ARGUMENT",
            "1 to 5",
        ),
        (
            Some(key),
            format!("{id}:runRealtimeReport"),
            json!({"dimensions": [{"name": "date"}], "metrics": [{"name": "activeUsers"}]}),
            400,
            "INVALID_ARGUMENT",
            "realtime",
        ),
        (
            Some(key),
            format!("{id}:runRealtimeReport"),
            json!({"metrics": [{"name": "activeUsers"}], "minuteRanges": [{"startMinutesAgo": 90}]}),
            400,
            "INVALID_ARGUMENT",
            "startMinutesAgo",
        ),
    ];
    for (token, call, body, status, code, says) in refusals {
        let res = ga4(&app, token, &call, &body).await;
        assert_eq!(res.status, status, "{call} {body}: {}", res.text);
        assert_eq!(res.body["error"]["status"], code, "{body}: {}", res.text);
        assert_eq!(res.body["error"]["code"], status, "{body}: {}", res.text);
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "`{says}` in {message} ({body})");
    }
    let res = app
        .request(
            "POST",
            &format!("/v1beta/properties/{run}"),
            Some(key),
            &[],
            Some(b"{".to_vec()),
        )
        .await;
    assert_eq!(
        (res.status, res.body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

#[actix_web::test]
async fn ga4_and_the_plausible_apis_give_the_same_numbers() {
    let app = spawn_app().await;
    let property = shop(&app).await;
    let id = property["id"].as_str().unwrap();
    let key = property["read_key"].as_str().unwrap();

    // By day: every metric the three APIs share.
    let metrics: Vec<Value> = [
        "activeUsers",
        "sessions",
        "screenPageViews",
        "eventCount",
        "bounceRate",
        "averageSessionDuration",
        "engagedSessions",
        "engagementRate",
        "screenPageViewsPerSession",
    ]
    .map(|m| json!({ "name": m }))
    .to_vec();
    let ga = ga4(
        &app,
        Some(key),
        &format!("{id}:runReport"),
        &json!({
            "dimensions": [{"name": "date"}],
            "metrics": metrics,
            "dateRanges": [{"startDate": "2026-11-01", "endDate": "2026-11-02"}]
        }),
    )
    .await;
    assert_eq!(ga.status, 200, "{}", ga.text);
    let v2 = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-02"],
                    "dimensions": ["time:day"],
                    "metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate",
                                "visit_duration", "engaged_sessions", "engagement_rate",
                                "views_per_visit"]}),
        )
        .await;
    assert_eq!(v2.status, 200, "{}", v2.text);
    let v1 = app
        .get(
            "/api/v1/stats/timeseries?site_id=shop.example&period=custom&date=2026-11-01,2026-11-02\
             &metrics=visitors,visits,pageviews,events,bounce_rate,visit_duration",
            key,
        )
        .await;
    assert_eq!(v1.status, 200, "{}", v1.text);
    let ga_rows = rows(&ga.body);
    let v2_rows = v2.body["results"].as_array().unwrap();
    let v1_rows = v1.body["results"].as_array().unwrap();
    assert_eq!(ga_rows.len(), 2);
    for (i, g) in ga_rows.iter().enumerate() {
        let m = &v2_rows[i]["metrics"];
        let day = v2_rows[i]["dimensions"][0].as_str().unwrap();
        assert_eq!(g[0], day.replace('-', ""));
        let n = |s: &str| s.parse::<f64>().unwrap();
        let expected = [
            m[0].as_f64().unwrap(),
            m[1].as_f64().unwrap(),
            m[2].as_f64().unwrap(),
            m[3].as_f64().unwrap(),
            m[4].as_f64().unwrap() / 100.0,
            m[5].as_f64().unwrap(),
            m[6].as_f64().unwrap(),
            m[7].as_f64().unwrap() / 100.0,
            m[8].as_f64().unwrap(),
        ];
        for (j, e) in expected.iter().enumerate() {
            assert!(
                (n(&g[j + 1]) - e).abs() < 1e-9,
                "day {day} metric {j}: GA4 {} v2 {e}",
                g[j + 1]
            );
        }
        let p = v1_rows.iter().find(|r| r["date"] == day).unwrap();
        for (j, name) in [
            "visitors",
            "visits",
            "pageviews",
            "events",
            "bounce_rate",
            "visit_duration",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                p[name].as_f64().unwrap(),
                m[j].as_f64().unwrap(),
                "v1 {name} on {day}"
            );
        }
    }

    // Breakdowns with a filter: pages of the blog, and visits by country and device.
    let cases = [
        (
            json!({"dimensions": [{"name": "pagePath"}], "metrics": [{"name": "activeUsers"}, {"name": "screenPageViews"}],
                   "dimensionFilter": {"filter": {"fieldName": "pagePath", "stringFilter": {"matchType": "BEGINS_WITH", "value": "/blog", "caseSensitive": true}}}}),
            json!({"dimensions": ["event:page"], "metrics": ["visitors", "pageviews"],
                   "filters": [["matches", "event:page", ["^/blog"]]]}),
        ),
        (
            json!({"dimensions": [{"name": "deviceCategory"}, {"name": "landingPage"}], "metrics": [{"name": "sessions"}, {"name": "activeUsers"}]}),
            json!({"dimensions": ["visit:device", "visit:entry_page"], "metrics": ["visits", "visitors"]}),
        ),
    ];
    for (mut ga_body, mut v2_body) in cases {
        ga_body["dateRanges"] = json!([{"startDate": "2026-11-01", "endDate": "2026-11-02"}]);
        ga_body["orderBys"] =
            json!([{"dimension": {"dimensionName": ga_body["dimensions"][0]["name"]}}]);
        v2_body["site_id"] = json!("shop.example");
        v2_body["date_range"] = json!(["2026-11-01", "2026-11-02"]);
        let ga = ga4(&app, Some(key), &format!("{id}:runReport"), &ga_body).await;
        let v2 = app.query(key, &v2_body).await;
        assert_eq!(
            (ga.status, v2.status),
            (200, 200),
            "{} {}",
            ga.text,
            v2.text
        );
        let mut from_v2: Vec<Vec<String>> = v2.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let dims = r["dimensions"].as_array().unwrap().iter();
                let mets = r["metrics"].as_array().unwrap().iter();
                dims.map(|d| d.as_str().unwrap().to_lowercase())
                    .chain(mets.map(|m| m.to_string()))
                    .collect()
            })
            .collect();
        from_v2.sort();
        let mut from_ga = rows(&ga.body);
        from_ga.sort();
        assert_eq!(from_ga, from_v2, "{ga_body}");
        assert!(!from_ga.is_empty());
    }
}
