//! The analytics semantics end to end: a scripted scenario with exact expected numbers, sent
//! through the GA4 Measurement Protocol (which carries client timestamps), with a GeoIP database
//! and a trusted proxy, on a +05:30 property; then a rebuild must give identical answers.

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Asia::Kolkata;
use serde_json::{json, Value};

use crate::helpers::{hit_event, spawn_app_with, Seed, TestApp, ADMIN_TOKEN};

const GEOIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/GeoIP2-City-Test.mmdb"
);
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// A visitor: GA4 client id, user agent and (through the trusted proxy) IP address.
struct Visitor {
    client_id: &'static str,
    user_agent: &'static str,
    ip: &'static str,
}

const V1: Visitor = Visitor {
    client_id: "v1",
    user_agent: CHROME_WINDOWS,
    ip: "81.2.69.142", // London, England, GB in the test database
};
const V2: Visitor = Visitor {
    client_id: "v2",
    user_agent: SAFARI_IPHONE,
    ip: "216.160.83.56", // Milton, Washington, US
};
const V3: Visitor = Visitor {
    client_id: "v3",
    user_agent: SAFARI_IPAD,
    ip: "89.160.20.128", // Linköping, Östergötland, SE
};
const BOT: Visitor = Visitor {
    client_id: "crawler",
    user_agent: GOOGLEBOT,
    ip: "81.2.69.160",
};

struct Scenario {
    app: TestApp,
    property: Value,
    /// The two local days of the scenario: within GA4's 72-hour backdating window.
    day_a: NaiveDate,
    day_b: NaiveDate,
}

impl Scenario {
    async fn new() -> Self {
        let app = spawn_app_with(&[
            ("FOOTFALL_GEOIP_DB", GEOIP),
            ("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1/32"),
        ])
        .await;
        let property = app.register("shop.example", "Asia/Kolkata").await;
        let goals = app
            .request(
                "PUT",
                &format!(
                    "/api/admin/properties/{}/goals",
                    property["id"].as_str().unwrap()
                ),
                Some(ADMIN_TOKEN),
                &[("Content-Type", "application/json")],
                Some(
                    serde_json::to_vec(
                        &json!({"goals": [{"event": "purchase"}, {"page": "/products*"}]}),
                    )
                    .unwrap(),
                ),
            )
            .await;
        assert_eq!(goals.status, 200, "{}", goals.text);
        assert_eq!(goals.body["goals"][1]["page"], "/products*");
        // Day A starts between 48 and 72 hours ago: both days are fully in the past and within
        // the backdating window.
        let day_a = (Utc::now() - chrono::Duration::hours(48))
            .with_timezone(&Kolkata)
            .date_naive();
        Self {
            app,
            property,
            day_a,
            day_b: day_a.succ_opt().unwrap(),
        }
    }

    /// Sends one GA4 event at a local time of the property, as a merchant's server forwards its
    /// visitor: the visitor's agent and address are in the payload, the request's are the server's.
    async fn send(&self, v: &Visitor, day: NaiveDate, time: &str, name: &str, params: Value) {
        let local = day.and_time(NaiveTime::parse_from_str(time, "%H:%M:%S").unwrap());
        let at = Kolkata.from_local_datetime(&local).single().unwrap();
        let body = json!({
            "client_id": v.client_id,
            "timestamp_micros": at.timestamp_micros(),
            "user_agent": v.user_agent,
            "ip_override": v.ip,
            "events": [{"name": name, "params": params}],
        });
        let before = self.app.log_events().await;
        let res = self
            .app
            .request(
                "POST",
                &format!(
                    "/mp/collect?measurement_id={}&api_secret={}",
                    self.property["measurement_id"].as_str().unwrap(),
                    self.property["api_secret"].as_str().unwrap()
                ),
                None,
                &[
                    ("Content-Type", "application/json"),
                    ("User-Agent", "python-requests/2.32.3"),
                    ("X-Forwarded-For", "198.51.100.1"),
                ],
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.text);
        assert_eq!(
            self.app.log_events().await,
            before + 1,
            "{name} at {time} was recorded"
        );
    }

    async fn view(&self, v: &Visitor, day: NaiveDate, time: &str, url: &str, referrer: &str) {
        let mut params = json!({"page_location": url});
        if !referrer.is_empty() {
            params["page_referrer"] = json!(referrer);
        }
        self.send(v, day, time, "page_view", params).await;
    }

    fn range(&self) -> Value {
        json!([self.day_a.to_string(), self.day_b.to_string()])
    }

    async fn query(&self, metrics: Value, dimensions: Value, filters: Value) -> Value {
        let body = json!({
            "site_id": "shop.example",
            "date_range": self.range(),
            "metrics": metrics,
            "dimensions": dimensions,
            "filters": filters,
        });
        let res = self.app.query(ADMIN_TOKEN, &body).await;
        assert_eq!(res.status, 200, "{body}: {}", res.text);
        res.body["results"].clone()
    }

    /// `{dimension value: metric values}` of a one-dimension breakdown.
    async fn breakdown(&self, dimension: &str, metrics: Value) -> serde_json::Map<String, Value> {
        self.query(metrics, json!([dimension]), json!([]))
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["dimensions"][0].as_str().unwrap().to_owned(),
                    r["metrics"].clone(),
                )
            })
            .collect()
    }
}

fn map(pairs: &[(&str, Value)]) -> serde_json::Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

const TOTALS: [&str; 9] = [
    "visitors",
    "visits",
    "pageviews",
    "events",
    "bounce_rate",
    "visit_duration",
    "views_per_visit",
    "engaged_sessions",
    "engagement_rate",
];

#[actix_web::test]
async fn a_scripted_scenario_gives_exact_numbers_and_the_same_after_a_rebuild() {
    let s = Scenario::new().await;
    let (a, b) = (s.day_a, s.day_b);
    let shop = |path: &str| format!("https://shop.example{path}");

    // Visitor 1, day A: from Google, three pages and a purchase; then, 31 minutes after the
    // purchase, a new visit from an internal link (own-domain referrer: direct), which bounces.
    s.view(&V1, a, "10:00:00", &shop("/"), "https://www.google.com/")
        .await;
    s.view(&V1, a, "10:05:00", &shop("/products"), &shop("/"))
        .await;
    s.send(
        &V1,
        a,
        "10:20:00",
        "purchase",
        json!({"page_location": shop("/checkout"), "currency": "EUR", "value": "30.00"}),
    )
    .await;
    s.view(&V1, a, "10:51:00", &shop("/products"), &shop("/checkout"))
        .await;
    // Visitor 2: a newsletter click late on day A; the visit goes on past local midnight.
    s.view(
        &V2,
        a,
        "23:50:00",
        &shop("/blog?utm_source=newsletter&utm_medium=email"),
        "",
    )
    .await;
    s.view(&V2, b, "00:10:00", &shop("/products"), &shop("/blog"))
        .await;
    // Visitor 3, day B: a visit per channel, an hour apart; the first has a signup 30 s in.
    s.view(&V3, b, "09:00:00", &shop("/?gclid=abc"), "").await;
    s.send(
        &V3,
        b,
        "09:00:30",
        "Signup",
        json!({"page_location": shop("/")}),
    )
    .await;
    let landings = [
        (
            "10:00:00",
            "/?utm_source=facebook&utm_medium=paid_social",
            "",
        ),
        ("11:00:00", "/?utm_source=blogger&utm_medium=affiliate", ""),
        ("12:00:00", "/", "https://news.example.org/post?id=7"),
        ("13:00:00", "/?utm_source=adnet&utm_medium=display", ""),
        ("14:00:00", "/", "https://www.youtube.com/watch?v=1"),
        ("15:00:00", "/?utm_source=youtube&utm_medium=cpv", ""),
        ("16:00:00", "/", "https://l.facebook.com/"),
    ];
    for (time, path, referrer) in landings {
        s.view(&V3, b, time, &shop(path), referrer).await;
    }
    // A crawler: recorded in the log, left out of the reports, counted as a bot.
    s.view(&BOT, b, "12:00:00", &shop("/"), "").await;
    s.app.wait_projected().await;

    let totals = s.query(json!(TOTALS), json!([]), json!([])).await;
    assert_eq!(
        totals[0]["metrics"],
        json!([3, 11, 13, 15, 73, 221, 1.18, 3, 27.3])
    );

    // A late hit: visitor 1's page at 10:10 on day A arrives now, after the visit that followed.
    // It joins the first visit (not a new one), and lands in day A's 10:00 hour.
    s.view(&V1, a, "10:10:00", &shop("/about"), &shop("/products"))
        .await;
    s.app.wait_projected().await;
    let totals = s.query(json!(TOTALS), json!([]), json!([])).await;
    // 11 visits: 1 + 1 (visitor 1) + 1 (visitor 2) + 8 (visitor 3); 8 bounces; durations 1200 +
    // 0 + 1200 + 30 seconds; 14 pageviews; engaged: visitor 1's first, visitor 2's, the signup one.
    assert_eq!(
        totals[0]["metrics"],
        json!([3, 11, 14, 16, 73, 221, 1.27, 3, 27.3])
    );
    let hourly = s
        .query(
            json!(["pageviews", "visits"]),
            json!(["time:hour"]),
            json!([]),
        )
        .await;
    let ten = format!("{a} 10:00:00");
    let row = hourly
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dimensions"][0] == ten.as_str())
        .unwrap();
    assert_eq!(row["metrics"], json!([4, 2]), "{hourly}");

    let answers = scenario_answers(&s).await;

    // Rebuild the read models from the log: every answer is the same.
    s.app.rebuild_hits().await;
    assert_eq!(scenario_answers(&s).await, answers);
}

/// Every breakdown of the scenario, checked against its exact expected numbers; returns them all
/// for the comparison after the rebuild.
async fn scenario_answers(s: &Scenario) -> Vec<Value> {
    let mut all = Vec::new();
    let mut check = |got: Value, want: Value, what: &str| {
        assert_eq!(got, want, "{what}");
        all.push(got);
    };

    // Days in the property's zone (+05:30): visitor 2's 00:10 pageview is day B's, though it is
    // still day A in UTC; visits count on the day they start.
    let days = s
        .query(
            json!(["visitors", "visits", "pageviews"]),
            json!(["time:day"]),
            json!([]),
        )
        .await;
    check(
        days,
        json!([
            {"dimensions": [s.day_a.to_string()], "metrics": [2, 3, 5]},
            {"dimensions": [s.day_b.to_string()], "metrics": [2, 8, 9]},
        ]),
        "days",
    );

    let visits = json!(["visits"]);
    check(
        Value::Object(s.breakdown("visit:channel", visits.clone()).await),
        Value::Object(map(&[
            ("Direct", json!([1])),
            ("Organic Search", json!([1])),
            ("Email", json!([1])),
            ("Paid Search", json!([1])),
            ("Paid Social", json!([1])),
            ("Affiliates", json!([1])),
            ("Referral", json!([1])),
            ("Display", json!([1])),
            ("Organic Video", json!([1])),
            ("Paid Video", json!([1])),
            ("Organic Social", json!([1])),
        ])),
        "channels",
    );
    check(
        Value::Object(s.breakdown("visit:source", visits.clone()).await),
        Value::Object(map(&[
            ("Google", json!([2])),
            ("Facebook", json!([2])),
            ("YouTube", json!([2])),
            ("Direct / None", json!([1])),
            ("newsletter", json!([1])),
            ("blogger", json!([1])),
            ("news.example.org", json!([1])),
            ("adnet", json!([1])),
        ])),
        "sources",
    );
    // The same from the sessions table (a filter keeps the query off the rollup).
    let sources_enriched: serde_json::Map<String, Value> = s
        .query(
            visits.clone(),
            json!(["visit:source"]),
            json!([["is_not", "visit:source", ["nowhere"]]]),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().unwrap().to_owned(),
                r["metrics"].clone(),
            )
        })
        .collect();
    check(
        Value::Object(sources_enriched),
        Value::Object(s.breakdown("visit:source", visits.clone()).await),
        "sources from the sessions table and from the rollup",
    );
    check(
        Value::Object(s.breakdown("visit:referrer", visits.clone()).await),
        Value::Object(map(&[
            ("", json!([7])),
            ("https://google.com/", json!([1])),
            ("https://news.example.org/post", json!([1])),
            ("https://youtube.com/watch", json!([1])),
            ("https://l.facebook.com/", json!([1])),
        ])),
        "referrers",
    );
    check(
        Value::Object(
            s.breakdown("visit:utm_medium", json!(["visitors", "visits"]))
                .await,
        ),
        Value::Object(map(&[
            ("", json!([2, 6])),
            ("email", json!([1, 1])),
            ("paid_social", json!([1, 1])),
            ("affiliate", json!([1, 1])),
            ("display", json!([1, 1])),
            ("cpv", json!([1, 1])),
        ])),
        "utm mediums",
    );
    check(
        Value::Object(
            s.breakdown("visit:entry_page", json!(["visits", "bounce_rate"]))
                .await,
        ),
        Value::Object(map(&[
            ("/", json!([9, 78])),
            ("/products", json!([1, 100])),
            ("/blog", json!([1, 0])),
        ])),
        "entry pages",
    );
    check(
        Value::Object(s.breakdown("visit:exit_page", visits.clone()).await),
        Value::Object(map(&[
            ("/", json!([8])),
            ("/about", json!([1])),
            ("/products", json!([2])),
        ])),
        "exit pages: the last pageview by time, the late one included",
    );

    let people = json!(["visitors", "visits"]);
    for (dimension, want) in [
        (
            "visit:device",
            map(&[
                ("Desktop", json!([1, 2])),
                ("Mobile", json!([1, 1])),
                ("Tablet", json!([1, 8])),
            ]),
        ),
        (
            "visit:browser",
            map(&[("Chrome", json!([1, 2])), ("Safari", json!([2, 9]))]),
        ),
        (
            "visit:os",
            map(&[("Windows", json!([1, 2])), ("iOS", json!([2, 9]))]),
        ),
        (
            "visit:os_version",
            map(&[
                ("10", json!([1, 2])),
                ("17.1", json!([1, 1])),
                ("16.6", json!([1, 8])),
            ]),
        ),
        (
            "visit:country",
            map(&[
                ("GB", json!([1, 2])),
                ("US", json!([1, 1])),
                ("SE", json!([1, 8])),
            ]),
        ),
        (
            "visit:country_name",
            map(&[
                ("United Kingdom", json!([1, 2])),
                ("United States", json!([1, 1])),
                ("Sweden", json!([1, 8])),
            ]),
        ),
        (
            "visit:region",
            map(&[
                ("GB-ENG", json!([1, 2])),
                ("US-WA", json!([1, 1])),
                ("SE-E", json!([1, 8])),
            ]),
        ),
        (
            "visit:city_name",
            map(&[
                ("London", json!([1, 2])),
                ("Milton", json!([1, 1])),
                ("Linköping", json!([1, 8])),
            ]),
        ),
    ] {
        check(
            Value::Object(s.breakdown(dimension, people.clone()).await),
            Value::Object(want),
            dimension,
        );
    }

    // Every geography breakdown is read from the rollup (the names with their codes), and gives
    // what the visits themselves give (a filter that matches everything reads `sessions`).
    for dimension in [
        "visit:country",
        "visit:country_name",
        "visit:region",
        "visit:region_name",
        "visit:city",
        "visit:city_name",
    ] {
        let metrics = json!(["visitors", "visits", "bounce_rate", "visit_duration"]);
        let everything = json!([["contains", dimension, [""]]]);
        let rollup = s
            .query(metrics.clone(), json!([dimension]), json!([]))
            .await;
        assert_eq!(
            rollup,
            s.query(metrics, json!([dimension]), everything).await,
            "{dimension}"
        );
        assert!(
            rollup.as_array().unwrap().len() >= 3,
            "{dimension}: {rollup}"
        );
    }

    // Goals: a custom event and a page pattern; conversion rates are out of all 3 visitors.
    check(
        Value::Object(
            s.breakdown(
                "event:goal",
                json!(["visitors", "events", "conversion_rate"]),
            )
            .await,
        ),
        Value::Object(map(&[
            ("purchase", json!([1, 1, 33.3])),
            ("Visit /products*", json!([2, 3, 66.7])),
        ])),
        "goals",
    );
    let revenue = s
        .query(
            json!(["total_revenue", "average_revenue", "conversion_rate"]),
            json!([]),
            json!([["is", "event:goal", ["purchase"]]]),
        )
        .await;
    check(
        revenue[0]["metrics"].clone(),
        json!([{"value": 30.0, "currency": "EUR"}, {"value": 30.0, "currency": "EUR"}, 33.3]),
        "revenue",
    );

    // Filters on visit attributes apply to every metric.
    let paid = s
        .query(
            json!(["visitors", "visits", "pageviews", "bounce_rate"]),
            json!([]),
            json!([["is", "visit:channel", ["Paid Search"]]]),
        )
        .await;
    check(
        paid[0]["metrics"].clone(),
        json!([1, 1, 1, 0]),
        "paid search",
    );
    let not_tablet = s
        .query(
            json!(["visitors", "pageviews"]),
            json!([]),
            json!([["is_not", "visit:device", ["Tablet"]]]),
        )
        .await;
    check(
        not_tablet[0]["metrics"].clone(),
        json!([2, 6]),
        "not tablets",
    );

    // The crawler: counted apart, nowhere else.
    let bots = s
        .app
        .get(
            &format!(
                "/api/v1/stats/bots?site_id=shop.example&period=custom&date={},{}",
                s.day_a, s.day_b
            ),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(bots.status, 200, "{}", bots.text);
    check(
        bots.body.clone(),
        json!({"results": [{"bot": "Googlebot", "hits": 1}], "total_hits": 1}),
        "bots",
    );
    all
}

/// A property's own session timeout: with 10 minutes, a 15-minute gap starts a new visit.
#[actix_web::test]
async fn the_session_timeout_is_set_per_property() {
    let app = spawn_app_with(&[]).await;
    let res = app
        .admin_post(
            "/api/admin/properties",
            &json!({"domain": "quick.example", "session_timeout_minutes": 10}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let bad = app
        .admin_post(
            "/api/admin/properties",
            &json!({"domain": "never.example", "session_timeout_minutes": 0}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, "invalid_session_timeout"),
        "{}",
        bad.text
    );
    let slow = app.register("slow.example", "UTC").await;
    let start = Utc::now() - chrono::Duration::hours(2);
    let mut hits = Vec::new();
    for (domain, property) in [("quick.example", &res.body), ("slow.example", &slow)] {
        for minutes in [0, 15] {
            let at = (start + chrono::Duration::minutes(minutes)).to_rfc3339();
            hits.push(hit_event(
                property,
                &Seed {
                    visitor: 1,
                    at: &at,
                    name: "pageview",
                    url: &format!("https://{domain}/"),
                    props: &[],
                },
            ));
        }
    }
    app.seed(hits).await;
    app.wait_projected().await;
    for (domain, visits) in [("quick.example", 2), ("slow.example", 1)] {
        let res = app
            .query(
                ADMIN_TOKEN,
                &json!({"site_id": domain, "metrics": ["visits"], "date_range": "7d"}),
            )
            .await;
        assert_eq!(
            res.body["results"][0]["metrics"],
            json!([visits]),
            "{domain}"
        );
    }
}

/// Two late hits of one visitor, more than a day apart, in one batch: each joins the earlier visit
/// it belongs to, not the visit between them nor a new one; a rebuild gives the same.
#[actix_web::test]
async fn late_hits_days_apart_in_one_batch_join_their_own_visits() {
    let app = spawn_app_with(&[]).await;
    let property = app.register("late.example", "UTC").await;
    let now = Utc::now();
    let at = |hours: i64, minutes: i64| {
        (now - chrono::Duration::hours(hours) + chrono::Duration::minutes(minutes)).to_rfc3339()
    };
    let view = |at: String, path: &str| {
        hit_event(
            &property,
            &Seed {
                visitor: 1,
                at: &at,
                name: "pageview",
                url: &format!("https://late.example{path}"),
                props: &[],
            },
        )
    };
    let range = json!([
        (now - chrono::Duration::days(4)).date_naive().to_string(),
        now.date_naive().to_string()
    ]);
    let totals = || {
        let (app, range) = (&app, range.clone());
        async move {
            let body = json!({"site_id": "late.example", "metrics": ["visits", "pageviews", "bounce_rate"], "date_range": range});
            let res = app.query(ADMIN_TOKEN, &body).await;
            assert_eq!(res.status, 200, "{}", res.text);
            res.body["results"][0]["metrics"].clone()
        }
    };
    // Three visits: two pageviews 70 hours ago, one 30 hours ago, one 5 hours ago.
    app.seed(vec![
        view(at(70, 0), "/a"),
        view(at(70, 1), "/b"),
        view(at(30, 0), "/c"),
        view(at(5, 0), "/d"),
    ])
    .await;
    app.wait_projected().await;
    assert_eq!(totals().await, json!([3, 4, 67]));

    // Received now, in one append: 5 minutes into the first visit and into the second.
    let mut late = vec![view(at(70, 5), "/e"), view(at(30, 5), "/f")];
    for hit in &mut late {
        hit.received_at = now;
    }
    app.seed(late).await;
    app.wait_projected().await;
    assert_eq!(totals().await, json!([3, 6, 33]));

    app.rebuild_hits().await;
    assert_eq!(totals().await, json!([3, 6, 33]));
}

/// The visitor sketches (HyperLogLog, 2^14 registers): exact for small counts, and within 2 % at
/// a million visitors, also when merged from daily sketches as a date range does.
#[actix_web::test]
async fn visitor_sketches_are_exact_when_small_and_within_two_percent_at_a_million() {
    use footfall::readmodel::schema::HLL_PARAMS;
    let (_, pool) = crate::helpers::fresh_log().await;
    for n in [1i64, 7, 100, 1_000] {
        let estimate: f64 = sqlx::query_scalar(&format!(
            "SELECT hll_cardinality(hll_add_agg(hll_hash_bigint(v), {HLL_PARAMS})) \
             FROM generate_series(1, $1::bigint) v"
        ))
        .bind(n)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(estimate, n as f64, "exact at {n}");
    }
    // A million visitors spread over 30 days, each day's sketch built apart and then merged.
    let n = 1_000_000f64;
    let estimate: f64 = sqlx::query_scalar(&format!(
        "SELECT hll_cardinality(hll_union_agg(day)) FROM ( \
           SELECT hll_add_agg(hll_hash_bigint(v * 7919 + 13), {HLL_PARAMS}) AS day \
           FROM generate_series(1::bigint, 1000000) v GROUP BY v % 30) days"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let error = (estimate - n).abs() / n;
    assert!(error <= 0.02, "estimate {estimate}: error {error:.4}");
}
