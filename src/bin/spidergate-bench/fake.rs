//! The fast fake upstream: fixed answers, no parsing, its own thread and actix system.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use std::sync::mpsc;

const CHAT: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
const EMBEDDING: &str = r#"{"object":"list","model":"text-embedding-3-small","data":[{"object":"embedding","index":0,"embedding":[0.01,0.02,0.03,0.04]}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;

/// Nine content chunks, a usage chunk, then `[DONE]`.
fn stream_body() -> Bytes {
    let mut body = String::new();
    for i in 0..9 {
        body.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}\n\n");
    body.push_str("data: [DONE]\n\n");
    Bytes::from(body)
}

async fn chat(body: Bytes, stream: web::Data<Bytes>) -> HttpResponse {
    if body.windows(13).any(|w| w == b"\"stream\":true") {
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(stream.get_ref().clone());
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(CHAT)
}

async fn embeddings(_: HttpRequest) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(EMBEDDING)
}

/// Starts the fake on 127.0.0.1:0 in its own thread; returns its base URL (`http://…/v1`).
pub fn start() -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let stream = web::Data::new(stream_body());
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(stream.clone())
                    .route("/v1/chat/completions", web::post().to(chat))
                    .route("/v1/embeddings", web::post().to(embeddings))
            })
            .workers(1)
            .tcp_nodelay(true)
            .bind(("127.0.0.1", 0));
            match server {
                Ok(server) => {
                    let _ = tx.send(Ok(server.addrs()[0].port()));
                    let _ = server.run().await;
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                }
            }
        });
    });
    let port = rx.recv()??;
    Ok(format!("http://127.0.0.1:{port}/v1"))
}
