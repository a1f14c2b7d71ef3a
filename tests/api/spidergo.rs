//! SpiderGo end to end: accounts and sessions, `sk_live_` keys and their quota, scrape and crawl
//! against a website on loopback (allowed by `spidergo.allow_cidrs`), fetch safety with the
//! allow-list empty, NDJSON, async jobs and the history.

use crate::helpers::{TestApp, spawn_app_with};
use crate::test_site::TestSite;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use spidergate::config::Config;

fn allow_loopback(config: &mut Config) {
    config.spidergo.allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    cheap(config);
}

/// Plain-http cookies, cheap argon2 and short page timeouts for tests.
fn cheap(config: &mut Config) {
    config.spidergo.secure_cookies = false;
    config.spidergo.argon2_memory_kib = 64;
    config.spidergo.argon2_iterations = 1;
    config.spidergo.page_timeout_ms = 1000;
}

/// A response: status, headers, JSON body.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Got {
    fn message(&self) -> &str {
        self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {}", self.body))
    }

    /// The value of cookie `name` among the `Set-Cookie` headers.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers.get_all(SET_COOKIE).iter().find_map(|v| {
            let v = v.to_str().ok()?;
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (n, value) = pair.split_once('=')?;
            (n == name).then(|| value.to_owned())
        })
    }
}

/// A browser-less client of SpiderGo: keeps its two cookies by hand.
struct Go<'a> {
    app: &'a TestApp,
    access: Option<String>,
    refresh: Option<String>,
}

impl<'a> Go<'a> {
    fn new(app: &'a TestApp) -> Go<'a> {
        Go {
            app,
            access: None,
            refresh: None,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Got {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.address));
        let mut cookies = Vec::new();
        if let Some(a) = &self.access {
            cookies.push(format!("access_token={a}"));
        }
        if let Some(r) = &self.refresh {
            cookies.push(format!("refresh_token={r}"));
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("request reaches the server");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        Got {
            status,
            headers,
            body,
        }
    }

    /// Takes the cookies a response set.
    fn keep(&mut self, got: &Got) {
        if let Some(a) = got.cookie("access_token") {
            self.access = Some(a).filter(|a| !a.is_empty());
        }
        if let Some(r) = got.cookie("refresh_token") {
            self.refresh = Some(r).filter(|r| !r.is_empty());
        }
    }

    async fn register(&self, email: &str) -> Got {
        let body = json!({"name": "Dev", "email": email, "password": "correct horse battery"});
        self.call(reqwest::Method::POST, "/auth/register", Some(body), &[])
            .await
    }

    async fn login(&mut self, email: &str, password: &str) -> Got {
        let body = json!({"email": email, "password": password});
        let got = self
            .call(reqwest::Method::POST, "/auth/login", Some(body), &[])
            .await;
        self.keep(&got);
        got
    }

    /// Registers and signs in a fresh user.
    async fn signed_up(app: &'a TestApp) -> Go<'a> {
        let mut go = Go::new(app);
        let email = format!("dev-{}@example.com", uuid::Uuid::new_v4().simple());
        assert_eq!(go.register(&email).await.status, StatusCode::CREATED);
        assert_eq!(
            go.login(&email, "correct horse battery").await.status,
            StatusCode::OK
        );
        go
    }

    async fn new_key(&self) -> String {
        let got = self
            .call(
                reqwest::Method::POST,
                "/auth/api-keys",
                Some(json!({"name": "ci"})),
                &[],
            )
            .await;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.body);
        got.body["api_key"].as_str().unwrap().to_owned()
    }
}

/// A `/v1/*` call with a bearer key.
async fn v1(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Got {
    let mut req = app.client.request(method, format!("{}{path}", app.address));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    Got {
        status,
        headers,
        body,
    }
}

async fn scrape(app: &TestApp, key: &str, body: Value) -> Got {
    v1(
        app,
        reqwest::Method::POST,
        "/v1/scrape",
        Some(key),
        Some(body),
    )
    .await
}

async fn crawl(app: &TestApp, key: &str, body: Value) -> Got {
    v1(
        app,
        reqwest::Method::POST,
        "/v1/crawl",
        Some(key),
        Some(body),
    )
    .await
}

#[actix_web::test]
async fn accounts_sign_in_refresh_with_reuse_detection_and_sign_out() {
    let app = spawn_app_with(cheap).await;
    let mut go = Go::new(&app);
    let created = go.register("Ada@Example.com").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["user"]["email"], "ada@example.com");
    assert!(
        created.body["user"]["id"].is_string() && created.body["user"]["created_at"].is_string()
    );
    assert!(created.body["user"].get("password_hash").is_none());
    assert_eq!(
        go.register("ada@example.com").await.status,
        StatusCode::CONFLICT
    );
    let short = go
        .call(
            reqwest::Method::POST,
            "/auth/register",
            Some(json!({"name":"x","email":"b@example.com","password":"short"})),
            &[],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(short.message().contains("password"), "{}", short.body);

    let wrong = go.login("ada@example.com", "not the password").await;
    let unknown = go
        .login("nobody@example.com", "correct horse battery")
        .await;
    assert_eq!(
        (wrong.status, unknown.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong.message(), unknown.message(), "one message for both");
    assert_eq!(
        go.call(reqwest::Method::GET, "/auth/me", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let signed = go.login("ada@example.com", "correct horse battery").await;
    assert_eq!(signed.status, StatusCode::OK);
    let set: Vec<String> = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set.iter()
            .all(|c| c.contains("HttpOnly") && c.contains("SameSite=Lax")),
        "{set:?}"
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("refresh_token=") && c.contains("Path=/auth")),
        "{set:?}"
    );
    let me = go.call(reqwest::Method::GET, "/auth/me", None, &[]).await;
    assert_eq!(me.body["user"]["email"], "ada@example.com", "{}", me.body);

    // Rotation: the old refresh token works once; shown again, it signs the whole family out.
    let old_refresh = go.refresh.clone().unwrap();
    let rotated = go
        .call(reqwest::Method::GET, "/auth/refresh", None, &[])
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    go.keep(&rotated);
    assert_ne!(go.refresh.as_deref(), Some(old_refresh.as_str()));
    assert_eq!(
        go.call(reqwest::Method::GET, "/auth/me", None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let thief = Go {
        app: &app,
        access: None,
        refresh: Some(old_refresh),
    };
    let replay = thief
        .call(reqwest::Method::GET, "/auth/refresh", None, &[])
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        go.call(reqwest::Method::GET, "/auth/me", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "family revoked"
    );
    assert_eq!(
        go.call(reqwest::Method::GET, "/auth/refresh", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Sign out ends the session on the very next request.
    go.login("ada@example.com", "correct horse battery").await;
    let token = go.access.clone();
    let out = go
        .call(reqwest::Method::POST, "/auth/logout", None, &[])
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.cookie("access_token").as_deref(), Some(""));
    let stale = Go {
        app: &app,
        access: token,
        refresh: None,
    };
    assert_eq!(
        stale
            .call(reqwest::Method::GET, "/auth/me", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn keys_are_shown_once_limited_to_three_under_concurrency_and_revoked_at_once() {
    let app = spawn_app_with(allow_loopback).await;
    let site = TestSite::start().await;
    let go = Go::signed_up(&app).await;
    let creates = (0..10).map(|_| {
        go.call(
            reqwest::Method::POST,
            "/auth/api-keys",
            Some(json!({"name": "Production Integrations"})),
            &[],
        )
    });
    let results = futures_util::future::join_all(creates).await;
    let made: Vec<&Got> = results
        .iter()
        .filter(|g| g.status == StatusCode::CREATED)
        .collect();
    assert_eq!(
        made.len(),
        3,
        "{:?}",
        results.iter().map(|g| g.status).collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .filter(|g| g.status != StatusCode::CREATED)
            .all(|g| g.status == StatusCode::CONFLICT
                && g.message().contains("at most 3 active API keys"))
    );
    let first = made[0];
    assert_eq!(
        first.message(),
        "API key created. Store it securely now; it will not be shown again."
    );
    let secret = first.body["api_key"].as_str().unwrap();
    assert!(secret.starts_with("sk_live_") && secret.len() >= 8 + 32);
    let meta = &first.body["meta"];
    assert_eq!(
        (
            meta["prefix"].as_str(),
            meta["daily_limit"].as_i64(),
            meta["is_active"].as_bool()
        ),
        (Some("sk_live_"), Some(1000), Some(true))
    );
    assert_eq!(meta["last4"].as_str().unwrap(), &secret[secret.len() - 4..]);
    assert_eq!(meta["name"], "Production Integrations");

    let listed = go
        .call(reqwest::Method::GET, "/auth/api-keys", None, &[])
        .await;
    assert_eq!(listed.body["api_keys"].as_array().unwrap().len(), 3);
    for key in made.iter().map(|g| g.body["api_key"].as_str().unwrap()) {
        assert!(
            !listed.body.to_string().contains(key),
            "a listed key shows its secret"
        );
    }

    // Cookie writes from another site are refused.
    let forged = go
        .call(
            reqwest::Method::POST,
            "/auth/api-keys",
            Some(json!({"name": "x"})),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = go
        .call(
            reqwest::Method::DELETE,
            &format!("/auth/api-keys/{}", meta["key_id"].as_str().unwrap()),
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let url = format!("{}/c", site.url);
    assert_eq!(
        scrape(&app, secret, json!({"url": url})).await.status,
        StatusCode::OK
    );
    let revoked = go
        .call(
            reqwest::Method::DELETE,
            &format!("/auth/api-keys/{}", meta["key_id"].as_str().unwrap()),
            None,
            &[],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let refused = scrape(&app, secret, json!({"url": url})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(!refused.message().is_empty());
    // A slot is free again.
    go.new_key().await;

    // Missing, malformed and unknown keys.
    let missing = v1(
        &app,
        reqwest::Method::POST,
        "/v1/scrape",
        None,
        Some(json!({"url": url})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(&app, "sk_live_nope", json!({"url": url}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = format!("sk_live_{}", "0".repeat(48));
    assert_eq!(
        scrape(&app, &unknown, json!({"url": url})).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Someone else's session cannot touch the keys.
    let other = Go::signed_up(&app).await;
    let theirs = other
        .call(
            reqwest::Method::DELETE,
            &format!(
                "/auth/api-keys/{}",
                made[1].body["meta"]["key_id"].as_str().unwrap()
            ),
            None,
            &[],
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_daily_quota_is_exact_under_concurrency_and_says_when_it_renews() {
    let app = spawn_app_with(|c| {
        allow_loopback(c);
        c.spidergo.daily_limit = 5;
    })
    .await;
    let site = TestSite::start().await;
    let go = Go::signed_up(&app).await;
    let key = go.new_key().await;
    let url = format!("{}/c", site.url);
    let calls = (0..12).map(|_| scrape(&app, &key, json!({"url": url})));
    let results = futures_util::future::join_all(calls).await;
    let ok = results
        .iter()
        .filter(|g| g.status == StatusCode::OK)
        .count();
    let limited: Vec<&Got> = results
        .iter()
        .filter(|g| g.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!((ok, limited.len()), (5, 7));
    assert_eq!(site.hits("/c"), 5, "a refused request fetches nothing");
    let retry: u64 = limited[0].headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(limited[0].headers["x-ratelimit-remaining"], "0");
    let mut remaining: Vec<u64> = results
        .iter()
        .filter(|g| g.status == StatusCode::OK)
        .map(|g| {
            g.headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    remaining.sort();
    assert_eq!(remaining, [0, 1, 2, 3, 4]);
    assert_eq!(results[0].headers["x-ratelimit-limit"], "5");
    // A bad request costs nothing and still says where the key stands.
    let bad = scrape(&app, &key, json!({"link": url})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers["x-ratelimit-remaining"], "0");
    // The next UTC day has a fresh quota.
    app.state.clock.advance(chrono::Duration::days(1));
    assert_eq!(
        scrape(&app, &key, json!({"url": url})).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn a_scrape_returns_the_seed_envelope_with_the_page_parts() {
    let app = spawn_app_with(allow_loopback).await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let got = scrape(&app, &key, json!({"url": format!("{}/a", site.url)})).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let message = &got.body["message"];
    for field in [
        "CRID",
        "UserID",
        "TotalPages",
        "TotalResponseTimeMS",
        "TotalPayloadSize",
        "Pages",
    ] {
        assert!(message.get(field).is_some(), "{field} in {message}");
    }
    assert_eq!(message["TotalPages"], 1);
    let page = &message["Pages"][0];
    assert_eq!(page["URL"], format!("{}/a", site.url));
    assert_eq!(
        (page["StatusCode"].as_u64(), page["Title"].as_str()),
        (Some(200), Some("A"))
    );
    assert_eq!(page["Description"], "About A");
    let content = page["Content"].as_str().unwrap();
    assert!(
        content.contains("This is the page called A") && !content.contains("Footer boilerplate"),
        "{content}"
    );
    assert_eq!(
        page["Links"],
        json!([format!("{}/", site.url), format!("{}/c", site.url)])
    );
    assert_eq!(
        page["PayloadSize"].as_u64(),
        message["TotalPayloadSize"].as_u64()
    );
    assert!(page.get("Markdown").is_none() && page.get("HTML").is_none());
    assert_eq!(
        site.hits("/robots.txt"),
        0,
        "a scrape of one URL does not read robots.txt"
    );

    let full = scrape(&app, &key, json!({"url": format!("{}/a", site.url), "formats": ["markdown", "html"], "only_main_content": false})).await;
    let page = &full.body["message"]["Pages"][0];
    assert!(page["Markdown"].as_str().unwrap().contains("# A"), "{page}");
    assert!(page["HTML"].as_str().unwrap().contains("<footer>"));
    assert_eq!(
        (
            page["Content"].as_str(),
            page["Links"].as_array().map(Vec::len)
        ),
        (Some(""), Some(0))
    );

    for (body, needle) in [
        (json!({}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "ftp://example.com/"}), "ftp"),
        (json!({"url": site.url, "colour": "red"}), "colour"),
        (json!({"url": site.url, "max_pages": 3}), "max_pages"),
        (json!({"url": site.url, "formats": ["pdf"]}), "formats"),
        (
            json!({"url": site.url, "timeout_ms": 10_000_000}),
            "timeout_ms",
        ),
    ] {
        let got = scrape(&app, &key, body.clone()).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(got.message().contains(needle), "{body}: {}", got.body);
    }
    let too_many = crawl(&app, &key, json!({"url": site.url, "max_pages": 101})).await;
    assert!(
        too_many.status == StatusCode::BAD_REQUEST && too_many.message().contains("max_pages"),
        "{}",
        too_many.body
    );
    let too_deep = crawl(&app, &key, json!({"url": site.url, "max_depth": 6})).await;
    assert!(too_deep.status == StatusCode::BAD_REQUEST && too_deep.message().contains("max_depth"));
}

#[actix_web::test]
async fn a_crawl_follows_robots_dedupes_variants_and_reports_every_page() {
    let app = spawn_app_with(allow_loopback).await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let got = crawl(
        &app,
        &key,
        json!({"url": format!("{}/", site.url), "max_pages": 20, "max_depth": 2}),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let message = &got.body["message"];
    let pages = message["Pages"].as_array().unwrap();
    let url = |p: &Value| {
        p["URL"]
            .as_str()
            .unwrap()
            .trim_start_matches(&site.url)
            .to_owned()
    };
    let mut visited: Vec<String> = pages.iter().map(url).collect();
    visited.sort();
    assert_eq!(
        visited,
        ["/", "/a", "/b", "/c", "/missing", "/redirect"],
        "{message}"
    );
    // Each spelling of /a was fetched once; /private never (robots.txt).
    assert_eq!(
        site.hits("/a") + site.hits("/a/") + site.hits("/a?utm_source=mail"),
        1
    );
    assert_eq!(site.hits("/private/secret"), 0);
    assert_eq!(site.hits("/robots.txt"), 1);
    assert_eq!(message["Skipped"]["Robots"], 1, "{message}");
    assert!(
        message["Skipped"]["Duplicate"].as_u64().unwrap() >= 3,
        "{message}"
    );
    assert!(
        message["Skipped"]["Scope"].as_u64().unwrap() >= 2,
        "logo.png and the other origin: {message}"
    );
    assert_eq!(message["StopReason"], "exhausted");
    assert_eq!(message["TotalPages"], pages.len());
    let by = |path: &str| pages.iter().find(|p| url(p) == path).unwrap().clone();
    let moved = by("/redirect");
    assert_eq!(
        (moved["StatusCode"].as_u64(), moved["FinalURL"].as_str()),
        (Some(200), Some(format!("{}/target", site.url).as_str()))
    );
    assert_eq!(moved["Title"], "TARGET");
    let missing = by("/missing");
    assert_eq!(missing["StatusCode"], 404);
    assert!(missing["Error"].as_str().unwrap().contains("404"));
    let c = by("/c");
    assert_eq!(
        (c["Depth"].as_u64(), c["ParentURL"].as_str()),
        (Some(2), Some(format!("{}/a", site.url).as_str()))
    );

    // Limits: one page, and the reason says why it stopped.
    let limited = crawl(
        &app,
        &key,
        json!({"url": format!("{}/", site.url), "max_pages": 1}),
    )
    .await;
    assert_eq!(
        (
            limited.body["message"]["TotalPages"].as_u64(),
            limited.body["message"]["StopReason"].as_str()
        ),
        (Some(1), Some("limit"))
    );
    let shallow = crawl(
        &app,
        &key,
        json!({"url": format!("{}/", site.url), "max_depth": 0}),
    )
    .await;
    assert_eq!(shallow.body["message"]["StopReason"], "depth");
    // Paths: only what the include pattern names, and the sitemap adds what nothing links to.
    let only_b = crawl(&app, &key, json!({"url": format!("{}/", site.url), "include_paths": ["^/b$"], "use_sitemap": true, "respect_robots": false})).await;
    let mut paths: Vec<String> = only_b.body["message"]["Pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(url)
        .collect();
    paths.sort();
    assert_eq!(paths, ["/", "/b"], "{}", only_b.body);
    let sitemap = crawl(&app, &key, json!({"url": format!("{}/", site.url), "use_sitemap": true, "max_depth": 1, "max_pages": 30})).await;
    assert!(
        sitemap.body["message"]["Pages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| url(p) == "/orphan"),
        "{}",
        sitemap.body
    );
}

#[actix_web::test]
async fn failing_targets_are_reported_per_page_never_dropped() {
    let app = spawn_app_with(allow_loopback).await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let slow = scrape(&app, &key, json!({"url": format!("{}/slow", site.url)})).await;
    assert_eq!(slow.status, StatusCode::OK);
    let page = &slow.body["message"]["Pages"][0];
    assert_eq!(page["StatusCode"], 0);
    assert!(
        page["Error"].as_str().unwrap().contains("in time"),
        "{page}"
    );

    // The request's deadline: the page in flight is still reported, and the crawl says why it
    // stopped.
    let cut = crawl(
        &app,
        &key,
        json!({"url": format!("{}/slow", site.url), "timeout_ms": 400}),
    )
    .await;
    assert_eq!(cut.status, StatusCode::OK);
    let message = &cut.body["message"];
    assert_eq!(
        (
            message["StopReason"].as_str(),
            message["TotalPages"].as_u64()
        ),
        (Some("deadline"), Some(1)),
        "{message}"
    );
    assert!(message["Pages"][0]["Error"].is_string());

    let big = scrape(&app, &key, json!({"url": format!("{}/big", site.url)})).await;
    let page = &big.body["message"]["Pages"][0];
    assert_eq!(
        page["PayloadSize"].as_u64(),
        Some(5 * 1024 * 1024),
        "{}",
        page["PayloadSize"]
    );
    assert_eq!(page["Truncated"], true);
    assert_eq!(page["Title"], "Big");

    let private = scrape(
        &app,
        &key,
        json!({"url": format!("{}/to-private", site.url)}),
    )
    .await;
    assert_eq!(private.status, StatusCode::OK);
    let page = &private.body["message"]["Pages"][0];
    assert_eq!(page["StatusCode"], 0);
    assert!(
        page["Error"].as_str().unwrap().contains("non-public"),
        "{page}"
    );

    let nowhere = scrape(&app, &key, json!({"url": "http://127.0.0.1:9/"})).await;
    assert_eq!(nowhere.body["message"]["Pages"][0]["StatusCode"], 0);
    assert!(nowhere.body["message"]["Pages"][0]["Error"].is_string());
}

#[actix_web::test]
async fn every_non_public_target_is_refused_while_the_allow_list_is_empty() {
    let app = spawn_app_with(cheap).await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let port = site.url.rsplit(':').next().unwrap();
    for target in [
        site.url.clone(),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.0.0.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://user:pass@example.com/".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        for path in ["/v1/scrape", "/v1/crawl"] {
            let got = v1(
                &app,
                reqwest::Method::POST,
                path,
                Some(&key),
                Some(json!({"url": target})),
            )
            .await;
            assert_eq!(
                got.status,
                StatusCode::BAD_REQUEST,
                "{path} {target}: {}",
                got.body
            );
        }
    }
    assert_eq!(site.hits("/"), 0, "nothing reached the site");
    let standing = v1(&app, reqwest::Method::GET, "/v1/history", Some(&key), None).await;
    assert_eq!(
        standing.headers["x-ratelimit-remaining"], "1000",
        "refusals cost nothing"
    );
}

#[actix_web::test]
async fn ndjson_streams_pages_as_they_finish_then_the_summary() {
    let app = spawn_app_with(allow_loopback).await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let response = app
        .client
        .post(format!("{}/v1/crawl", app.address))
        .bearer_auth(&key)
        .header("accept", "application/x-ndjson")
        .json(&json!({"url": format!("{}/", site.url), "max_pages": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, pages) = lines.split_last().unwrap();
    assert_eq!(
        pages[0]["URL"],
        format!("{}/", site.url),
        "the seed comes first"
    );
    assert!(pages.iter().all(|p| p["URL"].is_string()));
    let depths: Vec<u64> = pages.iter().map(|p| p["Depth"].as_u64().unwrap()).collect();
    assert!(
        depths.windows(2).all(|w| w[0] <= w[1]) || depths.len() > 2,
        "{depths:?}"
    );
    assert_eq!(
        summary["summary"]["TotalPages"].as_u64(),
        Some(pages.len() as u64)
    );
    assert!(
        summary["summary"].get("Pages").is_none() && summary["summary"]["StopReason"].is_string()
    );
}

#[actix_web::test]
async fn an_async_job_runs_pages_by_cursor_can_be_cancelled_and_is_interrupted_by_a_stop() {
    let app = spawn_app_with(|c| {
        allow_loopback(c);
        c.spidergo.page_timeout_ms = 30_000;
    })
    .await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let made = v1(
        &app,
        reqwest::Method::POST,
        "/v1/crawl/jobs",
        Some(&key),
        Some(json!({"url": format!("{}/", site.url), "max_pages": 20})),
    )
    .await;
    assert_eq!(made.status, StatusCode::ACCEPTED, "{}", made.body);
    let id = made.body["message"]["JobID"].as_str().unwrap().to_owned();
    assert_eq!(made.body["message"]["Status"], "running");
    let path = format!("/v1/crawl/jobs/{id}");
    let mut status = Value::Null;
    crate::helpers::eventually(
        "the job completes",
        std::time::Duration::from_secs(20),
        async || {
            status = v1(&app, reqwest::Method::GET, &path, Some(&key), None)
                .await
                .body;
            status["message"]["Status"] == "completed"
        },
    )
    .await;
    assert_eq!(status["message"]["TotalPages"], 6, "{status}");
    let first = v1(
        &app,
        reqwest::Method::GET,
        &format!("{path}?limit=4"),
        Some(&key),
        None,
    )
    .await;
    let cursor = first.body["message"]["NextCursor"].as_i64().unwrap();
    let rest = v1(
        &app,
        reqwest::Method::GET,
        &format!("{path}?limit=4&cursor={cursor}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        first.body["message"]["Pages"].as_array().unwrap().len()
            + rest.body["message"]["Pages"].as_array().unwrap().len(),
        6
    );
    assert!(rest.body["message"]["NextCursor"].is_null());
    assert_eq!(
        v1(&app, reqwest::Method::DELETE, &path, Some(&key), None)
            .await
            .status,
        StatusCode::CONFLICT
    );

    // A job stuck on a page that never answers: cancelled, then one a stop interrupts.
    let slow = json!({"url": format!("{}/slow", site.url), "max_pages": 5});
    let made = v1(
        &app,
        reqwest::Method::POST,
        "/v1/crawl/jobs",
        Some(&key),
        Some(slow.clone()),
    )
    .await;
    let id = made.body["message"]["JobID"].as_str().unwrap().to_owned();
    let cancel = v1(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/crawl/jobs/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.body);
    crate::helpers::eventually(
        "the job is cancelled",
        std::time::Duration::from_secs(10),
        async || {
            v1(
                &app,
                reqwest::Method::GET,
                &format!("/v1/crawl/jobs/{id}"),
                Some(&key),
                None,
            )
            .await
            .body["message"]["Status"]
                == "cancelled"
        },
    )
    .await;
    let made = v1(
        &app,
        reqwest::Method::POST,
        "/v1/crawl/jobs",
        Some(&key),
        Some(slow),
    )
    .await;
    let id = made.body["message"]["JobID"].as_str().unwrap().to_owned();
    crate::helpers::eventually(
        "the job is fetching",
        std::time::Duration::from_secs(10),
        async || site.hits("/slow") >= 2,
    )
    .await;
    let app = app.restart().await;
    let after = v1(
        &app,
        reqwest::Method::GET,
        &format!("/v1/crawl/jobs/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        after.body["message"]["Status"], "failed: interrupted",
        "{}",
        after.body
    );
}

#[actix_web::test]
async fn history_is_newest_first_by_cursor_and_private_to_its_user() {
    let app = spawn_app_with(allow_loopback).await;
    let site = TestSite::start().await;
    let alice = Go::signed_up(&app).await;
    let alice_key = alice.new_key().await;
    let bob = Go::signed_up(&app).await;
    let bob_key = bob.new_key().await;
    let mut crids = Vec::new();
    for path in ["/a", "/b", "/c"] {
        let got = scrape(
            &app,
            &alice_key,
            json!({"url": format!("{}{path}", site.url)}),
        )
        .await;
        crids.push(got.body["message"]["CRID"].as_str().unwrap().to_owned());
    }
    let first = v1(
        &app,
        reqwest::Method::GET,
        "/v1/history?limit=2",
        Some(&alice_key),
        None,
    )
    .await;
    let listed: Vec<&str> = first.body["message"]["History"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["CRID"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [crids[2].as_str(), crids[1].as_str()]);
    let cursor = first.body["message"]["NextCursor"].as_str().unwrap();
    let next = v1(
        &app,
        reqwest::Method::GET,
        &format!("/v1/history?limit=2&cursor={cursor}"),
        Some(&alice_key),
        None,
    )
    .await;
    assert_eq!(next.body["message"]["History"][0]["CRID"], crids[0]);
    let one = v1(
        &app,
        reqwest::Method::GET,
        &format!("/v1/history/{}", crids[0]),
        Some(&alice_key),
        None,
    )
    .await;
    assert_eq!(
        one.body["message"]["Pages"][0]["Title"], "A",
        "{}",
        one.body
    );
    let by_cookie = alice
        .call(reqwest::Method::GET, "/history", None, &[])
        .await;
    assert_eq!(
        by_cookie.body["message"]["History"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let bobs = v1(
        &app,
        reqwest::Method::GET,
        "/v1/history",
        Some(&bob_key),
        None,
    )
    .await;
    assert_eq!(bobs.body["message"]["History"], json!([]));
    assert_eq!(
        v1(
            &app,
            reqwest::Method::GET,
            &format!("/v1/history/{}", crids[0]),
            Some(&bob_key),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.call(
            reqwest::Method::GET,
            &format!("/history/{}", crids[0]),
            None,
            &[]
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        v1(
            &app,
            reqwest::Method::GET,
            &format!("/v1/history?cursor={}", crids[0]),
            Some(&bob_key),
            None
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
}

/// The 8-digit code in an email.
fn code_in(email: &str) -> String {
    let at = email.find("code to").expect("a code email");
    email[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take(8)
        .collect()
}

#[actix_web::test]
async fn emailed_codes_verify_the_address_and_reset_the_password() {
    let sink = crate::smtp_sink::SmtpSink::start(0).await;
    let port = sink.port;
    let app = spawn_app_with(move |c| {
        cheap(c);
        c.mail.smtp_port = port;
    })
    .await;
    let mut go = Go::new(&app);
    assert_eq!(
        go.register("grace@example.com").await.status,
        StatusCode::CREATED
    );
    let welcome = sink.wait_for(1, std::time::Duration::from_secs(10)).await;
    assert!(
        welcome.contains("grace@example.com") && welcome.contains("Verify your SpiderGo email")
    );
    let code = code_in(&welcome);
    assert_eq!(code.len(), 8, "{welcome}");
    go.login("grace@example.com", "correct horse battery").await;
    let wrong = go
        .call(
            reqwest::Method::POST,
            "/auth/verify-email",
            Some(json!({"code": "00000000"})),
            &[],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let right = go
        .call(
            reqwest::Method::POST,
            "/auth/verify-email",
            Some(json!({"code": code})),
            &[],
        )
        .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    assert_eq!(
        go.call(reqwest::Method::GET, "/auth/me", None, &[])
            .await
            .body["user"]["email_verified"],
        true
    );
    let again = go
        .call(
            reqwest::Method::POST,
            "/auth/verify-email",
            Some(json!({"code": code})),
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "a code works once");

    // The same answer for an unknown email; only the real one gets mail.
    let stranger = Go::new(&app);
    let unknown = stranger
        .call(
            reqwest::Method::POST,
            "/auth/password/forgot",
            Some(json!({"email": "nobody@example.com"})),
            &[],
        )
        .await;
    let known = stranger
        .call(
            reqwest::Method::POST,
            "/auth/password/forgot",
            Some(json!({"email": "grace@example.com"})),
            &[],
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.message()),
        (known.status, known.message())
    );
    let reset_mail = sink.wait_for(2, std::time::Duration::from_secs(10)).await;
    assert!(reset_mail.contains("Reset your SpiderGo password"));
    let reset = json!({"email": "grace@example.com", "code": code_in(&reset_mail), "password": "a new long password"});
    let done = stranger
        .call(
            reqwest::Method::POST,
            "/auth/password/reset",
            Some(reset.clone()),
            &[],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        stranger
            .call(
                reqwest::Method::POST,
                "/auth/password/reset",
                Some(reset),
                &[]
            )
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        go.call(reqwest::Method::GET, "/auth/me", None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "sessions end with a reset"
    );
    assert_eq!(
        go.login("grace@example.com", "correct horse battery")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        go.login("grace@example.com", "a new long password")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(sink.messages().len(), 2, "no mail for the unknown address");
}

#[actix_web::test]
async fn a_job_is_cancelled_through_another_replica() {
    let app = spawn_app_with(|c| {
        allow_loopback(c);
        c.spidergo.page_timeout_ms = 30_000;
    })
    .await;
    let other = app.replica().await;
    let site = TestSite::start().await;
    let key = Go::signed_up(&app).await.new_key().await;
    let made = v1(
        &app,
        reqwest::Method::POST,
        "/v1/crawl/jobs",
        Some(&key),
        Some(json!({"url": format!("{}/slow", site.url)})),
    )
    .await;
    let path = format!(
        "/v1/crawl/jobs/{}",
        made.body["message"]["JobID"].as_str().unwrap()
    );
    crate::helpers::eventually(
        "the job is fetching",
        std::time::Duration::from_secs(10),
        async || site.hits("/slow") >= 1,
    )
    .await;
    let cancel = v1(&other, reqwest::Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.body);
    // The owner learns of it at its next heartbeat (every 2 s).
    crate::helpers::eventually(
        "the owner stops the job",
        std::time::Duration::from_secs(10),
        async || {
            v1(&app, reqwest::Method::GET, &path, Some(&key), None)
                .await
                .body["message"]["Status"]
                == "cancelled"
        },
    )
    .await;
    drop(other);
}
