//! Read-side benchmarks against a running footfall (see `scripts/bench`).
//!
//! - `seed DATABASE_URL SITE EVENTS`: appends EVENTS hits for SITE straight to the log (the fast
//!   path a bulk import takes), 5,000 per append.
//! - `freshness URL SITE READ_KEY PROBES`: while 16 clients post hits without pause, posts PROBES
//!   probe hits one at a time and measures, for each, the time from its `202` until
//!   `/api/v2/query` counts it. Prints p50/p90/p99/max.
//! - `rebuild URL ADMIN_TOKEN`: rebuilds the `hits` projection and prints events/s.
//! - `ceiling DATABASE_URL ROWS`: the ceiling for a PostgreSQL-backed log: the same rows as the
//!   `events` table (same columns and indexes, same JSON) inserted from one client with
//!   `INSERT … UNNEST`, 5,000 per transaction.
//! - `naive DATABASE_URL ROWS CLIENTS`: the naive design (how Umami stores events): one `INSERT`
//!   per hit into a plain table, each its own transaction, from CLIENTS connections.
//!
//! Benchmarks print figures; they assert nothing.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall::domain::{Domain, Event, Geo, HitRecorded, PropertyId, Protocol, VisitorKey};
use footfall::eventlog::postgres::PgEventLog;
use footfall::eventlog::{EventData, EventLog, ExpectedState, StreamAppend};
use serde_json::{json, Value};

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(awc::Connector::new().limit(64))
        .finish()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[actix_web::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("seed") => seed(&args[1], &args[2], args[3].parse().unwrap()).await,
        Some("freshness") => {
            freshness(&args[1], &args[2], &args[3], args[4].parse().unwrap()).await
        }
        Some("rebuild") => rebuild(&args[1], &args[2]).await,
        Some("ceiling") => ceiling(&args[1], args[2].parse().unwrap()).await,
        Some("naive") => naive(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap()).await,
        _ => eprintln!("usage: bench seed|freshness|rebuild …"),
    }
}

async fn seed(database_url: &str, site: &str, events: usize) {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM properties WHERE domain = $1")
        .bind(Domain::parse(site).unwrap().as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    let property = PropertyId::new(id);
    let log = PgEventLog::new(pool);
    let start = Instant::now();
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let mut state: u64 = 7;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    for chunk in 0..events.div_ceil(5000) {
        let n = 5000.min(events - chunk * 5000);
        let mut batch = Vec::with_capacity(n);
        for i in 0..n {
            let k = (chunk * 5000 + i) as i64;
            // 30 days of traffic, 50,000 visitors, 500 pages, one event in ten a custom one.
            let at = base + chrono::Duration::milliseconds(k * 30 * 86_400_000 / events as i64);
            let hit = HitRecorded {
                property_id: property,
                occurred_at: at,
                received_at: at,
                name: if next(10) == 0 {
                    "Signup".into()
                } else {
                    "pageview".into()
                },
                url: format!("https://{site}/page/{}", next(500)),
                referrer: None,
                title: None,
                user_agent: Some("Mozilla/5.0".into()),
                screen: None,
                language: None,
                visitor_key: VisitorKey::try_from(format!("{:016x}", next(50_000) + 1)).unwrap(),
                client_id: None,
                session_id: None,
                user_id: None,
                props: vec![],
                revenue: None,
                interactive: true,
                hash_mode: false,
                engagement_ms: None,
                geo: Geo::default(),
                protocol: Protocol::Plausible,
            };
            batch.push(EventData::new(&Event::HitRecorded(Box::new(hit))).unwrap());
        }
        let append = StreamAppend {
            stream: property.hits_stream(),
            expected: ExpectedState::Any,
            events: batch,
        };
        log.append(vec![append]).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "seed: {events} events appended in {secs:.1} s ({:.0} events/s)",
        events as f64 / secs
    );
}

async fn freshness(url: &str, site: &str, key: &str, probes: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let background = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for w in 0..16 {
        let (stop, background, url, site) = (
            stop.clone(),
            background.clone(),
            url.to_owned(),
            site.to_owned(),
        );
        load.push(actix_web::rt::spawn(async move {
            let c = client();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({"n": "pageview", "u": format!("https://{site}/load/{}", i % 200), "d": site});
                let res = c
                    .post(format!("{url}/api/event"))
                    .insert_header(("User-Agent", format!("bench-{w}")))
                    .send_json(&body)
                    .await;
                if res.is_ok_and(|r| r.status().as_u16() == 202) {
                    background.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let c = client();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(probes);
    for i in 0..probes {
        let page = format!("/probe/{}/{i}", std::process::id());
        let body = json!({"n": "pageview", "u": format!("https://{site}{page}"), "d": site});
        let res = c
            .post(format!("{url}/api/event"))
            .send_json(&body)
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        let acked = Instant::now();
        let query = json!({"site_id": site, "metrics": ["pageviews"], "date_range": "day", "filters": [["is", "event:page", [page]]]});
        loop {
            let mut res = c
                .post(format!("{url}/api/v2/query"))
                .insert_header(("Authorization", format!("Bearer {key}")))
                .send_json(&query)
                .await
                .unwrap();
            let v: Value = res.json().await.unwrap();
            if v["results"][0]["metrics"][0].as_u64() == Some(1) {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await; // poll interval
        }
        latencies.push(acked.elapsed().as_secs_f64() * 1000.0);
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    latencies.sort_by(f64::total_cmp);
    let rate = background.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "freshness: {probes} probes under {rate:.0} hits/s of background load: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}

async fn rebuild(url: &str, token: &str) {
    let c = client();
    let auth = ("Authorization", format!("Bearer {token}"));
    let mut res = c
        .post(format!("{url}/api/admin/projections/hits/rebuild"))
        .insert_header(auth.clone())
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let body: Value = res.json().await.unwrap();
    let generation = body["generation"].as_i64().unwrap();
    loop {
        let mut res = c
            .get(format!("{url}/api/admin/projections"))
            .insert_header(auth.clone())
            .send()
            .await
            .unwrap();
        let v: Value = res.json().limit(1 << 20).await.unwrap();
        let hits = v["projections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "hits")
            .unwrap()
            .clone();
        if hits["generation"].as_i64() == Some(generation) {
            let secs = started.elapsed().as_secs_f64();
            let events = hits["checkpoint"].as_f64().unwrap();
            println!("rebuild: {events:.0} events replayed and switched in after {secs:.1} s ({:.0} events/s)", events / secs);
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await; // poll interval
    }
}

/// A hit's JSON as the log stores it (about the size of a real one).
fn sample_hit(i: u64) -> String {
    json!({"property_id": "0190c7e6-5b8f-7000-8000-000000000001", "occurred_at": "2026-11-22T10:00:00Z",
           "received_at": "2026-11-22T10:00:00Z", "name": "pageview", "url": format!("https://bench.example/page/{}", i % 500),
           "referrer": "https://www.google.com/", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
           "visitor_key": format!("{:016x}", i % 50_000), "interactive": true, "protocol": "plausible"})
    .to_string()
}

async fn ceiling(database_url: &str, rows: u64) {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    sqlx::query("DROP TABLE IF EXISTS bench_ceiling")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE bench_ceiling (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    let mut position: i64 = 0;
    while (position as u64) < rows {
        let n = 5000.min(rows as i64 - position);
        let positions: Vec<i64> = (position + 1..=position + n).collect();
        let streams: Vec<String> = positions
            .iter()
            .map(|p| format!("hits-{}", p % 100))
            .collect();
        let revisions: Vec<i64> = positions.iter().map(|p| p / 100).collect();
        let ids: Vec<uuid::Uuid> = positions.iter().map(|_| uuid::Uuid::now_v7()).collect();
        let data: Vec<String> = positions.iter().map(|p| sample_hit(*p as u64)).collect();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO bench_ceiling (position, stream_id, revision, event_id, event_type, schema_version, data) \
             SELECT p, s, r, i, 'HitRecorded', 1, d::json FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[]) AS t(p, s, r, i, d)",
        )
        .bind(&positions)
        .bind(&streams)
        .bind(&revisions)
        .bind(&ids)
        .bind(&data)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        position += n;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ceiling: {rows} rows in {secs:.1} s ({:.0} rows/s)",
        rows as f64 / secs
    );
    sqlx::query("DROP TABLE bench_ceiling")
        .execute(&pool)
        .await
        .unwrap();
}

async fn naive(database_url: &str, rows: u64, clients: u64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect(database_url)
        .await
        .unwrap();
    sqlx::query("DROP TABLE IF EXISTS bench_naive")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE bench_naive (event_id uuid PRIMARY KEY, website_id uuid NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), \
         url_path text, referrer_domain text, event_name text, visitor text, data jsonb)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE INDEX ON bench_naive (website_id, created_at)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let pool = pool.clone();
        tasks.push(actix_web::rt::spawn(async move {
            for i in (c..rows).step_by(clients as usize) {
                sqlx::query(
                    "INSERT INTO bench_naive (event_id, website_id, url_path, referrer_domain, event_name, visitor, data) \
                     VALUES ($1, '0190c7e6-5b8f-7000-8000-000000000001', $2, 'google.com', 'pageview', $3, $4::jsonb)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(format!("/page/{}", i % 500))
                .bind(format!("{:016x}", i % 50_000))
                .bind(sample_hit(i))
                .execute(&pool)
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "naive: {rows} single-row INSERTs from {clients} clients in {secs:.1} s ({:.0} rows/s)",
        rows as f64 / secs
    );
    sqlx::query("DROP TABLE bench_naive")
        .execute(&pool)
        .await
        .unwrap();
}
