//! The processes of a scenario: a dedicated PostgreSQL cluster (it gets restarted, so it is not
//! the shared one on 5432), a fresh database on it, and `footfall serve` as a child process.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::http;

pub const ADMIN_TOKEN: &str = "faults-admin-token";
/// The dedicated cluster's name (`pg_lsclusters`).
pub const CLUSTER: &str = "faults";
const DB_PREFIX: &str = "footfall_test_faults_";

/// Polls `done` every 10 ms until it holds, at most `limit`; returns the time it took.
pub fn try_wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if done() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(10)); // poll interval
    }
}

/// [`try_wait_for`], panicking on timeout.
pub fn wait_for(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    try_wait_for(what, limit, done).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command run as root (directly when we are root, as in CI; through `sudo -n` otherwise).
pub(crate) fn as_root(program: &str) -> Command {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let root = *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    });
    if root {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

pub(crate) struct ClusterRow {
    pub version: String,
    pub name: String,
    pub port: u16,
    pub online: bool,
}

pub(crate) fn clusters() -> Vec<ClusterRow> {
    let out = run(Command::new("pg_lsclusters").arg("--no-header"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| ClusterRow {
                version: f[0].to_owned(),
                name: f[1].to_owned(),
                port: f[2].parse().unwrap_or(0),
                online: f[3].starts_with("online"),
            })
        })
        .collect()
}

/// The dedicated PostgreSQL cluster `faults`, created (trust auth on 127.0.0.1) and started on
/// first use, in the major version of the main server (whose `hll` package serves every cluster
/// of that version).
#[derive(Clone)]
pub struct Cluster {
    pub name: &'static str,
    pub version: String,
    pub port: u16,
}

impl Cluster {
    pub fn ensure() -> Self {
        let all = clusters();
        let existing = all.iter().find(|c| c.name == CLUSTER);
        let version = match existing {
            Some(c) => c.version.clone(),
            None => {
                let version = all
                    .iter()
                    .find(|c| c.port == 5432)
                    .or_else(|| {
                        all.iter()
                            .max_by_key(|c| c.version.parse::<u32>().unwrap_or(0))
                    })
                    .map(|c| c.version.clone())
                    .expect("no PostgreSQL cluster: run scripts/ensure-postgres first");
                eprintln!("faults: creating PostgreSQL cluster {version}/{CLUSTER}");
                run(as_root("pg_createcluster").args([
                    version.as_str(),
                    CLUSTER,
                    "--",
                    "--auth=trust",
                ]));
                version
            }
        };
        let row = clusters()
            .into_iter()
            .find(|c| c.name == CLUSTER)
            .expect("the faults cluster was just created");
        let cluster = Self {
            name: CLUSTER,
            version,
            port: row.port,
        };
        if !row.online {
            cluster.start();
        }
        if !cluster.can_login() {
            // Trust local TCP logins, as the main cluster does (scripts/ensure-postgres).
            let hba = format!("/etc/postgresql/{}/{CLUSTER}/pg_hba.conf", cluster.version);
            eprintln!("faults: trusting local TCP logins in {hba}");
            run(as_root("sed").args([
                "-i",
                "1i host all all 127.0.0.1/32 trust\\nhost all all ::1/128 trust",
                &hba,
            ]));
            run(as_root("pg_ctlcluster").args([
                "--skip-systemctl-redirect",
                &cluster.version,
                CLUSTER,
                "reload",
            ]));
            wait_for(
                "logins to the faults cluster",
                Duration::from_secs(10),
                || cluster.can_login(),
            );
        }
        let hll = cluster.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'hll'");
        assert_eq!(
            hll.trim(),
            "1",
            "the hll extension is not installed for PostgreSQL {} (scripts/ensure-postgres installs it)",
            cluster.version
        );
        // Databases left by runs that could not clean up.
        let leftovers = cluster.psql(&format!(
            "SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'"
        ));
        for name in leftovers.lines().filter(|l| !l.is_empty()) {
            cluster.psql(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#));
        }
        cluster
    }

    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub(crate) fn can_login(&self) -> bool {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-Atqc", "SELECT 1"])
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub(crate) fn psql(&self, sql: &str) -> String {
        let out = run(Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-Atqc", sql])
            .stdin(Stdio::null()));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ctl(&self, action: &str, extra: &[&str]) {
        run(as_root("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.version,
                self.name,
                action,
            ])
            .args(extra)
            .stdin(Stdio::null()));
    }

    /// Stops the cluster, disconnecting every session (`-m fast`).
    pub fn stop(&self) {
        self.ctl("stop", &["-m", "fast"]);
    }

    /// Stops the cluster as a crash would (`-m immediate`): what commits had not yet written to
    /// the disk is lost, and it recovers from its WAL when it starts.
    pub fn crash(&self) {
        self.ctl("stop", &["-m", "immediate"]);
    }

    /// Starts the cluster; returns once it accepts connections.
    pub fn start(&self) {
        self.ctl("start", &[]);
        wait_for(
            "the faults cluster to accept logins",
            Duration::from_secs(30),
            || self.can_login(),
        );
    }

    /// Starts the cluster and returns the moment it first accepted a login (`pg_ctlcluster start`
    /// itself returns a while later).
    pub fn start_timed(&self) -> Instant {
        let mut ctl = as_root("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &self.version,
                self.name,
                "start",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("pg_ctlcluster start");
        let mut back = None;
        wait_for(
            "the faults cluster to accept logins",
            Duration::from_secs(30),
            || {
                if self.can_login() {
                    back = Some(Instant::now());
                }
                back.is_some()
            },
        );
        let status = ctl.wait().expect("pg_ctlcluster start");
        assert!(status.success(), "pg_ctlcluster start: {status}");
        back.expect("waited for it")
    }

    pub fn is_online(&self) -> bool {
        clusters().iter().any(|c| c.name == self.name && c.online)
    }
}

/// Starts the cluster again if a scenario panicked while it was stopped.
pub struct RestartOnDrop<'a>(pub &'a Cluster);

impl Drop for RestartOnDrop<'_> {
    fn drop(&mut self) {
        if !self.0.is_online() {
            eprintln!("faults: starting the cluster that a failed scenario left down");
            self.0.start();
        }
    }
}

/// A live projection generation: (projection, generation, checkpoint position).
pub type LiveGeneration = (String, i32, i64);

/// A fresh database on the cluster, dropped when this goes out of scope.
pub struct Db {
    rt: tokio::runtime::Runtime,
    server: String,
    pub name: String,
    pub url: String,
}

impl Db {
    pub fn create(cluster: &Cluster) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let name = format!("{DB_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let server = cluster.server_url();
        rt.block_on(async {
            let mut conn = PgConnection::connect(&format!("{server}/postgres"))
                .await
                .expect("the faults cluster must be reachable");
            sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
                .execute(&mut conn)
                .await
                .unwrap();
        });
        let url = format!("{server}/{name}");
        Self {
            rt,
            server,
            name,
            url,
        }
    }

    /// Takes the lock the projection nodes' managers take to switch and drop generations, in a
    /// transaction left open, as a node frozen in the middle of that housekeeping holds it; the
    /// lock is held until [`Db::release`].
    pub fn hold_generations_lock(&self) -> PgConnection {
        self.rt.block_on(async {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(footfall::projections::generations::LOCK_KEY)
                .execute(&mut conn)
                .await
                .unwrap();
            conn
        })
    }

    /// Closes a connection of [`Db::hold_generations_lock`], which frees its lock.
    pub fn release(&self, conn: PgConnection) {
        self.rt.block_on(async { conn.close().await.unwrap() });
    }

    /// How often each marker of `domain` (the `n` of `https://<domain>/f/<n>`) is in the log.
    pub fn markers_in_log(&self, domain: &str) -> std::collections::HashMap<u64, i64> {
        let prefix = format!("https://{domain}/f/");
        self.rt.block_on(async {
            use footfall::domain::Event;
            use footfall::eventlog::{EventLog, Position, StreamFilter};
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            let log = footfall::eventlog::postgres::PgEventLog::new(pool.clone());
            let mut counts = std::collections::HashMap::new();
            let mut after = Position::START;
            loop {
                let events = log
                    .read_all(after, 10_000, &StreamFilter::categories(&["hits"]))
                    .await
                    .unwrap();
                let Some(last) = events.last() else { break };
                after = last.position;
                for e in &events {
                    let Ok(Event::HitRecorded(hit)) = e.decode() else {
                        continue;
                    };
                    let marker = hit
                        .url
                        .strip_prefix(&prefix)
                        .and_then(|m| m.parse::<u64>().ok());
                    if let Some(marker) = marker {
                        *counts.entry(marker).or_insert(0) += 1;
                    }
                }
            }
            pool.close().await;
            counts
        })
    }

    /// The log's head and every live projection generation.
    pub fn projections(&self) -> Option<(i64, Vec<LiveGeneration>)> {
        self.rt.block_on(async {
            let mut conn = PgConnection::connect(&self.url).await.ok()?;
            let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
                .fetch_one(&mut conn)
                .await
                .ok()?;
            let live = sqlx::query_as(
                "SELECT projection, generation, position FROM projection_generations \
                 WHERE state = 'live' ORDER BY projection",
            )
            .fetch_all(&mut conn)
            .await
            .ok()?;
            Some((head, live))
        })
    }

    /// Of the slots of every live generation, how many are led by the `footfall` process `pid`
    /// (its connections name it), and how many there are.
    pub fn slots_led_by(&self, pid: u32) -> (i64, i64) {
        self.rt.block_on(async {
            let Ok(mut conn) = PgConnection::connect(&self.url).await else {
                return (0, 0);
            };
            sqlx::query_as(
                "SELECT count(*) FILTER (WHERE a.application_name = $1), count(*) \
                 FROM projection_generations g \
                 JOIN projection_partitions p USING (projection, generation) \
                 LEFT JOIN projection_leases l USING (projection, generation, partition) \
                 LEFT JOIN pg_stat_activity a ON a.pid = l.leader_pid \
                 WHERE g.state = 'live'",
            )
            .bind(format!("footfall/{pid}/project"))
            .fetch_one(&mut conn)
            .await
            .unwrap_or((0, 0))
        })
    }

    /// `domain`'s hits in the `hits` read model's live generation: (its `hits` rows, the
    /// pageviews its hourly rollup counts, the distinct log positions among those rows).
    pub fn hits_in_read_model(&self, domain: &str) -> (i64, i64, i64) {
        self.rt.block_on(async {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            let g: i32 = sqlx::query_scalar(
                "SELECT generation FROM projection_generations WHERE projection = 'hits' AND state = 'live'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            sqlx::query_as(&format!(
                "WITH p AS (SELECT id FROM properties WHERE domain = $1) \
                 SELECT (SELECT count(*) FROM hits_g{g} WHERE property_id = (SELECT id FROM p)), \
                        (SELECT coalesce(sum(pageviews), 0)::bigint FROM rollup_hourly_g{g} \
                          WHERE property_id = (SELECT id FROM p)), \
                        (SELECT count(DISTINCT position) FROM hits_g{g} \
                          WHERE property_id = (SELECT id FROM p))"
            ))
            .bind(domain)
            .fetch_one(&mut conn)
            .await
            .unwrap()
        })
    }

    /// `domain`'s property: (id, measurement id, API secret, read key).
    pub fn credentials(&self, domain: &str) -> (String, String, String, String) {
        self.rt.block_on(async {
            let mut conn = PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_as(
                "SELECT id::text, measurement_id, api_secret, read_key FROM properties WHERE domain = $1",
            )
            .bind(domain)
            .fetch_one(&mut conn)
            .await
            .unwrap()
        })
    }

    /// Waits until every live projection has applied the whole log; returns the time it took.
    pub fn wait_projections_caught_up(&self, limit: Duration) -> Result<Duration, String> {
        let mut last = None;
        let start = Instant::now();
        loop {
            let state = self.projections();
            if let Some((head, live)) = &state {
                if live.iter().any(|(name, _, _)| name == "hits")
                    && live.iter().all(|(_, _, p)| p >= head)
                {
                    eprintln!(
                        "  projections caught up with head {head} after {:.2?}: {live:?}",
                        start.elapsed()
                    );
                    return Ok(start.elapsed());
                }
            }
            if state.is_some() {
                last = state;
            }
            if start.elapsed() >= limit {
                return Err(format!(
                    "projections did not catch up within {limit:?}: (head, live generations) = {last:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50)); // poll interval
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropped = self.rt.block_on(async move {
            let mut conn = PgConnection::connect(&format!("{server}/postgres")).await?;
            sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .execute(&mut conn)
                .await
                .map(|_| ())
        });
        if let Err(e) = dropped {
            eprintln!("faults: could not drop database {}: {e}", self.name);
        }
    }
}

/// The `footfall` binary with a clean environment: `DATABASE_URL`, the admin token, and none of
/// the caller's `FOOTFALL_*` settings.
fn footfall(database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_footfall"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FOOTFALL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("DATABASE_URL", database_url)
        .env("FOOTFALL_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

/// `footfall migrate`, then `footfall property add` for a new domain; returns the domain.
pub fn migrate_and_register(db: &Db) -> String {
    run(footfall(&db.url).arg("migrate"));
    let domain = format!(
        "faults-{}.example",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let out = run(footfall(&db.url).args([
        "property",
        "add",
        "--domain",
        &domain,
        "--timezone",
        "UTC",
        "--name",
        "Faults",
    ]));
    let property: Value = serde_json::from_slice(&out.stdout).expect("property add prints JSON");
    assert_eq!(property["domain"], domain.as_str(), "{property}");
    domain
}

/// A free port on 127.0.0.1 (the server binds it again on every restart).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `footfall serve` as a child process; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Starts `footfall serve` and waits until `/healthz` answers 200.
    pub fn start(db: &Db, port: u16, settings: &[(&str, &str)], log: &PathBuf) -> Self {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the server log file");
        let _ = writeln!(file, "---- footfall serve on port {port} ----");
        let err: File = file.try_clone().expect("the server log file");
        let mut cmd = footfall(&db.url);
        cmd.arg("serve")
            .env("FOOTFALL_LISTEN", format!("127.0.0.1:{port}"))
            .env("FOOTFALL_WORKERS", "2")
            .env("FOOTFALL_LOG_FORMAT", "text")
            .envs(settings.iter().copied())
            .stdout(file)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start footfall serve: {e}"));
        let mut server = Self {
            child,
            port,
            log: log.clone(),
        };
        let waited = wait_for(
            "footfall serve to answer /healthz",
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!(
                        "footfall serve exited during startup ({status}); log: {}",
                        server.log.display()
                    );
                }
                matches!(http::get(port, "/healthz"), Ok(a) if a.status == 200)
            },
        );
        eprintln!(
            "  footfall serve pid {} ready on 127.0.0.1:{port} after {waited:.2?}",
            server.pid()
        );
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The hits this process appended, from its `/metrics`.
    pub fn hits_appended(&self) -> u64 {
        let Ok(answer) = http::get(self.port, "/metrics") else {
            return 0;
        };
        String::from_utf8_lossy(&answer.body)
            .lines()
            .filter(|l| l.starts_with("footfall_hits_appended_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9`, and reaps the process.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping footfall")
    }

    /// `kill -TERM`.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// `kill -<signal>` (`STOP` freezes the process, `CONT` thaws it).
    pub fn signal(&self, signal: &str) {
        run(Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]));
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, start.elapsed()));
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10)); // poll interval
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
