//! The PostgreSQL adapter of the event log.
//!
//! Gap-free global order: every append locks the single `event_log_head` row, assigns the next
//! positions and keeps the lock until it commits. Appends from any number of connections or
//! processes therefore commit in position order, and a reader that has seen position `p` can never
//! later find a new event below `p`. The lock is cheap because the Appender writes thousands of
//! events per transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use batch::{BatchRow, Batches, SELECT_BATCHES};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;
use wakers::Wakers;

use super::{
    AppendResult, EventData, EventLog, EventLogError, EventRef, ExpectedState, LogHead, Position,
    RecordedEvent, StreamAppend, StreamFilter, Subscription,
};

mod batch;
mod legacy;
mod wakers;

pub use legacy::convert_legacy_events;

/// The NOTIFY channel that announces new heads; the payload is the new head position, a space,
/// and the categories the append wrote, comma-separated (a bare position, from an older node,
/// concerns every category).
const CHANNEL: &str = "footfall_events";
const MAX_STREAM_NAME: usize = 200;
/// Pause before the NOTIFY listener reconnects (retry interval).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Batch rows a read fetches at a time.
const PAGE: usize = 16;
/// Stream names a process remembers by number, at most (about 100 bytes each).
const MAX_CACHED_STREAM_NAMES: usize = 1_000_000;

/// How long an append may wait for the log's lock, and run any one statement: past either it
/// fails, with nothing written.
#[derive(Debug, Clone, Copy)]
pub struct AppendTimeouts {
    pub lock: Duration,
    pub statement: Duration,
}

impl Default for AppendTimeouts {
    fn default() -> Self {
        Self {
            lock: Duration::from_secs(5),
            statement: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct PgEventLog {
    pool: PgPool,
    timeouts: AppendTimeouts,
    /// Stream names by `stream_no` (immutable once assigned).
    names: Arc<std::sync::Mutex<HashMap<i64, Arc<str>>>>,
    /// The newest heads this process knows of, per subscription filter: fed by its own appends
    /// and by NOTIFY from others.
    wakers: Arc<Wakers>,
    listener_started: Arc<std::sync::Once>,
}

impl PgEventLog {
    pub fn new(pool: PgPool) -> Self {
        Self::with_timeouts(pool, AppendTimeouts::default())
    }

    pub fn with_timeouts(pool: PgPool, timeouts: AppendTimeouts) -> Self {
        Self {
            pool,
            timeouts,
            names: Arc::default(),
            wakers: Arc::default(),
            listener_started: Arc::new(std::sync::Once::new()),
        }
    }

    /// Starts (once) the task that turns NOTIFYs from other processes into head updates.
    fn start_listener(&self) {
        self.listener_started.call_once(|| {
            let pool = self.pool.clone();
            let wakers = self.wakers.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = wakers::listen(&pool, &wakers).await {
                        tracing::warn!(error = %e, "event log listener lost its connection");
                    }
                    // Subscriptions also poll, so a lost listener only slows wake-ups down.
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            });
        });
    }
}

fn unavailable(e: sqlx::Error) -> EventLogError {
    EventLogError::Unavailable(Box::new(e))
}

fn satisfies(expected: ExpectedState, actual: Option<u64>) -> bool {
    match expected {
        ExpectedState::Any => true,
        ExpectedState::NoStream => actual.is_none(),
        ExpectedState::StreamExists => actual.is_some(),
        ExpectedState::Revision(r) => actual == Some(r),
    }
}

impl PgEventLog {
    /// Stream names by `stream_no`, from a cache of the immutable mapping.
    async fn stream_names(&self, numbers: &[i64]) -> Result<HashMap<i64, Arc<str>>, sqlx::Error> {
        let mut out = HashMap::with_capacity(numbers.len());
        let mut missing = Vec::new();
        {
            let cache = self.names.lock().unwrap_or_else(|e| e.into_inner());
            for n in numbers {
                match cache.get(n) {
                    Some(name) => {
                        out.insert(*n, name.clone());
                    }
                    None => missing.push(*n),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        missing.sort_unstable();
        missing.dedup();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT stream_no, stream_id FROM event_streams WHERE stream_no = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&self.pool)
        .await?;
        let mut cache = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + rows.len() > MAX_CACHED_STREAM_NAMES {
            cache.clear();
        }
        for (n, name) in rows {
            let name: Arc<str> = name.into();
            cache.insert(n, name.clone());
            out.insert(n, name);
        }
        Ok(out)
    }

    /// The batch rows a query selects.
    async fn fetch_batches(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<BatchRow>, EventLogError> {
        query
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(BatchRow::of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)
    }

    /// The events of batch rows, in position order; `keep` chooses which (from each event, its
    /// revision and position), before any is copied out of its row.
    async fn events_of(
        &self,
        rows: &[BatchRow],
        mut keep: impl FnMut(&EventRef<'_>, u64, u64) -> bool,
    ) -> Result<Vec<RecordedEvent>, EventLogError> {
        let numbers: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.streams.iter().copied())
            .collect();
        let names = self.stream_names(&numbers).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.iter().map(|r| r.event_ids.len()).sum());
        for row in rows {
            let records = batch::decode(row.records(), row.streams.len())
                .map_err(|e| EventLogError::Unavailable(Box::new(e)))?;
            if records.len() != row.event_ids.len() {
                return Err(EventLogError::Unavailable(
                    "a batch's records and event ids disagree".into(),
                ));
            }
            for (i, (record, id)) in records.into_iter().zip(&row.event_ids).enumerate() {
                let stream = names.get(&row.streams[record.stream]).ok_or_else(|| {
                    EventLogError::Unavailable("a batch names an unknown stream".into())
                })?;
                let position = row.first_position as u64 + i as u64;
                let event = EventRef {
                    stream,
                    event_type: record.event_type,
                    schema_version: record.schema_version,
                    data: record.data,
                };
                if !keep(&event, record.revision, position) {
                    continue;
                }
                out.push(RecordedEvent {
                    stream: stream.to_string(),
                    revision: record.revision,
                    position: Position(position),
                    id: *id,
                    event_type: record.event_type.to_owned(),
                    schema_version: record.schema_version,
                    data: record.data.to_vec(),
                    recorded_at: row.recorded_at,
                });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, EventLogError> {
        if let Some(bad) = appends
            .iter()
            .find(|a| a.stream.is_empty() || a.stream.len() > MAX_STREAM_NAME)
        {
            return Err(EventLogError::InvalidStream(bad.stream.clone()));
        }
        // An append is five round trips, each of which waits for a scheduled backend on a busy
        // machine: the transaction, the lock, the claim, the writes and the commit.
        //
        // An acknowledgement promises durability whatever the server's default, and a held lock
        // or a stuck statement fails the append (nothing written) instead of hanging it. The
        // append's statements are point lookups and inserts, whose plans do not depend on their
        // parameters: they reuse one generic plan per connection, where the pool's default (every
        // statement planned for its parameters, which the log's reads need) would plan each of
        // them on every append.
        let mut tx = self
            .pool
            .begin_with(format!(
                "BEGIN; SELECT set_config('synchronous_commit', 'on', true), \
                 set_config('lock_timeout', '{}ms', true), set_config('statement_timeout', '{}ms', true), \
                 set_config('plan_cache_mode', 'force_generic_plan', true)",
                self.timeouts.lock.as_millis(),
                self.timeouts.statement.as_millis()
            ))
            .await
            .map_err(unavailable)?;
        // The lock that serialises appenders, held until commit. It is a statement of its own: a
        // statement that failed after BEGIN in the one above (a lock timeout) would leave the
        // connection in a failed transaction that the pool does not roll back; and every later
        // statement's snapshot sees what the appends before this one committed.
        sqlx::query("SELECT 1 FROM event_log_head FOR UPDATE")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;

        // The head, the ids the log does not hold yet (the others are idempotent retries), and
        // the revisions of the streams.
        let ids: Vec<Uuid> = appends
            .iter()
            .flat_map(|a| a.events.iter().map(|e| e.id))
            .collect();
        let names: Vec<&str> = appends.iter().map(|a| a.stream.as_str()).collect();
        let claimed = sqlx::query(
            "WITH fresh AS (INSERT INTO event_ids (event_id) SELECT * FROM UNNEST($1::uuid[]) \
             ON CONFLICT DO NOTHING RETURNING event_id) \
             SELECT (SELECT position FROM event_log_head) AS head, \
                    ARRAY(SELECT event_id FROM fresh) AS fresh, s.names, s.revisions \
             FROM (SELECT array_agg(stream_id) AS names, array_agg(revision) AS revisions \
                   FROM event_streams WHERE stream_id = ANY($2)) s",
        )
        .bind(&ids)
        .bind(&names)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let head: i64 = claimed.try_get("head").map_err(unavailable)?;
        let fresh_ids: HashSet<Uuid> = claimed
            .try_get::<Vec<Uuid>, _>("fresh")
            .map_err(unavailable)?
            .into_iter()
            .collect();
        let mut seen: HashSet<Uuid> = ids
            .iter()
            .filter(|id| !fresh_ids.contains(id))
            .copied()
            .collect();
        let existing: Option<Vec<String>> = claimed.try_get("names").map_err(unavailable)?;
        let existing_revisions: Option<Vec<i64>> =
            claimed.try_get("revisions").map_err(unavailable)?;
        let mut revisions: HashMap<String, Option<u64>> = existing
            .unwrap_or_default()
            .into_iter()
            .zip(existing_revisions.unwrap_or_default())
            .map(|(name, revision)| (name, Some(revision as u64)))
            .collect();

        // The new events in position order, each with its stream's index in `appends`.
        let mut new: Vec<(usize, u64, &EventData)> = Vec::new();
        let mut results = Vec::with_capacity(appends.len());
        let mut position = head as u64;
        for (i, append) in appends.iter().enumerate() {
            let current = revisions.get(&append.stream).copied().flatten();
            let fresh: Vec<&EventData> =
                append.events.iter().filter(|e| seen.insert(e.id)).collect();
            if fresh.is_empty() && !append.events.is_empty() {
                // Every event is already in the log: an idempotent retry.
                results.push(AppendResult {
                    stream: append.stream.clone(),
                    revision: current,
                    position: Position(head as u64),
                });
                continue;
            }
            if !satisfies(append.expected, current) {
                return Err(EventLogError::WrongExpectedVersion {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual: current,
                });
            }
            let mut revision = current;
            for e in fresh {
                let next = revision.map_or(0, |r| r + 1);
                revision = Some(next);
                position += 1;
                new.push((i, next, e));
            }
            revisions.insert(append.stream.clone(), revision);
            results.push(AppendResult {
                stream: append.stream.clone(),
                revision,
                position: Position(position),
            });
        }
        if new.is_empty() {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(results);
        }

        let rows = Batches::of(&appends, &new, head);
        let (touched, last): (Vec<&str>, Vec<i64>) = revisions
            .iter()
            .filter_map(|(s, r)| r.map(|r| (s.as_str(), r as i64)))
            .unzip();
        let mut categories = rows.category.clone();
        categories.sort_unstable();
        categories.dedup();
        sqlx::query(
            "WITH s AS (INSERT INTO event_streams (stream_id, revision) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
                 ON CONFLICT (stream_id) DO UPDATE SET revision = EXCLUDED.revision \
                 RETURNING stream_id, stream_no), \
             b AS (INSERT INTO event_batches (first_position, last_position, category, streams, event_ids, records) \
                 SELECT r.first, r.last, r.category, \
                        ARRAY(SELECT s.stream_no FROM unnest(($6::text[])[r.names_from:r.names_to]) \
                              WITH ORDINALITY AS n(name, i) JOIN s ON s.stream_id = n.name ORDER BY n.i), \
                        ($9::uuid[])[(r.first - $10)::int : (r.last - $10)::int], r.records \
                 FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $7::int[], $8::int[], $11::bytea[]) \
                      AS r(first, last, category, names_from, names_to, records)), \
             h AS (UPDATE event_log_head SET position = $12) \
             SELECT pg_notify($13, $14)",
        )
        .bind(&touched)
        .bind(&last)
        .bind(&rows.first)
        .bind(&rows.last)
        .bind(&rows.category)
        .bind(&rows.names)
        .bind(&rows.names_from)
        .bind(&rows.names_to)
        .bind(&rows.event_ids)
        .bind(head)
        .bind(&rows.records)
        .bind(position as i64)
        .bind(CHANNEL)
        .bind(format!("{position} {}", categories.join(",")))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // Everything before COMMIT failing means nothing was written; COMMIT itself failing on a
        // lost connection leaves it open whether the server committed.
        tx.commit().await.map_err(|e| match e {
            sqlx::Error::Database(_) => unavailable(e),
            e => EventLogError::OutcomeUnknown(Box::new(e)),
        })?;

        self.wakers.appended(position, Some(&categories));
        Ok(results)
    }

    async fn contains_all(&self, events: &[(String, Uuid)]) -> Result<bool, EventLogError> {
        let ids: Vec<Uuid> = events.iter().map(|(_, id)| *id).collect();
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", self.timeouts.lock.as_millis()))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        // An append holds this row's lock until it has committed or rolled back: waiting for it
        // here means no append that could still write these ids is in flight.
        sqlx::query("SELECT 1 FROM event_log_head FOR SHARE")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let found: i64 =
            sqlx::query_scalar("SELECT count(*) FROM event_ids WHERE event_id = ANY($1)")
                .bind(&ids)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        tx.rollback().await.map_err(unavailable)?;
        let wanted: HashSet<&Uuid> = ids.iter().collect();
        Ok(found as usize == wanted.len())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventLogError> {
        let Some(no): Option<i64> =
            sqlx::query_scalar("SELECT stream_no FROM event_streams WHERE stream_id = $1")
                .bind(stream)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?
        else {
            return Ok(vec![]);
        };
        // Batches are read in pages, in position order, until `limit` events are found.
        let mut out = Vec::new();
        let mut after = 0i64;
        while out.len() < limit {
            let sql = format!(
                "{SELECT_BATCHES} WHERE streams @> ARRAY[$1::bigint] AND first_position > $2 \
                 ORDER BY first_position LIMIT {PAGE}"
            );
            let rows = self
                .fetch_batches(sqlx::query(&sql).bind(no).bind(after))
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.first_position;
            let events = self
                .events_of(&rows, |e, revision, _| {
                    e.stream == stream && revision >= from
                })
                .await?;
            out.extend(events);
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
        filter: &StreamFilter,
    ) -> Result<Vec<RecordedEvent>, EventLogError> {
        let condition = if filter.categories.is_empty() {
            ""
        } else if filter.categories.iter().any(|c| c == "hits") {
            "AND category = ANY($2)"
        } else {
            // Lets the planner use the partial index that leaves hits out.
            "AND category = ANY($2) AND category <> 'hits'"
        };
        let mut out = Vec::new();
        let mut from = after.0 as i64;
        while out.len() < limit {
            // From the batch that holds position `from` + 1 on: an index range, wherever `from` is.
            let sql = format!(
                "{SELECT_BATCHES} WHERE first_position >= COALESCE((SELECT max(first_position) \
                   FROM event_batches WHERE first_position <= $1 + 1), 0) \
                 AND last_position > $1 {condition} ORDER BY first_position LIMIT {PAGE}"
            );
            let query = sqlx::query(&sql).bind(from).bind(&filter.categories);
            let rows = self.fetch_batches(query).await?;
            let Some(last) = rows.last() else { break };
            from = last.first_position + last.event_ids.len() as i64 - 1;
            let events = self
                .events_of(&rows, |e, _, position| {
                    position > after.0 && filter.keeps(e)
                })
                .await?;
            out.extend(events);
            if rows.len() < PAGE {
                // The last page: asking again would find nothing more.
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn head(&self) -> Result<LogHead, EventLogError> {
        let position: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        // Positions are dense (idempotent retries are filtered out before numbering), so the head
        // position is also the number of events.
        Ok(LogHead {
            position: Position(position as u64),
            events: Some(position as u64),
        })
    }

    async fn subscribe(
        &self,
        after: Position,
        filter: StreamFilter,
        batch_size: usize,
    ) -> Result<Box<dyn Subscription>, EventLogError> {
        self.start_listener();
        Ok(Box::new(PgSubscription {
            log: self.clone(),
            head: self.wakers.subscribe(&filter),
            after,
            filter,
            batch_size: batch_size.max(1),
        }))
    }
}

struct PgSubscription {
    log: PgEventLog,
    head: watch::Receiver<u64>,
    after: Position,
    filter: StreamFilter,
    batch_size: usize,
}

impl PgSubscription {
    async fn read(&mut self) -> Result<Vec<RecordedEvent>, EventLogError> {
        // The head is read first: the log is gap-free, so every event up to it is visible to the
        // read below, and a filtered read that finds nothing has passed all of them.
        let head = self.log.head().await?.position;
        let events = self
            .log
            .read_all(self.after, self.batch_size, &self.filter)
            .await?;
        match events.last() {
            Some(last) => self.after = last.position,
            None => self.after = self.after.max(head),
        }
        Ok(events)
    }
}

#[async_trait]
impl Subscription for PgSubscription {
    async fn next(&mut self, max_wait: Duration) -> Result<Vec<RecordedEvent>, EventLogError> {
        // Mark the current head as seen before reading, so an append that lands after the read
        // wakes the wait below.
        self.head.borrow_and_update();
        let events = self.read().await?;
        if !events.is_empty() || max_wait.is_zero() {
            return Ok(events);
        }
        // Either a head change (ours or a NOTIFY) or the poll interval ends the wait.
        let _ = tokio::time::timeout(max_wait, self.head.changed()).await;
        self.read().await
    }

    async fn linger(&mut self, events: usize, max_wait: Duration) {
        // The head this process knows of counts every category's events: it may end the wait
        // early, never late.
        let enough = self.after.0.saturating_add(events as u64);
        let _ = tokio::time::timeout(max_wait, self.head.wait_for(|head| *head >= enough)).await;
    }

    fn position(&self) -> Position {
        self.after
    }
}

/// Refreshes the planner's statistics of the log once a tenth of it (at least 1,000 batches) is
/// new since the last analysis. Autovacuum does it too, but can fall far behind a bulk load; a log
/// without statistics gets subscription reads planned as scans of the whole log.
///
/// Only the columns the reads' conditions name are analysed: the others (the records, the event
/// ids) are what made an analysis long (345–577 ms of a backend for 17,297 batches, against 59 ms
/// for these four), and ran every few seconds under ingest. Such an analysis leaves
/// `n_mod_since_analyze` as it was, so what is new is counted against the rows it counted
/// (`reltuples`); the log only grows.
pub async fn analyze_if_stale(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT s.n_live_tup - GREATEST(c.reltuples, 0) > GREATEST(1000, s.n_live_tup / 10) \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.relid = 'event_batches'::regclass",
    )
    .fetch_optional(pool)
    .await?;
    if stale != Some(true) {
        return Ok(false);
    }
    sqlx::query("ANALYZE event_batches (first_position, last_position, category, streams)")
        .execute(pool)
        .await?;
    Ok(true)
}
