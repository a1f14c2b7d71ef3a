//! SIGTERM during load loses no ledger row, and budgets survive the restart: the real binary.

use crate::fake_provider::FakeProvider;
use crate::process::{command, start_command};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

struct Gateway {
    client: reqwest::Client,
    base: String,
}

impl Gateway {
    async fn post(
        &self,
        path: &str,
        bearer: &str,
        body: Value,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}

fn chat(max_tokens: u64) -> Value {
    json!({ "model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{ "role": "user", "content": "ping" }] })
}

async fn successful_rows(db_url: &str) -> i64 {
    let db = sea_orm::Database::connect(db_url).await.expect("database");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM traces WHERE status = 'success'",
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}

#[actix_web::test]
async fn sigterm_under_load_loses_no_ledger_row_and_spent_budgets_stay_spent() {
    spidergate::install_tls_provider();
    let fake = FakeProvider::start().await;
    let db = crate::helpers::TestDb::fresh().await;
    let db_url = db.url();
    let admin = format!("admin-{}", uuid::Uuid::new_v4().simple());
    let quiet = || {
        let mut cmd = command(&db_url, &admin, &fake.url);
        cmd.env("RUST_LOG", "warn,spidergate=info")
            .env("SPIDERGATE_SERVER__WORKERS", "2");
        cmd
    };

    let (mut server, port, _lines) = start_command(quiet());
    let gateway = Gateway {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let (status, brand) = gateway
        .post("/api/v1/admin/brands", &admin, json!({ "name": "Acme" }))
        .await
        .expect("brand");
    assert_eq!(status, StatusCode::CREATED);
    let credential = brand["credential"].as_str().expect("credential").to_owned();
    let key =
        json!({ "provider_name": "openai", "credentials": { "api_key": "sk-openai-shutdown" } });
    assert_eq!(
        gateway
            .post("/api/v1/integrations", &credential, key)
            .await
            .expect("key")
            .0,
        StatusCode::CREATED
    );
    let mint = |body: Value| gateway.post("/api/v1/agent-keys", &credential, body);
    let loader = mint(json!({ "name": "load" })).await.expect("mint").1["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let capped = mint(json!({ "name": "capped", "monthly_budget_usd": 0.0001 }))
        .await
        .expect("mint")
        .1["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let successes = Arc::new(AtomicUsize::new(0));
    let mut spent = 0;
    loop {
        match gateway
            .post("/api/gate/v1/chat/completions", &capped, chat(20))
            .await
            .expect("chat")
            .0
        {
            StatusCode::OK => spent += 1,
            StatusCode::PAYMENT_REQUIRED => break,
            other => panic!("unexpected {other}"),
        }
        assert!(spent < 100, "the budget must run out");
    }
    successes.fetch_add(spent, Ordering::SeqCst);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, base, token) =
                (gateway.client.clone(), gateway.base.clone(), loader.clone());
            let (successes, stop) = (successes.clone(), stop.clone());
            actix_web::rt::spawn(async move {
                let gateway = Gateway { client, base };
                while !stop.load(Ordering::SeqCst) {
                    match gateway
                        .post("/api/gate/v1/chat/completions", &token, chat(5))
                        .await
                    {
                        Ok((StatusCode::OK, _)) => {
                            successes.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) | Err(_) => break,
                    }
                }
            })
        })
        .collect();
    crate::helpers::eventually("load under way", Duration::from_secs(10), async || {
        successes.load(Ordering::SeqCst) >= 200
    })
    .await;
    let before_term = successes.load(Ordering::SeqCst);
    let clean = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }
    assert!(clean, "SIGTERM is a clean shutdown");
    let total = successes.load(Ordering::SeqCst);
    assert!(
        total > before_term.min(spent + 20),
        "the load ran: {total} successes"
    );
    assert_eq!(
        successful_rows(&db_url).await,
        total as i64,
        "one ledger row per successful response"
    );

    let (_server, port, _lines) = start_command(quiet());
    let gateway = Gateway {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let (status, body) = gateway
        .post("/api/gate/v1/chat/completions", &capped, chat(20))
        .await
        .expect("chat");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("budget_exceeded"))
    );
    let (status, _) = gateway
        .post("/api/gate/v1/chat/completions", &loader, chat(5))
        .await
        .expect("chat");
    assert_eq!(
        status,
        StatusCode::OK,
        "the uncapped token still works after the restart"
    );
}
