//! The dashboard over plain HTTP: sign-in and sessions, CSRF and cross-site refusals, the agent
//! key shown exactly once, revoke, and pages that never contain a stored secret.

use crate::helpers::{TestApp, spawn_app};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A browser without JavaScript: no redirects followed, its cookies kept by hand (the dashboard
/// session in `cookie`, SpiderGo's two in `others`).
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
    others: std::collections::BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .html
            .find("name=\"_csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.html[at + 20..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Browser<'a> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            app,
            client,
            cookie: None,
            others: Default::default(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut jar: Vec<String> = self
            .others
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        jar.extend(self.cookie.iter().map(|c| format!("sg_session={c}")));
        let req = if jar.is_empty() {
            req
        } else {
            req.header("cookie", jar.join("; "))
        };
        let response = req.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if name == "sg_session" {
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            } else if value.is_empty() {
                self.others.remove(name);
            } else {
                self.others.insert(name.to_owned(), value.to_owned());
            }
        }
        // minijinja escapes `/` in values as `&#x2f;`, which a browser reads as `/`.
        let html = response.text().await.unwrap().replace("&#x2f;", "/");
        Page {
            status,
            headers,
            html,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.app.address));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Page {
        let mut req = self
            .client
            .post(format!("{}{path}", self.app.address))
            .form(form);
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        self.send(req).await
    }

    async fn sign_in(&mut self, secret: &str) -> Page {
        self.post(
            "/dashboard/login",
            &[("secret", secret), ("next", "/dashboard/gate/keys")],
            &[],
        )
        .await
    }
}

#[actix_web::test]
async fn every_dashboard_page_sends_a_stranger_to_the_login() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for path in spidergate::dashboard::SIGNED_IN_PAGES {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            page.location().starts_with("/dashboard/login?next="),
            "{path}: {}",
            page.location()
        );
    }
    for (path, form) in [
        ("/dashboard/gate/keys", vec![("name", "x")]),
        ("/dashboard/gate/keys/1/revoke", vec![]),
        ("/dashboard/logout", vec![]),
        ("/dashboard/settings/rotate-credential", vec![]),
    ] {
        let page = browser.post(path, &form, &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
    }
    let login = browser.get("/dashboard/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.html.contains("<label for=\"secret\">"));
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Only our own script files: no inline script anywhere.
    assert!(
        login.html.matches("<script").count()
            == login
                .html
                .matches("<script src=\"/dashboard/assets/app.")
                .count()
    );
    let css = login
        .html
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let asset = app
        .client
        .get(format!("{}{css}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        browser
            .get("/dashboard/assets/app.000000000000.css")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn a_brand_connects_an_agent_sees_the_secret_once_and_revokes_it() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let mut browser = Browser::new(&app);

    let wrong = browser.sign_in("cli_0000000000000000:key_00000000000000000000000000000000:secret_000000000000000000000000000000000000000000000000").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(browser.cookie.is_none());

    let signed = browser.sign_in(&credential).await;
    assert_eq!(
        (signed.status, signed.location()),
        (StatusCode::SEE_OTHER, "/dashboard/gate/keys")
    );
    let set = signed.headers[SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/dashboard"),
        "{set}"
    );
    let keys = browser.get("/dashboard/gate/keys").await;
    assert_eq!(keys.status, StatusCode::OK);
    assert!(keys.html.contains("Connect an agent") && keys.html.contains("No agent keys yet"));
    assert!(
        !keys.html.contains(&credential),
        "the credential never comes back"
    );
    let csrf = keys.csrf();

    // A form without the token, or from another site, is refused.
    let form = [
        ("name", "research-agent"),
        ("rpm", "30"),
        ("scopes", "gate:chat"),
        ("scopes", "gate:models"),
        ("expires_in_hours", "168"),
    ];
    assert_eq!(
        browser
            .post("/dashboard/gate/keys", &form, &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let mut with_csrf = form.to_vec();
    with_csrf.push(("_csrf", &csrf));
    let cross = browser
        .post(
            "/dashboard/gate/keys",
            &with_csrf,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let bad = browser
        .post(
            "/dashboard/gate/keys",
            &[("name", ""), ("scopes", "gate:chat"), ("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("name"), "the error names the field");

    let minted = browser
        .post(
            "/dashboard/gate/keys",
            &with_csrf,
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.html);
    assert_eq!(minted.headers["cache-control"], "no-store");
    let at = minted
        .html
        .find("spideriq_pat_")
        .expect("the secret, this once");
    let secret: String = minted.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(minted.html.contains("base_url=\"http") && minted.html.contains("/api/gate/v1"));
    let models = app.get("/api/gate/v1/models", Some(&secret)).await;
    assert_eq!(models.status, StatusCode::OK, "the minted key works");

    let listed = browser.get("/dashboard/gate/keys").await;
    assert!(listed.html.contains("research-agent") && listed.html.contains("RPM 30"));
    assert!(!listed.html.contains(&secret), "never shown again");
    let members = browser.get("/dashboard/settings/members/agents").await;
    assert!(members.html.contains("research-agent") && !members.html.contains(&secret));

    let listed_api = app.get("/api/v1/agent-keys", Some(&credential)).await;
    let id = listed_api.body["data"][0]["id"].as_i64().unwrap();
    let revoke_path = format!("/dashboard/gate/keys/{id}/revoke");
    assert_eq!(
        browser
            .post(&revoke_path, &[("_csrf", "wrong")], &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let revoked = browser.post(&revoke_path, &[("_csrf", &csrf)], &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/api/gate/v1/usage", Some(&secret)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        browser
            .get("/dashboard/gate/keys")
            .await
            .html
            .contains("revoked")
    );

    // Signing out ends the session on the server, not only in the browser.
    let cookie = browser.cookie.clone();
    let out = browser
        .post("/dashboard/logout", &[("_csrf", &csrf)], &[])
        .await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, "/dashboard/login")
    );
    browser.cookie = cookie;
    assert_eq!(
        browser.get("/dashboard/gate/keys").await.status,
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn rotating_the_credential_ends_the_brands_sessions_and_the_operator_signs_in_apart() {
    let app = spawn_app().await;
    let (client_id, credential) = app.create_brand("Acme").await;
    let mut brand = Browser::new(&app);
    brand.sign_in(&credential).await;
    assert_eq!(
        brand.get("/dashboard/gate/keys").await.status,
        StatusCode::OK
    );

    let mut operator = Browser::new(&app);
    assert_eq!(
        operator.sign_in(&app.admin_token).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        operator.get("/dashboard").await.location(),
        "/dashboard/operator"
    );
    let home = operator.get("/dashboard/operator").await;
    assert!(
        home.status == StatusCode::OK
            && home.html.contains("Operator")
            && home.html.contains("Acme")
    );
    assert!(!home.html.contains(&app.admin_token) && !home.html.contains(&credential));
    assert_eq!(
        brand.get("/dashboard/operator").await.status,
        StatusCode::FORBIDDEN,
        "operator only"
    );
    assert_eq!(
        operator.get("/dashboard/gate/keys").await.status,
        StatusCode::FORBIDDEN
    );

    let rotated = app
        .post(
            &format!("/api/v1/admin/brands/{client_id}/rotate-credential"),
            Some(&app.admin_token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(
        brand.get("/dashboard/gate/keys").await.status,
        StatusCode::SEE_OTHER,
        "signed out by the rotation"
    );
    assert_eq!(
        operator.get("/dashboard/operator").await.status,
        StatusCode::OK,
        "the operator stays"
    );
    // An open redirect is not possible through `next`.
    let mut stranger = Browser::new(&app);
    let to = stranger
        .post(
            "/dashboard/login",
            &[("secret", &app.admin_token), ("next", "//evil.example/")],
            &[],
        )
        .await;
    assert_eq!(to.location(), "/dashboard");
}

#[actix_web::test]
async fn settings_rotate_the_credential_shown_once_and_sign_everyone_out() {
    let app = spawn_app().await;
    let (client_id, credential) = app.create_brand("Acme").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&credential).await;
    let mut second = Browser::new(&app);
    second.sign_in(&credential).await;
    let settings = browser.get("/dashboard/settings").await;
    assert_eq!(settings.status, StatusCode::OK);
    assert!(settings.html.contains("Acme") && settings.html.contains(&client_id));
    assert!(!settings.html.contains(&credential));
    let csrf = settings.csrf();
    let cross = browser
        .post(
            "/dashboard/settings/rotate-credential",
            &[("_csrf", &csrf)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let rotated = browser
        .post(
            "/dashboard/settings/rotate-credential",
            &[("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let at = rotated
        .html
        .find("cli_")
        .expect("the new credential, this once");
    let fresh: String = rotated.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    assert_ne!(fresh, credential);
    assert_eq!(
        app.get("/api/v1/agent-keys", Some(&credential))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/agent-keys", Some(&fresh)).await.status,
        StatusCode::OK
    );
    assert!(browser.cookie.is_none(), "this session's cookie is cleared");
    assert_eq!(
        second.get("/dashboard/settings").await.status,
        StatusCode::SEE_OTHER,
        "and the other session ended"
    );
    assert_eq!(browser.sign_in(&fresh).await.status, StatusCode::SEE_OTHER);
    assert!(
        !browser
            .get("/dashboard/settings")
            .await
            .html
            .contains(&fresh)
    );
}

#[actix_web::test]
async fn spidergo_users_sign_up_make_a_key_once_run_the_playground_and_see_their_history() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.spidergo.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.spidergo.secure_cookies = false;
        c.spidergo.argon2_memory_kib = 64;
        c.spidergo.argon2_iterations = 1;
    })
    .await;
    let site = crate::test_site::TestSite::start().await;
    let mut browser = Browser::new(&app);
    let first = browser.get("/dashboard/spidergo").await;
    assert!(
        first.html.contains("Create an account")
            && first.html.contains("<label for=\"login-email\">")
    );
    let account = [
        ("name", "Ada"),
        ("email", "ada@example.com"),
        ("password", "correct horse battery"),
    ];
    let made = browser
        .post("/dashboard/spidergo/register", &account, &[])
        .await;
    assert_eq!(
        (made.status, made.location()),
        (StatusCode::SEE_OTHER, "/dashboard/spidergo")
    );
    let again = Browser::new(&app)
        .post("/dashboard/spidergo/register", &account, &[])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let home = browser.get("/dashboard/spidergo").await;
    assert!(home.html.contains("ada@example.com") && home.html.contains("No active keys"));
    let csrf = home.csrf();

    assert_eq!(
        browser
            .post("/dashboard/spidergo/keys", &[("name", "ci")], &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let key = browser
        .post(
            "/dashboard/spidergo/keys",
            &[("name", "ci"), ("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.html);
    let at = key.html.find("sk_live_").expect("the key, this once");
    let secret: String = key.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(secret.len(), 56);
    let later = browser.get("/dashboard/spidergo").await;
    assert!(!later.html.contains(&secret) && later.html.contains(&secret[secret.len() - 4..]));

    let key_id = app
        .client
        .get(format!("{}/auth/api-keys", app.address))
        .header(
            "cookie",
            format!("access_token={}", browser.others["access_token"]),
        )
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["api_keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/a", site.url);
    let ran = browser
        .post(
            "/dashboard/spidergo/run",
            &[
                ("_csrf", &csrf),
                ("url", &url),
                ("mode", "scrape"),
                ("key_id", &key_id),
            ],
            &[],
        )
        .await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.html);
    assert!(
        ran.html.contains("1 page(s)") && ran.html.contains("<td>A</td>"),
        "{}",
        ran.html
    );
    assert!(
        ran.html.contains("scrape") && ran.html.contains(&url),
        "the history lists it"
    );
    let refused = browser
        .post(
            "/dashboard/spidergo/run",
            &[
                ("_csrf", &csrf),
                ("url", "http://10.0.0.1/"),
                ("mode", "scrape"),
                ("key_id", &key_id),
            ],
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.html.contains("non-public"));

    let revoked = browser
        .post(
            &format!("/dashboard/spidergo/keys/{key_id}/revoke"),
            &[("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let scrape = app
        .client
        .post(format!("{}/v1/scrape", app.address))
        .bearer_auth(&secret)
        .json(&serde_json::json!({"url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), StatusCode::FORBIDDEN);
    let out = browser
        .post("/dashboard/spidergo/logout", &[("_csrf", &csrf)], &[])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        browser
            .get("/dashboard/spidergo")
            .await
            .html
            .contains("Create an account")
    );
}

#[actix_web::test]
async fn traces_filter_by_agent_page_export_and_show_one_request_within_the_brand() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "openai",
        "sk-openai-dashboard-0001",
        serde_json::json!({}),
    )
    .await;
    let (other_token, _) = app
        .mint_token(&credential, serde_json::json!({ "name": "other" }))
        .await;
    for _ in 0..3 {
        assert_eq!(app.chat(&token, "gpt-4o-mini").await.status, StatusCode::OK);
    }
    assert_eq!(
        app.chat(&other_token, "gpt-4o-mini").await.status,
        StatusCode::OK
    );
    let mut browser = Browser::new(&app);
    browser.sign_in(&credential).await;
    crate::helpers::eventually(
        "the traces are written",
        std::time::Duration::from_secs(10),
        async || {
            browser
                .get("/dashboard/gate/traces")
                .await
                .html
                .contains("4 requests")
        },
    )
    .await;
    let listed = app.get("/api/v1/agent-keys", Some(&credential)).await;
    let agent = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "agent")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mine = browser
        .get(&format!("/dashboard/gate/traces?token={agent}"))
        .await;
    assert!(
        mine.html.contains("3 requests") && mine.html.contains("error rate 0.0 %"),
        "{}",
        mine.html
    );
    assert_eq!(
        mine.html.matches("href=\"/dashboard/gate/traces/").count(),
        3
    );
    assert!(
        browser
            .get("/dashboard/gate/keys")
            .await
            .html
            .contains(&format!("/dashboard/gate/traces?token={agent}")),
        "View traces on the card"
    );
    let bad = browser.get("/dashboard/gate/traces?status=maybe").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("status"));

    let csv = browser
        .get(&format!("/dashboard/gate/traces.csv?token={agent}"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.html.lines().collect();
    assert_eq!(lines.len(), 1 + 3, "{}", csv.html);
    assert!(lines[0].starts_with("id,created_at,agent_key_id") && lines[1].contains("gpt-4o-mini"));

    let id = lines[1].split(',').next().unwrap();
    let trace = browser.get(&format!("/dashboard/gate/traces/{id}")).await;
    assert_eq!(trace.status, StatusCode::OK);
    assert!(
        trace.html.contains("attempt 1: openai") && trace.html.contains("<svg"),
        "{}",
        trace.html
    );
    assert!(
        !trace.html.contains("sk-openai-dashboard-0001"),
        "no vault key in a page"
    );
    // Another brand sees nothing of it.
    let (_, stranger) = app.create_brand("Globex").await;
    let mut other = Browser::new(&app);
    other.sign_in(&stranger).await;
    assert_eq!(
        other
            .get(&format!("/dashboard/gate/traces/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        other
            .get("/dashboard/gate/traces")
            .await
            .html
            .contains("0 requests")
    );
}

#[actix_web::test]
async fn the_vault_page_tests_a_key_before_saving_it_and_never_shows_it_again() {
    let app = spawn_app().await;
    let (credential, _) = app.brand_with_token().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&credential).await;
    let vault = browser.get("/dashboard/gate/vault").await;
    assert_eq!(vault.status, StatusCode::OK);
    assert!(
        vault.html.contains("No keys yet")
            && vault
                .html
                .contains("/dashboard/gate/vault?provider=openai#add")
    );
    let groq = browser.get("/dashboard/gate/vault?q=groq").await;
    assert!(
        groq.html.contains("Groq") && !groq.html.contains("provider=openai#add"),
        "search narrows the catalog"
    );
    let free = browser.get("/dashboard/gate/vault?free=1").await;
    assert!(
        free.html.contains("free tier") && !free.html.contains("provider=openai#add"),
        "OpenAI has no free tier"
    );

    let form = browser.get("/dashboard/gate/vault?provider=openai").await;
    assert!(
        form.html
            .contains("name=\"credential.api_key\" type=\"password\""),
        "{}",
        form.html
    );
    let csrf = form.csrf();
    let key = "sk-dashboard-vault-secret-0001";
    let fields = [
        ("_csrf", csrf.as_str()),
        ("provider_name", "openai"),
        ("credential.api_key", key),
        ("key_label", "main"),
    ];
    let tested = browser
        .post(
            "/dashboard/gate/vault",
            &[&fields[..], &[("action", "test")]].concat(),
            &[],
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.html);
    assert!(
        tested.html.contains("the provider accepted the key"),
        "{}",
        tested.html
    );
    assert!(
        !tested.html.contains(key),
        "a tested key is not echoed back"
    );
    let empty = browser
        .post(
            "/dashboard/gate/vault",
            &[
                ("_csrf", csrf.as_str()),
                ("provider_name", "openai"),
                ("action", "save"),
            ],
            &[],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        browser
            .post(
                "/dashboard/gate/vault",
                &fields,
                &[("sec-fetch-site", "cross-site")]
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let saved = browser
        .post(
            "/dashboard/gate/vault",
            &[&fields[..], &[("action", "save")]].concat(),
            &[],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let listed = browser.get("/dashboard/gate/vault").await;
    assert!(
        listed.html.contains("OpenAI")
            && listed.html.contains("main")
            && listed.html.contains("healthy")
    );
    assert!(!listed.html.contains(key), "only the masked preview");
    assert_eq!(
        app.get("/api/v1/integrations", Some(&credential))
            .await
            .body["total"],
        1
    );
    let id = app
        .get("/api/v1/integrations", Some(&credential))
        .await
        .body["integrations"][0]["id"]
        .as_i64()
        .unwrap();
    let deleted = browser
        .post(
            &format!("/dashboard/gate/vault/{id}/delete"),
            &[("_csrf", csrf.as_str())],
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/api/v1/integrations", Some(&credential))
            .await
            .body["total"],
        0
    );
}

#[actix_web::test]
async fn usage_charts_come_from_the_hourly_counters_with_tables_budgets_and_csv() {
    let app = spawn_app().await;
    let (credential, token, id) = app
        .brand_with_capped_token("sk-openai-usage-0001", 5.0)
        .await;
    for _ in 0..2 {
        assert_eq!(app.chat(&token, "gpt-4o-mini").await.status, StatusCode::OK);
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(&credential).await;
    crate::helpers::eventually(
        "the counters are written",
        std::time::Duration::from_secs(10),
        async || {
            browser
                .get("/dashboard/gate/usage?days=7")
                .await
                .html
                .contains("2 requests")
        },
    )
    .await;
    let usage = browser
        .get("/dashboard/gate/usage?days=1&interval=hour")
        .await;
    assert_eq!(usage.status, StatusCode::OK);
    assert!(
        usage.html.contains("<svg class=\"chart\"")
            && usage.html.contains("<th scope=\"col\">hour</th>")
    );
    assert!(
        usage.html.contains(&format!(
            "/dashboard/gate/traces?token={id}\">capped</a></td><td>2</td>"
        )),
        "{}",
        usage.html
    );
    assert!(
        usage
            .html
            .contains("gpt-4o-mini</td><td>openai</td><td>2</td>"),
        "{}",
        usage.html
    );
    assert!(
        usage.html.contains("<meter min=\"0\" max=\"5"),
        "the capped agent's budget: {}",
        usage.html
    );
    assert!(!usage.html.contains(&token) && !usage.html.contains("sk-openai-usage-0001"));
    let csv = browser.get("/dashboard/gate/usage.csv?days=1").await;
    let lines: Vec<&str> = csv.html.lines().collect();
    assert_eq!(lines[0], "hour_start,agent_key_id,requests,cost_usd");
    assert!(
        lines[1..].iter().any(|l| l.contains(&format!(",{id},2,"))),
        "{}",
        csv.html
    );
}

#[actix_web::test]
async fn vault_cards_edit_limits_and_switches_reset_health_and_invites_are_sent_and_revoked() {
    let app = spawn_app().await;
    let (credential, _) = app.brand_with_token().await;
    let id = app
        .add_key(
            &credential,
            "openai",
            "sk-openai-card-0001",
            serde_json::json!({}),
        )
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&credential).await;
    let csrf = browser.get("/dashboard/gate/vault").await.csrf();
    let edited = browser
        .post(
            &format!("/dashboard/gate/vault/{id}/settings"),
            &[
                ("_csrf", csrf.as_str()),
                ("is_primary", "true"),
                ("minute_limit", "5"),
                ("daily_limit", ""),
            ],
            &[],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.html);
    let key = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&credential))
        .await
        .body["integration"]
        .clone();
    assert_eq!(
        (
            key["is_active"].as_bool(),
            key["is_primary"].as_bool(),
            key["minute_limit"].as_i64()
        ),
        (Some(false), Some(true), Some(5)),
        "{key}"
    );
    let bad = browser
        .post(
            &format!("/dashboard/gate/vault/{id}/settings"),
            &[("_csrf", csrf.as_str()), ("minute_limit", "lots")],
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("minute_limit"));
    let reset = browser
        .post(
            &format!("/dashboard/gate/vault/{id}/reset-health"),
            &[("_csrf", csrf.as_str())],
            &[],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);

    let sent = browser
        .post(
            "/dashboard/gate/vault/invites",
            &[
                ("_csrf", csrf.as_str()),
                ("email", "friend@example.com"),
                ("provider_name", "groq"),
                ("message", "please"),
            ],
            &[],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.html);
    let page = browser.get("/dashboard/gate/vault").await;
    assert!(page.html.contains("friend@example.com") && page.html.contains("pending"));
    let invite = app.get("/api/v1/invites", Some(&credential)).await.body["data"][0]["id"]
        .as_i64()
        .unwrap();
    let revoked = browser
        .post(
            &format!("/dashboard/gate/vault/invites/{invite}/revoke"),
            &[("_csrf", csrf.as_str())],
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("/api/v1/invites", Some(&credential)).await.body["data"][0]["status"],
        "revoked"
    );
    let wrong = browser
        .post(
            "/dashboard/gate/vault/invites",
            &[
                ("_csrf", csrf.as_str()),
                ("email", "not-an-email"),
                ("provider_name", "groq"),
            ],
            &[],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        !browser
            .get("/dashboard/gate/vault")
            .await
            .html
            .contains("sk-openai-card-0001")
    );
}

#[actix_web::test]
async fn the_operator_creates_and_rotates_brands_and_edits_alias_chains() {
    let app = spawn_app().await;
    let mut operator = Browser::new(&app);
    operator.sign_in(&app.admin_token).await;
    let csrf = operator.get("/dashboard/operator").await.csrf();
    let made = operator
        .post(
            "/dashboard/operator/brands",
            &[
                ("_csrf", csrf.as_str()),
                ("name", "Initech"),
                ("contact_email", "ops@initech.example"),
                ("billing_anchor_day", "15"),
            ],
            &[],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.html);
    let at = made
        .html
        .find("value=\"cli_")
        .expect("the credential, this once")
        + 7;
    let credential: String = made.html[at..].chars().take_while(|c| *c != '"').collect();
    assert_eq!(
        app.get("/api/v1/agent-keys", Some(&credential))
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        !operator
            .get("/dashboard/operator")
            .await
            .html
            .contains(&credential),
        "shown once"
    );
    let bad = operator
        .post(
            "/dashboard/operator/brands",
            &[
                ("_csrf", csrf.as_str()),
                ("name", "X"),
                ("billing_anchor_day", "31"),
            ],
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let client_id = credential.split(':').next().unwrap();
    let rotated = operator
        .post(
            &format!("/dashboard/operator/brands/{client_id}/rotate"),
            &[("_csrf", csrf.as_str())],
            &[],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/agent-keys", Some(&credential))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let alias = app.alias_chain("spideriq/fast").await;
    let reversed: Vec<String> = alias.iter().rev().cloned().collect();
    let saved = operator
        .post(
            "/dashboard/operator/aliases/spideriq/fast",
            &[("_csrf", csrf.as_str()), ("models", &reversed.join("\n"))],
            &[],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    assert_eq!(
        app.alias_chain("spideriq/fast").await,
        reversed,
        "applied without a restart"
    );
    let unknown = operator
        .post(
            "/dashboard/operator/aliases/spideriq/fast",
            &[("_csrf", csrf.as_str()), ("models", "no-such-model")],
            &[],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        operator
            .post(
                "/dashboard/operator/aliases/spideriq/fast",
                &[("models", "x")],
                &[]
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

/// Every page, rendered with secrets planted everywhere they live (a vault key, agent tokens,
/// the brand credential, the admin token, dashboard and SpiderGo sessions, a SpiderGo password
/// and key): none of them is in any page.
#[actix_web::test]
async fn no_page_contains_a_stored_secret() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.spidergo.secure_cookies = false;
        c.spidergo.argon2_memory_kib = 64;
        c.spidergo.argon2_iterations = 1;
    })
    .await;
    let (credential, token) = app.brand_with_token().await;
    let vault_key = "sk-openai-planted-secret-0001";
    app.add_key(&credential, "openai", vault_key, serde_json::json!({}))
        .await;
    assert_eq!(app.chat(&token, "gpt-4o-mini").await.status, StatusCode::OK);
    let invite = app
        .post(
            "/api/v1/invites",
            Some(&credential),
            serde_json::json!({"email": "a@example.com", "provider_name": "groq"}),
        )
        .await;
    assert_eq!(invite.status, StatusCode::CREATED);

    let mut brand = Browser::new(&app);
    brand.sign_in(&credential).await;
    let mut operator = Browser::new(&app);
    operator.sign_in(&app.admin_token).await;
    let mut go = Browser::new(&app);
    let password = "planted password 0001";
    go.post(
        "/dashboard/spidergo/register",
        &[
            ("name", "Go"),
            ("email", "go@example.com"),
            ("password", password),
        ],
        &[],
    )
    .await;
    let csrf = go.get("/dashboard/spidergo").await.csrf();
    let made = go
        .post(
            "/dashboard/spidergo/keys",
            &[("name", "k"), ("_csrf", &csrf)],
            &[],
        )
        .await;
    let at = made.html.find("sk_live_").unwrap();
    let go_key: String = made.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();

    let mut secrets = vec![
        credential.clone(),
        token.clone(),
        vault_key.to_owned(),
        app.admin_token.clone(),
        password.to_owned(),
        go_key,
    ];
    secrets.extend(brand.cookie.clone());
    secrets.extend(operator.cookie.clone());
    secrets.extend(go.others.values().cloned());
    let mut pages = Vec::new();
    for path in [
        "/dashboard/gate/keys",
        "/dashboard/gate/vault",
        "/dashboard/gate/vault?provider=openai",
        "/dashboard/gate/traces?range=all",
        "/dashboard/gate/traces.csv?range=all",
        "/dashboard/gate/usage",
        "/dashboard/gate/usage.csv",
        "/dashboard/settings",
        "/dashboard/settings/members/agents",
    ] {
        let page = brand.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        pages.push((path, page.html));
    }
    let trace_id = pages[4]
        .1
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    pages.push((
        "trace",
        brand
            .get(&format!("/dashboard/gate/traces/{trace_id}"))
            .await
            .html,
    ));
    pages.push((
        "/dashboard/operator",
        operator.get("/dashboard/operator").await.html,
    ));
    pages.push((
        "/dashboard/spidergo",
        go.get("/dashboard/spidergo").await.html,
    ));
    pages.push((
        "/dashboard/login",
        Browser::new(&app).get("/dashboard/login").await.html,
    ));
    for (path, html) in &pages {
        for secret in &secrets {
            assert!(
                !html.contains(secret.as_str()),
                "{path} contains a stored secret ({}…)",
                &secret[..6]
            );
        }
    }
}
