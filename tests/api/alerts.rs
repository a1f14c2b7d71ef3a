//! Alerts: signed webhooks (and email) for budgets at 80 % and 100 %, keys turning unhealthy or
//! reaching their spend limit; each event sent once, a refused delivery retried.

use crate::fake_provider::Behaviour;
use crate::helpers::{TestApp, TestDb};
use crate::invites::mailing_app;
use crate::smtp_sink::SmtpSink;
use crate::webhook_sink::{Delivery, WebhookSink};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;
use spidergate::secret::Secret;
use std::time::Duration;

const SECRET: &str = "whsec-test-0123456789";
const OPENAI: &str = "gpt-4o-mini";
const GROQ: &str = "groq/llama-3.1-8b-instant";
const WAIT: Duration = Duration::from_secs(15);

pub async fn alerting_app(hook: &WebhookSink, smtp_port: u16, email: &str) -> TestApp {
    let (url, email) = (hook.url.clone(), email.to_owned());
    mailing_app(TestDb::fresh().await, smtp_port, move |config| {
        config.alerts.webhook_url = Secret::new(url);
        config.alerts.webhook_secret = Secret::new(SECRET);
        config.alerts.email = email;
    })
    .await
}

/// The signature header checked the way a receiver would: HMAC-SHA256 of `"<t>.<body>"`.
fn assert_signed(delivery: &Delivery) {
    let header = &delivery.headers["x-spidergate-signature"];
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature {header}"));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", delivery.raw).as_bytes());
    assert_eq!(
        v1,
        hex::encode(mac.finalize().into_bytes()),
        "signature of {}",
        delivery.raw
    );
    assert_eq!(
        delivery.headers["x-spidergate-event"],
        delivery.body["type"]
    );
    assert_eq!(delivery.headers["content-type"], "application/json");
}

/// A soft monthly budget of 1.2 requests: the first crosses 80 %, the second 100 %.
fn soft_budget(cost_of_one: f64) -> serde_json::Value {
    json!({ "name": "soft", "monthly_budget_usd": cost_of_one * 1.2, "budget_mode": "soft" })
}

/// Cost of one `chat` of `model` at the fake's usage.
async fn cost_of_one_chat(app: &TestApp, credential: &str, model: &str) -> f64 {
    let (token, _) = app.mint_token(credential, json!({ "name": "probe" })).await;
    let reply = app.chat(&token, model).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["spidergate_metadata"]["cost_usd"]
        .as_f64()
        .unwrap()
}

#[actix_web::test]
async fn a_budget_alerts_once_at_80_and_once_at_100_percent_signed_and_emailed() {
    let hook = WebhookSink::start().await;
    let smtp = SmtpSink::start(0).await;
    let app = alerting_app(&hook, smtp.port, "ops@example.test").await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", "sk-openai-alerts-1", json!({}))
        .await;
    let cost = cost_of_one_chat(&app, &credential, OPENAI).await;
    let soft = soft_budget(cost);
    let (token, minted) = app.mint_token(&credential, soft.clone()).await;

    assert_eq!(app.chat(&token, OPENAI).await.status, StatusCode::OK);
    let eighty = hook.wait_for("budget.80_percent", 1, WAIT).await;
    assert_signed(&eighty[0]);
    assert_eq!(eighty[0].body["data"]["agent_key_id"], minted["id"]);
    assert!(eighty[0].body["brand_id"].is_number());
    for _ in 0..2 {
        assert_eq!(
            app.chat(&token, OPENAI).await.status,
            StatusCode::OK,
            "a soft budget serves on"
        );
    }
    let exhausted = hook.wait_for("budget.exhausted", 1, WAIT).await;
    assert_signed(&exhausted[0]);

    // Another token's 80 % comes after everything above: once it is in, nothing else will be.
    let (other, _) = app.mint_token(&credential, soft).await;
    assert_eq!(app.chat(&other, OPENAI).await.status, StatusCode::OK);
    hook.wait_for("budget.80_percent", 2, WAIT).await;
    assert_eq!(
        hook.of("budget.exhausted").len(),
        1,
        "each event is sent once"
    );
    assert_eq!(
        hook.of("budget.80_percent")
            .iter()
            .filter(|d| d.body["data"]["agent_key_id"] == minted["id"])
            .count(),
        1
    );
    let email = smtp.wait_for(1, WAIT).await;
    assert!(
        email.contains("To: ops@example.test") && email.contains("[SpiderGate] budget.80_percent"),
        "{email}"
    );
    let everything = format!("{:?}{email}", hook.received());
    assert!(!everything.contains("sk-openai-alerts-1") && !everything.contains(&token));

    // The brand reads them back, newest first; another brand sees none of them.
    let listed = app.get("/api/v1/alerts", Some(&credential)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["total"], 3, "{}", listed.body);
    let kinds: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["budget.80_percent", "budget.exhausted", "budget.80_percent"]
    );
    assert_eq!(listed.body["data"][1]["id"], exhausted[0].body["id"]);
    assert_eq!(listed.body["data"][2]["data"]["agent_key_id"], minted["id"]);
    let page = app
        .get("/api/v1/alerts?limit=1&offset=1", Some(&credential))
        .await;
    assert_eq!(page.body["data"][0]["type"], "budget.exhausted");
    app.get("/api/v1/alerts?limit=0", Some(&credential))
        .await
        .assert_error(400, "invalid_request");
    let (_, stranger) = app.create_brand("Other").await;
    let theirs = app.get("/api/v1/alerts", Some(&stranger)).await;
    assert_eq!(theirs.body["total"], 0, "{}", theirs.body);
}

#[actix_web::test]
async fn a_refused_delivery_is_retried_under_the_same_delivery_id() {
    let hook = WebhookSink::start().await;
    let smtp = SmtpSink::start(0).await;
    let app = alerting_app(&hook, smtp.port, "").await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", "sk-openai-alerts-2", json!({}))
        .await;
    let cost = cost_of_one_chat(&app, &credential, OPENAI).await;
    let (token, _) = app.mint_token(&credential, soft_budget(cost)).await;
    hook.refuse_next(1);
    assert_eq!(app.chat(&token, OPENAI).await.status, StatusCode::OK);
    let deliveries = hook.wait_for("budget.80_percent", 2, WAIT).await;
    assert_eq!(
        deliveries[0].headers["x-spidergate-delivery"],
        deliveries[1].headers["x-spidergate-delivery"]
    );
    assert_eq!(
        deliveries[0].raw, deliveries[1].raw,
        "the same event, not a new one"
    );
    assert!(
        smtp.messages().is_empty(),
        "no alert email unless alerts.email is set"
    );
}

#[actix_web::test]
async fn a_key_turning_unhealthy_and_a_key_reaching_its_spend_limit_alert_once() {
    let hook = WebhookSink::start().await;
    let smtp = SmtpSink::start(0).await;
    let app = alerting_app(&hook, smtp.port, "").await;
    let (_, credential) = app.create_brand("Acme").await;
    let flaky = app
        .add_key(&credential, "groq", "gsk_alerts_flaky_01", json!({}))
        .await;
    app.fake.set("gsk_alerts_flaky_01", Behaviour::ServerError);
    let (token, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    for _ in 0..4 {
        assert!(app.chat(&token, GROQ).await.status.is_server_error());
    }
    let unhealthy = hook.wait_for("key.unhealthy", 1, WAIT).await;
    assert_signed(&unhealthy[0]);
    assert_eq!(unhealthy[0].body["data"]["integration_id"], flaky);
    assert_eq!(unhealthy[0].body["data"]["provider"], "groq");
    assert!(unhealthy[0].body["brand_id"].is_number(), "the key's owner");

    // A key that has spent one request's cost today, limited to one and a half.
    let limited = app
        .add_key(&credential, "openai", "sk-openai-alerts-limit", json!({}))
        .await;
    let cost = cost_of_one_chat(&app, &credential, OPENAI).await;
    let limit = json!({ "spend_limit_amount": cost * 1.5, "spend_limit_period": "daily", "spend_limit_action": "warn" });
    let patched = app
        .patch(
            &format!("/api/v1/integrations/{limited}"),
            Some(&credential),
            limit,
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    for _ in 0..3 {
        assert_eq!(
            app.chat(&token, OPENAI).await.status,
            StatusCode::OK,
            "warn serves on"
        );
    }
    let reached = hook.wait_for("key.spend_limit", 1, WAIT).await;
    assert_signed(&reached[0]);
    assert_eq!(reached[0].body["data"]["integration_id"], limited);
    assert_eq!(reached[0].body["data"]["period"], "daily");
    // An event raised after all of them: once it is in, no repeat is still on its way.
    let (sentinel, _) = app.mint_token(&credential, soft_budget(cost)).await;
    assert_eq!(app.chat(&sentinel, OPENAI).await.status, StatusCode::OK);
    hook.wait_for("budget.80_percent", 1, WAIT).await;
    assert_eq!(
        hook.of("key.spend_limit").len(),
        1,
        "the limit is reported once a day"
    );
    assert_eq!(
        hook.of("key.unhealthy").len(),
        1,
        "a key stays unhealthy: reported once"
    );
}
