//! Imported aggregates: another system's daily reports (Plausible's CSV export layout), recorded
//! as events of their own in the property's `imports-<id>` stream, one per file and day (in parts
//! of at most [`ROWS_PER_EVENT`] rows), and folded into a read model apart from the hits. Queries
//! add them to what the hits give when asked to (`include.imports`).
//!
//! These are aggregates, not hits: a day's visitors are a count, not a set, so visitors over
//! several days are the sum of the days' (as Plausible answers for imported data).

use std::borrow::Cow;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{clean_text, PropertyId};

/// Rows per `AggregatesImported` event: a big day's pages file becomes several events.
pub const ROWS_PER_EVENT: usize = 5_000;
/// The longest label kept; longer ones are cut (as collection cuts nothing longer than a URL).
pub const MAX_LABEL_CHARS: usize = 2_000;

/// The tables of Plausible's export: each is a file `imported_<table>_<first>_<last>.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportedTable {
    Visitors,
    Sources,
    Pages,
    EntryPages,
    ExitPages,
    CustomEvents,
    Locations,
    Devices,
    Browsers,
    OperatingSystems,
}

/// One count of an imported row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Visitors,
    Visits,
    Pageviews,
    Bounces,
    VisitDuration,
    Events,
}

/// The counts of one imported row; those its table lacks are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedCounts {
    pub visitors: i64,
    pub visits: i64,
    pub pageviews: i64,
    pub bounces: i64,
    /// Seconds, summed over the visits.
    pub visit_duration: i64,
    /// Custom events (in `custom_events`); elsewhere the pageviews.
    pub events: i64,
}

impl ImportedCounts {
    pub fn get(&self, c: Count) -> i64 {
        match c {
            Count::Visitors => self.visitors,
            Count::Visits => self.visits,
            Count::Pageviews => self.pageviews,
            Count::Bounces => self.bounces,
            Count::VisitDuration => self.visit_duration,
            Count::Events => self.events,
        }
    }

    pub fn set(&mut self, c: Count, v: i64) {
        let field = match c {
            Count::Visitors => &mut self.visitors,
            Count::Visits => &mut self.visits,
            Count::Pageviews => &mut self.pageviews,
            Count::Bounces => &mut self.bounces,
            Count::VisitDuration => &mut self.visit_duration,
            Count::Events => &mut self.events,
        };
        *field = v;
    }
}

/// A row of a table: its labels (in the table's [`ImportedTable::labels`] order) and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedRow {
    pub labels: Vec<String>,
    pub counts: ImportedCounts,
}

impl ImportedTable {
    pub const ALL: [Self; 10] = [
        Self::Visitors,
        Self::Sources,
        Self::Pages,
        Self::EntryPages,
        Self::ExitPages,
        Self::CustomEvents,
        Self::Locations,
        Self::Devices,
        Self::Browsers,
        Self::OperatingSystems,
    ];

    /// The table's name in Plausible's layout (the file name's start).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Visitors => "imported_visitors",
            Self::Sources => "imported_sources",
            Self::Pages => "imported_pages",
            Self::EntryPages => "imported_entry_pages",
            Self::ExitPages => "imported_exit_pages",
            Self::CustomEvents => "imported_custom_events",
            Self::Locations => "imported_locations",
            Self::Devices => "imported_devices",
            Self::Browsers => "imported_browsers",
            Self::OperatingSystems => "imported_operating_systems",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The label columns: their CSV name, and the read model's column (and query dimension) they
    /// are, such as `operating_system` → `os`.
    pub fn labels(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Visitors => &[],
            Self::Sources => &[
                ("source", "source"),
                ("referrer", "referrer"),
                ("utm_source", "utm_source"),
                ("utm_medium", "utm_medium"),
                ("utm_campaign", "utm_campaign"),
                ("utm_content", "utm_content"),
                ("utm_term", "utm_term"),
            ],
            Self::Pages => &[("hostname", "hostname"), ("page", "pathname")],
            Self::EntryPages => &[("entry_page", "entry_page")],
            Self::ExitPages => &[("exit_page", "exit_page")],
            Self::CustomEvents => &[("name", "name"), ("link_url", "link_url"), ("path", "path")],
            Self::Locations => &[
                ("country", "country"),
                ("region", "region"),
                ("city", "city"),
            ],
            Self::Devices => &[("device", "device")],
            Self::Browsers => &[
                ("browser", "browser"),
                ("browser_version", "browser_version"),
            ],
            Self::OperatingSystems => &[
                ("operating_system", "os"),
                ("operating_system_version", "os_version"),
            ],
        }
    }

    /// The count columns in the export's order, by CSV name.
    pub fn counts(&self) -> &'static [(&'static str, Count)] {
        use Count::*;
        const VISIT_TABLE: &[(&str, Count)] = &[
            ("visitors", Visitors),
            ("visits", Visits),
            ("visit_duration", VisitDuration),
            ("bounces", Bounces),
            ("pageviews", Pageviews),
        ];
        match self {
            Self::Visitors => &[
                ("visitors", Visitors),
                ("pageviews", Pageviews),
                ("bounces", Bounces),
                ("visits", Visits),
                ("visit_duration", VisitDuration),
            ],
            Self::Sources => &[
                ("pageviews", Pageviews),
                ("visitors", Visitors),
                ("visits", Visits),
                ("visit_duration", VisitDuration),
                ("bounces", Bounces),
            ],
            Self::Pages => &[
                ("visits", Visits),
                ("visitors", Visitors),
                ("pageviews", Pageviews),
            ],
            Self::EntryPages => &[
                ("visitors", Visitors),
                ("entrances", Visits),
                ("visit_duration", VisitDuration),
                ("bounces", Bounces),
                ("pageviews", Pageviews),
            ],
            Self::ExitPages => &[
                ("visitors", Visitors),
                ("visit_duration", VisitDuration),
                ("exits", Visits),
                ("bounces", Bounces),
                ("pageviews", Pageviews),
            ],
            Self::CustomEvents => &[("visitors", Visitors), ("events", Events)],
            Self::Locations | Self::Devices | Self::Browsers | Self::OperatingSystems => {
                VISIT_TABLE
            }
        }
    }

    /// Whether its rows are visits grouped by a visit attribute (they hold bounces and durations).
    pub fn is_visit_table(&self) -> bool {
        !matches!(self, Self::Pages | Self::CustomEvents)
    }
}

/// Event: a day of one table of an import (or part of it). Lives in the property's imports stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatesImported {
    pub property_id: PropertyId,
    pub import_id: Uuid,
    pub table: ImportedTable,
    pub day: NaiveDate,
    pub rows: Vec<ImportedRow>,
}

/// Event: an import was deleted; reports no longer include its aggregates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportDeleted {
    pub property_id: PropertyId,
    pub import_id: Uuid,
}

/// Why an imported row is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("the row has {found} labels; its table has {expected}")]
    Labels { expected: usize, found: usize },
    #[error("counts must not be negative")]
    NegativeCount,
    #[error("the date must be within the years 1 to 9999")]
    DateOutOfRange,
}

/// Command: record a day of a table's rows for an import.
pub struct ImportAggregates {
    pub property_id: PropertyId,
    pub import_id: Uuid,
    pub table: ImportedTable,
    pub day: NaiveDate,
    pub rows: Vec<ImportedRow>,
}

impl ImportAggregates {
    /// Checks every row and normalises its labels as collection normalises text (no control
    /// characters, at most [`MAX_LABEL_CHARS`]); splits the day into events of at most
    /// [`ROWS_PER_EVENT`] rows.
    pub fn handle(self) -> Result<Vec<AggregatesImported>, RowError> {
        if !(1..=9999).contains(&self.day.year()) {
            return Err(RowError::DateOutOfRange);
        }
        let expected = self.table.labels().len();
        let mut rows = self.rows;
        for row in &mut rows {
            if row.labels.len() != expected {
                return Err(RowError::Labels {
                    expected,
                    found: row.labels.len(),
                });
            }
            let c = row.counts;
            if [
                c.visitors,
                c.visits,
                c.pageviews,
                c.bounces,
                c.visit_duration,
                c.events,
            ]
            .iter()
            .any(|v| *v < 0)
            {
                return Err(RowError::NegativeCount);
            }
            for label in &mut row.labels {
                if let Cow::Owned(clean) = clean_text(label) {
                    *label = clean;
                }
                if let Some((cut, _)) = label.char_indices().nth(MAX_LABEL_CHARS) {
                    label.truncate(cut);
                }
            }
        }
        Ok(rows
            .chunks(ROWS_PER_EVENT)
            .map(|part| AggregatesImported {
                property_id: self.property_id,
                import_id: self.import_id,
                table: self.table,
                day: self.day,
                rows: part.to_vec(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(rows: Vec<ImportedRow>) -> ImportAggregates {
        ImportAggregates {
            property_id: PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap(),
            import_id: Uuid::from_u128(7),
            table: ImportedTable::Browsers,
            day: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            rows,
        }
    }

    fn row(labels: &[&str], visitors: i64) -> ImportedRow {
        ImportedRow {
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            counts: ImportedCounts {
                visitors,
                ..ImportedCounts::default()
            },
        }
    }

    #[test]
    fn every_table_has_its_file_name_and_distinct_columns() {
        for t in ImportedTable::ALL {
            assert_eq!(ImportedTable::parse(t.name()), Some(t));
            let mut names: Vec<&str> = t.labels().iter().map(|(csv, _)| *csv).collect();
            names.extend(t.counts().iter().map(|(csv, _)| *csv));
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "{}", t.name());
        }
        assert_eq!(ImportedTable::parse("imported_nothing"), None);
    }

    #[test]
    fn given_rows_when_imported_then_labels_are_clean_and_days_split_into_parts() {
        let long = "x".repeat(MAX_LABEL_CHARS + 5);
        let events = command(vec![row(&["Fire\0fox\n", &long], 3)])
            .handle()
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].rows[0].labels[0], "Firefox ");
        assert_eq!(events[0].rows[0].labels[1].chars().count(), MAX_LABEL_CHARS);

        let many = vec![row(&["a", "1"], 1); ROWS_PER_EVENT + 1];
        let events = command(many).handle().unwrap();
        assert_eq!(
            events.iter().map(|e| e.rows.len()).collect::<Vec<_>>(),
            [ROWS_PER_EVENT, 1]
        );
    }

    #[test]
    fn given_bad_rows_when_imported_then_refused() {
        assert_eq!(
            command(vec![row(&["a"], 1)]).handle().unwrap_err(),
            RowError::Labels {
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            command(vec![row(&["a", "b"], -1)]).handle().unwrap_err(),
            RowError::NegativeCount
        );
    }
}
