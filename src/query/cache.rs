//! Answers shared between identical queries: a dashboard's queries are asked again and again, by
//! many people at once. An answer is kept for as long as its property's read models have not
//! changed (each partition of the projection records, per property, the position of the last
//! event it applied; any change changes their sum), so it is never stale; identical queries that arrive while one is being computed wait for it
//! instead of computing it again.

use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::OnceCell;

use super::engine::{self, EngineError};
use super::reads::{Held, Reads, Source};
use super::versions::{Version, Versions};
use super::{Query, ResultRow};
use crate::cache::Bounded;

type Answer = Arc<Vec<ResultRow>>;

#[derive(Clone)]
struct Entry {
    /// The property's read-model version the answer was computed at.
    version: Version,
    answer: Arc<OnceCell<Answer>>,
}

/// Runs queries through the engine, sharing answers.
#[derive(Clone)]
pub struct Reports {
    reads: Reads,
    /// Version reads on the primary, then on each replica.
    versions: Arc<Vec<Versions>>,
    /// Answers by query, bounded in bytes (`FOOTFALL_REPORT_CACHE_MB`).
    entries: Arc<Mutex<Bounded<String, Entry>>>,
}

impl Reports {
    pub fn new(reads: Reads, cache_bytes: usize) -> Self {
        let versions = std::iter::once(reads.primary())
            .chain(reads.replicas())
            .map(|pool| Versions::new(pool.clone()))
            .collect();
        Self {
            reads,
            versions: Arc::new(versions),
            entries: Arc::new(Mutex::new(Bounded::new(cache_bytes))),
        }
    }

    /// Answers on a replica if there is one; on the primary if it cannot.
    pub async fn run(&self, q: &Query) -> Result<Vec<ResultRow>, EngineError> {
        let (pool, source) = self.reads.pick();
        match self.run_on(pool, source, q).await {
            Err(EngineError::Database(e)) if self.reads.falls_back(source, &e) => {
                self.run_on(self.reads.primary(), Source::Primary, q).await
            }
            answer => answer,
        }
    }

    /// Answers from one database: the version read there keys the answer computed there, which
    /// is at least as new (a replica only moves forward), so a shared answer is never stale. A
    /// shared answer takes no connection of its own.
    async fn run_on(
        &self,
        pool: &PgPool,
        source: Source,
        q: &Query,
    ) -> Result<Vec<ResultRow>, EngineError> {
        let versions = match source {
            Source::Primary => &self.versions[0],
            Source::Replica(i) => &self.versions[1 + i],
        };
        let version: Version = versions.of(q.property_id, q.imports).await?;
        let key = format!("{q:?}");
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(&key) {
                Some(e) if e.version == version => e.answer,
                _ => {
                    let answer = Arc::new(OnceCell::new());
                    let entry = Entry {
                        version,
                        answer: answer.clone(),
                    };
                    let bytes = key.len();
                    entries.insert(key.clone(), entry, bytes);
                    answer
                }
            }
        };
        let hit = cell.initialized();
        metrics::counter!(crate::telemetry::QUERY_CACHE, "outcome" => if hit { "hit" } else { "miss" })
            .increment(1);
        // A failed computation is not kept: the next caller computes again.
        let answer = cell
            .get_or_try_init(move || async move {
                Held::read(pool, async |db| engine::run(db, q).await.map(Arc::new)).await
            })
            .await?
            .clone();
        if !hit {
            // Now that the answer is known, the entry is weighed by it.
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get(&key).filter(|e| Arc::ptr_eq(&e.answer, &cell)) {
                let bytes = key.len() + answer_bytes(&answer);
                entries.insert(key, entry, bytes);
            }
        }
        Ok(answer.as_ref().clone())
    }
}

/// About what an answer holds in memory.
fn answer_bytes(rows: &[ResultRow]) -> usize {
    rows.iter()
        .map(|r| {
            let dimensions: usize = r.dimensions.iter().map(|d| d.len() + 24).sum();
            dimensions + 48 * (r.metrics.len() + 1)
        })
        .sum()
}
