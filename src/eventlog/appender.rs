//! The Appender actor: group commit in front of the event log.
//!
//! Requests queue in the actor's bounded mailbox. The actor gathers them into one batch, bounded by
//! event count and by a few milliseconds of waiting, appends the batch in one transaction and only
//! then acks every request in it. While a batch is being written the actor takes no new messages,
//! so the next batch fills up in the mailbox. A full mailbox is refused at once ([`submit`] returns
//! [`AppendRejected::Overloaded`]), which the API turns into `503` with `Retry-After`.
//!
//! Guarantees: a request is acked `Ok` only after its events committed; a failed batch fails every
//! request in it (nothing acked, nothing half-written); a request whose caller already gave up is
//! left out of the next batch, so a `503` for a timeout is not followed by a silent write.
//!
//! Graceful shutdown needs nothing here: the HTTP server drains in-flight requests, each of which
//! waits for its ack, and a pending batch is written within `max_wait`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{EventData, EventLog, ExpectedState, Position, StreamAppend};
use crate::config::AppenderConfig;
use crate::telemetry;

/// Why events were not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendRejected {
    /// 503 with `Retry-After`: the queue is full.
    #[error("the appender queue is full")]
    Overloaded,
    /// 503: the log did not take the batch (database down or too slow).
    #[error("the event log is unavailable")]
    Unavailable,
}

/// One request's events, each with the stream it goes to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendEvents {
    pub events: Vec<(String, EventData)>,
    pub reply: oneshot::Sender<Result<Position, AppendRejected>>,
}

pub struct Appender {
    log: Arc<dyn EventLog>,
    config: AppenderConfig,
    pending: Vec<AppendEvents>,
    pending_events: usize,
    timer: Option<SpawnHandle>,
}

impl Appender {
    pub fn new(log: Arc<dyn EventLog>, config: AppenderConfig) -> Self {
        Self {
            log,
            config,
            pending: Vec::new(),
            pending_events: 0,
            timer: None,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.pending_events = 0;
        let batch: Vec<AppendEvents> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|r| !r.reply.is_closed())
            .collect();
        if batch.is_empty() {
            return;
        }

        // Group by stream, keeping each stream's events in arrival order.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut appends: Vec<StreamAppend> = Vec::new();
        for (stream, event) in batch.iter().flat_map(|r| r.events.iter()) {
            let i = *index.entry(stream.as_str()).or_insert_with(|| {
                appends.push(StreamAppend {
                    stream: stream.clone(),
                    expected: ExpectedState::Any,
                    events: Vec::new(),
                });
                appends.len() - 1
            });
            appends[i].events.push(event.clone());
        }
        let events: usize = appends.iter().map(|a| a.events.len()).sum();

        let log = self.log.clone();
        // Longer than any caller waits, so a hung database cannot stall the actor for good.
        let limit = self.config.ack_timeout * 2;
        let started = Instant::now();
        let write = async move { tokio::time::timeout(limit, log.append(appends)).await };
        ctx.wait(write.into_actor(self).map(move |result, _, _| {
            let outcome = match result {
                Ok(Ok(results)) => {
                    let position = results.iter().map(|r| r.position).max().unwrap_or_default();
                    metrics::counter!(telemetry::HITS_APPENDED).increment(events as u64);
                    metrics::histogram!(telemetry::APPEND_BATCH_SIZE).record(events as f64);
                    metrics::histogram!(telemetry::APPEND_DURATION)
                        .record(started.elapsed().as_secs_f64());
                    Ok(position)
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, events, "append batch failed");
                    metrics::counter!(telemetry::APPEND_FAILURES).increment(1);
                    Err(AppendRejected::Unavailable)
                }
                Err(_) => {
                    tracing::error!(events, "append batch timed out");
                    metrics::counter!(telemetry::APPEND_FAILURES).increment(1);
                    Err(AppendRejected::Unavailable)
                }
            };
            for request in batch {
                let _ = request.reply.send(outcome);
            }
        }));
    }
}

impl Actor for Appender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.queue_capacity);
    }
}

impl Handler<AppendEvents> for Appender {
    type Result = ();

    fn handle(&mut self, msg: AppendEvents, ctx: &mut Self::Context) {
        if msg.reply.is_closed() {
            return;
        }
        self.pending_events += msg.events.len();
        self.pending.push(msg);
        if self.pending_events >= self.config.max_batch {
            self.flush(ctx);
        } else if self.timer.is_none() {
            self.timer = Some(ctx.run_later(self.config.max_wait, |act, ctx| {
                act.timer = None;
                act.flush(ctx);
            }));
        }
    }
}

/// Sends events to the appender and waits until they are durable, at most `timeout`.
pub async fn submit(
    appender: &Addr<Appender>,
    events: Vec<(String, EventData)>,
    timeout: Duration,
) -> Result<Position, AppendRejected> {
    let (reply, ack) = oneshot::channel();
    if appender.try_send(AppendEvents { events, reply }).is_err() {
        metrics::counter!(telemetry::APPEND_QUEUE_FULL).increment(1);
        return Err(AppendRejected::Overloaded);
    }
    match tokio::time::timeout(timeout, ack).await {
        Ok(Ok(outcome)) => outcome,
        // The actor went away, or the wait timed out (dropping `ack` withdraws the request if its
        // batch has not started yet).
        Ok(Err(_)) | Err(_) => Err(AppendRejected::Unavailable),
    }
}
