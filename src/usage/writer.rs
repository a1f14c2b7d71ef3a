//! The batched writer: one task, group commits, never drops a row.

use super::record::TraceRecord;
use super::store;
use sea_orm::DatabaseConnection;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

enum Msg {
    Row(Box<TraceRecord>),
    /// Answered once every row enqueued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// The handle the request path uses: enqueueing never waits.
#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::UnboundedSender<Msg>,
}

impl UsageWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(db: DatabaseConnection, window: Duration, batch_rows: usize) -> UsageWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        actix_web::rt::spawn(run(db, rx, window, batch_rows.max(1)));
        UsageWriter { tx }
    }

    /// Queues a trace for the next commit.
    pub fn record(&self, row: TraceRecord) {
        if self.tx.send(Msg::Row(Box::new(row))).is_err() {
            tracing::error!("usage writer is gone: a trace was not recorded");
        }
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

async fn run(
    db: DatabaseConnection,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    window: Duration,
    batch_rows: usize,
) {
    let mut batch: Vec<TraceRecord> = Vec::with_capacity(batch_rows);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        accept(first, &mut batch, &mut acks);
        // Sleep through the window rather than wake for every row: one wake-up per commit keeps
        // the request threads from paying a cross-thread wake-up each. A flush does not wait.
        if acks.is_empty() {
            tokio::time::sleep_until(Instant::now() + window).await;
        }
        loop {
            while batch.len() < batch_rows {
                let Ok(msg) = rx.try_recv() else { break };
                accept(msg, &mut batch, &mut acks);
            }
            let full = batch.len() >= batch_rows;
            write_until_committed(&db, &mut batch).await;
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
            if !full {
                break;
            }
        }
    }
}

fn accept(msg: Msg, batch: &mut Vec<TraceRecord>, acks: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Row(row) => batch.push(*row),
        Msg::Flush(ack) => acks.push(ack),
    }
}

/// Retries a failed commit with back-off: a database outage delays the ledger, never loses it.
async fn write_until_committed(db: &DatabaseConnection, batch: &mut Vec<TraceRecord>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    loop {
        match store::insert_batch(db, batch).await {
            Ok(()) => break,
            Err(err) => {
                tracing::error!(
                    rows = batch.len(),
                    "writing traces failed, retrying in {delay:?}: {err}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    batch.clear();
}
