//! Funnels: how many visitors went through steps 1..k in order within one visit, for each k.
//!
//! Each step is matched greedily, at its earliest hit after the previous step's (by the hit's time,
//! then its position in the log): the earliest completion of a step leaves the most room for the
//! next, so this finds every visit that has the steps as a subsequence, anything in between. A
//! visitor counts once per step, whichever of their visits completed it. Filters pick the visits
//! (those with a hit in the range that matches), not the steps' hits.

use sqlx::{PgPool, Postgres, QueryBuilder};

use super::sql::{escape_like, push_filter, push_hits_source, push_range};
use super::EngineError;
use crate::domain::Goal;
use crate::query::Query;

/// The visitors who completed each step, in step order. `q` gives the property, the range, the
/// filters and the goals (its metrics and dimensions are not used).
pub async fn funnel(pool: &PgPool, q: &Query, steps: &[Goal]) -> Result<Vec<i64>, EngineError> {
    q.validate()?;
    super::check_patterns(pool, q).await?;
    // One scan of the range: the hits that complete any step, each with the steps it completes
    // as a bit mask.
    let mut qb = QueryBuilder::new(
        "WITH visit_hits AS MATERIALIZED (SELECT hits.session_id, hits.visitor_key, \
         hits.occurred_at, hits.position, ",
    );
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            qb.push(" | ");
        }
        qb.push("(CASE WHEN ");
        push_step(&mut qb, step);
        qb.push(format!(" THEN {} ELSE 0 END)", 1 << i));
    }
    qb.push(" AS steps");
    push_hits_source(&mut qb, q);
    push_range(&mut qb, q, "local_time");
    qb.push(" AND (");
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        push_step(&mut qb, step);
    }
    qb.push(")");
    if let Some(f) = &q.filters {
        qb.push(" AND hits.session_id IN (SELECT hits.session_id");
        push_hits_source(&mut qb, q);
        push_range(&mut qb, q, "local_time");
        qb.push(" AND ");
        push_filter(&mut qb, f, &q.goals)?;
        qb.push(")");
    }
    qb.push(")");
    for i in 0..steps.len() {
        // s<i>: per visit, the earliest hit that completes step i after step i-1's.
        qb.push(format!(
            ", s{i} AS (SELECT DISTINCT ON (h.session_id) h.session_id, h.visitor_key, \
             h.occurred_at, h.position FROM visit_hits h"
        ));
        if i > 0 {
            qb.push(format!(
                " JOIN s{prev} ON s{prev}.session_id = h.session_id \
                 AND (h.occurred_at, h.position) > (s{prev}.occurred_at, s{prev}.position)",
                prev = i - 1
            ));
        }
        qb.push(format!(
            " WHERE h.steps & {} <> 0 ORDER BY h.session_id, h.occurred_at, h.position)",
            1 << i
        ));
    }
    qb.push(" SELECT ");
    for i in 0..steps.len() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push(format!(
            "(SELECT count(DISTINCT visitor_key) FROM s{i}) AS m_{i}"
        ));
    }
    let row = qb.build().fetch_one(pool).await?;
    (0..steps.len())
        .map(|i| Ok(sqlx::Row::try_get::<i64, _>(&row, i)?))
        .collect()
}

/// A step as a condition on a hit (of `hits`): its custom event, or a pageview on a matching path.
fn push_step(qb: &mut QueryBuilder<'_, Postgres>, step: &Goal) {
    match (&step.event, &step.page) {
        (Some(event), _) => {
            qb.push("hits.name = ").push_bind(event.clone());
        }
        (None, Some(page)) => {
            let pattern = escape_like(page).replace('*', "%");
            qb.push("(hits.name = 'pageview' AND hits.pathname LIKE ")
                .push_bind(pattern)
                .push(")");
        }
        (None, None) => {
            qb.push("FALSE");
        }
    }
}
