//! Where reports read: the primary's query pool, or streaming read replicas
//! (`FOOTFALL_QUERY_DATABASE_URL`), in turn. A replica that cannot be reached is left alone for a
//! few seconds and its reports are answered by the primary, so losing one costs freshness, never
//! an answer.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// How long a replica that could not be reached is passed over.
const PASS_OVER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Reads {
    primary: PgPool,
    replicas: Arc<Vec<Replica>>,
    next: Arc<AtomicUsize>,
}

struct Replica {
    pool: PgPool,
    down_until: Mutex<Option<Instant>>,
}

/// Where a read went: a replica (by index) or the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Primary,
    Replica(usize),
}

impl Reads {
    pub fn new(primary: PgPool, replicas: Vec<PgPool>) -> Self {
        Self {
            primary,
            replicas: Arc::new(
                replicas
                    .into_iter()
                    .map(|pool| Replica {
                        pool,
                        down_until: Mutex::new(None),
                    })
                    .collect(),
            ),
            next: Arc::default(),
        }
    }

    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    pub fn replicas(&self) -> impl Iterator<Item = &PgPool> {
        self.replicas.iter().map(|r| &r.pool)
    }

    /// The next replica that is not passed over, or the primary.
    pub fn pick(&self) -> (&PgPool, Source) {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let index = (start + i) % n;
            let replica = &self.replicas[index];
            let down = replica.down_until.lock().unwrap_or_else(|e| e.into_inner());
            if down.is_none_or(|until| Instant::now() >= until) {
                return (&replica.pool, Source::Replica(index));
            }
        }
        (&self.primary, Source::Primary)
    }

    /// Whether a read that failed with `e` on `source` should be asked of the primary instead:
    /// the replica could not be reached (then it is passed over for a while), or it cancelled the
    /// statement to replay the primary's changes.
    pub fn falls_back(&self, source: Source, e: &sqlx::Error) -> bool {
        let Source::Replica(index) = source else {
            return false;
        };
        let unreachable = match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            // 08: connection exceptions; 57P: the server is shutting down or starting.
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        };
        if unreachable {
            tracing::warn!(replica = index, error = %e, "read replica unreachable; reading from the primary");
            *self.replicas[index]
                .down_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + PASS_OVER);
        }
        // 40001: a recovery conflict cancelled the statement on the replica.
        unreachable || matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("40001"))
    }
}

/// A query connection for one read. If the read is abandoned (its future dropped: the client went
/// away), the connection is closed instead of returned to its pool, where returning it would wait
/// for the statement to end; PostgreSQL then sees its client gone and ends the statement
/// (`client_connection_check_interval`, set on every pool).
pub struct Held(Option<PoolConnection<Postgres>>);

impl Held {
    /// Runs `read` on a connection of `pool`, and returns the connection to its pool once the
    /// read has ended (with an answer or an error); only a read dropped before it ends closes it.
    pub async fn read<T, E: From<sqlx::Error>>(
        pool: &PgPool,
        read: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut held = Self(Some(pool.acquire().await?));
        let answer = read(&mut held).await;
        drop(held.0.take());
        answer
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl Deref for Held {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.0.as_deref().expect("held until dropped")
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.0.as_deref_mut().expect("held until dropped")
    }
}
