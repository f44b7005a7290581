//! Property-based tests: arbitrary Unicode and arbitrary JSON shapes thrown at every collection
//! protocol, mixed into otherwise valid requests for a registered property. The invariant is
//! "accepted ⇒ projectable":
//!
//! - a refusal is a 4xx with `{"error":{"code":…}}`, and nothing is appended to the log;
//! - an acceptance (2xx) appended its hits, and the `hits` projection folds them: after the batch,
//!   the live generations reach the log head, and the read model has a row for every hit;
//! - never a 5xx, never a dropped connection.
//!
//! The Measurement Protocol answers 204 even for invalid events (as GA4 does): there the log must
//! grow by exactly the number of events that `/debug/mp/collect` finds valid in the same body.
//!
//! How it runs. proptest's runner is synchronous and the app is async, so each test draws its
//! cases up front from the strategies with a seeded `TestRunner` (`new_tree`) and sends them in
//! sequence to one app. It keeps the value tree of the first failing case of each kind and, after
//! the batch, shrinks it with the loop proptest itself runs (`simplify` while it still fails,
//! `complicate` when it stops failing), each candidate sent to the same app: the report shows the
//! original and the minimal input.
//!
//! A hit that the projection cannot fold stalls the live projection for every later event (or,
//! with parking, is set aside in `projection_parked`, which counts as a failure too), so a case's
//! own projectability cannot be read off the live projection, and shrinking could not use it.
//! Each accepted case's events are therefore also replayed, as an oracle, through the `hits`
//! projection's writer into a scratch generation of its tables, in a transaction that is rolled
//! back. The invariant itself is checked on the live projection at the end of the batch.
//!
//! `FOOTFALL_PROPTEST_CASES` (default 200) and `FOOTFALL_PROPTEST_SEED` (a u64) change the run;
//! the seed is fixed otherwise, so a run is repeatable, and every failure prints its input.
//! `FOOTFALL_PROPTEST_VERBOSE=1` prints every case with its answer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use footfall::domain::enrich::is_bot;
use footfall::eventlog::postgres::PgEventLog;
use footfall::eventlog::{EventLog, Position};
use footfall::projections::hits::HitsProjection;
use footfall::projections::{Generation, Projection};
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};

use crate::helpers::{spawn_app, TestApp};

// ---------------------------------------------------------------------------------------------
// The tests: one per input path.

#[actix_web::test]
async fn proptest_plausible_events_api() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    // A second property, for the comma-separated `domain` lists.
    app.register("other.example", "UTC").await;
    run("plausible", &app, plausible()).await;
}

#[actix_web::test]
async fn proptest_footfall_tracker() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    run("tracker", &app, tracker()).await;
}

#[actix_web::test]
async fn proptest_umami() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run("umami", &app, umami(&Target::of(&p))).await;
}

#[actix_web::test]
async fn proptest_gtag_get() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run("gtag GET", &app, gtag_get(&Target::of(&p))).await;
}

#[actix_web::test]
async fn proptest_gtag_post() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run("gtag POST", &app, gtag_post(&Target::of(&p))).await;
}

#[actix_web::test]
async fn proptest_measurement_protocol() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run(
        "measurement protocol",
        &app,
        measurement_protocol(&Target::of(&p)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Cases and the invariant.

/// One request.
#[derive(Clone, Debug)]
struct Case {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
    /// A 2xx that appends nothing is right for this request (Umami's `identify`).
    may_record_nothing: bool,
    /// A Measurement Protocol request: its `/debug` twin says how many events it records.
    mp: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "    {} {}", self.method, visible(&self.path))?;
        for (k, v) in &self.headers {
            writeln!(f, "    {k}: {}", visible(&String::from_utf8_lossy(v)))?;
        }
        if let Some(body) = &self.body {
            let text = match std::str::from_utf8(body) {
                Ok(t) => visible(t),
                Err(_) => format!(
                    "(not UTF-8; invalid bytes shown as U+FFFD) {}",
                    visible(&String::from_utf8_lossy(body))
                ),
            };
            writeln!(f, "    body ({} bytes): {text}", body.len())?;
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Outcome {
    Accepted,
    /// The error code, and the whole answer (for `FOOTFALL_PROPTEST_VERBOSE`).
    Refused(String, String),
    /// A 2xx with nothing to record.
    Empty,
}

#[derive(Debug)]
struct Failure {
    /// What went wrong, without specifics: failures of one kind are shrunk together.
    kind: String,
    detail: String,
}

fn fail<T>(kind: impl Into<String>, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        kind: kind.into(),
        detail: detail.into(),
    })
}

/// The app under test, its log, and the scratch generation the oracle replays into.
struct Ctx<'a> {
    app: &'a TestApp,
    log: PgEventLog,
}

/// The scratch generation of the `hits` tables (the live ones are 1, 2, …).
const SCRATCH: Generation = 9000;

impl<'a> Ctx<'a> {
    /// Creates the scratch generation and folds the properties registered so far into it.
    async fn new(app: &'a TestApp) -> Ctx<'a> {
        let projection = HitsProjection;
        for ddl in projection.ddl(SCRATCH) {
            sqlx::query(&ddl).execute(&app.pool).await.unwrap();
        }
        let log = PgEventLog::new(app.pool.clone());
        let events = log
            .read_all(Position::START, 10_000, &projection.filter())
            .await
            .unwrap();
        let mut tx = app.pool.begin().await.unwrap();
        projection
            .writer(SCRATCH)
            .apply(&mut tx, &events)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Ctx { app, log }
    }

    async fn head(&self) -> i64 {
        sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// Events appended after `after`: all of them, and those of `hits-…` streams.
    async fn appended(&self, after: i64) -> (i64, i64) {
        sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE category = 'hits') FROM events WHERE position > $1",
        )
        .bind(after)
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    /// The oracle: folds the events appended after `after` into the scratch generation with the
    /// `hits` projection's writer, and rolls back.
    async fn replay(&self, after: i64) -> Result<(), String> {
        let projection = HitsProjection;
        let events = self
            .log
            .read_all(Position(after as u64), 10_000, &projection.filter())
            .await
            .map_err(|e| e.to_string())?;
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.app.pool.begin().await.map_err(|e| e.to_string())?;
        let applied = projection.writer(SCRATCH).apply(&mut tx, &events).await;
        tx.rollback().await.map_err(|e| e.to_string())?;
        applied.map_err(|e| e.to_string())
    }

    /// How many of a Measurement Protocol body's events `/debug/mp/collect` finds valid, and the
    /// first problem it reports (its code and the kind of field), for the statistics.
    async fn mp_valid(&self, case: &Case) -> Result<(i64, String), Failure> {
        let debug = Case {
            path: format!("/debug{}", case.path),
            ..case.clone()
        };
        let reply = send(self.app, &debug)
            .await
            .or_else(|e| fail("/debug/mp/collect gave no answer", e))?;
        match reply.status {
            200 => {
                let Some(messages) = reply.body["validationMessages"].as_array() else {
                    return fail("/debug/mp/collect without validationMessages", reply.text);
                };
                let first = messages.first().map_or_else(String::new, |m| {
                    let path = match m["fieldPath"].as_str().unwrap_or("") {
                        "" => "(body)",
                        p => p,
                    };
                    let field = match path.split_once("].") {
                        Some((_, rest)) => {
                            format!("events[].{}", rest.split('.').next().unwrap_or(""))
                        }
                        None => path.split(['.', '[']).next().unwrap_or("").to_owned(),
                    };
                    format!("{} {field}", m["validationCode"].as_str().unwrap_or("?"))
                });
                Ok((
                    valid_events(case.body.as_deref().unwrap_or(b""), messages),
                    first,
                ))
            }
            400..=499 if reply.body["error"]["code"].is_string() => {
                Ok((0, format!("{}", reply.body["error"]["code"])))
            }
            s => fail(
                format!("/debug/mp/collect answered {s}"),
                clip(&reply.text, 300),
            ),
        }
    }
}

/// Events of a body that GA4 validation leaves: none when a message is about the request, else
/// those without a message of their own (`events[i]…`).
fn valid_events(body: &[u8], messages: &[Value]) -> i64 {
    let paths: Vec<&str> = messages
        .iter()
        .map(|m| m["fieldPath"].as_str().unwrap_or(""))
        .collect();
    if paths.iter().any(|p| !p.starts_with("events[")) {
        return 0;
    }
    let events = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.get("events")?.as_array().map(Vec::len))
        .unwrap_or(0);
    let invalid: BTreeSet<&str> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("events[")?.split(']').next())
        .collect();
    events as i64 - invalid.len() as i64
}

struct Reply {
    status: u16,
    body: Value,
    text: String,
}

/// Sends a case; `Err` when the connection gave no whole answer.
async fn send(app: &TestApp, case: &Case) -> Result<Reply, String> {
    let method = awc::http::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(&case.path));
    for (k, v) in &case.headers {
        let value = awc::http::header::HeaderValue::from_bytes(v).unwrap();
        req = req.insert_header((*k, value));
    }
    let res = match &case.body {
        Some(body) => req.send_body(body.clone()).await,
        None => req.send().await,
    };
    let mut res = res.map_err(|e| format!("no answer: {e}"))?;
    let bytes = res
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| format!("the answer was cut off: {e}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(Reply {
        status: res.status().as_u16(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    })
}

/// Runs one case and checks the invariant on it (the live projection is checked after the batch).
async fn check(ctx: &Ctx<'_>, case: &Case) -> Result<Outcome, Failure> {
    let before = ctx.head().await;
    let must_record = if case.mp {
        let (valid, problem) = ctx.mp_valid(case).await?;
        let (all, _) = ctx.appended(before).await;
        if all != 0 {
            return fail("/debug/mp/collect appended events", format!("{all} events"));
        }
        Some((valid, problem))
    } else {
        None
    };
    let reply = send(ctx.app, case)
        .await
        .or_else(|e| fail("no answer (dropped connection)", e))?;
    let (all, hits) = ctx.appended(before).await;
    let answer = format!("answered {} {}", reply.status, clip(&reply.text, 300));
    if reply.status >= 500 {
        return fail(format!("answered {}", reply.status), answer);
    }
    if all != hits {
        return fail(
            "appended events that are not hits",
            format!("{answer}; {all} events, {hits} hits"),
        );
    }
    match reply.status {
        200..=299 => {
            match &must_record {
                Some((valid, _)) if hits != *valid => {
                    return fail(
                        "recorded a number of events other than /debug/mp/collect finds valid",
                        format!("/debug/mp/collect: {valid} valid; recorded: {hits}; {answer}"),
                    )
                }
                None if hits == 0 && !case.may_record_nothing => {
                    return fail("accepted but appended nothing", answer)
                }
                _ => {}
            }
            if let Err(e) = ctx.replay(before).await {
                return fail(
                    format!("accepted but not projectable: {}", error_kind(&e)),
                    format!(
                        "{answer}; {hits} hits appended; the hits projection fails on them: {e}"
                    ),
                );
            }
            Ok(match must_record {
                _ if hits > 0 => Outcome::Accepted,
                // The Measurement Protocol's refusal: 204, nothing recorded.
                Some((_, problem)) => Outcome::Refused(format!("204, dropped: {problem}"), answer),
                None => Outcome::Empty,
            })
        }
        400..=499 => {
            let Some(code) = reply.body["error"]["code"].as_str() else {
                return fail(
                    format!("answered {} without a JSON error code", reply.status),
                    answer,
                );
            };
            if all != 0 {
                return fail(
                    "refused but appended",
                    format!("{answer}; {all} events appended"),
                );
            }
            match must_record {
                Some((valid, _)) if valid > 0 => fail(
                    "refused events /debug/mp/collect finds valid",
                    format!("/debug/mp/collect: {valid} valid; {answer}"),
                ),
                _ => Ok(Outcome::Refused(code.to_owned(), answer)),
            }
        }
        s => fail(format!("answered {s}"), answer),
    }
}

/// An error message without its numbers and quoted names, to group failures by kind.
fn error_kind(e: &str) -> String {
    let mut out = String::new();
    let mut last_digit = false;
    for c in e.chars().take(160) {
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(c);
            last_digit = false;
        }
    }
    out
}

#[derive(Default)]
struct Stats {
    accepted: usize,
    empty: usize,
    refused: BTreeMap<String, usize>,
    failed: BTreeMap<String, usize>,
}

type Tree = Box<dyn ValueTree<Value = Case>>;

/// Shrinking stops after this many candidates or this long, whichever comes first.
const MAX_SHRINK_STEPS: usize = 400;
const MAX_SHRINK_TIME: Duration = Duration::from_secs(8);
/// Distinct kinds of failure shrunk per protocol.
const MAX_SHRUNK: usize = 3;

async fn run(name: &str, app: &TestApp, strategy: BoxedStrategy<Case>) {
    let ctx = Ctx::new(app).await;
    let cases: usize = std::env::var("FOOTFALL_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("FOOTFALL_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00f0_0f0a_11ca_5e5e);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in name.bytes().take(24).enumerate() {
        seed_bytes[8 + i] = b;
    }
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );

    // FOOTFALL_PROPTEST_VERBOSE=1 prints every case and its outcome.
    let verbose = std::env::var_os("FOOTFALL_PROPTEST_VERBOSE").is_some();
    let started = Instant::now();
    let mut stats = Stats::default();
    // Case i appended the positions spans[i].0 + 1 ..= spans[i].1.
    let mut spans: Vec<(i64, i64)> = Vec::with_capacity(cases);
    let mut inputs: Vec<Case> = Vec::with_capacity(cases);
    // The first failing case of each kind, with its value tree for shrinking.
    let mut found: Vec<(usize, Tree, Failure)> = Vec::new();
    for i in 0..cases {
        let tree = strategy
            .new_tree(&mut runner)
            .expect("the strategies never reject");
        let case = tree.current();
        let before = ctx.head().await;
        let result = check(&ctx, &case).await;
        if verbose {
            let outcome = match &result {
                Ok(Outcome::Refused(_, answer)) => answer.clone(),
                other => format!("{other:?}"),
            };
            eprintln!("[{name}] case #{i}: {outcome}\n{case}");
        }
        spans.push((before, ctx.head().await));
        inputs.push(case);
        match result {
            Ok(Outcome::Accepted) => stats.accepted += 1,
            Ok(Outcome::Empty) => stats.empty += 1,
            Ok(Outcome::Refused(code, _)) => *stats.refused.entry(code).or_default() += 1,
            Err(f) => {
                *stats.failed.entry(f.kind.clone()).or_default() += 1;
                if !found.iter().any(|(_, _, g)| g.kind == f.kind) {
                    found.push((i, tree, f));
                }
            }
        }
    }
    let sent = started.elapsed();
    let stall_expected = found
        .iter()
        .any(|(_, _, f)| f.kind.starts_with("accepted but not projectable"));
    let (read_model, live_failure) = live_check(&ctx, &spans, &inputs, stall_expected).await;

    let refused: usize = stats.refused.values().sum();
    let failed: usize = stats.failed.values().sum();
    eprintln!(
        "proptest {name}: {cases} cases (seed {seed:#x}) in {:.1} s: {} accepted ({} %), {refused} refused, \
         {} 2xx with nothing to record, {failed} failing\n  refused by code: {:?}\n  failing by kind: {:?}\n  {read_model}",
        sent.as_secs_f64(),
        stats.accepted,
        stats.accepted * 100 / cases.max(1),
        stats.empty,
        stats.refused,
        stats.failed,
    );

    let mut report = String::new();
    if let Some(live) = live_failure {
        writeln!(report, "[{name}] {live}").unwrap();
    }
    let shrink_started = Instant::now();
    for (i, mut tree, failure) in found.into_iter().take(MAX_SHRUNK) {
        let (minimal, why, steps) = shrink(&ctx, &mut *tree, &failure.kind).await;
        write!(
            report,
            "[{name}] case #{i}: {}\n  {}\n  input:\n{}",
            failure.kind, failure.detail, inputs[i]
        )
        .unwrap();
        match minimal {
            Some(m) => write!(
                report,
                "  minimal input ({steps} shrinking steps):\n{m}  {}\n",
                why.map(|w| w.detail).unwrap_or_default()
            )
            .unwrap(),
            None => writeln!(report, "  (no smaller input fails the same way)").unwrap(),
        }
    }
    if !report.is_empty() {
        eprintln!(
            "proptest {name}: shrinking took {:.1} s\n{report}",
            shrink_started.elapsed().as_secs_f64()
        );
        panic!("proptest {name}: the invariant does not hold:\n{report}");
    }
}

/// Shrinks a failing case as proptest's runner does: simplify while the candidate still fails
/// the same way, complicate when it stops failing. Returns the smallest failing input found.
async fn shrink(
    ctx: &Ctx<'_>,
    tree: &mut dyn ValueTree<Value = Case>,
    kind: &str,
) -> (Option<Case>, Option<Failure>, usize) {
    let started = Instant::now();
    let mut best = None;
    let mut steps = 0;
    if !tree.simplify() {
        return (None, None, 0);
    }
    while steps < MAX_SHRINK_STEPS && started.elapsed() < MAX_SHRINK_TIME {
        steps += 1;
        let candidate = tree.current();
        match check(ctx, &candidate).await {
            Err(f) if f.kind == kind => {
                best = Some((candidate, f));
                if !tree.simplify() {
                    break;
                }
            }
            _ => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    match best {
        Some((case, failure)) => (Some(case), Some(failure), steps),
        None => (None, None, steps),
    }
}

/// After the batch: the live generations reach the log head, and the read model holds every
/// logged hit. Returns a summary of the read model and, if the invariant fails, what failed.
///
/// The numbers: every `HitRecorded` of the log is one of
/// - a hit from a bot (its user agent is a bot's, as the projection decides with `is_bot`): left
///   out of `hits`, counted in `rollup_daily` under the `bot` dimension (engagement pings from
///   bots are not counted at all);
/// - an engagement ping (name `engagement`, what Plausible's `engagement` and GA4's
///   `user_engagement` become): it extends its visit and has no row;
/// - any other hit: one row in `hits` (the view over the live generation's per-hit table), with
///   its log position.
async fn live_check(
    ctx: &Ctx<'_>,
    spans: &[(i64, i64)],
    inputs: &[Case],
    stall_expected: bool,
) -> (String, Option<String>) {
    let pool = &ctx.app.pool;
    let head = ctx.head().await;
    // What `wait_projected` waits for, with a deadline of our own: a stalled projection is
    // reported with the case that stalled it instead of a timeout. When the oracle already found
    // a hit that cannot be folded, the stall is expected and not waited out for long.
    let until = Instant::now()
        + if stall_expected {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(30)
        };
    loop {
        let behind: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT projection, generation, position FROM projection_generations \
             WHERE state = 'live' AND position < $1",
        )
        .bind(head)
        .fetch_all(pool)
        .await
        .unwrap();
        if behind.is_empty() {
            break;
        }
        if Instant::now() >= until {
            let mut out = String::new();
            for (projection, generation, checkpoint) in behind {
                let next: Option<i64> =
                    sqlx::query_scalar("SELECT min(position) FROM events WHERE position > $1")
                        .bind(checkpoint)
                        .fetch_one(pool)
                        .await
                        .unwrap();
                let next = next.unwrap_or(checkpoint + 1);
                write!(
                    out,
                    "the live projection `{projection}` (generation {generation}) stays at \
                     position {checkpoint} of {head}: "
                )
                .unwrap();
                match spans.iter().position(|(b, a)| next > *b && next <= *a) {
                    Some(i) => writeln!(
                        out,
                        "it cannot apply the batch from position {next}, appended by case #{i}:\n{}",
                        inputs[i]
                    )
                    .unwrap(),
                    None => writeln!(out, "the next event is at position {next}").unwrap(),
                }
            }
            return (
                "read model: not checked, the projection is stalled".into(),
                Some(out),
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await; // poll interval, not a wait
    }

    let mut out = String::new();
    let case_of = |p: &i64| spans.iter().position(|(b, a)| p > b && p <= a);
    // A projection that cannot apply an event parks it and goes on (src/projections/parked.rs):
    // an accepted hit parked is an accepted hit not projected.
    let parked: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT projection, position, error FROM projection_parked ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    if let Some((projection, p, error)) = parked.first() {
        write!(
            out,
            "{} events parked by the live projections (not projectable); the first, at position              {p}, by `{projection}`: {error}",
            parked.len()
        )
        .unwrap();
        match case_of(p) {
            Some(i) => writeln!(out, "\n  it came from case #{i}:\n{}", inputs[i]).unwrap(),
            None => writeln!(out).unwrap(),
        }
    }
    let logged: Vec<(i64, String)> = sqlx::query_as(
        "SELECT position, data::text FROM events WHERE category = 'hits' ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let (mut people, mut bots, mut pings, mut bot_pings) = (BTreeSet::new(), 0i64, 0, 0);
    for (position, data) in &logged {
        let hit: Value = serde_json::from_str(data).unwrap();
        let engagement = hit["name"] == "engagement";
        if hit["user_agent"].as_str().is_some_and(is_bot) {
            if engagement {
                bot_pings += 1;
            } else {
                bots += 1;
            }
        } else if engagement {
            pings += 1;
        } else {
            people.insert(*position);
        }
    }
    let rows: BTreeSet<i64> = sqlx::query_scalar::<_, i64>("SELECT position FROM hits")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let bot_rows: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(events), 0)::bigint FROM rollup_daily WHERE dimension = 'bot'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let summary = format!(
        "log: {} hits = {} people's hits + {bots} bots' hits + {pings} + {bot_pings} engagement \
         pings of people and bots; read model: {} rows in `hits`, {bot_rows} bot hits in \
         `rollup_daily`",
        logged.len(),
        people.len(),
        rows.len(),
    );
    if let Some(p) = people.difference(&rows).next() {
        let missing = people.difference(&rows).count();
        write!(
            out,
            "{missing} logged hits have no row in `hits`; the first, at position {p}"
        )
        .unwrap();
        match case_of(p) {
            Some(i) => writeln!(out, ", came from case #{i}:\n{}", inputs[i]).unwrap(),
            None => writeln!(out).unwrap(),
        }
    }
    if let Some(p) = rows.difference(&people).next() {
        writeln!(
            out,
            "`hits` has rows no logged hit accounts for, e.g. position {p}"
        )
        .unwrap();
    }
    if bot_rows != bots {
        writeln!(
            out,
            "{bots} bots' hits logged, but {bot_rows} counted in `rollup_daily`"
        )
        .unwrap();
    }
    (summary, (!out.is_empty()).then_some(out))
}

/// Text as a report shows it: invisible and control characters as `⟨U+…⟩`, long runs of one
/// character folded, and very long text cut in the middle.
fn visible(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let shown = if invisible(c) {
            format!("⟨U+{:04X}⟩", c as u32)
        } else {
            c.to_string()
        };
        if run > 12 {
            write!(out, "⟨{shown}×{run}⟩").unwrap();
            i += run;
        } else {
            out.push_str(&shown);
            i += 1;
        }
    }
    clip(&out, 1200)
}

fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{a0}' | '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3000}' | '\u{feff}'
            | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}'
            | '\u{f0000}'..)
}

fn clip(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max * 3 / 4).collect();
    let tail: String = s.chars().skip(n - max / 4).collect();
    format!("{head}…({} chars cut)…{tail}", n - max)
}

// ---------------------------------------------------------------------------------------------
// Strategies: nasty text.

/// Stand-ins for what only raw text can carry. In a JSON body each becomes the escapes beside it
/// (the first two: lone surrogates, which make the body invalid JSON); in a query string, the
/// percent-escapes (CESU-8 surrogates, an overlong NUL, NUL, a line feed).
const RAW: &[(char, &str, &str)] = &[
    ('\u{e000}', r"\ud800", "%ED%A0%80"),
    ('\u{e001}', r"\udfff\ud800\u0041", "%C0%80"),
    ('\u{e002}', r"\u0000", "%00"),
    ('\u{e003}', r"\ud83d\ude00", "%F0%9F%98%80"),
    ('\u{e004}', r"\u001f\u007f", "%0A"),
    ('\u{e005}', r"\u0000\u0000", "%ED%BF%BF"),
];
const MARKERS: &[char] = &[
    '\u{e000}', '\u{e001}', '\u{e002}', '\u{e003}', '\u{e004}', '\u{e005}',
];

/// Literal fragments that break naive code: percent-escapes that decode to NUL, newlines,
/// overlong or surrogate UTF-8; bidi and zero-width characters; emoji sequences; quotes.
const NASTY: &[&str] = &[
    "%00",
    "%0A",
    "%0d%0a",
    "%C0%80",
    "%ED%A0%80",
    "%FF",
    "%",
    "%zz",
    "%2500",
    "+",
    "\u{202e}",
    "\u{200f}",
    "\u{61c}",
    "\u{2066}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{2028}",
    "\u{2029}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{e0001}",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🇩🇪",
    "e\u{301}\u{301}",
    "Z̤͔ͧ̑̓ä͖̭̈̇",
    "日本語",
    "العربية",
    "עִבְרִית",
    "\"",
    "\\",
    "'",
    "`",
    "<script>alert(1)</script>",
    "{\"a\":1}",
    "[]",
    "null",
    "\\u0000",
    "\\ud800",
    "",
    " ",
    "\t",
    "\r\n",
    "../",
    "?",
    "#",
    "&",
    "=",
    "/",
    "//",
    ";",
    ",",
    "\u{a0}",
    "\u{3000}",
    "'; DROP TABLE events; --",
    "$1",
    "%s",
    "{{x}}",
];

fn fragment() -> BoxedStrategy<String> {
    prop_oneof![
        120 => "[a-zA-Z0-9_-]{1,8}",
        80 => select(NASTY).prop_map(str::to_owned),
        48 => proptest::char::range('\u{0}', '\u{1f}').prop_map(String::from),
        24 => proptest::char::range('\u{7f}', '\u{9f}').prop_map(String::from),
        // NUL, a surrogate pair and controls as escapes: valid JSON.
        40 => select(&MARKERS[2..]).prop_map(String::from),
        // Lone surrogates: not valid JSON (a body with one is refused whole), so rarer.
        1 => select(&MARKERS[..2]).prop_map(String::from),
        48 => any::<char>().prop_map(String::from),
    ]
    .boxed()
}

/// One character repeated to near a documented limit (GA4 names 40, values 100, names 120,
/// short fields and prop keys 300, referrers 420, page titles 300, URLs and prop values 2,000,
/// a prop's key and value 2,400 bytes), in characters of 1 to 4 UTF-8 bytes.
fn long_text() -> BoxedStrategy<String> {
    (
        select(&['a', 'é', '€', '😀', '\u{200b}', '\u{0}'][..]),
        select(&[40usize, 100, 120, 300, 420, 1000, 2000, 2400][..]),
        -1i64..=1,
    )
        .prop_map(|(c, n, d)| std::iter::repeat_n(c, (n as i64 + d) as usize).collect())
        .boxed()
}

/// Arbitrary Unicode, biased towards the nasty.
fn nasty() -> BoxedStrategy<String> {
    prop_oneof![
        10 => vec(fragment(), 1..6).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => long_text(),
    ]
    .boxed()
}

/// Any JSON value: wrong types, nesting, arrays where objects are expected.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        nasty().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((nasty(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn texts(options: &'static [&'static str]) -> BoxedStrategy<Value> {
    select(options).prop_map(text).boxed()
}

/// JSON text with the stand-ins replaced by their raw escapes.
fn json_text(v: &Value) -> String {
    let mut s = serde_json::to_string(v).unwrap();
    for (c, escape, _) in RAW {
        if s.contains(*c) {
            s = s.replace(*c, escape);
        }
    }
    s
}

/// A query-string component: percent-encoded, with the stand-ins as raw percent-escapes.
fn query_text(s: &str) -> String {
    let mut out = String::new();
    let mut plain = String::new();
    for c in s.chars() {
        match RAW.iter().find(|(m, _, _)| *m == c) {
            Some((_, _, pct)) => {
                out.extend(url::form_urlencoded::byte_serialize(plain.as_bytes()));
                plain.clear();
                out.push_str(pct);
            }
            None => plain.push(c),
        }
    }
    out.extend(url::form_urlencoded::byte_serialize(plain.as_bytes()));
    out
}

fn query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_text(k), query_text(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A page URL: mostly on the property's domain or a subdomain, with nasty paths, UTM tags
/// (raw, or percent-encoded with raw escapes) and fragments; sometimes near 2,000 characters,
/// on another host, or not a URL at all.
fn page_url() -> BoxedStrategy<String> {
    let host = prop_oneof![
        8 => Just("shop.example"),
        3 => select(&[
            "www.shop.example", "blog.shop.example", "SHOP.example", "shop.example:8443",
            "bücher.shop.example", "evil.example", "shop.example.evil.example", "127.0.0.1",
        ][..]),
    ];
    let utm = vec(
        (
            select(
                &[
                    "utm_source",
                    "utm_medium",
                    "utm_campaign",
                    "utm_content",
                    "utm_term",
                    "gclid",
                    "ref",
                ][..],
            ),
            any::<bool>(),
            nasty(),
        ),
        1..4,
    )
    .prop_map(|tags| {
        tags.iter()
            .map(|(k, encoded, v)| {
                if *encoded {
                    format!("{k}={}", query_text(v))
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    prop_oneof![
        10 => (
            select(&["https://", "http://"][..]),
            host,
            vec(fragment(), 0..4),
            weighted(0.4, utm),
            weighted(0.15, nasty()),
        )
            .prop_map(|(scheme, host, path, utm, hash)| {
                let mut u = format!("{scheme}{host}/{}", path.concat());
                if let Some(q) = utm {
                    u = format!("{u}?{q}");
                }
                if let Some(h) = hash {
                    u = format!("{u}#{h}");
                }
                u
            }),
        1 => select(&[1990usize, 1999, 2000, 2001, 2010][..]).prop_map(|n| {
            let base = "https://shop.example/";
            format!("{base}{}", "p".repeat(n - base.len()))
        }),
        1 => nasty(),
    ]
    .boxed()
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
];

/// A `User-Agent` header: browsers and bots, none, nasty bytes a header may carry (UTF-8 as
/// obs-text, tabs), or longer than the 512 characters kept.
fn user_agent() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        8 => select(USER_AGENTS).prop_map(|ua| Some(ua.as_bytes().to_vec())),
        1 => Just(None),
        1 => nasty().prop_map(|s| Some(
            s.bytes().filter(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t').collect()
        )),
        1 => (500usize..530).prop_map(|n| Some(format!("Mozilla/5.0 {}", "x".repeat(n)).into_bytes())),
    ]
    .boxed()
}

fn headers(content_type: Option<&str>, ua: &Option<Vec<u8>>) -> Vec<(&'static str, Vec<u8>)> {
    let mut h = Vec::new();
    if let Some(ct) = content_type {
        h.push(("Content-Type", ct.as_bytes().to_vec()));
    }
    if let Some(ua) = ua {
        h.push(("User-Agent", ua.clone()));
    }
    h
}

/// Damage done to a whole JSON body.
#[derive(Clone, Debug)]
enum Mutation {
    None,
    /// Cut at this percentage of its length.
    Truncate(u8),
    /// Replaced by another JSON value.
    Replace(Value),
    /// Padded past the body limit.
    Oversize,
    /// An invalid UTF-8 byte inside the first string.
    InvalidUtf8,
    /// A byte-order mark in front.
    Bom,
    Trailing(String),
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        90 => Just(Mutation::None),
        1 => (0u8..100).prop_map(Mutation::Truncate),
        2 => json_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Oversize),
        1 => Just(Mutation::InvalidUtf8),
        1 => Just(Mutation::Bom),
        1 => nasty().prop_map(Mutation::Trailing),
    ]
    .boxed()
}

fn mutate(text: String, m: &Mutation, limit: usize) -> Vec<u8> {
    match m {
        Mutation::None => text.into_bytes(),
        Mutation::Truncate(p) => {
            let mut bytes = text.into_bytes();
            bytes.truncate(bytes.len() * *p as usize / 100);
            bytes
        }
        Mutation::Replace(v) => json_text(v).into_bytes(),
        Mutation::Oversize => match text.strip_prefix('{') {
            Some(rest) => format!("{{\"pad\":\"{}\",{rest}", "a".repeat(limit)).into_bytes(),
            None => format!("{text}{}", " ".repeat(limit)).into_bytes(),
        },
        Mutation::InvalidUtf8 => {
            let mut bytes = text.into_bytes();
            let at = bytes.iter().position(|&b| b == b'"').map_or(0, |i| i + 1);
            bytes.insert(at, 0xff);
            bytes
        }
        Mutation::Bom => format!("\u{feff}{text}").into_bytes(),
        Mutation::Trailing(s) => format!("{text}{s}").into_bytes(),
    }
}

/// Custom props: mostly scalars with nasty keys and values; sometimes a nested value (refused),
/// sometimes around the limit of 30.
fn props_object() -> BoxedStrategy<Map<String, Value>> {
    let key = prop_oneof![8 => "[a-z_]{1,10}", 3 => nasty()];
    let value = prop_oneof![
        20 => nasty().prop_map(Value::String),
        3 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        2 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => json_value(),
    ];
    let pair = (key, value);
    prop_oneof![
        10 => vec(pair.clone(), 0..6),
        1 => vec(pair, 28..33),
    ]
    .prop_map(|kv| kv.into_iter().collect())
    .boxed()
}

fn revenue_value() -> BoxedStrategy<Value> {
    let currency = prop_oneof![
        12 => texts(&["EUR", "EUR", "usd", " gbp ", "JPY", "EURO", "€", ""]),
        1 => nasty().prop_map(Value::String),
        1 => json_value(),
    ];
    let amount = prop_oneof![
        8 => texts(&[
            "12.50", "0", "-1", "29", "999999999999999.999999", " 3.14 ", "1.", "1e5",
            "1234567890123456",
        ]),
        3 => (0.0..1e6f64).prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => nasty().prop_map(Value::String),
        1 => json_value(),
    ];
    let object = (currency, amount).prop_map(|(c, a)| json!({"currency": c, "amount": a}));
    prop_oneof![
        10 => object.clone(),
        4 => object.prop_map(|o| Value::String(json_text(&o))),
        1 => json_value(),
    ]
    .boxed()
}

/// What a protocol needs to know of the registered property.
#[derive(Clone)]
struct Target {
    id: String,
    measurement_id: String,
    api_secret: String,
}

impl Target {
    fn of(p: &Value) -> Self {
        Self {
            id: p["id"].as_str().unwrap().to_owned(),
            measurement_id: p["measurement_id"].as_str().unwrap().to_owned(),
            api_secret: p["api_secret"].as_str().unwrap().to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies: one per protocol.

/// Plausible's Events API, `POST /api/event`: long or short field names, props as an object or a
/// JSON string, revenue, flags, and any of them of the wrong type.
fn plausible() -> BoxedStrategy<Case> {
    let name = weighted(
        0.95,
        prop_oneof![
            32 => texts(&["pageview", "Signup", "engagement", "Outbound Link: Click"]),
            24 => nasty().prop_map(Value::String),
            1 => json_value(),
        ],
    );
    let url = weighted(
        0.97,
        prop_oneof![60 => page_url().prop_map(Value::String), 1 => json_value()],
    );
    let domain = prop_oneof![
        48 => texts(&["shop.example"]),
        6 => texts(&[
            "shop.example,other.example", "other.example, shop.example", " shop.example ",
            "SHOP.EXAMPLE", "unknown.example", "", "shop.example,,",
        ]),
        3 => nasty().prop_map(Value::String),
        1 => json_value(),
    ];
    let referrer = weighted(
        0.4,
        prop_oneof![40 => page_url().prop_map(Value::String), 1 => json_value()],
    );
    let props = weighted(
        0.6,
        prop_oneof![
            10 => props_object().prop_map(Value::Object),
            5 => props_object().prop_map(|o| Value::String(json_text(&Value::Object(o)))),
            1 => json_value(),
        ],
    );
    let revenue = weighted(0.15, revenue_value());
    let flag = prop_oneof![
        12 => any::<bool>().prop_map(Value::Bool),
        6 => select(&[0i64, 1, 2, -1][..]).prop_map(Value::from),
        1 => json_value(),
    ];
    let flags = (
        weighted(0.15, flag.clone()),
        weighted(0.15, flag),
        weighted(
            0.05,
            prop_oneof![6 => (0u32..100_000).prop_map(Value::from), 1 => json_value()],
        ),
    );
    let envelope = (any::<u8>(), any::<bool>(), user_agent(), mutation());
    (name, url, domain, referrer, props, revenue, flags, envelope)
        .prop_map(
            |(
                name,
                url,
                domain,
                referrer,
                props,
                revenue,
                (hash, interactive, engaged),
                (long, json_ct, ua, m),
            )| {
                let mut body = Map::new();
                let mut put = |bit: u8, long_name: &str, short: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        let key = if long & (1 << bit) != 0 {
                            long_name
                        } else {
                            short
                        };
                        body.insert(key.to_owned(), v);
                    }
                };
                put(0, "name", "n", name);
                put(1, "url", "u", url);
                put(2, "domain", "d", Some(domain));
                put(3, "referrer", "r", referrer);
                put(4, "props", "p", props);
                put(5, "revenue", "$", revenue);
                put(6, "hashMode", "h", hash);
                put(7, "interactive", "i", interactive);
                put(7, "engagement_time", "e", engaged);
                let text = json_text(&Value::Object(body));
                let ct = if json_ct {
                    "application/json"
                } else {
                    "text/plain"
                };
                Case {
                    method: "POST",
                    path: "/api/event".into(),
                    headers: headers(Some(ct), &ua),
                    body: Some(mutate(text, &m, 64 * 1024)),
                    may_record_nothing: false,
                    mp: false,
                }
            },
        )
        .boxed()
}

/// A URL as `location.href` or `a.href` gives it: normalised and percent-encoded by the browser
/// (the url crate follows the same WHATWG rules). Lone surrogates become U+FFFD first.
fn browser_url(raw: &str) -> String {
    let raw: String = raw
        .chars()
        .map(|c| if MARKERS.contains(&c) { '\u{fffd}' } else { c })
        .collect();
    url::Url::parse(&raw)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "https://shop.example/".into())
}

/// footfall's own tracker (assets/footfall.js): `POST /api/event` as `text/plain`, the body
/// `JSON.stringify({n, u: location.href, d: data-domain, r: document.referrer || null, h?: 1,
/// p?: props, $?: revenue, i?: false})`. Names and props are whatever the merchant's code passes
/// to `footfall(name, {props, revenue})`; JSON.stringify writes lone surrogates as `\udxxx`.
fn tracker() -> BoxedStrategy<Case> {
    let call = prop_oneof![
        5 => Just((text("pageview"), None, None, false)),
        2 => Just((text("engagement"), None, None, true)),
        4 => (
            prop_oneof![4 => nasty().prop_map(Value::String), 1 => texts(&["Signup", "Purchase"])],
            weighted(0.7, props_object().prop_map(Value::Object)),
            weighted(0.3, revenue_value()),
        )
            .prop_map(|(n, p, r)| (n, p, r, false)),
        1 => (select(&["Outbound Link: Click", "File Download"][..]), page_url()).prop_map(|(n, u)| {
            (text(n), Some(json!({"url": browser_url(&u)})), None, false)
        }),
    ];
    let domain = prop_oneof![
        10 => Just("shop.example".to_owned()),
        1 => Just("www.shop.example".to_owned()),
        1 => nasty(),
    ];
    (
        call,
        page_url(),
        domain,
        weighted(0.4, page_url()),
        weighted(0.2, Just(())),
        select(USER_AGENTS),
    )
        .prop_map(
            |((name, props, revenue, ping), href, domain, referrer, hash, ua)| {
                let mut b = Map::new();
                b.insert("n".into(), name);
                b.insert("u".into(), text(&browser_url(&href)));
                b.insert("d".into(), Value::String(domain));
                b.insert(
                    "r".into(),
                    referrer.map_or(Value::Null, |r| text(&browser_url(&r))),
                );
                if hash.is_some() {
                    b.insert("h".into(), json!(1));
                }
                if let Some(p) = props {
                    b.insert("p".into(), p);
                }
                if let Some(r) = revenue {
                    b.insert("$".into(), r);
                }
                if ping {
                    b.insert("i".into(), json!(false));
                }
                Case {
                    method: "POST",
                    path: "/api/event".into(),
                    headers: headers(Some("text/plain"), &Some(ua.as_bytes().to_vec())),
                    body: Some(json_text(&Value::Object(b)).into_bytes()),
                    may_record_nothing: false,
                    mp: false,
                }
            },
        )
        .boxed()
}

/// Umami, `POST /api/send`: `{"type": "event", "payload": {"website": <property id>, …}}`.
fn umami(t: &Target) -> BoxedStrategy<Case> {
    let id = t.id.clone();
    let kind = weighted(
        0.9,
        prop_oneof![
            26 => texts(&["event"]),
            2 => texts(&["identify"]),
            1 => nasty().prop_map(Value::String),
            1 => json_value(),
        ],
    );
    let website = prop_oneof![
        30 => Just(0u8),
        1 => Just(1u8),
        3 => Just(2u8),
        1 => Just(3u8),
    ];
    let odd = (nasty(), json_value());
    let string_or =
        |p: f64, s: BoxedStrategy<Value>| weighted(p, prop_oneof![30 => s, 1 => json_value()]);
    let path = (vec(fragment(), 0..4), weighted(0.3, page_url())).prop_map(|(path, abs)| {
        abs.unwrap_or_else(|| {
            let u = browser_url(&format!("https://shop.example/{}", path.concat()));
            u.trim_start_matches("https://shop.example").to_owned()
        })
    });
    let fields = (
        string_or(
            0.9,
            prop_oneof![
                20 => texts(&["shop.example"]),
                2 => texts(&["www.shop.example", "evil.example", ""]),
                1 => nasty().prop_map(Value::String),
            ]
            .boxed(),
        ),
        string_or(
            0.95,
            prop_oneof![
                6 => path.prop_map(Value::String),
                1 => nasty().prop_map(Value::String),
            ]
            .boxed(),
        ),
        string_or(0.5, page_url().prop_map(Value::String).boxed()),
        string_or(0.6, nasty().prop_map(Value::String).boxed()),
        string_or(
            0.6,
            prop_oneof![3 => texts(&["en-US", "de"]), 1 => nasty().prop_map(Value::String)].boxed(),
        ),
        string_or(
            0.6,
            prop_oneof![3 => texts(&["1920x1080"]), 1 => nasty().prop_map(Value::String)].boxed(),
        ),
        string_or(
            0.4,
            prop_oneof![1 => texts(&["Signup"]), 3 => nasty().prop_map(Value::String)].boxed(),
        ),
        weighted(
            0.4,
            prop_oneof![6 => props_object().prop_map(Value::Object), 1 => json_value()],
        ),
    );
    let payload_is_object = prop_oneof![30 => Just(true), 1 => Just(false)];
    (
        kind,
        website,
        odd,
        fields,
        payload_is_object,
        user_agent(),
        mutation(),
    )
        .prop_map(
            move |(kind, website, (odd_text, odd_value), fields, is_object, ua, m)| {
                let (hostname, url, referrer, title, language, screen, name, data) = fields;
                let identify = kind.as_ref().is_some_and(|k| k == "identify");
                let website = match website {
                    0 => text(&id),
                    1 => text(&id.to_uppercase()),
                    2 => Value::String(odd_text),
                    _ => odd_value.clone(),
                };
                let mut p = Map::new();
                p.insert("website".into(), website);
                for (k, v) in [
                    ("hostname", hostname),
                    ("url", url),
                    ("referrer", referrer),
                    ("title", title),
                    ("language", language),
                    ("screen", screen),
                    ("name", name),
                    ("data", data),
                ] {
                    if let Some(v) = v {
                        p.insert(k.into(), v);
                    }
                }
                let mut body = Map::new();
                if let Some(k) = kind {
                    body.insert("type".into(), k);
                }
                let payload = if is_object {
                    Value::Object(p)
                } else {
                    odd_value
                };
                body.insert("payload".into(), payload);
                Case {
                    method: "POST",
                    path: "/api/send".into(),
                    headers: headers(Some("application/json"), &ua),
                    body: Some(mutate(json_text(&Value::Object(body)), &m, 64 * 1024)),
                    may_record_nothing: identify,
                    mp: false,
                }
            },
        )
        .boxed()
}

const GA4_NAMES: &[&str] = &[
    "page_view",
    "purchase",
    "sign_up",
    "scroll",
    "click",
    "user_engagement",
];
/// Invalid, or reserved for browsers (`first_visit`) or for Google (`ga_`, `_`).
const BAD_GA4_NAMES: &[&str] = &[
    "first_visit",
    "ga_custom",
    "_internal",
    "1bad",
    "Ünïcode",
    "a b",
];
const PARAM_NAMES: &[&str] = &[
    "page_location",
    "page_referrer",
    "page_title",
    "session_id",
    "engagement_time_msec",
    "currency",
    "value",
    "items",
    "language",
    "screen_resolution",
    "timestamp_micros",
    "campaign",
    "plan",
    "firebase_x",
    "ga_x",
];

fn ga4_name() -> BoxedStrategy<String> {
    prop_oneof![
        12 => select(GA4_NAMES).prop_map(str::to_owned),
        2 => select(BAD_GA4_NAMES).prop_map(str::to_owned),
        3 => "[a-z][a-z0-9_]{0,44}",
        1 => nasty(),
    ]
    .boxed()
}

fn param_key() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(PARAM_NAMES).prop_map(str::to_owned),
        6 => "[a-z][a-z0-9_]{0,12}",
        1 => nasty(),
    ]
    .boxed()
}

/// The parameters of one gtag.js hit: event name, page, referrer, title, language, screen,
/// session, engagement time, and event params (`ep.*` text, `epn.*` numbers).
fn gtag_hit() -> BoxedStrategy<Vec<(String, String)>> {
    (
        weighted(0.8, ga4_name()),
        weighted(0.95, page_url()),
        weighted(0.3, prop_oneof![page_url(), nasty()]),
        weighted(0.5, nasty()),
        weighted(
            0.3,
            prop_oneof![
                select(&["en-us", "de-DE"][..]).prop_map(str::to_owned),
                nasty()
            ],
        ),
        weighted(0.3, prop_oneof!["[0-9]{3,4}x[0-9]{3,4}", nasty()]),
        weighted(0.7, prop_oneof![3 => "[0-9]{1,10}", 1 => nasty()]),
        weighted(0.3, prop_oneof![3 => "[0-9]{1,6}", 1 => nasty()]),
        vec(
            (
                prop_oneof![12 => "[a-z][a-z0-9_]{0,9}", 2 => param_key(), 1 => nasty()],
                nasty(),
            ),
            0..4,
        ),
        vec(
            (
                param_key(),
                prop_oneof!["-?[0-9]{1,8}(\\.[0-9]{1,3})?", nasty()],
            ),
            0..2,
        ),
    )
        .prop_map(|(en, dl, dr, dt, ul, sr, sid, et, ep, epn)| {
            let mut v = Vec::new();
            for (k, x) in [
                ("en", en),
                ("dl", dl),
                ("dr", dr),
                ("dt", dt),
                ("ul", ul),
                ("sr", sr),
                ("sid", sid),
                ("_et", et),
            ] {
                if let Some(x) = x {
                    v.push((k.to_owned(), x));
                }
            }
            v.extend(ep.into_iter().map(|(k, x)| (format!("ep.{k}"), x)));
            v.extend(epn.into_iter().map(|(k, x)| (format!("epn.{k}"), x)));
            v
        })
        .boxed()
}

/// `tid`: mostly the property's measurement id.
fn tid(t: &Target) -> BoxedStrategy<Option<String>> {
    prop_oneof![
        14 => Just(Some(t.measurement_id.clone())),
        1 => Just(None),
        1 => Just(Some("G-UNKNOWN123".to_owned())),
        1 => nasty().prop_map(Some),
    ]
    .boxed()
}

fn shared_params(
    tid: Option<String>,
    cid: Option<String>,
    uid: Option<String>,
) -> Vec<(String, String)> {
    let mut q = vec![("v".to_owned(), "2".to_owned())];
    for (k, v) in [("tid", tid), ("cid", cid), ("uid", uid)] {
        if let Some(v) = v {
            q.push((k.to_owned(), v));
        }
    }
    q
}

fn client_id() -> BoxedStrategy<String> {
    prop_oneof![4 => "[0-9]{1,10}\\.[0-9]{1,10}", 1 => nasty()].boxed()
}

/// gtag.js, `GET /g/collect?v=2&tid=…&cid=…&en=…&dl=…`: everything in the query string.
fn gtag_get(t: &Target) -> BoxedStrategy<Case> {
    (
        tid(t),
        weighted(0.9, client_id()),
        weighted(0.1, nasty()),
        gtag_hit(),
        user_agent(),
    )
        .prop_map(|(tid, cid, uid, hit, ua)| {
            let mut q = shared_params(tid, cid, uid);
            q.extend(hit);
            Case {
                method: "GET",
                path: format!("/g/collect?{}", query(&q)),
                headers: headers(None, &ua),
                body: None,
                may_record_nothing: false,
                mp: false,
            }
        })
        .boxed()
}

/// gtag.js, `POST /g/collect?v=2&tid=…&cid=…` with several hits in the body, one query string a
/// line (`\n` or `\r\n`, blank lines between), sometimes more lines than allowed, past the body
/// limit of 64 KiB, or not UTF-8.
fn gtag_post(t: &Target) -> BoxedStrategy<Case> {
    let lines = prop_oneof![
        30 => vec((gtag_hit(), weighted(0.05, tid(t))), 1..6),
        1 => vec((gtag_hit(), Just(None)), 0..1),
        1 => vec((gtag_hit(), Just(None)), 101..103),
    ];
    (
        // First, so that shrinking keeps an oversized body while it removes the rest.
        prop_oneof![40 => Just(0usize), 1 => Just(64 * 1024 + 1)],
        tid(t),
        weighted(0.9, client_id()),
        lines,
        select(&["\n", "\r\n", "\n\n", "\r\n \r\n"][..]),
        prop_oneof![30 => Just(false), 1 => Just(true)],
        user_agent(),
    )
        .prop_map(|(pad, tid, cid, lines, sep, invalid_utf8, ua)| {
            let q = shared_params(tid, cid, None);
            let mut body: Vec<String> = lines
                .into_iter()
                .map(|(mut hit, tid)| {
                    if let Some(tid) = tid.flatten() {
                        hit.push(("tid".into(), tid));
                    }
                    query(&hit)
                })
                .collect();
            if pad > 0 {
                body.push(format!("en=page_view&ep.pad={}", "a".repeat(pad)));
            }
            let mut body = body.join(sep).into_bytes();
            if invalid_utf8 {
                body.insert(body.len() / 2, 0xc0);
            }
            Case {
                method: "POST",
                path: format!("/g/collect?{}", query(&q)),
                headers: headers(Some("text/plain;charset=UTF-8"), &ua),
                body: Some(body),
                may_record_nothing: false,
                mp: false,
            }
        })
        .boxed()
}

/// GA4 Measurement Protocol, `POST /mp/collect?measurement_id=…&api_secret=…` (mostly the
/// property's, sometimes a wrong secret): client id, user id, timestamps near the 72-hour window,
/// user properties, the payload's device, location, address and user agent, and 0 to 27 events
/// whose names and params are valid, nasty or of the wrong type.
fn measurement_protocol(t: &Target) -> BoxedStrategy<Case> {
    let (mid, secret) = (t.measurement_id.clone(), t.api_secret.clone());
    let params = prop_oneof![
        40 => vec(
            (
                param_key(),
                prop_oneof![
                    8 => nasty().prop_map(Value::String),
                    3 => page_url().prop_map(Value::String),
                    2 => any::<i64>().prop_map(Value::from),
                    1 => any::<f64>().prop_map(Value::from),
                    1 => texts(&["EUR", "usd", "EURO"]),
                    1 => any::<bool>().prop_map(Value::Bool),
                    1 => json_value(),
                ],
            ),
            0..6,
        )
        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        1 => json_value(),
    ];
    let event = prop_oneof![
        40 => (
            prop_oneof![30 => ga4_name().prop_map(Value::String), 1 => json_value()],
            weighted(0.9, params),
        )
            .prop_map(|(name, params)| {
                let mut e = Map::new();
                e.insert("name".into(), name);
                if let Some(p) = params {
                    e.insert("params".into(), p);
                }
                Value::Object(e)
            }),
        1 => json_value(),
    ];
    let events = prop_oneof![
        60 => vec(event.clone(), 1..4).prop_map(Value::Array),
        1 => Just(json!([])),
        1 => vec(event, 26..28).prop_map(Value::Array),
        1 => json_value(),
    ];
    // Seconds from now, in and out of the window of 72 hours back and 5 minutes ahead.
    let timestamp = prop_oneof![
        12 => select(&[0i64, -30, -3600, -71 * 3600, -73 * 3600, 600][..]).prop_map(Ok::<i64, Value>),
        1 => nasty().prop_map(|s| Err(Value::String(s))),
        1 => json_value().prop_map(Err),
    ];
    let visitor = (
        weighted(
            0.3,
            prop_oneof![4 => texts(USER_AGENTS), 1 => nasty().prop_map(Value::String)],
        ),
        weighted(
            0.15,
            prop_oneof![
                3 => vec((select(&["category", "operating_system", "browser", "browser_version", "model", "brand", "language", "screen_resolution"][..]), nasty()), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect())),
                1 => json_value(),
            ],
        ),
        weighted(
            0.1,
            prop_oneof![
                3 => (nasty(), nasty(), nasty()).prop_map(|(c, r, city)| json!({"country_id": c, "region_id": r, "city": city})),
                1 => Just(json!({"country_id": "DE", "region_id": "DE-BE", "city": "Berlin"})),
                1 => json_value(),
            ],
        ),
        weighted(
            0.1,
            prop_oneof![
                texts(&["203.0.113.9", "::1", "999.1.1.1"]),
                nasty().prop_map(Value::String)
            ],
        ),
    );
    let user_properties = weighted(
        0.15,
        prop_oneof![
            8 => vec((param_key(), prop_oneof![nasty().prop_map(Value::String), any::<i64>().prop_map(Value::from)]), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k, json!({"value": v}))).collect())),
            1 => json_value(),
        ],
    );
    let credentials = prop_oneof![30 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    (
        weighted(
            0.95,
            prop_oneof![
                18 => client_id().prop_map(Value::String),
                1 => any::<i64>().prop_map(Value::from),
                1 => json_value(),
            ],
        ),
        weighted(
            0.2,
            prop_oneof![nasty().prop_map(Value::String), json_value()],
        ),
        weighted(0.2, timestamp),
        user_properties,
        visitor,
        events,
        credentials,
        user_agent(),
        mutation(),
    )
        .prop_map(
            move |(
                client_id,
                user_id,
                timestamp,
                user_properties,
                visitor,
                events,
                credentials,
                ua,
                m,
            )| {
                let mut b = Map::new();
                let (payload_ua, device, location, ip) = visitor;
                // Relative to now, when the case is sent (current() is called just before).
                let timestamp = timestamp.map(|t| match t {
                    Ok(seconds) => json!((chrono::Utc::now().timestamp() + seconds) * 1_000_000),
                    Err(v) => v,
                });
                for (k, v) in [
                    ("client_id", client_id),
                    ("user_id", user_id),
                    ("timestamp_micros", timestamp),
                    ("user_properties", user_properties),
                    ("user_agent", payload_ua),
                    ("device", device),
                    ("user_location", location),
                    ("ip_override", ip),
                    ("events", Some(events)),
                ] {
                    if let Some(v) = v {
                        b.insert(k.into(), v);
                    }
                }
                let (m_id, s) = match credentials {
                    0 => (mid.as_str(), secret.as_str()),
                    1 => (mid.as_str(), "wrong-secret"),
                    _ => ("G-UNKNOWN123", secret.as_str()),
                };
                Case {
                    method: "POST",
                    path: format!(
                        "/mp/collect?measurement_id={}&api_secret={}",
                        query_text(m_id),
                        query_text(s)
                    ),
                    headers: headers(Some("application/json"), &ua),
                    body: Some(mutate(json_text(&Value::Object(b)), &m, 130_000)),
                    may_record_nothing: false,
                    mp: true,
                }
            },
        )
        .boxed()
}
