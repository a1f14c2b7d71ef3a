//! No secret ever reaches a log line: the real binary, at trace level, through every endpoint.

use crate::fake_oauth::FakeOAuth;
use crate::process::{VAULT_KEY, command, start_command};
use crate::smtp_sink::SmtpSink;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

struct Api {
    client: reqwest::Client,
    base: String,
    /// Every response body, to search for provider secrets.
    seen: std::cell::RefCell<String>,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        // The fake echoes the serving key in its completions; that text is upstream content.
        if !path.contains("/chat/completions") {
            self.seen.borrow_mut().push_str(&text);
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[actix_web::test]
async fn no_secret_appears_in_logs_at_any_level() {
    use reqwest::Method;
    let db = crate::helpers::TestDb::fresh().await;
    let db_url = db.url();
    let admin = format!("admin-{}", uuid::Uuid::new_v4().simple());

    // The CLI's own logs count too.
    let fake = crate::fake_provider::FakeProvider::start().await;
    let created = command(&db_url, &admin, &fake.url)
        .args(["brand", "create", "Acme"])
        .output()
        .expect("cli runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let cli_credential = String::from_utf8(created.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let mut logs = String::from_utf8_lossy(&created.stderr).into_owned();

    let (oauth, sink) = (FakeOAuth::start().await, SmtpSink::start(0).await);
    let mut server = command(&db_url, &admin, &fake.url);
    with_oauth_for_mistral(&mut server, &oauth, &fake, &sink);
    let (mut child, port, lines) = start_command(server);
    spidergate::install_tls_provider();
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
        seen: Default::default(),
    };
    let mut secrets = vec![admin.clone(), VAULT_KEY.to_owned(), cli_credential.clone()];

    for path in [
        "/health",
        "/api/gate/v1/health",
        "/api/gate/v1/models",
        "/api/gate/v1/models/gpt-4o-mini",
        "/api/gate/v1/aliases",
        "/api/gate/v1/providers",
    ] {
        assert_eq!(
            api.call(Method::GET, path, &cli_credential, None).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, brand) = api
        .call(
            Method::POST,
            "/api/v1/admin/brands",
            &admin,
            Some(json!({ "name": "Globex" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let client_id = brand["brand"]["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    secrets.push(brand["credential"].as_str().expect("credential").to_owned());
    api.call(Method::GET, "/api/v1/admin/brands", &admin, None)
        .await;
    api.call(
        Method::GET,
        &format!("/api/v1/admin/brands/{client_id}"),
        &admin,
        None,
    )
    .await;
    let (_, rotated) = api
        .call(
            Method::POST,
            &format!("/api/v1/admin/brands/{client_id}/rotate-credential"),
            &admin,
            None,
        )
        .await;
    let credential = rotated["credential"]
        .as_str()
        .expect("rotated credential")
        .to_owned();
    secrets.push(credential.clone());

    let (_, minted) = api
        .call(
            Method::POST,
            "/api/v1/agent-keys",
            &credential,
            Some(json!({ "name": "bot", "scopes": ["system", "gate:models"] })),
        )
        .await;
    let pat = minted["token"].as_str().expect("token").to_owned();
    let id = minted["agent_key"]["id"].clone();
    secrets.push(pat.clone());
    api.call(Method::GET, "/api/v1/agent-keys", &pat, None)
        .await;
    api.call(
        Method::GET,
        &format!("/api/v1/agent-keys/{id}"),
        &credential,
        None,
    )
    .await;
    api.call(
        Method::PATCH,
        &format!("/api/v1/agent-keys/{id}"),
        &credential,
        Some(json!({ "rpm": 5 })),
    )
    .await;
    api.call(Method::GET, "/api/gate/v1/models", &pat, None)
        .await;
    // Failed attempts with secret-looking material must not echo it either.
    let wrong_pat = format!("spideriq_pat_{}", "ab".repeat(16));
    secrets.push(wrong_pat.clone());
    api.call(Method::GET, "/api/v1/agent-keys", &wrong_pat, None)
        .await;
    api.call(
        Method::GET,
        "/api/v1/admin/brands",
        "not-the-admin-token-but-secret",
        None,
    )
    .await;
    secrets.push("not-the-admin-token-but-secret".to_owned());
    api.call(
        Method::DELETE,
        &format!("/api/v1/agent-keys/{id}"),
        &credential,
        None,
    )
    .await;
    api.call(Method::GET, "/api/v1/agent-keys", &pat, None)
        .await;

    let mut provider_secrets = exercise_the_vault(&api, &credential, &admin, &fake).await;
    provider_secrets.extend(exercise_oauth(&api, &credential, &oauth, &sink).await);
    secrets.extend(provider_secrets.iter().cloned());
    secrets.extend(exercise_spidergo(&api.base).await);
    let responses = api.seen.borrow().clone();
    for secret in &provider_secrets {
        assert!(
            !responses.contains(secret.as_str()),
            "a provider key reached a response: {}…",
            &secret[..8]
        );
    }

    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let exit = child.0.wait().expect("server exits");
    assert!(exit.success(), "graceful shutdown on SIGTERM: {exit:?}");
    logs.extend(lines.try_iter().map(|l| l + "\n"));

    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture must include verbose levels"
    );
    assert!(
        logs.contains("agent token minted"),
        "the capture must cover the requests"
    );
    for secret in &secrets {
        let parts: Vec<&str> = secret
            .split(':')
            .filter(|p| p.len() > 8 && !p.starts_with("cli_"))
            .collect();
        for part in std::iter::once(secret.as_str()).chain(parts) {
            assert!(
                !logs.contains(part),
                "a secret reached the logs: {}…",
                &part[..8]
            );
        }
    }
}

/// Every vault route plus the generating routes, with known provider secrets; returns them.
async fn exercise_the_vault(
    api: &Api,
    credential: &str,
    admin: &str,
    fake: &crate::fake_provider::FakeProvider,
) -> Vec<String> {
    use crate::fake_provider::Behaviour;
    use reqwest::Method;
    let brand_key = "gsk_LOGTEST_brand_secret_0001";
    let bad_key = "gsk_LOGTEST_bad_secret_0001";
    let pool_key = "sk-LOGTEST-pool-secret-0001";
    let tested_key = "gsk_LOGTEST_tested_secret_01";
    fake.set(bad_key, Behaviour::Unauthorized);
    let add = |key: &'static str, primary: bool| json!({ "provider_name": "groq", "credentials": { "api_key": key }, "is_primary": primary });
    let (status, good) = api
        .call(
            Method::POST,
            "/api/v1/integrations",
            credential,
            Some(add(brand_key, false)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{good}");
    let id = good["integration"]["id"].clone();
    let (_, bad) = api
        .call(
            Method::POST,
            "/api/v1/integrations",
            credential,
            Some(add(bad_key, true)),
        )
        .await;
    let pool = json!({ "provider_name": "openai", "credentials": { "api_key": pool_key } });
    assert_eq!(
        api.call(Method::POST, "/api/v1/admin/pool-keys", admin, Some(pool))
            .await
            .0,
        StatusCode::CREATED
    );
    let chat = json!({ "model": "groq/llama-3.1-8b-instant", "messages": [{ "role": "user", "content": "hi" }] });
    for _ in 0..3 {
        assert_eq!(
            api.call(
                Method::POST,
                "/api/gate/v1/chat/completions?include_route_trace=true",
                credential,
                Some(chat.clone())
            )
            .await
            .0,
            StatusCode::OK
        );
    }
    let mut stream = chat.clone();
    stream["stream"] = json!(true);
    api.call(
        Method::POST,
        "/api/gate/v1/chat/completions",
        credential,
        Some(stream),
    )
    .await;
    let embed = json!({ "model": "agent/embed", "input": "x" });
    assert_eq!(
        api.call(
            Method::POST,
            "/api/gate/v1/embeddings",
            credential,
            Some(embed)
        )
        .await
        .0,
        StatusCode::OK
    );
    for path in [
        "/api/v1/integrations",
        "/api/v1/integrations/health",
        "/api/v1/admin/pool-keys",
    ] {
        let bearer = if path.contains("admin") {
            admin
        } else {
            credential
        };
        assert_eq!(
            api.call(Method::GET, path, bearer, None).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let bad_id = bad["integration"]["id"].clone();
    let (_, disabled) = api
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{bad_id}"),
            credential,
            None,
        )
        .await;
    assert!(
        disabled["integration"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{disabled}"
    );
    api.call(
        Method::PATCH,
        &format!("/api/v1/integrations/{id}"),
        credential,
        Some(json!({ "key_label": "renamed" })),
    )
    .await;
    api.call(
        Method::POST,
        &format!("/api/v1/integrations/{id}/reset-health"),
        credential,
        None,
    )
    .await;
    api.call(
        Method::POST,
        &format!("/api/v1/integrations/{id}/test"),
        credential,
        None,
    )
    .await;
    let test = json!({ "provider_name": "groq", "credentials": { "api_key": tested_key } });
    api.call(
        Method::POST,
        "/api/v1/integrations/test",
        credential,
        Some(test),
    )
    .await;
    let dup = api
        .call(
            Method::POST,
            "/api/v1/integrations",
            credential,
            Some(add(brand_key, false)),
        )
        .await;
    assert_eq!(dup.0, StatusCode::CONFLICT);
    api.call(
        Method::DELETE,
        &format!("/api/v1/integrations/{id}"),
        credential,
        None,
    )
    .await;
    vec![
        brand_key.into(),
        bad_key.into(),
        pool_key.into(),
        tested_key.into(),
    ]
}

/// Mistral keys come from sign-in at `oauth`; every token is due at once, so the server refreshes
/// (and logs about it) every second; mail goes to `sink`.
fn with_oauth_for_mistral(
    server: &mut Command,
    oauth: &FakeOAuth,
    fake: &crate::fake_provider::FakeProvider,
    sink: &SmtpSink,
) {
    let client = oauth.client();
    server
        .env(
            "SPIDERGATE_PROVIDERS__MISTRAL__BASE_URL",
            format!("{}/mistral/v1", fake.url),
        )
        .env(
            "SPIDERGATE_PROVIDERS__MISTRAL__OAUTH__AUTHORIZE_URL",
            client.authorize_url,
        )
        .env(
            "SPIDERGATE_PROVIDERS__MISTRAL__OAUTH__TOKEN_URL",
            client.token_url,
        )
        .env(
            "SPIDERGATE_PROVIDERS__MISTRAL__OAUTH__CLIENT_ID",
            client.client_id,
        )
        .env(
            "SPIDERGATE_PROVIDERS__MISTRAL__OAUTH__CLIENT_SECRET",
            client.client_secret.expose(),
        )
        .env("SPIDERGATE_OAUTH__REFRESH_BEFORE_SECS", "7200")
        .env("SPIDERGATE_OAUTH__REFRESH_CHECK_SECS", "1")
        .env("SPIDERGATE_MAIL__SMTP_PORT", sink.port.to_string())
        .env("SPIDERGATE_SERVER__PUBLIC_URL", "http://gateway.test")
        .env("SPIDERGATE_SPIDERGO__ALLOW_CIDRS", "127.0.0.1/32");
}

/// An invite, its sign-in, refreshes, then refused refreshes up to the re-auth email; returns
/// the secrets involved (link tokens, client secret, every code and token issued).
async fn exercise_oauth(
    api: &Api,
    credential: &str,
    oauth: &FakeOAuth,
    sink: &SmtpSink,
) -> Vec<String> {
    use reqwest::Method;
    use std::time::Duration;
    let body = json!({ "email": "owner@example.test", "provider_name": "mistral" });
    let (status, _) = api
        .call(Method::POST, "/api/v1/invites", credential, Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let email = sink.wait_for(1, Duration::from_secs(10)).await;
    let token = crate::invites::token_in(&email);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let go = async |url: String| {
        let response = browser.get(url).send().await.expect("request");
        let next = response.headers().get("location").map(|l| {
            l.to_str()
                .expect("ascii")
                .replacen("http://gateway.test", &api.base, 1)
        });
        (response.status(), next)
    };
    let (_, authorize) = go(format!("{}/invite/{token}/oauth", api.base)).await;
    let (_, callback) = go(authorize.expect("to the provider")).await;
    let (status, _) = go(callback.expect("back to the gateway")).await;
    assert_eq!(status, StatusCode::OK, "signed in");
    let refreshed = async || oauth.refresh_calls() >= 2;
    crate::helpers::eventually("two refreshes", Duration::from_secs(10), refreshed).await;
    oauth.refuse_refresh(true);
    let reauth = sink.wait_for(2, Duration::from_secs(15)).await;
    let reauth_token = crate::invites::link_token(&reauth, "http://gateway.test/reauth/");
    let mut secrets = oauth.issued();
    secrets.extend([
        token,
        reauth_token,
        crate::fake_oauth::CLIENT_SECRET.to_owned(),
    ]);
    secrets
}

/// SpiderGo's account, session and key flows, then a scrape with the key; returns the password,
/// the session tokens and the key, and checks no later response shows any of them.
async fn exercise_spidergo(base: &str) -> Vec<String> {
    let site = crate::test_site::TestSite::start().await;
    let client = reqwest::Client::new();
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let account = json!({"name": "Logs", "email": "logs@example.com", "password": password});
    let made = client
        .post(format!("{base}/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let login = json!({"email": "logs@example.com", "password": password});
    let signed = client
        .post(format!("{base}/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::OK);
    let cookies: Vec<String> = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let jar = cookies.join("; ");
    let key: Value = client
        .post(format!("{base}/auth/api-keys"))
        .header("cookie", &jar)
        .json(&json!({"name": "logs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["api_key"]
        .as_str()
        .expect("the key, shown once")
        .to_owned();
    let mut later = String::new();
    for path in ["/auth/me", "/auth/api-keys", "/history", "/auth/refresh"] {
        let got = client
            .get(format!("{base}{path}"))
            .header("cookie", &jar)
            .send()
            .await
            .unwrap();
        later.push_str(&got.text().await.unwrap());
    }
    let scraped = client
        .post(format!("{base}/v1/scrape"))
        .bearer_auth(&key)
        .json(&json!({"url": format!("{}/a", site.url)}))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    later.push_str(&scraped.text().await.unwrap());
    let history = client
        .get(format!("{base}/v1/history"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    later.push_str(&history.text().await.unwrap());
    let mut secrets = vec![password, key];
    secrets.extend(
        cookies
            .iter()
            .filter_map(|c| c.split_once('=').map(|(_, v)| v.to_owned())),
    );
    for secret in &secrets {
        assert!(
            !later.contains(secret.as_str()),
            "a SpiderGo secret reached a response: {}…",
            &secret[..8]
        );
    }
    secrets
}
