//! Invites with real email: the link from the received message, the public form, the key in the
//! vault; SMTP outages; tampered, expired, reused and revoked links.

use crate::fake_provider::Behaviour;
use crate::helpers::{TestApp, TestDb, eventually, spawn_app_on};
use crate::smtp_sink::SmtpSink;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

async fn app_mailing_to(port: u16) -> TestApp {
    mailing_app(TestDb::fresh().await, port, |_| {}).await
}

/// An app on `db` whose mail goes to the SMTP server on `port`, with links under
/// `http://gateway.test`.
pub async fn mailing_app(
    db: TestDb,
    port: u16,
    customise: impl FnOnce(&mut spidergate::config::Config),
) -> TestApp {
    spawn_app_on(db, move |config| {
        config.mail.smtp_port = port;
        config.mail.poll_secs = 1;
        config.mail.retry_max_secs = 1;
        config.server.public_url = "http://gateway.test".into();
        customise(config);
    })
    .await
}

/// The 64-hex token of the invite link in an email.
pub fn token_in(email: &str) -> String {
    link_token(email, "http://gateway.test/invite/")
}

pub fn link_token(email: &str, prefix: &str) -> String {
    let at = email
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} link in {email}"))
        + prefix.len();
    email[at..at + 64].to_owned()
}

pub async fn page(app: &TestApp, token: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(format!("{}/invite/{token}", app.address))
        .send()
        .await
        .expect("page");
    (response.status(), response.text().await.expect("html"))
}

fn csrf_in(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().expect("value").to_owned()
}

async fn submit(app: &TestApp, token: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let response = app
        .client
        .post(format!("{}/invite/{token}", app.address))
        .form(fields)
        .send()
        .await
        .expect("post");
    (response.status(), response.text().await.expect("html"))
}

pub async fn invite(app: &TestApp, credential: &str, provider: &str) -> serde_json::Value {
    let body = json!({ "email": "owner@example.test", "provider_name": provider, "message": "Please <b>add</b> yours" });
    let reply = app.post("/api/v1/invites", Some(credential), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

#[actix_web::test]
async fn an_emailed_link_lets_the_owner_add_a_key_the_admin_never_sees() {
    let sink = SmtpSink::start(0).await;
    let app = app_mailing_to(sink.port).await;
    let (_, credential) = app.create_brand("Acme").await;
    let created = invite(&app, &credential, "groq").await;
    assert_eq!(
        (created["status"].as_str(), created["email"].as_str()),
        (Some("pending"), Some("owner@example.test"))
    );

    let email = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        email.contains("To: owner@example.test") && email.contains("Acme"),
        "{email}"
    );
    let token = token_in(&email);

    let (status, html) = page(&app, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Groq") && html.contains("name=\"api_key\"") && html.contains("viewport"),
        "{html}"
    );
    assert!(
        html.contains("Please &lt;b&gt;add") && !html.contains("<b>add"),
        "the message is escaped: {html}"
    );

    let secret = "gsk_contributed_secret_0042";
    let (status, done) = submit(
        &app,
        &token,
        &[("api_key", secret), ("csrf", &csrf_in(&html))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Thank you") && !done.contains(secret));
    assert!(
        app.fake
            .requests()
            .iter()
            .any(|r| r.path == "/groq/v1/models" && r.api_key == secret),
        "the key was tested first"
    );

    let keys = app
        .get("/api/v1/integrations", Some(&credential))
        .await
        .body;
    let key = &keys["integrations"][0];
    assert_eq!(
        (
            keys["total"].as_u64(),
            key["key_preview"]["api_key"].as_str()
        ),
        (Some(1), Some("gsk_...042"))
    );
    assert!(!keys.to_string().contains(secret));
    let invites = app.get("/api/v1/invites", Some(&credential)).await.body;
    assert_eq!(
        (
            invites["data"][0]["status"].as_str(),
            invites["data"][0]["integration_id"].as_i64()
        ),
        (Some("used"), key["id"].as_i64())
    );

    let (status, _) = submit(
        &app,
        &token,
        &[
            ("api_key", "gsk_second_try_0001"),
            ("csrf", &csrf_in(&html)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "single use");
    assert_eq!(page(&app, &token).await.0, StatusCode::GONE);
    assert_eq!(
        app.get("/api/v1/integrations", Some(&credential))
            .await
            .body["total"],
        1
    );
}

#[actix_web::test]
async fn an_invite_made_while_smtp_is_down_is_delivered_once_it_is_back() {
    let sink = SmtpSink::start_down(Duration::ZERO).await;
    let app = app_mailing_to(sink.port).await;
    let (_, credential) = app.create_brand("Acme").await;
    invite(&app, &credential, "openai").await;
    eventually(
        "a failed attempt while SMTP is down",
        Duration::from_secs(10),
        async || outbox_attempts(&app).await.first().is_some_and(|a| *a >= 1),
    )
    .await;
    sink.bring_up();
    let email = sink.wait_for(1, Duration::from_secs(15)).await;
    assert!(email.contains("OpenAI"), "{email}");
    app.stop().await;
    assert_eq!(sink.messages().len(), 1, "delivered once");
}

/// `attempts` of every outbox row.
async fn outbox_attempts(app: &TestApp) -> Vec<i32> {
    use sea_orm::EntityTrait;
    entity::outbox::Entity::find()
        .all(&app.state.db)
        .await
        .expect("outbox")
        .into_iter()
        .map(|row| row.attempts)
        .collect()
}

/// Mail queued while the SMTP server is down is sent by the next process, once.
async fn unsent_mail_survives_a_restart(db: TestDb) {
    let sink = SmtpSink::start_down(Duration::ZERO).await;
    let app = mailing_app(db, sink.port, |_| {}).await;
    let (_, credential) = app.create_brand("Acme").await;
    invite(&app, &credential, "openai").await;
    let app = app.restart().await;
    sink.bring_up();
    let email = sink.wait_for(1, Duration::from_secs(15)).await;
    assert!(email.contains("OpenAI"), "{email}");
    app.stop().await;
    assert_eq!(sink.messages().len(), 1, "delivered once");
}

#[actix_web::test]
async fn two_replicas_on_one_database_send_each_queued_email_once() {
    let sink = SmtpSink::start_down(Duration::from_millis(400)).await;
    let app = mailing_app(TestDb::fresh().await, sink.port, |_| {}).await;
    let replica = app.replica().await;
    let (_, credential) = app.create_brand("Acme").await;
    let providers = ["openai", "groq", "mistral", "cohere", "together"];
    for provider in providers {
        invite(&app, &credential, provider).await;
    }
    // Both mailers find the outbox due while SMTP is down, and fail; once it is up they race for
    // each email. The server takes 400 ms per message, so one mailer's drain outlasts the other's
    // next look.
    eventually(
        "failed attempts on every email",
        Duration::from_secs(10),
        async || {
            let attempts = outbox_attempts(&app).await;
            attempts.len() == providers.len() && attempts.iter().all(|a| *a >= 1)
        },
    )
    .await;
    sink.bring_up();
    sink.wait_for(providers.len(), Duration::from_secs(15))
        .await;
    // Stopped, neither mailer can send again: a duplicate would be in the sink by now.
    replica.stop().await;
    app.stop().await;
    assert_eq!(sink.messages().len(), providers.len(), "each email once");
}

#[actix_web::test]
async fn unsent_mail_is_kept_across_a_restart() {
    unsent_mail_survives_a_restart(TestDb::fresh().await).await;
}

#[actix_web::test]
async fn tampered_expired_revoked_and_forged_submissions_store_nothing() {
    let sink = SmtpSink::start(0).await;
    let app = app_mailing_to(sink.port).await;
    let (_, credential) = app.create_brand("Acme").await;
    let first = invite(&app, &credential, "groq").await;
    let token = token_in(&sink.wait_for(1, Duration::from_secs(10)).await);
    let (_, html) = page(&app, &token).await;
    let csrf = csrf_in(&html);

    let mut tampered = token.clone();
    tampered.replace_range(0..1, if token.starts_with('a') { "b" } else { "a" });
    assert_eq!(page(&app, &tampered).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        submit(
            &app,
            &tampered,
            &[("api_key", "gsk_tampered_00001"), ("csrf", &csrf)]
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(page(&app, "not-a-token").await.0, StatusCode::NOT_FOUND);

    let (status, forged) = submit(
        &app,
        &token,
        &[("api_key", "gsk_forged_000001"), ("csrf", "0000")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        !forged.contains("gsk_forged_000001"),
        "a key is never echoed back"
    );
    let cross_site = app
        .client
        .post(format!("{}/invite/{token}", app.address))
        .header("Origin", "https://evil.example")
        .form(&[("api_key", "gsk_cross_site_0001"), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    app.fake.set("gsk_refused_by_groq", Behaviour::Unauthorized);
    let (status, refused) = submit(
        &app,
        &token,
        &[("api_key", "gsk_refused_by_groq"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused.contains("did not accept") && !refused.contains("gsk_refused_by_groq"),
        "{refused}"
    );

    app.delete(
        &format!("/api/v1/invites/{}", first["id"]),
        Some(&credential),
    )
    .await;
    assert_eq!(page(&app, &token).await.0, StatusCode::GONE);
    assert_eq!(
        submit(
            &app,
            &token,
            &[("api_key", "gsk_after_revoke_01"), ("csrf", &csrf)]
        )
        .await
        .0,
        StatusCode::GONE
    );

    invite(&app, &credential, "mistral").await;
    let later = token_in(&sink.wait_for(2, Duration::from_secs(10)).await);
    app.state.clock.advance(chrono::Duration::hours(73));
    assert_eq!(
        page(&app, &later).await.0,
        StatusCode::GONE,
        "expired after 72 h"
    );
    assert_eq!(
        app.get("/api/v1/integrations", Some(&credential))
            .await
            .body["total"],
        0,
        "nothing was stored"
    );
}

#[actix_web::test]
async fn invites_are_validated_and_private_to_their_brand() {
    let sink = SmtpSink::start(0).await;
    let app = app_mailing_to(sink.port).await;
    let (_, acme) = app.create_brand("Acme").await;
    let (_, globex) = app.create_brand("Globex").await;
    let created = invite(&app, &acme, "groq").await;
    app.post(
        "/api/v1/invites",
        Some(&acme),
        json!({ "email": "nope", "provider_name": "groq" }),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post(
        "/api/v1/invites",
        Some(&acme),
        json!({ "email": "a@b.test", "provider_name": "acme-ai" }),
    )
    .await
    .assert_error(400, "invalid_request");
    assert_eq!(
        app.get("/api/v1/invites", Some(&globex)).await.body["total"],
        0
    );
    app.delete(&format!("/api/v1/invites/{}", created["id"]), Some(&globex))
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/invites", Some(&acme)).await.body["data"][0]["status"],
        "pending"
    );
}

#[actix_web::test]
async fn a_disabled_contributed_key_is_repaired_in_place_from_the_reauth_email() {
    let sink = SmtpSink::start(0).await;
    let app = app_mailing_to(sink.port).await;
    let (_, credential) = app.create_brand("Acme").await;
    invite(&app, &credential, "groq").await;
    let token = token_in(&sink.wait_for(1, Duration::from_secs(10)).await);
    let (_, html) = page(&app, &token).await;
    assert_eq!(
        submit(
            &app,
            &token,
            &[
                ("api_key", "gsk_contrib_old_0001"),
                ("csrf", &csrf_in(&html))
            ]
        )
        .await
        .0,
        StatusCode::OK
    );
    let id = app
        .get("/api/v1/integrations", Some(&credential))
        .await
        .body["integrations"][0]["id"]
        .as_i64()
        .expect("id");
    let settings = json!({ "share_with_pool": true, "daily_limit": 500, "is_primary": true });
    let patched = app
        .patch(
            &format!("/api/v1/integrations/{id}"),
            Some(&credential),
            settings.clone(),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);

    app.fake
        .set("gsk_contrib_old_0001", Behaviour::Unauthorized);
    let (agent, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    for _ in 0..3 {
        app.chat(&agent, "groq/llama-3.1-8b-instant")
            .await
            .assert_error(502, "upstream_error");
    }
    let email = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        email.contains("To: owner@example.test") && email.contains("stopped working"),
        "{email}"
    );
    let reauth = link_token(&email, "http://gateway.test/reauth/");
    let response = app
        .client
        .get(format!("{}/reauth/{reauth}", app.address))
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(html.contains("Replace your Groq key"), "{html}");

    let response = app
        .client
        .post(format!("{}/reauth/{reauth}", app.address))
        .form(&[
            ("api_key", "gsk_contrib_new_0002"),
            ("csrf", csrf_in(&html).as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);

    let keys = app
        .get("/api/v1/integrations", Some(&credential))
        .await
        .body;
    assert_eq!(keys["total"], 1, "updated in place, not added");
    let key = &keys["integrations"][0];
    assert_eq!(key["id"].as_i64(), Some(id));
    for (field, value) in settings.as_object().expect("object") {
        assert_eq!(&key[field], value, "`{field}` kept");
    }
    assert_eq!(
        (key["is_active"].as_bool(), key["health_status"].as_str()),
        (Some(true), Some("healthy"))
    );
    assert!(key["disabled_reason"].is_null());
    assert_eq!(
        (
            key["key_preview"]["api_key"].as_str(),
            key["key_label"].as_str()
        ),
        (
            Some("gsk_...002"),
            Some("Contributed by owner@example.test")
        )
    );
    assert_eq!(
        app.serving_key(&agent, "groq/llama-3.1-8b-instant").await,
        "gsk_contrib_new_0002",
        "back in rotation without a restart"
    );
}

#[actix_web::test]
async fn a_disabled_key_nobody_contributed_emails_the_brands_contact() {
    let sink = SmtpSink::start(0).await;
    let app = app_mailing_to(sink.port).await;
    let brand = app
        .post(
            "/api/v1/admin/brands",
            Some(&app.admin_token),
            json!({ "name": "Acme", "contact_email": "ops@acme.test" }),
        )
        .await;
    let credential = brand.body["credential"]
        .as_str()
        .expect("credential")
        .to_owned();
    app.add_key(&credential, "groq", "gsk_admin_added_001", json!({}))
        .await;
    app.fake.set("gsk_admin_added_001", Behaviour::Unauthorized);
    let (agent, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    for _ in 0..3 {
        app.chat(&agent, "groq/llama-3.1-8b-instant").await;
    }
    let email = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        email.contains("To: ops@acme.test") && email.contains("/reauth/"),
        "{email}"
    );
}
