//! Conformance suite of the event-log port. Each check takes `&dyn EventLog`, so the same suite runs
//! against every adapter; the PostgreSQL adapter runs it here, on a fresh database per test.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall::eventlog::postgres::{analyze_if_stale, PgEventLog};
use footfall::eventlog::{
    EventData, EventLog, EventLogError, ExpectedState, Position, StreamAppend, StreamFilter,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{fresh_database, fresh_log};

fn event(n: usize) -> EventData {
    EventData {
        id: Uuid::now_v7(),
        event_type: "TestEvent".into(),
        schema_version: 1,
        data: format!(r#"{{"n":{n}}}"#).into_bytes(),
    }
}

fn append(stream: &str, expected: ExpectedState, events: Vec<EventData>) -> StreamAppend {
    StreamAppend {
        stream: stream.into(),
        expected,
        events,
    }
}

/// An append of `events` to `stream` in a task of its own, while the caller reads.
fn spawn_append(
    log: &Arc<dyn EventLog>,
    stream: &'static str,
    events: Vec<EventData>,
) -> actix_web::rt::task::JoinHandle<Vec<footfall::eventlog::AppendResult>> {
    let log = log.clone();
    actix_web::rt::spawn(async move {
        log.append(vec![append(stream, ExpectedState::Any, events)])
            .await
            .unwrap()
    })
}

pub async fn appends_get_revisions_and_positions(log: &dyn EventLog) {
    let r = log
        .append(vec![append(
            "test-a",
            ExpectedState::NoStream,
            (0..3).map(event).collect(),
        )])
        .await
        .unwrap();
    assert_eq!(r[0].revision, Some(2));
    let r = log
        .append(vec![append("test-b", ExpectedState::Any, vec![event(9)])])
        .await
        .unwrap();
    assert_eq!(r[0].revision, Some(0));

    let a = log.read_stream("test-a", 0, 100).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(a[1].data, br#"{"n":1}"#);
    assert!(a.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(log.read_stream("test-a", 2, 100).await.unwrap().len(), 1);
    assert!(log
        .read_stream("test-none", 0, 100)
        .await
        .unwrap()
        .is_empty());

    let all = log
        .read_all(Position::START, 100, &StreamFilter::all())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "global order"
    );
    assert_eq!(
        log.read_all(all[2].position, 100, &StreamFilter::all())
            .await
            .unwrap()
            .len(),
        1
    );
    let head = log.head().await.unwrap();
    assert_eq!(head.position, all[3].position);
    assert!(head.events.is_none_or(|n| n == 4));
}

pub async fn expected_state_conflicts_are_typed_and_atomic(log: &dyn EventLog) {
    log.append(vec![append(
        "test-x",
        ExpectedState::NoStream,
        vec![event(0)],
    )])
    .await
    .unwrap();

    let conflict = |r: Result<_, EventLogError>| match r {
        Err(EventLogError::WrongExpectedVersion { stream, actual, .. }) => (stream, actual),
        other => panic!("expected a conflict, got {other:?}"),
    };
    let (stream, actual) = conflict(
        log.append(vec![append(
            "test-x",
            ExpectedState::NoStream,
            vec![event(1)],
        )])
        .await,
    );
    assert_eq!((stream.as_str(), actual), ("test-x", Some(0)));
    conflict(
        log.append(vec![append(
            "test-x",
            ExpectedState::Revision(5),
            vec![event(1)],
        )])
        .await,
    );
    let (_, actual) = conflict(
        log.append(vec![append(
            "test-y",
            ExpectedState::StreamExists,
            vec![event(1)],
        )])
        .await,
    );
    assert_eq!(actual, None);

    // One conflicting stream fails the whole append: nothing of it is written.
    let before = log.head().await.unwrap();
    conflict(
        log.append(vec![
            append("test-z", ExpectedState::NoStream, vec![event(1)]),
            append("test-x", ExpectedState::NoStream, vec![event(2)]),
        ])
        .await,
    );
    assert_eq!(log.head().await.unwrap(), before);
    assert!(log.read_stream("test-z", 0, 10).await.unwrap().is_empty());

    let r = log
        .append(vec![append(
            "test-x",
            ExpectedState::Revision(0),
            vec![event(3)],
        )])
        .await
        .unwrap();
    assert_eq!(r[0].revision, Some(1));
    log.append(vec![append(
        "test-x",
        ExpectedState::StreamExists,
        vec![event(4)],
    )])
    .await
    .unwrap();
    assert_eq!(log.read_stream("test-x", 0, 10).await.unwrap().len(), 3);
}

pub async fn appends_are_idempotent_by_event_id(log: &dyn EventLog) {
    let events: Vec<EventData> = (0..5).map(event).collect();
    log.append(vec![append(
        "test-i",
        ExpectedState::NoStream,
        events.clone(),
    )])
    .await
    .unwrap();
    let head = log.head().await.unwrap();
    // The same events again, even with an expectation that no longer holds: a no-op success.
    let r = log
        .append(vec![append(
            "test-i",
            ExpectedState::NoStream,
            events.clone(),
        )])
        .await
        .unwrap();
    assert_eq!(r[0].revision, Some(4));
    assert_eq!(log.head().await.unwrap(), head);
    // A retry that mixes old and new events writes only the new ones.
    let mut mixed = events[3..].to_vec();
    mixed.push(event(5));
    log.append(vec![append("test-i", ExpectedState::Any, mixed)])
        .await
        .unwrap();
    let stored = log.read_stream("test-i", 0, 100).await.unwrap();
    assert_eq!(stored.len(), 6);
    assert_eq!(stored.iter().map(|e| e.id).collect::<HashSet<_>>().len(), 6);
}

/// Appends in flight at once that share events (a retry racing its first attempt), in any order:
/// each succeeds, none waits for another forever, and each event is stored once.
pub async fn concurrent_appends_of_the_same_events_store_each_once(log: Arc<dyn EventLog>) {
    const APPENDS: usize = 6;
    const EACH: usize = 4_000;
    let events: Vec<EventData> = (0..2 * EACH).map(event).collect();
    // Overlapping halves, every other one reversed, each split over two streams.
    let slice = |i: usize| {
        let from = i * EACH / APPENDS;
        &events[from..from + EACH]
    };
    // Connections for every append first, so that they run at once.
    let heads = (0..APPENDS).map(|_| log.head());
    futures_util::future::try_join_all(heads).await.unwrap();
    let appends = (0..APPENDS).map(|i| {
        let log = log.clone();
        let mut mine = slice(i).to_vec();
        if i % 2 == 1 {
            mine.reverse();
        }
        let (odd, even): (Vec<_>, Vec<_>) = mine.into_iter().partition(|e| e.id.as_u128() % 2 == 1);
        async move {
            log.append(vec![
                append("test-same", ExpectedState::Any, odd),
                append("test-other", ExpectedState::Any, even),
            ])
            .await
        }
    });
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(appends),
    )
    .await
    .expect("concurrent appends of the same events finish");
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "every append succeeds: {failed:?}");
    let mut stored: Vec<Uuid> = Vec::new();
    for stream in ["test-same", "test-other"] {
        let events = log.read_stream(stream, 0, 2 * EACH).await.unwrap();
        stored.extend(events.iter().map(|e| e.id));
    }
    let wanted: HashSet<Uuid> = (0..APPENDS)
        .flat_map(|i| slice(i).iter().map(|e| e.id))
        .collect();
    assert_eq!(stored.len(), wanted.len(), "each event is stored once");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), wanted);
}

/// `contains_all` is how a writer learns the outcome of an append it lost sight of: true only when
/// every one of the events is there.
pub async fn contains_all_tells_whether_every_event_is_in_the_log(log: &dyn EventLog) {
    let written: Vec<EventData> = (0..3).map(event).collect();
    log.append(vec![append("test-c", ExpectedState::Any, written.clone())])
        .await
        .unwrap();
    let ids = |events: &[EventData]| -> Vec<(String, Uuid)> {
        events.iter().map(|e| ("test-c".to_owned(), e.id)).collect()
    };
    assert!(log.contains_all(&ids(&written)).await.unwrap());
    let mut with_missing = written.clone();
    with_missing.push(event(9));
    assert!(!log.contains_all(&ids(&with_missing)).await.unwrap());
    assert!(!log.contains_all(&ids(&[event(10)])).await.unwrap());
}

pub async fn filters_select_categories(log: &dyn EventLog) {
    log.append(vec![
        append("hits-1", ExpectedState::Any, vec![event(0), event(1)]),
        append("property-1", ExpectedState::Any, vec![event(2)]),
        append("hitsother-1", ExpectedState::Any, vec![event(3)]),
    ])
    .await
    .unwrap();
    let only = |cats: &[&str]| {
        let filter = StreamFilter::categories(cats);
        async move { log.read_all(Position::START, 100, &filter).await.unwrap() }
    };
    let hits = only(&["hits"]).await;
    assert_eq!(
        hits.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(),
        vec!["hits-1", "hits-1"]
    );
    let props = only(&["property"]).await;
    assert_eq!(props.len(), 1);
    assert_eq!(props[0].stream, "property-1");
    assert_eq!(only(&["property", "hitsother"]).await.len(), 2);
}

/// A filter's selection (a projection's partition) keeps its share of its streams' events: a
/// read's limit counts the events it keeps, and a subscription passes over the others.
pub async fn selections_keep_their_share_of_the_events(log: Arc<dyn EventLog>) {
    log.append(vec![
        append("hits-sel", ExpectedState::Any, (0..10).map(event).collect()),
        append("property-sel", ExpectedState::Any, vec![event(10)]),
    ])
    .await
    .unwrap();
    let n = |data: &[u8]| serde_json::from_slice::<serde_json::Value>(data).unwrap()["n"].as_u64();
    let even = StreamFilter::categories(&["hits"])
        .selecting(Arc::new(move |e| n(e.data).is_some_and(|n| n % 2 == 0)));
    let numbers = |events: &[footfall::eventlog::RecordedEvent]| -> Vec<u64> {
        events.iter().filter_map(|e| n(&e.data)).collect()
    };

    let first = log.read_all(Position::START, 3, &even).await.unwrap();
    assert_eq!(
        numbers(&first),
        vec![0, 2, 4],
        "the limit counts kept events"
    );
    let all = log.read_all(Position::START, 100, &even).await.unwrap();
    assert_eq!(numbers(&all), vec![0, 2, 4, 6, 8]);
    assert!(all.iter().all(|e| e.stream == "hits-sel"));
    let rest = log.read_all(first[2].position, 100, &even).await.unwrap();
    assert_eq!(numbers(&rest), vec![6, 8]);

    let last_hit = log
        .read_all(Position::START, 100, &StreamFilter::categories(&["hits"]))
        .await
        .unwrap()
        .last()
        .unwrap()
        .position;
    let mut sub = log.subscribe(Position::START, even, 2).await.unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 5 {
        assert!(Instant::now() < deadline, "the kept events did not arrive");
        let batch = sub.next(Duration::from_millis(100)).await.unwrap();
        assert!(batch.len() <= 2);
        seen.extend(batch);
    }
    assert_eq!(numbers(&seen), vec![0, 2, 4, 6, 8]);
    // Caught up: the events passed over after the last kept one are behind it.
    while sub.position() < last_hit {
        assert!(
            Instant::now() < deadline,
            "the subscription did not pass the odd events"
        );
        assert!(sub
            .next(Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty());
    }

    // The other selection gets the other share; a read without one, every event.
    let odd = StreamFilter::categories(&["hits"])
        .selecting(Arc::new(move |e| n(e.data).is_some_and(|n| n % 2 == 1)));
    let odds = log.read_all(Position::START, 100, &odd).await.unwrap();
    assert_eq!(numbers(&odds), vec![1, 3, 5, 7, 9]);
    let hits = StreamFilter::categories(&["hits"]);
    let every = log.read_all(first[0].position, 100, &hits).await.unwrap();
    assert_eq!(numbers(&every), (1..10).collect::<Vec<_>>());
}

pub async fn subscriptions_catch_up_then_follow(log: Arc<dyn EventLog>) {
    log.append(vec![append(
        "hits-s",
        ExpectedState::Any,
        (0..10).map(event).collect(),
    )])
    .await
    .unwrap();
    log.append(vec![append(
        "property-s",
        ExpectedState::Any,
        vec![event(99)],
    )])
    .await
    .unwrap();

    let mut sub = log
        .subscribe(Position::START, StreamFilter::categories(&["hits"]), 4)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let batch = sub.next(Duration::from_millis(100)).await.unwrap();
        assert!(batch.len() <= 4);
        assert!(
            !batch.is_empty(),
            "history must be delivered without waiting"
        );
        seen.extend(batch);
    }
    assert_eq!(sub.position(), seen[9].position);
    assert!(
        sub.next(Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty(),
        "caught up"
    );

    // Live: an append while the subscriber waits wakes it.
    let live = spawn_append(&log, "hits-s", vec![event(10), event(11)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fresh = Vec::new();
    while fresh.len() < 2 {
        assert!(Instant::now() < deadline, "live events did not arrive");
        fresh.extend(sub.next(Duration::from_secs(1)).await.unwrap());
    }
    live.await.unwrap();
    assert_eq!(
        fresh.iter().map(|e| e.data.as_slice()).collect::<Vec<_>>(),
        vec![br#"{"n":10}"#.as_slice(), br#"{"n":11}"#.as_slice()]
    );

    // Lingering reads nothing: what was appended meanwhile comes with the next read.
    let at = sub.position();
    log.append(vec![append(
        "hits-s",
        ExpectedState::Any,
        vec![event(12), event(13)],
    )])
    .await
    .unwrap();
    sub.linger(1_000, Duration::from_millis(50)).await;
    assert_eq!(sub.position(), at, "lingering reads nothing");
    assert_eq!(sub.next(Duration::ZERO).await.unwrap().len(), 2);
}

/// A subscription gathering a batch (`linger`) wakes as soon as enough events may be there, not
/// at the end of its wait.
#[actix_web::test]
async fn pg_a_lingering_subscription_wakes_once_enough_events_are_appended() {
    let log: Arc<dyn EventLog> = Arc::new(fresh_log().await.0);
    let mut sub = log
        .subscribe(Position::START, StreamFilter::categories(&["hits"]), 100)
        .await
        .unwrap();
    assert!(sub.next(Duration::ZERO).await.unwrap().is_empty());
    for (round, n) in [(0, 3), (1, 5)] {
        let events = (0..n).map(|i| event(10 * round + i)).collect();
        let appended = spawn_append(&log, "hits-l", events);
        let waited = Instant::now();
        sub.linger(n, Duration::from_secs(60)).await;
        let waited = waited.elapsed();
        assert!(
            waited < Duration::from_secs(30),
            "round {round}: woke after {waited:?}"
        );
        appended.await.unwrap();
        assert_eq!(sub.next(Duration::ZERO).await.unwrap().len(), n);
    }
}

/// Appenders on separate connections (as separate processes would be) race while a subscriber
/// follows `$all`: it must see every event exactly once, in position order, with no gap.
pub async fn concurrent_appenders_never_make_a_subscriber_skip(
    log: Arc<dyn EventLog>,
    writers: Vec<Arc<dyn EventLog>>,
) {
    const APPENDS: usize = 40;
    const EVENTS: usize = 25;
    let total = writers.len() * APPENDS * EVENTS;

    let reader = actix_web::rt::spawn({
        let log = log.clone();
        async move {
            let mut sub = log
                .subscribe(Position::START, StreamFilter::all(), 64)
                .await
                .unwrap();
            let mut seen = Vec::with_capacity(total);
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.len() < total && Instant::now() < deadline {
                seen.extend(sub.next(Duration::from_millis(200)).await.unwrap());
            }
            seen
        }
    });
    let mut tasks = Vec::new();
    for (w, writer) in writers.into_iter().enumerate() {
        tasks.push(actix_web::rt::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..APPENDS {
                let events: Vec<EventData> = (0..EVENTS)
                    .map(|n| event(w * 1_000_000 + i * 1000 + n))
                    .collect();
                ids.extend(events.iter().map(|e| e.id));
                // Each writer touches its own stream and a shared one.
                let stream = if i % 2 == 0 {
                    format!("test-w{w}")
                } else {
                    "test-shared".to_owned()
                };
                writer
                    .append(vec![append(&stream, ExpectedState::Any, events)])
                    .await
                    .unwrap();
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    let seen = reader.await.unwrap();
    assert_eq!(
        seen.len(),
        total,
        "the subscriber missed or duplicated events"
    );
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "in global order"
    );
    assert_eq!(seen.iter().map(|e| e.id).collect::<HashSet<_>>(), written);
    // Revisions of the shared stream are dense too.
    let shared = log.read_stream("test-shared", 0, total).await.unwrap();
    assert_eq!(
        shared.iter().map(|e| e.revision).collect::<Vec<_>>(),
        (0..shared.len() as u64).collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn pg_appends_get_revisions_and_positions() {
    appends_get_revisions_and_positions(&fresh_log().await.0).await;
}

#[actix_web::test]
async fn pg_expected_state_conflicts_are_typed_and_atomic() {
    expected_state_conflicts_are_typed_and_atomic(&fresh_log().await.0).await;
}

#[actix_web::test]
async fn pg_appends_are_idempotent_by_event_id() {
    appends_are_idempotent_by_event_id(&fresh_log().await.0).await;
}

#[actix_web::test]
async fn pg_contains_all_tells_whether_every_event_is_in_the_log() {
    contains_all_tells_whether_every_event_is_in_the_log(&fresh_log().await.0).await;
}

/// An append whose COMMIT is still in flight holds the head's lock: `contains_all` answers only
/// once it has finished, so a writer that lost its connection during COMMIT learns the truth.
#[actix_web::test]
async fn pg_contains_all_waits_for_an_append_in_flight() {
    use sqlx::Connection;
    let (log, pool) = fresh_log().await;
    let url = pool
        .connect_options()
        .get_database()
        .map(str::to_owned)
        .unwrap();
    let mut writer =
        sqlx::PgConnection::connect(&format!("{}/{url}", crate::helpers::server_url()))
            .await
            .unwrap();
    // What an append does before its COMMIT: the head's lock, then the event's id (and its batch,
    // which `contains_all` does not read).
    let id = Uuid::now_v7();
    sqlx::query("BEGIN").execute(&mut writer).await.unwrap();
    sqlx::query("SELECT position FROM event_log_head FOR UPDATE")
        .execute(&mut writer)
        .await
        .unwrap();
    sqlx::query("INSERT INTO event_ids (event_id) VALUES ($1)")
        .bind(id)
        .execute(&mut writer)
        .await
        .unwrap();
    let target = [("test-f".to_owned(), id)];
    let lookup = async { (log.contains_all(&target).await, Instant::now()) };
    let commit = async {
        // The lookup is under way meanwhile; it must not answer before the COMMIT.
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let committed = Instant::now();
        sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
        committed
    };
    let ((found, answered), committed) = futures_util::future::join(lookup, commit).await;
    assert!(found.unwrap(), "the committed event is found");
    assert!(
        answered >= committed,
        "the lookup answered only after the commit"
    );
}

#[actix_web::test]
async fn pg_concurrent_appends_of_the_same_events_store_each_once() {
    concurrent_appends_of_the_same_events_store_each_once(Arc::new(fresh_log().await.0)).await;
}

#[actix_web::test]
async fn pg_filters_select_categories() {
    filters_select_categories(&fresh_log().await.0).await;
}

#[actix_web::test]
async fn pg_selections_keep_their_share_of_the_events() {
    selections_keep_their_share_of_the_events(Arc::new(fresh_log().await.0)).await;
}

#[actix_web::test]
async fn pg_subscriptions_catch_up_then_follow() {
    subscriptions_catch_up_then_follow(Arc::new(fresh_log().await.0)).await;
}

#[actix_web::test]
async fn pg_concurrent_appenders_never_make_a_subscriber_skip() {
    let url = fresh_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    footfall::startup::migrate(&pool).await.unwrap();
    // Each writer has a pool (connections) of its own, like a separate process.
    let mut writers: Vec<Arc<dyn EventLog>> = Vec::new();
    for _ in 0..6 {
        writers.push(Arc::new(PgEventLog::new(
            PgPool::connect(&url).await.unwrap(),
        )));
    }
    concurrent_appenders_never_make_a_subscriber_skip(Arc::new(PgEventLog::new(pool)), writers)
        .await;
}

/// Two footfall server processes append to one log at once, each loaded by a load-generator
/// process, while a subscriber follows `$all`: it sees every event once, in dense position order,
/// and exactly the acked hits.
#[actix_web::test]
async fn two_server_processes_appending_at_once_leave_no_gap() {
    use std::process::{Child, Command, Stdio};

    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
    let url = fresh_database().await;
    let start = |roles: &str| {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_footfall"))
            .args(["serve", "--roles", roles])
            .env("DATABASE_URL", &url)
            .env("FOOTFALL_LISTEN", format!("127.0.0.1:{port}"))
            .env("FOOTFALL_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
            .env("FOOTFALL_WORKERS", "1")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        (Server(child), format!("http://127.0.0.1:{port}"))
    };
    let client = awc::Client::default();
    let wait_healthy = |client: &awc::Client, base: &str| {
        let (client, url) = (client.clone(), format!("{base}/healthz"));
        crate::helpers::eventually(Duration::from_secs(30), "the server to serve", move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
            }
        })
    };
    let (_a, a) = start("collect,project,admin");
    wait_healthy(&client, &a).await;
    let (_b, b) = start("collect,admin");
    wait_healthy(&client, &b).await;

    let pool = PgPool::connect(&url).await.unwrap();
    let log: Arc<dyn EventLog> = Arc::new(PgEventLog::new(pool.clone()));
    let follower = log.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let reader = actix_web::rt::spawn(async move {
        let mut sub = follower
            .subscribe(Position::START, StreamFilter::all(), 100)
            .await
            .unwrap();
        let mut seen = Vec::new();
        loop {
            // Read before the read: once it is set, every append has committed, so an empty
            // batch from a read that started after it means everything has been seen.
            let finishing = stop.load(std::sync::atomic::Ordering::SeqCst);
            let batch = sub.next(Duration::from_millis(200)).await.unwrap();
            if batch.is_empty() && finishing {
                return seen;
            }
            seen.extend(batch);
        }
    });

    // Both generators use the same five properties; the first registers them through server A.
    let load = |base: String, hits: &str| {
        let args: Vec<String> = [
            "loadgen",
            "--url",
            &base,
            "--admin-token",
            crate::helpers::ADMIN_TOKEN,
            "--properties",
            "5",
            "--concurrency",
            "16",
            "--hits",
            hits,
            "--duration",
            "120",
            "--protocols",
            "plausible",
            "--json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        actix_web::rt::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_footfall"))
                .args(&args)
                .env("RUST_LOG", "error")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        })
    };
    let warmup = load(a.clone(), "10").await.unwrap();
    let (ra, rb) = tokio::join!(load(a.clone(), "1500"), load(b.clone(), "1500"));
    let acked: u64 = [warmup, ra.unwrap(), rb.unwrap()]
        .iter()
        .map(|r| r["acked"].as_u64().unwrap())
        .sum();
    assert_eq!(acked, 3010);

    // Every append has committed: the follower drains what is left and stops.
    let head = log.head().await.unwrap().position.0;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let positions: Vec<u64> = seen.iter().map(|e| e.position.0).collect();
    assert_eq!(
        positions,
        (1..=head).collect::<Vec<_>>(),
        "dense, ordered, nothing skipped or repeated"
    );
    assert_eq!(
        seen.iter()
            .filter(|e| e.event_type == "HitRecorded")
            .count() as u64,
        acked
    );
}

/// The same conformance suite against EventStoreDB/KurrentDB. No server can be installed on our
/// build machines, so these run only on request, against a fresh, empty server:
/// `FOOTFALL_TEST_KURRENTDB_URL=esdb://127.0.0.1:2113?tls=false cargo test --features kurrentdb -- --ignored kurrentdb`
/// (for example with `docker run --rm -p 2113:2113 -e KURRENTDB_INSECURE=true -e KURRENTDB_MEM_DB=true docker.kurrent.io/kurrent-latest/kurrentdb`).
#[cfg(feature = "kurrentdb")]
mod kurrentdb {
    use super::*;
    use footfall::eventlog::kurrentdb::KurrentEventLog;

    fn log() -> Arc<dyn EventLog> {
        let url =
            std::env::var("FOOTFALL_TEST_KURRENTDB_URL").expect("set FOOTFALL_TEST_KURRENTDB_URL");
        Arc::new(KurrentEventLog::connect(&url).unwrap())
    }

    #[actix_web::test]
    #[ignore = "needs a fresh KurrentDB server (FOOTFALL_TEST_KURRENTDB_URL)"]
    async fn kurrentdb_conformance() {
        // In this order on one fresh server: the first check counts everything in `$all`.
        let shared = log();
        appends_get_revisions_and_positions(&*shared).await;
        expected_state_conflicts_are_typed_and_atomic_per_stream(&*shared).await;
        appends_are_idempotent_by_event_id(&*shared).await;
        contains_all_tells_whether_every_event_is_in_the_log(&*shared).await;
        subscriptions_catch_up_then_follow(shared.clone()).await;
        selections_keep_their_share_of_the_events(shared).await;
    }

    /// EventStoreDB appends each stream on its own: the single-stream part of the check.
    async fn expected_state_conflicts_are_typed_and_atomic_per_stream(log: &dyn EventLog) {
        log.append(vec![append(
            "test-x",
            ExpectedState::NoStream,
            vec![event(0)],
        )])
        .await
        .unwrap();
        let r = log
            .append(vec![append(
                "test-x",
                ExpectedState::NoStream,
                vec![event(1)],
            )])
            .await;
        assert!(
            matches!(
                r,
                Err(EventLogError::WrongExpectedVersion {
                    actual: Some(0),
                    ..
                })
            ),
            "{r:?}"
        );
        let r = log
            .append(vec![append(
                "test-x",
                ExpectedState::Revision(0),
                vec![event(2)],
            )])
            .await
            .unwrap();
        assert_eq!(r[0].revision, Some(1));
    }
}

/// A log written before record batches (one JSON row per event) is converted by `migrate`: every
/// position, stream, revision, id and byte of data is kept, and old hits still decode.
#[actix_web::test]
async fn a_log_of_json_rows_is_converted_into_record_batches() {
    use footfall::domain::Event;
    let url = fresh_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 20261201000002)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let hit = r#"{"property_id":"0190c7e6-5b8f-7000-8000-000000000001","occurred_at":"2026-11-20T10:00:00Z","received_at":"2026-11-20T10:00:01Z","name":"pageview","url":"https://shop.example/","visitor_key":"00000000000000ff","interactive":true,"protocol":"plausible"}"#;
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    let rows = [
        ("property-1", 0, "DomainClaimed", r#"{"n":1}"#),
        ("hits-1", 0, "HitRecorded", hit),
        ("hits-1", 1, "HitRecorded", hit),
        ("property-1", 1, "GoalsSet", r#"{"n":2}"#),
        ("hits-2", 0, "HitRecorded", hit),
    ];
    for (i, (stream, revision, event_type, data)) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (position, stream_id, revision, event_id, event_type, schema_version, data) \
             VALUES ($1, $2, $3, $4, $5, 1, $6::json)",
        )
        .bind(i as i64 + 1)
        .bind(stream)
        .bind(revision)
        .bind(ids[i])
        .bind(event_type)
        .bind(data)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO event_streams (stream_id, revision) VALUES ('property-1', 1), ('hits-1', 1), ('hits-2', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE event_log_head SET position = 5")
        .execute(&pool)
        .await
        .unwrap();

    footfall::startup::migrate(&pool).await.unwrap();
    let gone: bool = sqlx::query_scalar("SELECT to_regclass('events') IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(gone, "the old table is dropped");
    let log = PgEventLog::new(pool.clone());
    let all = log
        .read_all(Position::START, 100, &StreamFilter::all())
        .await
        .unwrap();
    /// Position, stream, revision, id, type, data.
    type Stored<'a> = (u64, &'a str, u64, Uuid, &'a str, &'a [u8]);
    let seen: Vec<Stored<'_>> = all
        .iter()
        .map(|e| {
            (
                e.position.0,
                e.stream.as_str(),
                e.revision,
                e.id,
                e.event_type.as_str(),
                e.data.as_slice(),
            )
        })
        .collect();
    let expected: Vec<Stored<'_>> = rows
        .iter()
        .enumerate()
        .map(|(i, (s, r, t, d))| (i as u64 + 1, *s, *r as u64, ids[i], *t, d.as_bytes()))
        .collect();
    assert_eq!(seen, expected);
    assert!(matches!(all[1].decode().unwrap(), Event::HitRecorded(_)));
    let hits = log
        .read_all(Position::START, 100, &StreamFilter::categories(&["hits"]))
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|e| e.position.0).collect::<Vec<_>>(),
        [2, 3, 5]
    );
    assert_eq!(
        log.read_stream("hits-1", 1, 10).await.unwrap()[0].position,
        Position(3)
    );
    // And the log goes on from there.
    log.append(vec![append(
        "hits-2",
        ExpectedState::Revision(0),
        vec![event(9)],
    )])
    .await
    .unwrap();
    assert_eq!(log.head().await.unwrap().position, Position(6));
    assert!(log
        .contains_all(&[("hits-1".to_owned(), ids[2])])
        .await
        .unwrap());
}

/// The log's statistics are refreshed once a tenth of it (at least 1,000 batches) is new, for the
/// columns its reads' conditions name only, and not again until as much more is new.
#[actix_web::test]
async fn pg_the_logs_statistics_are_refreshed_as_it_grows_for_the_columns_reads_filter_on() {
    let (log, pool) = fresh_log().await;
    let analyze = || async { analyze_if_stale(&pool).await.unwrap() };
    assert!(!analyze().await, "an empty log is not stale");
    const BATCHES: usize = 1_100;
    for n in 0..BATCHES {
        log.append(vec![append("test-s", ExpectedState::Any, vec![event(n)])])
            .await
            .unwrap();
    }
    // The server counts the inserted rows once their transactions' statistics are flushed.
    crate::helpers::eventually(Duration::from_secs(30), "the log found stale", || async {
        analyze().await.then_some(())
    })
    .await;
    let rows: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'event_batches'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats WHERE tablename = 'event_batches' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, BATCHES as f32);
    assert_eq!(
        columns,
        ["category", "first_position", "last_position", "streams"]
    );
    assert!(!analyze().await, "analysed again with nothing new");
}
