//! Hostile input gets a clean enveloped error and the server keeps serving.

use crate::helpers::{TestApp, reply, spawn_app};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;

async fn still_serving(app: &TestApp) {
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_malformed_authorization_header_is_a_clean_401() {
    let app = spawn_app().await;
    let headers: [&[u8]; 4] = [
        b"Bearer \xff\xfe\xfd",
        b"Bearer a b c",
        b"\xc3\x28",
        b"Bearer spideriq_pat_\xe2\x82",
    ];
    for raw in headers {
        let response = app
            .client
            .get(format!("{}/api/v1/agent-keys", app.address))
            .header(
                "Authorization",
                HeaderValue::from_bytes(raw).expect("obs-text is a legal header value"),
            )
            .send()
            .await
            .expect("request");
        reply(response)
            .await
            .assert_error(401, "invalid_token_format");
    }
    still_serving(&app).await;
}

async fn post_bytes(app: &TestApp, credential: &str, body: Vec<u8>) -> crate::helpers::Reply {
    let response = app
        .client
        .post(format!("{}/api/v1/agent-keys", app.address))
        .bearer_auth(credential)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    reply(response).await
}

#[actix_web::test]
async fn ten_mib_of_garbage_is_refused_cleanly() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let garbage: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    post_bytes(&app, &credential, garbage.clone())
        .await
        .assert_error(400, "invalid_request");

    let mut too_big = garbage;
    too_big.extend_from_slice(b"one byte more than the limit");
    post_bytes(&app, &credential, too_big)
        .await
        .assert_error(413, "payload_too_large");
    still_serving(&app).await;
    assert_eq!(
        app.get("/api/v1/agent-keys", Some(&credential)).await.body["total"],
        0,
        "nothing was stored"
    );
}

#[actix_web::test]
async fn a_non_utf8_path_is_a_clean_404() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    for path in [
        "/api/v1/agent-keys/%FF%FE",
        "/%C3%28",
        "/api/gate/v1/models/%FF",
    ] {
        let reply = app.get(path, Some(&credential)).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["code"].is_string(),
            "{path}: {}",
            reply.body
        );
    }
    still_serving(&app).await;
}

#[actix_web::test]
async fn huge_json_numbers_are_400_not_a_crash() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    let bodies = [
        r#"{"name":"a","rpm":1e400}"#.to_owned(),
        r#"{"name":"a","rpm":123456789012345678901234567890}"#.to_owned(),
        format!(
            r#"{{"name":"a","monthly_budget_usd":1{}}}"#,
            "0".repeat(5000)
        ),
        format!(r#"{{"name":"a","expires_in_hours":-{}}}"#, "9".repeat(400)),
    ];
    for body in bodies {
        post_bytes(&app, &credential, body.into_bytes())
            .await
            .assert_error(400, "invalid_request");
    }
    still_serving(&app).await;
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = spawn_app().await;
    app.get("/v1/nothing-here", None)
        .await
        .assert_error(404, "not_found");
    app.delete("/api/gate/v1/models", None)
        .await
        .assert_error(405, "method_not_allowed");
    app.request(
        reqwest::Method::PUT,
        "/api/v1/admin/brands",
        Some(&app.admin_token),
        None,
    )
    .await
    .assert_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn path_ids_are_decimal_digits_only() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let id = app.get("/api/v1/agent-keys", Some(&credential)).await.body["data"][0]["id"]
        .as_i64()
        .expect("the token's id");
    for lenient in [
        format!("+{id}"),
        format!("0{id}x"),
        format!("{id}.0"),
        " 1".into(),
    ] {
        let path = format!("/api/v1/agent-keys/{lenient}");
        app.delete(&path, Some(&credential))
            .await
            .assert_error(404, "not_found");
        app.get(
            &format!("/api/v1/integrations/{lenient}"),
            Some(&credential),
        )
        .await
        .assert_error(404, "not_found");
    }
    assert_eq!(
        app.get("/api/gate/v1/models", Some(&token)).await.status,
        StatusCode::OK,
        "the token was not revoked"
    );
    let plain = app
        .get(&format!("/api/v1/agent-keys/{id}"), Some(&credential))
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.body);
}

#[actix_web::test]
async fn a_port_in_use_exits_1_with_one_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("address").port();
    let db = crate::helpers::TestDb::fresh().await;
    let fake = crate::fake_provider::FakeProvider::start().await;
    let output = crate::process::command(&db.url(), "admin-port-in-use", &fake.url)
        .env("SPIDERGATE_SERVER__PORT", port.to_string())
        .env("RUST_LOG", "info")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("binding 127.0.0.1:{port}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(taken);
}

/// Found by schemathesis: an offset past what a database integer holds panicked the worker.
#[actix_web::test]
async fn trace_bounds_past_a_database_integer_are_a_400_not_a_crash() {
    let app = spawn_app().await;
    let (credential, _) = app.brand_with_token().await;
    for query in [
        "offset=9223372036854775808",
        "min_latency_ms=18446744073709551615",
    ] {
        for path in ["/api/v1/traces", "/api/v1/traces/summary"] {
            let reply = app.get(&format!("{path}?{query}"), Some(&credential)).await;
            if path.ends_with("summary") && query.starts_with("offset") {
                assert_eq!(reply.status, StatusCode::OK, "the summary has no pages");
                continue;
            }
            reply.assert_error(400, "invalid_request");
            assert_eq!(
                reply.body["error"]["param"],
                query.split('=').next().unwrap()
            );
        }
    }
    still_serving(&app).await;
}
