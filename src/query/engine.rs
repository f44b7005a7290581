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

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use super::{
    Dimension, Direction, Filter, Goal, Grain, Metric, Op, OrderKey, Query, QueryError, ResultRow,
};
use crate::domain::enrich::Visit;
use crate::projections::hits::VISIT_ROLLUP_DIMENSIONS;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 400: the query cannot be answered as asked.
    #[error(transparent)]
    Invalid(#[from] QueryError),
    /// 503: the read models could not be read.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Which read model answers a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    HourlyRollup,
    DailyRollup,
    VisitRollup,
    Enriched,
}

/// A breakdown by visit attributes only, with metrics the visits answer.
fn is_visit_breakdown(q: &Query) -> bool {
    q.dimensions
        .iter()
        .any(|d| matches!(d, Dimension::Visit(_)))
        && !q.dimensions.iter().any(Dimension::is_event)
        && !q.metrics.iter().any(Metric::needs_hits)
}

pub fn plan(q: &Query) -> Plan {
    let breakdowns: Vec<&Dimension> = q.dimensions.iter().filter(|d| !d.is_time()).collect();
    let hourly = q.dimensions.contains(&Dimension::Time(Grain::Hour));
    let hit_metrics_only = q.metrics.iter().all(|m| {
        matches!(
            m,
            Metric::Visitors | Metric::Pageviews | Metric::Events | Metric::Percentage
        )
    });
    if is_visit_breakdown(q) {
        let rolled_up = matches!(breakdowns.as_slice(),
            [Dimension::Visit(c)] if VISIT_ROLLUP_DIMENSIONS.contains(c));
        return if rolled_up && q.filters.is_none() && !hourly && q.range.is_day_aligned() {
            Plan::VisitRollup
        } else {
            Plan::Enriched
        };
    }
    let rollup_dims = breakdowns.iter().all(|d| d.rollup_name().is_some());
    if q.metrics.iter().any(Metric::needs_hits) || !rollup_dims {
        return Plan::Enriched;
    }
    match (q.filters.is_some(), breakdowns.len()) {
        (false, 0) if q.range.is_hour_aligned() => Plan::HourlyRollup,
        (false, 1) if hit_metrics_only && !hourly && q.range.is_day_aligned() => Plan::DailyRollup,
        _ => Plan::Enriched,
    }
}

/// Raw aggregates of one group; absent ones are `None`.
#[derive(Debug, Clone, Default)]
struct Agg {
    visitors: Option<i64>,
    pageviews: Option<i64>,
    events: Option<i64>,
    visits: Option<i64>,
    bounces: Option<i64>,
    duration: Option<i64>,
    session_pageviews: Option<i64>,
    engaged: Option<i64>,
    revenue_hits: Option<i64>,
    revenue: Option<f64>,
    /// The revenue's currency, when the group has exactly one.
    currency: Option<String>,
}

/// Totals some metrics are shares of.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    /// Visitors in the range and filters, for `percentage`.
    visitors: i64,
    /// Visitors in the range and filters without goal conditions, for `conversion_rate`.
    goal_population: i64,
}

const AGG_COLUMNS: [&str; 9] = [
    "visitors",
    "pageviews",
    "events",
    "visits",
    "bounces",
    "duration",
    "session_pageviews",
    "engaged",
    "revenue_hits",
];

impl Agg {
    fn read(row: &PgRow) -> Result<Self, sqlx::Error> {
        let get = |name: &str| -> Result<Option<i64>, sqlx::Error> {
            let col = format!("m_{name}");
            match row.try_get::<Option<i64>, _>(col.as_str()) {
                Ok(v) => Ok(v),
                Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        Ok(Self {
            visitors: get(AGG_COLUMNS[0])?,
            pageviews: get(AGG_COLUMNS[1])?,
            events: get(AGG_COLUMNS[2])?,
            visits: get(AGG_COLUMNS[3])?,
            bounces: get(AGG_COLUMNS[4])?,
            duration: get(AGG_COLUMNS[5])?,
            session_pageviews: get(AGG_COLUMNS[6])?,
            engaged: get(AGG_COLUMNS[7])?,
            revenue_hits: get(AGG_COLUMNS[8])?,
            revenue: match row.try_get::<Option<f64>, _>("r_revenue") {
                Ok(v) => v,
                Err(sqlx::Error::ColumnNotFound(_)) => None,
                Err(e) => return Err(e),
            },
            currency: match row.try_get::<Option<String>, _>("r_currency") {
                Ok(v) => v,
                Err(sqlx::Error::ColumnNotFound(_)) => None,
                Err(e) => return Err(e),
            },
        })
    }

    fn merge(&mut self, other: Agg) {
        let pick = |a: &mut Option<i64>, b: Option<i64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.visitors, other.visitors);
        pick(&mut self.pageviews, other.pageviews);
        pick(&mut self.events, other.events);
        pick(&mut self.visits, other.visits);
        pick(&mut self.bounces, other.bounces);
        pick(&mut self.duration, other.duration);
        pick(&mut self.session_pageviews, other.session_pageviews);
        pick(&mut self.engaged, other.engaged);
    }

    fn value(&self, m: Metric, totals: Totals) -> Value {
        let n = |v: Option<i64>| v.unwrap_or(0);
        let visits = n(self.visits);
        let ratio = |num: i64| {
            if visits == 0 {
                0.0
            } else {
                num as f64 / visits as f64
            }
        };
        match m {
            Metric::Visitors => json!(n(self.visitors)),
            Metric::Visits => json!(visits),
            Metric::Pageviews => json!(n(self.pageviews)),
            Metric::Events => json!(n(self.events)),
            Metric::ViewsPerVisit => {
                json!((ratio(n(self.session_pageviews)) * 100.0).round() / 100.0)
            }
            Metric::BounceRate => json!((ratio(n(self.bounces)) * 100.0).round() as i64),
            Metric::VisitDuration => json!(ratio(n(self.duration)).round() as i64),
            Metric::Percentage => json!(percent(n(self.visitors), totals.visitors)),
            Metric::ConversionRate => {
                json!(percent(n(self.visitors), totals.goal_population))
            }
            Metric::EngagedSessions => json!(n(self.engaged)),
            Metric::EngagementRate => json!(percent(n(self.engaged), visits)),
            Metric::TotalRevenue | Metric::AverageRevenue => {
                let sum = self.revenue.unwrap_or(0.0);
                let value = match (m, n(self.revenue_hits)) {
                    (Metric::AverageRevenue, 0) => 0.0,
                    (Metric::AverageRevenue, hits) => sum / hits as f64,
                    _ => sum,
                };
                json!({"value": (value * 100.0).round() / 100.0, "currency": self.currency})
            }
        }
    }
}

/// `part` per 100 of `whole`, to one decimal.
fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

fn time_label(grain: Grain, column: &str) -> String {
    let (unit, format) = match grain {
        Grain::Hour => ("hour", "YYYY-MM-DD HH24:MI:SS"),
        Grain::Day => ("day", "YYYY-MM-DD"),
        Grain::Week => ("week", "YYYY-MM-DD"),
        Grain::Month => ("month", "YYYY-MM-DD"),
    };
    format!("to_char(date_trunc('{unit}', {column}), '{format}')")
}

/// Pushes the SQL for a dimension of the `hits` table.
fn push_hit_dimension(qb: &mut QueryBuilder<'_, Postgres>, d: &Dimension) {
    match d {
        Dimension::Time(g) => {
            qb.push(time_label(*g, "local_time"));
        }
        Dimension::Page => {
            qb.push("pathname");
        }
        Dimension::Name => {
            qb.push("name");
        }
        Dimension::Hostname => {
            qb.push("hostname");
        }
        Dimension::Prop(k) => {
            qb.push("(props->>").push_bind(k.clone()).push(")");
        }
        Dimension::Goal => {
            qb.push("goal.label");
        }
        Dimension::Visit(column) => {
            qb.push(*column);
        }
    }
}

/// The goals as rows `g(label, event, pattern)` with the condition that `hits` completes one.
fn push_goals(qb: &mut QueryBuilder<'_, Postgres>, goals: &[Goal]) {
    let labels: Vec<String> = goals.iter().map(Goal::label).collect();
    let events: Vec<Option<String>> = goals.iter().map(|g| g.event.clone()).collect();
    let patterns: Vec<Option<String>> = goals
        .iter()
        .map(|g| g.page.as_ref().map(|p| escape_like(p).replace('*', "%")))
        .collect();
    qb.push("unnest(")
        .push_bind(labels)
        .push("::text[], ")
        .push_bind(events)
        .push("::text[], ")
        .push_bind(patterns)
        .push(
            "::text[]) AS g(label, event, pattern) WHERE ((g.event IS NOT NULL AND hits.name = g.event) \
             OR (g.pattern IS NOT NULL AND hits.name = 'pageview' AND hits.pathname LIKE g.pattern))",
        );
}

/// Whether the query needs each hit's visit joined.
fn uses_visits(q: &Query) -> bool {
    let visit = |d: &Dimension| matches!(d, Dimension::Visit(_));
    q.dimensions.iter().any(visit) || q.filters.as_ref().is_some_and(|f| f.any_dimension(&visit))
}

/// `FROM` the per-hit table, with the visit's attributes beside each hit when the query needs them,
/// and one row per completed goal for a goal breakdown.
fn push_hits_source(qb: &mut QueryBuilder<'_, Postgres>, q: &Query) {
    if uses_visits(q) {
        let columns: String = ["entry_page", "exit_page"]
            .into_iter()
            .chain(Visit::COLUMNS)
            .map(|c| format!(", s.{c}"))
            .collect();
        qb.push(format!(
            " FROM (SELECT h.*{columns} FROM hits h JOIN sessions s \
             ON s.property_id = h.property_id AND s.session_id = h.session_id) hits"
        ));
    } else {
        qb.push(" FROM hits");
    }
    if q.dimensions.contains(&Dimension::Goal) {
        qb.push(" CROSS JOIN LATERAL (SELECT g.label FROM ");
        push_goals(qb, &q.goals);
        qb.push(") goal");
    }
}

fn push_filter(
    qb: &mut QueryBuilder<'_, Postgres>,
    f: &Filter,
    goals: &[Goal],
) -> Result<(), QueryError> {
    match f {
        Filter::And(fs) | Filter::Or(fs) => {
            let (joiner, empty) = if matches!(f, Filter::And(_)) {
                (" AND ", "TRUE")
            } else {
                (" OR ", "FALSE")
            };
            qb.push("(");
            if fs.is_empty() {
                qb.push(empty);
            }
            for (i, f) in fs.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_filter(qb, f, goals)?;
            }
            qb.push(")");
        }
        Filter::Not(f) => {
            qb.push("NOT (");
            push_filter(qb, f, goals)?;
            qb.push(")");
        }
        Filter::Leaf {
            op,
            dimension,
            values,
        } => {
            if dimension.is_time() {
                return Err(QueryError::new(
                    "filters",
                    "time dimensions cannot be filtered; use date_range",
                ));
            }
            let negated = matches!(op, Op::IsNot | Op::ContainsNot | Op::MatchesNot);
            let (operator, patterns): (&str, Vec<String>) = match op {
                Op::Is | Op::IsNot => ("=", values.clone()),
                Op::Contains | Op::ContainsNot => (
                    "LIKE",
                    values
                        .iter()
                        .map(|v| format!("%{}%", escape_like(v)))
                        .collect(),
                ),
                Op::Matches | Op::MatchesNot => ("~", values.clone()),
            };
            qb.push(if negated { "NOT (" } else { "(" });
            if *dimension == Dimension::Goal {
                // Completes a goal whose label matches.
                qb.push("EXISTS (SELECT 1 FROM ");
                push_goals(qb, goals);
                qb.push(" AND COALESCE(g.label, '') ")
                    .push(operator)
                    .push(" ANY(")
                    .push_bind(patterns)
                    .push(")))");
                return Ok(());
            }
            qb.push("COALESCE(");
            match dimension {
                Dimension::Prop(k) => {
                    qb.push("props->>").push_bind(k.clone());
                }
                d => push_hit_dimension(qb, d),
            }
            qb.push(", '') ")
                .push(operator)
                .push(" ANY(")
                .push_bind(patterns)
                .push("))");
        }
    }
    Ok(())
}

fn escape_like(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn push_range(qb: &mut QueryBuilder<'_, Postgres>, q: &Query, column: &str) {
    qb.push(" WHERE property_id = ")
        .push_bind(q.property_id)
        .push(format!(" AND {column} >= "))
        .push_bind(q.range.from)
        .push(format!(" AND {column} < "))
        .push_bind(q.range.to);
}

fn push_group_by(qb: &mut QueryBuilder<'_, Postgres>, dims: usize) {
    if dims > 0 {
        qb.push(" GROUP BY ");
        qb.push(
            (0..dims)
                .map(|i| format!("d{i}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

/// ORDER BY, LIMIT and OFFSET in SQL, for breakdowns (which can be large).
fn push_order_and_page(qb: &mut QueryBuilder<'_, Postgres>, q: &Query) {
    let mut keys: Vec<String> = order(q)
        .iter()
        .map(|(k, dir)| {
            let col = match k {
                OrderKey::Metric(Metric::Percentage) => "m_visitors".to_owned(),
                OrderKey::Metric(m) => format!("m_{}", m.name()),
                OrderKey::Dimension(d) => {
                    format!("d{}", q.dimensions.iter().position(|x| x == d).unwrap_or(0))
                }
            };
            format!(
                "{col} {} NULLS LAST",
                if *dir == Direction::Asc {
                    "ASC"
                } else {
                    "DESC"
                }
            )
        })
        .collect();
    // Ties are broken by the dimensions, so answers are deterministic.
    keys.extend((0..q.dimensions.len()).map(|i| format!("d{i} ASC")));
    qb.push(" ORDER BY ").push(keys.join(", "));
    qb.push(" LIMIT ")
        .push_bind(q.limit as i64)
        .push(" OFFSET ")
        .push_bind(q.offset as i64);
}

/// The explicit order, or the default: by the first metric, biggest first, for breakdowns; by
/// time for time series.
fn order(q: &Query) -> Vec<(OrderKey, Direction)> {
    if !q.order_by.is_empty() {
        return q.order_by.clone();
    }
    if q.dimensions.iter().any(|d| !d.is_time()) {
        let m = q
            .metrics
            .iter()
            .find(|m| **m != Metric::Percentage)
            .copied()
            .unwrap_or(Metric::Visitors);
        vec![(OrderKey::Metric(m), Direction::Desc)]
    } else {
        q.dimensions
            .iter()
            .map(|d| (OrderKey::Dimension(d.clone()), Direction::Asc))
            .collect()
    }
}

async fn fetch(
    qb: &mut QueryBuilder<'_, Postgres>,
    pool: &PgPool,
    dims: usize,
) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let rows = qb.build().fetch_all(pool).await.map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("2201B") => {
            EngineError::Invalid(QueryError::new("filters", "invalid regular expression"))
        }
        _ => EngineError::Database(e),
    })?;
    rows.iter()
        .map(|r| {
            let labels = (0..dims)
                .map(|i| r.try_get::<String, _>(format!("d{i}").as_str()))
                .collect::<Result<_, _>>()?;
            Ok((labels, Agg::read(r)?))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(EngineError::from)
}

const HLL_VISITORS: &str = "round(COALESCE(hll_cardinality(hll_union_agg(visitors)), 0))::bigint";

async fn hourly_rollup(pool: &PgPool, q: &Query) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        if let Dimension::Time(g) = d {
            qb.push(format!("{} AS d{i}, ", time_label(*g, "bucket")));
        }
    }
    qb.push(format!(
        "{HLL_VISITORS} AS m_visitors, sum(pageviews)::bigint AS m_pageviews, sum(events)::bigint AS m_events, \
         sum(visits)::bigint AS m_visits, sum(bounces)::bigint AS m_bounces, sum(duration)::bigint AS m_duration, \
         sum(session_pageviews)::bigint AS m_session_pageviews, sum(engaged)::bigint AS m_engaged FROM rollup_hourly"
    ));
    push_range(&mut qb, q, "bucket");
    push_group_by(&mut qb, q.dimensions.len());
    fetch(&mut qb, pool, q.dimensions.len()).await
}

async fn daily_rollup(pool: &PgPool, q: &Query) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let dimension = q
        .dimensions
        .iter()
        .find_map(Dimension::rollup_name)
        .unwrap_or_default();
    let metrics = format!(
        "{HLL_VISITORS} AS m_visitors, sum(pageviews)::bigint AS m_pageviews, sum(events)::bigint AS m_events"
    );
    if let Some(rows) = top_by_visitors(pool, q, &dimension, &metrics).await? {
        return Ok(rows);
    }
    day_rollup(pool, q, "rollup_daily", dimension, &metrics, true, None).await
}

/// The top values by visitors (the default order of breakdowns) without a sketch union for every
/// value, which is what makes a breakdown over thousands of pages slow. Visitors never exceed
/// events, so once the values with the most events are ranked by visitors, no other value can
/// reach the last wanted one: its visitors are at most its events, which are at most the fewest
/// events among those ranked. `None` when the shortcut does not apply or cannot prove its answer
/// (then the full breakdown answers).
async fn top_by_visitors(
    pool: &PgPool,
    q: &Query,
    dimension: &str,
    metrics: &str,
) -> Result<Option<Vec<(Vec<String>, Agg)>>, EngineError> {
    let wanted = q.offset + q.limit;
    let by_visitors = order(q) == [(OrderKey::Metric(Metric::Visitors), Direction::Desc)];
    if !by_visitors || q.dimensions.len() != 1 || wanted > 1_000 {
        return Ok(None);
    }
    let candidates = (4 * wanted + 10) as i64;
    let by_events: Vec<(String, i64)> = sqlx::query_as(
        "SELECT value, sum(events)::bigint AS e FROM rollup_daily \
         WHERE property_id = $1 AND dimension = $2 AND day >= $3 AND day < $4 \
         GROUP BY value ORDER BY e DESC, value LIMIT $5",
    )
    .bind(q.property_id)
    .bind(dimension)
    .bind(q.range.from.date())
    .bind(q.range.to.date())
    .bind(candidates)
    .fetch_all(pool)
    .await?;
    let Some((_, fewest_events)) = by_events.last().cloned() else {
        return Ok(None);
    };
    if (by_events.len() as i64) < candidates {
        // Few values: the full breakdown is as cheap.
        return Ok(None);
    }
    let values = by_events.into_iter().map(|(v, _)| v).collect();
    let rows = day_rollup(
        pool,
        q,
        "rollup_daily",
        dimension.to_owned(),
        metrics,
        true,
        Some(values),
    )
    .await?;
    // Sketch estimates can exceed the true count by a little (0.81 % standard error): keep a margin.
    let proven = rows.len() == q.limit
        && rows
            .last()
            .and_then(|(_, a)| a.visitors)
            .is_some_and(|v| (fewest_events as f64) * 1.05 < v as f64);
    Ok(proven.then_some(rows))
}

/// Visit metrics per visit attribute and start day.
async fn visit_rollup(pool: &PgPool, q: &Query) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let dimension = q
        .dimensions
        .iter()
        .find_map(|d| match d {
            Dimension::Visit(c) => Some(c.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    let metrics = format!(
        "{HLL_VISITORS} AS m_visitors, sum(visits)::bigint AS m_visits, sum(bounces)::bigint AS m_bounces, \
         sum(duration)::bigint AS m_duration, sum(pageviews)::bigint AS m_pageviews, \
         sum(pageviews)::bigint AS m_session_pageviews, sum(events)::bigint AS m_events, \
         sum(engaged)::bigint AS m_engaged"
    );
    let rows = day_rollup(pool, q, "rollup_visits", dimension, &metrics, false, None).await?;
    // Rows whose visits all moved elsewhere (a late hit changed their attribution) are empty.
    Ok(rows
        .into_iter()
        .filter(|(_, a)| a.visits.unwrap_or(0) > 0)
        .collect())
}

/// A breakdown from a rollup by day and dimension value (`rollup_daily`, `rollup_visits`);
/// `paged` orders and pages it in SQL; `values` keeps only those values.
async fn day_rollup(
    pool: &PgPool,
    q: &Query,
    table: &str,
    dimension: String,
    metrics: &str,
    paged: bool,
    values: Option<Vec<String>>,
) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        match d {
            Dimension::Time(g) => {
                qb.push(format!("{} AS d{i}, ", time_label(*g, "day::timestamp")))
            }
            _ => qb.push(format!("value AS d{i}, ")),
        };
    }
    qb.push(format!("{metrics} FROM {table} WHERE property_id = "));
    qb.push_bind(q.property_id)
        .push(" AND dimension = ")
        .push_bind(dimension)
        .push(" AND day >= ")
        .push_bind(q.range.from.date())
        .push(" AND day < ")
        .push_bind(q.range.to.date());
    if let Some(values) = values {
        qb.push(" AND value = ANY(").push_bind(values).push(")");
    }
    push_group_by(&mut qb, q.dimensions.len());
    if paged {
        push_order_and_page(&mut qb, q);
    }
    fetch(&mut qb, pool, q.dimensions.len()).await
}

/// Visits, bounces, durations, session pageviews and engaged visits over `sessions` rows.
fn session_metrics() -> String {
    format!(
        "count(*) AS m_visits, \
         sum(CASE WHEN pageviews <= 1 AND interactive = 0 THEN 1 ELSE 0 END)::bigint AS m_bounces, \
         sum(floor(extract(epoch FROM last_at - started_at)))::bigint AS m_duration, \
         sum(pageviews)::bigint AS m_session_pageviews, \
         count(*) FILTER (WHERE floor(extract(epoch FROM last_at - started_at)) > {} \
                          OR pageviews >= 2 OR conversions > 0) AS m_engaged",
        crate::domain::session::ENGAGED_AFTER_SECS
    )
}

/// With filters, keeps the sessions that had a matching hit in the range: a join on the distinct
/// matching sessions, hash-joined even on unanalysed tables, where `IN (subquery)` can degrade to
/// a rescan per session.
fn push_matched_sessions(
    qb: &mut QueryBuilder<'_, Postgres>,
    q: &Query,
) -> Result<(), EngineError> {
    if let Some(f) = &q.filters {
        qb.push(" JOIN (SELECT DISTINCT session_id AS matched");
        push_hits_source(qb, q);
        push_range(qb, q, "local_time");
        qb.push(" AND ");
        push_filter(qb, f, &q.goals)?;
        qb.push(") m ON m.matched = sessions.session_id");
    }
    Ok(())
}

/// Hit metrics from the per-hit table. `visits` adds visits counted by their hits (for event
/// breakdowns); `paged` orders and pages in SQL (for breakdowns, which can be large).
async fn enriched_hits(
    pool: &PgPool,
    q: &Query,
    visits: bool,
    paged: bool,
) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        push_hit_dimension(&mut qb, d);
        qb.push(format!(" AS d{i}, "));
    }
    qb.push(
        "count(DISTINCT visitor_key) AS m_visitors, count(*) FILTER (WHERE name = 'pageview') AS m_pageviews, \
         count(*) AS m_events",
    );
    if visits {
        qb.push(", count(DISTINCT session_id) AS m_visits");
    }
    if q.metrics
        .iter()
        .any(|m| matches!(m, Metric::TotalRevenue | Metric::AverageRevenue))
    {
        qb.push(
            ", sum(revenue_amount)::float8 AS r_revenue, count(revenue_amount) AS m_revenue_hits, \
             CASE WHEN count(DISTINCT revenue_currency) = 1 THEN min(revenue_currency) END AS r_currency",
        );
    }
    push_hits_source(&mut qb, q);
    push_range(&mut qb, q, "local_time");
    if let Some(f) = &q.filters {
        qb.push(" AND ");
        push_filter(&mut qb, f, &q.goals)?;
    }
    // Like the rollups, a prop breakdown counts only the hits that have the prop.
    for d in &q.dimensions {
        if let Dimension::Prop(k) = d {
            qb.push(" AND props->>")
                .push_bind(k.clone())
                .push(" IS NOT NULL");
        }
    }
    push_group_by(&mut qb, q.dimensions.len());
    if paged {
        push_order_and_page(&mut qb, q);
    }
    fetch(&mut qb, pool, q.dimensions.len()).await
}

/// Visit metrics from the sessions table: visits that started in the range (and, with filters,
/// had a matching hit), grouped by time and visit attributes. With `visit_totals`, also their
/// visitors, pageviews and events (for breakdowns by visit attributes, where the visits are the
/// population).
async fn enriched_sessions(
    pool: &PgPool,
    q: &Query,
    visit_totals: bool,
) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        match d {
            Dimension::Time(g) => qb.push(format!("{} AS d{i}, ", time_label(*g, "start_local"))),
            Dimension::Visit(column) => qb.push(format!("{column} AS d{i}, ")),
            _ => qb.push(format!("'' AS d{i}, ")),
        };
    }
    if visit_totals {
        qb.push(
            "count(DISTINCT visitor_key) AS m_visitors, sum(pageviews)::bigint AS m_pageviews, \
             sum(events)::bigint AS m_events, ",
        );
    }
    qb.push(format!("{} FROM sessions", session_metrics()));
    push_matched_sessions(&mut qb, q)?;
    push_range(&mut qb, q, "start_local");
    push_group_by(&mut qb, q.dimensions.len());
    fetch(&mut qb, pool, q.dimensions.len()).await
}

/// Distinct visitors over the whole range with these filters.
async fn total_visitors(
    pool: &PgPool,
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
        Plan::Enriched => enriched_hits(pool, &total, false, false).await?,
        _ => hourly_rollup(pool, &total).await?,
    };
    Ok(rows.first().and_then(|(_, a)| a.visitors).unwrap_or(0))
}

/// Hits from bots per bot over a day-aligned range (bots are counted per local day), most first.
pub async fn bots(
    pool: &PgPool,
    property_id: uuid::Uuid,
    range: &super::DateRange,
) -> Result<Vec<(String, i64)>, EngineError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT value, sum(events)::bigint FROM rollup_daily \
         WHERE property_id = $1 AND dimension = $2 AND day >= $3 AND day < $4 \
         GROUP BY value ORDER BY 2 DESC, 1",
    )
    .bind(property_id)
    .bind(crate::projections::hits::DIM_BOT)
    .bind(range.from.date())
    .bind(range.to.date())
    .fetch_all(pool)
    .await?;
    Ok(rows)
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
async fn check_patterns(pool: &PgPool, q: &Query) -> Result<(), EngineError> {
    let mut found = Vec::new();
    if let Some(f) = &q.filters {
        patterns(f, &mut found);
    }
    if found.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::new("SELECT count(*) AS d0 FROM unnest(");
    qb.push_bind(found).push("::text[]) p WHERE '' ~ p");
    fetch(&mut qb, pool, 0).await.map(|_| ())
}

/// Runs a query.
pub async fn run(pool: &PgPool, q: &Query) -> Result<Vec<ResultRow>, EngineError> {
    q.validate()?;
    check_patterns(pool, q).await?;
    let plan = plan(q);
    let breakdown = q.dimensions.iter().any(|d| !d.is_time());
    let event_breakdown = q.dimensions.iter().any(Dimension::is_event);
    let per_visit = q
        .metrics
        .iter()
        .any(|m| m.is_per_visit() || *m == Metric::Visits);
    // Visit metrics by visit attributes come from the sessions table and are merged in memory, so
    // such breakdowns are ordered and paged here; other breakdowns in SQL.
    let visit_breakdown = is_visit_breakdown(q);
    let sql_paged = breakdown && !visit_breakdown && (event_breakdown || !per_visit);
    let mut groups: BTreeMap<Vec<String>, Agg> = BTreeMap::new();
    let mut ordered: Vec<Vec<String>> = Vec::new();
    let results = match plan {
        Plan::HourlyRollup => hourly_rollup(pool, q).await?,
        Plan::DailyRollup => daily_rollup(pool, q).await?,
        Plan::VisitRollup => visit_rollup(pool, q).await?,
        Plan::Enriched if visit_breakdown => enriched_sessions(pool, q, true).await?,
        Plan::Enriched => {
            let mut rows = enriched_hits(pool, q, event_breakdown, sql_paged).await?;
            if per_visit && !event_breakdown {
                // Visits are counted by their start, so a group may have visits but no hits.
                let mut by_key: BTreeMap<Vec<String>, Agg> = rows.into_iter().collect();
                for (k, a) in enriched_sessions(pool, q, false).await? {
                    by_key.entry(k).or_default().merge(a);
                }
                rows = by_key.into_iter().collect();
            }
            rows
        }
    };
    for (k, a) in results {
        ordered.push(k.clone());
        groups.insert(k, a);
    }
    let mut totals = Totals::default();
    if q.metrics.contains(&Metric::Percentage) {
        totals.visitors = total_visitors(pool, q, q.filters.clone()).await?;
    }
    if q.metrics.contains(&Metric::ConversionRate) {
        let population = q.filters.as_ref().and_then(Filter::without_goals);
        totals.goal_population = total_visitors(pool, q, population).await?;
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
        rows = rows.into_iter().skip(q.offset).take(q.limit).collect();
    }
    Ok(rows)
}

fn sort_rows(rows: &mut [ResultRow], q: &Query) {
    let keys = order(q);
    rows.sort_by(|a, b| {
        for (key, dir) in &keys {
            let ord = match key {
                OrderKey::Dimension(d) => {
                    let i = q.dimensions.iter().position(|x| x == d).unwrap_or(0);
                    a.dimensions.get(i).cmp(&b.dimensions.get(i))
                }
                OrderKey::Metric(m) => {
                    let i = q.metrics.iter().position(|x| x == m).unwrap_or(0);
                    let (x, y) = (
                        a.metrics[i].as_f64().unwrap_or(0.0),
                        b.metrics[i].as_f64().unwrap_or(0.0),
                    );
                    x.total_cmp(&y)
                }
            };
            let ord = if *dir == Direction::Desc {
                ord.reverse()
            } else {
                ord
            };
            if ord.is_ne() {
                return ord;
            }
        }
        a.dimensions.cmp(&b.dimensions)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::DateRange;

    fn query(dimensions: Vec<Dimension>, metrics: Vec<Metric>, filters: Option<Filter>) -> Query {
        Query {
            property_id: uuid::Uuid::nil(),
            range: DateRange::days("2026-11-01".parse().unwrap(), "2026-11-30".parse().unwrap()),
            metrics,
            dimensions,
            filters,
            order_by: vec![],
            limit: 100,
            offset: 0,
            goals: vec![],
        }
    }

    #[test]
    fn the_planner_uses_rollups_when_it_can() {
        use Metric::*;
        assert_eq!(
            plan(&query(vec![], vec![Visitors, BounceRate], None)),
            Plan::HourlyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Time(Grain::Hour)],
                vec![Visits],
                None
            )),
            Plan::HourlyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Page],
                vec![Visitors, Pageviews],
                None
            )),
            Plan::DailyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Time(Grain::Day), Dimension::Prop("plan".into())],
                vec![Events],
                None
            )),
            Plan::DailyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Visit("source")],
                vec![Visitors, BounceRate],
                None
            )),
            Plan::VisitRollup
        );
        // Not every visit attribute is rolled up; revenue needs the hits.
        assert_eq!(
            plan(&query(
                vec![Dimension::Visit("referrer")],
                vec![Visits],
                None
            )),
            Plan::Enriched
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Visit("source")],
                vec![TotalRevenue],
                None
            )),
            Plan::Enriched
        );
        // Visits by page, hourly breakdowns and filters need the enriched tables.
        assert_eq!(
            plan(&query(vec![Dimension::Page], vec![Visits], None)),
            Plan::Enriched
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Time(Grain::Hour), Dimension::Page],
                vec![Events],
                None
            )),
            Plan::Enriched
        );
        let f = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Page,
            values: vec!["/".into()],
        };
        assert_eq!(
            plan(&query(vec![], vec![Visitors], Some(f))),
            Plan::Enriched
        );
    }

    #[test]
    fn filters_become_parameterised_sql() {
        let f = Filter::And(vec![
            Filter::Leaf {
                op: Op::Contains,
                dimension: Dimension::Page,
                values: vec!["50%_off".into()],
            },
            Filter::Not(Box::new(Filter::Leaf {
                op: Op::Is,
                dimension: Dimension::Prop("plan".into()),
                values: vec!["pro".into()],
            })),
        ]);
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_filter(&mut qb, &f, &[]).unwrap();
        assert_eq!(
            qb.sql(),
            "((COALESCE(pathname, '') LIKE ANY($1)) AND NOT ((COALESCE(props->>$2, '') = ANY($3))))"
        );
        let time = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Time(Grain::Day),
            values: vec![],
        };
        assert_eq!(
            push_filter(&mut qb, &time, &[]).unwrap_err().field,
            "filters"
        );
        assert_eq!(escape_like("50%_off"), "50\\%\\_off");
    }
}
