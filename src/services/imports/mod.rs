//! Imports of history from other systems' files, each kind in a module of its own:
//!
//! - [`access_log`]: web-server logs become the same `HitRecorded` events as live traffic, through
//!   the same domain command, by their own time. Reports then show them where they happened, and
//!   a rule fixed later fixes them too, through a rebuild. Visitor keys come from the client
//!   address and user agent with a salt kept per property and file content (`import_salts`),
//!   never from the address alone, and the address is not stored.
//! - [`plausible_csv`]: Plausible's CSV export becomes imported aggregates, one event per file
//!   and day in the property's imports stream; deleting the import is an event too.
//!
//! Both append on the fast path (large appends, not the live Appender), and both are idempotent:
//! each event's id is derived from the property, the content hash and the event's place in it, and
//! the log skips ids it holds, so importing a file again appends nothing and an interrupted import
//! resumes where it stopped. Each run is a row of `imports` with its progress and counts.

mod access_log;
mod plausible_csv;

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::PropertyRecord;
use crate::domain::geo::GeoDb;
use crate::eventlog::{EventData, EventLog, EventLogError, ExpectedState, StreamAppend};

pub use plausible_csv::{Archive, ArchiveError};

/// Events per append.
const BATCH: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Log(#[from] EventLogError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What an import has read so far. For a Plausible CSV import, `lines` are data rows, `pageviews`
/// the pageviews of its `imported_visitors` file, `other` the files it ignored (not in the layout)
/// and `invalid` the rows it refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read_bytes: i64,
    pub lines: i64,
    /// Pageviews recorded (bots' included: reports count those apart, as for live traffic).
    pub pageviews: i64,
    /// Files of the CSV layout imported, and the days they hold.
    pub files: i64,
    pub days: i64,
    /// Of the pageviews, those whose user agent is a bot's.
    pub bots: i64,
    pub assets: i64,
    pub redirects: i64,
    pub errors: i64,
    /// Other methods than GET, and other statuses.
    pub other: i64,
    /// Lines that are not requests of the format, or whose hit the domain refuses.
    pub invalid: i64,
}

/// An import as `GET …/imports/{id}` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ImportStatus {
    pub id: Uuid,
    pub property_id: Uuid,
    pub kind: String,
    pub source: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub total_bytes: i64,
    pub read_bytes: i64,
    pub lines: i64,
    pub pageviews: i64,
    pub files: i64,
    pub days: i64,
    pub bots: i64,
    pub assets: i64,
    pub redirects: i64,
    pub errors: i64,
    pub other: i64,
    pub invalid: i64,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A file to import: the hash and size of its content (decompressed: a gzipped copy is the same
/// file), and where it came from.
pub struct Source {
    pub name: String,
    pub content_hash: [u8; 32],
    pub total_bytes: i64,
}

impl Source {
    /// Reads the content to its end for its hash.
    pub fn read(name: &str, mut content: impl Read) -> std::io::Result<Self> {
        let mut hash = Sha256::new();
        let total = std::io::copy(&mut content, &mut hash)?;
        Ok(Self {
            name: name.to_owned(),
            content_hash: hash.finalize().into(),
            total_bytes: total as i64,
        })
    }
}

/// The content of a file that may be gzipped (several members, as `cat a.gz b.gz` makes).
pub fn decompressed<'a>(raw: impl Read + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let mut raw = BufReader::new(raw);
    Ok(if raw.fill_buf()?.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    })
}

#[derive(Clone)]
pub struct Imports {
    log: Arc<dyn EventLog>,
    pool: PgPool,
    geo: Option<Arc<GeoDb>>,
}

impl Imports {
    pub fn new(log: Arc<dyn EventLog>, pool: PgPool, geo: Option<Arc<GeoDb>>) -> Self {
        Self { log, pool, geo }
    }

    /// Records the start of an import; returns its id.
    pub async fn begin(
        &self,
        property: &PropertyRecord,
        kind: &str,
        source: &Source,
    ) -> Result<Uuid, ImportError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO imports (id, property_id, kind, source, content_hash, state, total_bytes) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6)",
        )
        .bind(id)
        .bind(property.id)
        .bind(kind)
        .bind(&source.name)
        .bind(source.content_hash.as_slice())
        .bind(source.total_bytes)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Appends a batch to a stream (emptying the batch).
    async fn append(&self, stream: String, batch: &mut Vec<EventData>) -> Result<(), ImportError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.log
            .append(vec![StreamAppend {
                stream,
                expected: ExpectedState::Any,
                events: std::mem::take(batch),
            }])
            .await?;
        Ok(())
    }

    async fn record_progress(&self, id: Uuid, c: &Counts) -> Result<(), ImportError> {
        self.update(id, None, None, c).await
    }

    /// Records an import's outcome on its row (the final counts and the state in one statement:
    /// `done` is never seen without them) and returns it.
    async fn finish(
        &self,
        id: Uuid,
        outcome: Result<Counts, ImportError>,
    ) -> Result<Counts, ImportError> {
        let (state, error) = match &outcome {
            Ok(_) => ("done", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        let counts = outcome.as_ref().copied().unwrap_or_default();
        self.update(id, Some(state), error, &counts).await?;
        outcome
    }

    /// Writes the counts, and with a final `state` the outcome, in one statement. A failed
    /// import keeps the counts of its last progress.
    async fn update(
        &self,
        id: Uuid,
        state: Option<&str>,
        error: Option<String>,
        c: &Counts,
    ) -> Result<(), ImportError> {
        let failed = state == Some("failed");
        sqlx::query(
            "UPDATE imports SET read_bytes = CASE WHEN $11 THEN read_bytes ELSE $2 END, \
             lines = CASE WHEN $11 THEN lines ELSE $3 END, \
             pageviews = CASE WHEN $11 THEN pageviews ELSE $4 END, \
             files = CASE WHEN $11 THEN files ELSE $14 END, days = CASE WHEN $11 THEN days ELSE $15 END, \
             bots = CASE WHEN $11 THEN bots ELSE $5 END, assets = CASE WHEN $11 THEN assets ELSE $6 END, \
             redirects = CASE WHEN $11 THEN redirects ELSE $7 END, \
             errors = CASE WHEN $11 THEN errors ELSE $8 END, other = CASE WHEN $11 THEN other ELSE $9 END, \
             invalid = CASE WHEN $11 THEN invalid ELSE $10 END, \
             state = COALESCE($12, state), error = COALESCE($13, error), \
             finished_at = CASE WHEN $12 IS NULL THEN finished_at ELSE now() END WHERE id = $1",
        )
        .bind(id)
        .bind(c.read_bytes)
        .bind(c.lines)
        .bind(c.pageviews)
        .bind(c.bots)
        .bind(c.assets)
        .bind(c.redirects)
        .bind(c.errors)
        .bind(c.other)
        .bind(c.invalid)
        .bind(failed)
        .bind(state)
        .bind(error)
        .bind(c.files)
        .bind(c.days)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An import of the property, if it has that id.
    pub async fn status(
        &self,
        property: Uuid,
        id: Uuid,
    ) -> Result<Option<ImportStatus>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {STATUS_COLUMNS} FROM imports WHERE property_id = $1 AND id = $2"
        ))
        .bind(property)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The property's imports, newest first.
    pub async fn list(&self, property: Uuid) -> Result<Vec<ImportStatus>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {STATUS_COLUMNS} FROM imports WHERE property_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT 1000"
        ))
        .bind(property)
        .fetch_all(&self.pool)
        .await
    }
}

/// A version 8 (custom) UUID from the first 16 bytes of a digest.
fn uuid_v8(digest: &[u8]) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

const STATUS_COLUMNS: &str =
    "id, property_id, kind, source, state, total_bytes, read_bytes, lines, \
    pageviews, files, days, bots, assets, redirects, errors, other, invalid, error, started_at, finished_at";
