//! The batched writer: one task, group commits, a bounded queue, never drops a row.

use super::ledger;
use super::record::TraceRecord;
use crate::config::UsageConfig;
use crate::error::{ApiError, ErrorCode};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::oneshot;
use tokio::time::Instant;

enum Msg {
    Row(Box<TraceRecord>),
    /// Answered once every row enqueued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// A backlog above this share of the queue is logged (at most every `WARN_EVERY`).
const WARN_AT_PERCENT: usize = 50;
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The handle the request path uses. A request takes a [`LedgerSlot`] when it starts, so a
/// ledger that falls behind slows new requests down (backpressure) instead of growing memory.
#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<Msg>,
    /// Rows handed to the writer and not yet committed.
    backlog: Arc<AtomicUsize>,
    /// Requests waiting for room in a full queue.
    waiting: Arc<AtomicUsize>,
    /// How long one waits before it is refused with 503 (`usage.queue_wait_ms`).
    wait_for_room: Duration,
}

/// Room for one trace in the writer's queue, reserved for a request in flight.
pub struct LedgerSlot {
    permit: OwnedPermit<Msg>,
    backlog: Arc<AtomicUsize>,
}

impl LedgerSlot {
    /// Queues the trace for the next commit; never waits.
    pub fn record(self, row: TraceRecord) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.permit.send(Msg::Row(Box::new(row)));
    }
}

impl UsageWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(db: DatabaseConnection, config: &UsageConfig) -> UsageWriter {
        let (tx, rx) = mpsc::channel(config.queue_rows);
        let backlog = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            db,
            window: config.flush_window(),
            batch_rows: config.batch_rows,
            queue_rows: config.queue_rows,
            backlog: backlog.clone(),
            warned_at: None,
        };
        // On the runtime, not the arbiter's local set: a runtime dropped without a stop (a failing
        // test) then drops the writer inside its context, where a pooled connection can go back.
        tokio::spawn(writer.run(rx));
        UsageWriter {
            tx,
            backlog,
            waiting: Arc::default(),
            wait_for_room: config.queue_wait(),
        }
    }

    /// Room for this request's trace: at once while the writer keeps up; otherwise waits for a
    /// commit to free room, and gives up with 503 `service_unavailable` after `usage.queue_wait_ms`
    /// (a stuck database is then an error, not a hang).
    pub async fn slot(&self) -> Result<LedgerSlot, ApiError> {
        let permit = match self.tx.clone().try_reserve_owned() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(tx)) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let room = tokio::time::timeout(self.wait_for_room, tx.reserve_owned()).await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                match room {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(writer_gone()),
                    Err(_) => return Err(ledger_behind(self.wait_for_room)),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(writer_gone()),
        };
        Ok(LedgerSlot {
            permit,
            backlog: self.backlog.clone(),
        })
    }

    /// Rows recorded and not yet committed.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Requests waiting for room in the queue right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

fn ledger_behind(waited: Duration) -> ApiError {
    tracing::warn!("usage ledger queue full for {waited:?}: refusing a request");
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "the usage ledger is behind (database slow or unreachable); retry shortly",
    )
    .with_retry_after(Duration::from_secs(1))
}

fn writer_gone() -> ApiError {
    ApiError::new(ErrorCode::ServiceUnavailable, "the server is shutting down")
        .with_retry_after(Duration::from_secs(1))
}

struct Writer {
    db: DatabaseConnection,
    window: Duration,
    batch_rows: usize,
    queue_rows: usize,
    backlog: Arc<AtomicUsize>,
    warned_at: Option<Instant>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<TraceRecord> = Vec::with_capacity(self.batch_rows);
        let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            accept(first, &mut batch, &mut acks);
            // Sleep through the window rather than wake for every row: one wake-up per commit
            // keeps the request threads from paying a cross-thread wake-up each. A flush does
            // not wait.
            if acks.is_empty() {
                tokio::time::sleep_until(Instant::now() + self.window).await;
            }
            loop {
                while batch.len() < self.batch_rows {
                    let Ok(msg) = rx.try_recv() else { break };
                    accept(msg, &mut batch, &mut acks);
                }
                let full = batch.len() >= self.batch_rows;
                self.write_until_committed(&mut batch).await;
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
                if !full {
                    break;
                }
            }
        }
    }

    /// Retries a failed commit with back-off: a database outage delays the ledger, never loses it.
    async fn write_until_committed(&mut self, batch: &mut Vec<TraceRecord>) {
        if batch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        while let Err(err) = ledger::insert_batch(&self.db, batch).await {
            tracing::error!(
                rows = batch.len(),
                "writing traces failed, retrying in {delay:?}: {err}"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let before = self.backlog.fetch_sub(batch.len(), Ordering::Relaxed);
        let left = before.saturating_sub(batch.len());
        batch.clear();
        self.warn_when_behind(left);
    }

    fn warn_when_behind(&mut self, backlog: usize) {
        let high = backlog * 100 >= self.queue_rows * WARN_AT_PERCENT;
        let quiet = self.warned_at.is_some_and(|at| at.elapsed() < WARN_EVERY);
        if high && !quiet {
            self.warned_at = Some(Instant::now());
            tracing::warn!(
                backlog,
                queue_rows = self.queue_rows,
                "the usage ledger is falling behind: requests will wait for room when it is full"
            );
        }
    }
}

fn accept(msg: Msg, batch: &mut Vec<TraceRecord>, acks: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Row(row) => batch.push(*row),
        Msg::Flush(ack) => acks.push(ack),
    }
}
