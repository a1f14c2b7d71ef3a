//! `/openapi.json` and `/docs`: the document is served, the viewer works offline, and every
//! documented operation is served with exactly the documented methods.

use crate::helpers::spawn_app;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[actix_web::test]
async fn the_document_and_its_viewer_are_served_from_the_binary() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["securitySchemes"]["agent"].is_object());

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let moved = no_redirects
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(moved.headers()["location"], "/docs/");
    let page = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let initializer = app
        .client
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(initializer.status(), StatusCode::OK);
    let script = initializer.text().await.unwrap();
    assert!(script.contains("/openapi.json"), "{script}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js"] {
        let response = app
            .client
            .get(format!("{}/docs/{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset} is embedded");
    }
    assert!(
        !html.contains("https://") && !script.contains("https://"),
        "the viewer loads nothing from elsewhere"
    );
}

/// Served: anything but 405 and the unknown-route 404. Not served: one of those two.
fn served(status: StatusCode, body: &str) -> bool {
    status != StatusCode::METHOD_NOT_ALLOWED
        && !(status == StatusCode::NOT_FOUND && body.contains("no route for"))
}

#[actix_web::test]
async fn each_documented_path_answers_its_documented_methods_and_refuses_the_others() {
    let app = spawn_app().await;
    let (credential, token) = app.brand_with_token().await;
    let doc: Value = app.get("/openapi.json", None).await.body;
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        let bearer = if path.starts_with("/api/v1/admin") {
            Some(app.admin_token.as_str())
        } else if path.starts_with("/api/v1/") {
            Some(credential.as_str())
        } else if path.starts_with("/api/gate/v1/") {
            Some(token.as_str())
        } else {
            None
        };
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "1"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
            let mut request = app
                .client
                .request(method.clone(), format!("{}{concrete}", app.address));
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            let response = request.send().await.expect("request");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_eq!(
                served(status, &body),
                documented,
                "{method} {path}: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 5 * 40, "only {checked} probes");
}
