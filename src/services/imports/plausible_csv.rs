//! Imports of Plausible's CSV export (`crate::import::plausible_csv`): each file's days become
//! `AggregatesImported` events in the property's imports stream. The whole archive is read and
//! checked before anything is appended, so a file that cannot be read is refused up front.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{uuid_v8, Counts, ImportError, Imports, Source, BATCH};
use crate::domain::{Event, ImportAggregates, ImportDeleted, ImportedTable, PropertyId};
use crate::eventlog::EventData;
use crate::import::plausible_csv::{self, FileError, FileRows};
use crate::import::zip::{self, ZipError};
use crate::services::PropertyRecord;

/// The largest file an archive may hold, decompressed.
const MAX_FILE: u64 = 1 << 30;

/// Why an archive is refused (each a `400`).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Zip(#[from] ZipError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("no file of Plausible's CSV layout (imported_<table>_<first>_<last>.csv)")]
    NoTables,
    #[error("cannot read the folder: {0}")]
    Io(#[from] std::io::Error),
}

/// A Plausible CSV export, read and checked: its table files' rows by day.
pub struct Archive {
    pub source: Source,
    files: Vec<(ImportedTable, String, FileRows)>,
    ignored: i64,
}

impl Archive {
    /// A zip of the layout's files, or one CSV file named `name`.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, ArchiveError> {
        let files = if zip::is_zip(bytes) {
            zip::read(bytes, MAX_FILE)?
        } else {
            vec![(name.to_owned(), bytes.to_vec())]
        };
        Self::new(name, files)
    }

    /// Every file of a folder (not its subfolders).
    pub fn from_dir(path: &Path) -> Result<Self, ArchiveError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                files.push((name, std::fs::read(entry.path())?));
            }
        }
        Self::new(&path.display().to_string(), files)
    }

    fn new(name: &str, mut files: Vec<(String, Vec<u8>)>) -> Result<Self, ArchiveError> {
        // The content hash is the same whatever the order of the files or their container.
        files.sort();
        let mut hash = Sha256::new();
        let mut total = 0;
        for (file, content) in &files {
            hash.update((file.len() as u64).to_le_bytes());
            hash.update(file.as_bytes());
            hash.update((content.len() as u64).to_le_bytes());
            hash.update(content);
            total += content.len() as i64;
        }
        let mut tables = Vec::new();
        let mut ignored = 0;
        for (file, content) in files {
            match plausible_csv::table_of(&file) {
                Some(table) => {
                    let rows = plausible_csv::read(table, &file, &content)?;
                    tables.push((table, file, rows));
                }
                None => ignored += 1,
            }
        }
        if tables.is_empty() {
            return Err(ArchiveError::NoTables);
        }
        Ok(Self {
            source: Source {
                name: name.to_owned(),
                content_hash: hash.finalize().into(),
                total_bytes: total,
            },
            files: tables,
            ignored,
        })
    }
}

impl Imports {
    /// Records the start of an import of aggregates. Its id derives from the property, the
    /// archive's content and how many imports of that content were deleted: importing the same
    /// archive again is the same import (and appends nothing), while importing it after deleting
    /// it is a new one.
    pub async fn begin_aggregates(
        &self,
        property: &PropertyRecord,
        archive: &Archive,
    ) -> Result<Uuid, ImportError> {
        let hash = archive.source.content_hash;
        let deleted: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM imports WHERE property_id = $1 AND content_hash = $2 \
             AND state = 'deleted'",
        )
        .bind(property.id)
        .bind(hash.as_slice())
        .fetch_one(&self.pool)
        .await?;
        let id = derived_id(&[property.id.as_bytes(), &hash, &deleted.to_le_bytes()]);
        sqlx::query(
            "INSERT INTO imports (id, property_id, kind, source, content_hash, state, total_bytes) \
             VALUES ($1, $2, 'plausible_csv', $3, $4, 'running', $5) \
             ON CONFLICT (id) DO UPDATE SET state = 'running', source = excluded.source, \
             error = NULL, started_at = now(), finished_at = NULL",
        )
        .bind(id)
        .bind(property.id)
        .bind(&archive.source.name)
        .bind(hash.as_slice())
        .bind(archive.source.total_bytes)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Appends the archive's aggregates as import `id`, calling `progress` after each append.
    /// Records the outcome on the import's row.
    pub async fn plausible_csv(
        &self,
        id: Uuid,
        property: &PropertyRecord,
        archive: &Archive,
        progress: impl FnMut(&Counts),
    ) -> Result<Counts, ImportError> {
        let outcome = self
            .run_plausible_csv(id, property, archive, progress)
            .await;
        self.finish(id, outcome).await
    }

    async fn run_plausible_csv(
        &self,
        id: Uuid,
        property: &PropertyRecord,
        archive: &Archive,
        mut progress: impl FnMut(&Counts),
    ) -> Result<Counts, ImportError> {
        let property_id = PropertyId::new(property.id);
        let stream = property_id.imports_stream();
        let mut counts = Counts {
            other: archive.ignored,
            ..Counts::default()
        };
        let mut days: BTreeSet<NaiveDate> = BTreeSet::new();
        let mut batch = Vec::new();
        let mut batch_rows = 0;
        for (table, file, rows) in &archive.files {
            counts.files += 1;
            counts.lines += rows.rows;
            counts.invalid += rows.invalid;
            for (day, day_rows) in &rows.days {
                let command = ImportAggregates {
                    property_id,
                    import_id: id,
                    table: *table,
                    day: *day,
                    rows: day_rows.clone(),
                };
                let Ok(events) = command.handle() else {
                    counts.invalid += day_rows.len() as i64;
                    continue;
                };
                days.insert(*day);
                if *table == ImportedTable::Visitors {
                    counts.pageviews += day_rows.iter().map(|r| r.counts.pageviews).sum::<i64>();
                }
                for (part, e) in events.into_iter().enumerate() {
                    batch_rows += e.rows.len();
                    let event_id = derived_id(&[
                        id.as_bytes(),
                        file.as_bytes(),
                        day.to_string().as_bytes(),
                        &(part as u64).to_le_bytes(),
                    ]);
                    batch.push(EventData::from_event(
                        event_id,
                        &Event::AggregatesImported(e),
                    )?);
                }
                if batch_rows >= BATCH {
                    self.append(stream.clone(), &mut batch).await?;
                    batch_rows = 0;
                    counts.days = days.len() as i64;
                    self.record_progress(id, &counts).await?;
                    progress(&counts);
                }
            }
        }
        self.append(stream, &mut batch).await?;
        counts.days = days.len() as i64;
        counts.read_bytes = archive.source.total_bytes;
        progress(&counts);
        Ok(counts)
    }

    /// Deletes an import of aggregates: an `ImportDeleted` event in the property's imports
    /// stream, after which reports leave it out (once projected), and the import's row marked
    /// `deleted`.
    pub async fn delete(&self, property: PropertyId, id: Uuid) -> Result<(), ImportError> {
        let event = Event::ImportDeleted(ImportDeleted {
            property_id: property,
            import_id: id,
        });
        let mut batch = vec![EventData::from_event(
            derived_id(&[id.as_bytes(), b"deleted"]),
            &event,
        )?];
        self.append(property.imports_stream(), &mut batch).await?;
        sqlx::query("UPDATE imports SET state = 'deleted', finished_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// An id derived from the parts (each length-prefixed, so no two lists of parts collide).
fn derived_id(parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    uuid_v8(&h.finalize())
}
