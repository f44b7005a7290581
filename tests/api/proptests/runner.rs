//! Cases and the invariant: a case is one request; `check` sends it and checks the invariant,
//! `run` draws a batch of cases, `shrink` minimises the failing ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use footfall::eventlog::postgres::PgEventLog;
use footfall::eventlog::{EventLog, Position};
use footfall::projections::hits::HitsProjection;
use footfall::projections::{Generation, Projection};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use super::live::live_check;
use crate::helpers::TestApp;

/// One request.
#[derive(Clone, Debug)]
pub(super) struct Case {
    pub(super) method: &'static str,
    pub(super) path: String,
    pub(super) headers: Vec<(&'static str, Vec<u8>)>,
    pub(super) body: Option<Vec<u8>>,
    /// A 2xx that appends nothing is right for this request (Umami's `identify`).
    pub(super) may_record_nothing: bool,
    /// A Measurement Protocol request: its `/debug` twin says how many events it records.
    pub(super) mp: bool,
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
pub(super) struct Ctx<'a> {
    pub(super) app: &'a TestApp,
    log: PgEventLog,
}

/// The scratch generation of the `hits` tables (the live ones are 1, 2, …).
const SCRATCH: Generation = 9000;

impl<'a> Ctx<'a> {
    /// Creates the scratch generation and folds the properties registered so far into it.
    async fn new(app: &'a TestApp) -> Ctx<'a> {
        let projection = HitsProjection::default();
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
            .writer(SCRATCH, 0)
            .apply(&mut tx, &events)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Ctx { app, log }
    }

    pub(super) async fn head(&self) -> i64 {
        sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// Events appended after `after`: all of them, and those of `hits-…` streams.
    async fn appended(&self, after: i64) -> (i64, i64) {
        sqlx::query_as(
            "SELECT coalesce(sum(n), 0)::bigint, coalesce(sum(n) FILTER (WHERE category = 'hits'), 0)::bigint \
             FROM (SELECT category, last_position - greatest(first_position, $1 + 1) + 1 AS n \
                   FROM event_batches WHERE last_position > $1) b",
        )
        .bind(after)
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    /// The oracle: folds the events appended after `after` into the scratch generation with the
    /// `hits` projection's writer, and rolls back.
    async fn replay(&self, after: i64) -> Result<(), String> {
        let projection = HitsProjection::default();
        let events = self
            .log
            .read_all(Position(after as u64), 10_000, &projection.filter())
            .await
            .map_err(|e| e.to_string())?;
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.app.pool.begin().await.map_err(|e| e.to_string())?;
        let applied = projection.writer(SCRATCH, 0).apply(&mut tx, &events).await;
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

pub(super) async fn run(name: &str, app: &TestApp, strategy: BoxedStrategy<Case>) {
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
