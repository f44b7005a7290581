//! Converts a log written before record batches (one `events` row per event, JSON data) into
//! `event_batches`, keeping every position, revision, id and byte of data; then drops the old
//! table. `footfall migrate` runs it after the SQL migrations; it does nothing once done.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::batch::{self, category};

/// Events converted per transaction.
const CHUNK: i64 = 20_000;

/// Converts the legacy `events` table, if there is one; returns how many events it converted.
pub async fn convert_legacy_events(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('events') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(0);
    }
    let mut converted = 0u64;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query(
            "SELECT e.position, e.stream_id, s.stream_no, e.revision, e.event_id, e.event_type, \
                    e.schema_version, e.data::text AS data, e.recorded_at \
             FROM events e JOIN event_streams s USING (stream_id) ORDER BY e.position LIMIT $1",
        )
        .bind(CHUNK)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            sqlx::query("DROP TABLE events").execute(&mut *tx).await?;
            tx.commit().await?;
            return Ok(converted);
        }
        let mut last = 0i64;
        // One batch per run of consecutive positions of one category and one commit time.
        let mut start = 0;
        while start < rows.len() {
            let cat = category(rows[start].try_get::<&str, _>("stream_id")?).to_owned();
            let at: chrono::DateTime<chrono::Utc> = rows[start].try_get("recorded_at")?;
            let first: i64 = rows[start].try_get("position")?;
            let mut end = start + 1;
            while end < rows.len()
                && category(rows[end].try_get::<&str, _>("stream_id")?) == cat
                && rows[end].try_get::<chrono::DateTime<chrono::Utc>, _>("recorded_at")? == at
                && rows[end].try_get::<i64, _>("position")? == first + (end - start) as i64
            {
                end += 1;
            }
            let run = &rows[start..end];
            let mut streams: Vec<i64> = Vec::new();
            let mut ids: Vec<Uuid> = Vec::with_capacity(run.len());
            let mut owned = Vec::with_capacity(run.len());
            for r in run {
                let no: i64 = r.try_get("stream_no")?;
                let stream = match streams.iter().position(|s| *s == no) {
                    Some(i) => i,
                    None => {
                        streams.push(no);
                        streams.len() - 1
                    }
                };
                ids.push(r.try_get("event_id")?);
                owned.push((
                    stream,
                    r.try_get::<i64, _>("revision")? as u64,
                    r.try_get::<String, _>("event_type")?,
                    r.try_get::<i16, _>("schema_version")? as u16,
                    r.try_get::<String, _>("data")?,
                ));
            }
            let records: Vec<batch::Record<'_>> = owned
                .iter()
                .map(|(stream, revision, t, v, data)| batch::Record {
                    stream: *stream,
                    revision: *revision,
                    event_type: t,
                    schema_version: *v,
                    data: data.as_bytes(),
                })
                .collect();
            last = first + run.len() as i64 - 1;
            sqlx::query(
                "INSERT INTO event_batches (first_position, last_position, category, streams, event_ids, recorded_at, records) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(first)
            .bind(last)
            .bind(&cat)
            .bind(&streams)
            .bind(&ids)
            .bind(at)
            .bind(batch::encode(&records))
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO event_ids (event_id) SELECT * FROM UNNEST($1::uuid[])")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            converted += run.len() as u64;
            start = end;
        }
        sqlx::query("DELETE FROM events WHERE position <= $1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            converted,
            "event log: converted legacy events into record batches"
        );
    }
}
