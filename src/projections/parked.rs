//! Parked events: what a projection does with an event it cannot apply because of the event's own
//! data, so that nothing accepted can stall it.
//!
//! A batch that fails with a data error is halved until the failing event stands alone; the
//! halves that apply are committed with their checkpoints, the lone event is recorded in
//! `projection_parked` with the checkpoint moved past it, and the runner goes on. Which events
//! fail depends only on each event and the code, so a rebuild parks the same ones. Transient
//! errors (a lost connection, a serialization failure) are not data errors: the runner retries
//! them. After a fix, `POST /api/admin/projections/{name}/parked/replay` asks the runner to apply
//! the parked events again; those that apply leave the table.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Generation, ProjectionError};
use crate::eventlog::RecordedEvent;

/// Whether an error lies in the events being applied rather than in the database or the network:
/// SQLSTATE classes 22 (data exception), 23 (integrity constraint violation) and 54 (program
/// limit exceeded, such as an index row too large), a value the code cannot encode for the
/// database (`COPY`'s own encoding of a revenue amount), an event the code cannot decode, or a
/// fold that panicked.
pub fn is_data_error(e: &ProjectionError) -> bool {
    match e {
        ProjectionError::Database(sqlx::Error::Database(db)) => db
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
        ProjectionError::Database(sqlx::Error::Encode(_)) => true,
        ProjectionError::Decode { .. } => true,
        ProjectionError::Fold(join) => join.is_panic(),
        _ => false,
    }
}

/// Records a parked event (in the caller's transaction, with the checkpoint past it).
pub async fn park(
    conn: &mut PgConnection,
    projection: &str,
    g: Generation,
    event: &RecordedEvent,
    error: &ProjectionError,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_parked (projection, generation, position, event_id, stream_id, event_type, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (projection, generation, position) DO UPDATE SET error = EXCLUDED.error, replay_requested = false",
    )
    .bind(projection)
    .bind(g)
    .bind(event.position.0 as i64)
    .bind(event.id)
    .bind(&event.stream)
    .bind(&event.event_type)
    .bind(error.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a parked event that a replay applied (in the replay's transaction).
pub async fn unpark(
    conn: &mut PgConnection,
    projection: &str,
    g: Generation,
    position: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM projection_parked WHERE projection = $1 AND generation = $2 AND position = $3",
    )
    .bind(projection)
    .bind(g)
    .bind(position as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Positions of this generation's parked events that an operator asked to replay.
pub async fn replays_requested(
    conn: &mut PgConnection,
    projection: &str,
    g: Generation,
) -> Result<Vec<u64>, sqlx::Error> {
    let positions: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM projection_parked \
         WHERE projection = $1 AND generation = $2 AND replay_requested ORDER BY position",
    )
    .bind(projection)
    .bind(g)
    .fetch_all(&mut *conn)
    .await?;
    Ok(positions.into_iter().map(|p| p as u64).collect())
}

/// A parked event, as the admin API lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ParkedEvent {
    pub generation: Generation,
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub event_type: String,
    pub error: String,
    pub parked_at: chrono::DateTime<chrono::Utc>,
    pub replay_requested: bool,
}

/// The parked events of a projection's live and building generations, oldest first.
pub async fn list(
    pool: &PgPool,
    projection: &str,
    limit: i64,
) -> Result<Vec<ParkedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.generation, p.position, p.event_id, p.stream_id, p.event_type, p.error, p.parked_at, \
                p.replay_requested \
         FROM projection_parked p JOIN projection_generations g USING (projection, generation) \
         WHERE p.projection = $1 AND g.state IN ('live', 'building') \
         ORDER BY p.generation, p.position LIMIT $2",
    )
    .bind(projection)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many events each generation has parked.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, Generation, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT projection, generation, count(*) FROM projection_parked GROUP BY projection, generation",
    )
    .fetch_all(pool)
    .await
}

/// Asks the runners of the projection's live and building generations to apply their parked
/// events again; returns how many were asked for.
pub async fn request_replay(pool: &PgPool, projection: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE projection_parked p SET replay_requested = true FROM projection_generations g \
         WHERE p.projection = $1 AND g.projection = p.projection AND g.generation = p.generation \
           AND g.state IN ('live', 'building')",
    )
    .bind(projection)
    .execute(pool)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_cannot_be_encoded_is_the_events_fault_and_a_lost_connection_is_not() {
        let encode = sqlx::Error::Encode("not a decimal number".into());
        assert!(is_data_error(&ProjectionError::Database(encode)));
        assert!(!is_data_error(&ProjectionError::Database(
            sqlx::Error::PoolTimedOut
        )));
    }
}
