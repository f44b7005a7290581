//! The record batch: how the events of one `event_batches` row are stored in its `records` column.
//!
//! The row itself carries the positions (`first_position`.., dense), the streams (`streams`, by
//! `stream_no`) and the event ids (`event_ids`, in record order); the records carry the rest, in
//! position order. PostgreSQL compresses the column (lz4), so repeated type names and similar
//! payloads cost little.
//!
//! | field | encoding |
//! |---|---|
//! | format version | 1 byte, `1` |
//! | type names | varint count, then each as varint length + UTF-8 |
//! | records | varint count, then each: varint index into the row's `streams`, varint revision, varint index into the type names, varint schema version, varint data length + data |
//!
//! Varints are unsigned LEB128. A new layout gets a new format version; readers keep every old one.
//!
//! Here too are the rows themselves: an append's ([`Batches`], one per run of events of one
//! category) and a stored one as read ([`BatchRow`]).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::codec::{put_str, put_varint, CodecError, Reader};
use crate::eventlog::{EventData, StreamAppend};

const FORMAT: u8 = 1;

/// One event of a batch, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Index into the batch row's `streams`.
    pub stream: usize,
    pub revision: u64,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub data: &'a [u8],
}

/// Why stored bytes are not a record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The framing is broken: the bytes end inside a field, a varint overflows, text is not
    /// UTF-8, or bytes are left over.
    #[error("record batch framing: {0}")]
    Framing(#[from] CodecError),
    /// A format this code does not know (written by newer code).
    #[error("record batch format {0} is unknown")]
    UnknownFormat(u8),
    /// A field holds an impossible value (an index out of range, text that is not UTF-8).
    #[error("record batch invalid: {0}")]
    Invalid(&'static str),
}

pub fn encode(records: &[Record<'_>]) -> Vec<u8> {
    let mut types: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(16 + records.iter().map(|r| r.data.len() + 8).sum::<usize>());
    out.push(FORMAT);
    let type_index: Vec<usize> = records
        .iter()
        .map(|r| match types.iter().position(|t| *t == r.event_type) {
            Some(i) => i,
            None => {
                types.push(r.event_type);
                types.len() - 1
            }
        })
        .collect();
    put_varint(&mut out, types.len() as u64);
    for t in &types {
        put_str(&mut out, t);
    }
    put_varint(&mut out, records.len() as u64);
    for (r, t) in records.iter().zip(type_index) {
        put_varint(&mut out, r.stream as u64);
        put_varint(&mut out, r.revision);
        put_varint(&mut out, t as u64);
        put_varint(&mut out, u64::from(r.schema_version));
        put_varint(&mut out, r.data.len() as u64);
        out.extend_from_slice(r.data);
    }
    out
}

/// Decodes a batch; `streams` is how many streams the row lists (record indexes are checked). The
/// records borrow their types and data from `bytes`: a reader copies out only those it keeps.
pub fn decode(bytes: &[u8], streams: usize) -> Result<Vec<Record<'_>>, BatchError> {
    let mut r = Reader::new(bytes);
    let format = r.byte()?;
    if format != FORMAT {
        return Err(BatchError::UnknownFormat(format));
    }
    let index = |r: &mut Reader<'_>| -> Result<usize, BatchError> {
        usize::try_from(r.varint()?).map_err(|_| BatchError::Invalid("index"))
    };
    let type_count = r.len()?;
    let mut types = Vec::with_capacity(type_count);
    for _ in 0..type_count {
        types.push(r.str_ref()?);
    }
    let count = r.len()?;
    // A count no larger than the remaining input: no allocation beyond what the input can hold.
    let mut out = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        let stream = index(&mut r)?;
        if stream >= streams {
            return Err(BatchError::Invalid("stream index"));
        }
        let revision = r.varint()?;
        let event_type = *types
            .get(index(&mut r)?)
            .ok_or(BatchError::Invalid("type index"))?;
        let schema_version =
            u16::try_from(r.varint()?).map_err(|_| BatchError::Invalid("schema version"))?;
        let len = r.len()?;
        let data = r.take(len)?;
        out.push(Record {
            stream,
            revision,
            event_type,
            schema_version,
            data,
        });
    }
    if !r.is_empty() {
        return Err(BatchError::Invalid("trailing bytes"));
    }
    Ok(out)
}

/// A stream's category: the part of its name before the first `-` (`hits-<id>` → `hits`).
pub(super) fn category(stream: &str) -> &str {
    stream.split('-').next().unwrap_or(stream)
}

/// The batch rows of one append, column by column: one batch per run of events of one category,
/// so that subscriptions to a category skip the others' batches. A batch names its streams by
/// number, which the append's last statement looks up (or assigns) as it writes the streams'
/// revisions: each batch's stream names are a slice of one array, its event ids a slice of
/// another.
#[derive(Default)]
pub(super) struct Batches<'a> {
    pub(super) first: Vec<i64>,
    pub(super) last: Vec<i64>,
    pub(super) category: Vec<&'a str>,
    /// Every batch's stream names, a batch's from `names_from` to `names_to`.
    pub(super) names: Vec<&'a str>,
    pub(super) names_from: Vec<i32>,
    pub(super) names_to: Vec<i32>,
    /// Every batch's event ids, in position order.
    pub(super) event_ids: Vec<Uuid>,
    pub(super) records: Vec<Vec<u8>>,
}

impl<'a> Batches<'a> {
    /// The rows of the `new` events (each with its stream's index in `appends` and its revision,
    /// in position order) after the log's `head`.
    pub(super) fn of(
        appends: &'a [StreamAppend],
        new: &[(usize, u64, &'a EventData)],
        head: i64,
    ) -> Self {
        let mut rows = Self::default();
        let mut first = head + 1;
        for run in
            new.chunk_by(|a, b| category(&appends[a.0].stream) == category(&appends[b.0].stream))
        {
            let names_from = rows.names.len();
            let mut streams: Vec<&str> = Vec::new();
            let mut records = Vec::with_capacity(run.len());
            for (i, revision, e) in run {
                let name = appends[*i].stream.as_str();
                let stream = match streams.iter().position(|s| *s == name) {
                    Some(at) => at,
                    None => {
                        streams.push(name);
                        streams.len() - 1
                    }
                };
                records.push(Record {
                    stream,
                    revision: *revision,
                    event_type: &e.event_type,
                    schema_version: e.schema_version,
                    data: &e.data,
                });
                rows.event_ids.push(e.id);
            }
            let last = first + run.len() as i64 - 1;
            rows.first.push(first);
            rows.last.push(last);
            rows.category.push(category(&appends[run[0].0].stream));
            rows.names.extend(streams);
            // Slices are 1-based and inclusive.
            rows.names_from.push(names_from as i32 + 1);
            rows.names_to.push(rows.names.len() as i32);
            rows.records.push(encode(&records));
            first = last + 1;
        }
        rows
    }
}

/// A stored batch row, before its records are decoded. The records stay in the row as received
/// (a backlog's rows are about a megabyte each): they are decoded borrowing from it.
pub(super) struct BatchRow {
    pub(super) first_position: i64,
    pub(super) streams: Vec<i64>,
    pub(super) event_ids: Vec<Uuid>,
    pub(super) recorded_at: DateTime<Utc>,
    row: PgRow,
}

impl BatchRow {
    pub(super) fn of(row: PgRow) -> Result<Self, sqlx::Error> {
        // The records are checked here, so that reading them later cannot fail.
        row.try_get::<&[u8], _>("records")?;
        Ok(Self {
            first_position: row.try_get("first_position")?,
            streams: row.try_get("streams")?,
            event_ids: row.try_get("event_ids")?,
            recorded_at: row.try_get("recorded_at")?,
            row,
        })
    }

    pub(super) fn records(&self) -> &[u8] {
        self.row.try_get("records").unwrap_or_default()
    }
}

pub(super) const SELECT_BATCHES: &str =
    "SELECT first_position, streams, event_ids, recorded_at, records FROM event_batches";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let records = [
            Record {
                stream: 0,
                revision: 0,
                event_type: "HitRecorded",
                schema_version: 2,
                data: b"\x01\x02",
            },
            Record {
                stream: 1,
                revision: 300,
                event_type: "GoalsSet",
                schema_version: 1,
                data: b"{}",
            },
            Record {
                stream: 0,
                revision: 1,
                event_type: "HitRecorded",
                schema_version: 2,
                data: b"",
            },
        ];
        let bytes = encode(&records);
        assert_eq!(decode(&bytes, 2).unwrap(), records);
        assert_eq!(
            decode(&bytes, 1).unwrap_err(),
            BatchError::Invalid("stream index")
        );
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let bytes = encode(&[Record {
            stream: 0,
            revision: 7,
            event_type: "HitRecorded",
            schema_version: 2,
            data: b"payload",
        }]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 1).is_err(), "cut at {cut}");
        }
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(decode(&newer, 1).unwrap_err(), BatchError::UnknownFormat(2));
        let mut longer = bytes;
        longer.push(0);
        assert!(decode(&longer, 1).is_err());
    }
}
