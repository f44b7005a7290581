//! Plausible's CSV export layout: a zip (or a folder) of files named
//! `imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv` (the `imported_` prefix and the dates are optional),
//! each with a header row naming its columns (see [`ImportedTable`] for each table's). Columns are
//! found by name, in any order; unknown ones are ignored, missing counts are 0 and missing labels
//! empty, so older exports (without `pageviews` or `browser_version`) read too.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::csv::{self, write_record, CsvError};
use crate::domain::{ImportedCounts, ImportedRow, ImportedTable};

/// The table a file holds, from its name (any folders in front are ignored).
pub fn table_of(file_name: &str) -> Option<ImportedTable> {
    let base = file_name.rsplit(['/', '\\']).next()?.strip_suffix(".csv")?;
    let base = base.strip_prefix("imported_").unwrap_or(base);
    // Drop `_<first>_<last>` when both are dates.
    let is_date = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit());
    let mut name = base;
    if let Some((rest, last)) = name.rsplit_once('_') {
        if let Some((table, first)) = rest.rsplit_once('_') {
            if is_date(first) && is_date(last) {
                name = table;
            }
        }
    }
    ImportedTable::parse(&format!("imported_{name}"))
}

/// A file's rows by day, and how many data rows were refused (a bad date or count).
#[derive(Debug, Default, PartialEq)]
pub struct FileRows {
    pub days: BTreeMap<NaiveDate, Vec<ImportedRow>>,
    pub rows: i64,
    pub invalid: i64,
}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}: not UTF-8 text")]
    NotText(String),
    #[error("{0}: {1}")]
    Csv(String, CsvError),
    #[error("{0}: the header has no `date` column")]
    NoDate(String),
}

/// Reads one file of `table`.
pub fn read(table: ImportedTable, name: &str, content: &[u8]) -> Result<FileRows, FileError> {
    let text = std::str::from_utf8(content).map_err(|_| FileError::NotText(name.to_owned()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = csv::records(text)
        .map_err(|e| FileError::Csv(name.to_owned(), e))?
        .into_iter();
    let header = records.next().unwrap_or_default();
    let position = |column: &str| header.iter().position(|h| h.trim() == column);
    let date = position("date").ok_or_else(|| FileError::NoDate(name.to_owned()))?;
    let labels: Vec<Option<usize>> = table.labels().iter().map(|(c, _)| position(c)).collect();
    let counts: Vec<_> = table
        .counts()
        .iter()
        .map(|(c, count)| (position(c), *count))
        .collect();
    let mut out = FileRows::default();
    for record in records {
        out.rows += 1;
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).map_or("", |s| s.trim());
        let Ok(day) = NaiveDate::parse_from_str(field(Some(date)), "%Y-%m-%d") else {
            out.invalid += 1;
            continue;
        };
        let mut row = ImportedRow {
            labels: labels.iter().map(|i| field(*i).to_owned()).collect(),
            counts: ImportedCounts::default(),
        };
        let mut valid = true;
        for (i, count) in &counts {
            match field(*i) {
                "" => {}
                v => match v.parse::<i64>() {
                    Ok(n) if n >= 0 => row.counts.set(*count, n),
                    _ => valid = false,
                },
            }
        }
        if !valid {
            out.invalid += 1;
            continue;
        }
        // Plausible's locations hold GeoNames ids, 0 for none; footfall keeps none as empty.
        if table == ImportedTable::Locations && row.labels[2] == "0" {
            row.labels[2].clear();
        }
        // Outside `custom_events`, a row's events are its pageviews (as a hit's are).
        if table != ImportedTable::CustomEvents {
            row.counts.events = row.counts.pageviews;
        }
        out.days.entry(day).or_default().push(row);
    }
    Ok(out)
}

/// The file name of `table` for the days `first`..=`last`, as Plausible names it.
pub fn file_name(table: ImportedTable, first: NaiveDate, last: NaiveDate) -> String {
    format!(
        "{}_{}_{}.csv",
        table.name(),
        first.format("%Y%m%d"),
        last.format("%Y%m%d")
    )
}

/// Writes a file of `table`: the header, then a record per day and row.
pub fn write(table: ImportedTable, rows: &[(NaiveDate, ImportedRow)]) -> String {
    let mut out = String::new();
    let header: Vec<&str> = std::iter::once("date")
        .chain(table.labels().iter().map(|(c, _)| *c))
        .chain(table.counts().iter().map(|(c, _)| *c))
        .collect();
    write_record(&mut out, &header);
    for (day, row) in rows {
        let mut fields = vec![day.format("%Y-%m-%d").to_string()];
        fields.extend(row.labels.iter().cloned());
        if table == ImportedTable::Locations && fields[3].is_empty() {
            fields[3] = "0".into();
        }
        fields.extend(
            table
                .counts()
                .iter()
                .map(|(_, c)| row.counts.get(*c).to_string()),
        );
        write_record(&mut out, &fields);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_table() {
        use ImportedTable::*;
        assert_eq!(
            table_of("imported_visitors_20240101_20241231.csv"),
            Some(Visitors)
        );
        assert_eq!(
            table_of("export/devices_20240101_20241231.csv"),
            Some(Devices)
        );
        assert_eq!(
            table_of("imported_operating_systems.csv"),
            Some(OperatingSystems)
        );
        assert_eq!(table_of("imported_entry_pages_2024_x.csv"), None);
        assert_eq!(table_of("notes.txt"), None);
        assert_eq!(
            file_name(
                CustomEvents,
                "2024-01-01".parse().unwrap(),
                "2024-01-31".parse().unwrap()
            ),
            "imported_custom_events_20240101_20240131.csv"
        );
    }

    #[test]
    fn columns_are_found_by_name_and_bad_rows_counted() {
        let text = "\u{feff}visitors,operating_system,date,bounces,extra\n\
                    3,Mac,2024-01-02,1,x\n\
                    2,\"GNU/Linux\",2024-01-02,,\n\
                    1,Mac,yesterday,0,\n\
                    1,Mac,2024-01-03,-4,\n";
        let rows = read(ImportedTable::OperatingSystems, "os.csv", text.as_bytes()).unwrap();
        assert_eq!((rows.rows, rows.invalid), (4, 2));
        let day = &rows.days[&"2024-01-02".parse().unwrap()];
        assert_eq!(day[0].labels, ["Mac", ""]);
        assert_eq!((day[0].counts.visitors, day[0].counts.bounces), (3, 1));
        assert_eq!(day[1].labels, ["GNU/Linux", ""]);
        assert!(matches!(
            read(ImportedTable::Devices, "d.csv", b"device,visitors\n"),
            Err(FileError::NoDate(_))
        ));
    }

    #[test]
    fn written_files_read_back() {
        let day: NaiveDate = "2024-02-29".parse().unwrap();
        let row = ImportedRow {
            labels: vec!["FR".into(), "FR-IDF".into(), "".into()],
            counts: ImportedCounts {
                visitors: 2,
                visits: 3,
                pageviews: 5,
                bounces: 1,
                visit_duration: 40,
                events: 5,
            },
        };
        let text = write(ImportedTable::Locations, &[(day, row.clone())]);
        assert!(text.starts_with(
            "date,country,region,city,visitors,visits,visit_duration,bounces,pageviews\r\n"
        ));
        assert!(text.contains(",FR-IDF,0,"));
        let back = read(ImportedTable::Locations, "l.csv", text.as_bytes()).unwrap();
        assert_eq!(back.days[&day], vec![row]);
    }
}
