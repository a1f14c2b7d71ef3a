//! Embeddings, images, speech and transcription: OpenAI-only routing, validation, 503 without a key.

use crate::fake_provider::Behaviour;
use crate::helpers::{reply, spawn_app};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;

#[actix_web::test]
async fn embeddings_resolve_the_agent_embed_aliases_and_raw_names() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-openai-brand-0001", json!({}))
        .await;
    let reply = app
        .post(
            "/api/gate/v1/embeddings",
            Some(&token),
            json!({ "model": "agent/embed", "input": "hello" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["model"], "text-embedding-3-small");
    assert_eq!(reply.body["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    let large = app
        .post(
            "/api/gate/v1/embeddings",
            Some(&token),
            json!({ "model": "agent/embed-large", "input": ["a", "b"] }),
        )
        .await;
    assert_eq!(large.body["model"], "text-embedding-3-large");
    let raw = app
        .post(
            "/api/gate/v1/embeddings",
            Some(&token),
            json!({ "model": "text-embedding-ada-002", "input": "x" }),
        )
        .await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.body);
    let sent: Vec<_> = app
        .fake
        .requests()
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.body["model"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sent[0],
        (
            "/openai/v1/embeddings".to_owned(),
            "text-embedding-3-small".to_owned()
        )
    );

    app.post(
        "/api/gate/v1/embeddings",
        Some(&token),
        json!({ "model": "gpt-4o", "input": "x" }),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post(
        "/api/gate/v1/embeddings",
        Some(&token),
        json!({ "model": "no-such-embedder", "input": "x" }),
    )
    .await
    .assert_error(404, "model_not_found");
    app.post(
        "/api/gate/v1/embeddings",
        Some(&token),
        json!({ "model": "agent/embed" }),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn without_a_usable_openai_key_the_media_endpoints_are_503_no_openai_key() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "groq", "gsk_not_openai_01", json!({}))
        .await;
    let cases = [
        (
            "/api/gate/v1/embeddings",
            json!({ "model": "agent/embed", "input": "x" }),
        ),
        (
            "/api/gate/v1/images/generations",
            json!({ "model": "dall-e-3", "prompt": "a cat" }),
        ),
        (
            "/api/gate/v1/audio/speech",
            json!({ "model": "tts-1", "input": "hi", "voice": "alloy" }),
        ),
    ];
    for (path, body) in cases {
        app.post(path, Some(&token), body)
            .await
            .assert_error(503, "no_openai_key");
    }
    assert!(app.fake.requests().is_empty());

    app.add_pool_key("openai", "sk-openai-pool-0001").await;
    let served = app
        .post(
            "/api/gate/v1/embeddings",
            Some(&token),
            json!({ "model": "agent/embed", "input": "x" }),
        )
        .await;
    assert_eq!(
        served.status,
        StatusCode::OK,
        "the pool's OpenAI key serves brands without one"
    );
    assert_eq!(app.fake.calls("sk-openai-pool-0001"), 1);
}

#[actix_web::test]
async fn embeddings_fall_back_across_openai_keys() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "openai",
        "sk-openai-broken-01",
        json!({ "is_primary": true }),
    )
    .await;
    app.add_key(&credential, "openai", "sk-openai-works-001", json!({}))
        .await;
    app.fake.set("sk-openai-broken-01", Behaviour::ServerError);
    let reply = app
        .post(
            "/api/gate/v1/embeddings",
            Some(&token),
            json!({ "model": "agent/embed", "input": "x" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        (
            app.fake.calls("sk-openai-broken-01"),
            app.fake.calls("sk-openai-works-001")
        ),
        (1, 1)
    );
}

#[actix_web::test]
async fn images_validate_the_prompt_and_take_concrete_models_only() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-openai-images-01", json!({}))
        .await;
    let ok = app
        .post(
            "/api/gate/v1/images/generations",
            Some(&token),
            json!({ "model": "dall-e-3", "prompt": "a cat", "size": "1024x1024" }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["data"][0]["url"], "https://images.example/fake.png");
    assert_eq!(app.fake.requests()[0].body["size"], "1024x1024");
    let long = app
        .post(
            "/api/gate/v1/images/generations",
            Some(&token),
            json!({ "model": "dall-e-3", "prompt": "x".repeat(4001) }),
        )
        .await;
    long.assert_error(400, "invalid_request");
    assert!(long.message().contains("prompt"));
    app.post(
        "/api/gate/v1/images/generations",
        Some(&token),
        json!({ "model": "agent/embed", "prompt": "a cat" }),
    )
    .await
    .assert_error(404, "model_not_found");
    app.post(
        "/api/gate/v1/images/generations",
        Some(&token),
        json!({ "model": "tts-1", "prompt": "a cat" }),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn speech_validates_voice_format_and_length_and_streams_audio() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-openai-speech-01", json!({}))
        .await;
    let speech =
        |body: serde_json::Value| app.post("/api/gate/v1/audio/speech", Some(&token), body);
    speech(json!({ "model": "tts-1", "input": "hi", "voice": "robot" }))
        .await
        .assert_error(400, "invalid_voice");
    speech(json!({ "model": "tts-1", "input": "hi", "voice": "nova", "response_format": "ogg" }))
        .await
        .assert_error(400, "invalid_response_format");
    speech(json!({ "model": "tts-1", "input": "x".repeat(4097), "voice": "nova" }))
        .await
        .assert_error(400, "invalid_request");
    assert!(app.fake.requests().is_empty());

    for (format, content_type) in [(None, "audio/mpeg"), (Some("wav"), "audio/wav")] {
        let mut body = json!({ "model": "tts-1", "input": "hello", "voice": "nova" });
        if let Some(format) = format {
            body["response_format"] = json!(format);
        }
        let response = app
            .client
            .post(format!("{}/api/gate/v1/audio/speech", app.address))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(&response.bytes().await.expect("audio")[..], b"FAKEAUDIO");
    }
}

#[actix_web::test]
async fn transcriptions_relay_the_upload_and_refuse_files_over_25_mib() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-openai-whisper-1", json!({}))
        .await;
    let url = format!("{}/api/gate/v1/audio/transcriptions", app.address);
    let form = |size: usize, model: &str| {
        let file = Part::bytes(vec![7u8; size])
            .file_name("clip.mp3")
            .mime_str("audio/mpeg")
            .expect("mime");
        Form::new()
            .part("file", file)
            .text("model", model.to_owned())
            .text("language", "en")
    };
    let ok = reply(
        app.client
            .post(&url)
            .bearer_auth(&token)
            .multipart(form(1000, "whisper-1"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(
        ok.body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("heard ")),
        "{}",
        ok.body
    );
    assert_eq!(
        app.fake.requests()[0].path,
        "/openai/v1/audio/transcriptions"
    );

    let too_big = reply(
        app.client
            .post(&url)
            .bearer_auth(&token)
            .multipart(form(25 * 1024 * 1024 + 1, "whisper-1"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    too_big.assert_error(413, "payload_too_large");
    let wrong_model = reply(
        app.client
            .post(&url)
            .bearer_auth(&token)
            .multipart(form(10, "gpt-4o"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    wrong_model.assert_error(400, "invalid_request");
    let no_file = reply(
        app.client
            .post(&url)
            .bearer_auth(&token)
            .multipart(Form::new().text("model", "whisper-1"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    no_file.assert_error(400, "invalid_request");
    assert_eq!(app.fake.requests().len(), 1);
}
