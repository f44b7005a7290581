//! Appending a batch's rows to the rollups (see [`Rollup`]): each rollup's keys and counters
//! bound as arrays, the visitor keys of each row hashed into a HyperLogLog sketch by [`hll`].

use std::collections::BTreeMap;

use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres};

use super::hll;
use super::rows::{DayDelta, DayKey, HourDelta, HourKey, VisitDelta, VisitKey};
use super::schema::{Rollup, VISIT_ROLLUP_GROUPS};
use crate::projections::{table, Generation};

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A rollup row's key, bound as one array per key column, in the order of [`Rollup::keys`], for
/// the partition writing it.
pub(super) trait RollupKey: 'static {
    fn bind<'q>(q: PgQuery<'q>, keys: impl Iterator<Item = &'q Self> + Clone) -> PgQuery<'q>;
}

impl RollupKey for HourKey {
    fn bind<'q>(q: PgQuery<'q>, keys: impl Iterator<Item = &'q Self> + Clone) -> PgQuery<'q> {
        q.bind(keys.clone().map(|(p, _)| p.as_uuid()).collect::<Vec<_>>())
            .bind(keys.map(|(_, hour)| *hour).collect::<Vec<_>>())
    }
}

impl RollupKey for DayKey {
    fn bind<'q>(q: PgQuery<'q>, keys: impl Iterator<Item = &'q Self> + Clone) -> PgQuery<'q> {
        q.bind(keys.clone().map(|(p, ..)| p.as_uuid()).collect::<Vec<_>>())
            .bind(
                keys.clone()
                    .map(|(_, dim, ..)| dim.as_ref())
                    .collect::<Vec<_>>(),
            )
            .bind(keys.clone().map(|(_, _, day, _)| *day).collect::<Vec<_>>())
            .bind(keys.map(|(.., value)| value.as_str()).collect::<Vec<_>>())
    }
}

impl RollupKey for VisitKey {
    /// The values of the row's group in their columns, empty in the others'.
    fn bind<'q>(q: PgQuery<'q>, keys: impl Iterator<Item = &'q Self> + Clone) -> PgQuery<'q> {
        let mut q = q
            .bind(keys.clone().map(|(p, ..)| p.as_uuid()).collect::<Vec<_>>())
            .bind(
                keys.clone()
                    .map(|(_, group, ..)| *group)
                    .collect::<Vec<_>>(),
            )
            .bind(keys.clone().map(|(_, _, day, _)| *day).collect::<Vec<_>>());
        for (group, attributes) in VISIT_ROLLUP_GROUPS {
            for i in 0..attributes.len() {
                let column = keys.clone().map(
                    |(_, g, _, values)| {
                        if *g == group {
                            values[i].as_str()
                        } else {
                            ""
                        }
                    },
                );
                q = q.bind(column.collect::<Vec<_>>());
            }
        }
        q
    }
}

/// What a batch adds to a rollup row: its counters, in the order of [`Rollup::counters`], and the
/// visitor keys its sketch takes in.
pub(super) trait RollupRow<const N: usize> {
    fn counters(&self) -> [i64; N];
    fn visitors(&self) -> &[i64];
}

impl RollupRow<7> for HourDelta {
    fn counters(&self) -> [i64; 7] {
        [
            self.pageviews,
            self.events,
            self.visits,
            self.bounces,
            self.duration,
            self.session_pageviews,
            self.engaged,
        ]
    }

    fn visitors(&self) -> &[i64] {
        &self.visitors
    }
}

impl RollupRow<2> for DayDelta {
    fn counters(&self) -> [i64; 2] {
        [self.pageviews, self.events]
    }

    fn visitors(&self) -> &[i64] {
        &self.visitors
    }
}

impl RollupRow<6> for VisitDelta {
    fn counters(&self) -> [i64; 6] {
        [
            self.visits,
            self.bounces,
            self.duration,
            self.pageviews,
            self.events,
            self.engaged,
        ]
    }

    fn visitors(&self) -> &[i64] {
        &self.visitors
    }
}

/// Appends rows to a rollup (see [`Rollup`]), each with its visitor keys hashed into a
/// HyperLogLog sketch.
pub(super) async fn write_rollup<K: RollupKey, V: RollupRow<N>, const N: usize>(
    tx: &mut PgConnection,
    g: Generation,
    rollup: &Rollup<N>,
    rows: &BTreeMap<K, V>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = write_sql(rollup, g);
    let mut q = K::bind(sqlx::query(&sql), rows.keys());
    for i in 0..N {
        q = q.bind(rows.values().map(|r| r.counters()[i]).collect::<Vec<_>>());
    }
    let sketches: Vec<Vec<u8>> = rows.values().map(|r| hll::sketch(r.visitors())).collect();
    q.bind(sketches).execute(&mut *tx).await?;
    Ok(())
}

/// The statement of [`write_rollup`]: the keys, the counters and the sketches (built by [`hll`])
/// as arrays.
fn write_sql<const N: usize>(rollup: &Rollup<N>, g: Generation) -> String {
    let keys = rollup.key_list();
    let counters = rollup.counters.join(", ");
    let types = rollup.keys.iter().map(|(_, ty)| *ty);
    let arrays: Vec<String> = types
        .chain(["bigint"; N])
        .chain(["bytea"])
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", i + 1))
        .collect();
    format!(
        "INSERT INTO {t} ({keys}, visitors, {counters}) \
         SELECT {keys}, visitors::hll, {counters} \
         FROM UNNEST({arrays}) AS k({keys}, {counters}, visitors)",
        t = table(rollup.table, g),
        arrays = arrays.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readmodel::schema::ROLLUP_HOURLY;

    #[test]
    fn a_rollup_write_appends_rows_of_their_own() {
        assert_eq!(
            write_sql(&ROLLUP_HOURLY, 3),
            "INSERT INTO rollup_hourly_g3 (property_id, bucket, visitors, pageviews, events, visits, \
             bounces, duration, session_pageviews, engaged) \
             SELECT property_id, bucket, visitors::hll, pageviews, events, visits, bounces, \
             duration, session_pageviews, engaged \
             FROM UNNEST($1::uuid[], $2::timestamp[], $3::bigint[], $4::bigint[], $5::bigint[], \
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bytea[]) \
             AS k(property_id, bucket, pageviews, events, visits, bounces, duration, \
             session_pageviews, engaged, visitors)"
        );
    }
}
