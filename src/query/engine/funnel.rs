//! Funnels: how many visitors went through steps 1..k in order within one visit, for each k.
//!
//! The visits are those whose first hit of step 1 is in the range (their day is that hit's), with
//! their hits up to [`VISIT_MARGIN_HOURS`] either side of it; with filters, those with a hit that
//! matches. Each step is matched
//! greedily, at its earliest hit after the previous step's (by the hit's time, then its position
//! in the log): the earliest completion of a step leaves the most room for the next, so this finds
//! every visit that has the steps as a subsequence, anything in between. A visitor counts once per
//! step, whichever of their visits completed it.
//!
//! Answers are kept per local day (`funnel_days`): a visitor sketch per step, with the version of
//! the day it was computed at (`hit_days`: a hit changes its own day and its visit's first). A query
//! over whole days computes only the days that changed since (under live traffic, today), in one
//! scan, and unions the days' sketches: a month's funnel reads a month of sketches, not a month of
//! hits. Other ranges are computed whole.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Row};

use super::sql::{escape_like, push_filter, push_hits_source};
use super::EngineError;
use crate::domain::Goal;
use crate::query::Query;
use crate::readmodel::schema::{FUNNEL_DAYS, HITS, HIT_DAYS, HLL_PARAMS};

/// How far either side of the range a visit's hits are looked for: a visit's hits more than this
/// before or after the range do not count (a visit that long is rare). A changed day is
/// computed from its hits and this much either side, so it costs a day and a half of hits, not
/// three days.
const VISIT_MARGIN_HOURS: i64 = 6;

/// The visitors who completed each step, in step order. `q` gives the property, the range, the
/// filters and the goals (its metrics and dimensions are not used).
pub async fn funnel(
    db: &mut PgConnection,
    q: &Query,
    steps: &[Goal],
) -> Result<Vec<i64>, EngineError> {
    q.validate()?;
    super::check_patterns(db, q).await?;
    if !q.range.is_day_aligned() {
        let mut qb = QueryBuilder::new("");
        push_step_visits(&mut qb, q, steps, q.range.from, q.range.to, None)?;
        qb.push(" SELECT step, count(DISTINCT visitor_key) FROM reached GROUP BY step");
        let mut tx = scan(db).await?;
        let rows = qb.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        return counts(rows, steps.len());
    }
    let key = cache_key(q, steps);
    let stale = stale_days(db, q, &key).await?;
    if let (Some((first, _)), Some((last, _))) = (stale.first(), stale.last()) {
        let days: Vec<NaiveDate> = stale.iter().map(|(d, _)| *d).collect();
        let versions: Vec<i64> = stale.iter().map(|(_, v)| *v).collect();
        let from = first.and_time(chrono::NaiveTime::MIN);
        let to = (*last + Duration::days(1)).and_time(chrono::NaiveTime::MIN);
        let mut qb = QueryBuilder::new("");
        push_step_visits(&mut qb, q, steps, from, to, Some(&days))?;
        // Every stale day gets a row, with empty sketches where no visit reached a step.
        let sketches: String = (0..steps.len())
            .map(|i| {
                format!(
                    "COALESCE((SELECT a.s FROM agg a WHERE a.day = d.day AND a.step = {i}), \
                     hll_empty({HLL_PARAMS}))"
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        qb.push(format!(
            ", agg AS (SELECT day, step, hll_add_agg(hll_hash_bigint(visitor_key), {HLL_PARAMS}) AS s \
             FROM reached GROUP BY day, step) \
             INSERT INTO {FUNNEL_DAYS} (property_id, key, day, version, steps) SELECT "
        ))
        .push_bind(q.property_id)
        .push(", ")
        .push_bind(key.clone())
        .push(format!(", d.day, d.version, ARRAY[{sketches}] FROM unnest("))
        .push_bind(days)
        .push("::date[], ")
        .push_bind(versions)
        .push(
            "::bigint[]) AS d(day, version) ON CONFLICT (property_id, key, day) \
             DO UPDATE SET version = EXCLUDED.version, steps = EXCLUDED.steps, computed_at = now()",
        );
        let mut tx = scan(db).await?;
        qb.build().execute(&mut *tx).await?;
        tx.commit().await?;
    }
    let unions: String = (1..=steps.len())
        .map(|i| format!("round(COALESCE(hll_cardinality(hll_union_agg(steps[{i}])), 0))::bigint"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = sqlx::query(&format!(
        "SELECT {unions} FROM {FUNNEL_DAYS} WHERE property_id = $1 AND key = $2 \
         AND day >= $3 AND day < $4"
    ))
    .bind(q.property_id)
    .bind(key)
    .bind(q.range.from.date())
    .bind(q.range.to.date())
    .fetch_one(&mut *db)
    .await?;
    (0..steps.len())
        .map(|i| Ok(row.try_get::<i64, _>(i)?))
        .collect()
}

/// A transaction for a funnel's scan, whose sorts and hash tables (per visit, hundreds of
/// thousands of rows on a big property's month) fit in memory instead of spilling to disk. The
/// plan must not trust PostgreSQL's estimates: it puts the steps' conditions at a handful of rows
/// where a busy day has a million (and a freshly loaded partition at none), and then reads the
/// window row by row through the index and joins step to step in nested loops (a minute for one
/// day). So the window is read in the table's order (a bitmap scan) and steps are joined by hash.
async fn scan(db: &mut PgConnection) -> Result<sqlx::Transaction<'_, Postgres>, EngineError> {
    let mut tx = db.begin().await?;
    for setting in [
        "SET LOCAL work_mem = '64MB'",
        "SET LOCAL enable_indexscan = off",
        "SET LOCAL enable_nestloop = off",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// The days of the range with hits whose cached answer is missing or older than their version,
/// with that version, in order.
async fn stale_days(
    db: &mut PgConnection,
    q: &Query,
    key: &[u8],
) -> Result<Vec<(NaiveDate, i64)>, EngineError> {
    Ok(sqlx::query_as(&format!(
        "WITH v AS (SELECT day, sum(position)::bigint AS version FROM {HIT_DAYS} \
           WHERE property_id = $1 AND day >= $2 AND day < $3 GROUP BY day) \
         SELECT v.day, v.version FROM v LEFT JOIN {FUNNEL_DAYS} f \
           ON f.property_id = $1 AND f.key = $4 AND f.day = v.day \
         WHERE f.version IS DISTINCT FROM v.version ORDER BY v.day"
    ))
    .bind(q.property_id)
    .bind(q.range.from.date())
    .bind(q.range.to.date())
    .bind(key)
    .fetch_all(&mut *db)
    .await?)
}

/// What identifies a funnel's cached answers: its steps and filters (with the goals they use).
fn cache_key(q: &Query, steps: &[Goal]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(format!("{steps:?}|{:?}|{:?}", q.filters, q.goals).as_bytes());
    h.finalize().to_vec()
}

/// Per visit whose first hit of step 1 is in `[from, to)` (on one of `days`, if given), each step
/// it reached: `reached(day, step, visitor_key)`, the steps numbered from 0 and `day` the local day
/// of that first hit. A `WITH` clause, for a `SELECT` or `INSERT` to follow.
fn push_step_visits(
    qb: &mut QueryBuilder<'_, Postgres>,
    q: &Query,
    steps: &[Goal],
    from: NaiveDateTime,
    to: NaiveDateTime,
    days: Option<&[NaiveDate]>,
) -> Result<(), EngineError> {
    // The window the visits' hits are in: from VISIT_MARGIN before the range (a visit with step 1
    // there has its first step 1 there, not in the range) to VISIT_MARGIN after it (where its
    // visits end).
    let margin = Duration::hours(VISIT_MARGIN_HOURS);
    let push_window = |qb: &mut QueryBuilder<'_, Postgres>| {
        qb.push(" WHERE property_id = ")
            .push_bind(q.property_id)
            .push(" AND local_time >= ")
            .push_bind(from - margin)
            .push(" AND local_time < ")
            .push_bind(to + margin);
    };
    // One scan of the window: the hits that complete any step, each with the steps it completes
    // as a bit mask.
    qb.push(format!(
        "WITH visit_hits AS MATERIALIZED (SELECT {HITS}.session_id, {HITS}.local_time, \
         {HITS}.visitor_key, {HITS}.occurred_at, {HITS}.position, "
    ));
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            qb.push(" | ");
        }
        qb.push("(CASE WHEN ");
        push_step(qb, step);
        qb.push(format!(" THEN {} ELSE 0 END)", 1 << i));
    }
    qb.push(format!(" AS steps FROM {HITS}"));
    push_window(qb);
    qb.push(" AND (");
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        push_step(qb, step);
    }
    qb.push(")");
    if let Some(f) = &q.filters {
        qb.push(" AND session_id IN (SELECT hits.session_id");
        push_hits_source(qb, q);
        push_window(qb);
        qb.push(" AND ");
        push_filter(qb, f, &q.goals)?;
        qb.push(")");
    }
    qb.push(")");
    for i in 0..steps.len() {
        // s<i>: per visit, the earliest hit that completes step i after step i-1's. A visit's
        // day is that of its first hit of step 1, which must be in the range.
        if i == 0 {
            qb.push(
                ", s0 AS (SELECT * FROM (SELECT DISTINCT ON (h.session_id) h.session_id, \
                 h.visitor_key, h.occurred_at, h.position, h.local_time::date AS day, h.local_time \
                 FROM visit_hits h WHERE h.steps & 1 <> 0 \
                 ORDER BY h.session_id, h.occurred_at, h.position) f WHERE local_time >= ",
            )
            .push_bind(from)
            .push(" AND local_time < ")
            .push_bind(to);
            if let Some(days) = days {
                qb.push(" AND day = ANY(")
                    .push_bind(days.to_vec())
                    .push(")");
            }
            qb.push(")");
            continue;
        }
        qb.push(format!(
            ", s{i} AS (SELECT DISTINCT ON (h.session_id) h.session_id, h.visitor_key, \
             h.occurred_at, h.position, s{prev}.day FROM visit_hits h \
             JOIN s{prev} ON s{prev}.session_id = h.session_id \
             AND (h.occurred_at, h.position) > (s{prev}.occurred_at, s{prev}.position) \
             WHERE h.steps & {bit} <> 0 ORDER BY h.session_id, h.occurred_at, h.position)",
            prev = i - 1,
            bit = 1 << i
        ));
    }
    let reached: Vec<String> = (0..steps.len())
        .map(|i| format!("SELECT day, {i} AS step, visitor_key FROM s{i}"))
        .collect();
    qb.push(format!(", reached AS ({})", reached.join(" UNION ALL ")));
    Ok(())
}

/// Visitors per step from `(step, visitors)` rows (steps no one reached have no row).
fn counts(rows: Vec<sqlx::postgres::PgRow>, steps: usize) -> Result<Vec<i64>, EngineError> {
    let mut out = vec![0; steps];
    for r in rows {
        let step: i32 = r.try_get(0)?;
        if let Some(slot) = out.get_mut(step as usize) {
            *slot = r.try_get(1)?;
        }
    }
    Ok(out)
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
