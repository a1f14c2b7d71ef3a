//! One way to run a scrape or crawl for every endpoint: the crawl runs on its own task, its pages
//! are recorded in the history as they finish (in small batches), and, for a caller that waits
//! (sync or NDJSON), forwarded as they finish. A caller that goes away stops the crawl; an async
//! job has no caller and runs until it ends, is cancelled or hits its deadline.

use super::history::{self, NewCrawl};
use super::options::Mode;
use crate::spidergo::crawl::run::{PageOut, Plan, StopReason, Summary, crawl};
use crate::spidergo::error::GoError;
use crate::state::AppState;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What a waiting caller receives.
pub enum Event {
    Page(Box<PageOut>),
    Done(Summary),
}

/// Who asked, for what.
pub struct Request {
    pub user_id: i32,
    pub key_id: Option<String>,
    pub mode: Mode,
    pub options: String,
    pub plan: Plan,
}

/// Pages recorded per history write at most.
const BATCH: usize = 32;
/// How often a running crawl stamps its row (and a job learns of a cancel made through another
/// replica).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// Records the crawl's row under `crid`, then starts it. Returns the CRID and, when `wait`, the
/// events.
pub async fn start(
    state: &AppState,
    crid: String,
    request: Request,
    wait: bool,
    cancel: watch::Receiver<bool>,
) -> Result<(String, Option<mpsc::Receiver<Event>>), GoError> {
    let new = NewCrawl {
        id: &crid,
        user_id: request.user_id,
        key_id: request.key_id.as_deref(),
        kind: request.mode.as_str(),
        url: request.plan.seed.as_str(),
        options: request.options,
        owner: &state.spidergo.instance,
    };
    history::start(&state.db, new, state.clock.now()).await?;
    let (events, receiver) = if wait {
        let (tx, rx) = mpsc::channel(64);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (state, id) = (state.clone(), crid.clone());
    tokio::spawn(async move {
        drive(&state, &id, request.plan, events, cancel).await;
        state.spidergo.jobs.remove(&id);
    });
    Ok((crid, receiver))
}

async fn drive(
    state: &AppState,
    crid: &str,
    plan: Plan,
    mut events: Option<mpsc::Sender<Event>>,
    cancel: watch::Receiver<bool>,
) {
    let go = state.spidergo.clone();
    let (pages_tx, mut pages) = mpsc::channel::<PageOut>(BATCH);
    let crawling = crawl(&go, plan, pages_tx, cancel);
    let recording = async {
        let mut batch = Vec::with_capacity(BATCH);
        let (mut seq, mut totals) = (0i32, (0i32, 0i64, 0i64));
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            let page = tokio::select! {
                page = pages.recv() => page,
                // Every crawl, sync ones too: a stale stamp is how a dead process's crawls
                // are recognised.
                _ = beat.tick() => {
                    heartbeat(state, crid).await;
                    continue;
                }
            };
            let Some(page) = page else { break };
            totals = (
                totals.0 + 1,
                totals.1 + page.response_time_ms as i64,
                totals.2 + page.payload_size as i64,
            );
            if let Some(to) = &events
                && to.send(Event::Page(Box::new(page.clone()))).await.is_err()
            {
                // The caller left: stop the crawl (its next send fails) and keep nothing more.
                events = None;
                break;
            }
            batch.push(page);
            if batch.len() == BATCH || pages.is_empty() {
                record(state, crid, seq, &batch, totals).await;
                seq += batch.len() as i32;
                batch.clear();
            }
        }
        drop(pages);
        record(state, crid, seq, &batch, totals).await;
    };
    let (summary, ()) = tokio::join!(crawling, recording);
    let status = if summary.stop == StopReason::Cancelled {
        history::CANCELLED
    } else {
        history::COMPLETED
    };
    if let Err(err) = history::finish(&state.db, crid, &summary, status, state.clock.now()).await {
        tracing::error!(crid, "spidergo: recording the end of a crawl: {err}");
    }
    if let Some(to) = events {
        let _ = to.send(Event::Done(summary)).await;
    }
}

async fn record(
    state: &AppState,
    crid: &str,
    seq: i32,
    batch: &[PageOut],
    totals: (i32, i64, i64),
) {
    let chars = state.spidergo.config.history_content_chars;
    if let Err(err) = history::append(&state.db, crid, seq, batch, totals, chars).await {
        tracing::error!(
            crid,
            pages = batch.len(),
            "spidergo: recording crawled pages: {err}"
        );
    }
}

/// Stamps a job as alive; a cancel asked through another replica is passed on here.
async fn heartbeat(state: &AppState, crid: &str) {
    match history::heartbeat(&state.db, crid, state.clock.now()).await {
        Ok(Some(status)) if status == history::CANCELLING => {
            state.spidergo.jobs.cancel(crid);
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(crid, "spidergo: stamping a running job: {err}"),
    }
}
