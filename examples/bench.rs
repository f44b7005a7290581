//! Read-side benchmarks against a running footfall (see `scripts/bench`).
//!
//! - `seed DATABASE_URL PROPERTIES BIG_HITS OTHER_HITS`: registers PROPERTIES properties
//!   (`big.example` and `p<i>.bench.example`) and appends 30 days of visits straight to the log
//!   (the fast path a bulk import takes): BIG_HITS hits for `big.example`, OTHER_HITS spread over
//!   the others, with a mix of browsers, devices, a crawler, countries, referrers and campaigns.
//! - `dashboard URL TOKEN SITE CLIENTS ROUNDS LABEL`: CLIENTS clients load a 30-day dashboard
//!   (totals, time series, top pages, sources, countries, devices; six queries in parallel)
//!   ROUNDS times each; prints p50/p99 per dashboard load and per query.
//! - `page URL TOKEN SITE FLOOR_SITE ROUNDS`: the dashboard page in headless Chromium (through
//!   chromedriver): ROUNDS warm navigations to SITE's 30-day dashboard, each timed from navigation
//!   start to every panel rendered (the page's `footfall-ready` mark); the same for FLOOR_SITE, a
//!   property with almost no data, whose time is the page's own floor. Prints p50/p99 of both.
//! - `funnel URL TOKEN SITE DATABASE_URL ROUNDS`: a three-step funnel (`/page/0`, `/page/1`, the
//!   `Signup` event) over SITE's last 30 days: the first run (which computes every day), then
//!   ROUNDS warm runs one after another, then runs after SITE's busiest day changed (its kept
//!   answer dropped), as under live traffic; prints their times and the steps' visitors.
//! - `accesslog PATH LINES`: writes a combined-format access log of LINES requests over 30 days
//!   ending yesterday (pages, assets, redirects, errors and crawlers in a realistic mix, 50,000
//!   clients) for `footfall import access-log` to import.
//! - `freshness URL SITE READ_KEY PROBES`: while 16 clients post hits without pause, posts PROBES
//!   probe hits one at a time and measures, for each, the time from its `202` until
//!   `/api/v2/query` counts it. Prints p50/p90/p99/max.
//! - `sustained DATABASE_URL URL SITE READ_KEY SECONDS`: run beside `footfall loadgen` for the
//!   loadgen's SECONDS: every 250 ms, reads the log's head and the live `hits` position, and gives
//!   the projection's lag in seconds of ingest (how long ago the head was where the projection is
//!   now); meanwhile posts probe hits to SITE one at a time and times each from its `202` until
//!   `/api/v2/query` counts it. Prints the lag's p99 and max, the freshness p50/p99/max, and the
//!   projection's rate over the ingest rate.
//! - `rebuild URL ADMIN_TOKEN`: rebuilds the `hits` projection and prints events/s.
//! - `ceiling DATABASE_URL ROWS`: the yardstick every ingest and rebuild target is a ratio to:
//!   `COPY … FROM STDIN` of ROWS realistic `HitRecorded` events (the seed's generator), one JSON
//!   row each, from one client, into a fresh table of the old `events` shape (one row per event,
//!   its columns and three indexes, defined here); prints rows/s.
//! - `naive DATABASE_URL ROWS CLIENTS`: the naive design (how Umami stores events): one `INSERT`
//!   per hit into a plain table, each its own transaction, from CLIENTS connections.
//!
//! Benchmarks print figures; they assert nothing.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall::domain::{
    Domain, DomainClaimed, Event, Geo, HitRecorded, PropertyCredentials, PropertyId, PropertyName,
    PropertyRegistered, Protocol, Revenue, Timezone, VisitorKey,
};
use footfall::eventlog::postgres::PgEventLog;
use footfall::eventlog::{EventData, EventLog, ExpectedState, StreamAppend};
use serde_json::{json, Value};
use sqlx::Connection;

#[allow(dead_code)]
#[path = "../tests/api/dashboard/webdriver.rs"]
mod webdriver;

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
        Some("seed") => {
            seed(
                &args[1],
                args[2].parse().unwrap(),
                args[3].parse().unwrap(),
                args[4].parse().unwrap(),
            )
            .await
        }
        Some("dashboard") => {
            dashboard(
                &args[1],
                &args[2],
                &args[3],
                args[4].parse().unwrap(),
                args[5].parse().unwrap(),
                &args[6],
            )
            .await
        }
        Some("freshness") => {
            freshness(&args[1], &args[2], &args[3], args[4].parse().unwrap()).await
        }
        Some("page") => {
            page(
                &args[1],
                &args[2],
                &args[3],
                &args[4],
                args[5].parse().unwrap(),
            )
            .await
        }
        Some("funnel") => {
            funnel(
                &args[1],
                &args[2],
                &args[3],
                &args[4],
                args[5].parse().unwrap(),
            )
            .await
        }
        Some("accesslog") => access_log(&args[1], args[2].parse().unwrap()),
        Some("sustained") => {
            sustained(
                &args[1],
                &args[2],
                &args[3],
                &args[4],
                args[5].parse().unwrap(),
            )
            .await
        }
        Some("rebuild") => rebuild(&args[1], &args[2]).await,
        Some("ceiling") => ceiling(&args[1], args[2].parse().unwrap()).await,
        Some("naive") => naive(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap()).await,
        _ => eprintln!(
            "usage: bench seed|dashboard|page|funnel|accesslog|freshness|sustained|rebuild|ceiling|naive …"
        ),
    }
}

/// A small deterministic generator (PCG-style LCG), so every run seeds the same data.
struct Rng(u64);

impl Rng {
    fn below(&mut self, m: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % m
    }

    /// Skewed towards 0 (roughly Zipf-like): `m · u^k` for a uniform `u`.
    fn skewed(&mut self, m: u64, k: i32) -> u64 {
        let u = self.below(1 << 30) as f64 / (1u64 << 30) as f64;
        ((m as f64) * u.powi(k)) as u64
    }
}

const USER_AGENTS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const COUNTRIES: [(&str, &str); 8] = [
    ("US", "United States"),
    ("DE", "Germany"),
    ("GB", "United Kingdom"),
    ("FR", "France"),
    ("IN", "India"),
    ("BR", "Brazil"),
    ("JP", "Japan"),
    ("SE", "Sweden"),
];
const LANDINGS: [(&str, &str); 8] = [
    ("", ""),
    ("", "https://www.google.com/"),
    ("", "https://www.bing.com/"),
    ("", "https://l.facebook.com/"),
    (
        "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly",
        "",
    ),
    ("?gclid=bench", ""),
    ("", "https://news.ycombinator.com/item"),
    ("", "https://blog.example.org/review"),
];

/// One visit's hits: 1–6 pageviews a minute apart, sometimes a custom event (with a prop), rarely a
/// purchase (with a prop and revenue).
fn visit_hits(
    rng: &mut Rng,
    property: PropertyId,
    site: &str,
    visitor: u64,
    start: chrono::DateTime<chrono::Utc>,
    pages: u64,
) -> Vec<HitRecorded> {
    let ua = USER_AGENTS[(visitor % USER_AGENTS.len() as u64) as usize];
    let (country, country_name) = COUNTRIES[rng.skewed(COUNTRIES.len() as u64, 2) as usize];
    let (query, referrer) = LANDINGS[rng.below(LANDINGS.len() as u64) as usize];
    let views = 1 + rng.skewed(6, 3);
    let mut out = Vec::new();
    for v in 0..views {
        let at = start + chrono::Duration::seconds(60 * v as i64);
        let path = format!("/page/{}", rng.skewed(pages, 3));
        let custom = rng.below(10) == 0;
        let purchase = custom && rng.below(10) == 0;
        out.push(HitRecorded {
            property_id: property,
            occurred_at: at,
            received_at: at,
            name: match (custom, purchase) {
                (_, true) => "Purchase".into(),
                (true, false) => "Signup".into(),
                _ => "pageview".into(),
            },
            url: format!("https://{site}{path}{}", if v == 0 { query } else { "" }),
            referrer: (v == 0 && !referrer.is_empty()).then(|| referrer.to_owned()),
            title: None,
            user_agent: Some(ua.into()),
            screen: None,
            language: None,
            visitor_key: VisitorKey::try_from(format!("{:016x}", visitor + 1)).unwrap(),
            client_id: None,
            session_id: None,
            user_id: None,
            props: match (custom, purchase) {
                (_, true) => vec![(
                    "product".into(),
                    ["annual", "monthly"][(visitor % 2) as usize].into(),
                )],
                (true, false) => vec![(
                    "plan".into(),
                    ["free", "pro", "team"][(visitor % 3) as usize].into(),
                )],
                _ => vec![],
            },
            revenue: purchase.then(|| Revenue {
                currency: "EUR".into(),
                amount: "49.90".into(),
            }),
            interactive: true,
            hash_mode: false,
            engagement_ms: None,
            geo: Geo {
                country: Some(country.into()),
                country_name: Some(country_name.into()),
                ..Geo::default()
            },
            device: None,
            protocol: Protocol::Plausible,
        });
    }
    out
}

/// The seed's hits: `target` hits in visits spread evenly over the 30 days from `base`, all for
/// `ids[0]` (`big`) or spread, skewed, over the other properties.
fn hits<'a>(
    rng: &'a mut Rng,
    ids: &'a [PropertyId],
    names: &'a [String],
    base: chrono::DateTime<chrono::Utc>,
    target: usize,
    big: bool,
) -> impl Iterator<Item = HitRecorded> + 'a {
    // Visit starts spread evenly over the 30 days by the hits made so far (a visit's length
    // varies, so a count of visits fixed beforehand ended the hits days early).
    let visitors = (target as u64 / 8).max(10);
    let mut made = 0usize;
    let mut visit = Vec::new().into_iter();
    std::iter::from_fn(move || loop {
        if let Some(hit) = visit.next() {
            return Some(hit);
        }
        if made >= target {
            return None;
        }
        let (pid, site, pages) = if big || ids.len() == 1 {
            (ids[0], names[0].as_str(), 2_000)
        } else {
            let i = 1 + rng.skewed(ids.len() as u64 - 1, 4) as usize;
            (ids[i], names[i].as_str(), 50)
        };
        let start =
            base + chrono::Duration::milliseconds(30 * 86_400_000 * made as i64 / target as i64);
        let visitor = rng.skewed(visitors, 2) + if big { 0 } else { 1 << 40 };
        let mut hits = visit_hits(rng, pid, site, visitor, start, pages);
        hits.truncate(target - made);
        made += hits.len();
        visit = hits.into_iter();
    })
}

/// `big.example`, then `p<i>.bench.example`: `properties` names in all.
fn property_names(properties: usize) -> Vec<String> {
    std::iter::once("big.example".to_owned())
        .chain((1..properties).map(|i| format!("p{i}.bench.example")))
        .collect()
}

/// Registers `properties` properties (`big.example` and `p<i>.bench.example`) straight in the log,
/// then appends `big_hits` hits for `big.example` and `other_hits` spread over the others (skewed),
/// 30 days of visits ending now, through the fast path (bulk appends), 5,000 events per append.
async fn seed(database_url: &str, properties: usize, big_hits: usize, other_hits: usize) {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let log = PgEventLog::new(pool);
    let started = Instant::now();
    let mut rng = Rng(7);
    let mut ids = Vec::with_capacity(properties);
    let names = property_names(properties);
    for chunk in names.chunks(2_000) {
        let mut appends = Vec::new();
        for name in chunk {
            let id = PropertyId::new(uuid::Uuid::now_v7());
            ids.push(id);
            let domain = Domain::parse(name).unwrap();
            let registered = PropertyRegistered {
                property_id: id,
                domain: domain.clone(),
                timezone: Timezone::parse("Europe/Berlin").unwrap(),
                name: PropertyName::parse(name).unwrap(),
                credentials: PropertyCredentials {
                    measurement_id: format!("G-B{:09}", ids.len()),
                    api_secret: format!("bench-secret-{}", ids.len()),
                    read_key: format!("bench-read-key-{}", ids.len()),
                },
                session_timeout_minutes: None,
                registered_at: chrono::Utc::now(),
            };
            appends.push(StreamAppend {
                stream: domain.claim_stream(),
                expected: ExpectedState::NoStream,
                events: vec![EventData::new(&Event::DomainClaimed(DomainClaimed {
                    domain,
                    property_id: id,
                }))
                .unwrap()],
            });
            appends.push(StreamAppend {
                stream: id.property_stream(),
                expected: ExpectedState::NoStream,
                events: vec![EventData::new(&Event::PropertyRegistered(registered)).unwrap()],
            });
        }
        log.append(appends).await.unwrap();
    }
    let now = chrono::Utc::now() - chrono::Duration::minutes(10);
    let base = now - chrono::Duration::days(30);
    let mut pending: Vec<HitRecorded> = Vec::with_capacity(6_000);
    let mut appended = 0usize;
    let flush = |pending: &mut Vec<HitRecorded>| {
        let mut by_stream: std::collections::BTreeMap<String, Vec<EventData>> = Default::default();
        for h in pending.drain(..) {
            by_stream
                .entry(h.property_id.hits_stream())
                .or_default()
                .push(EventData::new(&Event::HitRecorded(Box::new(h))).unwrap());
        }
        by_stream
            .into_iter()
            .map(|(stream, events)| StreamAppend {
                stream,
                expected: ExpectedState::Any,
                events,
            })
            .collect::<Vec<_>>()
    };
    for (target, big) in [(big_hits, true), (other_hits, false)] {
        for hit in hits(&mut rng, &ids, &names, base, target, big) {
            pending.push(hit);
            if pending.len() >= 5_000 {
                appended += pending.len();
                log.append(flush(&mut pending)).await.unwrap();
            }
        }
    }
    appended += pending.len();
    if !pending.is_empty() {
        log.append(flush(&mut pending)).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seed: {properties} properties and {appended} hits ({big_hits} for big.example) appended in {secs:.1} s ({:.0} events/s)",
        (appended + 2 * properties) as f64 / secs
    );
}

/// The 30-day dashboard: totals, a daily time series, top pages, sources, countries, devices.
fn dashboard_queries(site: &str) -> Vec<(&'static str, Value)> {
    let q = |metrics: Value, dimensions: Value| {
        json!({"site_id": site, "date_range": "30d", "metrics": metrics, "dimensions": dimensions,
               "pagination": {"limit": 10}})
    };
    vec![
        (
            "totals",
            q(
                json!([
                    "visitors",
                    "visits",
                    "pageviews",
                    "bounce_rate",
                    "visit_duration"
                ]),
                json!([]),
            ),
        ),
        (
            "timeseries",
            q(json!(["visitors", "pageviews"]), json!(["time:day"])),
        ),
        (
            "top pages",
            q(json!(["visitors", "pageviews"]), json!(["event:page"])),
        ),
        (
            "top sources",
            q(json!(["visitors", "bounce_rate"]), json!(["visit:source"])),
        ),
        (
            "countries",
            q(json!(["visitors"]), json!(["visit:country"])),
        ),
        ("devices", q(json!(["visitors"]), json!(["visit:device"]))),
    ]
}

/// `clients` clients each load the dashboard `rounds` times (its six queries in parallel, as a
/// browser does); prints p50/p99 per query and per dashboard load.
async fn dashboard(url: &str, token: &str, site: &str, clients: usize, rounds: usize, label: &str) {
    let queries = Arc::new(dashboard_queries(site));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, token, queries) = (url.to_owned(), token.to_owned(), queries.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let c = client();
            let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
            let mut loads = Vec::new();
            for _ in 0..rounds {
                let load = Instant::now();
                let mut inflight = Vec::new();
                for (_, body) in queries.iter() {
                    let req = c
                        .post(format!("{url}/api/v2/query"))
                        .insert_header(("Authorization", format!("Bearer {token}")))
                        .timeout(Duration::from_secs(300));
                    let body = body.clone();
                    inflight.push(async move {
                        let t = Instant::now();
                        let res = req.send_json(&body).await.unwrap();
                        assert_eq!(res.status().as_u16(), 200, "{body}");
                        t.elapsed().as_secs_f64() * 1000.0
                    });
                }
                for (i, ms) in futures_util::future::join_all(inflight)
                    .await
                    .into_iter()
                    .enumerate()
                {
                    per_query[i].push(ms);
                }
                loads.push(load.elapsed().as_secs_f64() * 1000.0);
            }
            (per_query, loads)
        }));
    }
    let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    let mut loads = Vec::new();
    for t in tasks {
        let (q, l) = t.await.unwrap();
        for (i, v) in q.into_iter().enumerate() {
            per_query[i].extend(v);
        }
        loads.extend(l);
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "p50 {:.0} ms, p99 {:.0} ms",
            percentile(v, 0.5),
            percentile(v, 0.99)
        )
    };
    println!(
        "dashboard ({label}, {clients} clients x {rounds} loads): whole dashboard {}",
        stats(&mut loads)
    );
    for (i, (name, _)) in queries.iter().enumerate() {
        println!("  {name}: {}", stats(&mut per_query[i]));
    }
}

/// Warm navigations to a 30-day dashboard: milliseconds from navigation start to the page's
/// `footfall-ready` mark (top stats, graph and every shown panel rendered), sorted. Each round is
/// a new document (a distinct URL), so nothing of the previous load is reused but caches.
async fn page_loads(
    browser: &webdriver::Browser,
    url: &str,
    site: &str,
    token: &str,
    rounds: usize,
) -> Vec<f64> {
    // The key, once: the page keeps it in sessionStorage.
    browser
        .goto(&format!("{url}/dashboard/{site}#key={token}"))
        .await;
    browser.ready().await;
    let mut times = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        browser
            .goto(&format!("{url}/dashboard/{site}?period=30d&round={round}"))
            .await;
        browser.ready().await;
        let ms = browser
            .js("return performance.getEntriesByName('footfall-ready')[0].startTime")
            .await
            .as_f64()
            .unwrap();
        // The first 30-day load fills the browser's and the server's caches.
        if round > 0 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

async fn page(url: &str, token: &str, site: &str, floor_site: &str, rounds: usize) {
    let browser = webdriver::Browser::start(1280, 1800).await;
    let big = page_loads(&browser, url, site, token, rounds).await;
    let floor = page_loads(&browser, url, floor_site, token, rounds).await;
    browser.quit().await;
    println!(
        "dashboard page ({rounds} warm loads in Chromium): {site} p50 {:.0} ms, p99 {:.0} ms; \
         {floor_site} (the page's floor) p50 {:.0} ms, p99 {:.0} ms",
        percentile(&big, 0.5),
        percentile(&big, 0.99),
        percentile(&floor, 0.5),
        percentile(&floor, 0.99)
    );
}

async fn funnel(url: &str, token: &str, site: &str, database_url: &str, rounds: usize) {
    let c = client();
    let body = json!({"site_id": site, "date_range": "30d", "funnel": {"steps": [
        {"page": "/page/0"}, {"page": "/page/1"}, {"event": "Signup"}]}});
    let run = || async {
        let started = Instant::now();
        let mut res = c
            .post(format!("{url}/api/v2/funnel"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_json(&body)
            .await
            .unwrap();
        let answer: Value = res.json().await.unwrap();
        assert!(res.status().is_success(), "{answer}");
        (
            started.elapsed().as_secs_f64() * 1000.0,
            answer["steps"].clone(),
        )
    };
    // The first run computes every day whose answer is not kept yet; the others read the days'
    // kept answers (none changed in between).
    let (first, _) = run().await;
    let mut warm = Vec::with_capacity(rounds);
    let mut steps = Value::Null;
    for _ in 0..rounds {
        let (ms, s) = run().await;
        warm.push(ms);
        steps = s;
    }
    warm.sort_by(f64::total_cmp);
    // Live traffic changes a day: its kept answer is computed again, from the hits of the day and
    // of the days either side. Here the busiest day's kept answer is dropped before each run.
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    let (property, busiest): (uuid::Uuid, chrono::NaiveDate) = sqlx::query_as(
        "SELECT p.id, r.bucket::date FROM rollup_hourly r JOIN properties p ON p.id = r.property_id \
         WHERE p.domain = $1 GROUP BY 1, 2 ORDER BY sum(r.pageviews + r.events) DESC LIMIT 1",
    )
    .bind(site)
    .fetch_one(&mut db)
    .await
    .unwrap();
    let mut changed = Vec::with_capacity(rounds);
    for _ in 0..rounds.min(20) {
        sqlx::query("DELETE FROM funnel_days WHERE property_id = $1 AND day = $2")
            .bind(property)
            .bind(busiest)
            .execute(&mut db)
            .await
            .unwrap();
        changed.push(run().await.0);
    }
    changed.sort_by(f64::total_cmp);
    let visitors: Vec<String> = steps
        .as_array()
        .map(|s| s.iter().map(|s| s["visitors"].to_string()).collect())
        .unwrap_or_default();
    println!(
        "funnel (3 steps, 30 days): first run {first:.0} ms; warm, {rounds} runs: p50 {:.0} ms, p99 {:.0} ms; \
         one day changed, {} runs: p50 {:.0} ms, p99 {:.0} ms; visitors per step {}",
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        changed.len(),
        percentile(&changed, 0.5),
        percentile(&changed, 0.99),
        visitors.join(" → ")
    );
}

fn access_log(path: &str, lines: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = Rng(7);
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let step = 30.0 * 86_400.0 / lines.max(1) as f64;
    for i in 0..lines {
        let at = start + chrono::Duration::milliseconds((i as f64 * step * 1000.0) as i64);
        let client = rng.skewed(50_000, 2);
        let ua = if rng.below(20) == 0 {
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        } else {
            USER_AGENTS[(client % USER_AGENTS.len() as u64) as usize]
        };
        let (target, status) = match rng.below(20) {
            0..=5 => (format!("/page/{}", rng.skewed(500, 3)), 200),
            6..=15 => (format!("/static/img/{}.png", rng.below(300)), 200),
            16 => (format!("/page/{}", rng.below(50)), 304),
            17 => ("/old-page".to_owned(), 301),
            18 => (format!("/missing/{}", rng.below(100)), 404),
            _ => (format!("/blog/post-{}?ref=feed", rng.skewed(200, 2)), 200),
        };
        writeln!(
            out,
            "10.{}.{}.{} - - [{}] \"GET {target} HTTP/1.1\" {status} {} \"https://www.google.com/\" \"{ua}\"",
            client >> 16,
            (client >> 8) & 255,
            client & 255,
            at.format("%d/%b/%Y:%H:%M:%S +0000"),
            500 + rng.below(50_000),
        )
        .unwrap();
    }
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
        latencies.push(probe(&c, url, site, key, &page).await);
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

/// Posts one probe hit and waits until the query API counts it: the time from its `202`, in ms.
async fn probe(c: &awc::Client, url: &str, site: &str, key: &str, page: &str) -> f64 {
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
            return acked.elapsed().as_secs_f64() * 1000.0;
        }
        actix_web::rt::time::sleep(Duration::from_millis(5)).await; // poll interval
    }
}

async fn sustained(database_url: &str, url: &str, site: &str, key: &str, seconds: f64) {
    let mut db = sqlx::PgConnection::connect(database_url).await.unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let probes = {
        let (url, site, key) = (url.to_owned(), site.to_owned(), key.to_owned());
        actix_web::rt::spawn(async move {
            let c = client();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let page = format!("/sustained/{}/{}", std::process::id(), latencies.len());
                latencies.push(probe(&c, &url, &site, &key, &page).await);
            }
            latencies
        })
    };
    // (seconds since start, the log's head, the live projection's position)
    let mut samples: Vec<(f64, i64, i64)> = Vec::new();
    while Instant::now() < deadline {
        let (head, projected): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT position FROM event_log_head), \
                    (SELECT min(position) FROM projection_generations WHERE projection = 'hits' AND state = 'live')",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        samples.push((started.elapsed().as_secs_f64(), head, projected));
        actix_web::rt::time::sleep(Duration::from_millis(250)).await; // the sampling interval
    }
    let mut latencies = probes.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    // Lag: how long ago the head was where the projection is now (0 when it is caught up).
    let mut lags: Vec<f64> = samples
        .iter()
        .map(|(t, _, projected)| {
            let reached = samples
                .iter()
                .find(|(_, head, _)| head >= projected)
                .map_or(0.0, |(at, ..)| *at);
            (t - reached).max(0.0)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let span = (last.0 - first.0).max(1e-9);
    let ingest = (last.1 - first.1) as f64 / span;
    let projected = (last.2 - first.2) as f64 / span;
    println!(
        "sustained: {span:.0} s; projection lag p99 {:.1} s, max {:.1} s of ingest; projected {projected:.0} events/s for {ingest:.0} appended ({:.2}); freshness over {} probes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&lags, 0.99),
        lags[lags.len() - 1],
        projected / ingest.max(1e-9),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
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

/// The old event log's table, one JSON row per event, as it was before record batches
/// (migrations/20261122000001_event_log.sql): the yardstick's shape, whatever shape the log takes.
const OLD_EVENTS_TABLE: &str = "CREATE TABLE bench_ceiling (
    position       bigint      PRIMARY KEY,
    stream_id      text        NOT NULL,
    category       text        NOT NULL GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    revision       bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    schema_version smallint    NOT NULL,
    data           json        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
)";
const OLD_EVENTS_INDEXES: [&str; 3] = [
    "CREATE UNIQUE INDEX ON bench_ceiling (stream_id, revision)",
    "CREATE UNIQUE INDEX ON bench_ceiling (event_id)",
    "CREATE INDEX ON bench_ceiling (position) WHERE category <> 'hits'",
];

/// Appends `text` to `out` escaped for `COPY … FROM STDIN` in text format.
fn copy_text(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

/// The yardstick: `rows` realistic `HitRecorded` events (the seed's generator, over 1,000
/// properties, three quarters for `big.example`), one JSON row each, written by one client with
/// one `COPY … FROM STDIN` (text format) into a fresh table of the old `events` shape, indexes
/// included; the table is dropped after. The rows are generated and encoded beforehand: the clock
/// covers the `COPY` and its commit.
async fn ceiling(database_url: &str, rows: usize) {
    let names = property_names(1_000);
    let ids: Vec<PropertyId> = names
        .iter()
        .map(|_| PropertyId::new(uuid::Uuid::now_v7()))
        .collect();
    let base = chrono::Utc::now() - chrono::Duration::days(30) - chrono::Duration::minutes(10);
    let mut rng = Rng(7);
    let mut revisions: std::collections::HashMap<String, i64> = Default::default();
    let (mut chunks, mut chunk) = (Vec::new(), Vec::with_capacity(2 << 20));
    let (mut position, mut json_bytes) = (0u64, 0usize);
    let big = rows * 3 / 4;
    for (target, is_big) in [(big, true), (rows - big, false)] {
        for hit in hits(&mut rng, &ids, &names, base, target, is_big) {
            position += 1;
            let stream = hit.property_id.hits_stream();
            let revision = revisions
                .entry(stream.clone())
                .and_modify(|r| *r += 1)
                .or_insert(0);
            let data = Event::HitRecorded(Box::new(hit)).to_json().unwrap();
            json_bytes += data.len();
            chunk.extend_from_slice(
                format!(
                    "{position}\t{stream}\t{revision}\t{}\tHitRecorded\t1\t",
                    uuid::Uuid::now_v7()
                )
                .as_bytes(),
            );
            copy_text(&mut chunk, &data);
            chunk.push(b'\n');
            if chunk.len() >= 1 << 20 {
                chunks.push(std::mem::replace(&mut chunk, Vec::with_capacity(2 << 20)));
            }
        }
    }
    chunks.push(chunk);

    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    for statement in ["DROP TABLE IF EXISTS bench_ceiling", OLD_EVENTS_TABLE]
        .into_iter()
        .chain(OLD_EVENTS_INDEXES)
    {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    let start = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY bench_ceiling (position, stream_id, revision, event_id, event_type, schema_version, data) FROM STDIN",
        )
        .await
        .unwrap();
    for chunk in chunks {
        copy.send(chunk).await.unwrap();
    }
    let copied = copy.finish().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(copied, rows as u64);
    println!(
        "ceiling: COPY of {rows} JSON HitRecorded rows ({:.0} bytes of JSON each) into the old `events` shape, one client, in {secs:.1} s ({:.0} rows/s)",
        json_bytes as f64 / rows as f64,
        rows as f64 / secs
    );
    sqlx::query("DROP TABLE bench_ceiling")
        .execute(&mut conn)
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
