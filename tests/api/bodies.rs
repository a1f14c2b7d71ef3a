//! Request bodies at the edge, spoken as raw HTTP/1.1 so the test controls every byte: oversized
//! bodies get the envelope on every route and stop being read, and a trickled body gets 408.

use crate::helpers::{TestApp, spawn_app_with};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The test app with a 1 MiB body limit and a 1 s body deadline, and a brand's token.
async fn app() -> (TestApp, String) {
    let app = spawn_app_with(|config| {
        config.server.body_limit_bytes = 1024 * 1024;
        config.server.body_read_timeout_secs = 1;
    })
    .await;
    let (_, token) = app.brand_with_token().await;
    (app, token)
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

fn head(path: &str, token: &str, framing: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{framing}\r\n"
    )
}

/// Reads what the server sends until it closes the connection (or 10 s pass).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let reading = async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&seen).into_owned()
}

/// The status line's code and the JSON envelope's `error.code` of a raw response.
fn status_and_code(response: &str) -> (u16, String) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json = body
        .find('{')
        .and_then(|at| {
            serde_json::from_str::<Value>(body[at..].trim_end_matches(['\r', '\n', '0'])).ok()
        })
        .unwrap_or_else(|| panic!("no JSON envelope in {response:?}"));
    (
        status,
        json["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[actix_web::test]
async fn an_oversized_body_gets_the_envelope_on_every_route() {
    let (app, token) = app().await;
    let (_, credential) = app.create_brand("Other").await;
    for path in [
        "/api/gate/v1/chat/completions",
        "/api/gate/v1/embeddings",
        "/api/gate/v1/images/generations",
        "/api/gate/v1/audio/speech",
        "/api/v1/agent-keys",
        "/api/v1/integrations",
        "/invite/0000",
    ] {
        let body = vec![b'x'; 2 * 1024 * 1024];
        let bearer = if path.starts_with("/api/gate") {
            &token
        } else {
            &credential
        };
        let kind = if path.starts_with("/invite") {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        let reply = app
            .client
            .post(format!("{}{path}", app.address))
            .header("content-type", kind)
            .bearer_auth(bearer)
            .body(body)
            .send()
            .await
            .expect("an answer");
        assert_eq!(reply.status().as_u16(), 413, "{path}");
        let envelope: Value = reply.json().await.expect("JSON, not text/plain");
        // The vault answers in its own envelope, `{"success":false,"error":M,"code":C}`.
        let code = envelope["error"]["code"]
            .as_str()
            .or(envelope["code"].as_str());
        assert_eq!(code, Some("payload_too_large"), "{path}: {envelope}");
    }
}

#[actix_web::test]
async fn an_oversized_chunked_body_is_refused_and_the_connection_closed() {
    let (app, token) = app().await;
    let stream = connect(&app).await;
    let (mut reading, mut writing) = stream.into_split();
    let framing = "Transfer-Encoding: chunked\r\n";
    writing
        .write_all(head("/api/gate/v1/embeddings", &token, framing).as_bytes())
        .await
        .expect("head");
    // Read while writing: the answer comes while the body is still being sent.
    let answer = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = reading.read(&mut buf).await {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    // An endless body: before the fix the server read it to the end, so this never stopped.
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    let endless = async { while writing.write_all(chunk.as_bytes()).await.is_ok() {} };
    tokio::time::timeout(Duration::from_secs(30), endless)
        .await
        .expect("the server stops reading and closes the connection");
    let response = answer.await.expect("reader");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert_eq!(
        status_and_code(&response),
        (413, "payload_too_large".to_owned())
    );
}

#[actix_web::test]
async fn a_trickled_body_is_cut_off_with_408_and_the_connection_closed() {
    let (app, token) = app().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            head(
                "/api/gate/v1/chat/completions",
                &token,
                "Content-Length: 500\r\n",
            )
            .as_bytes(),
        )
        .await
        .expect("head");
    stream
        .write_all(b"{\"model\":")
        .await
        .expect("a first byte");
    // Nothing more is sent: the server must give up by itself.
    let response = read_until_closed(&mut stream).await;
    assert_eq!(
        status_and_code(&response),
        (408, "request_timeout".to_owned())
    );
}
