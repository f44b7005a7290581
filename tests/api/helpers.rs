//! Test harness: every test gets a fresh PostgreSQL database and a real footfall on port 0.
//! Logs are quiet unless `TEST_LOG` is set.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use footfall::config::Config;
use footfall::eventlog::postgres::PgEventLog;
use footfall::startup::{self, Application};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Server URL of the test PostgreSQL, without a database name.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let name = format!("footfall_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("test PostgreSQL must be reachable (see README)");
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", server_url())
}

/// A migrated fresh database with the PostgreSQL event log on it.
pub async fn fresh_log() -> (PgEventLog, PgPool) {
    let url = fresh_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    startup::migrate(&pool).await.unwrap();
    (PgEventLog::new(pool.clone()), pool)
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub pool: PgPool,
    pub client: awc::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts footfall with extra environment settings.
pub async fn spawn_app_with(settings: &[(&str, &str)]) -> TestApp {
    spawn_app_on(fresh_database().await, settings).await
}

/// The configuration a test's footfall runs with on `database_url`, with extra environment
/// settings.
pub fn config_on(database_url: &str, settings: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("FOOTFALL_LISTEN", "127.0.0.1:0"),
        ("FOOTFALL_ADMIN_TOKEN", ADMIN_TOKEN),
        ("FOOTFALL_WORKERS", "2"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.extend(
        settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::load(None, &env).unwrap()
}

/// Starts footfall on an existing database, with extra environment settings.
pub async fn spawn_app_on(database_url: String, settings: &[(&str, &str)]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        footfall::telemetry::init_logs(false);
    }
    let config = config_on(&database_url, settings);
    let app = Application::build(config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(awc::Connector::new().limit(256))
        .finish();
    let pool = PgPool::connect(&database_url).await.unwrap();
    TestApp {
        address,
        database_url,
        pool,
        client,
    }
}

pub struct Response {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    pub text: String,
    pub bytes: Vec<u8>,
}

impl Response {
    /// The stable error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

async fn respond(
    mut res: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
) -> Response {
    let bytes = res.body().limit(10 * 1024 * 1024).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Response {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        bytes: bytes.to_vec(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request; `auth` is a bearer token.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = auth {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let res = match body {
            Some(body) => req.send_body(body).await,
            None => req.send().await,
        };
        respond(res.unwrap()).await
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.request("GET", path, Some(ADMIN_TOKEN), &[], None)
            .await
    }

    /// Posts `body` as an import of `format` into property `id` and waits for the import to
    /// finish; returns its status.
    pub async fn import(&self, id: &str, format: &str, source: &str, body: Vec<u8>) -> Value {
        let res = self
            .request(
                "POST",
                &format!("/api/admin/properties/{id}/imports?format={format}&source={source}"),
                Some(ADMIN_TOKEN),
                &[],
                Some(body),
            )
            .await;
        assert_eq!(res.status, 202, "{}", res.text);
        let url = res.body["status_url"].as_str().unwrap().to_owned();
        eventually(Duration::from_secs(60), "the import to finish", || {
            let url = url.clone();
            async move {
                let s = self.admin_get(&url).await;
                (s.body["state"] != "running").then_some(s.body)
            }
        })
        .await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Response {
        self.request(
            "POST",
            path,
            Some(ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// Registers a property and returns its JSON.
    pub async fn register(&self, domain: &str, timezone: &str) -> Value {
        let res = self
            .admin_post(
                "/api/admin/properties",
                &json!({"domain": domain, "timezone": timezone, "name": domain}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        res.body
    }

    /// Sets a property's goals (`[{"event": "Signup"}, {"page": "/thanks*"}]`).
    pub async fn set_goals(&self, property: &Value, goals: Value) {
        let id = property["id"].as_str().unwrap();
        let res = self
            .request(
                "PUT",
                &format!("/api/admin/properties/{id}/goals"),
                Some(ADMIN_TOKEN),
                &[("Content-Type", "application/json")],
                Some(serde_json::to_vec(&json!({ "goals": goals })).unwrap()),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
    }

    /// Posts a Plausible event as the tracker does (text/plain), with extra headers.
    pub async fn post_event(&self, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![
            ("Content-Type", "text/plain"),
            (
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
            ),
        ];
        all.extend_from_slice(headers);
        self.request(
            "POST",
            "/api/event",
            None,
            &all,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// Every event of a stream, through the admin API.
    pub async fn stream(&self, stream: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut from = 0;
        loop {
            let res = self
                .admin_get(&format!(
                    "/api/admin/streams/{stream}?from={from}&limit=1000"
                ))
                .await;
            if res.status == 404 {
                return events;
            }
            assert_eq!(res.status, 200, "{}", res.text);
            events.extend(res.body["events"].as_array().unwrap().iter().cloned());
            match res.body["next_from"].as_u64() {
                Some(next) => from = next,
                None => return events,
            }
        }
    }

    /// One projection's entry of `GET /api/admin/projections`.
    pub async fn projection_status(&self, name: &str) -> Value {
        let res = self.admin_get("/api/admin/projections").await;
        assert_eq!(res.status, 200, "{}", res.text);
        res.body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    }

    /// Every hit in the log, decoded, in log order.
    pub async fn log_hits(&self) -> Vec<footfall::domain::HitRecorded> {
        use footfall::domain::Event;
        use footfall::eventlog::{EventLog, Position, StreamFilter};
        let log = PgEventLog::new(self.pool.clone());
        let mut hits = Vec::new();
        let mut after = Position::START;
        loop {
            let events = log
                .read_all(after, 10_000, &StreamFilter::categories(&["hits"]))
                .await
                .unwrap();
            let Some(last) = events.last() else {
                return hits;
            };
            after = last.position;
            for e in &events {
                if let Event::HitRecorded(h) = e.decode().unwrap() {
                    hits.push(*h);
                }
            }
        }
    }

    /// Number of events in the whole log.
    pub async fn log_events(&self) -> u64 {
        self.admin_get("/api/admin/log").await.body["events"]
            .as_u64()
            .unwrap()
    }
}

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await; // poll interval, not a wait
    }
}

/// A hit to seed straight into the log (the fast path), with a chosen time.
pub struct Seed<'a> {
    pub visitor: u64,
    pub at: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub props: &'a [(&'a str, &'a str)],
}

pub fn hit_event(property: &Value, s: &Seed<'_>) -> footfall::domain::HitRecorded {
    use footfall::domain::{Geo, HitRecorded, PropertyId, Protocol, VisitorKey};
    let at: chrono::DateTime<chrono::Utc> = s.at.parse().unwrap();
    HitRecorded {
        property_id: PropertyId::parse(property["id"].as_str().unwrap()).unwrap(),
        occurred_at: at,
        received_at: at,
        name: s.name.into(),
        url: s.url.into(),
        referrer: None,
        title: None,
        user_agent: Some("Mozilla/5.0".into()),
        screen: None,
        language: None,
        visitor_key: VisitorKey::try_from(format!("{:016x}", s.visitor)).unwrap(),
        client_id: None,
        session_id: None,
        user_id: None,
        props: s
            .props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        revenue: None,
        interactive: true,
        hash_mode: false,
        engagement_ms: None,
        geo: Geo::default(),
        device: None,
        protocol: Protocol::Plausible,
    }
}

impl TestApp {
    /// Appends hits to the log directly, in large batches, as a bulk import would.
    pub async fn seed(&self, hits: Vec<footfall::domain::HitRecorded>) {
        use footfall::domain::Event;
        use footfall::eventlog::{EventData, EventLog, ExpectedState, StreamAppend};
        let log = PgEventLog::new(self.pool.clone());
        for chunk in hits.chunks(5000) {
            let appends = chunk
                .iter()
                .map(|h| StreamAppend {
                    stream: h.property_id.hits_stream(),
                    expected: ExpectedState::Any,
                    events: vec![EventData::new(&Event::HitRecorded(Box::new(h.clone()))).unwrap()],
                })
                .collect();
            log.append(appends).await.unwrap();
        }
    }

    /// Waits until the live generation of every projection has applied the whole log.
    pub async fn wait_projected(&self) {
        let pool = self.pool.clone();
        eventually(
            Duration::from_secs(60),
            "projections to catch up with the log",
            || {
                let pool = pool.clone();
                async move {
                    let behind: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM projection_generations g, event_log_head h \
                     WHERE g.state = 'live' AND g.position < h.position",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    (behind == 0).then_some(())
                }
            },
        )
        .await;
    }

    /// Rebuilds the `hits` projection for the first time and waits until generation 2 is live.
    pub async fn rebuild_hits(&self) {
        let res = self
            .admin_post(
                "/api/admin/projections/hits/rebuild",
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(res.status, 202, "{}", res.text);
        eventually(
            Duration::from_secs(120),
            "the rebuild to go live",
            || async {
                let res = self.admin_get("/api/admin/projections").await;
                res.body["projections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "hits" && p["generation"] == 2 && p["state"] == "live")
                    .then_some(())
            },
        )
        .await;
    }

    /// `POST /api/v2/query` with a bearer token.
    pub async fn query(&self, token: &str, body: &Value) -> Response {
        self.request(
            "POST",
            "/api/v2/query",
            Some(token),
            &[("Content-Type", "application/json")],
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// The value of one series of `/metrics` (its name with any labels), 0 when absent. The
    /// recorder is the test process's, shared by every test in it.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.admin_get("/metrics").await.text;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request("GET", path, Some(token), &[], None).await
    }
}
