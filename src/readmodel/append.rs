//! Appending a batch's rows to the rollups (see [`Rollup`]) with `COPY`: each row's keys, its
//! counters, and its visitor keys hashed into a HyperLogLog sketch by [`hll`].

use std::collections::BTreeMap;

use sqlx::PgConnection;

use super::copy::CopyRows;
use super::hll;
use super::rows::{DayDelta, DayKey, HourDelta, HourKey, VisitDelta, VisitKey};
use super::schema::{Rollup, VISIT_ROLLUP_GROUPS};
use crate::projections::{table, Generation};

/// A rollup row's key, written as its key columns, in the order of [`Rollup::keys`].
pub(super) trait RollupKey: 'static {
    fn write(&self, row: &mut CopyRows);
}

impl RollupKey for HourKey {
    fn write(&self, row: &mut CopyRows) {
        let (property, hour) = self;
        row.uuid(property.as_uuid()).timestamp(*hour);
    }
}

impl RollupKey for DayKey {
    fn write(&self, row: &mut CopyRows) {
        let (property, dimension, day, value) = self;
        row.uuid(property.as_uuid())
            .text(dimension)
            .date(*day)
            .text(value);
    }
}

impl RollupKey for VisitKey {
    /// The values of the row's group in their columns, empty in the others'.
    fn write(&self, row: &mut CopyRows) {
        let (property, group, day, values) = self;
        row.uuid(property.as_uuid()).text(group).date(*day);
        for (g, attributes) in VISIT_ROLLUP_GROUPS {
            for (i, _) in attributes.iter().enumerate() {
                row.text(if g == *group { &values[i] } else { "" });
            }
        }
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
    let mut copy = CopyRows::new();
    for (key, row) in rows {
        copy.row(rollup.keys.len() + N + 1);
        key.write(&mut copy);
        for counter in row.counters() {
            copy.int8(counter);
        }
        copy.bytes(&hll::sketch(row.visitors()));
    }
    copy.copy(tx, &table(rollup.table, g), &columns(rollup))
        .await
}

/// The columns [`write_rollup`] writes, in its order: the keys, the counters, the sketch.
fn columns<const N: usize>(rollup: &Rollup<N>) -> String {
    format!(
        "{}, {}, visitors",
        rollup.key_list(),
        rollup.counters.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readmodel::schema::ROLLUP_HOURLY;

    #[test]
    fn a_rollup_write_names_its_columns_in_the_order_it_writes_them() {
        assert_eq!(
            columns(&ROLLUP_HOURLY),
            "property_id, bucket, pageviews, events, visits, bounces, duration, \
             session_pageviews, engaged, visitors"
        );
    }
}
