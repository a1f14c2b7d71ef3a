//! The headers the OpenAI SDKs read, and the ones they send that must stay with the gateway.

use crate::helpers::{Reply, reply, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

const MODEL: &str = "gpt-4o-mini";
const KEY: &str = "sk-openai-sdk-conventions";

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", reply.headers))
        .to_str()
        .expect("ascii")
}

/// `250ms`, `7s`, `6m0s`, `1h2m3s`.
fn is_sdk_duration(text: &str) -> bool {
    let body = text.strip_suffix("ms").or_else(|| text.strip_suffix('s'));
    body.is_some_and(|b| {
        !b.is_empty()
            && b.split(['h', 'm'])
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    })
}

#[actix_web::test]
async fn responses_carry_what_the_openai_sdks_read() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.add_key(&credential, "openai", KEY, json!({})).await;
    let (limited, _) = app
        .mint_token(&credential, json!({ "name": "limited", "rpm": 1 }))
        .await;
    let sent_by_the_sdk = app
        .client
        .post(format!("{}/api/gate/v1/chat/completions", app.address))
        .bearer_auth(&limited)
        .header("x-stainless-lang", "python")
        .header("x-stainless-retry-count", "0")
        .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .expect("chat");
    let served = reply(sent_by_the_sdk).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    assert!(
        header(&served, "openai-processing-ms")
            .parse::<u64>()
            .is_ok()
    );
    let reset = header(&served, "x-ratelimit-reset-requests");
    assert!(is_sdk_duration(reset), "{reset}");
    let upstream = app.fake.requests();
    assert!(
        upstream
            .iter()
            .all(|r| r.header_names.iter().all(|h| !h.starts_with("x-stainless"))),
        "the SDK's own headers stay with the gateway: {:?}",
        upstream.iter().map(|r| &r.header_names).collect::<Vec<_>>()
    );

    let limited_reply = app.chat(&limited, MODEL).await;
    limited_reply.assert_error(429, "rate_limit_exceeded");
    assert!(
        header(&limited_reply, "retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    assert!(is_sdk_duration(header(
        &limited_reply,
        "x-ratelimit-reset-requests"
    )));

    let (broke, _) = app
        .mint_token(
            &credential,
            json!({ "name": "broke", "monthly_budget_usd": 0.00000001, "budget_mode": "hard" }),
        )
        .await;
    let refused = app.chat(&broke, MODEL).await;
    refused.assert_error(402, "budget_exceeded");
    assert_eq!(header(&refused, "x-should-retry"), "false");

    let (keyless, _) = app.brand_with_token().await;
    let unavailable = app.chat(&keyless, MODEL).await;
    assert_eq!(
        unavailable.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        unavailable.body
    );
    assert!(header(&unavailable, "retry-after").parse::<u64>().is_ok());
}
