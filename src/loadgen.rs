//! `footfall loadgen`: drives a running footfall over HTTP with realistic traffic and reports
//! throughput, status counts and latency percentiles.
//!
//! Traffic: properties, their pages and their visitors are Zipf-distributed (a few big sites, a
//! long tail); each client works through visits of 1–10 pageviews, with custom events and
//! revenue now and then; user agents are a desktop/mobile/tablet mix with some crawlers; referrers
//! are search, social, other sites or none, and some landings carry UTM tags; every visitor has an
//! address of its own (sent as `X-Forwarded-For`, so the server must trust the generator's
//! address); hits go out as Plausible, Umami or gtag requests.
//!
//! `--traffic high-cardinality` is the engine's sustained-load mix: a million product pages,
//! thousands of browser versions, a new visitor (and address) for every visit, and custom events
//! (a third of the hits) with props whose values vary; `--random-prop-keys N` gives every custom
//! event N more props under random keys.
//!
//! Modes: closed loop (`--concurrency` clients, each sending its next hit when the last one is
//! answered: the maximum rate) and open loop (`--rate` hits per second on a fixed schedule; each
//! latency counts from the hit's scheduled time, so a slow server cannot hide its queueing).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub admin_token: String,
    pub properties: usize,
    /// Closed loop with this many clients, unless `rate` is set.
    pub concurrency: usize,
    /// Open loop at this many hits per second.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Stop after this many hits.
    pub hits: Option<u64>,
    pub protocols: Vec<Wire>,
    pub seed: u64,
    pub traffic: Mix,
    /// Props under random keys added to every custom event.
    pub random_prop_keys: usize,
    /// A random query string of about 800 characters on every page URL.
    pub long_urls: bool,
}

/// What the traffic looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// 1,000 pages a site, 20,000 returning visitors, 8 user agents, one prop.
    Typical,
    /// A million pages, thousands of user-agent versions, a new visitor every visit, three props
    /// with varying values.
    HighCardinality,
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "typical" => Ok(Self::Typical),
            "high-cardinality" => Ok(Self::HighCardinality),
            _ => Err(format!("unknown traffic `{s}` (typical, high-cardinality)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    Plausible,
    Umami,
    Gtag,
}

impl std::str::FromStr for Wire {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plausible" => Ok(Self::Plausible),
            "umami" => Ok(Self::Umami),
            "gtag" => Ok(Self::Gtag),
            _ => Err(format!("unknown protocol `{s}` (plausible, umami, gtag)")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("cannot set up properties: {0}")]
    Setup(String),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub seconds: f64,
    pub sent: u64,
    /// Hits answered 2xx (durable).
    pub acked: u64,
    pub by_status: BTreeMap<String, u64>,
    pub acked_per_second: f64,
    pub latency_ms: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Report {
    pub fn text(&self) -> String {
        let statuses: Vec<String> = self
            .by_status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        format!(
            "{} for {:.1} s: {} sent, {} acked ({:.0} hits/s); statuses {}; latency ms p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
            self.mode, self.seconds, self.sent, self.acked, self.acked_per_second, statuses.join(", "),
            self.latency_ms.p50, self.latency_ms.p90, self.latency_ms.p99, self.latency_ms.p999, self.latency_ms.max
        )
    }
}

/// A small, fast, seeded generator (SplitMix64): runs are reproducible.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Zipf(s) over 1..=n by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n.max(1) {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// A rank from 0 (the most frequent).
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

#[derive(Debug, Clone)]
struct Site {
    id: String,
    domain: String,
    measurement_id: String,
}

const AGENTS: &[(&str, u64)] = &[
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", 35),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", 12),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0", 8),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 20),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36", 12),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 5),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 5),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 3),
];
const REFERRERS: &[&str] = &[
    "",
    "",
    "",
    "",
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://www.facebook.com/",
    "https://t.co/x1",
    "https://www.reddit.com/r/shop/",
    "https://news.ycombinator.com/",
    "https://blog.partner.example/review",
];
const UTM: &[&str] = &[
    "utm_source=newsletter&utm_medium=email&utm_campaign=autumn",
    "utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=abc",
    "utm_source=facebook&utm_medium=paid_social&utm_campaign=retarget",
];

/// One client's state: the visit it is in the middle of.
struct Visit {
    site: usize,
    visitor: u64,
    left: u32,
    landing: bool,
}

struct Traffic {
    sites: Vec<Site>,
    site_zipf: Zipf,
    page_zipf: Zipf,
    visitor_zipf: Zipf,
    wires: Vec<Wire>,
    agent_weights: u64,
    mix: Mix,
    random_prop_keys: usize,
    long_urls: bool,
}

impl Traffic {
    fn new(sites: Vec<Site>, o: &Options) -> Self {
        let pages = match o.traffic {
            Mix::Typical => 1000,
            Mix::HighCardinality => 1_000_000,
        };
        Self {
            site_zipf: Zipf::new(sites.len(), 1.1),
            page_zipf: Zipf::new(pages, 1.0),
            visitor_zipf: Zipf::new(20_000, 0.8),
            sites,
            wires: o.protocols.clone(),
            agent_weights: AGENTS.iter().map(|(_, w)| w).sum(),
            mix: o.traffic,
            random_prop_keys: o.random_prop_keys,
            long_urls: o.long_urls,
        }
    }

    /// A visitor's user agent: one of [`AGENTS`], and with high cardinality one of thousands of
    /// versions of it.
    fn agent(&self, vrng: &mut Rng) -> String {
        let mut pick = vrng.below(self.agent_weights);
        let agent = AGENTS
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or(AGENTS[0].0, |(a, _)| a);
        match self.mix {
            Mix::Typical => agent.to_owned(),
            Mix::HighCardinality => agent
                .replace(
                    "130.0.0.0",
                    &format!(
                        "{}.0.{}.{}",
                        100 + vrng.below(31),
                        vrng.below(7000),
                        vrng.below(200)
                    ),
                )
                .replace("17_5", &format!("{}_{}", 14 + vrng.below(5), vrng.below(8)))
                .replace("17.5", &format!("{}.{}", 14 + vrng.below(5), vrng.below(8))),
        }
    }

    /// A custom event's props.
    fn props(&self, rng: &mut Rng) -> Value {
        let mut props = serde_json::Map::new();
        let plan = ["free", "pro", "team"][rng.below(3) as usize];
        props.insert("plan".into(), json!(plan));
        if self.mix == Mix::HighCardinality {
            props.insert("sku".into(), json!(format!("sku-{}", rng.below(1_000_000))));
            props.insert("variant".into(), json!(format!("v{}", rng.below(500))));
        }
        for _ in 0..self.random_prop_keys {
            let key = format!("k{}", rng.below(1_000_000));
            props.insert(key, json!(format!("{}", rng.below(1000))));
        }
        Value::Object(props)
    }

    fn new_visit(&self, rng: &mut Rng) -> Visit {
        // Pageviews per visit: geometric, mean about 3, at most 10.
        let mut left = 1;
        while left < 10 && rng.unit() < 0.65 {
            left += 1;
        }
        let visitor = match self.mix {
            Mix::Typical => self.visitor_zipf.sample(rng) as u64,
            Mix::HighCardinality => rng.next() >> 32,
        };
        Visit {
            site: self.site_zipf.sample(rng),
            visitor,
            left,
            landing: true,
        }
    }

    /// The next request of a visit: (path and query, headers, body).
    fn next_hit(
        &self,
        visit: &mut Visit,
        rng: &mut Rng,
    ) -> (String, Vec<(String, String)>, Vec<u8>) {
        let site = &self.sites[visit.site];
        let visitor_seed = (visit.site as u64) << 32 | visit.visitor;
        let mut vrng = Rng(visitor_seed ^ 0x5EED);
        let agent = self.agent(&mut vrng);
        let ip = format!(
            "{}.{}.{}.{}",
            1 + vrng.below(222),
            vrng.below(256),
            vrng.below(256),
            1 + vrng.below(254)
        );
        let page = format!("/p/{}", self.page_zipf.sample(rng));
        let custom_share = match self.mix {
            Mix::Typical => 0.1,
            Mix::HighCardinality => 0.33,
        };
        let custom = !visit.landing && rng.unit() < custom_share;
        let mut query = if visit.landing && rng.unit() < 0.1 {
            format!("?{}", rng.pick(UTM))
        } else {
            String::new()
        };
        if self.long_urls {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str("q=");
            while query.len() < 800 {
                query.push_str(&format!("{:016x}", rng.next()));
            }
        }
        let url = format!("https://{}{page}{query}", site.domain);
        let referrer = if visit.landing {
            (*rng.pick(REFERRERS)).to_owned()
        } else {
            format!("https://{}/", site.domain)
        };
        visit.landing = false;
        visit.left = visit.left.saturating_sub(1);
        let mut headers = vec![
            ("User-Agent".to_owned(), agent),
            ("X-Forwarded-For".to_owned(), ip),
        ];
        let name = if custom {
            ["Signup", "Add to cart", "Purchase"][rng.below(3) as usize]
        } else {
            "pageview"
        };
        match rng.pick(&self.wires) {
            Wire::Plausible => {
                let mut body = json!({"n": name, "u": url, "d": site.domain, "r": referrer});
                if custom {
                    body["p"] = self.props(rng);
                    if name == "Purchase" {
                        body["$"] = json!({"currency": "EUR", "amount": format!("{}.{:02}", 5 + rng.below(200), rng.below(100))});
                    }
                }
                headers.push(("Content-Type".into(), "text/plain".into()));
                ("/api/event".into(), headers, body.to_string().into_bytes())
            }
            Wire::Umami => {
                let mut payload = json!({"website": site.id, "hostname": site.domain, "url": format!("{page}{query}"),
                                         "referrer": referrer, "language": "en-US", "screen": "1920x1080"});
                if custom {
                    payload["name"] = json!(name);
                    payload["data"] = self.props(rng);
                }
                headers.push(("Content-Type".into(), "application/json".into()));
                (
                    "/api/send".into(),
                    headers,
                    json!({"type": "event", "payload": payload})
                        .to_string()
                        .into_bytes(),
                )
            }
            Wire::Gtag => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let en = if custom {
                    name.replace(' ', "_").to_lowercase()
                } else {
                    "page_view".into()
                };
                let mut path = format!(
                    "/g/collect?v=2&tid={}&cid={visitor_seed}.1&sid=1&en={en}&dl={}&dr={}&ul=en-us&sr=1920x1080",
                    site.measurement_id,
                    enc(&url),
                    enc(&referrer)
                );
                if custom {
                    if let Value::Object(props) = self.props(rng) {
                        for (k, v) in props {
                            path.push_str(&format!("&ep.{k}={}", enc(v.as_str().unwrap_or(""))));
                        }
                    }
                }
                (path, headers, Vec::new())
            }
        }
    }
}

pub(crate) fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .connector(
            awc::Connector::new()
                .limit(4096)
                .timeout(Duration::from_secs(10)),
        )
        .finish()
}

/// Registers the properties the run needs (`p<i>.loadgen.example`), reusing existing ones.
async fn setup(o: &Options) -> Result<Vec<Site>, LoadgenError> {
    let c = client();
    let auth = ("Authorization", format!("Bearer {}", o.admin_token));
    let setup_err = |e: String| LoadgenError::Setup(e);
    let mut sites: BTreeMap<String, Site> = BTreeMap::new();
    let mut after = String::new();
    loop {
        let url = format!("{}/api/admin/properties?limit=1000&after={after}", o.url);
        let mut res = c
            .get(url)
            .insert_header(auth.clone())
            .send()
            .await
            .map_err(|e| setup_err(e.to_string()))?;
        let body: Value = res
            .json()
            .limit(64 << 20)
            .await
            .map_err(|e| setup_err(e.to_string()))?;
        let page = body["properties"].as_array().cloned().unwrap_or_default();
        for p in &page {
            if let Some(site) = site_of(p).filter(|s| s.domain.ends_with(".loadgen.example")) {
                sites.insert(site.domain.clone(), site);
            }
        }
        match body["next_after"].as_str() {
            Some(next) if !page.is_empty() => after = next.to_owned(),
            _ => break,
        }
    }
    let missing: Vec<String> = (0..o.properties)
        .map(|i| format!("p{i}.loadgen.example"))
        .filter(|d| !sites.contains_key(d))
        .collect();
    for chunk in missing.chunks(64) {
        let requests = chunk.iter().map(|domain| {
            let req = c
                .post(format!("{}/api/admin/properties", o.url))
                .insert_header(auth.clone());
            async move {
                let mut res = req
                    .send_json(&json!({"domain": domain, "timezone": "UTC"}))
                    .await
                    .map_err(|e| e.to_string())?;
                let body: Value = res.json().await.map_err(|e| e.to_string())?;
                site_of(&body).ok_or_else(|| format!("registering {domain}: {body}"))
            }
        });
        for site in futures_util::future::join_all(requests).await {
            let site = site.map_err(setup_err)?;
            sites.insert(site.domain.clone(), site);
        }
    }
    let wanted: Vec<Site> = (0..o.properties)
        .filter_map(|i| sites.remove(&format!("p{i}.loadgen.example")))
        .collect();
    if wanted.is_empty() {
        return Err(setup_err("no properties".into()));
    }
    Ok(wanted)
}

fn site_of(p: &Value) -> Option<Site> {
    Some(Site {
        id: p["id"].as_str()?.to_owned(),
        domain: p["domain"].as_str()?.to_owned(),
        measurement_id: p["measurement_id"].as_str()?.to_owned(),
    })
}

#[derive(Default)]
struct Tally {
    sent: u64,
    by_status: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
}

async fn send(
    c: &awc::Client,
    base: &str,
    (path, headers, body): (String, Vec<(String, String)>, Vec<u8>),
) -> String {
    let mut req = if body.is_empty() {
        c.get(format!("{base}{path}"))
    } else {
        c.post(format!("{base}{path}"))
    };
    for (k, v) in headers {
        req = req.insert_header((k, v));
    }
    let res = if body.is_empty() {
        req.send().await
    } else {
        req.send_body(body).await
    };
    match res {
        Ok(mut r) => {
            let _ = r.body().await;
            r.status().as_u16().to_string()
        }
        Err(awc::error::SendRequestError::Timeout) => "timeout".into(),
        Err(_) => "connection_error".into(),
    }
}

/// Runs the load and returns what it measured.
pub async fn run(o: Options) -> Result<Report, LoadgenError> {
    let traffic = Rc::new(Traffic::new(setup(&o).await?, &o));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + o.duration;
    let budget = o.hits.unwrap_or(u64::MAX);
    let c = client();
    let mode = match o.rate {
        None => {
            let mut clients = Vec::new();
            for w in 0..o.concurrency.max(1) {
                let (traffic, tally, c, base) =
                    (traffic.clone(), tally.clone(), c.clone(), o.url.clone());
                let mut rng = Rng(o.seed.wrapping_add(w as u64 * 7919));
                clients.push(actix_web::rt::spawn(async move {
                    let mut visit = traffic.new_visit(&mut rng);
                    while Instant::now() < deadline {
                        {
                            let mut t = tally.borrow_mut();
                            if t.sent >= budget {
                                break;
                            }
                            t.sent += 1;
                        }
                        if visit.left == 0 {
                            visit = traffic.new_visit(&mut rng);
                        }
                        let request = traffic.next_hit(&mut visit, &mut rng);
                        let t0 = Instant::now();
                        let status = send(&c, &base, request).await;
                        let mut t = tally.borrow_mut();
                        t.latencies_us
                            .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        *t.by_status.entry(status).or_default() += 1;
                    }
                }));
            }
            for client in clients {
                let _ = client.await;
            }
            format!("closed loop, {} clients", o.concurrency)
        }
        Some(rate) => {
            let mut rng = Rng(o.seed);
            let mut visits: Vec<Visit> = (0..1000).map(|_| traffic.new_visit(&mut rng)).collect();
            let mut in_flight = Vec::new();
            let mut i: u64 = 0;
            while i < budget {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                if due >= deadline {
                    break;
                }
                actix_web::rt::time::sleep_until(due.into()).await; // the schedule, not a wait on the server
                let v = &mut visits[(i % 1000) as usize];
                if v.left == 0 {
                    *v = traffic.new_visit(&mut rng);
                }
                let request = traffic.next_hit(v, &mut rng);
                let (tally, c, base) = (tally.clone(), c.clone(), o.url.clone());
                tally.borrow_mut().sent += 1;
                in_flight.push(actix_web::rt::spawn(async move {
                    let status = send(&c, &base, request).await;
                    let mut t = tally.borrow_mut();
                    // From the scheduled time: queueing in the generator or the server counts.
                    t.latencies_us
                        .push(due.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    *t.by_status.entry(status).or_default() += 1;
                }));
                i += 1;
            }
            for task in in_flight {
                let _ = task.await;
            }
            format!("open loop, {rate:.0} hits/s")
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut t = tally.borrow_mut();
    t.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if t.latencies_us.is_empty() {
            return 0.0;
        }
        let i =
            ((t.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, t.latencies_us.len()) - 1;
        t.latencies_us[i] as f64 / 1000.0
    };
    let acked = t
        .by_status
        .iter()
        .filter(|(s, _)| s.starts_with('2'))
        .map(|(_, n)| n)
        .sum();
    Ok(Report {
        mode,
        seconds,
        sent: t.sent,
        acked,
        by_status: t.by_status.clone(),
        acked_per_second: acked as f64 / seconds,
        latency_ms: Percentiles {
            p50: pct(0.5),
            p90: pct(0.9),
            p99: pct(0.99),
            p999: pct(0.999),
            max: pct(1.0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let z = Zipf::new(100, 1.1);
        let mut rng = Rng(1);
        let samples: Vec<usize> = (0..10_000).map(|_| z.sample(&mut rng)).collect();
        assert!(samples.iter().all(|s| *s < 100));
        let first = samples.iter().filter(|s| **s == 0).count();
        let fiftieth = samples.iter().filter(|s| **s == 49).count();
        assert!(first > 10 * fiftieth.max(1), "{first} vs {fiftieth}");
    }

    #[test]
    fn runs_are_reproducible() {
        let mut a = Rng(42);
        let mut b = Rng(42);
        assert_eq!(
            (0..5).map(|_| a.next()).collect::<Vec<_>>(),
            (0..5).map(|_| b.next()).collect::<Vec<_>>()
        );
    }
}
