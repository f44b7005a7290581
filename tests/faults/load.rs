//! Closed-loop load: concurrent clients post Plausible pageviews, each with a unique marker in its
//! URL, and record what became of every request. [`Tally`] then compares those outcomes with the
//! markers in the event log.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::Conn;

/// No load runs longer than this, whatever a scenario does.
const MAX_DURATION: Duration = Duration::from_secs(120);
/// Nor sends more hits than this.
const MAX_HITS: u64 = 400_000;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The server answered.
    Status { code: u16, retry_after: bool },
    /// The request was (perhaps partly) written, and no answer came.
    NoAnswer(String),
}

/// One request. Times are since the load's start.
#[derive(Debug, Clone)]
pub struct Record {
    pub marker: u64,
    /// When the connection it went over was opened.
    pub conn_opened: Duration,
    /// When writing it began.
    pub sent: Duration,
    /// When its answer (or the error) came.
    pub done: Duration,
    pub outcome: Outcome,
}

impl Record {
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Outcome::Status { code, .. } if (200..300).contains(&code))
    }
}

struct Shared {
    port: u16,
    domain: String,
    start: Instant,
    stop: AtomicBool,
    next: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    /// Whether a hit that met a reused connection closed before any answer is sent again, as
    /// browsers do.
    retry_stale: bool,
    stale_retries: AtomicU64,
}

pub struct Load {
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<Vec<Record>>>,
}

impl Load {
    /// `clients` closed-loop clients, each on a keep-alive connection, sending its next hit as
    /// soon as the last one is answered.
    pub fn start(port: u16, domain: &str, clients: usize) -> Self {
        Self::start_with(port, domain, clients, None)
    }

    /// Closed-loop clients behind a proxy: a hit whose reused keep-alive connection is closed
    /// before any byte of answer (nginx closes idle client connections when it reloads) is sent
    /// again on a new connection, as browsers do. Had the first attempt been recorded, the log
    /// would hold its marker twice, which [`Tally`] counts as a failure.
    pub fn start_through_proxy(port: u16, domain: &str, clients: usize) -> Self {
        Self::start_inner(port, domain, clients, None, true)
    }

    /// How many hits were sent again after a stale connection.
    pub fn stale_retries(&self) -> u64 {
        self.shared.stale_retries.load(Ordering::SeqCst)
    }

    /// Closed-loop clients, plus, with `open_rate`, an open-loop sender: that many hits a second,
    /// each on a new connection, whether or not earlier ones were answered (as independent
    /// browsers do), so that hits keep arriving while the closed-loop clients are all waiting.
    pub fn start_with(port: u16, domain: &str, clients: usize, open_rate: Option<u32>) -> Self {
        Self::start_inner(port, domain, clients, open_rate, false)
    }

    fn start_inner(
        port: u16,
        domain: &str,
        clients: usize,
        open_rate: Option<u32>,
        retry_stale: bool,
    ) -> Self {
        let shared = Arc::new(Shared {
            port,
            domain: domain.to_owned(),
            start: Instant::now(),
            stop: AtomicBool::new(false),
            next: AtomicU64::new(1),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            retry_stale,
            stale_retries: AtomicU64::new(0),
        });
        let mut threads: Vec<JoinHandle<Vec<Record>>> = (0..clients)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("faults-client-{i}"))
                    .spawn(move || client(&shared, i))
                    .expect("a client thread")
            })
            .collect();
        if let Some(rate) = open_rate {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("faults-open-loop".into())
                    .spawn(move || open_loop(&shared, rate))
                    .expect("the open-loop thread"),
            );
        }
        Self {
            shared,
            clients: threads,
        }
    }

    /// Time since the load started (the clock of [`Record`]).
    pub fn now(&self) -> Duration {
        self.shared.start.elapsed()
    }

    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::SeqCst)
    }

    /// The instant that [`Record`] times count from.
    pub fn clock(&self) -> Instant {
        self.shared.start
    }

    /// Waits until `more` further hits have been acked.
    pub fn wait_acks(&self, more: u64, limit: Duration) -> Result<Duration, String> {
        let target = self.acked() + more;
        crate::harness::try_wait_for(&format!("{more} more acked hits"), limit, || {
            self.acked() >= target
        })
    }

    /// Stops the clients (each finishes the request it is in) and returns every record.
    pub fn stop(mut self) -> (Vec<Record>, u64) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut records: Vec<Record> = std::mem::take(&mut self.clients)
            .into_iter()
            .flat_map(|c| c.join().expect("client thread panicked"))
            .collect();
        records.sort_by_key(|r| r.marker);
        (records, self.shared.refused.load(Ordering::SeqCst))
    }
}

impl Drop for Load {
    /// A scenario that panicked leaves no client running.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn user_agent(visitor: usize) -> String {
    format!(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.{visitor}.0 Safari/537.36"
    )
}

/// Posts one hit with `marker`; returns its record and whether the connection can be reused.
fn post_hit(
    shared: &Shared,
    conn: &mut Conn,
    opened: Duration,
    marker: u64,
    user_agent: &str,
    close: bool,
) -> (Record, bool) {
    let body = format!(
        r#"{{"n":"pageview","u":"https://{d}/f/{marker}","d":"{d}"}}"#,
        d = shared.domain
    );
    let mut headers = vec![("User-Agent", user_agent), ("Content-Type", "text/plain")];
    if close {
        headers.push(("Connection", "close"));
    }
    let sent = shared.start.elapsed();
    let result = conn
        .send("POST", "/api/event", &headers, body.as_bytes())
        .and_then(|()| conn.receive());
    let done = shared.start.elapsed();
    let (outcome, reusable) = match result {
        Ok(answer) => {
            if (200..300).contains(&answer.status) {
                shared.acked.fetch_add(1, Ordering::SeqCst);
            }
            (
                Outcome::Status {
                    code: answer.status,
                    retry_after: answer.retry_after,
                },
                !answer.close,
            )
        }
        Err(e) => (Outcome::NoAnswer(format!("{:?}", e.kind())), false),
    };
    let record = Record {
        marker,
        conn_opened: opened,
        sent,
        done,
        outcome,
    };
    (record, reusable)
}

fn running(shared: &Shared) -> bool {
    !shared.stop.load(Ordering::SeqCst) && shared.start.elapsed() < MAX_DURATION
}

/// The next marker, or `None` once the load has sent as many hits as it may.
fn next_marker(shared: &Shared) -> Option<u64> {
    Some(shared.next.fetch_add(1, Ordering::SeqCst)).filter(|m| *m <= MAX_HITS)
}

fn client(shared: &Shared, index: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let mut conn: Option<(Conn, Duration)> = None;
    let (mut retry, mut served_on_conn) = (None, 0);
    // One visitor per client.
    let user_agent = user_agent(index);
    while running(shared) {
        if conn.is_none() {
            match Conn::open(shared.port) {
                Ok(c) => conn = Some((c, shared.start.elapsed())),
                Err(_) => {
                    // Not sent: the server is down or not accepting. Poll again shortly.
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10)); // poll interval
                    continue;
                }
            }
        }
        let Some((c, opened)) = conn.as_mut() else {
            continue;
        };
        let Some(marker) = retry.take().or_else(|| next_marker(shared)) else {
            break;
        };
        let (record, reusable) = post_hit(shared, c, *opened, marker, &user_agent, false);
        let stale = matches!(&record.outcome, Outcome::NoAnswer(kind)
            if kind == "UnexpectedEof" || kind == "ConnectionReset");
        if !reusable {
            conn = None;
        }
        if shared.retry_stale && stale && served_on_conn > 0 {
            shared.stale_retries.fetch_add(1, Ordering::SeqCst);
            retry = Some(marker);
            conn = None;
        } else {
            records.push(record);
        }
        served_on_conn = if conn.is_some() {
            served_on_conn + 1
        } else {
            0
        };
    }
    records
}

/// Most open-loop requests waiting for their answers at once.
const MAX_OPEN: usize = 400;

fn open_loop(shared: &Arc<Shared>, rate: u32) -> Vec<Record> {
    let interval = Duration::from_secs(1) / rate.max(1);
    let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut requests: Vec<JoinHandle<Option<Record>>> = Vec::new();
    let mut records = Vec::new();
    let mut next_at = Instant::now();
    let mut skipped = 0u64;
    while running(shared) {
        // Pacing: the sender's schedule, not a wait for a condition.
        let now = Instant::now();
        if next_at > now {
            std::thread::sleep(next_at - now);
        }
        next_at += interval;
        if outstanding.load(Ordering::SeqCst) >= MAX_OPEN {
            skipped += 1;
            continue;
        }
        let Some(marker) = next_marker(shared) else {
            break;
        };
        let (shared, outstanding) = (shared.clone(), outstanding.clone());
        outstanding.fetch_add(1, Ordering::SeqCst);
        requests.push(std::thread::spawn(move || {
            let record = match Conn::open(shared.port) {
                Ok(mut conn) => {
                    let opened = shared.start.elapsed();
                    let ua = user_agent(1000 + (marker % 50) as usize);
                    Some(post_hit(&shared, &mut conn, opened, marker, &ua, true).0)
                }
                Err(_) => {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            outstanding.fetch_sub(1, Ordering::SeqCst);
            record
        }));
        let (finished, pending): (Vec<_>, Vec<_>) =
            requests.into_iter().partition(|r| r.is_finished());
        records.extend(
            finished
                .into_iter()
                .filter_map(|r| r.join().expect("open-loop request panicked")),
        );
        requests = pending;
    }
    if skipped > 0 {
        eprintln!("  open loop: {skipped} sends skipped ({MAX_OPEN} requests were waiting)");
    }
    records.extend(
        requests
            .into_iter()
            .filter_map(|r| r.join().expect("open-loop request panicked")),
    );
    records
}

/// What the clients saw, against what the log holds.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub acked: usize,
    pub s503: usize,
    pub s503_without_retry_after: usize,
    /// Statuses other than 2xx and 503, with their counts.
    pub other: BTreeMap<u16, usize>,
    /// Written, never answered, by kind of error.
    pub no_answer: BTreeMap<String, usize>,
    /// Connection attempts refused (nothing sent).
    pub refused_connects: u64,
    /// Distinct markers of this run in the log, and log rows holding them.
    pub in_log: usize,
    pub log_rows: i64,
    pub unanswered_in_log: usize,
    /// Acked, but not in the log.
    pub acked_missing: Vec<u64>,
    /// Answered 503, yet in the log.
    pub rejected_in_log: Vec<u64>,
    /// In the log more than once: (marker, copies).
    pub duplicates: Vec<(u64, i64)>,
    /// In the log, but never sent.
    pub unknown_in_log: Vec<u64>,
}

impl Tally {
    pub fn new(records: &[Record], refused: u64, log: &HashMap<u64, i64>) -> Self {
        let mut t = Tally {
            sent: records.len(),
            refused_connects: refused,
            in_log: log.len(),
            log_rows: log.values().sum(),
            ..Tally::default()
        };
        let mut seen = std::collections::HashSet::new();
        for r in records {
            seen.insert(r.marker);
            let copies = log.get(&r.marker).copied().unwrap_or(0);
            match &r.outcome {
                Outcome::Status { code, retry_after } => {
                    if (200..300).contains(code) {
                        t.acked += 1;
                        if copies == 0 {
                            t.acked_missing.push(r.marker);
                        }
                    } else if *code == 503 {
                        t.s503 += 1;
                        if !retry_after {
                            t.s503_without_retry_after += 1;
                        }
                        if copies > 0 {
                            t.rejected_in_log.push(r.marker);
                        }
                    } else {
                        *t.other.entry(*code).or_default() += 1;
                    }
                }
                Outcome::NoAnswer(kind) => {
                    *t.no_answer.entry(kind.clone()).or_default() += 1;
                    if copies > 0 {
                        t.unanswered_in_log += 1;
                    }
                }
            }
        }
        let mut dups: Vec<(u64, i64)> = log
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(m, n)| (*m, *n))
            .collect();
        dups.sort_unstable();
        t.duplicates = dups;
        let mut unknown: Vec<u64> = log.keys().filter(|m| !seen.contains(m)).copied().collect();
        unknown.sort_unstable();
        t.unknown_in_log = unknown;
        t
    }

    pub fn no_answers(&self) -> usize {
        self.no_answer.values().sum()
    }

    pub fn print(&self, scenario: &str) {
        eprintln!(
            "[{scenario}] sent {} | acked (2xx) {} | 503 {} (without Retry-After {}) | other statuses {:?} | \
             no answer (connection errors) {} {:?} | refused connects (not sent) {} | \
             in the log: {} markers in {} rows ({} of them unanswered) | \
             acked but missing {} | 503 but in the log {} | duplicated {} | never sent but in the log {}",
            self.sent,
            self.acked,
            self.s503,
            self.s503_without_retry_after,
            self.other,
            self.no_answers(),
            self.no_answer,
            self.refused_connects,
            self.in_log,
            self.log_rows,
            self.unanswered_in_log,
            self.acked_missing.len(),
            self.rejected_in_log.len(),
            self.duplicates.len(),
            self.unknown_in_log.len(),
        );
    }

    /// The invariants of every scenario, checked together with the scenario's own `failures`, so
    /// that one failure shows all of them.
    pub fn assert_core(&self, scenario: &str, mut failures: Vec<String>) {
        if !self.acked_missing.is_empty() {
            failures.push(format!(
                "{} acked hits are not in the log (first: {:?})",
                self.acked_missing.len(),
                first(&self.acked_missing)
            ));
        }
        if !self.rejected_in_log.is_empty() {
            failures.push(format!(
                "{} hits answered 503 are in the log (first: {:?})",
                self.rejected_in_log.len(),
                first(&self.rejected_in_log)
            ));
        }
        if !self.duplicates.is_empty() {
            failures.push(format!(
                "{} markers are in the log more than once (first: {:?})",
                self.duplicates.len(),
                first(&self.duplicates)
            ));
        }
        if !self.unknown_in_log.is_empty() {
            failures.push(format!(
                "{} markers in the log were never sent (first: {:?})",
                self.unknown_in_log.len(),
                first(&self.unknown_in_log)
            ));
        }
        if self.s503_without_retry_after > 0 {
            failures.push(format!(
                "{} 503s without Retry-After",
                self.s503_without_retry_after
            ));
        }
        if !self.other.is_empty() {
            failures.push(format!(
                "valid hits answered other than 2xx or 503: {:?}",
                self.other
            ));
        }
        if self.acked == 0 {
            failures.push("no hit was acked at all".into());
        }
        assert!(
            failures.is_empty(),
            "[{scenario}] invariants violated:\n  - {}",
            failures.join("\n  - ")
        );
    }
}

fn first<T: Clone>(v: &[T]) -> Vec<T> {
    v.iter().take(10).cloned().collect()
}
