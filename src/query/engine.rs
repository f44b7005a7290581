//! Plans and runs a [`Query`]. The planner answers from the rollups when it can:
//!
//! - no filter, no breakdown (only a time dimension, hour-aligned range): `rollup_hourly`;
//! - no filter, one breakdown dimension, hit metrics only, day-aligned range, no hourly grain:
//!   `rollup_daily`;
//!
//! and from the enriched `hits` and `sessions` tables otherwise (arbitrary filters crossed with
//! breakdowns). Both paths compute visits, bounces and durations the same way, so they agree.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use super::{
    Dimension, Direction, Filter, Grain, Metric, Op, OrderKey, Query, QueryError, ResultRow,
};

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
    Enriched,
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
}

const AGG_COLUMNS: [&str; 7] = [
    "visitors",
    "pageviews",
    "events",
    "visits",
    "bounces",
    "duration",
    "session_pageviews",
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
    }

    fn value(&self, m: Metric, total_visitors: i64) -> Value {
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
            Metric::Percentage => {
                let pct = if total_visitors == 0 {
                    0.0
                } else {
                    n(self.visitors) as f64 * 100.0 / total_visitors as f64
                };
                json!((pct * 10.0).round() / 10.0)
            }
        }
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
    }
}

fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, f: &Filter) -> Result<(), QueryError> {
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
                push_filter(qb, f)?;
            }
            qb.push(")");
        }
        Filter::Not(f) => {
            qb.push("NOT (");
            push_filter(qb, f)?;
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
            qb.push(if negated {
                "NOT (COALESCE("
            } else {
                "(COALESCE("
            });
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
         sum(session_pageviews)::bigint AS m_session_pageviews FROM rollup_hourly"
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
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        match d {
            Dimension::Time(g) => {
                qb.push(format!("{} AS d{i}, ", time_label(*g, "day::timestamp")))
            }
            _ => qb.push(format!("value AS d{i}, ")),
        };
    }
    qb.push(format!(
        "{HLL_VISITORS} AS m_visitors, sum(pageviews)::bigint AS m_pageviews, sum(events)::bigint AS m_events \
         FROM rollup_daily WHERE property_id = "
    ));
    qb.push_bind(q.property_id)
        .push(" AND dimension = ")
        .push_bind(dimension)
        .push(" AND day >= ")
        .push_bind(q.range.from.date())
        .push(" AND day < ")
        .push_bind(q.range.to.date());
    push_group_by(&mut qb, q.dimensions.len());
    push_order_and_page(&mut qb, q);
    fetch(&mut qb, pool, q.dimensions.len()).await
}

async fn enriched_hits(
    pool: &PgPool,
    q: &Query,
    breakdown: bool,
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
    if breakdown {
        qb.push(", count(DISTINCT session_id) AS m_visits");
    }
    qb.push(" FROM hits");
    push_range(&mut qb, q, "local_time");
    if let Some(f) = &q.filters {
        qb.push(" AND ");
        push_filter(&mut qb, f)?;
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
    if breakdown {
        push_order_and_page(&mut qb, q);
    }
    fetch(&mut qb, pool, q.dimensions.len()).await
}

/// Visits that started in the range (and, with filters, had a matching hit), grouped by time.
async fn enriched_sessions(
    pool: &PgPool,
    q: &Query,
) -> Result<Vec<(Vec<String>, Agg)>, EngineError> {
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        if let Dimension::Time(g) = d {
            qb.push(format!("{} AS d{i}, ", time_label(*g, "start_local")));
        }
    }
    qb.push(
        "count(*) AS m_visits, \
         sum(CASE WHEN pageviews <= 1 AND interactive = 0 THEN 1 ELSE 0 END)::bigint AS m_bounces, \
         sum(floor(extract(epoch FROM last_at - started_at)))::bigint AS m_duration, \
         sum(pageviews)::bigint AS m_session_pageviews FROM sessions",
    );
    if let Some(f) = &q.filters {
        // A join on the distinct matching sessions: hash-joined even on unanalysed tables, where
        // `IN (subquery)` can degrade to a rescan per session.
        qb.push(" JOIN (SELECT DISTINCT session_id AS matched FROM hits");
        push_range(&mut qb, q, "local_time");
        qb.push(" AND ");
        push_filter(&mut qb, f)?;
        qb.push(") m ON m.matched = sessions.session_id");
    }
    push_range(&mut qb, q, "start_local");
    push_group_by(&mut qb, q.dimensions.len());
    fetch(&mut qb, pool, q.dimensions.len()).await
}

/// Distinct visitors over the whole range (and filters), for `percentage`.
async fn total_visitors(pool: &PgPool, q: &Query, plan: Plan) -> Result<i64, EngineError> {
    let total = Query {
        dimensions: vec![],
        order_by: vec![],
        ..q.clone()
    };
    let rows = match plan {
        Plan::Enriched => enriched_hits(pool, &total, false).await?,
        _ => hourly_rollup(pool, &total).await?,
    };
    Ok(rows.first().and_then(|(_, a)| a.visitors).unwrap_or(0))
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
    let mut groups: BTreeMap<Vec<String>, Agg> = BTreeMap::new();
    let mut ordered: Vec<Vec<String>> = Vec::new();
    let results = match plan {
        Plan::HourlyRollup => hourly_rollup(pool, q).await?,
        Plan::DailyRollup => daily_rollup(pool, q).await?,
        Plan::Enriched => {
            let mut rows = enriched_hits(pool, q, breakdown).await?;
            let per_visit = q
                .metrics
                .iter()
                .any(|m| m.is_per_visit() || *m == Metric::Visits);
            if !breakdown && per_visit {
                // Visits are counted by their start, so a group may have visits but no hits.
                let mut by_key: BTreeMap<Vec<String>, Agg> = rows.into_iter().collect();
                for (k, a) in enriched_sessions(pool, q).await? {
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
    let total = if q.metrics.contains(&Metric::Percentage) {
        total_visitors(pool, q, plan).await?
    } else {
        0
    };

    let mut rows: Vec<ResultRow> = ordered
        .into_iter()
        .filter_map(|k| {
            let a = groups.remove(&k)?;
            // An empty aggregate over no rows is no result row.
            if q.dimensions.is_empty() || a.events.unwrap_or(0) > 0 || a.visits.unwrap_or(0) > 0 {
                Some(ResultRow {
                    metrics: q.metrics.iter().map(|m| a.value(*m, total)).collect(),
                    dimensions: k,
                })
            } else {
                None
            }
        })
        .collect();
    if !breakdown {
        // Time series and totals are small: order and page them here.
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
        push_filter(&mut qb, &f).unwrap();
        assert_eq!(
            qb.sql(),
            "((COALESCE(pathname, '') LIKE ANY($1)) AND NOT ((COALESCE(props->>$2, '') = ANY($3))))"
        );
        let time = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Time(Grain::Day),
            values: vec![],
        };
        assert_eq!(push_filter(&mut qb, &time).unwrap_err().field, "filters");
        assert_eq!(escape_like("50%_off"), "50\\%\\_off");
    }
}
