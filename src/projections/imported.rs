//! The `imported` read model: imported aggregates (see [`crate::domain::imported`]), one row per
//! imported row, with its import, table and day. Deleting an import deletes its rows. Queries read
//! it beside the hits' read models when asked to include imports (`crate::query::engine`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{decode_all, table, Generation, Projection, ProjectionError, ProjectionWriter};
use crate::domain::{AggregatesImported, Event, ImportDeleted, ImportedTable};
use crate::eventlog::{RecordedEvent, StreamFilter};

pub const NAME: &str = "imported";
/// One row per imported row: `property_id, import_id, tbl, day`, the labels `l1`…`l7` (those
/// the table has; the others are empty) and the counts.
pub const TABLE: &str = "imported";
/// Per property, the position of the last imports event applied: the version of its imported
/// data (which keys the shared answers that include it).
pub const VERSIONS: &str = "imported_versions";
/// Label columns: as many as the table with the most labels has.
pub const LABELS: usize = 7;
/// The count columns, in [`crate::domain::ImportedCounts`]' order.
pub const COUNTS: [&str; 6] = [
    "visitors",
    "visits",
    "pageviews",
    "bounces",
    "visit_duration",
    "events",
];

/// The name a table is stored under (`tbl`): Plausible's, without `imported_`.
pub fn stored_name(t: ImportedTable) -> &'static str {
    t.name().trim_start_matches("imported_")
}

/// A change to the read model.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Imported(AggregatesImported),
    Deleted(ImportDeleted),
}

/// Pure fold: the changes a batch makes, in order, and the last position per property.
pub fn fold(
    events: &[RecordedEvent],
) -> Result<(Vec<Change>, BTreeMap<Uuid, i64>), ProjectionError> {
    let mut changes = Vec::new();
    let mut versions = BTreeMap::new();
    for (position, e) in decode_all(events)? {
        let change = match e {
            Event::AggregatesImported(a) => Change::Imported(a),
            Event::ImportDeleted(d) => Change::Deleted(d),
            _ => continue,
        };
        let property = match &change {
            Change::Imported(a) => a.property_id,
            Change::Deleted(d) => d.property_id,
        };
        versions.insert(property.as_uuid(), position as i64);
        changes.push(change);
    }
    Ok((changes, versions))
}

pub struct ImportedProjection;

impl Projection for ImportedProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self) -> StreamFilter {
        StreamFilter::categories(&["imports"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE, VERSIONS]
    }

    fn ddl(&self, g: Generation) -> Vec<String> {
        let t = table(TABLE, g);
        let labels: String = (1..=LABELS)
            .map(|i| format!("l{i} text NOT NULL, "))
            .collect();
        let counts: String = COUNTS
            .iter()
            .map(|c| format!("{c} bigint NOT NULL"))
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            format!(
                "CREATE TABLE {t} (property_id uuid NOT NULL, import_id uuid NOT NULL, \
                 tbl text NOT NULL, day date NOT NULL, {labels}{counts})"
            ),
            format!("CREATE INDEX ON {t} (property_id, tbl, day)"),
            format!("CREATE INDEX ON {t} (property_id, import_id)"),
            format!(
                "CREATE TABLE {} (property_id uuid PRIMARY KEY, position bigint NOT NULL)",
                table(VERSIONS, g)
            ),
        ]
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn writer(&self, g: Generation, _partition: i32) -> Box<dyn ProjectionWriter> {
        Box::new(Writer {
            table: table(TABLE, g),
            versions: table(VERSIONS, g),
        })
    }
}

struct Writer {
    table: String,
    versions: String,
}

impl Writer {
    async fn insert(
        &self,
        tx: &mut PgConnection,
        a: &AggregatesImported,
    ) -> Result<(), ProjectionError> {
        let n = a.rows.len();
        let mut labels: Vec<Vec<String>> = (0..LABELS).map(|_| Vec::with_capacity(n)).collect();
        let mut counts: Vec<Vec<i64>> = (0..COUNTS.len()).map(|_| Vec::with_capacity(n)).collect();
        for row in &a.rows {
            for (i, column) in labels.iter_mut().enumerate() {
                column.push(row.labels.get(i).cloned().unwrap_or_default());
            }
            let c = row.counts;
            let values = [
                c.visitors,
                c.visits,
                c.pageviews,
                c.bounces,
                c.visit_duration,
                c.events,
            ];
            for (column, v) in counts.iter_mut().zip(values) {
                column.push(v);
            }
        }
        let label_names: String = (1..=LABELS).map(|i| format!("l{i}, ")).collect();
        let unnest: Vec<String> = (0..LABELS)
            .map(|i| format!("${}::text[]", i + 5))
            .chain((0..COUNTS.len()).map(|i| format!("${}::bigint[]", i + 5 + LABELS)))
            .collect();
        let sql = format!(
            "INSERT INTO {} (property_id, import_id, tbl, day, {label_names}{}) \
             SELECT $1, $2, $3, $4, * FROM unnest({})",
            self.table,
            COUNTS.join(", "),
            unnest.join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(a.property_id.as_uuid())
            .bind(a.import_id)
            .bind(stored_name(a.table))
            .bind(a.day);
        for column in labels {
            q = q.bind(column);
        }
        for column in counts {
            q = q.bind(column);
        }
        q.execute(&mut *tx).await?;
        Ok(())
    }
}

#[async_trait]
impl ProjectionWriter for Writer {
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let (changes, versions) = fold(events)?;
        for change in &changes {
            match change {
                Change::Imported(a) => self.insert(tx, a).await?,
                Change::Deleted(d) => {
                    sqlx::query(&format!(
                        "DELETE FROM {} WHERE property_id = $1 AND import_id = $2",
                        self.table
                    ))
                    .bind(d.property_id.as_uuid())
                    .bind(d.import_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        for (property, position) in versions {
            sqlx::query(&format!(
                "INSERT INTO {} (property_id, position) VALUES ($1, $2) \
                 ON CONFLICT (property_id) DO UPDATE SET position = excluded.position",
                self.versions
            ))
            .bind(property)
            .bind(position)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImportedCounts, ImportedRow, PropertyId};
    use crate::projections::recorded_property_event as recorded;

    #[test]
    fn imports_and_deletions_become_changes_and_versions() {
        let property_id = PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap();
        let imported = AggregatesImported {
            property_id,
            import_id: Uuid::from_u128(1),
            table: ImportedTable::Devices,
            day: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            rows: vec![ImportedRow {
                labels: vec!["Desktop".into()],
                counts: ImportedCounts::default(),
            }],
        };
        let deleted = ImportDeleted {
            property_id,
            import_id: imported.import_id,
        };
        let (changes, versions) = fold(&[
            recorded(4, &Event::AggregatesImported(imported.clone())),
            recorded(9, &Event::ImportDeleted(deleted.clone())),
        ])
        .unwrap();
        assert_eq!(
            changes,
            vec![Change::Imported(imported), Change::Deleted(deleted)]
        );
        assert_eq!(versions.get(&property_id.as_uuid()), Some(&9));
        assert_eq!(stored_name(ImportedTable::EntryPages), "entry_pages");
    }
}
