//! Projections fold events from the log into read models. Each projection file has a pure `fold`
//! and a writer that applies the fold's result; the [`runner`] feeds it.
//!
//! Read models live in *generations*: tables named `<base>_g<n>`, served through views named
//! `<base>`. A rebuild builds generation n+1 from position 0 with the current code while
//! generation n serves reads, then switches the views in one transaction (see [`generations`]).

pub mod generations;
pub mod hits;
pub mod imported;
mod leadership;
mod manager;
pub mod merger;
pub mod parked;
pub mod properties;
pub mod runner;
pub mod shared_links;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::domain::DecodeError;
use crate::eventlog::{EventLogError, EventRef, RecordedEvent, StreamFilter};

pub use generations::{wait_for, Generation};
pub use manager::ProjectionManager;
pub use merger::RollupMerger;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Log(#[from] EventLogError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An event the current code cannot read: a bug to fix, never skipped silently.
    #[error("event at position {position} cannot be decoded: {source}")]
    Decode { position: u64, source: DecodeError },
    /// The fold of a batch, which runs off the actor's thread, did not finish (a panic).
    #[error("folding a batch failed: {0}")]
    Fold(#[from] tokio::task::JoinError),
}

pub trait Projection: Send + Sync + 'static {
    /// Stable name, used in the admin API and as the key of its generations.
    fn name(&self) -> &'static str;

    /// The stream categories it reads.
    fn filter(&self) -> StreamFilter;

    /// Base names of its tables. Generation `g` has tables `<base>_g<g>`; a view `<base>` serves
    /// the live generation.
    fn tables(&self) -> &'static [&'static str];

    /// DDL that creates generation `g`'s tables.
    fn ddl(&self, g: Generation) -> Vec<String>;

    /// A writer for one partition (0 when not partitioned) of generation `g`. It may cache;
    /// after any error the runner makes a new one.
    fn writer(&self, g: Generation, partition: i32) -> Box<dyn ProjectionWriter>;

    /// The version of its tables and processing rules. Raise it when either changes: nodes with
    /// the new code rebuild the projection beside the live generation and switch when caught up.
    fn schema_version(&self) -> i32;

    /// Whether its events can be folded by several runners (see [`Projection::partition_key`]).
    fn partitioned(&self) -> bool {
        false
    }

    /// For a partitioned projection: the key that picks the one partition folding `e` (see
    /// [`runner::partition_of`]), or `None` for an event every partition folds.
    fn partition_key(&self, _e: &EventRef<'_>) -> Option<u64> {
        None
    }
}

#[async_trait]
pub trait ProjectionWriter: Send {
    /// Applies a batch inside the runner's transaction.
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;

    /// Applies a batch as [`apply`](Self::apply) does, knowing that `next` (when not empty) is
    /// the batch the runner applies after it: a writer may prepare it meanwhile, on the state
    /// this batch leaves. Whether it did.
    async fn apply_before(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
        _next: &[RecordedEvent],
    ) -> Result<bool, ProjectionError> {
        self.apply(tx, events).await.map(|()| false)
    }
}

/// The table of generation `g` of a read model.
pub fn table(base: &str, g: Generation) -> String {
    format!("{base}_g{g}")
}

/// Every projection footfall runs, with the default settings.
pub fn all() -> Vec<Arc<dyn Projection>> {
    configured(hits::HitsProjection::default())
}

/// Every projection footfall runs, `hits` with these settings.
pub fn configured(hits: hits::HitsProjection) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(properties::PropertiesProjection),
        Arc::new(shared_links::SharedLinksProjection),
        Arc::new(hits),
        Arc::new(imported::ImportedProjection),
    ]
}

pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}

/// Decodes a batch, failing on the first event the code cannot read.
pub fn decode_all(
    events: &[RecordedEvent],
) -> Result<Vec<(u64, crate::domain::Event)>, ProjectionError> {
    events
        .iter()
        .map(|e| {
            e.decode()
                .map(|d| (e.position.0, d))
                .map_err(|source| ProjectionError::Decode {
                    position: e.position.0,
                    source,
                })
        })
        .collect()
}

/// A property event as the log would deliver it, for the folds' tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn recorded_property_event(
    position: u64,
    event: &crate::domain::Event,
) -> RecordedEvent {
    RecordedEvent {
        stream: "property-x".into(),
        revision: 0,
        position: crate::eventlog::Position(position),
        id: uuid::Uuid::nil(),
        event_type: event.type_name().into(),
        schema_version: event.schema_version(),
        data: event.encode().unwrap(),
        recorded_at: chrono::Utc::now(),
    }
}
