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
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    AppendResult, EventLog, EventLogError, ExpectedState, LogHead, Position, RecordedEvent,
    StreamAppend, StreamFilter, Subscription,
};

/// The NOTIFY channel that announces new heads; the payload is the new head position.
const CHANNEL: &str = "footfall_events";
const MAX_STREAM_NAME: usize = 200;
/// Pause before the NOTIFY listener reconnects (retry interval).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

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
    /// The newest head this process knows of, fed by its own appends and by NOTIFY from others.
    head: Arc<watch::Sender<u64>>,
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
            head: Arc::new(watch::Sender::new(0)),
            listener_started: Arc::new(std::sync::Once::new()),
        }
    }

    /// Starts (once) the task that turns NOTIFYs from other processes into head updates.
    fn start_listener(&self) {
        self.listener_started.call_once(|| {
            let pool = self.pool.clone();
            let head = self.head.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = listen(&pool, &head).await {
                        tracing::warn!(error = %e, "event log listener lost its connection");
                    }
                    // Subscriptions also poll, so a lost listener only slows wake-ups down.
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            });
        });
    }
}

async fn listen(pool: &PgPool, head: &watch::Sender<u64>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        let n = listener.recv().await?;
        if let Ok(pos) = n.payload().parse::<u64>() {
            head.send_if_modified(|h| {
                let newer = pos > *h;
                *h = (*h).max(pos);
                newer
            });
        }
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

fn recorded(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        stream: row.try_get("stream_id")?,
        revision: row.try_get::<i64, _>("revision")? as u64,
        position: Position(row.try_get::<i64, _>("position")? as u64),
        id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i16, _>("schema_version")? as u16,
        data: row.try_get("data")?,
        recorded_at: row.try_get::<DateTime<Utc>, _>("recorded_at")?,
    })
}

fn decode_rows(rows: &[PgRow]) -> Result<Vec<RecordedEvent>, EventLogError> {
    rows.iter()
        .map(recorded)
        .collect::<Result<_, _>>()
        .map_err(unavailable)
}

const SELECT_EVENTS: &str = "SELECT stream_id, revision, position, event_id, event_type, \
     schema_version, data::text AS data, recorded_at FROM events";

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, EventLogError> {
        if let Some(bad) = appends
            .iter()
            .find(|a| a.stream.is_empty() || a.stream.len() > MAX_STREAM_NAME)
        {
            return Err(EventLogError::InvalidStream(bad.stream.clone()));
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // An acknowledgement promises durability whatever the server's default, and a held lock
        // or a stuck statement fails the append (nothing written) instead of hanging it.
        sqlx::query(
            "SELECT set_config('synchronous_commit', 'on', true), \
                    set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
        )
        .bind(format!("{}ms", self.timeouts.lock.as_millis()))
        .bind(format!("{}ms", self.timeouts.statement.as_millis()))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // The lock that serialises appenders; held until commit.
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;

        let ids: Vec<Uuid> = appends
            .iter()
            .flat_map(|a| a.events.iter().map(|e| e.id))
            .collect();
        let mut seen: HashSet<Uuid> =
            sqlx::query_scalar("SELECT event_id FROM events WHERE event_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .into_iter()
                .collect();

        let names: Vec<&str> = appends.iter().map(|a| a.stream.as_str()).collect();
        let mut revisions: HashMap<String, Option<u64>> =
            sqlx::query("SELECT stream_id, revision FROM event_streams WHERE stream_id = ANY($1)")
                .bind(&names)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("stream_id")?,
                        Some(r.try_get::<i64, _>("revision")? as u64),
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(unavailable)?;

        let mut position = head;
        let (
            mut positions,
            mut streams,
            mut revs,
            mut event_ids,
            mut types,
            mut versions,
            mut data,
        ) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut results = Vec::with_capacity(appends.len());
        for append in &appends {
            let current = revisions.get(&append.stream).copied().flatten();
            let new: Vec<_> = append.events.iter().filter(|e| seen.insert(e.id)).collect();
            if new.is_empty() && !append.events.is_empty() {
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
            for e in new {
                let next = revision.map_or(0, |r| r + 1);
                revision = Some(next);
                position += 1;
                positions.push(position);
                streams.push(append.stream.as_str());
                revs.push(next as i64);
                event_ids.push(e.id);
                types.push(e.event_type.as_str());
                versions.push(e.schema_version as i16);
                data.push(e.data.as_str());
            }
            revisions.insert(append.stream.clone(), revision);
            results.push(AppendResult {
                stream: append.stream.clone(),
                revision,
                position: Position(position as u64),
            });
        }
        if position == head {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(results);
        }

        sqlx::query(
            "INSERT INTO events (position, stream_id, revision, event_id, event_type, schema_version, data) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], \
                                  $6::smallint[], $7::text[]::json[])",
        )
        .bind(&positions)
        .bind(&streams)
        .bind(&revs)
        .bind(&event_ids)
        .bind(&types)
        .bind(&versions)
        .bind(&data)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;

        let (touched, last): (Vec<&str>, Vec<i64>) = revisions
            .iter()
            .filter_map(|(s, r)| r.map(|r| (s.as_str(), r as i64)))
            .unzip();
        sqlx::query(
            "INSERT INTO event_streams (stream_id, revision) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (stream_id) DO UPDATE SET revision = EXCLUDED.revision",
        )
        .bind(&touched)
        .bind(&last)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;

        sqlx::query("UPDATE event_log_head SET position = $1")
            .bind(position)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(position.to_string())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        // Everything before COMMIT failing means nothing was written; COMMIT itself failing on a
        // lost connection leaves it open whether the server committed.
        tx.commit().await.map_err(|e| match e {
            sqlx::Error::Database(_) => unavailable(e),
            e => EventLogError::OutcomeUnknown(Box::new(e)),
        })?;

        let position = position as u64;
        self.head.send_if_modified(|h| {
            let newer = position > *h;
            *h = (*h).max(position);
            newer
        });
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
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.rollback().await.map_err(unavailable)?;
        Ok(found as usize == ids.len())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventLogError> {
        let rows = sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE stream_id = $1 AND revision >= $2 ORDER BY revision LIMIT $3"
        ))
        .bind(stream)
        .bind(from as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        decode_rows(&rows)
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
            "AND category = ANY($3)"
        } else {
            // Lets the planner use the partial index that leaves hits out.
            "AND category = ANY($3) AND category <> 'hits'"
        };
        let rows = sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE position > $1 {condition} ORDER BY position LIMIT $2"
        ))
        .bind(after.0 as i64)
        .bind(limit as i64)
        .bind(&filter.categories)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        decode_rows(&rows)
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
            head: self.head.subscribe(),
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
        if !events.is_empty() {
            return Ok(events);
        }
        // Either a head change (ours or a NOTIFY) or the poll interval ends the wait.
        let _ = tokio::time::timeout(max_wait, self.head.changed()).await;
        self.read().await
    }

    fn position(&self) -> Position {
        self.after
    }
}

/// Refreshes the planner's statistics of the log once a tenth of it (at least 100,000 events) is
/// new since the last analysis. Autovacuum does it too, but can fall far behind a bulk load; a log
/// without statistics gets subscription reads planned as scans of the whole log.
pub async fn analyze_if_stale(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT n_mod_since_analyze > GREATEST(100000, n_live_tup / 10) \
         FROM pg_stat_user_tables WHERE relid = 'events'::regclass",
    )
    .fetch_optional(pool)
    .await?;
    if stale != Some(true) {
        return Ok(false);
    }
    sqlx::query("ANALYZE events").execute(pool).await?;
    Ok(true)
}
