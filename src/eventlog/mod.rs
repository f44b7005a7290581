//! The event-log port, modelled on EventStoreDB: streams with revisions, a global `$all` order with
//! positions, appends with an expected stream state, idempotency by event id, and catch-up
//! subscriptions filtered by stream prefix. Adapters: [`postgres`] (the default).

pub mod appender;
#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{DecodeError, Event};

/// A position in the global order (`$all`). Positions start at 1; [`Position::START`] is "before
/// the first event", so reading from it returns everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);
}

/// What the writer expects of a stream before appending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedState {
    Any,
    NoStream,
    StreamExists,
    /// The revision of the stream's last event (revisions start at 0).
    Revision(u64),
}

/// An event ready to be appended.
#[derive(Debug, Clone)]
pub struct EventData {
    /// Appending an id the log already holds is a no-op (idempotent retries).
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    /// The encoded event ([`Event::encode`]).
    pub data: Vec<u8>,
}

impl EventData {
    pub fn from_event(id: Uuid, event: &Event) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id,
            event_type: event.type_name().to_owned(),
            schema_version: event.schema_version(),
            data: event.encode()?,
        })
    }

    /// A new event with a time-ordered id.
    pub fn new(event: &Event) -> Result<Self, serde_json::Error> {
        Self::from_event(Uuid::now_v7(), event)
    }
}

/// Events to append to one stream.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedState,
    pub events: Vec<EventData>,
}

/// Where an append left a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub stream: String,
    /// Revision of the stream's last event after the append (`None`: the stream has no events).
    pub revision: Option<u64>,
    /// Global position of the last event written in this append, or of the log head when every
    /// event was already present (an idempotent retry).
    pub position: Position,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    /// The encoded event, as its schema version has it.
    pub data: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Decodes (and upcasts) the stored data into a domain event.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        self.as_ref().decode()
    }

    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            stream: &self.stream,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: &self.data,
        }
    }
}

/// A stored event's stream, type and data, borrowed from where the log keeps them: what a
/// [`StreamFilter`]'s selection looks at before the event is copied out.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub stream: &'a str,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub data: &'a [u8],
}

impl EventRef<'_> {
    /// Decodes (and upcasts) the data into a domain event.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        Event::decode(self.event_type, self.schema_version, self.data)
    }
}

/// Which events of its streams a reader keeps: a partition of a projection's events.
pub type Selection = Arc<dyn Fn(&EventRef<'_>) -> bool + Send + Sync>;

/// Which events a read of `$all` or a subscription sees: those of the streams whose id starts
/// with `<category>-` for one of the categories (empty means every stream) that its selection, if
/// it has one, keeps. The adapter applies the selection to each event where it is stored, before
/// copying it out: a projection's partition reads the whole log but materialises only its share.
/// A read's `limit` counts the events it keeps; a subscription's position passes the others.
#[derive(Clone, Default)]
pub struct StreamFilter {
    pub categories: Vec<String>,
    pub selection: Option<Selection>,
}

impl std::fmt::Debug for StreamFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFilter")
            .field("categories", &self.categories)
            .field("selection", &self.selection.is_some())
            .finish()
    }
}

impl StreamFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn categories(categories: &[&str]) -> Self {
        Self {
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            selection: None,
        }
    }

    /// The same streams, keeping only the events `selection` keeps.
    pub fn selecting(self, selection: Selection) -> Self {
        Self {
            selection: Some(selection),
            ..self
        }
    }

    /// Whether a read keeps this event: its stream matches and the selection keeps it.
    pub fn keeps(&self, e: &EventRef<'_>) -> bool {
        self.matches(e.stream) && self.selection.as_ref().is_none_or(|keep| keep(e))
    }

    pub fn matches(&self, stream: &str) -> bool {
        self.categories.is_empty()
            || self.categories.iter().any(|c| {
                stream.len() > c.len()
                    && stream.starts_with(c.as_str())
                    && stream.as_bytes()[c.len()] == b'-'
            })
    }
}

/// The log's head: the last position written and, where the adapter knows it cheaply, how many
/// events the log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogHead {
    pub position: Position,
    pub events: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// 409: the stream is not in the state the writer expected.
    #[error(
        "stream `{stream}` is not in the expected state {expected:?} (its revision is {actual:?})"
    )]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedState,
        actual: Option<u64>,
    },
    /// 400: a stream name the log cannot hold.
    #[error("invalid stream name `{0}`")]
    InvalidStream(String),
    /// 503: the log cannot be reached or did not answer in time; the append did not happen.
    #[error("event log unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 500: the connection was lost while the append committed, so it may or may not have
    /// happened. A writer finds out with [`EventLog::contains_all`] before it answers anyone.
    #[error("the outcome of the append is unknown")]
    OutcomeUnknown(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The port. Implementations must keep `$all` gap-free: a reader that has seen position `p` never
/// later sees a new event below `p`.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends to one or more streams. On the PostgreSQL adapter the whole call is one atomic
    /// commit; on EventStoreDB each stream append is atomic on its own.
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, EventLogError>;

    /// Up to `limit` events of a stream, from revision `from` (inclusive), in order.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventLogError>;

    /// Up to `limit` events after position `after` (exclusive), in global order.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
        filter: &StreamFilter,
    ) -> Result<Vec<RecordedEvent>, EventLogError>;

    async fn head(&self) -> Result<LogHead, EventLogError>;

    /// Whether every one of these events (stream, id) is in the log, answered only once any append
    /// still in flight has finished: how a writer learns the outcome of an append whose commit it
    /// lost sight of.
    async fn contains_all(&self, events: &[(String, Uuid)]) -> Result<bool, EventLogError>;

    /// A catch-up subscription to `$all` after `after`: it reads history, then follows live appends.
    async fn subscribe(
        &self,
        after: Position,
        filter: StreamFilter,
        batch_size: usize,
    ) -> Result<Box<dyn Subscription>, EventLogError>;
}

#[async_trait]
pub trait Subscription: Send {
    /// The next batch in global order. While caught up it waits for new events, at most `max_wait`,
    /// and then returns an empty batch.
    async fn next(&mut self, max_wait: Duration) -> Result<Vec<RecordedEvent>, EventLogError>;

    /// Waits, at most `max_wait`, until the log may hold `events` more events than the
    /// subscription has read, and reads nothing: a reader gathering a batch while events trickle
    /// in reads once, after this, instead of at every append. It ends early once that many may be
    /// there. By default it waits out `max_wait` (an adapter that pushes events buffers them).
    async fn linger(&mut self, events: usize, max_wait: Duration) {
        let _ = events;
        tokio::time::sleep(max_wait).await;
    }

    /// How far the subscription has read: the last event returned or, once caught up, the head
    /// of the log (events of other streams in between were passed over).
    fn position(&self) -> Position;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_whole_categories() {
        let f = StreamFilter::categories(&["hits"]);
        assert!(f.matches("hits-123"));
        assert!(!f.matches("hitsx-123"));
        assert!(!f.matches("hits"));
        assert!(!f.matches("property-1"));
        assert!(StreamFilter::all().matches("anything"));
    }
}
