//! Merges the appended rollups' rows (see [`crate::readmodel::schema::Rollup`]): the
//! `hits` projection's batches append rows, and this actor replaces each key's several rows by
//! one, unit by unit, in the background. Merging never changes an answer, so it needs no
//! checkpoint: every node runs a merger, and the units they take never overlap. After merging
//! units, it pre-merges the daily rollup's weeks among theirs and the weeks before that are over
//! and changed ([`crate::readmodel::schema::ROLLUP_WEEKLY`]), and vacuums the rows its merges
//! leave dead ([`merge::vacuum_due`]). Hourly, it also drops the funnel answers kept per day that
//! were not computed for a month ([`crate::readmodel::schema::FUNNEL_DAYS`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sqlx::PgPool;

use super::{generations, hits, Generation, ProjectionError};
use crate::eventlog::EventLog;
use crate::readmodel::merge::{self, PendingUnit};

/// How often the merger takes units.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often it prunes the funnel answers kept per day.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// A unit is merged once batches have stopped adding to it for this long...
const QUIET: Duration = Duration::from_secs(10);
/// ...or once it has been pending this long (the current day of a busy property, which a merge
/// reads whole: merged now and then, not after every few batches).
const AGE: Duration = Duration::from_secs(60);
/// How long a pass may spend merging a generation's units and weeks (taking them off the pending
/// list aside: an ordered scan of the list, 70 ms with 600,000 units): merging is spread out (after
/// a rebuild of 100,000 properties, 600,000 units are pending; after an import of 30 days, every
/// day of its property), so it never takes more than its share of the machine, about a quarter of
/// a core. The merger takes more units (a unit's row per partition) while a full pass takes less
/// than half this, and fewer while one takes more, between [`MIN_TAKE`] and [`MAX_TAKE`]: units
/// differ in cost by a thousand times (a day of a small property, a day of a busy shop's pages).
/// It never takes fewer than the 256 a tick it took before it adapted.
const BUDGET: Duration = Duration::from_millis(250);
const MIN_TAKE: i64 = 256;
const MAX_TAKE: i64 = 4_096;
/// Merging waits while a generation is further behind the log than this many events (a rebuild,
/// or a live projection catching up): it can wait, the projection cannot.
const MAX_LAG: i64 = 20_000;

pub struct RollupMerger {
    pool: PgPool,
    log: Arc<dyn EventLog>,
    busy: bool,
    state: State,
}

#[derive(Default)]
struct State {
    /// Rows this node's merges have written per generation since it last vacuumed its rollups.
    churn: HashMap<Generation, u64>,
    /// Pending rows a pass takes per generation (see [`BUDGET`]); 0 (the least) until the first
    /// pass.
    take: i64,
}

impl RollupMerger {
    pub fn new(pool: PgPool, log: Arc<dyn EventLog>) -> Self {
        Self {
            pool,
            log,
            busy: false,
            state: State::default(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (pool, log) = (self.pool.clone(), self.log.clone());
        let mut state = std::mem::take(&mut self.state);
        ctx.spawn(
            async move {
                if let Err(e) = pass(&pool, &*log, &mut state).await {
                    tracing::warn!(error = %e, "merging rollup rows failed");
                }
                state
            }
            .into_actor(self)
            .map(|state, act, _| {
                act.state = state;
                act.busy = false;
            }),
        );
    }
}

impl Actor for RollupMerger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(INTERVAL, |act, ctx| act.tick(ctx));
        ctx.run_interval(PRUNE_INTERVAL, |act, ctx| {
            let pool = act.pool.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = prune(&pool).await {
                        tracing::warn!(error = %e, "pruning kept funnel answers failed");
                    }
                }
                .into_actor(act),
            );
        });
    }
}

/// Merges some of what is pending in every live or building generation of `hits` that is not
/// far behind the log, then the weeks [`merge::weeks_to_merge`] finds among them; vacuums a
/// generation's rollups once its merges have left enough dead rows ([`merge::vacuum_due`]).
async fn pass(pool: &PgPool, log: &dyn EventLog, state: &mut State) -> Result<(), ProjectionError> {
    let projection = hits::HitsProjection::default();
    let current = crate::projections::Projection::schema_version(&projection);
    let head = log.head().await?.position.0 as i64;
    let generations: Vec<Generation> = generations::list(pool)
        .await?
        .into_iter()
        .filter(|g| g.projection == hits::NAME && g.schema_version == current)
        .filter(|g| head - g.position <= MAX_LAG)
        .map(|g| g.generation)
        .collect();
    state.churn.retain(|g, _| generations.contains(g));
    let today = chrono::Utc::now().date_naive();
    for g in generations {
        let take = state.take.clamp(MIN_TAKE, MAX_TAKE);
        let (units, rows) = merge::take_pending(pool, g, take, QUIET, AGE).await?;
        // Taking them costs about the same however many: it scans the pending list.
        let started = Instant::now();
        let merged = merge_all(pool, g, &units).await?
            + merge_weeks(
                pool,
                g,
                &merge::weeks_to_merge(pool, g, &units, today).await?,
            )
            .await?;
        state.take = next_take(take, rows, started.elapsed());
        let churned = state.churn.entry(g).or_default();
        *churned += merged;
        if merge::vacuum_due(pool, g, *churned).await? {
            merge::vacuum(pool, g).await?;
            tracing::info!(generation = g, merged = *churned, "merged rollups vacuumed");
            *churned = 0;
        }
    }
    Ok(())
}

/// The pending rows the next pass takes, after one that took `took` of `take` in `elapsed` (see
/// [`BUDGET`]).
fn next_take(take: i64, took: i64, elapsed: Duration) -> i64 {
    if elapsed > BUDGET {
        (take / 2).max(MIN_TAKE)
    } else if elapsed < BUDGET / 2 && took >= take {
        (take * 2).min(MAX_TAKE)
    } else {
        take
    }
}

/// Drops the funnel answers kept per day that no query computed for a month, in every generation
/// of `hits`.
async fn prune(pool: &PgPool) -> Result<(), ProjectionError> {
    use crate::readmodel::schema::{FUNNEL_DAYS, FUNNEL_DAYS_KEPT};
    let current = crate::projections::Projection::schema_version(&hits::HitsProjection::default());
    for g in generations::list(pool).await? {
        if g.projection == hits::NAME && g.schema_version == current {
            sqlx::query(&format!(
                "DELETE FROM {} WHERE computed_at < now() - interval '{FUNNEL_DAYS_KEPT}'",
                crate::projections::table(FUNNEL_DAYS, g.generation)
            ))
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Merges units in one transaction (on the project pool, whose commits do not wait for the disk:
/// a merge lost in a crash only leaves a key's rows unmerged, which changes no answer).
/// The rows written.
async fn merge_all(
    pool: &PgPool,
    g: Generation,
    units: &[PendingUnit],
) -> Result<u64, sqlx::Error> {
    if units.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let merged = merge::merge_units(&mut tx, g, units).await?;
    tx.commit().await?;
    Ok(merged)
}

/// Pre-merges weeks (in key order) in one transaction: a week lost in a crash is read from its
/// days until a unit of it or of the next week is merged.
/// The rows written.
async fn merge_weeks(
    pool: &PgPool,
    g: Generation,
    weeks: &[merge::WeekSpan],
) -> Result<u64, sqlx::Error> {
    if weeks.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let written = merge::merge_weeks(&mut tx, g, weeks).await?;
    tx.commit().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_a_pass_takes_follow_its_time_budget() {
        let ms = Duration::from_millis;
        // A full pass well within the budget doubles, up to the most.
        assert_eq!(next_take(512, 512, ms(40)), 1_024);
        assert_eq!(next_take(MAX_TAKE, MAX_TAKE, ms(40)), MAX_TAKE);
        // One that found fewer rows than its limit keeps it: nothing more is waiting.
        assert_eq!(next_take(512, 511, ms(40)), 512);
        // Between half the budget and the budget it stays.
        assert_eq!(next_take(512, 512, ms(200)), 512);
        // Over the budget it halves, down to the least.
        assert_eq!(next_take(2_048, 2_048, ms(13_500)), 1_024);
        assert_eq!(next_take(MIN_TAKE, MIN_TAKE, ms(900)), MIN_TAKE);
    }
}
