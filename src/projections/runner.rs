//! The actors that run projections.
//!
//! A [`ProjectionRunner`] follows the log for one generation of one projection. It writes each
//! batch's read-model changes **and** the checkpoint in one transaction, so every event takes effect
//! exactly once across crashes and restarts. It runs on one node at a time: it holds a session
//! advisory lock on its own connection, and another node's runner takes over when that connection
//! dies. It stops when its generation is retired.
//!
//! The [`ProjectionManager`] keeps a runner alive for every live or building generation, switches a
//! caught-up rebuild in, and drops retired tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sqlx::{PgConnection, PgPool};

use super::generations::{self, Generation, RETIRED_GRACE};
use super::{parked, Projection, ProjectionError, ProjectionWriter};
use crate::eventlog::{EventLog, Position, RecordedEvent, StreamFilter};
use crate::telemetry;

/// Events per batch at most. Live batches are what arrived since the last one; a backlog (a rebuild)
/// reads full batches, and larger ones rewrite each hot rollup row fewer times (20,000 rebuilt
/// 20 % faster than 5,000).
const BATCH_SIZE: usize = 20_000;
/// How long a caught-up runner waits for new events before it checks its lease again.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How often a standby runner tries to take over, and how often the manager looks around.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

pub struct ProjectionRunner {
    projection: Arc<dyn Projection>,
    generation: Generation,
    log: Arc<dyn EventLog>,
    pool: PgPool,
}

/// Why a runner ended without an error.
enum Ended {
    /// Its generation was retired (a rebuild replaced it).
    Retired,
}

impl Actor for ProjectionRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (p, g, log, pool) = (
            self.projection.clone(),
            self.generation,
            self.log.clone(),
            self.pool.clone(),
        );
        let work = async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match run(&*p, g, &*log, &pool).await {
                    Ok(Ended::Retired) => return,
                    Err(e) => {
                        tracing::error!(projection = p.name(), generation = g, error = %e, "projection failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|(), _, ctx| ctx.stop()));
    }
}

async fn run(
    projection: &dyn Projection,
    generation: Generation,
    log: &dyn EventLog,
    pool: &PgPool,
) -> Result<Ended, ProjectionError> {
    let name = projection.name();
    let mut conn = lead(pool, name, generation).await?;
    let Some(start) = checkpoint(&mut conn, name, generation).await? else {
        return Ok(Ended::Retired);
    };
    tracing::info!(
        projection = name,
        generation,
        checkpoint = start.0,
        "projection runner leading"
    );
    let mut writer = projection.writer(generation);
    let mut subscription = log
        .subscribe(start, projection.filter(), BATCH_SIZE)
        .await?;
    let mut rate = Rate::new(start);
    let mut stats = Statistics::default();
    let mut replays_checked = Instant::now();
    loop {
        if replays_checked.elapsed() >= RETRY_INTERVAL {
            replays_checked = Instant::now();
            if !replay_parked(&mut conn, projection, generation, log, &mut writer).await? {
                return Ok(Ended::Retired);
            }
        }
        let events = subscription.next(IDLE_WAIT).await?;
        let Some(last) = events.last() else {
            // Caught up: record how far the log was read (events of other streams included),
            // which also confirms the generation is still wanted and that the leader's
            // connection, holding the lock, is alive.
            let position = subscription.position();
            let events_per_second = rate.observe(position);
            if !save_checkpoint(&mut conn, name, generation, position, events_per_second).await? {
                return Ok(Ended::Retired);
            }
            metrics::gauge!(telemetry::PROJECTION_LAG_SECONDS, "projection" => name).set(0.0);
            metrics::gauge!(telemetry::PROJECTION_LAG_EVENTS, "projection" => name).set(0.0);
            continue;
        };
        let started = Instant::now();
        let mut batch = Batch {
            conn: &mut conn,
            projection,
            generation,
            writer: &mut writer,
            stats: &mut stats,
            rate: &mut rate,
        };
        if !batch.apply_or_park(&events).await? {
            return Ok(Ended::Retired);
        }

        let head = log.head().await?.position;
        metrics::counter!(telemetry::PROJECTION_EVENTS, "projection" => name)
            .increment(events.len() as u64);
        metrics::histogram!(telemetry::PROJECTION_BATCH_DURATION, "projection" => name)
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!(telemetry::PROJECTION_LAG_EVENTS, "projection" => name)
            .set(head.0.saturating_sub(last.position.0) as f64);
        let age = (chrono::Utc::now() - last.recorded_at)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0;
        metrics::gauge!(telemetry::PROJECTION_LAG_SECONDS, "projection" => name).set(age);
    }
}

/// One batch of a runner, applied in parts that each commit with their checkpoint.
struct Batch<'a> {
    conn: &'a mut PgConnection,
    projection: &'a dyn Projection,
    generation: Generation,
    writer: &'a mut Box<dyn ProjectionWriter>,
    stats: &'a mut Statistics,
    rate: &'a mut Rate,
}

impl Batch<'_> {
    /// Applies the events in order. A part that fails because of an event's own data is halved
    /// until that event stands alone, which is then parked (see [`parked`]); every other event is
    /// applied. `false` when the generation was retired meanwhile.
    async fn apply_or_park(&mut self, events: &[RecordedEvent]) -> Result<bool, ProjectionError> {
        let name = self.projection.name();
        // Parts still to apply, the next one last.
        let mut parts: Vec<&[RecordedEvent]> = vec![events];
        while let Some(part) = parts.pop() {
            let Some(last) = part.last() else { continue };
            let mut tx = sqlx::Connection::begin(&mut *self.conn).await?;
            let failure = match self.writer.apply(&mut tx, part).await {
                Ok(()) => None,
                Err(e) if parked::is_data_error(&e) => Some(e),
                Err(e) => return Err(e),
            };
            match failure {
                None => {
                    self.stats
                        .after_batch(&mut tx, self.projection, self.generation, part.len())
                        .await?;
                }
                Some(e) => {
                    tx.rollback().await?;
                    // The writer may cache state of the part that failed.
                    *self.writer = self.projection.writer(self.generation);
                    if part.len() > 1 {
                        let (first, second) = part.split_at(part.len() / 2);
                        parts.push(second);
                        parts.push(first);
                        continue;
                    }
                    tracing::error!(projection = name, generation = self.generation,
                        position = last.position.0, error = %e, "event parked");
                    metrics::counter!(telemetry::PROJECTION_PARKED, "projection" => name)
                        .increment(1);
                    tx = sqlx::Connection::begin(&mut *self.conn).await?;
                    parked::park(&mut tx, name, self.generation, last, &e).await?;
                }
            }
            let events_per_second = self.rate.observe(last.position);
            if !save_checkpoint(
                &mut tx,
                name,
                self.generation,
                last.position,
                events_per_second,
            )
            .await?
            {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
        }
        Ok(true)
    }
}

/// Applies the parked events an operator asked to replay; those that apply now leave the parked
/// table in the same transaction, the others stay with their new error. `false` when the
/// generation was retired.
async fn replay_parked(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    generation: Generation,
    log: &dyn EventLog,
    writer: &mut Box<dyn ProjectionWriter>,
) -> Result<bool, ProjectionError> {
    let name = projection.name();
    let requested = parked::replays_requested(conn, name, generation).await?;
    if requested.is_empty() {
        return Ok(true);
    }
    for position in requested {
        let events = log
            .read_all(Position(position - 1), 1, &StreamFilter::all())
            .await?;
        let Some(event) = events.first().filter(|e| e.position.0 == position) else {
            continue;
        };
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        match writer.apply(&mut tx, std::slice::from_ref(event)).await {
            Ok(()) => {
                parked::unpark(&mut tx, name, generation, position).await?;
                tx.commit().await?;
                tracing::info!(
                    projection = name,
                    generation,
                    position,
                    "parked event replayed"
                );
            }
            Err(e) if parked::is_data_error(&e) => {
                tx.rollback().await?;
                *writer = projection.writer(generation);
                parked::park(conn, name, generation, event, &e).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(checkpoint(conn, name, generation).await?.is_some())
}

/// Moves the generation's checkpoint forward (never back); `false` when it is retired or gone.
async fn save_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    g: Generation,
    position: Position,
    events_per_second: f64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE projection_generations SET position = GREATEST(position, $3), events_per_second = $4 \
         WHERE projection = $1 AND generation = $2 AND state <> 'retired'",
    )
    .bind(name)
    .bind(g)
    .bind(position.0 as i64)
    .bind(events_per_second)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// The generation's checkpoint, or `None` when it is retired or gone.
async fn checkpoint(
    conn: &mut PgConnection,
    name: &str,
    g: Generation,
) -> Result<Option<Position>, sqlx::Error> {
    let pos: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM projection_generations WHERE projection = $1 AND generation = $2 AND state <> 'retired'",
    )
    .bind(name)
    .bind(g)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(pos.map(|p| Position(p as u64)))
}

/// Keeps the planner's statistics of a generation's tables fresh while it grows: a new generation
/// (after a rebuild, or on a new database) has none until autovacuum comes by, and queries on
/// tables without statistics can pick plans that are slower by orders of magnitude. The tables are
/// analysed in the batch's transaction whenever the events written since the last analysis reach
/// the number written before it (so about log2(n) times while n events are written).
#[derive(Default)]
struct Statistics {
    written: usize,
    at_last_analyze: usize,
}

impl Statistics {
    async fn after_batch(
        &mut self,
        tx: &mut PgConnection,
        projection: &dyn Projection,
        g: Generation,
        events: usize,
    ) -> Result<(), sqlx::Error> {
        self.written += events;
        if self.written - self.at_last_analyze < self.at_last_analyze.max(1000) {
            return Ok(());
        }
        for base in projection.tables() {
            sqlx::query(&format!("ANALYZE {}", super::table(base, g)))
                .execute(&mut *tx)
                .await?;
        }
        self.at_last_analyze = self.written;
        Ok(())
    }
}

/// Events per second over windows of at least a second.
struct Rate {
    since: Instant,
    from: Position,
    last: f64,
}

impl Rate {
    fn new(at: Position) -> Self {
        Self {
            since: Instant::now(),
            from: at,
            last: 0.0,
        }
    }

    fn observe(&mut self, at: Position) -> f64 {
        let elapsed = self.since.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            self.last = at.0.saturating_sub(self.from.0) as f64 / elapsed;
            *self = Self {
                since: Instant::now(),
                from: at,
                last: self.last,
            };
        }
        self.last
    }
}

/// Takes the generation's advisory lock on a connection of its own, waiting while another node
/// holds it.
async fn lead(pool: &PgPool, name: &str, g: Generation) -> Result<PgConnection, sqlx::Error> {
    loop {
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtext('footfall.projection.' || $1), $2)",
        )
        .bind(name)
        .bind(g)
        .fetch_one(&mut *conn)
        .await?;
        if got {
            // The lock lives as long as the session, so the connection leaves the pool: when the
            // runner stops, dropping it closes the session and frees the lock for another node.
            return Ok(conn.detach());
        }
        drop(conn);
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Keeps the projections of this node running.
pub struct ProjectionManager {
    projections: Vec<Arc<dyn Projection>>,
    log: Arc<dyn EventLog>,
    pool: PgPool,
    runners: HashMap<(&'static str, Generation), Addr<ProjectionRunner>>,
    busy: bool,
}

impl ProjectionManager {
    pub fn new(
        projections: Vec<Arc<dyn Projection>>,
        log: Arc<dyn EventLog>,
        pool: PgPool,
    ) -> Self {
        Self {
            projections,
            log,
            pool,
            runners: HashMap::new(),
            busy: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (projections, pool) = (self.projections.clone(), self.pool.clone());
        let work = async move {
            for p in &projections {
                if let Err(e) = generations::switch_if_caught_up(&pool, &**p).await {
                    tracing::warn!(projection = p.name(), error = %e, "generation switch failed");
                }
                if let Err(e) = generations::drop_retired(&pool, &**p, RETIRED_GRACE).await {
                    tracing::warn!(projection = p.name(), error = %e, "dropping retired tables failed");
                }
            }
            match crate::eventlog::postgres::analyze_if_stale(&pool).await {
                Ok(true) => tracing::info!("event log statistics refreshed"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot refresh the event log's statistics"),
            }
            generations::list(&pool).await
        };
        ctx.spawn(work.into_actor(self).map(|wanted, act, _| {
            act.busy = false;
            let wanted = match wanted {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read projection generations");
                    return;
                }
            };
            act.runners.retain(|_, addr| addr.connected());
            for row in wanted {
                // Generations built for another version of the code are not run here.
                let Some(p) = act.projections.iter().find(|p| {
                    p.name() == row.projection && p.schema_version() == row.schema_version
                }) else {
                    continue;
                };
                act.runners
                    .entry((p.name(), row.generation))
                    .or_insert_with(|| {
                        ProjectionRunner {
                            projection: p.clone(),
                            generation: row.generation,
                            log: act.log.clone(),
                            pool: act.pool.clone(),
                        }
                        .start()
                    });
            }
        }));
    }
}

impl Actor for ProjectionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
        ctx.run_interval(RETRY_INTERVAL, |act, ctx| act.tick(ctx));
    }
}
