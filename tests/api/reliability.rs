//! Reliability: nothing accepted can stall a projection, and every collection answer tells the
//! truth (a 2xx means every hit of the request is in the log, a 503 that none is).

use std::time::Duration;

use footfall::domain::Event;
use footfall::eventlog::postgres::PgEventLog;
use footfall::eventlog::{EventData, EventLog, ExpectedState, StreamAppend};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{eventually, hit_event, spawn_app, spawn_app_with, Seed, TestApp};

fn read_key(p: &Value) -> &str {
    p["read_key"].as_str().unwrap()
}

async fn breakdown(app: &TestApp, p: &Value, dimension: &str) -> Value {
    let res = app
        .query(
            read_key(p),
            &json!({"site_id": p["domain"], "date_range": "all", "metrics": ["pageviews"],
                    "dimensions": [dimension]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["results"].clone()
}

/// The request from the report: a NUL in a prop key and value. It is accepted with the control
/// characters removed, and reaches the reports; so do `%00` in a UTM value and a title with a
/// line break.
#[actix_web::test]
async fn control_characters_are_removed_and_the_hit_reaches_the_reports() {
    let app = spawn_app().await;
    let p = app.register("demo.localhost", "UTC").await;
    let raw = r#"{"n":"pageview","u":"https://demo.localhost/?utm_source=news%00letter","d":"demo.localhost","p":{"k\u0000":"v\u0000","line":"a\nb"}}"#;
    let res = app
        .request(
            "POST",
            "/api/event",
            None,
            &[
                ("Content-Type", "text/plain"),
                ("User-Agent", "Mozilla/5.0"),
            ],
            Some(raw.as_bytes().to_vec()),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    app.wait_projected().await;
    assert_eq!(
        breakdown(&app, &p, "event:props:k").await,
        json!([{"dimensions": ["v"], "metrics": [1]}])
    );
    assert_eq!(
        breakdown(&app, &p, "event:props:line").await,
        json!([{"dimensions": ["a b"], "metrics": [1]}])
    );
    assert_eq!(
        breakdown(&app, &p, "visit:utm_source").await,
        json!([{"dimensions": ["newsletter"], "metrics": [1]}])
    );
    let parked = app.admin_get("/api/admin/projections").await;
    assert!(
        parked.body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["parked"] == 0),
        "{}",
        parked.text
    );
}

async fn parked_positions(app: &TestApp) -> Vec<(i64, i64)> {
    let res = app.admin_get("/api/admin/projections/hits/parked").await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["parked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["generation"].as_i64().unwrap(),
                e["position"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Events written before validation existed (or by another writer) that the read model cannot
/// take are parked, one by one, while every other event of their batch is applied; a rebuild
/// parks exactly the same ones; a replay after a fix applies them.
#[actix_web::test]
async fn events_the_read_model_cannot_take_are_parked_and_the_rest_goes_on() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    app.wait_projected().await;
    let at = chrono::Utc::now().to_rfc3339();
    let seed = |visitor, url| Seed {
        visitor,
        at: &at,
        name: "pageview",
        url,
        props: &[],
    };
    let event = |h: footfall::domain::HitRecorded| {
        EventData::new(&Event::HitRecorded(Box::new(h))).unwrap()
    };
    let mut nul = hit_event(&p, &seed(2, "https://shop.example/nul"));
    nul.props = vec![("k\0".into(), "v\0".into())];
    let undecodable = EventData {
        id: uuid::Uuid::now_v7(),
        event_type: "HitRecorded".into(),
        schema_version: 1,
        data: r#"{"not": "a hit"}"#.into(),
    };
    // A read-model bug, fixed further down: this page cannot be stored.
    sqlx::query(
        "ALTER TABLE hits_g1 ADD CONSTRAINT no_poison CHECK (pathname <> '/poison') NOT VALID",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let events = vec![
        event(hit_event(&p, &seed(1, "https://shop.example/a"))),
        event(nul),
        undecodable,
        event(hit_event(&p, &seed(3, "https://shop.example/poison"))),
        event(hit_event(&p, &seed(4, "https://shop.example/b"))),
    ];
    let head_before = app.log_events().await as i64;
    PgEventLog::new(app.pool.clone())
        .append(vec![StreamAppend {
            stream: format!("hits-{}", p["id"].as_str().unwrap()),
            expected: ExpectedState::Any,
            events,
        }])
        .await
        .unwrap();
    app.wait_projected().await;

    // Positions head+2 (NUL), head+3 (undecodable) and head+4 (the read-model bug) are parked;
    // the two good pageviews are in the reports.
    let expected: Vec<(i64, i64)> = (2..=4).map(|i| (1, head_before + i)).collect();
    assert_eq!(parked_positions(&app).await, expected);
    assert_eq!(app.projection_status("hits").await["parked"], 3);
    assert_eq!(
        breakdown(&app, &p, "event:page").await,
        json!([{"dimensions": ["/a"], "metrics": [1]}, {"dimensions": ["/b"], "metrics": [1]}])
    );
    // The metrics recorder is the test process's, shared by every test in it: at least these 3.
    let parked_total = app
        .metric(r#"footfall_projection_parked_events_total{projection="hits"}"#)
        .await;
    assert!(parked_total >= 3.0, "{parked_total}");

    // A rebuild (the generation without the read-model bug) parks the two bad events again, and
    // exactly those.
    let res = app
        .admin_post("/api/admin/projections/hits/rebuild", &json!({}))
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    eventually(
        Duration::from_secs(60),
        "generation 2 to go live",
        || async {
            let s = app.projection_status("hits").await;
            (s["generation"] == 2 && s["rebuild"].is_null()).then_some(())
        },
    )
    .await;
    let rebuilt: Vec<(i64, i64)> = (2..=3).map(|i| (2, head_before + i)).collect();
    assert_eq!(parked_positions(&app).await, rebuilt);

    // Generation 2 has the page the buggy generation 1 could not store, so the reports now do.
    assert_eq!(
        breakdown(&app, &p, "event:page").await,
        json!([{"dimensions": ["/a"], "metrics": [1]}, {"dimensions": ["/b"], "metrics": [1]},
               {"dimensions": ["/poison"], "metrics": [1]}])
    );

    // A replay of events that still cannot be applied keeps them parked, with the request done.
    let res = app
        .admin_post("/api/admin/projections/hits/parked/replay", &json!({}))
        .await;
    assert_eq!((res.status, &res.body["requested"]), (202, &json!(2)));
    eventually(
        Duration::from_secs(30),
        "the replay to be tried",
        || async {
            let res = app.admin_get("/api/admin/projections/hits/parked").await;
            let list = res.body["parked"].as_array().unwrap().clone();
            (list.len() == 2 && list.iter().all(|e| e["replay_requested"] == false)).then_some(())
        },
    )
    .await;
}

/// A replay after the fix applies the parked event and removes it from the list.
#[actix_web::test]
async fn a_replay_after_the_fix_applies_the_parked_event() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    app.wait_projected().await;
    sqlx::query(
        "ALTER TABLE hits_g1 ADD CONSTRAINT no_poison CHECK (pathname <> '/poison') NOT VALID",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let res = app
        .post_event(
            &json!({"n": "pageview", "u": "https://shop.example/poison", "d": "shop.example"}),
            &[],
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    app.wait_projected().await;
    assert_eq!(parked_positions(&app).await.len(), 1);
    assert_eq!(breakdown(&app, &p, "event:page").await, json!([]));

    sqlx::query("ALTER TABLE hits_g1 DROP CONSTRAINT no_poison")
        .execute(&app.pool)
        .await
        .unwrap();
    let res = app
        .admin_post("/api/admin/projections/hits/parked/replay", &json!({}))
        .await;
    assert_eq!((res.status, &res.body["requested"]), (202, &json!(1)));
    eventually(
        Duration::from_secs(30),
        "the parked event to apply",
        || async { parked_positions(&app).await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(
        breakdown(&app, &p, "event:page").await,
        json!([{"dimensions": ["/poison"], "metrics": [1]}])
    );
    assert_eq!(app.projection_status("hits").await["parked"], 0);
}

/// Requests of every protocol, each with a marker of its own, sent while another session holds
/// the log's head lock for longer than the append timeout; then the lock goes. Every 2xx must
/// have all of its hits in the log, every 503 none.
#[actix_web::test]
async fn while_the_log_is_locked_every_answer_is_true() {
    let app = spawn_app_with(&[("FOOTFALL_APPEND_TIMEOUT_MS", "700")]).await;
    let p = app.register("shop.example", "UTC").await;
    let mid = p["measurement_id"].as_str().unwrap().to_owned();
    let secret = p["api_secret"].as_str().unwrap().to_owned();
    let pid = p["id"].as_str().unwrap().to_owned();

    struct Request {
        marker: String,
        hits: usize,
        path: String,
        content_type: &'static str,
        body: Vec<u8>,
    }
    let request = |marker: &str, hits, path: String, content_type, body: String| Request {
        marker: marker.to_owned(),
        hits,
        path,
        content_type,
        body: body.into_bytes(),
    };
    let mut requests: Vec<Request> = Vec::new();
    for round in 0..4 {
        let m = format!("pl{round}");
        requests.push(request(
            &m,
            1,
            "/api/event".into(),
            "text/plain",
            json!({"n": "pageview", "u": format!("https://shop.example/{m}"), "d": "shop.example"})
                .to_string(),
        ));
        let m = format!("um{round}");
        requests.push(request(
            &m,
            1,
            "/api/send".into(),
            "application/json",
            json!({"type": "event", "payload": {"website": pid, "hostname": "shop.example",
                   "url": format!("/{m}")}})
            .to_string(),
        ));
        let m = format!("mp{round}");
        let events: Vec<Value> = (0..25)
            .map(|i| {
                json!({"name": "page_view",
                 "params": {"page_location": format!("https://shop.example/{m}/{i}")}})
            })
            .collect();
        requests.push(request(
            &m,
            25,
            format!("/mp/collect?measurement_id={mid}&api_secret={secret}"),
            "application/json",
            json!({"client_id": "c1", "events": events}).to_string(),
        ));
        let m = format!("gt{round}");
        let lines: Vec<String> = (0..20)
            .map(|i| format!("en=page_view&dl=https%3A%2F%2Fshop.example%2F{m}%2F{i}"))
            .collect();
        requests.push(request(
            &m,
            20,
            format!("/g/collect?v=2&tid={mid}&cid=c2"),
            "text/plain",
            lines.join("\n"),
        ));
    }

    let mut locker = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT 1 FROM event_log_head FOR UPDATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let app_ref = &app;
    // Requests start 120 ms apart, from the moment the lock is taken until after it goes, so that
    // some wait in the queue, some wait in a batch behind the lock, and some come after it.
    let sends = requests.iter().enumerate().map(|(i, r)| async move {
        let app = app_ref;
        let stagger = Duration::from_millis(120 * i as u64);
        actix_web::rt::time::sleep(stagger).await;
        app.request(
            "POST",
            &r.path,
            None,
            &[
                ("Content-Type", r.content_type),
                ("User-Agent", "Mozilla/5.0"),
            ],
            Some(r.body.clone()),
        )
        .await
    });
    let release = async {
        // The lock is held for two append timeouts and more (the requests are under way).
        let hold = Duration::from_millis(1600);
        actix_web::rt::time::sleep(hold).await;
        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    };
    let (answers, ()) =
        futures_util::future::join(futures_util::future::join_all(sends), release).await;

    let mut stored = std::collections::HashMap::new();
    for e in app.stream(&format!("hits-{pid}")).await {
        let url = e["data"]["url"].as_str().unwrap().to_owned();
        let marker = url
            .trim_start_matches("https://shop.example/")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        *stored.entry(marker).or_insert(0usize) += 1;
    }
    let (mut acked, mut refused) = (0, 0);
    for (Request { marker, hits, .. }, answer) in requests.iter().zip(&answers) {
        let in_log = stored.get(marker).copied().unwrap_or(0);
        match answer.status {
            200..=299 => {
                acked += 1;
                assert_eq!(
                    in_log, *hits,
                    "{marker}: acked, {in_log} of {hits} in the log"
                );
            }
            503 => {
                refused += 1;
                assert!(answer.headers.contains_key("retry-after"), "{marker}");
                assert_eq!(
                    in_log, 0,
                    "{marker}: 503, yet {in_log} of {hits} in the log"
                );
            }
            other => panic!("{marker}: unexpected {other}: {}", answer.text),
        }
    }
    eprintln!(
        "locked log: sent {}, acked {acked}, 503 {refused}, hits in the log {}",
        requests.len(),
        stored.values().sum::<usize>()
    );
    assert_eq!(acked + refused, requests.len());
    assert!(
        refused > 0,
        "the lock outlasted the timeout: some must be refused"
    );
    assert!(acked > 0, "requests after the lock went must be acked");

    // Once the lock is gone, the same requests go through.
    let res = app
        .post_event(
            &json!({"n": "pageview", "u": "https://shop.example/after", "d": "shop.example"}),
            &[],
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
}

/// Requests over the per-request limits are refused whole with a clear 4xx.
#[actix_web::test]
async fn oversized_batches_are_refused_whole() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let mid = p["measurement_id"].as_str().unwrap();
    let secret = p["api_secret"].as_str().unwrap();
    let events: Vec<Value> = (0..26)
        .map(|i| json!({"name": "page_view", "params": {"page_location": format!("https://shop.example/{i}")}}))
        .collect();
    let res = app
        .request(
            "POST",
            &format!("/mp/collect?measurement_id={mid}&api_secret={secret}"),
            None,
            &[("Content-Type", "application/json")],
            Some(
                json!({"client_id": "c", "events": events})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "too_many_events"));
    let lines: Vec<String> = (0..101)
        .map(|i| format!("en=page_view&dl=https%3A%2F%2Fshop.example%2F{i}"))
        .collect();
    let res = app
        .request(
            "POST",
            &format!("/g/collect?v=2&tid={mid}&cid=c"),
            None,
            &[("Content-Type", "text/plain")],
            Some(lines.join("\n").into_bytes()),
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "too_many_hits"));
    assert_eq!(app.log_events().await, 2, "only the property's own events");
}

/// Measurement Protocol hits come from servers: the request's user agent and address describe the
/// sender, never the visitor. The payload's `user_agent`, `device` and `user_location` do.
#[actix_web::test]
async fn measurement_protocol_hits_are_described_by_their_payload() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let path = format!(
        "/mp/collect?measurement_id={}&api_secret={}",
        p["measurement_id"].as_str().unwrap(),
        p["api_secret"].as_str().unwrap()
    );
    let send = |body: Value, agent: &'static str| {
        let app = &app;
        let path = path.clone();
        async move {
            let res = app
                .request(
                    "POST",
                    &path,
                    None,
                    &[("Content-Type", "application/json"), ("User-Agent", agent)],
                    Some(body.to_string().into_bytes()),
                )
                .await;
            assert_eq!(res.status, 204, "{}", res.text);
        }
    };
    let page = |path: &str| json!([{"name": "page_view", "params": {"page_location": format!("https://shop.example/{path}")}}]);
    // Nothing said of the visitor: unknown device, no bot, whatever library sent it.
    send(
        json!({"client_id": "1.1", "events": page("plain")}),
        "Python-urllib/3.11",
    )
    .await;
    send(
        json!({"client_id": "1.2", "events": page("okhttp")}),
        "okhttp/4.12.0",
    )
    .await;
    // The visitor's device and location, as the payload states them.
    send(
        json!({"client_id": "1.3", "events": page("device"),
               "device": {"category": "mobile", "operating_system": "Android", "operating_system_version": "14.1.2",
                          "browser": "Chrome", "browser_version": "131.0.6778.39", "model": "Pixel 8", "brand": "Google",
                          "language": "de-de", "screen_resolution": "412x915"},
               "user_location": {"country_id": "de", "region_id": "DE-BY", "city": "München"}}),
        "Go-http-client/2.0",
    )
    .await;
    // The visitor's own user agent, forwarded by the server.
    send(
        json!({"client_id": "1.4", "events": page("agent"),
               "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"}),
        "python-requests/2.32.3",
    )
    .await;
    app.wait_projected().await;

    assert_eq!(
        breakdown(&app, &p, "event:page")
            .await
            .as_array()
            .unwrap()
            .len(),
        4,
        "every server-side hit is in the reports"
    );
    let bots = app
        .get(
            "/api/v1/stats/bots?site_id=shop.example&period=day",
            read_key(&p),
        )
        .await;
    assert_eq!(bots.status, 200, "{}", bots.text);
    assert_eq!(bots.body["total_hits"], 0, "{}", bots.text);
    let mut devices = breakdown(&app, &p, "visit:device").await;
    devices
        .as_array_mut()
        .unwrap()
        .sort_by_key(|r| r["dimensions"][0].as_str().unwrap().to_owned());
    assert_eq!(
        devices,
        json!([{"dimensions": [""], "metrics": [2]}, {"dimensions": ["Desktop"], "metrics": [1]},
               {"dimensions": ["Mobile"], "metrics": [1]}])
    );
    let mut browsers = breakdown(&app, &p, "visit:browser").await;
    browsers
        .as_array_mut()
        .unwrap()
        .sort_by_key(|r| r["dimensions"][0].as_str().unwrap().to_owned());
    assert_eq!(
        browsers,
        json!([{"dimensions": [""], "metrics": [2]}, {"dimensions": ["Chrome"], "metrics": [2]}])
    );
    assert_eq!(
        breakdown(&app, &p, "visit:os_version")
            .await
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dimensions"][0] == "14.1")
            .map(|r| r["metrics"][0].clone()),
        Some(json!(1))
    );
    let countries = breakdown(&app, &p, "visit:country").await;
    assert!(
        countries
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dimensions"][0] == "DE" && r["metrics"][0] == 1),
        "{countries}"
    );
    let cities = breakdown(&app, &p, "visit:city_name").await;
    assert!(
        cities
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dimensions"][0] == "München"),
        "{cities}"
    );
}

/// A stored event this code cannot decode is a bug, not a transient fault: a command on that
/// property answers `500 internal_error`, never `503` ("retry later").
#[actix_web::test]
async fn an_undecodable_stored_event_is_a_500_not_a_503() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let id = p["id"].as_str().unwrap();
    PgEventLog::new(app.pool.clone())
        .append(vec![StreamAppend {
            stream: format!("property-{id}"),
            expected: ExpectedState::Any,
            events: vec![EventData {
                id: uuid::Uuid::now_v7(),
                event_type: "GoalsSet".into(),
                schema_version: 1,
                data: br#"{"not": "goals"}"#.to_vec(),
            }],
        }])
        .await
        .unwrap();
    let res = app
        .request(
            "PUT",
            &format!("/api/admin/properties/{id}/goals"),
            Some(crate::helpers::ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(br#"{"goals":[{"event":"Signup"}]}"#.to_vec()),
        )
        .await;
    assert_eq!(
        (res.status, res.code()),
        (500, "internal_error"),
        "{}",
        res.text
    );
    assert!(res.headers.get("retry-after").is_none());
}

/// Dates and offsets at the edges of what the types hold are refused with a 400 (or answered),
/// never a panic, a dropped connection or a 503.
#[actix_web::test]
async fn extreme_dates_and_offsets_are_clear_400s() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let key = read_key(&p);
    let query = |body: Value| {
        let app = &app;
        async move { app.query(key, &body).await }
    };
    let base = json!({"site_id": "shop.example", "metrics": ["visitors"]});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (extra, field) in [
        (
            json!({"date_range": ["2024-01-01", "+262142-12-31"]}),
            "date_range[1]",
        ),
        (
            json!({"date_range": ["-262143-01-01", "2024-01-01"]}),
            "date_range",
        ),
        (
            json!({"date_range": ["2024-01-01", "+10000-01-01"]}),
            "date_range",
        ),
        (
            json!({"date_range": "30d", "dimensions": ["event:page"],
                   "pagination": {"offset": 18446744073709551615u64}}),
            "pagination.offset",
        ),
    ] {
        let res = query(with(extra.clone())).await;
        assert_eq!(res.status, 400, "{extra}: {}", res.text);
        assert!(res.text.contains(field), "{extra}: {}", res.text);
    }
    // The whole span of dates, in totals and in breakdowns read by week and by day.
    for dimensions in [json!([]), json!(["event:page"]), json!(["visit:device"])] {
        let body =
            with(json!({"date_range": ["0001-01-01", "9999-12-31"], "dimensions": dimensions}));
        let res = query(body).await;
        assert_eq!(res.status, 200, "{dimensions}: {}", res.text);
    }
    let res = app
        .get(
            "/api/v1/stats/aggregate?site_id=shop.example&period=custom&date=0002-01-01,0500-12-31&compare=previous_period",
            key,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = app
        .get(
            "/api/v1/stats/breakdown?site_id=shop.example&period=30d&property=event:page&page=18446744073709551615&limit=100",
            key,
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
}

/// Requests that queue while a batch is written go into the next batch as soon as it is done:
/// only a request that finds the appender idle waits for companions. Here that wait is a minute,
/// and the request that queued behind a batch held up by the log's lock is acked within seconds
/// of the lock's release.
#[actix_web::test]
async fn requests_queued_behind_a_batch_are_written_next_without_waiting_for_companions() {
    use actix::Actor;
    use footfall::config::AppenderConfig;
    use footfall::eventlog::appender::{submit, Appender};
    use std::sync::Arc;

    let (log, pool) = crate::helpers::fresh_log().await;
    let log = Arc::new(log);
    let timeout = Duration::from_secs(60);
    let appender = Appender::new(
        log.clone(),
        AppenderConfig {
            max_batch: 2,
            max_wait: timeout,
            queue_capacity: 16,
            ack_timeout: timeout,
        },
    )
    .start();
    let mut locker = pool.acquire().await.unwrap().detach();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT 1 FROM event_log_head FOR UPDATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let hit = |n: usize| {
        let event = EventData {
            id: uuid::Uuid::now_v7(),
            event_type: "Test".into(),
            schema_version: 1,
            data: format!("{{\"n\":{n}}}").into_bytes(),
        };
        vec![("test-q".to_owned(), event)]
    };
    // The first two fill a batch, which waits for the lock; each is queued on its first poll.
    let mut batched = Box::pin(futures_util::future::join(
        submit(&appender, hit(0), timeout),
        submit(&appender, hit(1), timeout),
    ));
    assert!(futures_util::future::poll_immediate(&mut batched)
        .await
        .is_none());
    eventually(
        Duration::from_secs(20),
        "the batch waiting for the log's lock",
        || {
            let pool = pool.clone();
            async move {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (waiting > 0).then_some(())
            }
        },
    )
    .await;
    let mut queued = Box::pin(submit(&appender, hit(2), timeout));
    assert!(futures_util::future::poll_immediate(&mut queued)
        .await
        .is_none());
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let released = std::time::Instant::now();

    let (first, second) = batched.await;
    let third = actix_web::rt::time::timeout(Duration::from_secs(20), queued)
        .await
        .expect("the queued request waited for companions");
    eprintln!(
        "acked 3 of 3 sent, the last {} ms after the lock's release",
        released.elapsed().as_millis()
    );
    assert!(first.is_ok() && second.is_ok() && third.is_ok());
    let stored = log.read_stream("test-q", 0, 10).await.unwrap().len();
    assert_eq!(stored, 3, "sent 3, acked 3, stored {stored}");
}
