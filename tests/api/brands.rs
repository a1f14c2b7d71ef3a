//! API.md section 8: the operator creates, lists, reads brands and rotates their credential.

use crate::helpers::{spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

const BRANDS: &str = "/api/v1/admin/brands";

#[actix_web::test]
async fn the_operator_creates_a_brand_whose_credential_works_once_shown() {
    let app = spawn_app().await;
    let reply = app
        .post(
            BRANDS,
            Some(&app.admin_token),
            json!({ "name": "Acme", "contact_email": "ops@acme.test", "billing_anchor_day": 15 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let brand = &reply.body["brand"];
    let client_id = brand["client_id"].as_str().expect("client_id");
    assert!(
        client_id.starts_with("cli_") && client_id.len() == 20,
        "{client_id}"
    );
    assert_eq!(
        (brand["name"].as_str(), brand["billing_anchor_day"].as_i64()),
        (Some("Acme"), Some(15))
    );
    let credential = reply.body["credential"].as_str().expect("credential");
    assert!(credential.starts_with(&format!("{client_id}:key_")));

    assert_eq!(
        app.get("/api/v1/agent-keys", Some(credential)).await.status,
        StatusCode::OK
    );
    let listed = app.get(BRANDS, Some(&app.admin_token)).await;
    assert_eq!(listed.body["total"], 1);
    assert!(
        !listed.body.to_string().contains("secret_"),
        "listing leaks the credential"
    );
    let one = app
        .get(&format!("{BRANDS}/{client_id}"), Some(&app.admin_token))
        .await;
    assert_eq!(one.body["contact_email"], "ops@acme.test");
}

#[actix_web::test]
async fn rotating_the_credential_invalidates_the_old_one_at_once() {
    let app = spawn_app().await;
    let (client_id, old) = app.create_brand("Acme").await;
    let rotated = app
        .post(
            &format!("{BRANDS}/{client_id}/rotate-credential"),
            Some(&app.admin_token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new = rotated.body["credential"].as_str().expect("credential");
    assert!(new.starts_with(&client_id) && new != old);

    app.get("/api/v1/agent-keys", Some(&old))
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(
        app.get("/api/v1/agent-keys", Some(new)).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn unknown_brands_are_404_and_bad_fields_are_400() {
    let app = spawn_app().await;
    let admin = Some(app.admin_token.as_str());
    app.get(&format!("{BRANDS}/cli_0000000000000000"), admin)
        .await
        .assert_error(404, "not_found");
    app.post(
        &format!("{BRANDS}/cli_0000000000000000/rotate-credential"),
        admin,
        json!({}),
    )
    .await
    .assert_error(404, "not_found");
    let cases = [
        (json!({ "name": "" }), "name"),
        (
            json!({ "name": "A", "billing_anchor_day": 29 }),
            "billing_anchor_day",
        ),
        (
            json!({ "name": "A", "contact_email": "not-an-email" }),
            "contact_email",
        ),
        (json!({ "name": "A", "colour": "red" }), "colour"),
    ];
    for (body, field) in cases {
        let reply = app.post(BRANDS, admin, body).await;
        reply.assert_error(400, "invalid_request");
        assert!(
            reply.message().contains(field),
            "{field}: {}",
            reply.message()
        );
    }
}

#[actix_web::test]
async fn only_the_operator_token_opens_the_admin_api() {
    let app = spawn_app().await;
    let (_, credential) = app.create_brand("Acme").await;
    app.get(BRANDS, None)
        .await
        .assert_error(401, "missing_api_key");
    app.get(BRANDS, Some("wrong-admin-token"))
        .await
        .assert_error(401, "invalid_api_key");
    app.get(BRANDS, Some(&credential))
        .await
        .assert_error(401, "invalid_api_key");
}

#[actix_web::test]
async fn without_a_configured_admin_token_the_operator_api_is_closed() {
    let app = spawn_app_with(|config| config.admin.token = Default::default()).await;
    let reply = app.get(BRANDS, Some("anything")).await;
    reply.assert_error(401, "invalid_api_key");
    assert!(
        reply.message().contains("SPIDERGATE_ADMIN_TOKEN"),
        "{}",
        reply.message()
    );
}
