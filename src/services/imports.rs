//! Imports of history: files from other systems turned into the same `HitRecorded` events as live
//! traffic, through the same domain command, appended to the log on the fast path (large appends,
//! not the live Appender), by their own time. Reports then show them where they happened, and a
//! rule fixed later fixes them too, through a rebuild.
//!
//! An import is idempotent: each event's id is derived from the property, the file's content hash
//! (decompressed) and the line number, and the log skips ids it holds, so importing a file again
//! appends nothing and an interrupted import resumes where it stopped. Visitor keys come from the client address
//! and user agent with a salt kept per property and file content (`import_salts`), never from the
//! address alone, and the address is not stored.

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::PropertyRecord;
use crate::domain::enrich::is_bot;
use crate::domain::geo::GeoDb;
use crate::domain::{Event, Geo, Hit, HitRequest, PropertyId, Protocol, RecordHits};
use crate::eventlog::{EventData, EventLog, EventLogError, ExpectedState, StreamAppend};
use crate::import::access_log::{self, Format, Kind};

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

/// What an import has read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read_bytes: i64,
    pub lines: i64,
    /// Pageviews recorded (bots' included: reports count those apart, as for live traffic).
    pub pageviews: i64,
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

    /// Imports an access log read from `reader` (the content `source` describes), calling
    /// `progress` after each append. Records the outcome on the import's row.
    pub async fn access_log(
        &self,
        id: Uuid,
        property: &PropertyRecord,
        format: Format,
        source: &Source,
        reader: impl BufRead,
        progress: impl FnMut(&Counts),
    ) -> Result<Counts, ImportError> {
        let outcome = self
            .run_access_log(id, property, format, source, reader, progress)
            .await;
        // The final counts and the state in one statement: `done` is never seen without them.
        let (state, error) = match &outcome {
            Ok(_) => ("done", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        let counts = outcome.as_ref().copied().unwrap_or_default();
        self.finish(id, state, error, &counts).await?;
        outcome
    }

    async fn run_access_log(
        &self,
        id: Uuid,
        property: &PropertyRecord,
        format: Format,
        source: &Source,
        mut reader: impl BufRead,
        mut progress: impl FnMut(&Counts),
    ) -> Result<Counts, ImportError> {
        let property_id = PropertyId::new(property.id);
        let salt = self.salt(property.id, &source.content_hash).await?;
        let mut counts = Counts::default();
        let mut batch: Vec<EventData> = Vec::with_capacity(BATCH);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf)?;
            if read == 0 {
                break;
            }
            counts.read_bytes += read as i64;
            counts.lines += 1;
            let text = String::from_utf8_lossy(&buf);
            let Some(line) = access_log::parse(text.trim_end_matches(['\n', '\r']), format) else {
                counts.invalid += 1;
                continue;
            };
            match line.kind() {
                Kind::Pageview => {}
                Kind::Asset => {
                    counts.assets += 1;
                    continue;
                }
                Kind::Redirect => {
                    counts.redirects += 1;
                    continue;
                }
                Kind::Error => {
                    counts.errors += 1;
                    continue;
                }
                Kind::Other => {
                    counts.other += 1;
                    continue;
                }
            }
            let at = line.time.with_timezone(&Utc);
            let url = if line.target.starts_with("http://") || line.target.starts_with("https://") {
                line.target.clone()
            } else {
                format!("https://{}{}", property.domain, line.target)
            };
            let request = HitRequest {
                name: Some("pageview".into()),
                url: Some(url),
                referrer: line.referrer.clone(),
                occurred_at: Some(at),
                ..HitRequest::default()
            };
            // The hit happened when the server logged it: that is also when it was received.
            let Ok(hit) = Hit::parse(request, at) else {
                counts.invalid += 1;
                continue;
            };
            let ip: Option<IpAddr> = line.client.parse().ok();
            let geo = match (&self.geo, ip) {
                (Some(db), Some(ip)) => db.lookup(ip),
                _ => Geo::default(),
            };
            // A client logged by host name is keyed by its name, salted the same way.
            let key_salt = match ip {
                Some(_) => salt.clone(),
                None => [salt.as_slice(), line.client.as_bytes()].concat(),
            };
            if line.user_agent.as_deref().is_some_and(is_bot) {
                counts.bots += 1;
            }
            counts.pageviews += 1;
            for e in (RecordHits {
                hit,
                properties: vec![property_id],
                protocol: Protocol::AccessLog,
                user_agent: line.user_agent,
                ip,
                geo,
                salt: key_salt,
                received_at: at,
            })
            .handle()
            {
                let event_id = event_id(property.id, &source.content_hash, counts.lines);
                batch.push(EventData::from_event(
                    event_id,
                    &Event::HitRecorded(Box::new(e)),
                )?);
            }
            if batch.len() >= BATCH {
                self.append(property_id, &mut batch).await?;
                self.record_progress(id, &counts).await?;
                progress(&counts);
            }
        }
        self.append(property_id, &mut batch).await?;
        progress(&counts);
        Ok(counts)
    }

    async fn append(
        &self,
        property: PropertyId,
        batch: &mut Vec<EventData>,
    ) -> Result<(), ImportError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.log
            .append(vec![StreamAppend {
                stream: property.hits_stream(),
                expected: ExpectedState::Any,
                events: std::mem::take(batch),
            }])
            .await?;
        Ok(())
    }

    async fn record_progress(&self, id: Uuid, c: &Counts) -> Result<(), ImportError> {
        self.update(id, None, None, c).await
    }

    async fn finish(
        &self,
        id: Uuid,
        state: &str,
        error: Option<String>,
        c: &Counts,
    ) -> Result<(), ImportError> {
        self.update(id, Some(state), error, c).await
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The salt of this property's imports of this content: made once, at random.
    async fn salt(&self, property: Uuid, content_hash: &[u8; 32]) -> Result<Vec<u8>, ImportError> {
        let fresh: Vec<u8> = [Uuid::new_v4(), Uuid::new_v4()]
            .iter()
            .flat_map(|u| u.into_bytes())
            .collect();
        sqlx::query(
            "INSERT INTO import_salts (property_id, content_hash, salt) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(property)
        .bind(content_hash.as_slice())
        .bind(&fresh)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar(
            "SELECT salt FROM import_salts WHERE property_id = $1 AND content_hash = $2",
        )
        .bind(property)
        .bind(content_hash.as_slice())
        .fetch_one(&self.pool)
        .await?)
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

const STATUS_COLUMNS: &str =
    "id, property_id, kind, source, state, total_bytes, read_bytes, lines, \
    pageviews, bots, assets, redirects, errors, other, invalid, error, started_at, finished_at";

/// The id of the event of line `line` (1-based) of a file: the same for every import of it.
fn event_id(property: Uuid, content_hash: &[u8; 32], line: i64) -> Uuid {
    let mut h = Sha256::new();
    h.update(property.as_bytes());
    h.update(content_hash);
    h.update(line.to_le_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A version 8 (custom) UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_depend_on_property_content_and_line_only() {
        let (p, q) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(event_id(p, &a, 7), event_id(p, &a, 7));
        assert_ne!(event_id(p, &a, 7), event_id(p, &a, 8));
        assert_ne!(event_id(p, &a, 7), event_id(q, &a, 7));
        assert_ne!(event_id(p, &a, 7), event_id(p, &b, 7));
        assert_eq!(event_id(p, &a, 7).get_version_num(), 8);
    }
}
