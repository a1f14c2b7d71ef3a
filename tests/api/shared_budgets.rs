//! A hard budget shared by three replicas on one PostgreSQL database: each spends from a lease
//! it granted itself out of the database (`limits/lease.rs`), so together they never pass the
//! cap, even when one of them dies holding a lease. Runs on PostgreSQL whatever the run's
//! backend (a SQLite file is one node).

use crate::fake_provider::Behaviour;
use crate::helpers::{PostgresDb, Reply, TestApp, TestDb, VAULT_KEY, eventually, spawn_app_on};
use crate::process;
use crate::relay::Relay;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
const KEY: &str = "sk-openai-shared-budget";
/// The cap, in USD: a few dozen requests' worst cases.
const CAP: f64 = 0.0005;

fn body() -> Value {
    json!({ "model": MODEL, "max_tokens": 10, "messages": [{ "role": "user", "content": "count to ten, please" }] })
}

/// A brand with a key the fake bills honestly, and a token with a hard cap of `cap` USD:
/// (token, credential, token id).
async fn capped_token(app: &TestApp, cap: f64) -> (String, String, i64) {
    app.fake.set(
        KEY,
        Behaviour::Reports {
            prompt_tokens: None,
            completion_tokens: None,
        },
    );
    let (credential, token, id) = app.brand_with_capped_token(KEY, cap).await;
    (token, credential, id)
}

/// Three replicas and `capped_token` with the cap `CAP`.
async fn three_replicas_and_a_capped_token() -> ([TestApp; 3], String, String, i64) {
    let a = spawn_app_on(TestDb::Postgres(PostgresDb::create().await), |_| {}).await;
    let (b, c) = (a.replica().await, a.replica().await);
    let (token, credential, id) = capped_token(&a, CAP).await;
    ([a, b, c], token, credential, id)
}

/// `n` concurrent chats over `apps`, round-robin.
async fn spread(apps: &[&TestApp], token: &str, n: usize) -> Vec<Reply> {
    let chats = (0..n)
        .map(|i| apps[i % apps.len()].post("/api/gate/v1/chat/completions", Some(token), body()));
    futures_util::future::join_all(chats).await
}

fn served(replies: &[Reply]) -> usize {
    let refused = |r: &&Reply| r.status == StatusCode::PAYMENT_REQUIRED;
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::OK || refused(&r)),
        "only served or refused for the budget: {:?}",
        replies
            .iter()
            .find(|r| r.status != StatusCode::OK && !refused(r))
            .map(|r| (&r.status, &r.body))
    );
    replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count()
}

fn pool(app: &TestApp) -> &PgPool {
    app.state.db.get_postgres_connection_pool()
}

/// The ledger's spend for the token (every replica's rows written first), in nano-dollars.
async fn ledger_spend(apps: &[&TestApp], token_id: i64) -> i64 {
    for app in apps {
        app.state.usage.flush().await;
    }
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM token_usage_hourly \
         WHERE agent_key_id = $1",
    )
    .bind(token_id as i32)
    .fetch_one(pool(apps[0]))
    .await
    .expect("ledger spend")
}

/// The leases' account: what they spent and what they still lease.
async fn lease_account(app: &TestApp, token_id: i64) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(spent_nanos), 0) AS BIGINT), \
         CAST((SELECT COALESCE(SUM(granted_nanos), 0) FROM budget_leases WHERE agent_key_id = $1) AS BIGINT), \
         CAST((SELECT COUNT(*) FROM budget_leases WHERE agent_key_id = $1) AS BIGINT) \
         FROM token_budgets WHERE agent_key_id = $1",
    )
    .bind(token_id as i32)
    .fetch_one(pool(app))
    .await
    .expect("lease account")
}

fn cap_nanos() -> i64 {
    (CAP * 1e9) as i64
}

#[actix_web::test]
async fn two_hundred_requests_over_three_replicas_never_pass_a_hard_cap() {
    let ([a, b, c], token, _, token_id) = three_replicas_and_a_capped_token().await;
    let replies = spread(&[&a, &b, &c], &token, 200).await;
    let served = served(&replies);
    let spent = ledger_spend(&[&a, &b, &c], token_id).await;
    assert!(
        spent <= cap_nanos(),
        "spent {spent} nanos of {}",
        cap_nanos()
    );
    // Each hold is about twice an honest request's cost, and the leases near the cap are one
    // request each: well over a third of the cap is spent before the refusals begin.
    assert!(
        served > 0 && spent > cap_nanos() / 3,
        "the cap is used, not stranded: {spent} by {served} requests"
    );
    assert_eq!(
        a.fake.requests().len(),
        served,
        "a refused request reaches no provider"
    );
    let (leases_spent, leased, _) = lease_account(&a, token_id).await;
    assert!(
        leases_spent + leased <= cap_nanos(),
        "spent {leases_spent} + leased {leased} within the cap"
    );

    // Stopped replicas give their leases back, with their spend reported: at most A's lease is
    // left, and every nano-dollar spent was within a lease.
    drop((b.stop().await, c.stop().await));
    let (leases_spent, leased, leases) = lease_account(&a, token_id).await;
    assert!(leases <= 1, "{leases} leases left after B and C stopped");
    assert!(
        spent <= leases_spent + leased && leases_spent + leased <= cap_nanos(),
        "ledger {spent} within spent {leases_spent} + leased {leased} within the cap"
    );
}

#[actix_web::test]
async fn a_replica_that_dies_holding_a_lease_forfeits_it_and_the_cap_still_holds() {
    let ([a, b, c], token, credential, token_id) = three_replicas_and_a_capped_token().await;
    // B takes a lease and spends some of it, then dies without giving it back.
    let first = spread(&[&b], &token, 3).await;
    assert_eq!(served(&first), 3);
    let (_, leased_before, leases) = lease_account(&a, token_id).await;
    assert!(leased_before > 0 && leases == 1, "B holds a lease");
    // B dies while A and C are under load: its lease still counts, so they may be refused.
    let survivors = [&a, &c];
    let (during, ()) = futures_util::join!(spread(&survivors, &token, 100), b.crash());
    served(&during);
    eventually(
        "B is gone from the registry",
        Duration::from_secs(10),
        async || {
            let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM replicas")
                .fetch_one(pool(&a))
                .await
                .expect("replicas");
            live == 2
        },
    )
    .await;

    // A and C spend the rest: B's lease counts as spent, so the cap holds with it.
    let rest = spread(&[&a, &c], &token, 200).await;
    assert!(
        served(&during) + served(&rest) > 0,
        "the room B did not hold is used"
    );
    let spent = ledger_spend(&[&a, &c], token_id).await;
    assert!(spent <= cap_nanos(), "spent {spent} of {}", cap_nanos());
    let (leases_spent, leased, _) = lease_account(&a, token_id).await;
    assert!(
        leases_spent + leased <= cap_nanos(),
        "spent {leases_spent} + leased {leased} within the cap"
    );
    assert!(
        leases_spent >= leased_before,
        "B's whole lease was counted as spent: {leases_spent} < {leased_before}"
    );
    let refused = a
        .post("/api/gate/v1/chat/completions", Some(&token), body())
        .await;
    refused.assert_error(402, "budget_exceeded");
    assert!(refused.message().contains("hard cap"), "{}", refused.body);
    drop(credential);
    drop(c);
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    let after_user = &url[url.find('@').map_or(0, |at| at + 1)..];
    after_user[..after_user.find('/').unwrap_or(after_user.len())].to_owned()
}

#[actix_web::test]
async fn with_the_database_away_a_replica_spends_only_its_lease_then_answers_503() {
    let db = PostgresDb::create().await;
    let upstream = host_port(db.url());
    let relay = Relay::to(&upstream).await;
    let app = spawn_app_on(
        TestDb::SharedWith(relay.in_front_of(db.url(), &upstream)),
        |_| {},
    )
    .await;
    let (token, _, _) = capped_token(&app, 0.01).await;
    let chat = |max_tokens: u32| {
        let body = json!({ "model": MODEL, "max_tokens": max_tokens, "messages": [{ "role": "user", "content": "hi" }] });
        app.post("/api/gate/v1/chat/completions", Some(&token), body)
    };
    assert_eq!(
        chat(10).await.status,
        StatusCode::OK,
        "the first request takes a lease"
    );

    relay.cut();
    for _ in 0..5 {
        let reply = chat(10).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "within the lease: {}",
            reply.body
        );
    }
    // A request the lease cannot pay for needs the database to lease more.
    chat(16_000).await.assert_error(503, "service_unavailable");
    // And once the replica cannot confirm its caches are current, nothing is served.
    let replicas = app.state.replicas.clone().expect("PostgreSQL replicas");
    eventually(
        "the replica knows it lost the database",
        Duration::from_secs(10),
        async || !replicas.is_current(),
    )
    .await;
    chat(10).await.assert_error(503, "service_unavailable");

    relay.mend();
    eventually(
        "the replica follows the database again",
        Duration::from_secs(10),
        async || replicas.is_current(),
    )
    .await;
    // Every request served while the database was away is in the ledger (the refused one is
    // traced too, as an error).
    let served_rows = async || {
        app.state.usage.flush().await;
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM traces WHERE http_status = 200")
            .fetch_one(pool(&app))
            .await
            .unwrap_or(0);
        rows == 6
    };
    eventually("the ledger caught up", Duration::from_secs(10), served_rows).await;
    assert_eq!(chat(10).await.status, StatusCode::OK, "served again");
}

#[actix_web::test]
async fn a_replica_killed_mid_load_forfeits_its_lease_once_it_is_no_longer_seen() {
    let a = spawn_app_on(TestDb::Postgres(PostgresDb::create().await), |_| {}).await;
    let (token, _, token_id) = capped_token(&a, CAP).await;
    // B is the real binary, so it can be killed for real (SIGKILL: nothing of it runs after).
    let mut command = process::command(&a.db.url(), "admin-of-b", &a.fake.url);
    command
        .env("SPIDERGATE_VAULT_KEY", VAULT_KEY)
        .env("RUST_LOG", "warn,spidergate=info");
    let (mut b, port, _lines) = process::start_command(command);
    let b_chat = || {
        a.client
            .post(format!(
                "http://127.0.0.1:{port}/api/gate/v1/chat/completions"
            ))
            .bearer_auth(&token)
            .json(&body())
            .send()
    };
    for _ in 0..3 {
        let reply = b_chat().await.expect("B answers");
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let leases: Vec<(String, i64)> = sqlx::query_as(
        "SELECT replica_id, granted_nanos FROM budget_leases WHERE agent_key_id = $1",
    )
    .bind(token_id as i32)
    .fetch_all(pool(&a))
    .await
    .expect("leases");
    let [(b_id, b_lease)] = leases.as_slice() else {
        panic!("B alone holds a lease: {leases:?}");
    };

    // Killed while A is under load: B's lease still counts against the cap meanwhile.
    let only_a = [&a];
    let (during, ()) = futures_util::join!(spread(&only_a, &token, 50), async {
        let _ = b.0.kill();
        let _ = b.0.wait();
    });
    served(&during);
    eventually(
        "B's lease is forfeited once B is not seen for a while",
        Duration::from_secs(40),
        async || {
            served(&spread(&[&a], &token, 10).await);
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM budget_leases WHERE agent_key_id = $1 AND replica_id = $2",
            )
            .bind(token_id as i32)
            .bind(b_id)
            .fetch_one(pool(&a))
            .await
            .expect("B's lease");
            left == 0
        },
    )
    .await;
    let spent = ledger_spend(&[&a], token_id).await;
    let (leases_spent, leased, _) = lease_account(&a, token_id).await;
    assert!(spent <= cap_nanos(), "spent {spent} of {}", cap_nanos());
    assert!(
        leases_spent >= *b_lease && leases_spent + leased <= cap_nanos(),
        "B's lease ({b_lease}) counted as spent: {leases_spent} + leased {leased}"
    );
}
