//! The trace/ledger writer's bounded queue: a database that cannot keep up slows requests down
//! instead of growing memory, the backlog is visible, and nothing is lost.

use crate::helpers::{Backend, TestApp, eventually, spawn_app_with};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use serde_json::json;
use std::time::Duration;

/// Holds a lock that stops the writer's inserts into `traces` until it is dropped or released.
struct LedgerLock {
    txn: DatabaseTransaction,
    _db: sea_orm::DatabaseConnection,
}

impl LedgerLock {
    async fn take(app: &TestApp) -> LedgerLock {
        let db = sea_orm::Database::connect(app.db.url()).await.expect("db");
        let txn = db.begin().await.expect("begin");
        let lock = match Backend::of_this_run() {
            // Inserts need ROW EXCLUSIVE, which SHARE excludes.
            Backend::Postgres => "LOCK TABLE traces IN SHARE MODE",
            // A write takes SQLite's one writer lock until the transaction ends.
            Backend::Sqlite => "UPDATE brands SET name = name",
        };
        txn.execute_unprepared(lock).await.expect("lock");
        LedgerLock { txn, _db: db }
    }

    async fn release(self) {
        self.txn.commit().await.expect("release");
    }
}

async fn health(app: &TestApp) -> serde_json::Value {
    app.get("/health", None).await.body
}

async fn success_rows(app: &TestApp, credential: &str) -> u64 {
    app.state.usage.flush().await;
    let traces = app
        .get("/api/v1/traces?status=success", Some(credential))
        .await;
    traces.body["total"].as_u64().expect("total")
}

/// An app whose ledger queue holds `queue_rows` traces and commits one at a time, a brand with an
/// OpenAI key and a token, and the ledger locked → (app, credential, token, lock).
async fn with_ledger_locked(
    queue_rows: usize,
    queue_wait_ms: u64,
) -> (TestApp, String, String, LedgerLock) {
    let app = spawn_app_with(|config| {
        config.usage.queue_rows = queue_rows;
        config.usage.batch_rows = 1;
        config.usage.flush_window_ms = 1;
        config.usage.queue_wait_ms = queue_wait_ms;
    })
    .await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-openai-ledger", json!({}))
        .await;
    let lock = LedgerLock::take(&app).await;
    (app, credential, token, lock)
}

#[actix_web::test]
async fn a_full_ledger_queue_holds_new_requests_back_until_a_commit_frees_room() {
    let (app, credential, token, lock) = with_ledger_locked(2, 10_000).await;
    for _ in 0..2 {
        assert_eq!(app.chat(&token, "gpt-4o-mini").await.status, StatusCode::OK);
    }
    // One row is stuck in the writer's blocked commit; the next fills the queue again.
    assert_eq!(app.chat(&token, "gpt-4o-mini").await.status, StatusCode::OK);
    eventually("the backlog visible", Duration::from_secs(10), async || {
        health(&app).await["ledger_backlog"] == 3
    })
    .await;

    let held = app.chat(&token, "gpt-4o-mini");
    let waiting = async {
        eventually(
            "a request waiting for room",
            Duration::from_secs(10),
            async || health(&app).await["ledger_waiting"] == 1,
        )
        .await;
        assert_eq!(
            app.fake.requests().len(),
            3,
            "a waiting request has not reached the provider"
        );
        lock.release().await;
    };
    let (reply, ()) = futures_util::join!(held, waiting);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(success_rows(&app, &credential).await, 4, "nothing lost");
    assert_eq!(health(&app).await["ledger_backlog"], 0);
}

#[actix_web::test]
async fn a_request_that_waits_too_long_for_room_is_refused_with_503() {
    // A second of patience: long enough that only a stuck ledger, not a busy machine, runs out.
    let (app, credential, token, lock) = with_ledger_locked(1, 1_000).await;
    for _ in 0..2 {
        assert_eq!(app.chat(&token, "gpt-4o-mini").await.status, StatusCode::OK);
    }
    let refused = app.chat(&token, "gpt-4o-mini").await;
    refused.assert_error(503, "service_unavailable");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(app.fake.requests().len(), 2, "refused before the provider");
    lock.release().await;
    assert_eq!(
        success_rows(&app, &credential).await,
        2,
        "the queued rows land"
    );
}
