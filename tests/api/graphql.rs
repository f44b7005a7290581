//! GraphQL: `stats` with a v2 query object and `report` with typed arguments give the REST APIs'
//! numbers; keys, errors and limits; the introspection GraphiQL sends; GraphiQL itself in
//! headless Chromium, running a query against the server.

use serde_json::{json, Value};

use crate::dashboard::webdriver::Browser;
use crate::helpers::{hit_event, spawn_app, Response, Seed, TestApp, ADMIN_TOKEN};

/// Five hits of three visitors on 1 November, and one a minute ago.
async fn shop(app: &TestApp) -> Value {
    let property = app.register("shop.example", "UTC").await;
    let a_minute_ago = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let hits = [
        (1, "2026-11-01T10:00:00Z", "/", "pro"),
        (1, "2026-11-01T10:01:00Z", "/pricing", "pro"),
        (2, "2026-11-01T11:00:00Z", "/", "free"),
        (3, "2026-11-01T12:00:00Z", "/blog", "free"),
        (3, "2026-11-01T12:05:00Z", "/", "free"),
        (4, a_minute_ago.as_str(), "/live", "free"),
    ]
    .map(|(visitor, at, path, plan)| {
        hit_event(
            &property,
            &Seed {
                visitor,
                at,
                name: "pageview",
                url: &format!("https://shop.example{path}"),
                props: &[("plan", plan)],
            },
        )
    });
    app.seed(hits.to_vec()).await;
    app.wait_projected().await;
    property
}

async fn graphql(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Response {
    app.request(
        "POST",
        "/api/graphql",
        token,
        &[("Content-Type", "application/json")],
        Some(serde_json::to_vec(&json!({"query": query, "variables": variables})).unwrap()),
    )
    .await
}

/// The rows of a v2 answer as GraphQL writes them (dimensions and metrics).
fn v2_rows(answer: &Value) -> Value {
    json!(answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"dimensions": r["dimensions"], "metrics": r["metrics"]}))
        .collect::<Vec<_>>())
}

#[actix_web::test]
async fn graphql_answers_as_the_rest_apis() {
    let app = spawn_app().await;
    let property = shop(&app).await;
    let key = property["read_key"].as_str().unwrap();

    // `stats` takes the v2 query object as it is.
    let v2_query = json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-01"],
        "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
        "order_by": [["pageviews", "desc"], ["event:page", "asc"]]});
    let rest = app.query(key, &v2_query).await;
    assert_eq!(rest.status, 200, "{}", rest.text);
    let res = graphql(
        &app,
        Some(key),
        "query($q: JSON!) { stats(query: $q) { results { dimensions metrics } meta } }",
        json!({ "q": v2_query }),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["data"]["stats"]["results"], v2_rows(&rest.body));
    assert_eq!(
        res.body["data"]["stats"]["results"][0],
        json!({"dimensions": ["/"], "metrics": [3, 3]})
    );

    // `report`: typed metrics, dimensions, props, filters and order.
    let res = graphql(
        &app,
        Some(key),
        r#"{ report(siteId: "shop.example", from: "2026-11-01", to: "2026-11-01",
                    metrics: [VISITORS, VISITS, BOUNCE_RATE], dimensions: [VISIT_ENTRY_PAGE],
                    filters: [{op: IS_NOT, prop: "plan", values: ["pro"]}],
                    orderBy: [{dimension: VISIT_ENTRY_PAGE}]) {
               results { dimensions metrics } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let rest = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-01"],
                "metrics": ["visitors", "visits", "bounce_rate"],
                "dimensions": ["visit:entry_page"],
                "filters": [["is_not", "event:props:plan", ["pro"]]],
                "order_by": [["visit:entry_page", "asc"]]}),
        )
        .await;
    assert_eq!(res.body["data"]["report"]["results"], v2_rows(&rest.body));
    assert_eq!(
        res.body["data"]["report"]["results"],
        json!([{"dimensions": ["/"], "metrics": [1, 1, 100]},
               {"dimensions": ["/blog"], "metrics": [1, 1, 0]}])
    );

    // Realtime visitors, as v1.
    let rest = app
        .get("/api/v1/stats/realtime/visitors?site_id=shop.example", key)
        .await;
    let res = graphql(
        &app,
        Some(key),
        r#"{ realtimeVisitors(siteId: "shop.example") }"#,
        json!({}),
    )
    .await;
    assert_eq!(res.body["data"]["realtimeVisitors"], rest.body);
    assert_eq!(rest.body, 1);

    // Properties: the admin token only.
    let res = graphql(
        &app,
        Some(ADMIN_TOKEN),
        "{ properties { id domain timezone } }",
        json!({}),
    )
    .await;
    assert_eq!(
        res.body["data"]["properties"],
        json!([{"id": property["id"], "domain": "shop.example", "timezone": "UTC"}])
    );
    let res = graphql(&app, Some(key), "{ properties { id } }", json!({})).await;
    assert_eq!(res.status, 401, "{}", res.text);
    assert_eq!(res.body["errors"][0]["extensions"]["code"], "unauthorized");
}

#[actix_web::test]
async fn graphql_refuses_with_stable_codes_and_limits_the_work() {
    let app = spawn_app().await;
    let property = shop(&app).await;
    let other = app.register("other.example", "UTC").await;
    let key = property["read_key"].as_str().unwrap();
    let report = r#"report(siteId: "shop.example", metrics: [VISITORS]) { results { metrics } }"#;

    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, format!("{{ {report} }}"), 401, "unauthorized"),
        (other["read_key"].as_str(), format!("{{ {report} }}"), 401, "unauthorized"),
        (Some(key), r#"{ stats(query: {site_id: "shop.example", metrics: ["nope"], date_range: "7d"}) { meta } }"#.into(), 400, "invalid_query"),
        (Some(key), r#"{ stats(query: [1]) { meta } }"#.into(), 400, "invalid_query"),
        (Some(key), "{ report(".into(), 400, "invalid_graphql"),
        (Some(key), "{ nothing }".into(), 400, "invalid_graphql"),
        // Six reports cost more than the budget of five.
        (Some(key), format!("{{ {} }}", (0..6).map(|i| format!("r{i}: {report}")).collect::<Vec<_>>().join(" ")), 400, "invalid_graphql"),
        // Nesting beyond the depth limit.
        (Some(key), format!("{{ __schema {{ types {{ {}name{} }} }} }}", "fields { type { ofType { ".repeat(5), " } } }".repeat(5)), 400, "invalid_graphql"),
    ];
    for (token, query, status, code) in cases {
        let res = graphql(&app, token, &query, json!({})).await;
        assert_eq!(res.status, status, "{query}: {}", res.text);
        assert_eq!(
            res.body["errors"][0]["extensions"]["code"], code,
            "{query}: {}",
            res.text
        );
        assert!(res.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Five reports are within the budget.
    let five = format!(
        "{{ {} }}",
        (0..5)
            .map(|i| format!("r{i}: {report}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let res = graphql(&app, Some(key), &five, json!({})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["data"]["r4"]["results"][0]["metrics"], json!([1]));

    let res = app
        .request(
            "POST",
            "/api/graphql",
            Some(key),
            &[("Content-Type", "application/json")],
            Some(b"{\"query\": 1}".to_vec()),
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_json"));

    // What GraphiQL sends first: graphql-js's introspection query, within the limits.
    let res = graphql(&app, Some(key), INTROSPECTION, json!({})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let types = res.body["data"]["__schema"]["types"].as_array().unwrap();
    for name in [
        "StatsResult",
        "Row",
        "MetricName",
        "DimensionName",
        "FilterInput",
    ] {
        assert!(types.iter().any(|t| t["name"] == name), "{name}");
    }
}

#[actix_web::test]
async fn graphiql_runs_a_query_in_the_browser() {
    let app = spawn_app().await;
    let property = shop(&app).await;
    let key = property["read_key"].as_str().unwrap();

    let page = app.request("GET", "/api/graphql", None, &[], None).await;
    assert_eq!(page.status, 200);
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        !page.text.contains("https://"),
        "nothing from elsewhere: {}",
        page.text
    );

    let browser = Browser::start(1280, 900).await;
    browser
        .goto(&app.url(&format!("/api/graphql#key={key}")))
        .await;
    browser
        .until(
            "GraphiQL's editor",
            "return document.querySelector('.graphiql-execute-button') !== null",
        )
        .await;
    browser.click(".graphiql-execute-button").await;
    // The default query asks shop.example's pages over 30 days: the hit of a minute ago.
    let result = browser
        .until(
            "the answer in the result pane",
            "const t = document.querySelector('.result-window')?.innerText || ''; \
             return t.includes('/live') ? t : null",
        )
        .await;
    assert!(result.as_str().unwrap().contains("results"), "{result}");
    browser.quit().await;
}

/// `getIntrospectionQuery()` of graphql-js 16, with its defaults, as GraphiQL sends it.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;
