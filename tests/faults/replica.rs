//! Reports from a streaming read replica: a second PostgreSQL cluster (`faults_replica`) made
//! with `pg_basebackup -R` from the `faults` cluster, streaming from it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{self, as_root, clusters, run, Cluster, Server};
use crate::http::Conn;
use crate::load::Load;
use crate::{check, cluster, serial, server_log, setup, CLIENTS};

const REPLICA: &str = "faults_replica";

/// The replica of `primary`: reused while it streams from it, (re)built otherwise.
fn replica(primary: &Cluster) -> Cluster {
    if let Some(row) = clusters().into_iter().find(|c| c.name == REPLICA) {
        let replica = Cluster {
            name: REPLICA,
            version: row.version.clone(),
            port: row.port,
        };
        if !row.online {
            replica.start();
        }
        if streams(&replica) {
            return replica;
        }
        eprintln!("faults: rebuilding the replica, which does not stream");
        run(as_root("pg_dropcluster").args(["--stop", &row.version, REPLICA]));
    }
    let version = primary.version.clone();
    eprintln!("faults: creating the streaming replica {version}/{REPLICA}");
    run(as_root("pg_createcluster").args([version.as_str(), REPLICA, "--", "--auth=trust"]));
    let data = format!("/var/lib/postgresql/{version}/{REPLICA}");
    run(as_root("rm").args(["-rf", &data]));
    run(as_root("pg_basebackup").args([
        "-h",
        "127.0.0.1",
        "-p",
        &primary.port.to_string(),
        "-U",
        "postgres",
        "-D",
        &data,
        "-R",
        "-X",
        "stream",
    ]));
    run(as_root("chown").args(["-R", "postgres:postgres", &data]));
    run(as_root("chmod").args(["700", &data]));
    let row = clusters()
        .into_iter()
        .find(|c| c.name == REPLICA)
        .expect("the replica was just created");
    let replica = Cluster {
        name: REPLICA,
        version,
        port: row.port,
    };
    replica.start();
    harness::wait_for("the replica to stream", Duration::from_secs(30), || {
        streams(&replica)
    });
    replica
}

fn streams(replica: &Cluster) -> bool {
    replica.can_login()
        && replica
            .psql(
                "SELECT pg_is_in_recovery() AND EXISTS \
                 (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
            )
            .trim()
            == "t"
}

/// `POST /api/v2/query` on `port`: (status, body).
fn query(port: u16, key: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let answer = Conn::open(port).and_then(|mut c| {
        c.send(
            "POST",
            "/api/v2/query",
            &headers,
            body.to_string().as_bytes(),
        )?;
        c.receive()
    });
    match answer {
        Ok(a) => (
            a.status,
            serde_json::from_slice(&a.body).unwrap_or(Value::Null),
        ),
        Err(e) => (0, json!(e.to_string())),
    }
}

/// The first metric of the first row, if the answer has one.
fn first_metric(body: &Value) -> Option<i64> {
    body["results"][0]["metrics"][0].as_i64()
}

#[test]
fn reports_from_a_streaming_replica_are_exact_fresh_and_fall_back_to_the_primary() {
    const NAME: &str = "read replica";
    const PROBES: usize = 30;
    let _serial = serial();
    let cluster = cluster();
    let replica = replica(&cluster);
    let (db, domain) = setup(&cluster);
    let log = server_log("replica");
    let mut failures = Vec::new();
    harness::wait_for(
        "the database on the replica",
        Duration::from_secs(30),
        || {
            replica
                .psql(&format!(
                    "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                    db.name
                ))
                .trim()
                == "1"
        },
    );
    let replica_url = format!("postgres://postgres@127.0.0.1:{}/{}", replica.port, db.name);
    let node = Server::start(
        &db,
        harness::free_port(),
        &[("FOOTFALL_QUERY_DATABASE_URL", replica_url.as_str())],
        &log,
    );
    let (_, _, _, key) = db.credentials(&domain);

    // Freshness through the replica, under load: from a probe's 202 until a report counts it.
    let load = Load::start(node.port, &domain, CLIENTS);
    let mut fresh = Vec::new();
    for i in 0..PROBES {
        let name = format!("probe-{i}");
        let hit = json!({"n": name, "u": format!("https://{domain}/probe"), "d": domain});
        let sent = Conn::open(node.port).and_then(|mut c| {
            c.send(
                "POST",
                "/api/event",
                &[
                    ("Content-Type", "text/plain"),
                    ("User-Agent", "Mozilla/5.0 Firefox/130.0"),
                ],
                hit.to_string().as_bytes(),
            )?;
            c.receive()
        });
        assert!(matches!(&sent, Ok(a) if a.status == 202), "probe: {sent:?}");
        let acked = Instant::now();
        let counted = json!({"site_id": domain, "metrics": ["events"], "date_range": "all",
            "filters": [["is", "event:name", [name]]]});
        let took = harness::try_wait_for("the probe in a report", Duration::from_secs(10), || {
            first_metric(&query(node.port, &key, &counted).1) == Some(1)
        });
        fresh.push(took.map_or(Duration::from_secs(10), |_| acked.elapsed()));
    }
    let (records, _) = load.stop();
    fresh.sort();
    let (p50, p99, max) = (
        fresh[PROBES / 2],
        fresh[PROBES * 99 / 100],
        fresh[PROBES - 1],
    );
    eprintln!(
        "[{NAME}] freshness through the replica over {PROBES} probes under {} hits: \
         p50 {p50:.2?}, p99 {p99:.2?}, max {max:.2?}",
        records.len()
    );
    check(&mut failures, max <= Duration::from_secs(5), || {
        format!("freshness through the replica: max {max:?} (limit 5 s)")
    });

    // Exact: once the primary's projections are caught up, the replica's answer is the log's.
    let caught_up = db.wait_projections_caught_up(Duration::from_secs(60));
    check(&mut failures, caught_up.is_ok(), || {
        format!("{caught_up:?}")
    });
    let in_log: i64 = db.markers_in_log(&domain).values().sum();
    let pageviews = json!({"site_id": domain, "metrics": ["pageviews"], "date_range": "all"});
    let exact = harness::try_wait_for(
        "the replica's exact answer",
        Duration::from_secs(10),
        || first_metric(&query(node.port, &key, &pageviews).1) == Some(in_log),
    );
    eprintln!(
        "[{NAME}] pageviews in the log: {in_log}; the replica's report matched after {exact:.2?}"
    );
    check(&mut failures, exact.is_ok(), || {
        format!(
            "the replica never answered {in_log}: {:?}",
            query(node.port, &key, &pageviews)
        )
    });

    // The reports were read there: the node holds query connections to the replica.
    let on_replica = replica.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'footfall/{}/query'",
        node.pid()
    ));
    eprintln!(
        "[{NAME}] the node's connections to the replica: {}",
        on_replica.trim()
    );
    check(&mut failures, on_replica.trim() != "0", || {
        "the node has no connection to the replica".into()
    });

    // Losing the replica: every report is exact (from the primary) or a clear 503.
    replica.stop();
    let mut statuses = std::collections::BTreeMap::new();
    let mut wrong = Vec::new();
    for _ in 0..20 {
        let (status, body) = query(node.port, &key, &pageviews);
        *statuses.entry(status).or_insert(0) += 1;
        if status == 200 && first_metric(&body) != Some(in_log) {
            wrong.push(body);
        }
    }
    replica.start();
    eprintln!(
        "[{NAME}] with the replica down: statuses {statuses:?}, wrong answers {}",
        wrong.len()
    );
    check(&mut failures, wrong.is_empty(), || {
        format!("wrong answers: {wrong:?}")
    });
    check(
        &mut failures,
        statuses.keys().all(|s| *s == 200 || *s == 503) && statuses.contains_key(&200),
        || format!("with the replica down: {statuses:?} (expected 200 from the primary, or 503)"),
    );
    drop(node);
    assert!(
        failures.is_empty(),
        "[{NAME}] failures:\n  - {}",
        failures.join("\n  - ")
    );
}
