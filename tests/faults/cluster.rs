//! Several real `footfall` nodes on one database, as `docker-compose.yml` runs them: the leading
//! project node killed, then frozen, under load; and Debian's nginx, with the repository's
//! `deploy/nginx.conf`, in front of the nodes of `docker-compose.yml` (two collect nodes, a query
//! node, an admin node and two project nodes), through kills and a rolling restart.

use std::time::Duration;

use crate::harness::{self, Db, Server};
use crate::http::Conn;
use crate::load::{Load, Outcome, Record, Tally};
use crate::nginx::{Nginx, Upstreams};
use crate::{
    check, check_read_model, cluster, print_log_warnings, serial, server_log, setup,
    ACKS_BETWEEN_FAULTS, CLIENTS,
};

/// How soon a standby project node must take over from a leader that died or froze.
const TAKEOVER: Duration = Duration::from_secs(5);
const PROJECT: &[(&str, &str)] = &[("FOOTFALL_ROLES", "project")];

/// Whether `node` leads every slot of every live generation.
fn leads(db: &Db, node: &Server) -> bool {
    let (led, slots) = db.slots_led_by(node.pid());
    slots > 0 && led == slots
}

/// Whether both nodes lead some slots, and as many as the other give or take one per generation.
fn shared(db: &Db, a: &Server, b: &Server) -> bool {
    let ((led_a, slots), (led_b, _)) = (db.slots_led_by(a.pid()), db.slots_led_by(b.pid()));
    led_a > 0 && led_b > 0 && led_a + led_b == slots
}

/// Waits for two project nodes to share the slots after `event`, prints how long that took and
/// the split, and checks it against [`TAKEOVER`].
fn check_shared(
    db: &Db,
    a: &Server,
    b: &Server,
    event: &str,
    name: &str,
    failures: &mut Vec<String>,
) {
    let took = harness::try_wait_for("the nodes to share the slots", TAKEOVER * 3, || {
        shared(db, a, b)
    });
    let ((led_a, slots), (led_b, _)) = (db.slots_led_by(a.pid()), db.slots_led_by(b.pid()));
    eprintln!(
        "[{name}] {event}: the nodes lead {led_a} and {led_b} of {slots} slots after {took:.2?}"
    );
    check(
        failures,
        took.as_ref().is_ok_and(|t| *t <= TAKEOVER),
        || format!("sharing after {event}: {took:?} (limit {TAKEOVER:?})"),
    );
}

/// Waits for `node` to lead after `fault`, prints how long that took, and checks it against
/// [`TAKEOVER`].
fn check_takeover(db: &Db, node: &Server, fault: &str, name: &str, failures: &mut Vec<String>) {
    let took = harness::try_wait_for("the standby to lead", TAKEOVER * 3, || leads(db, node));
    eprintln!("[{name}] {fault}: the standby led every slot after {took:.2?}");
    check(
        failures,
        took.as_ref().is_ok_and(|t| *t <= TAKEOVER),
        || format!("takeover after {fault}: {took:?} (limit {TAKEOVER:?})"),
    );
}

#[test]
fn the_leading_project_node_killed_then_frozen_hands_over_within_5_s_exactly_once() {
    const NAME: &str = "project failover";
    let _serial = serial();
    let cluster = cluster();
    let (db, domain) = setup(&cluster);
    let log = server_log("failover");
    let mut failures = Vec::new();

    let collect = Server::start(
        &db,
        harness::free_port(),
        &[("FOOTFALL_ROLES", "collect,query,admin")],
        &log,
    );
    let mut first = Server::start(&db, harness::free_port(), PROJECT, &log);
    harness::wait_for(
        "the first project node to lead",
        Duration::from_secs(30),
        || leads(&db, &first),
    );
    let second = Server::start(&db, harness::free_port(), PROJECT, &log);
    check_shared(
        &db,
        &first,
        &second,
        "a second node started",
        NAME,
        &mut failures,
    );
    let load = Load::start(collect.port, &domain, CLIENTS);
    load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
        .unwrap();

    // The leader dies: its sessions close, and the standby's next try takes the locks.
    let status = first.kill9();
    let fault = format!("kill -9 of the leader ({status})");
    check_takeover(&db, &second, &fault, NAME, &mut failures);
    load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
        .unwrap();

    // The new leader freezes: its sessions stay open, so only its lapsed lease tells. It froze
    // in the middle of its housekeeping, holding the generations lock (held here from the moment
    // it froze, before the standby started): that must hold up neither the standby's start nor
    // its takeover.
    let held = db.hold_generations_lock();
    first = Server::start(&db, harness::free_port(), PROJECT, &log);
    eprintln!("[{NAME}] SIGSTOP of the leader at {}", chrono::Utc::now());
    second.signal("STOP");
    check_takeover(&db, &first, "SIGSTOP of the leader", NAME, &mut failures);
    db.release(held);
    load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
        .unwrap();
    // Thawed, the old leader finds its sessions ended, and takes its share again.
    second.signal("CONT");
    check_shared(
        &db,
        &first,
        &second,
        "the frozen node thawed",
        NAME,
        &mut failures,
    );
    load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30))
        .unwrap();
    let (records, refused) = load.stop();

    let markers = db.markers_in_log(&domain);
    let tally = Tally::new(&records, refused, &markers);
    tally.print(NAME);
    check_read_model(&db, &domain, markers.values().sum(), NAME, &mut failures);
    drop((collect, first, second));
    if !failures.is_empty() {
        print_log_warnings(&log);
    }
    tally.assert_core(NAME, failures);
}

/// A request: method, path, headers, body, and the statuses it may get.
type Probe<'a> = (
    &'static str,
    String,
    Vec<(&'a str, &'a str)>,
    String,
    &'static [u16],
);

/// One request of each protocol and API through `port`, with its status and the statuses it may
/// have.
fn every_protocol(port: u16, domain: &str, db: &Db) -> Vec<(String, u16, &'static [u16])> {
    let (id, mid, secret, read_key) = db.credentials(domain);
    let json = ("Content-Type", "application/json");
    let ua = (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
    );
    let enc = |path: &str| format!("https%3A%2F%2F{domain}%2F{path}");
    let mp = format!("measurement_id={mid}&api_secret={secret}");
    let mp_body = format!(
        r#"{{"client_id":"1.2","events":[{{"name":"page_view","params":{{"page_location":"https://{domain}/p/mp"}}}}]}}"#
    );
    let bearer = format!("Bearer {read_key}");
    let admin = format!("Bearer {}", harness::ADMIN_TOKEN);
    let requests: Vec<Probe> = vec![
        (
            "POST",
            "/api/event".into(),
            vec![ua, ("Content-Type", "text/plain")],
            format!(r#"{{"n":"pageview","u":"https://{domain}/p/plausible","d":"{domain}"}}"#),
            &[202],
        ),
        (
            "POST",
            "/api/send".into(),
            vec![ua, json],
            format!(
                r#"{{"type":"event","payload":{{"website":"{id}","hostname":"{domain}","url":"/p/umami"}}}}"#
            ),
            &[200],
        ),
        (
            "GET",
            format!(
                "/g/collect?v=2&tid={mid}&cid=1.2&sid=1700000001&dl={}&en=page_view",
                enc("p%2Fgtag")
            ),
            vec![ua],
            String::new(),
            &[204],
        ),
        (
            "POST",
            format!(
                "/g/collect?v=2&tid={mid}&cid=1.2&sid=1700000001&dl={}",
                enc("p%2Fgtag-batch")
            ),
            vec![ua],
            "en=page_view\nen=scroll".into(),
            &[204],
        ),
        (
            "POST",
            format!("/mp/collect?{mp}"),
            vec![json],
            mp_body.clone(),
            &[204],
        ),
        (
            "POST",
            format!("/debug/mp/collect?{mp}"),
            vec![json],
            mp_body,
            &[200],
        ),
        (
            "GET",
            "/js/footfall.js".into(),
            vec![],
            String::new(),
            &[200],
        ),
        (
            "POST",
            "/api/v2/query".into(),
            vec![json, ("Authorization", bearer.as_str())],
            format!(r#"{{"site_id":"{domain}","metrics":["pageviews"],"date_range":"all"}}"#),
            &[200],
        ),
        (
            "GET",
            format!("/api/v1/stats/aggregate?site_id={domain}&period=day&metrics=visitors"),
            vec![("Authorization", bearer.as_str())],
            String::new(),
            &[200],
        ),
        (
            "GET",
            format!("/dashboard/{domain}"),
            vec![],
            String::new(),
            &[200],
        ),
        (
            "GET",
            "/api/admin/properties".into(),
            vec![("Authorization", admin.as_str())],
            String::new(),
            &[200],
        ),
    ];
    requests
        .into_iter()
        .map(|(method, path, headers, body, expected)| {
            let status = Conn::open(port)
                .and_then(|mut c| {
                    c.send(method, &path, &headers, body.as_bytes())?;
                    c.receive()
                })
                .map_or(0, |a| a.status);
            (
                format!("{method} {}", path.split('?').next().unwrap_or("")),
                status,
                expected,
            )
        })
        .collect()
}

/// Requests that nginx had sent to a node as it was killed, or sent on its connections just after
/// (before nginx saw it die), get nginx's 502: their outcome is unknown (the node may have
/// appended the hit before it died), as with a connection lost without a proxy. They count as
/// unanswered. nginx shuns the dead node after its first error, so they all come within a second.
fn unknown_at_kills(records: &mut [Record], kills: &[Duration]) -> usize {
    const SEEN_DEAD: Duration = Duration::from_secs(1);
    let mut n = 0;
    for r in records.iter_mut() {
        let straddles = kills
            .iter()
            .any(|k| r.sent <= *k + SEEN_DEAD && *k <= r.done);
        if straddles && matches!(r.outcome, Outcome::Status { code: 502, .. }) {
            r.outcome = Outcome::NoAnswer("502 from nginx: the node died mid-request".into());
            n += 1;
        }
    }
    n
}

/// `node` stopped with SIGTERM (it drains) and started again on its port, as the README's rolling
/// restart says: a collect node is first marked `down` in nginx (reloaded), so that no request can
/// meet it closing its connections, and is back once nginx sends it hits again.
fn restart(db: &Db, nginx: &Nginx, mut node: Server, roles: &str, log: &std::path::Path) -> Server {
    let collect = roles.contains("collect");
    if collect {
        nginx.mark_down(Some(node.port));
    }
    node.sigterm();
    let exited = node.wait_exit(Duration::from_secs(15));
    assert!(
        exited.is_some(),
        "a node did not exit within 15 s of SIGTERM"
    );
    let node = Server::start(
        db,
        node.port,
        &[("FOOTFALL_ROLES", roles)],
        &log.to_path_buf(),
    );
    if collect {
        nginx.mark_down(None);
        let back = harness::wait_for(
            "nginx to send hits to the restarted node",
            Duration::from_secs(30),
            || node.hits_appended() > 0,
        );
        eprintln!("  nginx sent hits to the restarted collect node after {back:.2?}");
    }
    node
}

#[test]
fn nginx_in_front_of_the_cluster_routes_every_protocol_and_loses_nothing_through_kills_and_a_rolling_restart(
) {
    const NAME: &str = "nginx cluster";
    let _serial = serial();
    let cluster = cluster();
    let (db, domain) = setup(&cluster);
    let other = harness::migrate_and_register(&db);
    let log = server_log("nginx");
    let mut failures = Vec::new();
    let node = |roles: &str| {
        Server::start(
            &db,
            harness::free_port(),
            &[("FOOTFALL_ROLES", roles)],
            &log,
        )
    };

    let mut collect_1 = node("collect");
    let mut collect_2 = node("collect");
    let mut query = node("query");
    let mut admin = node("admin");
    let mut project_1 = node("project");
    harness::wait_for("a project node to lead", Duration::from_secs(30), || {
        leads(&db, &project_1)
    });
    let mut project_2 = node("project");
    let nginx = Nginx::start(
        &Upstreams {
            collect_1: collect_1.port,
            collect_2: collect_2.port,
            query: query.port,
            admin: admin.port,
        },
        &log,
    );

    // Every protocol and API is routed to a node that serves it.
    for (request, status, expected) in every_protocol(nginx.port, &other, &db) {
        eprintln!("[{NAME}] {request}: {status}");
        check(&mut failures, expected.contains(&status), || {
            format!("{request} through nginx answered {status}, expected {expected:?}")
        });
    }

    let load = Load::start_through_proxy(nginx.port, &domain, CLIENTS);
    let acks = |what: &str| {
        let waited = load.wait_acks(ACKS_BETWEEN_FAULTS, Duration::from_secs(30));
        assert!(waited.is_ok(), "[{NAME}] after {what}: {waited:?}");
    };
    acks("start");
    let mut kills = vec![load.now()];
    collect_1.kill9();
    eprintln!("[{NAME}] kill -9 of a collect node at {:.2?}", kills[0]);
    acks("a collect node's death");
    kills.push(load.now());
    project_1.kill9();
    let fault = "kill -9 of a project node";
    check_takeover(&db, &project_2, fault, NAME, &mut failures);
    acks("a project node's death");

    // Rolling restart: the dead nodes come back, then every node in turn is stopped with SIGTERM
    // and started again, under load.
    collect_1 = Server::start(&db, collect_1.port, &[("FOOTFALL_ROLES", "collect")], &log);
    project_1 = Server::start(&db, project_1.port, PROJECT, &log);
    harness::wait_for(
        "nginx to send hits to the collect node again",
        Duration::from_secs(30),
        || collect_1.hits_appended() > 0,
    );
    let rolling_from = load.now();
    collect_1 = restart(&db, &nginx, collect_1, "collect", &log);
    acks("restarting collect-1");
    collect_2 = restart(&db, &nginx, collect_2, "collect", &log);
    acks("restarting collect-2");
    query = restart(&db, &nginx, query, "query", &log);
    acks("restarting the query node");
    admin = restart(&db, &nginx, admin, "admin", &log);
    acks("restarting the admin node");
    project_2 = restart(&db, &nginx, project_2, "project", &log);
    acks("restarting project-2");
    project_1 = restart(&db, &nginx, project_1, "project", &log);
    acks("restarting project-1");
    let rolling_to = load.now();
    let stale_retries = load.stale_retries();
    let (mut records, refused) = load.stop();

    let unknown = unknown_at_kills(&mut records, &kills);
    let failed_in_rolling: Vec<&Record> = records
        .iter()
        .filter(|r| r.sent >= rolling_from && r.sent <= rolling_to)
        .filter(|r| match r.outcome {
            Outcome::Status { code, .. } => !(200..300).contains(&code) && code != 503,
            Outcome::NoAnswer(_) => true,
        })
        .collect();
    eprintln!(
        "[{NAME}] requests in flight at a killed node (nginx 502, outcome unknown): {unknown}; \
         requests failed during the rolling restart: {}; hits sent again after nginx closed an idle \
         keep-alive connection (reloads): {stale_retries}",
        failed_in_rolling.len()
    );
    check(&mut failures, failed_in_rolling.is_empty(), || {
        format!(
            "the rolling restart failed requests: {:?}",
            failed_in_rolling.iter().take(5).collect::<Vec<_>>()
        )
    });
    let markers = db.markers_in_log(&domain);
    let tally = Tally::new(&records, refused, &markers);
    tally.print(NAME);
    check(&mut failures, tally.no_answers() == unknown, || {
        format!(
            "{} requests got no answer besides the {unknown} at the kills",
            tally.no_answers() - unknown
        )
    });
    check_read_model(&db, &domain, markers.values().sum(), NAME, &mut failures);
    drop(nginx);
    drop((collect_1, collect_2, query, admin, project_1, project_2));
    if !failures.is_empty() {
        print_log_warnings(&log);
    }
    tally.assert_core(NAME, failures);
}
