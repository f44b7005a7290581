//! Fault injection against the real `footfall` binary: `kill -9` under load, a PostgreSQL crash
//! under load, and SIGTERM under load; [`cluster`] runs several nodes, with and without nginx. Each scenario gets a fresh database on a dedicated
//! PostgreSQL cluster (`faults`, created on first use; the shared one on 5432 is never restarted),
//! runs `footfall serve` as a child process, and drives it with concurrent clients whose every hit
//! carries a unique marker. Afterwards it counts the markers in the event log:
//!
//! - every acked (2xx) hit is in the log exactly once;
//! - no hit answered 503 is in the log;
//! - no marker is in the log more than once.
//!
//! The scenarios run one at a time (they restart a cluster). `scripts/faults` runs this target
//! alone; `--nocapture` shows the counts.

#![allow(clippy::unwrap_used)]

mod cluster;
mod harness;
mod http;
mod load;
mod nginx;
mod replica;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use harness::{Cluster, Db, RestartOnDrop, Server};
use load::{Load, Outcome, Record, Tally};

/// Concurrent clients (closed loop) in the kill and SIGTERM scenarios.
pub(crate) const CLIENTS: usize = 16;
/// More while the database restarts: each client waits for its answer, so this bounds the
/// requests in flight around the outage.
const CLIENTS_DB_RESTART: usize = 32;
/// Plus hits a second from an open-loop sender, which keeps sending while the clients all wait.
const OPEN_RATE_DB_RESTART: u32 = 100;
/// Acks to wait for between faults, so that each fault lands under load.
pub(crate) const ACKS_BETWEEN_FAULTS: u64 = 300;

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn cluster() -> Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::ensure).clone()
}

/// The server log of a scenario, emptied at its start.
pub(crate) fn server_log(scenario: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{scenario}.log"));
    let _ = std::fs::remove_file(&path);
    eprintln!("[{scenario}] server log: {}", path.display());
    path
}

/// Prints the warnings and errors of a scenario's server log (every node writes to it, each line
/// timestamped), so that a failed scenario shows what the nodes saw.
pub(crate) fn print_log_warnings(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // An ANSI colour sequence: `ESC [ … m`.
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    let lines: Vec<&str> = plain
        .lines()
        .filter(|l| l.starts_with("----") || l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    eprintln!("server log {}, warnings and errors:", log.display());
    for line in &lines[lines.len().saturating_sub(60)..] {
        eprintln!("  {line}");
    }
}

/// A fresh database with a registered property: (database, domain).
pub(crate) fn setup(cluster: &Cluster) -> (Db, String) {
    let db = Db::create(cluster);
    let domain = harness::migrate_and_register(&db);
    (db, domain)
}

/// Keeps a scenario's failures without stopping it, so that all numbers get printed.
pub(crate) fn check(failures: &mut Vec<String>, ok: bool, failure: impl FnOnce() -> String) {
    if !ok {
        failures.push(failure());
    }
}

/// Exactly once: once the projections caught up, every hit of `domain` in the log (`in_log`) is in
/// the read model once.
pub(crate) fn check_read_model(
    db: &Db,
    domain: &str,
    in_log: i64,
    name: &str,
    failures: &mut Vec<String>,
) {
    let caught_up = db.wait_projections_caught_up(Duration::from_secs(90));
    check(failures, caught_up.is_ok(), || format!("{caught_up:?}"));
    let (rows, pageviews, positions) = db.hits_in_read_model(domain);
    eprintln!(
        "[{name}] hits in the log: {in_log}; in the read model: {rows} rows at {positions} \
         positions, {pageviews} pageviews in the hourly rollup"
    );
    check(
        failures,
        (rows, pageviews, positions) == (in_log, in_log, in_log),
        || format!("read model ({rows}, {pageviews}, {positions}) != log {in_log}"),
    );
}

#[test]
fn kill_9_under_load_three_times_loses_no_acked_hit() {
    const NAME: &str = "kill -9 x3";
    let _serial = serial();
    let cluster = cluster();
    let (db, domain) = setup(&cluster);
    let log = server_log("kill9");
    let port = harness::free_port();
    let mut failures = Vec::new();

    let mut server = Server::start(&db, port, &[], &log);
    let load = Load::start(port, &domain, CLIENTS);
    for round in 1..=3 {
        load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
            .unwrap();
        let at = load.now();
        let status = server.kill9();
        eprintln!(
            "[{NAME}] round {round}: kill -9 of pid {} at {at:.2?} ({} acked so far; {status})",
            server.pid(),
            load.acked()
        );
        server = Server::start(&db, port, &[], &log);
    }
    let after_restart = load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30));
    check(&mut failures, after_restart.is_ok(), || {
        format!("after the last restart: {after_restart:?}")
    });
    let (records, refused) = load.stop();

    let tally = Tally::new(&records, refused, &db.markers_in_log(&domain));
    tally.print(NAME);
    let caught_up = db.wait_projections_caught_up(Duration::from_secs(90));
    check(&mut failures, caught_up.is_ok(), || {
        format!("{caught_up:?}")
    });
    drop(server);
    tally.assert_core(NAME, failures);
}

/// PostgreSQL crashes (`-m immediate`): appends wait for the disk at commit, so every acked hit
/// survives; the projections' commits do not, so the last of them may be lost with their
/// checkpoints and are applied again, exactly once.
#[test]
fn postgres_crash_under_load_answers_503_or_2xx_and_recovers_exactly_once() {
    const NAME: &str = "PostgreSQL crash";
    const DOWN_FOR: Duration = Duration::from_secs(3);
    let _serial = serial();
    let cluster = cluster();
    let (db, domain) = setup(&cluster);
    let log = server_log("pg-restart");
    let port = harness::free_port();
    let mut failures = Vec::new();
    // An append timeout shorter than the outage, so that requests time out (503) while the
    // database is down, and a connection wait longer than it, so that a batch taken while the
    // database is down is still waiting for a connection when it returns, and then commits.
    let settings = [
        ("FOOTFALL_APPEND_TIMEOUT_MS", "2500"),
        ("FOOTFALL_DB_TIMEOUT_MS", "8000"),
    ];
    eprintln!("[{NAME}] settings: {settings:?}");

    let mut server = Server::start(&db, port, &settings, &log);
    let pid = server.pid();
    let load = Load::start_with(
        port,
        &domain,
        CLIENTS_DB_RESTART,
        Some(OPEN_RATE_DB_RESTART),
    );
    load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
        .unwrap();

    let restart_guard = RestartOnDrop(&cluster);
    let down_at = load.now();
    cluster.crash();
    let stopped_at = load.now();
    let held = Instant::now();
    harness::wait_for("the downtime to pass", DOWN_FOR * 3, || {
        assert!(
            server.alive(),
            "footfall exited while the database was down"
        );
        held.elapsed() >= DOWN_FOR
    });
    let back_at = cluster.start_timed().duration_since(load.clock());
    drop(restart_guard);
    eprintln!(
        "[{NAME}] cluster stopped at {down_at:.2?} (down from {stopped_at:.2?}), back at {back_at:.2?}"
    );
    let recovered = load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30));
    check(&mut failures, recovered.is_ok(), || {
        format!("after the database came back: {recovered:?}")
    });
    let (records, refused) = load.stop();

    // While the database was down: only 2xx, or 503 with Retry-After.
    let window: Vec<&Record> = records
        .iter()
        .filter(|r| r.done >= down_at && r.done <= back_at)
        .collect();
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    for r in &window {
        let key = match &r.outcome {
            Outcome::Status {
                code: 503,
                retry_after: false,
            } => "503 without Retry-After".to_owned(),
            Outcome::Status { code, .. } => code.to_string(),
            Outcome::NoAnswer(kind) => format!("no answer ({kind})"),
        };
        *by_status.entry(key).or_default() += 1;
    }
    eprintln!("[{NAME}] answers while the database was down: {by_status:?}");
    let bad: Vec<&&Record> = window
        .iter()
        .filter(|r| match r.outcome {
            Outcome::Status { code, retry_after } => {
                (code > 499 && code != 503) || (code == 503 && !retry_after)
            }
            Outcome::NoAnswer(_) => false,
        })
        .collect();
    check(&mut failures, bad.is_empty(), || {
        format!(
            "while the database was down, {} answers were neither 2xx nor 503 with Retry-After: {by_status:?}",
            bad.len()
        )
    });

    // A 2xx within 5 s of the database's return.
    let first_ack = records
        .iter()
        .filter(|r| r.acked() && r.done > back_at)
        .map(|r| r.done)
        .min();
    eprintln!(
        "[{NAME}] first 2xx after the database returned: {:?} later",
        first_ack.map(|t| t - back_at)
    );
    check(
        &mut failures,
        first_ack.is_some_and(|t| t - back_at <= Duration::from_secs(5)),
        || {
            format!(
                "no 2xx within 5 s of the database's return (first one: {:?} later)",
                first_ack.map(|t| t - back_at)
            )
        },
    );

    // The same process recovers by itself, projections included.
    check(&mut failures, server.alive() && server.pid() == pid, || {
        "footfall did not survive the database restart".into()
    });
    let markers = db.markers_in_log(&domain);
    let tally = Tally::new(&records, refused, &markers);
    tally.print(NAME);
    // Without a restart of footfall.
    check_read_model(&db, &domain, markers.values().sum(), NAME, &mut failures);
    drop(server);
    tally.assert_core(NAME, failures);
}

#[test]
fn sigterm_under_load_drains_in_flight_requests_and_exits() {
    const NAME: &str = "SIGTERM";
    /// Time for the signal to reach the accept loop; connections opened later must not be served.
    const GRACE: Duration = Duration::from_secs(1);
    let _serial = serial();
    let cluster = cluster();
    let (db, domain) = setup(&cluster);
    let log = server_log("sigterm");
    let port = harness::free_port();
    let mut failures = Vec::new();

    let mut server = Server::start(&db, port, &[], &log);
    let load = Load::start(port, &domain, CLIENTS);
    load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
        .unwrap();

    // A prober opens a fresh connection every 20 ms and asks for /healthz.
    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let (probing, clock) = (probing.clone(), load.clock());
        std::thread::spawn(move || {
            let mut probes: Vec<(Duration, Result<u16, String>)> = Vec::new();
            let started = Instant::now();
            while probing.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
                let at = clock.elapsed();
                probes.push((
                    at,
                    http::get(port, "/healthz")
                        .map(|a| a.status)
                        .map_err(|e| format!("{:?}", e.kind())),
                ));
                std::thread::sleep(Duration::from_millis(20)); // probe interval
            }
            probes
        })
    };

    let term_at = load.now();
    server.sigterm();
    let exit = server.wait_exit(Duration::from_secs(10));
    let exited_at = load.now();
    probing.store(false, Ordering::SeqCst);
    let probes = prober.join().unwrap();
    let (records, refused) = load.stop();
    match &exit {
        Some((status, after)) => eprintln!("[{NAME}] exited {after:.2?} after SIGTERM: {status}"),
        None => eprintln!("[{NAME}] still running 10 s after SIGTERM"),
    }
    check(&mut failures, exit.is_some(), || {
        "footfall did not exit within 10 s of SIGTERM".into()
    });
    check(
        &mut failures,
        exit.as_ref().is_none_or(|(s, _)| s.success()),
        || format!("exit status after SIGTERM: {exit:?}"),
    );

    // Every request written before the signal was answered.
    let before: Vec<&Record> = records.iter().filter(|r| r.sent < term_at).collect();
    let in_flight = before.iter().filter(|r| r.done >= term_at).count();
    let unanswered: Vec<&&Record> = before
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::NoAnswer(_)))
        .collect();
    eprintln!(
        "[{NAME}] SIGTERM at {term_at:.2?}; requests in flight then: {in_flight}, of which \
         unanswered: {}",
        unanswered.len()
    );
    check(&mut failures, unanswered.is_empty(), || {
        format!(
            "{} requests written before SIGTERM got no answer (first: {:?})",
            unanswered.len(),
            unanswered.iter().take(5).collect::<Vec<_>>()
        )
    });

    // No connection opened after the signal (plus a grace period) is served.
    let late = term_at + GRACE;
    let served_late: Vec<&Record> = records
        .iter()
        .filter(|r| r.conn_opened >= late && matches!(r.outcome, Outcome::Status { .. }))
        .collect();
    let late_probes: Vec<&(Duration, Result<u16, String>)> =
        probes.iter().filter(|(at, _)| *at >= late).collect();
    let late_probes_served = late_probes.iter().filter(|(_, r)| r.is_ok()).count();
    let last_served_probe = probes
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(at, _)| *at)
        .max();
    eprintln!(
        "[{NAME}] after SIGTERM+{GRACE:?}: {} load requests on new connections answered, \
         {late_probes_served} of {} fresh /healthz probes answered; last probe answered {:?} after \
         SIGTERM; exit observed {:.2?} after SIGTERM",
        served_late.len(),
        late_probes.len(),
        last_served_probe.map(|t| t.saturating_sub(term_at)),
        exited_at - term_at,
    );
    check(
        &mut failures,
        served_late.is_empty() && late_probes_served == 0,
        || {
            format!(
                "new connections were still served after SIGTERM+{GRACE:?}: {} hits, {late_probes_served} probes",
                served_late.len()
            )
        },
    );

    let tally = Tally::new(&records, refused, &db.markers_in_log(&domain));
    tally.print(NAME);
    drop(server);
    tally.assert_core(NAME, failures);
}
