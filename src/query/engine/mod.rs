//! Plans and runs a [`Query`]. The planner answers from the rollups when it can:
//!
//! - no filter, no breakdown (only a time dimension, hour-aligned range): `rollup_hourly`;
//! - no filter, one breakdown dimension, hit metrics only, day-aligned range, no hourly grain:
//!   `rollup_daily`;
//! - no filter, one visit attribute kept in `rollup_visits`, visit metrics, day-aligned range, no
//!   hourly grain: `rollup_visits`;
//!
//! Breakdowns by visit attributes count visits that started in the range (and their visitors,
//! pageviews and events), whichever table answers.
//!
//! and from the enriched `hits` and `sessions` tables otherwise (arbitrary filters crossed with
//! breakdowns, `visit:*` attributes joined from each hit's visit, goals, revenue). Both paths
//! compute visits, bounces and durations the same way, so they agree.
//!
//! `plan` picks the read model; the readers of the `rollups` and of the `enriched` tables build
//! their SQL from `sql` and return each group's aggregates (`agg`); `order` sorts what SQL did
//! not.

mod agg;
mod enriched;
mod funnel;
pub mod imported;
mod order;
mod plan;
mod rollups;
mod sql;

use std::collections::BTreeMap;

use sqlx::{PgConnection, QueryBuilder};

use super::{Dimension, Filter, Metric, Op, Query, QueryError, ResultRow};
use crate::domain::ImportedCounts;
use agg::{fetch, Agg, Groups, Totals};
use enriched::{enriched_hits, enriched_sessions};
pub use funnel::funnel;
use order::sort_rows;
use plan::is_visit_breakdown;
pub use plan::{plan, Plan};
pub use rollups::{bots, prop_keys};
use rollups::{daily_rollup, hourly_rollup, prop_rolled_up, visit_rollup};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 400: the query cannot be answered as asked.
    #[error(transparent)]
    Invalid(#[from] QueryError),
    /// 503: the read models could not be read.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Distinct visitors over the whole range with these filters.
async fn total_visitors(
    db: &mut PgConnection,
    q: &Query,
    filters: Option<Filter>,
) -> Result<i64, EngineError> {
    let total = Query {
        dimensions: vec![],
        order_by: vec![],
        metrics: vec![Metric::Visitors],
        filters,
        ..q.clone()
    };
    let rows = match plan(&total) {
        Plan::Enriched => enriched_hits(db, &total, false, false).await?,
        _ => hourly_rollup(db, &total).await?,
    };
    let mut visitors = rows.first().and_then(|(_, a)| a.visitors).unwrap_or(0);
    if let Some(table) = imports_table(&total) {
        let rows = imported::imported(db, &total, table).await?;
        visitors += rows.first().and_then(|(_, a)| a.visitors).unwrap_or(0);
    }
    Ok(visitors)
}

/// The regular expressions of `matches` filters.
fn patterns(f: &Filter, out: &mut Vec<String>) {
    match f {
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| patterns(f, out)),
        Filter::Not(f) => patterns(f, out),
        Filter::Leaf {
            op: Op::Matches | Op::MatchesNot,
            values,
            ..
        } => out.extend(values.iter().cloned()),
        Filter::Leaf { .. } => {}
    }
}

/// Compiles the patterns with PostgreSQL's own regex engine, so a bad one is refused even when
/// no row would have reached it.
async fn check_patterns(db: &mut PgConnection, q: &Query) -> Result<(), EngineError> {
    let mut found = Vec::new();
    if let Some(f) = &q.filters {
        patterns(f, &mut found);
    }
    if found.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::new("SELECT count(*) AS d0 FROM unnest(");
    qb.push_bind(found).push("::text[]) p WHERE '' ~ p");
    fetch(&mut qb, db, 0).await.map(|_| ())
}

/// The imported table to add to a query's answer, if it asks for imports and one can answer.
fn imports_table(q: &Query) -> Option<crate::domain::ImportedTable> {
    q.imports.then(|| imported::table_for(q).ok()).flatten()
}

/// Runs a query.
pub async fn run(db: &mut PgConnection, q: &Query) -> Result<Vec<ResultRow>, EngineError> {
    q.validate()?;
    check_patterns(db, q).await?;
    let imports = imports_table(q);
    let (offset, limit) = (q.offset, q.limit);
    // Imported groups are added in memory, so footfall's own groups are read whole and ordered and
    // paged here.
    let whole;
    let q = if imports.is_some() {
        whole = whole_query(q);
        &whole
    } else {
        q
    };
    let (native, sql_paged) = aggregate(db, q).await?;
    let sql_paged = sql_paged && imports.is_none();
    let mut ordered: Vec<Vec<String>> = Vec::with_capacity(native.len());
    let mut groups: BTreeMap<Vec<String>, Agg> = BTreeMap::new();
    for (k, a) in native {
        ordered.push(k.clone());
        groups.insert(k, a);
    }
    if let Some(table) = imports {
        for (k, a) in imported::imported(db, q, table).await? {
            if !groups.contains_key(&k) {
                ordered.push(k.clone());
            }
            groups.entry(k).or_default().add(&a);
        }
    }
    let mut totals = Totals::default();
    if q.metrics.contains(&Metric::Percentage) {
        totals.visitors = total_visitors(db, q, q.filters.clone()).await?;
    }
    if q.metrics.contains(&Metric::ConversionRate) {
        let population = q.filters.as_ref().and_then(Filter::without_goals);
        totals.goal_population = total_visitors(db, q, population).await?;
    }

    let mut rows: Vec<ResultRow> = ordered
        .into_iter()
        .filter_map(|k| {
            let a = groups.remove(&k)?;
            // An empty aggregate over no rows is no result row.
            if q.dimensions.is_empty() || a.events.unwrap_or(0) > 0 || a.visits.unwrap_or(0) > 0 {
                Some(ResultRow {
                    metrics: q.metrics.iter().map(|m| a.value(*m, totals)).collect(),
                    dimensions: k,
                })
            } else {
                None
            }
        })
        .collect();
    if !sql_paged {
        // Time series and totals are small, and visit breakdowns are merged here: order and
        // page them here.
        sort_rows(&mut rows, q);
        rows = rows.into_iter().skip(offset).take(limit).collect();
    }
    Ok(rows)
}

/// The query without paging.
fn whole_query(q: &Query) -> Query {
    Query {
        offset: 0,
        limit: i64::MAX as usize,
        ..q.clone()
    }
}

/// Each group's counts from footfall's own data, every group (not paged), for exports. Groups with
/// neither events nor visits are left out.
pub async fn counts(
    db: &mut PgConnection,
    q: &Query,
) -> Result<Vec<(Vec<String>, ImportedCounts)>, EngineError> {
    q.validate()?;
    check_patterns(db, q).await?;
    let (groups, _) = aggregate(db, &whole_query(q)).await?;
    Ok(groups
        .into_iter()
        .filter(|(_, a)| a.events.unwrap_or(0) > 0 || a.visits.unwrap_or(0) > 0)
        .map(|(k, a)| {
            let n = |v: Option<i64>| v.unwrap_or(0);
            let counts = ImportedCounts {
                visitors: n(a.visitors),
                visits: n(a.visits),
                pageviews: n(a.pageviews),
                bounces: n(a.bounces),
                visit_duration: n(a.duration),
                events: n(a.events),
            };
            (k, counts)
        })
        .collect())
}

/// Each group's aggregates from footfall's own read models, as the planned reader returns them,
/// and whether SQL ordered and paged them.
async fn aggregate(db: &mut PgConnection, q: &Query) -> Result<(Groups, bool), EngineError> {
    let plan = match plan(q) {
        // Only keys whose every hit is rolled up are read from the rollups.
        Plan::DailyRollup => match q.dimensions.iter().find_map(Dimension::prop_key) {
            Some(key) if !prop_rolled_up(db, q.property_id, key).await? => Plan::Enriched,
            _ => Plan::DailyRollup,
        },
        plan => plan,
    };
    let breakdown = q.dimensions.iter().any(|d| !d.is_time());
    let event_breakdown = q.dimensions.iter().any(Dimension::is_event);
    let per_visit = q
        .metrics
        .iter()
        .any(|m| m.is_per_visit() || *m == Metric::Visits);
    // Visit metrics by visit attributes come from the sessions table and are merged in memory, so
    // such breakdowns are ordered and paged by the caller; other breakdowns in SQL.
    let visit_breakdown = is_visit_breakdown(q);
    let sql_paged = breakdown && !visit_breakdown && (event_breakdown || !per_visit);
    let groups = match plan {
        Plan::HourlyRollup => hourly_rollup(db, q).await?,
        Plan::DailyRollup => daily_rollup(db, q).await?,
        Plan::VisitRollup => visit_rollup(db, q).await?,
        Plan::Enriched if visit_breakdown => enriched_sessions(db, q, true).await?,
        Plan::Enriched => {
            let mut rows = enriched_hits(db, q, event_breakdown, sql_paged).await?;
            if per_visit && !event_breakdown {
                // Visits are counted by their start, so a group may have visits but no hits.
                let mut by_key: BTreeMap<Vec<String>, Agg> = rows.into_iter().collect();
                for (k, a) in enriched_sessions(db, q, false).await? {
                    by_key.entry(k).or_default().merge(a);
                }
                rows = by_key.into_iter().collect();
            }
            rows
        }
    };
    Ok((groups, sql_paged))
}
