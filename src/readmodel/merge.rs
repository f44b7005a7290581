//! Merging the appended rollups (see [`super::schema::Writes::Appended`]): the `(property, day)`
//! units batches have added rows to, taken off the pending list, and the statement that replaces
//! a key's several rows by one. `crate::projections::merger` runs it in the background.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::schema::{DAY_KEYS, ROLLUP_DAILY, ROLLUP_PENDING, ROLLUP_VISITS};
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
/// answer.
pub async fn take_pending(
    pool: &PgPool,
    g: Generation,
    limit: i64,
    quiet: Duration,
    age: Duration,
) -> Result<Vec<PendingUnit>, sqlx::Error> {
    let t = table(ROLLUP_PENDING, g);
    let mut tx = pool.begin().await?;
    // Losing this in a crash only leaves the units' rows unmerged.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
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
    Ok(merged.into_values().collect())
}

/// Merges a unit's rows in both appended rollups: the rows of each key that has several are
/// replaced, in one statement, by one row with their counters summed and their sketches unioned,
/// which is exactly what readers compute from them. Rows appended meanwhile are not in the
/// statement's snapshot and stay as they are.
pub async fn merge_unit(
    conn: &mut PgConnection,
    g: Generation,
    unit: &PendingUnit,
) -> Result<u64, sqlx::Error> {
    let mut merged = 0;
    for (rollup, counters) in [
        (ROLLUP_DAILY.table, &ROLLUP_DAILY.counters[..]),
        (ROLLUP_VISITS.table, &ROLLUP_VISITS.counters[..]),
    ] {
        merged += sqlx::query(&merge_sql(&table(rollup, g), counters))
            .bind(unit.property_id)
            .bind(&unit.dimensions)
            .bind(unit.day)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(merged)
}

/// The statement of [`merge_unit`] for one appended rollup.
fn merge_sql(t: &str, counters: &[&str]) -> String {
    let keys: Vec<&str> = DAY_KEYS.iter().map(|(c, _)| *c).collect();
    let keys = keys.join(", ");
    let sums: String = counters
        .iter()
        .map(|c| format!(", sum({c})::bigint"))
        .collect();
    format!(
        "WITH unit AS (SELECT * FROM {t} WHERE property_id = $1 AND dimension = ANY($2) AND day = $3), \
         several AS (SELECT dimension, value FROM unit GROUP BY dimension, value HAVING count(*) > 1), \
         gone AS (DELETE FROM {t} r USING several s WHERE r.property_id = $1 AND r.dimension = ANY($2) \
           AND r.day = $3 AND r.dimension = s.dimension AND r.value = s.value RETURNING r.*) \
         INSERT INTO {t} ({keys}, visitors, {counters}) \
         SELECT {keys}, hll_union_agg(visitors){sums} FROM gone GROUP BY {keys}",
        counters = counters.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_replaces_a_keys_rows_by_their_sum_and_union() {
        assert_eq!(
            merge_sql("rollup_daily_g3", &ROLLUP_DAILY.counters),
            "WITH unit AS (SELECT * FROM rollup_daily_g3 WHERE property_id = $1 AND dimension = ANY($2) AND day = $3), \
             several AS (SELECT dimension, value FROM unit GROUP BY dimension, value HAVING count(*) > 1), \
             gone AS (DELETE FROM rollup_daily_g3 r USING several s WHERE r.property_id = $1 AND r.dimension = ANY($2) \
             AND r.day = $3 AND r.dimension = s.dimension AND r.value = s.value RETURNING r.*) \
             INSERT INTO rollup_daily_g3 (property_id, dimension, day, value, visitors, pageviews, events) \
             SELECT property_id, dimension, day, value, hll_union_agg(visitors), sum(pageviews)::bigint, \
             sum(events)::bigint FROM gone GROUP BY property_id, dimension, day, value"
        );
    }
}
