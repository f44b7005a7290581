//! Several nodes on one database: a change made on one reaches every other within 2 s, and each
//! workload has connections of its own.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_on, spawn_app_with, TestApp, ADMIN_TOKEN};

/// How soon a change made on one node must hold on every node.
const COHERENT: Duration = Duration::from_secs(2);

fn hit(domain: &str, url: &str, name: &str) -> Value {
    json!({"name": name, "url": url, "domain": domain})
}

async fn put(app: &TestApp, path: &str, body: Value) {
    let res = app
        .request(
            "PUT",
            path,
            Some(ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
}

/// Polls node `b` until `check` holds, and returns how long that took after the change.
async fn reaches(b: &TestApp, what: &str, check: impl Fn(u16, String) -> bool) -> Duration {
    let changed = Instant::now();
    eventually(COHERENT, what, || async {
        let res = b
            .post_event(
                &hit("shop.example", "https://other.example/x", "pageview"),
                &[],
            )
            .await;
        check(res.status, res.code().to_owned()).then_some(())
    })
    .await;
    changed.elapsed()
}

#[actix_web::test]
async fn a_change_made_on_one_node_holds_on_another_within_two_seconds() {
    let a = spawn_app().await;
    let b = spawn_app_on(
        a.database_url.clone(),
        &[("FOOTFALL_ROLES", "collect,query,admin")],
    )
    .await;

    // B learns that late.example is unknown (and remembers it), then A registers it.
    let late = hit("late.example", "https://late.example/", "pageview");
    let res = b.post_event(&late, &[]).await;
    assert_eq!((res.status, res.code()), (400, "unknown_domain"));
    let changed = Instant::now();
    a.register("late.example", "UTC").await;
    eventually(COHERENT, "B accepts the new property", || async {
        (b.post_event(&late, &[]).await.status == 202).then_some(())
    })
    .await;
    eprintln!("registration on A held on B after {:?}", changed.elapsed());

    // B caches shop.example refusing other.example; A allows it, then takes it back.
    let shop = a.register("shop.example", "UTC").await;
    let id = shop["id"].as_str().unwrap();
    let res = b
        .post_event(
            &hit("shop.example", "https://other.example/x", "pageview"),
            &[],
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "hostname_not_allowed"));
    let hostnames = format!("/api/admin/properties/{id}/hostnames");
    put(&a, &hostnames, json!({"hostnames": ["other.example"]})).await;
    let took = reaches(&b, "B accepts the allowed host", |s, _| s == 202).await;
    eprintln!("a hostname allowed on A held on B after {took:?}");
    put(&a, &hostnames, json!({"hostnames": []})).await;
    let took = reaches(&b, "B refuses the removed host", |s, c| {
        (s, c.as_str()) == (400, "hostname_not_allowed")
    })
    .await;
    eprintln!("a hostname removed on A held on B after {took:?}");

    // B answers a goal report (caching the property without goals); A sets a goal.
    let key = shop["read_key"].as_str().unwrap();
    let goals = json!({"site_id": "shop.example", "metrics": ["visitors"],
        "date_range": "all", "dimensions": ["event:goal"]});
    for _ in 0..2 {
        let res = b
            .post_event(&hit("shop.example", "https://shop.example/", "Signup"), &[])
            .await;
        assert_eq!(res.status, 202, "{}", res.text);
    }
    a.wait_projected().await;
    let res = b.query(key, &goals).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["results"], json!([]));
    let changed = Instant::now();
    put(
        &a,
        &format!("/api/admin/properties/{id}/goals"),
        json!({"goals": [{"event": "Signup"}]}),
    )
    .await;
    eventually(COHERENT, "B's goal report has the new goal", || async {
        let res = b.query(key, &goals).await;
        (res.body["results"] == json!([{"dimensions": ["Signup"], "metrics": [1]}])).then_some(())
    })
    .await;
    eprintln!("a goal set on A held on B after {:?}", changed.elapsed());
}

/// Another session that holds every read-model table of `hits` exclusively, until rolled back.
async fn lock_read_models(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = app.pool.begin().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND (tablename LIKE 'rollup%' OR tablename LIKE 'hit%' OR tablename LIKE 'sessions%')",
    )
    .fetch_all(&mut *blocker)
    .await
    .unwrap();
    assert!(!tables.is_empty());
    sqlx::query(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        tables.join(", ")
    ))
    .execute(&mut *blocker)
    .await
    .unwrap();
    blocker
}

/// A node with a query pool of 2 and this statement timeout, a property with one pageview and its
/// read key, and another session holding the read models locked.
async fn locked_app(
    query_timeout_ms: &str,
) -> (TestApp, String, sqlx::Transaction<'static, sqlx::Postgres>) {
    let app = spawn_app_with(&[
        ("FOOTFALL_QUERY_TIMEOUT_MS", query_timeout_ms),
        ("FOOTFALL_DB_POOL_QUERY", "2"),
    ])
    .await;
    let p = app.register("shop.example", "UTC").await;
    let page = hit("shop.example", "https://shop.example/", "pageview");
    assert_eq!(app.post_event(&page, &[]).await.status, 202);
    app.wait_projected().await;
    let blocker = lock_read_models(&app).await;
    (app, p["read_key"].as_str().unwrap().to_owned(), blocker)
}

/// This process's reports waiting for a lock in the test's database.
async fn waiting_for_locks(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND application_name = $1",
    )
    .bind(format!("footfall/{}/query", std::process::id()))
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[actix_web::test]
async fn a_report_whose_client_goes_away_is_cancelled_in_the_database() {
    use tokio::io::AsyncWriteExt;
    let (app, key, blocker) = locked_app("60000").await;
    let key = key.as_str();

    // As many reports as the query pool has connections, each from a client that gives up. They
    // arrive together: the first one's version read waits for the lock in the database, and the
    // other report waits in this process for that read to end (reads of versions are grouped).
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut clients = Vec::new();
    for limit in [11, 12] {
        let body = json!({"site_id": "shop.example", "metrics": ["visitors"], "date_range": "all",
            "dimensions": ["event:page"], "pagination": {"limit": limit}})
        .to_string();
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        let request = format!(
            "POST /api/v2/query HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        clients.push(socket);
    }
    let sent = clients.len() as i64;
    let waiting = eventually(
        Duration::from_secs(10),
        "the version read waiting",
        || async {
            let n = waiting_for_locks(&app).await;
            (n == 1).then_some(n)
        },
    )
    .await;
    drop(clients);
    let gone = Instant::now();
    // The lock is still held: only cancellation can end the statements.
    eventually(
        Duration::from_secs(3),
        "the abandoned statements ended",
        || async { (waiting_for_locks(&app).await == 0).then_some(()) },
    )
    .await;
    let ended_after = gone.elapsed();
    let abandoned = app.metric("footfall_reads_abandoned_total").await;
    eprintln!(
        "reports sent {sent}, waiting in the database {waiting}, clients gone: statements ended \
         after {ended_after:?}; reads abandoned (metric) {abandoned}"
    );
    assert!(abandoned >= sent as f64, "{abandoned}");

    // Their connections were given up, not kept for the statements: the pool serves again.
    blocker.rollback().await.unwrap();
    let report = json!({"site_id": "shop.example", "metrics": ["pageviews"], "date_range": "all"});
    let res = app.query(key, &report).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["results"][0]["metrics"], json!([1]));
}

#[actix_web::test]
async fn a_report_held_up_by_a_lock_times_out_without_taking_collection_or_admin() {
    let (app, key, blocker) = locked_app("3000").await;
    let key = key.as_str();
    let page = hit("shop.example", "https://shop.example/", "pageview");

    // More reports than the query pool has connections, all stuck behind the lock.
    let report = json!({"site_id": "shop.example", "metrics": ["visitors", "pageviews"],
        "date_range": "all", "dimensions": ["event:page"]});
    let limited = |n: u32| {
        let mut q = report.clone();
        q["pagination"] = json!({ "limit": n });
        q
    };
    let (q1, q2, q3, q4) = (limited(11), limited(12), limited(13), limited(14));
    // Meanwhile collection and the admin API answer as usual.
    let others = async {
        let started = Instant::now();
        let collected = app.post_event(&page, &[]).await.status;
        let admin = app.admin_get("/api/admin/properties").await.status;
        (collected, admin, started.elapsed())
    };
    let (r1, r2, r3, r4, (collected, admin, took)) = tokio::join!(
        app.query(key, &q1),
        app.query(key, &q2),
        app.query(key, &q3),
        app.query(key, &q4),
        others
    );
    let codes: Vec<(u16, String)> = [r1, r2, r3, r4]
        .iter()
        .map(|r| (r.status, r.code().to_owned()))
        .collect();
    eprintln!("reports behind the lock: {codes:?}; collect {collected}, admin {admin} in {took:?}");
    // Those whose statement ran (or who waited for the one that read their versions) ran into the
    // statement timeout; the others found the query pool taken until they gave up waiting for it.
    // Either way a clear 503.
    let timeout = (503, "query_timeout".to_owned());
    let no_connection = (503, "unavailable".to_owned());
    assert!(
        codes.iter().all(|c| c == &timeout || c == &no_connection) && codes.contains(&timeout),
        "{codes:?}"
    );
    assert_eq!((collected, admin), (202, 200));
    // Had they waited for a report's connection, they would have taken the reports' 3 s.
    assert!(took < Duration::from_secs(2), "{took:?}");

    blocker.rollback().await.unwrap();
    let res = app.query(key, &report).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

#[actix_web::test]
async fn a_hit_naming_too_many_domains_is_refused_before_any_lookup() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    // As many as the body limit (16 KB) lets through.
    let many: Vec<String> = (0..1_000).map(|i| format!("d{i}.example")).collect();
    let started = Instant::now();
    let res = app
        .post_event(
            &hit(&many.join(","), "https://shop.example/", "pageview"),
            &[],
        )
        .await;
    assert_eq!((res.status, res.code()), (400, "too_many_domains"));
    assert!(started.elapsed() < Duration::from_millis(500));
    let ten = format!("shop.example,{}", many[..9].join(","));
    let res = app
        .post_event(&hit(&ten, "https://shop.example/", "pageview"), &[])
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
}
