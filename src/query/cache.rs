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

/// The live generation of `hits`, the sum of the property's positions in it, and (for a query
/// that includes imports) the position of the property's last imports event applied.
type Version = (i32, i64, i64);

struct Entry {
    /// The property's read-model version the answer was computed at.
    version: Version,
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
        let version = self.version(q).await?;
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

    async fn version(&self, q: &Query) -> Result<Version, EngineError> {
        let imported = if q.imports {
            format!(
                "(SELECT position FROM {} WHERE property_id = $1)",
                crate::projections::imported::VERSIONS
            )
        } else {
            "0".to_owned()
        };
        let row: Option<Version> = sqlx::query_as(&format!(
            "SELECT g.generation, COALESCE((SELECT sum(position) FROM hit_versions WHERE property_id = $1), 0)::bigint, \
             COALESCE({imported}, 0)::bigint \
             FROM projection_generations g WHERE g.projection = 'hits' AND g.state = 'live'",
        ))
        .bind(q.property_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.unwrap_or_default())
    }
}
