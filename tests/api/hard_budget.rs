//! A hard budget holds an upper bound and sends the provider the completion limit it paid for,
//! so only a provider billing beyond what it was asked for can take spend past the cap.

use crate::fake_provider::Behaviour;
use crate::helpers::{Reply, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MODEL: &str = "gpt-4o-mini";
const KEY: &str = "sk-openai-hard-budget";

fn body() -> Value {
    json!({ "model": MODEL, "max_tokens": 10, "messages": [{ "role": "user", "content": "count to ten, please" }] })
}

/// (input, output) nano-dollars per token of the model, from the built-in catalog.
fn prices() -> (f64, f64) {
    let catalog = spidergate::catalog::Catalog::load(&Default::default()).expect("catalog");
    let model = catalog.model(MODEL).expect("priced model");
    (
        model.input_per_mtok * 1000.0,
        model.output_per_mtok * 1000.0,
    )
}

/// A token with a hard `cap` (USD), 200 concurrent chats, then the stored spend in nano-dollars.
async fn two_hundred_at_once(app: &TestApp, cap: f64) -> (Vec<Reply>, String, f64, String) {
    let (credential, token, id) = app.brand_with_capped_token(KEY, cap).await;
    let requests =
        (0..200).map(|_| app.post("/api/gate/v1/chat/completions", Some(&token), body()));
    let replies = futures_util::future::join_all(requests).await;
    app.state.usage.flush().await;
    let path = format!("/api/v1/agent-keys/{id}");
    let stored = app.get(&path, Some(&credential)).await.body;
    let spent = stored["spend"]["month_usd"].as_f64().expect("spend") * 1e9;
    (replies, token, spent, credential)
}

/// The completion limit each upstream call was sent.
fn sent_limits(app: &TestApp) -> Vec<u64> {
    app.fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| {
            r.body["max_tokens"]
                .as_u64()
                .or(r.body["max_completion_tokens"].as_u64())
                .expect("a completion limit is always sent under a hard budget")
        })
        .collect()
}

#[actix_web::test]
async fn with_honest_usage_200_concurrent_requests_never_pass_the_cap() {
    let app = spawn_app().await;
    app.fake.set(
        KEY,
        Behaviour::Reports {
            prompt_tokens: None,
            completion_tokens: None,
        },
    );
    let cap = 0.001;
    let (replies, token, spent, _) = two_hundred_at_once(&app, cap).await;
    let served = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::OK || r.status == StatusCode::PAYMENT_REQUIRED),
        "only served or refused for the budget"
    );
    assert!(spent <= cap * 1e9, "spent {spent} nanos of a {cap} USD cap");
    // Each hold is about twice what an honest request costs (a token per byte of the whole body
    // against the bytes of its messages), so the first holds alone spend over half the cap;
    // a third leaves room for how the rest interleave.
    assert!(
        served > 0 && spent > cap * 1e9 / 3.0,
        "the cap is used, not hoarded: {spent}"
    );
    let limits = sent_limits(&app);
    assert_eq!(
        limits.len(),
        served,
        "a refused request reaches no provider"
    );
    assert!(limits.iter().all(|l| (1..=10).contains(l)), "{limits:?}");
    let last = app
        .post("/api/gate/v1/chat/completions", Some(&token), body())
        .await;
    assert!(
        last.status == StatusCode::OK || last.status == StatusCode::PAYMENT_REQUIRED,
        "{}",
        last.body
    );
}

#[actix_web::test]
async fn a_provider_over_reporting_usage_overruns_the_cap_only_by_what_it_billed_beyond_the_hold() {
    let app = spawn_app().await;
    let (reported_prompt, reported_completion) = (50_000u64, 20_000u64);
    app.fake.set(
        KEY,
        Behaviour::Reports {
            prompt_tokens: Some(reported_prompt),
            completion_tokens: Some(reported_completion),
        },
    );
    let cap = 0.10;
    let (replies, token, spent, _) = two_hundred_at_once(&app, cap).await;
    let served = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(served > 0, "some requests fit the cap");

    // What each call held: the prompt bound (one token per byte of the client's body, plus the
    // framing allowance) and the completion limit it was sent. The rest was billed beyond it.
    let (input, output) = prices();
    let prompt_bound = (body().to_string().len() + 16) as f64;
    let beyond_hold: f64 = sent_limits(&app)
        .iter()
        .map(|sent| {
            (reported_prompt as f64 - prompt_bound) * input
                + (reported_completion - sent) as f64 * output
        })
        .sum();
    assert!(
        spent <= cap * 1e9 + beyond_hold + 1.0,
        "spent {spent} nanos: over the cap by more than the {beyond_hold} billed beyond the holds"
    );
    assert!(
        spent > cap * 1e9,
        "the over-reported usage is charged in full: {spent}"
    );
    app.post("/api/gate/v1/chat/completions", Some(&token), body())
        .await
        .assert_error(402, "budget_exceeded");
}

#[actix_web::test]
async fn a_request_whose_minimum_cost_exceeds_the_room_left_is_refused_before_any_call() {
    let app = spawn_app().await;
    let (credential, _) = app.brand_with_token().await;
    app.add_key(&credential, "openai", KEY, json!({})).await;
    // Less than one prompt token at gpt-4o-mini's input price.
    let (token, _) = app
        .mint_token(
            &credential,
            json!({ "name": "tiny", "monthly_budget_usd": 0.00000001, "budget_mode": "hard" }),
        )
        .await;
    let reply = app
        .post("/api/gate/v1/chat/completions", Some(&token), body())
        .await;
    reply.assert_error(402, "budget_exceeded");
    assert_eq!(app.fake.calls(KEY), 0);
}
