//! Projections: status, zero-downtime rebuilds that give identical answers, and exactly-once
//! processing across a crash in the middle of a batch.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    eventually, hit_event, spawn_app, spawn_app_on, spawn_app_with, Seed, TestApp, ADMIN_TOKEN,
};

/// A deterministic, non-trivial data set: `n` hits over three days for two properties, with
/// returning visitors, several pages, custom events and props.
async fn seeded(n: usize) -> (TestApp, Value) {
    let app = spawn_app().await;
    let (p, hits) = data_set(&app, n).await;
    app.seed(hits).await;
    app.wait_projected().await;
    (app, p)
}

/// A deterministic pseudo-random sequence from `seed`: each call gives a number below its bound.
fn random(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |m| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    }
}

/// Registers the data set's two properties and returns the first and the hits.
async fn data_set(app: &TestApp, n: usize) -> (Value, Vec<footfall::domain::HitRecorded>) {
    let p = app.register("shop.example", "America/New_York").await;
    let q = app.register("other.example", "Asia/Kolkata").await;
    let mut next = random(42);
    let mut hits = Vec::with_capacity(n);
    for i in 0..n {
        let visitor = next(400);
        let minute = (i as u64 * 3 * 24 * 60) / n as u64 + next(20);
        let at = format!(
            "2026-03-{:02}T{:02}:{:02}:00Z",
            1 + minute / (24 * 60),
            (minute / 60) % 24,
            minute % 60
        );
        let page = format!("https://shop.example/p{}", next(25));
        let name = if next(10) == 0 { "Signup" } else { "pageview" };
        let plan = ["free", "pro", "team"][next(3) as usize];
        let props: &[(&str, &str)] = if name == "Signup" {
            &[("plan", plan)]
        } else {
            &[]
        };
        let target = if next(5) == 0 { &q } else { &p };
        hits.push(hit_event(
            target,
            &Seed {
                visitor,
                at: &at,
                name,
                url: &page,
                props,
            },
        ));
    }
    (p, hits)
}

fn dashboard(site: &str) -> Vec<Value> {
    let range = json!(["2026-03-01", "2026-03-04"]);
    let q = |metrics: Value, dims: Value, filters: Value| json!({"site_id": site, "metrics": metrics, "date_range": range, "dimensions": dims, "filters": filters});
    vec![
        q(
            json!([
                "visitors",
                "visits",
                "pageviews",
                "events",
                "bounce_rate",
                "visit_duration",
                "views_per_visit"
            ]),
            json!([]),
            json!([]),
        ),
        q(
            json!(["visitors", "visits", "pageviews", "bounce_rate"]),
            json!(["time:day"]),
            json!([]),
        ),
        q(
            json!(["visitors", "pageviews"]),
            json!(["time:hour"]),
            json!([]),
        ),
        q(
            json!(["visitors", "pageviews", "percentage"]),
            json!(["event:page"]),
            json!([]),
        ),
        q(
            json!(["visitors", "events"]),
            json!(["event:props:plan"]),
            json!([]),
        ),
        q(
            json!(["visitors", "visits", "bounce_rate"]),
            json!(["time:day"]),
            json!([["contains", "event:page", ["p1"]]]),
        ),
        q(
            json!(["visitors", "visits"]),
            json!(["event:page"]),
            json!([["is", "event:name", ["Signup"]]]),
        ),
    ]
}

async fn answers(app: &TestApp, queries: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for q in queries {
        let res = app.query(ADMIN_TOKEN, q).await;
        assert_eq!(res.status, 200, "{q}: {}", res.text);
        out.push(res.body["results"].clone());
    }
    out
}

#[actix_web::test]
async fn status_reports_generation_checkpoint_and_lag() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    app.post_event(
        &json!({"n": "pageview", "u": "https://shop.example/", "d": "shop.example"}),
        &[],
    )
    .await;
    app.wait_projected().await;
    let hits = app.projection_status("hits").await;
    assert_eq!(hits["generation"], 1);
    assert_eq!(hits["state"], "live");
    assert_eq!(hits["head"], 3);
    assert_eq!(hits["checkpoint"], 3);
    assert_eq!(hits["lag"], 0);
    assert_eq!(hits["eta_seconds"], 0.0);
    assert_eq!(hits["rebuild"], Value::Null);
    // A projection's checkpoint passes over events of other streams once it is caught up.
    assert_eq!(app.projection_status("properties").await["checkpoint"], 3);

    let res = app
        .admin_post("/api/admin/projections/nope/rebuild", &json!({}))
        .await;
    assert_eq!((res.status, res.code()), (404, "projection_not_found"));
    let res = app
        .request(
            "POST",
            "/api/admin/projections/hits/rebuild",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, 401);
    let res = app.admin_get("/metrics").await;
    assert!(
        res.text.contains("footfall_projection_lag_events"),
        "lag is exported as a metric"
    );
}

/// Reads go on during a rebuild, never fail, and return exactly what they returned before; after
/// the switch the new generation serves the same answers.
#[actix_web::test]
async fn a_rebuild_keeps_serving_identical_answers() {
    let (app, _) = seeded(20_000).await;
    let queries = dashboard("shop.example");
    let before = answers(&app, &queries).await;
    assert!(
        before[3].as_array().unwrap().len() >= 20,
        "a non-trivial breakdown"
    );

    let res = app
        .admin_post("/api/admin/projections/hits/rebuild", &json!({}))
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body["generation"], 2);
    let again = app
        .admin_post("/api/admin/projections/hits/rebuild", &json!({}))
        .await;
    assert_eq!((again.status, again.code()), (409, "rebuild_in_progress"));

    // Query without pause from before the rebuild until generation 2 is live, so the reads
    // cover the whole rebuild; every answer must equal the one before.
    eventually(Duration::from_secs(120), "generation 2 to go live", || {
        let (app, queries, before) = (&app, &queries, &before);
        async move {
            let now = answers(app, queries).await;
            assert_eq!(&now, before, "answers changed during the rebuild");
            let s = app.projection_status("hits").await;
            (s["generation"] == 2 && s["state"] == "live").then_some(s)
        }
    })
    .await;
    assert_eq!(
        answers(&app, &queries).await,
        before,
        "the rebuilt generation answers the same"
    );

    // The old generation's tables are dropped after the grace period; reads go on.
    let pool = app.pool.clone();
    eventually(
        Duration::from_secs(60),
        "generation 1 to be dropped",
        || {
            let (pool, app, queries, before) = (pool.clone(), &app, &queries, &before);
            async move {
                assert_eq!(&answers(app, queries).await, before);
                // Only the hits projection was rebuilt: the other projections' first generations
                // stay.
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_g1' \
                     AND tablename NOT IN ('properties_g1', 'shared_links_g1', 'imported_g1', \
                     'imported_versions_g1')",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (left == 0).then_some(())
            }
        },
    )
    .await;
}

/// The projection's connection dies in the middle of a batch: the batch rolls back with its
/// checkpoint, the runner comes back, and every event is counted exactly once.
#[actix_web::test]
async fn a_projection_killed_mid_batch_resumes_without_double_counting() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    let n = 30_000u64;
    app.seed(pageviews_of_a_day(&p, n)).await;

    // Kill the runner's connection while it is writing a batch of generation 1 (its rows go by
    // `COPY`, its upserts by `INSERT`).
    let pool = app.pool.clone();
    let killed = eventually(Duration::from_secs(60), "a runner writing a batch", || {
        let pool = pool.clone();
        async move {
            let killed: Option<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND state = 'active' \
                 AND (query LIKE 'INSERT INTO %\\_g1 %' OR query LIKE 'COPY %\\_g1 %') LIMIT 1",
            )
            .fetch_optional(&pool)
            .await
            .unwrap();
            killed.filter(|k| *k)
        }
    })
    .await;
    assert!(killed);
    app.wait_projected().await;

    let res = app
        .query(ADMIN_TOKEN, &json!({"site_id": "shop.example", "metrics": ["pageviews", "events", "visitors"], "date_range": ["2026-03-01", "2026-03-01"]}))
        .await;
    assert_eq!(
        res.body["results"][0]["metrics"],
        json!([n, n, 1000]),
        "{}",
        res.text
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM hits")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, n as i64);
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT position) FROM hits")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(distinct, n as i64);
}

/// Waits until the rebuilt generation 2 of `hits` is live.
async fn generation_2_goes_live(app: &TestApp) {
    eventually(
        Duration::from_secs(120),
        "generation 2 to go live",
        || async move {
            let s = app.projection_status("hits").await;
            (s["generation"] == 2 && s["state"] == "live").then_some(())
        },
    )
    .await;
}

/// A generation's partitions share the analysis of its tables, each when the log it has read
/// doubles: a partition that holds none of the events (all from one visitor of the other) still
/// analyses its share before the rebuild is switched in.
#[actix_web::test]
async fn a_rebuild_analyses_every_table_when_one_partition_holds_every_event() {
    let app = spawn_app_with(&[("FOOTFALL_PROJECTION_PARTITIONS", "2")]).await;
    let p = app.register("shop.example", "UTC").await;
    let visitor = (1..)
        .find(|v| footfall::projections::runner::partition_of(*v, 2) == 1)
        .unwrap();
    app.seed(pageviews_of_a_day_by(&p, 2_500, |_| visitor))
        .await;
    app.wait_projected().await;
    app.rebuild_hits().await;
    let tables: Vec<String> = footfall::readmodel::schema::TABLES
        .iter()
        .map(|t| format!("{t}_g2"))
        .collect();
    // Statistics reach the views a moment after the analysing transactions end.
    let analysed = eventually(Duration::from_secs(10), "every table analysed", || {
        let (pool, tables) = (app.pool.clone(), tables.clone());
        async move {
            let analysed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_user_tables \
                 WHERE relname = ANY($1) AND last_analyze IS NOT NULL",
            )
            .bind(&tables)
            .fetch_one(&pool)
            .await
            .unwrap();
            (analysed == tables.len() as i64).then_some(analysed)
        }
    })
    .await;
    eprintln!("{analysed} of {} tables analysed", tables.len());
}

/// `n` pageviews of 1,000 visitors on 2026-03-01, one a second.
fn pageviews_of_a_day(p: &Value, n: u64) -> Vec<footfall::domain::HitRecorded> {
    pageviews_of_a_day_by(p, n, |i| i % 1000)
}

/// `n` pageviews on 2026-03-01, one a second, the `i`-th of visitor `visitor(i)`.
fn pageviews_of_a_day_by(
    p: &Value,
    n: u64,
    visitor: impl Fn(u64) -> u64,
) -> Vec<footfall::domain::HitRecorded> {
    (0..n)
        .map(|i| {
            let at = format!(
                "2026-03-01T{:02}:{:02}:{:02}Z",
                (i / 3600) % 24,
                (i / 60) % 60,
                i % 60
            );
            hit_event(
                p,
                &Seed {
                    visitor: visitor(i),
                    at: &at,
                    name: "pageview",
                    url: "https://shop.example/",
                    props: &[],
                },
            )
        })
        .collect()
}

/// A rebuild replays a backlog of several full batches into tables no query reads yet: it
/// analyses them once, when it has caught up, before it is switched in (analysing them each time
/// they doubled took a third of PostgreSQL's time in a rebuild). The live generation it replaces
/// kept its statistics as it grew.
#[actix_web::test]
async fn a_rebuild_analyses_its_tables_once_caught_up() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    // Three full batches of 20,000 events and a tail.
    app.seed(pageviews_of_a_day(&p, 65_000)).await;
    app.wait_projected().await;
    app.rebuild_hits().await;
    let analyses = |table: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1",
            )
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Statistics reach the views a moment after the analysing transaction ends.
    let rebuilt = eventually(
        Duration::from_secs(10),
        "the rebuilt tables' statistics",
        || {
            let analyses = &analyses;
            async move { Some(analyses("sessions_g2").await).filter(|n| *n > 0) }
        },
    )
    .await;
    let live = analyses("sessions_g1").await;
    eprintln!(
        "analyses of `sessions`: {live} as the live generation grew, {rebuilt} in the rebuild"
    );
    assert_eq!(rebuilt, 1, "the rebuild analysed its tables once");
    assert!(
        live >= 2,
        "the live generation analysed its tables as they grew: {live}"
    );
    let unanalysed: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables \
         WHERE relname ~ '^(hits|sessions|rollup_daily|rollup_visits)_g2$' AND last_analyze IS NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(unanalysed.is_empty(), "{unanalysed:?}");
}

#[actix_web::test]
async fn the_cli_rebuilds_with_a_progress_bar() {
    let (app, _) = seeded(2_000).await;
    let before = answers(&app, &dashboard("shop.example")).await;
    let url = app.database_url.clone();
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_footfall"))
            .args(["rebuild", "hits"])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("%") && stderr.contains("events/s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rebuilt `hits`: generation 2 is live"),
        "{stderr}"
    );
    assert_eq!(answers(&app, &dashboard("shop.example")).await, before);
    assert_eq!(app.projection_status("hits").await["generation"], 2);
}

/// A node with a newer version of a projection's schema rebuilds it on start, beside the live
/// generation, which keeps answering until the new one is switched in.
#[actix_web::test]
async fn a_schema_version_change_rebuilds_the_projection_on_start() {
    let (app, _) = seeded(2_000).await;
    let queries = dashboard("shop.example");
    let before = answers(&app, &queries).await;
    // As if generation 1 had been built by older code.
    sqlx::query("UPDATE projection_generations SET schema_version = 1 WHERE projection = 'hits'")
        .execute(&app.pool)
        .await
        .unwrap();
    let hits = footfall::projections::hits::HitsProjection::default();
    footfall::projections::generations::ensure_live(&app.pool, &hits, 2)
        .await
        .unwrap();
    // Starting again while that rebuild runs does not start another.
    footfall::projections::generations::ensure_live(&app.pool, &hits, 2)
        .await
        .unwrap();
    let generations: Vec<(i32, String, i32)> = sqlx::query_as(
        "SELECT generation, state, schema_version FROM projection_generations \
         WHERE projection = 'hits' ORDER BY generation",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(generations[0], (1, "live".into(), 1));
    assert_eq!(generations[1].0, 2);
    assert_eq!(
        generations[1].2,
        footfall::projections::Projection::schema_version(&hits)
    );
    assert_eq!(generations.len(), 2);
    generation_2_goes_live(&app).await;
    assert_eq!(answers(&app, &queries).await, before);
}

/// The `hits` projection is built by one runner per partition, each with a checkpoint of its own;
/// the answers do not depend on how many partitions built the generation.
#[actix_web::test]
async fn any_number_of_partitions_builds_the_same_read_model() {
    use footfall::projections::generations::start_rebuild;
    use footfall::projections::hits::HitsProjection;
    let (app, _) = seeded(6_000).await;
    let queries = [dashboard("shop.example"), dashboard("other.example")].concat();
    let partitions = |g: i32| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (i32, i64)>(
                "SELECT partition, position FROM projection_partitions \
                 WHERE projection = 'hits' AND generation = $1 ORDER BY partition",
            )
            .bind(g)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    // The test server runs with the default: as many partitions as cores (at least one).
    let first = partitions(1).await;
    assert!(!first.is_empty());
    let head = app.log_events().await as i64;
    assert!(
        first.iter().all(|(_, position)| *position == head),
        "{first:?}"
    );
    let expected = answers(&app, &queries).await;

    for (generation, count) in [(2, 1), (3, 3)] {
        let g = start_rebuild(&app.pool, &HitsProjection::default(), count)
            .await
            .unwrap();
        assert_eq!(g, generation);
        eventually(Duration::from_secs(120), "the rebuild to go live", || {
            let app = &app;
            async move {
                let s = app.projection_status("hits").await;
                (s["generation"] == generation && s["rebuild"].is_null()).then_some(())
            }
        })
        .await;
        let built = partitions(generation).await;
        assert_eq!(
            built,
            (0..count).map(|p| (p, head)).collect::<Vec<_>>(),
            "every partition reached the head"
        );
        assert_eq!(
            answers(&app, &queries).await,
            expected,
            "{count} partition(s) answer the same"
        );
        // Partitions split a property's visitors: each of them folded some of shop.example's.
        let folded_by: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM hit_versions_g{generation} v JOIN hit_properties_g{generation} p \
             USING (property_id) WHERE p.domain = 'shop.example'"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(folded_by, i64::from(count));
    }
}

/// A writer given the batch after the one it writes folds it meanwhile (a rebuild's backlog): the
/// tables come out row for row as when each batch is folded in its turn, across visits that span
/// batches, prop keys and both properties. So they do when the writer cannot remember every
/// visitor: with room for about two batches' visitors it drops the older half and looks up those
/// of them who come back; with no room at all, it forgets them all and looks up everyone.
#[actix_web::test]
async fn a_batch_folded_while_the_one_before_is_written_gives_the_same_tables() {
    use footfall::eventlog::{postgres::PgEventLog, EventLog, Position};
    use footfall::projections::hits::HitsProjection;
    use footfall::projections::Projection;
    let (app, _) = seeded(6_000).await;
    let events = PgEventLog::new(app.pool.clone())
        .read_all(Position(0), 100_000, &HitsProjection::default().filter())
        .await
        .unwrap();
    let batches: Vec<_> = events.chunks(1_000).collect();
    let mut prepared = Vec::new();
    let generations = [
        (50, false, 64 << 20),
        (51, true, 64 << 20),
        (52, true, 300_000),
        (53, true, 1),
    ];
    for (g, ahead, max_cached_visit_bytes) in generations {
        let projection = HitsProjection {
            max_cached_visit_bytes,
            ..Default::default()
        };
        for ddl in projection.ddl(g) {
            sqlx::raw_sql(&ddl).execute(&app.pool).await.unwrap();
        }
        let mut writer = projection.writer(g, 0);
        let mut conn = app.pool.acquire().await.unwrap();
        let mut count = 0;
        for (i, batch) in batches.iter().enumerate() {
            let next = match ahead {
                true => batches.get(i + 1).copied().unwrap_or_default(),
                false => &[],
            };
            let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
            count += usize::from(writer.apply_before(&mut tx, batch, next).await.unwrap());
            tx.commit().await.unwrap();
        }
        prepared.push(count);
    }
    eprintln!(
        "{} events in {} batches; prepared ahead: {prepared:?}",
        events.len(),
        batches.len()
    );
    let n = batches.len() - 1;
    assert_eq!(prepared, [0, n, n, n], "every next batch was folded ahead");
    for table in footfall::readmodel::schema::TABLES {
        // The pending units' times are when they were written.
        let rows = match *table {
            "rollup_pending" => "(t.property_id, t.day, t.partition, t.dimensions)::text",
            _ => "t::text",
        };
        let contents = |g: i32| {
            let pool = app.pool.clone();
            let sql = format!("SELECT {rows} FROM {table}_g{g} t ORDER BY 1");
            async move {
                sqlx::query_scalar::<_, String>(&sql)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        let one_by_one = contents(50).await;
        for (g, ..) in &generations[1..] {
            let folded_ahead = contents(*g).await;
            let differ = one_by_one.iter().zip(&folded_ahead).find(|(a, b)| a != b);
            assert!(
                one_by_one.len() == folded_ahead.len() && differ.is_none(),
                "{table}: {} rows one by one, {} folded ahead in generation {g}; first \
                 difference {differ:?}",
                one_by_one.len(),
                folded_ahead.len()
            );
        }
        if ["hits", "sessions", "rollup_daily", "rollup_visits"].contains(table) {
            assert!(!one_by_one.is_empty(), "{table} has rows");
        }
    }
}

/// An app whose projections run without the merger, so that nothing merges before the test does.
async fn spawn_app_without_merger() -> TestApp {
    use footfall::eventlog::postgres::PgEventLog;
    use footfall::projections::{self, ProjectionManager};

    let app = spawn_app_with(&[("FOOTFALL_ROLES", "collect,query,admin")]).await;
    let log = std::sync::Arc::new(PgEventLog::new(app.pool.clone()));
    actix::Actor::start(ProjectionManager::new(
        projections::all(),
        log,
        app.pool.clone(),
    ));
    app
}

/// Seeds 6,000 hits of [`data_set`] in three waves over the same days, each projected before the
/// next: the rollups get several rows for many keys.
async fn seed_in_waves(app: &TestApp) {
    let (_, hits) = data_set(app, 6_000).await;
    for wave in hits.chunks(2_000) {
        app.seed(wave.to_vec()).await;
        app.wait_projected().await;
    }
}

#[actix_web::test]
async fn merging_the_appended_rollups_changes_no_answer() {
    use footfall::readmodel::merge::{merge_units, take_pending};
    use footfall::readmodel::schema::VISIT_ROLLUP_DIMENSIONS;

    let app = spawn_app_without_merger().await;
    seed_in_waves(&app).await;
    let queries = [dashboard("shop.example"), dashboard("other.example")].concat();
    let before = answers(&app, &queries).await;
    let count = |what: &str| {
        let (pool, what) = (app.pool.clone(), what.to_owned());
        async move {
            sqlx::query_scalar::<_, i64>(&what)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let duplicated = &format!(
        "SELECT (SELECT count(*) FROM rollup_daily_g1) - (SELECT count(*) FROM \
         (SELECT DISTINCT property_id, dimension, day, value FROM rollup_daily_g1) d) + \
         (SELECT count(*) FROM rollup_visits_g1) - (SELECT count(*) FROM \
         (SELECT DISTINCT property_id, dimension, day, {} FROM rollup_visits_g1) d) + \
         (SELECT count(*) FROM rollup_hourly_g1) - (SELECT count(*) FROM \
         (SELECT DISTINCT property_id, bucket FROM rollup_hourly_g1) d)",
        VISIT_ROLLUP_DIMENSIONS.join(", ")
    );
    let hours_duplicated = "SELECT (SELECT count(*) FROM rollup_hourly_g1) - (SELECT count(*) \
        FROM (SELECT DISTINCT property_id, bucket FROM rollup_hourly_g1) d)";
    let rows = "SELECT (SELECT count(*) FROM rollup_daily_g1) + (SELECT count(*) FROM \
        rollup_visits_g1) + (SELECT count(*) FROM rollup_hourly_g1)";
    let (duplicates, rows_before) = (count(duplicated).await, count(rows).await);
    // Partitions record their units apart; a unit is taken once for all of them.
    let pending =
        count("SELECT count(*) FROM (SELECT DISTINCT property_id, day FROM rollup_pending_g1) u")
            .await;
    eprintln!(
        "{rows_before} rows, {duplicates} of them extra rows of a key; {pending} units pending"
    );
    assert!(duplicates > 0 && pending > 0 && count(hours_duplicated).await > 0);

    let pending_rows = count("SELECT count(*) FROM rollup_pending_g1").await;
    let (units, taken) = take_pending(&app.pool, 1, 10_000, Duration::ZERO, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((units.len() as i64, taken), (pending, pending_rows));
    let mut conn = app.pool.acquire().await.unwrap();
    merge_units(&mut conn, 1, &units).await.unwrap();
    assert_eq!(count(duplicated).await, 0);
    assert_eq!(count(rows).await, rows_before - duplicates);
    assert_eq!(count("SELECT count(*) FROM rollup_pending_g1").await, 0);
    // A second server on the same database: its answers cannot come from the first one's cache.
    let fresh = spawn_app_on(app.database_url.clone(), &[("FOOTFALL_ROLES", "query")]).await;
    assert_eq!(answers(&fresh, &queries).await, before);
}

/// The merger vacuums the rollups it has merged, whatever the server's autovacuum (off on this
/// machine): after a burst of merges, each merged rollup has been vacuumed.
#[actix_web::test]
async fn the_merger_vacuums_the_rollups_it_merged() {
    let app = spawn_app().await;
    seed_in_waves(&app).await;
    let pool = app.pool.clone();
    // Units are merged once batches have left them alone for 10 s.
    let (pending, vacuums, dead): (i64, i64, i64) =
        eventually(Duration::from_secs(120), "merges, then a vacuum", || {
            let pool = pool.clone();
            async move {
                let row: (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM rollup_pending_g1), min(vacuum_count), \
                       sum(n_dead_tup)::bigint FROM pg_stat_user_tables \
                     WHERE relname IN ('rollup_daily_g1', 'rollup_visits_g1', 'rollup_hourly_g1', \
                       'rollup_weekly_g1')",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (row.0 == 0 && row.1 >= 1).then_some(row)
            }
        })
        .await;
    // Dead rows as last reported: a merge's own count may reach the statistics after the vacuum.
    eprintln!("{pending} units pending; each rollup vacuumed {vacuums}+ times; {dead} dead rows");
}

#[actix_web::test]
async fn the_days_and_weeks_pre_merged_change_no_answer_and_miss_no_late_hit() {
    use chrono::NaiveDate;
    use footfall::readmodel::merge::{
        merge_units, merge_weeks, take_pending, weeks_to_merge, WeekSpan,
    };

    let app = spawn_app_without_merger().await;
    let p = app.register("shop.example", "UTC").await;
    let property = uuid::Uuid::parse_str(p["id"].as_str().unwrap()).unwrap();
    // 27 days from Sunday 2026-03-01: 300 hits a day over 400 pages, so each whole week (and the
    // last week's five days) has more than a thousand page rows (pre-merged), a few event-name rows
    // (not), and more than a thousand rows of an order number, each its own value (not: merging
    // would not shrink them).
    let mut next = random(7);
    let mut hits = Vec::new();
    for i in 0..27 * 300 {
        let at = format!(
            "2026-03-{:02}T{:02}:{:02}:00Z",
            1 + i / 300,
            next(24),
            next(60)
        );
        let page = format!("https://shop.example/p{}", next(400));
        let name = if next(10) == 0 { "Signup" } else { "pageview" };
        let order = i.to_string();
        let seed = Seed {
            visitor: next(3_000),
            at: &at,
            name,
            url: &page,
            props: &[("order", &order)],
        };
        hits.push(hit_event(&p, &seed));
    }
    app.seed(hits).await;
    app.wait_projected().await;

    // A reader that keeps no answers: each query reads the rollups.
    let reader = spawn_app_on(
        app.database_url.clone(),
        &[
            ("FOOTFALL_ROLES", "query"),
            ("FOOTFALL_REPORT_CACHE_MB", "0"),
        ],
    )
    .await;
    let q = |metrics: Value, dims: Value, limit: u32| {
        json!({"site_id": "shop.example", "metrics": metrics, "date_range": ["2026-03-01", "2026-03-28"],
               "dimensions": dims, "pagination": {"limit": limit}})
    };
    let queries = [
        // The top ten: ranked by events first (`top_by_visitors`).
        q(json!(["visitors", "pageviews"]), json!(["event:page"]), 10),
        // Every page: the whole breakdown.
        q(
            json!(["visitors", "pageviews", "events"]),
            json!(["event:page"]),
            1_000,
        ),
        q(json!(["visitors", "events"]), json!(["event:name"]), 10),
        // The hourly rollup's days: a time series and totals.
        q(json!(["visitors", "pageviews"]), json!(["time:day"]), 100),
        q(
            json!([
                "visitors",
                "visits",
                "pageviews",
                "bounce_rate",
                "visit_duration"
            ]),
            json!([]),
            10,
        ),
        // The visit rollup's weeks: a breakdown by a group of one combination a day, and one of
        // hundreds.
        q(
            json!(["visitors", "visits", "pageviews"]),
            json!(["visit:device"]),
            10,
        ),
        q(
            json!(["visitors", "visits", "pageviews"]),
            json!(["visit:entry_page"]),
            1_000,
        ),
    ];
    let before = answers(&reader, &queries).await;
    assert_eq!(before[1].as_array().unwrap().len(), 400);

    // Merge the days, then the weeks that are over by the 30th: those of 23 February (its Sunday,
    // the 1st, too few rows to pre-merge any), and 2, 9 and 16 March; and the six days of the week
    // of 23 March that are over everywhere (the 23rd to the 28th).
    let day = |s: &str| s.parse::<NaiveDate>().unwrap();
    let today = day("2026-03-30");
    let merge_days = || async {
        let (units, _) = take_pending(&app.pool, 1, 10_000, Duration::ZERO, Duration::ZERO)
            .await
            .unwrap();
        let mut conn = app.pool.acquire().await.unwrap();
        merge_units(&mut conn, 1, &units).await.unwrap();
        units
    };
    let units = merge_days().await;
    let to_merge = || async { weeks_to_merge(&app.pool, 1, &units, today).await.unwrap() };
    let span = |week: &str, days| WeekSpan {
        property_id: property,
        week: day(week),
        days,
    };
    let weeks = [
        span("2026-02-23", 7),
        span("2026-03-02", 7),
        span("2026-03-09", 7),
        span("2026-03-16", 7),
        span("2026-03-23", 6),
    ];
    assert_eq!(to_merge().await, weeks);
    let mut conn = app.pool.acquire().await.unwrap();
    let written = merge_weeks(&mut conn, 1, &weeks).await.unwrap();
    let count = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let weekly = "SELECT (SELECT count(*) FROM rollup_weekly_g1) + \
        (SELECT count(*) FROM rollup_visits_weekly_g1)";
    // Each day's row, written at the day's current version.
    let fresh_days = "SELECT count(*) FROM rollup_days_g1 d WHERE d.version = \
        (SELECT sum(h.position) FROM hit_days_g1 h WHERE h.property_id = d.property_id AND h.day = d.day)";
    assert_eq!(count("SELECT count(*) FROM rollup_days_g1").await, 27);
    assert_eq!(count(fresh_days).await, 27);
    eprintln!("{written} weekly rows written for {} weeks", weeks.len());
    assert!(written > 3 * 300);
    assert_eq!(count(weekly).await, written as i64);
    // Of the daily rollup, only the pages are pre-merged; every visit group has enough bytes of
    // sketches in a whole week and in the last week's six days (five with hits).
    assert_eq!(
        count(
            "SELECT count(*) FROM rollup_weeks_g1 \
             WHERE dimensions = '{acquisition,location,page,pages,technology}'"
        )
        .await,
        4,
    );
    assert_eq!(
        count("SELECT count(*) FROM rollup_weeks_g1 WHERE week = '2026-03-23' AND days = 6").await,
        1
    );
    assert!(
        to_merge().await.is_empty(),
        "each week's version is current"
    );
    assert_eq!(answers(&reader, &queries).await, before);

    // The page breakdowns read the weeks' rows, the time series and totals the days': changed
    // there, their answers change.
    let tamper = |table: &'static str, by: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(&format!("UPDATE {table} SET pageviews = pageviews + $1"))
                .bind(by)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    tamper("rollup_weekly_g1", 1_000).await;
    let tampered = answers(&reader, &queries).await;
    assert_ne!(tampered[1], before[1]);
    assert_eq!(tampered[2..], before[2..]);
    tamper("rollup_weekly_g1", -1_000).await;
    // The last week's six days are read from their weekly rows too.
    let span_rows =
        "UPDATE rollup_weekly_g1 SET pageviews = pageviews + $1 WHERE day = '2026-03-23'";
    for by in [1_000, -1_000] {
        sqlx::query(span_rows)
            .bind(by)
            .execute(&app.pool)
            .await
            .unwrap();
        assert_eq!(answers(&reader, &queries).await[1] == before[1], by < 0);
    }
    tamper("rollup_days_g1", 1_000).await;
    let tampered = answers(&reader, &queries).await;
    assert_eq!(tampered[..3], before[..3]);
    assert!(tampered[3] != before[3] && tampered[4] != before[4]);
    assert_eq!(tampered[5..], before[5..]);
    tamper("rollup_days_g1", -1_000).await;
    tamper("rollup_visits_weekly_g1", 1_000).await;
    let tampered = answers(&reader, &queries).await;
    assert_eq!(tampered[..5], before[..5]);
    assert!(tampered[5] != before[5] && tampered[6] != before[6]);
    tamper("rollup_visits_weekly_g1", -1_000).await;
    assert_eq!(answers(&reader, &queries).await, before);

    // One more pageview, projected.
    let one_hit = |visitor, at, url| {
        let hit = hit_event(
            &p,
            &Seed {
                visitor,
                at,
                name: "pageview",
                url,
                props: &[],
            },
        );
        async {
            app.seed(vec![hit]).await;
            app.wait_projected().await;
        }
    };
    // A late hit into a week already merged: the week is read from its days until it is merged
    // again, then from its new rows.
    one_hit(99_999, "2026-03-11T12:00:00Z", "https://shop.example/late").await;
    // The second metric summed over the rows: pageviews by page and by day, visits by device and
    // by entry page.
    let second_metric = |answer: &Value| -> i64 {
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["metrics"][1].as_i64().unwrap())
            .sum()
    };
    let late = answers(&reader, &queries).await;
    let late_page = late[1]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dimensions"][0] == "/late")
        .cloned();
    assert_eq!(late_page.map(|r| r["metrics"][1].clone()), Some(json!(1)));
    assert_eq!(second_metric(&late[1]), second_metric(&before[1]) + 1);
    // The late hit's day is read from its hours until it is merged again.
    assert_eq!(second_metric(&late[3]), second_metric(&before[3]) + 1);
    assert_eq!(
        late[4][0]["metrics"][2].as_i64(),
        before[4][0]["metrics"][2].as_i64().map(|p| p + 1)
    );
    assert_eq!(count(fresh_days).await, 26);
    // And its week's visits from their days.
    assert_eq!(second_metric(&late[5]), second_metric(&before[5]) + 1);
    assert_eq!(second_metric(&late[6]), second_metric(&before[6]) + 1);
    let units = merge_days().await;
    let again = weeks_to_merge(&app.pool, 1, &units, today).await.unwrap();
    // The unit's week changed; the week before it did not.
    assert_eq!(again, [span("2026-03-09", 7)]);
    merge_weeks(&mut conn, 1, &again).await.unwrap();
    assert!(weeks_to_merge(&app.pool, 1, &units, today)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(count(fresh_days).await, 27);
    assert_eq!(answers(&reader, &queries).await, late);

    // A day later the week of 23 March is over: its rows are written again from its seven days
    // once a unit of it or of the next week is merged (a hit on the 30th, after the range).
    one_hit(99_998, "2026-03-30T12:00:00Z", "https://shop.example/next").await;
    let units = merge_days().await;
    let next_day = weeks_to_merge(&app.pool, 1, &units, day("2026-03-31"))
        .await
        .unwrap();
    assert_eq!(next_day, [span("2026-03-23", 7)]);
    merge_weeks(&mut conn, 1, &next_day).await.unwrap();
    assert_eq!(answers(&reader, &queries).await, late);

    // A generation built before the day rows and the visit weeks (while a rebuild to them is under
    // way) answers the same from the hours and the days.
    sqlx::raw_sql("DROP VIEW rollup_days; DROP VIEW rollup_visits_weekly")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(answers(&reader, &queries).await, late);
    // And one built before the weeks held their days (all seven).
    sqlx::raw_sql(
        "DROP VIEW rollup_weeks; CREATE VIEW rollup_weeks AS \
         SELECT property_id, week, version, dimensions FROM rollup_weeks_g1",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(answers(&reader, &queries).await, late);
}
