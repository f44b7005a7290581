//! Readers of the enriched per-hit and per-visit tables (`hits`, `sessions`), which answer what
//! the rollups cannot: filters, breakdowns crossed with them, goals and revenue.

use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::agg::{fetch, Groups};
use super::sql::{
    push_filter, push_group_by, push_hit_dimension, push_hits_source, push_order_and_page,
    push_range, time_label,
};
use super::EngineError;
use crate::query::{Dimension, Metric, Query};
use crate::readmodel::schema::{bounce_sql, engaged_sql, SESSIONS, SESSION_DURATION_SQL};

/// Visits, bounces, durations, session pageviews and engaged visits over `sessions` rows, by the
/// domain's rules (see [`bounce_sql`] and [`engaged_sql`]).
fn session_metrics() -> String {
    format!(
        "count(*) AS m_visits, \
         sum(CASE WHEN {bounce} THEN 1 ELSE 0 END)::bigint AS m_bounces, \
         sum({SESSION_DURATION_SQL})::bigint AS m_duration, \
         sum(pageviews)::bigint AS m_session_pageviews, \
         count(*) FILTER (WHERE {engaged}) AS m_engaged",
        bounce = bounce_sql(),
        engaged = engaged_sql(),
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
        qb.push(format!(") m ON m.matched = {SESSIONS}.session_id"));
    }
    Ok(())
}

/// Hit metrics from the per-hit table. `visits` adds visits counted by their hits (for event
/// breakdowns); `paged` orders and pages in SQL (for breakdowns, which can be large).
pub(super) async fn enriched_hits(
    db: &mut PgConnection,
    q: &Query,
    visits: bool,
    paged: bool,
) -> Result<Groups, EngineError> {
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
    fetch(&mut qb, db, q.dimensions.len()).await
}

/// Visit metrics from the sessions table: visits that started in the range (and, with filters,
/// had a matching hit), grouped by time and visit attributes. With `visit_totals`, also their
/// visitors, pageviews and events (for breakdowns by visit attributes, where the visits are the
/// population).
pub(super) async fn enriched_sessions(
    db: &mut PgConnection,
    q: &Query,
    visit_totals: bool,
) -> Result<Groups, EngineError> {
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
    qb.push(format!("{} FROM {SESSIONS}", session_metrics()));
    push_matched_sessions(&mut qb, q)?;
    push_range(&mut qb, q, "start_local");
    push_group_by(&mut qb, q.dimensions.len());
    fetch(&mut qb, db, q.dimensions.len()).await
}
