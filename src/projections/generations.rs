//! Generations of read models: creating one, starting a rebuild, switching a caught-up rebuild in
//! atomically, and dropping retired tables after a grace period.
//!
//! Every change here runs under one transaction-level advisory lock, so nodes never race on them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

use super::{table, Projection};
use crate::eventlog::Position;

pub type Generation = i32;

/// How long a retired generation's tables outlive the switch, so reads that started on them finish.
pub const RETIRED_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct GenerationRow {
    pub projection: String,
    pub generation: Generation,
    pub state: String,
    pub position: i64,
    pub events_per_second: f64,
    pub created_at: DateTime<Utc>,
    pub live_at: Option<DateTime<Utc>>,
    pub schema_version: i32,
    /// How many runners build it (see [`super::runner`]).
    pub partitions: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// 409: a rebuild of this projection is already running.
    #[error("a rebuild of `{0}` is already running")]
    AlreadyRunning(String),
    /// 503.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// SQLSTATE of a lock wait that ran past `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The key (of `hashtext`) of the transaction-level advisory lock every change here runs under.
pub const LOCK_KEY: &str = "footfall.generations";

async fn lock(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The generations lock if it is free, for the manager's housekeeping, which tries again on its
/// next tick: a node frozen while it holds the lock (until PostgreSQL ends its idle transaction)
/// must not hold up the other nodes' managers, which start the runners that take over from it.
async fn try_lock(tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
        .bind(LOCK_KEY)
        .fetch_one(&mut *tx)
        .await
}

async fn next_generation(tx: &mut PgConnection, name: &str) -> Result<Generation, sqlx::Error> {
    let max: Option<Generation> = sqlx::query_scalar(
        "SELECT max(generation) FROM projection_generations WHERE projection = $1",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    Ok(max.unwrap_or(0) + 1)
}

async fn create_tables(
    tx: &mut PgConnection,
    p: &dyn Projection,
    g: Generation,
) -> Result<(), sqlx::Error> {
    for statement in p.ddl(g) {
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    Ok(())
}

async fn point_views(
    tx: &mut PgConnection,
    p: &dyn Projection,
    g: Generation,
) -> Result<(), sqlx::Error> {
    for base in p.tables() {
        // Drop and create (not CREATE OR REPLACE): a new generation may have new columns.
        sqlx::query(&format!("DROP VIEW IF EXISTS {base}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE VIEW {base} AS SELECT * FROM {}",
            table(base, g)
        ))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Creates a generation's tables and records it, in `state`, with the code's schema version.
/// How many partitions a new generation of `p` gets when `configured` are asked for: projections
/// that are not partitioned have one.
pub fn partitions_of(p: &dyn Projection, configured: i32) -> i32 {
    if p.partitioned() {
        configured.clamp(1, 64)
    } else {
        1
    }
}

async fn new_generation(
    tx: &mut PgConnection,
    p: &dyn Projection,
    state: &str,
    partitions: i32,
) -> Result<Generation, sqlx::Error> {
    let g = next_generation(tx, p.name()).await?;
    let partitions = partitions_of(p, partitions);
    create_tables(tx, p, g).await?;
    sqlx::query(
        "INSERT INTO projection_generations (projection, generation, state, schema_version, live_at, partitions) \
         VALUES ($1, $2, $3, $4, CASE WHEN $3 = 'live' THEN now() END, $5)",
    )
    .bind(p.name())
    .bind(g)
    .bind(state)
    .bind(p.schema_version())
    .bind(partitions)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO projection_partitions (projection, generation, partition) \
         SELECT $1, $2, generate_series(0, $3 - 1)",
    )
    .bind(p.name())
    .bind(g)
    .bind(partitions)
    .execute(&mut *tx)
    .await?;
    Ok(g)
}

/// Makes sure the projection has a live generation (a new database gets generation 1, which its
/// runner fills from the start of the log). If the live generation was built with an older
/// schema version, starts a rebuild with this code's version; the old generation keeps serving
/// reads, frozen, until the new one catches up and is switched in.
pub async fn ensure_live(
    pool: &PgPool,
    p: &dyn Projection,
    partitions: i32,
) -> Result<(), sqlx::Error> {
    // Usually the live generation is current and nothing is to be done: that is read without the
    // generations lock, so that a node starts even while a frozen one holds it. (A live
    // generation at this version stays so: a switch replaces it by another.)
    let current: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projection_generations \
         WHERE projection = $1 AND state = 'live' AND schema_version >= $2)",
    )
    .bind(p.name())
    .bind(p.schema_version())
    .fetch_one(pool)
    .await?;
    if current {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    lock(&mut tx).await?;
    let rows: Vec<(Generation, String, i32)> = sqlx::query_as(
        "SELECT generation, state, schema_version FROM projection_generations \
         WHERE projection = $1 AND state IN ('live', 'building')",
    )
    .bind(p.name())
    .fetch_all(&mut *tx)
    .await?;
    let version = p.schema_version();
    match rows.iter().find(|(_, state, _)| state == "live") {
        None => {
            let g = new_generation(&mut tx, p, "live", partitions).await?;
            point_views(&mut tx, p, g).await?;
        }
        Some((live, _, live_version)) if *live_version < version => {
            sqlx::query(
                "UPDATE projection_generations SET state = 'retired', retired_at = now() \
                 WHERE projection = $1 AND state = 'building' AND schema_version <> $2",
            )
            .bind(p.name())
            .bind(version)
            .execute(&mut *tx)
            .await?;
            let building = rows
                .iter()
                .any(|(_, state, v)| state == "building" && *v == version);
            if !building {
                let g = new_generation(&mut tx, p, "building", partitions).await?;
                tracing::info!(
                    projection = p.name(),
                    live = live,
                    generation = g,
                    version,
                    "the projection's schema changed: rebuilding it"
                );
            }
        }
        Some(_) => {}
    }
    tx.commit().await
}

/// Starts a rebuild: a new generation, built from position 0 beside the live one.
pub async fn start_rebuild(
    pool: &PgPool,
    p: &dyn Projection,
    partitions: i32,
) -> Result<Generation, RebuildError> {
    let mut tx = pool.begin().await?;
    lock(&mut tx).await?;
    let building: Option<Generation> = sqlx::query_scalar(
        "SELECT generation FROM projection_generations WHERE projection = $1 AND state = 'building'",
    )
    .bind(p.name())
    .fetch_optional(&mut *tx)
    .await?;
    if building.is_some() {
        return Err(RebuildError::AlreadyRunning(p.name().to_owned()));
    }
    let g = new_generation(&mut tx, p, "building", partitions).await?;
    tx.commit().await?;
    Ok(g)
}

/// Switches a rebuilding generation in once it has applied at least what the live one has. The
/// row locks make the live runner's next checkpoint write fail, so it stops writing.
pub async fn switch_if_caught_up(
    pool: &PgPool,
    p: &dyn Projection,
) -> Result<Option<Generation>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !try_lock(&mut tx).await? {
        return Ok(None);
    }
    // A runner's open batch holds these rows; one that hangs (a frozen node) must not hold up this
    // node's manager, which starts the runners that take over: the switch is tried again on the
    // next tick.
    sqlx::query("SET LOCAL lock_timeout = '500ms'")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT generation, state, position FROM projection_generations \
         WHERE projection = $1 AND state IN ('live', 'building') FOR UPDATE",
    )
    .bind(p.name())
    .fetch_all(&mut *tx)
    .await?;
    let mut live = None;
    let mut building = None;
    for r in &rows {
        let entry = (
            r.try_get::<Generation, _>("generation")?,
            r.try_get::<i64, _>("position")?,
        );
        match r.try_get::<String, _>("state")?.as_str() {
            "live" => live = Some(entry),
            _ => building = Some(entry),
        }
    }
    let Some((new, new_pos)) = building else {
        return Ok(None);
    };
    if live.is_some_and(|(_, live_pos)| new_pos < live_pos) {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE projection_generations SET state = 'retired', retired_at = now() WHERE projection = $1 AND state = 'live'",
    )
    .bind(p.name())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE projection_generations SET state = 'live', live_at = now() WHERE projection = $1 AND generation = $2",
    )
    .bind(p.name())
    .bind(new)
    .execute(&mut *tx)
    .await?;
    // The views change under readers, view by view. A reader holding one view while waiting for
    // another would deadlock with the switch, and PostgreSQL might cancel the reader; so the
    // switch waits for each view's lock at most 300 ms, below `deadlock_timeout` (1 s), and backs
    // off to retry on the next tick.
    sqlx::query("SET LOCAL lock_timeout = '300ms'")
        .execute(&mut *tx)
        .await?;
    match point_views(&mut tx, p, new).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
            tracing::debug!(
                projection = p.name(),
                "readers hold the views; switch retried"
            );
            return Ok(None);
        }
        other => other?,
    }
    tx.commit().await?;
    tracing::info!(
        projection = p.name(),
        generation = new,
        "rebuilt generation switched in"
    );
    Ok(Some(new))
}

/// Drops the tables of generations retired for longer than the grace period.
pub async fn drop_retired(
    pool: &PgPool,
    p: &dyn Projection,
    grace: Duration,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !try_lock(&mut tx).await? {
        return Ok(());
    }
    // A reader still on a retired table must not make the manager wait long: the drop is tried
    // again on the next tick.
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await?;
    let retired: Vec<Generation> = sqlx::query_scalar(
        "SELECT generation FROM projection_generations WHERE projection = $1 AND state = 'retired' \
         AND NOT dropped AND retired_at < now() - make_interval(secs => $2)",
    )
    .bind(p.name())
    .bind(grace.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    for g in retired {
        for base in p.tables() {
            sqlx::query(&format!("DROP TABLE IF EXISTS {} CASCADE", table(base, g)))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE projection_generations SET dropped = true WHERE projection = $1 AND generation = $2")
            .bind(p.name())
            .bind(g)
            .execute(&mut *tx)
            .await?;
        for done in ["projection_parked", "projection_leases"] {
            sqlx::query(&format!(
                "DELETE FROM {done} WHERE projection = $1 AND generation = $2"
            ))
            .bind(p.name())
            .bind(g)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

/// The live and building generations of every projection.
pub async fn list(pool: &PgPool) -> Result<Vec<GenerationRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT projection, generation, state, position, events_per_second, created_at, live_at, schema_version, \
                partitions \
         FROM projection_generations WHERE state IN ('live', 'building') ORDER BY projection, generation",
    )
    .fetch_all(pool)
    .await
}

/// The live generation's checkpoint.
pub async fn live_position(pool: &PgPool, name: &str) -> Result<Position, sqlx::Error> {
    let pos: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM projection_generations WHERE projection = $1 AND state = 'live'",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(Position(pos.unwrap_or(0) as u64))
}

/// Waits until the projection's live generation has applied `position`, at most `deadline`.
/// Gives read-your-writes to commands whose callers read the projection next.
pub async fn wait_for(pool: &PgPool, name: &str, position: Position, deadline: Duration) -> bool {
    let poll_interval = Duration::from_millis(5);
    let until = Instant::now() + deadline;
    loop {
        if live_position(pool, name).await.is_ok_and(|p| p >= position) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(poll_interval).await;
    }
}

/// What the admin API and the CLI show of a projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// The generation serving reads.
    pub generation: Generation,
    /// `live`, or `rebuilding` while a new generation is being built.
    pub state: &'static str,
    pub checkpoint: i64,
    pub head: i64,
    pub lag: i64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    /// Events this generation parked (see [`super::parked`]).
    pub parked: i64,
    pub rebuild: Option<RebuildStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebuildStatus {
    pub generation: Generation,
    pub checkpoint: i64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub parked: i64,
}

fn eta(head: i64, position: i64, rate: f64) -> Option<f64> {
    let left = (head - position).max(0) as f64;
    if left == 0.0 {
        Some(0.0)
    } else if rate > 0.0 {
        Some((left / rate * 10.0).round() / 10.0)
    } else {
        None
    }
}

/// The status of every projection, given the log head.
pub async fn status(pool: &PgPool, head: Position) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    let head = head.0 as i64;
    let rows = list(pool).await?;
    let parked = super::parked::counts(pool).await?;
    let parked = |projection: &str, g: Generation| {
        parked
            .iter()
            .find(|(p, pg, _)| p == projection && *pg == g)
            .map_or(0, |(_, _, n)| *n)
    };
    let mut out = Vec::new();
    for live in rows.iter().filter(|r| r.state == "live") {
        let rebuild = rows
            .iter()
            .find(|r| r.projection == live.projection && r.state == "building")
            .map(|b| RebuildStatus {
                generation: b.generation,
                checkpoint: b.position,
                events_per_second: b.events_per_second,
                eta_seconds: eta(head, b.position, b.events_per_second),
                parked: parked(&b.projection, b.generation),
            });
        out.push(ProjectionStatus {
            name: live.projection.clone(),
            generation: live.generation,
            state: if rebuild.is_some() {
                "rebuilding"
            } else {
                "live"
            },
            checkpoint: live.position,
            head,
            lag: (head - live.position).max(0),
            events_per_second: live.events_per_second,
            eta_seconds: eta(head, live.position, live.events_per_second),
            parked: parked(&live.projection, live.generation),
            rebuild,
        });
    }
    Ok(out)
}
