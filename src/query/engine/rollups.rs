//! Readers of the rollups (`rollup_hourly` with its pre-merged days in `rollup_days`,
//! `rollup_daily` and `rollup_visits` with their pre-merged weeks in `rollup_weekly` and
//! `rollup_visits_weekly`), and of the bots counted in `rollup_daily`.

use chrono::Duration;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::agg::{fetch, Groups};
use super::order::order;
use super::sql::{push_group_by, push_order_and_page, push_range, time_label};
use super::EngineError;
use crate::query::{DateRange, Dimension, Direction, Metric, OrderKey, Query};
use crate::readmodel::schema::{
    prop_keys_refused_sql, prop_rolled_up_sql, version_sql, visit_rollup_group, weekly_of, DIM_BOT,
    DIM_PROP_PREFIX, HITS, HIT_DAYS, ROLLUP_DAILY, ROLLUP_DAYS, ROLLUP_HOURLY, ROLLUP_VISITS,
    ROLLUP_WEEKS,
};

const HLL_VISITORS: &str = "round(COALESCE(hll_cardinality(hll_union_agg(visitors)), 0))::bigint";

/// Totals and a time series from the hourly rollup. Over whole days and by day or coarser, it reads
/// each day's pre-merged row where that is current, and the hours of the other days
/// ([`push_days_from`]).
pub(super) async fn hourly_rollup(db: &mut PgConnection, q: &Query) -> Result<Groups, EngineError> {
    let by_day = q.range.is_day_aligned()
        && !q
            .dimensions
            .iter()
            .any(|d| matches!(d, Dimension::Time(g) if g.is_sub_day()));
    let query = |by_day: bool| {
        let mut qb = QueryBuilder::new("SELECT ");
        for (i, d) in q.dimensions.iter().enumerate() {
            if let Dimension::Time(g) = d {
                qb.push(format!("{} AS d{i}, ", time_label(*g, "bucket")));
            }
        }
        qb.push(format!(
            "{HLL_VISITORS} AS m_visitors, sum(pageviews)::bigint AS m_pageviews, sum(events)::bigint AS m_events, \
             sum(visits)::bigint AS m_visits, sum(bounces)::bigint AS m_bounces, sum(duration)::bigint AS m_duration, \
             sum(session_pageviews)::bigint AS m_session_pageviews, sum(engaged)::bigint AS m_engaged"
        ));
        if by_day {
            push_days_from(&mut qb, q);
        } else {
            qb.push(format!(" FROM {}", ROLLUP_HOURLY.table));
            push_range(&mut qb, q, "bucket");
        }
        push_group_by(&mut qb, q.dimensions.len());
        qb
    };
    fetch_premerged(db, q.dimensions.len(), by_day, query).await
}

/// Fetches the query `query` builds, with the pre-merged rows if `premerged`; without them where
/// the live generation was built before their tables or columns (a rebuild to the new schema is
/// under way).
async fn fetch_premerged<'a>(
    db: &mut PgConnection,
    dims: usize,
    premerged: bool,
    query: impl Fn(bool) -> QueryBuilder<'a, Postgres>,
) -> Result<Groups, EngineError> {
    match fetch(&mut query(premerged), db, dims).await {
        Err(EngineError::Database(e)) if premerged && predates_schema(&e) => {
            fetch(&mut query(false), db, dims).await
        }
        answer => answer,
    }
}

/// ` FROM` the hourly rollup's rows over the whole days of the query's range, each day's as one
/// row where its [`ROLLUP_DAYS`] row is current (its version is the day's [`HIT_DAYS`] one), as
/// its hours otherwise; `bucket` is the day's midnight or the hour.
fn push_days_from(qb: &mut QueryBuilder<'_, Postgres>, q: &Query) {
    let (from, to) = (q.range.from.date(), q.range.to.date());
    let columns = format!("visitors, {}", ROLLUP_HOURLY.counters.join(", "));
    qb.push(format!(
        " FROM (WITH fresh AS (SELECT * FROM {ROLLUP_DAYS} d WHERE d.property_id = "
    ))
    .push_bind(q.property_id)
    .push(" AND d.day >= ")
    .push_bind(from)
    .push(" AND d.day < ")
    .push_bind(to)
    .push(format!(
        " AND d.version = {}) SELECT day::timestamp AS bucket, {columns} FROM fresh \
         UNION ALL SELECT bucket, {columns} FROM {} WHERE property_id = ",
        version_sql(HIT_DAYS, "d.property_id", "d.day", "1"),
        ROLLUP_HOURLY.table
    ))
    .push_bind(q.property_id)
    // The other days' hours, listed so that the index finds only their rows: the hours of the
    // days with hits (every day with hourly rows has its version), not of the whole range, which
    // may span millennia.
    .push(format!(
        " AND bucket = ANY(ARRAY(SELECT h FROM (SELECT DISTINCT day FROM {HIT_DAYS} \
         WHERE property_id = "
    ))
    .push_bind(q.property_id)
    .push(" AND day >= ")
    .push_bind(from)
    .push(" AND day < ")
    .push_bind(to)
    .push(
        " AND day NOT IN (SELECT day FROM fresh)) o, generate_series(o.day::timestamp, \
         o.day + interval '23 hours', interval '1 hour') h))) r",
    );
}

/// Whether `e` says a table (or view) or a column does not exist (42P01, undefined_table; 42703,
/// undefined_column).
fn predates_schema(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if matches!(e.code().as_deref(), Some("42P01" | "42703")))
}

pub(super) async fn daily_rollup(db: &mut PgConnection, q: &Query) -> Result<Groups, EngineError> {
    let dimension = q
        .dimensions
        .iter()
        .find_map(Dimension::rollup_name)
        .unwrap_or_default();
    let metrics = format!(
        "{HLL_VISITORS} AS m_visitors, sum(pageviews)::bigint AS m_pageviews, sum(events)::bigint AS m_events"
    );
    if let Some(rows) = top_by_visitors(db, q, &dimension, &metrics).await? {
        return Ok(rows);
    }
    day_rollup(db, q, &DayRows::daily(dimension), &metrics, true, None).await
}

/// Asks `hit_prop_keys` (`sql`) about property `$1` (and `$2`, a key). A generation built before
/// the cap has no such table: it rolled every key up, and `before_cap` answers.
async fn ask_prop_keys(
    db: &mut PgConnection,
    sql: &str,
    property_id: Uuid,
    key: Option<&str>,
    before_cap: bool,
) -> Result<bool, EngineError> {
    let mut query = sqlx::query_scalar(sql).bind(property_id);
    if let Some(key) = key {
        query = query.bind(key);
    }
    match query.fetch_one(db).await {
        Err(e) if predates_schema(&e) => Ok(before_cap),
        answer => Ok(answer?),
    }
}

/// Whether the rollups hold every hit of the property with prop `key`.
pub(super) async fn prop_rolled_up(
    db: &mut PgConnection,
    property_id: Uuid,
    key: &str,
) -> Result<bool, EngineError> {
    ask_prop_keys(db, &prop_rolled_up_sql(), property_id, Some(key), true).await
}

/// The prop keys of the property's events in the range, most used first (at most 100): from the
/// daily rollups, or from the enriched hits where a partition has refused keys (then only they
/// know every key).
pub async fn prop_keys(
    db: &mut PgConnection,
    property_id: Uuid,
    range: &DateRange,
) -> Result<Vec<String>, EngineError> {
    if ask_prop_keys(db, &prop_keys_refused_sql(), property_id, None, false).await? {
        return Ok(sqlx::query_scalar(&format!(
            "SELECT k FROM {HITS}, jsonb_object_keys(props) k WHERE property_id = $1 \
             AND local_time >= $2 AND local_time < $3 AND props IS NOT NULL \
             GROUP BY k ORDER BY count(*) DESC, k LIMIT 100"
        ))
        .bind(property_id)
        .bind(range.from)
        .bind(range.to)
        .fetch_all(db)
        .await?);
    }
    let last_day = (range.to - Duration::seconds(1)).date();
    // `prop:` < dimension < `prop;`: the range of the prefix, which the index can scan.
    let upper = format!("{};", DIM_PROP_PREFIX.trim_end_matches(':'));
    Ok(sqlx::query_scalar(&format!(
        "SELECT substr(dimension, $5) FROM {} WHERE property_id = $1 AND dimension > $2 \
         AND dimension < $3 AND day BETWEEN $4::date AND $6::date \
         GROUP BY dimension ORDER BY sum(events) DESC, dimension LIMIT 100",
        ROLLUP_DAILY.table
    ))
    .bind(property_id)
    .bind(DIM_PROP_PREFIX)
    .bind(upper)
    .bind(range.from.date())
    .bind(DIM_PROP_PREFIX.len() as i32 + 1)
    .bind(last_day)
    .fetch_all(db)
    .await?)
}

/// The top values by visitors (the default order of breakdowns) without a sketch union for every
/// value, which is what makes a breakdown over thousands of pages slow. Visitors never exceed
/// events, so once the values with the most events are ranked by visitors, no other value can
/// reach the last wanted one: its visitors are at most its events, which are at most the fewest
/// events among those ranked. The sketches of twice the wanted values are unioned first (enough
/// where a few values take most of the traffic, as pages do), then of four times as many if that
/// could not prove its answer. `None` when the shortcut does not apply or cannot prove its answer
/// (then the full breakdown answers).
async fn top_by_visitors(
    db: &mut PgConnection,
    q: &Query,
    dimension: &str,
    metrics: &str,
) -> Result<Option<Groups>, EngineError> {
    let wanted = q.offset + q.limit;
    let by_visitors = order(q) == [(OrderKey::Metric(Metric::Visitors), Direction::Desc)];
    if !by_visitors || q.dimensions.len() != 1 || wanted > 1_000 {
        return Ok(None);
    }
    let candidates = 4 * wanted + 10;
    let by_events = events_by_value(
        db,
        q.property_id,
        dimension,
        &q.range,
        Some(candidates as i64),
    )
    .await?;
    if by_events.len() < candidates {
        // Few values: the full breakdown is as cheap.
        return Ok(None);
    }
    for ranked in [2 * wanted + 5, candidates] {
        let fewest_events = by_events[ranked - 1].1;
        let values: Vec<String> = by_events[..ranked].iter().map(|(v, _)| v.clone()).collect();
        let rows = day_rollup(
            db,
            q,
            &DayRows::daily(dimension.to_owned()),
            metrics,
            true,
            Some(&values),
        )
        .await?;
        // Sketch estimates can exceed the true count by a little (0.81 % standard error): keep a
        // margin.
        let proven = rows.len() == q.limit
            && rows
                .last()
                .and_then(|(_, a)| a.visitors)
                .is_some_and(|v| (fewest_events as f64) * 1.05 < v as f64);
        if proven {
            return Ok(Some(rows));
        }
    }
    Ok(None)
}

/// Visit metrics per visit attribute and start day, summed over the rows of the attribute's group.
pub(super) async fn visit_rollup(db: &mut PgConnection, q: &Query) -> Result<Groups, EngineError> {
    let attribute = q
        .dimensions
        .iter()
        .find_map(|d| match d {
            Dimension::Visit(c) => Some(*c),
            _ => None,
        })
        .unwrap_or_default();
    let rows = DayRows {
        table: ROLLUP_VISITS.table,
        dimension: visit_rollup_group(attribute).unwrap_or_default().to_owned(),
        value: attribute,
    };
    let metrics = format!(
        "{HLL_VISITORS} AS m_visitors, sum(visits)::bigint AS m_visits, sum(bounces)::bigint AS m_bounces, \
         sum(duration)::bigint AS m_duration, sum(pageviews)::bigint AS m_pageviews, \
         sum(pageviews)::bigint AS m_session_pageviews, sum(events)::bigint AS m_events, \
         sum(engaged)::bigint AS m_engaged"
    );
    let rows = day_rollup(db, q, &rows, &metrics, false, None).await?;
    // Rows whose visits all moved elsewhere (a late hit changed their attribution) are empty.
    Ok(rows
        .into_iter()
        .filter(|(_, a)| a.visits.unwrap_or(0) > 0)
        .collect())
}

/// The rows of a day rollup that a breakdown reads: those of `dimension` in `table`, broken down by
/// the `value` column.
struct DayRows<'a> {
    table: &'static str,
    dimension: String,
    value: &'a str,
}

impl DayRows<'_> {
    fn daily(dimension: String) -> Self {
        Self {
            table: ROLLUP_DAILY.table,
            dimension,
            value: "value",
        }
    }

    /// ` FROM` these rows of `property` over the whole days of `range`, then ` WHERE` and their
    /// conditions, to which more can be added with ` AND`. `by_week` (the days' rows are summed
    /// together) reads the days of the rollup's weeks that lie in the range and are pre-merged at
    /// their current version from its weekly table ([`weekly_of`]), and the other days by day.
    fn push_from(
        &self,
        qb: &mut QueryBuilder<'_, Postgres>,
        property: Uuid,
        range: &DateRange,
        by_week: bool,
    ) {
        let (from, to) = (range.from.date(), range.to.date());
        let weekly = weekly_of(self.table).filter(|_| by_week && to - from >= Duration::days(7));
        let same = |qb: &mut QueryBuilder<'_, Postgres>| {
            qb.push(" WHERE property_id = ")
                .push_bind(property)
                .push(" AND dimension = ")
                .push_bind(self.dimension.clone());
        };
        let Some(weekly) = weekly else {
            qb.push(format!(" FROM {}", self.table));
            same(qb);
            qb.push(" AND day >= ")
                .push_bind(from)
                .push(" AND day < ")
                .push_bind(to);
            return;
        };
        // The weeks in the range that hold the dimension, their rows written at the version their
        // days have now: each week's rows hold its first `days` days.
        qb.push(format!(
            " FROM (WITH fresh AS (SELECT w.week, w.days FROM {ROLLUP_WEEKS} w WHERE w.property_id = "
        ))
        .push_bind(property)
        .push(" AND w.week >= ")
        .push_bind(from)
        .push(" AND w.week + w.days <= ")
        .push_bind(to)
        .push(" AND ")
        .push_bind(self.dimension.clone())
        .push(format!(
            " = ANY(w.dimensions) AND w.version = {}) SELECT * FROM {weekly}",
            version_sql(HIT_DAYS, "w.property_id", "w.week", "w.days")
        ));
        same(qb);
        // The range too, so that the index, not a filter, bounds the weeks read.
        qb.push(" AND day >= ")
            .push_bind(from)
            .push(" AND day < ")
            .push_bind(to)
            .push(" AND day = ANY(ARRAY(SELECT week FROM fresh))");
        // The other days, listed so that the index finds only their rows: the days with hits
        // (every day with rollup rows has its version), not every day of the range, which may
        // span millennia.
        qb.push(format!(" UNION ALL SELECT * FROM {}", self.table));
        same(qb);
        qb.push(format!(
            " AND day = ANY(ARRAY(SELECT DISTINCT h.day FROM {HIT_DAYS} h WHERE h.property_id = "
        ))
        .push_bind(property)
        .push(" AND h.day >= ")
        .push_bind(from)
        .push(" AND h.day < ")
        .push_bind(to)
        .push(
            " AND NOT EXISTS (SELECT 1 FROM fresh f WHERE h.day >= f.week AND h.day < f.week + f.days)))",
        );
        qb.push(") r WHERE true");
    }
}

/// A breakdown from a rollup by day and dimension value (`rollup_daily`, `rollup_visits`);
/// `paged` orders and pages it in SQL; `values` keeps only those values.
async fn day_rollup(
    db: &mut PgConnection,
    q: &Query,
    rows: &DayRows<'_>,
    metrics: &str,
    paged: bool,
    values: Option<&[String]>,
) -> Result<Groups, EngineError> {
    let query = |by_week: bool| {
        let value = rows.value;
        let mut qb = QueryBuilder::new("SELECT ");
        for (i, d) in q.dimensions.iter().enumerate() {
            match d {
                Dimension::Time(g) => {
                    qb.push(format!("{} AS d{i}, ", time_label(*g, "day::timestamp")))
                }
                _ => qb.push(format!("{value} AS d{i}, ")),
            };
        }
        qb.push(metrics);
        rows.push_from(&mut qb, q.property_id, &q.range, by_week);
        if let Some(values) = values {
            qb.push(format!(" AND {value} = ANY("))
                .push_bind(values.to_vec())
                .push(")");
        }
        push_group_by(&mut qb, q.dimensions.len());
        if paged {
            push_order_and_page(&mut qb, q);
        }
        qb
    };
    // Summed over the range, the days' rows are read by week where weeks are pre-merged.
    let by_week = !q.dimensions.iter().any(Dimension::is_time);
    fetch_premerged(db, q.dimensions.len(), by_week, query).await
}

/// Hits from bots per bot over a day-aligned range (bots are counted per local day), most first.
pub async fn bots(
    db: &mut PgConnection,
    property_id: Uuid,
    range: &DateRange,
) -> Result<Vec<(String, i64)>, EngineError> {
    events_by_value(db, property_id, DIM_BOT, range, None).await
}

/// The values of a `rollup_daily` dimension over a day-aligned range with their events, most
/// first (then by value); the first `limit` of them, or all.
async fn events_by_value(
    db: &mut PgConnection,
    property_id: Uuid,
    dimension: &str,
    range: &DateRange,
    limit: Option<i64>,
) -> Result<Vec<(String, i64)>, EngineError> {
    let query = |by_week: bool| {
        let mut qb = QueryBuilder::new("SELECT value AS d0, sum(events)::bigint AS m_events");
        DayRows::daily(dimension.to_owned()).push_from(&mut qb, property_id, range, by_week);
        qb.push(" GROUP BY d0 ORDER BY m_events DESC, d0 LIMIT ")
            .push_bind(limit);
        qb
    };
    let groups = fetch_premerged(db, 1, true, query).await?;
    Ok(groups
        .into_iter()
        .map(|(mut labels, agg)| (labels.swap_remove(0), agg.events.unwrap_or(0)))
        .collect())
}
