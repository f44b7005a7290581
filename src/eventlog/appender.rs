//! The Appender actor: group commit in front of the event log.
//!
//! Requests queue in the actor's bounded mailbox. The actor gathers them into one batch, bounded by
//! event count and by a few milliseconds of waiting, appends the batch in one transaction and only
//! then acks every request in it. While a batch is being written the actor takes no new messages,
//! so the next batch fills up in the mailbox, and is written as soon as the last one is done: only
//! a request that finds the actor idle waits for companions. A full mailbox is refused at once
//! ([`submit`] returns [`AppendRejected::Overloaded`]), which the API turns into `503` with
//! `Retry-After`.
//!
//! Guarantees, which make every answer true:
//! - a request is acked `Ok` only after its events committed, all of them in one transaction;
//! - `Overloaded` and `Unavailable` mean none of its events was written, nor will be: the caller's
//!   timeout covers only the wait in the queue. A request withdraws itself when it times out there,
//!   and a withdrawn request never joins a batch; once its batch is taken, the request waits for
//!   the batch's outcome, however long the database takes to give it;
//! - a batch whose commit outcome is unknown (the connection was lost during `COMMIT`, or the
//!   database stopped answering) is looked up in the log before anyone is answered; while the log
//!   cannot tell, the lookup is retried, and only past [`VERIFY_DEADLINE`] do its requests get
//!   `Unknown` (a `500`, never a `503`).
//!
//! Graceful shutdown needs nothing here: the HTTP server drains in-flight requests, each of which
//! waits for its ack, and a pending batch is written within `max_wait`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{EventData, EventLog, EventLogError, ExpectedState, Position, StreamAppend};
use crate::config::AppenderConfig;
use crate::telemetry;

/// How long a batch with an unknown outcome is looked up before its requests are told so: longer
/// than a PostgreSQL restart takes.
pub const VERIFY_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between lookups of a batch with an unknown outcome (retry interval).
const VERIFY_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Why events were not appended, or may not have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendRejected {
    /// 503 with `Retry-After`: the queue is full; nothing was written.
    #[error("the appender queue is full")]
    Overloaded,
    /// 503 with `Retry-After`: the log did not take the batch, or the request timed out in the
    /// queue; nothing was written.
    #[error("the event log is unavailable")]
    Unavailable,
    /// 500: the batch's commit outcome could not be established within [`VERIFY_DEADLINE`].
    #[error("the outcome of the append is unknown")]
    Unknown,
}

/// A request's place: waiting in the queue, taken into a batch, or withdrawn by its caller. Only
/// one of "taken" and "withdrawn" can win, so a caller that gave up is never written later.
#[derive(Default)]
struct Claim(AtomicU8);

impl Claim {
    const QUEUED: u8 = 0;
    const TAKEN: u8 = 1;
    const WITHDRAWN: u8 = 2;

    fn settle(&self, to: u8) -> bool {
        self.0
            .compare_exchange(Self::QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn take(&self) -> bool {
        self.settle(Self::TAKEN)
    }

    fn withdraw(&self) -> bool {
        self.settle(Self::WITHDRAWN)
    }
}

/// One request's events, each with the stream it goes to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendEvents {
    pub events: Vec<(String, EventData)>,
    reply: oneshot::Sender<Result<Position, AppendRejected>>,
    claim: Arc<Claim>,
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
            .filter(|r| r.claim.take())
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
        let ids: Vec<(String, Uuid)> = appends
            .iter()
            .flat_map(|a| a.events.iter().map(|e| (a.stream.clone(), e.id)))
            .collect();

        let log = self.log.clone();
        // The database's own lock and statement timeouts end a stuck append first; this one only
        // catches a connection that stopped answering altogether.
        let limit = self.config.ack_timeout * 3;
        let started = Instant::now();
        let write = async move {
            match tokio::time::timeout(limit, log.append(appends)).await {
                Ok(Ok(results)) => Ok(results.iter().map(|r| r.position).max().unwrap_or_default()),
                Ok(Err(EventLogError::OutcomeUnknown(e))) => {
                    tracing::warn!(error = %e, events, "append outcome unknown; looking it up");
                    verify(&*log, &ids).await
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, events, "append batch failed");
                    Err(AppendRejected::Unavailable)
                }
                Err(_) => {
                    tracing::warn!(events, "append batch timed out; looking it up");
                    verify(&*log, &ids).await
                }
            }
        };
        ctx.wait(write.into_actor(self).map(move |outcome, _, ctx| {
            match outcome {
                Ok(_) => {
                    metrics::counter!(telemetry::HITS_APPENDED).increment(events as u64);
                    metrics::histogram!(telemetry::APPEND_BATCH_SIZE).record(events as f64);
                    metrics::histogram!(telemetry::APPEND_DURATION)
                        .record(started.elapsed().as_secs_f64());
                }
                Err(_) => metrics::counter!(telemetry::APPEND_FAILURES).increment(1),
            }
            for request in batch {
                let _ = request.reply.send(outcome);
            }
            // Requests that queued during this append have waited for one already: they go next,
            // without gathering for `max_wait` (this runs once the mailbox is read).
            ctx.notify(FlushQueued);
        }));
    }
}

/// The outcome of a batch whose commit was lost sight of, from the log itself.
async fn verify(log: &dyn EventLog, ids: &[(String, Uuid)]) -> Result<Position, AppendRejected> {
    let deadline = Instant::now() + VERIFY_DEADLINE;
    loop {
        match log.contains_all(ids).await {
            Ok(true) => return Ok(Position::START),
            Ok(false) => return Err(AppendRejected::Unavailable),
            Err(e) if Instant::now() >= deadline => {
                tracing::error!(error = %e, "the outcome of an append could not be established");
                return Err(AppendRejected::Unknown);
            }
            Err(_) => tokio::time::sleep(VERIFY_RETRY_INTERVAL).await, // retry interval
        }
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
        if msg.claim.0.load(Ordering::Acquire) == Claim::WITHDRAWN {
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

/// Appends the requests that queued while the last batch was written.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushQueued;

impl Handler<FlushQueued> for Appender {
    type Result = ();

    fn handle(&mut self, _: FlushQueued, ctx: &mut Self::Context) {
        if !self.pending.is_empty() {
            self.flush(ctx);
        }
    }
}

/// Sends events to the appender and waits until they are durable. `queue_timeout` bounds the
/// wait for a place in a batch; once the batch is taken, the outcome is awaited.
pub async fn submit(
    appender: &Addr<Appender>,
    events: Vec<(String, EventData)>,
    queue_timeout: Duration,
) -> Result<Position, AppendRejected> {
    let (reply, mut ack) = oneshot::channel();
    let claim = Arc::new(Claim::default());
    let message = AppendEvents {
        events,
        reply,
        claim: claim.clone(),
    };
    if appender.try_send(message).is_err() {
        metrics::counter!(telemetry::APPEND_QUEUE_FULL).increment(1);
        return Err(AppendRejected::Overloaded);
    }
    let outcome = match tokio::time::timeout(queue_timeout, &mut ack).await {
        Ok(outcome) => outcome,
        Err(_) if claim.withdraw() => return Err(AppendRejected::Unavailable),
        // Taken into a batch already: its outcome is the only true answer.
        Err(_) => ack.await,
    };
    // A dropped reply means the actor stopped, with the batch's fate unknown unless it was never
    // taken.
    outcome.unwrap_or_else(|_| {
        if claim.withdraw() {
            Err(AppendRejected::Unavailable)
        } else {
            Err(AppendRejected::Unknown)
        }
    })
}
