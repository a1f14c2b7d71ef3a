//! The real Anthropic and OpenAI Python SDKs (from PyPI, in target/py) run a tool call against
//! the gateway, streamed and not: the Anthropic SDK on `/api/gate/v1/messages` (Claude passed
//! through to Anthropic; an OpenAI model translated both ways), the OpenAI SDK on
//! `/chat/completions` (Claude translated to Anthropic Messages; OpenAI passed through).

use crate::fake_dialects::{ANTHROPIC_USAGE, CITY};
use crate::helpers::spawn_app;
use serde_json::{Value, json};

const CLAUDE: &str = "anthropic/claude-haiku-4-5";
const GPT: &str = "gpt-4o-mini";

#[actix_web::test]
async fn the_anthropic_and_openai_sdks_make_tool_calls_through_either_front_door() {
    let python = crate::openai_sdk::python();
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "anthropic", "sk-ant-sdk-key", json!({}))
        .await;
    app.add_key(&credential, "openai", "sk-openai-sdk-key", json!({}))
        .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/tool_calls.py");
    let output = tokio::process::Command::new(&python)
        .args([script, &app.address, &token, CLAUDE, GPT])
        .kill_on_drop(true)
        .output()
        .await
        .expect("the SDK script runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)));
    let city = json!({ "city": CITY });

    let claude = &seen[format!("anthropic:{CLAUDE}")];
    assert_eq!(claude["stop_reason"], "tool_use", "{seen}");
    assert_eq!(
        (&claude["tool"], &claude["stream_tool"]),
        (&city, &city),
        "{seen}"
    );
    assert_eq!(claude["after_tool"], "hello from sk-ant-sdk-key");
    assert_eq!(claude["input_tokens"], ANTHROPIC_USAGE.0);
    assert_eq!(claude["stream_output_tokens"], ANTHROPIC_USAGE.3);

    let translated = &seen[format!("anthropic:{GPT}")];
    assert_eq!(translated["stop_reason"], "end_turn", "{seen}");
    assert_eq!(translated["text"], "hello from sk-openai-sdk-key");
    assert_eq!(translated["stream_text"], "hello from sk-openai-sdk-key");
    assert_eq!(translated["stream_output_tokens"], 3);

    let claude = &seen[format!("openai:{CLAUDE}")];
    assert_eq!(claude["finish"], "tool_calls", "{seen}");
    assert_eq!(
        (&claude["tool"], &claude["stream_tool"]),
        (&city, &city),
        "{seen}"
    );
    assert_eq!(claude["stream_text"], "hello from sk-ant-sdk-key");
    assert_eq!(claude["stream_completion_tokens"], ANTHROPIC_USAGE.3);

    let gpt = &seen[format!("openai:{GPT}")];
    assert_eq!(
        (gpt["finish"].as_str(), gpt["text"].as_str()),
        (Some("stop"), Some("hello from sk-openai-sdk-key"))
    );
    assert_eq!(gpt["stream_completion_tokens"], 3);
}
