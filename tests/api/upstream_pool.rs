//! The upstream connection pool: a provider call reuses a kept-alive connection instead of paying
//! for a TCP (and TLS) handshake, and speaks HTTP/2 to a TLS provider that offers it, so
//! concurrent calls share one connection. The fake logs each request's client address (one per
//! connection) and HTTP version.

use crate::fake_provider::{FakeProvider, Logged};
use crate::helpers::{TestApp, spawn_app_with};
use actix_web::http::Version;
use reqwest::StatusCode;
use std::collections::HashSet;
use std::net::SocketAddr;

/// Distinct client connections among the fake's logged requests.
fn connections(requests: &[Logged]) -> HashSet<Option<SocketAddr>> {
    requests.iter().map(|r| r.peer).collect()
}

async fn chats(app: &TestApp, token: &str, n: usize) {
    for _ in 0..n {
        let reply = app.chat(token, "gpt-4o-mini").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
}

#[actix_web::test]
async fn sequential_calls_reuse_one_kept_alive_connection() {
    let app = spawn_app_with(|_| {}).await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-pool", serde_json::json!({}))
        .await;
    chats(&app, &token, 20).await;
    let requests = app.fake.requests();
    assert_eq!(requests.len(), 20);
    assert_eq!(
        connections(&requests).len(),
        1,
        "20 sequential calls should share one upstream connection: {:?}",
        connections(&requests)
    );
    assert!(requests.iter().all(|r| r.version == Version::HTTP_11));
}

/// A self-signed certificate for 127.0.0.1, as a TLS server config and its PEM (the CA file the
/// gateway is told to trust).
fn self_signed() -> (rustls::ServerConfig, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("server config");
    (config, cert.pem())
}

/// A gateway whose OpenAI provider is `tls_fake`, trusting the CA in `ca_pem`; `http2` as given.
async fn app_behind_tls(
    tls_fake: &FakeProvider,
    ca_pem: &str,
    http2: bool,
) -> (TestApp, String, tempfile::NamedTempFile) {
    let ca_file = tempfile::NamedTempFile::new().expect("CA file");
    std::fs::write(ca_file.path(), ca_pem).expect("write CA file");
    let (url, path) = (tls_fake.url.clone(), ca_file.path().to_owned());
    let app = spawn_app_with(move |config| {
        config.upstream.ca_file = Some(path);
        config.upstream.http2 = http2;
        let openai = config.providers.get_mut("openai").expect("openai override");
        openai.base_url = Some(format!("{url}/openai/v1"));
    })
    .await;
    let (credential, token) = app.brand_with_token().await;
    app.add_key(&credential, "openai", "sk-tls", serde_json::json!({}))
        .await;
    (app, token, ca_file)
}

#[actix_web::test]
async fn concurrent_calls_to_a_tls_provider_share_one_http2_connection() {
    let (tls, ca_pem) = self_signed();
    let tls_fake = FakeProvider::start_tls(tls).await;
    let (app, token, _ca_file) = app_behind_tls(&tls_fake, &ca_pem, true).await;
    // The first call opens the connection; the next 16 go at once.
    chats(&app, &token, 1).await;
    let calls = (0..16).map(|_| app.chat(&token, "gpt-4o-mini"));
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let requests = tls_fake.requests();
    assert_eq!(requests.len(), 17);
    assert!(
        requests.iter().all(|r| r.version == Version::HTTP_2),
        "ALPN should choose HTTP/2: {:?}",
        requests.iter().map(|r| r.version).collect::<Vec<_>>()
    );
    assert_eq!(
        connections(&requests).len(),
        1,
        "HTTP/2 multiplexes every call over one connection: {:?}",
        connections(&requests)
    );
}

#[actix_web::test]
async fn with_http2_off_a_tls_provider_is_spoken_to_in_http1() {
    let (tls, ca_pem) = self_signed();
    let tls_fake = FakeProvider::start_tls(tls).await;
    let (app, token, _ca_file) = app_behind_tls(&tls_fake, &ca_pem, false).await;
    chats(&app, &token, 3).await;
    let requests = tls_fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.version == Version::HTTP_11));
    assert_eq!(connections(&requests).len(), 1);
}

#[actix_web::test]
async fn a_provider_whose_certificate_is_not_trusted_is_never_sent_the_request() {
    let (tls, _) = self_signed();
    let tls_fake = FakeProvider::start_tls(tls).await;
    // Trust a different self-signed certificate than the one the provider presents.
    let (_, other_pem) = self_signed();
    let (app, token, _ca_file) = app_behind_tls(&tls_fake, &other_pem, true).await;
    let reply = app.chat(&token, "gpt-4o-mini").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert!(tls_fake.requests().is_empty());
}
