//! The EventStoreDB (KurrentDB) adapter of the event log, on the `kurrentdb` crate. Built with the
//! `kurrentdb` cargo feature and chosen with `FOOTFALL_EVENT_LOG=kurrentdb` and
//! `FOOTFALL_KURRENTDB_URL` (e.g. `esdb://127.0.0.1:2113?tls=false`).
//!
//! Mapping onto the port:
//! - positions are `$all` commit positions: ordered, not dense;
//! - each stream append is atomic on its own (EventStoreDB has no multi-stream transaction), so a
//!   multi-stream append that fails part-way leaves the earlier streams written; callers order
//!   their appends so that this is safe (a domain claim before the property it names);
//! - idempotency by event id is EventStoreDB's own;
//! - `contains_all` looks for the ids among each stream's newest events (the ones an append whose
//!   outcome is unknown just wrote), reading backwards at most `RECENT` events a stream;
//! - the schema version travels in the event's custom metadata;
//! - the number of events in the log is not known (`LogHead::events` is `None`);
//! - subscriptions are catch-up subscriptions to `$all` with a stream-prefix filter; a pump task
//!   feeds a channel, so waiting on it can be cut short safely.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, ReadAllOptions,
    ReadStreamOptions, StreamPosition, StreamState, SubscribeToAllOptions, SubscriptionEvent,
    SubscriptionFilter,
};
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    AppendResult, EventLog, EventLogError, ExpectedState, LogHead, Position, RecordedEvent,
    StreamAppend, StreamFilter, Subscription,
};

/// How far back `contains_all` looks in a stream.
const RECENT: usize = 10_000;

#[derive(Clone)]
pub struct KurrentEventLog {
    client: Client,
}

impl KurrentEventLog {
    pub fn connect(url: &str) -> Result<Self, EventLogError> {
        let settings: ClientSettings = url
            .parse()
            .map_err(|e| unavailable(format!("invalid KurrentDB URL: {e:?}")))?;
        let client = Client::new(settings).map_err(|e| unavailable(e.to_string()))?;
        Ok(Self { client })
    }
}

fn unavailable(e: impl std::fmt::Display) -> EventLogError {
    EventLogError::Unavailable(e.to_string().into())
}

fn error(stream: &str, expected: ExpectedState, e: kurrentdb::Error) -> EventLogError {
    match e {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => {
            EventLogError::WrongExpectedVersion {
                stream: stream.to_owned(),
                expected,
                actual: match current {
                    CurrentRevision::Current(r) => Some(r),
                    CurrentRevision::NoStream => None,
                },
            }
        }
        other => unavailable(other),
    }
}

fn esdb_position(p: Position) -> kurrentdb::Position {
    kurrentdb::Position {
        commit: p.0,
        prepare: p.0,
    }
}

fn esdb_filter(filter: &StreamFilter) -> Option<SubscriptionFilter> {
    if filter.categories.is_empty() {
        return None;
    }
    let mut f = SubscriptionFilter::on_stream_name();
    for c in &filter.categories {
        f = f.add_prefix(format!("{c}-"));
    }
    Some(f)
}

fn recorded(e: &kurrentdb::RecordedEvent) -> RecordedEvent {
    let schema_version = serde_json::from_slice::<serde_json::Value>(&e.custom_metadata)
        .ok()
        .and_then(|m| m.get("schema_version").and_then(serde_json::Value::as_u64))
        .unwrap_or(1) as u16;
    RecordedEvent {
        stream: e.stream_id().to_owned(),
        revision: e.revision,
        position: Position(e.position.commit),
        id: e.id,
        event_type: e.event_type.clone(),
        schema_version,
        data: e.data.to_vec(),
        recorded_at: e.created,
    }
}

#[async_trait]
impl EventLog for KurrentEventLog {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Vec<AppendResult>, EventLogError> {
        let mut results = Vec::with_capacity(appends.len());
        for append in appends {
            let state = match append.expected {
                ExpectedState::Any => StreamState::Any,
                ExpectedState::NoStream => StreamState::NoStream,
                ExpectedState::StreamExists => StreamState::StreamExists,
                ExpectedState::Revision(r) => StreamState::StreamRevision(r),
            };
            let events: Vec<kurrentdb::EventData> = append
                .events
                .iter()
                .map(|e| {
                    kurrentdb::EventData::binary(&e.event_type, Bytes::from(e.data.clone()))
                        .id(e.id)
                        .metadata(Bytes::from(
                            json!({"schema_version": e.schema_version}).to_string(),
                        ))
                })
                .collect();
            let options = AppendToStreamOptions::default().stream_state(state);
            let written = self
                .client
                .append_to_stream(append.stream.as_str(), &options, events)
                .await
                .map_err(|e| error(&append.stream, append.expected, e))?;
            results.push(AppendResult {
                stream: append.stream,
                revision: Some(written.next_expected_version),
                position: Position(written.position.commit),
            });
        }
        Ok(results)
    }

    async fn contains_all(&self, events: &[(String, uuid::Uuid)]) -> Result<bool, EventLogError> {
        let mut by_stream: std::collections::HashMap<&str, std::collections::HashSet<uuid::Uuid>> =
            std::collections::HashMap::new();
        for (stream, id) in events {
            by_stream.entry(stream.as_str()).or_default().insert(*id);
        }
        for (stream, mut wanted) in by_stream {
            let options = ReadStreamOptions::default()
                .backwards()
                .position(StreamPosition::End)
                .max_count(RECENT);
            let mut read = match self.client.read_stream(stream, &options).await {
                Ok(r) => r,
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(false),
                Err(e) => return Err(unavailable(e)),
            };
            while !wanted.is_empty() {
                match read.next().await {
                    Ok(Some(e)) => {
                        if let Some(e) = e.event.as_ref() {
                            wanted.remove(&e.id);
                        }
                    }
                    Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(false),
                    Err(e) => return Err(unavailable(e)),
                }
            }
        }
        Ok(true)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventLogError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from))
            .max_count(limit);
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(r) => r,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(vec![]),
            Err(e) => return Err(unavailable(e)),
        };
        let mut out = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(e)) => out.extend(e.event.as_ref().map(recorded)),
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(out),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
        filter: &StreamFilter,
    ) -> Result<Vec<RecordedEvent>, EventLogError> {
        let start = if after == Position::START {
            StreamPosition::Start
        } else {
            StreamPosition::Position(esdb_position(after))
        };
        let mut options = ReadAllOptions::default()
            .forwards()
            .position(start)
            .max_count(limit + 1);
        if let Some(f) = esdb_filter(filter) {
            options = options.filter(f);
        }
        let mut read = self.client.read_all(&options).await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(e) = read.next().await.map_err(unavailable)? {
            let Some(event) = e.event.as_ref() else {
                continue;
            };
            // `$all` reads include the start position; the port's `after` is exclusive. System
            // streams are never the application's.
            if event.position.commit <= after.0 && after != Position::START
                || event.stream_id().starts_with('$')
            {
                continue;
            }
            let event = recorded(event);
            if filter.keeps(&event.as_ref()) {
                out.push(event);
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    async fn head(&self) -> Result<LogHead, EventLogError> {
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(1);
        let mut read = self.client.read_all(&options).await.map_err(unavailable)?;
        let position = match read.next().await.map_err(unavailable)? {
            Some(e) => e.event.as_ref().map_or(0, |e| e.position.commit),
            None => 0,
        };
        Ok(LogHead {
            position: Position(position),
            events: None,
        })
    }

    async fn subscribe(
        &self,
        after: Position,
        filter: StreamFilter,
        batch_size: usize,
    ) -> Result<Box<dyn Subscription>, EventLogError> {
        let start = if after == Position::START {
            StreamPosition::Start
        } else {
            StreamPosition::Position(esdb_position(after))
        };
        let mut options = SubscribeToAllOptions::default().position(start);
        if let Some(f) = esdb_filter(&filter) {
            options = options.filter(f);
        }
        let mut subscription = self.client.subscribe_to_all(&options).await;
        let (tx, rx) = mpsc::channel(batch_size.max(1) * 2);
        tokio::spawn(async move {
            // The server filters by category; the selection is applied here, and the events it
            // passes over still move the subscription's position.
            let kept = |e: RecordedEvent| {
                if filter.keeps(&e.as_ref()) {
                    Pumped::Event(e)
                } else {
                    Pumped::Passed(e.position)
                }
            };
            loop {
                let item = match subscription.next_subscription_event().await {
                    Ok(SubscriptionEvent::EventAppeared(e)) => match e.event.as_ref() {
                        Some(ev)
                            if !ev.stream_id().starts_with('$') && ev.position.commit > after.0 =>
                        {
                            Ok(kept(recorded(ev)))
                        }
                        _ => continue,
                    },
                    Ok(SubscriptionEvent::Checkpoint(p)) => Ok(Pumped::Passed(Position(p.commit))),
                    Ok(_) => continue,
                    Err(e) => Err(e.to_string()),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Box::new(KurrentSubscription {
            rx,
            after,
            batch_size: batch_size.max(1),
        }))
    }
}

enum Pumped {
    Event(RecordedEvent),
    /// The server has filtered the log up to here.
    Passed(Position),
}

struct KurrentSubscription {
    rx: mpsc::Receiver<Result<Pumped, String>>,
    after: Position,
    batch_size: usize,
}

impl KurrentSubscription {
    fn take(
        &mut self,
        item: Result<Pumped, String>,
        out: &mut Vec<RecordedEvent>,
    ) -> Result<(), EventLogError> {
        match item.map_err(unavailable)? {
            Pumped::Event(e) => {
                self.after = e.position;
                out.push(e);
            }
            Pumped::Passed(p) => self.after = self.after.max(p),
        }
        Ok(())
    }
}

#[async_trait]
impl Subscription for KurrentSubscription {
    async fn next(&mut self, max_wait: Duration) -> Result<Vec<RecordedEvent>, EventLogError> {
        let mut out = Vec::new();
        match tokio::time::timeout(max_wait, self.rx.recv()).await {
            Err(_) => return Ok(out),
            Ok(None) => return Err(unavailable("the subscription ended")),
            Ok(Some(item)) => self.take(item, &mut out)?,
        }
        while out.len() < self.batch_size {
            match self.rx.try_recv() {
                Ok(item) => self.take(item, &mut out)?,
                Err(_) => break,
            }
        }
        Ok(out)
    }

    fn position(&self) -> Position {
        self.after
    }
}
