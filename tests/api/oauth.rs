//! OAuth sign-in from an emailed link against a fake authorization server: the code flow with
//! PKCE, the key in the vault, refreshes before expiry, and a refused refresh that disables the
//! key and emails a re-auth link whose sign-in repairs the same key in place.

use crate::fake_oauth::FakeOAuth;
use crate::helpers::{TestApp, TestDb, eventually};
use crate::invites::{invite, link_token, mailing_app, page, token_in};
use crate::smtp_sink::SmtpSink;
use crate::webhook_sink::WebhookSink;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use std::time::Duration;

const PUBLIC_URL: &str = "http://gateway.test";
/// A model of the provider whose keys come from sign-in.
const GROQ: &str = "groq/llama-3.1-8b-instant";

/// Groq keys come from OAuth sign-in at `oauth`; the vault looks for due tokens every second.
async fn app_with_oauth_on(db: TestDb, sink: &SmtpSink, oauth: &FakeOAuth) -> TestApp {
    app_alerting_with_oauth_on(db, sink, oauth, None).await
}

/// The same, with alerts posted to `hook`.
async fn app_alerting_with_oauth_on(
    db: TestDb,
    sink: &SmtpSink,
    oauth: &FakeOAuth,
    hook: Option<&WebhookSink>,
) -> TestApp {
    let client = oauth.client();
    let hook = hook.map(|h| h.url.clone());
    mailing_app(db, sink.port, move |config| {
        if let Some(url) = hook {
            config.alerts.webhook_url = spidergate::secret::Secret::new(url);
        }
        config.providers.entry("groq".into()).or_default().oauth = Some(client);
        config.oauth.refresh_check_secs = 1;
        config.oauth.refresh_before_secs = 300;
    })
    .await
}

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// `{path}/oauth` → the provider's authorize URL (asserted to carry the flow) → the provider's
/// redirect back, as a URL on the test's gateway.
async fn authorize(app: &TestApp, path: &str) -> String {
    let started = browser()
        .get(format!("{}{path}/oauth", app.address))
        .send()
        .await
        .expect("start");
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let authorize_url = location(&started);
    assert!(
        authorize_url.starts_with(
            &app.state.config.providers["groq"]
                .oauth
                .as_ref()
                .expect("oauth")
                .authorize_url
        ),
        "{authorize_url}"
    );
    let back = browser()
        .get(&authorize_url)
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        back.status(),
        StatusCode::FOUND,
        "the fake accepted the request"
    );
    let callback = location(&back);
    assert!(
        callback.starts_with(&format!("{PUBLIC_URL}/oauth/callback?")),
        "{callback}"
    );
    callback.replacen(PUBLIC_URL, &app.address, 1)
}

async fn get_page(url: &str) -> (StatusCode, String) {
    let response = browser().get(url).send().await.expect("page");
    (response.status(), response.text().await.expect("html"))
}

async fn integrations(app: &TestApp, credential: &str) -> Value {
    app.get("/api/v1/integrations", Some(credential)).await.body
}

/// Waits until the refresher has completed a whole round that started after this call (the
/// round under way may have begun before): what it would do, it has done.
async fn two_more_refresh_rounds(app: &TestApp) {
    let from = app.state.vault.refresh_rounds();
    eventually(
        "two refresher rounds",
        Duration::from_secs(10),
        async || app.state.vault.refresh_rounds() >= from + 2,
    )
    .await;
}

/// Moves the clock 58 minutes on, into the margin before the first hour-long token expires, and
/// waits for the vault's one refresh.
async fn refresh_when_due(app: &TestApp, oauth: &FakeOAuth) {
    app.state.clock.advance(chrono::Duration::minutes(58));
    eventually("a refresh", Duration::from_secs(10), async || {
        oauth.refresh_calls() == 1
    })
    .await;
}

/// A brand whose Groq key its owner contributed by signing in from the emailed invite.
struct SignedIn {
    sink: SmtpSink,
    /// Receives the app's alerts.
    hook: WebhookSink,
    oauth: FakeOAuth,
    app: TestApp,
    /// The brand's credential.
    credential: String,
}

async fn signed_in(db: TestDb) -> SignedIn {
    let sink = SmtpSink::start(0).await;
    let oauth = FakeOAuth::start().await;
    let hook = WebhookSink::start().await;
    let app = app_alerting_with_oauth_on(db, &sink, &oauth, Some(&hook)).await;
    let (_, credential) = app.create_brand("Acme").await;
    invite(&app, &credential, "groq").await;
    let token = token_in(&sink.wait_for(1, Duration::from_secs(10)).await);
    let (status, done) = get_page(&authorize(&app, &format!("/invite/{token}")).await).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Thank you"), "{done}");
    SignedIn {
        sink,
        hook,
        oauth,
        app,
        credential,
    }
}

#[actix_web::test]
async fn signing_in_from_the_emailed_link_stores_a_key_that_the_vault_keeps_fresh() {
    let sink = SmtpSink::start(0).await;
    let oauth = FakeOAuth::start().await;
    let app = app_with_oauth_on(TestDb::fresh().await, &sink, &oauth).await;
    let (_, credential) = app.create_brand("Acme").await;
    invite(&app, &credential, "groq").await;
    let token = token_in(&sink.wait_for(1, Duration::from_secs(10)).await);

    let (status, html) = page(&app, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Sign in with Groq")
            && html.contains(&format!("href=\"/invite/{token}/oauth\"")),
        "{html}"
    );
    let providers = app.get("/api/gate/v1/providers", None).await.body;
    let groq = providers["data"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["id"] == "groq")
        .cloned();
    assert_eq!(groq.expect("groq")["auth"], "oauth");

    // What the gateway asked of the authorization server.
    let callback = authorize(&app, &format!("/invite/{token}")).await;
    let asked = oauth
        .authorize_queries()
        .pop()
        .expect("an authorize request");
    assert_eq!(
        asked["redirect_uri"],
        format!("{PUBLIC_URL}/oauth/callback")
    );
    assert_eq!(asked["scope"], "models.read offline_access");

    // A refusal at the provider, a tampered state, and a sign-in that took too long store nothing.
    let state = asked["state"].clone();
    let (status, denied) = get_page(&format!(
        "{}/oauth/callback?error=access_denied&state={state}",
        app.address
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(denied.contains("access_denied"), "{denied}");
    let mut tampered = state.clone();
    tampered.replace_range(0..1, if state.starts_with('a') { "b" } else { "a" });
    let (status, _) = get_page(&callback.replace(&state, &tampered)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_page(&callback).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused flow's state was used up"
    );

    let slow = authorize(&app, &format!("/invite/{token}")).await;
    app.state.clock.advance(chrono::Duration::minutes(11));
    let (status, late) = get_page(&slow).await;
    assert_eq!(status, StatusCode::GONE, "{late}");
    assert_eq!(integrations(&app, &credential).await["total"], 0);
    assert_eq!(
        oauth.calls().len(),
        0,
        "no code was exchanged for a refused, tampered or late callback"
    );

    // The real sign-in: the code is exchanged with its verifier, the key tested and stored.
    let callback = authorize(&app, &format!("/invite/{token}")).await;
    let (status, done) = get_page(&callback).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(
        done.contains("Thank you") && !done.contains("oauth-"),
        "{done}"
    );
    let calls = oauth.calls();
    assert_eq!(
        (calls.len(), calls[0].grant_type.as_str(), calls[0].granted),
        (1, "authorization_code", true),
        "PKCE verifier and client credentials accepted"
    );
    assert!(
        app.fake
            .requests()
            .iter()
            .any(|r| r.path == "/groq/v1/models" && r.api_key == "oauth-access-0001"),
        "the granted token was tested first"
    );
    let (status, _) = get_page(&callback).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a callback works once");

    let keys = integrations(&app, &credential).await;
    assert_eq!(keys["total"], 1, "{keys}");
    let key = &keys["integrations"][0];
    assert_eq!(key["key_preview"], json!({ "refresh_token": "oaut...001" }));
    assert_eq!(key["key_label"], "Contributed by owner@example.test");
    assert!(
        !keys.to_string().contains("oauth-access")
            && !keys.to_string().contains("oauth-refresh-0001")
    );
    let invites = app.get("/api/v1/invites", Some(&credential)).await.body;
    assert_eq!(invites["data"][0]["status"], "used");
    assert_eq!(invites["data"][0]["integration_id"], key["id"]);

    let (agent, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    assert_eq!(app.serving_key(&agent, GROQ).await, "oauth-access-0001");

    // An hour on, the token is within its refresh margin: the vault refreshes it by itself.
    refresh_when_due(&app, &oauth).await;
    eventually(
        "the refreshed token in use",
        Duration::from_secs(5),
        async || app.serving_key(&agent, GROQ).await == "oauth-access-0002",
    )
    .await;
    let key = &integrations(&app, &credential).await["integrations"][0];
    assert_eq!(
        key["key_preview"],
        json!({ "refresh_token": "oaut...002" }),
        "the rotated refresh token was stored"
    );
    assert_eq!(
        oauth.refresh_calls(),
        1,
        "no refresh before the new token is due"
    );
}

#[actix_web::test]
async fn a_refused_refresh_disables_the_key_and_the_reauth_sign_in_repairs_it_in_place() {
    let SignedIn {
        sink,
        hook,
        oauth,
        app,
        credential,
    } = signed_in(TestDb::fresh().await).await;
    let used = hook
        .wait_for("invite.used", 1, Duration::from_secs(10))
        .await;
    assert_eq!(used[0].body["data"]["provider"], "groq");
    assert_eq!(used[0].body["data"]["kind"], "invite");
    let id = integrations(&app, &credential).await["integrations"][0]["id"].clone();

    oauth.refuse_refresh(true);
    app.state.clock.advance(chrono::Duration::minutes(58));
    let email = sink.wait_for(2, Duration::from_secs(15)).await;
    assert!(
        email.contains("To: owner@example.test") && email.contains("stopped working"),
        "{email}"
    );
    let refused = oauth.refresh_calls();
    assert_eq!(refused, 3, "three refused refreshes disable the key");
    let disabled = hook
        .wait_for("key.disabled", 1, Duration::from_secs(10))
        .await;
    assert_eq!(disabled[0].body["data"]["integration_id"], id);
    let refusals = hook.of("oauth.refresh_refused");
    assert_eq!(
        refusals.len(),
        1,
        "three refusals in a day are one alert: {refusals:?}"
    );
    assert!(!format!("{:?}", hook.received()).contains("oauth-refresh-0001"));
    let key = integrations(&app, &credential).await["integrations"][0].clone();
    assert_eq!(
        (key["is_active"].as_bool(), key["disabled_reason"].as_str()),
        (Some(false), Some("auth_failed"))
    );
    let last_error = key["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("invalid_grant") && !last_error.contains("oauth-refresh"),
        "the provider's echo of the refresh token is scrubbed: {key}"
    );
    two_more_refresh_rounds(&app).await;
    assert_eq!(
        oauth.refresh_calls(),
        refused,
        "a disabled key is not refreshed"
    );

    // The re-auth page offers the sign-in too; it repairs the same key.
    let reauth = link_token(&email, &format!("{PUBLIC_URL}/reauth/"));
    let (status, html) = get_page(&format!("{}/reauth/{reauth}", app.address)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("href=\"/reauth/{reauth}/oauth\"")),
        "{html}"
    );
    oauth.refuse_refresh(false);
    let (status, done) = get_page(&authorize(&app, &format!("/reauth/{reauth}")).await).await;
    assert_eq!(status, StatusCode::OK, "{done}");

    let keys = integrations(&app, &credential).await;
    assert_eq!(keys["total"], 1, "repaired in place, not added");
    let key = &keys["integrations"][0];
    assert_eq!(key["id"], id);
    assert_eq!(
        (
            key["is_active"].as_bool(),
            key["health_status"].as_str(),
            key["key_label"].as_str()
        ),
        (
            Some(true),
            Some("healthy"),
            Some("Contributed by owner@example.test")
        )
    );
    assert_eq!(key["key_preview"], json!({ "refresh_token": "oaut...002" }));
    let (agent, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    assert_eq!(
        app.serving_key(&agent, GROQ).await,
        "oauth-access-0002",
        "back in rotation without a restart"
    );
}

#[actix_web::test]
async fn tokens_are_encrypted_at_rest_and_sign_in_is_refused_for_pasted_key_providers() {
    let SignedIn {
        sink,
        app,
        credential,
        ..
    } = signed_in(TestDb::fresh().await).await;
    let rows = entity::integration::Entity::find()
        .all(&app.state.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(
        !rows[0].credentials_enc.contains("oauth-") && !rows[0].credentials_enc.is_empty(),
        "tokens are Fernet-encrypted"
    );

    invite(&app, &credential, "mistral").await;
    let token = token_in(&sink.wait_for(2, Duration::from_secs(10)).await);
    let (_, html) = page(&app, &token).await;
    assert!(!html.contains("Sign in with"), "{html}");
    let (status, _) = get_page(&format!("{}/invite/{token}/oauth", app.address)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        page(&app, &token).await.0,
        StatusCode::OK,
        "the invite is still usable"
    );
}

#[actix_web::test]
async fn a_token_another_replica_refreshed_is_adopted_instead_of_refreshed_again() {
    let SignedIn {
        oauth,
        app,
        credential,
        ..
    } = signed_in(TestDb::fresh().await).await;

    // Another replica on the same database refreshes the key (using up `oauth-refresh-0001`)
    // later than this one would, and stores the result.
    let client = oauth.client();
    let http = reqwest::Client::new();
    let endpoint = spidergate::providers::oauth::TokenEndpoint {
        client: &client,
        http: &http,
        timeout: Duration::from_secs(5),
    };
    let grant = endpoint
        .refresh("oauth-refresh-0001")
        .await
        .expect("refreshed");
    let later = app.state.clock.now() + chrono::Duration::minutes(58);
    let credentials = grant.into_credentials(later, None).expect("credentials");
    let cipher = spidergate::vault::VaultCipher::from_keys(&[spidergate::secret::Secret::new(
        crate::helpers::VAULT_KEY,
    )])
    .expect("key")
    .expect("configured");
    let row = entity::integration::Entity::find()
        .one(&app.state.db)
        .await
        .expect("query")
        .expect("the key");
    let mut row: entity::integration::ActiveModel = row.into();
    row.credentials_enc = sea_orm::ActiveValue::Set(cipher.encrypt(&credentials));
    sea_orm::ActiveModelTrait::update(row, &app.state.db)
        .await
        .expect("stored");

    app.state.clock.advance(chrono::Duration::minutes(58));
    let (agent, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    eventually(
        "the other replica's token in use",
        Duration::from_secs(10),
        async || app.serving_key(&agent, GROQ).await == "oauth-access-0002",
    )
    .await;
    two_more_refresh_rounds(&app).await;
    assert_eq!(oauth.refresh_calls(), 1, "only the other replica refreshed");
    let key = &integrations(&app, &credential).await["integrations"][0];
    assert_eq!(
        (
            key["consecutive_failures"].as_u64(),
            key["is_active"].as_bool()
        ),
        (Some(0), Some(true)),
        "no refusal was counted: {key}"
    );
}

#[actix_web::test]
async fn a_refreshed_sign_in_survives_a_restart() {
    let SignedIn {
        oauth,
        app,
        credential,
        ..
    } = signed_in(TestDb::fresh().await).await;
    refresh_when_due(&app, &oauth).await;
    eventually(
        "the rotated refresh token stored",
        Duration::from_secs(5),
        async || {
            integrations(&app, &credential).await["integrations"][0]["key_preview"]
                == json!({ "refresh_token": "oaut...002" })
        },
    )
    .await;
    let app = app.restart().await;
    let (agent, _) = app
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    assert_eq!(
        app.serving_key(&agent, GROQ).await,
        "oauth-access-0002",
        "the refreshed token was persisted, encrypted, and decrypts after a restart"
    );
}
