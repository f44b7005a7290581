//! The versions of properties' read models, read for many reports at once. Every report reads its
//! property's version before it looks for a shared answer, and a dashboard asks half a dozen reports
//! at once, of one property, from many browsers: one statement per report would make a statement and
//! a connection the cost of every answer, even a shared one. Reads are grouped instead, as appends
//! are committed in groups: while one is in flight, the reports that arrive wait; when it ends, one
//! of them reads for all of them. A report is answered only by a read that began after it arrived,
//! so its version is never older than one it would have read itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::reads::Held;
use crate::projections::imported;
use crate::readmodel::schema::HIT_VERSIONS;

/// The live generation of `hits`, the sum of the property's positions in it, and (for a query
/// that includes imports) the position of the property's last imports event applied.
pub type Version = (i32, i64, i64);

/// What a waiting report is told when a read ends.
enum Turn {
    /// Its version was read.
    Read(Version),
    /// The read failed, with this error.
    Failed(Failure),
    /// The next read is this report's to make, for itself and those waiting then.
    Lead,
}

/// A report waiting for its version: its property, whether it includes imports, and where to tell it.
type Waiter = (Uuid, bool, oneshot::Sender<Turn>);

#[derive(Default)]
struct Queue {
    /// Whether a report is reading (its read in flight, or about to be).
    reading: bool,
    waiting: VecDeque<Waiter>,
}

/// Grouped version reads on one database (the primary, or a replica).
#[derive(Clone)]
pub struct Versions {
    pool: PgPool,
    queue: Arc<Mutex<Queue>>,
}

impl Versions {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Arc::default(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The version of `property`'s read models (with its imports' when `imports`).
    pub async fn of(&self, property: Uuid, imports: bool) -> Result<Version, sqlx::Error> {
        let waiting = {
            let mut queue = self.queue();
            if queue.reading {
                let (tx, rx) = oneshot::channel();
                queue.waiting.push_back((property, imports, tx));
                Some(Waiting(self, rx))
            } else {
                queue.reading = true;
                None
            }
        };
        if let Some(mut waiting) = waiting {
            match (&mut waiting.1).await {
                Ok(Turn::Read(version)) => return Ok(version),
                Ok(Turn::Failed(failure)) => return Err(failure.error()),
                Ok(Turn::Lead) => {}
                // The report that read was dropped (its client gone) before it told the others.
                Err(_) => return self.read_one(property, imports).await,
            }
        }
        let lead = Lead(self);
        let group: Vec<Waiter> = self.queue().waiting.drain(..).collect();
        let mut properties: Vec<Uuid> = group.iter().map(|(p, ..)| *p).collect();
        properties.push(property);
        let with_imports = imports || group.iter().any(|(_, i, _)| *i);
        let read = read(&self.pool, &properties, with_imports).await;
        drop(lead);
        match read {
            Ok(versions) => {
                // In the order read: the group's, then this report's.
                for ((_, imports, tx), version) in group.into_iter().zip(&versions) {
                    let _ = tx.send(Turn::Read(only(*version, imports)));
                }
                Ok(only(versions[properties.len() - 1], imports))
            }
            Err(e) => {
                let failure = Failure::of(&e);
                for (.., tx) in group {
                    let _ = tx.send(Turn::Failed(failure.clone()));
                }
                Err(e)
            }
        }
    }

    async fn read_one(&self, property: Uuid, imports: bool) -> Result<Version, sqlx::Error> {
        Ok(read(&self.pool, &[property], imports).await?[0])
    }
}

/// A report's place in the queue. Dropped (its client gone) once told to lead, it passes the lead on.
struct Waiting<'a>(&'a Versions, oneshot::Receiver<Turn>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.1.close();
        if let Ok(Turn::Lead) = self.1.try_recv() {
            drop(Lead(self.0));
        }
    }
}

/// Held while a report reads for a group; when it ends (or the report is dropped), the first of
/// those who arrived meanwhile leads the next read, or no one reads.
struct Lead<'a>(&'a Versions);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        // A report that was dropped cannot lead: the next one does.
        while let Some((.., tx)) = queue.waiting.pop_front() {
            if tx.send(Turn::Lead).is_ok() {
                return;
            }
        }
        queue.reading = false;
    }
}

/// The version without the imports' position when the report does not include imports.
fn only((generation, hits, imported): Version, imports: bool) -> Version {
    (generation, hits, if imports { imported } else { 0 })
}

/// The versions of `properties`, in their order.
async fn read(
    pool: &PgPool,
    properties: &[Uuid],
    imports: bool,
) -> Result<Vec<Version>, sqlx::Error> {
    let imported = if imports {
        format!(
            "(SELECT position FROM {} i WHERE i.property_id = p)",
            imported::VERSIONS
        )
    } else {
        "0".to_owned()
    };
    let sql = format!(
        "SELECT COALESCE((SELECT generation FROM projection_generations \
           WHERE projection = 'hits' AND state = 'live'), 0), \
         COALESCE((SELECT sum(position) FROM {HIT_VERSIONS} v WHERE v.property_id = p), 0)::bigint, \
         COALESCE({imported}, 0)::bigint \
         FROM unnest($1::uuid[]) WITH ORDINALITY AS u(p, n) ORDER BY n"
    );
    metrics::counter!(crate::telemetry::QUERY_VERSION_READS).increment(1);
    Held::read(pool, async |db| {
        sqlx::query_as(&sql).bind(properties).fetch_all(db).await
    })
    .await
}

/// A failed read's error, told to each report of its group: as each would have seen it, in what
/// the callers look at (where to answer from instead, and which status to answer with).
#[derive(Clone, Debug)]
enum Failure {
    Database {
        message: String,
        code: Option<String>,
    },
    Io(std::io::ErrorKind, String),
    PoolTimedOut,
    PoolClosed,
    Other(String),
}

impl Failure {
    fn of(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(d) => Self::Database {
                message: d.message().to_owned(),
                code: d.code().map(|c| c.into_owned()),
            },
            sqlx::Error::Io(e) => Self::Io(e.kind(), e.to_string()),
            sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
                Self::Io(std::io::ErrorKind::Other, e.to_string())
            }
            sqlx::Error::PoolTimedOut => Self::PoolTimedOut,
            sqlx::Error::PoolClosed => Self::PoolClosed,
            e => Self::Other(e.to_string()),
        }
    }

    fn error(self) -> sqlx::Error {
        match self {
            Self::Database { message, code } => {
                sqlx::Error::Database(Box::new(SharedDatabaseError { message, code }))
            }
            Self::Io(kind, message) => sqlx::Error::Io(std::io::Error::new(kind, message)),
            Self::PoolTimedOut => sqlx::Error::PoolTimedOut,
            Self::PoolClosed => sqlx::Error::PoolClosed,
            Self::Other(message) => sqlx::Error::Decode(message.into()),
        }
    }
}

/// The database's error of a read made for a group of reports.
#[derive(Debug)]
struct SharedDatabaseError {
    message: String,
    code: Option<String>,
}

impl std::fmt::Display for SharedDatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SharedDatabaseError {}

impl sqlx::error::DatabaseError for SharedDatabaseError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.as_deref().map(std::borrow::Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}
