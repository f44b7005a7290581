//! Answers shared between identical queries: a dashboard's queries are asked again and again, by
//! many people at once. An answer is kept for as long as its property's read models have not
//! changed (each partition of the projection records, per property, the position of the last
//! event it applied; any change changes their sum), so it is never stale; identical queries that arrive while one is being computed wait for it
//! instead of computing it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::OnceCell;

use super::engine::{self, EngineError};
use super::{Query, ResultRow};

/// Cached answers at most; the cache is emptied when it grows past this.
const MAX_ENTRIES: usize = 20_000;

type Answer = Arc<Vec<ResultRow>>;

struct Entry {
    /// The property's read-model version the answer was computed at.
    version: (i32, i64),
    answer: Arc<OnceCell<Answer>>,
}

/// Runs queries through the engine, sharing answers.
#[derive(Clone)]
pub struct Reports {
    pool: PgPool,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl Reports {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            entries: Arc::default(),
        }
    }

    pub async fn run(&self, q: &Query) -> Result<Vec<ResultRow>, EngineError> {
        let version = self.version(q.property_id).await?;
        let key = format!("{q:?}");
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries.len() > MAX_ENTRIES {
                entries.clear();
            }
            match entries.get(&key) {
                Some(e) if e.version == version => e.answer.clone(),
                _ => {
                    let answer = Arc::new(OnceCell::new());
                    entries.insert(
                        key,
                        Entry {
                            version,
                            answer: answer.clone(),
                        },
                    );
                    answer
                }
            }
        };
        let hit = cell.initialized();
        metrics::counter!(crate::telemetry::QUERY_CACHE, "outcome" => if hit { "hit" } else { "miss" })
            .increment(1);
        // A failed computation is not kept: the next caller computes again.
        cell.get_or_try_init(|| async { engine::run(&self.pool, q).await.map(Arc::new) })
            .await
            .map(|answer| answer.as_ref().clone())
    }

    /// The live generation of the `hits` projection and the position of the last event it
    /// applied for the property.
    async fn version(&self, property: uuid::Uuid) -> Result<(i32, i64), EngineError> {
        let row: Option<(i32, i64)> = sqlx::query_as(
            "SELECT g.generation, COALESCE((SELECT sum(position) FROM hit_versions WHERE property_id = $1), 0)::bigint \
             FROM projection_generations g WHERE g.projection = 'hits' AND g.state = 'live'",
        )
        .bind(property)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.unwrap_or_default())
    }
}
