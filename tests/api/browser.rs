//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`), driven
//! over WebDriver with thirtyfour: sign in, connect an agent and see its key once, revoke it
//! through the confirmation, open its traces, test a vault key against the fake provider, and
//! switch the theme; screenshots go to `target/dashboard-screens/`.
//!
//! Without the browser the test is skipped with a message, except under `CI=true`, where a
//! missing browser is a failure.

use crate::helpers::{TestApp, spawn_app};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use thirtyfour::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver of this test's own, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser, or `None` (with a message) when this machine has none and CI does not ask.
async fn browser() -> Option<(Driver, WebDriver)> {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: install chromium and chromium-driver"
        );
        eprintln!("skipping the browser test: {CHROMIUM} or {CHROMEDRIVER} is not installed");
        return None;
    }
    spidergate::install_tls_provider();
    // chromedriver takes a port, not 0: ask the OS for a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: profile,
    };
    let client = reqwest::Client::new();
    crate::helpers::eventually(
        "chromedriver answers",
        Duration::from_secs(20),
        async || {
            client
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .is_ok()
        },
    )
    .await;
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        &format!("--user-data-dir={}", driver._profile.path().display()),
    ] {
        caps.add_arg(arg).unwrap();
    }
    let web = WebDriver::new(driver.url.clone(), caps)
        .await
        .expect("a browser session");
    Some((driver, web))
}

async fn screenshot(web: &WebDriver, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screens");
    std::fs::create_dir_all(&dir).unwrap();
    web.screenshot(&dir.join(name)).await.unwrap();
}

async fn text_of(web: &WebDriver) -> String {
    web.find(By::Tag("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits for the page to contain `needle` (a navigation or a form post settling).
async fn until_page_has(web: &WebDriver, needle: &str) {
    crate::helpers::eventually(
        &format!("the page shows {needle:?}"),
        Duration::from_secs(10),
        async || web.source().await.is_ok_and(|html| html.contains(needle)),
    )
    .await;
}

async fn sign_in(web: &WebDriver, app: &TestApp, secret: &str) {
    web.goto(format!("{}/dashboard/gate/keys", app.address))
        .await
        .unwrap();
    until_page_has(web, "id=\"secret\"").await;
    web.find(By::Id("secret"))
        .await
        .unwrap()
        .send_keys(secret)
        .await
        .unwrap();
    web.find(By::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_page_has(web, "Connect an agent").await;
}

#[actix_web::test]
async fn a_brand_admin_works_the_dashboard_in_chromium() {
    let Some((_driver, web)) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    sign_in(&web, &app, &credential).await;

    // Connect an agent: the key is shown once.
    web.find(By::Id("name"))
        .await
        .unwrap()
        .send_keys("browser-agent")
        .await
        .unwrap();
    web.find(By::Css("form.grid button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_page_has(&web, "is connected").await;
    let secret = web
        .find(By::Id("secret"))
        .await
        .unwrap()
        .value()
        .await
        .unwrap()
        .unwrap();
    assert!(secret.starts_with("spideriq_pat_"), "{secret}");
    screenshot(&web, "agent-connected.png").await;
    web.goto(format!("{}/dashboard/gate/keys", app.address))
        .await
        .unwrap();
    until_page_has(&web, "browser-agent").await;
    assert!(
        !web.source().await.unwrap().contains(&secret),
        "never shown again"
    );
    screenshot(&web, "keys.png").await;

    // The theme toggle flips the page's theme and keeps it.
    let before = web
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    web.find(By::Css("[data-theme-toggle]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let after = web
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(
        before.json(),
        after.json(),
        "the background changes with the theme"
    );

    // View traces opens Traces filtered to this agent.
    web.find(By::LinkText("View traces"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_page_has(&web, "requests ·").await;
    assert!(web.current_url().await.unwrap().as_str().contains("token="));

    // Revoke goes through the confirmation.
    web.goto(format!("{}/dashboard/gate/keys", app.address))
        .await
        .unwrap();
    until_page_has(&web, "browser-agent").await;
    web.find(By::Css("button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    web.accept_alert().await.unwrap();
    until_page_has(&web, "revoked").await;
    assert_eq!(
        app.get("/api/gate/v1/models", Some(&secret))
            .await
            .status
            .as_u16(),
        401
    );

    // Test connection in the Vault, against the fake provider, before saving.
    web.goto(format!(
        "{}/dashboard/gate/vault?provider=openai",
        app.address
    ))
    .await
    .unwrap();
    until_page_has(&web, "cred-api_key").await;
    web.find(By::Id("cred-api_key"))
        .await
        .unwrap()
        .send_keys("sk-browser-test-0001")
        .await
        .unwrap();
    web.find(By::Css("button[value=test]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_page_has(&web, "accepted the key").await;
    assert!(!web.source().await.unwrap().contains("sk-browser-test-0001"));
    assert!(text_of(&web).await.contains("Test connection"));
    web.quit().await.unwrap();
}
