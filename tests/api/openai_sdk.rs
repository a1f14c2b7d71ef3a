//! The real OpenAI Python SDK against the gateway: it retries a 429 after the `Retry-After` we
//! send and then succeeds, retries a 503, and never retries a 402 (`x-should-retry: false`).
//! The SDK comes from PyPI into target/py (scripts/python-env), like schemathesis.

use crate::helpers::{TestApp, eventually, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
const KEY: &str = "sk-openai-python-sdk-1";

/// The virtual environment's Python, built on first use.
pub fn python() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/python-env"))
        .output()
        .expect("bash runs scripts/python-env");
    assert!(
        output.status.success(),
        "scripts/python-env failed (it needs PyPI once): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!("{}/python", String::from_utf8_lossy(&output.stdout).trim())
}

/// The SDK script, loaded and waiting for [`Sdk::call`].
struct Sdk {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Sdk {
    /// Returns once Python has loaded the SDK (a second or two: the injected clock runs on from
    /// real time, so the test moves it only after this).
    async fn start(python: &str, app: &TestApp, token: &str, max_retries: u32) -> Sdk {
        use tokio::io::AsyncBufReadExt;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_retries.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(format!("{}/api/gate/v1", app.address))
            .arg(token)
            .arg(MODEL)
            .arg(max_retries.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SDK script runs");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = stdout.next_line().await.expect("stdout");
        assert_eq!(first.as_deref(), Some("ready"), "the SDK did not load");
        Sdk { child, stdout }
    }

    /// Lets it make its call and returns what it printed.
    async fn call(mut self) -> Value {
        use tokio::io::AsyncWriteExt;
        let mut stdin = self.child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").await.expect("go");
        drop(stdin);
        let line = self.stdout.next_line().await.expect("stdout");
        let output = self
            .child
            .wait_with_output()
            .await
            .expect("the SDK script ends");
        let line = line.unwrap_or_default();
        assert!(
            output.status.success(),
            "{line}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }
}

/// One SDK call with `max_retries`.
async fn sdk_call(python: &str, app: &TestApp, token: &str, max_retries: u32) -> Value {
    Sdk::start(python, app, token, max_retries)
        .await
        .call()
        .await
}

async fn refused_with_429(app: &TestApp) -> bool {
    let scrape = app.client.get(format!("{}/metrics", app.address)).send();
    let metrics = scrape.await.expect("scrape").text().await.expect("text");
    metrics.lines().any(|l| {
        l.starts_with("spidergate_requests_total{")
            && l.contains("status=\"429\"")
            && !l.ends_with(" 0")
    })
}

#[actix_web::test]
async fn the_openai_python_sdk_retries_429_and_503_as_told_and_never_402() {
    let python = python();
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", KEY, json!({})).await;

    // 429: one request a minute, the first one spent 59 s ago → Retry-After: 1.
    let (limited, _) = app
        .mint_token(&credential, json!({ "name": "limited", "rpm": 1 }))
        .await;
    let sdk = Sdk::start(&python, &app, &limited, 3).await;
    assert_eq!(app.chat(&limited, MODEL).await.status, StatusCode::OK);
    app.state.clock.advance(chrono::Duration::seconds(59));
    let sdk = sdk.call();
    let window_frees = async {
        eventually(
            "the SDK's first attempt is refused",
            Duration::from_secs(30),
            async || refused_with_429(&app).await,
        )
        .await;
        app.state.clock.advance(chrono::Duration::seconds(2));
    };
    let (outcome, ()) = tokio::join!(sdk, window_frees);
    assert_eq!(
        outcome["ok"], true,
        "served once the window freed: {outcome}"
    );
    let attempts = outcome["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "{outcome}");
    let waits = outcome["waits"].as_array().unwrap();
    assert!(
        waits.iter().all(|w| w.as_f64().unwrap() >= 0.9),
        "each retry waited for Retry-After (1 s): {outcome}"
    );

    // 503: no usable key anywhere → Retry-After: 1, retried, then surfaced.
    let (_, bare) = app.create_brand("No keys").await;
    let (keyless, _) = app.mint_token(&bare, json!({ "name": "keyless" })).await;
    let outcome = sdk_call(&python, &app, &keyless, 2).await;
    assert_eq!(outcome["status"], 503, "{outcome}");
    assert_eq!(outcome["code"], "no_available_key", "{outcome}");
    assert_eq!(outcome["attempts"], 3, "two retries: {outcome}");
    assert!(
        outcome["waits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.as_f64().unwrap() >= 0.9)
    );

    // 402: a spent budget stays spent; the SDK must not come back.
    let (capped, _) = app
        .mint_token(
            &credential,
            json!({ "name": "tiny", "monthly_budget_usd": 0.00000001, "budget_mode": "hard" }),
        )
        .await;
    let outcome = sdk_call(&python, &app, &capped, 2).await;
    assert_eq!(outcome["status"], 402, "{outcome}");
    assert_eq!(outcome["code"], "budget_exceeded", "{outcome}");
    assert_eq!(
        outcome["attempts"], 1,
        "x-should-retry: false is honoured: {outcome}"
    );
}
