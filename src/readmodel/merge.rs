//! Merging the appended rollups (see [`super::schema::Rollup`]): the `(property, day)`
//! units batches have added rows to, taken off the pending list, and the statement that replaces
//! a key's several rows by one, and the days of [`ROLLUP_DAYS`], pre-merged from their hours; and
//! the weeks of [`ROLLUP_WEEKLY`] and [`ROLLUP_VISITS_WEEKLY`], pre-merged from their days.
//! `crate::projections::merger` runs them in the background.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::schema::{
    version_sql, Rollup, HIT_DAYS, HOURS, ROLLUP_DAILY, ROLLUP_DAYS, ROLLUP_HOURLY, ROLLUP_PENDING,
    ROLLUP_VISITS, ROLLUP_VISITS_WEEKLY, ROLLUP_WEEKLY, ROLLUP_WEEKS, WEEK_MIN_ROWS,
    WEEK_MIN_VISIT_BYTES,
};
use crate::projections::{table, Generation};

/// A `(property, day)` unit of the appended rollups with rows to merge, and the dimensions batches
/// added rows to.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PendingUnit {
    pub property_id: Uuid,
    pub day: NaiveDate,
    pub dimensions: Vec<String>,
}

/// Takes up to `limit` units off generation `g`'s pending list for merging: those that batches
/// have stopped adding to for `quiet`, and those pending for `age` (the current day of a busy
/// property: a merge reads the whole unit, so such a day is merged now and then). Concurrent
/// mergers (on other nodes) take different units. A unit whose merge then fails keeps its
/// duplicate rows until a batch adds to it again, which costs reads a little and changes no
/// answer. With the units, the rows of the list they were (a unit has one per partition that
/// added to it): `limit` when more are waiting.
pub async fn take_pending(
    pool: &PgPool,
    g: Generation,
    limit: i64,
    quiet: Duration,
    age: Duration,
) -> Result<(Vec<PendingUnit>, i64), sqlx::Error> {
    let t = table(ROLLUP_PENDING, g);
    // Losing this in a crash (the merger's pool does not wait for the disk) only leaves the
    // units' rows unmerged.
    let mut tx = pool.begin().await?;
    let units: Vec<PendingUnit> = sqlx::query_as(&format!(
        "DELETE FROM {t} WHERE (property_id, day, partition) IN (SELECT property_id, day, partition FROM {t} \
           WHERE last_at < now() - make_interval(secs => $2) OR first_at < now() - make_interval(secs => $3) \
           ORDER BY last_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING property_id, day, dimensions"
    ))
    .bind(limit)
    .bind(quiet.as_secs_f64())
    .bind(age.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let rows = units.len() as i64;
    // Partitions record their units apart: a unit is merged once, for all of them.
    let mut merged: BTreeMap<(Uuid, NaiveDate), PendingUnit> = BTreeMap::new();
    for u in units {
        let unit = merged
            .entry((u.property_id, u.day))
            .or_insert_with(|| PendingUnit {
                property_id: u.property_id,
                day: u.day,
                dimensions: Vec::new(),
            });
        unit.dimensions.extend(u.dimensions);
        unit.dimensions.sort();
        unit.dimensions.dedup();
    }
    Ok((merged.into_values().collect(), rows))
}

/// Merges units' rows in the rollups: in each, the rows of each key that has several are
/// replaced by one row with their counters summed and their sketches unioned, which is exactly
/// what readers compute from them. Rows appended meanwhile are not in the statements' snapshot
/// and stay as they are. The day rollups' rows are merged under each unit's dimensions, the hourly
/// rollup's for the hours of the days batches added to them, and then those days' rows of
/// [`ROLLUP_DAYS`] are written from their hours. One statement per table for all the units: a
/// statement per unit and table cost about as much in round trips and executor starts as in
/// merging.
pub async fn merge_units(
    conn: &mut PgConnection,
    g: Generation,
    units: &[PendingUnit],
) -> Result<u64, sqlx::Error> {
    let (mut properties, mut days, mut dimensions) = (vec![], vec![], vec![]);
    let (mut hour_properties, mut hour_days) = (vec![], vec![]);
    for u in units {
        for d in &u.dimensions {
            if d == HOURS {
                hour_properties.push(u.property_id);
                hour_days.push(u.day);
            } else {
                properties.push(u.property_id);
                days.push(u.day);
                dimensions.push(d.as_str());
            }
        }
    }
    let mut merged = 0;
    if !properties.is_empty() {
        for sql in [
            day_merge_sql(&ROLLUP_DAILY, g),
            day_merge_sql(&ROLLUP_VISITS, g),
        ] {
            merged += sqlx::query(&sql)
                .bind(&properties)
                .bind(&days)
                .bind(&dimensions)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
    }
    if !hour_properties.is_empty() {
        for sql in [hour_merge_sql(g), day_row_sql(g)] {
            merged += sqlx::query(&sql)
                .bind(&hour_properties)
                .bind(&hour_days)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
    }
    Ok(merged)
}

/// The `(property, day)` pairs `$1`, `$2` (as `u`) and, for each, its rows of the hourly rollup
/// `hourly` (as `r`, with its `ctid` as `row_id`), looked up by the index pair by pair: a new
/// generation's tables have no statistics, and a join could scan the whole table.
fn hours_of_days(hourly: &str) -> String {
    format!(
        "UNNEST($1::uuid[], $2::date[]) AS u(property_id, day) CROSS JOIN LATERAL \
         (SELECT ctid AS row_id, * FROM {hourly} r WHERE r.property_id = u.property_id \
          AND r.bucket >= u.day AND r.bucket < u.day + 1 OFFSET 0) r"
    )
}

/// The statement of [`merge_units`] that writes the [`ROLLUP_DAYS`] rows of the days `$1`, `$2`
/// (properties and days) from their hours, with each day's version read in the same snapshot. A
/// row written from an older snapshot (a merger on another node) never replaces a newer one.
fn day_row_sql(g: Generation) -> String {
    let counters = ROLLUP_HOURLY.counters.join(", ");
    let sums = ROLLUP_HOURLY.counter_sums();
    let updates: String = ROLLUP_HOURLY
        .counters
        .iter()
        .map(|c| format!(", {c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO {days} AS d (property_id, day, version, visitors, {counters}) \
         SELECT u.property_id, u.day, {version}, hll_union_agg(visitors){sums} \
         FROM {hours} GROUP BY u.property_id, u.day \
         ON CONFLICT (property_id, day) DO UPDATE SET version = EXCLUDED.version, \
         visitors = EXCLUDED.visitors{updates} WHERE d.version < EXCLUDED.version",
        days = table(ROLLUP_DAYS, g),
        hours = hours_of_days(&table(ROLLUP_HOURLY.table, g)),
        version = version_sql(&table(HIT_DAYS, g), "u.property_id", "u.day", "1"),
    )
}

/// The statement of [`merge_units`] for a day rollup: `$1`, `$2`, `$3` the properties, days and
/// dimensions of the units' rows, looked up as [`hours_of_days`] looks up hours.
fn day_merge_sql<const N: usize>(rollup: &Rollup<N>, g: Generation) -> String {
    let t = table(rollup.table, g);
    merge_sql(
        rollup,
        &t,
        &format!(
            "UNNEST($1::uuid[], $2::date[], $3::text[]) AS u(property_id, day, dimension) \
             CROSS JOIN LATERAL (SELECT ctid AS row_id, * FROM {t} r \
               WHERE r.property_id = u.property_id AND r.dimension = u.dimension \
               AND r.day = u.day OFFSET 0) r"
        ),
    )
}

/// The statement of [`merge_units`] for the hourly rollup: `$1`, `$2` the properties and days.
fn hour_merge_sql(g: Generation) -> String {
    let t = table(ROLLUP_HOURLY.table, g);
    merge_sql(&ROLLUP_HOURLY, &t, &hours_of_days(&t))
}

/// Replaces the rows of each key that has several, among the rows `rows` selects (`FROM` items
/// giving `r.row_id`, the row's `ctid`, and the row as `r`): deleted by their `ctid`, so the
/// large table is never joined as a whole.
fn merge_sql<const N: usize>(rollup: &Rollup<N>, t: &str, rows: &str) -> String {
    let keys = rollup.key_list();
    let sums = rollup.counter_sums();
    format!(
        "WITH unit AS (SELECT r.* FROM {rows}), \
         several AS (SELECT {keys} FROM unit GROUP BY {keys} HAVING count(*) > 1), \
         gone AS (DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT u.row_id FROM unit u \
           JOIN several s USING ({keys}))) RETURNING *) \
         INSERT INTO {t} ({keys}, visitors, {counters}) \
         SELECT {keys}, hll_union_agg(visitors){sums} FROM gone GROUP BY {keys}",
        counters = rollup.counters.join(", "),
    )
}

/// The rollups whose rows merges replace, and so leave dead: what [`vacuum`] cleans.
const MERGED: [&str; 6] = [
    ROLLUP_DAILY.table,
    ROLLUP_VISITS.table,
    ROLLUP_HOURLY.table,
    ROLLUP_DAYS,
    ROLLUP_WEEKLY.table,
    ROLLUP_VISITS_WEEKLY.table,
];
fn merged_tables(g: Generation) -> Vec<String> {
    MERGED.iter().map(|t| table(t, g)).collect()
}

/// Rows merged since the last vacuum below which none is due, however small the rollups.
const VACUUM_MIN_ROWS: u64 = 100;

/// Whether generation `g`'s merged rollups are due a [`vacuum`] once merges have written `merged`
/// rows since the last one: when that is a tenth of their rows (as last counted by a vacuum or an
/// analysis). Each merged row replaced two or more, which stay dead until a vacuum: reads of
/// the day still visit them (a cold 30-day report read 383 pages of `rollup_hourly` instead of 62),
/// and their space is not reused. The server's autovacuum may be off, or late after a burst of
/// merges (a rebuild's, a seed's), so the merger does not leave it to it.
pub async fn vacuum_due(pool: &PgPool, g: Generation, merged: u64) -> Result<bool, sqlx::Error> {
    if merged < VACUUM_MIN_ROWS {
        return Ok(false);
    }
    let tables = merged_tables(g);
    let rows: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::float8 FROM pg_class \
         WHERE relname = ANY($1) AND relkind = 'r'",
    )
    .bind(&tables)
    .fetch_one(pool)
    .await?;
    Ok(merged as f64 >= rows / 10.0)
}

/// Vacuums generation `g`'s merged rollups; a table another node is vacuuming is skipped.
pub async fn vacuum(pool: &PgPool, g: Generation) -> Result<(), sqlx::Error> {
    let tables = merged_tables(g);
    // VACUUM runs outside any transaction: a simple query of its own.
    sqlx::raw_sql(&format!("VACUUM (SKIP_LOCKED) {}", tables.join(", ")))
        .execute(pool)
        .await?;
    Ok(())
}

/// The Monday of `day`'s week.
pub fn week_of(day: NaiveDate) -> NaiveDate {
    day - Days::new(day.weekday().num_days_from_monday().into())
}

/// How many days from the Monday `week` the merger pre-merges when it is `today` in UTC: the days
/// that are over in every time zone (a local date is never more than a day behind UTC's), at most
/// the week's seven. Fewer than two are not worth a span: they are read by day.
pub fn span_days(week: NaiveDate, today: NaiveDate) -> i16 {
    match (today - week).num_days() - 1 {
        n if n < 2 => 0,
        n => n.min(7) as i16,
    }
}

/// A week to pre-merge from its first `days` days (see [`merge_weeks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct WeekSpan {
    pub property_id: Uuid,
    pub week: NaiveDate,
    pub days: i16,
}

/// The weeks to pre-merge after merging `units` (see [`merge_weeks`]): of the weeks of the units
/// and the weeks before them, those with days over in every time zone ([`span_days`]), with hits
/// in those days and no unit left to merge there, whose [`ROLLUP_WEEKS`] row is missing, holds
/// other days, or is stale (its version is not the days' [`HIT_DAYS`] one), each once, in key
/// order. A busy property has units every day, so the days of its current week are pre-merged
/// within a day or two of their end, and again after a late hit or an import changes them; a
/// quiet one's weeks may never be, which costs little, since it has few rows to read by day.
pub async fn weeks_to_merge(
    pool: &PgPool,
    g: Generation,
    units: &[PendingUnit],
    today: NaiveDate,
) -> Result<Vec<WeekSpan>, sqlx::Error> {
    let spans: std::collections::BTreeSet<WeekSpan> = units
        .iter()
        .flat_map(|u| {
            let week = week_of(u.day);
            [week, week - Days::new(7)].map(|week| WeekSpan {
                property_id: u.property_id,
                week,
                days: span_days(week, today),
            })
        })
        .filter(|span| span.days > 0)
        .collect();
    if spans.is_empty() {
        return Ok(vec![]);
    }
    let (properties, starts, days) = span_columns(&spans);
    sqlx::query_as(&format!(
        "SELECT u.property_id, u.week, u.days \
         FROM UNNEST($1::uuid[], $2::date[], $3::int2[]) AS u(property_id, week, days) \
         LEFT JOIN {weeks} w USING (property_id, week) \
         CROSS JOIN LATERAL (SELECT {version} AS version) d \
         WHERE d.version > 0 AND (w.days, w.version) IS DISTINCT FROM (u.days, d.version) \
           AND NOT EXISTS (SELECT 1 FROM {pending} p WHERE p.property_id = u.property_id \
             AND p.day >= u.week AND p.day < u.week + u.days) \
         ORDER BY 1, 2",
        weeks = table(ROLLUP_WEEKS, g),
        pending = table(ROLLUP_PENDING, g),
        version = version_sql(&table(HIT_DAYS, g), "u.property_id", "u.week", "u.days"),
    ))
    .bind(properties)
    .bind(starts)
    .bind(days)
    .fetch_all(pool)
    .await
}

/// Weeks' properties, Mondays and days, as the three arrays statements bind.
fn span_columns<'a>(
    spans: impl IntoIterator<Item = &'a WeekSpan>,
) -> (Vec<Uuid>, Vec<NaiveDate>, Vec<i16>) {
    let (mut properties, mut starts, mut days) = (vec![], vec![], vec![]);
    for s in spans {
        properties.push(s.property_id);
        starts.push(s.week);
        days.push(s.days);
    }
    (properties, starts, days)
}

/// Writes the weekly rows of weeks' first `days` days from their days' rows (see [`week_sql`]):
/// in [`ROLLUP_WEEKLY`], of each dimension of [`ROLLUP_DAILY`] that has [`WEEK_MIN_ROWS`] of them;
/// in [`ROLLUP_VISITS_WEEKLY`], of each group of [`ROLLUP_VISITS`] whose sketches take
/// [`WEEK_MIN_VISIT_BYTES`]; with the days' version read in the same snapshot and the dimensions
/// written. The weeks' version rows are locked first, in key order (which [`weeks_to_merge`]
/// keeps), so that mergers on two nodes write a week one after the other. Two statements for all
/// the weeks: a pass that merges the units of thousands of properties has a week or two of each.
pub async fn merge_weeks(
    conn: &mut PgConnection,
    g: Generation,
    spans: &[WeekSpan],
) -> Result<u64, sqlx::Error> {
    if spans.is_empty() {
        return Ok(0);
    }
    let weeks = table(ROLLUP_WEEKS, g);
    let (properties, starts, days) = span_columns(spans);
    sqlx::query(&format!(
        "INSERT INTO {weeks} (property_id, week, days, version, dimensions) \
         SELECT property_id, week, days, -1, '{{}}' \
         FROM UNNEST($1::uuid[], $2::date[], $3::int2[]) AS u(property_id, week, days) \
         ON CONFLICT (property_id, week) DO UPDATE SET days = EXCLUDED.days, version = -1"
    ))
    .bind(&properties)
    .bind(&starts)
    .bind(&days)
    .execute(&mut *conn)
    .await?;
    let of_week = "x.property_id = u.property_id AND x.week = u.week";
    let written: i64 = sqlx::query_scalar(&format!(
        "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::int2[]) AS u(property_id, week, days)), \
         {}, {}, \
         versions AS (UPDATE {weeks} w SET version = {version}, \
           dimensions = ARRAY(SELECT dimension FROM wide_d x WHERE {of_week} \
             UNION ALL SELECT dimension FROM wide_v x WHERE {of_week} ORDER BY 1) \
           FROM u WHERE w.property_id = u.property_id AND w.week = u.week) \
         SELECT (SELECT count(*) FROM written_d) + (SELECT count(*) FROM written_v)",
        week_sql(&ROLLUP_DAILY, &ROLLUP_WEEKLY, g, "d", &format!("count(*) >= {WEEK_MIN_ROWS}")),
        week_sql(
            &ROLLUP_VISITS,
            &ROLLUP_VISITS_WEEKLY,
            g,
            "v",
            &format!("sum(pg_column_size(visitors)) >= {WEEK_MIN_VISIT_BYTES}"),
        ),
        version = version_sql(&table(HIT_DAYS, g), "u.property_id", "u.week", "u.days"),
    ))
    .bind(&properties)
    .bind(&starts)
    .bind(&days)
    .fetch_one(&mut *conn)
    .await?;
    Ok(written as u64)
}

/// The common table expressions of [`merge_weeks`] for one day rollup, over the weeks `u`
/// (`property_id`, `week`, `days`): `gone_<n>` deletes the weeks' weekly rows, `wide_<n>` names,
/// per week, the dimensions whose rows in those days meet `wide` (an aggregate condition: enough
/// of them to be worth it) and would at least halve (a dimension of unique values, say an order
/// id, would only be stored twice), `written_<n>` writes their weekly rows. Each week's rows are
/// looked up by the index, week by week.
fn week_sql<const N: usize>(
    days: &Rollup<N>,
    weekly: &Rollup<N>,
    g: Generation,
    n: &str,
    wide: &str,
) -> String {
    let (days_table, weekly_table) = (table(days.table, g), table(weekly.table, g));
    let value_columns: Vec<&str> = days
        .keys
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !["property_id", "dimension", "day"].contains(c))
        .collect();
    let values: String = value_columns.iter().map(|c| format!(", r.{c}")).collect();
    let sums = days.counter_sums();
    format!(
        "gone_{n} AS (DELETE FROM {weekly_table} x USING u \
           WHERE x.property_id = u.property_id AND x.day = u.week), \
         wide_{n} AS (SELECT u.property_id, u.week, r.dimension FROM u CROSS JOIN LATERAL \
           (SELECT dimension FROM {days_table} WHERE property_id = u.property_id \
              AND day >= u.week AND day < u.week + u.days \
            GROUP BY dimension HAVING {wide} AND 2 * count(DISTINCT ({})) <= count(*)) r), \
         written_{n} AS (INSERT INTO {weekly_table} ({keys}, visitors, {counters}) \
           SELECT r.property_id, r.dimension, w.week{values}, hll_union_agg(r.visitors){sums} \
           FROM wide_{n} w JOIN u ON u.property_id = w.property_id AND u.week = w.week \
           CROSS JOIN LATERAL (SELECT * FROM {days_table} WHERE property_id = w.property_id \
             AND dimension = w.dimension AND day >= w.week AND day < w.week + u.days OFFSET 0) r \
           GROUP BY r.property_id, r.dimension, w.week{values} RETURNING 1)",
        value_columns.join(", "),
        keys = days.key_list(),
        counters = days.counters.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_replaces_a_keys_rows_by_their_sum_and_union() {
        assert_eq!(
            day_merge_sql(&ROLLUP_DAILY, 3),
            "WITH unit AS (SELECT r.* FROM UNNEST($1::uuid[], $2::date[], $3::text[]) \
             AS u(property_id, day, dimension) CROSS JOIN LATERAL (SELECT ctid AS row_id, * \
             FROM rollup_daily_g3 r WHERE r.property_id = u.property_id \
             AND r.dimension = u.dimension AND r.day = u.day OFFSET 0) r), \
             several AS (SELECT property_id, dimension, day, value FROM unit \
             GROUP BY property_id, dimension, day, value HAVING count(*) > 1), \
             gone AS (DELETE FROM rollup_daily_g3 WHERE ctid = ANY(ARRAY(SELECT u.row_id FROM unit u \
             JOIN several s USING (property_id, dimension, day, value))) RETURNING *) \
             INSERT INTO rollup_daily_g3 (property_id, dimension, day, value, visitors, pageviews, events) \
             SELECT property_id, dimension, day, value, hll_union_agg(visitors), sum(pageviews)::bigint, \
             sum(events)::bigint FROM gone GROUP BY property_id, dimension, day, value"
        );
    }

    #[test]
    fn a_weeks_days_are_merged_once_they_are_over_everywhere() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        // 2026-03-02 is a Monday.
        assert_eq!(week_of(day("2026-03-02")), day("2026-03-02"));
        assert_eq!(week_of(day("2026-03-08")), day("2026-03-02"));
        assert_eq!(week_of(day("2026-03-09")), day("2026-03-02") + Days::new(7));
        let week = day("2026-03-02");
        // Its Tuesday, the 3rd, ends on the 4th at 12:00 UTC twelve hours west of UTC: on the 4th
        // only its Monday is over everywhere, not worth a span.
        assert_eq!(span_days(week, day("2026-03-04")), 0);
        assert_eq!(span_days(week, day("2026-03-05")), 2);
        // Its Sunday, the 8th, ends on the 9th at 12:00 UTC twelve hours west of UTC.
        assert_eq!(span_days(week, day("2026-03-09")), 6);
        assert_eq!(span_days(week, day("2026-03-10")), 7);
        assert_eq!(span_days(week, day("2027-03-10")), 7);
        assert_eq!(span_days(week, day("2026-03-01")), 0);
    }

    #[test]
    fn merging_the_hours_of_a_day_replaces_each_hours_rows_by_one() {
        assert_eq!(
            hour_merge_sql(3),
            "WITH unit AS (SELECT r.* FROM UNNEST($1::uuid[], $2::date[]) AS u(property_id, day) \
             CROSS JOIN LATERAL (SELECT ctid AS row_id, * FROM rollup_hourly_g3 r \
             WHERE r.property_id = u.property_id AND r.bucket >= u.day AND r.bucket < u.day + 1 \
             OFFSET 0) r), \
             several AS (SELECT property_id, bucket FROM unit GROUP BY property_id, bucket \
             HAVING count(*) > 1), \
             gone AS (DELETE FROM rollup_hourly_g3 WHERE ctid = ANY(ARRAY(SELECT u.row_id FROM unit u \
             JOIN several s USING (property_id, bucket))) RETURNING *) \
             INSERT INTO rollup_hourly_g3 (property_id, bucket, visitors, pageviews, events, visits, \
             bounces, duration, session_pageviews, engaged) \
             SELECT property_id, bucket, hll_union_agg(visitors), sum(pageviews)::bigint, \
             sum(events)::bigint, sum(visits)::bigint, sum(bounces)::bigint, sum(duration)::bigint, \
             sum(session_pageviews)::bigint, sum(engaged)::bigint FROM gone GROUP BY property_id, bucket"
        );
    }
}
