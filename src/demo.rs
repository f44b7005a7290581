//! `footfall demo-traffic`: fills a demo property with a few days of obviously synthetic traffic,
//! sent like any server-side sender would, through the GA4 Measurement Protocol (back-dated with
//! `timestamp_micros`, at most 72 hours), and prints the property's dashboard URL. It sends nothing
//! when the property already has pageviews, so restarting the demo does not double them.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::loadgen::{client, Rng};

pub struct Options {
    pub url: String,
    pub admin_token: String,
    pub domain: String,
    /// Days back to fill (1–3: the Measurement Protocol takes hits up to 72 hours old).
    pub days: u32,
    pub visits_per_day: u32,
    /// Only print the dashboard URL.
    pub no_traffic: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("demo traffic: {0}")]
pub struct DemoError(String);

/// Synthetic pages, sources and places: example domains, nothing that looks like real data.
const PAGES: &[(&str, &str)] = &[
    ("/", "Demo shop (synthetic)"),
    ("/pricing", "Pricing (synthetic)"),
    ("/products/demo-widget", "Demo widget (synthetic)"),
    ("/products/sample-gadget", "Sample gadget (synthetic)"),
    (
        "/blog/synthetic-traffic-explained",
        "Synthetic traffic, explained",
    ),
    ("/docs/getting-started", "Getting started (synthetic)"),
];
const SOURCES: &[&str] = &[
    "",
    "",
    "https://search.example/?q=demo",
    "https://social.example/post/1",
    "https://news.example/synthetic-story",
    "?utm_source=demo-newsletter&utm_medium=email&utm_campaign=synthetic-launch",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("DE", "DE-BE", "Berlin"),
    ("US", "US-CA", "San Francisco"),
    ("GB", "GB-ENG", "London"),
    ("FR", "FR-IDF", "Paris"),
    ("JP", "JP-13", "Tokyo"),
    ("BR", "BR-SP", "São Paulo"),
];
const DEVICES: &[(&str, &str, &str)] = &[
    ("desktop", "Windows", "Chrome"),
    ("desktop", "Mac OS X", "Safari"),
    ("desktop", "Linux", "Firefox"),
    ("mobile", "Android", "Chrome"),
    ("mobile", "iOS", "Safari"),
    ("tablet", "iOS", "Safari"),
];

async fn call(
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), DemoError> {
    let c = client();
    let req = match method {
        "PUT" => c.put(url),
        "POST" => c.post(url),
        _ => c.get(url),
    }
    .insert_header(("Authorization", format!("Bearer {token}")));
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .map_err(|e| DemoError(format!("{url}: {e}")))?;
    let bytes = res
        .body()
        .await
        .map_err(|e| DemoError(format!("{url}: {e}")))?;
    Ok((
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Sends the traffic (unless there is some already) and returns what to print.
pub async fn run(o: Options) -> Result<String, DemoError> {
    let (_, list) = call(
        "GET",
        &format!("{}/api/admin/properties?limit=1000", o.url),
        &o.admin_token,
        None,
    )
    .await?;
    let property = list["properties"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["domain"] == o.domain.as_str()))
        .cloned()
        .ok_or_else(|| {
            DemoError(format!(
                "no property `{}` (or a wrong admin token)",
                o.domain
            ))
        })?;
    let text = |k: &str| property[k].as_str().unwrap_or_default().to_owned();
    let (id, read_key) = (text("id"), text("read_key"));
    let dashboard = format!("{}/dashboard/{}#key={read_key}", o.url, o.domain);
    if o.no_traffic {
        return Ok(format!("Dashboard: {dashboard}"));
    }
    let (_, pageviews) = call(
        "POST",
        &format!("{}/api/v2/query", o.url),
        &read_key,
        Some(json!({"site_id": o.domain, "date_range": "30d", "metrics": ["pageviews"]})),
    )
    .await?;
    if pageviews["results"][0]["metrics"][0].as_u64().unwrap_or(0) > 0 {
        return Ok(format!("Dashboard: {dashboard}  (it already has traffic)"));
    }
    if property["goals"].as_array().is_none_or(Vec::is_empty) {
        let goals =
            json!({"goals": [{"event": "Signup"}, {"event": "Purchase"}, {"page": "/pricing"}]});
        let url = format!("{}/api/admin/properties/{id}/goals", o.url);
        call("PUT", &url, &o.admin_token, Some(goals)).await?;
    }
    let sent = send_visits(&o, &text("measurement_id"), &text("api_secret")).await?;
    let mut out = String::new();
    let _ = write!(
        out,
        "Sent {sent} synthetic hits over {} days (FOOTFALL_DEMO_TRAFFIC=0 turns this off).\nDashboard: {dashboard}",
        o.days
    );
    Ok(out)
}

/// One Measurement Protocol request per visit: its pageviews, and sometimes a signup or purchase.
async fn send_visits(o: &Options, measurement_id: &str, secret: &str) -> Result<u64, DemoError> {
    let url = format!(
        "{}/mp/collect?measurement_id={measurement_id}&api_secret={secret}",
        o.url
    );
    let mut rng = Rng(0x0F00_FA11);
    let now = chrono::Utc::now().timestamp_micros();
    // Stay inside the 72 hours the Measurement Protocol accepts, with a margin.
    let span = i64::from(o.days.clamp(1, 3)) * 86_400_000_000 - 3_600_000_000;
    let visits = u64::from(o.visits_per_day) * u64::from(o.days.clamp(1, 3));
    let mut sent = 0;
    for v in 0..visits {
        // Busier in the (UTC) afternoon: keep a time with a probability that follows the hour.
        let at = loop {
            let t = now - (rng.unit() * span as f64) as i64;
            let hour = (t / 3_600_000_000).rem_euclid(24) as f64;
            if rng.unit() < 0.35 + 0.65 * (-(hour - 15.0).powi(2) / 30.0).exp() {
                break t;
            }
        };
        let visitor = 1 + rng.below(visits * 2 / 3 + 1);
        let source = rng.pick(SOURCES);
        let (country, region, city) = rng.pick(PLACES);
        let (category, os, browser) = rng.pick(DEVICES);
        let mut events = vec![];
        let mut t = at;
        for i in 0..1 + rng.below(4) {
            let (path, title) = if i == 0 {
                PAGES[rng.below(3) as usize]
            } else {
                *rng.pick(PAGES)
            };
            let query = if i == 0 && source.starts_with('?') {
                source
            } else {
                ""
            };
            let referrer = if i == 0 && source.starts_with("http") {
                source
            } else {
                ""
            };
            events.push(json!({"name": "page_view", "params": {
                "page_location": format!("https://{}{path}{query}", o.domain),
                "page_referrer": referrer, "page_title": title,
                "session_id": format!("{v}"), "engagement_time_msec": 5_000 + rng.below(90_000),
                "timestamp_micros": t}}));
            t += 20_000_000 + rng.below(100_000_000) as i64;
        }
        if rng.below(10) == 0 {
            events.push(
                json!({"name": "Signup", "params": {"plan": rng.pick(&["free", "pro"]),
                "session_id": format!("{v}"), "timestamp_micros": t}}),
            );
        }
        if rng.below(25) == 0 {
            events.push(json!({"name": "Purchase", "params": {"currency": "EUR",
                "value": 10 + rng.below(90), "session_id": format!("{v}"), "timestamp_micros": t}}));
        }
        let count = events.len() as u64;
        let body = json!({
            "client_id": format!("{visitor}.demo"),
            "device": {"category": category, "operating_system": os, "browser": browser},
            "user_location": {"country_id": country, "region_id": region, "city": city},
            "events": events,
        });
        let (status, answer) = call("POST", &url, secret, Some(body)).await?;
        if status != 204 {
            return Err(DemoError(format!("{status}: {answer}")));
        }
        sent += count;
    }
    Ok(sent)
}
