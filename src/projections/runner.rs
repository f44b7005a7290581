//! The actors that run projections.
//!
//! A [`ProjectionRunner`] follows the log for one partition of one generation of one projection
//! (a [`Slot`]). It writes each batch's read-model changes **and** its partition's checkpoint in
//! one transaction, so every event takes effect exactly once across crashes and restarts. It runs
//! on one node at a time: it holds a session advisory lock on its own connection, and another
//! node's runner takes over when that connection dies. It stops when its generation is retired.
//!
//! A partitioned projection's generation has several partitions; each event belongs to the
//! partition its key falls in ([`Projection::partition_key`], [`partition_of`]), or to every
//! partition, so the runners of one generation can run in parallel, on one node or several.
//!
//! [`super::manager::ProjectionManager`] keeps a runner alive for every live or building
//! generation.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sqlx::{PgConnection, PgPool};

use super::generations::Generation;
use super::leadership::{lead, renew_lease, take_lease, Team, RETRY_INTERVAL};
use super::{parked, Projection, ProjectionError, ProjectionWriter};
use crate::eventlog::{EventLog, EventRef, Position, RecordedEvent, StreamFilter};
use crate::telemetry;

/// Events per batch at most. Live batches are what arrived since the last one; a backlog (a rebuild)
/// reads full batches, and larger ones rewrite each hot rollup row fewer times (20,000 rebuilt
/// 20 % faster than 5,000).
const BATCH_SIZE: usize = 20_000;
/// The first and the longest wait before a failed runner tries again.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a caught-up runner waits for new events before it checks its lease again.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// While events trickle in, a runner gathers them for up to this long (or until it has
/// [`LINGER_EVENTS`]) before it writes: each write costs a dozen statements whatever its size, and
/// under live load batches of a few events made the projection, not the log, the limit of ingest.
/// Freshness stays far inside its 5 s target.
const LINGER: Duration = Duration::from_millis(200);
const LINGER_EVENTS: usize = 2_000;

/// One runner's share of the work: a partition of a generation of a projection.
#[derive(Clone)]
pub struct Slot {
    pub projection: Arc<dyn Projection>,
    pub generation: Generation,
    pub partition: i32,
    pub partitions: i32,
}

impl Slot {
    pub(super) fn name(&self) -> &'static str {
        self.projection.name()
    }

    /// Whether this slot folds `e`.
    fn owns(&self, e: &EventRef<'_>) -> bool {
        self.partitions <= 1
            || self
                .projection
                .partition_key(e)
                .is_none_or(|key| partition_of(key, self.partitions) == self.partition)
    }

    /// What the slot reads of the log: its projection's streams, and of a partitioned
    /// generation's events only its partition's, chosen where the log stores them (each
    /// partition reads the whole log, but copies out and decodes only its share).
    fn filter(&self) -> StreamFilter {
        let filter = self.projection.filter();
        if self.partitions <= 1 {
            return filter;
        }
        let slot = self.clone();
        filter.selecting(Arc::new(move |e| slot.owns(e)))
    }

    /// The advisory lock that makes one node at a time run this slot. Partition 0 keeps the key
    /// a whole generation had before partitions existed, so older nodes and newer ones exclude
    /// each other during a rolling upgrade.
    pub(super) fn lock_keys(&self) -> (String, i32) {
        match self.partition {
            0 => (
                format!("footfall.projection.{}", self.name()),
                self.generation,
            ),
            p => (
                format!("footfall.projection.{}.{p}", self.name()),
                self.generation,
            ),
        }
    }
}

/// The partition (of `partitions`) of an event with this partition key. The key is mixed first
/// (Fibonacci hashing), so keys that are not uniform (sequential ids, say) spread evenly too.
pub fn partition_of(key: u64, partitions: i32) -> i32 {
    let mixed = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (mixed % partitions.max(1) as u64) as i32
}

pub struct ProjectionRunner {
    pub(super) slot: Slot,
    pub(super) log: Arc<dyn EventLog>,
    pub(super) pool: PgPool,
    pub(super) team: Team,
}

/// Why a runner ended without an error.
enum Ended {
    /// Its generation was retired (a rebuild replaced it).
    Retired,
    /// This node led more than its share of the generation: the slot is handed to another.
    Yielded,
}

impl Actor for ProjectionRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (slot, log, pool) = (self.slot.clone(), self.log.clone(), self.pool.clone());
        let team = self.team.clone();
        let work = async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let began = Instant::now();
                match run(&slot, &*log, &pool, &team).await {
                    Ok(Ended::Retired) => return,
                    Ok(Ended::Yielded) => {
                        tracing::info!(
                            projection = slot.name(),
                            generation = slot.generation,
                            partition = slot.partition,
                            "handed over to even out the nodes' shares"
                        );
                    }
                    Err(e) => {
                        tracing::error!(projection = slot.name(), generation = slot.generation,
                            partition = slot.partition, error = %e, "projection failed; retrying");
                        // Failures in quick succession back off; one after a run that lasted
                        // longer than the longest wait is a new incident: its wait starts over.
                        if began.elapsed() > MAX_BACKOFF {
                            backoff = FIRST_BACKOFF;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|(), _, ctx| ctx.stop()));
    }
}

async fn run(
    slot: &Slot,
    log: &dyn EventLog,
    pool: &PgPool,
    team: &Team,
) -> Result<Ended, ProjectionError> {
    let mut conn = lead(pool, slot, team).await?;
    let _leading = team.leading(slot);
    let leader = take_lease(slot, &mut conn).await?;
    // The lease is renewed beside the work, in a task of its own that ends with it: a task
    // dropped with two pool queries in flight (when the runtime shuts down, as at the end of every
    // test) panicked in the second connection's drop while unwinding from the first, and aborted.
    let renewal = {
        let (pool, slot) = (pool.clone(), slot.clone());
        AbortOnDrop(tokio::task::spawn_local(async move {
            renew_lease::<()>(&pool, &slot, leader).await
        }))
    };
    let ended = project(slot, log, conn, team).await;
    drop(renewal);
    ended
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Leads the slot on `conn`, which holds its lock.
async fn project(
    slot: &Slot,
    log: &dyn EventLog,
    mut conn: PgConnection,
    team: &Team,
) -> Result<Ended, ProjectionError> {
    let (projection, generation, name) = (&*slot.projection, slot.generation, slot.name());
    let Some(start) = checkpoint(&mut conn, slot).await? else {
        return Ok(Ended::Retired);
    };
    tracing::info!(
        projection = name,
        generation,
        partition = slot.partition,
        partitions = slot.partitions,
        checkpoint = start.0,
        "projection runner leading"
    );
    let mut writer = projection.writer(generation, slot.partition);
    let mut subscription = log.subscribe(start, slot.filter(), BATCH_SIZE).await?;
    let mut rate = Rate::new(start);
    // Tables are analysed each time the log read doubles, counted from its start: a runner that
    // resumes a large generation (after a restart) does not analyse it again and again while it
    // warms up.
    let mut stats = Statistics {
        read: start.0,
        at_last_analyze: start.0,
    };
    let mut replays_checked = Instant::now();
    // The batches of a backlog read ahead, oldest first: while one is applied, the writer may
    // prepare the next, and the one after is read. A read follows only a full batch, so a batch
    // short of full (the backlog's end, or nothing) is always the last one read.
    let mut ahead: VecDeque<Vec<RecordedEvent>> = VecDeque::new();
    // Whether the last batch ended a backlog: the read after it does not wait, so that a runner
    // that has just caught up says so at once (a rebuild is switched in on it).
    let mut backlog_ended = false;
    loop {
        if team.should_yield(slot) {
            // Between batches: everything applied is committed with its checkpoint.
            return Ok(Ended::Yielded);
        }
        if replays_checked.elapsed() >= RETRY_INTERVAL {
            replays_checked = Instant::now();
            if !replay_parked(&mut conn, slot, log, &mut writer).await? {
                return Ok(Ended::Retired);
            }
        }
        let wait = if std::mem::take(&mut backlog_ended) {
            Duration::ZERO
        } else {
            IDLE_WAIT
        };
        let (mut events, read_ahead) = match ahead.pop_front() {
            Some(events) => (events, true),
            None => (subscription.next(wait).await?, false),
        };
        if !read_ahead && !events.is_empty() && events.len() < LINGER_EVENTS {
            // One read after the wait: reading at every append while events trickle in cost a
            // few statements per append and runner.
            subscription
                .linger(LINGER_EVENTS - events.len(), LINGER)
                .await;
            events.extend(subscription.next(Duration::ZERO).await?);
        }
        let Some(last) = events.last() else {
            // Caught up: record how far the log was read (other streams' and partitions' events
            // included), which also confirms the generation is still wanted and that the
            // leader's connection, holding the lock, is alive. A rebuild analyses its tables
            // before it says so (see [`Statistics`]).
            let position = subscription.position();
            stats
                .after_batch(&mut conn, slot, position, Reading::CaughtUp)
                .await?;
            let events_per_second = rate.observe(position);
            if !save_checkpoint(&mut conn, slot, position, events_per_second).await? {
                return Ok(Ended::Retired);
            }
            metrics::gauge!(telemetry::PROJECTION_LAG_SECONDS, "projection" => name).set(0.0);
            metrics::gauge!(telemetry::PROJECTION_LAG_EVENTS, "projection" => name).set(0.0);
            continue;
        };
        let started = Instant::now();
        let (read, last_position, last_recorded_at) =
            (events.len(), last.position, last.recorded_at);
        let reading = if read >= BATCH_SIZE {
            Reading::Backlog
        } else {
            Reading::CaughtUp
        };
        let mut batch = Batch {
            conn: &mut conn,
            slot,
            writer: &mut writer,
            stats: &mut stats,
            rate: &mut rate,
            reading,
        };
        // In a backlog, the batch after this one is in hand before this one is applied, so that
        // the writer can fold it while this one is written; the one after it is read meanwhile
        // (on another connection, its records decoded here). Only the checkpoint says what was
        // applied, so batches read ahead and then dropped (the runner retired, yielding or
        // failing) are simply read again.
        let applied = if reading == Reading::Backlog {
            if ahead.is_empty() {
                ahead.push_back(subscription.next(Duration::ZERO).await?);
            }
            let next = &ahead[0];
            let more = next.len() >= BATCH_SIZE;
            let (applied, after) =
                tokio::join!(batch.apply_or_park(&events, last_position, next), async {
                    if more {
                        Some(subscription.next(Duration::ZERO).await)
                    } else {
                        None
                    }
                });
            if let Some(after) = after {
                ahead.push_back(after?);
            }
            applied?
        } else {
            batch.apply_or_park(&events, last_position, &[]).await?
        };
        if !applied {
            return Ok(Ended::Retired);
        }
        backlog_ended = read_ahead && ahead.is_empty();

        let head = log.head().await?.position;
        metrics::counter!(telemetry::PROJECTION_EVENTS, "projection" => name)
            .increment(read as u64);
        metrics::histogram!(telemetry::PROJECTION_BATCH_DURATION, "projection" => name)
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!(telemetry::PROJECTION_LAG_EVENTS, "projection" => name)
            .set(head.0.saturating_sub(last_position.0) as f64);
        let age = (chrono::Utc::now() - last_recorded_at)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0;
        metrics::gauge!(telemetry::PROJECTION_LAG_SECONDS, "projection" => name).set(age);
    }
}

/// One batch of a runner, applied in parts that each commit with their checkpoint.
struct Batch<'a> {
    conn: &'a mut PgConnection,
    slot: &'a Slot,
    writer: &'a mut Box<dyn ProjectionWriter>,
    stats: &'a mut Statistics,
    rate: &'a mut Rate,
    reading: Reading,
}

impl Batch<'_> {
    /// Applies the slot's events in order, then moves its checkpoint to `read_to` (the last event
    /// read, whichever partition it belonged to). A part that fails because of an event's own
    /// data is halved until that event stands alone, which is then parked (see [`parked`]);
    /// every other event is applied. `next` is the batch to be applied after these, which the
    /// writer may prepare meanwhile. `false` when the generation was retired meanwhile.
    async fn apply_or_park(
        &mut self,
        events: &[RecordedEvent],
        read_to: Position,
        next: &[RecordedEvent],
    ) -> Result<bool, ProjectionError> {
        let (projection, generation) = (&*self.slot.projection, self.slot.generation);
        let name = projection.name();
        if events.is_empty() {
            let events_per_second = self.rate.observe(read_to);
            return Ok(save_checkpoint(self.conn, self.slot, read_to, events_per_second).await?);
        }
        // Parts still to apply, the next one last.
        let mut parts: Vec<&[RecordedEvent]> = vec![events];
        while let Some(part) = parts.pop() {
            let Some(last) = part.last() else { continue };
            // The last part also takes the checkpoint past the other partitions' events.
            let (to, then) = if parts.is_empty() {
                (read_to, next)
            } else {
                (last.position, &[][..])
            };
            let mut tx = sqlx::Connection::begin(&mut *self.conn).await?;
            let failure = match self.writer.apply_before(&mut tx, part, then).await {
                Ok(prepared) => {
                    if prepared {
                        metrics::counter!(telemetry::PROJECTION_PREPARED_AHEAD, "projection" => name)
                            .increment(1);
                    }
                    None
                }
                Err(e) if parked::is_data_error(&e) => Some(e),
                Err(e) => return Err(e),
            };
            match failure {
                None => {
                    self.stats
                        .after_batch(&mut tx, self.slot, to, self.reading)
                        .await?;
                }
                Some(e) => {
                    tx.rollback().await?;
                    // The writer may cache state of the part that failed.
                    *self.writer = projection.writer(generation, self.slot.partition);
                    if part.len() > 1 {
                        let (first, second) = part.split_at(part.len() / 2);
                        parts.push(second);
                        parts.push(first);
                        continue;
                    }
                    tracing::error!(projection = name, generation,
                        position = last.position.0, error = %e, "event parked");
                    metrics::counter!(telemetry::PROJECTION_PARKED, "projection" => name)
                        .increment(1);
                    tx = sqlx::Connection::begin(&mut *self.conn).await?;
                    parked::park(&mut tx, name, generation, last, &e).await?;
                }
            }
            let events_per_second = self.rate.observe(to);
            if !save_checkpoint(&mut tx, self.slot, to, events_per_second).await? {
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
    slot: &Slot,
    log: &dyn EventLog,
    writer: &mut Box<dyn ProjectionWriter>,
) -> Result<bool, ProjectionError> {
    let (projection, generation, name) = (&*slot.projection, slot.generation, slot.name());
    let requested = parked::replays_requested(conn, name, generation).await?;
    if requested.is_empty() {
        return Ok(true);
    }
    for position in requested {
        let events = log
            .read_all(Position(position - 1), 1, &StreamFilter::all())
            .await?;
        let Some(event) = events
            .first()
            .filter(|e| e.position.0 == position && slot.owns(&e.as_ref()))
        else {
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
                *writer = projection.writer(generation, slot.partition);
                parked::park(conn, name, generation, event, &e).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(checkpoint(conn, slot).await?.is_some())
}

/// Moves the slot's checkpoint forward (never back), and the generation's to the lowest of its
/// partitions'; `false` when the generation is retired or gone. The generation's row is updated
/// last, so partitions wait for each other only for the commit.
async fn save_checkpoint(
    conn: &mut PgConnection,
    slot: &Slot,
    position: Position,
    events_per_second: f64,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE projection_partitions SET position = GREATEST(position, $4), events_per_second = $5 \
         WHERE projection = $1 AND generation = $2 AND partition = $3",
    )
    .bind(slot.name())
    .bind(slot.generation)
    .bind(slot.partition)
    .bind(position.0 as i64)
    .bind(events_per_second)
    .execute(&mut *conn)
    .await?;
    let updated = sqlx::query(
        "UPDATE projection_generations g SET (position, events_per_second) = \
           (SELECT GREATEST(g.position, min(p.position)), sum(p.events_per_second) \
            FROM projection_partitions p WHERE p.projection = g.projection AND p.generation = g.generation) \
         WHERE projection = $1 AND generation = $2 AND state <> 'retired'",
    )
    .bind(slot.name())
    .bind(slot.generation)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// The slot's checkpoint, or `None` when its generation is retired or gone. A generation of one
/// partition may have been advanced by a node older than partitions (rolling upgrades), which
/// moved only the generation's checkpoint: the greater of the two is where it stands.
async fn checkpoint(conn: &mut PgConnection, slot: &Slot) -> Result<Option<Position>, sqlx::Error> {
    let pos: Option<i64> = sqlx::query_scalar(
        "SELECT GREATEST(p.position, CASE WHEN g.partitions = 1 THEN g.position ELSE 0 END) \
         FROM projection_generations g JOIN projection_partitions p USING (projection, generation) \
         WHERE g.projection = $1 AND g.generation = $2 AND p.partition = $3 AND g.state <> 'retired'",
    )
    .bind(slot.name())
    .bind(slot.generation)
    .bind(slot.partition)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(pos.map(|p| Position(p as u64)))
}

/// Keeps the planner's statistics of a generation's tables fresh while it grows: a new generation
/// (after a rebuild, or on a new database) has none until autovacuum comes by, and queries on
/// tables without statistics can pick plans that are slower by orders of magnitude. The tables are
/// analysed in the batch's transaction whenever the events written since the last analysis reach
/// the number written before it (so about log2(n) times while n events are written).
///
/// A generation that serves no reads yet (a rebuild) and is replaying its backlog waits: its
/// writes look nothing up that statistics would help, and analysing its growing tables again and
/// again took a third of PostgreSQL's time in a rebuild. It analyses them once it has read up to
/// the log's head, before the checkpoint that lets it be switched in (or, if a flood of appends
/// keeps every read full until it is switched in, in its first batch as the live generation).
///
/// A generation's partitions share its tables and the work: each partition's runner analyses every
/// `partitions`-th of them (a rebuild's last analysis, 950 ms of one backend for the quick
/// profile's seed, is spread over the cores its partitions run on). Counting the log read rather
/// than the events applied, they all reach each size, whatever their share of the events.
struct Statistics {
    read: u64,
    at_last_analyze: u64,
}

/// Whether a runner's last read filled its batch (it is replaying a backlog) or reached the head.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Backlog,
    CaughtUp,
}

impl Statistics {
    async fn after_batch(
        &mut self,
        conn: &mut PgConnection,
        slot: &Slot,
        read_to: Position,
        reading: Reading,
    ) -> Result<(), sqlx::Error> {
        self.read = self.read.max(read_to.0);
        if self.read - self.at_last_analyze < self.at_last_analyze.max(1000) {
            return Ok(());
        }
        if reading == Reading::Backlog && !serves_reads(conn, slot).await? {
            return Ok(());
        }
        let partitions = slot.partitions.max(1) as usize;
        for base in slot
            .projection
            .tables()
            .iter()
            .skip(slot.partition as usize)
            .step_by(partitions)
        {
            sqlx::query(&format!("ANALYZE {}", super::table(base, slot.generation)))
                .execute(&mut *conn)
                .await?;
        }
        self.at_last_analyze = self.read;
        Ok(())
    }
}

/// Whether the slot's generation is the live one, which queries read.
async fn serves_reads(conn: &mut PgConnection, slot: &Slot) -> Result<bool, sqlx::Error> {
    let live: Option<bool> = sqlx::query_scalar(
        "SELECT state = 'live' FROM projection_generations WHERE projection = $1 AND generation = $2",
    )
    .bind(slot.name())
    .bind(slot.generation)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(live.unwrap_or(false))
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

#[cfg(test)]
mod tests {
    use super::partition_of;

    #[test]
    fn keys_spread_evenly_over_the_partitions() {
        assert_eq!(partition_of(12345, 1), 0);
        assert_eq!(partition_of(u64::MAX, 0), 0);
        // Stored checkpoints depend on it: the mapping never changes.
        assert_eq!(partition_of(12345, 7), 6);
        // Random keys, and sequential ones, spread evenly.
        let mut counts = [0; 4];
        let mut key: u64 = 1;
        for i in 0..4000u64 {
            key = key
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            counts[partition_of(key, 4) as usize] += 1;
            counts[partition_of(i, 4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (1600..2400).contains(&c)),
            "{counts:?}"
        );
    }
}
